/* resolve_win.c - open a file beneath the served root, on Windows.
 *
 * Owns: the name rules a Windows path component must pass, the open
 * relative to the root's handle, and the check of where the opened file
 * really is.
 *
 * Windows has no RESOLVE_BENEATH. Confinement is done in three steps:
 *  1. the name: every component is checked before any I/O, so that no
 *     second spelling of a name reaches the file system: no ':' (alternate
 *     data streams, "f::$DATA" is f), no '\' (our separator is '/'), no
 *     trailing '.' or ' ' (Win32 strips them: "f." is f), no control or
 *     <>"|?* characters, no DOS device name (CON, NUL, COM1, ... with any
 *     extension: Win32 maps them to devices) and nothing that may be an
 *     8.3 short name ('~' and a digit, or a '~' in an 8.3-sized name:
 *     PROGRA~1 is "Program Files"), which would let a name dodge any check
 *     made on the long one. Refused names are UV_ENOENT: no file we serve
 *     has that name (serve.c answers ENOENT without a log line);
 *  2. the walk: each component is opened by NtCreateFile relative to the
 *     handle of the one before (the first relative to the root's handle
 *     opened at start-up), so no Win32 name rewriting applies, with
 *     FILE_OPEN_REPARSE_POINT: a reparse point is opened itself, never
 *     followed. A component that is a name surrogate (symlink, junction,
 *     mount point, or any tag IsReparseTagNameSurrogate says redirects) is
 *     refused with UV_ELOOP ("a link that may not be followed", answered
 *     EXDEV) before anything is opened through it. Other tags (dedup, cloud
 *     files, WCI) redirect no name and pass; a file still marked as one is
 *     not regular (resolve_fstat). So Windows serves NO link inside the
 *     root, unlike Linux: following one safely would need the full
 *     userspace walk (read the target, walk it in place); instead we fail
 *     closed, because following first and checking after (the old way) let
 *     a junction to \RPC Control plus an object-manager symlink reach
 *     \??\UNC\host\share or \Device\NamedPipe\x AS THE CLIENT (NTLM
 *     relay, token capture, a stalled worker) before any check. Every open
 *     has FILE_COMPLETE_IF_OPLOCKED: an oplock or lease another process
 *     holds makes it UV_EAGAIN at once instead of a worker waiting for the
 *     break. No backup intent: an administrator's SeBackupPrivilege, even
 *     enabled in the client's token, never bypasses a file's ACL here;
 *  3. the final path, a second line: GetFinalPathNameByHandleW of the opened
 *     handle must be the root's final path (read once, as the daemon, by
 *     resolve_open_root) or lie beneath it; otherwise UV_EXDEV. Renaming
 *     the root while it is served therefore refuses every request.
 *
 * Files are opened for asynchronous (overlapped) I/O, Windows' analogue of
 * O_NONBLOCK: every read of the handle must pass an OVERLAPPED with its
 * offset (stream_win.c does), and no read ever blocks a worker on a slow
 * file system. */
#include "resolve.h"

#include <windows.h>

#include <winternl.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

/* The longest final path Windows returns (\\?\ paths: 32767 characters). */
#define FINAL_WCHARS_MAX 32768
/* The longest path we open: a PFP_PATH_MAX wire path is at most 4096 bytes
 * of UTF-8, hence at most 4096 UTF-16 units. */
#define REL_WCHARS_MAX 4097
#define COMPONENT_WCHARS_MAX 255 /* NTFS, FAT, ReFS: 255 UTF-16 units */
/* A PFP_PATH_MAX (4096-byte) path has at most 2048 components ("a/a/...");
 * the walk holds two handles at a time whatever the depth. */
#define COMPONENTS_MAX 2048

/* A SUCCESS status (a `< 0` test misses it): the open completed while an
 * oplock break it caused is under way (FILE_COMPLETE_IF_OPLOCKED). */
#define ST_OPLOCK_BREAK_IN_PROGRESS ((NTSTATUS)0x00000108L)
#ifndef FILE_OPEN_REPARSE_POINT
#define FILE_OPEN_REPARSE_POINT 0x00200000
#endif
#ifndef FILE_COMPLETE_IF_OPLOCKED
#define FILE_COMPLETE_IF_OPLOCKED 0x00000100
#endif
#ifndef FILE_DIRECTORY_FILE
#define FILE_DIRECTORY_FILE 0x00000001
#endif

typedef NTSTATUS(NTAPI *nt_create_file_fn)(PHANDLE, ACCESS_MASK,
                                           POBJECT_ATTRIBUTES, PIO_STATUS_BLOCK,
                                           PLARGE_INTEGER, ULONG, ULONG, ULONG,
                                           ULONG, PVOID, ULONG);
