/* test_fsguard.c - the directory walk and the log-file open of fsguard.h on
 * real directories, links, FIFOs and devices in a temp dir: what is
 * refused, with which message, what strict_modes = no lets through with a
 * warning, and what is created with which mode. Cases that need other
 * owners (chown) run only as root and are skipped otherwise. */
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

#include "fsguard.h"
#include "log.h"

#define OTHER_UID 61001 /* a uid with no business in our files */
#define OTHER_UID2 61002
#define ERR_MAX 2048

static char top[64]; /* the temp dir, root-or-us owned, 0755 */
static char err[ERR_MAX];

/* top/rel into buf (static rotation, so a test can hold several). */
static const char *P(const char *rel) {
  static char bufs[6][256];
  static int next;
  char *b = bufs[next++ % 6];
  snprintf(b, 256, "%s/%s", top, rel);
  return b;
}

static void mkdir_mode(const char *rel, mode_t mode) {
  assert_int_equal(mkdir(P(rel), 0700), 0);
  assert_int_equal(chmod(P(rel), mode), 0);
}

static void write_file(const char *rel, const char *content, mode_t mode) {
  int fd = open(P(rel), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, content, strlen(content)),
                   (ssize_t)strlen(content));
  close(fd);
  assert_int_equal(chmod(P(rel), mode), 0);
}

static char *slurp(const char *path) {
  static char buf[8192];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  assert_true(fd >= 0);
  n = read(fd, buf, sizeof buf - 1);
  assert_true(n >= 0);
  buf[n] = '\0';
  close(fd);
  return buf;
}

static int is_root(void) { return geteuid() == 0; }

