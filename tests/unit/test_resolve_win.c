/* test_resolve_win.c - confined open on Windows (run under wine): every name
 * form that could spell a file a second way is refused, normal and unicode
 * names open, directories are not regular, a locked file is EAGAIN, the
 * handle reads overlapped, and a symlink that leaves the root is EXDEV
 * (skipped, saying so, where the file system cannot make one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include <windows.h>

#include "resolve.h"

/* resolve_win.c's name rules, exposed for this test. */
int resolve_win_name_check(const char *relpath);

static WCHAR top[MAX_PATH]; /* temp dir: top\root is served, top\out not */
static uv_os_fd_t root = INVALID_HANDLE_VALUE;

#define MTIME 1700000000LL /* a known modification time */

static void wpath(WCHAR *out, const WCHAR *rel) {
  _snwprintf(out, MAX_PATH * 2, L"%ls\\%ls", top, rel);
  out[MAX_PATH * 2 - 1] = L'\0';
}

/* Under wine: wine's own export giving a file's Unix path, and running a
 * Unix program (wine starts ELF binaries natively, but cannot wait for
 * them, so callers watch for the effect). NULL / 0 elsewhere. */
typedef char *(CDECL *unix_name_fn)(LPCWSTR);

static unix_name_fn unix_name(void) {
  HMODULE k = GetModuleHandleW(L"kernel32.dll");
  return k ? (unix_name_fn)(void (*)(void))GetProcAddress(
                 k, "wine_get_unix_file_name")
           : NULL;
}

