/* accesslog_format.c - the access log's line: text and JSON, escaping,
 * paths cut in the middle to fit with every field kept. Pure: no I/O, no
 * threads, no locale, no allocation; see accesslog.h for the line itself. */
#include "accesslog.h"

#include <string.h>

#include "proto.h"

#define AL_UNIT_MAX 6 /* the longest escape of one unit */

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

#define AL_ROOM_ALL ((size_t)-1) /* out_quoted: no limit but the line's */
/* The cut marker, "...[truncated N bytes]...", between a path's head and
 * tail. Its '[' is the only one a line holds raw: a path's own '[' is
 * always escaped, so a name cannot forge a cut (issue 5). */
#define AL_MARK_PRE "...[truncated "
#define AL_MARK_POST " bytes]..."
#define OUT_LIT(o, s) out_put((o), (s), sizeof(s) - 1)

static const char hex[] = "0123456789abcdef";

#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v

/* Text paths: 0 = as is; 'x' = \xHH; any other = a backslash, then that.
 * Escaped besides controls, DEL and all non-ASCII: the quote and backslash
 * (structure), [ (only the cut marker has one raw), and $ ` ! so a line
 * pasted into a shell stays inert inside its double quotes (no expansion,
 * no command, no history). */
// clang-format off
static const char text_esc[] = {
    R16('x'), R16('x'),                                             /* 00 */
    0, 'x', '"', 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,            /* 20 */
    R16(0), R16(0),                                                 /* 30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'x', '\\', 0, 0, 0,             /* 50 */
    'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                /* 60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'x',                /* 70 */
    R16('x'), R16('x'), R16('x'), R16('x'),                         /* 80 */
    R16('x'), R16('x'), R16('x'), R16('x'),                         /* c0 */
};

/* JSON strings: 0 = as is; 'u' = \u00XX ([ too, as in text); 'U' = a byte
 * of UTF-8, see json_unit; any other = a backslash, then that. */
static const char json_esc[] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r',
    'u', 'u', R16('u'),                                             /* 00 */
    0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                /* 20 */
    R16(0), R16(0),                                                 /* 30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'u', '\\', 0, 0, 0,             /* 50 */
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

/* '@': names of users of a domain, as SSSD prints them and as the Windows
 * build does ("user@DOMAIN": a backslash is the text format's escape). Not
 * special to a shell, nor to the text or JSON format. */
static int token_byte(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '@';
}

int accesslog_user_printable(const char *s) {
  size_t n = 0;

  for (; s[n] != '\0'; n++)
    if (n >= ACCESSLOG_USER_MAX || !token_byte((unsigned char)s[n]))
      return 0;
  return n > 0;
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

/* The code point of the valid 2- or 3-byte sequence at s if it must not be
 * kept raw, else 0: line splitters and terminals take it for structure, or
 * it shows nothing yet changes what is shown. C1 controls U+0080..U+009F
 * (U+0085 is NEL); U+2028/U+2029 (line, paragraph separator); the bidi
 * controls U+061C, U+200E/F, U+202A..E, U+2066..9, which make a terminal
 * show the rest of the line reversed, status included (issue 5); and the
 * invisible U+200B..D, U+2060..U+206F, U+FEFF, which hide a difference
 * between two names. */
static inline unsigned json_hidden(const unsigned char *s, size_t seq) {
  unsigned cp;

  if (seq == 2) {
    cp = (s[0] & 0x1fu) << 6 | (s[1] & 0x3fu);
    return cp <= 0x9f || cp == 0x61c ? cp : 0;
  }
  if (seq != 3)
    return 0;
  cp = (s[0] & 0x0fu) << 12 | (s[1] & 0x3fu) << 6 | (s[2] & 0x3fu);
  return (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
                 (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff
             ? cp
             : 0;
}

/* Valid UTF-8 is kept as is, except the code points json_hidden names,
 * written \uXXXX. Each byte of invalid UTF-8 becomes \udcXX, Python's
 * surrogateescape, so
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
  /* Only lead bytes C2, D8, E2 and EF start a hidden code point: one
   * compare keeps the rest of non-ASCII text on the fast path. */
  if (c == 0xc2 || c == 0xd8 || c == 0xe2 || c == 0xef) {
    unsigned cp = json_hidden(s, seq);
    if (cp != 0)
      return json_u(d, cp);
  }
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

/* Where the kept tail of s[0..len) starts: the first unit boundary from i
 * on whose tail takes at most room bytes escaped, given that s[i..len)
 * takes rest bytes. i is a unit boundary, so the tail is escaped exactly as
 * in the whole path. */
static size_t tail_from(const char *str, size_t len, size_t i, size_t rest,
                        size_t room, int json) {
  const unsigned char *s = (const unsigned char *)str;
  char tmp[AL_UNIT_MAX];
  size_t in;

  while (i < len && rest > room) {
    rest -= esc_unit(json, s + i, len - i, tmp, &in);
    i += in;
  }
  return i;
}

/* A quoted, escaped string. room: the most what goes between the quotes
 * may take, or AL_ROOM_ALL; at least mark_len(len) when it is not. A string
 * that does not fit loses its middle: a third of the room keeps its head
 * (where it is), the rest its tail (the file name, what a reader looks
 * for), and the cut is marked inside the quotes between them, so the line
 * still parses and says how much is missing. */
static void out_quoted(struct out *o, const char *s, size_t len, size_t room,
                       int json) {
  out_ch(o, '"');
  if (room == AL_ROOM_ALL) {
    out_escaped(o, s, len, AL_ROOM_ALL, json);
  } else {
    size_t keep = room - mark_len(len), n0 = o->n, took, head, from;
    took = out_escaped(o, s, len, keep / 3, json);
    head = o->n - n0;
    from = tail_from(s, len, took, esc_len(s + took, len - took, json),
                     keep - head, json);
    if (from > took) {
      OUT_LIT(o, AL_MARK_PRE);
      out_u64(o, from - took);
      OUT_LIT(o, AL_MARK_POST);
    }
    out_escaped(o, s + from, len - from, keep - head, json);
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
 * share what the other fields leave. The resolved path (what was served)
 * comes first: it is kept whole if it leaves the wire path a quarter of
 * the room (or what it needs), and the wire path gets the rest; a longer
 * one is cut to all but that quarter, so both still show their file name.
 * Padding in the wire path cannot push the resolved path out of the line.
 * Only a buffer too small for the other fields and two markers leaves the
 * line a plain cut prefix. */
static void fit_paths(struct out *o, const struct access_record *r,
                      const char *user, int json) {
  struct access_record bare = *r;
  size_t path_len = r->path != NULL ? r->path_len : 0;
  size_t res_len = r->resolved != NULL ? r->resolved_len : 0;
  size_t budget, pmin, pneed, rneed, proom, rroom;
  struct out t = {.p = o->p, .cap = o->cap};

  bare.path_len = 0;
  bare.resolved_len = 0;
  format_line(&t, &bare, user, json, AL_ROOM_ALL, AL_ROOM_ALL);
  if (t.cut)
    goto prefix;
  budget = t.cap - t.n;
  pneed = esc_len(r->path, path_len, json);
  rneed = esc_len(r->resolved, res_len, json);
  pmin = pneed < budget / 4 ? pneed : budget / 4;
  if (pmin < pneed && pmin < mark_len(path_len))
    pmin = mark_len(path_len);
  if (pmin > budget)
    goto prefix;
  if (rneed <= budget - pmin) {
    rroom = rneed;
    proom = budget - rneed;
  } else {
    proom = pmin;
    rroom = budget - pmin;
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
