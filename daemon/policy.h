/* policy.h - which clients this daemon acts for at all ([identity] keys).
 *
 * Decided before any file is touched; a refusal is EPERM. Pure: looks only at
 * the config and the kernel-given identity, and asks identity.h what that
 * identity is, so it holds no platform's notion of users and groups. */
#ifndef PIPEFILED_POLICY_H
#define PIPEFILED_POLICY_H

#include "config.h"
#include "identity.h"

/* 0 if id (complete: identity_complete) may be served; UV_EPERM otherwise,
 * with *why a short static reason fit for the client ("root clients are not
 * served"). A client is served iff
 * its user is in allow_users, one of its groups (Linux: the gid or a
 * supplementary group) is in allow_groups, neither its user nor any of its
 * groups is denied, and it is not root unless serve_root_clients is set. */
int policy_check(const struct config *c, const struct identity *id,
                 const char **why);

#endif
