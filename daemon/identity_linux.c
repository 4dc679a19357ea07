/* identity_linux.c - peer credentials and per-thread identity on Linux.
 *
 * Credentials are per thread in the kernel, but glibc's setuid/setgid/
 * setgroups change every thread of the process (nptl(7)), which is wrong for
 * a threaded server. So only the per-thread primitives are used here:
 * setfsuid/setfsgid (checked by the kernel at open) and the raw
 * SYS_setgroups syscall. setfsuid/setfsgid report failure badly (they return
 * the previous value either way), so every switch is confirmed by reading it
 * back. Order on entry: gid, groups, then uid; on leave the reverse, so the
 * file capabilities dropped by a non-zero fsuid come back first.
 *
 * The switch is a dozen system calls, half the cost of a small request, so
 * each thread remembers what it holds (struct held): identity_release()
 * keeps a client's credentials on the thread, and the next
 * identity_enter() for exactly the same uid, gid and groups switches
 * nothing; one for other credentials switches straight to them. What a
 * thread holds is trusted only after every part of a switch was read back;
 * a switch that fails or cannot be recorded leaves it unknown, and the next
 * call switches everything again. docs/design.md says why holding a
 * client's credentials between requests is safe. */
#include "identity.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "thread.h"

#define SELF_GROUPS_MAX 1024
#define LOOKUP_BUF_MAX (1024 * 1024) /* getgrnam_r buffer for huge groups */

static int privileged;
static uid_t self_uid;
static gid_t self_gid;
static gid_t self_groups[SELF_GROUPS_MAX];
static unsigned self_ngroups;

/* What the calling thread's file-system credentials are, as far as this
 * file has verified. Zero (HELD_UNKNOWN) on a thread that never switched:
 * its first identity_leave() makes sure. */
enum { HELD_UNKNOWN, HELD_SELF, HELD_CLIENT };
struct held {
  int state;
  uid_t uid; /* HELD_CLIENT: exactly these, read back */
  gid_t gid;
  unsigned ngroups;
  gid_t *groups; /* malloc'd, room for cap; grows, kept for the thread */
  unsigned cap;
  int inside;   /* between identity_enter() and identity_release() */
  int aborting; /* identity_leave() failed: its own log line must not
                   come back into it (log.h's guard) */
};
static __thread struct held held;

static int raw_setgroups(size_t n, const gid_t *g) {
  return (int)syscall(SYS_setgroups, n, g);
}

static int raw_getgroups(int n, gid_t *g) {
  return (int)syscall(SYS_getgroups, n, g);
}

/* The calling thread's effective capability set (low 64 bits). */
static int caps_effective(uint64_t *eff) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof(data));
  if (syscall(SYS_capget, &hdr, data) != 0)
    return -errno;
  *eff = (uint64_t)data[0].effective | ((uint64_t)data[1].effective << 32);
  return 0;
}

#define CAP_BIT(c) ((uint64_t)1 << (c))

static int set_fsgid_checked(gid_t gid) {
  setfsgid(gid);
  return (gid_t)setfsgid((gid_t)-1) == gid ? 0 : -EPERM;
}

static int set_fsuid_checked(uid_t uid) {
  setfsuid(uid);
  return (uid_t)setfsuid((uid_t)-1) == uid ? 0 : -EPERM;
}

/* Set the thread's groups and read them back. */
static int set_groups_checked(unsigned n, const gid_t *g) {
  static __thread gid_t check[IDENTITY_GROUPS_MAX];
  if (raw_setgroups(n, g) != 0)
    return -errno;
  int got = raw_getgroups(IDENTITY_GROUPS_MAX, check);
  if (got < 0 || (unsigned)got != n)
    return -EPERM;
  if (n > 0 && memcmp(check, g, n * sizeof(gid_t)) != 0)
    return -EPERM;
  return 0;
}

/* Capabilities a thread that opens files for clients may hold: setting
 * fsuid/fsgid/groups, and for a root daemon the file capabilities, which
 * the kernel removes while fsuid is not 0 and restores for root clients.
 * Everything else (CAP_SYS_ADMIN, CAP_SYS_PTRACE, ...) would travel with
 * the opened file (f_cred) and let kernel code grant a client the daemon's
 * privilege, so serving threads drop it. */
#define CAPS_SWITCH (CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETGID))
#define CAPS_FS                                                                \
  (CAP_BIT(CAP_CHOWN) | CAP_BIT(CAP_DAC_OVERRIDE) |                            \
   CAP_BIT(CAP_DAC_READ_SEARCH) | CAP_BIT(CAP_FOWNER) | CAP_BIT(CAP_FSETID) |  \
   CAP_BIT(CAP_LINUX_IMMUTABLE) | CAP_BIT(CAP_MAC_OVERRIDE))

