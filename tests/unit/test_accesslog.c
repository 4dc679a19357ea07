/* test_accesslog.c - unit tests of accesslog.c: the queue, the per-user
 * shares and the writer thread, end to end through real destinations. */

/* Threads, reopen, reconfigure, a destination that fails (log_full = drop
 * and block) and one that stalls; the per-user shares of the queue. (The
 * lines themselves: test_accesslog_format.c.) */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "accesslog.h"
#include "accesslog_lines.h"
#include "log.h"
#include "logsink.h"
#include "proto.h"

static char tmpdir[64];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the writer, end to end ------------------------------------------- */

static int setup_dir(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_accesslog.XXXXXX");
  return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown_dir(void **state) {
  (void)state;
  return rmdir(tmpdir);
}

static void tmp_path(char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* A file's whole contents, NUL-terminated; *len without the NUL. */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  long n;

  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static size_t file_lines(const char *path) {
  size_t len, n;
  char *s = slurp(path, &len);
  n = count_nl(s, len);
  free(s);
  return n;
}

/* Wait (bounded) until the writer has put `want` lines in path: the test
 * waits for an observable result, not for a guessed time. */
static void wait_lines(const char *path, size_t want) {
  for (int i = 0; i < 1000; i++) {
    if (file_lines(path) >= want)
      return;
    nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
  }
  fail_msg("%s: never got %zu lines", path, want);
}

/* Parse every line of s[0..len); mark conns seen; return the line count.
 * Each line's path must be "/c/<conn>\n\"" (hostile on purpose). */
static size_t check_buf(const char *s, size_t len, enum access_format f,
                        unsigned char *seen, size_t nseen,
                        const char *(*user_of)(unsigned long long)) {
  size_t lines = 0;
  const char *line = s;
  struct parsed *p = malloc(sizeof *p);
  char want[64];

  assert_non_null(p);
  assert_true(len == 0 || s[len - 1] == '\n');
  while (line < s + len) {
    const char *nl = memchr(line, '\n', (size_t)(s + len - line));
    assert_non_null(nl);
    assert_int_equal(parse_line(f, line, (size_t)(nl - line), p), 0);
    assert_true(p->conn < nseen);
    assert_int_equal(seen[p->conn], 0);
    seen[p->conn] = 1;
    snprintf(want, sizeof want, "/c/%llu\n\"", p->conn);
    assert_int_equal(p->path_len, strlen(want));
    assert_memory_equal(p->path, want, p->path_len);
    assert_string_equal(p->status, "OK");
    if (user_of != NULL)
      assert_string_equal(p->user, user_of(p->conn));
    lines++;
    line = nl + 1;
  }
  free(p);
  return lines;
}

/* check_buf on a file's contents. */
static size_t check_file(const char *path, enum access_format f,
                         unsigned char *seen, size_t nseen,
                         const char *(*user_of)(unsigned long long)) {
  size_t len;
  char *s = slurp(path, &len);
  size_t lines = check_buf(s, len, f, seen, nseen, user_of);
  free(s);
  return lines;
}

/* The daemon's options, with strict modes off: tests log under /tmp dirs
 * owned by whoever runs them. */
static int al_start(const char *dest, enum access_format fmt) {
  char err[256];
  struct accesslog_opts o = {.dest = dest, .fmt = fmt};
  return accesslog_start(&o, err, sizeof err);
}

static int al_reconfigure(const char *dest, enum access_format fmt) {
  char err[256];
  struct accesslog_opts o = {.dest = dest, .fmt = fmt};
  return accesslog_reconfigure(&o, err, sizeof err);
}

static int al_start_full(const char *dest, enum access_format fmt,
                         enum log_full full) {
  char err[256];
  struct accesslog_opts o = {.dest = dest, .fmt = fmt, .full = full};
  return accesslog_start(&o, err, sizeof err);
}

static void sleep_ms(long ms) {
  nanosleep(&(struct timespec){ms / 1000, ms % 1000 * 1000000}, NULL);
}

/* The record for conn, as uid; its path "/c/<conn>\n\"" is hostile. */
static int try_record(unsigned long long conn, uid_t uid) {
  char path[64];

  snprintf(path, sizeof path, "/c/%llu\n\"", conn);
  struct access_record r = sample_path(path, strlen(path));
  r.conn = conn;
  r.uid = uid;
  return accesslog_write(&r);
}

/* Queue it as a worker does: when there is no room, wait and try again
 * (bounded: the writer frees room within milliseconds). */
static void put_record(unsigned long long conn, uid_t uid) {
  for (int i = 0; i < 10000; i++) {
    int r = try_record(conn, uid);
    if (r != -EAGAIN) {
      assert_int_equal(r, 0);
      return;
    }
    sleep_ms(1);
  }
  fail_msg("record %llu: no room in the queue for 10 s", conn);
}

/* Records for conns from .. to-1, as uid 0. */
static void put_records(unsigned from, unsigned to) {
  for (unsigned i = from; i < to; i++)
    put_record(i, 0);
}

/* Start the writer on path, as text, and wait until records 0 .. n-1 are
 * in the file. */
static void start_with_records(const char *path, unsigned n) {
  assert_int_equal(al_start(path, ACCESS_TEXT), 0);
  put_records(0, n);
  wait_lines(path, n);
}

/* What fn, run by capture_stderr, has written to fd 2 so far. */
static char *captured(void) {
  char path[128];
  size_t len;

  tmp_path(path, sizeof path, "stderr.txt");
  return slurp(path, &len);
}

/* Wait (bounded) until what fn wrote to fd 2 holds `what`. */
static void wait_captured(const char *what) {
  for (int i = 0; i < 1000; i++) {
    char *s = captured();
    int found = strstr(s, what) != NULL;
    free(s);
    if (found)
      return;
    sleep_ms(10);
  }
  fail_msg("never said \"%s\"", what);
}

/* Run fn with fd 2 going to a file; return what was written there. */
static char *capture_stderr(void (*fn)(void *), void *arg, size_t *len) {
  char path[128];
  int saved = dup(2), fd;
  char *out;

  tmp_path(path, sizeof path, "stderr.txt");
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  fn(arg);
  dup2(saved, 2);
  close(saved);
  out = slurp(path, len);
  unlink(path);
  return out;
}

#define E2E_THREADS 4
#define E2E_PER_THREAD 1000 /* all fit in the queue: no drops possible */
#define E2E_NOBODY 3999990  /* a uid with (we check) no passwd entry */

static char self_name[80];

/* What the log should say for uid: the passwd name if it is printable. */
static void expected_user(uid_t uid, char *buf, size_t len) {
  struct passwd *pw = getpwuid(uid);
  int ok = pw != NULL && pw->pw_name[0] != '\0';

  for (const char *c = ok ? pw->pw_name : ""; *c != '\0'; c++)
    if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
               "0123456789._-",
               *c) == NULL)
      ok = 0;
  if (ok)
    snprintf(buf, len, "%s", pw->pw_name);
  else
    snprintf(buf, len, "%u", (unsigned)uid);
}

