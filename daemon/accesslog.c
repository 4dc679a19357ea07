/* accesslog.c - the access log's queue and writer: reservations, per-user
 * shares, the writer thread, log_full. */

/* A bounded queue filled by the serving threads and one writer thread that
 * names users, formats (accesslog_format.c), batches and writes through a
 * destination (logsink.h); see accesslog.h.
 *
 * Map of this file:
 *   1. the queue: a byte ring and per-user shares under one mutex
 *   2. destinations: a sink and the line format it gets
 *   3. the user-name cache (writer thread only)
 *   4. the writer thread: batches, and what log_full does on a failure
 *   5. the lifecycle: start, reconfigure, reopen, stop
 *
 * Threads: any thread calls accesslog_reserve/commit/cancel/write/lost and
 * accesslog_reopen(); one control thread (the main loop) calls start,
 * reconfigure and stop. The queue and the hand-over fields live in `q`
 * under q.mu; everything in `w` belongs to the writer thread while it runs
 * and to the control thread before thread_start() and after the join. */
#include "accesslog.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "identity.h"
#include "log.h"
#include "logsink.h"
#include "proto.h"
#include "syserr.h"
#include "thread.h"

#define AL_BATCH_BYTES (256 * 1024)  /* formatted lines per write() */
#define AL_STAGE_BYTES (64 * 1024)   /* queued records taken per lock */
#define AL_TOKEN_MAX 15              /* proto and op are short constants */
#define AL_USER_CACHE 256            /* user-name cache entries */
#define AL_USER_TTL_MS 60000         /* re-look-up names older than this */
#define AL_REPORT_MS 10000           /* at most one drop report per 10 s */
#define AL_POLL_MS 1000              /* wait on a non-blocking fd, then fail */
#define AL_SYSLOG_WAIT_MS 100        /* wait for room at the syslog daemon */
#define AL_STOP_WAIT_MS 5000         /* on stop, wait this long for the drain */
#define AL_STOP_SPARE_MS 2000        /* ... of which the writer keeps this */
#define AL_FLUSH_MS 25               /* records wait at most this for a batch */
#define AL_WAKE_BYTES AL_STAGE_BYTES /* or until this much is queued */
#define AL_BACKOFF_MIN_MS 100        /* log_full = block: first retry */
#define AL_BACKOFF_MAX_MS 1000       /* the longest wait between retries */
#define AL_ERR_MAX 2048              /* one open error: a path and why */
#define AL_SYSLOG_LINE (LOGSINK_SYSLOG_MSG_MAX + 1) /* a syslog line, '\n' */

/* The per-user share table (see accesslog_reserve in accesslog.h): open
 * addressing; kept at most 3/4 full so probes stay short and one slot is
 * always free, which ends every probe. */
#define AL_UID_BITS 10
#define AL_UID_SLOTS (1u << AL_UID_BITS)
#define AL_UID_MAX_USED (AL_UID_SLOTS / 4 * 3)

_Static_assert(AL_BATCH_BYTES >= ACCESSLOG_LINE_MAX,
               "a batch must hold the longest line");
_Static_assert(AL_BATCH_BYTES >= AL_SYSLOG_LINE,
               "a batch must hold the longest syslog line");

/* ---- 1. the queue ----------------------------------------------------- */

/* A queued record: this header, then proto, op (each NUL-terminated), the
 * path and the resolved path. Records are copied in and out with memcpy,
 * so the ring needs no alignment. */
struct qhdr {
  uint32_t len;           /* the whole record, header included */
  uint8_t proto_len;      /* proto bytes, NUL included */
  uint8_t op_len;         /* op bytes, NUL included */
  uint8_t has_resolved;   /* r.resolved was not NULL ("-" otherwise) */
  uint32_t owner;         /* the user key whose share it counts against */
  struct access_record r; /* pointers cleared; path_len and resolved_len
                             are the queued ones */
};

/* The most one record takes in the queue. */
#define AL_RECORD_MAX                                                          \
  (sizeof(struct qhdr) + 2 * (AL_TOKEN_MAX + 1) + 2 * PFP_PATH_MAX + 1)

_Static_assert(ACCESSLOG_UID_SHARE >= 2 * AL_RECORD_MAX,
               "a share holds a few of the longest records");
_Static_assert(ACCESSLOG_UID_SMALL >= 2 * AL_RECORD_MAX,
               "a light user may queue a few of the longest records");
_Static_assert(ACCESSLOG_UID_SHARE + ACCESSLOG_QUEUE_SPARE <=
                   ACCESSLOG_QUEUE_BYTES,
               "a share must leave the spare");

/* A destination and the format its lines are written in. */
struct dest {
  struct logsink sink;
  enum access_format fmt;
};

