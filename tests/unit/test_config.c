/* test_config.c - config parsing: defaults, every key, every error message,
 * print -> parse round trip, and the shipped config/pipefiled.ini. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "config.h"
#include "ini_strict.h"

/* Names these tests rely on: "root" (uid 0, gid 0) and "daemon" (uid 1,
 * gid 1) exist on every Debian system; the nosuch names never do. */
#define NO_USER "nosuchuser_pf"
#define NO_GROUP "nosuchgroup_pf"

struct bad {
  const char *text; /* config text, parsed as "x.ini" */
  const char *want; /* the exact error */
};

static void expect_errors(const struct bad *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    struct config c;
    char err[CONFIG_ERR_MAX];
    int r = config_parse(&c, "x.ini", cases[i].text, err, sizeof(err));
    if (r != -EINVAL || strcmp(err, cases[i].want) != 0)
      print_error("case %zu: %s\n", i, cases[i].text);
    assert_int_equal(r, -EINVAL);
    assert_string_equal(err, cases[i].want);
  }
}

#define EXPECT_ERRORS(cases)                                                   \
  expect_errors(cases, sizeof(cases) / sizeof(*cases))

static void parse_ok(struct config *c, const char *text) {
  char err[CONFIG_ERR_MAX] = "";
  int r = config_parse(c, "x.ini", text, err, sizeof(err));
  if (r != 0)
    print_error("unexpected error: %s\n", err);
  assert_int_equal(r, 0);
}

/* config_print's output as a malloc'd string. */
static char *print_config(const struct config *c) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  config_print(c, f);
  assert_int_equal(fclose(f), 0);
  return buf;
}

