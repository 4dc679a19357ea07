/* test_resolve_win.c - confined open on Windows (run under wine): every name
 * form that could spell a file a second way is refused, normal and unicode
 * names open, directories are not regular, a locked or oplocked file is
 * EAGAIN, the handle reads overlapped, a link the walk sees as a reparse
 * point is ELOOP wherever it points and one it does not see (wine's Unix
 * symlinks) is EXDEV when it leaves the root, a junction is ELOOP, the
 * root's final path is read once and compared case-sensitively (skipped,
 * saying so, where the file system cannot make a link, junction or
 * oplock). */
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

/* resolve_win.c's name rules and final-path comparison, exposed for this
 * test. */
int resolve_win_name_check(const char *relpath);
int resolve_win_beneath(const WCHAR *r, DWORD rn, const WCHAR *f, DWORD fn);

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

/* Whether the reparse-point walk sees top\rel as a name-surrogate reparse
 * point (opened itself, not followed), as resolve_win.c asks. */
static int seen_as_link(const WCHAR *rel) {
  WCHAR p[MAX_PATH * 2];
  FILE_ATTRIBUTE_TAG_INFO t;
  HANDLE h;
  int yes = 0;

  wpath(p, rel);
  h = CreateFileW(p, FILE_READ_ATTRIBUTES,
                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                  OPEN_EXISTING,
                  FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
                  NULL);
  if (h == INVALID_HANDLE_VALUE)
    return 0;
  if (GetFileInformationByHandleEx(h, FileAttributeTagInfo, &t, sizeof(t)))
    yes = (t.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) &&
          IsReparseTagNameSurrogate(t.ReparseTag);
  CloseHandle(h);
  return yes;
}

/* What opening through link top\rel must give: ELOOP when the walk sees it
 * (Windows: every link, wherever it points, since Windows serves no link);
 * otherwise (wine follows Unix symlinks without showing them) EXDEV for a
 * link that leaves the root, 0 for one that stays inside. */
static int through(const WCHAR *rel, int leaves) {
  if (seen_as_link(rel))
    return UV_ELOOP;
  return leaves ? UV_EXDEV : 0;
}

/* Links: those the walk sees are ELOOP; those it cannot see are caught by
 * the final path when they leave (EXDEV) and open when they stay inside. */
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
  print_message("links are %s by the walk here\n",
                seen_as_link(L"root\\in.txt") ? "seen (ELOOP)"
                                              : "not seen (final path)");
  assert_int_equal(open_read("in.txt", "hello"), through(L"root\\in.txt", 0));

  wpath(t, L"out\\secret.txt");
  assert_int_not_equal(make_link(L"root\\s.txt", t, 0), 0);
  assert_int_equal(open_read("s.txt", NULL), through(L"root\\s.txt", 1));

  wpath(t, L"out");
  assert_int_not_equal(make_link(L"root\\outdir", t, 1), 0);
  assert_int_equal(open_read("outdir/secret.txt", NULL),
                   through(L"root\\outdir", 1));
  assert_int_equal(open_read("outdir", NULL), through(L"root\\outdir", 1));

  /* A relative link climbing out: ..\..\out\secret.txt from root\dir. */
  assert_int_not_equal(
      make_link(L"root\\dir\\up.txt", L"..\\..\\out\\secret.txt", 0), 0);
  assert_int_equal(open_read("dir/up.txt", NULL),
                   through(L"root\\dir\\up.txt", 1));

  /* One that stays inside through a directory link. */
  wpath(t, L"root\\dir");
  assert_int_not_equal(make_link(L"root\\dirlink", t, 1), 0);
  assert_int_equal(
      open_read("dirlink/b.txt", through(L"root\\dirlink", 0) ? NULL : "bee"),
      through(L"root\\dirlink", 0));
}

/* A junction (a mount point: any user may make one in a directory it can
 * write) is never followed, even to a place inside the root: on Windows
 * one to \RPC Control plus an object-manager symlink reaches a UNC share
 * or a pipe. Made with FSCTL_SET_REPARSE_POINT; skipped where the file
 * system cannot. */