/* Bytes one user holds in the queue: reserved and queued. */
struct uid_slot {
  uint32_t key;   /* the user key */
  uint32_t bytes; /* 0: the slot is free */
};

static struct {
  uv_mutex_t mu;                             /* guards everything here */
  uv_cond_t wake;                            /* the writer waits here */
  unsigned char ring[ACCESSLOG_QUEUE_BYTES]; /* queued records */
  size_t head;                               /* oldest record's offset */
  size_t used;                               /* bytes queued */
  size_t reserved;                           /* bytes promised to tickets */
  uint64_t nrecs;                            /* records queued */
  struct uid_slot uids[AL_UID_SLOTS];        /* key -> bytes it holds */
  unsigned uids_used;                        /* slots in use */
  enum log_full full;  /* on a failing destination: block or drop */
  int running;         /* records are accepted; the writer runs */
  int writer_waiting;  /* the writer sleeps for work: signal it */
  int writer_backoff;  /* it waits to retry a failed write: signal
                          commands only */
  int stopping;        /* writer: drain the queue and exit */
  int64_t stop_due;    /* monotonic ms: past it, the writer drops */
  int reopen;          /* writer: reopen the file first */
  int have_pending;    /* writer: switch to `pending` first */
  struct dest pending; /* from accesslog_reconfigure() */
  uint64_t drop_queue; /* given up by callers, not yet reported */
  int64_t first_ms;    /* monotonic ms when the queue last became non-empty */
  uv_thread_t thread;  /* the writer */
} q;

static _Atomic uint64_t dropped_total; /* for accesslog_dropped() */
static _Atomic uint64_t records_total; /* for accesslog_records() */
static uv_once_t q_once = UV_ONCE_INIT;

/* libuv's mutex and condition have no static initializer: the first
 * caller makes them, and any thread may call first (a refusal before
 * start). They cannot fail short of the system being out of memory at
 * start-up, where libuv itself aborts too. libuv's condition waits on the
 * monotonic clock: a clock step neither stalls nor rushes the reports. */
static void q_init(void) {
  if (uv_mutex_init(&q.mu) != 0 || uv_cond_init(&q.wake) != 0)
    abort();
}

static void q_lock(void) {
  uv_once(&q_once, q_init);
  uv_mutex_lock(&q.mu);
}

static void q_unlock(void) { uv_mutex_unlock(&q.mu); }

static int64_t mono_ms(void) { return (int64_t)(uv_hrtime() / 1000000); }

/* Wait on q.wake (q.mu held) until the monotonic ms `due`. */
static void wait_until(int64_t due) {
  int64_t now = mono_ms();

  if (due > now)
    (void)uv_cond_timedwait(&q.wake, &q.mu, (uint64_t)(due - now) * 1000000);
}

/* ---- the per-user shares (q.mu held) ---- */

static size_t uid_home(uint32_t key) {
  return (key * 2654435761u) >> (32 - AL_UID_BITS);
}

/* key's slot, or the free slot where it would go. */
static size_t uid_find(uint32_t key) {
  size_t i = uid_home(key);

  while (q.uids[i].bytes != 0 && q.uids[i].key != key)
    i = (i + 1) & (AL_UID_SLOTS - 1);
  return i;
}

static size_t uid_held(uint32_t key) { return q.uids[uid_find(key)].bytes; }

/* Add bytes to what key holds: 0, or UV_EAGAIN when the table has no room
 * for another user (fail safe: the caller waits, as for a full queue). */
static int uid_add(uint32_t key, size_t bytes) {
  size_t i = uid_find(key);

  if (bytes == 0)
    return 0;
  if (q.uids[i].bytes == 0) {
    if (q.uids_used >= AL_UID_MAX_USED)
      return UV_EAGAIN;
    q.uids[i].key = key;
    q.uids_used++;
  }
  q.uids[i].bytes += (uint32_t)bytes;
  return 0;
}

/* Take bytes off what key holds; a user who holds nothing leaves the table
 * (backward-shift deletion, so no tombstones pile up: Knuth 6.4, R). */
static void uid_sub(uint32_t key, size_t bytes) {
  size_t i = uid_find(key), j = i;

  if (bytes == 0 || q.uids[i].bytes == 0)
    return;
  if (q.uids[i].bytes > bytes) {
    q.uids[i].bytes -= (uint32_t)bytes;
    return;
  }
  q.uids[i].bytes = 0;
  q.uids_used--;
  for (;;) {
    size_t k;

    j = (j + 1) & (AL_UID_SLOTS - 1);
    if (q.uids[j].bytes == 0)
      return;
    k = uid_home(q.uids[j].key);
    /* The entry at j may move to the hole at i unless its home lies
     * cyclically in (i, j]. */
    if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
      q.uids[i] = q.uids[j];
      q.uids[j].bytes = 0;
      i = j;
    }
  }
}