typedef ULONG(NTAPI *nt_status_fn)(NTSTATUS);

static nt_create_file_fn nt_create_file;
static nt_status_fn nt_status_to_dos;
static uv_once_t nt_once = UV_ONCE_INIT;

/* ntdll is in every process; the build does not link libntdll.a. */
static void nt_init(void) {
  HMODULE m = GetModuleHandleW(L"ntdll.dll");
  if (m == NULL)
    return;
  nt_create_file =
      (nt_create_file_fn)(void (*)(void))GetProcAddress(m, "NtCreateFile");
  nt_status_to_dos =
      (nt_status_fn)(void (*)(void))GetProcAddress(m, "RtlNtStatusToDosError");
}

/* A Win32 error as resolve.h's codes. Sharing and lock violations mean
 * another process holds the file in a way we would have to wait for. */
static int err_of(DWORD e) {
  switch (e) {
  case ERROR_SHARING_VIOLATION:
  case ERROR_LOCK_VIOLATION:
    return UV_EAGAIN;
  case ERROR_ACCESS_DENIED:
    return UV_EACCES;
  case ERROR_INVALID_NAME:
  case ERROR_BAD_PATHNAME:
  case ERROR_PATH_NOT_FOUND:
  case ERROR_FILE_NOT_FOUND:
    return UV_ENOENT;
  case ERROR_DIRECTORY:
    return UV_ENOTDIR;
  case ERROR_CANT_RESOLVE_FILENAME: /* too many reparse points */
    return UV_ELOOP;
  case ERROR_FILENAME_EXCED_RANGE:
    return UV_ENAMETOOLONG;
  default:
    return uv_translate_sys_error(e);
  }
}

/* ---- names ---------------------------------------------------------- */

static int ascii_lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Names Win32 maps to devices, whatever follows a '.' ("nul.txt" is NUL).
 * COM0/LPT0 and the superscript digits (COM¹) are devices on some versions;
 * all refused. */
static const char *const devices[] = {
    "con",         "prn",         "aux",        "nul",  "clock$", "conin$",
    "conout$",     "com0",        "com1",       "com2", "com3",   "com4",
    "com5",        "com6",        "com7",       "com8", "com9",   "com\xc2\xb9",
    "com\xc2\xb2", "com\xc2\xb3", "lpt0",       "lpt1", "lpt2",   "lpt3",
    "lpt4",        "lpt5",        "lpt6",       "lpt7", "lpt8",   "lpt9",
    "lpt\xc2\xb9", "lpt\xc2\xb2", "lpt\xc2\xb3"};

/* Whether c[0..n) (before any '.', trailing spaces ignored as Win32 does)
 * is a device name. */
static int is_device(const char *c, size_t n) {
  size_t stem = 0;
  while (stem < n && c[stem] != '.')
    stem++;
  while (stem > 0 && c[stem - 1] == ' ')
    stem--;
  for (size_t d = 0; d < sizeof(devices) / sizeof(devices[0]); d++) {
    size_t k = strlen(devices[d]);
    size_t i = 0;
    if (k != stem)
      continue;
    while (i < k &&
           ascii_lower((unsigned char)c[i]) == (unsigned char)devices[d][i])
      i++;
    if (i == k)
      return 1;
  }
  return 0;
}

/* Whether c[0..n) could be a generated 8.3 short name: a '~' in a name that
 * fits 8.3 (at most 8 bytes, or 8 + '.' + at most 3, one dot). Windows makes
 * NAME~1.EXT, but other file systems mangle differently (wine and Samba:
 * LONG~WOE.TXT), so any '~' in an 8.3-sized name is refused; long names
 * with a '~' ("notes~draft.txt") cannot be short names and pass. */
static int short_form(const char *c, size_t n) {
  const char *dot = memchr(c, '.', n);
  size_t stem = dot != NULL ? (size_t)(dot - c) : n;

  if (memchr(c, '~', n) == NULL || stem > 8)
    return 0;
  if (dot == NULL)
    return 1;
  return n - stem - 1 <= 3 && memchr(dot + 1, '.', n - stem - 1) == NULL;
}

/* One component c[0..n): 0, or UV_ENOENT for a name no served file has. */
static int component_ok(const char *c, size_t n) {
  if (n == 0 || c[n - 1] == '.' || c[n - 1] == ' ')
    return UV_ENOENT; /* also "." and ".." */
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)c[i];
    if (ch < 0x20 || ch == 0x7f || strchr("<>:\"\\|?*", ch) != NULL)
      return UV_ENOENT;
    /* An 8.3 short name's usual tail: NAME~1.EXT, LO1A2B~1.TXT. */
    if (ch == '~' && i + 1 < n && c[i + 1] >= '0' && c[i + 1] <= '9')
      return UV_ENOENT;
  }
  return is_device(c, n) || short_form(c, n) ? UV_ENOENT : 0;
}

