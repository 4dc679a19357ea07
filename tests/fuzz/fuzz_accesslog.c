/* fuzz_accesslog.c - the access log's line (accesslog_format, daemon/
 * accesslog_format.c) for hostile paths and user names, any cap, both
 * formats: the line is what an admin reads and what log tools parse.
 *
 * Input: a 40-byte head (zeros if short: flags, cap, the record's numbers,
 * the user name's length), the user name, then the wire path (the resolved
 * path is path_normalize's reading of it, as serve.c makes it). The buffer
 * is malloc'd at exactly the cap.
 *
 * Properties: one line, at most the cap (and ACCESSLOG_LINE_MAX), ending in
 * its only '\n', no NUL; text: printable ASCII only, every raw '[' starts a
 * cut marker "...[truncated N bytes]..."; JSON: a complete line is one flat
 * object of strings, numbers and null, valid UTF-8, no hidden code point
 * raw (C1, bidi, invisible, line separators); in both, a complete line's
 * path and resolved decode back to the very bytes logged, or, when cut, to
 * a head and a tail of them with N bytes between. */
#include <string.h>

#include "accesslog.h"
#include "fuzz.h"
#include "path.h"
#include "proto.h"

#define HEAD 40
#define MARK_PRE "...[truncated "
#define MARK_POST " bytes]..."

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

/* ---- the cut marker ----------------------------------------------------- */

/* At a raw '[' (s[i]), the marker "[truncated N bytes]..." ends before e
 * (or the line is cut inside it: only at the very end of the line). Returns
 * the index after the marker and N in *n, or 0 if it is cut short. */
static size_t marker(const char *s, size_t i, size_t e, uint64_t *n) {
  const char *pre = &MARK_PRE[3], *post = MARK_POST;
  size_t j = i, digits = 0;

  *n = 0;
  for (; *pre != '\0'; pre++, j++) {
    if (j == e)
      return 0;
    CHECK(s[j] == *pre);
  }
  while (j < e && s[j] >= '0' && s[j] <= '9') {
    CHECK(*n <= UINT64_MAX / 10);
    *n = *n * 10 + (uint64_t)(s[j++] - '0');
    digits++;
  }
  if (j == e)
    return 0;
  CHECK(digits > 0);
  for (; *post != '\0'; post++, j++) {
    if (j == e)
      return 0;
    CHECK(s[j] == *post);
  }
  return j;
}

/* ---- decoding a quoted value back to bytes ------------------------------ */

struct decoded {
  uint8_t head[6 * PFP_PATH_MAX];
  size_t nhead;
  uint8_t tail[6 * PFP_PATH_MAX];
  size_t ntail;
  int cut;    /* a marker was found */
  uint64_t n; /* its N */
};

static void put(struct decoded *d, unsigned b) {
  if (d->cut)
    d->tail[d->ntail++] = (uint8_t)b;
  else
    d->head[d->nhead++] = (uint8_t)b;
}

static void put_utf8(struct decoded *d, unsigned cp) {
  if (cp < 0x80) {
    put(d, cp);
  } else if (cp < 0x800) {
    put(d, 0xC0 | cp >> 6);
    put(d, 0x80 | (cp & 0x3F));
  } else {
    put(d, 0xE0 | cp >> 12);
    put(d, 0x80 | (cp >> 6 & 0x3F));
    put(d, 0x80 | (cp & 0x3F));
  }
}

static unsigned hexval(char c) {
  if (c >= '0' && c <= '9')
    return (unsigned)(c - '0');
  CHECK(c >= 'a' && c <= 'f'); /* the formatter writes lower case */
  return (unsigned)(c - 'a' + 10);
}

/* The quoted value at s[i] (its opening quote), of a complete line of e
 * bytes. Returns the index after the closing quote. */
static size_t decode(const char *s, size_t i, size_t e, int json,
                     struct decoded *d) {
  memset(d, 0, sizeof(*d));
  CHECK(i < e && s[i] == '"');
  for (i++;;) {
    CHECK(i < e);
    char c = s[i];
    if (c == '"')
      return i + 1;
    if (c == '[') {
      /* The marker's "..." was read as three bytes of the head. */
      CHECK(!d->cut && d->nhead >= 3 &&
            memcmp(d->head + d->nhead - 3, "...", 3) == 0);
      d->nhead -= 3;
      i = marker(s, i, e, &d->n);
      CHECK(i != 0 && d->n > 0);
      d->cut = 1;
      continue;
    }
    if (c != '\\') {
      put(d, (unsigned char)c);
      i++;
      continue;
    }
    CHECK(i + 1 < e);
    c = s[i + 1];
    if (!json && c == 'x') {
      CHECK(i + 3 < e);
      put(d, hexval(s[i + 2]) << 4 | hexval(s[i + 3]));
      i += 4;
    } else if (json && c == 'u') {
      unsigned v = 0;
      CHECK(i + 5 < e);
      for (int k = 2; k < 6; k++)
        v = v << 4 | hexval(s[i + k]);
      if (v >= 0xDC80 && v <= 0xDCFF)
        put(d, v & 0xFF); /* surrogateescape: a byte of invalid UTF-8 */
      else {
        CHECK(v < 0xD800 || v > 0xDFFF);
        put_utf8(d, v);
      }
      i += 6;
    } else {
      const char *from = json ? "\"\\btnfr" : "\"\\";
      const char *to = "\"\\\b\t\n\f\r";
      const char *k = strchr(from, c);
      CHECK(c != '\0' && k != NULL);
      put(d, (unsigned char)to[k - from]);
      i += 2;
    }
  }
}

