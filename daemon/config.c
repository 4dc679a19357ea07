/* config.c - the one table of settings (keys[]): parsing, defaults, printing
 * and restart rules all walk it; see config.h.
 *
 * Map of this file:
 *   value parsers   one per key type; each fills a field or explains why not
 *   keys[]          every setting: section, name, type, bounds, default
 *   key handler     ini_strict.h's callback: unknown, duplicate, bad keys
 *   public API      config_defaults/parse/load/print/restart_keys
 * The lines themselves are read by ini_strict.c; user and group names are
 * looked up through identity.h. */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "identity.h"
#include "ini_strict.h"
#include "syserr.h"

_Static_assert(IDLIST_TEXT_MAX == CONFIG_LINE_MAX,
               "an id list is written on one ini line");
#define CONFIG_FILE_MAX (1024 * 1024) /* config_load refuses larger files */
#define DURATION_MIN_MS 1ul
#define DURATION_MAX_MS (24ul * 60 * 60 * 1000)
#define ID_MAX 4294967294ul /* (uid_t)-1 means "no change" to the kernel */
#define REASON_MAX INI_STRICT_REASON_MAX
#define VALUE_MAX (CONFIG_PATH_MAX + 16) /* one printed value */

/* A line the reader accepts fits an idlist's text. */
_Static_assert(CONFIG_LINE_MAX == INI_STRICT_LINE_MAX, "line limit");

/* Enum fields are written through an unsigned; both must be the same size. */
_Static_assert(sizeof(enum log_level) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum access_format) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum log_full) == sizeof(unsigned), "enum size");

enum key_type {
  KT_PATH,     /* absolute path, shorter than the field */
  KT_TEXT,     /* any text shorter than the field (checked where used) */
  KT_MODE,     /* octal permission bits, 0000..0777 */
  KT_GROUP,    /* one group name or gid, "" = none; gid goes to aux */
  KT_UINT,     /* decimal number in min..max */
  KT_DURATION, /* "10" (s), "250ms", "10s", "2m" -> ms in min..max */
  KT_SIZE,     /* "65536", "512K", "4M" -> bytes in min..max */
  KT_USERS,    /* struct idlist of user names or uids */
  KT_GROUPS,   /* struct idlist of group names or gids */
  KT_BOOL,     /* yes/no, true/false, on/off, 1/0 */
  KT_ENUM,     /* one of names[], stored as its index in an enum field */
  KT_WORD,     /* one of names[], stored as the string */
  KT_LOGDEST,  /* one of names[] or an absolute path, stored as the string */
  KT_NAME,     /* "" or letters, digits, '.', '_', '-', shorter than the
                  field: a name that is one path component anywhere */
};

struct key {
  const char *section;
  const char *name;
  enum key_type type;
  size_t off;               /* the field in struct config */
  size_t size;              /* of that field: bounds string fields */
  size_t aux;               /* KT_GROUP: the field for the resolved gid */
  unsigned long min, max;   /* KT_UINT, KT_DURATION (ms), KT_SIZE */
  const char *const *names; /* KT_ENUM, KT_WORD, KT_LOGDEST */
  const char *def;          /* the default, written as in the ini file */
  const char *note;         /* KT_PATH: why the length limit is what it is */
  int restart;              /* a change takes effect only on restart */
  int os;                   /* CONFIG_OS_*: one platform's key; 0: all */
  int auto_ok;              /* KT_UINT: "auto" is also a value, stored as 0
                               (min is at least 1) */
};

static const char *const format_names[] = {
    [ACCESS_TEXT] = "text", [ACCESS_JSON] = "json", [ACCESS_JSON + 1] = NULL};
static const char *const level_names[] = {[LOG_LVL_ERROR] = "error",
                                          [LOG_LVL_WARNING] = "warning",
                                          [LOG_LVL_INFO] = "info",
                                          [LOG_LVL_DEBUG] = "debug",
                                          [LOG_LVL_DEBUG + 1] = NULL};
