/* test_fsguard_win.c - unit tests of fsguard_win.c: the directories and log
 * files the daemon writes, judged by owner, DACL and reparse points.
 *
 * Run under wine as well as on Windows. Wine keeps no security descriptor
 * of its own: it maps a DACL to and from the Unix mode bits (Everyone is
 * "other"), so a DACL that grants Everyone write comes back as one, and
 * the refusal is proven; the other principals (Users, a foreign owner) are
 * not stored and are only checked on Windows. Wine 8 cannot make reparse
 * points (CreateSymbolicLinkW makes nothing; FSCTL_SET_REPARSE_POINT is
 * not supported): those tests skip there, saying so. */
/* fsguard.h first: libuv's uv.h brings winsock2.h, which must come before
 * windows.h. */
#include "fsguard.h"

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

/* base\rel, into buf. */
static const char *at(char *buf, size_t len, const char *rel) {
  snprintf(buf, len, "%s\\%s", base, rel);
  return buf;
}

static void mkdir_at(const char *rel) {
  char p[MAX_PATH * 3];
  wchar_t w[MAX_PATH * 3];

  wide(at(p, sizeof p, rel), w, MAX_PATH * 3);
  assert_true(CreateDirectoryW(w, NULL));
}

static void write_at(const char *rel, const char *data) {
  char p[MAX_PATH * 3];
  wchar_t w[MAX_PATH * 3];
  DWORD n;
  HANDLE h;

  wide(at(p, sizeof p, rel), w, MAX_PATH * 3);
  h = CreateFileW(w, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  assert_true(WriteFile(h, data, (DWORD)strlen(data), &n, NULL));
  CloseHandle(h);
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

/* Give base\rel the DACL sddl; returns whether the object now grants
 * Everyone write (wine stores only what the mode bits can say). */
static int set_dacl(const char *rel, const wchar_t *sddl) {
  char p[MAX_PATH * 3];
  wchar_t w[MAX_PATH * 3], *back = NULL;
  PSECURITY_DESCRIPTOR sd = NULL, got = NULL;
  PACL dacl = NULL, gdacl = NULL;
  BOOL present, def;
  int everyone_writes;

  wide(at(p, sizeof p, rel), w, MAX_PATH * 3);
  assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorW(
      sddl, SDDL_REVISION_1, &sd, NULL));
  assert_true(GetSecurityDescriptorDacl(sd, &present, &dacl, &def));
  assert_int_equal(SetNamedSecurityInfoW(w, SE_FILE_OBJECT,
                                         DACL_SECURITY_INFORMATION, NULL, NULL,
                                         dacl, NULL),
                   ERROR_SUCCESS);
  LocalFree(sd);
  assert_int_equal(GetNamedSecurityInfoW(w, SE_FILE_OBJECT,
                                         DACL_SECURITY_INFORMATION, NULL, NULL,
                                         &gdacl, NULL, &got),
                   ERROR_SUCCESS);
  assert_true(ConvertSecurityDescriptorToStringSecurityDescriptorW(
      got, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &back, NULL));
  /* "FA" or a mask with FILE_WRITE_DATA, for WD (Everyone). */
  everyone_writes = wcsstr(back, L";FA;;;WD)") != NULL ||
                    wcsstr(back, L";0x1301ff;;;WD)") != NULL ||
                    wcsstr(back, L";0x1f01ff;;;WD)") != NULL;
  LocalFree(back);
  LocalFree(got);
  return everyone_writes;
}

/* Remove what a test left in dir (recursively, links as themselves). */
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
      SetFileAttributesW(sub, FILE_ATTRIBUTE_NORMAL);
      if ((fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) &&
          !(fd.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT))
        rm_tree(sub);
      else if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
        RemoveDirectoryW(sub);
      else
        DeleteFileW(sub);
    } while (FindNextFileW(f, &fd));
    FindClose(f);
  }
  RemoveDirectoryW(dir);
}

/* Each test gets a fresh base under %TEMP% (C:\users\...\Temp under
 * wine: the prefix's own directories, mode 0755; Z:\tmp would not do, as
 * wine shows /tmp's 1777 as Everyone full control, the sticky bit having no
 * Windows counterpart). */
