/* config.c - the one table of settings (keys[]): parsing, defaults, printing
 * and restart rules all walk it; see config.h.
 *
 * Map of this file:
 *   value parsers   one per key type; each fills a field or explains why not
 *   keys[]          every setting: section, name, type, bounds, default
 *   line reader     feeds inih one line at a time, rejecting what inih would
 *                   silently truncate or misread, and counting lines
 *   key handler     inih's callback: unknown, duplicate and bad keys
 *   public API      config_defaults/parse/load/print/restart_keys */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_FILE_MAX (1024 * 1024) /* config_load refuses larger files */
#define DURATION_MIN_MS 1ul
#define DURATION_MAX_MS (24ul * 60 * 60 * 1000)
#define ID_MAX 4294967294ul /* (uid_t)-1 means "no change" to the kernel */
#define LOOKUP_BUF_MAX (1024 * 1024) /* getgrnam_r buffer for huge groups */
#define REASON_MAX 400
#define VALUE_MAX (CONFIG_PATH_MAX + 16) /* one printed value */

/* Enum fields are written through an unsigned; both must be the same size. */
_Static_assert(sizeof(enum log_level) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum access_format) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum log_full) == sizeof(unsigned), "enum size");

enum key_type {
  KT_PATH,     /* absolute path, shorter than the field */
  KT_MODE,     /* octal permission bits, 0000..0777 */
  KT_GROUP,    /* one group name or gid, "" = none; gid goes to aux */
  KT_UINT,     /* decimal number in min..max */
  KT_DURATION, /* "10" (s), "250ms", "10s", "2m" -> ms in min..max */
  KT_USERS,    /* struct idlist of user names or uids */
  KT_GROUPS,   /* struct idlist of group names or gids */
  KT_BOOL,     /* yes/no, true/false, on/off, 1/0 */
  KT_ENUM,     /* one of names[], stored as its index in an enum field */
  KT_WORD,     /* one of names[], stored as the string */
  KT_LOGDEST,  /* one of names[] or an absolute path, stored as the string */
};

struct key {
  const char *section;
  const char *name;
  enum key_type type;
  size_t off;               /* the field in struct config */
  size_t size;              /* of that field: bounds string fields */
  size_t aux;               /* KT_GROUP: the field for the resolved gid */
  unsigned long min, max;   /* KT_UINT, KT_DURATION (ms) */
  const char *const *names; /* KT_ENUM, KT_WORD, KT_LOGDEST */
  const char *def;          /* the default, written as in the ini file */
  const char *note;         /* KT_PATH: why the length limit is what it is */
  int restart;              /* a change takes effect only on restart */
};

static const char *const format_names[] = {
    [ACCESS_TEXT] = "text", [ACCESS_JSON] = "json", [ACCESS_JSON + 1] = NULL};
static const char *const level_names[] = {[LOG_LVL_ERROR] = "error",
                                          [LOG_LVL_WARNING] = "warning",
                                          [LOG_LVL_INFO] = "info",
                                          [LOG_LVL_DEBUG] = "debug",
                                          [LOG_LVL_DEBUG + 1] = NULL};
static const char *const log_full_names[] = {
    [LOG_FULL_BLOCK] = "block", [LOG_FULL_DROP] = "drop",
    [LOG_FULL_DROP + 1] = NULL};
static const char *const error_log_names[] = {"stderr", "syslog", NULL};
static const char *const access_log_names[] = {"stderr", "syslog", "off", NULL};

#define FIELD(f)                                                               \
  .off = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)
#define DURATION(f, d)                                                         \
  .type = KT_DURATION, FIELD(f), .min = DURATION_MIN_MS,                       \
  .max = DURATION_MAX_MS, .def = d

/* Every setting pipefiled has. config/pipefiled.ini documents each one and
 * a unit test checks that it loads to exactly these defaults. */
