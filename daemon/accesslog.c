/* accesslog.c - the access log: bounded queue, writer thread, line formats. */

/* A bounded queue filled by the serving threads and one writer thread that
 * names users, formats, batches and writes; see accesslog.h.
 *
 * Map of this file:
 *   1. formatting (pure): text and JSON lines, escaping, cutting paths
 *   2. the queue: a byte ring and per-uid shares under one mutex
 *   3. destinations: open, reopen, send a batch
 *   4. the user-name cache (writer thread only)
 *   5. the writer thread: batches, and what log_full does on a failure
 *   6. the lifecycle: start, reconfigure, reopen, stop
 *
 * Threads: any thread calls accesslog_reserve/commit/cancel/write/lost and
 * accesslog_reopen(); one control thread (the main loop) calls start,
 * reconfigure and stop. The queue and the hand-over fields live in `q`
 * under q.mu; everything in `w` belongs to the writer thread while it runs
 * and to the control thread before pthread_create() and after
 * pthread_join(). */
#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
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

#define AL_BATCH_BYTES (256 * 1024)  /* formatted lines per write() */
#define AL_STAGE_BYTES (64 * 1024)   /* queued records taken per lock */
#define AL_TOKEN_MAX 15              /* proto and op are short constants */
#define AL_USER_CACHE 256            /* user-name cache entries */
#define AL_USER_TTL_MS 60000         /* re-look-up names older than this */
#define AL_USER_MAX 64               /* longer names print as the uid */
#define AL_PWBUF_BYTES 16384         /* getpwuid_r's string space */
#define AL_REPORT_MS 10000           /* at most one drop report per 10 s */
#define AL_POLL_MS 1000              /* wait on a non-blocking fd, then fail */
#define AL_SYSLOG_WAIT_MS 100        /* wait for room at the syslog daemon */
#define AL_STOP_WAIT_MS 5000         /* on stop, wait this long for the drain */
#define AL_STOP_SPARE_MS 2000        /* ... of which the writer keeps this */
#define AL_FLUSH_MS 25               /* records wait at most this for a batch */
#define AL_WAKE_BYTES AL_STAGE_BYTES /* or until this much is queued */
#define AL_BACKOFF_MIN_MS 100        /* log_full = block: first retry */
#define AL_BACKOFF_MAX_MS 1000       /* the longest wait between retries */
#define AL_UNIT_MAX 6                /* the longest escape of one unit */
#define AL_SYSLOG_LINE (SYSLOGSEND_MSG_MAX + 1) /* a syslog line and '\n' */

/* The per-uid share table (see accesslog_reserve in accesslog.h): open
 * addressing; kept at most 3/4 full so probes stay short and one slot is
 * always free, which ends every probe. */
#define AL_UID_BITS 10
#define AL_UID_SLOTS (1u << AL_UID_BITS)
#define AL_UID_MAX_USED (AL_UID_SLOTS / 4 * 3)

_Static_assert(AL_BATCH_BYTES >= ACCESSLOG_LINE_MAX,
               "a batch must hold the longest line");
_Static_assert(AL_BATCH_BYTES >= AL_SYSLOG_LINE,
               "a batch must hold the longest syslog line");

/* ---- 1. formatting ---------------------------------------------------- */

/* The line's fields, escapes and cut marker are documented in accesslog.h.
 * This is the writer's hot path: each byte of a path costs a table lookup
 * and a few stores, never a libc call (issue 5: one snprintf per escaped
 * byte let a flood of long non-ASCII paths outrun the writer). */

/* A bounded line under construction. Pieces are added whole or not at all;
 * after the first piece that does not fit, nothing more is added, so a cut
 * line never ends inside an escape. */
struct out {
  char *p;    /* the line */
  size_t cap; /* bytes usable, the final '\n' not counted */
  size_t n;   /* bytes used */
  int cut;    /* a piece did not fit */
};

#define AL_ROOM_ALL ((size_t)-1) /* out_path: no limit but the line's */
#define AL_MARK_PRE "...[truncated "
#define AL_MARK_POST " bytes]"
#define OUT_LIT(o, s) out_put((o), (s), sizeof(s) - 1)

static const char hex[] = "0123456789abcdef";

#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v

