/* test_config_win.c - the settings on Windows (run under wine): the example
 * file documents the defaults exactly, Windows paths and the pipe's keys are
 * taken, Linux's keys are refused naming both platforms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "config.h"

/* config_print into a string (no open_memstream on Windows: a temp file). */
static char *print_config(const struct config *c) {
  FILE *f = tmpfile();
  long n;
  char *buf;

  assert_non_null(f);
  config_print(c, f);
  n = ftell(f);
  assert_true(n > 0);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  rewind(f);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static void parse_ok(struct config *c, const char *text) {
  char err[CONFIG_ERR_MAX] = "";
  int r = config_parse(c, "x.ini", text, err, sizeof(err));
  if (r != 0)
    print_error("%s\n", err);
  assert_int_equal(r, 0);
}

static void parse_bad(const char *text, const char *want) {
  struct config c;
  char err[CONFIG_ERR_MAX] = "";
  assert_int_equal(config_parse(&c, "x.ini", text, err, sizeof(err)),
                   UV_EINVAL);
  assert_string_equal(err, want);
}

static void test_defaults(void **state) {
  struct config c;
  (void)state;
  config_defaults(&c);
  assert_string_equal(c.socket, "\\\\.\\pipe\\pipefiled");
  assert_string_equal(c.root, "C:\\ProgramData\\pipefiled\\files");
  assert_string_equal(c.pipe_sddl, CONFIG_DEFAULT_SDDL);
  assert_int_equal(c.remote_clients, 0);
}

static void test_example_file(void **state) {
  struct config file, d;
  char err[CONFIG_ERR_MAX] = "";
  (void)state;
  int r = config_load(&file, "config/pipefiled-windows.ini", err, sizeof(err));
  if (r != 0)
    print_error("%s\n", err);
  assert_int_equal(r, 0);
  /* It documents the defaults, so it must load to exactly them. */
  config_defaults(&d);
  char *a = print_config(&file), *b = print_config(&d);
  assert_string_equal(a, b);
  /* and the effective config names the Windows keys, not Linux's */
  assert_non_null(strstr(a, "pipe_sddl = D:P("));
  assert_non_null(strstr(a, "remote_clients = no"));
  assert_null(strstr(a, "socket_mode"));
  free(a);
  free(b);
}

static void test_windows_values(void **state) {
  struct config c;
  (void)state;
  parse_ok(&c, "[server]\nsocket = \\\\.\\pipe\\other\nroot = D:\\data\n"
               "remote_clients = yes\npipe_sddl = D:P(A;;GA;;;SY)\n"
               "[log]\naccess_log = C:/logs/access.log\n");
  assert_string_equal(c.socket, "\\\\.\\pipe\\other");
  assert_string_equal(c.root, "D:\\data");
  assert_int_equal(c.remote_clients, 1);
  assert_string_equal(c.pipe_sddl, "D:P(A;;GA;;;SY)");
  assert_string_equal(c.access_log, "C:/logs/access.log");
}

static void test_refused(void **state) {
  (void)state;
  parse_bad("[server]\nsocket_mode = 0600\n",
            "x.ini:2: [server] socket_mode: a Linux setting; this is Windows");
  parse_bad("[server]\nsocket_group = users\n",
            "x.ini:2: [server] socket_group: a Linux setting; this is Windows");
  /* A Unix path, a drive-relative path and a bare name are not absolute. */
  parse_bad("[server]\nroot = /srv/x\n",
            "x.ini:2: [server] root: must be an absolute path");
  parse_bad("[server]\nroot = C:data\n",
            "x.ini:2: [server] root: must be an absolute path");
  parse_bad("[log]\naccess_log = access.log\n",
            "x.ini:2: [log] access_log: must be stderr, syslog, off or an "
            "absolute path");
  parse_bad("[server]\nremote_clients = maybe\n",
            "x.ini:2: [server] remote_clients: must be yes or no (or "
            "true/false, on/off, 1/0)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_example_file),
      cmocka_unit_test(test_windows_values),
      cmocka_unit_test(test_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
