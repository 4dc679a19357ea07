/* conn.c - per-connection state machine on stream callbacks: read, answer
 * in order, time out, log; see conn.h.
 *
 * States: READING (waiting for request bytes; idle or request timeout),
 * LOGWAIT (a complete request waits for room for its line in the access
 * log: nothing is read, a short timer retries, send_timeout bounds the
 * wait), SENDING (header then body, one stream operation at a time; send
 * timeout, no reading), FLUSHING (the connection is over but the lines of
 * requests it read and never answered wait for room in the access log,
 * bounded by send_timeout), CLOSING (handles closing, memory freed after).
 * A READING or SENDING connection that has had its turn (CONN_REQ_BUDGET
 * requests, CONN_TURN_NS of wall time answering them, or CONN_SEND_BUDGET
 * body bytes, without waiting) is parked on the host's ready list
 * (c->yielded) and goes on in conn_resume().
 *
 * A stream operation may complete before the call that started it returns
 * (stream.h). send_more() starts them in a loop and marks that it is
 * inside (c->in_send): a completion that arrives then only records its
 * result and the loop goes on, so pipelined answers never recurse; one that
 * arrives later, from the loop, calls send_more() itself.
 *
 * The audit rule ("no line, no byte"): a request is served only while the
 * room for its line is held (an access-log ticket), and every request read
 * gets exactly one line: its answer's, ABANDONED when the connection ended
 * before it was answered, or EPROTO for bytes that never formed a whole
 * request.
 *
 * A compat connection (conn_start_proto, CONN_COMPAT) runs its own short
 * sequence instead, at the end of this file (compat_*): greeting, one name
 * frame, the answer frame, close; the same timers, access-log rule,
 * identity and open (serve_text), and the host's stop and abort. */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accesslog.h"
#include "compat.h"
#include "identity.h"
#include "live.h"
#include "log.h"
#include "resolve.h"
#include "serve.h"
#include "stream.h"

#define CONN_SEND_BUDGET (4u << 20) /* body bytes per turn before yielding */
#define CONN_REQ_BUDGET 16          /* pipelined requests per turn */
/* Wall time per turn: past it, after at least one answer, the connection
 * yields. Requests differ in cost by orders of magnitude (a STAT through a
 * chain of long symlinks takes milliseconds of path walking), so a count
 * alone lets one user's connections hold a worker for seconds at a time. */
#define CONN_TURN_NS 1000000u
#define CONN_LOG_RETRY_MS 3 /* retry for room in the access log */
/* A body this large gets the configured send buffer (send_buffer): the
 * kernel's default (about 200 KiB) holds a large file to a fraction of
 * what a Unix socket can move; a small answer needs no more. */
#define CONN_BIG_BODY (256u << 10)
/* Connections of one host (worker) that hold send_buffer at once, until
 * they close: a client that stops reading pins up to twice send_buffer of
 * kernel memory, so this bounds what any number of them can pin (the
 * others send with the kernel's default; docs/design.md, "Bounds"). */
#define CONN_BIG_BUFFERS 8
#define NO_FILE ((uv_os_fd_t)-1) /* c->file when there is none */
#define COMPAT_SKIP_BUF 512      /* reads a too-long name, to drop it */

struct conn_buf {
  uint8_t req[PFP_REQ_MAX];        /* request bytes received, not yet
                                      answered */
  uint8_t resp[PFP_RESP_MAX];      /* response header + message being sent */
  char resolved[PFP_PATH_MAX + 2]; /* normalised path of the request being
                                      answered, for its line (serve.c's
                                      copy is the worker's, reused by the
                                      next request of any connection) */
};

_Static_assert(sizeof(struct conn_buf) <= CONN_BUF_SIZE,
               "CONN_BUF_SIZE must hold a struct conn_buf");

enum conn_state {
  CONN_READING,
  CONN_LOGWAIT,
  CONN_SENDING,
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
  struct conn_host *host;
  struct conn_link link; /* the host's */
  struct stream stream;  /* the client's transport */
  uv_timer_t timer;      /* the one timeout in force */
  uint64_t id;           /* connection id in the access log */
  struct identity peer;  /* from the kernel at accept */
  uint32_t key;          /* user key its place is counted under */
  const char *over;      /* why its user is over a limit: refuse (EBUSY) */
  enum conn_state state;
  enum conn_timer timer_kind;
  uint64_t timer_due;   /* loop ms timer_kind is due (arm_ms) */
  uint64_t timer_since; /* loop ms when TIMER_SEND was armed */
  int handles;          /* handles (stream, timer) not yet closed */
  int yielded;          /* parked on the host's ready list */
  int big_buffer;       /* send_buffer was asked for */
  int head_apart;       /* the stream cannot join head and body */
  struct conn_buf *buf; /* NULL while idle */
  size_t rlen;          /* bytes in buf->req */
  unsigned turn;        /* requests answered in this turn */
  uint64_t turn_ns;     /* monotonic ns when this turn began */

  /* The request being answered. */
  struct pfp_request req; /* path points into buf->req */
  size_t req_len;         /* its bytes in buf->req; 0 if undecodable */
  int close_after;        /* CLOSE flag, EPROTO, or shutting down */
  int status;
  uint64_t size;   /* file size, for the log */
  uv_os_fd_t file; /* body source, or NO_FILE */
  uint64_t file_off;
  uint64_t body_left;
  uint64_t version;    /* the file's, at the open (resolve_stat) */
  int checked;         /* the file was found unchanged before the last byte */
  uint64_t bytes;      /* body bytes sent */
  size_t resp_len;     /* header + message bytes */
  int resp_sent;       /* the header is out */
  int in_send;         /* send_more() is running */
  int op_pending;      /* a stream operation is in flight */
  int op_err;          /* how the last one failed, or 0 */
  int64_t start_ms;    /* wall clock at the request, for the log */
  uint64_t start_ns;   /* monotonic, for the duration */
  size_t resolved_len; /* bytes in buf->resolved; 0 = none */
  struct accesslog_ticket ticket; /* room for the line of the request being
                                     answered; held while it is served */

