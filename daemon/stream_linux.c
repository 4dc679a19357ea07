/* stream_linux.c - stream.h on a Unix socket: a uv_poll_t for readiness and
 * non-blocking recv/send/sendfile loops; EAGAIN never leaves this file.
 *
 * Completion on readiness: an operation is tried at once and runs on until
 * it is done, fails, or meets EAGAIN; then the stream asks the loop for
 * writability and goes on from its poll callback. So a small answer is
 * sent, and reported, inside the call that started it, with no loop turn
 * and no epoll_ctl.
 *
 * epoll_ctl is what costs here (uv_poll_start re-registers the descriptor
 * every time), so the events asked for change only when they must:
 * readability is dropped lazily. A connection stops and starts reading
 * around every request; only if bytes arrive while it is not reading does
 * the poll callback stop watching for them (else level-triggered epoll
 * would spin). */
#include "stream.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define STREAM_SENDFILE_MAX (1u << 20) /* bytes asked of one sendfile call */
#define STREAM_READ_SUGGESTED 65536    /* for the alloc callback */

enum { OP_NONE, OP_WRITE, OP_FILE };

static void on_poll(uv_poll_t *h, int status, int events);

/* Ask the loop for exactly these events (a no-op when unchanged). The
 * poll handle is made on first need: uv_poll_init checks the descriptor
 * with an epoll_ctl ADD and DEL, and a connection whose request is already
 * there and whose answer fits the socket (the usual one-request
 * connection) never needs to wait at all. Returns 0 or a UV_E* code. */
static int want(struct stream *s, int events) {
  int rc;

  if (events == s->events || s->closing)
    return 0;
  if (!s->polled) {
    rc = uv_poll_init(s->loop, &s->poll, s->fd);
    if (rc != 0)
      return rc;
    s->poll.data = s;
    s->polled = 1;
  }
  s->events = events;
  if (events)
    return uv_poll_start(&s->poll, events, on_poll);
  return uv_poll_stop(&s->poll);
}

/* Ask for what the stream waits on now; a readability no longer needed is
 * kept (dropped by on_poll if it fires). */
static int update(struct stream *s) {
  int need = (s->reading ? UV_READABLE : 0) | (s->blocked ? UV_WRITABLE : 0);
  int lingering = s->reading ? 0 : (s->events & UV_READABLE);

  if ((s->events & ~lingering) != need)
    return want(s, need);
  return 0;
}

/* The operation in flight is over: report it. The callback may start the
 * next one, or close the stream. */
static void complete(struct stream *s, int status) {
  int op = s->op;

  s->op = OP_NONE;
  s->blocked = 0;
  if (op == OP_WRITE)
    s->write_cb(s, status);
  else if (op == OP_FILE)
    s->send_cb(s, status, s->fsent);
}

/* Wait for writability, then go on (on_poll); an operation that cannot
 * wait fails. */
static void block(struct stream *s) {
  int rc;

  s->blocked = 1;
  rc = update(s);
  if (rc != 0)
    complete(s, rc);
}

/* Send the bytes at wbuf: a write, or the head before a file
 * (stream_send_head_file). Returns 1 when they are all out, 0 when the
 * stream waits for room or the operation failed (reported). */
static int wbuf_more(struct stream *s) {
  ssize_t n;

  while (s->wlen > 0) {
    do
      n = send(s->fd, s->wbuf, s->wlen, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        block(s);
      else
        complete(s, -errno);
      return 0;
    }
    s->wbuf += n;
    s->wlen -= (size_t)n;
    s->last_sent_ms = uv_now(s->loop);
  }
  return 1;
}

static void write_more(struct stream *s) {
  if (wbuf_more(s))
    complete(s, 0);
}