static int setup(void **state) {
  wchar_t t[MAX_PATH + 1], w[MAX_PATH * 3];
  char tmp[MAX_PATH * 3];
  static unsigned seq;

  (void)state;
  if (GetTempPathW(MAX_PATH + 1, t) == 0 ||
      WideCharToMultiByte(CP_UTF8, 0, t, -1, tmp, sizeof tmp, NULL, NULL) <= 0)
    return -1;
  tmp[strlen(tmp) - 1] = '\0'; /* its trailing backslash */
  /* wine reuses process ids from run to run: the clock tells runs
   * apart, so a dir a failed run left behind is not in the way. */
  snprintf(base, sizeof base, "%s\\pf-fsguard-%lu-%llu-%u", tmp,
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

/* ---- directories -------------------------------------------------------- */

/* A directory of ours passes, strictly, as a directory handle. */
static void test_dir_ok(void **state) {
  char p[MAX_PATH * 3], err[1024];
  BY_HANDLE_FILE_INFORMATION bh;
  uv_os_fd_t h;
  (void)state;

  mkdir_at("logs");
  assert_int_equal(fsguard_open_dir("log directory", at(p, sizeof p, "logs"), 1,
                                    0, &h, err, sizeof err),
                   0);
  assert_string_equal(err, "");
  assert_true(GetFileInformationByHandle(h, &bh));
  assert_true(bh.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY);
  CloseHandle(h);
}

/* Held directories cannot be renamed away while the handle is open: the
 * walk's whole point (no FILE_SHARE_DELETE). */
static void test_dir_pinned(void **state) {
  char p[MAX_PATH * 3], q[MAX_PATH * 3], err[1024];
  wchar_t wp[MAX_PATH * 3], wq[MAX_PATH * 3];
  uv_os_fd_t h;
  (void)state;

  mkdir_at("logs");
  assert_int_equal(fsguard_open_dir("log directory", at(p, sizeof p, "logs"), 1,
                                    0, &h, err, sizeof err),
                   0);
  wide(p, wp, MAX_PATH * 3);
  wide(at(q, sizeof q, "moved"), wq, MAX_PATH * 3);
  assert_false(MoveFileExW(wp, wq, 0));
  CloseHandle(h);
  assert_true(MoveFileExW(wp, wq, 0));
}

/* create = 1 makes the missing last directory, which then passes the
 * strict check itself; create = 0 says it is missing; a missing ancestor
 * is not made. Forward slashes and "." are taken as Windows takes them. */
static void test_dir_create(void **state) {
  char p[MAX_PATH * 3], err[1024];
  wchar_t w[MAX_PATH * 3];
  uv_os_fd_t h;
  DWORD a;
  (void)state;

  assert_int_equal(fsguard_open_dir("log directory", at(p, sizeof p, "new"), 1,
                                    0, &h, err, sizeof err),
                   UV_ENOENT);
  assert_non_null(strstr(err, "missing"));
  assert_int_equal(fsguard_open_dir("log directory", at(p, sizeof p, "new"), 1,
                                    1, &h, err, sizeof err),
                   0);
  assert_string_equal(err, "");
  CloseHandle(h);
  wide(p, w, MAX_PATH * 3);
  a = GetFileAttributesW(w);
  assert_true(a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY));
  /* Made: now opened as it is, again strictly. */
  assert_int_equal(
      fsguard_open_dir("log directory", p, 1, 1, &h, err, sizeof err), 0);
  CloseHandle(h);
  /* The same through "/" and ".". */
  for (char *c = p; *c; c++)
    if (*c == '\\')
      *c = '/';
  strcat(p, "/.");
  assert_int_equal(
      fsguard_open_dir("log directory", p, 1, 0, &h, err, sizeof err), 0);
  CloseHandle(h);
  assert_int_equal(fsguard_open_dir("log directory",
                                    at(p, sizeof p, "nope\\new"), 1, 1, &h, err,
                                    sizeof err),
                   UV_ENOENT);
  assert_non_null(strstr(err, "nope is missing"));
}

/* Names are UTF-8 on the way in and UTF-16 to Windows: a non-ASCII
 * directory and log file are found and named in messages as given. */
static void test_unicode(void **state) {
  char p[MAX_PATH * 3], err[1024], buf[16];
  uv_os_fd_t h;
  DWORD n;
  (void)state;

  mkdir_at("journaux-\xc3\xa9t\xc3\xa9");
  assert_int_equal(fsguard_open_log(at(p, sizeof p,
                                       "journaux-\xc3\xa9t\xc3\xa9\\"
                                       "acc\xc3\xa8s.log"),
                                    1, &h, err, sizeof err),
                   0);
  assert_true(WriteFile(h, "ok\n", 3, &n, NULL));
  CloseHandle(h);
  slurp(p, buf, sizeof buf);
  assert_string_equal(buf, "ok\n");
  assert_int_equal(fsguard_open_dir("log directory",
                                    at(p, sizeof p, "\xc3\xa9-missing"), 1, 0,
                                    &h, err, sizeof err),
                   UV_ENOENT);
  assert_non_null(strstr(err, "\xc3\xa9-missing: missing"));
  /* Not UTF-8: refused, not guessed at. */
  assert_int_equal(fsguard_open_dir("log directory", at(p, sizeof p, "\xff"), 1,
                                    0, &h, err, sizeof err),
                   UV_EINVAL);
}

/* A file where a directory should be is refused, naming it. */
static void test_dir_is_file(void **state) {
  char p[MAX_PATH * 3], err[1024];
  uv_os_fd_t h;
  (void)state;

  write_at("f", "x");
  assert_int_equal(fsguard_open_dir("log directory", at(p, sizeof p, "f"), 1, 1,
                                    &h, err, sizeof err),
                   UV_ENOTDIR);
  assert_non_null(strstr(err, "not a directory"));
  assert_int_equal(fsguard_open_dir("log directory", at(p, sizeof p, "f\\x"), 0,
                                    1, &h, err, sizeof err),
                   UV_ENOTDIR);
}

/* Names that are not what they say, or not local: refused before any
 * file is touched, each with its reason. */
static void test_dir_bad_paths(void **state) {
  static const struct {
    const char *path, *why;
    int rc;
  } cases[] = {
      {"", "not an absolute path", UV_EINVAL},
      {"logs", "not an absolute path", UV_EINVAL},
      {"\\logs", "not an absolute path", UV_EINVAL},
      {"C:logs", "not an absolute path", UV_EINVAL},
      {"\\\\server\\share\\logs", "UNC or device path", UV_EINVAL},
      {"\\\\?\\C:\\logs", "UNC or device path", UV_EINVAL},
      {"//./C:/logs", "UNC or device path", UV_EINVAL},
      {"C:\\a\\..\\logs", "\"..\"", UV_EINVAL},
      {"C:\\logs:stream", "alternate data stream", UV_EINVAL},
      {"C:\\logs.", "dot or a space", UV_EINVAL},
      {"C:\\logs ", "dot or a space", UV_EINVAL},
      {"C:\\lo*gs", "does not allow", UV_EINVAL},
      {"C:\\nul", "reserved device name", UV_EINVAL},
      {"C:\\x\\COM1.log", "reserved device name", UV_EINVAL},
  };
  char err[1024];
  uv_os_fd_t h;
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = fsguard_open_dir("log directory", cases[i].path, 1, 1, &h, err,
                              sizeof err);
    if (rc != cases[i].rc || strstr(err, cases[i].why) == NULL)
      fail_msg("%s: %d %s", cases[i].path, rc, err);
  }
}

