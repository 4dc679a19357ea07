/* test_resolve.c - confined open: openat2 and the userspace walk, on real
 * files, symlinks, FIFOs, directories, a leased file and a rename storm in a
 * temp dir. The walk must agree with openat2(RESOLVE_BENEATH) on every path
 * here; the permission case needs root (skipped without it, failed in CI). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "resolve.h"

#define OTHER_UID 61021 /* a uid with no entry and no rights in the tree */
#define DEEP 40         /* levels of deep/: past the walk's 16 held fds */

static char top[64]; /* tmp dir: top/root is served, top/outside is not */
static int rootfd = -1;

typedef int (*open_fn)(int, const char *, int *);

static void mk(const char *rel, const char *content) {
  char p[512];
  snprintf(p, sizeof(p), "%s/%s", top, rel);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(content, f);
  fclose(f);
}

static void ln(const char *target, const char *rel) {
  char p[512];
  snprintf(p, sizeof(p), "%s/%s", top, rel);
  assert_int_equal(symlink(target, p), 0);
}

static void dir(const char *rel, mode_t mode) {
  char p[512];
  snprintf(p, sizeof(p), "%s/%s", top, rel);
  assert_int_equal(mkdir(p, mode), 0);
  assert_int_equal(chmod(p, mode), 0); /* whatever the umask */
}

static int setup(void **state) {
  char rel[512], target[512];
  (void)state;
  strcpy(top, "/tmp/pf-resolve-XXXXXX");
  assert_non_null(mkdtemp(top));
  dir("root", 0755);
  dir("root/sub", 0755);
  dir("outside", 0755);
  mk("root/a.txt", "a");
  mk("root/sub/b.txt", "b");
  mk("outside/secret", "s");
  ln("../a.txt", "root/sub/up");          /* stays inside */
  ln("sub", "root/sublink");              /* directory link, inside */
  ln("sub/", "root/sublink_slash");       /* target with a trailing slash */
  ln("../outside/secret", "root/escape"); /* leaves the root */
  ln("sub/../../outside/secret", "root/escape_inner"); /* .. mid-target */
  ln("/etc/passwd", "root/abs");                       /* absolute */
  ln("/proc/self/fd/0", "root/magic");                 /* a magic link */
  ln("loop2", "root/loop1");
  ln("loop1", "root/loop2");
  ln("self", "root/self");
  ln("up", "root/sub/chain"); /* link to a link */
  ln("nothing", "root/dangling");

  /* a/b/c/d/link -> ../../../../x/y/file: ".." inside a target */
  dir("root/a", 0755);
  dir("root/a/b", 0755);
  dir("root/a/b/c", 0755);
  dir("root/a/b/c/d", 0755);
  dir("root/x", 0755);
  dir("root/x/y", 0755);
  mk("root/x/y/file", "xyf");
  ln("../../../../x/y/file", "root/a/b/c/d/link");
  ln("../../../../../outside/secret", "root/a/b/c/d/out");
  ln("../../../..", "root/a/b/c/d/uproot"); /* a dir link: the root */
  ln("../../c/../../b/c/d/../../../../a.txt", "root/a/b/c/d/zigzag");

  /* deep/ DEEP levels, a link at the bottom climbing all the way up */
  strcpy(rel, "root/deep");
  dir(rel, 0755);
  for (int i = 1; i < DEEP; i++) {
    strcat(rel, "/d");
    dir(rel, 0755);
  }
  target[0] = '\0';
  for (int i = 0; i < DEEP; i++)
    strcat(target, "../");
  strcat(target, "a.txt");
  strcat(rel, "/up");
  ln(target, rel);

  /* private/ is searchable by root only; a link leads into it */
  dir("root/private", 0700);
  mk("root/private/f", "p");
  assert_int_equal(chmod(strcat(strcpy(rel, top), "/root/private/f"), 0644), 0);
  ln("private", "root/toprivate");

  char p[512];
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
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  close(fd);
  return 0;
}

/* Both methods: the same answer. */
static void both(const char *rel, int want_rc, const char *want) {
  int a = try_open(resolve_open, rel, want);
  int w = try_open(resolve_open_walk, rel, want);
  if (a != want_rc || w != want_rc)
    fail_msg("%s: openat2 %d (%s), walk %d (%s), want %d (%s)", rel, a,
             strerror(-a), w, strerror(-w), want_rc, strerror(-want_rc));
}

static int open_fds(void) {
  int n = 0;
  char p[64];
  for (int fd = 0; fd < 1024; fd++) {
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    if (access(p, F_OK) == 0)
      n++;
  }
  return n;
}

static void test_plain_files(void **state) {
  (void)state;
  both("a.txt", 0, "a");
  both("sub/b.txt", 0, "b");
  both("sub//b.txt", 0, "b");
  both("./sub/./b.txt", 0, "b");
}

