/* test_resolve.c - confined open: openat2 and the fallback walk, on real
 * files, symlinks, FIFOs and directories in a temp dir. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "resolve.h"

static char top[64]; /* tmp dir: top/root is served, top/outside is not */
static int rootfd = -1;

typedef int (*open_fn)(int, const char *, int *);

static void mk(const char *rel, const char *content) {
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", top, rel);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(content, f);
  fclose(f);
}

static void ln(const char *target, const char *rel) {
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", top, rel);
  assert_int_equal(symlink(target, p), 0);
}

static void dir(const char *rel) {
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", top, rel);
  assert_int_equal(mkdir(p, 0755), 0);
}

static int setup(void **state) {
  (void)state;
  strcpy(top, "/tmp/pf-resolve-XXXXXX");
  assert_non_null(mkdtemp(top));
  dir("root");
  dir("root/sub");
  dir("outside");
  mk("root/a.txt", "a");
  mk("root/sub/b.txt", "b");
  mk("outside/secret", "s");
  ln("../a.txt", "root/sub/up");          /* stays inside */
  ln("sub", "root/sublink");              /* directory link, inside */
  ln("../outside/secret", "root/escape"); /* leaves the root */
  ln("/etc/passwd", "root/abs");          /* absolute */
  ln("loop2", "root/loop1");
  ln("loop1", "root/loop2");
  char p[256];
  snprintf(p, sizeof(p), "%s/root/fifo", top);
  assert_int_equal(mkfifo(p, 0644), 0);
  snprintf(p, sizeof(p), "%s/root", top);
  assert_int_equal(resolve_open_root(p, &rootfd), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  close(rootfd);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
  return system(cmd);
}

/* Open rel with fn; return 0 and check content, or the error. */
static int try_open(open_fn fn, const char *rel, const char *want) {
  int fd = 123;
  int rc = fn(rootfd, rel, &fd);
  if (rc != 0) {
    assert_int_equal(fd, -1);
    return rc;
  }
  char buf[16] = {0};
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  if (S_ISREG(st.st_mode) && want) {
    assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
    assert_string_equal(buf, want);
  }
  int flags = fcntl(fd, F_GETFL);
  assert_true(flags & O_NONBLOCK); /* a FIFO must never block a worker */
  close(fd);
  return 0;
}

static void test_plain_files(void **state) {
  (void)state;
  assert_int_equal(try_open(resolve_open, "a.txt", "a"), 0);
  assert_int_equal(try_open(resolve_open, "sub/b.txt", "b"), 0);
  assert_int_equal(try_open(resolve_open_walk, "a.txt", "a"), 0);
  assert_int_equal(try_open(resolve_open_walk, "sub/b.txt", "b"), 0);
}

static void test_missing(void **state) {
  (void)state;
  assert_int_equal(try_open(resolve_open, "nope", NULL), -ENOENT);
  assert_int_equal(try_open(resolve_open_walk, "nope", NULL), -ENOENT);
  assert_int_equal(try_open(resolve_open_walk, "nope/x", NULL), -ENOENT);
  assert_int_equal(try_open(resolve_open, "a.txt/x", NULL), -ENOTDIR);
}

static void test_symlink_inside_followed_by_openat2(void **state) {
  (void)state;
  assert_int_equal(try_open(resolve_open, "sub/up", "a"), 0);
  assert_int_equal(try_open(resolve_open, "sublink/b.txt", "b"), 0);
}

static void test_symlink_escape_refused(void **state) {
  (void)state;
  assert_int_equal(try_open(resolve_open, "escape", NULL), -EXDEV);
  assert_int_equal(try_open(resolve_open, "abs", NULL), -EXDEV);
  assert_int_equal(try_open(resolve_open, "../outside/secret", NULL), -EXDEV);
}

static void test_walk_refuses_every_symlink(void **state) {
  (void)state;
  assert_int_equal(try_open(resolve_open_walk, "sub/up", NULL), -EXDEV);
  assert_int_equal(try_open(resolve_open_walk, "sublink/b.txt", NULL), -EXDEV);
  assert_int_equal(try_open(resolve_open_walk, "escape", NULL), -EXDEV);
  assert_int_equal(try_open(resolve_open_walk, "abs", NULL), -EXDEV);
}

static void test_loop(void **state) {
  (void)state;
  assert_int_equal(try_open(resolve_open, "loop1", NULL), -ELOOP);
  assert_int_equal(try_open(resolve_open_walk, "loop1", NULL), -EXDEV);
}

static void test_fifo_and_dir_open_without_blocking(void **state) {
  (void)state;
  /* Opening succeeds at once (O_NONBLOCK); serve.c then refuses non-regular
   * files. Without O_NONBLOCK this would hang with no writer. */
  assert_int_equal(try_open(resolve_open, "fifo", NULL), 0);
  assert_int_equal(try_open(resolve_open_walk, "fifo", NULL), 0);
  assert_int_equal(try_open(resolve_open, ".", NULL), 0);
  assert_int_equal(try_open(resolve_open_walk, ".", NULL), 0);
}

static void test_root_must_be_directory(void **state) {
  (void)state;
  char p[256];
  int fd = 5;
  snprintf(p, sizeof(p), "%s/root/a.txt", top);
  assert_int_equal(resolve_open_root(p, &fd), -ENOTDIR);
  snprintf(p, sizeof(p), "%s/none", top);
  assert_int_equal(resolve_open_root(p, &fd), -ENOENT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_files),
      cmocka_unit_test(test_missing),
      cmocka_unit_test(test_symlink_inside_followed_by_openat2),
      cmocka_unit_test(test_symlink_escape_refused),
      cmocka_unit_test(test_walk_refuses_every_symlink),
      cmocka_unit_test(test_loop),
      cmocka_unit_test(test_fifo_and_dir_open_without_blocking),
      cmocka_unit_test(test_root_must_be_directory),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