static uid_t e2e_uid(unsigned long long conn) {
  /* Thread 0 logs our own uid (a real name); the others uids with none. */
  return conn < E2E_PER_THREAD ? getuid() : E2E_NOBODY;
}

static const char *e2e_user(unsigned long long conn) {
  static char nobody[16];
  snprintf(nobody, sizeof nobody, "%u", E2E_NOBODY);
  return conn < E2E_PER_THREAD ? self_name : nobody;
}

static void *e2e_thread(void *arg) {
  unsigned long long base = (uintptr_t)arg * E2E_PER_THREAD;
  for (unsigned long long i = 0; i < E2E_PER_THREAD; i++)
    put_record(base + i, e2e_uid(base + i));
  return NULL;
}

static void test_threads(void **state) {
  const size_t total = E2E_THREADS * E2E_PER_THREAD;
  unsigned char *seen = calloc(total, 1);
  pthread_t t[E2E_THREADS];
  char path[128];
  uint64_t dropped;
  (void)state;

  assert_null(getpwuid(E2E_NOBODY));
  expected_user(getuid(), self_name, sizeof self_name);
  tmp_path(path, sizeof path, "threads.log");
  assert_int_equal(al_start(path, ACCESS_TEXT), 0);
  dropped = accesslog_dropped();
  for (uintptr_t i = 0; i < E2E_THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, e2e_thread, (void *)i), 0);
  for (int i = 0; i < E2E_THREADS; i++)
    pthread_join(t[i], NULL);
  accesslog_stop();

  assert_int_equal(accesslog_dropped(), dropped);
  assert_int_equal(check_file(path, ACCESS_TEXT, seen, total, e2e_user), total);
  for (size_t i = 0; i < total; i++)
    assert_int_equal(seen[i], 1);
  struct stat st;
  mode_t mask = umask(0);
  umask(mask);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0640 & ~mask);
  free(seen);
  unlink(path);
}