int identity_thread_init(void) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  uint64_t keep = 0, perm;

  if (privileged)
    keep = CAPS_SWITCH | (self_uid == 0 ? CAPS_FS : 0);
  memset(data, 0, sizeof(data));
  if (syscall(SYS_capget, &hdr, data) != 0)
    return -errno;
  perm = ((uint64_t)data[0].permitted | ((uint64_t)data[1].permitted << 32)) &
         keep;
  /* capset with pid 0 changes the calling thread only. */
  data[0].permitted = data[0].effective = (uint32_t)perm;
  data[1].permitted = data[1].effective = (uint32_t)(perm >> 32);
  data[0].inheritable = data[1].inheritable = 0;
  if (syscall(SYS_capset, &hdr, data) != 0)
    return -errno;
  return 0;
}

struct probe {
  gid_t gid; /* a group that is not ours */
  uid_t uid; /* a user that is not us */
  int rc;
  const char *why;
};

/* Runs on a thread of its own, set up exactly like a worker: everything a
 * worker relies on is tried here before the first client arrives. */
static void probe_thread(void *arg) {
  struct probe *p = arg;
  uint64_t eff = ~(uint64_t)0;

  p->rc = -EPERM;
  if (identity_thread_init() != 0) {
    p->why = "cannot drop capabilities on a serving thread";
    return;
  }
  if (!privileged) {
    if (caps_effective(&eff) != 0 || eff != 0) {
      p->why = "a serving thread keeps capabilities";
      return;
    }
    p->rc = 0;
    return;
  }
  if (set_groups_checked(1, &p->gid) != 0 || set_fsgid_checked(p->gid) != 0 ||
      set_fsuid_checked(p->uid) != 0) {
    p->why = "setfsuid/setfsgid/setgroups did not take although the "
             "capabilities are present";
    goto leave;
  }
  /* Acting as a client must leave nothing that bypasses its permissions. */
  if (caps_effective(&eff) != 0 || (eff & ~CAPS_SWITCH) != 0) {
    p->why = "capabilities beyond CAP_SETUID/CAP_SETGID survive the fsuid "
             "switch (e.g. SECBIT_NO_SETUID_FIXUP, or file capabilities held "
             "by a non-root daemon), so clients could read more than they may";
    goto leave;
  }
  p->rc = 0;
leave:
  identity_leave();
}

int identity_init(const char **why) {
  uint64_t eff = 0;
  gid_t mine[SELF_GROUPS_MAX];
  uv_thread_t t;
  int n;

  /* A worker may hold a client's credentials between requests
   * (identity_release): every line any thread logs goes out as the daemon
   * (a syslog line is sent to a path). */
  log_set_guard(identity_settle);
  self_uid = geteuid();
  self_gid = getegid();
  n = raw_getgroups(SELF_GROUPS_MAX, self_groups);
  if (n < 0) {
    *why = "cannot read the daemon's own groups";
    return -errno;
  }
  self_ngroups = (unsigned)n;

  privileged = caps_effective(&eff) == 0 && (eff & CAPS_SWITCH) == CAPS_SWITCH;

  struct probe p = {.uid = self_uid == 65534 ? 65533 : 65534,
                    .gid = self_gid == 65534 ? 65533 : 65534};
  /* Started like a worker (thread.h: every signal blocked). */
  if (thread_start(&t, "pf-idprobe", probe_thread, &p) != 0) {
    *why = "cannot start the identity probe thread";
    return -EAGAIN;
  }
  uv_thread_join(&t);
  if (p.rc != 0) {
    privileged = 0;
    *why = p.why;
    return p.rc;
  }
  /* The probe changed its own groups; ours must not have moved. */
  n = raw_getgroups(SELF_GROUPS_MAX, mine);
  if (n < 0 || (unsigned)n != self_ngroups ||
      memcmp(mine, self_groups, self_ngroups * sizeof(gid_t)) != 0) {
    privileged = 0;
    *why = "SYS_setgroups is not per thread here; switching identity would "
           "change every thread";
    return -EPERM;
  }
  if (!privileged) {
    *why = "unprivileged: no CAP_SETUID and CAP_SETGID, so only clients with "
           "the daemon's own uid, gid and groups are served";
    return 0;
  }
  *why = "switching identity per request (setfsuid/setfsgid/setgroups on the "
         "worker thread)";
  return 1;
}

int identity_privileged(void) { return privileged; }

unsigned identity_self_uid(void) { return (unsigned)self_uid; }

/* Tells one identity_peer() result from every other, so a scratch space
 * never lends a peer the groups of an earlier one (an identity may live at
 * the address another one had). */
static atomic_uint_fast64_t peer_serial;