static const struct key keys[] = {
    {"server", "socket", .type = KT_PATH, FIELD(socket),
     .def = CONFIG_DEFAULT_SOCKET,
     .note = " (the limit for a Unix socket path)", .restart = 1},
    {"server", "socket_mode", .type = KT_MODE, FIELD(socket_mode),
     .def = "0666", .restart = 1},
    {"server", "socket_group", .type = KT_GROUP, FIELD(socket_group),
     .aux = offsetof(struct config, socket_gid), .def = "", .restart = 1},
    {"server", "root", .type = KT_PATH, FIELD(root),
     .def = CONFIG_DEFAULT_ROOT},
    {"server", "workers", .type = KT_UINT, FIELD(workers), .min = 1, .max = 256,
     .def = "4", .restart = 1},
    {"server", "max_connections", .type = KT_UINT, FIELD(max_connections),
     .min = 1, .max = 1000000, .def = "4096"},
    /* Unset, it is a quarter of max_connections (parse_text). */
    {"server", "max_connections_per_user", .type = KT_UINT,
     FIELD(max_connections_per_user), .min = 0, .max = 1000000,
     .def = "1024"},
    {"server", "strict_modes", .type = KT_BOOL, FIELD(strict_modes),
     .def = "yes"},
    {"server", "request_timeout", DURATION(request_timeout_ms, "10s")},
    {"server", "idle_timeout", DURATION(idle_timeout_ms, "60s")},
    {"server", "send_timeout", DURATION(send_timeout_ms, "30s")},
    {"server", "shutdown_timeout", DURATION(shutdown_timeout_ms, "10s")},
    {"identity", "allow_users", .type = KT_USERS, FIELD(allow_users),
     .def = "*"},
    {"identity", "allow_groups", .type = KT_GROUPS, FIELD(allow_groups),
     .def = "*"},
    {"identity", "deny_users", .type = KT_USERS, FIELD(deny_users), .def = ""},
    {"identity", "deny_groups", .type = KT_GROUPS, FIELD(deny_groups),
     .def = ""},
    {"identity", "serve_root_clients", .type = KT_BOOL,
     FIELD(serve_root_clients), .def = "no"},
    {"log", "access_log", .type = KT_LOGDEST, FIELD(access_log),
     .names = access_log_names, .def = "stderr"},
    {"log", "access_format", .type = KT_ENUM, FIELD(access_format),
     .names = format_names, .def = "text"},
    {"log", "log_full", .type = KT_ENUM, FIELD(log_full),
     .names = log_full_names, .def = "block"},
    {"log", "error_log", .type = KT_WORD, FIELD(error_log),
     .names = error_log_names, .def = "stderr"},
    {"log", "level", .type = KT_ENUM, FIELD(level), .names = level_names,
     .def = "info"},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* ---- value parsers ---------------------------------------------------- */

static void *field(struct config *c, const struct key *k) {
  return (char *)c + k->off;
}

static const void *cfield(const struct config *c, const struct key *k) {
  return (const char *)c + k->off;
}

/* Reads the decimal digits at *s into *out, saturating at UINT64_MAX so an
 * absurd number is reported as out of range rather than wrapping. Returns
 * how many digits there were. */
static size_t read_digits(const char **s, uint64_t *out) {
  const char *p = *s;
  uint64_t v = 0;
  while (*p >= '0' && *p <= '9') {
    unsigned d = (unsigned)(*p - '0');
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    p++;
  }
  size_t n = (size_t)(p - *s);
  *out = v;
  *s = p;
  return n;
}

/* "a, b or c" from a NULL-terminated list, with an optional last item. */
static void join_names(const char *const *names, const char *extra, char *buf,
                       size_t len) {
  size_t n = 0, used = 0;
  while (names[n] != NULL)
    n++;
  size_t total = n + (extra != NULL);
  buf[0] = '\0';
  for (size_t i = 0; i < total; i++) {
    const char *sep = i == 0 ? "" : i + 1 == total ? " or " : ", ";
    const char *item = i < n ? names[i] : extra;
    int w = snprintf(buf + used, len - used, "%s%s", sep, item);
    if (w < 0 || (size_t)w >= len - used)
      return;
    used += (size_t)w;
  }
}

static int name_index(const char *const *names, const char *v) {
  for (int i = 0; names[i] != NULL; i++)
    if (strcmp(names[i], v) == 0)
      return i;
  return -1;
}

/* Resolve a user or group name to its id with the reentrant lookups (a
 * SIGHUP reload may run beside threads that look names up too). Returns 0,
 * -ENOENT when there is no such name, or another -errno. */
static int lookup_name(int group, const char *name, unsigned *id) {
  long hint = sysconf(group ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
  size_t size = hint > 0 ? (size_t)hint : 1024;
  char *buf = NULL;
  int r;

  for (;;) {
    char *bigger = realloc(buf, size);
    if (bigger == NULL) {
      r = -ENOMEM;
      goto out;
    }
    buf = bigger;
    if (group) {
      struct group gr, *res = NULL;
      r = getgrnam_r(name, &gr, buf, size, &res);
      if (r == 0 && res != NULL)
        *id = (unsigned)res->gr_gid;
      else if (r == 0)
        r = ENOENT;
    } else {
      struct passwd pw, *res = NULL;
      r = getpwnam_r(name, &pw, buf, size, &res);
      if (r == 0 && res != NULL)
        *id = (unsigned)res->pw_uid;
      else if (r == 0)
        r = ENOENT;
    }
    /* A group with many members needs a bigger buffer than sysconf says. */
    if (r != ERANGE || size >= LOOKUP_BUF_MAX)
      break;
    size *= 2;
  }
  /* getpwnam_r(3): these also mean "not found" on some NSS back ends. */
  if (r == ESRCH || r == EBADF || r == EPERM)
    r = ENOENT;
  r = -r;
out:
  free(buf);
  return r;
}

/* One list entry or socket_group: a decimal id, or a name to look up. */
static int parse_id(int group, const char *s, unsigned *id, char *why,
                    size_t wl) {
  const char *what = group ? "group" : "user";
  const char *p = s;
  uint64_t v;
  int r;

  if (read_digits(&p, &v) > 0 && *p == '\0') {
    if (v > ID_MAX) {
      snprintf(why, wl, "id %s out of range (0 to %lu)", s, ID_MAX);
      return -EINVAL;
    }
    *id = (unsigned)v;
    return 0;
  }
  r = lookup_name(group, s, id);
  if (r == -ENOENT)
    snprintf(why, wl, "unknown %s \"%s\"", what, s);
  else if (r < 0)
    snprintf(why, wl, "cannot look up %s \"%s\": %s", what, s, strerror(-r));
  return r < 0 ? -EINVAL : 0;
}

/* "", "*", or up to CONFIG_LIST_MAX comma-separated names or ids. */
static int parse_idlist(int group, const char *v, struct idlist *out, char *why,
                        size_t wl) {
  struct idlist l;
  const char *p = v;
  size_t used = 0;

  memset(&l, 0, sizeof(l));
  while (isspace((unsigned char)*p))
    p++;
  if (*p == '\0')
    goto done;
  for (;;) {
    const char *end = strchr(p, ',');
    const char *stop = end != NULL ? end : p + strlen(p);
    char item[CONFIG_LINE_MAX + 1];
    size_t n;

    while (p < stop && isspace((unsigned char)*p))
      p++;
    while (stop > p && isspace((unsigned char)stop[-1]))
      stop--;
    n = (size_t)(stop - p);
    if (n == 0) {
      snprintf(why, wl, "empty entry in list");
      return -EINVAL;
    }
    if (n >= sizeof(item) || used + n + 2 > sizeof(l.text)) {
      snprintf(why, wl, "list longer than %d bytes", CONFIG_LINE_MAX);
      return -EINVAL;
    }
    memcpy(item, p, n);
    item[n] = '\0';
    if (strcmp(item, "*") == 0) {
      if (l.n > 0 || end != NULL) {
        snprintf(why, wl, "\"*\" must stand alone");
        return -EINVAL;
      }
      memset(&l, 0, sizeof(l));
      l.all = 1;
      goto done;
    }
    if (l.n == CONFIG_LIST_MAX) {
      snprintf(why, wl, "more than %d entries", CONFIG_LIST_MAX);
      return -EINVAL;
    }
    if (parse_id(group, item, &l.ids[l.n], why, wl) < 0)
      return -EINVAL;
    l.n++;
    /* Joined with a bare comma so the printed list is never longer than
     * the line it came from (and so still fits CONFIG_LINE_MAX). */
    if (used > 0)
      l.text[used++] = ',';
    memcpy(l.text + used, item, n + 1);
    used += n;
    if (end == NULL)
      break;
    p = end + 1;
  }
done:
  *out = l;
  return 0;
}

static int parse_duration(const struct key *k, const char *v, unsigned *out,
                          char *why, size_t wl) {
  const char *p = v;
  uint64_t n, mult;

  if (read_digits(&p, &n) == 0) {
    snprintf(why, wl,
             "must be a duration such as 10 (seconds), 250ms, 10s or 2m");
    return -EINVAL;
  }
  if (*p == '\0' || strcmp(p, "s") == 0)
    mult = 1000;
  else if (strcmp(p, "ms") == 0)
    mult = 1;
  else if (strcmp(p, "m") == 0)
    mult = 60 * 1000;
  else {
    snprintf(why, wl, "unknown unit \"%s\" (use ms, s or m)", p);
    return -EINVAL;
  }
  n = n > UINT64_MAX / mult ? UINT64_MAX : n * mult;
  if (n < k->min || n > k->max) {
    /* 24 hours is written 1440m: this message names only loadable values. */
    snprintf(why, wl, "must be from 1ms to 1440m (24 hours)");
    return -EINVAL;
  }
  *out = (unsigned)n;
  return 0;
}

/* Parse v as the value of k into c. Returns 0, or -EINVAL with why set. */
static int set_value(struct config *c, const struct key *k, const char *v,
                     char *why, size_t wl) {
  char list[REASON_MAX];
  const char *p = v;
  uint64_t n;
  int i;

  switch (k->type) {
  case KT_PATH:
    if (v[0] != '/') {
      snprintf(why, wl, "must be an absolute path");
      return -EINVAL;
    }
    if (strlen(v) >= k->size) {
      snprintf(why, wl, "longer than %zu bytes%s", k->size - 1,
               k->note != NULL ? k->note : "");
      return -EINVAL;
    }
    strcpy(field(c, k), v);
    return 0;

  case KT_MODE:
    n = 0;
    while (*p >= '0' && *p <= '7' && n <= 0777)
      n = n * 8 + (uint64_t)(*p++ - '0');
    if (p == v || *p != '\0' || n > 0777) {
      snprintf(why, wl, "must be an octal mode from 0000 to 0777");
      return -EINVAL;
    }
    *(unsigned *)field(c, k) = (unsigned)n;
    return 0;

  case KT_GROUP: {
    unsigned id = 0;
    if (strlen(v) >= k->size) {
      snprintf(why, wl, "longer than %zu bytes", k->size - 1);
      return -EINVAL;
    }
    if (v[0] != '\0' && parse_id(1, v, &id, why, wl) < 0)
      return -EINVAL;
    strcpy(field(c, k), v);
    *(gid_t *)((char *)c + k->aux) = v[0] != '\0' ? (gid_t)id : (gid_t)-1;
    return 0;
  }

  case KT_UINT:
    if (read_digits(&p, &n) == 0 || *p != '\0' || n < k->min || n > k->max) {
      snprintf(why, wl, "must be a number from %lu to %lu", k->min, k->max);
      return -EINVAL;
    }
    *(unsigned *)field(c, k) = (unsigned)n;
    return 0;

  case KT_DURATION:
    return parse_duration(k, v, field(c, k), why, wl);

  case KT_USERS:
  case KT_GROUPS:
    return parse_idlist(k->type == KT_GROUPS, v, field(c, k), why, wl);

  case KT_BOOL:
    if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
        strcmp(v, "on") == 0 || strcmp(v, "1") == 0)
      i = 1;
    else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 ||
             strcmp(v, "off") == 0 || strcmp(v, "0") == 0)
      i = 0;
    else {
      snprintf(why, wl, "must be yes or no (or true/false, on/off, 1/0)");
      return -EINVAL;
    }
    *(int *)field(c, k) = i;
    return 0;

  case KT_ENUM:
  case KT_WORD:
  case KT_LOGDEST:
    i = name_index(k->names, v);
    if (i < 0 && !(k->type == KT_LOGDEST && v[0] == '/')) {
      join_names(k->names, k->type == KT_LOGDEST ? "an absolute path" : NULL,
                 list, sizeof(list));
      snprintf(why, wl, "must be %s", list);
      return -EINVAL;
    }
    if (k->type == KT_ENUM) {
      unsigned u = (unsigned)i;
      memcpy(field(c, k), &u, sizeof(u));
      return 0;
    }
    if (strlen(v) >= k->size) {
      snprintf(why, wl, "longer than %zu bytes", k->size - 1);
      return -EINVAL;
    }
    strcpy(field(c, k), v);
    return 0;
  }
  snprintf(why, wl, "internal error: unknown key type");
  return -EINVAL;
}

