/* endpoint_linux.c - Unix domain listening socket for endpoint.h: made,
 * accepted on (uv_poll + accept4 in batches), removed.
 *
 * The socket's directory is walked and judged once (fsguard.h) and kept
 * open. The look at what is already there, the removal of a stale socket,
 * the check of what bind(2) made and the removal at exit all act on that
 * descriptor with AT_SYMLINK_NOFOLLOW, never through the path again, so no
 * symlinked parent or swapped entry can send them elsewhere. bind(2) and
 * the liveness probe do take the full path (the address clients see in
 * getpeername and ss(8) is the path, not /proc/self/fd/N/...): what bind
 * made is then verified relative to the descriptor.
 *
 * Under socket activation the service manager made the socket: it is
 * taken from the inherited descriptors (endpoint_adopt), checked to be a
 * listening Unix stream socket, and never removed. */
#include "endpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fsguard.h"
#include "log.h"

_Static_assert(ENDPOINT_PATH_MAX + 1 ==
                   sizeof(((struct sockaddr_un *)0)->sun_path),
               "ENDPOINT_PATH_MAX is sun_path less the NUL");

static int fill_addr(struct sockaddr_un *sa, const char *path) {
  memset(sa, 0, sizeof(*sa));
  sa->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(sa->sun_path))
    return -ENAMETOOLONG;
  strcpy(sa->sun_path, path);
  return 0;
}

/* Decide what to do with what is already at ep->name: 0 if nothing is or
 * it was a stale socket of ours that we removed, else an error explaining
 * why we must not start. Only a socket owned by the daemon's own uid can
 * be its leftover; anything else was put there by someone else (in a
 * sticky directory such as /tmp, anyone) and is never replaced. */
static int clear_stale(struct endpoint *ep, char *err, size_t errlen) {
  struct stat st, again;
  struct sockaddr_un sa;
  int fd = -1, rc = 0;

  if (fstatat(ep->dirfd, ep->name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT)
      return 0;
    rc = -errno;
    snprintf(err, errlen, "socket %s: %s", ep->path, strerror(-rc));
    return rc;
  }
  if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
    snprintf(err, errlen,
             "socket %s: a %s owned by uid %lu is already there, not a "
             "socket pipefiled left; not removing it",
             ep->path, fsguard_kind(st.st_mode), (unsigned long)st.st_uid);
    return -EEXIST;
  }
  fill_addr(&sa, ep->path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    rc = -errno;
    snprintf(err, errlen, "socket: %s", strerror(-rc));
    goto out;
  }
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
      snprintf(err, errlen,
               "socket %s is in use by pid %ld (uid %lu); not "
               "taking it over",
               ep->path, (long)cred.pid, (unsigned long)cred.uid);
    else
      snprintf(err, errlen, "socket %s is in use; not taking it over",
               ep->path);
    rc = -EADDRINUSE;
    goto out;
  }
  if (errno != ECONNREFUSED) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: cannot tell whether it is in use: %s",
             ep->path, strerror(-rc));
    goto out;
  }
  /* Nobody listens: a dead daemon's leftover. Look again just before
   * removing it, so that only the file judged above goes (with
   * strict_modes = no the directory may be writable by others). */
  if (fstatat(ep->dirfd, ep->name, &again, AT_SYMLINK_NOFOLLOW) != 0 ||
      again.st_dev != st.st_dev || again.st_ino != st.st_ino) {
    rc = -EAGAIN;
    snprintf(err, errlen,
             "socket %s: changed while being checked; not "
             "removing it",
             ep->path);
    goto out;
  }
  if (unlinkat(ep->dirfd, ep->name, 0) != 0 && errno != ENOENT) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: cannot remove stale socket: %s", ep->path,
             strerror(-rc));
  }
out:
  if (fd >= 0)
    close(fd);
  return rc;
}

