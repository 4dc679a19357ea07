/* accesslog.c - the access log: bounded queue, writer thread, line formats. */

/* A bounded queue filled by the serving threads and one writer thread that
 * names users, formats, batches and writes; see accesslog.h.
 *
 * Map of this file:
 *   1. formatting (pure): text and JSON lines, escaping, cutting
 *   2. the queue: a byte ring under one mutex, filled by accesslog_write()
 *   3. destinations: open, reopen, write a batch
 *   4. the user-name cache (writer thread only)
 *   5. the writer thread
 *   6. the lifecycle: start, reconfigure, reopen, stop
 *
 * Threads: any thread calls accesslog_write() and accesslog_reopen(); one
 * control thread (the main loop) calls start, reconfigure and stop. The
 * queue and the hand-over fields live in `q` under q.mu; everything in `w`
 * belongs to the writer thread while it runs and to the control thread
 * before pthread_create() and after pthread_join(). */
#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fsguard.h"
#include "log.h"
#include "proto.h"
#include "syslogsend.h"

#define AL_BATCH_BYTES (64 * 1024)   /* formatted lines per write() */
#define AL_STAGE_BYTES (64 * 1024)   /* queued records taken per lock */
#define AL_TOKEN_MAX 15              /* proto and op are short constants */
#define AL_USER_CACHE 256            /* user-name cache entries */
#define AL_USER_TTL_MS 60000         /* re-look-up names older than this */
#define AL_USER_MAX 64               /* longer names print as the uid */
#define AL_PWBUF_BYTES 16384         /* getpwuid_r's string space */
#define AL_REPORT_MS 10000           /* at most one drop report per 10 s */
#define AL_POLL_MS 1000              /* wait on a non-blocking fd, then drop */
#define AL_SYSLOG_WAIT_MS 100        /* wait for room at the syslog daemon */
#define AL_STOP_WAIT_MS 5000         /* on stop, wait this long for the drain */
#define AL_FLUSH_MS 25               /* records wait at most this for a batch */
#define AL_WAKE_BYTES AL_STAGE_BYTES /* or until this much is queued */

_Static_assert(AL_BATCH_BYTES >= ACCESSLOG_LINE_MAX,
               "a batch must hold the longest line");

/* ---- 1. formatting ---------------------------------------------------- */

/* A bounded line under construction. Pieces are added whole or not at all;
 * after the first piece that does not fit, nothing more is added, so a cut
 * line never ends inside an escape. */
struct out {
  char *p;    /* the line */
  size_t cap; /* bytes usable, the final '\n' not counted */
  size_t n;   /* bytes used */
  int cut;    /* a piece did not fit */
};

static void out_put(struct out *o, const char *s, size_t len) {
  if (o->cut || len > o->cap - o->n) {
    o->cut = 1;
    return;
  }
  memcpy(o->p + o->n, s, len);
  o->n += len;
}

static void out_str(struct out *o, const char *s) { out_put(o, s, strlen(s)); }

static void out_fmt(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void out_fmt(struct out *o, const char *fmt, ...) {
  char tmp[128]; /* numbers and the timestamp; nothing longer comes here */
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    o->cut = 1;
    return;
  }
  out_put(o, tmp, (size_t)n);
}

static void out_time(struct out *o, int64_t ms) {
  int64_t sec = ms / 1000;
  int64_t milli = ms % 1000;
  time_t t;
  struct tm tm;

  if (milli < 0) { /* floor, for times before 1970 */
    milli += 1000;
    sec--;
  }
  t = (time_t)sec;
  if (gmtime_r(&t, &tm) == NULL) {
    out_str(o, "-");
    return;
  }
  out_fmt(o, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
          (int)milli);
}

