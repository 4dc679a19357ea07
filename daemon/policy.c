/* policy.c - allow/deny rules for clients; see policy.h. */
#include "policy.h"

int policy_check(const struct config *c, const struct identity *id,
                 const char **why) {
  *why = NULL;
  if (identity_is_root(id) && !c->serve_root_clients) {
    *why = "root clients are not served (serve_root_clients = no)";
    return UV_EPERM;
  }
  if (identity_user_in(id, &c->deny_users)) {
    *why = "this user is denied (deny_users)";
    return UV_EPERM;
  }
  if (identity_group_denied(id, &c->deny_groups)) {
    *why = "a group of this user is denied (deny_groups)";
    return UV_EPERM;
  }
  if (!identity_user_in(id, &c->allow_users)) {
    *why = "this user is not allowed (allow_users)";
    return UV_EPERM;
  }
  if (!identity_group_in(id, &c->allow_groups)) {
    *why = "no group of this user is allowed (allow_groups)";
    return UV_EPERM;
  }
  return 0;
}
