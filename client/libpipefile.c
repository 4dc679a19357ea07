/* libpipefile.c - the PFP/1 client library over blocking POSIX sockets; see
 * pipefile.h. The byte layout is common/proto.c's, never repeated here. */
#include "pipefile.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

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

/* Read up to n bytes into buf, stopping early only at end of stream.
 * Returns the bytes read (< n means the peer closed), or -errno. */
static ssize_t recv_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
    if (r == 0)
      break;
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    got += (size_t)r;
  }
  return (ssize_t)got;
}

/* Write all n bytes of buf to the socket. MSG_NOSIGNAL: a server that has
 * gone away must cost an error code, not the caller's process. */
static int send_all(int fd, const void *buf, size_t n) {
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

/* Write all n bytes of buf to the caller's out_fd, which may be a file, a
 * pipe or a terminal, and may have been left non-blocking by whoever
 * created it (a shell's stdout sometimes is). Returns 0 or -errno. */
static int write_all(int fd, const void *buf, size_t n) {
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

int pipefile_server_trusted(uid_t server_uid, uid_t dir_owner, uid_t self,
                            int64_t expect_uid) {
  /* A named uid replaces the rule: the user said exactly who serves. */
  if (expect_uid >= 0)
    return (int64_t)server_uid == expect_uid;
  return server_uid == 0 || server_uid == dir_owner || server_uid == self;
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
                            uid_t *server_uid) {
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

int pipefile_connect(const char *sock_path, int *fd) {
  return pipefile_connect_server(sock_path, PIPEFILE_SERVER_UID_DEFAULT, fd,
                                 NULL);
}

int pipefile_send_request(int fd, int op, const char *path, uint64_t offset,
                          uint64_t length) {
  /* Header and path go out in one send, so a request usually costs one
   * system call and the server never sees a header without its path. */
  uint8_t buf[PFP_REQ_MAX];
  struct pfp_request req;
  size_t len = strlen(path);
  int base = op & ~PFP_OP_CLOSE;
  int r;

  if (base != PFP_OP_GET && base != PFP_OP_STAT)
    return -EINVAL;
  if (len == 0)
    return -EINVAL;
  if (len > PFP_PATH_MAX)
    return -ENAMETOOLONG;
  memset(&req, 0, sizeof(req));
  req.op = (uint8_t)base;
  req.close = (op & PFP_OP_CLOSE) != 0;
  req.path_len = (uint16_t)len;
  req.offset = offset;
  req.length = length;
  r = pfp_request_encode(buf, &req);
  if (r < 0)
    return r;
  memcpy(buf + PFP_REQ_HDR_LEN, path, len);
  r = send_all(fd, buf, PFP_REQ_HDR_LEN + len);
  /* Keep -EPIPE for a short body: a closed socket on the way out is the
   * server having closed, which is what ECONNRESET means on the way in. */
  if (r == -EPIPE)
    r = -ECONNRESET;
  return r;
}

/* Whether the n bytes already received can still start a PFP/1 response:
 * lets a non-PFP peer that sends a few bytes and closes be reported as a
 * protocol error rather than as a lost connection. */
static int resp_prefix_ok(const uint8_t *buf, size_t n) {
  static const uint8_t want[3] = {'p', 'f', PFP_VERSION};
  return memcmp(buf, want, n < sizeof(want) ? n : sizeof(want)) == 0;
}

int pipefile_read_response(int fd, struct pipefile_result *res) {
  uint8_t hdr[PFP_RESP_HDR_LEN];
  struct pfp_response resp;
  ssize_t got;
  int r;

  memset(res, 0, sizeof(*res));
  got = recv_full(fd, hdr, sizeof(hdr));
  if (got < 0) {
    r = (int)got;
    goto out;
  }
  if ((size_t)got < sizeof(hdr)) {
    r = resp_prefix_ok(hdr, (size_t)got) ? -ECONNRESET : -EPROTO;
    goto out;
  }
  r = pfp_response_decode(hdr, &resp);
  if (r < 0)
    goto out;

  /* msg_len <= PFP_MSG_MAX was checked by the decoder, so msg fits. */
  got = recv_full(fd, res->msg, resp.msg_len);
  if (got < 0) {
    r = (int)got;
    goto out;
  }
  if ((size_t)got < resp.msg_len) {
    r = -ECONNRESET;
    goto out;
  }
  res->msg[resp.msg_len] = '\0';
  /* The message ends up on a terminal: a server must not be able to send
   * escape sequences to it, nor hide text behind a NUL. UTF-8 bytes
   * (>= 0x80) are kept. */
  for (size_t i = 0; i < resp.msg_len; i++) {
    unsigned char c = (unsigned char)res->msg[i];
    if (c < 0x20 || c == 0x7f)
      res->msg[i] = '?';
  }
  res->status = resp.status;
  res->file_size = resp.file_size;
  res->mtime = resp.mtime;
  res->body_len = resp.body_len;
  r = 0;
out:
  if (r < 0)
    memset(res, 0, sizeof(*res));
  return r;
}

int pipefile_read_body(int fd, int out_fd, struct pipefile_result *res) {
  uint8_t buf[PIPEFILE_BUF_SIZE];

  res->body_done = 0;
  res->write_errno = 0;
  while (res->body_done < res->body_len) {
    uint64_t left = res->body_len - res->body_done;
    /* Ask for no more than the body's remainder: bytes past it belong to
     * the next pipelined response. */
    size_t want = left < sizeof(buf) ? (size_t)left : sizeof(buf);
    ssize_t n = recv(fd, buf, want, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      return -EPIPE;
    if (out_fd >= 0) {
      int w = write_all(out_fd, buf, (size_t)n);
      if (w < 0) {
        res->write_errno = -w;
        return PIPEFILE_EWRITE;
      }
    }
    res->body_done += (uint64_t)n;
  }
  return 0;
}

/* Send a request and read its response header and message. A server that
 * refuses at once (EBUSY) may close before our request is in, so a failed
 * send is followed by an attempt to read the answer it left behind. */
static int exchange(int fd, int op, const char *path, uint64_t offset,
                    uint64_t length, struct pipefile_result *res) {
  int sent = pipefile_send_request(fd, op, path, offset, length);
  int r;

  if (sent < 0 && sent != -ECONNRESET)
    return sent;
  r = pipefile_read_response(fd, res);
  if (r < 0)
    return sent < 0 ? sent : r;
  /* OK to a request the server never received cannot be true. */
  if (sent < 0 && res->status == PFP_OK) {
    memset(res, 0, sizeof(*res));
    return sent;
  }
  return 0;
}

int pipefile_get(int fd, const char *path, uint64_t offset, uint64_t length,
                 int flags, int out_fd, struct pipefile_result *res) {
  uint64_t want;
  int r;

  memset(res, 0, sizeof(*res));
  r = exchange(fd, PFP_OP_GET | (flags & PFP_OP_CLOSE), path, offset, length,
               res);
  if (r < 0 || res->status != PFP_OK)
    goto out;
  /* body_len is fully determined by the request and file_size; anything
   * else means the server and this client disagree about the protocol, and
   * trusting the number would write the wrong bytes. */
  if (pfp_body_len(res->file_size, offset, length, &want) != 0 ||
      res->body_len != want) {
    r = -EPROTO;
    goto out;
  }
  r = pipefile_read_body(fd, out_fd, res);
out:
  return r;
}

int pipefile_stat(int fd, const char *path, int flags,
                  struct pipefile_result *res) {
  int r;

  memset(res, 0, sizeof(*res));
  r = exchange(fd, PFP_OP_STAT | (flags & PFP_OP_CLOSE), path, 0, 0, res);
  if (r < 0)
    return r;
  if (res->body_len != 0)
    return -EPROTO;
  return 0;
}

const char *pipefile_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
  case -EPROTO:
    return "protocol error: not a valid PFP/1 response";
  case -EPIPE:
    return "connection closed before the whole body arrived (short body)";
  case -ECONNRESET:
    return "connection closed by the server before a complete response";
  case PIPEFILE_EWRITE:
    return "cannot write the output";
  case PIPEFILE_EUNTRUSTED:
    return "the socket is served by a uid that is neither root, the owner of "
           "its directory, nor this user (another user's socket?)";
  }
  return strerror(-err);
}