/* Text paths: 0 = as is; 'x' = \xHH; any other = a backslash, then that.
 * Escaped besides controls, DEL and all non-ASCII: the quote and backslash
 * (structure), and $ ` ! so a line pasted into a shell stays inert inside
 * its double quotes (no expansion, no command, no history). */
// clang-format off
static const char text_esc[] = {
    R16('x'), R16('x'),                                             /* 00 */
    0, 'x', '"', 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,            /* 20 */
    R16(0), R16(0),                                                 /* 30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,               /* 50 */
    'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                /* 60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'x',                /* 70 */
    R16('x'), R16('x'), R16('x'), R16('x'),                         /* 80 */
    R16('x'), R16('x'), R16('x'), R16('x'),                         /* c0 */
};

/* JSON strings: 0 = as is; 'u' = \u00XX; 'U' = a byte of UTF-8, see
 * json_unit; any other = a backslash, then that. */
static const char json_esc[] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r',
    'u', 'u', R16('u'),                                             /* 00 */
    0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                /* 20 */
    R16(0), R16(0),                                                 /* 30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,               /* 50 */
    R16(0),                                                         /* 60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'u',                /* 70 */
    R16('U'), R16('U'), R16('U'), R16('U'),                         /* 80 */
    R16('U'), R16('U'), R16('U'), R16('U'),                         /* c0 */
};
// clang-format on
_Static_assert(sizeof text_esc == 256 && sizeof json_esc == 256,
               "one entry per byte");

static void out_put(struct out *o, const char *s, size_t len) {
  if (o->cut || len > o->cap - o->n) {
    o->cut = 1;
    return;
  }
  memcpy(o->p + o->n, s, len);
  o->n += len;
}

static void out_ch(struct out *o, char c) {
  if (o->cut || o->n >= o->cap) {
    o->cut = 1;
    return;
  }
  o->p[o->n++] = c;
}

static void out_str(struct out *o, const char *s) { out_put(o, s, strlen(s)); }

static void out_u64(struct out *o, uint64_t v) {
  char tmp[20];
  size_t i = sizeof tmp;

  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  out_put(o, tmp + i, sizeof tmp - i);
}

static void out_i64(struct out *o, int64_t v) {
  if (v < 0) {
    out_ch(o, '-');
    out_u64(o, -(uint64_t)v);
  } else {
    out_u64(o, (uint64_t)v);
  }
}

static size_t u64_digits(uint64_t v) {
  size_t n = 1;

  while (v >= 10) {
    v /= 10;
    n++;
  }
  return n;
}

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
 * days_from_civil, inverted): no gmtime_r, no locale, no lock. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;

  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void put2(char *p, unsigned v) {
  p[0] = (char)('0' + v / 10);
  p[1] = (char)('0' + v % 10);
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC), or "-" for a year outside 0..9999. */
static void out_time(struct out *o, int64_t ms) {
  int64_t sec = ms / 1000, milli = ms % 1000, days, sod, y;
  unsigned mon, day;
  char t[24];

  if (milli < 0) { /* floor, for times before 1970 */
    milli += 1000;
    sec--;
  }
  days = sec / 86400;
  sod = sec % 86400;
  if (sod < 0) {
    sod += 86400;
    days--;
  }
  civil_from_days(days, &y, &mon, &day);
  if (y < 0 || y > 9999) {
    out_ch(o, '-');
    return;
  }
  put2(t, (unsigned)(y / 100));
  put2(t + 2, (unsigned)(y % 100));
  t[4] = '-';
  put2(t + 5, mon);
  t[7] = '-';
  put2(t + 8, day);
  t[10] = 'T';
  put2(t + 11, (unsigned)(sod / 3600));
  t[13] = ':';
  put2(t + 14, (unsigned)(sod / 60 % 60));
  t[16] = ':';
  put2(t + 17, (unsigned)(sod % 60));
  t[19] = '.';
  t[20] = (char)('0' + milli / 100);
  put2(t + 21, (unsigned)(milli % 100));
  t[23] = 'Z';
  out_put(o, t, sizeof t);
}

