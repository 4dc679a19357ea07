/* test_accesslog.c - unit tests of accesslog.c (lines, writer) and log.c. */

/* Exact text and JSON lines, escaping of hostile paths (shell and line
 * separators too), paths cut to fit with every field kept, the per-uid
 * shares of the queue, and the writer end to end: threads, reopen,
 * reconfigure, a destination that fails (log_full = drop and block) and one
 * that stalls. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "accesslog.h"
#include "log.h"
#include "logsink.h"
#include "proto.h"

/* The longest escape of one unit (\uXXXX): a cut line may stop that much
 * short of its buffer. */
#define AL_TEST_UNIT 6

#define FULL_TEXT                                                              \
  "time=2026-11-24T23:13:48.123Z worker=1 conn=17 pid=123 uid=1000 "           \
  "user=alice gid=1000 proto=pfp1 op=GET path=\"/a b\" resolved=\"a b\" "      \
  "status=OK bytes=4096 size=4096 duration_us=52\n"
#define FULL_JSON                                                              \
  "{\"time\":\"2026-11-24T23:13:48.123Z\",\"worker\":1,\"conn\":17,"           \
  "\"pid\":123,\"uid\":1000,\"user\":\"alice\",\"gid\":1000,"                  \
  "\"proto\":\"pfp1\",\"op\":\"GET\",\"path\":\"/a b\",\"resolved\":\"a b\","  \
  "\"status\":\"OK\",\"bytes\":4096,\"size\":4096,\"duration_us\":52}\n"

/* Every class of hostile byte, one after another: newline, quote,
 * backslash, DEL, 0xff, valid "é", a truncated 2-byte sequence, an overlong
 * "/", a lone surrogate (U+D800), a valid 4-byte emoji, above U+10FFFF, a
 * truncated 3-byte sequence at the end. */
#define HOSTILE                                                                \
  "n\nq\"b\\d\x7f"                                                             \
  "f\xff"                                                                      \
  "e\xc3\xa9"                                                                  \
  "i\xc3("                                                                     \
  "o\xc0\xaf"                                                                  \
  "s\xed\xa0\x80"                                                              \
  "m\xf0\x9f\x98\x80"                                                          \
  "h\xf4\x90\x80\x80"                                                          \
  "t\x01\xe2\x82"
#define HOSTILE_TEXT                                                           \
  "\"n\\x0aq\\\"b\\\\d\\x7ff\\xffe\\xc3\\xa9i\\xc3("                           \
  "o\\xc0\\xafs\\xed\\xa0\\x80"                                                \
  "m\\xf0\\x9f\\x98\\x80h\\xf4\\x90\\x80\\x80t\\x01\\xe2\\x82\""
#define HOSTILE_JSON                                                           \
  "\"n\\nq\\\"b\\\\d\\u007ff\\udcffe\xc3\xa9i\\udcc3(o\\udcc0\\udcafs"         \
  "\\udced\\udca0\\udc80m\xf0\x9f\x98\x80h\\udcf4\\udc90\\udc80\\udc80"        \
  "t\\u0001\\udce2\\udc82\""

static char tmpdir[64];

static struct access_record sample(void) {
  struct access_record r = {
      .time_ms = 1795562028123, /* 2026-11-24T23:13:48.123Z */
      .worker = 1,
      .conn = 17,
      .pid = 123,
      .uid = 1000,
      .gid = 1000,
      .proto = "pfp1",
      .op = "GET",
      .path = "/a b",
      .path_len = 4,
      .resolved = "a b",
      .resolved_len = 3,
      .status = PFP_OK,
      .bytes = 4096,
      .size = 4096,
      .duration_us = 52,
  };
  return r;
}

/* The sample record with another path (len bytes, not NUL-terminated) and
 * no resolved path. */
static struct access_record sample_path(const char *path, size_t len) {
  struct access_record r = sample();
  r.path = path;
  r.path_len = len;
  r.resolved = NULL;
  r.resolved_len = 0;
  return r;
}

/* Format into buf (len bytes for the line, plus a NUL for the test). */
static size_t fmt(char *buf, size_t len, const struct access_record *r,
                  const char *user, enum access_format f) {
  size_t n = accesslog_format(buf, len, r, user, f);
  buf[n] = '\0';
  return n;
}

static size_t count_nl(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += s[i] == '\n';
  return c;
}

/* ---- line parsers, written apart from the formatter ------------------- */

/* Strict UTF-8 check by decoding code points (not by the formatter's
 * table), so a shared mistake cannot hide. */
static int valid_utf8(const unsigned char *s, size_t n) {
  static const unsigned long min[] = {0, 0x80, 0x800, 0x10000};
  size_t i = 0;

  while (i < n) {
    unsigned long cp;
    size_t k;
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    if ((s[i] & 0xe0) == 0xc0) {
      cp = s[i] & 0x1f;
      k = 1;
    } else if ((s[i] & 0xf0) == 0xe0) {
      cp = s[i] & 0x0f;
      k = 2;
    } else if ((s[i] & 0xf8) == 0xf0) {
      cp = s[i] & 0x07;
      k = 3;
    } else {
      return 0;
    }
    if (i + k >= n)
      return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80)
        return 0;
      cp = cp << 6 | (s[i + j] & 0x3f);
    }
    if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += k + 1;
  }
  return 1;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* JSON's two-character escapes other than \u: each letter that may follow
 * the backslash, then the byte it stands for. */
static const char json_short[] = "\"\"\\\\//b\bf\fn\nr\rt\t";

/* A JSON string at p: decode into out the way Python's
 * json.loads(...).encode("utf-8", "surrogateescape") would. Returns the
 * position after the closing quote, or NULL. */
static const char *json_string(const char *p, const char *end,
                               unsigned char *out, size_t *outlen) {
  size_t n = 0;

  if (p >= end || *p++ != '"')
    return NULL;
  while (p < end && *p != '"') {
    unsigned char c = (unsigned char)*p++;
    unsigned long v = 0;
    if (c < 0x20)
      return NULL;
    if (c != '\\') {
      out[n++] = c;
      continue;
    }
    if (p >= end)
      return NULL;
    c = (unsigned char)*p++;
    if (c != 'u') {
      size_t i = 0;
      while (i < sizeof json_short - 1 && (unsigned char)json_short[i] != c)
        i += 2;
      if (i == sizeof json_short - 1)
        return NULL;
      out[n++] = (unsigned char)json_short[i + 1];
      continue;
    }
    for (int i = 0; i < 4; i++) {
      if (p >= end || hexval(*p) < 0)
        return NULL;
      v = v << 4 | (unsigned long)hexval(*p++);
    }
    if (v >= 0xdc80 && v <= 0xdcff)
      out[n++] = (unsigned char)v; /* surrogateescape */
    else if (v >= 0xd800 && v <= 0xdfff)
      return NULL;
    else if (v < 0x80)
      out[n++] = (unsigned char)v;
    else if (v < 0x800) {
      out[n++] = (unsigned char)(0xc0 | v >> 6);
      out[n++] = (unsigned char)(0x80 | (v & 0x3f));
    } else {
      out[n++] = (unsigned char)(0xe0 | v >> 12);
      out[n++] = (unsigned char)(0x80 | ((v >> 6) & 0x3f));
      out[n++] = (unsigned char)(0x80 | (v & 0x3f));
    }
  }
  if (p >= end)
    return NULL;
  *outlen = n;
  return p + 1;
}

/* The fields the tests look at. */
struct parsed {
  unsigned long long conn, bytes;
  char user[80];
  unsigned char path[PFP_PATH_MAX * 2];
  size_t path_len;
  int has_resolved; /* not "-" / null */
  unsigned char resolved[PFP_PATH_MAX * 2];
  size_t resolved_len;
  char status[16];
};

static const char *const keys[] = {"time",  "worker", "conn",       "pid",
                                   "uid",   "user",   "gid",        "proto",
                                   "op",    "path",   "resolved",   "status",
                                   "bytes", "size",   "duration_us"};
#define NKEYS (sizeof keys / sizeof keys[0])

static int time_ok(const char *s, size_t n) {
  static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (n != sizeof pat - 1)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
      return 0;
  return 1;
}

static int digits(const char *s, size_t n) {
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return 0;
  return 1;
}

static void keep(char *dst, size_t cap, const char *s, size_t n) {
  snprintf(dst, cap, "%.*s", (int)n, s);
}

/* A quoted text value at *sp (up to end) into out; advances *sp. */
static int text_quoted(const char **sp, const char *end, unsigned char *out,
                       size_t *outlen) {
  const char *s = *sp;
  size_t n = 0;

  if (s >= end || *s++ != '"')
    return -1;
  while (s < end && *s != '"') {
    unsigned char c = (unsigned char)*s++;
    /* Raw: printable ASCII, never what a shell expands. */
    if (c < 0x20 || c >= 0x7f || c == '$' || c == '`' || c == '!')
      return -1;
    if (c != '\\') {
      out[n++] = c;
      continue;
    }
    if (s >= end)
      return -1;
    c = (unsigned char)*s++;
    if (c == '"' || c == '\\') {
      out[n++] = c;
    } else if (c == 'x' && end - s >= 2 && hexval(s[0]) >= 0 &&
               hexval(s[1]) >= 0) {
      out[n++] = (unsigned char)(hexval(s[0]) << 4 | hexval(s[1]));
      s += 2;
    } else {
      return -1;
    }
  }
  if (s >= end)
    return -1;
  *sp = s + 1;
  *outlen = n;
  return 0;
}