/* Every component of relpath ('/'-separated, normalized) passes; "." (the
 * root itself) passes too. Exposed for the unit tests, which check every
 * refused form without depending on what the file system would answer. */
int resolve_win_name_check(const char *relpath);
int resolve_win_name_check(const char *relpath) {
  const char *p = relpath;

  if (strcmp(relpath, ".") == 0)
    return 0;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
    int rc = component_ok(p, n);
    if (rc != 0)
      return rc;
    if (slash == NULL)
      return 0;
    p = slash + 1;
  }
}

/* ---- final paths ---------------------------------------------------- */

/* Per thread, so opens on several workers need no lock and no allocation. */
static _Thread_local WCHAR file_final[FINAL_WCHARS_MAX];

/* The final path of every open root, read once by resolve_open_root as the
 * daemon (not per request as the client, who might not be allowed to
 * normalize it) and dropped by resolve_close. One entry per live root (a
 * reload briefly has two): a short list. */
struct root_path {
  struct root_path *next;
  HANDLE h;
  DWORD n;
  WCHAR path[]; /* n units, no NUL */
};
static SRWLOCK roots_lock = SRWLOCK_INIT;
static struct root_path *roots;

/* The entry of root handle h, or NULL. It stays valid while h is open, and
 * the caller's h is open for the whole call. */
static const struct root_path *root_find(HANDLE h) {
  const struct root_path *r;
  AcquireSRWLockShared(&roots_lock);
  for (r = roots; r != NULL && r->h != h; r = r->next)
    ;
  ReleaseSRWLockShared(&roots_lock);
  return r;
}

/* The NT form (\Device\HarddiskVolume3\srv\files): defined for every
 * volume, with or without a drive letter, and for network shares
 * (\Device\Mup\...), and the same for root and file. Length in *n. */
static int final_path(HANDLE h, WCHAR *buf, DWORD *n) {
  DWORD got = GetFinalPathNameByHandleW(h, buf, FINAL_WCHARS_MAX,
                                        FILE_NAME_NORMALIZED | VOLUME_NAME_NT);
  if (got == 0)
    return err_of(GetLastError());
  if (got >= FINAL_WCHARS_MAX)
    return UV_ENAMETOOLONG;
  *n = got;
  return 0;
}

/* Whether f[0..fn) is r[0..rn) or beneath it, comparing ordinally,
 * case-sensitively: both come from GetFinalPathNameByHandleW in their
 * on-disk case, and in a case-sensitive directory (fsutil file
 * setCaseSensitiveInfo) "Root" and "root" are two directories. */
static int beneath(const WCHAR *r, DWORD rn, const WCHAR *f, DWORD fn) {
  while (rn > 0 && r[rn - 1] == L'\\') /* a volume's root ends in '\' */
    rn--;
  if (fn < rn || rn == 0 || wmemcmp(r, f, rn) != 0)
    return 0;
  return fn == rn || f[rn] == L'\\';
}

/* beneath(), exposed for the unit tests (wine has no case-sensitive
 * directories to show it on). */
int resolve_win_beneath(const WCHAR *r, DWORD rn, const WCHAR *f, DWORD fn);
int resolve_win_beneath(const WCHAR *r, DWORD rn, const WCHAR *f, DWORD fn) {
  return beneath(r, rn, f, fn);
}

/* ---- resolve.h ------------------------------------------------------ */