/* A directory that grants Everyone write is refused strictly, naming the
 * directory and Everyone; with strict_modes = no it is a warning. As an
 * ancestor, Everyone's delete-child right refuses it as well. */
static void test_dir_everyone_writes(void **state) {
  char p[MAX_PATH * 3], err[1024];
  uv_os_fd_t h;
  (void)state;

  mkdir_at("open");
  mkdir_at("open\\sub");
  if (!set_dacl("open", L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;"
                        L"WD)")) {
    fprintf(stderr, "the DACL did not come back as set: not checked here\n");
    skip();
  }
  assert_int_equal(fsguard_open_dir("log directory", at(p, sizeof p, "open"), 1,
                                    0, &h, err, sizeof err),
                   UV_EPERM);
  assert_non_null(strstr(err, p));
  assert_non_null(strstr(err, "writable by Everyone"));
  assert_non_null(strstr(err, "strict_modes = no to override"));

  assert_int_equal(
      fsguard_open_dir("log directory", p, 0, 0, &h, err, sizeof err), 0);
  assert_non_null(strstr(err, "writable by Everyone"));
  assert_non_null(strstr(err, "continuing because strict_modes = no"));
  CloseHandle(h);

  assert_int_equal(fsguard_open_dir("log directory",
                                    at(p, sizeof p, "open\\sub"), 1, 0, &h, err,
                                    sizeof err),
                   UV_EPERM);
  assert_non_null(strstr(err, "its ancestor"));
  assert_non_null(strstr(err, "by Everyone"));
}