/* A text line (without its '\n'): exactly the keys, in order. */
static int parse_text(const char *s, size_t n, struct parsed *p) {
  const char *end = s + n;

  memset(p, 0, sizeof *p);
  for (size_t k = 0; k < NKEYS; k++) {
    size_t kl = strlen(keys[k]);
    const char *v;
    if (k > 0 && (s >= end || *s++ != ' '))
      return -1;
    if ((size_t)(end - s) <= kl || memcmp(s, keys[k], kl) != 0 || s[kl] != '=')
      return -1;
    s += kl + 1;
    v = s;
    if (strcmp(keys[k], "path") == 0) {
      if (text_quoted(&s, end, p->path, &p->path_len) < 0)
        return -1;
      continue;
    }
    if (strcmp(keys[k], "resolved") == 0) {
      if (s < end && *s == '-') {
        s++;
        continue;
      }
      p->has_resolved = 1;
      if (text_quoted(&s, end, p->resolved, &p->resolved_len) < 0)
        return -1;
      continue;
    }
    while (s < end && *s != ' ')
      s++;
    if (strcmp(keys[k], "time") == 0 && !time_ok(v, (size_t)(s - v)))
      return -1;
    if (strcmp(keys[k], "conn") == 0 || strcmp(keys[k], "bytes") == 0) {
      if (!digits(v, (size_t)(s - v)))
        return -1;
      *(keys[k][0] == 'c' ? &p->conn : &p->bytes) = strtoull(v, NULL, 10);
    }
    if (strcmp(keys[k], "user") == 0)
      keep(p->user, sizeof p->user, v, (size_t)(s - v));
    if (strcmp(keys[k], "status") == 0)
      keep(p->status, sizeof p->status, v, (size_t)(s - v));
  }
  return s == end ? 0 : -1;
}

/* A JSON line (without its '\n'): one flat object, exactly the keys in
 * order, strings where strings belong (resolved: or null), numbers
 * elsewhere. The raw line is valid UTF-8 and holds none of the code points
 * line splitters take for a line end (U+0085, U+2028, U+2029) nor any C1
 * control. */
static int parse_json(const char *s, size_t n, struct parsed *p) {
  static const int is_string[NKEYS] = {1, 0, 0, 0, 0, 1, 0, 1,
                                       1, 1, 1, 1, 0, 0, 0};
  const char *end = s + n;
  unsigned char key[64], val[PFP_PATH_MAX * 2 + 1];
  size_t kl, vl;

  memset(p, 0, sizeof *p);
  if (!valid_utf8((const unsigned char *)s, n) || s >= end || *s++ != '{')
    return -1;
  for (const char *c = s; c + 1 < end; c++)
    if ((c[0] == '\xc2' && (unsigned char)c[1] <= 0x9f) ||
        (c + 2 < end && memcmp(c, "\xe2\x80", 2) == 0 &&
         (c[2] == '\xa8' || c[2] == '\xa9')))
      return -1;
  for (size_t k = 0; k < NKEYS; k++) {
    int null = 0;
    if (k > 0 && (s >= end || *s++ != ','))
      return -1;
    s = json_string(s, end, key, &kl);
    if (s == NULL || kl != strlen(keys[k]) || memcmp(key, keys[k], kl) != 0)
      return -1;
    if (s >= end || *s++ != ':')
      return -1;
    if (strcmp(keys[k], "resolved") == 0 && end - s >= 4 &&
        memcmp(s, "null", 4) == 0) {
      s += 4;
      vl = 0;
      null = 1;
    } else if (is_string[k]) {
      s = json_string(s, end, val, &vl);
      if (s == NULL)
        return -1;
    } else {
      const char *v = s;
      while (s < end && *s >= '0' && *s <= '9')
        s++;
      if (!digits(v, (size_t)(s - v)))
        return -1;
      vl = (size_t)(s - v);
      memcpy(val, v, vl);
    }
    val[vl] = '\0'; /* for strtoull */
    if (strcmp(keys[k], "time") == 0 && !time_ok((char *)val, vl))
      return -1;
    if (strcmp(keys[k], "conn") == 0)
      p->conn = strtoull((char *)val, NULL, 10);
    if (strcmp(keys[k], "bytes") == 0)
      p->bytes = strtoull((char *)val, NULL, 10);
    if (strcmp(keys[k], "user") == 0)
      keep(p->user, sizeof p->user, (char *)val, vl);
    if (strcmp(keys[k], "status") == 0)
      keep(p->status, sizeof p->status, (char *)val, vl);
    if (strcmp(keys[k], "path") == 0) {
      memcpy(p->path, val, vl);
      p->path_len = vl;
    }
    if (strcmp(keys[k], "resolved") == 0 && !null) {
      p->has_resolved = 1;
      memcpy(p->resolved, val, vl);
      p->resolved_len = vl;
    }
  }
  if (s >= end || *s++ != '}')
    return -1;
  return s == end ? 0 : -1;
}

/* A line (without its '\n') of format f. */
static int parse_line(enum access_format f, const char *s, size_t n,
                      struct parsed *p) {
  return f == ACCESS_JSON ? parse_json(s, n, p) : parse_text(s, n, p);
}

/* ---- formatting -------------------------------------------------------- */

/* The sample record, logged for "alice", is exactly the line want. */
static void expect_sample_line(enum access_format f, const char *want) {
  struct access_record r = sample();
  char buf[1024];

  size_t n = fmt(buf, sizeof buf - 1, &r, "alice", f);
  assert_string_equal(buf, want);
  assert_int_equal(n, strlen(want));
}

static void test_text_full(void **state) {
  (void)state;
  expect_sample_line(ACCESS_TEXT, FULL_TEXT);
}

static void test_json_full(void **state) {
  (void)state;
  expect_sample_line(ACCESS_JSON, FULL_JSON);
}

/* An EBUSY refusal: acceptor, no name, no op, no path. */
static void test_refusal_fields(void **state) {
  struct access_record r = sample();
  char buf[1024];
  (void)state;

  r.worker = 0;
  r.op = "-";
  r.path = NULL;
  r.path_len = 0;
  r.resolved = NULL;
  r.resolved_len = 0;
  r.status = PFP_EBUSY;
  r.bytes = r.size = 0;
  r.uid = 4000123;
  fmt(buf, sizeof buf - 1, &r, NULL, ACCESS_TEXT);
  assert_string_equal(buf, "time=2026-11-24T23:13:48.123Z worker=0 conn=17 "
                           "pid=123 uid=4000123 user=4000123 gid=1000 "
                           "proto=pfp1 op=- path=\"\" resolved=- status=EBUSY "
                           "bytes=0 size=0 duration_us=52\n");
  fmt(buf, sizeof buf - 1, &r, "", ACCESS_JSON);
  assert_string_equal(
      buf, "{\"time\":\"2026-11-24T23:13:48.123Z\",\"worker\":0,\"conn\":17,"
           "\"pid\":123,\"uid\":4000123,\"user\":\"4000123\",\"gid\":1000,"
           "\"proto\":\"pfp1\",\"op\":\"-\",\"path\":\"\",\"resolved\":null,"
           "\"status\":\"EBUSY\",\"bytes\":0,\"size\":0,\"duration_us\":52}\n");

  /* The epoch and a time before it (milliseconds floor, not truncate). */
  r.time_ms = 0;
  fmt(buf, sizeof buf - 1, &r, NULL, ACCESS_TEXT);
  assert_memory_equal(buf, "time=1970-01-01T00:00:00.000Z ", 30);
  r.time_ms = -1;
  fmt(buf, sizeof buf - 1, &r, NULL, ACCESS_TEXT);
  assert_memory_equal(buf, "time=1969-12-31T23:59:59.999Z ", 30);
}

static void test_text_escapes(void **state) {
  struct access_record r = sample_path(HOSTILE, sizeof HOSTILE - 1);
  char buf[2048], want[2048];
  (void)state;

  fmt(buf, sizeof buf - 1, &r, "alice", ACCESS_TEXT);
  snprintf(want, sizeof want,
           "time=2026-11-24T23:13:48.123Z worker=1 conn=17 pid=123 uid=1000 "
           "user=alice gid=1000 proto=pfp1 op=GET path=%s resolved=- "
           "status=OK bytes=4096 size=4096 duration_us=52\n",
           HOSTILE_TEXT);
  assert_string_equal(buf, want);
  /* Nothing but printable ASCII before the '\n'. */
  for (size_t i = 0; buf[i + 1] != '\0'; i++)
    assert_true(buf[i] >= 0x20 && buf[i] < 0x7f);
}

