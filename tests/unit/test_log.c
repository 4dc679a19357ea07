/* test_log.c - the error log, seen on stderr: its line format and level
 * filter; a stderr socket nobody reads does not stall the thread that logs;
 * the rate limit: a flood of one kind of message is cut to a burst plus one
 * summary whose count adds up, from one thread or many; kinds are kept
 * apart; windows end; a summary comes once anything is logged after its
 * window, at log_tick() once the window is over, or at log_flush(). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

#define SUPPRESSED " similar messages suppressed"

static char out_path[64];
static int saved_stderr = -1;

/* Send fd 2 to a fresh temp file until end_capture(). */
static void begin_capture(void) {
  strcpy(out_path, "/tmp/pf-log-XXXXXX");
  int fd = mkstemp(out_path);
  assert_true(fd >= 0);
  fflush(stderr);
  saved_stderr = dup(2);
  assert_true(saved_stderr >= 0);
  assert_int_equal(dup2(fd, 2), 2);
  close(fd);
}

/* Restore fd 2; return what was written (malloc'd, NUL-terminated). */
static char *end_capture(void) {
  assert_int_equal(dup2(saved_stderr, 2), 2);
  close(saved_stderr);
  FILE *f = fopen(out_path, "r");
  assert_non_null(f);
  char *buf = calloc(1, 1 << 20);
  assert_non_null(buf);
  size_t n = fread(buf, 1, (1 << 20) - 1, f);
  buf[n] = '\0';
  fclose(f);
  unlink(out_path);
  return buf;
}

/* Lines of out that contain what; *suppressed = the sum of the summaries'
 * counts whose sample contains what. */
static int count(const char *out, const char *what,
                 unsigned long long *suppressed) {
  int lines = 0;
  *suppressed = 0;
  for (const char *l = out; *l;) {
    const char *end = strchr(l, '\n');
    assert_non_null(end); /* every line is whole */
    char line[4096];
    size_t len = (size_t)(end - l);
    assert_true(len < sizeof(line));
    memcpy(line, l, len);
    line[len] = '\0';
    char *s = strstr(line, SUPPRESSED);
    if (s != NULL && strstr(s, what) != NULL) {
      char *num = s;
      while (num > line && num[-1] >= '0' && num[-1] <= '9')
        num--;
      *suppressed += strtoull(num, NULL, 10);
    } else if (strstr(line, what) != NULL) {
      lines++;
    }
    l = end + 1;
  }
  return lines;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static int setup(void **state) {
  (void)state;
  log_setup("stderr", LOG_LVL_INFO);
  return 0;
}

/* 1,000 identical messages: 10 lines, and one summary of the other 990,
 * at the message's level, quoting it. */
static void test_flood_is_cut_and_counted(void **state) {
  unsigned long long sup;
  (void)state;
  log_ratelimit_set(10, 60000);
  begin_capture();
  for (int i = 0; i < 1000; i++)
    log_error("open failed: %s; answering EIO", "Resource busy");
  log_flush();
  char *out = end_capture();
  assert_int_equal(count(out, "open failed: Resource busy", &sup), 10);
  assert_int_equal(sup, 990);
  assert_non_null(strstr(out, "pipefiled: error: 990" SUPPRESSED));
  assert_non_null(strstr(out, "the first: open failed: Resource busy;"));
  free(out);
}

/* The kind is the call site: varying arguments (a connection id) do not
 * escape the limit. */
static void test_arguments_do_not_escape(void **state) {
  unsigned long long sup;
  (void)state;
  log_ratelimit_set(10, 60000);
  begin_capture();
  for (int i = 0; i < 500; i++)
    log_warn("conn %d: sending body: broken", i);
  log_flush();
  char *out = end_capture();
  assert_int_equal(count(out, ": sending body: broken", &sup), 10);
  assert_int_equal(sup, 490);
  assert_non_null(strstr(out, "pipefiled: warning: 490" SUPPRESSED));
  free(out);
}

/* Kinds have their own budgets: a flood of one does not silence another;
 * a bare "%s" is told apart by its text. */
static void test_kinds_are_separate(void **state) {
  unsigned long long sup;
  (void)state;
  log_ratelimit_set(10, 60000);
  begin_capture();
  for (int i = 0; i < 100; i++) {
    log_error("flood %d", i);
    log_error("%s", "text one");
    log_error("%s", "text two");
    if (i % 20 == 0)
      log_info("rare %d", i);
  }
  log_flush();
  char *out = end_capture();
  assert_int_equal(count(out, "flood ", &sup), 10);
  assert_int_equal(sup, 90);
  assert_int_equal(count(out, "text one", &sup), 10);
  assert_int_equal(sup, 90);
  assert_int_equal(count(out, "text two", &sup), 10);
  assert_int_equal(sup, 90);
  assert_int_equal(count(out, "rare ", &sup), 5);
  assert_int_equal(sup, 0);
  free(out);
}

struct flood_arg {
  int n;
};

static void *flood_thread(void *arg) {
  struct flood_arg *a = arg;
  for (int i = 0; i < a->n; i++)
    log_error("threaded flood %d", i);
  return NULL;
}

/* Many threads, one kind: the counts still add up exactly, and every
 * line is whole. */
static void test_threads_add_up(void **state) {
  enum { THREADS = 8, EACH = 2000 };
  pthread_t t[THREADS];
  struct flood_arg a = {EACH};
  unsigned long long sup;
  (void)state;
  log_ratelimit_set(10, 60000);
  begin_capture();
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, flood_thread, &a), 0);
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_join(t[i], NULL), 0);
  log_flush();
  char *out = end_capture();
  int lines = count(out, "threaded flood ", &sup);
  assert_int_equal(lines, 10);
  assert_int_equal(lines + sup, THREADS * EACH);
  free(out);
}

