/* accesslog_lines.h - for the access log's tests: a sample record and a
 * parser of its lines, written apart from the formatter (accesslog.h), so
 * that a mistake shared by the two cannot hide. Included by
 * test_accesslog_format.c and test_accesslog.c; not a test of its own. */
#ifndef PIPEFILED_TEST_ACCESSLOG_LINES_H
#define PIPEFILED_TEST_ACCESSLOG_LINES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "accesslog.h"
#include "proto.h"

/* Each file uses some of these. */
#define AL_HELPER static __attribute__((unused))

AL_HELPER struct access_record sample(void) {
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
AL_HELPER struct access_record sample_path(const char *path, size_t len) {
  struct access_record r = sample();
  r.path = path;
  r.path_len = len;
  r.resolved = NULL;
  r.resolved_len = 0;
  return r;
}

AL_HELPER size_t count_nl(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += s[i] == '\n';
  return c;
}

/* ---- line parsers, written apart from the formatter ------------------- */

/* Strict UTF-8 check by decoding code points (not by the formatter's
 * table), so a shared mistake cannot hide. */
AL_HELPER int valid_utf8(const unsigned char *s, size_t n) {
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

AL_HELPER int hexval(int c) {
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

/* A path's cut: the marker "...[truncated N bytes]..." written raw between
 * its head and tail. */
struct cut {
  size_t at; /* decoded bytes before the marker (the head) */
  size_t n;  /* N, the wire bytes left out; 0: the path is whole */
};

/* A raw '[' in a quoted value, just read (p is past it; start is where
 * the value's bytes began, out[0..*n) what they decoded to): it must be the
 * one cut marker, whose raw "..." before it was decoded as is. Records the
 * cut in c, drops the "..." from out, returns the position after the
 * marker, or NULL. A path's own '[' is escaped, so a raw one is a cut. */
AL_HELPER const char *cut_marker(const char *p, const char *end,
                                 const char *start, unsigned char *out,
                                 size_t *n, struct cut *c) {
  static const char pre[] = "truncated ", post[] = " bytes]...";
  size_t v = 0;

  if (c == NULL || c->n != 0 || p - 1 - start < 3 ||
      memcmp(p - 4, "...", 3) != 0 || *n < 3 ||
      memcmp(out + *n - 3, "...", 3) != 0)
    return NULL;
  if ((size_t)(end - p) < sizeof pre - 1 || memcmp(p, pre, sizeof pre - 1) != 0)
    return NULL;
  p += sizeof pre - 1;
  if (p >= end || *p < '1' || *p > '9')
    return NULL;
  while (p < end && *p >= '0' && *p <= '9')
    v = v * 10 + (size_t)(*p++ - '0');
  if ((size_t)(end - p) < sizeof post - 1 ||
      memcmp(p, post, sizeof post - 1) != 0)
    return NULL;
  *n -= 3;
  c->at = *n;
  c->n = v;
  return p + sizeof post - 1;
}

/* A JSON string at p: decode into out the way Python's
 * json.loads(...).encode("utf-8", "surrogateescape") would, but a cut
 * marker goes to c (NULL: none allowed) rather than into out. Returns the
 * position after the closing quote, or NULL. */
AL_HELPER const char *json_string(const char *p, const char *end,
                                  unsigned char *out, size_t *outlen,
                                  struct cut *c) {
  const char *start = p + 1;
  size_t n = 0;

  if (c != NULL)
    *c = (struct cut){0, 0};
  if (p >= end || *p++ != '"')
    return NULL;
  while (p < end && *p != '"') {
    unsigned char c0 = (unsigned char)*p++;
    unsigned long v = 0;
    if (c0 < 0x20)
      return NULL;
    if (c0 == '[') {
      p = cut_marker(p, end, start, out, &n, c);
      if (p == NULL)
        return NULL;
      continue;
    }
    if (c0 != '\\') {
      out[n++] = c0;
      continue;
    }
    if (p >= end)
      return NULL;
    c0 = (unsigned char)*p++;
    if (c0 != 'u') {
      size_t i = 0;
      while (i < sizeof json_short - 1 && (unsigned char)json_short[i] != c0)
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
  unsigned char path[PFP_PATH_MAX * 2]; /* head and tail, if cut */
  size_t path_len;
  struct cut path_cut;
  int has_resolved; /* not "-" / null */
  unsigned char resolved[PFP_PATH_MAX * 2];
  size_t resolved_len;
  struct cut resolved_cut;
  char status[16];
};

static const char *const keys[] = {"time",  "worker", "conn",       "pid",
                                   "uid",   "user",   "gid",        "proto",
                                   "op",    "path",   "resolved",   "status",
                                   "bytes", "size",   "duration_us"};
#define NKEYS (sizeof keys / sizeof keys[0])

AL_HELPER int time_ok(const char *s, size_t n) {
  static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (n != sizeof pat - 1)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
      return 0;
  return 1;
}

AL_HELPER int digits(const char *s, size_t n) {
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return 0;
  return 1;
}

AL_HELPER void keep(char *dst, size_t cap, const char *s, size_t n) {
  snprintf(dst, cap, "%.*s", (int)n, s);
}

/* A quoted text value at *sp (up to end) into out, its cut marker into c;
 * advances *sp. */
AL_HELPER int text_quoted(const char **sp, const char *end, unsigned char *out,
                          size_t *outlen, struct cut *cut) {
  const char *s = *sp, *start = s + 1;
  size_t n = 0;

  *cut = (struct cut){0, 0};
  if (s >= end || *s++ != '"')
    return -1;
  while (s < end && *s != '"') {
    unsigned char c = (unsigned char)*s++;
    /* Raw: printable ASCII, never what a shell expands. */
    if (c < 0x20 || c >= 0x7f || c == '$' || c == '`' || c == '!')
      return -1;
    if (c == '[') {
      s = cut_marker(s, end, start, out, &n, cut);
      if (s == NULL)
        return -1;
      continue;
    }
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

/* A text line (without its '\n'): exactly the keys, in order; a path's raw
 * '[' must be its cut marker (cut_marker). */
AL_HELPER int parse_text(const char *s, size_t n, struct parsed *p) {
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
      if (text_quoted(&s, end, p->path, &p->path_len, &p->path_cut) < 0)
        return -1;
      continue;
    }
    if (strcmp(keys[k], "resolved") == 0) {
      if (s < end && *s == '-') {
        s++;
        continue;
      }
      p->has_resolved = 1;
      if (text_quoted(&s, end, p->resolved, &p->resolved_len,
                      &p->resolved_cut) < 0)
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

/* Whether valid UTF-8 s[0..n) holds raw a code point a JSON line must
 * escape: C1 controls, the line splitters U+0085/U+2028/U+2029, bidi
 * controls (U+061C, U+200E/F, U+202A..E, U+2066..9) and the invisible
 * U+200B..D, U+2060..F, U+FEFF. Decoded here, apart from the formatter. */
AL_HELPER int raw_hidden(const unsigned char *s, size_t n) {
  static const unsigned long ranges[][2] = {
      {0x80, 0x9f},     {0x61c, 0x61c},   {0x200b, 0x200f}, {0x2028, 0x202e},
      {0x2060, 0x2064}, {0x2066, 0x206f}, {0xfeff, 0xfeff}};

  for (size_t i = 0; i < n;) {
    unsigned long cp = s[i];
    size_t k = s[i] < 0x80 ? 0 : s[i] < 0xe0 ? 1 : s[i] < 0xf0 ? 2 : 3;
    if (k > 0)
      cp &= 0x3fu >> k;
    for (size_t j = 1; j <= k && i + j < n; j++)
      cp = cp << 6 | (s[i + j] & 0x3fu);
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
      if (cp >= ranges[r][0] && cp <= ranges[r][1])
        return 1;
    i += k + 1;
  }
  return 0;
}

/* A JSON line (without its '\n'): one flat object, exactly the keys in
 * order, strings where strings belong (resolved: or null), numbers
 * elsewhere. The raw line is valid UTF-8 and holds none of the code points
 * line splitters take for a line end (U+0085, U+2028, U+2029), nor any C1
 * control, bidi control or invisible code point (raw_hidden). A path's raw
 * '[' must be its cut marker (cut_marker). */
AL_HELPER int parse_json(const char *s, size_t n, struct parsed *p) {
  static const int is_string[NKEYS] = {1, 0, 0, 0, 0, 1, 0, 1,
                                       1, 1, 1, 1, 0, 0, 0};
  const char *end = s + n;
  unsigned char key[64], val[PFP_PATH_MAX * 2 + 1];
  size_t kl, vl;

  memset(p, 0, sizeof *p);
  if (!valid_utf8((const unsigned char *)s, n) || s >= end || *s++ != '{')
    return -1;
  if (raw_hidden((const unsigned char *)s, (size_t)(end - s)))
    return -1;
  for (size_t k = 0; k < NKEYS; k++) {
    int null = 0;
    if (k > 0 && (s >= end || *s++ != ','))
      return -1;
    s = json_string(s, end, key, &kl, NULL);
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
      struct cut *c = strcmp(keys[k], "path") == 0       ? &p->path_cut
                      : strcmp(keys[k], "resolved") == 0 ? &p->resolved_cut
                                                         : NULL;
      s = json_string(s, end, val, &vl, c);
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
AL_HELPER int parse_line(enum access_format f, const char *s, size_t n,
                         struct parsed *p) {
  return f == ACCESS_JSON ? parse_json(s, n, p) : parse_text(s, n, p);
}

#endif