static const char *const log_full_names[] = {[LOG_FULL_BLOCK] = "block",
                                             [LOG_FULL_DROP] = "drop",
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
     .def = CONFIG_DEFAULT_SOCKET, .note = CONFIG_SOCKET_NOTE, .restart = 1},
    {"server", "socket_mode", .type = KT_MODE, FIELD(socket_mode),
     .def = "0666", .restart = 1, .os = CONFIG_OS_LINUX},
    {"server", "socket_group", .type = KT_GROUP, FIELD(socket_group),
     .aux = offsetof(struct config, socket_gid), .def = "", .restart = 1,
     .os = CONFIG_OS_LINUX},
    {"server", "pipe_sddl", .type = KT_TEXT, FIELD(pipe_sddl),
     .def = CONFIG_DEFAULT_SDDL, .restart = 1, .os = CONFIG_OS_WIN},
    {"server", "remote_clients", .type = KT_BOOL, FIELD(remote_clients),
     .def = "no", .restart = 1, .os = CONFIG_OS_WIN},
    {"server", "root", .type = KT_PATH, FIELD(root),
     .def = CONFIG_DEFAULT_ROOT},
    {"server", "workers", .type = KT_UINT, FIELD(workers), .min = 1, .max = 256,
     .def = "auto", .auto_ok = 1, .restart = 1},
    {"server", "max_connections", .type = KT_UINT, FIELD(max_connections),
     .min = 1, .max = 1000000, .def = CONFIG_DEFAULT_MAX_CONNECTIONS},
    /* Unset, it is a quarter of max_connections (parse_text). */
    {"server", "max_connections_per_user", .type = KT_UINT,
     FIELD(max_connections_per_user), .min = 0, .max = 1000000,
     .def = CONFIG_DEFAULT_MAX_PER_USER},
    {"server", "strict_modes", .type = KT_BOOL, FIELD(strict_modes),
     .def = "yes"},
    {"server", "request_timeout", DURATION(request_timeout_ms, "10s")},
    {"server", "idle_timeout", DURATION(idle_timeout_ms, "60s")},
    {"server", "send_timeout", DURATION(send_timeout_ms, "30s")},
    {"server", "shutdown_timeout", DURATION(shutdown_timeout_ms, "10s")},
    /* Asked of the kernel for a connection about to send a large body;
     * net.core.wmem_max caps what it grants (socket(7)). */
    {"server", "send_buffer", .type = KT_SIZE, FIELD(send_buffer), .min = 0,
     .max = CONFIG_SEND_BUFFER_MAX, .def = "4M", .os = CONFIG_OS_LINUX},
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
    {"compat", "pipe_name", .type = KT_NAME, FIELD(compat_pipe_name), .def = "",
     .restart = 1},
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

/* One list entry or socket_group: a decimal id, or a name to look up. */
static int parse_id(int group, const char *s, unsigned *id, char *why,
                    size_t wl) {
  const char *what = group ? "group" : "user";
  const char *p = s;
  uint64_t v;
  int r;

  if (CONFIG_NUMERIC_IDS && read_digits(&p, &v) > 0 && *p == '\0') {
    if (v > ID_MAX) {
      snprintf(why, wl, "id %s out of range (0 to %lu)", s, ID_MAX);
      return UV_EINVAL;
    }
    *id = (unsigned)v;
    return 0;
  }
  /* A SIGHUP reload may run beside threads that look names up too:
   * identity.h's lookups are reentrant. */
  r = group ? identity_group_id(s, id) : identity_user_id(s, id);
  if (r == UV_ENOENT)
    snprintf(why, wl, "unknown %s \"%s\"", what, s);
  else if (r < 0)
    snprintf(why, wl, "cannot look up %s \"%s\": %s", what, s, syserr_text(r));
  return r < 0 ? UV_EINVAL : 0;
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
      return UV_EINVAL;
    }
    if (n >= sizeof(item) || used + n + 2 > sizeof(l.text)) {
      snprintf(why, wl, "list longer than %d bytes", CONFIG_LINE_MAX);
      return UV_EINVAL;
    }
    memcpy(item, p, n);
    item[n] = '\0';
    if (strcmp(item, "*") == 0) {
      if (l.n > 0 || end != NULL) {
        snprintf(why, wl, "\"*\" must stand alone");
        return UV_EINVAL;
      }
      memset(&l, 0, sizeof(l));
      l.all = 1;
      goto done;
    }
    if (l.n == CONFIG_LIST_MAX) {
      snprintf(why, wl, "more than %d entries", CONFIG_LIST_MAX);
      return UV_EINVAL;
    }
    if (parse_id(group, item, &l.ids[l.n], why, wl) < 0)
      return UV_EINVAL;
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
    return UV_EINVAL;
  }
  if (*p == '\0' || strcmp(p, "s") == 0)
    mult = 1000;
  else if (strcmp(p, "ms") == 0)
    mult = 1;
  else if (strcmp(p, "m") == 0)
    mult = 60 * 1000;
  else {
    snprintf(why, wl, "unknown unit \"%s\" (use ms, s or m)", p);
    return UV_EINVAL;
  }
  n = n > UINT64_MAX / mult ? UINT64_MAX : n * mult;
  if (n < k->min || n > k->max) {
    /* 24 hours is written 1440m: this message names only loadable values. */
    snprintf(why, wl, "must be from 1ms to 1440m (24 hours)");
    return UV_EINVAL;
  }
  *out = (unsigned)n;
  return 0;
}

