/* identity.h - who the client is, and acting as that client on one thread.
 *
 * The kernel is the only source of identity: the peer's pid, uid, gid and
 * supplementary groups as the kernel recorded them when it connected.
 * identity_enter()/identity_leave() switch the calling thread only (Linux:
 * fsuid, fsgid and the raw setgroups syscall; Windows: impersonation) and
 * are called by exactly one function, serve.c's open step. */
#ifndef PIPEFILED_IDENTITY_H
#define PIPEFILED_IDENTITY_H

#include <stddef.h>
#include <sys/types.h>

#define IDENTITY_GROUPS_MAX 65536 /* NGROUPS_MAX on Linux */

struct identity {
  pid_t pid;
  uid_t uid;
  gid_t gid;
  unsigned ngroups;    /* supplementary groups; 0 until identity_groups() */
  const gid_t *groups; /* owned by the caller (a per-worker buffer) */
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
 * thing on every worker thread. Returns 0 or -errno. */
int identity_thread_init(void);

/* 1 in privileged mode, after identity_init(). */
int identity_privileged(void);

/* The daemon's own uid, for start-up messages. */
uid_t identity_self_uid(void);

/* pid, uid and gid of the peer of a connected socket. Returns 0 or -errno;
 * *id is cleared on entry (groups empty). */
int identity_peer(int fd, struct identity *id);

/* Fill id->groups from the peer's supplementary groups into buf (max
 * entries). Returns 0 or -errno (-ERANGE if more than max). */
int identity_groups(int fd, struct identity *id, gid_t *buf, unsigned max);

/* Act as id on the calling thread. Returns 0, or -EPERM when the switch is
 * not possible or did not take (the thread is then back to the daemon's own
 * identity). In unprivileged mode it switches nothing and returns 0 only
 * when id can read everything the daemon can. Must be paired with
 * identity_leave() on success. */
int identity_enter(const struct identity *id);

/* Return the calling thread to the daemon's identity. Aborts the process if
 * that fails: a thread with a client's identity must never serve another. */
void identity_leave(void);

#endif
