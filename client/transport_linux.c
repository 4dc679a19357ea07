/* transport_linux.c - the client library over blocking Unix stream sockets
 * (transport.h): connect, read and write, close, and who serves the socket
 * (SO_PEERCRED and the owner of the socket's directory). */
#include "pipefile.h"
#include "transport.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

/* pipefile.h names these without <sys/socket.h> and <sys/types.h>. */
_Static_assert(PIPEFILE_SOCKET_PATH_MAX ==
                   sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
               "PIPEFILE_SOCKET_PATH_MAX must be sun_path less its NUL");
_Static_assert(sizeof(uid_t) == sizeof(pipefile_uid_t) && (uid_t)-1 > 0,
               "pipefile_uid_t must be uid_t: unsigned 32 bits");

/* Wait until fd is ready for events, retrying on EINTR. Returns 0 or
 * -errno. */
static int wait_fd(int fd, short events) {
  struct pollfd p = {.fd = fd, .events = events};
  for (;;) {
    int n = poll(&p, 1, -1);
    if (n >= 0)
      return 0;
    if (errno != EINTR)
      return -errno;
  }
}

int transport_recv(int fd, void *buf, size_t n, size_t *got) {
  *got = 0;
  for (;;) {
    ssize_t r = recv(fd, buf, n, 0);
    if (r >= 0) {
      *got = (size_t)r;
      return 0;
    }
    if (errno != EINTR)
      return -errno;
  }
}

/* MSG_NOSIGNAL: a server that has gone away must cost an error code, not
 * the caller's process. */
int transport_send(int fd, const void *buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    done += (size_t)r;
  }
  return 0;
}

/* out_fd may be a file, a pipe or a terminal, and may have been left
 * non-blocking by whoever created it (a shell's stdout sometimes is). */
int transport_write_out(int fd, const void *buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = write(fd, (const char *)buf + done, n - done);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int w = wait_fd(fd, POLLOUT);
        if (w < 0)
          return w;
        continue;
      }
      return -errno;
    }
    done += (size_t)r;
  }
  return 0;
}

const char *transport_strerror(int err) {
  if (err == PIPEFILE_EUNTRUSTED)
    return "the socket is served by a uid that is neither root, the owner of "
           "its directory, nor this user (another user's socket?)";
  return strerror(-err);
}

void pipefile_close(int fd) {
  if (fd >= 0)
    close(fd);
}

/* Connect to sock_path; no check of who serves it. */
static int connect_path(const char *sock_path, int *fd) {
  struct sockaddr_un sa;
  size_t len = strlen(sock_path);
  int s = -1;
  int r;

  *fd = -1;
  if (len == 0)
    return -EINVAL;
  /* sun_path holds the path and its NUL; a longer path would be silently
   * cut by some systems and reach a different socket. */
  if (len > PIPEFILE_SOCKET_PATH_MAX)
    return -ENAMETOOLONG;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, sock_path, len + 1);

  s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    r = -errno;
    goto out;
  }
  if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    if (errno != EINTR) {
      r = -errno;
      goto out;
    }
    /* An interrupted connect goes on in the background (connect(2)); calling
     * it again would fail with EALREADY. Wait for it and take its result. */
    int err = 0;
    socklen_t elen = sizeof(err);
    r = wait_fd(s, POLLOUT);
    if (r < 0)
      goto out;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) {
      r = -errno;
      goto out;
    }
    if (err != 0) {
      r = -err;
      goto out;
    }
  }
  *fd = s;
  s = -1;
  r = 0;
out:
  if (s >= 0)
    close(s);
  return r;
}

/* The uid owning the directory sock_path's name is in, by lstat(): whoever
 * owns it decides what is created there. Returns 0 or -errno. */
static int dir_owner_of(const char *sock_path, uid_t *owner) {
  char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
  const char *slash = strrchr(sock_path, '/');
  size_t len;
  struct stat st;

  *owner = (uid_t)-1;
  if (slash == NULL) {
    strcpy(dir, ".");
  } else {
    /* "/s" lives in "/"; the caller checked that the path fits. */
    len = slash == sock_path ? 1 : (size_t)(slash - sock_path);
    memcpy(dir, sock_path, len);
    dir[len] = '\0';
  }
  if (lstat(dir, &st) < 0)
    return -errno;
  *owner = st.st_uid;
  return 0;
}

