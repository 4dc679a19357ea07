/* ini_strict.c - the strict ini reader under inih; see ini_strict.h.
 *
 * Map: fail (the first error, formatted), scan and classify (inih's own
 * reading of a line, followed far enough to refuse what it would misread),
 * read_line (inih's reader callback), on_key (inih's handler callback,
 * refusing continuation lines), ini_strict_parse. */
#include "ini_strict.h"

#include <ctype.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

struct parse {
  const struct ini_strict_handler *h;
  const char *name;  /* file name for messages */
  const char *text;  /* the whole file */
  size_t len, pos;   /* its size; where the next line starts */
  unsigned line;     /* number of the line inih is working on */
  unsigned key_line; /* line of the last "key = value" since a
                        section header, 0 if none: inih reads an
                        indented line after it as its continuation */
  int cont;          /* the current line is such a continuation */
  char section[INI_STRICT_LINE_MAX + 1]; /* current section, as inih sees it */
  int failed;                            /* err holds the first error */
  char *err;
  size_t errlen;
};

/* Record the first error as "NAME:LINE: [section] key: reason", leaving out
 * the parts that are NULL. Later errors are dropped. */
__attribute__((format(printf, 5, 6))) static void
fail(struct parse *p, unsigned line, const char *section, const char *key,
     const char *fmt, ...) {
  char reason[INI_STRICT_REASON_MAX];
  va_list ap;

  if (p->failed)
    return;
  p->failed = 1;
  if (p->errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  if (section != NULL && key != NULL)
    snprintf(p->err, p->errlen, "%s:%u: [%s] %s: %s", p->name, line, section,
             key, reason);
  else if (section != NULL)
    snprintf(p->err, p->errlen, "%s:%u: [%s]: %s", p->name, line, section,
             reason);
  else if (key != NULL)
    snprintf(p->err, p->errlen, "%s:%u: %s: %s", p->name, line, key, reason);
  else
    snprintf(p->err, p->errlen, "%s:%u: %s", p->name, line, reason);
}

/* inih's find_chars_or_comment() over [s, e): the first of chars, or a ';'
 * that follows whitespace (an inline comment), or e. */
static const char *scan(const char *s, const char *e, const char *chars) {
  int was_space = 0;
  for (; s < e; s++) {
    if (strchr(chars, *s) != NULL || (was_space && *s == ';'))
      return s;
    was_space = isspace((unsigned char)*s);
  }
  return e;
}

/* Fail on a line inih must not see, naming the key if the line looks like
 * "key = ...". */
static void fail_line(struct parse *p, const char *s, size_t n,
                      const char *reason) {
  const char *e = memchr(s, '\0', n);
  const char *t = s, *eq, *end;
  char key[64];
  const char *section = p->section[0] != '\0' ? p->section : NULL;

  e = e != NULL ? e : s + n;
  while (t < e && isspace((unsigned char)*t))
    t++;
  eq = t;
  while (eq < e && *eq != '=' && *eq != ':' && *eq != ';' && *eq != '#' &&
         *eq != '[')
    eq++;
  end = eq;
  while (end > t && isspace((unsigned char)end[-1]))
    end--;
  key[0] = '\0';
  if (eq < e && (*eq == '=' || *eq == ':') && end > t &&
      (size_t)(end - t) < sizeof(key)) {
    memcpy(key, t, (size_t)(end - t));
    key[end - t] = '\0';
    for (const char *k = key; *k != '\0'; k++)
      if (!isalnum((unsigned char)*k) && *k != '_' && *k != '-' && *k != '.')
        key[0] = '\0';
  }
  fail(p, p->line, section, key[0] != '\0' ? key : NULL, "%s", reason);
}

/* Follow inih's reading of one line (ini.c, ini_parse_stream) far enough to
 * check section names on their own line, even when no key follows, and to
 * reject what inih rejects without calling us. Returns 0 or -EINVAL. */
static int classify(struct parse *p, const char *s, size_t n) {
  const char *b = s, *e = s + n, *t, *x;

  p->cont = 0;
  if (p->line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
    b += 3; /* inih skips a UTF-8 byte order mark */
  while (e > b && isspace((unsigned char)e[-1]))
    e--;
  t = b;
  while (t < e && isspace((unsigned char)*t))
    t++;
  if (t == e || *t == ';' || *t == '#')
    return 0;
  if (p->key_line != 0 && t > s) {
    p->cont = 1;
    return 0;
  }
  if (*t == '[') {
    x = scan(t + 1, e, "]");
    if (x == e || *x != ']') {
      fail(p, p->line, NULL, NULL, "missing \"]\" in section header");
      return UV_EINVAL;
    }
    memcpy(p->section, t + 1, (size_t)(x - t - 1));
    p->section[x - t - 1] = '\0';
    p->key_line = 0;
    if (!p->h->section_known(p->h->user, p->section)) {
      fail(p, p->line, p->section, NULL, "unknown section");
      return UV_EINVAL;
    }
    /* inih ignores whatever follows the ']', so "[server] workers = 8" (or
     * a file with '\r' line ends) would lose settings without a word. */
    for (x++; x < e && isspace((unsigned char)*x); x++)
      ;
    if (x < e && *x != ';' && *x != '#') {
      fail(p, p->line, p->section, NULL, "text after \"]\"");
      return UV_EINVAL;
    }
    return 0;
  }
  x = scan(t, e, "=:");
  if (x == e || (*x != '=' && *x != ':')) {
    fail(p, p->line, p->section[0] != '\0' ? p->section : NULL, NULL,
         "expected \"key = value\"");
    return UV_EINVAL;
  }
  while (x > t && isspace((unsigned char)x[-1]))
    x--;
  if (x == t) {
    fail(p, p->line, p->section[0] != '\0' ? p->section : NULL, NULL,
         "missing key name before \"=\"");
    return UV_EINVAL;
  }
  p->key_line = p->line;
  return 0;
}

/* inih's reader callback: the next line of the text, without its '\n'.
 * inih reads lines into a fixed buffer and would silently split a longer
 * one, reading its tail as a line of its own; and a NUL byte would hide the
 * rest of its line. Both are refused here, before inih sees them. Counting
 * lines here also gives the key handler its line number. */
static char *read_line(char *buf, int size, void *stream) {
  struct parse *p = stream;
  const char *s, *nl;
  size_t n;
  char reason[64];

  if (p->failed || p->pos >= p->len)
    return NULL;
  s = p->text + p->pos;
  nl = memchr(s, '\n', p->len - p->pos);
  n = nl != NULL ? (size_t)(nl - s) : p->len - p->pos;
  p->pos += n + (nl != NULL);
  p->line++;
  if (memchr(s, '\0', n) != NULL) {
    fail_line(p, s, n, "NUL byte in line");
    return NULL;
  }
  if (n > INI_STRICT_LINE_MAX || n + 1 > (size_t)size) {
    snprintf(reason, sizeof(reason), "line longer than %d bytes",
             INI_STRICT_LINE_MAX);
    fail_line(p, s, n, reason);
    return NULL;
  }
  if (classify(p, s, n) < 0)
    return NULL;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return buf;
}

/* inih's handler: one "key = value", or a continuation line, which inih
 * passes as the previous key again. Returns 1 to go on, 0 on error. */
static int on_key(void *user, const char *section, const char *name,
                  const char *value) {
  struct parse *p = user;
  const char *sec = section[0] != '\0' ? section : NULL;
  char why[INI_STRICT_REASON_MAX];

  if (p->failed)
    return 0;
  /* The line before it was a key inih accepted, in the same section, so
   * nothing else about this line can be wrong first. */
  if (p->cont) {
    fail(p, p->line, sec, name,
         "indented line continues the value from line %u; "
         "a value must be on one line",
         p->key_line);
    return 0;
  }
  why[0] = '\0';
  if (p->h->on_key(p->h->user, p->line, section, name, value, why,
                   sizeof(why)) < 0) {
    fail(p, p->line, sec, name, "%s", why);
    return 0;
  }
  return 1;
}

int ini_strict_parse(const char *name, const char *text, size_t len,
                     const struct ini_strict_handler *h, char *err,
                     size_t errlen) {
  struct parse p;
  int r;

  memset(&p, 0, sizeof(p));
  p.h = h;
  p.name = name;
  p.text = text;
  p.len = len;
  p.err = err;
  p.errlen = errlen;
  if (errlen > 0)
    err[0] = '\0';
  r = ini_parse_stream(read_line, &p, on_key, &p);
  /* read_line and on_key reject every line inih would; this catches any
   * inih rule they do not know of, so it cannot pass silently. */
  if (r != 0 && !p.failed)
    fail(&p, r > 0 ? (unsigned)r : p.line, NULL, NULL, "cannot parse line");
  return p.failed ? UV_EINVAL : 0;
}