static int token_byte(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static void out_hex_escape(struct out *o, const char *prefix, unsigned char c) {
  char tmp[8];

  snprintf(tmp, sizeof tmp, "%s%02x", prefix, c);
  out_str(o, tmp);
}

/* An unquoted text value (proto, op, user): our own constants or a name the
 * writer checked, but a stray space must still not start a new field. */
static void out_text_token(struct out *o, const char *s) {
  if (*s == '\0') {
    out_str(o, "-");
    return;
  }
  for (; *s != '\0'; s++) {
    if (token_byte((unsigned char)*s))
      out_put(o, s, 1);
    else
      out_hex_escape(o, "\\x", (unsigned char)*s);
  }
}

/* The text path, quoted: bytes a terminal or a log parser could take for
 * structure (quote, backslash, controls, anything non-ASCII) become \xHH, so
 * a hostile name can neither forge a line nor a field. */
static void out_text_path(struct out *o, const char *s, size_t len) {
  out_put(o, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"')
      out_put(o, "\\\"", 2);
    else if (c == '\\')
      out_put(o, "\\\\", 2);
    else if (c < 0x20 || c >= 0x7f)
      out_hex_escape(o, "\\x", c);
    else
      out_put(o, s + i, 1);
  }
  out_put(o, "\"", 1);
}

/* Length of the valid UTF-8 sequence at s[0..len), or 0 if it is not one.
 * Overlong forms, surrogates (U+D800..DFFF) and code points above U+10FFFF
 * are invalid (RFC 3629, Table 3-7 of the Unicode standard). */
static size_t utf8_seq(const unsigned char *s, size_t len) {
  unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the 2nd byte */
  size_t need;

  if (s[0] >= 0xc2 && s[0] <= 0xdf) {
    need = 2;
  } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
    need = 3;
    if (s[0] == 0xe0)
      lo = 0xa0; /* overlong below U+0800 */
    else if (s[0] == 0xed)
      hi = 0x9f; /* surrogates */
  } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
    need = 4;
    if (s[0] == 0xf0)
      lo = 0x90; /* overlong below U+10000 */
    else if (s[0] == 0xf4)
      hi = 0x8f; /* above U+10FFFF */
  } else {
    return 0; /* continuation byte, C0/C1 overlong lead, F5..FF */
  }
  if (len < need || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < need; i++)
    if (s[i] < 0x80 || s[i] > 0xbf)
      return 0;
  return need;
}

/* A JSON string (quotes included). Valid UTF-8 is kept as is; each byte of
 * invalid UTF-8 becomes \udcXX, Python's surrogateescape, so
 * json.loads(line)["path"].encode("utf-8", "surrogateescape") gives the wire
 * bytes back. Controls and DEL are escaped so the line stays one line and
 * safe on a terminal. */
static void out_json_string(struct out *o, const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;

  out_put(o, "\"", 1);
  while (i < len) {
    unsigned char c = s[i];
    size_t seq;

    if (c == '"') {
      out_put(o, "\\\"", 2);
    } else if (c == '\\') {
      out_put(o, "\\\\", 2);
    } else if (c == '\n') {
      out_put(o, "\\n", 2);
    } else if (c == '\r') {
      out_put(o, "\\r", 2);
    } else if (c == '\t') {
      out_put(o, "\\t", 2);
    } else if (c == '\b') {
      out_put(o, "\\b", 2);
    } else if (c == '\f') {
      out_put(o, "\\f", 2);
    } else if (c < 0x20 || c == 0x7f) {
      out_hex_escape(o, "\\u00", c);
    } else if (c < 0x80) {
      out_put(o, str + i, 1);
    } else if ((seq = utf8_seq(s + i, len - i)) > 0) {
      out_put(o, str + i, seq);
      i += seq;
      continue;
    } else {
      out_hex_escape(o, "\\udc", c);
    }
    i++;
  }
  out_put(o, "\"", 1);
}