static void test_missing(void **state) {
  (void)state;
  both("nope", -ENOENT, NULL);
  both("nope/x", -ENOENT, NULL);
  both("a.txt/x", -ENOTDIR, NULL);
  both("a.txt/", -ENOTDIR, NULL);
  both("dangling", -ENOENT, NULL);
  both("", -ENOENT, NULL);
}

static void test_symlinks_inside_are_followed(void **state) {
  (void)state;
  both("sub/up", 0, "a");
  both("sub/chain", 0, "a");
  both("sublink/b.txt", 0, "b");
  both("sublink_slash/b.txt", 0, "b");
  both("sublink/../a.txt", 0, "a");
  both("sublink/", 0, NULL);
  both("sub/up/", -ENOTDIR, NULL); /* a file link with a trailing slash */
}

static void test_dotdot_inside_targets(void **state) {
  (void)state;
  both("a/b/c/d/link", 0, "xyf");
  both("a/b/c/d/zigzag", 0, "a");
  both("a/b/c/d/uproot/a.txt", 0, "a");
  both("a/b/c/d/uproot/sub/b.txt", 0, "b");
  both("a/b/c/d/uproot/a/b/c/d/link", 0, "xyf");
}

static void test_symlink_escape_refused(void **state) {
  (void)state;
  both("escape", -EXDEV, NULL);
  both("escape_inner", -EXDEV, NULL);
  both("a/b/c/d/out", -EXDEV, NULL);
  both("abs", -EXDEV, NULL);
  both("/a.txt", -EXDEV, NULL);
  both("../outside/secret", -EXDEV, NULL);
  both("sub/../../outside/secret", -EXDEV, NULL);
  both("a/b/c/d/uproot/..", -EXDEV, NULL);
  /* openat2 refuses magic links (-ELOOP: RESOLVE_NO_MAGICLINKS); the walk
   * never gets that far: the target is absolute. Either way, refused. */
  assert_int_not_equal(try_open(resolve_open, "magic", NULL), 0);
  assert_int_equal(try_open(resolve_open_walk, "magic", NULL), -EXDEV);
}

static void test_loop(void **state) {
  (void)state;
  both("loop1", -ELOOP, NULL);
  both("self", -ELOOP, NULL);
  both("self/x", -ELOOP, NULL);
}

/* ".." back up through more directories than the walk keeps open: the
 * closed ones are found again and checked; no descriptor is left behind. */
static void test_deep_tree_bounded_fds(void **state) {
  char rel[512] = "deep";
  (void)state;
  for (int i = 1; i < DEEP; i++)
    strcat(rel, "/d");
  strcat(rel, "/up");
  int before = open_fds();
  both(rel, 0, "a");
  for (int i = 0; i < 50; i++)
    assert_int_equal(try_open(resolve_open_walk, "escape", NULL), -EXDEV);
  assert_int_equal(open_fds(), before);
}

/* 40 symlinks per lookup, as the kernel counts them, even when each one is
 * fine on its own. */
static void test_link_budget(void **state) {
  char rel[1024] = "", *p = rel;
  (void)state;
  for (int i = 0; i < 40; i++)
    p += sprintf(p, "sublink/../");
  strcpy(p, "a.txt");
  both(rel, 0, "a");
  memmove(rel + strlen("sublink/../"), rel, strlen(rel) + 1);
  memcpy(rel, "sublink/../", strlen("sublink/../"));
  both(rel, -ELOOP, NULL);
}

/* In a new directory d beneath the root: l0 -> l1 -> ... -> l<n-1> -> f,
 * each target `reps` times "<sub>/../" before the next name; d/<sub> is a
 * directory and d/f holds "a". */
static void make_chain(const char *d, const char *sub, int n, int reps) {
  char path[512], target[PATH_MAX], *t;

  assert_int_equal(mkdirat(rootfd, d, 0755), 0);
  snprintf(path, sizeof(path), "%s/%s", d, sub);
  assert_int_equal(mkdirat(rootfd, path, 0755), 0);
  snprintf(path, sizeof(path), "%s/f", d);
  int f = openat(rootfd, path, O_CREAT | O_WRONLY, 0644);
  assert_true(f >= 0);
  assert_int_equal(write(f, "a", 1), 1);
  close(f);
  for (int i = 0; i < n; i++) {
    t = target;
    for (int k = 0; k < reps; k++)
      t += sprintf(t, "%s/../", sub);
    if (i + 1 < n)
      sprintf(t, "l%d", i + 1);
    else
      strcpy(t, "f");
    snprintf(path, sizeof(path), "%s/l%d", d, i);
    assert_int_equal(symlinkat(target, rootfd, path), 0);
  }
}