/* logrotate: the file is renamed, then SIGUSR1 -> accesslog_reopen(). */
static void test_reopen(void **state) {
  unsigned char seen_old[200] = {0}, seen_new[200] = {0};
  char path[128], rotated[128];
  (void)state;

  tmp_path(path, sizeof path, "reopen.log");
  tmp_path(rotated, sizeof rotated, "reopen.log.1");
  start_with_records(path, 100);
  assert_int_equal(rename(path, rotated), 0);
  accesslog_reopen();
  put_records(100, 200);
  accesslog_stop();

  /* Everything before the rename in the old file, everything after the
   * reopen in the new one. */
  assert_int_equal(check_file(rotated, ACCESS_TEXT, seen_old, 200, NULL), 100);
  assert_int_equal(check_file(path, ACCESS_TEXT, seen_new, 200, NULL), 100);
  for (unsigned i = 0; i < 200; i++) {
    assert_int_equal(seen_old[i], i < 100);
    assert_int_equal(seen_new[i], i >= 100);
  }
  unlink(path);
  unlink(rotated);
}

static void reopen_fails(void *arg) {
  const char *dir = arg;
  char path[160], moved[160];

  snprintf(path, sizeof path, "%s/r.log", dir);
  snprintf(moved, sizeof moved, "%s.moved", dir);
  log_setup("stderr", LOG_LVL_INFO);
  start_with_records(path, 10);
  /* The directory goes away: the reopen cannot create the file. */
  assert_int_equal(rename(dir, moved), 0);
  accesslog_reopen();
  put_records(10, 20);
  accesslog_stop();
}

/* A reopen that fails is reported and the old file kept: no record lost. */
static void test_reopen_fails(void **state) {
  unsigned char seen[20] = {0};
  char dir[128], moved[160], file[192];
  size_t len;
  (void)state;

  tmp_path(dir, sizeof dir, "sub");
  snprintf(moved, sizeof moved, "%s.moved", dir);
  snprintf(file, sizeof file, "%s/r.log", moved);
  assert_int_equal(mkdir(dir, 0700), 0);
  char *out = capture_stderr(reopen_fails, dir, &len);
  assert_non_null(strstr(out, "pipefiled: error: access log: cannot reopen "));
  assert_int_equal(check_file(file, ACCESS_TEXT, seen, 20, NULL), 20);
  free(out);
  unlink(file);
  rmdir(moved);
}

/* SIGHUP with a new destination and format; a bad one is refused at once
 * and the current one stays. */
static void test_reconfigure(void **state) {
  unsigned char seen[30] = {0};
  char a[128], b[128];
  (void)state;

  tmp_path(a, sizeof a, "a.log");
  tmp_path(b, sizeof b, "b.json");
  start_with_records(a, 10);
  assert_int_equal(al_reconfigure(b, ACCESS_JSON), 0);
  put_records(10, 20);
  assert_int_equal(al_reconfigure("/nonexistent-dir/x.log", ACCESS_TEXT),
                   -ENOENT);
  put_records(20, 30);
  accesslog_stop();

  assert_int_equal(check_file(a, ACCESS_TEXT, seen, 10, NULL), 10);
  assert_int_equal(check_file(b, ACCESS_JSON, seen, 30, NULL), 20);
  for (unsigned i = 0; i < 30; i++)
    assert_int_equal(seen[i], 1);
  unlink(a);
  unlink(b);
}

static void test_bad_destination(void **state) {
  char longpath[LOGSINK_PATH_MAX + 8];
  uint64_t dropped = accesslog_dropped();
  (void)state;

  assert_int_equal(al_start("/nonexistent-dir/x.log", ACCESS_TEXT), -ENOENT);
  assert_int_equal(al_start("", ACCESS_TEXT), -EINVAL);
  memset(longpath, 'a', sizeof longpath - 1);
  longpath[0] = '/';
  longpath[sizeof longpath - 1] = '\0';
  assert_int_equal(al_start(longpath, ACCESS_TEXT), -ENAMETOOLONG);

  /* Not running: a record is refused (the caller decides), nothing else. */
  {
    char p1[] = "/x";
    struct access_record r = sample_path(p1, 2);
    assert_int_equal(accesslog_write(&r), -EPIPE);
  }
  assert_int_equal(accesslog_dropped(), dropped);
  accesslog_reopen();
  accesslog_stop();

  /* Running already. */
  assert_int_equal(al_start("off", ACCESS_TEXT), 0);
  assert_int_equal(al_start("off", ACCESS_TEXT), -EALREADY);
  put_record(2, 0);
  accesslog_stop();
  assert_int_equal(accesslog_dropped(), dropped);
}