size_t accesslog_format(char *buf, size_t len, const struct access_record *r,
                        const char *user, enum access_format fmt) {
  const char *proto = r->proto != NULL ? r->proto : "";
  const char *op = r->op != NULL ? r->op : "";
  const char *path = r->path != NULL ? r->path : "";
  size_t path_len = r->path != NULL ? r->path_len : 0;
  char uidbuf[16];
  struct out o;

  if (len == 0)
    return 0;
  if (len > ACCESSLOG_LINE_MAX)
    len = ACCESSLOG_LINE_MAX;
  o = (struct out){.p = buf, .cap = len - 1};

  /* No name (none in passwd, or one we would not print): the uid. */
  if (user == NULL || user[0] == '\0') {
    snprintf(uidbuf, sizeof uidbuf, "%u", (unsigned)r->uid);
    user = uidbuf;
  }

  if (fmt == ACCESS_JSON) {
    out_str(&o, "{\"time\":\"");
    out_time(&o, r->time_ms);
    out_fmt(&o, "\",\"worker\":%u,\"conn\":%llu,\"pid\":%lld,\"uid\":%u",
            r->worker, (unsigned long long)r->conn, (long long)r->pid,
            (unsigned)r->uid);
    out_str(&o, ",\"user\":");
    out_json_string(&o, user, strlen(user));
    out_fmt(&o, ",\"gid\":%u,\"proto\":", (unsigned)r->gid);
    out_json_string(&o, proto, strlen(proto));
    out_str(&o, ",\"op\":");
    out_json_string(&o, op, strlen(op));
    out_str(&o, ",\"path\":");
    out_json_string(&o, path, path_len);
    out_str(&o, ",\"status\":\"");
    out_str(&o, pfp_status_name(r->status));
    out_fmt(&o, "\",\"bytes\":%llu,\"size\":%llu,\"duration_us\":%llu}",
            (unsigned long long)r->bytes, (unsigned long long)r->size,
            (unsigned long long)r->duration_us);
  } else {
    out_str(&o, "time=");
    out_time(&o, r->time_ms);
    out_fmt(&o, " worker=%u conn=%llu pid=%lld uid=%u user=", r->worker,
            (unsigned long long)r->conn, (long long)r->pid, (unsigned)r->uid);
    out_text_token(&o, user);
    out_fmt(&o, " gid=%u proto=", (unsigned)r->gid);
    out_text_token(&o, proto);
    out_str(&o, " op=");
    out_text_token(&o, op);
    out_str(&o, " path=");
    out_text_path(&o, path, path_len);
    out_str(&o, " status=");
    out_str(&o, pfp_status_name(r->status));
    out_fmt(&o, " bytes=%llu size=%llu duration_us=%llu",
            (unsigned long long)r->bytes, (unsigned long long)r->size,
            (unsigned long long)r->duration_us);
  }
  buf[o.n++] = '\n'; /* cap left room for it */
  return o.n;
}

/* ---- 2. the queue ----------------------------------------------------- */

/* A queued record: this header, then proto, op (each NUL-terminated) and the
 * path bytes. Records are copied in and out with memcpy, so the ring needs
 * no alignment. */
struct qhdr {
  uint32_t len;           /* the whole record, header included */
  uint8_t proto_len;      /* proto bytes, NUL included */
  uint8_t op_len;         /* op bytes, NUL included */
  struct access_record r; /* pointers cleared; path_len and resolved_len
                             are the queued ones */
};

enum dest_kind { DEST_OFF, DEST_STDERR, DEST_SYSLOG, DEST_FILE };

struct dest {
  enum dest_kind kind;
  int fd;                     /* DEST_STDERR: 2; DEST_FILE: ours; else -1 */
  enum access_format fmt;     /* line format */
  int strict;                 /* strict_modes for (re)opening the file */
  char path[CONFIG_PATH_MAX]; /* as configured: "stderr", a file path, ... */
};

static struct {
  pthread_mutex_t mu;                        /* guards everything here */
  pthread_cond_t wake;                       /* the writer waits here */
  unsigned char ring[ACCESSLOG_QUEUE_BYTES]; /* queued records */
  size_t head;                               /* oldest record's offset */
  size_t used;                               /* bytes queued */
  size_t reserved;                           /* bytes promised to tickets */
  enum log_full full;  /* on a failing destination: block or drop */
  int running;         /* records are accepted; the writer runs */
  int writer_waiting;  /* the writer sleeps on wake: signal it */
  int stopping;        /* writer: drain the queue and exit */
  int reopen;          /* writer: reopen the file first */
  int have_pending;    /* writer: switch to `pending` first */
  struct dest pending; /* from accesslog_reconfigure() */
  uint64_t drop_queue; /* dropped for a full queue, not yet reported */
  int64_t first_ms;    /* monotonic ms when the queue last became non-empty */
  pthread_t thread;    /* the writer */
} q = {.mu = PTHREAD_MUTEX_INITIALIZER};

static _Atomic uint64_t dropped_total; /* for accesslog_dropped() */
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;

static void wake_init(void) {
  pthread_condattr_t attr;

  /* Monotonic: a clock step must not stall or rush the drop reports. */
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&q.wake, &attr);
  pthread_condattr_destroy(&attr);
}