/* The walk bounds its total work: 4096 components and 64 KiB of link text
 * spliced per lookup, past either -ELOOP, so a chain of 40 links of ~4 KiB
 * "a/../" (64,000 components) costs it next to nothing. openat2, whose work
 * the kernel bounds, follows the same chains. Chains within both bounds
 * open as before. */
static void test_walk_work_budget(void **state) {
  char name[251];
  (void)state;

  /* Components: 1600 a link; 2 links fit, 3 do not, nor 40. */
  make_chain("steps2", "a", 2, 800);
  make_chain("steps3", "a", 3, 800);
  make_chain("steps40", "a", 40, 800);
  both("steps2/l0", 0, "a");
  assert_int_equal(try_open(resolve_open, "steps3/l0", "a"), 0);
  assert_int_equal(try_open(resolve_open_walk, "steps3/l0", NULL), -ELOOP);
  assert_int_equal(try_open(resolve_open, "steps40/l0", "a"), 0);
  assert_int_equal(try_open(resolve_open_walk, "steps40/l0", NULL), -ELOOP);
  /* Bytes: ~3.8 KiB a link in few components (names of 250 bytes); 15
   * links fit in 64 KiB, 40 do not. */
  memset(name, 'L', 250);
  name[250] = '\0';
  make_chain("bytes15", name, 15, 15);
  make_chain("bytes40", name, 40, 15);
  both("bytes15/l0", 0, "a");
  assert_int_equal(try_open(resolve_open, "bytes40/l0", "a"), 0);
  assert_int_equal(try_open(resolve_open_walk, "bytes40/l0", NULL), -ELOOP);
}

/* The walk's stack is 1024 directories deep: a file 1024 levels down opens,
 * one more level is -ENAMETOOLONG (never a crash or an fd leak). */
static void test_depth_bound(void **state) {
  char rel[4096] = "", *p = rel;
  int fd = dup(rootfd), next, f;
  (void)state;
  for (int i = 0; i < 1025; i++) {
    assert_int_equal(mkdirat(fd, "n", 0755), 0);
    next = openat(fd, "n", O_PATH | O_DIRECTORY);
    assert_true(next >= 0);
    close(fd);
    fd = next;
    if (i == 1022) { /* in the 1023rd directory: a file at depth 1024 */
      f = openat(fd, "f", O_CREAT | O_WRONLY, 0644);
      assert_true(f >= 0);
      assert_int_equal(write(f, "deep", 4), 4);
      close(f);
    }
  }
  f = openat(fd, "f", O_CREAT | O_WRONLY, 0644);
  assert_true(f >= 0);
  close(f);
  close(fd);
  int before = open_fds();
  for (int i = 0; i < 1023; i++)
    p += sprintf(p, "n/");
  strcpy(p, "f");
  assert_int_equal(try_open(resolve_open_walk, rel, "deep"), 0);
  strcpy(p, "n/n/f");
  assert_int_equal(try_open(resolve_open_walk, rel, NULL), -ENAMETOOLONG);
  assert_int_equal(open_fds(), before);
}

static void test_fifo_and_dir_open_without_blocking(void **state) {
  (void)state;
  /* Opening succeeds at once (O_NONBLOCK); serve.c then refuses non-regular
   * files. Without O_NONBLOCK this would hang with no writer. */
  both("fifo", 0, NULL);
  both(".", 0, NULL);
  both("sub/..", 0, NULL);
}

/* ---------------------------------------------- as another uid (root) */

struct as_other {
  const char *path;
  int rc_openat2, rc_walk;
  int switched;
};

static void *other_thread(void *arg) {
  struct as_other *a = arg;
  /* setfsuid/setfsgid and setgroups are per thread as system calls; the
   * fs capabilities go with fsuid 0. */
  if (syscall(SYS_setgroups, 0, NULL) != 0)
    return NULL;
  setfsgid(OTHER_UID);
  setfsuid(OTHER_UID);
  a->switched = setfsuid(-1) == OTHER_UID && setfsgid(-1) == OTHER_UID;
  int fd;
  a->rc_openat2 = resolve_open(rootfd, a->path, &fd);
  if (fd >= 0)
    close(fd);
  a->rc_walk = resolve_open_walk(rootfd, a->path, &fd);
  if (fd >= 0)
    close(fd);
  return NULL;
}

static void as_other(const char *path, int want) {
  struct as_other a = {.path = path};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_thread, &a), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_true(a.switched);
  if (a.rc_openat2 != want || a.rc_walk != want)
    fail_msg("%s as uid %d: openat2 %d, walk %d, want %d", path, OTHER_UID,
             a.rc_openat2, a.rc_walk, want);
}

