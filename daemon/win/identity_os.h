/* identity_os.h (Windows) - the platform fields of struct identity and of
 * the per-worker scratch, included by identity.h only. A Windows principal
 * is a SID, not a number: identity_win.c interns the SIDs it meets (and
 * those the config names) and the "ids" logic files see are their places
 * in that table. */
#ifndef PIPEFILED_IDENTITY_OS_H
#define PIPEFILED_IDENTITY_OS_H

#include <stdint.h>

#define IDENTITY_PRIVATE_FIELDS                                                \
  void *token;    /* impersonation token (HANDLE) once complete, or NULL */    \
  unsigned user;  /* the user's SID, interned (identity_win.c) */              \
  unsigned group; /* its primary group's SID, interned */                      \
  int complete;

#define IDENTITY_SCRATCH_PRIVATE_FIELDS int unused;

#endif