static int token_byte(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* An unquoted text value (proto, op, user): our own constants or a name the
 * writer checked, but a stray space must still not start a new field, nor
 * a shell character do anything. */
static void out_text_token(struct out *o, const char *s) {
  if (*s == '\0') {
    out_ch(o, '-');
    return;
  }
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (token_byte(c)) {
      out_ch(o, (char)c);
    } else {
      char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
      out_put(o, e, sizeof e);
    }
  }
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

/* Escaping works on units: one byte, or in JSON one valid UTF-8 sequence.
 * Each writes at most AL_UNIT_MAX bytes to d, sets *in to the input bytes
 * it took, and returns the bytes written. */
static inline size_t text_unit(const unsigned char *s, char *d, size_t *in) {
  unsigned char c = s[0];
  char k = text_esc[c];

  *in = 1;
  if (k == 0) {
    d[0] = (char)c;
    return 1;
  }
  d[0] = '\\';
  if (k != 'x') {
    d[1] = k;
    return 2;
  }
  d[1] = 'x';
  d[2] = hex[c >> 4];
  d[3] = hex[c & 15];
  return 4;
}

static inline size_t json_u(char *d, unsigned v) {
  d[0] = '\\';
  d[1] = 'u';
  d[2] = hex[v >> 12 & 15];
  d[3] = hex[v >> 8 & 15];
  d[4] = hex[v >> 4 & 15];
  d[5] = hex[v & 15];
  return 6;
}

/* Valid UTF-8 is kept as is, except the code points line splitters and
 * terminals take for structure: C1 controls U+0080..U+009F (U+0085 is
 * NEL) and U+2028/U+2029, written \uXXXX. Each byte of invalid UTF-8
 * becomes \udcXX, Python's surrogateescape, so
 * json.loads(line)["path"].encode("utf-8", "surrogateescape") gives the
 * wire bytes back. */
static inline size_t json_unit(const unsigned char *s, size_t left, char *d,
                               size_t *in) {
  unsigned char c = s[0];
  char k = json_esc[c];
  size_t seq;

  *in = 1;
  if (k == 0) {
    d[0] = (char)c;
    return 1;
  }
  if (k == 'u')
    return json_u(d, c);
  if (k != 'U') {
    d[0] = '\\';
    d[1] = k;
    return 2;
  }
  seq = utf8_seq(s, left);
  if (seq == 0)
    return json_u(d, 0xdc00u | c);
  *in = seq;
  if (c == 0xc2 && s[1] <= 0x9f)
    return json_u(d, s[1]);
  if (c == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9))
    return json_u(d, 0x2000u | (s[2] & 0x3fu));
  for (size_t i = 0; i < seq; i++)
    d[i] = (char)s[i];
  return seq;
}

static inline size_t esc_unit(int json, const unsigned char *s, size_t left,
                              char *d, size_t *in) {
  return json ? json_unit(s, left, d, in) : text_unit(s, d, in);
}

/* Escape s[0..len) into o, writing at most room bytes and never part of a
 * unit. Returns the bytes of s whose escapes went in; running out of the
 * line's space (rather than of room) marks o cut. */
static size_t out_escaped(struct out *o, const char *str, size_t len,
                          size_t room, int json) {
  const unsigned char *s = (const unsigned char *)str;
  size_t left = o->cap - o->n, i = 0, in, n;
  int capped = room >= left;
  char tmp[AL_UNIT_MAX], *p, *end;

  if (o->cut)
    return 0;
  if (capped)
    room = left;
  p = o->p + o->n;
  end = p + room;
  /* Far from the end, write in place without a check per byte. */
  while (i < len && (size_t)(end - p) >= AL_UNIT_MAX) {
    p += esc_unit(json, s + i, len - i, p, &in);
    i += in;
  }
  while (i < len) {
    n = esc_unit(json, s + i, len - i, tmp, &in);
    if (n > (size_t)(end - p))
      break;
    memcpy(p, tmp, n);
    p += n;
    i += in;
  }
  o->n = (size_t)(p - o->p);
  if (i < len && capped)
    o->cut = 1;
  return i;
}

/* Bytes s[0..len) takes escaped. */
static size_t esc_len(const char *str, size_t len, int json) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, n = 0, in;
  char tmp[AL_UNIT_MAX];

  while (i < len) {
    n += esc_unit(json, s + i, len - i, tmp, &in);
    i += in;
  }
  return n;
}