/* Write len bytes to a new temp file; its path goes to path (64 bytes). */
static void write_temp(char *path, const char *data, size_t len) {
  strcpy(path, "/tmp/test_config_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  assert_int_equal(close(fd), 0);
}

/* ---- defaults and good values ----------------------------------------- */

static void test_defaults(void **state) {
  struct config c;
  (void)state;
  config_defaults(&c);
  assert_string_equal(c.socket, CONFIG_DEFAULT_SOCKET);
  assert_int_equal(c.socket_mode, 0666);
  assert_string_equal(c.socket_group, "");
  assert_int_equal(c.socket_gid, (gid_t)-1);
  assert_string_equal(c.root, CONFIG_DEFAULT_ROOT);
  /* workers = auto: one per CPU we may run on, at least 2, at most 256 */
  assert_int_equal(c.workers, 0);
  unsigned cpus = uv_available_parallelism();
  assert_int_equal(config_workers(&c), cpus < 2 ? 2 : cpus > 256 ? 256 : cpus);
  assert_int_equal(c.max_connections, 4096);
  assert_int_equal(c.request_timeout_ms, 10000);
  assert_int_equal(c.idle_timeout_ms, 60000);
  assert_int_equal(c.send_timeout_ms, 30000);
  assert_int_equal(c.shutdown_timeout_ms, 10000);
  assert_true(c.allow_users.all);
  assert_true(c.allow_groups.all);
  assert_false(c.deny_users.all);
  assert_int_equal(c.deny_users.n, 0);
  assert_false(c.deny_groups.all);
  assert_int_equal(c.deny_groups.n, 0);
  assert_int_equal(c.serve_root_clients, 0);
  assert_string_equal(c.access_log, "stderr");
  assert_int_equal(c.access_format, ACCESS_TEXT);
  assert_string_equal(c.error_log, "stderr");
  assert_int_equal(c.level, LOG_LVL_INFO);
}

static void test_empty_text_is_defaults(void **state) {
  struct config c, d;
  (void)state;
  parse_ok(&c, "");
  config_defaults(&d);
  char *a = print_config(&c), *b = print_config(&d);
  assert_string_equal(a, b);
  free(a);
  free(b);
  parse_ok(&c, "; only a comment\n\n# and another\n[server]\n[log]\n");
}

static void test_every_key(void **state) {
  struct config c;
  (void)state;
  parse_ok(&c, "[server]\n"
               "socket = /tmp/pf.sock\n"
               "socket_mode = 0660\n"
               "socket_group = daemon\n"
               "root = /srv/files\n"
               "workers = 256\n"
               "max_connections = 1000000\n"
               "request_timeout = 250ms\n"
               "idle_timeout = 2m\n"
               "send_timeout = 7\n"
               "shutdown_timeout = 1ms\n"
               "[identity]\n"
               "allow_users = root, daemon ,1000\n"
               "allow_groups = daemon,4242\n"
               "deny_users = 1001\n"
               "deny_groups = root\n"
               "serve_root_clients = yes\n"
               "[log]\n"
               "access_log = /var/log/pipefiled/access.log\n"
               "access_format = json\n"
               "error_log = syslog\n"
               "level = debug\n");
  assert_string_equal(c.socket, "/tmp/pf.sock");
  assert_int_equal(c.socket_mode, 0660);
  assert_string_equal(c.socket_group, "daemon");
  assert_int_equal(c.socket_gid, 1);
  assert_string_equal(c.root, "/srv/files");
  assert_int_equal(c.workers, 256);
  assert_int_equal(c.max_connections, 1000000);
  assert_int_equal(c.request_timeout_ms, 250);
  assert_int_equal(c.idle_timeout_ms, 120000);
  assert_int_equal(c.send_timeout_ms, 7000);
  assert_int_equal(c.shutdown_timeout_ms, 1);
  assert_false(c.allow_users.all);
  assert_int_equal(c.allow_users.n, 3);
  assert_int_equal(c.allow_users.ids[0], 0);
  assert_int_equal(c.allow_users.ids[1], 1);
  assert_int_equal(c.allow_users.ids[2], 1000);
  assert_string_equal(c.allow_users.text, "root,daemon,1000");
  assert_int_equal(c.allow_groups.n, 2);
  assert_int_equal(c.allow_groups.ids[0], 1);
  assert_int_equal(c.allow_groups.ids[1], 4242);
  assert_int_equal(c.deny_users.n, 1);
  assert_int_equal(c.deny_users.ids[0], 1001);
  assert_int_equal(c.deny_groups.n, 1);
  assert_int_equal(c.deny_groups.ids[0], 0);
  assert_int_equal(c.serve_root_clients, 1);
  assert_string_equal(c.access_log, "/var/log/pipefiled/access.log");
  assert_int_equal(c.access_format, ACCESS_JSON);
  assert_string_equal(c.error_log, "syslog");
  assert_int_equal(c.level, LOG_LVL_DEBUG);
}

static void test_value_forms(void **state) {
  struct config c;
  (void)state;
  /* Booleans in all their spellings. */
  const char *yes[] = {"yes", "true", "on", "1"};
  const char *no[] = {"no", "false", "off", "0"};
  char text[128];
  for (size_t i = 0; i < 4; i++) {
    snprintf(text, sizeof(text), "[identity]\nserve_root_clients = %s\n",
             yes[i]);
    parse_ok(&c, text);
    assert_int_equal(c.serve_root_clients, 1);
    snprintf(text, sizeof(text), "[identity]\nserve_root_clients = %s\n",
             no[i]);
    parse_ok(&c, text);
    assert_int_equal(c.serve_root_clients, 0);
  }
  /* workers: a number, or auto; a number is taken as it is. */
  parse_ok(&c, "[server]\nworkers = 3\n");
  assert_int_equal(config_workers(&c), 3);
  parse_ok(&c, "[server]\nworkers = 1\n");
  assert_int_equal(config_workers(&c), 1);
  parse_ok(&c, "[server]\nworkers = auto\n");
  assert_int_equal(c.workers, 0);
  assert_true(config_workers(&c) >= CONFIG_AUTO_WORKERS_MIN);
  char *printed = print_config(&c);
  assert_non_null(strstr(printed, "\nworkers = auto\n"));
  free(printed);
  /* Modes with and without the leading 0; the extremes. */
  parse_ok(&c, "[server]\nsocket_mode = 600\n");
  assert_int_equal(c.socket_mode, 0600);
  parse_ok(&c, "[server]\nsocket_mode = 0\n");
  assert_int_equal(c.socket_mode, 0);
  parse_ok(&c, "[server]\nsocket_mode = 0777\n");
  assert_int_equal(c.socket_mode, 0777);
  /* Duration bounds and units. */
  parse_ok(&c, "[server]\nidle_timeout = 1440m\nsend_timeout = 86400s\n"
               "request_timeout = 86400000ms\nshutdown_timeout = 86400\n");
  assert_int_equal(c.idle_timeout_ms, 86400000);
  assert_int_equal(c.send_timeout_ms, 86400000);
  assert_int_equal(c.request_timeout_ms, 86400000);
  assert_int_equal(c.shutdown_timeout_ms, 86400000);
  parse_ok(&c, "[server]\nworkers = 1\nmax_connections = 1\n");
  assert_int_equal(c.workers, 1);
  assert_int_equal(c.max_connections, 1);
  /* Lists: "*" alone, empty, numeric ids at the top of the range, names. */
  parse_ok(&c, "[identity]\nallow_users =\ndeny_users = *\n"
               "allow_groups = 4294967294\ndeny_groups = root, daemon\n");
  assert_false(c.allow_users.all);
  assert_int_equal(c.allow_users.n, 0);
  assert_true(c.deny_users.all);
  assert_int_equal(c.allow_groups.ids[0], 4294967294u);
  assert_int_equal(c.deny_groups.n, 2);
  /* A list of exactly CONFIG_LIST_MAX entries. */
  char list[512] = "[identity]\nallow_users = 0";
  for (int i = 1; i < CONFIG_LIST_MAX; i++)
    strcat(list, ",0");
  parse_ok(&c, list);
  assert_int_equal(c.allow_users.n, CONFIG_LIST_MAX);
  /* Numeric socket_group; the socket path at its limit. */
  parse_ok(&c, "[server]\nsocket_group = 4242\n");
  assert_int_equal(c.socket_gid, 4242);
  char sock[256] = "[server]\nsocket = /";
  for (int i = 1; i < CONFIG_SOCKET_MAX; i++)
    strcat(sock, "s");
  parse_ok(&c, sock);
  assert_int_equal(strlen(c.socket), CONFIG_SOCKET_MAX);
  /* access_log's words. */
  parse_ok(&c, "[log]\naccess_log = syslog\n");
  assert_string_equal(c.access_log, "syslog");
  parse_ok(&c, "[log]\naccess_log = off\nlevel = warning\n");
  assert_string_equal(c.access_log, "off");
  assert_int_equal(c.level, LOG_LVL_WARNING);
  parse_ok(&c, "[log]\nlevel = error\naccess_format = text\n");
  assert_int_equal(c.level, LOG_LVL_ERROR);
}

static void test_syntax_forms(void **state) {
  struct config c;
  (void)state;
  /* CRLF line ends, a BOM, inline comments, ':' for '=', no final '\n'. */
  parse_ok(&c, "\xEF\xBB\xBF[server]\r\nworkers = 8\r\n");
  assert_int_equal(c.workers, 8);
  parse_ok(&c, "[server] ; the server\nworkers = 9 ; nine\n  # indented "
               "comment\nroot: /srv/x");
  assert_int_equal(c.workers, 9);
  assert_string_equal(c.root, "/srv/x");
  /* A section may appear twice as long as no key does. */
  parse_ok(&c, "[server]\nworkers = 2\n[log]\nlevel = debug\n[server]\n"
               "root = /r\n");
  assert_int_equal(c.workers, 2);
  assert_string_equal(c.root, "/r");
  /* A line of exactly CONFIG_LINE_MAX bytes is fine. */
  char line[CONFIG_LINE_MAX + 16] = ";";
  while (strlen(line) < CONFIG_LINE_MAX)
    strcat(line, "x");
  strcat(line, "\n[server]\n");
  parse_ok(&c, line);
}

/* ---- every error message ------------------------------------------------ */

static void test_errors_server(void **state) {
  (void)state;
  static const struct bad cases[] = {
      {"[server]\nsocket = relative.sock\n",
       "x.ini:2: [server] socket: must be an absolute path"},
      {"[server]\nsocket =\n", "x.ini:2: [server] socket: must be an absolute "
                               "path"},
      {"[server]\nsocket_mode = 0778\n",
       "x.ini:2: [server] socket_mode: must be an octal mode from 0000 to "
       "0777"},
      {"[server]\nsocket_mode = 1777\n",
       "x.ini:2: [server] socket_mode: must be an octal mode from 0000 to "
       "0777"},
      {"[server]\nsocket_mode = rw-rw-rw-\n",
       "x.ini:2: [server] socket_mode: must be an octal mode from 0000 to "
       "0777"},
      {"[server]\nsocket_mode =\n",
       "x.ini:2: [server] socket_mode: must be an octal mode from 0000 to "
       "0777"},
      {"[server]\nsocket_group = " NO_GROUP "\n",
       "x.ini:2: [server] socket_group: unknown group \"" NO_GROUP "\""},
      {"[server]\nsocket_group = 4294967295\n",
       "x.ini:2: [server] socket_group: id 4294967295 out of range (0 to "
       "4294967294)"},
      {"[server]\nsocket_group = "
       "gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg\n",
       "x.ini:2: [server] socket_group: longer than 63 bytes"},
      {"[server]\nroot = srv/pipefiled\n",
       "x.ini:2: [server] root: must be an absolute path"},
      /* Windows' settings are refused on Linux, naming both platforms:
       * silently ignoring a pipe's security would be worse. */
      {"[server]\npipe_sddl = D:P(A;;GA;;;SY)\n",
       "x.ini:2: [server] pipe_sddl: a Windows setting; this is Linux"},
      {"[server]\nremote_clients = no\n",
       "x.ini:2: [server] remote_clients: a Windows setting; this is Linux"},
      /* A Windows path is not an absolute path here. */
      {"[server]\nroot = C:\\srv\n",
       "x.ini:2: [server] root: must be an absolute path"},
      {"[server]\nroot =\n", "x.ini:2: [server] root: must be an absolute "
                             "path"},
      {"[server]\nworkers = 0\n",
       "x.ini:2: [server] workers: must be a number from 1 to 256, or auto"},
      {"[server]\nworkers = 257\n",
       "x.ini:2: [server] workers: must be a number from 1 to 256, or auto"},
      {"[server]\nworkers = four\n",
       "x.ini:2: [server] workers: must be a number from 1 to 256, or auto"},
      {"[server]\nworkers = -1\n",
       "x.ini:2: [server] workers: must be a number from 1 to 256, or auto"},
      {"[server]\nworkers = +4\n",
       "x.ini:2: [server] workers: must be a number from 1 to 256, or auto"},
      {"[server]\nworkers = 4.0\n",
       "x.ini:2: [server] workers: must be a number from 1 to 256, or auto"},
      {"[server]\nworkers =\n",
       "x.ini:2: [server] workers: must be a number from 1 to 256, or auto"},
      {"[server]\nworkers = 18446744073709551617\n",
       "x.ini:2: [server] workers: must be a number from 1 to 256, or auto"},
      {"[server]\nmax_connections = 0\n",
       "x.ini:2: [server] max_connections: must be a number from 1 to 1000000"},
      {"[server]\nmax_connections = 1000001\n",
       "x.ini:2: [server] max_connections: must be a number from 1 to 1000000"},
  };
  EXPECT_ERRORS(cases);
}

static void test_errors_duration(void **state) {
  (void)state;
  static const struct bad cases[] = {
      {"[server]\nrequest_timeout = 0\n",
       "x.ini:2: [server] request_timeout: must be from 1ms to 1440m (24 "
       "hours)"},
      {"[server]\nidle_timeout = 0ms\n",
       "x.ini:2: [server] idle_timeout: must be from 1ms to 1440m (24 hours)"},
      {"[server]\nsend_timeout = 1441m\n",
       "x.ini:2: [server] send_timeout: must be from 1ms to 1440m (24 hours)"},
      {"[server]\nshutdown_timeout = 86401\n",
       "x.ini:2: [server] shutdown_timeout: must be from 1ms to 1440m (24 "
       "hours)"},
      {"[server]\nrequest_timeout = 86400001ms\n",
       "x.ini:2: [server] request_timeout: must be from 1ms to 1440m (24 "
       "hours)"},
      {"[server]\nrequest_timeout = 99999999999999999999m\n",
       "x.ini:2: [server] request_timeout: must be from 1ms to 1440m (24 "
       "hours)"},
      {"[server]\nrequest_timeout = 10x\n",
       "x.ini:2: [server] request_timeout: unknown unit \"x\" (use ms, s or "
       "m)"},
      {"[server]\nidle_timeout = 1h\n",
       "x.ini:2: [server] idle_timeout: unknown unit \"h\" (use ms, s or m)"},
      {"[server]\nsend_timeout = 5sec\n",
       "x.ini:2: [server] send_timeout: unknown unit \"sec\" (use ms, s or m)"},
      {"[server]\nshutdown_timeout = 10 s\n",
       "x.ini:2: [server] shutdown_timeout: unknown unit \" s\" (use ms, s or "
       "m)"},
      {"[server]\nrequest_timeout = 1.5s\n",
       "x.ini:2: [server] request_timeout: unknown unit \".5s\" (use ms, s or "
       "m)"},
      {"[server]\nrequest_timeout = s\n",
       "x.ini:2: [server] request_timeout: must be a duration such as 10 "
       "(seconds), 250ms, 10s or 2m"},
      {"[server]\nrequest_timeout = -1\n",
       "x.ini:2: [server] request_timeout: must be a duration such as 10 "
       "(seconds), 250ms, 10s or 2m"},
      {"[server]\nidle_timeout =\n",
       "x.ini:2: [server] idle_timeout: must be a duration such as 10 "
       "(seconds), 250ms, 10s or 2m"},
  };
  EXPECT_ERRORS(cases);
}

static void test_errors_identity(void **state) {
  (void)state;
  /* 65 entries, one more than CONFIG_LIST_MAX. */
  static char long_list[256];
  strcpy(long_list, "[identity]\ndeny_users = 1");
  for (int i = 1; i <= CONFIG_LIST_MAX; i++)
    strcat(long_list, ",1");
  static const struct bad cases[] = {
      {"[identity]\nallow_users = root," NO_USER "\n",
       "x.ini:2: [identity] allow_users: unknown user \"" NO_USER "\""},
      {"[identity]\nallow_groups = " NO_GROUP "\n",
       "x.ini:2: [identity] allow_groups: unknown group \"" NO_GROUP "\""},
      {"[identity]\ndeny_users = " NO_USER "\n",
       "x.ini:2: [identity] deny_users: unknown user \"" NO_USER "\""},
      {"[identity]\ndeny_groups = root, " NO_GROUP "\n",
       "x.ini:2: [identity] deny_groups: unknown group \"" NO_GROUP "\""},
      {"[identity]\nallow_users = root,,daemon\n",
       "x.ini:2: [identity] allow_users: empty entry in list"},
      {"[identity]\nallow_users = root,\n",
       "x.ini:2: [identity] allow_users: empty entry in list"},
      {"[identity]\nallow_groups = , root\n",
       "x.ini:2: [identity] allow_groups: empty entry in list"},
      {"[identity]\nallow_users = *, root\n",
       "x.ini:2: [identity] allow_users: \"*\" must stand alone"},
      {"[identity]\nallow_groups = root, *\n",
       "x.ini:2: [identity] allow_groups: \"*\" must stand alone"},
      {"[identity]\ndeny_users = 4294967295\n",
       "x.ini:2: [identity] deny_users: id 4294967295 out of range (0 to "
       "4294967294)"},
      {"[identity]\ndeny_groups = 99999999999999999999999\n",
       "x.ini:2: [identity] deny_groups: id 99999999999999999999999 out of "
       "range (0 to 4294967294)"},
      {long_list, "x.ini:2: [identity] deny_users: more than 64 entries"},
      {"[identity]\nserve_root_clients = maybe\n",
       "x.ini:2: [identity] serve_root_clients: must be yes or no (or "
       "true/false, on/off, 1/0)"},
      {"[identity]\nserve_root_clients =\n",
       "x.ini:2: [identity] serve_root_clients: must be yes or no (or "
       "true/false, on/off, 1/0)"},
  };
  EXPECT_ERRORS(cases);
}

static void test_errors_log(void **state) {
  (void)state;
  static const struct bad cases[] = {
      {"[log]\naccess_log = access.log\n",
       "x.ini:2: [log] access_log: must be stderr, syslog, off or an absolute "
       "path"},
      {"[log]\naccess_log =\n",
       "x.ini:2: [log] access_log: must be stderr, syslog, off or an absolute "
       "path"},
      {"[log]\naccess_format = xml\n",
       "x.ini:2: [log] access_format: must be text or json"},
      {"[log]\naccess_format = JSON\n",
       "x.ini:2: [log] access_format: must be text or json"},
      {"[log]\nerror_log = /var/log/pipefiled.log\n",
       "x.ini:2: [log] error_log: must be stderr or syslog"},
      {"[log]\nerror_log = off\n",
       "x.ini:2: [log] error_log: must be stderr or syslog"},
      {"[log]\nlevel = verbose\n",
       "x.ini:2: [log] level: must be error, warning, info or debug"},
  };
  EXPECT_ERRORS(cases);
}

static void test_errors_structure(void **state) {
  (void)state;
  static const struct bad cases[] = {
      {"[server]\nworkers = 4\n[bogus]\n", "x.ini:3: [bogus]: unknown section"},
      {"[server]\n\n[bogus]\nworkers = 4\n",
       "x.ini:3: [bogus]: unknown section"},
      {"[Server]\n", "x.ini:1: [Server]: unknown section"},
      {"[]\n", "x.ini:1: []: unknown section"},
      {"[server]\nworker = 4\n", "x.ini:2: [server] worker: unknown key"},
      {"[server]\nlevel = debug\n",
       "x.ini:2: [server] level: unknown key (it belongs in [log])"},
      {"[log]\nroot = /srv\n",
       "x.ini:2: [log] root: unknown key (it belongs in [server])"},
      {"workers = 4\n",
       "x.ini:1: workers: key outside any section (it belongs in [server])"},
      {"; comment\nbogus = 1\n", "x.ini:2: bogus: key outside any section"},
      {"[server]\nworkers = 4\nroot = /a\nworkers = 5\n",
       "x.ini:4: [server] workers: given twice (first on line 2)"},
      {"[server]\nworkers = 4\n[log]\nlevel = info\n[server]\nworkers = 4\n",
       "x.ini:6: [server] workers: given twice (first on line 2)"},
      {"[identity]\nallow_users = root,\n  daemon\n",
       "x.ini:2: [identity] allow_users: empty entry in list"},
      {"[identity]\nallow_users = root\n  daemon\n",
       "x.ini:3: [identity] allow_users: indented line continues the value "
       "from line 2; a value must be on one line"},
      {"[server]\nworkers = 4\n\n\t[log]\n",
       "x.ini:4: [server] workers: indented line continues the value from line "
       "2; a value must be on one line"},
      {"[server\nworkers = 4\n", "x.ini:1: missing \"]\" in section header"},
      {"[server ;]\n", "x.ini:1: missing \"]\" in section header"},
      {"[server] workers = 4\n", "x.ini:1: [server]: text after \"]\""},
      {"[server]\rworkers = 4\r", "x.ini:1: [server]: text after \"]\""},
      {"[server]\nworkers\n", "x.ini:2: [server]: expected \"key = value\""},
      {"[server]\nworkers ;= 4\n",
       "x.ini:2: [server]: expected \"key = value\""},
      {"oops\n", "x.ini:1: expected \"key = value\""},
      {"[server]\n= 4\n", "x.ini:2: [server]: missing key name before \"=\""},
      /* Only the first error is reported. */
      {"[server]\nworkers = 0\nbogus = 1\n[bogus]\n",
       "x.ini:2: [server] workers: must be a number from 1 to 256, or auto"},
  };
  EXPECT_ERRORS(cases);
}

static void test_errors_long_line(void **state) {
  (void)state;
  /* "workers = 4" padded with blanks to CONFIG_LINE_MAX + 1 bytes: inih
   * would read it whole but for its buffer, so it must be refused. */
  static char key_line[512], comment_line[512], first_line[512];
  snprintf(key_line, sizeof(key_line), "[server]\nworkers = 4%*s\n",
           CONFIG_LINE_MAX + 1 - 11, "");
  snprintf(comment_line, sizeof(comment_line), "[log]\n\n;%0*d\n",
           CONFIG_LINE_MAX, 0);
  snprintf(first_line, sizeof(first_line), "#%0*d\n[server]\n", CONFIG_LINE_MAX,
           0);
  /* A line too long for sun_path but not for the parser. */
  static char sock[256];
  strcpy(sock, "[server]\nsocket = /");
  for (int i = 0; i < CONFIG_SOCKET_MAX; i++)
    strcat(sock, "s");
  static const struct bad cases[] = {
      {key_line, "x.ini:2: [server] workers: line longer than 198 bytes"},
      {comment_line, "x.ini:3: [log]: line longer than 198 bytes"},
      {first_line, "x.ini:1: line longer than 198 bytes"},
      {sock, "x.ini:2: [server] socket: longer than 107 bytes (the limit for "
             "a Unix socket path)"},
  };
  assert_int_equal(strlen(key_line), 9 + CONFIG_LINE_MAX + 2);
  EXPECT_ERRORS(cases);
}

/* NUL bytes cannot be in a C string, so they come in through config_load. */
static void test_errors_nul_and_files(void **state) {
  struct config c;
  char path[64], err[CONFIG_ERR_MAX], want[CONFIG_ERR_MAX];
  (void)state;

  static const char nul_key[] = "[server]\nworkers = 4\0 8\n";
  write_temp(path, nul_key, sizeof(nul_key) - 1);
  assert_int_equal(config_load(&c, path, err, sizeof(err)), -EINVAL);
  snprintf(want, sizeof(want), "%s:2: [server] workers: NUL byte in line",
           path);
  assert_string_equal(err, want);
  unlink(path);

  static const char nul_comment[] = "[log]\n; a\0b\n";
  write_temp(path, nul_comment, sizeof(nul_comment) - 1);
  assert_int_equal(config_load(&c, path, err, sizeof(err)), -EINVAL);
  snprintf(want, sizeof(want), "%s:2: [log]: NUL byte in line", path);
  assert_string_equal(err, want);
  unlink(path);

  /* A good file loads. */
  static const char good[] = "[server]\nworkers = 3\n";
  write_temp(path, good, sizeof(good) - 1);
  assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
  assert_int_equal(c.workers, 3);
  unlink(path);

  /* Missing file, a directory, a file over 1 MiB. */
  assert_int_equal(config_load(&c, "/nonexistent/p.ini", err, sizeof(err)),
                   -ENOENT);
  assert_string_equal(err, "/nonexistent/p.ini: cannot read: No such file or "
                           "directory");
  assert_int_equal(config_load(&c, "/tmp", err, sizeof(err)), -EISDIR);
  assert_string_equal(err, "/tmp: cannot read: Is a directory");

  size_t big = 1024 * 1024 + 1;
  char *data = malloc(big);
  assert_non_null(data);
  for (size_t i = 0; i < big; i++)
    data[i] = (i % 64 == 63) ? '\n' : ';';
  write_temp(path, data, big);
  assert_int_equal(config_load(&c, path, err, sizeof(err)), -EFBIG);
  snprintf(want, sizeof(want), "%s: cannot read: larger than 1 MiB", path);
  assert_string_equal(err, want);
  unlink(path);
  /* Exactly 1 MiB is still read (and these are all comments). */
  write_temp(path, data, big - 1);
  assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
  unlink(path);
  free(data);
}

/* ---- printing, reloading, helpers ---------------------------------------- */

static const char full_config[] =
    "[server]\nsocket = /tmp/pf.sock\nsocket_mode = 0600\n"
    "socket_group = root\nroot = /srv/a;b\nworkers = 8\n"
    "max_connections = 10\nrequest_timeout = 1500ms\nidle_timeout = 120\n"
    "send_timeout = 3m\nshutdown_timeout = 2s\n"
    "[identity]\nallow_users = root , 1000,daemon\nallow_groups =\n"
    "deny_users = *\ndeny_groups = daemon\nserve_root_clients = on\n"
    "[log]\naccess_log = /var/log/a.log\naccess_format = json\n"
    "error_log = syslog\nlevel = warning\n";

static void test_round_trip(void **state) {
  struct config a, b, d;
  (void)state;
  parse_ok(&a, full_config);
  char *first = print_config(&a);
  parse_ok(&b, first);
  char *second = print_config(&b);
  assert_string_equal(first, second);
  /* The printed values are the effective ones, names as given. */
  assert_non_null(strstr(first, "\nallow_users = root,1000,daemon\n"));
  assert_non_null(strstr(first, "\nallow_groups =\n"));
  assert_non_null(strstr(first, "\ndeny_users = *\n"));
  assert_non_null(strstr(first, "\nsocket_group = root\n"));
  assert_non_null(strstr(first, "\nsocket_mode = 0600\n"));
  assert_non_null(strstr(first, "\nrequest_timeout = 1500ms\n"));
  assert_non_null(strstr(first, "\nidle_timeout = 120s\n"));
  assert_non_null(strstr(first, "\nsend_timeout = 180s\n"));
  assert_non_null(strstr(first, "\nshutdown_timeout = 2s\n"));
  assert_non_null(strstr(first, "\nserve_root_clients = yes\n"));
  assert_non_null(strstr(first, "\naccess_format = json\n"));
  assert_non_null(strstr(first, "\nlevel = warning\n"));
  assert_string_equal(b.root, "/srv/a;b");
  assert_int_equal(b.socket_gid, 0);
  assert_int_equal(b.allow_users.n, 3);
  assert_int_equal(b.allow_users.ids[2], 1);
  assert_int_equal(b.request_timeout_ms, 1500);
  free(first);
  free(second);

  /* Defaults print and load back as defaults. */
  config_defaults(&d);
  first = print_config(&d);
  assert_non_null(strstr(first, "\nsocket_group =\n"));
  parse_ok(&b, first);
  second = print_config(&b);
  assert_string_equal(first, second);
  free(first);
  free(second);
}

/* A list that fills its line still prints as a loadable line. */
static void test_round_trip_long_list(void **state) {
  struct config a, b;
  char text[512] = "[identity]\n";
  char *line = text + strlen(text);
  (void)state;
  strcat(line, "allow_users=");
  while (strlen(line) + strlen("1000000,") + 1 <= CONFIG_LINE_MAX)
    strcat(line, "1000000,");
  strcat(line, "1");
  /* Too long to print as "allow_users = ..." with its spaces. */
  assert_true(strlen(line) + 2 > CONFIG_LINE_MAX);
  parse_ok(&a, text);
  char *first = print_config(&a);
  parse_ok(&b, first);
  char *second = print_config(&b);
  assert_string_equal(first, second);
  assert_int_equal(b.allow_users.n, a.allow_users.n);
  free(first);
  free(second);
}

/* Lists filled in by code, not parsed, print as their ids. */
static void test_print_ids(void **state) {
  struct config c;
  (void)state;
  config_defaults(&c);
  c.deny_users.n = 2;
  c.deny_users.ids[0] = 7;
  c.deny_users.ids[1] = 9;
  char *s = print_config(&c);
  assert_non_null(strstr(s, "\ndeny_users = 7,9\n"));
  free(s);
}

static void test_example_file(void **state) {
  struct config file, d;
  char err[CONFIG_ERR_MAX] = "";
  (void)state;
  int r = config_load(&file, "config/pipefiled.ini", err, sizeof(err));
  if (r != 0)
    print_error("%s\n", err);
  assert_int_equal(r, 0);
  /* It documents the defaults, so it must load to exactly them. */
  config_defaults(&d);
  char *a = print_config(&file), *b = print_config(&d);
  assert_string_equal(a, b);
  free(a);
  free(b);
}

static void test_restart_keys(void **state) {
  struct config a, b;
  char buf[128];
  (void)state;
  config_defaults(&a);
  config_defaults(&b);
  config_restart_keys(&a, &b, buf, sizeof(buf));
  assert_string_equal(buf, "");
  /* Keys that apply on reload are not listed. */
  parse_ok(&b, "[server]\nroot = /x\nmax_connections = 5\nidle_timeout = 1\n"
               "[log]\nlevel = debug\n");
  config_restart_keys(&a, &b, buf, sizeof(buf));
  assert_string_equal(buf, "");
  parse_ok(&b, "[server]\nsocket = /tmp/x.sock\nsocket_mode = 0600\n"
               "socket_group = root\nworkers = 2\n");
  config_restart_keys(&a, &b, buf, sizeof(buf));
  assert_string_equal(buf, "socket, socket_mode, socket_group, workers");
  /* The same group by name or number is no change. */
  parse_ok(&a, "[server]\nsocket_group = 0\n");
  parse_ok(&b, "[server]\nsocket_group = root\n");
  config_restart_keys(&a, &b, buf, sizeof(buf));
  assert_string_equal(buf, "");
  /* A short buffer is cut, still terminated. */
  parse_ok(&b, "[server]\nsocket = /tmp/x.sock\nworkers = 2\n");
  config_restart_keys(&a, &b, buf, 8);
  assert_int_equal(strlen(buf), 7);
}

/* [compat] pipe_name: off by default, a name that is one path component,
 * a restart key; and the socket path .NET clients look for. */
static void test_compat_keys(void **state) {
  struct config a, b;
  char buf[128], path[ENDPOINT_PATH_MAX + 1];
  char long_tmp[ENDPOINT_PATH_MAX + 1];
  (void)state;
  config_defaults(&a);
  assert_string_equal(a.compat_pipe_name, "");
  parse_ok(&b, "[compat]\npipe_name = testpipe\n");
  assert_string_equal(b.compat_pipe_name, "testpipe");
  parse_ok(&b, "[compat]\npipe_name = a.b_c-D9\n");
  assert_string_equal(b.compat_pipe_name, "a.b_c-D9");
  config_restart_keys(&a, &b, buf, sizeof(buf));
  assert_string_equal(buf, "pipe_name");
  parse_ok(&b, "[compat]\npipe_name =\n");
  assert_string_equal(b.compat_pipe_name, "");

  static const struct bad cases[] = {
      {"[compat]\npipe_name = a/b\n",
       "x.ini:2: [compat] pipe_name: must be letters, digits, '.', '_' and "
       "'-' only"},
      {"[compat]\npipe_name = ..\n",
       "x.ini:2: [compat] pipe_name: must be letters, digits, '.', '_' and "
       "'-' only"},
      {"[compat]\npipe_name = a b\n",
       "x.ini:2: [compat] pipe_name: must be letters, digits, '.', '_' and "
       "'-' only"},
      {"[compat]\npipe_name = \\\\.\\pipe\\x\n",
       "x.ini:2: [compat] pipe_name: must be letters, digits, '.', '_' and "
       "'-' only"},
      {"[compat]\npipe_name = "
       "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
       "pppppppppp\n",
       "x.ini:2: [compat] pipe_name: longer than 80 bytes"},
      {"[server]\npipe_name = x\n",
       "x.ini:2: [server] pipe_name: unknown key (it belongs in [compat])"},
  };
  EXPECT_ERRORS(cases);

  /* $TMPDIR (else /tmp) + "/CoreFxPipe_" + the name, as .NET's
   * Path.Combine(Path.GetTempPath(), "CoreFxPipe_" + name). */
  assert_int_equal(config_compat_path("testpipe", NULL, path, sizeof(path)), 0);
  assert_string_equal(path, "/tmp/CoreFxPipe_testpipe");
  assert_int_equal(config_compat_path("t", "", path, sizeof(path)), 0);
  assert_string_equal(path, "/tmp/CoreFxPipe_t");
  assert_int_equal(config_compat_path("t", "/var/tmp//", path, sizeof(path)),
                   0);
  assert_string_equal(path, "/var/tmp/CoreFxPipe_t");
  assert_int_equal(config_compat_path("t", "/", path, sizeof(path)), 0);
  assert_string_equal(path, "/CoreFxPipe_t");
  assert_int_equal(config_compat_path("t", "/tmp", path, 10), UV_ENAMETOOLONG);
  assert_string_equal(path, "");
  memset(long_tmp, 'd', sizeof(long_tmp) - 1);
  long_tmp[0] = '/';
  long_tmp[ENDPOINT_PATH_MAX - 5] = '\0';
  assert_int_equal(config_compat_path("t", long_tmp, path, sizeof(path)),
                   UV_ENAMETOOLONG);
}

static void test_idlist_has(void **state) {
  struct config c;
  (void)state;
  parse_ok(&c, "[identity]\nallow_users = *\ndeny_users = 5,root\n"
               "allow_groups =\n");
  assert_true(idlist_has(&c.allow_users, 0));
  assert_true(idlist_has(&c.allow_users, 4294967294u));
  assert_true(idlist_has(&c.deny_users, 5));
  assert_true(idlist_has(&c.deny_users, 0));
  assert_false(idlist_has(&c.deny_users, 1));
  assert_false(idlist_has(&c.allow_groups, 0));
}

/* The error buffer is always terminated, even when too small. */
static void test_small_err_buffer(void **state) {
  struct config c;
  char err[8];
  (void)state;
  assert_int_equal(config_parse(&c, "x.ini", "[bogus]\n", err, sizeof(err)),
                   -EINVAL);
  assert_string_equal(err, "x.ini:1");
  assert_int_equal(config_parse(&c, "x.ini", "[bogus]\n", NULL, 0), -EINVAL);
}

/* ini_strict.h on its own, with a handler that is not config's: the
 * reader knows no keys, asks for sections, and formats the handler's
 * reasons with file, line, section and key. */
struct seen_keys {
  char log[256];
};

static int only_a(void *user, const char *section) {
  (void)user;
  return strcmp(section, "a") == 0;
}

static int record_key(void *user, unsigned line, const char *section,
                      const char *key, const char *value, char *why,
                      size_t wl) {
  struct seen_keys *k = user;
  size_t used = strlen(k->log);
  if (strcmp(value, "bad") == 0) {
    snprintf(why, wl, "no good");
    return UV_EINVAL;
  }
  snprintf(k->log + used, sizeof(k->log) - used, "%u:[%s]%s=%s;", line, section,
           key, value);
  return 0;
}

static void test_ini_strict_reader(void **state) {
  struct seen_keys k;
  const struct ini_strict_handler h = {only_a, record_key, &k};
  char err[CONFIG_ERR_MAX];
  const char *text;
  (void)state;

  memset(&k, 0, sizeof(k));
  text = "; c\n[a]\nx = 1\n\ny: two words ; note\n";
  assert_int_equal(
      ini_strict_parse("t.ini", text, strlen(text), &h, err, sizeof(err)), 0);
  assert_string_equal(err, "");
  assert_string_equal(k.log, "3:[a]x=1;5:[a]y=two words;");

  struct bad cases[] = {
      {"[b]\n", "t.ini:1: [b]: unknown section"},
      {"[a]\nx = bad\n", "t.ini:2: [a] x: no good"},
      {"x = bad\n", "t.ini:1: x: no good"},
      {"[a]\nx = 1\n  2\n",
       "t.ini:3: [a] x: indented line continues the value from line 2; a "
       "value must be on one line"},
      {"[a]\nnokey\n", "t.ini:2: [a]: expected \"key = value\""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    memset(&k, 0, sizeof(k));
    assert_int_equal(ini_strict_parse("t.ini", cases[i].text,
                                      strlen(cases[i].text), &h, err,
                                      sizeof(err)),
                     UV_EINVAL);
    assert_string_equal(err, cases[i].want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_empty_text_is_defaults),
      cmocka_unit_test(test_every_key),
      cmocka_unit_test(test_value_forms),
      cmocka_unit_test(test_syntax_forms),
      cmocka_unit_test(test_errors_server),
      cmocka_unit_test(test_errors_duration),
      cmocka_unit_test(test_errors_identity),
      cmocka_unit_test(test_errors_log),
      cmocka_unit_test(test_errors_structure),
      cmocka_unit_test(test_errors_long_line),
      cmocka_unit_test(test_errors_nul_and_files),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_round_trip_long_list),
      cmocka_unit_test(test_print_ids),
      cmocka_unit_test(test_example_file),
      cmocka_unit_test(test_restart_keys),
      cmocka_unit_test(test_compat_keys),
      cmocka_unit_test(test_idlist_has),
      cmocka_unit_test(test_small_err_buffer),
      cmocka_unit_test(test_ini_strict_reader),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