static void test_json_escapes(void **state) {
  struct access_record r = sample_path(HOSTILE, sizeof HOSTILE - 1);
  char buf[2048], want[2048];
  struct parsed p;
  (void)state;

  size_t n = fmt(buf, sizeof buf - 1, &r, "alice", ACCESS_JSON);
  snprintf(
      want, sizeof want,
      "{\"time\":\"2026-11-24T23:13:48.123Z\",\"worker\":1,\"conn\":17,"
      "\"pid\":123,\"uid\":1000,\"user\":\"alice\",\"gid\":1000,"
      "\"proto\":\"pfp1\",\"op\":\"GET\",\"path\":%s,\"resolved\":null,"
      "\"status\":\"OK\",\"bytes\":4096,\"size\":4096,\"duration_us\":52}\n",
      HOSTILE_JSON);
  assert_string_equal(buf, want);
  assert_int_equal(parse_json(buf, n - 1, &p), 0);
  assert_int_equal(p.path_len, sizeof HOSTILE - 1);
  assert_memory_equal(p.path, HOSTILE, sizeof HOSTILE - 1);
}

/* Names, ops and protos are not paths, but a space or quote in one must
 * not open a field either. */
static void test_hostile_tokens(void **state) {
  struct access_record r = sample();
  char buf[1024];
  struct parsed p;
  (void)state;

  r.op = "G T";
  size_t n = fmt(buf, sizeof buf - 1, &r, "a b=\"c\n", ACCESS_TEXT);
  assert_non_null(strstr(buf, " user=a\\x20b\\x3d\\x22c\\x0a gid="));
  assert_non_null(strstr(buf, " op=G\\x20T path="));
  assert_int_equal(count_nl(buf, n), 1);
  n = fmt(buf, sizeof buf - 1, &r, "a b=\"c\n", ACCESS_JSON);
  assert_int_equal(parse_json(buf, n - 1, &p), 0);
  assert_string_equal(p.user, "a b=\"c\n");
}

static void test_newline_one_line(void **state) {
  static const char path[] = "/a\nb\r\nc\n";
  struct access_record r = sample_path(path, sizeof path - 1);
  char buf[1024];
  struct parsed p;
  (void)state;

  for (int f = 0; f < 2; f++) {
    enum access_format af = f ? ACCESS_JSON : ACCESS_TEXT;
    size_t n = fmt(buf, sizeof buf - 1, &r, "alice", af);
    assert_int_equal(count_nl(buf, n), 1);
    assert_int_equal(buf[n - 1], '\n');
    assert_int_equal(parse_line(af, buf, n - 1, &p), 0);
    assert_memory_equal(p.path, path, sizeof path - 1);
  }
}

/* A shell gets nothing to expand from a text line: $, backtick and ! are
 * \xHH, inside the path's double quotes and in user names alike. */
static void test_text_shell_inert(void **state) {
  static const char path[] = "$(touch /tmp/p)`id`!!${HOME}\"$x\\!";
  struct access_record r = sample_path(path, sizeof path - 1);
  char buf[1024];
  struct parsed p;
  (void)state;

  r.resolved = path;
  r.resolved_len = sizeof path - 1;
  size_t n = fmt(buf, sizeof buf - 1, &r, "a$b`c!", ACCESS_TEXT);
  assert_non_null(strstr(buf,
                         " path=\"\\x24(touch /tmp/p)\\x60id\\x60\\x21\\x21"
                         "\\x24{HOME}\\\"\\x24x\\\\\\x21\" resolved=\""));
  assert_non_null(strstr(buf, " user=a\\x24b\\x60c\\x21 gid="));
  assert_null(memchr(buf, '$', n));
  assert_null(memchr(buf, '`', n));
  assert_null(memchr(buf, '!', n));
  assert_int_equal(parse_text(buf, n - 1, &p), 0);
  assert_memory_equal(p.path, path, sizeof path - 1);
  assert_memory_equal(p.resolved, path, sizeof path - 1);
}

/* JSON: the code points line splitters and terminals act on -- NEL
 * (U+0085), the other C1 controls (U+0080..U+009F), LINE and PARAGRAPH
 * SEPARATOR (U+2028, U+2029) -- are \uXXXX, in paths and user names; their
 * neighbours stay raw UTF-8; every line decodes to the wire bytes. */
static void test_json_line_separators(void **state) {
  static const char path[] = "a\xc2\x85"
                             "b\xc2\x80"
                             "c\xc2\x9f"
                             "d\xe2\x80\xa8"
                             "e\xe2\x80\xa9"
                             "f\xc2\xa0"
                             "g\xe2\x80\xa7"
                             "h\xe2\x80\xaa";
  static const char want[] = "\"a\\u0085b\\u0080c\\u009fd\\u2028e\\u2029"
                             "f\xc2\xa0g\xe2\x80\xa7h\xe2\x80\xaa\"";
  struct access_record r = sample_path(path, sizeof path - 1);
  char buf[1024], exp[256];
  struct parsed p;
  (void)state;

  r.resolved = path;
  r.resolved_len = sizeof path - 1;
  size_t n = fmt(buf, sizeof buf - 1, &r, "u\xc2\x85v", ACCESS_JSON);
  snprintf(exp, sizeof exp, "\"path\":%s,\"resolved\":%s,", want, want);
  assert_non_null(strstr(buf, exp));
  assert_non_null(strstr(buf, "\"user\":\"u\\u0085v\","));
  assert_int_equal(parse_json(buf, n - 1, &p), 0);
  assert_memory_equal(p.path, path, sizeof path - 1);
  assert_memory_equal(p.resolved, path, sizeof path - 1);
  assert_string_equal(p.user, "u\xc2\x85v");

  /* Every C1 control alone. */
  for (unsigned c = 0x80; c <= 0x9f; c++) {
    char one[2] = {'\xc2', (char)c}, e[16];
    r = sample_path(one, 2);
    fmt(buf, sizeof buf - 1, &r, "alice", ACCESS_JSON);
    snprintf(e, sizeof e, "\"\\u00%02x\"", c);
    assert_non_null(strstr(buf, e));
  }
}

/* A request read but never answered. */
static void test_abandoned(void **state) {
  struct access_record r = sample();
  char buf[1024];
  struct parsed p;
  (void)state;

  r.status = ACCESS_ABANDONED;
  r.bytes = 0;
  size_t n = fmt(buf, sizeof buf - 1, &r, "alice", ACCESS_TEXT);
  assert_non_null(strstr(buf, " status=ABANDONED bytes=0 "));
  assert_int_equal(parse_text(buf, n - 1, &p), 0);
  n = fmt(buf, sizeof buf - 1, &r, "alice", ACCESS_JSON);
  assert_non_null(strstr(buf, ",\"status\":\"ABANDONED\","));
  assert_int_equal(parse_json(buf, n - 1, &p), 0);
}

/* The hand-made date matches gmtime_r's over 400 years and both sides of
 * the epoch. */
