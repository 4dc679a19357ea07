/* identity_os.h (Linux) - the platform fields of struct identity and of the
 * per-worker identity scratch space, included by identity.h only.
 *
 * The build puts daemon/linux/ on the include path (daemon/win/ on Windows,
 * with its own identity_os.h), so identity.h names one header and has no
 * platform conditional; only identity_linux.c reads these fields (and tests
 * that build identities by hand). */
#ifndef PIPEFILED_IDENTITY_OS_H
#define PIPEFILED_IDENTITY_OS_H

#include <stdint.h>
#include <sys/types.h>

#define IDENTITY_GROUPS_MAX 65536 /* NGROUPS_MAX on Linux */

/* More supplementary groups than this and a switch into the client's
 * identity (~0.5 us a group here: 250 us) is a large share of other users'
 * p99 when they wait behind it (identity_costly). Directory users in a few
 * hundred groups stay below it. */
#define IDENTITY_CHEAP_GROUPS 512

/* uid and gid as SO_PEERCRED recorded them at connect; the supplementary
 * groups once identity_complete() has read them (SO_PEERGROUPS) into the
 * worker's scratch space; serial tells whose groups a scratch holds. */
#define IDENTITY_PRIVATE_FIELDS                                                \
  uid_t uid;                                                                   \
  gid_t gid;                                                                   \
  unsigned ngroups;      /* supplementary groups; 0 until completed */         \
  const gid_t *groups;   /* in a struct identity_scratch, or the caller's */   \
  uint64_t serial;       /* never reused; 0 = not from identity_peer() */      \
  unsigned peer_ngroups; /* groups counted at accept (privileged mode), for    \
                            identity_costly() only */

/* The groups of recent peers a worker keeps (identity_complete), each of
 * at most IDENTITY_KEPT_GROUPS; a slot per serial modulo IDENTITY_KEPT. */
#define IDENTITY_KEPT 1024
#define IDENTITY_KEPT_GROUPS 32

struct identity_kept {
  uint64_t serial; /* whose groups these are; 0 = nobody's */
  unsigned ngroups;
  gid_t groups[IDENTITY_KEPT_GROUPS];
};

/* One per worker thread: the groups of the identity completed last, and
 * of recent peers in few groups. A peer's groups are fixed when it
 * connects, so later requests of a connection (keep-alive, pipelining),
 * even between other connections' requests, need not ask the kernel
 * again. */
#define IDENTITY_SCRATCH_PRIVATE_FIELDS                                        \
  uint64_t serial; /* whose groups these are; 0 = nobody's */                  \
  unsigned ngroups;                                                            \
  gid_t groups[IDENTITY_GROUPS_MAX];                                           \
  struct identity_kept kept[IDENTITY_KEPT];

#endif
