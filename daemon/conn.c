/* conn.c - per-connection state machine: read, answer in order, time out,
 * log; see conn.h.
 *
 * States: READING (waiting for request bytes; idle or request timeout),
 * SENDING (header then body; send timeout, no reading), YIELD (a complete
 * request is waiting but this connection has had its turn; resumes on the
 * next loop iteration), CLOSING (handles closing, memory freed after). */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accesslog.h"
#include "log.h"
#include "stream.h"

#define CONN_SEND_CHUNK (1u << 20)  /* bytes asked of one sendfile call */
#define CONN_SEND_BUDGET (4u << 20) /* bytes per turn before yielding */
#define CONN_REQ_BUDGET 16          /* pipelined requests per turn */

struct conn_buf {
  struct conn_buf *next;      /* worker's spare list */
  uint8_t req[PFP_REQ_MAX];   /* request bytes received, not yet answered */
  uint8_t resp[PFP_RESP_MAX]; /* response header + message being sent */
};

enum conn_state { CONN_READING, CONN_SENDING, CONN_YIELD, CONN_CLOSING };
enum conn_timer { TIMER_NONE, TIMER_IDLE, TIMER_REQUEST, TIMER_SEND };

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
  uint64_t bytes;            /* body bytes sent */
  size_t resp_len, resp_off; /* header + message bytes, and sent so far */
  int progressed;            /* bytes moved since the send timer was set */
  int64_t start_ms;          /* wall clock at the request, for the log */
  uint64_t start_ns;         /* monotonic, for the duration */
};

static atomic_uint total;

int conn_reserve(unsigned max) {
  unsigned cur = atomic_load(&total);
  do {
    if (cur >= max)
      return 0;
  } while (!atomic_compare_exchange_weak(&total, &cur, cur + 1));
  return 1;
}

void conn_unreserve(void) { atomic_fetch_sub(&total, 1); }

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
                                        : cfg->send_timeout_ms;
  c->timer_kind = kind;
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

static const char *op_name(const struct pfp_request *r) {
  return r->op == PFP_OP_GET ? "GET" : r->op == PFP_OP_STAT ? "STAT" : "-";
}

static void log_request(struct conn *c) {
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
      .status = c->status,
      .bytes = c->bytes,
      .size = c->size,
      .duration_us = (uv_hrtime() - c->start_ns) / 1000,
  };
  /* FIRST CUT: issue 5 reserves the room before serving. */
  if (accesslog_write(&r) != 0)
    accesslog_lost(1);
}

/* A request starts when its first byte arrives: that is the time logged,
 * and its duration runs from there to its last byte sent. */
static void stamp(struct conn *c) {
  c->start_ms = accesslog_now_ms();
  c->start_ns = uv_hrtime();
}

static void begin(struct conn *c) {
  c->bytes = 0;
  c->size = 0;
  c->file = -1;
  c->body_left = 0;
  c->resp_off = 0;
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
    c->rlen -= c->req_len;
    memmove(c->buf->req, c->buf->req + c->req_len, c->rlen);
    if (c->rlen > 0)
      stamp(c); /* the next request's bytes are already here */
  }
  c->req_len = 0;
  memset(&c->req, 0, sizeof(c->req));
  if (broken || c->close_after) {
    conn_close(c);
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

/* Answer with a bare status (EPROTO, or a timed-out request) and close. */
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
  send_more(c);
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

/* A partial request that will never be completed (the client hung up, or
 * the daemon is stopping) is logged like a malformed one; no answer can go
 * out. Nothing happens without one. */
static void abandon_partial(struct conn *c) {
  if (c->rlen == 0)
    return;
  begin(c);
  c->status = PFP_EPROTO;
  log_request(c);
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
         * waits); then a partial one is abandoned. A client that keeps
         * sending is cut off by shutdown_timeout. */
        if (fill(c) > 0)
          continue;
        abandon_partial(c);
        conn_close(c);
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
    answer(c);
  }
}

static void read_more(struct conn *c) {
  ssize_t n = fill(c);

  if (n == -EAGAIN)
    return;
  if (n <= 0) {
    /* The client went away (or the socket failed, or memory ran out). */
    abandon_partial(c);
    conn_close(c);
    return;
  }
  process_input(c);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  struct conn *c = h->data;

  if (status < 0) {
    conn_abort(c);
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

  switch (c->timer_kind) {
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
    conn_abort(c);
    break;
  case TIMER_NONE:
    break;
  }
}

static void on_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  struct worker *w = c->w;

  if (--c->handles > 0)
    return;
  free(c);
  conn_unreserve();
  worker_conn_closed(w);
}

static void conn_close(struct conn *c) {
  struct worker *w = c->w;

  if (c->state == CONN_CLOSING)
    return;
  c->state = CONN_CLOSING;
  uv_timer_stop(&c->timer);
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

void conn_start(struct worker *w, int fd, uint64_t conn_id) {
  struct conn *c = calloc(1, sizeof(*c));
  int rc;

  if (c == NULL) {
    log_error("conn %llu: out of memory", (unsigned long long)conn_id);
    goto fail;
  }
  rc = identity_peer(fd, &c->peer);
  if (rc != 0) {
    /* No kernel-given identity, no service. */
    log_warn("conn %llu: cannot read peer credentials: %s",
             (unsigned long long)conn_id, strerror(-rc));
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
  conn_unreserve();
}

void conn_drain(struct conn *c) {
  /* A response in flight finishes first; then (as now for one waiting)
   * process_input answers the requests already received and closes. */
  if (c->state == CONN_YIELD)
    c->state = CONN_READING;
  if (c->state == CONN_READING)
    process_input(c);
}

void conn_abort(struct conn *c) {
  if (c->state == CONN_SENDING)
    finish(c, 1);
  else
    conn_close(c);
}