/* Parse v as the value of k into c. Returns 0, or UV_EINVAL with why set. */
static int set_value(struct config *c, const struct key *k, const char *v,
                     char *why, size_t wl) {
  char list[REASON_MAX];
  const char *p = v;
  uint64_t n;
  int i;

  switch (k->type) {
  case KT_TEXT:
    if (strlen(v) >= k->size) {
      snprintf(why, wl, "longer than %zu bytes", k->size - 1);
      return UV_EINVAL;
    }
    strcpy(field(c, k), v);
    return 0;

  case KT_PATH:
    if (!CONFIG_PATH_ABSOLUTE(v)) {
      snprintf(why, wl, "must be an absolute path");
      return UV_EINVAL;
    }
    if (strlen(v) >= k->size) {
      snprintf(why, wl, "longer than %zu bytes%s", k->size - 1,
               k->note != NULL ? k->note : "");
      return UV_EINVAL;
    }
    strcpy(field(c, k), v);
    return 0;

  case KT_MODE:
    n = 0;
    while (*p >= '0' && *p <= '7' && n <= 0777)
      n = n * 8 + (uint64_t)(*p++ - '0');
    if (p == v || *p != '\0' || n > 0777) {
      snprintf(why, wl, "must be an octal mode from 0000 to 0777");
      return UV_EINVAL;
    }
    *(unsigned *)field(c, k) = (unsigned)n;
    return 0;

  case KT_GROUP: {
    unsigned id = 0;
    if (strlen(v) >= k->size) {
      snprintf(why, wl, "longer than %zu bytes", k->size - 1);
      return UV_EINVAL;
    }
    if (v[0] != '\0' && parse_id(1, v, &id, why, wl) < 0)
      return UV_EINVAL;
    strcpy(field(c, k), v);
    *(unsigned *)((char *)c + k->aux) = v[0] != '\0' ? id : CONFIG_ID_NONE;
    return 0;
  }

  case KT_UINT:
    if (k->auto_ok && strcmp(v, "auto") == 0) {
      *(unsigned *)field(c, k) = 0;
      return 0;
    }
    if (read_digits(&p, &n) == 0 || *p != '\0' || n < k->min || n > k->max) {
      snprintf(why, wl, "must be a number from %lu to %lu%s", k->min, k->max,
               k->auto_ok ? ", or auto" : "");
      return UV_EINVAL;
    }
    *(unsigned *)field(c, k) = (unsigned)n;
    return 0;

  case KT_DURATION:
    return parse_duration(k, v, field(c, k), why, wl);

  case KT_SIZE:
    if (read_digits(&p, &n) == 0)
      n = UINT64_MAX;
    else if (*p == 'K' || *p == 'k')
      n = n > UINT64_MAX >> 10 ? UINT64_MAX : n << 10, p++;
    else if (*p == 'M' || *p == 'm')
      n = n > UINT64_MAX >> 20 ? UINT64_MAX : n << 20, p++;
    if (*p != '\0' || n < k->min || n > k->max) {
      snprintf(why, wl,
               "must be a size from %lu to %luM (bytes, or a number with K or "
               "M)",
               k->min, k->max >> 20);
      return UV_EINVAL;
    }
    *(unsigned *)field(c, k) = (unsigned)n;
    return 0;

  case KT_USERS:
  case KT_GROUPS:
    return parse_idlist(k->type == KT_GROUPS, v, field(c, k), why, wl);

  case KT_NAME:
    for (p = v; *p != '\0'; p++)
      if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
        break;
    if (*p != '\0' || strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
      snprintf(why, wl, "must be letters, digits, '.', '_' and '-' only");
      return UV_EINVAL;
    }
    if (strlen(v) >= k->size) {
      snprintf(why, wl, "longer than %zu bytes", k->size - 1);
      return UV_EINVAL;
    }
    strcpy(field(c, k), v);
    return 0;

  case KT_BOOL:
    if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
        strcmp(v, "on") == 0 || strcmp(v, "1") == 0)
      i = 1;
    else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 ||
             strcmp(v, "off") == 0 || strcmp(v, "0") == 0)
      i = 0;
    else {
      snprintf(why, wl, "must be yes or no (or true/false, on/off, 1/0)");
      return UV_EINVAL;
    }
    *(int *)field(c, k) = i;
    return 0;

  case KT_ENUM:
  case KT_WORD:
  case KT_LOGDEST:
    i = name_index(k->names, v);
    if (i < 0 && !(k->type == KT_LOGDEST && CONFIG_PATH_ABSOLUTE(v))) {
      join_names(k->names, k->type == KT_LOGDEST ? "an absolute path" : NULL,
                 list, sizeof(list));
      snprintf(why, wl, "must be %s", list);
      return UV_EINVAL;
    }
    if (k->type == KT_ENUM) {
      unsigned u = (unsigned)i;
      memcpy(field(c, k), &u, sizeof(u));
      return 0;
    }
    if (strlen(v) >= k->size) {
      snprintf(why, wl, "longer than %zu bytes", k->size - 1);
      return UV_EINVAL;
    }
    strcpy(field(c, k), v);
    return 0;
  }
  snprintf(why, wl, "internal error: unknown key type");
  return UV_EINVAL;
}