static void contains(const char *hay, const char *needle) {
  if (strstr(hay, needle) == NULL)
    fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

/* What fn wrote on stderr (the error log), as a string to free. */
static char *stderr_of(void (*fn)(void *), void *arg) {
  char path[128];
  int saved = dup(2), fd;

  snprintf(path, sizeof path, "%s/stderr.txt", top);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  fn(arg);
  dup2(saved, 2);
  close(saved);
  char *out = strdup(slurp(path));
  unlink(path);
  return out;
}

static int setup(void **state) {
  (void)state;
  strcpy(top, "/tmp/pf-fsguard-XXXXXX");
  if (mkdtemp(top) == NULL || chmod(top, 0755) != 0)
    return -1;
  log_setup("stderr", LOG_LVL_INFO);
  return 0;
}

static int teardown(void **state) {
  char cmd[128];
  (void)state;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
  return system(cmd) == 0 ? 0 : -1;
}

/* ---- directories ------------------------------------------------------ */

/* A trusted directory opens as an O_PATH, close-on-exec descriptor of that
 * very directory, however its path is spelled. */
static void test_dir_opens(void **state) {
  struct stat a, b;
  int fd;
  (void)state;

  mkdir_mode("plain", 0755);
  mkdir_mode("plain/sub", 0700);
  assert_int_equal(stat(P("plain/sub"), &a), 0);
  assert_int_equal(fsguard_open_dir("socket directory", P("plain/sub"), 1, 0,
                                    &fd, err, sizeof err),
                   0);
  assert_int_equal(fstat(fd, &b), 0);
  assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
  assert_true(fcntl(fd, F_GETFL) & O_PATH);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  close(fd);

  char odd[256];
  snprintf(odd, sizeof odd, "/%s//./plain/./sub/", top);
  assert_int_equal(
      fsguard_open_dir("socket directory", odd, 1, 0, &fd, err, sizeof err), 0);
  assert_int_equal(fstat(fd, &b), 0);
  assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
  close(fd);

  assert_int_equal(
      fsguard_open_dir("socket directory", "/", 1, 0, &fd, err, sizeof err), 0);
  close(fd);
}

static void test_dir_bad_paths(void **state) {
  int fd = 7;
  (void)state;

  assert_int_equal(
      fsguard_open_dir("socket directory", "tmp/x", 1, 0, &fd, err, sizeof err),
      -EINVAL);
  assert_int_equal(fd, -1);
  assert_string_equal(err, "socket directory tmp/x: not an absolute path");
  assert_int_equal(fsguard_open_dir("socket directory", P("plain/../plain"), 1,
                                    0, &fd, err, sizeof err),
                   -EINVAL);
  contains(err, "\"..\" in the path");
}

/* A symbolic link anywhere on the way is refused, strict or not, with the
 * real path offered; nothing is created behind it. */
static void test_dir_symlink_refused(void **state) {
  char want[512];
  struct stat st;
  int fd = 7;
  (void)state;

  mkdir_mode("real", 0755);
  mkdir_mode("real/sub", 0755);
  assert_int_equal(symlink(P("real"), P("link")), 0);
  for (int strict = 0; strict <= 1; strict++) {
    assert_int_equal(fsguard_open_dir("socket directory", P("link"), strict, 0,
                                      &fd, err, sizeof err),
                     -ELOOP);
    assert_int_equal(fd, -1);
    snprintf(want, sizeof want,
             "socket directory %s: a symbolic link; refusing to follow it "
             "(use the real path, %s)",
             P("link"), P("real"));
    assert_string_equal(err, want);

    assert_int_equal(fsguard_open_dir("socket directory", P("link/sub"), strict,
                                      0, &fd, err, sizeof err),
                     -ELOOP);
    snprintf(want, sizeof want,
             "socket directory %s: its ancestor %s is a symbolic link; "
             "refusing to follow it (use the real path, %s)",
             P("link/sub"), P("link"), P("real/sub"));
    assert_string_equal(err, want);

    assert_int_equal(fsguard_open_dir("socket directory", P("link/new"), strict,
                                      1, &fd, err, sizeof err),
                     -ELOOP);
    assert_int_equal(lstat(P("real/new"), &st), -1);
  }
  /* A dangling link as the directory to create is not followed either. */
  assert_int_equal(symlink(P("real/made-by-link"), P("dangling")), 0);
  assert_int_equal(fsguard_open_dir("socket directory", P("dangling"), 1, 1,
                                    &fd, err, sizeof err),
                   -ELOOP);
  assert_int_equal(lstat(P("real/made-by-link"), &st), -1);
}

static void test_dir_missing_and_not_dir(void **state) {
  char want[512];
  struct stat st;
  int fd;
  (void)state;

  assert_int_equal(
      fsguard_open_dir("log directory", P("none"), 1, 0, &fd, err, sizeof err),
      -ENOENT);
  snprintf(want, sizeof want, "log directory %s: missing", P("none"));
  assert_string_equal(err, want);
  /* Only the last component is made. */
  assert_int_equal(fsguard_open_dir("socket directory", P("none/deeper"), 1, 1,
                                    &fd, err, sizeof err),
                   -ENOENT);
  snprintf(want, sizeof want, "socket directory %s: its ancestor %s is missing",
           P("none/deeper"), P("none"));
  assert_string_equal(err, want);
  assert_int_equal(lstat(P("none"), &st), -1);

  write_file("afile", "x", 0644);
  assert_int_equal(fsguard_open_dir("socket directory", P("afile/sub"), 1, 0,
                                    &fd, err, sizeof err),
                   -ENOTDIR);
  contains(err, "is not a directory");
}

/* The missing last component is made 0755 whatever the umask; an existing
 * one keeps its mode. */
static void test_dir_create(void **state) {
  struct stat st;
  mode_t old = umask(0077);
  int fd;
  (void)state;

  assert_int_equal(fsguard_open_dir("socket directory", P("made"), 1, 1, &fd,
                                    err, sizeof err),
                   0);
  assert_int_equal(lstat(P("made"), &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0755);
  assert_int_equal(st.st_uid, geteuid());
  close(fd);

  mkdir_mode("kept", 0700);
  assert_int_equal(fsguard_open_dir("socket directory", P("kept"), 1, 1, &fd,
                                    err, sizeof err),
                   0);
  assert_int_equal(lstat(P("kept"), &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
  close(fd);
  umask(old);
}

struct call {
  const char *path;
  int strict;
  int rc;
};

static void open_dir_call(void *arg) {
  struct call *c = arg;
  int fd;
  c->rc = fsguard_open_dir("socket directory", c->path, c->strict, 0, &fd, err,
                           sizeof err);
  if (c->rc == 0)
    close(fd);
  if (c->rc == 0 && err[0] != '\0') /* as the daemon does with a warning */
    log_warn("%s", err);
}

/* Group or other write without the sticky bit is refused under strict
 * modes, warned about without; sticky is fine. */
static void test_dir_writable(void **state) {
  static const struct {
    mode_t mode;
    const char *why; /* NULL: accepted */
  } cases[] = {
      {0775, "writable by group (mode 0775) without the sticky bit"},
      {0757, "writable by others (mode 0757) without the sticky bit"},
      {0777, "writable by group and others (mode 0777) without the sticky "
             "bit"},
      {01777, NULL},
      {01770, NULL},
      {0755, NULL},
  };
  char want[512];
  int fd;
  (void)state;

  mkdir_mode("w", 0755);
  mkdir_mode("w/sub", 0755);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(chmod(P("w"), cases[i].mode), 0);
    int rc = fsguard_open_dir("socket directory", P("w"), 1, 0, &fd, err,
                              sizeof err);
    if (cases[i].why == NULL) {
      assert_int_equal(rc, 0);
      close(fd);
      continue;
    }
    assert_int_equal(rc, -EPERM);
    assert_int_equal(fd, -1);
    snprintf(want, sizeof want,
             "socket directory %s: %s; refusing (strict_modes = no to "
             "override)",
             P("w"), cases[i].why);
    assert_string_equal(err, want);
    /* The same about an ancestor. */
    assert_int_equal(fsguard_open_dir("socket directory", P("w/sub"), 1, 0, &fd,
                                      err, sizeof err),
                     -EPERM);
    snprintf(want, sizeof want,
             "socket directory %s: its ancestor %s is %s; refusing "
             "(strict_modes = no to override)",
             P("w/sub"), P("w"), cases[i].why);
    assert_string_equal(err, want);
  }

  assert_int_equal(chmod(P("w"), 0777), 0);
  struct call c = {P("w/sub"), 0, -1};
  char *out = stderr_of(open_dir_call, &c);
  assert_int_equal(c.rc, 0);
  snprintf(want, sizeof want,
           "pipefiled: warning: socket directory %s: its ancestor %s is "
           "writable by group and others (mode 0777) without the sticky bit; "
           "continuing because strict_modes = no\n",
           P("w/sub"), P("w"));
  assert_string_equal(out, want);
  free(out);
  assert_int_equal(chmod(P("w"), 0755), 0);
}

/* Owned by another uid: refused (warned without strict); owned by the
 * daemon's own euid: fine. */
static void test_dir_owner(void **state) {
  char want[512];
  int fd;
  (void)state;

  if (!is_root()) {
    skip(); /* chown to another uid needs root */
    return;
  }
  mkdir_mode("o", 0755);
  mkdir_mode("o/sub", 0755);
  assert_int_equal(chown(P("o"), OTHER_UID, OTHER_UID), 0);
  assert_int_equal(
      fsguard_open_dir("socket directory", P("o"), 1, 0, &fd, err, sizeof err),
      -EPERM);
  snprintf(want, sizeof want,
           "socket directory %s: owned by uid %d, not root or pipefiled's "
           "user; refusing (strict_modes = no to override)",
           P("o"), OTHER_UID);
  assert_string_equal(err, want);
  assert_int_equal(fsguard_open_dir("socket directory", P("o/sub"), 1, 0, &fd,
                                    err, sizeof err),
                   -EPERM);
  contains(err, "its ancestor");

  struct call c = {P("o/sub"), 0, -1};
  char *out = stderr_of(open_dir_call, &c);
  assert_int_equal(c.rc, 0);
  contains(out, "pipefiled: warning: socket directory ");
  contains(out, "owned by uid 61001, not root or pipefiled's user; "
                "continuing because strict_modes = no");
  free(out);

  /* Run as that uid, the directory is the daemon's own; one of a third
   * uid is not, and the message says who the daemon is. */
  assert_int_equal(seteuid(OTHER_UID), 0);
  c.strict = 1;
  open_dir_call(&c);
  int own_rc = c.rc;
  assert_int_equal(seteuid(0), 0);
  assert_int_equal(own_rc, 0);

  assert_int_equal(chown(P("o/sub"), OTHER_UID2, OTHER_UID2), 0);
  assert_int_equal(seteuid(OTHER_UID), 0);
  open_dir_call(&c);
  own_rc = c.rc;
  assert_int_equal(seteuid(0), 0);
  assert_int_equal(own_rc, -EPERM);
  snprintf(want, sizeof want,
           "socket directory %s: owned by uid %d, not root or pipefiled's "
           "user (uid %d); refusing (strict_modes = no to override)",
           P("o/sub"), OTHER_UID2, OTHER_UID);
  assert_string_equal(err, want);
}

/* ---- log files -------------------------------------------------------- */

/* Created 0640 (umask 0), appended to, blocking, close-on-exec; reopened
 * it appends again. */
static void test_log_create_and_append(void **state) {
  struct stat st;
  mode_t old = umask(0);
  int fd, flags;
  (void)state;

  mkdir_mode("logs", 0755);
  assert_int_equal(fsguard_open_log(P("logs/a.log"), 1, &fd, err, sizeof err),
                   0);
  umask(old);
  assert_int_equal(fstat(fd, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0640);
  assert_int_equal(st.st_uid, geteuid());
  flags = fcntl(fd, F_GETFL);
  assert_true(flags & O_APPEND);
  assert_false(flags & O_NONBLOCK);
  assert_int_equal(flags & O_ACCMODE, O_WRONLY);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  assert_int_equal(write(fd, "one\n", 4), 4);
  close(fd);
  assert_int_equal(fsguard_open_log(P("logs/a.log"), 1, &fd, err, sizeof err),
                   0);
  assert_int_equal(write(fd, "two\n", 4), 4);
  close(fd);
  assert_string_equal(slurp(P("logs/a.log")), "one\ntwo\n");
}

/* A symbolic link at the log's path, dangling or not, is never followed,
 * strict or not: its target keeps its content and mode. */
static void test_log_symlink_refused(void **state) {
  char want[512];
  struct stat st;
  int fd = 7;
  (void)state;

  mkdir_mode("ls", 0755);
  write_file("ls/target", "keep\n", 0600);
  assert_int_equal(symlink(P("ls/target"), P("ls/access.log")), 0);
  assert_int_equal(symlink(P("ls/not-yet"), P("ls/dangling.log")), 0);
  for (int strict = 0; strict <= 1; strict++) {
    assert_int_equal(
        fsguard_open_log(P("ls/access.log"), strict, &fd, err, sizeof err),
        -ELOOP);
    assert_int_equal(fd, -1);
    snprintf(want, sizeof want,
             "log file %s: a symbolic link; refusing to follow it",
             P("ls/access.log"));
    assert_string_equal(err, want);
    assert_int_equal(
        fsguard_open_log(P("ls/dangling.log"), strict, &fd, err, sizeof err),
        -ELOOP);
  }
  assert_string_equal(slurp(P("ls/target")), "keep\n");
  assert_int_equal(stat(P("ls/target"), &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(lstat(P("ls/not-yet"), &st), -1);

  /* Nor is a symlinked directory on the way. */
  assert_int_equal(symlink(P("ls"), P("lslink")), 0);
  assert_int_equal(
      fsguard_open_log(P("lslink/new.log"), 1, &fd, err, sizeof err), -ELOOP);
  contains(err, "log directory ");
  assert_int_equal(lstat(P("ls/new.log"), &st), -1);
}

/* Only a regular file or a FIFO: a device, a directory or a socket is
 * refused by type, strict or not. */
static void test_log_types(void **state) {
  int fd;
  (void)state;

  assert_int_equal(fsguard_open_log("/dev/null", 0, &fd, err, sizeof err),
                   -EINVAL);
  assert_string_equal(err, "log file /dev/null: a character device, not a "
                           "regular file or a FIFO; refusing");
  mkdir_mode("types", 0755);
  mkdir_mode("types/d.log", 0755);
  assert_int_equal(fsguard_open_log(P("types/d.log"), 0, &fd, err, sizeof err),
                   -EINVAL);
  contains(err, "a directory, not a regular file or a FIFO");
  assert_int_equal(fsguard_open_log(P("types/"), 1, &fd, err, sizeof err),
                   -EINVAL);
  assert_int_equal(fsguard_open_log("rel.log", 1, &fd, err, sizeof err),
                   -EINVAL);
  assert_int_equal(fsguard_open_log(P("types/.."), 1, &fd, err, sizeof err),
                   -EINVAL);
  assert_int_equal(fsguard_open_log(P("no-dir/x.log"), 1, &fd, err, sizeof err),
                   -ENOENT);
  contains(err, "log directory ");
}

/* A FIFO is fine once someone reads it; without a reader the open fails
 * at once instead of blocking. */
static void test_log_fifo(void **state) {
  int fd, rd;
  (void)state;

  mkdir_mode("f", 0755);
  assert_int_equal(mkfifo(P("f/pipe"), 0600), 0);
  assert_int_equal(fsguard_open_log(P("f/pipe"), 1, &fd, err, sizeof err),
                   -ENXIO);
  rd = open(P("f/pipe"), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  assert_true(rd >= 0);
  assert_int_equal(fsguard_open_log(P("f/pipe"), 1, &fd, err, sizeof err), 0);
  assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
  assert_int_equal(write(fd, "x\n", 2), 2);
  close(fd);
  close(rd);
}

struct logcall {
  const char *path;
  int rc;
};

static void open_log_lax(void *arg) {
  struct logcall *c = arg;
  int fd;
  c->rc = fsguard_open_log(c->path, 0, &fd, err, sizeof err);
  if (c->rc == 0)
    close(fd);
  if (c->rc == 0 && err[0] != '\0') /* as the daemon does with a warning */
    log_warn("%s", err);
}

/* An existing log that others can write, or with a second hard link, is
 * refused under strict modes and only warned about without. */
static void test_log_modes_and_links(void **state) {
  static const struct {
    mode_t mode;
    const char *why;
  } cases[] = {
      {0660, "writable by group (mode 0660)"},
      {0602, "writable by others (mode 0602)"},
      {0666, "writable by group and others (mode 0666)"},
  };
  char want[512];
  int fd;
  (void)state;

  mkdir_mode("m", 0755);
  write_file("m/a.log", "", 0600);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(chmod(P("m/a.log"), cases[i].mode), 0);
    assert_int_equal(fsguard_open_log(P("m/a.log"), 1, &fd, err, sizeof err),
                     -EPERM);
    snprintf(want, sizeof want,
             "log file %s: %s; refusing (strict_modes = no to override)",
             P("m/a.log"), cases[i].why);
    assert_string_equal(err, want);
  }
  struct logcall c = {P("m/a.log"), -1};
  char *out = stderr_of(open_log_lax, &c);
  assert_int_equal(c.rc, 0);
  contains(out, "pipefiled: warning: log file ");
  contains(out, "writable by group and others (mode 0666); continuing "
                "because strict_modes = no");
  free(out);

  write_file("m/secret", "keep\n", 0600);
  assert_int_equal(link(P("m/secret"), P("m/h.log")), 0);
  assert_int_equal(fsguard_open_log(P("m/h.log"), 1, &fd, err, sizeof err),
                   -EPERM);
  snprintf(want, sizeof want,
           "log file %s: a file with 2 hard links; refusing (strict_modes = "
           "no to override)",
           P("m/h.log"));
  assert_string_equal(err, want);
  assert_string_equal(slurp(P("m/secret")), "keep\n");

  /* The directory is judged too. */
  mkdir_mode("m/open", 0777);
  assert_int_equal(chmod(P("m/open"), 0777), 0);
  assert_int_equal(fsguard_open_log(P("m/open/x.log"), 1, &fd, err, sizeof err),
                   -EPERM);
  snprintf(want, sizeof want,
           "log directory %s: writable by group and others (mode 0777) "
           "without the sticky bit; refusing (strict_modes = no to override)",
           P("m/open"));
  assert_string_equal(err, want);
  struct stat st;
  assert_int_equal(lstat(P("m/open/x.log"), &st), -1);
}

static void test_log_owner(void **state) {
  char want[512];
  int fd;
  (void)state;

  if (!is_root()) {
    skip(); /* chown to another uid needs root */
    return;
  }
  mkdir_mode("own", 0755);
  write_file("own/a.log", "", 0644);
  assert_int_equal(chown(P("own/a.log"), OTHER_UID, OTHER_UID), 0);
  assert_int_equal(fsguard_open_log(P("own/a.log"), 1, &fd, err, sizeof err),
                   -EPERM);
  snprintf(want, sizeof want,
           "log file %s: owned by uid %d, not root or pipefiled's user; "
           "refusing (strict_modes = no to override)",
           P("own/a.log"), OTHER_UID);
  assert_string_equal(err, want);
  struct logcall c = {P("own/a.log"), -1};
  char *out = stderr_of(open_log_lax, &c);
  assert_int_equal(c.rc, 0);
  contains(out, "continuing because strict_modes = no");
  free(out);

  /* A directory of another uid: nothing is created in it. */
  mkdir_mode("own/theirs", 0755);
  assert_int_equal(chown(P("own/theirs"), OTHER_UID, OTHER_UID), 0);
  assert_int_equal(
      fsguard_open_log(P("own/theirs/x.log"), 1, &fd, err, sizeof err), -EPERM);
  contains(err, "log directory ");
  contains(err, "owned by uid 61001");
  struct stat st;
  assert_int_equal(lstat(P("own/theirs/x.log"), &st), -1);
}

static void test_kind(void **state) {
  (void)state;
  assert_string_equal(fsguard_kind(S_IFREG | 0644), "regular file");
  assert_string_equal(fsguard_kind(S_IFLNK | 0777), "symbolic link");
  assert_string_equal(fsguard_kind(S_IFSOCK | 0666), "socket");
  assert_string_equal(fsguard_kind(S_IFIFO), "FIFO");
  assert_string_equal(fsguard_kind(S_IFBLK), "block device");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dir_opens),
      cmocka_unit_test(test_dir_bad_paths),
      cmocka_unit_test(test_dir_symlink_refused),
      cmocka_unit_test(test_dir_missing_and_not_dir),
      cmocka_unit_test(test_dir_create),
      cmocka_unit_test(test_dir_writable),
      cmocka_unit_test(test_dir_owner),
      cmocka_unit_test(test_log_create_and_append),
      cmocka_unit_test(test_log_symlink_refused),
      cmocka_unit_test(test_log_types),
      cmocka_unit_test(test_log_fifo),
      cmocka_unit_test(test_log_modes_and_links),
      cmocka_unit_test(test_log_owner),
      cmocka_unit_test(test_kind),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