/* A reparse point on the way is refused whatever strict_modes says. */
static void test_dir_reparse(void **state) {
  char p[MAX_PATH * 3], q[MAX_PATH * 3], err[1024];
  wchar_t wl[MAX_PATH * 3], wt[MAX_PATH * 3];
  uv_os_fd_t h;
  DWORD a;
  (void)state;

  mkdir_at("real");
  wide(at(p, sizeof p, "link"), wl, MAX_PATH * 3);
  wide(at(q, sizeof q, "real"), wt, MAX_PATH * 3);
  CreateSymbolicLinkW(wl, wt,
                      SYMBOLIC_LINK_FLAG_DIRECTORY |
                          0x2 /* ALLOW_UNPRIVILEGED_CREATE */);
  a = GetFileAttributesW(wl);
  if (a == INVALID_FILE_ATTRIBUTES || !(a & FILE_ATTRIBUTE_REPARSE_POINT)) {
    fprintf(stderr, "no symbolic link could be made here (wine 8 makes "
                    "none; Windows needs developer mode or the privilege)\n");
    skip();
  }
  for (int strict = 0; strict <= 1; strict++) {
    assert_int_equal(
        fsguard_open_dir("log directory", p, strict, 0, &h, err, sizeof err),
        UV_ELOOP);
    assert_non_null(strstr(err, "a symbolic link"));
    assert_non_null(strstr(err, "refusing to follow it"));
    strcat(p, "\\below");
    assert_int_equal(
        fsguard_open_dir("log directory", p, strict, 1, &h, err, sizeof err),
        UV_ELOOP);
    assert_non_null(strstr(err, "its ancestor"));
    at(p, sizeof p, "link");
  }
}

/* ---- log files ---------------------------------------------------------- */

/* A new log file is made and appended to; an existing one is appended to,
 * not truncated. */
static void test_log_append(void **state) {
  char p[MAX_PATH * 3], err[1024], buf[64];
  uv_os_fd_t h;
  DWORD n;
  (void)state;

  assert_int_equal(
      fsguard_open_log(at(p, sizeof p, "a.log"), 1, &h, err, sizeof err), 0);
  assert_string_equal(err, "");
  assert_true(WriteFile(h, "one\n", 4, &n, NULL));
  CloseHandle(h);
  assert_int_equal(fsguard_open_log(p, 1, &h, err, sizeof err), 0);
  assert_true(WriteFile(h, "two\n", 4, &n, NULL));
  CloseHandle(h);
  slurp(p, buf, sizeof buf);
  assert_string_equal(buf, "one\ntwo\n");
}

/* What must not be a log file: a directory, a device name, a path with no
 * file name; and a missing or unsafe directory. */
static void test_log_refused(void **state) {
  char p[MAX_PATH * 3], err[1024];
  uv_os_fd_t h;
  (void)state;

  mkdir_at("d");
  assert_int_equal(
      fsguard_open_log(at(p, sizeof p, "d"), 1, &h, err, sizeof err),
      UV_EISDIR);
  assert_non_null(strstr(err, "a directory"));
  assert_int_equal(
      fsguard_open_log(at(p, sizeof p, "nul"), 1, &h, err, sizeof err),
      UV_EINVAL);
  assert_non_null(strstr(err, "reserved device name"));
  assert_int_equal(fsguard_open_log("C:\\", 1, &h, err, sizeof err), UV_EINVAL);
  assert_int_equal(
      fsguard_open_log(at(p, sizeof p, "no\\a.log"), 1, &h, err, sizeof err),
      UV_ENOENT);
  assert_non_null(strstr(err, "log directory"));
  assert_non_null(strstr(err, "missing"));
}