static int64_t mono_ms(void);

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
 * those are acted on at once. */
static void wake_command(void) {
  if (q.writer_waiting)
    pthread_cond_signal(&q.wake);
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
    pthread_cond_signal(&q.wake);
}

int64_t accesslog_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

int accesslog_reserve(struct accesslog_ticket *t, uid_t uid, size_t path_len) {
  size_t bytes = record_max(path_len);
  int r = 0;

  t->uid = uid;
  t->bytes = 0;
  pthread_mutex_lock(&q.mu);
  if (!q.running) {
    r = -EPIPE;
  } else if (ACCESSLOG_QUEUE_BYTES - q.used - q.reserved < bytes) {
    r = -EAGAIN;
  } else {
    q.reserved += bytes;
    t->bytes = (uint32_t)bytes;
  }
  pthread_mutex_unlock(&q.mu);
  return r;
}

void accesslog_cancel(struct accesslog_ticket *t) {
  if (t->bytes == 0)
    return;
  pthread_mutex_lock(&q.mu);
  q.reserved -= t->bytes;
  pthread_mutex_unlock(&q.mu);
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
  h.r.path_len = path_len;
  h.r.resolved_len = res_len;
  h.proto_len = (uint8_t)(proto_len + 1);
  h.op_len = (uint8_t)(op_len + 1);
  h.len = (uint32_t)record_bytes(proto_len, op_len, path_len, res_len);

  pthread_mutex_lock(&q.mu);
  q.reserved -= t->bytes;
  if (h.len > t->bytes && ACCESSLOG_QUEUE_BYTES - q.used - q.reserved < h.len) {
    /* Only a caller that broke the contract gets here. */
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
  wake_writer(h.len);
out:
  pthread_mutex_unlock(&q.mu);
  t->bytes = 0;
}

int accesslog_write(const struct access_record *r) {
  struct accesslog_ticket t;
  int rc = accesslog_reserve(&t, r->uid, r->path != NULL ? r->path_len : 0);

  if (rc != 0)
    return rc;
  accesslog_commit(&t, r);
  return 0;
}

void accesslog_lost(uint64_t n) {
  pthread_mutex_lock(&q.mu);
  q.drop_queue += n;
  pthread_mutex_unlock(&q.mu);
  atomic_fetch_add(&dropped_total, n);
}

/* Move whole records, oldest first, into dst (at most cap bytes). Called
 * with q.mu held. Returns the bytes moved. */
static size_t queue_take(unsigned char *dst, size_t cap) {
  size_t n = 0;

  while (q.used > 0) {
    uint32_t len;

    ring_get(q.head, &len, sizeof len);
    if (n + len > cap)
      break;
    ring_get(q.head, dst + n, len);
    q.head = (q.head + len) % ACCESSLOG_QUEUE_BYTES;
    q.used -= len;
    n += len;
  }
  if (q.used == 0)
    q.head = 0; /* keeps records contiguous while the queue is short */
  return n;
}

/* ---- 3. destinations -------------------------------------------------- */

/* Returns 0 or -errno (reason in err); *d is usable (and needs dest_close)
 * only on 0. */
static int dest_open(struct dest *d, const struct accesslog_opts *o,
                     char *err, size_t errlen) {
  const char *spec = o->dest;
  int r = 0;

  memset(d, 0, sizeof *d);
  d->fd = -1;
  d->fmt = o->fmt;
  d->strict = o->strict_modes;
  if (spec == NULL || spec[0] == '\0') {
    snprintf(err, errlen, "no access log destination");
    r = -EINVAL;
    goto out;
  }
  if (strlen(spec) >= sizeof d->path) {
    snprintf(err, errlen, "access log path too long");
    r = -ENAMETOOLONG;
    goto out;
  }
  strcpy(d->path, spec);
  if (strcmp(spec, "off") == 0) {
    d->kind = DEST_OFF;
  } else if (strcmp(spec, "stderr") == 0) {
    d->kind = DEST_STDERR;
    d->fd = STDERR_FILENO;
  } else if (strcmp(spec, "syslog") == 0) {
    d->kind = DEST_SYSLOG;
  } else {
    r = fsguard_open_log(spec, d->strict, &d->fd, err, errlen);
    if (r < 0)
      goto out;
    d->kind = DEST_FILE;
  }
out:
  return r;
}

static void dest_close(struct dest *d) {
  /* stderr is the process's; syslog has nothing to close (syslogsend.c
   * owns its socket). */
  if (d->kind == DEST_FILE && d->fd >= 0)
    close(d->fd);
  d->fd = -1;
  d->kind = DEST_OFF;
}

/* write() all of buf, looping on partial writes and EINTR. *done says how
 * much went out. Returns 0 or -errno. */
static int write_all(int fd, const char *buf, size_t len, size_t *done) {
  *done = 0;
  while (*done < len) {
    ssize_t n = write(fd, buf + *done, len - *done);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      /* stderr may be non-blocking (shared with a libuv loop): wait a
       * bounded time rather than spin or block for ever. */
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      int rc = poll(&p, 1, AL_POLL_MS);
      if (rc > 0 || (rc < 0 && errno == EINTR))
        continue;
      return -EAGAIN;
    }
    if (n < 0)
      return -errno;
    if (n == 0)
      return -EIO;
    *done += (size_t)n;
  }
  return 0;
}