int identity_peer(uv_os_fd_t fd, struct identity *id) {
  struct ucred cred;
  socklen_t len = sizeof(cred);

  memset(id, 0, sizeof(*id));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return -errno;
  if (len != sizeof(cred))
    return -EPROTO;
  id->pid = cred.pid;
  id->uid = cred.uid;
  id->gid = cred.gid;
  id->serial = atomic_fetch_add(&peer_serial, 1) + 1;
  /* Only the count, for identity_costly(): asked with no room, the kernel
   * answers ERANGE and the size the groups need, copying none. The groups
   * themselves are read by the worker (identity_complete). A failure here
   * only leaves the client counted cheap. */
  if (privileged) {
    gid_t none;
    socklen_t glen = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, &none, &glen) == 0 ||
        errno == ERANGE)
      id->peer_ngroups = (unsigned)(glen / sizeof(gid_t));
  }
  return 0;
}

int identity_costly(const struct identity *id) {
  return id->peer_ngroups > IDENTITY_CHEAP_GROUPS;
}

int identity_complete(struct identity *id, uv_os_fd_t fd,
                      struct identity_scratch *s) {
  socklen_t len = (socklen_t)sizeof(s->groups);
  struct identity_kept *kept = &s->kept[id->serial % IDENTITY_KEPT];

  id->ngroups = 0;
  id->groups = s->groups;
  /* A peer's groups are fixed when it connects: a later request of the
   * same connection finds them here without a system call, in the last
   * groups read or, for a peer in few groups, in its slot. A serial is
   * never reused, so a slot never lends one peer another's groups. */
  if (id->serial != 0 && s->serial == id->serial) {
    id->ngroups = s->ngroups;
    return 0;
  }
  if (id->serial != 0 && kept->serial == id->serial) {
    id->groups = kept->groups;
    id->ngroups = kept->ngroups;
    return 0;
  }
  s->serial = 0;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, s->groups, &len) != 0)
    return errno == EPERM ? -EACCES : -errno; /* EPERM means "withheld" */
  s->ngroups = (unsigned)(len / sizeof(gid_t));
  s->serial = id->serial;
  id->ngroups = s->ngroups;
  if (id->serial != 0 && s->ngroups <= IDENTITY_KEPT_GROUPS) {
    kept->serial = id->serial;
    kept->ngroups = s->ngroups;
    memcpy(kept->groups, s->groups, s->ngroups * sizeof(gid_t));
  }
  return 0;
}

int identity_is_root(const struct identity *id) { return id->uid == 0; }

int identity_user_in(const struct identity *id, const struct idlist *l) {
  return idlist_has(l, (unsigned)id->uid);
}

int identity_group_denied(const struct identity *id, const struct idlist *l) {
  return identity_group_in(id, l); /* no deny-only groups here */
}

int identity_group_in(const struct identity *id, const struct idlist *l) {
  if (idlist_has(l, (unsigned)id->gid))
    return 1;
  for (unsigned i = 0; i < id->ngroups; i++)
    if (idlist_has(l, (unsigned)id->groups[i]))
      return 1;
  return 0;
}

uint32_t identity_user_key(const struct identity *id) {
  return (uint32_t)id->uid;
}

int identity_log_ids(const struct identity *id, unsigned *uid, unsigned *gid) {
  *uid = (unsigned)id->uid;
  *gid = (unsigned)id->gid;
  return 0;
}

/* The reentrant passwd/group lookups, with a buffer that grows while they
 * answer ERANGE (a group with many members needs more than sysconf says).
 * kind: 'u' name -> uid, 'g' name -> gid, 'n' uid -> name. Returns 0 or
 * -errno (-ENOENT: no such entry). */