  /* Waiting for room in the access log (LOGWAIT, FLUSHING). */
  uint64_t wait_since; /* monotonic ns when the wait began; 0 = none */
  int no_wait;         /* lines that find no room are given up at once */

  /* The compat protocol (proto CONN_COMPAT; compat_* below). */
  enum conn_proto proto;
  int cstep;                    /* enum compat_step */
  int asked;                    /* a byte of the name arrived: one line */
  int logged;                   /* that line is written (or lost) */
  uint8_t chdr[COMPAT_HDR_LEN]; /* the name frame's length */
  size_t chdr_got;
  uint8_t *cname; /* the name's UTF-16 bytes, then its UTF-8
                     (malloc'd once its length is known) */
  size_t cname_len, cname_got;
  struct compat_answer *cans; /* malloc'd when answering */
  char cwhy[96]; /* conn_refuse's reason, kept: it is answered later */
};

/* A compat answer: the frame, and the path it resolved to for the log. */
struct compat_answer {
  uint8_t frame[COMPAT_FRAME_BUF];
  char resolved[PFP_PATH_MAX + 2];
};

struct conn_link *conn_link(struct conn *c) {
  return &c->link;
}

static void on_timer(uv_timer_t *t);
static void on_alloc(struct stream *s, size_t suggested, uv_buf_t *b);
static void on_read(struct stream *s, ssize_t nread, const uv_buf_t *b);
static void process_input(struct conn *c);
static void send_more(struct conn *c);
static void conn_end(struct conn *c);
static void conn_close(struct conn *c);
static void on_stream_closed(struct stream *s);
static void compat_on_timer(struct conn *c, enum conn_timer kind);
static void compat_begin(struct conn *c);
static void compat_drain(struct conn *c);
static void compat_abort(struct conn *c);

static const struct config *cfg_of(const struct conn *c) {
  return &c->host->live->cfg;
}

/* Arm kind for ms from now. A keep-alive connection re-arms at every
 * request, and restarting a uv timer costs a removal from the loop's timer
 * heap and an insertion (with a thousand connections on a worker, cache
 * misses all the way): a timer already due no later than the new time is
 * left to fire, and on_timer() puts it off to timer_due. */