/* The most the cut marker takes for a path of len bytes. */
static size_t mark_len(size_t len) {
  return sizeof AL_MARK_PRE - 1 + u64_digits(len) + sizeof AL_MARK_POST - 1;
}

/* A quoted, escaped string. room: the most what goes between the quotes
 * may take, or AL_ROOM_ALL; at least mark_len(len) when it is not. A string
 * that does not fit loses its tail, and the cut is marked inside the
 * quotes, so the line still parses and says how much is missing. */
static void out_quoted(struct out *o, const char *s, size_t len, size_t room,
                       int json) {
  out_ch(o, '"');
  if (room == AL_ROOM_ALL) {
    out_escaped(o, s, len, AL_ROOM_ALL, json);
  } else {
    size_t took = out_escaped(o, s, len, room - mark_len(len), json);
    if (took < len) {
      OUT_LIT(o, AL_MARK_PRE);
      out_u64(o, len - took);
      OUT_LIT(o, AL_MARK_POST);
    }
  }
  out_ch(o, '"');
}

static const char *status_name(int status) {
  return status == ACCESS_ABANDONED ? "ABANDONED" : pfp_status_name(status);
}

/* The whole line but its '\n'; proom and rroom as out_quoted's room for the
 * path and the resolved path. */
static void format_line(struct out *o, const struct access_record *r,
                        const char *user, int json, size_t proom,
                        size_t rroom) {
  const char *proto = r->proto != NULL ? r->proto : "";
  const char *op = r->op != NULL ? r->op : "";
  const char *path = r->path != NULL ? r->path : "";
  size_t path_len = r->path != NULL ? r->path_len : 0;

  if (json) {
    OUT_LIT(o, "{\"time\":\"");
    out_time(o, r->time_ms);
    OUT_LIT(o, "\",\"worker\":");
    out_u64(o, r->worker);
    OUT_LIT(o, ",\"conn\":");
    out_u64(o, r->conn);
    OUT_LIT(o, ",\"pid\":");
    out_i64(o, r->pid);
    OUT_LIT(o, ",\"uid\":");
    out_u64(o, r->uid);
    OUT_LIT(o, ",\"user\":");
    out_quoted(o, user, strlen(user), AL_ROOM_ALL, 1);
    OUT_LIT(o, ",\"gid\":");
    out_u64(o, r->gid);
    OUT_LIT(o, ",\"proto\":");
    out_quoted(o, proto, strlen(proto), AL_ROOM_ALL, 1);
    OUT_LIT(o, ",\"op\":");
    out_quoted(o, op, strlen(op), AL_ROOM_ALL, 1);
    OUT_LIT(o, ",\"path\":");
    out_quoted(o, path, path_len, proom, 1);
    OUT_LIT(o, ",\"resolved\":");
    if (r->resolved == NULL)
      OUT_LIT(o, "null");
    else
      out_quoted(o, r->resolved, r->resolved_len, rroom, 1);
    OUT_LIT(o, ",\"status\":\"");
    out_str(o, status_name(r->status));
    OUT_LIT(o, "\",\"bytes\":");
    out_u64(o, r->bytes);
    OUT_LIT(o, ",\"size\":");
    out_u64(o, r->size);
    OUT_LIT(o, ",\"duration_us\":");
    out_u64(o, r->duration_us);
    out_ch(o, '}');
  } else {
    OUT_LIT(o, "time=");
    out_time(o, r->time_ms);
    OUT_LIT(o, " worker=");
    out_u64(o, r->worker);
    OUT_LIT(o, " conn=");
    out_u64(o, r->conn);
    OUT_LIT(o, " pid=");
    out_i64(o, r->pid);
    OUT_LIT(o, " uid=");
    out_u64(o, r->uid);
    OUT_LIT(o, " user=");
    out_text_token(o, user);
    OUT_LIT(o, " gid=");
    out_u64(o, r->gid);
    OUT_LIT(o, " proto=");
    out_text_token(o, proto);
    OUT_LIT(o, " op=");
    out_text_token(o, op);
    OUT_LIT(o, " path=");
    out_quoted(o, path, path_len, proom, 0);
    OUT_LIT(o, " resolved=");
    if (r->resolved == NULL)
      out_ch(o, '-');
    else
      out_quoted(o, r->resolved, r->resolved_len, rroom, 0);
    OUT_LIT(o, " status=");
    out_str(o, status_name(r->status));
    OUT_LIT(o, " bytes=");
    out_u64(o, r->bytes);
    OUT_LIT(o, " size=");
    out_u64(o, r->size);
    OUT_LIT(o, " duration_us=");
    out_u64(o, r->duration_us);
  }
}