/* Bind ep->fd to ep->path so that the file is born with its mode and,
 * where the kernel allows, its group; never a chmod by path afterwards.
 *
 * Mode: bind(2) makes the file 0777 & ~umask, so the umask is exactly
 * ~mode for the call. The umask is per process, but at this point of
 * start-up the only other thread is the access-log writer, which creates
 * no file until a signal asks it to reopen, and signals are handled only
 * once the loop runs; workers start later.
 *
 * Group: a new file takes the creating thread's fsgid, and setfsgid is per
 * thread, so this thread takes gid for the one call, checked and restored.
 * Where that does not give the group (no CAP_SETGID and gid only a
 * supplementary group; a set-group-id directory), check_bound() sets it.
 * Returns 0 or -errno from bind. */
static int bind_born_right(struct endpoint *ep, unsigned mode, gid_t gid) {
  struct sockaddr_un sa;
  gid_t before = (gid_t)setfsgid((gid_t)-1);
  mode_t old;
  int rc;

  fill_addr(&sa, ep->path);
  if (gid != (gid_t)-1 && gid != before)
    setfsgid(gid); /* confirmed by check_bound, which looks at the file */
  old = umask(~(mode_t)mode & 0777);
  rc = bind(ep->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
  umask(old);
  if ((gid_t)setfsgid((gid_t)-1) != before) {
    setfsgid(before);
    /* This thread goes on to create files (logs on reload); with another
     * group they would be given away. Switching back to our own gid
     * cannot be refused, so failing here means the kernel is lying. */
    if ((gid_t)setfsgid((gid_t)-1) != before)
      abort();
  }
  return rc;
}

/* What bind made, looked up in the judged directory without following: it
 * must be a socket of ours, else the path led somewhere else and we
 * refuse. Its mode is the one asked (a default ACL on the directory can
 * only narrow it: then a warning). Its identity is kept for endpoint_close.
 * If the group did not come out right at birth it is set now, on the entry
 * just verified and without following a link; nobody can connect before
 * listen(), so the moment with the daemon's group gives nothing away. */
static int check_bound(struct endpoint *ep, unsigned mode, gid_t gid, char *err,
                       size_t errlen) {
  struct stat st, again;
  int rc;

  if (fstatat(ep->dirfd, ep->name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: not there after bind: %s", ep->path,
             strerror(-rc));
    return rc;
  }
  if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
    snprintf(err, errlen,
             "socket %s: after bind a %s owned by uid %lu is there, not the "
             "socket pipefiled made; refusing",
             ep->path, fsguard_kind(st.st_mode), (unsigned long)st.st_uid);
    return -EIO;
  }
  /* Ours from here: endpoint_close removes it, also when we refuse. */
  ep->dev = st.st_dev;
  ep->ino = st.st_ino;
  ep->bound = 1;
  if ((st.st_mode & 07777) & ~(mode & 0777)) { /* cannot happen: umask */
    snprintf(err, errlen,
             "socket %s: created with mode %04o, wider than %04o; refusing",
             ep->path, (unsigned)(st.st_mode & 07777), mode & 0777);
    return -EPERM;
  }
  if ((st.st_mode & 07777) != (mode & 0777))
    log_warn("socket %s: created with mode %04o, not %04o: a default ACL on "
             "its directory narrows it",
             ep->path, (unsigned)(st.st_mode & 07777), mode & 0777);
  if (gid == (gid_t)-1 || st.st_gid == gid)
    return 0;
  if (fchownat(ep->dirfd, ep->name, (uid_t)-1, gid, AT_SYMLINK_NOFOLLOW) != 0) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: cannot set group %lu: %s", ep->path,
             (unsigned long)gid, strerror(-rc));
    return rc;
  }
  if (fstatat(ep->dirfd, ep->name, &again, AT_SYMLINK_NOFOLLOW) != 0 ||
      again.st_dev != st.st_dev || again.st_ino != st.st_ino ||
      again.st_gid != gid || again.st_mode != st.st_mode) {
    snprintf(err, errlen, "socket %s: changed while its group was set",
             ep->path);
    return -EIO;
  }
  return 0;
}