/* Write k's value in c as the ini text that parses back to it. */
static void format_value(const struct config *c, const struct key *k, char *buf,
                         size_t len) {
  const void *f = cfield(c, k);
  unsigned u;

  buf[0] = '\0';
  switch (k->type) {
  case KT_PATH:
  case KT_TEXT:
  case KT_GROUP:
  case KT_WORD:
  case KT_LOGDEST:
  case KT_NAME:
    snprintf(buf, len, "%s", (const char *)f);
    break;
  case KT_MODE:
    snprintf(buf, len, "%04o", *(const unsigned *)f);
    break;
  case KT_UINT:
    if (k->auto_ok && *(const unsigned *)f == 0)
      snprintf(buf, len, "auto");
    else
      snprintf(buf, len, "%u", *(const unsigned *)f);
    break;
  case KT_SIZE:
    u = *(const unsigned *)f;
    if (u != 0 && u % (1u << 20) == 0)
      snprintf(buf, len, "%uM", u >> 20);
    else if (u != 0 && u % (1u << 10) == 0)
      snprintf(buf, len, "%uK", u >> 10);
    else
      snprintf(buf, len, "%u", u);
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

/* ---- key handler -------------------------------------------------------- */

struct parse {
  struct config *c;
  unsigned seen[NKEYS]; /* line each key was set on, 0 = not yet */
};

static int section_known_cb(void *user, const char *section) {
  (void)user;
  return section_known(section);
}

/* ini_strict's handler: one "key = value". Unknown, misplaced, duplicate
 * and bad keys fail with a reason; ini_strict adds file, line, section and
 * key to it. */
static int on_key(void *user, unsigned line, const char *section,
                  const char *name, const char *value, char *why, size_t wl) {
  struct parse *p = user;
  const struct key *k;
  size_t i;

  if (section[0] == '\0') {
    k = key_find(NULL, name);
    if (k != NULL)
      snprintf(why, wl, "key outside any section (it belongs in [%s])",
               k->section);
    else
      snprintf(why, wl, "key outside any section");
    return UV_EINVAL;
  }
  k = key_find(section, name);
  if (k == NULL) {
    k = key_find(NULL, name);
    if (k != NULL)
      snprintf(why, wl, "unknown key (it belongs in [%s])", k->section);
    else
      snprintf(why, wl, "unknown key");
    return UV_EINVAL;
  }
  if (k->os != 0 && k->os != CONFIG_OS) {
    snprintf(why, wl, "a %s setting; this is %s",
             k->os == CONFIG_OS_WIN ? "Windows" : "Linux", CONFIG_OS_NAME);
    return UV_EINVAL;
  }
  i = (size_t)(k - keys);
  if (p->seen[i] != 0) {
    snprintf(why, wl, "given twice (first on line %u)", p->seen[i]);
    return UV_EINVAL;
  }
  p->seen[i] = line;
  return set_value(p->c, k, value, why, wl);
}

static int parse_text(struct config *c, const char *name, const char *text,
                      size_t len, char *err, size_t errlen) {
  struct parse p;
  const struct ini_strict_handler h = {
      .section_known = section_known_cb, .on_key = on_key, .user = &p};
  int r;

  memset(&p, 0, sizeof(p));
  p.c = c;
  config_defaults(c);
  r = ini_strict_parse(name, text, len, &h, err, errlen);
  /* Rules that span keys. max_connections_per_user, when not given,
   * follows max_connections: one user may take a quarter of them. */
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(keys[i].name, "max_connections_per_user") == 0 && p.seen[i] == 0)
      c->max_connections_per_user =
          c->max_connections >= 4 ? c->max_connections / 4 : 1;
  /* Where root was set, so that a root that cannot be opened at start-up
   * is reported at its line like any other bad value. */
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp(keys[i].name, "root") == 0)
      c->root_line = p.seen[i];
  return r;
}

