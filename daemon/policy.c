/* policy.c - allow/deny rules for clients; see policy.h. */
#include "policy.h"

#include <errno.h>

/* Whether the client's primary gid or any supplementary group is in l. */
static int any_group_in(const struct idlist *l, const struct identity *id) {
  if (idlist_has(l, id->gid))
    return 1;
  for (unsigned i = 0; i < id->ngroups; i++)
    if (idlist_has(l, id->groups[i]))
      return 1;
  return 0;
}

int policy_check(const struct config *c, const struct identity *id,
                 const char **why) {
  *why = NULL;
  if (id->uid == 0 && !c->serve_root_clients) {
    *why = "root clients are not served (serve_root_clients = no)";
    return -EPERM;
  }
  if (idlist_has(&c->deny_users, id->uid)) {
    *why = "this user is denied (deny_users)";
    return -EPERM;
  }
  if (any_group_in(&c->deny_groups, id)) {
    *why = "a group of this user is denied (deny_groups)";
    return -EPERM;
  }
  if (!idlist_has(&c->allow_users, id->uid)) {
    *why = "this user is not allowed (allow_users)";
    return -EPERM;
  }
  if (!any_group_in(&c->allow_groups, id)) {
    *why = "no group of this user is allowed (allow_groups)";
    return -EPERM;
  }
  return 0;
}