/* Write k's value in c as the ini text that parses back to it. */
static void format_value(const struct config *c, const struct key *k, char *buf,
                         size_t len) {
  const void *f = cfield(c, k);
  unsigned u;

  buf[0] = '\0';
  switch (k->type) {
  case KT_PATH:
  case KT_GROUP:
  case KT_WORD:
  case KT_LOGDEST:
    snprintf(buf, len, "%s", (const char *)f);
    break;
  case KT_MODE:
    snprintf(buf, len, "%04o", *(const unsigned *)f);
    break;
  case KT_UINT:
    snprintf(buf, len, "%u", *(const unsigned *)f);
    break;
  case KT_DURATION:
    /* Whole seconds as seconds, as config/pipefiled.ini writes them. */
    u = *(const unsigned *)f;
    if (u % 1000 == 0)
      snprintf(buf, len, "%us", u / 1000);
    else
      snprintf(buf, len, "%ums", u);
    break;
  case KT_USERS:
  case KT_GROUPS: {
    const struct idlist *l = f;
    size_t used = 0;
    if (l->all)
      snprintf(buf, len, "*");
    else if (l->text[0] != '\0')
      snprintf(buf, len, "%s", l->text);
    else /* filled in by code, not parsed: print the ids */
      for (unsigned i = 0; i < l->n && used < len; i++) {
        int w =
            snprintf(buf + used, len - used, "%s%u", i ? "," : "", l->ids[i]);
        if (w < 0)
          break;
        used += (size_t)w;
      }
    break;
  }
  case KT_BOOL:
    snprintf(buf, len, "%s", *(const int *)f ? "yes" : "no");
    break;
  case KT_ENUM: {
    size_t n = 0;
    memcpy(&u, f, sizeof(u));
    while (k->names[n] != NULL)
      n++;
    snprintf(buf, len, "%s", u < n ? k->names[u] : "?");
    break;
  }
  }
}