static void test_time_matches_gmtime(void **state) {
  struct access_record r = sample();
  unsigned long long seed = 7;
  char buf[1024], want[64];
  (void)state;

  for (int i = 0; i < 200000; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    /* 1900 .. 2300, and every day boundary near the epoch */
    int64_t ms =
        i < 2000 ? ((int64_t)(i - 1000) * 86400000 - 1 + i % 3)
                 : (int64_t)(seed >> 20) % 12622780800000ll - 2208988800000ll;
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(want, sizeof want, "time=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(((ms % 1000) + 1000) % 1000));
    r.time_ms = ms;
    fmt(buf, sizeof buf - 1, &r, "alice", ACCESS_TEXT);
    assert_memory_equal(buf, want, strlen(want));
  }
}

/* Every byte alone, and many random byte strings, survive both formats:
 * each line parses and gives the wire bytes back, path and resolved. */
static void test_roundtrip(void **state) {
  struct access_record r = sample();
  unsigned char path[64];
  char buf[4096];
  struct parsed p;
  unsigned seed = 12345;
  (void)state;

  r.path = (const char *)path;
  for (int i = 0; i < 256 + 20000; i++) {
    if (i < 256) {
      path[0] = (unsigned char)i;
      r.path_len = 1;
    } else {
      r.path_len = (seed = seed * 1103515245 + 12345) >> 16 & 31;
      for (size_t j = 0; j < r.path_len; j++) {
        seed = seed * 1103515245 + 12345;
        /* Mostly high bytes, so sequences valid and not are both common;
         * 0xc2 and 0xe2 often, for C1 controls and U+2028/9. */
        unsigned v = seed >> 16 & 0xff;
        path[j] = (unsigned char)(v % 5 == 0   ? 0xc2
                                  : v % 5 == 1 ? 0xe2
                                  : v & 1      ? 0x80 | v >> 2
                                               : v);
      }
    }
    /* The resolved path: the same bytes, or none. */
    r.resolved = i & 1 ? (const char *)path : NULL;
    r.resolved_len = i & 1 ? r.path_len : 0;
    for (int f = 0; f < 2; f++) {
      enum access_format af = f ? ACCESS_JSON : ACCESS_TEXT;
      size_t n = fmt(buf, sizeof buf - 1, &r, "alice", af);
      assert_int_equal(count_nl(buf, n), 1);
      assert_int_equal(parse_line(af, buf, n - 1, &p), 0);
      assert_int_equal(p.path_len, r.path_len);
      assert_memory_equal(p.path, path, r.path_len);
      assert_int_equal(p.has_resolved, i & 1);
      if (i & 1) {
        assert_int_equal(p.resolved_len, r.path_len);
        assert_memory_equal(p.resolved, path, r.path_len);
      }
    }
  }
}

/* Whether got is wire whole, or a prefix of wire followed by the marker
 * "...[truncated N bytes]" with N the bytes left out. */
static int cut_ok(const unsigned char *got, size_t got_len, const char *wire,
                  size_t wire_len) {
  char mark[64];

  if (got_len == wire_len && memcmp(got, wire, wire_len) == 0)
    return 1;
  for (size_t k = 0; k < wire_len; k++) {
    int m =
        snprintf(mark, sizeof mark, "...[truncated %zu bytes]", wire_len - k);
    if (got_len == k + (size_t)m && memcmp(got, wire, k) == 0 &&
        memcmp(got + k, mark, (size_t)m) == 0)
      return 1;
  }
  return 0;
}

/* Bytes of the line for r with both paths empty, '\n' included. */
static size_t bare_len(const struct access_record *r, enum access_format f) {
  static char buf[ACCESSLOG_LINE_MAX];
  struct access_record b = *r;
  b.path_len = 0;
  b.resolved_len = 0;
  return accesslog_format(buf, sizeof buf, &b, "alice", f);
}

/* A line that does not fit its buffer keeps every field: at each size from
 * the whole line down to the other fields plus two cut markers, it parses,
 * every field but the paths is the whole line's, and each path is whole or
 * a prefix marked with how much is missing. Only a smaller buffer gives a
 * plain prefix of the line. Never a byte past the buffer, always one '\n'
 * at the end. */
static void test_cut(void **state) {
  struct access_record r = sample_path(HOSTILE, sizeof HOSTILE - 1);
  char full[4096], buf[4096];
  struct parsed *pf = malloc(sizeof *pf), *p = malloc(sizeof *p);
  (void)state;

  r.resolved = HOSTILE + 2;
  r.resolved_len = sizeof HOSTILE - 3;
  assert_true(pf != NULL && p != NULL);
  assert_int_equal(accesslog_format(buf, 0, &r, "alice", ACCESS_TEXT), 0);
  for (int f = 0; f < 2; f++) {
    enum access_format af = f ? ACCESS_JSON : ACCESS_TEXT;
    size_t whole = accesslog_format(full, sizeof full, &r, "alice", af);
    size_t fields = bare_len(&r, af) + 2 * strlen("...[truncated 99 bytes]");
    size_t parsed = 0;
    assert_int_equal(parse_line(af, full, whole - 1, pf), 0);
    for (size_t len = 1; len <= whole + 2; len++) {
      memset(buf, 'Z', sizeof buf);
      size_t n = accesslog_format(buf, len, &r, "alice", af);
      assert_true(n >= 1 && n <= len);
      assert_int_equal(buf[n - 1], '\n');
      assert_int_equal(count_nl(buf, n), 1);
      assert_int_equal(buf[len], 'Z'); /* nothing written past the buffer */
      if (len >= whole) {
        assert_int_equal(n, whole);
        assert_memory_equal(buf, full, n);
      } else if (parse_line(af, buf, n - 1, p) == 0) {
        parsed++;
        assert_int_equal(p->conn, pf->conn);
        assert_int_equal(p->bytes, pf->bytes);
        assert_string_equal(p->user, pf->user);
        assert_string_equal(p->status, pf->status);
        assert_true(p->has_resolved);
        assert_true(cut_ok(p->path, p->path_len, r.path, r.path_len));
        assert_true(
            cut_ok(p->resolved, p->resolved_len, r.resolved, r.resolved_len));
        assert_true(n + 2 * AL_TEST_UNIT + 8 > len); /* the room was used */
      } else {
        assert_true(len < fields);
        assert_memory_equal(buf, full, n - 1);
      }
    }
    assert_true(parsed >= whole - fields);
  }
  free(pf);
  free(p);
}

/* However large the buffer, a line stays within ACCESSLOG_LINE_MAX; the
 * two longest paths of the worst byte share it, every field kept. */
static void test_line_max(void **state) {
  static char path[PFP_PATH_MAX + 1], buf[65536];
  struct access_record r = sample_path(path, PFP_PATH_MAX);
  struct parsed *p = malloc(sizeof *p);
  (void)state;

  assert_non_null(p);
  memset(path, 0xff, sizeof path); /* 4 bytes each in text, 6 in JSON */
  r.resolved = path;
  r.resolved_len = PFP_PATH_MAX + 1;
  for (int f = 0; f < 2; f++) {
    enum access_format af = f ? ACCESS_JSON : ACCESS_TEXT;
    size_t n = accesslog_format(buf, sizeof buf, &r, "alice", af);
    assert_true(n <= ACCESSLOG_LINE_MAX);
    assert_true(n > ACCESSLOG_LINE_MAX - 16); /* cut, not emptied */
    assert_int_equal(buf[n - 1], '\n');
    assert_int_equal(count_nl(buf, n), 1);
    assert_int_equal(parse_line(af, buf, n - 1, p), 0);
    assert_string_equal(p->status, "OK");
    assert_int_equal(p->bytes, 4096);
    assert_true(cut_ok(p->path, p->path_len, path, PFP_PATH_MAX));
    assert_true(cut_ok(p->resolved, p->resolved_len, path, PFP_PATH_MAX + 1));
    /* Half each: neither path pushed the other out. */
    assert_true(p->path_len > PFP_PATH_MAX / 3);
    assert_true(p->resolved_len > PFP_PATH_MAX / 3);
    assert_true(p->path_len < PFP_PATH_MAX && p->resolved_len < PFP_PATH_MAX);
  }
  /* A whole PFP_PATH_MAX path of the worst byte fits uncut. */
  r.resolved = NULL;
  size_t n = accesslog_format(buf, sizeof buf, &r, "alice", ACCESS_JSON);
  assert_memory_equal(buf + n - 2, "}\n", 2);
  assert_int_equal(parse_json(buf, n - 1, p), 0);
  assert_int_equal(p->path_len, PFP_PATH_MAX);
  free(p);
}

/* Issue 5: "\x80" x 4080 then "/../secret" (the normaliser accepts it)
 * through syslog's one datagram: the padding is cut and marked, and what
 * was served (resolved), the status and the bytes are all there. */
static void test_padded_path_keeps_fields(void **state) {
  static char path[4096], buf[ACCESSLOG_LINE_MAX];
  struct access_record r = sample();
  struct parsed *p = malloc(sizeof *p);
  (void)state;

  assert_non_null(p);
  memset(path, 0x80, 4080);
  memcpy(path + 4080, "/../secret", 10);
  r.path = path;
  r.path_len = 4090;
  r.resolved = "secret";
  r.resolved_len = 6;
  r.bytes = 1234;
  for (int f = 0; f < 2; f++) {
    enum access_format af = f ? ACCESS_JSON : ACCESS_TEXT;
    size_t n =
        accesslog_format(buf, LOGSINK_SYSLOG_MSG_MAX + 1, &r, "alice", af);
    assert_true(n <= LOGSINK_SYSLOG_MSG_MAX + 1);
    assert_int_equal(parse_line(af, buf, n - 1, p), 0);
    assert_string_equal(p->status, "OK");
    assert_int_equal(p->bytes, 1234);
    assert_int_equal(p->resolved_len, 6);
    assert_memory_equal(p->resolved, "secret", 6);
    assert_true(cut_ok(p->path, p->path_len, path, 4090));
    assert_true(p->path_len < 4090); /* cut: marked, not hidden */
    assert_non_null(strstr(buf, " bytes]"));
    /* Through a file the line is whole. */
    n = accesslog_format(buf, sizeof buf, &r, "alice", af);
    assert_int_equal(parse_line(af, buf, n - 1, p), 0);
    assert_int_equal(p->path_len, 4090);
    assert_memory_equal(p->path, path, 4090);
  }
  free(p);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The writer's speed on the worst record: a 4096-byte path of \x80, every
 * byte escaped (4 bytes in text, 6 in JSON). Printed, not asserted: a
 * loaded machine or a sanitizer build says nothing about the code. */
static void test_format_speed(void **state) {
  static char path[PFP_PATH_MAX], buf[ACCESSLOG_LINE_MAX];
  struct access_record r = sample_path(path, sizeof path);
  struct parsed *p = malloc(sizeof *p);
  (void)state;

  assert_non_null(p);
  memset(path, 0x80, sizeof path);
  for (int f = 0; f < 2; f++) {
    enum access_format af = f ? ACCESS_JSON : ACCESS_TEXT;
    size_t n = 0, total = 0;
    double t0 = now_s(), t;
    do {
      for (int i = 0; i < 100; i++)
        total += accesslog_format(buf, sizeof buf, &r, "alice", af);
      n += 100;
      t = now_s() - t0;
    } while (t < 0.3);
    print_message("format speed, %s, 4096 x \\x80: %.2f us/record, "
                  "%.0f records/s, %.0f MB/s of lines\n",
                  f ? "json" : "text", t * 1e6 / (double)n, (double)n / t,
                  (double)total / t / 1e6);
    size_t len = accesslog_format(buf, sizeof buf, &r, "alice", af);
    assert_int_equal(parse_line(af, buf, len - 1, p), 0);
    assert_int_equal(p->path_len, sizeof path);
  }
  free(p);
}

/* ---- the writer, end to end ------------------------------------------- */

static int setup_dir(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_accesslog.XXXXXX");
  return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown_dir(void **state) {
  (void)state;
  return rmdir(tmpdir);
}

static void tmp_path(char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* A file's whole contents, NUL-terminated; *len without the NUL. */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  long n;

  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static size_t file_lines(const char *path) {
  size_t len, n;
  char *s = slurp(path, &len);
  n = count_nl(s, len);
  free(s);
  return n;
}

/* Wait (bounded) until the writer has put `want` lines in path: the test
 * waits for an observable result, not for a guessed time. */
static void wait_lines(const char *path, size_t want) {
  for (int i = 0; i < 1000; i++) {
    if (file_lines(path) >= want)
      return;
    nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
  }
  fail_msg("%s: never got %zu lines", path, want);
}

/* Parse every line of s[0..len); mark conns seen; return the line count.
 * Each line's path must be "/c/<conn>\n\"" (hostile on purpose). */
static size_t check_buf(const char *s, size_t len, enum access_format f,
                        unsigned char *seen, size_t nseen,
                        const char *(*user_of)(unsigned long long)) {
  size_t lines = 0;
  const char *line = s;
  struct parsed *p = malloc(sizeof *p);
  char want[64];

  assert_non_null(p);
  assert_true(len == 0 || s[len - 1] == '\n');
  while (line < s + len) {
    const char *nl = memchr(line, '\n', (size_t)(s + len - line));
    assert_non_null(nl);
    assert_int_equal(parse_line(f, line, (size_t)(nl - line), p), 0);
    assert_true(p->conn < nseen);
    assert_int_equal(seen[p->conn], 0);
    seen[p->conn] = 1;
    snprintf(want, sizeof want, "/c/%llu\n\"", p->conn);
    assert_int_equal(p->path_len, strlen(want));
    assert_memory_equal(p->path, want, p->path_len);
    assert_string_equal(p->status, "OK");
    if (user_of != NULL)
      assert_string_equal(p->user, user_of(p->conn));
    lines++;
    line = nl + 1;
  }
  free(p);
  return lines;
}

/* check_buf on a file's contents. */
static size_t check_file(const char *path, enum access_format f,
                         unsigned char *seen, size_t nseen,
                         const char *(*user_of)(unsigned long long)) {
  size_t len;
  char *s = slurp(path, &len);
  size_t lines = check_buf(s, len, f, seen, nseen, user_of);
  free(s);
  return lines;
}

/* The daemon's options, with strict modes off: tests log under /tmp dirs
 * owned by whoever runs them. */
static int al_start(const char *dest, enum access_format fmt) {
  char err[256];
  struct accesslog_opts o = {.dest = dest, .fmt = fmt};
  return accesslog_start(&o, err, sizeof err);
}

static int al_reconfigure(const char *dest, enum access_format fmt) {
  char err[256];
  struct accesslog_opts o = {.dest = dest, .fmt = fmt};
  return accesslog_reconfigure(&o, err, sizeof err);
}

static int al_start_full(const char *dest, enum access_format fmt,
                         enum log_full full) {
  char err[256];
  struct accesslog_opts o = {.dest = dest, .fmt = fmt, .full = full};
  return accesslog_start(&o, err, sizeof err);
}

static void sleep_ms(long ms) {
  nanosleep(&(struct timespec){ms / 1000, ms % 1000 * 1000000}, NULL);
}

/* The record for conn, as uid; its path "/c/<conn>\n\"" is hostile. */
static int try_record(unsigned long long conn, uid_t uid) {
  char path[64];

  snprintf(path, sizeof path, "/c/%llu\n\"", conn);
  struct access_record r = sample_path(path, strlen(path));
  r.conn = conn;
  r.uid = uid;
  return accesslog_write(&r);
}

/* Queue it as a worker does: when there is no room, wait and try again
 * (bounded: the writer frees room within milliseconds). */
static void put_record(unsigned long long conn, uid_t uid) {
  for (int i = 0; i < 10000; i++) {
    int r = try_record(conn, uid);
    if (r != -EAGAIN) {
      assert_int_equal(r, 0);
      return;
    }
    sleep_ms(1);
  }
  fail_msg("record %llu: no room in the queue for 10 s", conn);
}

/* Records for conns from .. to-1, as uid 0. */
static void put_records(unsigned from, unsigned to) {
  for (unsigned i = from; i < to; i++)
    put_record(i, 0);
}

/* Start the writer on path, as text, and wait until records 0 .. n-1 are
 * in the file. */
static void start_with_records(const char *path, unsigned n) {
  assert_int_equal(al_start(path, ACCESS_TEXT), 0);
  put_records(0, n);
  wait_lines(path, n);
}

/* What fn, run by capture_stderr, has written to fd 2 so far. */
static char *captured(void) {
  char path[128];
  size_t len;

  tmp_path(path, sizeof path, "stderr.txt");
  return slurp(path, &len);
}

/* Wait (bounded) until what fn wrote to fd 2 holds `what`. */
static void wait_captured(const char *what) {
  for (int i = 0; i < 1000; i++) {
    char *s = captured();
    int found = strstr(s, what) != NULL;
    free(s);
    if (found)
      return;
    sleep_ms(10);
  }
  fail_msg("never said \"%s\"", what);
}

/* Run fn with fd 2 going to a file; return what was written there. */
static char *capture_stderr(void (*fn)(void *), void *arg, size_t *len) {
  char path[128];
  int saved = dup(2), fd;
  char *out;

  tmp_path(path, sizeof path, "stderr.txt");
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  fn(arg);
  dup2(saved, 2);
  close(saved);
  out = slurp(path, len);
  unlink(path);
  return out;
}

#define E2E_THREADS 4
#define E2E_PER_THREAD 1000 /* all fit in the queue: no drops possible */
#define E2E_NOBODY 3999990  /* a uid with (we check) no passwd entry */

static char self_name[80];

/* What the log should say for uid: the passwd name if it is printable. */
static void expected_user(uid_t uid, char *buf, size_t len) {
  struct passwd *pw = getpwuid(uid);
  int ok = pw != NULL && pw->pw_name[0] != '\0';

  for (const char *c = ok ? pw->pw_name : ""; *c != '\0'; c++)
    if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
               "0123456789._-",
               *c) == NULL)
      ok = 0;
  if (ok)
    snprintf(buf, len, "%s", pw->pw_name);
  else
    snprintf(buf, len, "%u", (unsigned)uid);
}

static uid_t e2e_uid(unsigned long long conn) {
  /* Thread 0 logs our own uid (a real name); the others uids with none. */
  return conn < E2E_PER_THREAD ? getuid() : E2E_NOBODY;
}

static const char *e2e_user(unsigned long long conn) {
  static char nobody[16];
  snprintf(nobody, sizeof nobody, "%u", E2E_NOBODY);
  return conn < E2E_PER_THREAD ? self_name : nobody;
}

static void *e2e_thread(void *arg) {
  unsigned long long base = (uintptr_t)arg * E2E_PER_THREAD;
  for (unsigned long long i = 0; i < E2E_PER_THREAD; i++)
    put_record(base + i, e2e_uid(base + i));
  return NULL;
}

static void test_threads(void **state) {
  const size_t total = E2E_THREADS * E2E_PER_THREAD;
  unsigned char *seen = calloc(total, 1);
  pthread_t t[E2E_THREADS];
  char path[128];
  uint64_t dropped;
  (void)state;

  assert_null(getpwuid(E2E_NOBODY));
  expected_user(getuid(), self_name, sizeof self_name);
  tmp_path(path, sizeof path, "threads.log");
  assert_int_equal(al_start(path, ACCESS_TEXT), 0);
  dropped = accesslog_dropped();
  for (uintptr_t i = 0; i < E2E_THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, e2e_thread, (void *)i), 0);
  for (int i = 0; i < E2E_THREADS; i++)
    pthread_join(t[i], NULL);
  accesslog_stop();

  assert_int_equal(accesslog_dropped(), dropped);
  assert_int_equal(check_file(path, ACCESS_TEXT, seen, total, e2e_user), total);
  for (size_t i = 0; i < total; i++)
    assert_int_equal(seen[i], 1);
  struct stat st;
  mode_t mask = umask(0);
  umask(mask);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0640 & ~mask);
  free(seen);
  unlink(path);
}

