/* cli_win.c - the pipefile command's Windows half (cli_os.h): accounts
 * (SIDs) name the server, the command line and environment are read as
 * UTF-16 and kept as UTF-8, standard output is put in binary mode, and the
 * -o file is created next to OUT, moved over it with MoveFileExW, and
 * removed by a console control handler if the command is interrupted;
 * --resume's partial file keeps the remote mtime as its last-write time
 * (SetFileTime), and the meter's clock is GetTickCount64. */
#define _CRT_RAND_S /* rand_s, for the temporary file's name */
#include "cli_os.h"
#include "pipefile.h"
#include "transport_win.h"

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <shellapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names tried for the temporary file before giving up: a taken name is
 * another run's (CREATE_NEW never opens an existing file). */
#define TEMP_TRIES 100

const struct cli_os cli_os = {
    .server_opt = "--server-user",
    .server_env = PIPEFILE_SERVER_USER_ENV,
    .server_arg = "USER",
    .server_what = "an account name or a SID (S-1-...) known here",
    .server_help =
        "  --server-user USER   talk only to a server running as USER: an "
        "account\n"
        "                       name (NAME, DOMAIN\\NAME) or a SID "
        "(S-1-...)\n"
        "                       (default: $" PIPEFILE_SERVER_USER_ENV ", else "
        "any of\n"
        "                       LocalSystem, NT SERVICE\\pipefiled, or "
        "yourself;\n"
        "                       a daemon running as another account, "
        "such as\n"
        "                       LocalService, must be named); needed for a "
        "remote pipe\n"
        "                       (\\\\SERVER\\pipe\\NAME), whose server "
        "is then trusted\n"
        "                       on your word: its account cannot be checked "
        "from here;\n"
        "                       --expect-server-user USER is the same\n",
    .refused_by_rule =
        "which is neither LocalSystem, NT SERVICE\\pipefiled nor you; "
        "refusing to talk to it (another account's pipe?). If pipefiled "
        "really runs as that account, trust it by name: --server-user "
        "ACCOUNT (or " PIPEFILE_SERVER_USER_ENV "=ACCOUNT), with the SID or "
        "name shown",
    .exit_untrusted = "the pipe is served by an account not trusted, or who "
                      "serves it cannot be\n"
                      "       told (see --server-user); nothing was sent\n",
    .name_too_long = "longer than a pipe name may be (\\\\.\\pipe\\ and at "
                     "most 256 characters)",
    /* A wire path's last component must not carry a directory, nor a
     * drive ("C:x") or a stream ("x:s"), into -o DIR\. */
    .dir_seps = "/\\:",
};

int cli_args(int *argc, char ***argv) {
  int n = 0;
  wchar_t **w = CommandLineToArgvW(GetCommandLineW(), &n);
  char **a;

  if (w == NULL)
    return -transport_win_errno(GetLastError());
  a = calloc((size_t)n + 1, sizeof(*a));
  if (a == NULL) {
    LocalFree(w);
    return -ENOMEM;
  }
  for (int i = 0; i < n; i++) {
    a[i] = transport_win_utf8(w[i]);
    if (a[i] == NULL) {
      for (int j = 0; j < i; j++)
        free(a[j]);
      free(a);
      LocalFree(w);
      return -EINVAL;
    }
  }
  LocalFree(w);
  /* Kept until exit, as main's argv would be. */
  *argc = n;
  *argv = a;
  return 0;
}

const char *cli_getenv(const char *name) {
  wchar_t *wn = NULL;
  const wchar_t *wv;
  char *v = NULL;
  if (transport_win_utf16(name, &wn) < 0)
    return NULL;
  wv = _wgetenv(wn);
  if (wv)
    v = transport_win_utf8(wv); /* kept until exit, as getenv's is */
  free(wn);
  return v;
}

int cli_stdout_bytes(void) {
  int fd = _fileno(stdout);
  /* No standard output at all (-2: started without one): an error, not
   * out_fd < 0, which the library takes for "discard". */
  if (fd < 0)
    return -EBADF;
  /* The library writes to the HANDLE itself; binary mode keeps anything
   * else written through the C runtime untranslated too. */
  _setmode(fd, _O_BINARY);
  return fd;
}

int cli_gmtime(int64_t t, struct tm *tm) {
  __time64_t tt = (__time64_t)t;
  /* The runtime's range: 1970 to 3000; before or after, "out of range". */
  return _gmtime64_s(tm, &tt) == 0 ? 0 : -1;
}

/* The temporary output file, shared with the console control handler,
 * which may run on another thread at any moment: both hold tmp_lock. */
static CRITICAL_SECTION tmp_lock;
static wchar_t *tmp_path; /* while tmp_live */
static int tmp_live;

