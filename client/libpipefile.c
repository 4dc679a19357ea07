/* libpipefile.c - the PFP/1 client library's protocol: requests, responses
 * and bodies over a connection, whatever the platform; see pipefile.h. The
 * byte layout is common/proto.c's, never repeated here; connecting, raw I/O
 * and the server's identity are the platform's (transport.h). */
#include "pipefile.h"
#include "transport.h"

#include <errno.h>
#include <string.h>

/* Read up to n bytes into buf, stopping early only at end of stream.
 * Returns 0 with *got bytes read (< n means the peer closed), or -errno. */
static int recv_full(int fd, void *buf, size_t n, size_t *got) {
  *got = 0;
  while (*got < n) {
    size_t r = 0;
    int e = transport_recv(fd, (char *)buf + *got, n - *got, &r);
    if (e < 0)
      return e;
    if (r == 0)
      break;
    *got += r;
  }
  return 0;
}

int pipefile_server_trusted(pipefile_uid_t server_uid, pipefile_uid_t dir_owner,
                            pipefile_uid_t self, int64_t expect_uid) {
  /* A named uid replaces the rule: the user said exactly who serves. */
  if (expect_uid >= 0)
    return (int64_t)server_uid == expect_uid;
  return server_uid == 0 || server_uid == dir_owner || server_uid == self;
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
  r = transport_send(fd, buf, PFP_REQ_HDR_LEN + len);
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
  size_t got;
  int r;

  memset(res, 0, sizeof(*res));
  r = recv_full(fd, hdr, sizeof(hdr), &got);
  if (r < 0)
    goto out;
  if (got < sizeof(hdr)) {
    r = resp_prefix_ok(hdr, got) ? -ECONNRESET : -EPROTO;
    goto out;
  }
  r = pfp_response_decode(hdr, &resp);
  if (r < 0)
    goto out;

  /* msg_len <= PFP_MSG_MAX was checked by the decoder, so msg fits. */
  r = recv_full(fd, res->msg, resp.msg_len, &got);
  if (r < 0)
    goto out;
  if (got < resp.msg_len) {
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

int pipefile_read_body_cb(int fd, int out_fd, struct pipefile_result *res,
                          pipefile_progress_fn progress, void *arg) {
  uint8_t buf[PIPEFILE_BUF_SIZE];

  res->body_done = 0;
  res->write_errno = 0;
  while (res->body_done < res->body_len) {
    uint64_t left = res->body_len - res->body_done;
    /* Ask for no more than the body's remainder: bytes past it belong to
     * the next pipelined response. */
    size_t want = left < sizeof(buf) ? (size_t)left : sizeof(buf);
    size_t n = 0;
    int e = transport_recv(fd, buf, want, &n);
    if (e < 0)
      return e;
    if (n == 0)
      return -EPIPE;
    if (out_fd >= 0) {
      int w = transport_write_out(out_fd, buf, n);
      if (w < 0) {
        res->write_errno = -w;
        return PIPEFILE_EWRITE;
      }
    }
    res->body_done += n;
    /* After the bytes are written, so that what the callback reports (or
     * stamps on the output, as pipefile --resume does) is already there. */
    if (progress) {
      e = progress(arg, res);
      if (e < 0)
        return e;
    }
  }
  return 0;
}

int pipefile_read_body(int fd, int out_fd, struct pipefile_result *res) {
  return pipefile_read_body_cb(fd, out_fd, res, NULL, NULL);
}

/* body_len is fully determined by the request and file_size; anything else
 * means the server and this client disagree about the protocol, and
 * trusting the number would write the wrong bytes. */
static int check_get_sizes(const struct pipefile_result *res, uint64_t offset,
                           uint64_t length) {
  uint64_t want;
  if (pfp_body_len(res->file_size, offset, length, &want) != 0 ||
      res->body_len != want)
    return -EPROTO;
  return 0;
}

int pipefile_read_get_response(int fd, uint64_t offset, uint64_t length,
                               struct pipefile_result *res) {
  int r = pipefile_read_response(fd, res);
  if (r < 0 || res->status != PFP_OK)
    return r;
  return check_get_sizes(res, offset, length);
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
  int r;

  memset(res, 0, sizeof(*res));
  r = exchange(fd, PFP_OP_GET | (flags & PFP_OP_CLOSE), path, offset, length,
               res);
  if (r < 0 || res->status != PFP_OK)
    goto out;
  r = check_get_sizes(res, offset, length);
  if (r < 0)
    goto out;
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
  case PIPEFILE_EIDENTITY:
    return "cannot tell who serves the pipe: neither the server's process nor "
           "the pipe's owner can be read";
  case PIPEFILE_EREMOTE:
    return "a remote pipe's server account cannot be checked from here: name "
           "the server to trust (--server-user)";
  case PIPEFILE_ENOTPIPE:
    return "not a named pipe (\\\\.\\pipe\\NAME or \\\\SERVER\\pipe\\NAME)";
  }
  /* PIPEFILE_EUNTRUSTED too: its rule is the platform's. */
  return transport_strerror(err);
}