/* The value decodes to exactly the logged bytes, or to a head and a tail
 * of them with n bytes left out between. */
static void check_same(const struct decoded *d, const char *want, size_t len) {
  if (!d->cut) {
    CHECK(d->nhead == len && memcmp(d->head, want, len) == 0);
    return;
  }
  CHECK(d->nhead + d->n + d->ntail == len);
  CHECK(memcmp(d->head, want, d->nhead) == 0);
  CHECK(memcmp(d->tail, want + len - d->ntail, d->ntail) == 0);
}

/* Where key's value starts in a complete line, or fail. */
static size_t find(const char *s, size_t e, const char *key) {
  size_t kl = strlen(key);
  for (size_t i = 0; i + kl <= e; i++)
    if (memcmp(s + i, key, kl) == 0)
      return i + kl;
  CHECK(!"key not in the line");
  return 0;
}

/* ---- JSON: one flat object ------------------------------------------- */

/* The length of the valid UTF-8 sequence at s, or 0 (RFC 3629). */
static size_t utf8_len(const uint8_t *s, size_t left, unsigned *cp) {
  uint8_t lo = 0x80, hi = 0xBF;
  size_t need;

  if (s[0] >= 0xC2 && s[0] <= 0xDF)
    need = 2, *cp = s[0] & 0x1F;
  else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
    need = 3, *cp = s[0] & 0x0F;
    lo = s[0] == 0xE0 ? 0xA0 : lo;
    hi = s[0] == 0xED ? 0x9F : hi;
  } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
    need = 4, *cp = s[0] & 0x07;
    lo = s[0] == 0xF0 ? 0x90 : lo;
    hi = s[0] == 0xF4 ? 0x8F : hi;
  } else
    return 0;
  if (left < need || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t k = 1; k < need; k++) {
    if (k > 1 && (s[k] < 0x80 || s[k] > 0xBF))
      return 0;
    *cp = *cp << 6 | (s[k] & 0x3F);
  }
  return need;
}

