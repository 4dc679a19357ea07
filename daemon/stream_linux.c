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
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_SENDFILE_MAX (1u << 20) /* bytes asked of one sendfile call */
#define STREAM_READ_SUGGESTED 65536    /* for the alloc callback */

enum { OP_NONE, OP_WRITE, OP_FILE };

static void on_poll(uv_poll_t *h, int status, int events);

/* Ask the loop for exactly these events (a no-op when unchanged). */
static void want(struct stream *s, int events) {
  if (events == s->events || s->closing)
    return;
  s->events = events;
  if (events)
    uv_poll_start(&s->poll, events, on_poll);
  else
    uv_poll_stop(&s->poll);
}

/* Ask for what the stream waits on now; a readability no longer needed is
 * kept (dropped by on_poll if it fires). */
static void update(struct stream *s) {
  int need = (s->reading ? UV_READABLE : 0) | (s->blocked ? UV_WRITABLE : 0);
  int lingering = s->reading ? 0 : (s->events & UV_READABLE);

  if ((s->events & ~lingering) != need)
    want(s, need);
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

/* Wait for writability, then go on (on_poll). */
static void block(struct stream *s) {
  s->blocked = 1;
  update(s);
}

static void write_more(struct stream *s) {
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
      return;
    }
    s->wbuf += n;
    s->wlen -= (size_t)n;
    s->last_sent_ms = uv_now(s->loop);
  }
  complete(s, 0);
}

static void file_more(struct stream *s) {
  ssize_t n;

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
    /* The socket is unusable: fail whatever waits on it. */
    want(s, 0);
    if (s->op != OP_NONE)
      complete(s, status);
    else if (s->reading) {
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
      want(s, s->events & ~UV_READABLE); /* lingering: drop it now */
    if (s->closing)
      return;
  }
  update(s);
}

int stream_init(uv_loop_t *loop, struct stream *s, uv_os_fd_t fd) {
  int rc;

  s->loop = loop;
  s->fd = fd;
  s->events = 0;
  s->reading = 0;
  s->blocked = 0;
  s->closing = 0;
  s->op = OP_NONE;
  s->last_sent_ms = 0;
  s->close_cb = NULL;
  rc = uv_poll_init(loop, &s->poll, fd);
  if (rc != 0)
    return rc;
  s->poll.data = s;
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
  update(s);
  return 0;
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

int stream_send_file(struct stream *s, uv_os_fd_t file, uint64_t offset,
                     uint64_t len, stream_send_cb cb) {
  if (s->closing)
    return UV_EINVAL;
  if (s->op != OP_NONE)
    return UV_EBUSY;
  s->op = OP_FILE;
  s->file = file;
  s->foff = offset;
  s->fleft = len;
  s->fsent = 0;
  s->send_cb = cb;
  file_more(s);
  return 0;
}

uint64_t stream_last_sent_ms(const struct stream *s) { return s->last_sent_ms; }

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
  /* uv_close on a poll handle takes fd out of epoll at once, so the
   * descriptor can be closed right after. */
  uv_close((uv_handle_t *)&s->poll, on_closed);
  close(s->fd);
  s->fd = -1;
}

void stream_discard(uv_os_fd_t fd) { close(fd); }