static void test_permissions_hold_per_component(void **state) {
  (void)state;
  if (geteuid() != 0) {
    if (getenv("CI") && strcmp(getenv("CI"), "true") == 0)
      fail_msg("this test needs root, and CI runs as root");
    skip();
  }
  both("toprivate/f", 0, "p"); /* root may */
  as_other("a.txt", 0);
  as_other("a/b/c/d/link", 0);
  as_other("private/f", -EACCES);
  as_other("toprivate/f", -EACCES);
  as_other("toprivate/../a.txt", -EACCES); /* cannot even look in */
}

/* -------------------------------------------------------- a leased file */

/* A child takes a write lease on root/leased and holds it until told. Any
 * open by another process must then wait for the holder (or fail at once
 * with O_NONBLOCK): resolve_open must say -EAGAIN at once, not spin. */
static void test_leased_file_is_eagain_at_once(void **state) {
  char p[512];
  int go[2], done[2];
  (void)state;
  mk("root/leased", "L");
  snprintf(p, sizeof(p), "%s/root/leased", top);
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(done), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char c = 'n';
    signal(SIGIO, SIG_IGN); /* the lease-break signal */
    int fd = open(p, O_RDWR);
    if (fd >= 0 && fcntl(fd, F_SETLEASE, F_WRLCK) == 0)
      c = 'y';
    if (write(go[1], &c, 1) != 1 || read(done[0], &c, 1) != 1)
      _exit(2);
    fcntl(fd, F_SETLEASE, F_UNLCK);
    _exit(0);
  }
  char c = 0;
  assert_int_equal(read(go[0], &c, 1), 1);
  if (c != 'y') {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("cannot take a lease on %s (leases off?)", p);
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < 100; i++) {
    assert_int_equal(try_open(resolve_open, "leased", NULL), -EAGAIN);
    assert_int_equal(try_open(resolve_open_walk, "leased", NULL), -EAGAIN);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
  print_message("leased file: 200 answers in %.3f ms\n", ms);
  assert_true(ms < 1000); /* each is microseconds; a generous bound */
  both("a.txt", 0, "a");  /* others unaffected */
  assert_int_equal(write(done[1], "x", 1), 1);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  both("leased", 0, "L");
  close(go[0]);
  close(go[1]);
  close(done[0]);
  close(done[1]);
}

/* ------------------------------------------------------ a rename storm */

static atomic_int storm_stop;
static atomic_long storm_renames;

/* Renames its own two files back and forth outside the root: every rename
 * bumps the kernel's global rename sequence, which makes openat2
 * (RESOLVE_BENEATH) answer EAGAIN for a lookup that walked "..". */
static void *storm(void *arg) {
  char a[512], b[512];
  (void)arg;
  snprintf(a, sizeof(a), "%s/outside/s1", top);
  snprintf(b, sizeof(b), "%s/outside/s2", top);
  close(open(a, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  while (!atomic_load(&storm_stop)) {
    if (rename(a, b) == 0 && rename(b, a) == 0)
      atomic_fetch_add(&storm_renames, 2);
  }
  return NULL;
}

static void test_rename_storm_never_fails_a_lookup(void **state) {
  pthread_t t;
  int fails = 0, n = 0;
  struct timespec t0, now;
  (void)state;
  atomic_store(&storm_stop, 0);
  assert_int_equal(pthread_create(&t, NULL, storm, NULL), 0);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  char deep[512] = "deep";
  for (int i = 1; i < DEEP; i++)
    strcat(deep, "/d");
  strcat(deep, "/up");
  do {
    for (int i = 0; i < 100; i++, n += 2) {
      if (try_open(resolve_open, "a/b/c/d/link", "xyf") != 0)
        fails++;
      if (try_open(resolve_open, deep, "a") != 0)
        fails++;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (now.tv_sec - t0.tv_sec < 2);
  atomic_store(&storm_stop, 1);
  assert_int_equal(pthread_join(t, NULL), 0);
  print_message("rename storm: %d lookups, %ld renames, %d failed\n", n,
                atomic_load(&storm_renames), fails);
  assert_true(atomic_load(&storm_renames) > 1000);
  assert_int_equal(fails, 0);
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
      cmocka_unit_test(test_symlinks_inside_are_followed),
      cmocka_unit_test(test_dotdot_inside_targets),
      cmocka_unit_test(test_symlink_escape_refused),
      cmocka_unit_test(test_loop),
      cmocka_unit_test(test_deep_tree_bounded_fds),
      cmocka_unit_test(test_link_budget),
      cmocka_unit_test(test_walk_work_budget),
      cmocka_unit_test(test_depth_bound),
      cmocka_unit_test(test_fifo_and_dir_open_without_blocking),
      cmocka_unit_test(test_permissions_hold_per_component),
      cmocka_unit_test(test_leased_file_is_eagain_at_once),
      cmocka_unit_test(test_rename_storm_never_fails_a_lookup),
      cmocka_unit_test(test_root_must_be_directory),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
