/* test_logsink_win.c - unit tests of logsink_win.c: the destinations the
 * access and error logs write to on Windows.
 *
 * What each configured name opens, how a bad name is refused, a file
 * appended to and reopened after a rotation renamed it while open, "off"
 * taking everything, stderr written in one piece (or nowhere, as for a
 * service), and the Event Log taking a message (wine's ReportEventW is a
 * stub that takes every message: that it is really recorded, with its
 * type, shows only on Windows, in the Event Viewer). */

/* logsink.h first: libuv's uv.h brings winsock2.h, which must come before
 * windows.h. */
#include "logsink.h"

#include <windows.h>

#include <aclapi.h>
#include <sddl.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static char base[MAX_PATH * 3]; /* this run's directory, UTF-8 */

/* ---- helpers ------------------------------------------------------------ */

static void wide(const char *s, wchar_t *w, int n) {
  assert_true(MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n) > 0);
}

static const char *at(char *buf, size_t len, const char *rel) {
  snprintf(buf, len, "%s\\%s", base, rel);
  return buf;
}

/* The file's contents (at most len - 1 bytes), read with every share. */
static void slurp(const char *path, char *buf, size_t len) {
  wchar_t w[MAX_PATH * 3];
  DWORD n = 0;
  HANDLE h;

  wide(path, w, MAX_PATH * 3);
  h = CreateFileW(w, GENERIC_READ,
                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                  OPEN_EXISTING, 0, NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  assert_true(ReadFile(h, buf, (DWORD)len - 1, &n, NULL));
  buf[n] = '\0';
  CloseHandle(h);
}

static void put(struct logsink *s, const char *text) {
  size_t done = 0;

  assert_int_equal(logsink_write(s, text, strlen(text), &done, 100), 0);
  assert_int_equal(done, strlen(text));
}

static void rm_tree(const wchar_t *dir) {
  wchar_t pat[MAX_PATH * 3], sub[MAX_PATH * 3];
  WIN32_FIND_DATAW fd;
  HANDLE f;

  _snwprintf(pat, MAX_PATH * 3, L"%ls\\*", dir);
  f = FindFirstFileW(pat, &fd);
  if (f != INVALID_HANDLE_VALUE) {
    do {
      if (wcscmp(fd.cFileName, L".") == 0 || wcscmp(fd.cFileName, L"..") == 0)
        continue;
      _snwprintf(sub, MAX_PATH * 3, L"%ls\\%ls", dir, fd.cFileName);
      if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
        rm_tree(sub);
      else
        DeleteFileW(sub);
    } while (FindNextFileW(f, &fd));
    FindClose(f);
  }
  RemoveDirectoryW(dir);
}

/* A fresh base under %TEMP% (see test_fsguard_win.c for why not Z:\tmp). */
static int setup(void **state) {
  wchar_t t[MAX_PATH + 1], w[MAX_PATH * 3];
  char tmp[MAX_PATH * 3];
  static unsigned seq;

  (void)state;
  if (GetTempPathW(MAX_PATH + 1, t) == 0 ||
      WideCharToMultiByte(CP_UTF8, 0, t, -1, tmp, sizeof tmp, NULL, NULL) <= 0)
    return -1;
  tmp[strlen(tmp) - 1] = '\0';
  /* wine reuses process ids from run to run: the clock tells runs
   * apart, so a dir a failed run left behind is not in the way. */
  snprintf(base, sizeof base, "%s\\pf-logsink-%lu-%llu-%u", tmp,
           (unsigned long)GetCurrentProcessId(),
           (unsigned long long)GetTickCount64(), seq++);
  wide(base, w, MAX_PATH * 3);
  return CreateDirectoryW(w, NULL) ? 0 : -1;
}

static int teardown(void **state) {
  wchar_t w[MAX_PATH * 3];

  (void)state;
  wide(base, w, MAX_PATH * 3);
  rm_tree(w);
  return 0;
}

/* ---- tests -------------------------------------------------------------- */

/* The names open as what they say; where() names the place. */
static void test_kinds(void **state) {
  struct logsink s;
  char err[512], p[MAX_PATH * 3];
  (void)state;

  assert_int_equal(logsink_open(&s, "off", 1, err, sizeof err), 0);
  assert_int_equal(s.kind, LOGSINK_OFF);
  logsink_close(&s);
  assert_int_equal(logsink_open(&s, "stderr", 1, err, sizeof err), 0);
  assert_int_equal(s.kind, LOGSINK_STDERR);
  assert_string_equal(logsink_where(&s), "stderr");
  logsink_close(&s);
  assert_int_equal(logsink_open(&s, "syslog", 1, err, sizeof err), 0);
  assert_int_equal(s.kind, LOGSINK_SYSLOG);
  assert_string_equal(logsink_where(&s),
                      "the Windows Event Log (Application, source pipefiled)");
  logsink_close(&s);
  assert_int_equal(
      logsink_open(&s, at(p, sizeof p, "a.log"), 1, err, sizeof err), 0);
  assert_string_equal(err, "");
  assert_int_equal(s.kind, LOGSINK_FILE);
  assert_string_equal(logsink_where(&s), p);
  logsink_close(&s);
  assert_int_equal(s.kind, LOGSINK_OFF);
}

/* Empty, relative, too long, or a file that cannot be: refused with a
 * reason. */
static void test_bad_names(void **state) {
  struct logsink s;
  char err[512], p[MAX_PATH * 3], longname[LOGSINK_PATH_MAX + 8];
  (void)state;

  assert_int_equal(logsink_open(&s, "", 1, err, sizeof err), UV_EINVAL);
  assert_string_equal(err, "no log destination");
  assert_int_equal(logsink_open(&s, NULL, 1, err, sizeof err), UV_EINVAL);
  assert_int_equal(logsink_open(&s, "Syslog", 1, err, sizeof err), UV_EINVAL);
  assert_non_null(strstr(err, "not an absolute path"));
  assert_int_equal(logsink_open(&s, "logs\\a.log", 1, err, sizeof err),
                   UV_EINVAL);
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(logsink_open(&s, longname, 1, err, sizeof err),
                   UV_ENAMETOOLONG);
  assert_int_equal(
      logsink_open(&s, at(p, sizeof p, "no\\a.log"), 1, err, sizeof err),
      UV_ENOENT);
  assert_non_null(strstr(err, "missing"));
}

/* "off" takes everything and keeps nothing; a stream write to the Event
 * Log is refused (it takes messages: logsink_syslog). */
static void test_off_and_syslog_write(void **state) {
  struct logsink s;
  char err[256];
  size_t done = 7;
  (void)state;

  assert_int_equal(logsink_open(&s, "off", 1, err, sizeof err), 0);
  assert_int_equal(logsink_write(&s, "abc\n", 4, &done, 0), 0);
  assert_int_equal(done, 4);
  assert_int_equal(logsink_reopen(&s, err, sizeof err), 0);
  logsink_close(&s);
  assert_int_equal(logsink_open(&s, "syslog", 1, err, sizeof err), 0);
  assert_int_equal(logsink_write(&s, "abc\n", 4, &done, 0), UV_EINVAL);
  assert_int_equal(done, 0);
  assert_int_equal(logsink_reopen(&s, err, sizeof err), 0);
  logsink_close(&s);
}

/* Lines are appended, to a file that existed too; a rotation renames the
 * file while it is open (FILE_SHARE_DELETE), lines go on into the renamed
 * file until the reopen, and after it into a new file by the old name. */
static void test_file_rotation(void **state) {
  struct logsink s;
  char err[512], p[MAX_PATH * 3], q[MAX_PATH * 3], buf[256];
  wchar_t wp[MAX_PATH * 3], wq[MAX_PATH * 3];
  (void)state;

  assert_int_equal(
      logsink_open(&s, at(p, sizeof p, "access.log"), 1, err, sizeof err), 0);
  put(&s, "one\n");
  logsink_close(&s);
  assert_int_equal(logsink_open(&s, p, 1, err, sizeof err), 0);
  put(&s, "two\n");
  slurp(p, buf, sizeof buf);
  assert_string_equal(buf, "one\ntwo\n");

  wide(p, wp, MAX_PATH * 3);
  wide(at(q, sizeof q, "access.log.1"), wq, MAX_PATH * 3);
  assert_true(MoveFileExW(wp, wq, 0));
  put(&s, "three\n");
  assert_int_equal(logsink_reopen(&s, err, sizeof err), 1);
  assert_string_equal(err, "");
  put(&s, "four\n");
  logsink_close(&s);
  slurp(q, buf, sizeof buf);
  assert_string_equal(buf, "one\ntwo\nthree\n");
  slurp(p, buf, sizeof buf);
  assert_string_equal(buf, "four\n");
}

/* A reopen with nothing renamed (a reload, or `sc control pipefiled 128`
 * before any rotation) opens the same file again while the old handle is
 * still open: it must work and the lines stay in one file, in order; so must
 * a second sink on the same file (a reload that keeps access_log). */
static void test_file_reopen_same(void **state) {
  struct logsink s, t;
  char err[512], p[MAX_PATH * 3], buf[256];
  (void)state;

  assert_int_equal(
      logsink_open(&s, at(p, sizeof p, "access.log"), 1, err, sizeof err), 0);
  put(&s, "one\n");
  assert_int_equal(logsink_reopen(&s, err, sizeof err), 1);
  assert_string_equal(err, "");
  put(&s, "two\n");
  assert_int_equal(logsink_open(&t, p, 1, err, sizeof err), 0);
  put(&t, "three\n");
  logsink_close(&s);
  put(&t, "four\n");
  logsink_close(&t);
  slurp(p, buf, sizeof buf);
  assert_string_equal(buf, "one\ntwo\nthree\nfour\n");
}

/* A reopen that fails keeps the old file: lines still go somewhere. Made
 * to fail by granting Everyone write on the log directory (strict_modes
 * refuses it; wine maps that grant to the mode bits and back). */
static void test_file_reopen_fails(void **state) {
  struct logsink s;
  char err[512], p[MAX_PATH * 3], buf[256];
  wchar_t wd[MAX_PATH * 3];
  PSECURITY_DESCRIPTOR sd = NULL;
  PACL dacl = NULL;
  BOOL present, def;
  (void)state;

  wide(at(p, sizeof p, "logs"), wd, MAX_PATH * 3);
  assert_true(CreateDirectoryW(wd, NULL));
  assert_int_equal(
      logsink_open(&s, at(p, sizeof p, "logs\\a.log"), 1, err, sizeof err), 0);
  put(&s, "one\n");
  assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorW(
      L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;WD)", SDDL_REVISION_1, &sd, NULL));
  assert_true(GetSecurityDescriptorDacl(sd, &present, &dacl, &def));
  assert_int_equal(SetNamedSecurityInfoW(wd, SE_FILE_OBJECT,
                                         DACL_SECURITY_INFORMATION, NULL, NULL,
                                         dacl, NULL),
                   ERROR_SUCCESS);
  LocalFree(sd);
  assert_int_equal(logsink_reopen(&s, err, sizeof err), UV_EPERM);
  assert_non_null(strstr(err, "writable by Everyone"));
  put(&s, "two\n");
  logsink_close(&s);
  slurp(p, buf, sizeof buf);
  assert_string_equal(buf, "one\ntwo\n");
}

/* stderr: a line goes out whole where stderr leads (here a file), with
 * no journal mark; a process without stderr (a service) takes lines and
 * keeps nothing, without an error. */
static void test_stderr(void **state) {
  struct logsink s;
  char err[256], p[MAX_PATH * 3], buf[256], mark[8] = "x";
  wchar_t w[MAX_PATH * 3];
  HANDLE old = GetStdHandle(STD_ERROR_HANDLE), f;
  size_t done = 0;
  (void)state;

  assert_int_equal(logsink_stderr_mark(LOGSINK_PRI_ERROR, mark, sizeof mark),
                   0);
  assert_string_equal(mark, "");

  wide(at(p, sizeof p, "stderr.txt"), w, MAX_PATH * 3);
  f = CreateFileW(w, GENERIC_WRITE, FILE_SHARE_READ, NULL, CREATE_ALWAYS, 0,
                  NULL);
  assert_true(f != INVALID_HANDLE_VALUE);
  assert_true(SetStdHandle(STD_ERROR_HANDLE, f));
  logsink_stderr_line("pipefiled: error: one\n", 22);
  assert_int_equal(logsink_open(&s, "stderr", 1, err, sizeof err), 0);
  put(&s, "two\n");
  logsink_close(&s);

  assert_true(SetStdHandle(STD_ERROR_HANDLE, NULL));
  logsink_stderr_line("nowhere\n", 8);
  assert_int_equal(logsink_open(&s, "stderr", 1, err, sizeof err), 0);
  assert_int_equal(logsink_write(&s, "nowhere\n", 8, &done, 0), 0);
  assert_int_equal(done, 8);
  logsink_close(&s);

  SetStdHandle(STD_ERROR_HANDLE, old);
  CloseHandle(f); /* logsink_close left it open: stderr is not ours */
  slurp(p, buf, sizeof buf);
  assert_string_equal(buf, "pipefiled: error: one\ntwo\n");
}

/* The Event Log takes a message at each priority, one cut at the bound
 * (inside a multi-byte character), and one that is not UTF-8; under wine
 * the stub takes them all, and on Windows a failure is a clear code,
 * never a crash. */
static void test_event_log(void **state) {
  static char big[LOGSINK_SYSLOG_MSG_MAX + 64];
  int rc;
  (void)state;

  for (int pri = LOGSINK_PRI_ERROR; pri <= LOGSINK_PRI_DEBUG; pri++) {
    rc = logsink_syslog((enum logsink_priority)pri, "test_logsink_win", 16, 0);
    if (rc != 0)
      fail_msg("ReportEventW: %s", uv_strerror(rc));
  }
  for (size_t i = 0; i + 2 < sizeof big; i += 2) {
    big[i] = (char)0xC3; /* "é", two bytes */
    big[i + 1] = (char)0xA9;
  }
  assert_int_equal(logsink_syslog(LOGSINK_PRI_INFO, big + 1, sizeof big - 3, 0),
                   0);
  assert_int_equal(logsink_syslog(LOGSINK_PRI_INFO, "\xff\xfe bad", 6, 0), 0);
  assert_int_equal(logsink_syslog(LOGSINK_PRI_INFO, "", 0, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_kinds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
      cmocka_unit_test(test_off_and_syslog_write),
      cmocka_unit_test_setup_teardown(test_file_rotation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_reopen_same, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_reopen_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stderr, setup, teardown),
      cmocka_unit_test(test_event_log),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