/* logrotate: the file is renamed, then SIGUSR1 -> accesslog_reopen(). */
static void test_reopen(void **state) {
  unsigned char seen_old[200] = {0}, seen_new[200] = {0};
  char path[128], rotated[128];
  (void)state;

  tmp_path(path, sizeof path, "reopen.log");
  tmp_path(rotated, sizeof rotated, "reopen.log.1");
  start_with_records(path, 100);
  assert_int_equal(rename(path, rotated), 0);
  accesslog_reopen();
  put_records(100, 200);
  accesslog_stop();

  /* Everything before the rename in the old file, everything after the
   * reopen in the new one. */
  assert_int_equal(check_file(rotated, ACCESS_TEXT, seen_old, 200, NULL), 100);
  assert_int_equal(check_file(path, ACCESS_TEXT, seen_new, 200, NULL), 100);
  for (unsigned i = 0; i < 200; i++) {
    assert_int_equal(seen_old[i], i < 100);
    assert_int_equal(seen_new[i], i >= 100);
  }
  unlink(path);
  unlink(rotated);
}

static void reopen_fails(void *arg) {
  const char *dir = arg;
  char path[160], moved[160];

  snprintf(path, sizeof path, "%s/r.log", dir);
  snprintf(moved, sizeof moved, "%s.moved", dir);
  log_setup("stderr", LOG_LVL_INFO);
  start_with_records(path, 10);
  /* The directory goes away: the reopen cannot create the file. */
  assert_int_equal(rename(dir, moved), 0);
  accesslog_reopen();
  put_records(10, 20);
  accesslog_stop();
}