/* The line did not fit o->cap: format it again with the two paths cut to
 * share what the other fields leave. Each gets half, and one that needs
 * less leaves the rest to the other: padding in the wire path cannot push
 * the resolved path (what was served) out of the line, nor the other way
 * round. Only a buffer too small for the other fields and two markers
 * leaves the line a plain cut prefix. */
static void fit_paths(struct out *o, const struct access_record *r,
                      const char *user, int json) {
  struct access_record bare = *r;
  size_t path_len = r->path != NULL ? r->path_len : 0;
  size_t res_len = r->resolved != NULL ? r->resolved_len : 0;
  size_t budget, half, pneed, rneed, proom, rroom;
  struct out t = {.p = o->p, .cap = o->cap};

  bare.path_len = 0;
  bare.resolved_len = 0;
  format_line(&t, &bare, user, json, AL_ROOM_ALL, AL_ROOM_ALL);
  if (t.cut)
    goto prefix;
  budget = t.cap - t.n;
  half = budget / 2;
  pneed = esc_len(r->path, path_len, json);
  rneed = esc_len(r->resolved, res_len, json);
  if (rneed <= half) {
    rroom = rneed;
    proom = budget - rneed;
  } else if (pneed <= half) {
    proom = pneed;
    rroom = budget - pneed;
  } else {
    proom = half;
    rroom = budget - half;
  }
  if (pneed <= proom)
    proom = AL_ROOM_ALL;
  else if (proom < mark_len(path_len))
    goto prefix;
  if (rneed <= rroom)
    rroom = AL_ROOM_ALL;
  else if (rroom < mark_len(res_len))
    goto prefix;
  t = (struct out){.p = o->p, .cap = o->cap};
  format_line(&t, r, user, json, proom, rroom);
  if (t.cut)
    goto prefix; /* cannot happen: the rooms add up to the budget */
  *o = t;
  return;
prefix:
  t = (struct out){.p = o->p, .cap = o->cap};
  format_line(&t, r, user, json, AL_ROOM_ALL, AL_ROOM_ALL);
  *o = t;
}

size_t accesslog_format(char *buf, size_t len, const struct access_record *r,
                        const char *user, enum access_format fmt) {
  int json = fmt == ACCESS_JSON;
  char uidbuf[16];
  struct out o;

  if (len == 0)
    return 0;
  if (len > ACCESSLOG_LINE_MAX)
    len = ACCESSLOG_LINE_MAX;

  /* No name (none in passwd, or one we would not print): the uid. */
  if (user == NULL || user[0] == '\0') {
    struct out u = {.p = uidbuf, .cap = sizeof uidbuf - 1};
    out_u64(&u, r->uid);
    uidbuf[u.n] = '\0';
    user = uidbuf;
  }
  o = (struct out){.p = buf, .cap = len - 1};
  format_line(&o, r, user, json, AL_ROOM_ALL, AL_ROOM_ALL);
  if (o.cut)
    fit_paths(&o, r, user, json);
  buf[o.n++] = '\n'; /* cap left room for it */
  return o.n;
}

/* ---- 2. the queue ----------------------------------------------------- */

/* A queued record: this header, then proto, op (each NUL-terminated), the
 * path and the resolved path. Records are copied in and out with memcpy,
 * so the ring needs no alignment. */