/* Copy into the ring at offset `at` (wrapping); returns the offset after. */
static size_t ring_put(size_t at, const void *src, size_t len) {
  size_t first = ACCESSLOG_QUEUE_BYTES - at;

  if (first > len)
    first = len;
  memcpy(q.ring + at, src, first);
  memcpy(q.ring, (const unsigned char *)src + first, len - first);
  return (at + len) % ACCESSLOG_QUEUE_BYTES;
}

static void ring_get(size_t at, void *dst, size_t len) {
  size_t first = ACCESSLOG_QUEUE_BYTES - at;

  if (first > len)
    first = len;
  memcpy(dst, q.ring + at, first);
  memcpy((unsigned char *)dst + first, q.ring, len - first);
}

/* Called with q.mu held, after a command (stop, reopen, new destination):
 * those are acted on at once, also by a writer waiting to retry. */
static void wake_command(void) {
  if (q.writer_waiting || q.writer_backoff)
    uv_cond_signal(&q.wake);
}

/* Called with q.mu held, after a record of len bytes was added. Waking the
 * writer costs a context switch, which on a busy server costs more than the
 * rest of a request; so the writer is woken only when the queue becomes
 * non-empty (it then sleeps AL_FLUSH_MS and writes a batch) or passes
 * AL_WAKE_BYTES. A busy writer looks at the queue again before it sleeps,
 * so only a sleeping one needs the signal. */
static void wake_writer(size_t len) {
  size_t before = q.used - len;
  if (before == 0)
    q.first_ms = mono_ms();
  if (q.writer_waiting &&
      (before == 0 || (before < AL_WAKE_BYTES && q.used >= AL_WAKE_BYTES)))
    uv_cond_signal(&q.wake);
}