static void file_more(struct stream *s) {
  ssize_t n;

  if (!wbuf_more(s))
    return;
  while (s->fleft > 0) {
    size_t chunk =
        s->fleft < STREAM_SENDFILE_MAX ? (size_t)s->fleft : STREAM_SENDFILE_MAX;
    off_t off = (off_t)s->foff;
    /* sendfile has no MSG_NOSIGNAL: SIGPIPE is ignored process-wide
     * (main.c), so a vanished peer shows up here as EPIPE. */
    do
      n = sendfile(s->fd, s->file, &off, chunk);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        block(s);
      else
        complete(s, -errno);
      return;
    }
    if (n == 0) {
      complete(s, UV_EOF); /* the file shrank under us */
      return;
    }
    s->foff = (uint64_t)off;
    s->fleft -= (uint64_t)n;
    s->fsent += (uint64_t)n;
    s->last_sent_ms = uv_now(s->loop);
  }
  complete(s, 0);
}

/* The head and a small body in one sendmsg: read the body, send both, and
 * leave whatever did not go (the socket was full, or the file shrank) to
 * wbuf_more() and sendfile from where it stopped. */
static void head_inline(struct stream *s, char *body) {
  struct iovec iov[2];
  struct msghdr msg;
  ssize_t got, n;

  do
    got = pread(s->file, body, (size_t)s->fleft, (off_t)s->foff);
  while (got < 0 && errno == EINTR);
  if (got <= 0) {
    file_more(s); /* sendfile meets the same end, or error, and says so */
    return;
  }
  iov[0].iov_base = (void *)s->wbuf;
  iov[0].iov_len = s->wlen;
  iov[1].iov_base = body;
  iov[1].iov_len = (size_t)got;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  do
    n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    complete(s, -errno);
    return;
  }
  if (n > 0) {
    size_t h = (size_t)n < s->wlen ? (size_t)n : s->wlen;
    uint64_t b = (uint64_t)n - h;
    s->wbuf += h;
    s->wlen -= h;
    s->foff += b;
    s->fleft -= b;
    s->fsent += b;
    s->last_sent_ms = uv_now(s->loop);
  }
  file_more(s);
}

static void read_once(struct stream *s) {
  uv_buf_t b = uv_buf_init(NULL, 0);
  ssize_t n;

  s->alloc_cb(s, STREAM_READ_SUGGESTED, &b);
  if (b.base == NULL || b.len == 0) {
    s->read_cb(s, UV_ENOBUFS, &b);
    return;
  }
  do
    n = recv(s->fd, b.base, b.len, 0);
  while (n < 0 && errno == EINTR);
  if (n > 0)
    s->read_cb(s, n, &b);
  else if (n == 0)
    s->read_cb(s, UV_EOF, &b);
  else if (errno == EAGAIN || errno == EWOULDBLOCK)
    s->read_cb(s, 0, &b);
  else
    s->read_cb(s, -errno, &b);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  struct stream *s = h->data;

  if (status < 0) {
    /* The socket is unusable: fail whatever waits on it. libuv says
     * UV_EBADF for any error on it; an empty send tells the real one
     * (EPIPE, ECONNRESET: the client went away, which is no news). */
    (void)want(s, 0);
    if (s->op != OP_NONE) {
      ssize_t n = send(s->fd, "", 0, MSG_NOSIGNAL | MSG_DONTWAIT);
      complete(s, n < 0 && errno != EAGAIN && errno != EWOULDBLOCK ? -errno
                                                                   : status);
    } else if (s->reading) {
      uv_buf_t b = uv_buf_init(NULL, 0);
      s->read_cb(s, status, &b);
    }
    return;
  }
  if ((events & UV_WRITABLE) && s->blocked) {
    s->blocked = 0;
    if (s->op == OP_WRITE)
      write_more(s);
    else if (s->op == OP_FILE)
      file_more(s);
    if (s->closing)
      return;
  }
  if (events & UV_READABLE) {
    if (s->reading)
      read_once(s);
    else
      (void)want(s, s->events & ~UV_READABLE); /* lingering: drop it now */
    if (s->closing)
      return;
  }
  (void)update(s); /* only keeps or narrows what is asked of a live poll */
}