/* Sum N over "pipefiled: error: access log: N records dropped (REASON)". */
static unsigned long long reported_drops(const char *log, const char *reason) {
  static const char pre[] = "pipefiled: error: access log: ";
  unsigned long long sum = 0, n;
  char tail[256];
  const char *p = log;

  while ((p = strstr(p, pre)) != NULL) {
    p += sizeof pre - 1;
    if (sscanf(p, "%llu records dropped (%255[^)\n])", &n, tail) == 2 &&
        strcmp(tail, reason) == 0)
      sum += n;
  }
  return sum;
}

static void stderr_dest(void *arg) {
  (void)arg;
  assert_int_equal(al_start("stderr", ACCESS_JSON), 0);
  put_records(0, 3);
  accesslog_stop();
}

static void test_stderr_destination(void **state) {
  unsigned char seen[3] = {0};
  struct parsed p;
  size_t len;
  (void)state;

  char *out = capture_stderr(stderr_dest, NULL, &len);
  assert_int_equal(count_nl(out, len), 3);
  for (char *line = out; line < out + len; line = strchr(line, '\n') + 1) {
    assert_int_equal(parse_json(line, (size_t)(strchr(line, '\n') - line), &p),
                     0);
    assert_true(p.conn < 3);
    seen[p.conn] = 1;
  }
  assert_memory_equal(seen, "\1\1\1", 3);
  free(out);
}

/* ---- a destination that fails: log_full ------------------------------- */

/* The reading end of a FIFO the log writes to. Closing it makes the
 * writer's write() fail (EPIPE), as a disk that fills up does; opening it
 * again lets writes through, as freed space does. */
struct reader {
  char fifo[128];
  int fd;    /* -1: closed, the reader went away */
  char *buf; /* every byte read */
  size_t len, cap;
};

static void reader_init(struct reader *rd, const char *name) {
  memset(rd, 0, sizeof *rd);
  tmp_path(rd->fifo, sizeof rd->fifo, name);
  rd->fd = -1;
  assert_int_equal(mkfifo(rd->fifo, 0600), 0);
}