/* After the window a kind may speak again, and its summary comes first;
 * the summary of a kind that went quiet comes with the next message of any
 * kind once its window is over. */
static void test_windows_end(void **state) {
  unsigned long long sup;
  (void)state;
  log_ratelimit_set(2, 500);
  begin_capture();
  for (int i = 0; i < 5; i++)
    log_warn("windowed %d", i);
  for (int i = 0; i < 7; i++)
    log_warn("quiet %d", i);
  sleep_ms(700);
  log_warn("windowed again");
  /* a kind that goes quiet is summed up by log_tick() after its window */
  for (int i = 0; i < 4; i++)
    log_warn("ticked %d", i);
  log_tick(); /* the window is still open: nothing yet */
  char *mid = end_capture();
  assert_int_equal(count(mid, "ticked", &sup), 2);
  assert_int_equal(sup, 0);
  begin_capture();
  sleep_ms(700);
  log_tick();
  char *late = end_capture();
  assert_non_null(strstr(late, "pipefiled: warning: 2" SUPPRESSED));
  assert_non_null(strstr(late, "the first: ticked 2"));
  free(late);
  char *out = mid;
  assert_int_equal(count(out, "windowed", &sup), 3);
  assert_int_equal(sup, 3);
  assert_int_equal(count(out, "quiet", &sup), 2);
  assert_int_equal(sup, 5);
  /* both summaries before the message that let them out */
  char *again = strstr(out, "windowed again");
  assert_non_null(again);
  assert_true(strstr(out, "3" SUPPRESSED) < again);
  assert_true(strstr(out, "5" SUPPRESSED) < again);
  free(out);
}

/* Filtered messages do not use the budget; burst 0 means no limit. */
static void test_filter_and_unlimited(void **state) {
  unsigned long long sup;
  (void)state;
  log_ratelimit_set(3, 60000);
  begin_capture();
  log_setup("stderr", LOG_LVL_WARNING);
  for (int i = 0; i < 50; i++)
    log_info("filtered");
  log_setup("stderr", LOG_LVL_INFO);
  for (int i = 0; i < 3; i++)
    log_info("filtered");
  log_ratelimit_set(0, 60000);
  for (int i = 0; i < 50; i++)
    log_info("unlimited");
  log_flush();
  char *out = end_capture();
  assert_int_equal(count(out, "filtered", &sup), 3);
  assert_int_equal(sup, 0);
  assert_int_equal(count(out, "unlimited", &sup), 50);
  assert_int_equal(sup, 0);
  free(out);
  log_ratelimit_set(10, 5000);
}

/* "pipefiled: LEVEL: text", one line per message, newlines inside a
 * message made spaces, levels above the one set left out. */
static void test_line_format(void **state) {
  (void)state;
  begin_capture();
  log_setup("stderr", LOG_LVL_WARNING);
  log_info("not shown");
  log_debug("not shown");
  log_warn("two\nlines %d", 2);
  log_error("bad %s", "thing");
  log_setup("stderr", LOG_LVL_INFO);
  log_info("shown");
  char *out = end_capture();
  assert_string_equal(out, "pipefiled: warning: two lines 2\n"
                           "pipefiled: error: bad thing\n"
                           "pipefiled: info: shown\n");
  free(out);
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* stderr is a socket (the journal) that stopped reading: logging goes on
 * without waiting (lines that find no room are dropped), and once the
 * reader reads again the next line arrives whole. A stalled thread would
 * be killed by the alarm. */
static void test_stderr_socket_full(void **state) {
  int sv[2], saved = dup(2);
  char junk[4096], buf[65536];
  double t0;
  (void)state;

  memset(junk, 'j', sizeof junk);
  assert_true(saved >= 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(dup2(sv[0], 2), 2);
  /* Fill it without making fd 2 non-blocking (that flag would be shared):
   * only the send says not to wait. */
  while (send(2, junk, sizeof junk, MSG_DONTWAIT) > 0)
    ;
  log_ratelimit_set(0, 60000);
  alarm(20);
  t0 = mono_s();
  for (int i = 0; i < 200; i++)
    log_error("journal is full %d", i);
  assert_true(mono_s() - t0 < 5.0);
  while (recv(sv[1], buf, sizeof buf, MSG_DONTWAIT) > 0)
    ;
  log_error("after the stall");
  alarm(0);
  ssize_t n = recv(sv[1], buf, sizeof buf - 1, MSG_DONTWAIT);
  assert_true(n > 0);
  buf[n] = '\0';
  assert_string_equal(buf, "pipefiled: error: after the stall\n");
  assert_int_equal(dup2(saved, 2), 2);
  close(saved);
  close(sv[0]);
  close(sv[1]);
  log_ratelimit_set(10, 5000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_line_format),
      cmocka_unit_test(test_stderr_socket_full),
      cmocka_unit_test(test_flood_is_cut_and_counted),
      cmocka_unit_test(test_arguments_do_not_escape),
      cmocka_unit_test(test_kinds_are_separate),
      cmocka_unit_test(test_threads_add_up),
      cmocka_unit_test(test_windows_end),
      cmocka_unit_test(test_filter_and_unlimited),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