/* ---- 4. user names (writer thread only) ------------------------------- */

struct user_entry {
  uid_t uid;                  /* key */
  int valid;                  /* the entry holds a lookup */
  int64_t loaded_ms;          /* monotonic time of that lookup */
  char name[AL_USER_MAX + 1]; /* "" = print the uid */
};

/* ---- 5. the writer thread --------------------------------------------- */

static struct {
  struct dest cur;                        /* where lines go */
  unsigned char stage[AL_STAGE_BYTES];    /* records taken from the queue */
  char batch[AL_BATCH_BYTES];             /* formatted lines */
  size_t batch_len;                       /* bytes in batch */
  uint64_t batch_recs;                    /* records in batch */
  int midline;                            /* the file ends in a cut line */
  struct user_entry users[AL_USER_CACHE]; /* uid -> name */
  char pwbuf[AL_PWBUF_BYTES];             /* getpwuid_r scratch */
  uint64_t drop_queue;                    /* unreported: queue full */
  uint64_t drop_write;                    /* unreported: write failed */
  int drop_errno;                         /* why the last write failed */
  int syslog_stalled;                     /* last syslog send found no room */
  char drop_dest[CONFIG_PATH_MAX];        /* where it failed */
  int reported;                           /* a report was made */
  int64_t report_ms;                      /* monotonic time of it */
} w;

static int64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int name_ok(const char *s) {
  size_t n = 0;

  for (; s[n] != '\0'; n++)
    if (n >= AL_USER_MAX || !token_byte((unsigned char)s[n]))
      return 0;
  return n > 0;
}

/* The name to print for uid, or NULL for the number. A lookup may be slow
 * (NSS over the network), which is why it happens here and not in the
 * serving threads, and why its answer is kept for a while. */
static const char *user_name(uid_t uid) {
  struct user_entry *e =
      &w.users[((uint32_t)uid * 2654435761u >> 16) % AL_USER_CACHE];
  int64_t now = mono_ms();
  struct passwd pw, *res = NULL;

  if (e->valid && e->uid == uid && now - e->loaded_ms < AL_USER_TTL_MS)
    return e->name[0] != '\0' ? e->name : NULL;

  e->uid = uid;
  e->valid = 1;
  e->loaded_ms = now;
  e->name[0] = '\0';
  /* Only names that cannot be mistaken for structure: anything else (and
   * no entry, or a failed lookup) prints as the uid. */
  if (getpwuid_r(uid, &pw, w.pwbuf, sizeof w.pwbuf, &res) == 0 && res != NULL &&
      name_ok(res->pw_name))
    snprintf(e->name, sizeof e->name, "%s", res->pw_name);
  return e->name[0] != '\0' ? e->name : NULL;
}