struct qhdr {
  uint32_t len;           /* the whole record, header included */
  uint8_t proto_len;      /* proto bytes, NUL included */
  uint8_t op_len;         /* op bytes, NUL included */
  uint8_t has_resolved;   /* r.resolved was not NULL ("-" otherwise) */
  uid_t owner;            /* whose share it counts against */
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

enum dest_kind { DEST_OFF, DEST_STDERR, DEST_SYSLOG, DEST_FILE };

struct dest {
  enum dest_kind kind;
  int fd;                     /* DEST_STDERR: 2; DEST_FILE: ours; else -1 */
  enum access_format fmt;     /* line format */
  int strict;                 /* strict_modes for (re)opening the file */
  char path[CONFIG_PATH_MAX]; /* as configured: "stderr", a file path, ... */
};

/* Bytes one uid holds in the queue: reserved and queued. */
struct uid_slot {
  uid_t uid;      /* key */
  uint32_t bytes; /* 0: the slot is free */
};

static struct {
  pthread_mutex_t mu;                        /* guards everything here */
  pthread_cond_t wake;                       /* the writer waits here */
  unsigned char ring[ACCESSLOG_QUEUE_BYTES]; /* queued records */
  size_t head;                               /* oldest record's offset */
  size_t used;                               /* bytes queued */
  size_t reserved;                           /* bytes promised to tickets */
  uint64_t nrecs;                            /* records queued */
  struct uid_slot uids[AL_UID_SLOTS];        /* uid -> bytes it holds */
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

static int64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait on q.wake (q.mu held) until the monotonic ms `due`. */
static void wait_until(int64_t due) {
  struct timespec ts = {.tv_sec = due / 1000,
                        .tv_nsec = (due % 1000) * 1000000};
  pthread_cond_timedwait(&q.wake, &q.mu, &ts);
}

/* ---- the per-uid shares (q.mu held) ---- */

static size_t uid_home(uid_t uid) {
  return ((uint32_t)uid * 2654435761u) >> (32 - AL_UID_BITS);
}

/* uid's slot, or the free slot where it would go. */
static size_t uid_find(uid_t uid) {
  size_t i = uid_home(uid);

  while (q.uids[i].bytes != 0 && q.uids[i].uid != uid)
    i = (i + 1) & (AL_UID_SLOTS - 1);
  return i;
}

static size_t uid_held(uid_t uid) { return q.uids[uid_find(uid)].bytes; }

/* Add bytes to what uid holds: 0, or -EAGAIN when the table has no room
 * for another uid (fail safe: the caller waits, as for a full queue). */
static int uid_add(uid_t uid, size_t bytes) {
  size_t i = uid_find(uid);

  if (bytes == 0)
    return 0;
  if (q.uids[i].bytes == 0) {
    if (q.uids_used >= AL_UID_MAX_USED)
      return -EAGAIN;
    q.uids[i].uid = uid;
    q.uids_used++;
  }
  q.uids[i].bytes += (uint32_t)bytes;
  return 0;
}

/* Take bytes off what uid holds; a uid that holds nothing leaves the table
 * (backward-shift deletion, so no tombstones pile up: Knuth 6.4, R). */
static void uid_sub(uid_t uid, size_t bytes) {
  size_t i = uid_find(uid), j = i;

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
    k = uid_home(q.uids[j].uid);
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
  size_t room, held;
  int r = 0;

  t->uid = uid;
  t->bytes = 0;
  pthread_mutex_lock(&q.mu);
  if (!q.running) {
    r = -EPIPE;
    goto out;
  }
  room = ACCESSLOG_QUEUE_BYTES - q.used - q.reserved;
  held = uid_held(uid);
  if (bytes > room || held + bytes > ACCESSLOG_UID_SHARE ||
      (held >= ACCESSLOG_UID_SMALL && room - bytes < ACCESSLOG_QUEUE_SPARE)) {
    r = -EAGAIN;
    goto out;
  }
  r = uid_add(uid, bytes);
  if (r < 0)
    goto out;
  q.reserved += bytes;
  t->bytes = (uint32_t)bytes;
out:
  pthread_mutex_unlock(&q.mu);
  return r;
}

void accesslog_cancel(struct accesslog_ticket *t) {
  if (t->bytes == 0)
    return;
  pthread_mutex_lock(&q.mu);
  q.reserved -= t->bytes;
  uid_sub(t->uid, t->bytes);
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
  h.has_resolved = r->resolved != NULL;
  h.r.path_len = path_len;
  h.r.resolved_len = res_len;
  h.proto_len = (uint8_t)(proto_len + 1);
  h.op_len = (uint8_t)(op_len + 1);
  h.owner = t->uid;
  h.len = (uint32_t)record_bytes(proto_len, op_len, path_len, res_len);

  pthread_mutex_lock(&q.mu);
  /* The reservation becomes the record: give back the room promised, take
   * what the record really needs (never more unless the caller broke the
   * contract, and then only if it is free). */
  q.reserved -= t->bytes;
  uid_sub(t->uid, t->bytes);
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

/* ---- 3. destinations -------------------------------------------------- */

/* Returns 0 or -errno (reason in err); *d is usable (and needs dest_close)
 * only on 0. */
static int dest_open(struct dest *d, const struct accesslog_opts *o, char *err,
                     size_t errlen) {
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

/* Where a destination's lines go, for messages. */
static const char *dest_name(const struct dest *d) {
  return d->kind == DEST_SYSLOG ? SYSLOGSEND_PATH : d->path;
}

/* The longest line, '\n' included, a destination takes: a syslog line must
 * fit one datagram (syslogsend.h). */
static size_t dest_line_max(const struct dest *d) {
  return d->kind == DEST_SYSLOG ? AL_SYSLOG_LINE : ACCESSLOG_LINE_MAX;
}

/* write() all of buf, looping on partial writes and EINTR; a non-blocking
 * fd that takes nothing is waited on for at most poll_ms. *done says how
 * much went out. Returns 0 or -errno. */
static int write_all(int fd, const char *buf, size_t len, size_t *done,
                     int poll_ms) {
  *done = 0;
  while (*done < len) {
    ssize_t n = write(fd, buf + *done, len - *done);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      /* stderr may be non-blocking (shared with a libuv loop): wait a
       * bounded time rather than spin or block for ever. */
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      int rc = poll(&p, 1, poll_ms);
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
  char pwbuf[AL_PWBUF_BYTES];             /* getpwuid_r scratch */
  uint64_t drop_queue;                    /* unreported: given up */
  uint64_t drop_write;                    /* unreported: write failed */
  int drop_errno;                         /* why the last write failed */
  int syslog_stalled;                     /* last syslog send found no room */
  char drop_dest[CONFIG_PATH_MAX];        /* where it failed */
  int reported;                           /* a report was made */
  int64_t report_ms;                      /* monotonic time of it */
  int blocked;                            /* log_full = block, and stuck */
  int64_t blocked_ms;                     /* monotonic time it began */
  int giving_up;                          /* stopping, past q.stop_due */
} w;

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
  w.drop_errno = err;
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
    int rc = syslogsend(LOG_DAEMON | LOG_INFO, line, n, wait);

    w.syslog_stalled = rc == -EAGAIN;
    if (rc != 0) {
      if (!dropping())
        return rc;
      note_drop(1, -rc, SYSLOGSEND_PATH);
    }
    w.sent += n + 1;
  }
  return 0;
}

/* Send the batch from w.sent on: 0 or -errno, w.sent past what went out. */
static int dest_send(void) {
  int poll_ms = w.giving_up ? 0 : AL_POLL_MS;
  size_t done = 0;
  int r;

  switch (w.cur.kind) {
  case DEST_SYSLOG:
    return syslog_batch();
  case DEST_OFF:
    w.sent = w.batch_len;
    return 0;
  default:
    break;
  }
  /* A dropped write may have left half a line; end it, so the lines after
   * it parse. */
  if (w.midline) {
    r = write_all(w.cur.fd, "\n", 1, &done, poll_ms);
    if (r < 0)
      return r;
    w.midline = 0;
  }
  r = write_all(w.cur.fd, w.batch + w.sent, w.batch_len - w.sent, &done,
                poll_ms);
  w.sent += done;
  return r;
}

/* Returns 1 when a new file is open. */
static int writer_reopen(void) {
  char err[CONFIG_ERR_MAX];
  int fd;

  if (w.cur.kind != DEST_FILE)
    return 0;
  if (fsguard_open_log(w.cur.path, w.cur.strict, &fd, err, sizeof err) != 0) {
    log_error("access log: cannot reopen %s; writing to the old file", err);
    return 0;
  }
  close(w.cur.fd);
  w.cur.fd = fd;
  w.midline = 0;
  return 1;
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

  pthread_mutex_lock(&q.mu);
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
  pthread_mutex_unlock(&q.mu);
  return apply_commands(&c);
}

static void writer_blocked(int err) {
  char buf[128];
  uint64_t queued;

  pthread_mutex_lock(&q.mu);
  queued = q.nrecs;
  pthread_mutex_unlock(&q.mu);
  w.blocked = 1;
  w.blocked_ms = mono_ms();
  log_error(
      "access log: blocked: %s: %s; %llu records wait, and requests "
      "wait for room in the queue until it takes writes again "
      "(log_full = block)",
      dest_name(&w.cur), strerror_r(err, buf, sizeof buf),
      (unsigned long long)(count_nl(w.batch + w.sent, w.batch_len - w.sent) +
                           queued));
}

static void writer_resumed(void) {
  uint64_t queued;

  pthread_mutex_lock(&q.mu);
  queued = q.nrecs;
  pthread_mutex_unlock(&q.mu);
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
      note_drop(count_nl(w.batch + w.sent, w.batch_len - w.sent), -r,
                dest_name(&w.cur));
      w.blocked = 0; /* the drop reports say the rest */
      break;
    }
    /* Said once the first retry failed too: a passing hiccup (one syslog
     * send that found no room) is not worth two lines on the error log. */
    if (!w.blocked && failures >= 2)
      writer_blocked(-r);
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

  if (w.cur.kind != DEST_OFF)
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
    if (due < 0)
      pthread_cond_wait(&q.wake, &q.mu);
    else
      wait_until(due);
    q.writer_waiting = 0;
  }
}

static void *writer_main(void *arg) {
  (void)arg;
  for (;;) {
    struct cmds c;
    int done;
    size_t len;

    /* Commands and records are taken in one critical section, and a
     * command is applied before the records taken with it are written:
     * whatever is queued after accesslog_reopen() or _reconfigure()
     * returns goes to the new file. */
    pthread_mutex_lock(&q.mu);
    writer_wait();
    take_commands(&c);
    len = queue_take(w.stage, sizeof w.stage);
    pthread_mutex_unlock(&q.mu);

    apply_commands(&c);
    writer_records(len);

    /* Stopping ends once the queue is empty after a round: a ticket
     * reserved before the stop may still have been committed meanwhile. */
    pthread_mutex_lock(&q.mu);
    w.drop_queue += q.drop_queue;
    q.drop_queue = 0;
    done = q.stopping && q.used == 0;
    pthread_mutex_unlock(&q.mu);
    writer_report(done);
    if (done)
      break;
  }
  return NULL;
}

/* ---- 6. lifecycle ----------------------------------------------------- */

int accesslog_start(const struct accesslog_opts *o, char *err, size_t errlen) {
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
  w.full = o->full;
  w.batch_len = 0;
  w.sent = 0;
  w.midline = 0;
  w.drop_queue = 0;
  w.drop_write = 0;
  w.syslog_stalled = 0;
  w.blocked = 0;
  w.giving_up = 0;

  pthread_mutex_lock(&q.mu);
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
  struct timespec until;
  uint64_t left;

  pthread_mutex_lock(&q.mu);
  if (!q.running) {
    pthread_mutex_unlock(&q.mu);
    return;
  }
  /* From here new reservations are refused, so the writer's drain ends;
   * a writer retrying a failed destination gives up at stop_due, drops
   * (counts) the rest and exits before the join below gives up on it. */
  q.running = 0;
  q.stopping = 1;
  q.stop_due = mono_ms() + AL_STOP_WAIT_MS - AL_STOP_SPARE_MS;
  wake_command();
  pthread_mutex_unlock(&q.mu);

  /* A destination that blocks for good (a pipe nobody reads) must not keep
   * the daemon from exiting: wait a bounded time, then leave the writer
   * stuck in its write() and exit without it. */
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += AL_STOP_WAIT_MS / 1000;
  if (pthread_timedjoin_np(q.thread, NULL, &until) != 0) {
    pthread_mutex_lock(&q.mu);
    left = q.nrecs;
    pthread_mutex_unlock(&q.mu);
    log_error("access log: %s does not take writes; exiting without %llu "
              "queued records and those being written",
              dest_name(&w.cur), (unsigned long long)left);
    return;
  }
  dest_close(&w.cur);
  pthread_mutex_lock(&q.mu);
  q.stopping = 0;
  pthread_mutex_unlock(&q.mu);
}

uint64_t accesslog_dropped(void) { return atomic_load(&dropped_total); }