static int unix_run(const WCHAR *prog, WCHAR *cmd) {
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof(si));
  si.cb = sizeof(si);
  if (!CreateProcessW(prog, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
    return 0;
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  return 1;
}

/* Whether p exists (or, gone = 1, does not) within 5 s. */
static int wait_for(const WCHAR *p, int gone) {
  for (int i = 0; i < 500; i++) {
    if ((GetFileAttributesW(p) == INVALID_FILE_ATTRIBUTES) == gone)
      return 1;
    Sleep(10);
  }
  return 0;
}

static void mk(const WCHAR *rel, const char *content) {
  WCHAR p[MAX_PATH * 2];
  DWORD n = 0;
  HANDLE h;
  FILETIME ft;
  uint64_t t = (uint64_t)MTIME * 10000000ULL + 116444736000000000ULL;

  wpath(p, rel);
  h = CreateFileW(p, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  assert_true(WriteFile(h, content, (DWORD)strlen(content), &n, NULL));
  ft.dwLowDateTime = (DWORD)t;
  ft.dwHighDateTime = (DWORD)(t >> 32);
  assert_true(SetFileTime(h, NULL, NULL, &ft));
  CloseHandle(h);
}

static void dir(const WCHAR *rel) {
  WCHAR p[MAX_PATH * 2];
  wpath(p, rel);
  assert_true(CreateDirectoryW(p, NULL));
}

/* Remove the temp tree. Under wine it may hold Unix symlinks, which Win32
 * calls would follow or not see: rm -rf (which follows none) does it. */
static void rmtree(const WCHAR *p) {
  WCHAR pat[MAX_PATH * 2], child[MAX_PATH * 2];
  WIN32_FIND_DATAW fd;
  HANDLE f;

  _snwprintf(pat, MAX_PATH * 2, L"%ls\\*", p);
  pat[MAX_PATH * 2 - 1] = L'\0';
  f = FindFirstFileW(pat, &fd);
  if (f != INVALID_HANDLE_VALUE) {
    do {
      if (wcscmp(fd.cFileName, L".") == 0 || wcscmp(fd.cFileName, L"..") == 0)
        continue;
      _snwprintf(child, MAX_PATH * 2, L"%ls\\%ls", p, fd.cFileName);
      child[MAX_PATH * 2 - 1] = L'\0';
      if (fd.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT)
        (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
            ? RemoveDirectoryW(child)
            : DeleteFileW(child);
      else if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
        rmtree(child);
      else
        DeleteFileW(child);
    } while (FindNextFileW(f, &fd));
    FindClose(f);
  }
  RemoveDirectoryW(p);
}

static void remove_top(void) {
  unix_name_fn un = unix_name();
  char *u;
  WCHAR cmd[MAX_PATH * 3];

  if (GetFileAttributesW(top) == INVALID_FILE_ATTRIBUTES)
    return;
  if (un != NULL && (u = un(top)) != NULL) {
    _snwprintf(cmd, MAX_PATH * 3, L"/bin/rm -rf %hs", u);
    cmd[MAX_PATH * 3 - 1] = L'\0';
    if (unix_run(L"Z:\\bin\\rm", cmd) && wait_for(top, 1))
      return;
  }
  rmtree(top);
}

static int setup(void **state) {
  WCHAR tmp[MAX_PATH];
  char rootu8[MAX_PATH * 3];
  WCHAR rp[MAX_PATH * 2];
  (void)state;

  assert_true(GetTempPathW(MAX_PATH, tmp) > 0);
  _snwprintf(top, MAX_PATH, L"%lspf-resolve-%lu-%lu", tmp,
             (unsigned long)GetCurrentProcessId(),
             (unsigned long)GetTickCount());
  top[MAX_PATH - 1] = L'\0';
  remove_top(); /* a run that crashed may have left it */
  assert_true(CreateDirectoryW(top, NULL));
  dir(L"root");
  dir(L"out");
  dir(L"root\\dir");
  mk(L"root\\a.txt", "hello");
  mk(L"root\\dir\\b.txt", "bee");
  mk(L"root\\longfilename-for-short.txt", "long");
  /* "unicode-ünï-名前-😀.txt" */
  mk(L"root\\unicode-\x00fcn\x00ef-\x540d\x524d-\xd83d\xde00.txt", "uni");
  mk(L"out\\secret.txt", "secret");
  wpath(rp, L"root");
  assert_true(WideCharToMultiByte(CP_UTF8, 0, rp, -1, rootu8, sizeof(rootu8),
                                  NULL, NULL) > 0);
  assert_int_equal(resolve_open_root(rootu8, &root), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  resolve_close(root);
  remove_top();
  return 0;
}

/* Open rel; on success check the whole content and close. */
static int open_read(const char *rel, const char *want) {
  uv_os_fd_t fd = (uv_os_fd_t)(intptr_t)0x1234;
  int rc = resolve_open(root, rel, &fd);
  if (rc != 0) {
    assert_true(fd == INVALID_HANDLE_VALUE);
    return rc;
  }
  if (want != NULL) {
    char buf[64];
    OVERLAPPED ov;
    DWORD n = 0;
    struct resolve_stat st;

    memset(&ov, 0, sizeof(ov));
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    /* The handle is overlapped: a read names its offset. */
    if (!ReadFile(fd, buf, sizeof(buf), NULL, &ov))
      assert_int_equal(GetLastError(), ERROR_IO_PENDING);
    assert_true(GetOverlappedResult(fd, &ov, &n, TRUE));
    CloseHandle(ov.hEvent);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    assert_int_equal(resolve_fstat(fd, &st), 0);
    assert_int_equal(st.size, strlen(want));
    assert_true(st.regular);
    assert_int_equal(st.mtime, MTIME);
  }
  resolve_close(fd);
  return 0;
}

static void refused_names(void **state) {
  static const char *const bad[] = {"a:b",
                                    "a.txt::$DATA",
                                    "a.txt:s:$DATA",
                                    "dir\\b.txt",
                                    "a.txt.",
                                    "a.txt ",
                                    "dir./b.txt",
                                    "dir /b.txt",
                                    "a\x01",
                                    "a\x1f",
                                    "a\x7f",
                                    "a<b",
                                    "a>b",
                                    "a\"b",
                                    "a|b",
                                    "a?b",
                                    "a*b",
                                    "CON",
                                    "con",
                                    "Con.txt",
                                    "dir/nul",
                                    "NUL.tar.gz",
                                    "nul .txt",
                                    "PRN",
                                    "AUX",
                                    "aux.c",
                                    "COM1",
                                    "com9.log",
                                    "COM0",
                                    "LPT1",
                                    "lpt9",
                                    "LPT\xc2\xb9",
                                    "com\xc2\xb3.x",
                                    "CONIN$",
                                    "conout$",
                                    "CLOCK$",
                                    "PROGRA~1",
                                    "longfi~1.txt",
                                    "dir/LONGFI~2.TXT",
                                    "~1",
                                    "x~9y",
                                    "LONG~WOE.TXT",
                                    "x~",
                                    "~x",
                                    "a~b1",
                                    "verylongname~1.txt",
                                    ".",
                                    ".."};
  /* Like them, but names a file could have without a second spelling. */
  static const char *const good[] = {"a.txt",   "dir/b.txt",
                                     ".hidden", "a b",
                                     " lead",   "CONSOLE",
                                     "con_x",   "COM10",
                                     "LPT",     "com",
                                     "nul_",    "notes~draft.txt",
                                     "a.b~c.d", "long-name~.text",
                                     "x.y.z",   "\xc3\xa9"};
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (strcmp(bad[i], ".") == 0)
      continue; /* "." is the root itself: allowed, tested below */
    if (resolve_win_name_check(bad[i]) != UV_ENOENT)
      fail_msg("name \"%s\" was not refused", bad[i]);
    assert_int_equal(open_read(bad[i], NULL), UV_ENOENT);
  }
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    if (resolve_win_name_check(good[i]) != 0)
      fail_msg("name \"%s\" was refused", good[i]);
}

/* The forms the file system itself would accept as a second spelling: the
 * refusal must come from our check, not from "no such file". */
static void second_spellings_exist(void **state) {
  WCHAR lp[MAX_PATH * 2], sp[MAX_PATH * 2];
  char rel[MAX_PATH * 3];
  const WCHAR *last;
  HANDLE h;
  (void)state;

  /* A backslash is a separator to Windows: dir\b.txt exists. */
  assert_int_equal(open_read("dir/b.txt", "bee"), 0);
  assert_int_equal(open_read("dir\\b.txt", NULL), UV_ENOENT);

  wpath(lp, L"root\\longfilename-for-short.txt");
  if (GetShortPathNameW(lp, sp, MAX_PATH * 2) == 0 ||
      wcschr(sp, L'~') == NULL) {
    print_message("SKIP short name: this file system made no 8.3 name for "
                  "%ls\n",
                  lp);
    return;
  }
  /* The short name opens the file through Win32 ... */
  h = CreateFileW(sp, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0,
                  NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  CloseHandle(h);
  /* ... but not through resolve_open. */
  last = wcsrchr(sp, L'\\');
  assert_non_null(last);
  assert_true(WideCharToMultiByte(CP_UTF8, 0, last + 1, -1, rel, sizeof(rel),
                                  NULL, NULL) > 0);
  assert_int_equal(open_read("longfilename-for-short.txt", "long"), 0);
  if (open_read(rel, NULL) != UV_ENOENT)
    fail_msg("short name \"%s\" opened", rel);
}

static void regular_file(void **state) {
  (void)state;
  assert_int_equal(open_read("a.txt", "hello"), 0);
  /* NTFS and wine: names are case-insensitive. */
  assert_int_equal(open_read("A.TXT", "hello"), 0);
  assert_int_equal(open_read("dir/b.txt", "bee"), 0);
}

static void missing(void **state) {
  (void)state;
  assert_int_equal(open_read("nope.txt", NULL), UV_ENOENT);
  assert_int_equal(open_read("nodir/x", NULL), UV_ENOENT);
  {
    int rc = open_read("a.txt/x", NULL);
    assert_true(rc == UV_ENOENT || rc == UV_ENOTDIR);
  }
}

static void directories_not_regular(void **state) {
  const char *dirs[] = {"dir", "."};
  (void)state;
  for (size_t i = 0; i < 2; i++) {
    uv_os_fd_t fd;
    struct resolve_stat st;
    assert_int_equal(resolve_open(root, dirs[i], &fd), 0);
    assert_int_equal(resolve_fstat(fd, &st), 0);
    if (st.regular)
      fail_msg("\"%s\" is a directory but fstat says regular", dirs[i]);
    resolve_close(fd);
  }
}

static void unicode_names(void **state) {
  (void)state;
  assert_int_equal(
      open_read("unicode-\xc3\xbcn\xc3\xaf-\xe5\x90\x8d\xe5\x89\x8d-"
                "\xf0\x9f\x98\x80.txt",
                "uni"),
      0);
  /* Not UTF-8 (a lone continuation byte, an overlong '/'): no such file. */
  assert_int_equal(open_read("\x80.txt", NULL), UV_ENOENT);
  assert_int_equal(open_read("a\xc0\xaf"
                             "b",
                             NULL),
                   UV_ENOENT);
}

static void too_long(void **state) {
  char name[300];
  (void)state;
  memset(name, 'x', 256);
  name[256] = '\0';
  assert_int_equal(open_read(name, NULL), UV_ENAMETOOLONG);
}

static void locked_is_eagain(void **state) {
  WCHAR p[MAX_PATH * 2];
  HANDLE h;
  (void)state;
  wpath(p, L"root\\a.txt");
  /* Another process holding the file with no sharing. */
  h = CreateFileW(p, GENERIC_READ, 0, NULL, OPEN_EXISTING, 0, NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  assert_int_equal(open_read("a.txt", NULL), UV_EAGAIN);
  CloseHandle(h);
  assert_int_equal(open_read("a.txt", "hello"), 0);
}

static void root_errors(void **state) {
  WCHAR p[MAX_PATH * 2];
  char u8[MAX_PATH * 3];
  uv_os_fd_t fd;
  (void)state;
  wpath(p, L"root\\a.txt");
  assert_true(
      WideCharToMultiByte(CP_UTF8, 0, p, -1, u8, sizeof(u8), NULL, NULL) > 0);
  assert_int_equal(resolve_open_root(u8, &fd), UV_ENOTDIR);
  assert_true(fd == INVALID_HANDLE_VALUE);
  wpath(p, L"no-such-root");
  assert_true(
      WideCharToMultiByte(CP_UTF8, 0, p, -1, u8, sizeof(u8), NULL, NULL) > 0);
  assert_int_equal(resolve_open_root(u8, &fd), UV_ENOENT);
  assert_int_equal(resolve_open_walk(root, "a.txt", &fd), UV_ENOTSUP);
  assert_string_equal(resolve_method(), "final-path");
}

/* Make a symbolic link at top\rel pointing to target (as written: relative
 * targets use '\'). CreateSymbolicLinkW first; wine 8's reports success
 * and makes nothing, so under wine a Unix symlink made with /bin/ln stands
 * in: wine follows those as Windows follows its links, and resolve_win.c
 * sees the same thing through GetFinalPathNameByHandleW. Returns 0 when no
 * link could be made. */
static int make_link(const WCHAR *rel, const WCHAR *target, int isdir) {
  WCHAR l[MAX_PATH * 2], cmd[MAX_PATH * 6], tu[MAX_PATH * 2];
  DWORD flags = 0x2 /* ..._ALLOW_UNPRIVILEGED_CREATE */ |
                (isdir ? SYMBOLIC_LINK_FLAG_DIRECTORY : 0);
  DWORD a;
  unix_name_fn un = unix_name();
  char *ul, *ut;

  wpath(l, rel);
  if (CreateSymbolicLinkW(l, target, flags) ||
      CreateSymbolicLinkW(l, target, flags & ~0x2u)) {
    a = GetFileAttributesW(l);
    if (a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_REPARSE_POINT))
      return 1;
  }
  if (un == NULL || (ul = un(l)) == NULL)
    return 0;
  if (target[0] != L'.') {
    if ((ut = un(target)) == NULL)
      return 0;
    _snwprintf(tu, MAX_PATH * 2, L"%hs", ut);
  } else {
    _snwprintf(tu, MAX_PATH * 2, L"%ls", target);
    for (WCHAR *p = tu; *p; p++)
      if (*p == L'\\')
        *p = L'/';
  }
  tu[MAX_PATH * 2 - 1] = L'\0';
  _snwprintf(cmd, MAX_PATH * 6, L"/bin/ln -s %ls %hs", tu, ul);
  cmd[MAX_PATH * 6 - 1] = L'\0';
  return unix_run(L"Z:\\bin\\ln", cmd) && wait_for(l, 0) ? 2 : 0;
}

/* Links: one that stays inside opens, ones that leave are EXDEV. */
static void links_leaving_root(void **state) {
  WCHAR t[MAX_PATH * 2];
  int how;
  (void)state;

  wpath(t, L"root\\a.txt");
  how = make_link(L"root\\in.txt", t, 0);
  if (how == 0) {
    print_message("SKIP symlinks: neither CreateSymbolicLinkW nor a Unix "
                  "symlink (under wine) could be made here, so escape "
                  "through a link is not tested\n");
    skip();
  }
  if (how == 2)
    print_message("note: wine's CreateSymbolicLinkW makes no link; testing "
                  "with Unix symlinks, which wine follows\n");
  assert_int_equal(open_read("in.txt", "hello"), 0);

  wpath(t, L"out\\secret.txt");
  assert_int_not_equal(make_link(L"root\\s.txt", t, 0), 0);
  assert_int_equal(open_read("s.txt", NULL), UV_EXDEV);

  wpath(t, L"out");
  assert_int_not_equal(make_link(L"root\\outdir", t, 1), 0);
  assert_int_equal(open_read("outdir/secret.txt", NULL), UV_EXDEV);
  assert_int_equal(open_read("outdir", NULL), UV_EXDEV);

  /* A relative link climbing out: ..\..\out\secret.txt from root\dir. */
  assert_int_not_equal(
      make_link(L"root\\dir\\up.txt", L"..\\..\\out\\secret.txt", 0), 0);
  assert_int_equal(open_read("dir/up.txt", NULL), UV_EXDEV);

  /* One that stays inside through a directory link: allowed. */
  wpath(t, L"root\\dir");
  assert_int_not_equal(make_link(L"root\\dirlink", t, 1), 0);
  assert_int_equal(open_read("dirlink/b.txt", "bee"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(refused_names),
      cmocka_unit_test(second_spellings_exist),
      cmocka_unit_test(regular_file),
      cmocka_unit_test(missing),
      cmocka_unit_test(directories_not_regular),
      cmocka_unit_test(unicode_names),
      cmocka_unit_test(too_long),
      cmocka_unit_test(locked_is_eagain),
      cmocka_unit_test(root_errors),
      cmocka_unit_test(links_leaving_root),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