int stream_init(uv_loop_t *loop, struct stream *s, uv_os_fd_t fd) {
  s->loop = loop;
  s->fd = fd;
  s->polled = 0;
  s->events = 0;
  s->reading = 0;
  s->blocked = 0;
  s->closing = 0;
  s->op = OP_NONE;
  s->last_sent_ms = 0;
  s->close_cb = NULL;
  return 0;
}

uv_os_fd_t stream_fd(const struct stream *s) { return s->fd; }

int stream_read_start(struct stream *s, stream_alloc_cb alloc,
                      stream_read_cb cb) {
  if (s->closing)
    return UV_EINVAL;
  s->alloc_cb = alloc;
  s->read_cb = cb;
  s->reading = 1;
  return update(s);
}

void stream_read_stop(struct stream *s) {
  s->reading = 0; /* lazily: see the top of this file */
}

ssize_t stream_try_read(struct stream *s, void *buf, size_t len) {
  ssize_t n;

  do
    n = recv(s->fd, buf, len, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n > 0)
    return n;
  if (n == 0)
    return UV_EOF;
  return errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : -errno;
}

int stream_write(struct stream *s, const void *buf, size_t len,
                 stream_write_cb cb) {
  if (s->closing)
    return UV_EINVAL;
  if (s->op != OP_NONE)
    return UV_EBUSY;
  s->op = OP_WRITE;
  s->wbuf = buf;
  s->wlen = len;
  s->write_cb = cb;
  write_more(s);
  return 0;
}

static int start_file(struct stream *s, const void *head, size_t hlen,
                      uv_os_fd_t file, uint64_t offset, uint64_t len, void *tmp,
                      stream_send_cb cb) {
  if (s->closing)
    return UV_EINVAL;
  if (s->op != OP_NONE)
    return UV_EBUSY;
  s->op = OP_FILE;
  s->wbuf = head;
  s->wlen = hlen;
  s->file = file;
  s->foff = offset;
  s->fleft = len;
  s->fsent = 0;
  s->send_cb = cb;
  if (tmp != NULL && hlen > 0 && len > 0 && len <= STREAM_INLINE_MAX)
    head_inline(s, tmp);
  else
    file_more(s);
  return 0;
}

int stream_send_file(struct stream *s, uv_os_fd_t file, uint64_t offset,
                     uint64_t len, stream_send_cb cb) {
  return start_file(s, NULL, 0, file, offset, len, NULL, cb);
}

int stream_send_head_file(struct stream *s, const void *head, size_t hlen,
                          uv_os_fd_t file, uint64_t offset, uint64_t len,
                          void *tmp, stream_send_cb cb) {
  return start_file(s, head, hlen, file, offset, len, tmp, cb);
}

uint64_t stream_last_sent_ms(const struct stream *s) { return s->last_sent_ms; }

int stream_send_buffer(struct stream *s, unsigned bytes) {
  int v = bytes > (unsigned)INT_MAX / 2 ? INT_MAX / 2 : (int)bytes;

  if (setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)) != 0)
    return -errno;
  return 0;
}

static void on_closed(uv_handle_t *h) {
  struct stream *s = h->data;

  if (s->op != OP_NONE)
    complete(s, UV_ECANCELED);
  if (s->close_cb != NULL)
    s->close_cb(s);
}

void stream_close(struct stream *s, stream_close_cb cb) {
  if (s->closing)
    return;
  s->closing = 1;
  s->reading = 0;
  s->close_cb = cb;
  if (s->polled) {
    /* uv_close on a poll handle takes fd out of epoll at once, so the
     * descriptor can be closed right after. */
    uv_close((uv_handle_t *)&s->poll, on_closed);
    close(s->fd);
    s->fd = -1;
    return;
  }
  /* Never waited, so nothing is in flight (an operation waits only
   * through the poll): the stream is closed now. */
  close(s->fd);
  s->fd = -1;
  if (cb != NULL)
    cb(s);
}

void stream_discard(uv_os_fd_t fd) { close(fd); }