int endpoint_listen(struct endpoint *ep, const char *path,
                    const struct endpoint_opts *o, char *err, size_t errlen) {
  unsigned mode = o->mode;
  uv_gid_t gid = o->gid;
  int strict = o->strict, backlog = o->backlog;
  char dir[sizeof(ep->path)];
  struct sockaddr_un sa;
  const char *slash;
  int rc;

  memset(ep, 0, sizeof(*ep));
  ep->dirfd = -1;
  if (fill_addr(&sa, path) != 0) {
    snprintf(err, errlen, "socket %s: path longer than %zu bytes", path,
             sizeof(sa.sun_path) - 1);
    return -ENAMETOOLONG;
  }
  slash = strrchr(path, '/');
  if (path[0] != '/' || slash[1] == '\0') {
    snprintf(err, errlen, "socket %s: not an absolute file path", path);
    return -EINVAL;
  }
  memcpy(dir, path, (size_t)(slash - path));
  dir[slash - path] = '\0';
  /* Made when missing (one level, like a service manager's
   * RuntimeDirectory=), so the default /run/pipefiled/ works as is. */
  rc = fsguard_open_dir("socket directory", dir[0] ? dir : "/", strict, 1,
                        &ep->dirfd, err, errlen);
  if (rc != 0)
    return rc;
  if (err[0] != '\0') /* strict_modes = no: said, not refused */
    log_warn("%s", err);
  err[0] = '\0';
  strcpy(ep->path, path);
  strcpy(ep->name, slash + 1);

  rc = clear_stale(ep, err, errlen);
  if (rc != 0)
    goto fail;
  ep->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (ep->fd < 0) {
    rc = -errno;
    snprintf(err, errlen, "socket: %s", strerror(-rc));
    goto fail;
  }
  ep->open = 1;
  rc = bind_born_right(ep, mode, gid);
  if (rc != 0) {
    snprintf(err, errlen, "socket %s: bind: %s", path, strerror(-rc));
    goto fail;
  }
  rc = check_bound(ep, mode, gid, err, errlen);
  if (rc != 0)
    goto fail;
  if (listen(ep->fd, backlog) != 0) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: listen: %s", path, strerror(-rc));
    goto fail;
  }
  return 0;
fail:
  endpoint_close(ep);
  return rc;
}

/* ---- socket activation ------------------------------------------------ */

/* sd_listen_fds(3)'s first descriptor. */
#define LISTEN_FDS_START 3

/* A decimal number from the environment: 0 or -EINVAL. */
static int env_num(const char *s, unsigned long long *out) {
  char *end;

  if (s == NULL || s[0] < '0' || s[0] > '9')
    return -EINVAL;
  errno = 0;
  *out = strtoull(s, &end, 10);
  return errno != 0 || *end != '\0' ? -EINVAL : 0;
}

/* Whether fd is a listening AF_UNIX stream socket; its address (path,
 * "@name" for an abstract one) in ep->path. 0 or -ENOTSOCK with the reason
 * in err. */
static int check_inherited(struct endpoint *ep, int fd, char *err,
                           size_t errlen) {
  struct sockaddr_un sa;
  socklen_t len = sizeof(int), alen = sizeof(sa);
  int domain = 0, type = 0, acc = 0;
  struct stat st;

  if (fstat(fd, &st) != 0) {
    snprintf(err, errlen,
             "socket activation: inherited descriptor %d: %s; refusing to "
             "start",
             fd, strerror(errno));
    return -ENOTSOCK;
  }
  if (!S_ISSOCK(st.st_mode) ||
      getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
      domain != AF_UNIX ||
      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      type != SOCK_STREAM ||
      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 || !acc) {
    snprintf(err, errlen,
             "socket activation: inherited descriptor %d is not a listening "
             "Unix stream socket (a %s); refusing to start",
             fd,
             !S_ISSOCK(st.st_mode) ? fsguard_kind(st.st_mode)
             : domain != AF_UNIX   ? "socket of another family"
             : type != SOCK_STREAM ? "Unix socket of another type"
                                   : "Unix stream socket not listening");
    return -ENOTSOCK;
  }
  memset(&sa, 0, sizeof(sa));
  if (getsockname(fd, (struct sockaddr *)&sa, &alen) != 0 ||
      alen <= offsetof(struct sockaddr_un, sun_path))
    snprintf(ep->path, sizeof(ep->path), "(unnamed socket)");
  else if (sa.sun_path[0] == '\0')
    snprintf(ep->path, sizeof(ep->path), "@%.*s",
             (int)(alen - offsetof(struct sockaddr_un, sun_path) - 1),
             sa.sun_path + 1);
  else
    snprintf(ep->path, sizeof(ep->path), "%.*s", (int)sizeof(sa.sun_path),
             sa.sun_path);
  return 0;
}