static const struct key *key_find(const char *section, const char *name) {
  for (size_t i = 0; i < NKEYS; i++)
    if ((section == NULL || strcmp(keys[i].section, section) == 0) &&
        strcmp(keys[i].name, name) == 0)
      return &keys[i];
  return NULL;
}

static int section_known(const char *section) {
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(keys[i].section, section) == 0)
      return 1;
  return 0;
}

/* ---- line reader and key handler -------------------------------------- */

struct parse {
  struct config *c;
  const char *name;     /* file name for messages */
  const char *text;     /* the whole file */
  size_t len, pos;      /* its size; where the next line starts */
  unsigned line;        /* number of the line inih is working on */
  unsigned key_line;    /* line of the last "key = value" since a
                           section header, 0 if none: inih reads an
                           indented line after it as its continuation */
  int cont;             /* the current line is such a continuation */
  unsigned seen[NKEYS]; /* line each key was set on, 0 = not yet */
  char section[CONFIG_LINE_MAX + 1]; /* current section as inih sees it */
  int failed;                        /* err holds the first error */
  char *err;
  size_t errlen;
};

/* Record the first error as "NAME:LINE: [section] key: reason", leaving out
 * the parts that are NULL. Later errors are dropped. */
__attribute__((format(printf, 5, 6))) static void
fail(struct parse *p, unsigned line, const char *section, const char *key,
     const char *fmt, ...) {
  char reason[REASON_MAX];
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
      return -EINVAL;
    }
    memcpy(p->section, t + 1, (size_t)(x - t - 1));
    p->section[x - t - 1] = '\0';
    p->key_line = 0;
    if (!section_known(p->section)) {
      fail(p, p->line, p->section, NULL, "unknown section");
      return -EINVAL;
    }
    /* inih ignores whatever follows the ']', so "[server] workers = 8" (or
     * a file with '\r' line ends) would lose settings without a word. */
    for (x++; x < e && isspace((unsigned char)*x); x++)
      ;
    if (x < e && *x != ';' && *x != '#') {
      fail(p, p->line, p->section, NULL, "text after \"]\"");
      return -EINVAL;
    }
    return 0;
  }
  x = scan(t, e, "=:");
  if (x == e || (*x != '=' && *x != ':')) {
    fail(p, p->line, p->section[0] != '\0' ? p->section : NULL, NULL,
         "expected \"key = value\"");
    return -EINVAL;
  }
  while (x > t && isspace((unsigned char)x[-1]))
    x--;
  if (x == t) {
    fail(p, p->line, p->section[0] != '\0' ? p->section : NULL, NULL,
         "missing key name before \"=\"");
    return -EINVAL;
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
  if (n > CONFIG_LINE_MAX || n + 1 > (size_t)size) {
    snprintf(reason, sizeof(reason), "line longer than %d bytes",
             CONFIG_LINE_MAX);
    fail_line(p, s, n, reason);
    return NULL;
  }
  if (classify(p, s, n) < 0)
    return NULL;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return buf;
}