/* A reopen that fails is reported and the old file kept: no record lost. */
static void test_reopen_fails(void **state) {
  unsigned char seen[20] = {0};
  char dir[128], moved[160], file[192];
  size_t len;
  (void)state;

  tmp_path(dir, sizeof dir, "sub");
  snprintf(moved, sizeof moved, "%s.moved", dir);
  snprintf(file, sizeof file, "%s/r.log", moved);
  assert_int_equal(mkdir(dir, 0700), 0);
  char *out = capture_stderr(reopen_fails, dir, &len);
  assert_non_null(strstr(out, "pipefiled: error: access log: cannot reopen "));
  assert_int_equal(check_file(file, ACCESS_TEXT, seen, 20, NULL), 20);
  free(out);
  unlink(file);
  rmdir(moved);
}

/* SIGHUP with a new destination and format; a bad one is refused at once
 * and the current one stays. */
static void test_reconfigure(void **state) {
  unsigned char seen[30] = {0};
  char a[128], b[128];
  (void)state;

  tmp_path(a, sizeof a, "a.log");
  tmp_path(b, sizeof b, "b.json");
  start_with_records(a, 10);
  assert_int_equal(al_reconfigure(b, ACCESS_JSON), 0);
  put_records(10, 20);
  assert_int_equal(al_reconfigure("/nonexistent-dir/x.log", ACCESS_TEXT),
                   -ENOENT);
  put_records(20, 30);
  accesslog_stop();

  assert_int_equal(check_file(a, ACCESS_TEXT, seen, 10, NULL), 10);
  assert_int_equal(check_file(b, ACCESS_JSON, seen, 30, NULL), 20);
  for (unsigned i = 0; i < 30; i++)
    assert_int_equal(seen[i], 1);
  unlink(a);
  unlink(b);
}

static void test_bad_destination(void **state) {
  char longpath[LOGSINK_PATH_MAX + 8];
  uint64_t dropped = accesslog_dropped();
  (void)state;

  assert_int_equal(al_start("/nonexistent-dir/x.log", ACCESS_TEXT), -ENOENT);
  assert_int_equal(al_start("", ACCESS_TEXT), -EINVAL);
  memset(longpath, 'a', sizeof longpath - 1);
  longpath[0] = '/';
  longpath[sizeof longpath - 1] = '\0';
  assert_int_equal(al_start(longpath, ACCESS_TEXT), -ENAMETOOLONG);

  /* Not running: a record is refused (the caller decides), nothing else. */
  {
    char p1[] = "/x";
    struct access_record r = sample_path(p1, 2);
    assert_int_equal(accesslog_write(&r), -EPIPE);
  }
  assert_int_equal(accesslog_dropped(), dropped);
  accesslog_reopen();
  accesslog_stop();

  /* Running already. */
  assert_int_equal(al_start("off", ACCESS_TEXT), 0);
  assert_int_equal(al_start("off", ACCESS_TEXT), -EALREADY);
  put_record(2, 0);
  accesslog_stop();
  assert_int_equal(accesslog_dropped(), dropped);
}

/* Sum N over "pipefiled: error: access log: N records dropped (REASON)". */
static unsigned long long reported_drops(const char *log, const char *reason) {
  static const char pre[] = "pipefiled: error: access log: ";
  unsigned long long sum = 0, n;
  char tail[256];
  const char *p = log;

  while ((p = strstr(p, pre)) != NULL) {
    p += sizeof pre - 1;
    if (sscanf(p, "%llu records dropped (%255[^)\n])", &n, tail) == 2 &&
        strcmp(tail, reason) == 0)
      sum += n;
  }
  return sum;
}

static void stderr_dest(void *arg) {
  (void)arg;
  assert_int_equal(al_start("stderr", ACCESS_JSON), 0);
  put_records(0, 3);
  accesslog_stop();
}

static void test_stderr_destination(void **state) {
  unsigned char seen[3] = {0};
  struct parsed p;
  size_t len;
  (void)state;

  char *out = capture_stderr(stderr_dest, NULL, &len);
  assert_int_equal(count_nl(out, len), 3);
  for (char *line = out; line < out + len; line = strchr(line, '\n') + 1) {
    assert_int_equal(parse_json(line, (size_t)(strchr(line, '\n') - line), &p),
                     0);
    assert_true(p.conn < 3);
    seen[p.conn] = 1;
  }
  assert_memory_equal(seen, "\1\1\1", 3);
  free(out);
}

/* ---- a destination that fails: log_full ------------------------------- */

/* The reading end of a FIFO the log writes to. Closing it makes the
 * writer's write() fail (EPIPE), as a disk that fills up does; opening it
 * again lets writes through, as freed space does. */
struct reader {
  char fifo[128];
  int fd;    /* -1: closed, the reader went away */
  char *buf; /* every byte read */
  size_t len, cap;
};

static void reader_init(struct reader *rd, const char *name) {
  memset(rd, 0, sizeof *rd);
  tmp_path(rd->fifo, sizeof rd->fifo, name);
  rd->fd = -1;
  assert_int_equal(mkfifo(rd->fifo, 0600), 0);
}