/* A log file others may write is refused strictly, warned about
 * otherwise; so is one in a directory others may write. */
static void test_log_everyone_writes(void **state) {
  char p[MAX_PATH * 3], err[1024];
  uv_os_fd_t h;
  (void)state;

  write_at("w.log", "");
  if (!set_dacl("w.log", L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;WD)")) {
    fprintf(stderr, "the DACL did not come back as set: not checked here\n");
    skip();
  }
  assert_int_equal(
      fsguard_open_log(at(p, sizeof p, "w.log"), 1, &h, err, sizeof err),
      UV_EPERM);
  assert_non_null(strstr(err, "log file"));
  assert_non_null(strstr(err, "writable by Everyone"));
  assert_int_equal(fsguard_open_log(p, 0, &h, err, sizeof err), 0);
  assert_non_null(strstr(err, "continuing because strict_modes = no"));
  CloseHandle(h);

  mkdir_at("open");
  assert_true(set_dacl("open", L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;WD)"));
  assert_int_equal(
      fsguard_open_log(at(p, sizeof p, "open\\a.log"), 1, &h, err, sizeof err),
      UV_EPERM);
  assert_non_null(strstr(err, "log directory"));
}

/* A second hard link to the log file is refused strictly. */
static void test_log_hard_link(void **state) {
  char p[MAX_PATH * 3], q[MAX_PATH * 3], err[1024];
  wchar_t wp[MAX_PATH * 3], wq[MAX_PATH * 3];
  uv_os_fd_t h;
  (void)state;

  write_at("h.log", "");
  wide(at(p, sizeof p, "h.log"), wp, MAX_PATH * 3);
  wide(at(q, sizeof q, "other"), wq, MAX_PATH * 3);
  assert_true(CreateHardLinkW(wq, wp, NULL));
  assert_int_equal(fsguard_open_log(p, 1, &h, err, sizeof err), UV_EPERM);
  assert_non_null(strstr(err, "2 hard links"));
}

/* A log file that is a symbolic link is not followed, strict or not. */
static void test_log_reparse(void **state) {
  char p[MAX_PATH * 3], q[MAX_PATH * 3], err[1024];
  wchar_t wl[MAX_PATH * 3], wt[MAX_PATH * 3];
  uv_os_fd_t h;
  DWORD a;
  (void)state;

  write_at("target", "");
  wide(at(p, sizeof p, "l.log"), wl, MAX_PATH * 3);
  wide(at(q, sizeof q, "target"), wt, MAX_PATH * 3);
  CreateSymbolicLinkW(wl, wt, 0x2 /* ALLOW_UNPRIVILEGED_CREATE */);
  a = GetFileAttributesW(wl);
  if (a == INVALID_FILE_ATTRIBUTES || !(a & FILE_ATTRIBUTE_REPARSE_POINT)) {
    fprintf(stderr, "no symbolic link could be made here (wine 8 makes "
                    "none; Windows needs developer mode or the privilege)\n");
    skip();
  }
  assert_int_equal(fsguard_open_log(p, 0, &h, err, sizeof err), UV_ELOOP);
  assert_non_null(strstr(err, "refusing to follow it"));
}

static void test_kind(void **state) {
  (void)state;
  assert_string_equal(fsguard_kind(FILE_ATTRIBUTE_NORMAL), "regular file");
  assert_string_equal(fsguard_kind(FILE_ATTRIBUTE_ARCHIVE), "regular file");
  assert_string_equal(fsguard_kind(FILE_ATTRIBUTE_DIRECTORY), "directory");
  assert_non_null(strstr(
      fsguard_kind(FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT),
      "reparse point"));
  assert_string_equal(fsguard_kind(FILE_ATTRIBUTE_DEVICE), "device");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_dir_ok, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dir_pinned, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dir_create, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dir_is_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unicode, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dir_bad_paths, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dir_everyone_writes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_dir_reparse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_append, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_everyone_writes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_log_hard_link, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_reparse, setup, teardown),
      cmocka_unit_test(test_kind),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