int resolve_open_root(const char *root, uv_os_fd_t *dirfd) {
  WCHAR w[FINAL_WCHARS_MAX];
  BY_HANDLE_FILE_INFORMATION info;
  struct root_path *r = NULL;
  HANDLE h;
  DWORD n = 0;
  int rc = 0;

  *dirfd = INVALID_HANDLE_VALUE;
  if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, root, -1, w,
                          FINAL_WCHARS_MAX) == 0)
    return GetLastError() == ERROR_INSUFFICIENT_BUFFER ? UV_ENAMETOOLONG
                                                       : UV_ENOENT;
  /* Backup semantics: the only way CreateFileW opens a directory. The
   * handle grants only traversal and attributes: it is a starting point for
   * relative opens, which are checked against the client's token. Sharing
   * everything so the root can still be managed while served. The root's
   * own path may go through links: the administrator chose it. */
  h = CreateFileW(w, FILE_TRAVERSE | FILE_READ_ATTRIBUTES | SYNCHRONIZE,
                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                  OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
  if (h == INVALID_HANDLE_VALUE)
    return err_of(GetLastError());
  if (!GetFileInformationByHandle(h, &info)) {
    rc = err_of(GetLastError());
    goto out;
  }
  if (!(info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)) {
    rc = UV_ENOTDIR;
    goto out;
  }
  /* Its final path, read now as the daemon and kept for every open. */
  if ((rc = final_path(h, w, &n)) != 0)
    goto out;
  r = malloc(sizeof(*r) + (size_t)n * sizeof(WCHAR));
  if (r == NULL) {
    rc = UV_ENOMEM;
    goto out;
  }
  r->h = h;
  r->n = n;
  wmemcpy(r->path, w, n);
  AcquireSRWLockExclusive(&roots_lock);
  r->next = roots;
  roots = r;
  ReleaseSRWLockExclusive(&roots_lock);
out:
  if (rc != 0)
    CloseHandle(h);
  else
    *dirfd = h;
  return rc;
}

/* Whether open handle h is a reparse point that redirects names (symlink,
 * junction, mount point, any name surrogate): 1 yes, 0 no, < 0 error. Other
 * tags (dedup, cloud files, WCI) redirect no name: opened with
 * FILE_OPEN_REPARSE_POINT the handle is that file itself. */
static int name_surrogate(HANDLE h) {
  FILE_ATTRIBUTE_TAG_INFO t;
  if (!GetFileInformationByHandleEx(h, FileAttributeTagInfo, &t, sizeof(t)))
    return err_of(GetLastError());
  if (!(t.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT))
    return 0;
  return t.ReparseTag == IO_REPARSE_TAG_MOUNT_POINT ||
         t.ReparseTag == IO_REPARSE_TAG_SYMLINK ||
         IsReparseTagNameSurrogate(t.ReparseTag);
}

/* Open name (len units, no separator; 0 = the directory itself) relative to
 * dir, without following a reparse point and without waiting for an oplock
 * break. last: the file asked for (read access, any type); otherwise a
 * directory to walk through (attributes only: the least right that lets the
 * next open start from it, so an intermediate directory needs no read
 * right). */
static int open_one(HANDLE dir, WCHAR *name, size_t len, int last,
                    HANDLE *out) {
  UNICODE_STRING u;
  OBJECT_ATTRIBUTES oa;
  IO_STATUS_BLOCK io;
  HANDLE h = INVALID_HANDLE_VALUE;
  NTSTATUS st;
  int rc;

  *out = INVALID_HANDLE_VALUE;
  u.Buffer = name;
  u.Length = (USHORT)(len * sizeof(WCHAR));
  u.MaximumLength = u.Length;
  InitializeObjectAttributes(&oa, &u, OBJ_CASE_INSENSITIVE, dir, NULL);
  /* FILE_GENERIC_READ includes SYNCHRONIZE; no FILE_SYNCHRONOUS_IO_* option
   * makes the handle asynchronous (overlapped). Directories open too as the
   * last component: resolve_fstat says they are not regular, and serve.c
   * refuses them. */
  st = nt_create_file(
      &h, last ? FILE_GENERIC_READ : FILE_READ_ATTRIBUTES, &oa, &io, NULL, 0,
      FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, FILE_OPEN,
      FILE_OPEN_REPARSE_POINT | FILE_COMPLETE_IF_OPLOCKED |
          (last ? 0 : FILE_DIRECTORY_FILE),
      NULL, 0);
  if (st < 0)
    return err_of(nt_status_to_dos(st));
  if (st == ST_OPLOCK_BREAK_IN_PROGRESS)
    rc = UV_EAGAIN; /* leased by another process: serve.c says try later */
  else if (st != 0)
    rc = UV_EIO; /* no other success is documented for an open: refuse */
  else if ((rc = name_surrogate(h)) > 0)
    rc = UV_ELOOP;
  if (rc != 0)
    CloseHandle(h);
  else
    *out = h;
  return rc;
}