/* Ctrl-C, Ctrl-Break, closing the console, logoff or shutdown: remove the
 * temporary file and end the process as Windows' default handler would,
 * with STATUS_CONTROL_C_EXIT (wine's default handler exits 0, which would
 * read as success). Our own handle is still open, so DeleteFileW only marks
 * the file for deletion (it was opened with FILE_SHARE_DELETE for this); it
 * goes when the process's handles close, which ExitProcess does. The main
 * thread may be inside cli_temp_commit: tmp_lock orders the two, so the
 * file is either already moved over OUT (complete) or removed. A process
 * killed with TerminateProcess (taskkill /f) runs no handler and leaves the
 * file, as SIGKILL does on Linux. */
static BOOL WINAPI on_console_event(DWORD event) {
  (void)event;
  EnterCriticalSection(&tmp_lock);
  if (tmp_live)
    DeleteFileW(tmp_path);
  tmp_live = 0;
  ExitProcess(STATUS_CONTROL_C_EXIT); /* still holding tmp_lock: no commit
                                         can follow */
}

/* The index just past the directory part of w ("dir\", "C:", "" ...). */
static size_t dir_len(const wchar_t *w) {
  size_t n = 0;
  for (size_t i = 0; w[i]; i++)
    if (w[i] == L'\\' || w[i] == L'/' || w[i] == L':')
      n = i + 1;
  return n;
}

int cli_temp_create(const char *out) {
  wchar_t *wout = NULL;
  wchar_t *path = NULL;
  HANDLE h = INVALID_HANDLE_VALUE;
  size_t dlen, blen, size;
  int fd = -1;
  int r;

  r = transport_win_utf16(out, &wout);
  if (r < 0)
    goto out;
  dlen = dir_len(wout);
  blen = wcslen(wout + dlen);
  if (blen == 0) {
    r = -EISDIR;
    goto out;
  }
  /* dir + "." + base + ".pipefile-" + 8 hex digits + NUL */
  size = dlen + 1 + blen + 10 + 8 + 1;
  path = malloc(size * sizeof(*path));
  if (path == NULL) {
    r = -ENOMEM;
    goto out;
  }
  InitializeCriticalSection(&tmp_lock);
  SetConsoleCtrlHandler(on_console_event, TRUE);
  r = -EEXIST;
  for (int i = 0; i < TEMP_TRIES && h == INVALID_HANDLE_VALUE; i++) {
    unsigned int rnd = 0;
    if (rand_s(&rnd) != 0)
      rnd = (unsigned)GetTickCount() ^ ((unsigned)GetCurrentProcessId() << 16) ^
            (unsigned)i;
    swprintf(path, size, L"%.*ls.%ls.pipefile-%08x", (int)dlen, wout,
             wout + dlen, rnd);
    EnterCriticalSection(&tmp_lock);
    /* CREATE_NEW: never an existing file (nor a link someone put there).
     * The directory's inherited ACL applies, as for "> OUT".
     * FILE_SHARE_DELETE: on_console_event can delete it while open. */
    h = CreateFileW(path, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_DELETE,
                    NULL, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h != INVALID_HANDLE_VALUE) {
      tmp_path = path;
      tmp_live = 1;
      path = NULL;
    }
    LeaveCriticalSection(&tmp_lock);
    if (h == INVALID_HANDLE_VALUE) {
      DWORD err = GetLastError();
      if (err != ERROR_FILE_EXISTS && err != ERROR_ALREADY_EXISTS) {
        r = -transport_win_errno(err);
        break;
      }
    }
  }
  if (h == INVALID_HANDLE_VALUE)
    goto out;
  fd = _open_osfhandle((intptr_t)h, _O_BINARY | _O_WRONLY);
  if (fd < 0) {
    CloseHandle(h);
    cli_temp_discard(-1);
    r = -EMFILE;
    goto out;
  }
  r = fd;
out:
  free(path);
  free(wout);
  return r;
}

/* Put fd's data on disk and close it: before a name says the file is
 * complete. Returns 0 or -errno (fd is closed either way). */
static int flush_close(int fd) {
  int r = 0;

  if (!FlushFileBuffers((HANDLE)_get_osfhandle(fd)))
    r = -transport_win_errno(GetLastError());
  if (_close(fd) < 0 && r == 0)
    r = -errno;
  return r;
}