/* Which of n passed sockets to take: the only one, or the one called name
 * in names (LISTEN_FDNAMES, ':'-separated; NULL: unnamed). Its index, or
 * -errno with the reason in err. */
static int pick_inherited(unsigned n, const char *names, const char *name,
                          char *err, size_t errlen) {
  unsigned count = 1, i = 0;
  int found = -1;

  if (names != NULL)
    for (const char *p = names; *p; p++)
      count += *p == ':';
  if (names != NULL && count != n) {
    snprintf(err, errlen,
             "socket activation: LISTEN_FDNAMES names %u sockets, "
             "LISTEN_FDS passes %u; refusing to start",
             count, n);
    return -EINVAL;
  }
  if (n == 1)
    return 0;
  for (const char *p = names; p != NULL && found < 0; i++) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == strlen(name) && memcmp(p, name, len) == 0)
      found = (int)i;
    p = end ? end + 1 : NULL;
  }
  if (found < 0)
    snprintf(err, errlen,
             "socket activation: %u sockets passed (names: %.200s), none "
             "called \"%s\"; refusing to start",
             n, names ? names : "none", name);
  return found < 0 ? -ENOENT : found;
}

int endpoint_adopt(struct endpoint *ep, const char *name, char *err,
                   size_t errlen) {
  const char *fds_s = getenv("LISTEN_FDS"), *pid_s = getenv("LISTEN_PID");
  const char *names_s = getenv("LISTEN_FDNAMES");
  char *names = NULL;
  unsigned long long n = 0, pid = 0;
  int rc = 0, pick = -1;

  memset(ep, 0, sizeof(*ep));
  ep->fd = -1;
  ep->dirfd = -1;
  if (errlen > 0)
    err[0] = '\0';
  if (fds_s == NULL)
    goto out;
  if (env_num(pid_s, &pid) != 0 || pid != (unsigned long long)getpid()) {
    /* Meant for another process (a shell or wrapper that started us
     * passed its environment on): not ours to take. */
    log_warn("socket activation: LISTEN_FDS is set for pid %s, not this "
             "process (%ld); binding the configured socket instead",
             pid_s ? pid_s : "(unset)", (long)getpid());
    goto out;
  }
  if (env_num(fds_s, &n) != 0 || n > ENDPOINT_LISTEN_FDS_MAX) {
    snprintf(err, errlen,
             "socket activation: LISTEN_FDS=%.40s is not a count of at most "
             "%d sockets; refusing to start",
             fds_s, ENDPOINT_LISTEN_FDS_MAX);
    rc = -EINVAL;
    n = 0;
    goto out;
  }
  if (n == 0)
    goto out;
  if (names_s != NULL && (names = strdup(names_s)) == NULL) {
    snprintf(err, errlen, "socket activation: out of memory");
    rc = -ENOMEM;
    goto out;
  }
  pick = pick_inherited((unsigned)n, names, name, err, errlen);
  if (pick < 0) {
    rc = pick;
    goto out;
  }
  rc = check_inherited(ep, LISTEN_FDS_START + pick, err, errlen);
  if (rc != 0)
    goto out;
  ep->fd = LISTEN_FDS_START + pick;
  /* The accept loop expects a non-blocking socket; and no child of ours
   * may keep it open. */
  if (fcntl(ep->fd, F_SETFL, fcntl(ep->fd, F_GETFL) | O_NONBLOCK) != 0 ||
      fcntl(ep->fd, F_SETFD, FD_CLOEXEC) != 0) {
    rc = -errno;
    snprintf(err, errlen, "socket activation: descriptor %d: %s", ep->fd,
             strerror(-rc));
    ep->fd = -1;
    goto out;
  }
  ep->open = 1;
  ep->inherited = 1;
  rc = 1;
out:
  /* Passed sockets not served are closed: they stay open in the manager,
   * which keeps listening on them. */
  for (unsigned long long i = 0; i < n; i++)
    if ((int)i != pick || rc != 1)
      close(LISTEN_FDS_START + (int)i);
  if (rc < 0) {
    memset(ep, 0, sizeof(*ep));
    ep->dirfd = -1;
  }
  free(names);
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDNAMES");
  return rc;
}