static void junctions_refused(void **state) {
  WCHAR p[MAX_PATH * 2], target[MAX_PATH * 2 + 8];
  union {
    REPARSE_GUID_DATA_BUFFER align;
    BYTE b[MAXIMUM_REPARSE_DATA_BUFFER_SIZE];
  } buf;
  struct {
    DWORD tag;
    WORD len, reserved;
    WORD sub_off, sub_len, print_off, print_len;
    WCHAR path[1];
  } *m = (void *)buf.b;
  HANDLE h;
  DWORD n = 0;
  size_t tn;
  BOOL ok;
  (void)state;

  dir(L"root\\junc");
  wpath(p, L"root\\dir");
  _snwprintf(target, MAX_PATH * 2 + 8, L"\\??\\%ls", p);
  target[MAX_PATH * 2 + 7] = L'\0';
  tn = wcslen(target);
  memset(&buf, 0, sizeof(buf));
  m->tag = IO_REPARSE_TAG_MOUNT_POINT;
  m->sub_off = 0;
  m->sub_len = (WORD)(tn * sizeof(WCHAR));
  m->print_off = (WORD)((tn + 1) * sizeof(WCHAR));
  m->print_len = 0;
  memcpy(m->path, target, tn * sizeof(WCHAR));
  m->len = (WORD)(8 + (tn + 2) * sizeof(WCHAR));
  wpath(p, L"root\\junc");
  h = CreateFileW(p, GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                  FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
                  NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  ok = DeviceIoControl(h, FSCTL_SET_REPARSE_POINT, buf.b, 8u + m->len, NULL, 0,
                       &n, NULL);
  CloseHandle(h);
  if (!ok || !seen_as_link(L"root\\junc")) {
    print_message("SKIP junctions: FSCTL_SET_REPARSE_POINT %s here\n",
                  ok ? "makes no reparse point" : "fails");
    RemoveDirectoryW(p);
    skip();
  }
  assert_int_equal(open_read("junc/b.txt", NULL), UV_ELOOP);
  assert_int_equal(open_read("junc", NULL), UV_ELOOP);
  RemoveDirectoryW(p);
}

/* A file another process holds an exclusive oplock on: the open completes
 * at once (FILE_COMPLETE_IF_OPLOCKED) as EAGAIN, instead of the worker
 * waiting for the holder to acknowledge the break, which it may never do.
 * Skipped where the file system grants no oplock. */
static void oplocked_is_eagain(void **state) {
  WCHAR p[MAX_PATH * 2];
  OVERLAPPED ov;
  HANDLE h;
  ULONGLONG t0;
  (void)state;

  mk(L"root\\oplocked.txt", "op");
  wpath(p, L"root\\oplocked.txt");
  h = CreateFileW(p, GENERIC_READ,
                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                  OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  memset(&ov, 0, sizeof(ov));
  ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
  /* Granted: ERROR_IO_PENDING until broken. */
  if (DeviceIoControl(h, FSCTL_REQUEST_OPLOCK_LEVEL_1, NULL, 0, NULL, 0, NULL,
                      &ov) ||
      GetLastError() != ERROR_IO_PENDING) {
    print_message("SKIP oplocks: FSCTL_REQUEST_OPLOCK_LEVEL_1 not granted "
                  "here (%lu)\n",
                  (unsigned long)GetLastError());
    CloseHandle(ov.hEvent);
    CloseHandle(h);
    skip();
  }
  t0 = GetTickCount64();
  assert_int_equal(open_read("oplocked.txt", NULL), UV_EAGAIN);
  assert_true(GetTickCount64() - t0 < 5000); /* answered, not waited */
  CloseHandle(h);
  CloseHandle(ov.hEvent);
  assert_int_equal(open_read("oplocked.txt", "op"), 0);
}

/* The final-path comparison is ordinal and case-sensitive. */
static void beneath_exact(void **state) {
  static const WCHAR r[] = L"\\Device\\HarddiskVolume3\\Srv\\Root";
  static const WCHAR v[] = L"\\Device\\HarddiskVolume3\\";
#define B(root, f)                                                             \
  resolve_win_beneath(root, (DWORD)wcslen(root), f, (DWORD)wcslen(f))
  (void)state;
  assert_true(B(r, L"\\Device\\HarddiskVolume3\\Srv\\Root"));
  assert_true(B(r, L"\\Device\\HarddiskVolume3\\Srv\\Root\\a.txt"));
  /* Another directory in a case-sensitive parent, not the root. */
  assert_false(B(r, L"\\Device\\HarddiskVolume3\\Srv\\root\\a.txt"));
  assert_false(B(r, L"\\Device\\HarddiskVolume3\\srv\\Root\\a.txt"));
  assert_false(B(r, L"\\Device\\HarddiskVolume3\\Srv\\Rootx\\a.txt"));
  assert_false(B(r, L"\\Device\\HarddiskVolume3\\Srv"));
  /* A volume's root ends in '\'. */
  assert_true(B(v, L"\\Device\\HarddiskVolume3\\a.txt"));
  assert_false(B(v, L"\\Device\\HarddiskVolume30\\a.txt"));
#undef B
}

/* The root's final path is read once, as the daemon, at resolve_open_root:
 * renaming the root while it is served refuses every request (EXDEV)
 * rather than following it. Skipped where the rename is refused. */
static void root_path_read_once(void **state) {
  WCHAR a[MAX_PATH * 2], b[MAX_PATH * 2];
  char u8[MAX_PATH * 3];
  uv_os_fd_t r2 = INVALID_HANDLE_VALUE, fd = INVALID_HANDLE_VALUE;
  (void)state;

  dir(L"root2");
  mk(L"root2\\c.txt", "sea");
  wpath(a, L"root2");
  wpath(b, L"root2-moved");
  assert_true(
      WideCharToMultiByte(CP_UTF8, 0, a, -1, u8, sizeof(u8), NULL, NULL) > 0);
  assert_int_equal(resolve_open_root(u8, &r2), 0);
  assert_int_equal(resolve_open(r2, "c.txt", &fd), 0);
  resolve_close(fd);
  if (!MoveFileW(a, b)) {
    print_message("SKIP root rename: MoveFileW refused (%lu)\n",
                  (unsigned long)GetLastError());
    resolve_close(r2);
    skip();
  }
  {
    int rc = resolve_open(r2, "c.txt", &fd);
    assert_true(fd == INVALID_HANDLE_VALUE);
    /* Wine loses track of a renamed directory's handle (its file system
     * view is by Unix path) and the open fails before the final-path
     * check; it is refused all the same. */
    if (unix_name() != NULL && rc != UV_EXDEV) {
      print_message("note: under wine the open after the rename fails with "
                    "%s, not EXDEV\n",
                    uv_err_name(rc));
      assert_int_not_equal(rc, 0);
    } else {
      assert_int_equal(rc, UV_EXDEV);
    }
  }
  assert_true(MoveFileW(b, a));
  assert_int_equal(resolve_open(r2, "c.txt", &fd), 0);
  resolve_close(fd);
  resolve_close(r2);
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
      cmocka_unit_test(junctions_refused),
      cmocka_unit_test(oplocked_is_eagain),
      cmocka_unit_test(beneath_exact),
      cmocka_unit_test(root_path_read_once),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