static void batch_flush(void) {
  size_t done = 0;
  uint64_t whole = 0;
  int r = 0;

  if (w.batch_len == 0)
    return;
  /* A failed write may have left half a line; end it, so the lines after
   * it parse. */
  if (w.midline) {
    r = write_all(w.cur.fd, "\n", 1, &done);
    if (r == 0)
      w.midline = 0;
    done = 0;
  }
  if (r == 0)
    r = write_all(w.cur.fd, w.batch, w.batch_len, &done);
  if (r < 0) {
    for (size_t i = 0; i < done; i++)
      whole += w.batch[i] == '\n';
    if (done > 0)
      w.midline = w.batch[done - 1] != '\n';
    w.drop_write += w.batch_recs - whole;
    w.drop_errno = -r;
    snprintf(w.drop_dest, sizeof w.drop_dest, "%s", w.cur.path);
    atomic_fetch_add(&dropped_total, w.batch_recs - whole);
  }
  w.batch_len = 0;
  w.batch_recs = 0;
}

static void writer_record(const struct access_record *r) {
  const char *user;
  size_t n;

  if (w.cur.kind == DEST_OFF)
    return;
  user = user_name(r->uid);
  if (w.cur.kind == DEST_SYSLOG) {
    /* One datagram per line; the batch buffer is scratch here. A syslog
     * daemon that stopped reading gets AL_SYSLOG_WAIT_MS once, then the
     * records go (counted) without waiting until one gets through, so a
     * stall can neither hold up shutdown nor fill the queue for long. */
    n = accesslog_format(w.batch, ACCESSLOG_LINE_MAX, r, user, w.cur.fmt);
    int rc = syslogsend(LOG_DAEMON | LOG_INFO, w.batch, n - 1,
                        w.syslog_stalled ? 0 : AL_SYSLOG_WAIT_MS);
    w.syslog_stalled = rc == -EAGAIN;
    if (rc != 0) {
      w.drop_write++;
      w.drop_errno = -rc;
      snprintf(w.drop_dest, sizeof w.drop_dest, "%s", SYSLOGSEND_PATH);
      atomic_fetch_add(&dropped_total, 1);
    }
    return;
  }
  if (AL_BATCH_BYTES - w.batch_len < ACCESSLOG_LINE_MAX)
    batch_flush();
  w.batch_len += accesslog_format(w.batch + w.batch_len, ACCESSLOG_LINE_MAX, r,
                                  user, w.cur.fmt);
  w.batch_recs++;
}

/* Format and write the records in w.stage[0..len). */
static void writer_records(size_t len) {
  size_t off = 0;

  while (off < len) {
    const char *s = (const char *)w.stage + off + sizeof(struct qhdr);
    struct qhdr h;

    memcpy(&h, w.stage + off, sizeof h);
    h.r.proto = s;
    h.r.op = s + h.proto_len;
    h.r.path = s + h.proto_len + h.op_len;
    h.r.resolved = h.r.path + h.r.path_len;
    writer_record(&h.r);
    off += h.len;
  }
  batch_flush();
}

static void writer_reopen(void) {
  char err[CONFIG_ERR_MAX];
  int fd;

  if (w.cur.kind != DEST_FILE)
    return;
  if (fsguard_open_log(w.cur.path, w.cur.strict, &fd, err, sizeof err) != 0) {
    log_error("access log: cannot reopen %s; writing to the old file", err);
    return;
  }
  close(w.cur.fd);
  w.cur.fd = fd;
  w.midline = 0;
}

/* Report unreported drops on the error log, at most once per AL_REPORT_MS
 * unless forced (at stop, so no count is lost). */
static void writer_report(int force) {
  char err[128];
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
              strerror_r(w.drop_errno, err, sizeof err));
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
    if (due < 0) {
      pthread_cond_wait(&q.wake, &q.mu);
    } else {
      struct timespec ts = {.tv_sec = due / 1000,
                            .tv_nsec = (due % 1000) * 1000000};
      pthread_cond_timedwait(&q.wake, &q.mu, &ts);
    }
    q.writer_waiting = 0;
  }
}

static void *writer_main(void *arg) {
  (void)arg;
  for (;;) {
    struct dest next;
    int have_next, reopen, done;
    size_t len;

    /* Commands and records are taken in one critical section, and a
     * command is applied before the records taken with it are written:
     * whatever is queued after accesslog_reopen() or _reconfigure()
     * returns goes to the new file. */
    pthread_mutex_lock(&q.mu);
    writer_wait();
    have_next = q.have_pending;
    if (have_next)
      next = q.pending;
    q.have_pending = 0;
    reopen = q.reopen;
    q.reopen = 0;
    len = queue_take(w.stage, sizeof w.stage);
    done = q.stopping && q.used == 0;
    pthread_mutex_unlock(&q.mu);

    if (have_next) {
      dest_close(&w.cur);
      w.cur = next;
      w.midline = 0;
    } else if (reopen) {
      writer_reopen();
    }
    writer_records(len);
    writer_report(done);
    if (done)
      break;
  }
  return NULL;
}