/* inih's handler: one "key = value" (or a continuation line, which inih
 * passes as the previous key again). Returns 1 to go on, 0 on error. */
static int on_key(void *user, const char *section, const char *name,
                  const char *value) {
  struct parse *p = user;
  const struct key *k;
  char why[REASON_MAX];
  size_t i;

  if (p->failed)
    return 0;
  if (section[0] == '\0') {
    k = key_find(NULL, name);
    if (k != NULL)
      fail(p, p->line, NULL, name,
           "key outside any section (it belongs in [%s])", k->section);
    else
      fail(p, p->line, NULL, name, "key outside any section");
    return 0;
  }
  k = key_find(section, name);
  if (k == NULL) {
    k = key_find(NULL, name);
    if (k != NULL)
      fail(p, p->line, section, name, "unknown key (it belongs in [%s])",
           k->section);
    else
      fail(p, p->line, section, name, "unknown key");
    return 0;
  }
  if (p->cont) {
    fail(p, p->line, section, name,
         "indented line continues the value from line %u; "
         "a value must be on one line",
         p->key_line);
    return 0;
  }
  i = (size_t)(k - keys);
  if (p->seen[i] != 0) {
    fail(p, p->line, section, name, "given twice (first on line %u)",
         p->seen[i]);
    return 0;
  }
  p->seen[i] = p->line;
  if (set_value(p->c, k, value, why, sizeof(why)) < 0) {
    fail(p, p->line, section, name, "%s", why);
    return 0;
  }
  return 1;
}

