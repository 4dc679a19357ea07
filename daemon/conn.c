/* conn.c - per-connection state machine: read, answer in order, time out,
 * log; see conn.h.
 *
 * States: READING (waiting for request bytes; idle or request timeout),
 * LOGWAIT (a complete request waits for room for its line in the access
 * log: the socket is not polled, a short timer retries, send_timeout bounds
 * the wait), SENDING (header then body; send timeout, no reading), YIELD (a
 * complete request is waiting but this connection has had its turn;
 * resumes on the next loop iteration), FLUSHING (the connection is over but
 * the lines of requests it read and never answered wait for room in the
 * access log, bounded by send_timeout), CLOSING (handles closing, memory
 * freed after).
 *
 * The audit rule ("no line, no byte"): a request is served only while the
 * room for its line is held (an access-log ticket), and every request read
 * gets exactly one line: its answer's, ABANDONED when the connection ended
 * before it was answered, or EPROTO for bytes that never formed a whole
 * request. */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accesslog.h"
#include "connlimit.h"
#include "log.h"
#include "stream.h"

#define CONN_SEND_CHUNK (1u << 20)  /* bytes asked of one sendfile call */
#define CONN_SEND_BUDGET (4u << 20) /* bytes per turn before yielding */
#define CONN_REQ_BUDGET 16          /* pipelined requests per turn */
#define CONN_LOG_RETRY_MS 3         /* retry for room in the access log */

struct conn_buf {
  struct conn_buf *next;           /* worker's spare list */
  uint8_t req[PFP_REQ_MAX];        /* request bytes received, not yet
                                      answered */
  uint8_t resp[PFP_RESP_MAX];      /* response header + message being sent */
  char resolved[PFP_PATH_MAX + 2]; /* normalised path of the request being
                                      answered, for its line (serve.c's
                                      copy is the worker's, reused by the
                                      next request of any connection) */
};

enum conn_state {
  CONN_READING,
  CONN_LOGWAIT,
  CONN_SENDING,
  CONN_YIELD,
  CONN_FLUSHING,
  CONN_CLOSING
};
enum conn_timer {
  TIMER_NONE,
  TIMER_IDLE,
  TIMER_REQUEST,
  TIMER_SEND,
  TIMER_LOG /* retry for room in the access log */
};

struct conn {
  struct worker *w;
  struct conn *prev, *next; /* worker's list of connections */
  uv_poll_t poll;           /* readiness of fd */
  uv_timer_t timer;         /* the one timeout in force */
  int fd;                   /* the client socket */
  uint64_t id;              /* connection id in the access log */
  struct identity peer;     /* from the kernel at accept */
  enum conn_state state;
  enum conn_timer timer_kind;
  int events;           /* uv_poll events currently asked for */
  int handles;          /* uv handles not yet closed */
  struct conn_buf *buf; /* NULL while idle */
  size_t rlen;          /* bytes in buf->req */
  unsigned turn;        /* requests answered in this turn */

  /* The request being answered. */
  struct pfp_request req; /* path points into buf->req */
  size_t req_len;         /* its bytes in buf->req; 0 if undecodable */
  int close_after;        /* CLOSE flag, EPROTO, or shutting down */
  int status;
  uint64_t size; /* file size, for the log */
  int file;      /* body source, or -1 */
  uint64_t file_off;
  uint64_t body_left;
  uint64_t bytes;                 /* body bytes sent */
  size_t resp_len, resp_off;      /* header + message bytes, and sent so far */
  int progressed;                 /* bytes moved since the send timer was set */
  int64_t start_ms;               /* wall clock at the request, for the log */
  uint64_t start_ns;              /* monotonic, for the duration */
  size_t resolved_len;            /* bytes in buf->resolved; 0 = none */
  struct accesslog_ticket ticket; /* room for the line of the request being
                                     answered; held while it is served */

  /* Waiting for room in the access log (LOGWAIT, FLUSHING). */
  uint64_t wait_since; /* monotonic ns when the wait began; 0 = none */
  int no_wait;         /* lines that find no room are given up at once */
};

struct conn *conn_next(struct conn *c) {
  return c->next;
}

static struct conn_buf *buf_get(struct worker *w) {
  struct conn_buf *b = w->spare;
  if (b != NULL) {
    w->spare = b->next;
    w->nspare--;
    return b;
  }
  return malloc(sizeof(*b));
}

static void buf_put(struct worker *w, struct conn_buf *b) {
  if (b == NULL)
    return;
  if (w->nspare < WORKER_SPARE_BUFS) {
    b->next = w->spare;
    w->spare = b;
    w->nspare++;
  } else {
    free(b);
  }
}