int endpoint_inherited(const struct endpoint *ep) { return ep->inherited; }

/* One connection, non-blocking and close-on-exec: its descriptor, or
 * -errno (-EAGAIN: none waiting). */
static int accept_one(struct endpoint *ep) {
  int fd;
  do
    fd = accept4(ep->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

static void on_accept(uv_poll_t *h, int status, int events);

static void on_resume(uv_timer_t *t) {
  struct endpoint *ep = t->data;
  uv_poll_start(&ep->poll, UV_READABLE, on_accept);
}

static void on_accept(uv_poll_t *h, int status, int events) {
  struct endpoint *ep = h->data;
  (void)events;

  if (status < 0) {
    log_error("listening socket: %s", uv_strerror(status));
    return;
  }
  for (int i = 0; i < ENDPOINT_ACCEPT_BATCH && ep->accepting; i++) {
    int fd = accept_one(ep);
    if (fd == -EAGAIN)
      return;
    if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
      /* Out of descriptors or memory: pending clients wait in the backlog
       * rather than the loop spinning on a ready socket it cannot take. */
      int64_t now = (int64_t)uv_now(h->loop);
      if (now - ep->last_emfile_log > 10000) {
        log_error("accept: %s; pausing accepts (max_connections is above "
                  "what the system allows?)",
                  strerror(-fd));
        ep->last_emfile_log = now;
      }
      uv_poll_stop(&ep->poll);
      uv_timer_start(&ep->pause, on_resume, ENDPOINT_EMFILE_PAUSE_MS, 0);
      return;
    }
    if (fd < 0)
      continue; /* ECONNABORTED and friends: that client is gone */
    ep->accept_cb(ep, fd);
  }
}

int endpoint_accept_start(struct endpoint *ep, uv_loop_t *loop,
                          endpoint_accept_cb cb) {
  int rc;

  if (!ep->open || ep->accepting)
    return UV_EINVAL;
  rc = uv_poll_init(loop, &ep->poll, ep->fd);
  if (rc != 0)
    return rc;
  uv_timer_init(loop, &ep->pause);
  ep->poll.data = ep;
  ep->pause.data = ep;
  ep->accept_cb = cb;
  ep->last_emfile_log = -100000;
  ep->accepting = 1;
  return uv_poll_start(&ep->poll, UV_READABLE, on_accept);
}

void endpoint_close(struct endpoint *ep) {
  struct stat st;

  if (ep->accepting) {
    /* uv_close on a poll handle takes fd out of epoll at once, so the
     * descriptor can be closed right after. */
    uv_close((uv_handle_t *)&ep->poll, NULL);
    uv_close((uv_handle_t *)&ep->pause, NULL);
    ep->accepting = 0;
  }
  if (ep->open)
    close(ep->fd);
  ep->open = 0;
  if (ep->path[0] == '\0')
    return; /* never listened, or closed already */
  /* An inherited socket has no dirfd and is never ours to remove. */
  if (ep->bound &&
      fstatat(ep->dirfd, ep->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      st.st_dev == ep->dev && st.st_ino == ep->ino)
    unlinkat(ep->dirfd, ep->name, 0);
  if (ep->dirfd >= 0)
    close(ep->dirfd);
  ep->dirfd = -1;
  ep->bound = 0;
  ep->inherited = 0;
  ep->path[0] = '\0';
  ep->name[0] = '\0';
}