static int parse_text(struct config *c, const char *name, const char *text,
                      size_t len, char *err, size_t errlen) {
  struct parse p;
  int r;

  memset(&p, 0, sizeof(p));
  p.c = c;
  p.name = name;
  p.text = text;
  p.len = len;
  p.err = err;
  p.errlen = errlen;
  if (errlen > 0)
    err[0] = '\0';
  config_defaults(c);
  r = ini_parse_stream(read_line, &p, on_key, &p);
  /* read_line and on_key reject every line inih would; this catches any
   * inih rule they do not know of, so it cannot pass silently. */
  if (r != 0 && !p.failed)
    fail(&p, r > 0 ? (unsigned)r : p.line, NULL, NULL, "cannot parse line");
  /* Rules that span keys. max_connections_per_user, when not given,
   * follows max_connections: one user may take a quarter of them. */
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(keys[i].name, "max_connections_per_user") == 0 &&
        p.seen[i] == 0)
      c->max_connections_per_user =
          c->max_connections >= 4 ? c->max_connections / 4 : 1;
  /* Where root was set, so that a root that cannot be opened at start-up
   * is reported at its line like any other bad value. */
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(keys[i].name, "root") == 0)
      c->root_line = p.seen[i];
  return p.failed ? -EINVAL : 0;
}

/* ---- public API -------------------------------------------------------- */