static void reader_open(struct reader *rd) {
  rd->fd = open(rd->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  assert_true(rd->fd >= 0);
}

static void reader_close(struct reader *rd) {
  close(rd->fd);
  rd->fd = -1;
}

/* Read what is there; returns 0 at EOF (no writer left). */
static int reader_read(struct reader *rd) {
  for (;;) {
    ssize_t n;
    if (rd->cap - rd->len < 65536) {
      rd->cap = rd->cap * 2 + 65536;
      rd->buf = realloc(rd->buf, rd->cap);
      assert_non_null(rd->buf);
    }
    n = read(rd->fd, rd->buf + rd->len, rd->cap - rd->len);
    if (n > 0) {
      rd->len += (size_t)n;
      continue;
    }
    return n == 0 ? 0 : 1;
  }
}

/* Read until `lines` lines in all have come; bounded. */
static void reader_wait(struct reader *rd, size_t lines) {
  for (int i = 0; i < 1000 && count_nl(rd->buf, rd->len) < lines; i++) {
    struct pollfd p = {.fd = rd->fd, .events = POLLIN};
    poll(&p, 1, 10);
    reader_read(rd);
  }
  assert_true(count_nl(rd->buf, rd->len) >= lines);
}

/* After accesslog_stop(): read to EOF. */
static void reader_drain(struct reader *rd) {
  for (int i = 0; i < 1000 && reader_read(rd); i++)
    sleep_ms(5);
}

static void reader_done(struct reader *rd) {
  if (rd->fd >= 0)
    reader_close(rd);
  free(rd->buf);
  unlink(rd->fifo);
}

static void wait_dropped(uint64_t want) {
  for (int i = 0; i < 1000 && accesslog_dropped() < want; i++)
    sleep_ms(10);
  assert_int_equal(accesslog_dropped(), want);
}

static size_t count_str(const char *s, const char *what) {
  size_t n = 0;
  while ((s = strstr(s, what)) != NULL) {
    n++;
    s++;
  }
  return n;
}

static uint64_t drop_base;

static void fail_drop(void *arg) {
  struct reader *rd = arg;

  log_setup("stderr", LOG_LVL_INFO);
  reader_open(rd);
  assert_int_equal(al_start_full(rd->fifo, ACCESS_TEXT, LOG_FULL_DROP), 0);
  drop_base = accesslog_dropped();
  put_records(0, 10);
  reader_wait(rd, 10);
  reader_close(rd); /* the destination fails */
  put_records(10, 20);
  wait_dropped(drop_base + 10);
  reader_open(rd); /* and recovers: lines go through again by themselves */
  put_records(20, 30);
  reader_wait(rd, 20);
  accesslog_stop();
  reader_drain(rd);
}

/* log_full = drop: what the failing destination does not take is dropped,
 * counted and reported with where and why; the log goes on by itself when
 * the destination takes writes again. */
static void test_fail_drop(void **state) {
  unsigned char seen[30] = {0};
  struct reader rd;
  char why[256];
  size_t len;
  (void)state;

  reader_init(&rd, "drop.fifo");
  char *out = capture_stderr(fail_drop, &rd, &len);
  assert_int_equal(check_buf(rd.buf, rd.len, ACCESS_TEXT, seen, 30, NULL), 20);
  for (unsigned i = 0; i < 30; i++)
    assert_int_equal(seen[i], i < 10 || i >= 20);
  assert_int_equal(accesslog_dropped() - drop_base, 10);
  snprintf(why, sizeof why, "%s: %s", rd.fifo, strerror(EPIPE));
  assert_int_equal(reported_drops(out, why), 10);
  assert_null(strstr(out, "access log: blocked"));
  free(out);
  reader_done(&rd);
}

static size_t block_accepted;

static void fail_block(void *arg) {
  struct reader *rd = arg;
  char blocked[256];
  int refused = 0;

  log_setup("stderr", LOG_LVL_INFO);
  reader_open(rd);
  assert_int_equal(al_start_full(rd->fifo, ACCESS_TEXT, LOG_FULL_BLOCK), 0);
  drop_base = accesslog_dropped();
  put_records(0, 10);
  reader_wait(rd, 10);
  reader_close(rd); /* the destination fails */
  put_records(10, 20);
  snprintf(blocked, sizeof blocked, "access log: blocked: %s: %s; ", rd->fifo,
           strerror(EPIPE));
  wait_captured(blocked);
  /* The writer holds its lines; the queue fills behind them, and then
   * refuses (the caller waits) instead of dropping. */
  block_accepted = 0;
  while (!refused && block_accepted < 20000) {
    refused = try_record(1000 + block_accepted, 0) == -EAGAIN;
    block_accepted += !refused;
  }
  assert_true(refused);
  assert_int_equal(accesslog_dropped(), drop_base);
  reader_open(rd); /* the destination recovers: all of it goes through */
  put_records(20, 30);
  reader_wait(rd, 30 + block_accepted);
  accesslog_stop();
  reader_drain(rd);
}

/* log_full = block: nothing is dropped while the destination fails; the
 * error log says once that the log is blocked and once that it resumed;
 * every record queued before, during and after comes through, in order. */
static void test_fail_block(void **state) {
  unsigned char *seen = calloc(21000, 1);
  struct reader rd;
  size_t len;
  (void)state;

  assert_non_null(seen);
  reader_init(&rd, "block.fifo");
  char *out = capture_stderr(fail_block, &rd, &len);
  assert_true(block_accepted > 100);
  assert_int_equal(check_buf(rd.buf, rd.len, ACCESS_TEXT, seen, 21000, NULL),
                   30 + block_accepted);
  for (size_t i = 0; i < 30; i++)
    assert_int_equal(seen[i], 1);
  for (size_t i = 1000; i < 1000 + block_accepted; i++)
    assert_int_equal(seen[i], 1);
  assert_int_equal(accesslog_dropped(), drop_base);
  assert_int_equal(count_str(out, "access log: blocked: "), 1);
  assert_int_equal(count_str(out, "access log: resumed: "), 1);
  assert_null(strstr(out, "dropped"));
  /* In order: the held lines first, then the queued ones. */
  assert_non_null(strstr(rd.buf, "conn=19 "));
  assert_true(strstr(rd.buf, "conn=19 ") < strstr(rd.buf, "conn=1000 "));
  assert_true(strstr(rd.buf, "conn=1000 ") < strstr(rd.buf, "conn=20 "));
  free(out);
  free(seen);
  reader_done(&rd);
}

static double stop_took;

static void block_stop(void *arg) {
  struct reader *rd = arg;

  log_setup("stderr", LOG_LVL_INFO);
  reader_open(rd);
  assert_int_equal(al_start_full(rd->fifo, ACCESS_TEXT, LOG_FULL_BLOCK), 0);
  drop_base = accesslog_dropped();
  put_records(0, 10);
  reader_wait(rd, 10);
  reader_close(rd);
  put_records(10, 15);
  wait_captured("access log: blocked: ");
  double t0 = now_s();
  accesslog_stop();
  stop_took = now_s() - t0;
}

/* log_full = block and the destination still fails at stop: the drain is
 * bounded (5 s), the writer exits by itself, and what it held is counted
 * and reported as dropped. */
static void test_fail_block_stop(void **state) {
  struct reader rd;
  char why[256];
  size_t len;
  (void)state;

  reader_init(&rd, "stop.fifo");
  char *out = capture_stderr(block_stop, &rd, &len);
  print_message("stop with a failing destination took %.2f s\n", stop_took);
  assert_true(stop_took > 2.0 && stop_took < 5.0);
  assert_null(strstr(out, "does not take writes")); /* the writer exited */
  assert_int_equal(accesslog_dropped() - drop_base, 5);
  snprintf(why, sizeof why, "%s: %s", rd.fifo, strerror(EPIPE));
  assert_int_equal(reported_drops(out, why), 5);
  free(out);
  reader_done(&rd);
}

static void block_switch(void *arg) {
  struct reader *rd = arg;
  char json[128];

  tmp_path(json, sizeof json, "switch.json");
  log_setup("stderr", LOG_LVL_INFO);
  reader_open(rd);
  assert_int_equal(al_start_full(rd->fifo, ACCESS_TEXT, LOG_FULL_BLOCK), 0);
  drop_base = accesslog_dropped();
  put_records(0, 10);
  reader_wait(rd, 10);
  reader_close(rd);
  put_records(10, 20);
  wait_captured("access log: blocked: ");
  assert_int_equal(al_reconfigure(json, ACCESS_JSON), 0);
  put_records(20, 30);
  accesslog_stop();
}

/* Blocked, then SIGHUP points the log somewhere else: the held records go
 * there, formatted for it. */
static void test_fail_block_reconfigure(void **state) {
  unsigned char seen[30] = {0};
  struct reader rd;
  char json[128];
  size_t len;
  (void)state;

  tmp_path(json, sizeof json, "switch.json");
  reader_init(&rd, "switch.fifo");
  char *out = capture_stderr(block_switch, &rd, &len);
  assert_int_equal(check_buf(rd.buf, rd.len, ACCESS_TEXT, seen, 30, NULL), 10);
  assert_int_equal(check_file(json, ACCESS_JSON, seen, 30, NULL), 20);
  for (unsigned i = 0; i < 30; i++)
    assert_int_equal(seen[i], 1);
  assert_int_equal(accesslog_dropped(), drop_base);
  assert_int_equal(count_str(out, "access log: resumed: "), 1);
  free(out);
  reader_done(&rd);
  unlink(json);
}

/* ---- per-uid shares of the queue --------------------------------------- */

#define MAX_TICKETS 20000

/* Reserve for uid until refused; returns how many, bytes held in *bytes. */
static size_t reserve_all(struct accesslog_ticket *t, uid_t uid,
                          size_t path_len, size_t *bytes) {
  size_t n = 0;

  *bytes = 0;
  while (n < MAX_TICKETS && accesslog_reserve(&t[n], uid, path_len) == 0)
    *bytes += t[n++].bytes;
  assert_true(n < MAX_TICKETS);
  return n;
}

static void cancel_all(struct accesslog_ticket *t, size_t n) {
  for (size_t i = 0; i < n; i++)
    accesslog_cancel(&t[i]);
}

/* Reservations are never taken by the writer, so the queue holds still. */
static void test_share_one_uid(void **state) {
  struct accesslog_ticket *a = calloc(MAX_TICKETS, sizeof *a);
  struct accesslog_ticket *b = calloc(MAX_TICKETS, sizeof *b);
  size_t na, nb, ba, bb;
  (void)state;

  assert_true(a != NULL && b != NULL);
  assert_int_equal(al_start("off", ACCESS_TEXT), 0);
  na = reserve_all(a, 1, PFP_PATH_MAX, &ba);
  /* Refused by its share, with room left in the queue. */
  assert_true(na >= 4);
  assert_true(ba <= ACCESSLOG_UID_SHARE);
  assert_true(ba + a[0].bytes > ACCESSLOG_UID_SHARE);
  /* Another uid is not affected: the same share. */
  nb = reserve_all(b, 2, PFP_PATH_MAX, &bb);
  assert_int_equal(nb, na);
  /* A cancel gives the share back. */
  cancel_all(a, na);
  assert_int_equal(reserve_all(a, 1, PFP_PATH_MAX, &ba), na);
  cancel_all(a, na);
  cancel_all(b, nb);
  accesslog_stop();
  free(a);
  free(b);
}

/* However many uids flood, the last ACCESSLOG_QUEUE_SPARE bytes stay for
 * uids that hold little: each of them still gets ACCESSLOG_UID_SMALL. */
static void test_share_spare(void **state) {
  enum { FLOODERS = 4, LIGHT = 5 };
  struct accesslog_ticket *t[FLOODERS + LIGHT];
  size_t n[FLOODERS + LIGHT], b[FLOODERS + LIGHT], total = 0;
  struct accesslog_ticket x;
  (void)state;

  assert_int_equal(al_start("off", ACCESS_TEXT), 0);
  for (int u = 0; u < FLOODERS + LIGHT; u++) {
    t[u] = calloc(MAX_TICKETS, sizeof *t[u]);
    assert_non_null(t[u]);
    n[u] = reserve_all(t[u], 100 + u, PFP_PATH_MAX, &b[u]);
    total += b[u];
  }
  /* The first flooders got a whole share each; the queue stopped taking
   * flooders with ACCESSLOG_QUEUE_SPARE bytes still free. */
  assert_true(b[0] + t[0][0].bytes > ACCESSLOG_UID_SHARE);
  assert_true(b[1] + t[1][0].bytes > ACCESSLOG_UID_SHARE);
  assert_true(b[0] + b[1] + b[2] + b[3] <=
              ACCESSLOG_QUEUE_BYTES - ACCESSLOG_QUEUE_SPARE +
                  ACCESSLOG_UID_SMALL + 2 * t[0][0].bytes);
  /* Every light uid got at least ACCESSLOG_UID_SMALL. */
  for (int u = FLOODERS; u < FLOODERS + LIGHT; u++)
    assert_true(b[u] >= ACCESSLOG_UID_SMALL);
  /* A flooder is refused even a short record; a new uid is not. */
  assert_int_equal(accesslog_reserve(&x, 100, 1), -EAGAIN);
  assert_int_equal(accesslog_reserve(&x, 999, 1), 0);
  accesslog_cancel(&x);
  assert_true(total <= ACCESSLOG_QUEUE_BYTES);
  for (int u = 0; u < FLOODERS + LIGHT; u++) {
    cancel_all(t[u], n[u]);
    free(t[u]);
  }
  accesslog_stop();
}

/* A committed record counts against its uid until the writer takes it. */
static void test_share_released_by_writer(void **state) {
  struct accesslog_ticket *t = calloc(MAX_TICKETS, sizeof *t);
  size_t n, again = 0, bytes;
  (void)state;

  assert_non_null(t);
  assert_int_equal(al_start("off", ACCESS_TEXT), 0);
  n = reserve_all(t, 7, 16, &bytes);
  for (size_t i = 0; i < n; i++) {
    struct access_record r = sample_path("/short", 6);
    r.uid = 7;
    accesslog_commit(&t[i], &r);
  }
  for (int i = 0; i < 1000 && again < n; i++) {
    again = reserve_all(t, 7, 16, &bytes);
    cancel_all(t, again);
    if (again < n)
      sleep_ms(10);
  }
  assert_true(again >= n);
  accesslog_stop();
  free(t);
}

/* The table of uids is bounded: when it is full a new uid waits like a full
 * queue (fail safe), uids already in it are served, and every slot comes
 * back when the uids hold nothing (no slot leaks through any order of
 * reserve and cancel). */
static void test_share_table_full(void **state) {
  struct accesslog_ticket *t = calloc(MAX_TICKETS, sizeof *t);
  struct accesslog_ticket x;
  unsigned seed = 99;
  size_t n, u, k;
  (void)state;

  assert_non_null(t);
  assert_int_equal(al_start("off", ACCESS_TEXT), 0);
  for (u = 0; u < MAX_TICKETS; u++)
    if (accesslog_reserve(&t[u], 100000 + (uid_t)u, 1) != 0)
      break;
  n = u;
  assert_true(n >= 256 && n < MAX_TICKETS);
  assert_true(n * t[0].bytes < ACCESSLOG_QUEUE_BYTES / 4); /* not the room */
  assert_int_equal(accesslog_reserve(&x, 100001, 1), 0);
  accesslog_cancel(&x);
  accesslog_cancel(&t[5]);
  assert_int_equal(accesslog_reserve(&t[5], 100000 + (uid_t)n, 1), 0);
  assert_int_equal(accesslog_reserve(&x, 100000 + (uid_t)n + 1, 1), -EAGAIN);
  /* Churn: cancel and reserve in random order, then give everything back. */
  for (int i = 0; i < 20000; i++) {
    seed = seed * 1103515245 + 12345;
    k = (seed >> 8) % n;
    accesslog_cancel(&t[k]);
    (void)accesslog_reserve(&t[k], 100000 + (seed >> 4) % (2 * n), 1);
  }
  cancel_all(t, n);
  for (u = 0; u < MAX_TICKETS; u++)
    if (accesslog_reserve(&t[u], 200000 + (uid_t)u, 1) != 0)
      break;
  assert_int_equal(u, n);
  cancel_all(t, u);
  accesslog_stop();
  free(t);
}

#define FLOOD_RECORDS 20000
#define FLOOD_PATH 200

struct drain {
  int fd;
  size_t lines;
};

static void *drain_fifo(void *arg) {
  struct drain *d = arg;
  char buf[65536];
  ssize_t n;

  while ((n = read(d->fd, buf, sizeof buf)) > 0)
    d->lines += count_nl(buf, (size_t)n);
  return NULL;
}

static uint64_t flood_dropped, flood_refused;
static size_t flood_lines;

static void flood(void *arg) {
  const char *fifo = arg;
  char path[FLOOD_PATH];
  struct access_record r = sample_path(path, sizeof path);
  struct drain d = {0};
  pthread_t t;
  uint64_t dropped = accesslog_dropped();

  /* The reader opens first (non-blocking, so it does not wait for the
   * writer) but reads only later: the writer thread blocks on a full pipe
   * while the queue fills up behind it. */
  d.fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  assert_true(d.fd >= 0);
  assert_int_equal(al_start(fifo, ACCESS_TEXT), 0);
  fcntl(d.fd, F_SETFL, fcntl(d.fd, F_GETFL) & ~O_NONBLOCK);
  memset(path, 'p', sizeof path);
  flood_refused = 0;
  for (unsigned i = 0; i < FLOOD_RECORDS; i++)
    /* returns at once although nothing is read */
    flood_refused += accesslog_write(&r) == -EAGAIN;
  assert_int_equal(pthread_create(&t, NULL, drain_fifo, &d), 0);
  accesslog_stop(); /* the close gives the reader its EOF */
  pthread_join(t, NULL);
  close(d.fd);
  flood_dropped = accesslog_dropped() - dropped;
  flood_lines = d.lines;
}

/* A stuck destination: accesslog_write() does not wait; once the queue is
 * full it refuses (the caller waits), and every record it took is written:
 * nothing is dropped. */
static void test_queue_full(void **state) {
  char fifo[128];
  size_t len;
  (void)state;

  tmp_path(fifo, sizeof fifo, "fifo");
  assert_int_equal(mkfifo(fifo, 0600), 0);
  log_setup("stderr", LOG_LVL_INFO);
  char *out = capture_stderr(flood, fifo, &len);
  assert_true(flood_refused > 0);
  assert_int_equal(flood_dropped, 0);
  assert_int_equal(flood_lines + flood_refused, FLOOD_RECORDS);
  free(out);
  unlink(fifo);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_reopen),
      cmocka_unit_test(test_reopen_fails),
      cmocka_unit_test(test_reconfigure),
      cmocka_unit_test(test_bad_destination),
      cmocka_unit_test(test_stderr_destination),
      cmocka_unit_test(test_fail_drop),
      cmocka_unit_test(test_fail_block),
      cmocka_unit_test(test_fail_block_stop),
      cmocka_unit_test(test_fail_block_reconfigure),
      cmocka_unit_test(test_share_one_uid),
      cmocka_unit_test(test_share_spare),
      cmocka_unit_test(test_share_released_by_writer),
      cmocka_unit_test(test_share_table_full),
      cmocka_unit_test(test_queue_full),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