static void reader_open(struct reader *rd) {
  rd->fd = open(rd->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  assert_true(rd->fd >= 0);
}

static void reader_close(struct reader *rd) {
  close(rd->fd);
  rd->fd = -1;
}

/* Read what is there; returns 0 at EOF (no writer left). */
static int reader_read(struct reader *rd) {
  for (;;) {
    ssize_t n;
    if (rd->cap - rd->len < 65536) {
      rd->cap = rd->cap * 2 + 65536;
      rd->buf = realloc(rd->buf, rd->cap);
      assert_non_null(rd->buf);
    }
    n = read(rd->fd, rd->buf + rd->len, rd->cap - rd->len);
    if (n > 0) {
      rd->len += (size_t)n;
      continue;
    }
    return n == 0 ? 0 : 1;
  }
}

/* Read until `lines` lines in all have come; bounded. */
static void reader_wait(struct reader *rd, size_t lines) {
  for (int i = 0; i < 1000 && count_nl(rd->buf, rd->len) < lines; i++) {
    struct pollfd p = {.fd = rd->fd, .events = POLLIN};
    poll(&p, 1, 10);
    reader_read(rd);
  }
  assert_true(count_nl(rd->buf, rd->len) >= lines);
}

/* After accesslog_stop(): read to EOF. */
static void reader_drain(struct reader *rd) {
  for (int i = 0; i < 1000 && reader_read(rd); i++)
    sleep_ms(5);
}

static void reader_done(struct reader *rd) {
  if (rd->fd >= 0)
    reader_close(rd);
  free(rd->buf);
  unlink(rd->fifo);
}

static void wait_dropped(uint64_t want) {
  for (int i = 0; i < 1000 && accesslog_dropped() < want; i++)
    sleep_ms(10);
  assert_int_equal(accesslog_dropped(), want);
}

static size_t count_str(const char *s, const char *what) {
  size_t n = 0;
  while ((s = strstr(s, what)) != NULL) {
    n++;
    s++;
  }
  return n;
}

static uint64_t drop_base;

static void fail_drop(void *arg) {
  struct reader *rd = arg;

  log_setup("stderr", LOG_LVL_INFO);
  reader_open(rd);
  assert_int_equal(al_start_full(rd->fifo, ACCESS_TEXT, LOG_FULL_DROP), 0);
  drop_base = accesslog_dropped();
  put_records(0, 10);
  reader_wait(rd, 10);
  reader_close(rd); /* the destination fails */
  put_records(10, 20);
  wait_dropped(drop_base + 10);
  reader_open(rd); /* and recovers: lines go through again by themselves */
  put_records(20, 30);
  reader_wait(rd, 20);
  accesslog_stop();
  reader_drain(rd);
}

/* log_full = drop: what the failing destination does not take is dropped,
 * counted and reported with where and why; the log goes on by itself when
 * the destination takes writes again. */
static void test_fail_drop(void **state) {
  unsigned char seen[30] = {0};
  struct reader rd;
  char why[256];
  size_t len;
  (void)state;

  reader_init(&rd, "drop.fifo");
  char *out = capture_stderr(fail_drop, &rd, &len);
  assert_int_equal(check_buf(rd.buf, rd.len, ACCESS_TEXT, seen, 30, NULL), 20);
  for (unsigned i = 0; i < 30; i++)
    assert_int_equal(seen[i], i < 10 || i >= 20);
  assert_int_equal(accesslog_dropped() - drop_base, 10);
  snprintf(why, sizeof why, "%s: %s", rd.fifo, strerror(EPIPE));
  assert_int_equal(reported_drops(out, why), 10);
  assert_null(strstr(out, "access log: blocked"));
  free(out);
  reader_done(&rd);
}

static size_t block_accepted;

static void fail_block(void *arg) {
  struct reader *rd = arg;
  char blocked[256];
  int refused = 0;

  log_setup("stderr", LOG_LVL_INFO);
  reader_open(rd);
  assert_int_equal(al_start_full(rd->fifo, ACCESS_TEXT, LOG_FULL_BLOCK), 0);
  drop_base = accesslog_dropped();
  put_records(0, 10);
  reader_wait(rd, 10);
  reader_close(rd); /* the destination fails */
  put_records(10, 20);
  snprintf(blocked, sizeof blocked, "access log: blocked: %s: %s; ", rd->fifo,
           strerror(EPIPE));
  wait_captured(blocked);
  /* The writer holds its lines; the queue fills behind them, and then
   * refuses (the caller waits) instead of dropping. */
  block_accepted = 0;
  while (!refused && block_accepted < 20000) {
    refused = try_record(1000 + block_accepted, 0) == -EAGAIN;
    block_accepted += !refused;
  }
  assert_true(refused);
  assert_int_equal(accesslog_dropped(), drop_base);
  reader_open(rd); /* the destination recovers: all of it goes through */
  put_records(20, 30);
  reader_wait(rd, 30 + block_accepted);
  accesslog_stop();
  reader_drain(rd);
}

/* log_full = block: nothing is dropped while the destination fails; the
 * error log says once that the log is blocked and once that it resumed;
 * every record queued before, during and after comes through, in order. */
static void test_fail_block(void **state) {
  unsigned char *seen = calloc(21000, 1);
  struct reader rd;
  size_t len;
  (void)state;

  assert_non_null(seen);
  reader_init(&rd, "block.fifo");
  char *out = capture_stderr(fail_block, &rd, &len);
  assert_true(block_accepted > 100);
  assert_int_equal(check_buf(rd.buf, rd.len, ACCESS_TEXT, seen, 21000, NULL),
                   30 + block_accepted);
  for (size_t i = 0; i < 30; i++)
    assert_int_equal(seen[i], 1);
  for (size_t i = 1000; i < 1000 + block_accepted; i++)
    assert_int_equal(seen[i], 1);
  assert_int_equal(accesslog_dropped(), drop_base);
  assert_int_equal(count_str(out, "access log: blocked: "), 1);
  assert_int_equal(count_str(out, "access log: resumed: "), 1);
  assert_null(strstr(out, "dropped"));
  /* In order: the held lines first, then the queued ones. */
  assert_non_null(strstr(rd.buf, "conn=19 "));
  assert_true(strstr(rd.buf, "conn=19 ") < strstr(rd.buf, "conn=1000 "));
  assert_true(strstr(rd.buf, "conn=1000 ") < strstr(rd.buf, "conn=20 "));
  free(out);
  free(seen);
  reader_done(&rd);
}

static double stop_took;

static void block_stop(void *arg) {
  struct reader *rd = arg;

  log_setup("stderr", LOG_LVL_INFO);
  reader_open(rd);
  assert_int_equal(al_start_full(rd->fifo, ACCESS_TEXT, LOG_FULL_BLOCK), 0);
  drop_base = accesslog_dropped();
  put_records(0, 10);
  reader_wait(rd, 10);
  reader_close(rd);
  put_records(10, 15);
  wait_captured("access log: blocked: ");
  double t0 = now_s();
  accesslog_stop();
  stop_took = now_s() - t0;
}

/* log_full = block and the destination still fails at stop: the drain is
 * bounded (5 s), the writer exits by itself, and what it held is counted
 * and reported as dropped. */
static void test_fail_block_stop(void **state) {
  struct reader rd;
  char why[256];
  size_t len;
  (void)state;

  reader_init(&rd, "stop.fifo");
  char *out = capture_stderr(block_stop, &rd, &len);
  print_message("stop with a failing destination took %.2f s\n", stop_took);
  assert_true(stop_took > 2.0 && stop_took < 5.0);
  assert_null(strstr(out, "does not take writes")); /* the writer exited */
  assert_int_equal(accesslog_dropped() - drop_base, 5);
  snprintf(why, sizeof why, "%s: %s", rd.fifo, strerror(EPIPE));
  assert_int_equal(reported_drops(out, why), 5);
  free(out);
  reader_done(&rd);
}

static void block_switch(void *arg) {
  struct reader *rd = arg;
  char json[128];

  tmp_path(json, sizeof json, "switch.json");
  log_setup("stderr", LOG_LVL_INFO);
  reader_open(rd);
  assert_int_equal(al_start_full(rd->fifo, ACCESS_TEXT, LOG_FULL_BLOCK), 0);
  drop_base = accesslog_dropped();
  put_records(0, 10);
  reader_wait(rd, 10);
  reader_close(rd);
  put_records(10, 20);
  wait_captured("access log: blocked: ");
  assert_int_equal(al_reconfigure(json, ACCESS_JSON), 0);
  put_records(20, 30);
  accesslog_stop();
}

/* Blocked, then SIGHUP points the log somewhere else: the held records go
 * there, formatted for it. */
static void test_fail_block_reconfigure(void **state) {
  unsigned char seen[30] = {0};
  struct reader rd;
  char json[128];
  size_t len;
  (void)state;

  tmp_path(json, sizeof json, "switch.json");
  reader_init(&rd, "switch.fifo");
  char *out = capture_stderr(block_switch, &rd, &len);
  assert_int_equal(check_buf(rd.buf, rd.len, ACCESS_TEXT, seen, 30, NULL), 10);
  assert_int_equal(check_file(json, ACCESS_JSON, seen, 30, NULL), 20);
  for (unsigned i = 0; i < 30; i++)
    assert_int_equal(seen[i], 1);
  assert_int_equal(accesslog_dropped(), drop_base);
  assert_int_equal(count_str(out, "access log: resumed: "), 1);
  free(out);
  reader_done(&rd);
  unlink(json);
}

/* ---- per-uid shares of the queue --------------------------------------- */

#define MAX_TICKETS 20000

/* Reserve for uid until refused; returns how many, bytes held in *bytes. */
static size_t reserve_all(struct accesslog_ticket *t, uid_t uid,
                          size_t path_len, size_t *bytes) {
  size_t n = 0;

  *bytes = 0;
  while (n < MAX_TICKETS && accesslog_reserve(&t[n], uid, path_len) == 0)
    *bytes += t[n++].bytes;
  assert_true(n < MAX_TICKETS);
  return n;
}

static void cancel_all(struct accesslog_ticket *t, size_t n) {
  for (size_t i = 0; i < n; i++)
    accesslog_cancel(&t[i]);
}

/* Reservations are never taken by the writer, so the queue holds still. */
static void test_share_one_uid(void **state) {
  struct accesslog_ticket *a = calloc(MAX_TICKETS, sizeof *a);
  struct accesslog_ticket *b = calloc(MAX_TICKETS, sizeof *b);
  size_t na, nb, ba, bb;
  (void)state;

  assert_true(a != NULL && b != NULL);
  assert_int_equal(al_start("off", ACCESS_TEXT), 0);
  na = reserve_all(a, 1, PFP_PATH_MAX, &ba);
  /* Refused by its share, with room left in the queue. */
  assert_true(na >= 4);
  assert_true(ba <= ACCESSLOG_UID_SHARE);
  assert_true(ba + a[0].bytes > ACCESSLOG_UID_SHARE);
  /* Another uid is not affected: the same share. */
  nb = reserve_all(b, 2, PFP_PATH_MAX, &bb);
  assert_int_equal(nb, na);
  /* A cancel gives the share back. */
  cancel_all(a, na);
  assert_int_equal(reserve_all(a, 1, PFP_PATH_MAX, &ba), na);
  cancel_all(a, na);
  cancel_all(b, nb);
  accesslog_stop();
  free(a);
  free(b);
}

/* However many uids flood, the last ACCESSLOG_QUEUE_SPARE bytes stay for
 * uids that hold little: each of them still gets ACCESSLOG_UID_SMALL. */
static void test_share_spare(void **state) {
  enum { FLOODERS = 4, LIGHT = 5 };
  struct accesslog_ticket *t[FLOODERS + LIGHT];
  size_t n[FLOODERS + LIGHT], b[FLOODERS + LIGHT], total = 0;
  struct accesslog_ticket x;
  (void)state;

  assert_int_equal(al_start("off", ACCESS_TEXT), 0);
  for (int u = 0; u < FLOODERS + LIGHT; u++) {
    t[u] = calloc(MAX_TICKETS, sizeof *t[u]);
    assert_non_null(t[u]);
    n[u] = reserve_all(t[u], 100 + u, PFP_PATH_MAX, &b[u]);
    total += b[u];
  }
  /* The first flooders got a whole share each; the queue stopped taking
   * flooders with ACCESSLOG_QUEUE_SPARE bytes still free. */
  assert_true(b[0] + t[0][0].bytes > ACCESSLOG_UID_SHARE);
  assert_true(b[1] + t[1][0].bytes > ACCESSLOG_UID_SHARE);
  assert_true(b[0] + b[1] + b[2] + b[3] <=
              ACCESSLOG_QUEUE_BYTES - ACCESSLOG_QUEUE_SPARE +
                  ACCESSLOG_UID_SMALL + 2 * t[0][0].bytes);
  /* Every light uid got at least ACCESSLOG_UID_SMALL. */
  for (int u = FLOODERS; u < FLOODERS + LIGHT; u++)
    assert_true(b[u] >= ACCESSLOG_UID_SMALL);
  /* A flooder is refused even a short record; a new uid is not. */
  assert_int_equal(accesslog_reserve(&x, 100, 1), -EAGAIN);
  assert_int_equal(accesslog_reserve(&x, 999, 1), 0);
  accesslog_cancel(&x);
  assert_true(total <= ACCESSLOG_QUEUE_BYTES);
  for (int u = 0; u < FLOODERS + LIGHT; u++) {
    cancel_all(t[u], n[u]);
    free(t[u]);
  }
  accesslog_stop();
}

/* A committed record counts against its uid until the writer takes it. */
static void test_share_released_by_writer(void **state) {
  struct accesslog_ticket *t = calloc(MAX_TICKETS, sizeof *t);
  size_t n, again = 0, bytes;
  (void)state;

  assert_non_null(t);
  assert_int_equal(al_start("off", ACCESS_TEXT), 0);
  n = reserve_all(t, 7, 16, &bytes);
  for (size_t i = 0; i < n; i++) {
    struct access_record r = sample_path("/short", 6);
    r.uid = 7;
    accesslog_commit(&t[i], &r);
  }
  for (int i = 0; i < 1000 && again < n; i++) {
    again = reserve_all(t, 7, 16, &bytes);
    cancel_all(t, again);
    if (again < n)
      sleep_ms(10);
  }
  assert_true(again >= n);
  accesslog_stop();
  free(t);
}

/* The table of uids is bounded: when it is full a new uid waits like a full
 * queue (fail safe), uids already in it are served, and every slot comes
 * back when the uids hold nothing (no slot leaks through any order of
 * reserve and cancel). */
static void test_share_table_full(void **state) {
  struct accesslog_ticket *t = calloc(MAX_TICKETS, sizeof *t);
  struct accesslog_ticket x;
  unsigned seed = 99;
  size_t n, u, k;
  (void)state;

  assert_non_null(t);
  assert_int_equal(al_start("off", ACCESS_TEXT), 0);
  for (u = 0; u < MAX_TICKETS; u++)
    if (accesslog_reserve(&t[u], 100000 + (uid_t)u, 1) != 0)
      break;
  n = u;
  assert_true(n >= 256 && n < MAX_TICKETS);
  assert_true(n * t[0].bytes < ACCESSLOG_QUEUE_BYTES / 4); /* not the room */
  assert_int_equal(accesslog_reserve(&x, 100001, 1), 0);
  accesslog_cancel(&x);
  accesslog_cancel(&t[5]);
  assert_int_equal(accesslog_reserve(&t[5], 100000 + (uid_t)n, 1), 0);
  assert_int_equal(accesslog_reserve(&x, 100000 + (uid_t)n + 1, 1), -EAGAIN);
  /* Churn: cancel and reserve in random order, then give everything back. */
  for (int i = 0; i < 20000; i++) {
    seed = seed * 1103515245 + 12345;
    k = (seed >> 8) % n;
    accesslog_cancel(&t[k]);
    (void)accesslog_reserve(&t[k], 100000 + (seed >> 4) % (2 * n), 1);
  }
  cancel_all(t, n);
  for (u = 0; u < MAX_TICKETS; u++)
    if (accesslog_reserve(&t[u], 200000 + (uid_t)u, 1) != 0)
      break;
  assert_int_equal(u, n);
  cancel_all(t, u);
  accesslog_stop();
  free(t);
}

#define FLOOD_RECORDS 20000
#define FLOOD_PATH 200

struct drain {
  int fd;
  size_t lines;
};

static void *drain_fifo(void *arg) {
  struct drain *d = arg;
  char buf[65536];
  ssize_t n;

  while ((n = read(d->fd, buf, sizeof buf)) > 0)
    d->lines += count_nl(buf, (size_t)n);
  return NULL;
}

static uint64_t flood_dropped, flood_refused;
static size_t flood_lines;

static void flood(void *arg) {
  const char *fifo = arg;
  char path[FLOOD_PATH];
  struct access_record r = sample_path(path, sizeof path);
  struct drain d = {0};
  pthread_t t;
  uint64_t dropped = accesslog_dropped();

  /* The reader opens first (non-blocking, so it does not wait for the
   * writer) but reads only later: the writer thread blocks on a full pipe
   * while the queue fills up behind it. */
  d.fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  assert_true(d.fd >= 0);
  assert_int_equal(al_start(fifo, ACCESS_TEXT), 0);
  fcntl(d.fd, F_SETFL, fcntl(d.fd, F_GETFL) & ~O_NONBLOCK);
  memset(path, 'p', sizeof path);
  flood_refused = 0;
  for (unsigned i = 0; i < FLOOD_RECORDS; i++)
    /* returns at once although nothing is read */
    flood_refused += accesslog_write(&r) == -EAGAIN;
  assert_int_equal(pthread_create(&t, NULL, drain_fifo, &d), 0);
  accesslog_stop(); /* the close gives the reader its EOF */
  pthread_join(t, NULL);
  close(d.fd);
  flood_dropped = accesslog_dropped() - dropped;
  flood_lines = d.lines;
}

/* A stuck destination: accesslog_write() does not wait; once the queue is
 * full it refuses (the caller waits), and every record it took is written:
 * nothing is dropped. */
static void test_queue_full(void **state) {
  char fifo[128];
  size_t len;
  (void)state;

  tmp_path(fifo, sizeof fifo, "fifo");
  assert_int_equal(mkfifo(fifo, 0600), 0);
  log_setup("stderr", LOG_LVL_INFO);
  char *out = capture_stderr(flood, fifo, &len);
  assert_true(flood_refused > 0);
  assert_int_equal(flood_dropped, 0);
  assert_int_equal(flood_lines + flood_refused, FLOOD_RECORDS);
  free(out);
  unlink(fifo);
}

/* ---- log.c ------------------------------------------------------------ */

static void log_lines(void *arg) {
  (void)arg;
  log_setup("stderr", LOG_LVL_WARNING);
  log_info("not shown");
  log_debug("not shown");
  log_warn("two\nlines %d", 2);
  log_error("bad %s", "thing");
  log_setup("stderr", LOG_LVL_INFO);
  log_info("shown");
}

static void test_log_format(void **state) {
  size_t len;
  (void)state;

  char *out = capture_stderr(log_lines, NULL, &len);
  assert_string_equal(out, "pipefiled: warning: two lines 2\n"
                           "pipefiled: error: bad thing\n"
                           "pipefiled: info: shown\n");
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_text_full),
      cmocka_unit_test(test_json_full),
      cmocka_unit_test(test_refusal_fields),
      cmocka_unit_test(test_text_escapes),
      cmocka_unit_test(test_json_escapes),
      cmocka_unit_test(test_hostile_tokens),
      cmocka_unit_test(test_newline_one_line),
      cmocka_unit_test(test_text_shell_inert),
      cmocka_unit_test(test_json_line_separators),
      cmocka_unit_test(test_abandoned),
      cmocka_unit_test(test_time_matches_gmtime),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_cut),
      cmocka_unit_test(test_line_max),
      cmocka_unit_test(test_padded_path_keeps_fields),
      cmocka_unit_test(test_format_speed),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_reopen),
      cmocka_unit_test(test_reopen_fails),
      cmocka_unit_test(test_reconfigure),
      cmocka_unit_test(test_bad_destination),
      cmocka_unit_test(test_stderr_destination),
      cmocka_unit_test(test_fail_drop),
      cmocka_unit_test(test_fail_block),
      cmocka_unit_test(test_fail_block_stop),
      cmocka_unit_test(test_fail_block_reconfigure),
      cmocka_unit_test(test_share_one_uid),
      cmocka_unit_test(test_share_spare),
      cmocka_unit_test(test_share_released_by_writer),
      cmocka_unit_test(test_share_table_full),
      cmocka_unit_test(test_queue_full),
      cmocka_unit_test(test_log_format),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