int cli_temp_commit(int fd, const char *out) {
  wchar_t *wout = NULL;
  int r = flush_close(fd);

  if (r < 0)
    return r;
  r = transport_win_utf16(out, &wout);
  if (r < 0)
    return r;
  EnterCriticalSection(&tmp_lock);
  /* Replaces OUT in one step; WRITE_THROUGH: returns once the move is on
   * disk. */
  if (!tmp_live) {
    r = -ECANCELED; /* the console handler got there first */
  } else if (MoveFileExW(tmp_path, wout,
                         MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
    tmp_live = 0;
  } else {
    r = -transport_win_errno(GetLastError());
  }
  LeaveCriticalSection(&tmp_lock);
  free(wout);
  return r;
}

void cli_temp_discard(int fd) {
  if (fd >= 0)
    _close(fd);
  if (tmp_path == NULL)
    return; /* never created: tmp_lock may not be initialised */
  EnterCriticalSection(&tmp_lock);
  if (tmp_live)
    DeleteFileW(tmp_path);
  tmp_live = 0;
  LeaveCriticalSection(&tmp_lock);
}

/* The partial file's name, for cli_partial_commit's move. */
static wchar_t *partial_path;

/* FILETIME (100 ns since 1601) and seconds since 1970. */
#define FILETIME_1970 116444736000000000LL

static int64_t filetime_to_unix(const FILETIME *ft) {
  int64_t t =
      (int64_t)(((uint64_t)ft->dwHighDateTime << 32) | ft->dwLowDateTime);
  return (t - FILETIME_1970) / 10000000LL;
}

int cli_partial_open(const char *out, uint64_t *size, int64_t *mtime) {
  wchar_t *wout = NULL;
  HANDLE h = INVALID_HANDLE_VALUE;
  BY_HANDLE_FILE_INFORMATION info;
  LARGE_INTEGER zero = {0};
  size_t dlen, blen, n;
  int fd;
  int r;

  *size = 0;
  *mtime = 0;
  r = transport_win_utf16(out, &wout);
  if (r < 0)
    goto out;
  dlen = dir_len(wout);
  blen = wcslen(wout + dlen);
  if (blen == 0) {
    r = -EISDIR;
    goto out;
  }
  /* dir + "." + base + ".pipefile-partial" + NUL */
  n = dlen + 1 + blen + 17 + 1;
  free(partial_path);
  partial_path = malloc(n * sizeof(*partial_path));
  if (partial_path == NULL) {
    r = -ENOMEM;
    goto out;
  }
  swprintf(partial_path, n, L"%.*ls.%ls.pipefile-partial", (int)dlen, wout,
           wout + dlen);
  /* OPEN_REPARSE_POINT: a link someone put under this name is opened as
   * itself and refused below, never followed. */
  h = CreateFileW(partial_path, GENERIC_WRITE | FILE_WRITE_ATTRIBUTES,
                  FILE_SHARE_READ, NULL, OPEN_ALWAYS,
                  FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    r = -transport_win_errno(GetLastError());
    goto out;
  }
  if (!GetFileInformationByHandle(h, &info)) {
    r = -transport_win_errno(GetLastError());
    goto out;
  }
  if (info.dwFileAttributes &
      (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT)) {
    r = -EPERM;
    goto out;
  }
  /* Appending: the library writes at the handle's position. */
  if (!SetFilePointerEx(h, zero, NULL, FILE_END)) {
    r = -transport_win_errno(GetLastError());
    goto out;
  }
  fd = _open_osfhandle((intptr_t)h, _O_BINARY | _O_WRONLY);
  if (fd < 0) {
    r = -EMFILE;
    goto out;
  }
  h = INVALID_HANDLE_VALUE;
  *size = ((uint64_t)info.nFileSizeHigh << 32) | info.nFileSizeLow;
  *mtime = *size ? filetime_to_unix(&info.ftLastWriteTime) : 0;
  r = fd;
out:
  if (h != INVALID_HANDLE_VALUE)
    CloseHandle(h);
  free(wout);
  return r;
}

int cli_partial_restart(int fd) {
  HANDLE h = (HANDLE)_get_osfhandle(fd);
  LARGE_INTEGER zero = {0};
  if (!SetFilePointerEx(h, zero, NULL, FILE_BEGIN) || !SetEndOfFile(h))
    return -transport_win_errno(GetLastError());
  return 0;
}

int cli_partial_stamp(int fd, int64_t mtime) {
  uint64_t t = (uint64_t)(mtime * 10000000LL + FILETIME_1970);
  FILETIME ft = {.dwLowDateTime = (DWORD)t, .dwHighDateTime = (DWORD)(t >> 32)};
  if (!SetFileTime((HANDLE)_get_osfhandle(fd), NULL, NULL, &ft))
    return -transport_win_errno(GetLastError());
  return 0;
}

int cli_partial_commit(int fd, const char *out) {
  wchar_t *wout = NULL;
  int r = flush_close(fd);

  if (r < 0)
    return r;
  r = transport_win_utf16(out, &wout);
  if (r < 0)
    return r;
  if (!MoveFileExW(partial_path, wout,
                   MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
    r = -transport_win_errno(GetLastError());
  free(wout);
  return r;
}

void cli_partial_close(int fd) {
  if (fd >= 0)
    _close(fd);
}

int cli_is_tty(int fd) { return fd >= 0 && _isatty(fd); }

uint64_t cli_now_ms(void) { return (uint64_t)GetTickCount64(); }
