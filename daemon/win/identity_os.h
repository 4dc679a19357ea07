/* identity_os.h (Windows) - the platform fields of struct identity and of
 * the per-worker scratch, included by identity.h only; only identity_win.c
 * reads them.
 *
 * A Windows principal is a SID, not a number: identity_win.c interns the
 * SIDs it meets (clients' users, the daemon's, and those the config names;
 * never a token's primary group, which its holder chooses) in a bounded
 * process-wide table, and the "ids" logic files see are IDENTITY_ID_BASE +
 * their place in it. Group SIDs of clients are NOT interned (a token carries a
 * logon-session SID that is new at every logon, which would fill the table):
 * they stay in the worker's scratch, in the TOKEN_GROUPS read from the client's
 * token, and are compared with the configured SIDs by EqualSid. */
#ifndef PIPEFILED_IDENTITY_OS_H
#define PIPEFILED_IDENTITY_OS_H

#include <stdint.h>

/* Distinct SIDs the process interns; when full, new principals are refused
 * (fail closed), never mapped to a shared id. */
#define IDENTITY_SIDS_MAX 4096

/* Interned ids start here, so that a Unix-style number in a config
 * ("allow_users = 1000") names no Windows principal by accident; the log
 * shows e.g. uid=1000000003 for the fourth SID interned. */
#define IDENTITY_ID_BASE 1000000000u

/* No principal known (the user of a client whose process could not be
 * opened at accept): never equal to an interned id. */
#define IDENTITY_ID_NONE 0xffffffffu

/* Room for the client token's TOKEN_GROUPS (a SID is at most 68 bytes: a
 * domain user in ~900 groups fits); a token with more is refused. */
#define IDENTITY_TOKEN_INFO_MAX 65536

struct identity_scratch;

/* user: at accept, the user of the client's process token when it could be
 * read (else IDENTITY_ID_NONE); once complete, the user of the token the
 * pipe gave by impersonation. key: the per-user counting key fixed at accept
 * (identity_user_key), never changed after, so a connection releases the
 * place it took. scratch/serial: as on Linux, the worker's scratch holds the
 * completed token and groups; serial says whose they are. */
#define IDENTITY_PRIVATE_FIELDS                                                \
  unsigned user; /* interned user SID, or IDENTITY_ID_NONE */                  \
  uint32_t key;  /* identity_user_key(), fixed at accept */                    \
  int complete;  /* identity_complete() succeeded */                           \
  struct identity_scratch *scratch; /* holds token and groups once complete */ \
  uint64_t serial; /* never reused; 0 = not from identity_peer() */

/* One per worker thread: the token and groups of the identity completed
 * last. At most one client token is held per worker: completing another
 * identity closes it. */
#define IDENTITY_SCRATCH_PRIVATE_FIELDS                                        \
  uint64_t serial; /* whose token this is; 0 = nobody's */                     \
  void *token;     /* HANDLE: impersonation token, or NULL */                  \
  unsigned user;   /* its user, interned */                                    \
  int root;        /* its user is LocalSystem */                               \
  void *groups;    /* TOKEN_GROUPS *, into info */                             \
  uint64_t info[IDENTITY_TOKEN_INFO_MAX / 8];

#endif
