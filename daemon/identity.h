/* identity.h - who the client is, and acting as that client on one thread.
 *
 * The kernel is the only source of identity: what it recorded of the peer
 * when it connected (Linux: pid, uid, gid and supplementary groups).
 * Logic files see a pid and ask this module everything else (is it root,
 * is it in this list, what does the log print), so the platform's fields
 * stay behind IDENTITY_PRIVATE_FIELDS (identity_os.h, picked by the build
 * from daemon/linux/ or daemon/win/). identity_enter()/identity_leave()
 * switch the calling thread only (Linux: fsuid, fsgid and the raw setgroups
 * syscall; Windows: impersonation) and are called by exactly one function,
 * serve.c's open step. Every call returns 0 or a negative UV_E* code unless
 * it says otherwise. */
#ifndef PIPEFILED_IDENTITY_H
#define PIPEFILED_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "identity_os.h"

struct idlist; /* idlist.h: user or group ids as configured */

struct identity {
  uv_pid_t pid; /* the peer's process: for messages and the access log */
  IDENTITY_PRIVATE_FIELDS
};

/* Per worker thread, so that completing an identity allocates nothing;
 * holds what identity_complete() learnt last. Zero it before first use. */
struct identity_scratch {
  IDENTITY_SCRATCH_PRIVATE_FIELDS
};

/* Probe what this process may do. Call once, before any worker starts.
 * Returns 1 when identity switching works (privileged mode), 0 when it is
 * unavailable (unprivileged mode: only clients whose identity covers the
 * daemon's are served), or a negative error when it is unsafe to run at all
 * (the switch is not per thread, or does not drop file capabilities); *why
 * says which in one sentence either way. */
int identity_init(const char **why);

/* Prepare the calling thread to serve: keep only the capabilities the
 * switch needs (none in unprivileged mode), so nothing else the daemon
 * holds travels with a file opened for a client. Per thread; call first
 * thing on every worker thread. */
int identity_thread_init(void);

/* 1 in privileged mode, after identity_init(). */
int identity_privileged(void);

/* The daemon's own uid, for start-up messages. */
unsigned identity_self_uid(void);

/* What the kernel recorded of the peer of connection fd (Linux: pid, uid
 * and gid). *id is cleared on entry; it is not complete yet (see
 * identity_complete). */
int identity_peer(uv_os_fd_t fd, struct identity *id);

/* Complete id, the peer of fd, once its request bytes have arrived and
 * before anything asks what it may do (Linux: its supplementary groups,
 * SO_PEERGROUPS, read into s and kept there for later requests of the same
 * connection; Windows: impersonating the pipe client, which needs it to
 * have written). id uses s until s completes another identity, so both
 * belong to one worker thread. On failure id is not to be served:
 * UV_EPERM when the client withheld its identity (Windows: it connected at
 * the Anonymous or Identification level), another code when the server
 * could not learn it. */
int identity_complete(struct identity *id, uv_os_fd_t fd,
                      struct identity_scratch *s);

/* Whether id is the platform's superuser (Linux: uid 0). */
int identity_is_root(const struct identity *id);

/* Whether id's user is in l. */
int identity_user_in(const struct identity *id, const struct idlist *l);

/* Whether one of id's groups (Linux: its gid or, once complete, one of its
 * supplementary groups) is in l. */
int identity_group_in(const struct identity *id, const struct idlist *l);

/* Whether one of id's groups is in l for refusing: as identity_group_in,
 * and also the groups a token holds for deny only (Windows), which grant
 * nothing but must still match deny_groups. Linux: identity_group_in. */
int identity_group_denied(const struct identity *id, const struct idlist *l);

/* Whether acting as peer id costs far more than serving a small file, as
 * far as identity_peer() could tell (Linux: more than IDENTITY_CHEAP_GROUPS
 * supplementary groups, which the kernel copies and sorts on every switch,
 * ~0.5 us a group; Windows: never, impersonation costs the same for every
 * token). For scheduling only (listener.c keeps such clients and the others
 * on different workers where it can); it grants or refuses nothing. */
int identity_costly(const struct identity *id);

/* identity_user_key() of a peer whose user is not known yet (Windows,
 * before the client wrote and its token could be read): counted in the
 * total only until its first request names the user. Never a real user's
 * key (Linux: uid -1 is no one's). */
#define IDENTITY_KEY_UNKNOWN UINT32_MAX

/* A number naming id's user, for counting per user (connection limits,
 * access-log fairness): equal for two identities of one user (Linux: the
 * uid). A platform whose principals are not numbers derives it from the
 * principal, and says so here. */
uint32_t identity_user_key(const struct identity *id);

/* The numbers the access log records of id (Linux: uid and gid; Windows:
 * the daemon's number for the user's SID, and gid always (unsigned)-1,
 * since a token's primary group is chosen by its holder and grants
 * nothing). UV_ENOENT with both -1 when no user is known yet. */
int identity_log_ids(const struct identity *id, unsigned *uid, unsigned *gid);

/* Name lookups, for the config (names -> ids) and the access log (uid ->
 * name). They may be slow (NSS over the network) and may run on any thread
 * at once. UV_ENOENT: no such name or id. */
int identity_user_id(const char *name, unsigned *uid);
int identity_group_id(const char *name, unsigned *gid);

/* The name of user uid into buf (len bytes, NUL included); UV_ENOBUFS when
 * it does not fit. buf is "" on any error. */
int identity_user_name(unsigned uid, char *buf, size_t len);

/* Act as id (complete) on the calling thread. Returns 0, or UV_EPERM when
 * the switch is not possible or did not take (the thread is then back to
 * the daemon's own identity). In unprivileged mode it
 * returns 0 only when id can read everything the daemon can (Linux:
 * switching nothing; Windows: impersonating the client's token, which
 * Windows allows for the daemon's own user). Must be paired with
 * identity_release() or identity_leave() on success. Linux: costs nothing
 * when the thread still holds exactly id's credentials (a per-thread
 * record, see identity_release). */
int identity_enter(const struct identity *id);

/* The work as id is done for now, but the thread may go on holding id's
 * credentials, so that the next identity_enter() for the same ones costs
 * nothing (Linux; Windows: identity_leave()). Until identity_leave() or
 * identity_settle(), the calling thread must open nothing, and resolve no
 * path, for the daemon itself: docs/design.md, "The identity a worker
 * holds". */
void identity_release(void);

/* Return the calling thread to the daemon's identity unless it is between
 * identity_enter() and identity_release() (opening a file as a client, which
 * must not finish as the daemon). For anything that is about to act for the
 * daemon on a thread that may hold a client's credentials: log.h's guard
 * (identity_init() installs it), and a worker before its loop waits or runs
 * its timers. Cheap when there is nothing to do. */
void identity_settle(void);

/* 1 when the calling thread may hold a client's credentials (kept by
 * identity_release(), or in doubt), which identity_settle() gives up. */
int identity_holding(void);

/* Return the calling thread to the daemon's identity. Aborts the process if
 * that fails: a thread with a client's identity must never serve another. */
void identity_leave(void);

/* The calling thread serves no more: back to the daemon's identity, and
 * what it kept for identity_enter() freed. */
void identity_thread_done(void);

#endif