static int lookup(int kind, const char *name, unsigned *id, char *out,
                  size_t outlen) {
  long hint =
      sysconf(kind == 'g' ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
  size_t size = hint > 0 ? (size_t)hint : 1024;
  char *buf = NULL;
  int r;

  for (;;) {
    char *bigger = realloc(buf, size);
    if (bigger == NULL) {
      r = -ENOMEM;
      goto out;
    }
    buf = bigger;
    if (kind == 'g') {
      struct group gr, *res = NULL;
      r = getgrnam_r(name, &gr, buf, size, &res);
      if (r == 0 && res != NULL)
        *id = (unsigned)res->gr_gid;
      else if (r == 0)
        r = ENOENT;
    } else {
      struct passwd pw, *res = NULL;
      if (kind == 'u')
        r = getpwnam_r(name, &pw, buf, size, &res);
      else
        r = getpwuid_r((uid_t)*id, &pw, buf, size, &res);
      if (r == 0 && res == NULL)
        r = ENOENT;
      else if (r == 0 && kind == 'u')
        *id = (unsigned)res->pw_uid;
      else if (r == 0 &&
               snprintf(out, outlen, "%s", res->pw_name) >= (int)outlen)
        r = ENOBUFS;
    }
    if (r != ERANGE || size >= LOOKUP_BUF_MAX)
      break;
    size *= 2;
  }
  /* getpwnam_r(3): these also mean "not found" on some NSS back ends. */
  if (r == ESRCH || r == EBADF || r == EPERM)
    r = ENOENT;
  r = -r;
out:
  free(buf);
  return r;
}

int identity_user_id(const char *name, unsigned *uid) {
  return lookup('u', name, uid, NULL, 0);
}

int identity_group_id(const char *name, unsigned *gid) {
  return lookup('g', name, gid, NULL, 0);
}

int identity_user_name(unsigned uid, char *buf, size_t len) {
  int r;

  if (len == 0)
    return -ENOBUFS;
  r = lookup('n', NULL, &uid, buf, len);
  if (r != 0)
    buf[0] = '\0';
  return r;
}

/* Unprivileged: serving as ourselves is safe only if the client could read
 * everything we can, i.e. it has our uid, gid and at least our groups. */
static int covers_self(const struct identity *id) {
  if (id->uid != self_uid || id->gid != self_gid)
    return 0;
  for (unsigned i = 0; i < self_ngroups; i++) {
    unsigned j = 0;
    while (j < id->ngroups && id->groups[j] != self_groups[i])
      j++;
    if (j == id->ngroups && self_groups[i] != id->gid)
      return 0;
  }
  return 1;
}

/* Whether the thread holds exactly id's credentials. */
static int holds(const struct identity *id) {
  return held.state == HELD_CLIENT && held.uid == id->uid &&
         held.gid == id->gid && held.ngroups == id->ngroups &&
         (id->ngroups == 0 ||
          memcmp(held.groups, id->groups, id->ngroups * sizeof(gid_t)) == 0);
}

/* Remember that the thread now holds id's credentials (just read back).
 * Without room to remember them the thread's state is unknown: the next
 * identity_enter() switches everything. */
static void remember(const struct identity *id) {
  if (id->ngroups > held.cap) {
    gid_t *bigger = realloc(held.groups, id->ngroups * sizeof(gid_t));
    if (bigger == NULL) {
      held.state = HELD_UNKNOWN;
      return;
    }
    held.groups = bigger;
    held.cap = id->ngroups;
  }
  if (id->ngroups > 0)
    memcpy(held.groups, id->groups, id->ngroups * sizeof(gid_t));
  held.ngroups = id->ngroups;
  held.uid = id->uid;
  held.gid = id->gid;
  held.state = HELD_CLIENT;
}

int identity_enter(const struct identity *id) {
  if (!privileged)
    return covers_self(id) ? 0 : -EPERM;
  if (holds(id)) {
    held.inside = 1;
    return 0;
  }
  /* From here until remember() the thread's credentials are in flux. */
  held.state = HELD_UNKNOWN;
  /* The client's groups replace ours entirely: none of the daemon's groups
   * (root's gid 0 among them) may lend the client access. From another
   * client's credentials the switch goes straight to these: CAP_SETUID and
   * CAP_SETGID stay effective whatever the fsuid (only the file
   * capabilities follow it). */
  if (set_fsgid_checked(id->gid) != 0 ||
      set_groups_checked(id->ngroups, id->groups) != 0 ||
      set_fsuid_checked(id->uid) != 0) {
    identity_leave();
    return -EPERM;
  }
  remember(id);
  held.inside = 1;
  return 0;
}

void identity_release(void) {
  /* The credentials stay (see the top of this file); the caller opens
   * nothing for the daemon until identity_leave() or identity_settle(). */
  held.inside = 0;
}

int identity_holding(void) { return privileged && held.state != HELD_SELF; }

void identity_settle(void) {
  /* Inside a window the thread is opening a file as the client: returning
   * to the daemon's identity half-way would finish that open as the
   * daemon. */
  if (!held.inside)
    identity_leave();
}

void identity_leave(void) {
  held.inside = 0;
  if (!privileged || held.state == HELD_SELF || held.aborting)
    return;
  held.state = HELD_UNKNOWN;
  if (set_fsuid_checked(self_uid) != 0 ||
      set_groups_checked(self_ngroups, self_groups) != 0 ||
      set_fsgid_checked(self_gid) != 0) {
    held.aborting = 1;
    log_error("cannot return a worker thread to the daemon's identity; "
              "aborting rather than serve with a client's identity");
    abort();
  }
  held.state = HELD_SELF;
}

void identity_thread_done(void) {
  identity_leave();
  free(held.groups);
  held.groups = NULL;
  held.cap = 0;
}