int64_t accesslog_now_ms(void) {
  uv_timeval64_t tv;

  if (uv_gettimeofday(&tv) != 0)
    return 0; /* cannot fail with a valid pointer */
  return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Bytes a record takes in the queue. */
static size_t record_bytes(size_t proto_len, size_t op_len, size_t path_len,
                           size_t resolved_len) {
  return sizeof(struct qhdr) + proto_len + 1 + op_len + 1 + path_len +
         resolved_len;
}

/* The most a record with a path of path_len bytes can take. */
static size_t record_max(size_t path_len) {
  if (path_len > PFP_PATH_MAX)
    path_len = PFP_PATH_MAX;
  return record_bytes(AL_TOKEN_MAX, AL_TOKEN_MAX, path_len, path_len + 1);
}

int accesslog_reserve(struct accesslog_ticket *t, uint32_t key,
                      size_t path_len) {
  size_t bytes = record_max(path_len);
  size_t room, held;
  int r = 0;

  t->key = key;
  t->bytes = 0;
  q_lock();
  if (!q.running) {
    r = UV_EPIPE;
    goto out;
  }
  room = ACCESSLOG_QUEUE_BYTES - q.used - q.reserved;
  held = uid_held(key);
  if (bytes > room || held + bytes > ACCESSLOG_UID_SHARE ||
      (held >= ACCESSLOG_UID_SMALL && room - bytes < ACCESSLOG_QUEUE_SPARE)) {
    r = UV_EAGAIN;
    goto out;
  }
  r = uid_add(key, bytes);
  if (r < 0)
    goto out;
  q.reserved += bytes;
  t->bytes = (uint32_t)bytes;
out:
  q_unlock();
  return r;
}

void accesslog_cancel(struct accesslog_ticket *t) {
  if (t->bytes == 0)
    return;
  q_lock();
  q.reserved -= t->bytes;
  uid_sub(t->key, t->bytes);
  q_unlock();
  t->bytes = 0;
}

void accesslog_commit(struct accesslog_ticket *t,
                      const struct access_record *r) {
  const char *proto = r->proto != NULL ? r->proto : "";
  const char *op = r->op != NULL ? r->op : "";
  size_t proto_len = strnlen(proto, AL_TOKEN_MAX);
  size_t op_len = strnlen(op, AL_TOKEN_MAX);
  size_t path_len = r->path != NULL ? r->path_len : 0;
  size_t res_len = r->resolved != NULL ? r->resolved_len : 0;
  struct qhdr h;
  size_t at;

  if (path_len > PFP_PATH_MAX)
    path_len = PFP_PATH_MAX; /* the wire never carries more */
  if (res_len > PFP_PATH_MAX + 1)
    res_len = PFP_PATH_MAX + 1;
  memset(&h, 0, sizeof h); /* padding goes into the ring too */
  h.r = *r;
  h.r.proto = h.r.op = h.r.path = h.r.resolved = NULL;
  h.has_resolved = r->resolved != NULL;
  h.r.path_len = path_len;
  h.r.resolved_len = res_len;
  h.proto_len = (uint8_t)(proto_len + 1);
  h.op_len = (uint8_t)(op_len + 1);
  h.owner = t->key;
  h.len = (uint32_t)record_bytes(proto_len, op_len, path_len, res_len);

  atomic_fetch_add(&records_total, 1);
  q_lock();
  /* The reservation becomes the record: give back the room promised, take
   * what the record really needs (never more unless the caller broke the
   * contract, and then only if it is free). */
  q.reserved -= t->bytes;
  uid_sub(t->key, t->bytes);
  if (ACCESSLOG_QUEUE_BYTES - q.used - q.reserved < h.len ||
      uid_add(h.owner, h.len) != 0) {
    atomic_fetch_add(&dropped_total, 1);
    q.drop_queue++;
    goto out;
  }
  at = (q.head + q.used) % ACCESSLOG_QUEUE_BYTES;
  at = ring_put(at, &h, sizeof h);
  at = ring_put(at, proto, proto_len);
  at = ring_put(at, "", 1);
  at = ring_put(at, op, op_len);
  at = ring_put(at, "", 1);
  if (path_len > 0)
    at = ring_put(at, r->path, path_len);
  if (res_len > 0)
    ring_put(at, r->resolved, res_len);
  q.used += h.len;
  q.nrecs++;
  wake_writer(h.len);
out:
  q_unlock();
  t->bytes = 0;
}

int accesslog_write(const struct access_record *r) {
  struct accesslog_ticket t;
  int rc = accesslog_reserve(&t, (uint32_t)r->uid,
                             r->path != NULL ? r->path_len : 0);

  if (rc != 0)
    return rc;
  accesslog_commit(&t, r);
  return 0;
}

void accesslog_lost(uint64_t n) {
  q_lock();
  q.drop_queue += n;
  q_unlock();
  atomic_fetch_add(&dropped_total, n);
  atomic_fetch_add(&records_total, n);
}

/* Move whole records, oldest first, into dst (at most cap bytes); their
 * owners' shares are free again. Called with q.mu held. Returns the bytes
 * moved. */
static size_t queue_take(unsigned char *dst, size_t cap) {
  size_t n = 0;

  while (q.used > 0) {
    struct qhdr h;

    ring_get(q.head, &h, sizeof h);
    if (n + h.len > cap)
      break;
    ring_get(q.head, dst + n, h.len);
    q.head = (q.head + h.len) % ACCESSLOG_QUEUE_BYTES;
    q.used -= h.len;
    q.nrecs--;
    uid_sub(h.owner, h.len);
    n += h.len;
  }
  if (q.used == 0)
    q.head = 0; /* keeps records contiguous while the queue is short */
  return n;
}

/* ---- 2. destinations -------------------------------------------------- */

/* Returns 0 or a negative code (reason in err); *d is usable (and needs
 * dest_close) only on 0. The two messages of our own name the access log;
 * the sink's own checks stay behind them. */
static int dest_open(struct dest *d, const struct accesslog_opts *o, char *err,
                     size_t errlen) {
  const char *spec = o->dest;
  int r = 0;

  memset(d, 0, sizeof *d);
  d->fmt = o->fmt;
  if (spec == NULL || spec[0] == '\0') {
    snprintf(err, errlen, "no access log destination");
    r = UV_EINVAL;
    goto out;
  }
  if (strlen(spec) >= sizeof d->sink.name) {
    snprintf(err, errlen, "access log path too long");
    r = UV_ENAMETOOLONG;
    goto out;
  }
  r = logsink_open(&d->sink, spec, o->strict_modes, err, errlen);
  if (r == 0 && errlen > 0 &&
      err[0] != '\0') { /* strict_modes = no: said, not refused */
    log_warn("%s", err);
    err[0] = '\0';
  }
out:
  return r;
}

static void dest_close(struct dest *d) { logsink_close(&d->sink); }

/* Where a destination's lines go, for messages. */
static const char *dest_name(const struct dest *d) {
  return logsink_where(&d->sink);
}

/* The longest line, '\n' included, a destination takes: a syslog line must
 * fit one message (logsink.h). */
static size_t dest_line_max(const struct dest *d) {
  return d->sink.kind == LOGSINK_SYSLOG ? AL_SYSLOG_LINE : ACCESSLOG_LINE_MAX;
}

/* ---- 3. user names (writer thread only) ------------------------------- */

struct user_entry {
  unsigned uid;                      /* key */
  int valid;                         /* the entry holds a lookup */
  int64_t loaded_ms;                 /* monotonic time of that lookup */
  char name[ACCESSLOG_USER_MAX + 1]; /* "" = print the uid */
};

/* ---- 4. the writer thread --------------------------------------------- */

/* Commands for the writer, taken from q under q.mu. */
struct cmds {
  int have_next;    /* switch to next */
  struct dest next; /* from accesslog_reconfigure() */
  int reopen;       /* reopen the current file */
};

static struct {
  struct dest cur;                        /* where lines go */
  enum log_full full;                     /* q.full when last looked */
  unsigned char stage[AL_STAGE_BYTES];    /* records taken from the queue */
  char batch[AL_BATCH_BYTES];             /* formatted lines */
  size_t batch_len;                       /* bytes in batch */
  size_t sent;                            /* of which went out */
  int midline;                            /* the file ends in a cut line */
  struct user_entry users[AL_USER_CACHE]; /* uid -> name */
  uint64_t drop_queue;                    /* unreported: given up */
  uint64_t drop_write;                    /* unreported: write failed */
  int drop_err;                           /* why the last write failed */
  int syslog_stalled;                     /* last syslog send found no room */
  char drop_dest[LOGSINK_PATH_MAX];       /* where it failed */
  int reported;                           /* a report was made */
  int64_t report_ms;                      /* monotonic time of it */
  int blocked;                            /* log_full = block, and stuck */
  int64_t blocked_ms;                     /* monotonic time it began */
  int giving_up;                          /* stopping, past q.stop_due */
} w;

/* The name to print for uid, or NULL for the number. A lookup may be slow
 * (NSS over the network), which is why it happens here and not in the
 * serving threads, and why its answer is kept for a while. */
static const char *user_name(unsigned uid) {
  struct user_entry *e =
      &w.users[((uint32_t)uid * 2654435761u >> 16) % AL_USER_CACHE];
  int64_t now = mono_ms();

  if (e->valid && e->uid == uid && now - e->loaded_ms < AL_USER_TTL_MS)
    return e->name[0] != '\0' ? e->name : NULL;

  e->uid = uid;
  e->valid = 1;
  e->loaded_ms = now;
  e->name[0] = '\0';
  /* Only names that cannot be mistaken for structure: anything else (a
   * name too long, no entry, or a failed lookup) prints as the uid. */
  if (identity_user_name(uid, e->name, sizeof e->name) != 0 ||
      !accesslog_user_printable(e->name))
    e->name[0] = '\0';
  return e->name[0] != '\0' ? e->name : NULL;
}

static uint64_t count_nl(const char *s, size_t n) {
  uint64_t c = 0;
  const char *end = s + n;

  while (s < end && (s = memchr(s, '\n', (size_t)(end - s))) != NULL) {
    c++;
    s++;
  }
  return c;
}

/* Drop, count and remember why: reported by writer_report(). */
static void note_drop(uint64_t n, int err, const char *where) {
  if (n == 0)
    return;
  w.drop_write += n;
  w.drop_err = err;
  snprintf(w.drop_dest, sizeof w.drop_dest, "%s", where);
  atomic_fetch_add(&dropped_total, n);
}

/* Whether a failed write drops its lines (else it is retried). */
static int dropping(void) { return w.full == LOG_FULL_DROP || w.giving_up; }

/* One datagram per line, from w.sent on. When dropping, a line that cannot
 * be sent is counted and the next one tried: a syslog daemon that stopped
 * reading gets AL_SYSLOG_WAIT_MS once, then lines go without waiting until
 * one gets through, so a stall holds up neither shutdown nor the queue.
 * When blocking, each try waits AL_SYSLOG_WAIT_MS for room: a slow reader
 * is waited for, not backed off from. */
static int syslog_batch(void) {
  while (w.sent < w.batch_len) {
    const char *line = w.batch + w.sent;
    const char *nl = memchr(line, '\n', w.batch_len - w.sent);
    size_t n = (size_t)(nl - line);
    int wait =
        w.giving_up || (dropping() && w.syslog_stalled) ? 0 : AL_SYSLOG_WAIT_MS;
    int rc = logsink_syslog(LOGSINK_PRI_INFO, line, n, (unsigned)wait);

    w.syslog_stalled = rc == UV_EAGAIN;
    if (rc != 0) {
      if (!dropping())
        return rc;
      note_drop(1, rc, dest_name(&w.cur));
    }
    w.sent += n + 1;
  }
  return 0;
}

/* Send the batch from w.sent on: 0 or a negative code, w.sent past what
 * went out. */
static int dest_send(void) {
  unsigned wait_ms = w.giving_up ? 0 : AL_POLL_MS;
  size_t done = 0;
  int r;

  switch (w.cur.sink.kind) {
  case LOGSINK_SYSLOG:
    return syslog_batch();
  case LOGSINK_OFF:
    w.sent = w.batch_len;
    return 0;
  default:
    break;
  }
  /* A dropped write may have left half a line; end it, so the lines after
   * it parse. */
  if (w.midline) {
    r = logsink_write(&w.cur.sink, "\n", 1, &done, wait_ms);
    if (r < 0)
      return r;
    w.midline = 0;
  }
  r = logsink_write(&w.cur.sink, w.batch + w.sent, w.batch_len - w.sent, &done,
                    wait_ms);
  w.sent += done;
  return r;
}

/* Returns 1 when a new file is open. */
static int writer_reopen(void) {
  char err[AL_ERR_MAX];
  int r = logsink_reopen(&w.cur.sink, err, sizeof err);

  if (r < 0) {
    log_error("access log: cannot reopen %s; writing to the old file", err);
    return 0;
  }
  if (r == 1 && err[0] != '\0')
    log_warn("%s", err);
  if (r == 1)
    w.midline = 0;
  return r == 1;
}

/* Called with q.mu held. */
static void take_commands(struct cmds *c) {
  c->have_next = q.have_pending;
  if (c->have_next)
    c->next = q.pending;
  q.have_pending = 0;
  c->reopen = q.reopen;
  q.reopen = 0;
  w.full = q.full;
  if (q.stopping && mono_ms() >= q.stop_due)
    w.giving_up = 1;
}

enum applied { APPLIED_NONE, APPLIED_REOPEN, APPLIED_SWITCH };

static enum applied apply_commands(struct cmds *c) {
  if (c->have_next) {
    dest_close(&w.cur);
    w.cur = c->next;
    w.midline = 0;
    w.syslog_stalled = 0;
    return APPLIED_SWITCH;
  }
  if (c->reopen && writer_reopen())
    return APPLIED_REOPEN;
  return APPLIED_NONE;
}

/* log_full = block, a write failed: wait ms before the retry, or less if a
 * command comes (a reopen or a new destination may be the fix; a stop
 * bounds the wait) and act on it. */
static enum applied writer_backoff(unsigned ms) {
  int64_t until = mono_ms() + ms;
  struct cmds c;

  q_lock();
  for (;;) {
    int64_t due = until;

    if (q.stopping && q.stop_due < due)
      due = q.stop_due;
    if (q.reopen || q.have_pending || mono_ms() >= due)
      break;
    q.writer_backoff = 1;
    wait_until(due);
    q.writer_backoff = 0;
  }
  take_commands(&c);
  q_unlock();
  return apply_commands(&c);
}

/* err: the write's negative code. */
static void writer_blocked(int err) {
  uint64_t queued;

  q_lock();
  queued = q.nrecs;
  q_unlock();
  w.blocked = 1;
  w.blocked_ms = mono_ms();
  log_error(
      "access log: blocked: %s: %s; %llu records wait, and requests "
      "wait for room in the queue until it takes writes again "
      "(log_full = block)",
      dest_name(&w.cur), syserr_text(err),
      (unsigned long long)(count_nl(w.batch + w.sent, w.batch_len - w.sent) +
                           queued));
}

static void writer_resumed(void) {
  uint64_t queued;

  q_lock();
  queued = q.nrecs;
  q_unlock();
  w.blocked = 0;
  log_warn("access log: resumed: %s takes writes again after %lld ms "
           "blocked; %llu records written, %llu queued",
           dest_name(&w.cur), (long long)(mono_ms() - w.blocked_ms),
           (unsigned long long)count_nl(w.batch, w.batch_len),
           (unsigned long long)queued);
}

/* Send the batch. On a failure log_full decides: drop counts the lines
 * that did not go out; block keeps them and retries, backing off from
 * AL_BACKOFF_MIN_MS to AL_BACKOFF_MAX_MS, so the queue fills and requests
 * wait; at stop, the retries end at q.stop_due and what is left is dropped
 * (counted). Returns -1 when the batch is done, or, when the destination
 * was switched meanwhile, the whole lines that went out: the records after
 * them must be formatted again for the new destination. */
static long batch_flush(void) {
  unsigned backoff = AL_BACKOFF_MIN_MS;
  int failures = 0;
  long again = -1;

  while (w.sent < w.batch_len) {
    int r = dest_send();

    if (r == 0)
      break;
    failures++;
    if (dropping()) {
      if (w.sent > 0 && w.batch[w.sent - 1] != '\n')
        w.midline = 1;
      note_drop(count_nl(w.batch + w.sent, w.batch_len - w.sent), r,
                dest_name(&w.cur));
      w.blocked = 0; /* the drop reports say the rest */
      break;
    }
    /* Said once the first retry failed too: a passing hiccup (one syslog
     * send that found no room) is not worth two lines on the error log. */
    if (!w.blocked && failures >= 2)
      writer_blocked(r);
    switch (writer_backoff(backoff)) {
    case APPLIED_SWITCH:
      again = (long)count_nl(w.batch, w.sent);
      w.batch_len = w.sent = 0;
      return again;
    case APPLIED_REOPEN: /* a new file: a line cut in the old one whole */
      while (w.sent > 0 && w.batch[w.sent - 1] != '\n')
        w.sent--;
      backoff = AL_BACKOFF_MIN_MS;
      break;
    case APPLIED_NONE:
      backoff =
          backoff * 2 < AL_BACKOFF_MAX_MS ? backoff * 2 : AL_BACKOFF_MAX_MS;
      break;
    }
  }
  if (w.blocked)
    writer_resumed();
  w.batch_len = w.sent = 0;
  return again;
}

/* The record at w.stage[off] into *r (pointers into the stage); returns
 * its length. */
static size_t stage_record(size_t off, struct access_record *r) {
  const char *s = (const char *)w.stage + off + sizeof(struct qhdr);
  struct qhdr h;

  memcpy(&h, w.stage + off, sizeof h);
  *r = h.r;
  r->proto = s;
  r->op = s + h.proto_len;
  r->path = s + h.proto_len + h.op_len;
  r->resolved = h.has_resolved ? r->path + r->path_len : NULL;
  return h.len;
}

/* Format the record at w.stage[off] into the batch; returns its length. */
static size_t writer_record(size_t off) {
  struct access_record r;
  size_t len = stage_record(off, &r);

  if (w.cur.sink.kind != LOGSINK_OFF)
    w.batch_len +=
        accesslog_format(w.batch + w.batch_len, dest_line_max(&w.cur), &r,
                         user_name(r.uid), w.cur.fmt);
  return len;
}

/* Format and send the records in w.stage[0..len). The batch always holds
 * the lines of the records from `first` to `off`. */
static void writer_records(size_t len) {
  size_t off = 0, first = 0;

  for (;;) {
    long again;

    if (off < len && AL_BATCH_BYTES - w.batch_len >= dest_line_max(&w.cur)) {
      off += writer_record(off);
      continue;
    }
    again = batch_flush();
    if (again >= 0) { /* a new destination: its format, its line cap */
      off = first;
      for (long i = 0; i < again; i++) {
        struct access_record r;
        off += stage_record(off, &r);
      }
    }
    first = off;
    if (off >= len && again < 0)
      return;
  }
}

/* Report unreported drops on the error log, at most once per AL_REPORT_MS
 * unless forced (at stop, so no count is lost). */
static void writer_report(int force) {
  int64_t now;

  if (w.drop_queue == 0 && w.drop_write == 0)
    return;
  now = mono_ms();
  if (!force && w.reported && now - w.report_ms < AL_REPORT_MS)
    return;
  if (w.drop_queue > 0)
    log_error("access log: %llu records dropped (queue full)",
              (unsigned long long)w.drop_queue);
  if (w.drop_write > 0)
    log_error("access log: %llu records dropped (%s: %s)",
              (unsigned long long)w.drop_write, w.drop_dest,
              syserr_text(w.drop_err));
  w.drop_queue = 0;
  w.drop_write = 0;
  w.reported = 1;
  w.report_ms = now;
}

/* When the next drop report is due (monotonic ms), or -1 if none waits. */
static int64_t report_due(void) {
  if (w.drop_queue == 0 && w.drop_write == 0)
    return -1;
  return w.reported ? w.report_ms + AL_REPORT_MS : 0;
}

/* Sleep until there is work: records, a command, or a due report. Called
 * with q.mu held. */
static void writer_wait(void) {
  for (;;) {
    int64_t due;

    w.drop_queue += q.drop_queue;
    q.drop_queue = 0;
    if (q.used >= AL_WAKE_BYTES || q.stopping || q.reopen || q.have_pending)
      return;
    due = report_due();
    if (q.used > 0 && (due < 0 || q.first_ms + AL_FLUSH_MS < due))
      due = q.first_ms + AL_FLUSH_MS;
    if (due >= 0 && mono_ms() >= due)
      return;
    q.writer_waiting = 1;
    if (due < 0)
      uv_cond_wait(&q.wake, &q.mu);
    else
      wait_until(due);
    q.writer_waiting = 0;
  }
}

static void writer_main(void *arg) {
  (void)arg;
  for (;;) {
    struct cmds c;
    int done;
    size_t len;

    /* Commands and records are taken in one critical section, and a
     * command is applied before the records taken with it are written:
     * whatever is queued after accesslog_reopen() or _reconfigure()
     * returns goes to the new file. */
    q_lock();
    writer_wait();
    take_commands(&c);
    len = queue_take(w.stage, sizeof w.stage);
    q_unlock();

    apply_commands(&c);
    writer_records(len);

    /* Stopping ends once the queue is empty after a round: a ticket
     * reserved before the stop may still have been committed meanwhile. */
    q_lock();
    w.drop_queue += q.drop_queue;
    q.drop_queue = 0;
    done = q.stopping && q.used == 0;
    q_unlock();
    writer_report(done);
    if (done)
      break;
  }
}

/* ---- 5. lifecycle ----------------------------------------------------- */

int accesslog_start(const struct accesslog_opts *o, char *err, size_t errlen) {
  int running;
  int r;

  q_lock();
  running = q.running;
  q_unlock();
  if (running) {
    snprintf(err, errlen, "access log already started");
    r = UV_EALREADY;
    goto out;
  }

  r = dest_open(&w.cur, o, err, errlen);
  if (r < 0)
    goto out;
  w.full = o->full;
  w.batch_len = 0;
  w.sent = 0;
  w.midline = 0;
  w.drop_queue = 0;
  w.drop_write = 0;
  w.syslog_stalled = 0;
  w.blocked = 0;
  w.giving_up = 0;

  q_lock();
  q.head = 0;
  q.used = 0;
  q.reserved = 0;
  q.nrecs = 0;
  memset(q.uids, 0, sizeof q.uids);
  q.uids_used = 0;
  q.full = o->full;
  q.stopping = 0;
  q.reopen = 0;
  q.have_pending = 0;
  q.drop_queue = 0;
  q_unlock();

  /* Signals are the main loop's business and must not land on this
   * thread: thread_start blocks them all. */
  r = thread_start(&q.thread, "pf-accesslog", writer_main, NULL);
  if (r < 0) {
    snprintf(err, errlen, "cannot start the access log thread");
    dest_close(&w.cur);
    goto out;
  }

  q_lock();
  q.running = 1;
  q_unlock();
out:
  return r;
}

int accesslog_reconfigure(const struct accesslog_opts *o, char *err,
                          size_t errlen) {
  struct dest d, old;
  int have_old = 0;
  int running;
  int r;

  q_lock();
  running = q.running;
  q_unlock();
  if (!running) {
    r = accesslog_start(o, err, errlen);
    goto out;
  }

  /* Opened here, so the caller learns of a bad path now and the writer
   * never switches to nothing. */
  r = dest_open(&d, o, err, errlen);
  if (r < 0)
    goto out;
  q_lock();
  q.full = o->full;
  if (q.have_pending) { /* the writer never saw it: ours to close */
    old = q.pending;
    have_old = 1;
  }
  q.pending = d;
  q.have_pending = 1;
  wake_command();
  q_unlock();
  if (have_old)
    dest_close(&old);
out:
  return r;
}

void accesslog_reopen(void) {
  q_lock();
  if (q.running) {
    q.reopen = 1;
    wake_command();
  }
  q_unlock();
}

void accesslog_stop(void) {
  uint64_t left;

  q_lock();
  if (!q.running) {
    q_unlock();
    return;
  }
  /* From here new reservations are refused, so the writer's drain ends;
   * a writer retrying a failed destination gives up at stop_due, drops
   * (counts) the rest and exits before the join below gives up on it. */
  q.running = 0;
  q.stopping = 1;
  q.stop_due = mono_ms() + AL_STOP_WAIT_MS - AL_STOP_SPARE_MS;
  wake_command();
  q_unlock();

  /* A destination that blocks for good (a pipe nobody reads) must not keep
   * the daemon from exiting: wait a bounded time, then leave the writer
   * stuck in its write() and exit without it. */
  if (thread_join_timeout(&q.thread, AL_STOP_WAIT_MS) != 0) {
    q_lock();
    left = q.nrecs;
    q_unlock();
    log_error("access log: %s does not take writes; exiting without %llu "
              "queued records and those being written",
              dest_name(&w.cur), (unsigned long long)left);
    return;
  }
  dest_close(&w.cur);
  q_lock();
  q.stopping = 0;
  q_unlock();
}

uint64_t accesslog_dropped(void) { return atomic_load(&dropped_total); }

uint64_t accesslog_records(void) { return atomic_load(&records_total); }