void conn_free_spares(struct worker *w) {
  while (w->spare) {
    struct conn_buf *b = w->spare;
    w->spare = b->next;
    free(b);
  }
  w->nspare = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);
static void on_timer(uv_timer_t *t);
static void process_input(struct conn *c);
static void conn_end(struct conn *c);
static void conn_close(struct conn *c);

static void want(struct conn *c, int events) {
  if (events == c->events)
    return;
  c->events = events;
  if (events)
    uv_poll_start(&c->poll, events, on_poll);
  else
    uv_poll_stop(&c->poll);
}

static void arm(struct conn *c, enum conn_timer kind) {
  const struct config *cfg = &c->w->live->cfg;
  unsigned ms = kind == TIMER_IDLE      ? cfg->idle_timeout_ms
                : kind == TIMER_REQUEST ? cfg->request_timeout_ms
                : kind == TIMER_LOG     ? CONN_LOG_RETRY_MS
                                        : cfg->send_timeout_ms;
  c->timer_kind = kind;
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

static const char *op_name(const struct pfp_request *r) {
  return r->op == PFP_OP_GET ? "GET" : r->op == PFP_OP_STAT ? "STAT" : "-";
}

/* The line of the request in c->req (decoded as far as it could be). */
static struct access_record record_of(const struct conn *c, int status,
                                      uint64_t bytes, uint64_t size) {
  struct access_record r = {
      .time_ms = c->start_ms,
      .worker = c->w->id,
      .conn = c->id,
      .pid = c->peer.pid,
      .uid = c->peer.uid,
      .gid = c->peer.gid,
      .proto = "pfp1",
      .op = op_name(&c->req),
      .path = c->req.path,
      .path_len = c->req.path ? c->req.path_len : 0,
      .status = status,
      .bytes = bytes,
      .size = size,
      .duration_us = (uv_hrtime() - c->start_ns) / 1000,
  };
  return r;
}

/* The line of the request just answered, in the room its ticket holds. A
 * bare status (EPROTO, EBUSY) is sent without a ticket: its line is
 * written if there is room and counted as lost if not. */
static void log_request(struct conn *c) {
  struct access_record r = record_of(c, c->status, c->bytes, c->size);

  if (c->resolved_len > 0) {
    r.resolved = c->buf->resolved;
    r.resolved_len = c->resolved_len;
  }
  if (c->ticket.bytes > 0)
    accesslog_commit(&c->ticket, &r);
  else if (accesslog_write(&r) != 0)
    accesslog_lost(1);
}

/* A request starts when its first byte arrives: that is the time logged,
 * and its duration runs from there to its last byte sent. */
static void stamp(struct conn *c) {
  c->start_ms = accesslog_now_ms();
  c->start_ns = uv_hrtime();
}

/* Drop the first n bytes of the request buffer (a request dealt with). */
static void consume(struct conn *c, size_t n) {
  c->rlen -= n;
  memmove(c->buf->req, c->buf->req + n, c->rlen);
}

static void begin(struct conn *c) {
  c->bytes = 0;
  c->size = 0;
  c->file = -1;
  c->body_left = 0;
  c->resp_off = 0;
  c->resolved_len = 0;
  c->progressed = 1;
  c->state = CONN_SENDING;
}

/* The response to the request at the head of the buffer is out (or the
 * connection broke): log it and move on to the next request. */
static void finish(struct conn *c, int broken) {
  log_request(c);
  if (c->file >= 0)
    close(c->file);
  c->file = -1;
  if (c->req_len > 0) {
    consume(c, c->req_len);
    if (c->rlen > 0)
      stamp(c); /* the next request's bytes are already here */
  } else {
    /* A bare status for bytes that never formed a request (malformed, or
     * timed out half-way): its line stands for all of them. */
    c->rlen = 0;
  }
  c->req_len = 0;
  c->resolved_len = 0;
  memset(&c->req, 0, sizeof(c->req));
  if (broken || c->close_after) {
    conn_end(c);
    return;
  }
  c->state = CONN_READING;
  c->timer_kind = TIMER_NONE;
}

static void wait_writable(struct conn *c) {
  want(c, UV_WRITABLE);
  /* The send timeout counts time without progress, not the whole body. */
  if (c->progressed || c->timer_kind != TIMER_SEND)
    arm(c, TIMER_SEND);
  c->progressed = 0;
}

static void send_more(struct conn *c) {
  uint64_t budget = CONN_SEND_BUDGET;
  ssize_t n;

  while (c->resp_off < c->resp_len) {
    n = stream_send(c->fd, c->buf->resp + c->resp_off,
                    c->resp_len - c->resp_off);
    if (n == -EAGAIN)
      goto wait;
    if (n < 0)
      goto broken;
    c->resp_off += (size_t)n;
    c->progressed = 1;
  }
  while (c->body_left > 0) {
    size_t chunk =
        c->body_left < CONN_SEND_CHUNK ? (size_t)c->body_left : CONN_SEND_CHUNK;
    n = stream_send_file(c->fd, c->file, &c->file_off, chunk);
    if (n == -EAGAIN)
      goto wait;
    if (n == 0) {
      /* The file shrank under us: the body cannot be completed, and the
       * protocol says a short body ends the connection. */
      log_warn("conn %llu: file ended %llu bytes early; closing",
               (unsigned long long)c->id, (unsigned long long)c->body_left);
      goto broken;
    }
    if (n < 0) {
      if (n != -EPIPE && n != -ECONNRESET)
        log_warn("conn %llu: sending body: %s", (unsigned long long)c->id,
                 strerror((int)-n));
      goto broken;
    }
    c->body_left -= (uint64_t)n;
    c->bytes += (uint64_t)n;
    c->progressed = 1;
    if ((uint64_t)n >= budget) {
      /* Let this worker's other connections have a turn. */
      goto wait;
    }
    budget -= (uint64_t)n;
  }
  finish(c, 0);
  return;
wait:
  wait_writable(c);
  return;
broken:
  finish(c, 1);
}

/* Answer with a bare status (EPROTO, EBUSY, or a timed-out request) and
 * close. */
static void respond_status(struct conn *c, int status, const char *why) {
  begin(c);
  c->status = status;
  c->close_after = 1;
  if (c->buf == NULL) {
    c->buf = buf_get(c->w);
    if (c->buf == NULL) {
      conn_close(c);
      return;
    }
  }
  c->resp_len = serve_status_only(c->buf->resp, status, why);
  send_more(c);
}

static void answer(struct conn *c) {
  struct serve_result res;

  begin(c);
  c->close_after = c->req.close;
  serve_request(c->w->live, c->fd, c->id, &c->peer, &c->req, &c->w->scratch,
                c->buf->resp, &res);
  c->status = res.status;
  c->size = res.file_size;
  c->file = res.fd;
  c->file_off = res.offset;
  c->body_left = res.body_len;
  c->resp_len = res.resp_len;
  if (res.resolved != NULL && res.resolved_len <= sizeof(c->buf->resolved)) {
    memcpy(c->buf->resolved, res.resolved, res.resolved_len);
    c->resolved_len = res.resolved_len;
  }
  send_more(c);
}

/* Start, or keep, waiting for room in the access log: retry soon. */
static void wait_for_log(struct conn *c) {
  if (c->wait_since == 0)
    c->wait_since = uv_hrtime();
  want(c, 0);
  arm(c, TIMER_LOG);
}

/* Whether the wait for room in the access log has lasted send_timeout. */
static int waited_enough(const struct conn *c) {
  uint64_t limit_ns = (uint64_t)c->w->live->cfg.send_timeout_ms * 1000000u;
  return c->wait_since != 0 && uv_hrtime() - c->wait_since >= limit_ns;
}

/* Hold room in the access log for the line of the request in c->req before
 * it is served. Returns 1 when held; 0 when c now waits for room (LOGWAIT)
 * or, having waited send_timeout, was refused with EBUSY. */
static int hold_ticket(struct conn *c) {
  if (c->ticket.bytes > 0)
    return 1;
  if (accesslog_reserve(&c->ticket, c->peer.uid, c->req.path_len) == 0) {
    c->wait_since = 0;
    return 1;
  }
  if (waited_enough(c)) {
    log_debug("conn %llu: no room in the access log for %u ms; refusing",
              (unsigned long long)c->id, c->w->live->cfg.send_timeout_ms);
    /* Waited once: the lines of what follows are not waited for again. */
    c->no_wait = 1;
    c->wait_since = 0;
    respond_status(c, PFP_EBUSY, "the access log is not keeping up; try again");
    return 0;
  }
  c->state = CONN_LOGWAIT;
  wait_for_log(c);
  return 0;
}

/* Read what the socket has into the request buffer (taking one from the
 * worker if the connection holds none). Returns the bytes added, 0 at end
 * of stream, or -errno (-EAGAIN: nothing there; -ENOMEM; -ENOBUFS: the
 * buffer is full, which a valid request never needs). Never waits. */
static ssize_t fill(struct conn *c) {
  ssize_t n;

  if (c->buf == NULL) {
    c->buf = buf_get(c->w);
    if (c->buf == NULL) {
      log_error("conn %llu: out of memory", (unsigned long long)c->id);
      return -ENOMEM;
    }
  }
  if (c->rlen == PFP_REQ_MAX)
    return -ENOBUFS;
  n = stream_recv(c->fd, c->buf->req + c->rlen, PFP_REQ_MAX - c->rlen);
  if (n > 0) {
    if (c->rlen == 0)
      stamp(c); /* a request starts with its first byte */
    c->rlen += (size_t)n;
  }
  return n;
}

/* Log each request left in the buffer, oldest first: a whole one as
 * ABANDONED (read, never answered), a partial or malformed one as EPROTO
 * (nothing after it can be told apart). Returns 0 when the buffer is
 * empty, or -EAGAIN when the access log had no room (the rest stays). */
static int log_leftovers(struct conn *c) {
  const char *why;
  int n, rc = 0;

  while (c->rlen > 0) {
    n = pfp_request_decode(c->buf->req, c->rlen, &c->req, &why);
    struct access_record r =
        record_of(c, n > 0 ? ACCESS_ABANDONED : PFP_EPROTO, 0, 0);
    if (accesslog_write(&r) != 0) {
      rc = -EAGAIN;
      break;
    }
    if (n > 0)
      consume(c, (size_t)n);
    else
      c->rlen = 0;
  }
  memset(&c->req, 0, sizeof(c->req));
  return rc;
}

/* Give up the lines of the requests left in the buffer: they are counted
 * as lost (reported on the error log by accesslog.c). */
static void lose_leftovers(struct conn *c) {
  const char *why;
  uint64_t lost = 0;
  size_t off = 0;
  int n;

  while (off < c->rlen) {
    n = pfp_request_decode(c->buf->req + off, c->rlen - off, &c->req, &why);
    lost++;
    if (n <= 0)
      break;
    off += (size_t)n;
  }
  memset(&c->req, 0, sizeof(c->req));
  c->rlen = 0;
  if (lost > 0)
    accesslog_lost(lost);
}

/* The connection is over: the client went away, a send failed or timed
 * out, it asked to close, or the daemon gives up on it. Each request still
 * in the buffer gets its line, then c closes. While the access log has no
 * room for those lines the connection waits (FLUSHING), at most
 * send_timeout, unless told not to wait (c->no_wait). */
static void conn_end(struct conn *c) {
  if (log_leftovers(c) == 0) {
    conn_close(c);
    return;
  }
  if (c->no_wait || (c->state == CONN_FLUSHING && waited_enough(c))) {
    lose_leftovers(c);
    conn_close(c);
    return;
  }
  if (c->state != CONN_FLUSHING) {
    c->state = CONN_FLUSHING;
    c->wait_since = 0; /* the bound runs from now */
  }
  wait_for_log(c);
}

/* The connection failed (socket error, send timeout): the response in
 * flight is logged with what was sent, and the requests behind it. */
static void conn_fail(struct conn *c) {
  if (c->state == CONN_SENDING)
    finish(c, 1);
  else if (c->state != CONN_CLOSING)
    conn_end(c);
}

/* Answer every complete request in the buffer, within this turn's budget. */
static void process_input(struct conn *c) {
  const char *why;
  int n;

  c->turn = 0;
  while (c->state == CONN_READING) {
    n = pfp_request_decode(c->buf ? c->buf->req : NULL, c->rlen, &c->req, &why);
    if (n < 0) {
      c->req_len = 0;
      respond_status(c, PFP_EPROTO, why);
      return;
    }
    if (n == 0) {
      if (c->w->stopping) {
        /* Shutting down: requests the client already sent are answered,
         * including those still in the socket (one more read, which never
         * waits); then a partial one is abandoned (conn_end logs it). A
         * client that keeps sending is cut off by shutdown_timeout. */
        if (fill(c) > 0)
          continue;
        conn_end(c);
        return;
      }
      /* Keep what was decoded of a partial request: a time-out logs it. */
      if (c->rlen == 0) {
        /* Idle: give the buffer back; an idle connection holds none. */
        buf_put(c->w, c->buf);
        c->buf = NULL;
        if (c->timer_kind != TIMER_IDLE)
          arm(c, TIMER_IDLE);
      } else if (c->timer_kind != TIMER_REQUEST) {
        arm(c, TIMER_REQUEST);
      }
      want(c, UV_READABLE);
      return;
    }
    if (c->turn++ == CONN_REQ_BUDGET) {
      /* Many pipelined requests: continue on the next loop iteration. */
      c->state = CONN_YIELD;
      want(c, UV_WRITABLE);
      arm(c, TIMER_SEND); /* a client that stops reading still times out */
      return;
    }
    c->req_len = (size_t)n;
    if (!hold_ticket(c))
      return;
    answer(c);
  }
}

static void read_more(struct conn *c) {
  ssize_t n = fill(c);

  if (n == -EAGAIN)
    return;
  if (n <= 0) {
    /* The client went away (or the socket failed, or memory ran out). */
    conn_end(c);
    return;
  }
  process_input(c);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  struct conn *c = h->data;

  if (status < 0) {
    conn_fail(c);
    return;
  }
  if (c->state == CONN_SENDING && (events & UV_WRITABLE)) {
    send_more(c);
    if (c->state == CONN_READING)
      process_input(c);
  } else if (c->state == CONN_YIELD && (events & UV_WRITABLE)) {
    c->state = CONN_READING;
    process_input(c);
  } else if (c->state == CONN_READING && (events & UV_READABLE)) {
    read_more(c);
  }
}

static void on_timer(uv_timer_t *t) {
  struct conn *c = t->data;
  enum conn_timer kind = c->timer_kind;

  c->timer_kind = TIMER_NONE;
  switch (kind) {
  case TIMER_IDLE:
    conn_close(c);
    break;
  case TIMER_REQUEST:
    /* A request started but never completed: a slow or broken client.
     * What was decoded so far (op, path) goes to the log line. */
    c->req_len = 0;
    respond_status(c, PFP_EPROTO, "request timed out");
    break;
  case TIMER_SEND:
    log_debug("conn %llu: no progress sending for %u ms; closing",
              (unsigned long long)c->id, c->w->live->cfg.send_timeout_ms);
    conn_fail(c);
    break;
  case TIMER_LOG:
    if (c->state == CONN_LOGWAIT) {
      c->state = CONN_READING;
      process_input(c);
    } else if (c->state == CONN_FLUSHING) {
      conn_end(c);
    }
    break;
  case TIMER_NONE:
    break;
  }
}

static void on_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  struct worker *w = c->w;
  uid_t uid = c->peer.uid;

  if (--c->handles > 0)
    return;
  free(c);
  connlimit_release(uid);
  worker_conn_closed(w);
}