/* ---- public API -------------------------------------------------------- */

void config_defaults(struct config *c) {
  char why[REASON_MAX];

  memset(c, 0, sizeof(*c));
  for (size_t i = 0; i < NKEYS; i++)
    if (set_value(c, &keys[i], keys[i].def, why, sizeof(why)) < 0)
      abort(); /* a bad built-in default: a bug the unit tests catch */
}

unsigned config_workers(const struct config *c) {
  unsigned n;

  if (c->workers != 0)
    return c->workers;
  n = uv_available_parallelism();
  if (n < CONFIG_AUTO_WORKERS_MIN)
    n = CONFIG_AUTO_WORKERS_MIN;
  return n > 256 ? 256 : n;
}

int config_parse(struct config *c, const char *name, const char *text,
                 char *err, size_t errlen) {
  return parse_text(c, name, text, strlen(text), err, errlen);
}

int config_load(struct config *c, const char *path, char *err, size_t errlen) {
  uv_fs_t req;
  char *buf = NULL;
  size_t n = 0;
  uv_file fd = -1;
  int r, io = 1; /* io: r is a read error, not a parse error */

  config_defaults(c);
  /* libuv's calls without a callback run at once, on this thread, and
   * open close-on-exec; the loop is not used. */
  r = uv_fs_open(NULL, &req, path, UV_FS_O_RDONLY | UV_FS_O_NOCTTY, 0, NULL);
  uv_fs_req_cleanup(&req);
  if (r < 0)
    goto out;
  fd = r;
  /* One byte more than allowed tells a file at the limit from a bigger one. */
  buf = malloc(CONFIG_FILE_MAX + 1);
  if (buf == NULL) {
    r = UV_ENOMEM;
    goto out;
  }
  while (n <= CONFIG_FILE_MAX) {
    uv_buf_t b = uv_buf_init(buf + n, (unsigned)(CONFIG_FILE_MAX + 1 - n));
    r = uv_fs_read(NULL, &req, fd, &b, 1, -1, NULL);
    uv_fs_req_cleanup(&req);
    if (r == UV_EINTR) /* libuv does not retry reads */
      continue;
    if (r < 0)
      goto out;
    if (r == 0)
      break;
    n += (size_t)r;
  }
  if (n > CONFIG_FILE_MAX) {
    r = UV_EFBIG;
    goto out;
  }
  io = 0;
  r = parse_text(c, path, buf, n, err, errlen);

out:
  if (r < 0 && io && errlen > 0) {
    if (r == UV_EFBIG)
      snprintf(err, errlen, "%s: cannot read: larger than 1 MiB", path);
    else
      snprintf(err, errlen, "%s: cannot read: %s", path, syserr_text(r));
  }
  free(buf);
  if (fd >= 0) {
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
  }
  return r;
}

int config_compat_path(const char *name, const char *tmpdir, char *out,
                       size_t len) {
  const char *dir = CONFIG_COMPAT_DIR_DEFAULT;
  size_t dlen;
  int n;

  if (CONFIG_COMPAT_DIR_FROM_ENV && tmpdir != NULL && tmpdir[0] != '\0')
    dir = tmpdir;
  dlen = strlen(dir);
  while (dlen > 0 && dir[dlen - 1] == '/')
    dlen--;
  n = snprintf(out, len, "%.*s%s%s", (int)dlen, dir, CONFIG_COMPAT_PREFIX,
               name);
  if (n < 0 || (size_t)n >= len || (size_t)n > ENDPOINT_PATH_MAX) {
    if (len > 0)
      out[0] = '\0';
    return UV_ENAMETOOLONG;
  }
  return 0;
}

void config_print(const struct config *c, FILE *out) {
  const char *section = NULL;
  char value[VALUE_MAX];

  fprintf(out, "; pipefiled: effective configuration\n");
  for (size_t i = 0; i < NKEYS; i++) {
    const struct key *k = &keys[i];
    size_t width;

    if (k->os != 0 && k->os != CONFIG_OS)
      continue; /* the other platform's: it would not load back */
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
             sizeof(unsigned));
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
      same = *(const unsigned *)((const char *)a + k->aux) ==
             *(const unsigned *)((const char *)b + k->aux);
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