static void arm_ms(struct conn *c, enum conn_timer kind, uint64_t ms) {
  c->timer_kind = kind;
  c->timer_due = uv_now(c->host->loop) + ms;
  if (!uv_is_active((uv_handle_t *)&c->timer) ||
      uv_timer_get_due_in(&c->timer) > ms)
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void arm(struct conn *c, enum conn_timer kind) {
  const struct config *cfg = cfg_of(c);
  unsigned ms = kind == TIMER_IDLE      ? cfg->idle_timeout_ms
                : kind == TIMER_REQUEST ? cfg->request_timeout_ms
                : kind == TIMER_LOG     ? CONN_LOG_RETRY_MS
                                        : cfg->send_timeout_ms;
  if (kind == TIMER_SEND)
    c->timer_since = uv_now(c->host->loop);
  arm_ms(c, kind, ms);
}

/* Around a call that may wait on the file system for good (a FUSE or
 * network file system that stops answering): the host sees it from
 * another thread (conn_host.fs_busy). */
static void fs_busy(struct conn *c, const char *what, const char *path,
                    size_t len) {
  if (c->host->fs_busy != NULL)
    c->host->fs_busy(c->host, c, what, path, len);
}

static void fs_done(struct conn *c) {
  if (c->host->fs_done != NULL)
    c->host->fs_done(c->host);
}

/* Let the host's other connections go first; conn_resume() goes on. */
static void yield(struct conn *c) {
  c->yielded = 1;
  c->host->yield(c->host, c);
}

static const char *op_name(const struct pfp_request *r) {
  return r->op == PFP_OP_GET ? "GET" : r->op == PFP_OP_STAT ? "STAT" : "-";
}

/* The line of the request in c->req (decoded as far as it could be). */
static struct access_record record_of(const struct conn *c, int status,
                                      uint64_t bytes, uint64_t size) {
  unsigned uid = 0, gid = 0;

  (void)identity_log_ids(&c->peer, &uid, &gid);
  struct access_record r = {
      .time_ms = c->start_ms,
      .worker = c->host->worker_id,
      .conn = c->id,
      .pid = c->peer.pid,
      .uid = uid,
      .gid = gid,
      .proto = c->proto == CONN_COMPAT ? "compat" : "pfp1",
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
static void put_line(struct conn *c, const struct access_record *r) {
  if (c->ticket.bytes > 0)
    accesslog_commit(&c->ticket, r);
  else if (accesslog_write(r) != 0)
    accesslog_lost(1);
}

static void log_request(struct conn *c) {
  struct access_record r = record_of(c, c->status, c->bytes, c->size);

  if (c->resolved_len > 0) {
    r.resolved = c->buf->resolved;
    r.resolved_len = c->resolved_len;
  }
  put_line(c, &r);
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

static void close_file(struct conn *c) {
  if (c->file == NO_FILE)
    return;
  resolve_close(c->file);
  c->file = NO_FILE;
}

static void begin(struct conn *c) {
  c->bytes = 0;
  c->size = 0;
  c->file = NO_FILE;
  c->body_left = 0;
  c->checked = 0;
  c->resp_sent = 0;
  c->op_err = 0;
  c->resolved_len = 0;
  c->state = CONN_SENDING;
}

/* The response to the request at the head of the buffer is out (or the
 * connection broke): log it and move on to the next request. */
static void finish(struct conn *c, int broken) {
  log_request(c);
  close_file(c);
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

/* A stream operation that completed later, from the loop, goes on here:
 * the rest of the response, then the requests already received. */
static void continue_sending(struct conn *c) {
  if (c->in_send || c->state != CONN_SENDING)
    return; /* send_more() picks it up, or the connection is closing */
  send_more(c);
  if (c->state == CONN_READING && !c->yielded)
    process_input(c);
}

static void on_written(struct stream *s, int status) {
  struct conn *c = s->data;

  c->op_pending = 0;
  if (status < 0)
    c->op_err = status;
  else
    c->resp_sent = 1;
  continue_sending(c);
}

static void on_file_sent(struct stream *s, int status, uint64_t sent) {
  struct conn *c = s->data;

  c->op_pending = 0;
  c->body_left -= sent;
  c->bytes += sent;
  c->file_off += sent;
  if (status == UV_EOF) {
    /* The file shrank under us: the body cannot be completed, and the
     * protocol says a short body ends the connection. */
    log_warn("conn %llu: file ended %llu bytes early; closing",
             (unsigned long long)c->id, (unsigned long long)c->body_left);
  } else if (status < 0 && status != UV_EPIPE && status != UV_ECONNRESET &&
             status != UV_ECANCELED) {
    log_warn("conn %llu: sending body: %s", (unsigned long long)c->id,
             uv_strerror(status));
  }
  if (status < 0)
    c->op_err = status;
  continue_sending(c);
}

static void on_head_sent(struct stream *s, int status, uint64_t sent) {
  struct conn *c = s->data;

  /* On success the head went before the body; on failure the connection
   * ends, and only the body bytes sent count for the log. */
  c->resp_sent = 1;
  on_file_sent(s, status, sent);
}

/* How much of the body the next operation may send: a turn's budget, and
 * never the last byte of a body larger than STREAM_INLINE_MAX before
 * unchanged() has looked at the file again (a small one goes out whole, in
 * one read, right after the open). */
static int unchanged(struct conn *c);

static uint64_t body_chunk(const struct conn *c) {
  uint64_t chunk =
      c->body_left < CONN_SEND_BUDGET ? c->body_left : CONN_SEND_BUDGET;

  if (!c->checked && chunk == c->body_left)
    chunk--;
  return chunk;
}

/* Before the last byte of a body: is the file still the one whose size the
 * header announced? One truncated and rewritten in place while it was sent
 * (what cp or a shell's > does) would give the client old bytes then new
 * ones, with every byte it was promised: that must end short instead, the
 * protocol's sign that the body is not whole. */
static int unchanged(struct conn *c) {
  struct resolve_stat st;

  c->checked = 1;
  if (resolve_fstat(c->file, &st) == 0 && st.size == c->size &&
      st.version == c->version)
    return 1;
  log_warn("conn %llu: the file changed while it was sent; closing %llu "
           "bytes short",
           (unsigned long long)c->id, (unsigned long long)c->body_left);
  return 0;
}

/* Send the rest of the response, one stream operation after another, until
 * one has to wait (its callback goes on), the body has had this turn's
 * budget (the host's ready list goes on), or it is all out (finish()). */
static void send_more(struct conn *c) {
  uint64_t turn_bytes = 0;
  int rc;

  c->in_send = 1;
  while (!c->op_pending && c->op_err == 0) {
    if (!c->resp_sent && c->body_left > 0 && !c->head_apart) {
      /* Head and body as one operation: one send for a small file. */
      uint64_t chunk = body_chunk(c);
      uint64_t before = c->bytes;
      c->op_pending = 1;
      fs_busy(c, "read", c->buf->resolved, c->resolved_len);
      rc = stream_send_head_file(
          &c->stream, c->buf->resp, c->resp_len, c->file, c->file_off, chunk,
          c->host->scratch != NULL ? c->host->scratch->text : NULL,
          on_head_sent);
      fs_done(c);
      if (rc == UV_ENOTSUP) {
        c->op_pending = 0;
        c->head_apart = 1; /* this platform sends them one by one */
        continue;
      }
      turn_bytes += c->bytes - before;
    } else if (!c->resp_sent) {
      c->op_pending = 1;
      rc = stream_write(&c->stream, c->buf->resp, c->resp_len, on_written);
    } else if (c->body_left > 0 && turn_bytes < CONN_SEND_BUDGET) {
      if (!c->checked && c->body_left == 1) {
        int same;
        fs_busy(c, "read", c->buf->resolved, c->resolved_len);
        same = unchanged(c);
        fs_done(c);
        if (!same) {
          c->op_err = UV_EIO; /* the connection ends short */
          continue;
        }
      }
      uint64_t chunk = body_chunk(c);
      uint64_t before = c->bytes;
      c->op_pending = 1;
      fs_busy(c, "read", c->buf->resolved, c->resolved_len);
      rc = stream_send_file(&c->stream, c->file, c->file_off, chunk,
                            on_file_sent);
      fs_done(c);
      turn_bytes += c->bytes - before;
    } else {
      break;
    }
    if (rc != 0) {
      c->op_pending = 0;
      c->op_err = rc;
    }
  }
  c->in_send = 0;
  if (c->op_pending) {
    /* The send timeout counts time without progress (on_timer). */
    if (c->timer_kind != TIMER_SEND)
      arm(c, TIMER_SEND);
  } else if (c->op_err != 0) {
    finish(c, 1);
  } else if (c->body_left > 0) {
    yield(c); /* a turn's worth sent without waiting */
  } else {
    finish(c, 0);
  }
}

/* Answer with a bare status (EPROTO, EBUSY, or a timed-out request) and
 * close. */
static void respond_status(struct conn *c, int status, const char *why) {
  begin(c);
  c->status = status;
  c->close_after = 1;
  stream_read_stop(&c->stream);
  if (c->buf == NULL) {
    c->buf = c->host->buf_get(c->host);
    if (c->buf == NULL) {
      conn_close(c);
      return;
    }
  }
  c->resp_len = serve_status_only(c->buf->resp, status, why);
  send_more(c);
}

/* Count c under the user its request shows it to be. Where the platform
 * knows the user at accept (Linux: the kernel's uid) nothing changes; on
 * Windows the user is known only once the client has written, so the
 * connection was counted under an accept-time key (the client process's
 * user if readable, else "unknown") and moves now, within that user's
 * limit. An identity that cannot be completed is left to serve_request,
 * which refuses it. */
static void count_as_user(struct conn *c) {
  uint32_t key;

  if (c->over != NULL || c->host->rekey == NULL || c->host->scratch == NULL)
    return;
  if (identity_complete(&c->peer, stream_fd(&c->stream),
                        &c->host->scratch->id) != 0)
    return;
  key = identity_user_key(&c->peer);
  if (key == c->key)
    return;
  if (c->host->rekey(c->host, c->key, key) == 0)
    c->key = key;
  else
    c->over = "per-user connection limit reached";
}

static void answer(struct conn *c) {
  struct serve_result res;

  begin(c);
  c->close_after = c->req.close;
  if (c->over != NULL) {
    c->status = PFP_EBUSY;
    c->close_after = 1;
    c->resp_len = serve_status_only(c->buf->resp, PFP_EBUSY, c->over);
    send_more(c);
    return;
  }
  fs_busy(c, "open", c->req.path, c->req.path_len);
  serve_request(c->host->live, stream_fd(&c->stream), c->id, &c->peer, &c->req,
                c->host->scratch, c->buf->resp, &res);
  fs_done(c);
  c->status = res.status;
  c->size = res.file_size;
  c->file = res.fd;
  c->file_off = res.offset;
  c->body_left = res.body_len;
  c->version = res.version;
  /* A small body is read whole at once, right after the open: nothing to
   * look at again (body_chunk). */
  c->checked = res.body_len <= STREAM_INLINE_MAX;
  c->resp_len = res.resp_len;
  if (c->body_left >= CONN_BIG_BODY && !c->big_buffer &&
      cfg_of(c)->send_buffer > 0 && c->host->big_buffers < CONN_BIG_BUFFERS) {
    /* Best effort: without it the body goes out all the same. */
    c->big_buffer = 1;
    c->host->big_buffers++;
    (void)stream_send_buffer(&c->stream, cfg_of(c)->send_buffer);
  }
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
  stream_read_stop(&c->stream);
  arm(c, TIMER_LOG);
}

/* Whether the wait for room in the access log has lasted send_timeout. */
static int waited_enough(const struct conn *c) {
  uint64_t limit_ns = (uint64_t)cfg_of(c)->send_timeout_ms * 1000000u;
  return c->wait_since != 0 && uv_hrtime() - c->wait_since >= limit_ns;
}

/* Hold room in the access log for the line of the request in c->req before
 * it is served. Returns 1 when held; 0 when c now waits for room (LOGWAIT)
 * or, having waited send_timeout, was refused with EBUSY. */
static int hold_ticket(struct conn *c) {
  if (c->ticket.bytes > 0)
    return 1;
  if (accesslog_reserve(&c->ticket, identity_user_key(&c->peer),
                        c->req.path_len) == 0) {
    c->wait_since = 0;
    return 1;
  }
  if (waited_enough(c)) {
    log_debug("conn %llu: no room in the access log for %u ms; refusing",
              (unsigned long long)c->id, cfg_of(c)->send_timeout_ms);
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

/* Take a buffer from the host if the connection holds none. */
static int have_buf(struct conn *c) {
  if (c->buf == NULL) {
    c->buf = c->host->buf_get(c->host);
    if (c->buf == NULL) {
      log_error("conn %llu: out of memory", (unsigned long long)c->id);
      return 0;
    }
  }
  return 1;
}

static void compat_alloc(struct conn *c, uv_buf_t *b);
static void compat_read(struct conn *c, ssize_t nread);

static void on_alloc(struct stream *s, size_t suggested, uv_buf_t *b) {
  struct conn *c = s->data;

  (void)suggested;
  if (c->proto == CONN_COMPAT) {
    compat_alloc(c, b);
    return;
  }
  /* A full buffer gets no room (the read fails, UV_ENOBUFS): a valid
   * request never needs more than PFP_REQ_MAX bytes. */
  if (!have_buf(c) || c->rlen == PFP_REQ_MAX)
    return;
  *b = uv_buf_init((char *)c->buf->req + c->rlen,
                   (unsigned)(PFP_REQ_MAX - c->rlen));
}

/* Bytes arrived in the request buffer. */
static void got(struct conn *c, size_t n) {
  if (c->rlen == 0)
    stamp(c); /* a request starts with its first byte */
  c->rlen += n;
}

static void on_read(struct stream *s, ssize_t nread, const uv_buf_t *b) {
  struct conn *c = s->data;

  (void)b;
  if (c->proto == CONN_COMPAT) {
    compat_read(c, nread);
    return;
  }
  if (nread == 0 || c->state != CONN_READING)
    return;
  if (nread < 0) {
    /* The client went away (or the socket failed, or memory ran out). */
    conn_end(c);
    return;
  }
  got(c, (size_t)nread);
  process_input(c);
}

/* Log each request left in the buffer, oldest first: a whole one as
 * ABANDONED (read, never answered), a partial or malformed one as EPROTO
 * (nothing after it can be told apart). Returns 0 when the buffer is
 * empty, or UV_EAGAIN when the access log had no room (the rest stays). */
static int log_leftovers(struct conn *c) {
  const char *why;
  int n, rc = 0;

  while (c->rlen > 0) {
    n = pfp_request_decode(c->buf->req, c->rlen, &c->req, &why);
    struct access_record r =
        record_of(c, n > 0 ? ACCESS_ABANDONED : PFP_EPROTO, 0, 0);
    if (accesslog_write(&r) != 0) {
      rc = UV_EAGAIN;
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
 * flight is logged with what was sent, and the requests behind it. An
 * operation in flight is cancelled by closing the stream; its callback
 * brings the bytes it sent, and finishes the response from there. */
static void conn_fail(struct conn *c) {
  if (c->state == CONN_SENDING && c->op_pending)
    stream_close(&c->stream, on_stream_closed);
  else if (c->state == CONN_SENDING)
    finish(c, 1);
  else if (c->state != CONN_CLOSING)
    conn_end(c);
}

/* Answer every complete request in the buffer, within this turn's budget. */
static void process_input(struct conn *c) {
  const char *why;
  int n;

  c->turn = 0;
  c->turn_ns = uv_hrtime();
  while (c->state == CONN_READING && !c->yielded) {
    n = pfp_request_decode(c->buf ? c->buf->req : NULL, c->rlen, &c->req, &why);
    if (n < 0) {
      c->req_len = 0;
      respond_status(c, PFP_EPROTO, why);
      return;
    }
    if (n == 0) {
      if (c->host->stopping) {
        /* Shutting down: requests the client already sent are answered,
         * including those still in the socket (one more read, which never
         * waits); then a partial one is abandoned (conn_end logs it). A
         * client that keeps sending is cut off by shutdown_timeout. */
        stream_read_stop(&c->stream);
        if (have_buf(c) && c->rlen < PFP_REQ_MAX) {
          ssize_t got_now = stream_try_read(&c->stream, c->buf->req + c->rlen,
                                            PFP_REQ_MAX - c->rlen);
          if (got_now > 0) {
            got(c, (size_t)got_now);
            continue;
          }
        }
        conn_end(c);
        return;
      }
      /* Keep what was decoded of a partial request: a time-out logs it. */
      if (c->rlen == 0) {
        /* Idle: give the buffer back; an idle connection holds none. */
        c->host->buf_put(c->host, c->buf);
        c->buf = NULL;
        if (c->timer_kind != TIMER_IDLE)
          arm(c, TIMER_IDLE);
      } else if (c->timer_kind != TIMER_REQUEST) {
        arm(c, TIMER_REQUEST);
      }
      if (stream_read_start(&c->stream, on_alloc, on_read) != 0)
        conn_end(c);
      return;
    }
    if (c->turn == CONN_REQ_BUDGET ||
        (c->turn > 0 && uv_hrtime() - c->turn_ns >= CONN_TURN_NS)) {
      /* Many pipelined requests, or costly ones: the others go first. */
      stream_read_stop(&c->stream);
      yield(c);
      return;
    }
    c->turn++;
    c->req_len = (size_t)n;
    /* While it is answered nothing is read: a client that pipelines
     * faster than it reads is held back by its own socket. */
    stream_read_stop(&c->stream);
    count_as_user(c);
    if (!hold_ticket(c))
      return;
    answer(c);
  }
}

static void on_timer(uv_timer_t *t) {
  struct conn *c = t->data;
  enum conn_timer kind = c->timer_kind;
  uint64_t now = uv_now(c->host->loop);

  if (kind != TIMER_NONE && now < c->timer_due) {
    /* armed earlier for sooner, and since re-armed for later (arm_ms) */
    uv_timer_start(&c->timer, on_timer, c->timer_due - now, 0);
    return;
  }
  c->timer_kind = TIMER_NONE;
  if (c->proto == CONN_COMPAT) {
    compat_on_timer(c, kind);
    return;
  }
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
  case TIMER_SEND: {
    /* Time without progress: from the later of the arming and the last
     * byte out. Bytes still moving buy another round. */
    uint64_t since = stream_last_sent_ms(&c->stream);
    uint64_t limit = cfg_of(c)->send_timeout_ms;
    if (since < c->timer_since)
      since = c->timer_since;
    if (c->state == CONN_SENDING && now - since < limit) {
      arm_ms(c, TIMER_SEND, limit - (now - since));
      break;
    }
    log_debug("conn %llu: no progress sending for %u ms; closing",
              (unsigned long long)c->id, cfg_of(c)->send_timeout_ms);
    conn_fail(c);
    break;
  }
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

static void handle_closed(struct conn *c) {
  struct conn_host *h = c->host;

  if (--c->handles > 0)
    return;
  h->closed(h, c, c->key);
  free(c);
}

static void on_stream_closed(struct stream *s) { handle_closed(s->data); }

static void on_timer_closed(uv_handle_t *t) { handle_closed(t->data); }

static void conn_close(struct conn *c) {
  if (c->state == CONN_CLOSING)
    return;
  c->state = CONN_CLOSING;
  if (c->big_buffer)
    c->host->big_buffers--; /* its socket, and what it pins, go now */
  uv_timer_stop(&c->timer);
  accesslog_cancel(&c->ticket); /* none is held here; never leak room */
  stream_close(&c->stream, on_stream_closed);
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
  close_file(c);
  c->host->buf_put(c->host, c->buf);
  c->buf = NULL;
  free(c->cname);
  c->cname = NULL;
  free(c->cans);
  c->cans = NULL;
}

/* A connection on h for fd, or NULL (fd closed, the reason logged). */
static struct conn *conn_new(struct conn_host *h, uv_os_fd_t fd,
                             uint64_t conn_id, const struct identity *peer,
                             int *rc) {
  struct conn *c = calloc(1, sizeof(*c));

  if (c == NULL) {
    log_error("conn %llu: out of memory", (unsigned long long)conn_id);
    *rc = UV_ENOMEM;
    goto fail;
  }
  *rc = stream_init(h->loop, &c->stream, fd);
  if (*rc != 0) {
    log_error("conn %llu: %s", (unsigned long long)conn_id, uv_strerror(*rc));
    goto fail;
  }
  uv_timer_init(h->loop, &c->timer);
  c->stream.data = c;
  c->timer.data = c;
  c->handles = 2;
  c->host = h;
  c->id = conn_id;
  c->peer = *peer;
  c->key = identity_user_key(peer);
  c->file = NO_FILE;
  c->state = CONN_READING;
  return c;
fail:
  free(c);
  stream_discard(fd);
  return NULL;
}

int conn_start_proto(struct conn_host *h, uv_os_fd_t fd, uint64_t conn_id,
                     const struct identity *peer, enum conn_proto proto,
                     struct conn **out) {
  int rc;
  struct conn *c = conn_new(h, fd, conn_id, peer, &rc);

  *out = c;
  if (c == NULL)
    return rc;
  c->proto = proto;
  if (proto == CONN_COMPAT) {
    compat_begin(c); /* h->closed runs from the loop, never before return */
    return 0;
  }
  /* The request is usually here already (clients connect and write at
   * once): answered now, a one-request connection is served without ever
   * waiting on the loop. It may end here too; h->closed still runs from
   * the loop (the timer's close), never before this returns. */
  if (have_buf(c)) {
    ssize_t n = stream_try_read(&c->stream, c->buf->req, PFP_REQ_MAX);
    if (n > 0)
      got(c, (size_t)n);
  }
  process_input(c); /* or starts reading */
  return 0;
}

int conn_start(struct conn_host *h, uv_os_fd_t fd, uint64_t conn_id,
               const struct identity *peer, struct conn **out) {
  return conn_start_proto(h, fd, conn_id, peer, CONN_PFP1, out);
}

int conn_refuse(struct conn_host *h, uv_os_fd_t fd, uint64_t conn_id,
                const struct identity *peer, enum conn_proto proto,
                const char *why) {
  int rc;
  struct conn *c = conn_new(h, fd, conn_id, peer, &rc);

  if (c == NULL)
    return rc;
  if (proto == CONN_COMPAT) {
    c->proto = proto;
    /* Answered once the name is read: why is the caller's, copy it. */
    snprintf(c->cwhy, sizeof(c->cwhy), "%s",
             why != NULL ? why : pfp_status_message(PFP_EBUSY));
    c->over = c->cwhy;
    compat_begin(c);
    return 0;
  }
  stamp(c);
  /* A fresh socket has room for the small answer: it goes out at once, the
   * line is written and c closes; the send timeout bounds the odd case. */
  respond_status(c, PFP_EBUSY, why);
  return 0;
}

void conn_resume(struct conn *c) {
  if (!c->yielded || c->proto == CONN_COMPAT) /* compat never yields */
    return;
  c->yielded = 0;
  if (c->state == CONN_SENDING) {
    send_more(c);
    if (c->state == CONN_READING && !c->yielded)
      process_input(c);
  } else if (c->state == CONN_READING) {
    process_input(c);
  }
}

void conn_drain(struct conn *c) {
  if (c->proto == CONN_COMPAT) {
    compat_drain(c);
    return;
  }
  /* A response in flight finishes first; then (as now for one waiting)
   * process_input answers the requests already received and closes. A
   * connection waiting for the access log goes on waiting; one on the
   * ready list goes on from there. */
  if (c->state == CONN_READING && !c->yielded)
    process_input(c);
}

void conn_abort(struct conn *c) {
  c->no_wait = 1;
  if (c->proto == CONN_COMPAT)
    compat_abort(c);
  else
    conn_fail(c);
}

void conn_abandon_stuck(struct conn *c) {
  struct access_record r = record_of(c, ACCESS_ABANDONED, c->bytes, c->size);

  if (c->resolved_len > 0 && c->buf != NULL && c->proto != CONN_COMPAT) {
    r.resolved = c->buf->resolved;
    r.resolved_len = c->resolved_len;
  }
  put_line(c, &r);
}

/* ---- the compat protocol ---------------------------------------------- */

/* Where a compat connection is. The PFP/1 state stays CONN_READING until
 * CONN_CLOSING (conn_close's guard); the step says the rest. */
enum compat_step {
  CS_GREET,   /* the greeting is being sent */
  CS_NAME,    /* reading the name frame (request_timeout) */
  CS_LOGWAIT, /* waiting for room for its line in the access log */
  CS_ANSWER   /* the answer frame is being sent (send_timeout) */
};

static void compat_write(struct conn *c, const uint8_t *buf, size_t len);

/* The connection is over: the line of its request, if it asked one and it
 * is not written yet (with its ticket, else written if there is room and
 * counted as lost if not: compat never waits at the end), then close. */
static void compat_finish(struct conn *c) {
  if (c->asked && !c->logged) {
    struct access_record r = record_of(c, c->status, c->bytes, c->size);
    if (c->cans != NULL && c->resolved_len > 0) {
      r.resolved = c->cans->resolved;
      r.resolved_len = c->resolved_len;
    }
    c->logged = 1;
    put_line(c, &r);
  }
  conn_close(c);
}

static int compat_have_answer(struct conn *c) {
  if (c->cans == NULL)
    c->cans = malloc(sizeof(*c->cans));
  if (c->cans == NULL)
    log_error("conn %llu: out of memory", (unsigned long long)c->id);
  return c->cans != NULL;
}

/* Answer with an error text (status not OK), then close. */
static void compat_respond(struct conn *c, int status, const char *why) {
  stream_read_stop(&c->stream);
  c->status = status;
  c->bytes = 0;
  c->body_left = 0;
  if (!compat_have_answer(c)) {
    compat_finish(c);
    return;
  }
  c->cstep = CS_ANSWER;
  compat_write(c, c->cans->frame,
               serve_text_status(c->cans->frame, status, why));
}

static void compat_written(struct stream *s, int status) {
  struct conn *c = s->data;

  c->op_pending = 0;
  if (c->state == CONN_CLOSING)
    return; /* closed meanwhile (abort): its line is already written */
  uv_timer_stop(&c->timer);
  c->timer_kind = TIMER_NONE;
  if (status < 0) {
    /* The client went away, or the send timed out (the stream was closed
     * under the write): the line says nothing of the text was sent. */
    if (c->cstep == CS_ANSWER)
      c->bytes = 0;
    compat_finish(c);
    return;
  }
  if (c->cstep == CS_ANSWER) {
    c->bytes = c->body_left; /* the text's bytes; 0 for an error text */
    compat_finish(c);
    return;
  }
  /* The greeting is out: the client sends its name now. */
  c->cstep = CS_NAME;
  if (c->host->stopping) {
    compat_finish(c);
    return;
  }
  arm(c, TIMER_REQUEST);
  if (stream_read_start(&c->stream, on_alloc, on_read) != 0)
    compat_finish(c);
}

/* One write, bounded by send_timeout; compat_written goes on. */
static void compat_write(struct conn *c, const uint8_t *buf, size_t len) {
  int rc;

  c->op_pending = 1;
  rc = stream_write(&c->stream, buf, len, compat_written);
  if (rc != 0) {
    c->op_pending = 0;
    compat_finish(c);
    return;
  }
  /* It may have completed already (and the connection moved on). */
  if (c->op_pending)
    arm(c, TIMER_SEND);
}

static void compat_begin(struct conn *c) {
  size_t len;
  const uint8_t *g = compat_greeting(&len);

  c->cstep = CS_GREET;
  compat_write(c, g, len);
}

/* Hold room for the line before serving, as process_input does. Returns 1
 * when held; 0 when c waits (CS_LOGWAIT) or was refused with EBUSY. */
static int compat_hold(struct conn *c) {
  if (accesslog_reserve(&c->ticket, identity_user_key(&c->peer),
                        c->req.path_len) == 0) {
    c->wait_since = 0;
    return 1;
  }
  if (waited_enough(c)) {
    c->no_wait = 1;
    c->wait_since = 0;
    compat_respond(c, PFP_EBUSY, "the access log is not keeping up; try again");
    return 0;
  }
  c->cstep = CS_LOGWAIT;
  wait_for_log(c);
  return 0;
}

/* The name is here and decoded: serve it, as the client. */
static void compat_serve(struct conn *c) {
  struct serve_result res;

  count_as_user(c);
  if (c->over != NULL || c->host->scratch == NULL) {
    /* Over a limit (or refused at the door): its line is written if there
     * is room, as PFP/1's refusals are. */
    compat_respond(c, PFP_EBUSY, c->over);
    return;
  }
  if (!compat_hold(c))
    return;
  if (!compat_have_answer(c)) {
    compat_finish(c);
    return;
  }
  fs_busy(c, "open", c->req.path, c->req.path_len);
  serve_text(c->host->live, stream_fd(&c->stream), c->id, &c->peer, c->req.path,
             c->req.path_len, c->host->scratch, c->cans->frame, &res);
  fs_done(c);
  c->status = res.status;
  c->size = res.file_size;
  c->body_left = res.body_len;
  if (res.resolved != NULL && res.resolved_len < sizeof(c->cans->resolved)) {
    memcpy(c->cans->resolved, res.resolved, res.resolved_len);
    c->resolved_len = res.resolved_len;
  }
  c->cstep = CS_ANSWER;
  compat_write(c, c->cans->frame, res.resp_len);
}

/* The whole name frame is in c->cname: decode it (into the same block,
 * after the UTF-16 bytes) and serve it. */
static void compat_named(struct conn *c) {
  char *utf8 = (char *)c->cname + c->cname_len;
  int n;

  stream_read_stop(&c->stream);
  uv_timer_stop(&c->timer);
  c->timer_kind = TIMER_NONE;
  n = compat_name_decode(c->cname, c->cname_len, utf8,
                         c->cname_len / 2 * 3 + 1);
  if (n < 0) {
    compat_respond(c, PFP_EPROTO,
                   "the file name is not valid UTF-16 (or holds U+0000)");
    return;
  }
  c->req.op = PFP_OP_GET;
  c->req.path = utf8;
  if ((size_t)n > PFP_PATH_MAX) {
    /* The log shows its first PFP_PATH_MAX bytes, as much as it holds. */
    c->req.path_len = PFP_PATH_MAX;
    compat_respond(c, PFP_ENOENT, "file name too long");
    return;
  }
  c->req.path_len = (uint16_t)n;
  compat_serve(c);
}

/* Bytes of the name frame arrived (into chdr, then cname). */
static void compat_got(struct conn *c, size_t n) {
  if (!c->asked) {
    c->asked = 1; /* the request starts with its first byte */
    stamp(c);
  }
  if (c->chdr_got < COMPAT_HDR_LEN) {
    c->chdr_got += n;
    if (c->chdr_got < COMPAT_HDR_LEN)
      return;
    c->cname_len = compat_frame_len(c->chdr);
    /* The UTF-16 bytes, then room for their UTF-8 (3 bytes per unit); a
     * name longer than any path is read through a small buffer and
     * dropped, so the client, still writing it, reads the refusal rather
     * than a reset connection. */
    c->cname = malloc(c->cname_len > COMPAT_NAME_MAX
                          ? COMPAT_SKIP_BUF
                          : c->cname_len + c->cname_len / 2 * 3 + 1);
    if (c->cname == NULL) {
      log_error("conn %llu: out of memory", (unsigned long long)c->id);
      compat_finish(c);
      return;
    }
  } else {
    c->cname_got += n;
  }
  if (c->cname_got < c->cname_len)
    return;
  if (c->cname_len > COMPAT_NAME_MAX) {
    compat_respond(c, PFP_ENOENT, "file name too long");
    return;
  }
  compat_named(c);
}

/* on_alloc and on_read, for a compat connection (called from those). */
static void compat_alloc(struct conn *c, uv_buf_t *b) {
  if (c->cstep != CS_NAME)
    return;
  if (c->chdr_got < COMPAT_HDR_LEN)
    *b = uv_buf_init((char *)c->chdr + c->chdr_got,
                     (unsigned)(COMPAT_HDR_LEN - c->chdr_got));
  else if (c->cname_len > COMPAT_NAME_MAX) /* dropped as it comes */
    *b = uv_buf_init((char *)c->cname,
                     (unsigned)(c->cname_len - c->cname_got < COMPAT_SKIP_BUF
                                    ? c->cname_len - c->cname_got
                                    : COMPAT_SKIP_BUF));
  else if (c->cname_got < c->cname_len)
    *b = uv_buf_init((char *)c->cname + c->cname_got,
                     (unsigned)(c->cname_len - c->cname_got));
}

static void compat_read(struct conn *c, ssize_t nread) {
  if (nread == 0 || c->cstep != CS_NAME || c->state == CONN_CLOSING)
    return;
  if (nread < 0) {
    /* The client went away with its name unsent or cut short. */
    c->status = PFP_EPROTO;
    compat_finish(c);
    return;
  }
  compat_got(c, (size_t)nread);
}

static void compat_on_timer(struct conn *c, enum conn_timer kind) {
  switch (kind) {
  case TIMER_REQUEST:
    if (!c->asked) {
      /* Greeted, and never a byte back: nothing was asked, no line. */
      log_debug("conn %llu: no file name within %u ms; closing",
                (unsigned long long)c->id, cfg_of(c)->request_timeout_ms);
      compat_finish(c);
    } else {
      compat_respond(c, PFP_EPROTO, "request timed out");
    }
    break;
  case TIMER_SEND:
    log_debug("conn %llu: no progress sending for %u ms; closing",
              (unsigned long long)c->id, cfg_of(c)->send_timeout_ms);
    /* The write is cancelled; compat_written finishes from there. */
    stream_close(&c->stream, on_stream_closed);
    break;
  case TIMER_LOG:
    if (c->cstep == CS_LOGWAIT)
      compat_serve(c);
    break;
  case TIMER_IDLE:
  case TIMER_NONE:
    break;
  }
}

/* Shutdown: a greeting or answer in flight finishes (send_timeout, then
 * shutdown_timeout, bound it) and a request waiting for the log goes on
 * waiting; a client still to send its name is not waited for. */
static void compat_drain(struct conn *c) {
  if (c->cstep != CS_NAME || c->state == CONN_CLOSING)
    return;
  c->status = PFP_EPROTO; /* a name cut short, if it had begun */
  compat_finish(c);
}

/* Shutdown grace over: close now, the line (if any) written if the log has
 * room. */
static void compat_abort(struct conn *c) {
  if (c->state == CONN_CLOSING)
    return;
  if (c->op_pending) {
    stream_close(&c->stream, on_stream_closed); /* compat_written goes on */
    return;
  }
  if (c->cstep == CS_LOGWAIT)
    c->status = ACCESS_ABANDONED;
  else if (c->cstep == CS_NAME)
    c->status = PFP_EPROTO;
  compat_finish(c);
}
