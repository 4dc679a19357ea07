/* test_logsink.c - unit tests of logsink_linux.c: the destinations the
 * access and error logs write to. */

/* What each configured name opens, how a bad name is refused, a file
 * appended to and reopened after logrotate renamed it, "off" taking
 * everything, the system log refusing a stream write, and a stderr that
 * takes nothing being waited on only as long as the caller allows. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "logsink.h"

static char tmpdir[64];

static int setup_dir(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_logsink.XXXXXX");
  return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown_dir(void **state) {
  (void)state;
  return rmdir(tmpdir);
}

/* A file's contents (at most 4 KiB), NUL-terminated. */
static void slurp(const char *path, char *buf, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  assert_true(fd >= 0);
  n = read(fd, buf, len - 1);
  assert_true(n >= 0);
  buf[n] = '\0';
  close(fd);
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The three names and a file each open as what they say; where() names
 * the place for messages. */
static void test_kinds(void **state) {
  struct logsink s;
  char err[256], path[128];
  (void)state;

  assert_int_equal(logsink_open(&s, "off", 1, err, sizeof err), 0);
  assert_int_equal(s.kind, LOGSINK_OFF);
  logsink_close(&s);
  assert_int_equal(logsink_open(&s, "stderr", 1, err, sizeof err), 0);
  assert_int_equal(s.kind, LOGSINK_STDERR);
  assert_string_equal(logsink_where(&s), "stderr");
  logsink_close(&s);
  assert_true(fcntl(2, F_GETFD) >= 0); /* the process's stderr stays open */
  assert_int_equal(logsink_open(&s, "syslog", 1, err, sizeof err), 0);
  assert_int_equal(s.kind, LOGSINK_SYSLOG);
  assert_string_equal(logsink_where(&s), "/dev/log");
  logsink_close(&s);

  snprintf(path, sizeof path, "%s/a.log", tmpdir);
  assert_int_equal(logsink_open(&s, path, 0, err, sizeof err), 0);
  assert_int_equal(s.kind, LOGSINK_FILE);
  assert_string_equal(logsink_where(&s), path);
  logsink_close(&s);
  assert_int_equal(unlink(path), 0);
}

/* A name that is no destination is refused with a reason. */
static void test_bad_names(void **state) {
  struct logsink s;
  char err[256], longname[LOGSINK_PATH_MAX + 8];
  (void)state;

  assert_int_equal(logsink_open(&s, "", 1, err, sizeof err), UV_EINVAL);
  assert_int_equal(logsink_open(&s, NULL, 1, err, sizeof err), UV_EINVAL);
  assert_int_equal(logsink_open(&s, "relative.log", 0, err, sizeof err),
                   UV_EINVAL);
  assert_non_null(strstr(err, "relative.log"));
  assert_int_equal(
      logsink_open(&s, "/nonexistent-dir/x.log", 0, err, sizeof err),
      UV_ENOENT);
  memset(longname, 'a', sizeof longname - 1);
  longname[0] = '/';
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(logsink_open(&s, longname, 0, err, sizeof err),
                   UV_ENAMETOOLONG);
}

/* Appends; after a rename (logrotate) reopen starts a new file under the
 * name, and the old one keeps what it had. Reopen of a non-file does
 * nothing. */
static void test_file_reopen(void **state) {
  struct logsink s, off;
  char err[256], path[128], rotated[128], buf[4096];
  size_t done;
  (void)state;

  snprintf(path, sizeof path, "%s/r.log", tmpdir);
  snprintf(rotated, sizeof rotated, "%s/r.log.1", tmpdir);
  assert_int_equal(logsink_open(&s, path, 0, err, sizeof err), 0);
  assert_int_equal(logsink_write(&s, "one\n", 4, &done, 0), 0);
  assert_int_equal(done, 4);
  assert_int_equal(rename(path, rotated), 0);
  assert_int_equal(logsink_write(&s, "two\n", 4, &done, 0), 0);
  assert_int_equal(logsink_reopen(&s, err, sizeof err), 1);
  assert_int_equal(logsink_write(&s, "three\n", 6, &done, 0), 0);
  logsink_close(&s);
  slurp(rotated, buf, sizeof buf);
  assert_string_equal(buf, "one\ntwo\n");
  slurp(path, buf, sizeof buf);
  assert_string_equal(buf, "three\n");

  assert_int_equal(logsink_open(&off, "off", 1, err, sizeof err), 0);
  assert_int_equal(logsink_reopen(&off, err, sizeof err), 0);
  assert_int_equal(logsink_write(&off, "gone\n", 5, &done, 0), 0);
  assert_int_equal(done, 5);
  logsink_close(&off);
  unlink(path);
  unlink(rotated);
}

/* The system log takes messages, one per line, never a stream. */
static void test_syslog_is_not_a_stream(void **state) {
  struct logsink s;
  char err[256];
  size_t done = 99;
  (void)state;

  assert_int_equal(logsink_open(&s, "syslog", 1, err, sizeof err), 0);
  assert_int_equal(logsink_write(&s, "x\n", 2, &done, 0), UV_EINVAL);
  assert_int_equal(done, 0);
  logsink_close(&s);
}

/* stderr is a non-blocking pipe nobody reads (shared with an event loop):
 * the write takes what fits, waits about wait_ms for more, then gives up
 * with UV_EAGAIN and says how much went out. */
static void test_stderr_full_waits_bounded(void **state) {
  struct logsink s;
  static char big[1 << 20];
  char err[256];
  int p[2], saved = dup(2);
  size_t done;
  double t0, took;
  (void)state;

  assert_true(saved >= 0);
  assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  assert_int_equal(dup2(p[1], 2), 2);
  memset(big, 'x', sizeof big);
  assert_int_equal(logsink_open(&s, "stderr", 1, err, sizeof err), 0);
  t0 = mono_s();
  int r = logsink_write(&s, big, sizeof big, &done, 200);
  took = mono_s() - t0;
  assert_int_equal(dup2(saved, 2), 2);
  close(saved);
  logsink_close(&s);
  assert_int_equal(r, UV_EAGAIN);
  assert_true(done > 0 && done < sizeof big);
  assert_true(took >= 0.15 && took < 5.0);
  close(p[0]);
  close(p[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kinds),
      cmocka_unit_test(test_bad_names),
      cmocka_unit_test(test_file_reopen),
      cmocka_unit_test(test_syslog_is_not_a_stream),
      cmocka_unit_test(test_stderr_full_waits_bounded),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