int pipefile_connect_server(const char *sock_path, int64_t expect_uid, int *fd,
                            pipefile_uid_t *server_uid) {
  struct ucred cred;
  socklen_t clen = sizeof(cred);
  uid_t owner = (uid_t)-1;
  int s = -1;
  int r;

  *fd = -1;
  if (server_uid)
    *server_uid = (uid_t)-1;
  r = connect_path(sock_path, &s);
  if (r < 0)
    goto out;
  /* The server's credentials as of its listen(): the kernel's word, which
   * the server cannot forge, unlike anything it could send us. */
  if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
    r = -errno;
    goto out;
  }
  if (server_uid)
    *server_uid = cred.uid;
  /* The directory is looked at only when root or ourselves did not settle
   * it, so a directory we cannot lstat costs nothing in the common cases. */
  if (expect_uid < 0 && cred.uid != 0 && cred.uid != getuid()) {
    r = dir_owner_of(sock_path, &owner);
    if (r < 0)
      goto out;
  }
  /* Fail closed: nothing is sent to a server the rule does not accept; the
   * request alone would tell an impostor who asks for what. */
  if (!pipefile_server_trusted(cred.uid, owner, getuid(), expect_uid)) {
    r = PIPEFILE_EUNTRUSTED;
    goto out;
  }
  *fd = s;
  s = -1;
  r = 0;
out:
  if (s >= 0)
    close(s);
  return r;
}

/* A uid as server_user names it: decimal digits only (no sign, space or
 * base prefix; strtoul would take "-1"), below (uid_t)-1, which means "no
 * uid" to the kernel. Returns 0, -EINVAL or -ERANGE. */
static int parse_uid(const char *s, int64_t *uid) {
  uint64_t n = 0;
  *uid = PIPEFILE_SERVER_UID_DEFAULT;
  if (*s == '\0')
    return -EINVAL;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return -EINVAL;
    n = n * 10 + (unsigned)(*s - '0');
    if (n >= (uint64_t)(uid_t)-1)
      return -ERANGE;
  }
  *uid = (int64_t)n;
  return 0;
}

/* A server as server_user names it: a uid in decimal (parse_uid), or else
 * a user name, looked up in the user database (getpwnam_r: NSS, so LDAP
 * and the like too). Digits are always a uid, as chown(1) takes them, so
 * a name cannot shadow a number. Returns 0, -EINVAL (no such user, or the
 * database cannot be read: fail closed, never the default rule) or
 * -ERANGE. */
static int parse_server_user(const char *s, int64_t *uid) {
  struct passwd pw, *found = NULL;
  char buf[4096];
  int r;

  *uid = PIPEFILE_SERVER_UID_DEFAULT;
  if (*s >= '0' && *s <= '9')
    return parse_uid(s, uid);
  if (*s == '\0')
    return -EINVAL;
  r = getpwnam_r(s, &pw, buf, sizeof(buf), &found);
  if (r != 0 || found == NULL || pw.pw_uid == (uid_t)-1)
    return -EINVAL;
  *uid = (int64_t)pw.pw_uid;
  return 0;
}

int pipefile_server_user_check(const char *server_user, char *canon,
                               size_t canon_size) {
  int64_t uid;
  int r;

  if (canon && canon_size)
    canon[0] = '\0';
  if (server_user == NULL || *server_user == '\0')
    return -EINVAL;
  r = parse_server_user(server_user, &uid);
  if (r == 0 && canon && canon_size)
    snprintf(canon, canon_size, "uid %" PRId64, uid);
  return r;
}

int pipefile_connect_as(const char *sock_path, const char *server_user, int *fd,
                        char *server, size_t server_size) {
  int64_t expect = PIPEFILE_SERVER_UID_DEFAULT;
  uid_t who = (uid_t)-1;
  int r;

  *fd = -1;
  if (server && server_size)
    server[0] = '\0';
  if (server_user && *server_user) {
    r = parse_server_user(server_user, &expect);
    if (r < 0)
      return r;
  }
  r = pipefile_connect_server(sock_path, expect, fd, &who);
  if (who != (uid_t)-1 && server && server_size)
    snprintf(server, server_size, "uid %lu", (unsigned long)who);
  return r;
}