void config_defaults(struct config *c) {
  char why[REASON_MAX];

  memset(c, 0, sizeof(*c));
  for (size_t i = 0; i < NKEYS; i++)
    if (set_value(c, &keys[i], keys[i].def, why, sizeof(why)) < 0)
      abort(); /* a bad built-in default: a bug the unit tests catch */
}

int config_parse(struct config *c, const char *name, const char *text,
                 char *err, size_t errlen) {
  return parse_text(c, name, text, strlen(text), err, errlen);
}

int config_load(struct config *c, const char *path, char *err, size_t errlen) {
  char *buf = NULL;
  size_t n = 0;
  int fd = -1, r, io = 1; /* io: r is a read error, not a parse error */

  config_defaults(c);
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    r = -errno;
    goto out;
  }
  /* One byte more than allowed tells a file at the limit from a bigger one. */
  buf = malloc(CONFIG_FILE_MAX + 1);
  if (buf == NULL) {
    r = -ENOMEM;
    goto out;
  }
  while (n <= CONFIG_FILE_MAX) {
    ssize_t got = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      r = -errno;
      goto out;
    }
    if (got == 0)
      break;
    n += (size_t)got;
  }
  if (n > CONFIG_FILE_MAX) {
    r = -EFBIG;
    goto out;
  }
  io = 0;
  r = parse_text(c, path, buf, n, err, errlen);

out:
  if (r < 0 && io && errlen > 0) {
    if (r == -EFBIG)
      snprintf(err, errlen, "%s: cannot read: larger than 1 MiB", path);
    else
      snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-r));
  }
  free(buf);
  if (fd >= 0)
    close(fd);
  return r;
}

void config_print(const struct config *c, FILE *out) {
  const char *section = NULL;
  char value[VALUE_MAX];

  fprintf(out, "; pipefiled: effective configuration\n");
  for (size_t i = 0; i < NKEYS; i++) {
    const struct key *k = &keys[i];
    size_t width;

    if (section == NULL || strcmp(section, k->section) != 0) {
      section = k->section;
      fprintf(out, "%s[%s]\n", i > 0 ? "\n" : "", section);
    }
    format_value(c, k, value, sizeof(value));
    width = strlen(k->name) + 3 + strlen(value);
    if (value[0] == '\0')
      fprintf(out, "%s =\n", k->name);
    else if (width <= CONFIG_LINE_MAX)
      fprintf(out, "%s = %s\n", k->name, value);
    else /* a value that filled its line fits back only without spaces */
      fprintf(out, "%s=%s\n", k->name, value);
  }
}

void config_keep_restart_keys(const struct config *running,
                              struct config *next) {
  for (size_t i = 0; i < NKEYS; i++) {
    const struct key *k = &keys[i];
    if (!k->restart)
      continue;
    memcpy((char *)next + k->off, (const char *)running + k->off, k->size);
    if (k->type == KT_GROUP) /* and the gid resolved from it */
      memcpy((char *)next + k->aux, (const char *)running + k->aux,
             sizeof(gid_t));
  }
}

void config_restart_keys(const struct config *a, const struct config *b,
                         char *buf, size_t len) {
  char va[VALUE_MAX], vb[VALUE_MAX];
  size_t used = 0;

  if (len == 0)
    return;
  buf[0] = '\0';
  for (size_t i = 0; i < NKEYS; i++) {
    const struct key *k = &keys[i];
    int same;

    if (!k->restart)
      continue;
    if (k->type == KT_GROUP) /* "0" and "root" are the same group */
      same = *(const gid_t *)((const char *)a + k->aux) ==
             *(const gid_t *)((const char *)b + k->aux);
    else {
      format_value(a, k, va, sizeof(va));
      format_value(b, k, vb, sizeof(vb));
      same = strcmp(va, vb) == 0;
    }
    if (!same && used < len) {
      int w =
          snprintf(buf + used, len - used, "%s%s", used ? ", " : "", k->name);
      if (w > 0)
        used += (size_t)w;
    }
  }
}

int idlist_has(const struct idlist *l, unsigned id) {
  if (l->all)
    return 1;
  for (unsigned i = 0; i < l->n; i++)
    if (l->ids[i] == id)
      return 1;
  return 0;
}