static void conn_close(struct conn *c) {
  struct worker *w = c->w;

  if (c->state == CONN_CLOSING)
    return;
  c->state = CONN_CLOSING;
  uv_timer_stop(&c->timer);
  accesslog_cancel(&c->ticket); /* none is held here; never leak room */
  /* uv_close on a poll handle removes fd from epoll at once, so the
   * descriptor can be closed right after. */
  uv_close((uv_handle_t *)&c->poll, on_closed);
  uv_close((uv_handle_t *)&c->timer, on_closed);
  close(c->fd);
  if (c->file >= 0)
    close(c->file);
  c->file = -1;
  buf_put(w, c->buf);
  c->buf = NULL;
  if (c->prev)
    c->prev->next = c->next;
  else
    w->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  atomic_fetch_sub(&w->nconns, 1);
}

void conn_start(struct worker *w, int fd, uint64_t conn_id,
                const struct identity *peer) {
  struct conn *c = calloc(1, sizeof(*c));
  int rc;

  if (c == NULL) {
    log_error("conn %llu: out of memory", (unsigned long long)conn_id);
    goto fail;
  }
  rc = uv_poll_init(&w->loop, &c->poll, fd);
  if (rc != 0) {
    log_error("conn %llu: %s", (unsigned long long)conn_id, uv_strerror(rc));
    goto fail;
  }
  uv_timer_init(&w->loop, &c->timer);
  c->poll.data = c;
  c->timer.data = c;
  c->handles = 2;
  c->w = w;
  c->fd = fd;
  c->id = conn_id;
  c->peer = *peer;
  c->file = -1;
  c->state = CONN_READING;
  c->next = w->conns;
  if (w->conns)
    w->conns->prev = c;
  w->conns = c;
  atomic_fetch_add(&w->nconns, 1);
  process_input(c);
  return;
fail:
  free(c);
  close(fd);
  connlimit_release(peer->uid);
}

void conn_drain(struct conn *c) {
  /* A response in flight finishes first; then (as now for one waiting)
   * process_input answers the requests already received and closes. A
   * connection waiting for the access log goes on waiting. */
  if (c->state == CONN_YIELD)
    c->state = CONN_READING;
  if (c->state == CONN_READING)
    process_input(c);
}

void conn_abort(struct conn *c) {
  c->no_wait = 1;
  conn_fail(c);
}
