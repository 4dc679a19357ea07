/* endpoint_linux.c - Unix domain listening socket for endpoint.h. */
#include "endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int fill_addr(struct sockaddr_un *sa, const char *path) {
  memset(sa, 0, sizeof(*sa));
  sa->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(sa->sun_path))
    return -ENAMETOOLONG;
  strcpy(sa->sun_path, path);
  return 0;
}

/* Create the socket's directory (one level, like a service manager's
 * RuntimeDirectory=), so the default /run/pipefiled/ works out of the box.
 * Called under umask(0777); the mode is set explicitly. */
static int make_parent(const char *path) {
  char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
  char *slash;

  snprintf(dir, sizeof(dir), "%s", path);
  slash = strrchr(dir, '/');
  if (slash == NULL || slash == dir)
    return -ENOENT;
  *slash = '\0';
  if (mkdir(dir, 0755) != 0)
    return -errno;
  if (chmod(dir, 0755) != 0)
    return -errno;
  return 0;
}

/* Decide what to do with something already at path: 0 if it is gone or a
 * stale socket we removed, else an error explaining why we must not start. */
static int clear_stale(const char *path, char *err, size_t errlen) {
  struct stat st;
  struct sockaddr_un sa;
  int fd = -1, rc = 0;

  if (lstat(path, &st) != 0) {
    if (errno == ENOENT)
      return 0;
    rc = -errno;
    snprintf(err, errlen, "socket %s: %s", path, strerror(errno));
    return rc;
  }
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(err, errlen,
             "socket %s: exists and is not a socket; not removing it", path);
    return -EEXIST;
  }
  fill_addr(&sa, path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    rc = -errno;
    snprintf(err, errlen, "socket: %s", strerror(errno));
    goto out;
  }
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
      snprintf(err, errlen,
               "socket %s is in use by pid %ld (uid %lu); not "
               "taking it over",
               path, (long)cred.pid, (unsigned long)cred.uid);
    else
      snprintf(err, errlen, "socket %s is in use; not taking it over", path);
    rc = -EADDRINUSE;
    goto out;
  }
  if (errno != ECONNREFUSED) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: cannot tell whether it is in use: %s",
             path, strerror(errno));
    goto out;
  }
  /* Nobody listens: a dead daemon's leftover. */
  if (unlink(path) != 0 && errno != ENOENT) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: cannot remove stale socket: %s", path,
             strerror(errno));
  }
out:
  if (fd >= 0)
    close(fd);
  return rc;
}

int endpoint_listen(struct endpoint *ep, const char *path, unsigned mode,
                    gid_t gid, int backlog, char *err, size_t errlen) {
  struct sockaddr_un sa;
  struct stat st;
  int rc;

  memset(ep, 0, sizeof(*ep));
  ep->fd = -1;
  if (fill_addr(&sa, path) != 0) {
    snprintf(err, errlen, "socket %s: path longer than %zu bytes", path,
             sizeof(sa.sun_path) - 1);
    return -ENAMETOOLONG;
  }
  rc = clear_stale(path, err, errlen);
  if (rc != 0)
    return rc;

  ep->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (ep->fd < 0) {
    rc = -errno;
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return rc;
  }
  /* No window: the file is born with no permissions at all, and nobody can
   * connect before listen() anyway; mode and group are set before that. */
  mode_t old = umask(0777);
  rc = bind(ep->fd, (struct sockaddr *)&sa, sizeof(sa));
  if (rc != 0 && errno == ENOENT && make_parent(path) == 0)
    rc = bind(ep->fd, (struct sockaddr *)&sa, sizeof(sa));
  umask(old);
  if (rc != 0) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: bind: %s", path, strerror(errno));
    goto fail;
  }
  strcpy(ep->path, path);
  if (lstat(path, &st) != 0) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: %s", path, strerror(errno));
    goto fail;
  }
  ep->dev = st.st_dev;
  ep->ino = st.st_ino;
  if (gid != (gid_t)-1 && lchown(path, (uid_t)-1, gid) != 0) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: cannot set group %lu: %s", path,
             (unsigned long)gid, strerror(errno));
    goto fail;
  }
  if (chmod(path, mode & 0777) != 0) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: cannot set mode %04o: %s", path, mode,
             strerror(errno));
    goto fail;
  }
  if (listen(ep->fd, backlog) != 0) {
    rc = -errno;
    snprintf(err, errlen, "socket %s: listen: %s", path, strerror(errno));
    goto fail;
  }
  return 0;
fail:
  endpoint_close(ep);
  return rc;
}

int endpoint_accept(struct endpoint *ep) {
  int fd;
  do
    fd = accept4(ep->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

void endpoint_close(struct endpoint *ep) {
  struct stat st;
  if (ep->fd >= 0)
    close(ep->fd);
  ep->fd = -1;
  if (ep->path[0] && lstat(ep->path, &st) == 0 && st.st_dev == ep->dev &&
      st.st_ino == ep->ino)
    unlink(ep->path);
  ep->path[0] = '\0';
}
