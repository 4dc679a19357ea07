/* test_accesslog_format.c - unit tests of accesslog_format.c: the access
 * log's lines, pure (no queue, no thread, no file). */

/* Exact text and JSON lines, escaping of hostile paths (shell and line
 * separators, bidi and invisible code points, forged cut markers too),
 * the hand-made UTC date, paths cut in the middle to fit with every field
 * kept, the syslog line cap, which user names print, and the
 * formatter's speed on the worst record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "accesslog.h"
#include "accesslog_lines.h"
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

/* Format into buf (len bytes for the line, plus a NUL for the test). */
static size_t fmt(char *buf, size_t len, const struct access_record *r,
                  const char *user, enum access_format f) {
  size_t n = accesslog_format(buf, len, r, user, f);
  buf[n] = '\0';
  return n;
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
                             "h\xe2\x80\xb0";
  static const char want[] = "\"a\\u0085b\\u0080c\\u009fd\\u2028e\\u2029"
                             "f\xc2\xa0g\xe2\x80\xa7h\xe2\x80\xb0\"";
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

/* JSON: bidi controls and invisible code points are \uXXXX too (issue 5:
 * U+202E in a name made a terminal show the rest of the line reversed,
 * status included), in paths and resolved paths; their neighbours stay
 * raw; the line decodes to the wire bytes. */
static void test_json_bidi_invisible(void **state) {
  static const unsigned escaped[] = {
      0x061c, 0x200b, 0x200c, 0x200d, 0x200e, 0x200f, 0x202a, 0x202b,
      0x202c, 0x202d, 0x202e, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064,
      0x2066, 0x2067, 0x2068, 0x2069, 0x206a, 0x206f, 0xfeff};
  static const unsigned raw[] = {0x00a0, 0x061b, 0x061d, 0x200a, 0x2010, 0x2027,
                                 0x202f, 0x205f, 0x2070, 0xfefe, 0xff00};
  struct access_record r;
  char path[16], buf[1024], e[64];
  struct parsed p;
  (void)state;

  for (size_t i = 0;
       i < sizeof escaped / sizeof escaped[0] + sizeof raw / sizeof raw[0];
       i++) {
    int esc = i < sizeof escaped / sizeof escaped[0];
    unsigned cp = esc ? escaped[i] : raw[i - sizeof escaped / sizeof *escaped];
    size_t n = 0;
    path[n++] = 'a';
    if (cp < 0x800) {
      path[n++] = (char)(0xc0 | cp >> 6);
    } else {
      path[n++] = (char)(0xe0 | cp >> 12);
      path[n++] = (char)(0x80 | (cp >> 6 & 0x3f));
    }
    path[n++] = (char)(0x80 | (cp & 0x3f));
    path[n++] = 'b';
    r = sample_path(path, n);
    r.resolved = path;
    r.resolved_len = n;
    size_t len = fmt(buf, sizeof buf - 1, &r, "alice", ACCESS_JSON);
    if (esc)
      snprintf(e, sizeof e,
               "\"path\":\"a\\u%04xb\",\"resolved\":\"a\\u%04xb\",", cp, cp);
    else
      snprintf(e, sizeof e, "\"path\":\"%.*s\",\"resolved\":\"%.*s\",", (int)n,
               path, (int)n, path);
    assert_non_null(strstr(buf, e));
    assert_int_equal(parse_json(buf, len - 1, &p), 0);
    assert_int_equal(p.path_len, n);
    assert_memory_equal(p.path, path, n);
    assert_memory_equal(p.resolved, path, n);
  }
}

/* A name that spells a cut marker cannot pass for a cut (issue 5): '[' is
 * \x5b in text and \u005b in JSON, so the only raw '[' of a line is a cut
 * the formatter made, and the parser, which takes a raw '[' for the
 * marker, gets the whole name back uncut. */
static void test_forged_marker(void **state) {
  static const char path[] = "report...[truncated 3000 bytes]...[x]";
  struct access_record r = sample_path(path, sizeof path - 1);
  char buf[1024];
  struct parsed p;
  (void)state;

  r.resolved = path;
  r.resolved_len = sizeof path - 1;
  for (int f = 0; f < 2; f++) {
    enum access_format af = f ? ACCESS_JSON : ACCESS_TEXT;
    size_t n = fmt(buf, sizeof buf - 1, &r, "alice", af);
    assert_null(memchr(buf, '[', n));
    assert_non_null(strstr(buf, f ? "\"report...\\u005btruncated 3000 "
                                    "bytes]...\\u005bx]\""
                                  : "\"report...\\x5btruncated 3000 "
                                    "bytes]...\\x5bx]\""));
    assert_int_equal(parse_line(af, buf, n - 1, &p), 0);
    assert_int_equal(p.path_cut.n, 0);
    assert_int_equal(p.resolved_cut.n, 0);
    assert_int_equal(p.path_len, sizeof path - 1);
    assert_memory_equal(p.path, path, sizeof path - 1);
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
    /* Windows' gmtime knows no time before 1970: nothing to compare with
     * there (the formatter is ours, the same code on every platform). */
    if (gmtime_r(&t, &tm) == NULL)
      continue;
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

/* Whether a parsed path (got, its cut c) is wire whole, or wire's head
 * and tail around the raw marker "...[truncated N bytes]..." with N the
 * bytes left out between them. */
static int cut_ok(const unsigned char *got, size_t got_len, struct cut c,
                  const char *wire, size_t wire_len) {
  if (c.n == 0)
    return got_len == wire_len && memcmp(got, wire, wire_len) == 0;
  return c.at <= got_len && got_len + c.n == wire_len &&
         memcmp(got, wire, c.at) == 0 &&
         memcmp(got + c.at, wire + c.at + c.n, got_len - c.at) == 0;
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
 * its head and tail around a marker of how much is missing. Only a smaller
 * buffer gives a plain prefix of the line. Never a byte past the buffer, always
 * one '\n' at the end. */
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
    size_t fields = bare_len(&r, af) + 2 * strlen("...[truncated 99 bytes]...");
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
        assert_true(
            cut_ok(p->path, p->path_len, p->path_cut, r.path, r.path_len));
        assert_true(cut_ok(p->resolved, p->resolved_len, p->resolved_cut,
                           r.resolved, r.resolved_len));
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
 * two longest paths of the worst byte share it, every field kept: the
 * resolved path (what was served) takes three quarters, the wire path a
 * quarter, each its head and its tail. */
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
    assert_true(cut_ok(p->path, p->path_len, p->path_cut, path, PFP_PATH_MAX));
    assert_true(cut_ok(p->resolved, p->resolved_len, p->resolved_cut, path,
                       PFP_PATH_MAX + 1));
    /* Neither path pushed the other out; the resolved one is whole (text)
     * or has three quarters (JSON, 6 bytes a byte). */
    assert_true(p->path_cut.n > 0);
    assert_true(p->path_len > PFP_PATH_MAX / 8);
    assert_true(af == ACCESS_TEXT ? p->resolved_cut.n == 0
                                  : p->resolved_cut.n > 0 &&
                                        p->resolved_len > 2 * p->path_len);
    /* A cut path keeps a head and a longer tail. */
    assert_true(p->path_cut.at > 0 && p->path_len > 2 * p->path_cut.at - 8);
    assert_true(p->resolved_cut.n == 0 ||
                (p->resolved_cut.at > 0 &&
                 p->resolved_len > 2 * p->resolved_cut.at - 8));
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
 * through syslog's one datagram: the padding is cut in the middle and
 * marked, the path's tail "/../secret" is there, and what was served
 * (resolved), the status and the bytes are all there. */
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
    assert_true(cut_ok(p->path, p->path_len, p->path_cut, path, 4090));
    assert_true(p->path_cut.n > 0); /* cut: marked, not hidden */
    assert_non_null(strstr(buf, " bytes]..."));
    assert_memory_equal(p->path + p->path_len - 10, "/../secret", 10);
    /* Through a file the line is whole. */
    n = accesslog_format(buf, sizeof buf, &r, "alice", af);
    assert_int_equal(parse_line(af, buf, n - 1, p), 0);
    assert_int_equal(p->path_cut.n, 0);
    assert_int_equal(p->path_len, 4090);
    assert_memory_equal(p->path, path, 4090);
  }
  free(p);
}

/* A long path through syslog's one datagram (issue 5): the file name is
 * the tail, so it survives the cut in both paths; a resolved path that
 * fits is kept whole and the wire path gets what is left. Before, both
 * were cut at the end, and the file name was gone from both. */
static void test_cut_keeps_file_name(void **state) {
  static char path[4096], buf[ACCESSLOG_LINE_MAX];
  static const char name[] = "/quarterly-report-2026.pdf";
  static const char dir[] = "/d\xc3\xa9j\xc3\xa0-vu";
  struct access_record r = sample();
  struct parsed *p = malloc(sizeof *p);
  size_t n, len = 0;
  (void)state;

  assert_non_null(p);
  /* Directories of non-ASCII names (4 bytes each in text), then the file. */
  while (len + sizeof dir - 1 + sizeof name - 1 < sizeof path) {
    memcpy(path + len, dir, sizeof dir - 1);
    len += sizeof dir - 1;
  }
  memcpy(path + len, name, sizeof name - 1);
  len += sizeof name - 1;
  r.path = path;
  r.path_len = len;
  r.resolved = path + 1;
  r.resolved_len = len - 1;
  for (int f = 0; f < 2; f++) {
    enum access_format af = f ? ACCESS_JSON : ACCESS_TEXT;
    n = accesslog_format(buf, LOGSINK_SYSLOG_MSG_MAX + 1, &r, "alice", af);
    assert_int_equal(parse_line(af, buf, n - 1, p), 0);
    assert_string_equal(p->status, "OK");
    /* Text escapes the path past the datagram: both paths are cut. */
    if (af == ACCESS_TEXT)
      assert_true(p->path_cut.n > 0 && p->resolved_cut.n > 0);
    assert_true(p->path_cut.n > 0);
    assert_true(cut_ok(p->path, p->path_len, p->path_cut, path, len));
    assert_true(cut_ok(p->resolved, p->resolved_len, p->resolved_cut, path + 1,
                       len - 1));
    assert_true(p->path_len > sizeof name);
    assert_memory_equal(p->path + p->path_len - (sizeof name - 1), name,
                        sizeof name - 1);
    assert_memory_equal(p->resolved + p->resolved_len - (sizeof name - 1), name,
                        sizeof name - 1);
    /* The heads say where: the first directory is there too. */
    assert_memory_equal(p->path, dir, sizeof dir - 1);
    assert_memory_equal(p->resolved, dir + 1, sizeof dir - 2);
  }

  /* A resolved path that fits the datagram with a quarter to spare is kept
   * whole, however long the wire path; the wire path is cut to the rest
   * and keeps its tail. \x7f is 4 bytes in text, 6 in JSON: 4800 bytes of
   * the ~8 KiB either way, more than half of it. */
  memset(path, 0x80, sizeof path);
  memcpy(path + sizeof path - 10, "/../secret", 10);
  r.path = path;
  r.path_len = sizeof path;
  for (int f = 0; f < 2; f++) {
    enum access_format af = f ? ACCESS_JSON : ACCESS_TEXT;
    static char res[1200];
    memset(res, 0x7f, sizeof res);
    r.resolved = res;
    r.resolved_len = f ? 800 : 1200;
    n = accesslog_format(buf, LOGSINK_SYSLOG_MSG_MAX + 1, &r, "alice", af);
    assert_int_equal(parse_line(af, buf, n - 1, p), 0);
    assert_int_equal(p->resolved_cut.n, 0);
    assert_int_equal(p->resolved_len, r.resolved_len);
    assert_memory_equal(p->resolved, res, r.resolved_len);
    assert_true(p->path_cut.n > 0);
    assert_true(cut_ok(p->path, p->path_len, p->path_cut, path, sizeof path));
    assert_memory_equal(p->path + p->path_len - 10, "/../secret", 10);
    assert_true(n > LOGSINK_SYSLOG_MSG_MAX - 16); /* the room was used */
  }
  free(p);
}

static double now_s(void) { return (double)uv_hrtime() / 1e9; }

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

/* Which user names print as themselves: the rest print as the uid, so
 * a name in passwd cannot pose as structure or reach a shell. */
static void test_user_printable(void **state) {
  char longest[ACCESSLOG_USER_MAX + 2];
  (void)state;

  assert_true(accesslog_user_printable("alice"));
  assert_true(accesslog_user_printable("svc-backup.2_x"));
  assert_true(accesslog_user_printable("alice@EXAMPLE")); /* a domain's */
  assert_false(accesslog_user_printable("EXAMPLE\\alice"));
  assert_false(accesslog_user_printable(""));
  assert_false(accesslog_user_printable("a b"));
  assert_false(accesslog_user_printable("a=b"));
  assert_false(accesslog_user_printable("$(id)"));
  assert_false(accesslog_user_printable("caf\xc3\xa9"));
  memset(longest, 'u', sizeof longest);
  longest[ACCESSLOG_USER_MAX] = '\0';
  assert_true(accesslog_user_printable(longest));
  longest[ACCESSLOG_USER_MAX] = 'u';
  longest[ACCESSLOG_USER_MAX + 1] = '\0';
  assert_false(accesslog_user_printable(longest));
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
      cmocka_unit_test(test_json_bidi_invisible),
      cmocka_unit_test(test_forged_marker),
      cmocka_unit_test(test_abandoned),
      cmocka_unit_test(test_time_matches_gmtime),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_cut),
      cmocka_unit_test(test_line_max),
      cmocka_unit_test(test_padded_path_keeps_fields),
      cmocka_unit_test(test_cut_keeps_file_name),
      cmocka_unit_test(test_user_printable),
      cmocka_unit_test(test_format_speed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