static int hidden(unsigned cp) {
  return (cp >= 0x80 && cp <= 0x9F) || cp == 0x61C ||
         (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
         (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF;
}

/* A JSON string at s[i]: escapes valid, raw bytes valid UTF-8, no control
 * and no hidden code point raw. Returns the index after it. */
static size_t json_string(const char *s, size_t i, size_t e) {
  const uint8_t *u = (const uint8_t *)s;

  CHECK(i < e && s[i] == '"');
  for (i++; i < e && s[i] != '"';) {
    if (u[i] < 0x20)
      CHECK(!"control character in a JSON string");
    if (s[i] == '\\') {
      CHECK(i + 1 < e && strchr("\"\\/bfnrtu", s[i + 1]) != NULL);
      if (s[i + 1] == 'u') {
        CHECK(i + 5 < e);
        for (int k = 2; k < 6; k++)
          hexval(s[i + k]);
        i += 6;
      } else
        i += 2;
    } else if (u[i] >= 0x80) {
      unsigned cp;
      size_t n = utf8_len(u + i, e - i, &cp);
      CHECK(n > 0 && !hidden(cp));
      i += n;
    } else
      i++;
  }
  CHECK(i < e);
  return i + 1;
}

static void check_json(const char *s, size_t e) {
  static const char *const keys[] = {"time",  "worker", "conn",       "pid",
                                     "uid",   "user",   "gid",        "proto",
                                     "op",    "path",   "resolved",   "status",
                                     "bytes", "size",   "duration_us"};
  size_t i = 0;

  CHECK(s[i++] == '{');
  for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
    size_t kl = strlen(keys[k]);
    CHECK(i + kl + 3 <= e && s[i] == '"' &&
          memcmp(s + i + 1, keys[k], kl) == 0 && s[i + 1 + kl] == '"' &&
          s[i + 2 + kl] == ':');
    i += kl + 3;
    if (s[i] == '"')
      i = json_string(s, i, e);
    else if (i + 4 <= e && memcmp(s + i, "null", 4) == 0)
      i += 4;
    else {
      size_t d = i;
      if (s[i] == '-')
        i++;
      while (i < e && s[i] >= '0' && s[i] <= '9')
        i++;
      CHECK(i > d && s[i - 1] != '-');
      CHECK(!(s[d] == '0' && i - d > 1)); /* no leading zeros */
    }
    CHECK(i < e &&
          s[i] == (k + 1 < sizeof(keys) / sizeof(keys[0]) ? ',' : '}'));
    i++;
  }
  CHECK(i == e);
}

/* ---- the line ------------------------------------------------------------ */

static void check_text_bytes(const char *s, size_t e) {
  for (size_t i = 0; i < e; i++) {
    uint64_t n;
    CHECK(s[i] >= 0x20 && s[i] <= 0x7E);
    if (s[i] == '[') {
      CHECK(i >= 3 && memcmp(s + i - 3, "...", 3) == 0);
      size_t j = marker(s, i, e, &n);
      if (j == 0)
        break; /* a plain cut prefix ends inside it */
      i = j - 1;
    }
  }
}

static void check_values(const char *s, size_t e, const struct access_record *r,
                         int json) {
  static struct decoded d;
  size_t i;

  i = find(s, e, json ? ",\"path\":" : " path=");
  i = decode(s, i, e, json, &d);
  check_same(&d, r->path, r->path_len);
  /* resolved follows path at once (a path may hold " resolved=" itself). */
  {
    const char *key = json ? ",\"resolved\":" : " resolved=";
    CHECK(e - i >= strlen(key) && memcmp(s + i, key, strlen(key)) == 0);
    i += strlen(key);
  }
  if (r->resolved == NULL) {
    CHECK(json ? memcmp(s + i, "null,", 5) == 0 : memcmp(s + i, "- ", 2) == 0);
    return;
  }
  decode(s, i, e, json, &d);
  check_same(&d, r->resolved, r->resolved_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t head[HEAD] = {0};
  static char resolved[PFP_PATH_MAX + 2];
  char user[256], tailkey[64];
  struct access_record r;
  size_t cap, ulen, n, e, off;
  char *buf;
  int json;

  memcpy(head, data, size < HEAD ? size : HEAD);
  off = size < HEAD ? size : HEAD;
  json = head[0] & 1;
  cap = (size_t)(head[1] << 8 | head[2]) % (ACCESSLOG_LINE_MAX + 64);
  ulen = head[3];
  if (ulen > size - off)
    ulen = size - off;
  memcpy(user, data + off, ulen);
  user[ulen] = '\0';
  off += ulen;
  if (size - off > PFP_PATH_MAX)
    return 0;

  memset(&r, 0, sizeof(r));
  r.time_ms = (int64_t)get64(head + 4);
  r.conn = get64(head + 12);
  r.bytes = get64(head + 20);
  r.size = r.bytes ^ 0x5555;
  r.duration_us = get64(head + 28);
  r.uid = (unsigned)get64(head + 32);
  r.gid = r.uid ^ 1;
  r.pid = (uv_pid_t)(head[36] << 8 | head[37]);
  r.worker = head[38];
  r.proto = "pfp1";
  r.op = head[0] & 2 ? "GET" : head[0] & 4 ? "STAT" : "-";
  r.status = (head[0] >> 4) % (PFP_STATUS_COUNT + 1);
  if (r.status == PFP_STATUS_COUNT)
    r.status = ACCESS_ABANDONED;
  r.path = (const char *)data + off;
  r.path_len = size - off;
  if ((head[0] & 8) &&
      path_normalize(r.path, r.path_len, resolved, sizeof(resolved)) == 0) {
    r.resolved = resolved;
    r.resolved_len = strlen(resolved);
  }

  buf = malloc(cap ? cap : 1);
  CHECK(buf != NULL);
  n = accesslog_format(buf, cap, &r, head[39] & 1 ? user : NULL,
                       json ? ACCESS_JSON : ACCESS_TEXT);
  if (cap == 0) {
    CHECK(n == 0);
    goto out;
  }
  CHECK(n >= 1 && n <= cap && n <= ACCESSLOG_LINE_MAX);
  CHECK(buf[n - 1] == '\n' && memchr(buf, '\n', n) == buf + n - 1);
  CHECK(memchr(buf, '\0', n) == NULL);
  e = n - 1;
  if (!json)
    check_text_bytes(buf, e);

  /* A complete line ends with the last field, whole. */
  snprintf(tailkey, sizeof(tailkey),
           json ? ",\"duration_us\":%llu}" : " duration_us=%llu",
           (unsigned long long)r.duration_us);
  if (e >= strlen(tailkey) &&
      memcmp(buf + e - strlen(tailkey), tailkey, strlen(tailkey)) == 0) {
    if (json)
      check_json(buf, e);
    check_values(buf, e, &r, json);
  } else {
    /* Only a cap too small for the other fields and two cut markers cuts
     * the line itself: with the paths left out the line takes bare bytes,
     * and a marker at most 28. */
    struct access_record b = r;
    static char full[ACCESSLOG_LINE_MAX];
    size_t bare;
    b.path_len = 0;
    b.resolved_len = 0;
    bare = accesslog_format(full, sizeof(full), &b, head[39] & 1 ? user : NULL,
                            json ? ACCESS_JSON : ACCESS_TEXT);
    CHECK(cap < bare + 4 * 2 * 28);
  }
out:
  free(buf);
  return 0;
}