int resolve_open(uv_os_fd_t dirfd, const char *relpath, uv_os_fd_t *fd) {
  WCHAR rel[REL_WCHARS_MAX];
  const struct root_path *root;
  HANDLE dir = (HANDLE)dirfd, h = INVALID_HANDLE_VALUE;
  DWORD fn = 0;
  int n, rc = 0, start = 0, parts = 0;

  *fd = INVALID_HANDLE_VALUE;
  uv_once(&nt_once, nt_init);
  if (nt_create_file == NULL || nt_status_to_dos == NULL)
    return UV_ENOSYS;
  if ((root = root_find(dir)) == NULL)
    return UV_EBADF; /* not opened by resolve_open_root: nothing to check */
  if ((rc = resolve_win_name_check(relpath)) != 0)
    return rc;
  if (strcmp(relpath, ".") == 0) {
    n = 1; /* the root itself: an empty name relative to it */
    rel[0] = L'\0';
  } else {
    n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, relpath, -1, rel,
                            REL_WCHARS_MAX);
    if (n == 0) /* not UTF-8: no file has that name */
      return GetLastError() == ERROR_INSUFFICIENT_BUFFER ? UV_ENAMETOOLONG
                                                         : UV_ENOENT;
  }
  /* Lengths first, so nothing is opened for a name that cannot exist. */
  for (int i = 0; i < n; i++) {
    if (rel[i] == L'/' || rel[i] == L'\0') {
      if (i - start > COMPONENT_WCHARS_MAX || ++parts > COMPONENTS_MAX)
        return UV_ENAMETOOLONG;
      start = i + 1;
    }
  }
  /* One component at a time, each from its parent's handle; the parent is
   * closed once the child is open (the root is the caller's). */
  start = 0;
  for (int i = 0; i < n; i++) {
    HANDLE next;
    if (rel[i] != L'/' && rel[i] != L'\0')
      continue;
    rc =
        open_one(dir, rel + start, (size_t)(i - start), rel[i] == L'\0', &next);
    if (dir != (HANDLE)dirfd)
      CloseHandle(dir);
    dir = (HANDLE)dirfd;
    if (rc != 0)
      goto out;
    if (rel[i] == L'\0')
      h = next;
    else
      dir = next;
    start = i + 1;
  }
  /* The second line: where the kernel says the handle is. */
  if ((rc = final_path(h, file_final, &fn)) != 0)
    goto out;
  if (!beneath(root->path, root->n, file_final, fn))
    rc = UV_EXDEV;
out:
  if (rc != 0 && h != INVALID_HANDLE_VALUE)
    CloseHandle(h);
  else if (rc == 0)
    *fd = h;
  return rc;
}

/* resolve_open is itself a component walk that follows no link (see the
 * top of the file); the Linux walk's link following is not offered. */
int resolve_open_walk(uv_os_fd_t dirfd, const char *relpath, uv_os_fd_t *fd) {
  (void)dirfd;
  (void)relpath;
  *fd = INVALID_HANDLE_VALUE;
  return UV_ENOTSUP;
}

/* 100 ns ticks from 1601 to 1970. */
#define EPOCH_DIFF 116444736000000000LL

int resolve_fstat(uv_os_fd_t fd, struct resolve_stat *st) {
  BY_HANDLE_FILE_INFORMATION info;
  int64_t t;

  memset(st, 0, sizeof(*st));
  if (!GetFileInformationByHandle((HANDLE)fd, &info))
    return err_of(GetLastError());
  t = (int64_t)(((uint64_t)info.ftLastWriteTime.dwHighDateTime << 32) |
                info.ftLastWriteTime.dwLowDateTime) -
      EPOCH_DIFF;
  /* Seconds, rounded down also before 1970. */
  st->mtime = t >= 0 ? t / 10000000 : -((-t + 9999999) / 10000000);
  st->size = ((uint64_t)info.nFileSizeHigh << 32) | info.nFileSizeLow;
  st->version = (uint64_t)t; /* 100 ns ticks of the last write */
  /* A reparse point the walk opened itself (FILE_OPEN_REPARSE_POINT: a
   * cloud placeholder, a deduplicated file, whose data a filter would
   * supply): not served. Name surrogates never get here (ELOOP). */
  st->regular = GetFileType((HANDLE)fd) == FILE_TYPE_DISK &&
                !(info.dwFileAttributes &
                  (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE |
                   FILE_ATTRIBUTE_REPARSE_POINT));
  return 0;
}

void resolve_close(uv_os_fd_t fd) {
  struct root_path **p, *r = NULL;

  if (fd == INVALID_HANDLE_VALUE || fd == NULL)
    return;
  /* A root drops its final path before its handle value can be reused. */
  if (root_find((HANDLE)fd) != NULL) {
    AcquireSRWLockExclusive(&roots_lock);
    for (p = &roots; *p != NULL; p = &(*p)->next)
      if ((*p)->h == (HANDLE)fd) {
        r = *p;
        *p = r->next;
        break;
      }
    ReleaseSRWLockExclusive(&roots_lock);
    free(r);
  }
  CloseHandle((HANDLE)fd);
}

const char *resolve_method(void) { return "final-path"; }