/* ---- 6. lifecycle ----------------------------------------------------- */

int accesslog_start(const struct accesslog_opts *o, char *err,
                    size_t errlen) {
  sigset_t all, old;
  int running;
  int r;

  pthread_once(&wake_once, wake_init);
  pthread_mutex_lock(&q.mu);
  running = q.running;
  pthread_mutex_unlock(&q.mu);
  if (running) {
    snprintf(err, errlen, "access log already started");
    r = -EALREADY;
    goto out;
  }

  r = dest_open(&w.cur, o, err, errlen);
  if (r < 0)
    goto out;
  w.batch_len = 0;
  w.batch_recs = 0;
  w.midline = 0;
  w.drop_queue = 0;
  w.drop_write = 0;

  pthread_mutex_lock(&q.mu);
  q.head = 0;
  q.used = 0;
  q.reserved = 0;
  q.full = o->full;
  q.stopping = 0;
  q.reopen = 0;
  q.have_pending = 0;
  q.drop_queue = 0;
  pthread_mutex_unlock(&q.mu);

  /* The writer inherits a full signal mask: signals are the main loop's
   * business and must not land on this thread. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  r = -pthread_create(&q.thread, NULL, writer_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r < 0) {
    snprintf(err, errlen, "cannot start the access log thread");
    dest_close(&w.cur);
    goto out;
  }
  pthread_setname_np(q.thread, "pf-accesslog");

  pthread_mutex_lock(&q.mu);
  q.running = 1;
  pthread_mutex_unlock(&q.mu);
out:
  return r;
}

int accesslog_reconfigure(const struct accesslog_opts *o, char *err,
                          size_t errlen) {
  struct dest d, old;
  int have_old = 0;
  int running;
  int r;

  pthread_mutex_lock(&q.mu);
  running = q.running;
  pthread_mutex_unlock(&q.mu);
  if (!running) {
    r = accesslog_start(o, err, errlen);
    goto out;
  }

  /* Opened here, so the caller learns of a bad path now and the writer
   * never switches to nothing. */
  r = dest_open(&d, o, err, errlen);
  if (r < 0)
    goto out;
  pthread_mutex_lock(&q.mu);
  q.full = o->full;
  if (q.have_pending) { /* the writer never saw it: ours to close */
    old = q.pending;
    have_old = 1;
  }
  q.pending = d;
  q.have_pending = 1;
  wake_command();
  pthread_mutex_unlock(&q.mu);
  if (have_old)
    dest_close(&old);
out:
  return r;
}

void accesslog_reopen(void) {
  pthread_mutex_lock(&q.mu);
  if (q.running) {
    q.reopen = 1;
    wake_command();
  }
  pthread_mutex_unlock(&q.mu);
}

void accesslog_stop(void) {
  pthread_mutex_lock(&q.mu);
  if (!q.running) {
    pthread_mutex_unlock(&q.mu);
    return;
  }
  /* From here records are refused (and counted), so the writer's drain
   * ends. */
  q.running = 0;
  q.stopping = 1;
  wake_command();
  pthread_mutex_unlock(&q.mu);

  /* A destination that blocks for good (a pipe nobody reads) must not keep
   * the daemon from exiting: wait a bounded time, then leave the writer
   * stuck in its write() and exit without it. */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += AL_STOP_WAIT_MS / 1000;
  if (pthread_timedjoin_np(q.thread, NULL, &until) != 0) {
    pthread_mutex_lock(&q.mu);
    size_t left = q.used;
    pthread_mutex_unlock(&q.mu);
    log_error("access log: %s does not take writes; exiting without %zu "
              "queued bytes of records",
              w.cur.path, left);
    return;
  }
  dest_close(&w.cur);
  pthread_mutex_lock(&q.mu);
  q.stopping = 0;
  pthread_mutex_unlock(&q.mu);
}

uint64_t accesslog_dropped(void) { return atomic_load(&dropped_total); }
