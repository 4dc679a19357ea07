/* transport_win.c - the client library over named pipes (transport.h):
 * connect to \\.\pipe\NAME or \\SERVER\pipe\NAME, blocking ReadFile and
 * WriteFile, close, and who serves a local pipe (the user SID of the
 * server's process and the pipe's owner: each that can be read must pass). A
 * connection is the pipe's HANDLE wrapped in a C runtime fd (_open_osfhandle),
 * so pipefile.h keeps its int; I/O goes to the HANDLE behind it
 * (_get_osfhandle), never through the C runtime's text mode.
 *
 * Divisions: errors and strings; I/O; the pipe name; who serves the pipe
 * (SIDs, the trust rule); connecting. */
#include "transport_win.h"
#include "pipefile.h"
#include "transport.h"

#include <aclapi.h>
#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The pipe's own name (after "\pipe\") is at most 256 characters:
 * CreateNamedPipe's limit, so a longer one cannot exist. */
#define PIPE_NAME_MAX 256
/* How long a connect waits, in all, while every instance of the pipe is
 * busy (ERROR_PIPE_BUSY) before giving up with -EBUSY; the daemon keeps
 * instances waiting, so being busy this long means it is overwhelmed. */
#define BUSY_WAIT_MS 5000
/* And how many tries that may take at most: WaitNamedPipeW can return at
 * once while another client keeps taking the instance that came free. */
#define BUSY_TRIES 50
/* The largest single ReadFile/WriteFile: their counts are DWORDs. */
#define IO_CHUNK ((size_t)1 << 30)
/* Zero-byte reads in a row taken from a server before giving up on it
 * (-EPROTO): each is a zero-length write of the server's, legal but never
 * pipefiled's, and a server writing nothing else would hold us forever. */
#define ZERO_READS_MAX 100

/* ---- errors and strings ------------------------------------------------ */

int transport_win_errno(DWORD err) {
  switch (err) {
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND:
  case ERROR_BAD_NET_NAME:
    return ENOENT;
  case ERROR_BAD_NETPATH:
  case ERROR_NETWORK_UNREACHABLE:
  case ERROR_HOST_UNREACHABLE:
    return EHOSTUNREACH;
  case ERROR_ACCESS_DENIED:
  case ERROR_PRIVILEGE_NOT_HELD:
  case ERROR_LOGON_FAILURE:
  case ERROR_SHARING_VIOLATION:
  case ERROR_LOCK_VIOLATION:
    return EACCES;
  case ERROR_PIPE_BUSY:
    return EBUSY;
  case ERROR_SEM_TIMEOUT:
    return ETIMEDOUT;
  case ERROR_INVALID_NAME:
  case ERROR_BAD_PATHNAME:
  case ERROR_INVALID_PARAMETER:
  case ERROR_NONE_MAPPED:
  case ERROR_INVALID_SID:
    return EINVAL;
  case ERROR_FILENAME_EXCED_RANGE:
    return ENAMETOOLONG;
  case ERROR_BROKEN_PIPE:
  case ERROR_NO_DATA:
  case ERROR_PIPE_NOT_CONNECTED:
    return EPIPE;
  case ERROR_NETNAME_DELETED:
    return ECONNRESET;
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
    return ENOMEM;
  case ERROR_DISK_FULL:
  case ERROR_HANDLE_DISK_FULL:
    return ENOSPC;
  case ERROR_FILE_EXISTS:
  case ERROR_ALREADY_EXISTS:
    return EEXIST;
  case ERROR_TOO_MANY_OPEN_FILES:
    return EMFILE;
  case ERROR_DIRECTORY:
    return ENOTDIR;
  case ERROR_INVALID_HANDLE:
    return EBADF;
  case ERROR_NOT_SUPPORTED:
    return ENOTSUP;
  case ERROR_OPERATION_ABORTED:
    return ECANCELED;
  }
  return EIO;
}

const char *transport_strerror(int err) {
  switch (err) {
  case PIPEFILE_EUNTRUSTED:
    return "the pipe is served by an account that is neither LocalSystem, "
           "NT SERVICE\\pipefiled nor this user (another account's pipe? a "
           "daemon running as another account must be named: "
           "--server-user)";
  /* The C runtime's strerror() knows only the values up to 42; these are
   * the ones above that transport_win_errno() gives. */
  case -EHOSTUNREACH:
    return "the server cannot be reached";
  case -ETIMEDOUT:
    return "timed out";
  case -ECONNRESET:
    return "connection reset";
  case -ENOTSUP:
    return "not supported";
  case -ECANCELED:
    return "operation cancelled";
  case -EPROTO:
    return "protocol error";
  /* strerror()'s "Resource device" would not say it. */
  case -EBUSY:
    return "all instances of the pipe stayed busy (server overloaded?)";
  }
  return strerror(-err);
}

int transport_win_utf16(const char *s, wchar_t **out) {
  int n;
  wchar_t *w;

  *out = NULL;
  n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  if (n <= 0)
    return -EINVAL;
  w = malloc((size_t)n * sizeof(*w));
  if (w == NULL)
    return -ENOMEM;
  if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
    free(w);
    return -EINVAL;
  }
  *out = w;
  return 0;
}

char *transport_win_utf8(const wchar_t *w) {
  int n = WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, NULL, 0,
                              NULL, NULL);
  char *s;
  if (n <= 0)
    return NULL;
  s = malloc((size_t)n);
  if (s == NULL)
    return NULL;
  if (WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, s, n, NULL,
                          NULL) != n) {
    free(s);
    return NULL;
  }
  return s;
}

/* ---- I/O ---------------------------------------------------------------- */

/* The HANDLE behind C runtime fd fd, or INVALID_HANDLE_VALUE. */
static HANDLE fd_handle(int fd) { return (HANDLE)_get_osfhandle(fd); }

int transport_recv(int fd, void *buf, size_t n, size_t *got) {
  HANDLE h = fd_handle(fd);
  DWORD want = (DWORD)(n < IO_CHUNK ? n : IO_CHUNK);

  *got = 0;
  if (h == INVALID_HANDLE_VALUE)
    return -EBADF;
  for (int zeros = 0;;) {
    DWORD r = 0;
    if (ReadFile(h, buf, want, &r, NULL)) {
      /* A pipe reports its end as ERROR_BROKEN_PIPE, never as 0 bytes: a
       * 0-byte success there is the server writing nothing (a zero-length
       * write completes a read), so read on, a bounded number of times.
       * Anything else (a file) ends with 0 bytes. */
      if (r == 0 && GetFileType(h) == FILE_TYPE_PIPE) {
        if (++zeros >= ZERO_READS_MAX)
          return -EPROTO;
        continue;
      }
      *got = r;
      return 0;
    }
    DWORD err = GetLastError();
    /* A message-mode pipe's longer message: these bytes are good, the rest
     * follows with the next read. */
    if (err == ERROR_MORE_DATA) {
      *got = r;
      return 0;
    }
    /* The server closed its end: the end of the stream, as recv's 0. */
    if (err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED)
      return 0;
    return -transport_win_errno(err);
  }
}

/* Write all n bytes of buf to HANDLE h. Returns 0 or -errno (-EPIPE when
 * the reader has closed: ERROR_NO_DATA, "the pipe is being closed"). */
static int write_handle(HANDLE h, const void *buf, size_t n) {
  size_t done = 0;
  if (h == INVALID_HANDLE_VALUE)
    return -EBADF;
  while (done < n) {
    size_t left = n - done;
    DWORD w = 0;
    if (!WriteFile(h, (const char *)buf + done,
                   (DWORD)(left < IO_CHUNK ? left : IO_CHUNK), &w, NULL))
      return -transport_win_errno(GetLastError());
    done += w;
  }
  return 0;
}

int transport_send(int fd, const void *buf, size_t n) {
  return write_handle(fd_handle(fd), buf, n);
}

/* Straight to the HANDLE: a text-mode fd would turn "\n" into "\r\n" in the
 * middle of a file's bytes. */
int transport_write_out(int out_fd, const void *buf, size_t n) {
  return write_handle(fd_handle(out_fd), buf, n);
}

void pipefile_close(int fd) {
  /* _close closes the HANDLE too: _open_osfhandle gave it to the fd. */
  if (fd >= 0)
    _close(fd);
}

/* ---- the pipe name ------------------------------------------------------ */

/* Check that name is \\HOST\pipe\NAME: HOST "." (this machine) or a server's
 * name, "pipe" in any case, NAME non-empty and at most PIPE_NAME_MAX
 * characters. Anything else would make CreateFileW open a file or a device
 * rather than a pipe. HOST "?" (\\?\...) is refused too: a device path, and
 * not "." to the local check below. Sets *remote when HOST is not ".": a
 * server that SMB reaches, possibly this very machine by another name,
 * whose account cannot be read from here. Returns 0, PIPEFILE_ENOTPIPE or
 * -ENAMETOOLONG. */
static int check_pipe_name(const wchar_t *name, int *remote) {
  const wchar_t *host = name + 2;
  const wchar_t *p = host;

  *remote = 0;
  if (name[0] != L'\\' || name[1] != L'\\')
    return PIPEFILE_ENOTPIPE;
  while (*p && *p != L'\\' && *p != L'/')
    p++;
  if (p == host || *p != L'\\')
    return PIPEFILE_ENOTPIPE;
  if (p - host == 1 && host[0] == L'?')
    return PIPEFILE_ENOTPIPE;
  if (_wcsnicmp(p, L"\\pipe\\", 6) != 0 || p[6] == L'\0')
    return PIPEFILE_ENOTPIPE;
  if (wcslen(p + 6) > PIPE_NAME_MAX)
    return -ENAMETOOLONG;
  *remote = !(p - host == 1 && host[0] == L'.');
  return 0;
}

/* ---- who serves the pipe ------------------------------------------------ */

/* A SID allocated by whoever found it: LocalFree'd (ConvertStringSidToSidW)
 * or free()d (copies). sid_copy makes the latter from any SID. */
static PSID sid_copy(PSID sid) {
  DWORD len = GetLengthSid(sid);
  PSID c = malloc(len);
  if (c && !CopySid(len, c, sid)) {
    free(c);
    c = NULL;
  }
  return c;
}

/* "S-1-5-18 (NT AUTHORITY\SYSTEM)" into buf, or just the SID when the
 * account has no name here; suffix (may be "") follows. */
static void sid_text(PSID sid, const char *suffix, char *buf, size_t size) {
  wchar_t *ws = NULL;
  wchar_t name[256], dom[256];
  DWORD nlen = 256, dlen = 256;
  SID_NAME_USE use;
  char *s = NULL, *n = NULL, *d = NULL;

  if (buf == NULL || size == 0)
    return;
  buf[0] = '\0';
  if (ConvertSidToStringSidW(sid, &ws))
    s = transport_win_utf8(ws);
  if (LookupAccountSidW(NULL, sid, name, &nlen, dom, &dlen, &use)) {
    n = transport_win_utf8(name);
    d = transport_win_utf8(dom);
  }
  if (n && d && *d)
    snprintf(buf, size, "%s (%s\\%s)%s", s ? s : "?", d, n, suffix);
  else if (n)
    snprintf(buf, size, "%s (%s)%s", s ? s : "?", n, suffix);
  else
    snprintf(buf, size, "%s%s", s ? s : "a SID that cannot be shown", suffix);
  if (ws)
    LocalFree(ws);
  free(s);
  free(n);
  free(d);
}

/* The user SID of token tok, copied (free()). NULL on failure. */
static PSID token_user(HANDLE tok) {
  union {
    TOKEN_USER tu;
    char buf[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  } u;
  DWORD len = 0;
  if (!GetTokenInformation(tok, TokenUser, &u, sizeof(u), &len))
    return NULL;
  return sid_copy(u.tu.User.Sid);
}

/* The user SID of this process (free()), for "the client's own user". */
static PSID self_user(void) {
  HANDLE tok = NULL;
  PSID sid = NULL;
  if (OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok)) {
    sid = token_user(tok);
    CloseHandle(tok);
  }
  return sid;
}

/* The user SID of the process Windows names as pipe's server (free()), or
 * NULL when it cannot be read. Not enough alone: the pid is the server's
 * when it created the instance, and a pid freed since may be reused by a
 * process that began before not_before; the pipe's owner is checked too
 * when it can be read (check_server). Why it can fail: a process of another
 * user (a service's) normally lets anyone open it for
 * PROCESS_QUERY_LIMITED_INFORMATION, but its token's DACL need not grant
 * TOKEN_QUERY to us. not_before: when we began to connect; a process
 * created later cannot have made the pipe we reached: the server's pid was
 * reused after it exited, and that process's token says nothing. */
static PSID server_process_user(HANDLE pipe, const FILETIME *not_before) {
  ULONG pid = 0;
  HANDLE proc = NULL, tok = NULL;
  FILETIME created, exited, kern, user;
  PSID sid = NULL;

  if (!GetNamedPipeServerProcessId(pipe, &pid) || pid == 0)
    goto out;
  proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
  if (proc == NULL)
    goto out;
  if (!GetProcessTimes(proc, &created, &exited, &kern, &user) ||
      CompareFileTime(&created, not_before) > 0)
    goto out;
  if (!OpenProcessToken(proc, TOKEN_QUERY, &tok))
    goto out;
  sid = token_user(tok);
out:
  if (tok)
    CloseHandle(tok);
  if (proc)
    CloseHandle(proc);
  return sid;
}

/* The owner SID of the pipe object's security descriptor (free()), or NULL.
 * Our handle may read it: GENERIC_READ includes READ_CONTROL. Only the
 * pipe's creator chose it, and a creator can name as owner only its own
 * user or a group it may own with (Administrators, for an elevated
 * administrator or LocalSystem), unless it holds SeRestorePrivilege. */
static PSID pipe_owner(HANDLE pipe) {
  PSECURITY_DESCRIPTOR sd = NULL;
  PSID owner = NULL;
  PSID sid = NULL;
  if (GetSecurityInfo(pipe, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION,
                      &owner, NULL, NULL, NULL, &sd) == ERROR_SUCCESS &&
      owner != NULL && IsValidSid(owner))
    sid = sid_copy(owner);
  if (sd)
    LocalFree(sd);
  return sid;
}

/* The service SID of NT SERVICE\\pipefiled (free()), or NULL. Windows makes
 * a service's SID from its name alone: S-1-5-80- and the SHA-1 of the name
 * upper-cased in UTF-16LE, as five little-endian 32-bit numbers; the same
 * on every machine, whether or not the service is installed
 * (TRANSPORT_WIN_PIPEFILED_SID; the unit test recomputes it, and
 * TrustedInstaller's documented one by the same formula). A constant
 * rather than LookupAccountNameW("NT SERVICE\\pipefiled"): that gives the
 * same SID, or fails where the service is not installed. */
static PSID pipefiled_sid(void) {
  PSID conv = NULL, sid = NULL;

  if (ConvertStringSidToSidW(TRANSPORT_WIN_PIPEFILED_SID, &conv)) {
    sid = sid_copy(conv);
    LocalFree(conv);
  }
  return sid;
}

/* The default rule: LocalSystem, NT SERVICE\\pipefiled (the account `pipefiled
 * install` runs the service as), or our own user; for a pipe's owner
 * (owner != 0) also Administrators, which only an elevated administrator
 * or LocalSystem can make an object's owner, and who could run anything as
 * LocalSystem anyway. Not LocalService, NetworkService or other services'
 * accounts: any service running as one could create the pipe while
 * pipefiled is stopped; a daemon run as one must be named (--server-user).
 * Another user, who could have created the name while the daemon was down,
 * is none of these. */
static int default_trusted(PSID sid, PSID self, PSID pipefiled, int owner) {
  return IsWellKnownSid(sid, WinLocalSystemSid) ||
         (pipefiled != NULL && EqualSid(sid, pipefiled)) ||
         (self != NULL && EqualSid(sid, self)) ||
         (owner && IsWellKnownSid(sid, WinBuiltinAdministratorsSid));
}

/* server_user as a SID (free()): a SID string (S-1-...) or an account name
 * (NAME, DOMAIN\NAME, NAME@DOMAIN). Returns 0 or -EINVAL / -ENOMEM. */
static int server_user_sid(const char *server_user, PSID *out) {
  wchar_t *w = NULL;
  PSID conv = NULL;
  PSID found = NULL;
  union {
    SID sid;
    char buf[SECURITY_MAX_SID_SIZE];
  } u;
  DWORD slen = sizeof(u);
  wchar_t dom[256];
  DWORD dlen = 256;
  SID_NAME_USE use;
  int r;

  *out = NULL;
  r = transport_win_utf16(server_user, &w);
  if (r < 0)
    goto out;
  /* A SID string first; what does not parse as one may still be an
   * account whose name begins "S-". */
  if ((w[0] == L'S' || w[0] == L's') && w[1] == L'-' &&
      ConvertStringSidToSidW(w, &conv))
    found = conv;
  else if (LookupAccountNameW(NULL, w, &u.sid, &slen, dom, &dlen, &use))
    found = &u.sid;
  if (found == NULL) {
    r = -EINVAL;
    goto out;
  }
  *out = sid_copy(found);
  r = *out ? 0 : -ENOMEM;
out:
  if (conv)
    LocalFree(conv);
  free(w);
  return r;
}

int pipefile_server_user_check(const char *server_user, char *canon,
                               size_t canon_size) {
  PSID sid = NULL;
  int r;

  if (canon && canon_size)
    canon[0] = '\0';
  if (server_user == NULL || *server_user == '\0')
    return -EINVAL;
  r = server_user_sid(server_user, &sid);
  if (r == 0)
    sid_text(sid, "", canon, canon_size);
  free(sid);
  return r;
}

/* ---- connecting --------------------------------------------------------- */

/* Open the pipe: CreateFileW, waiting a bounded time while it is busy.
 * Returns 0 with *out, or -errno. */
static int open_pipe(const wchar_t *name, HANDLE *out) {
  ULONGLONG deadline = GetTickCount64() + BUSY_WAIT_MS;
  HANDLE h = INVALID_HANDLE_VALUE;

  *out = INVALID_HANDLE_VALUE;
  for (int tries = 0;; tries++) {
    /* FILE_WRITE_DATA, not GENERIC_WRITE: that includes FILE_APPEND_DATA,
     * which on a pipe is FILE_CREATE_PIPE_INSTANCE, and the daemon's pipe
     * DACL rightly grants that to nobody but itself and administrators;
     * asking for it would be denied. GENERIC_READ brings READ_CONTROL, for
     * pipe_owner().
     * SECURITY_IMPERSONATION: the daemon opens the file as us by
     * impersonating this connection's token; at the default
     * (SECURITY_ANONYMOUS when SQOS is given without a level) or at
     * Identification it cannot, and refuses us with EPERM. Impersonation
     * level lets a server act as us on this machine only (not
     * Delegation: never across the network). */
    h = CreateFileW(name, GENERIC_READ | FILE_WRITE_DATA, 0, NULL,
                    OPEN_EXISTING,
                    SECURITY_SQOS_PRESENT | SECURITY_IMPERSONATION, NULL);
    if (h != INVALID_HANDLE_VALUE)
      break;
    DWORD err = GetLastError();
    if (err != ERROR_PIPE_BUSY)
      return -transport_win_errno(err);
    ULONGLONG now = GetTickCount64();
    if (now >= deadline || tries >= BUSY_TRIES)
      return -EBUSY;
    /* Every instance is taken: wait for one to come free, then race the
     * other waiting clients for it. */
    if (!WaitNamedPipeW(name, (DWORD)(deadline - now))) {
      err = GetLastError();
      if (err == ERROR_SEM_TIMEOUT)
        return -EBUSY;
      return -transport_win_errno(err);
    }
  }
  /* Belt and braces after check_pipe_name: only a pipe is talked to. */
  if (GetFileType(h) != FILE_TYPE_PIPE) {
    CloseHandle(h);
    return PIPEFILE_ENOTPIPE;
  }
  *out = h;
  return 0;
}

/* Whether sid passes: it is expect (when a server is named), else the
 * default rule; a pipe's owner (owner != 0) may also be Administrators,
 * the default owner of what an elevated administrator or LocalSystem
 * creates, and an owner no one else can set. */
static int passes(PSID sid, PSID expect, PSID self, PSID pipefiled, int owner) {
  if (expect)
    return EqualSid(sid, expect) ||
           (owner && IsWellKnownSid(sid, WinBuiltinAdministratorsSid));
  return default_trusted(sid, self, pipefiled, owner);
}

/* Decide whether the server of local pipe h may be sent requests: expect
 * (NULL = the default rule) against the server process's user AND the
 * pipe's owner, each that can be read; at least one must be. Both because
 * each alone can be fooled: the process by pid reuse (an impostor's
 * instance whose pid now belongs to a process of the user itself), the
 * owner by nothing known, but it cannot be read everywhere (wine). Writes
 * who failed, else who serves, to server. Returns 0, PIPEFILE_EUNTRUSTED,
 * PIPEFILE_EIDENTITY or -ENOMEM. */
static int check_server(HANDLE h, const FILETIME *connect_time, PSID expect,
                        char *server, size_t server_size) {
  PSID self = NULL, pipefiled = NULL;
  PSID proc = server_process_user(h, connect_time);
  PSID owner = pipe_owner(h);
  int proc_ok, owner_ok, r;

  if (server && server_size)
    server[0] = '\0';
  if (proc == NULL && owner == NULL) {
    r = PIPEFILE_EIDENTITY;
    goto out;
  }
  if (expect == NULL) {
    self = self_user();
    pipefiled = pipefiled_sid();
  }
  proc_ok = proc == NULL || passes(proc, expect, self, pipefiled, 0);
  owner_ok = owner == NULL || passes(owner, expect, self, pipefiled, 1);
  if (proc != NULL && (!proc_ok || owner_ok))
    sid_text(proc, "", server, server_size);
  else
    sid_text(owner, ", the pipe's owner,", server, server_size);
  r = proc_ok && owner_ok ? 0 : PIPEFILE_EUNTRUSTED;
out:
  free(self);
  free(pipefiled);
  free(proc);
  free(owner);
  return r;
}

int pipefile_connect_as(const char *sock_path, const char *server_user, int *fd,
                        char *server, size_t server_size) {
  wchar_t *name = NULL;
  PSID expect = NULL;
  HANDLE h = INVALID_HANDLE_VALUE;
  FILETIME connect_time;
  int remote = 0;
  int r;

  *fd = -1;
  if (server && server_size)
    server[0] = '\0';
  if (*sock_path == '\0')
    return -EINVAL;
  if (strlen(sock_path) > PIPEFILE_SOCKET_PATH_MAX)
    return -ENAMETOOLONG;
  if (server_user && *server_user) {
    r = server_user_sid(server_user, &expect);
    if (r < 0)
      goto out;
  }
  r = transport_win_utf16(sock_path, &name);
  if (r < 0)
    goto out;
  r = check_pipe_name(name, &remote);
  if (r < 0)
    goto out;
  /* Fail closed before a remote server even sees a connection: its account
   * cannot be read from here (its pid is another machine's), so only the
   * caller naming the server it trusts lets us go on. */
  if (remote && expect == NULL) {
    r = PIPEFILE_EREMOTE;
    goto out;
  }
  GetSystemTimeAsFileTime(&connect_time);
  r = open_pipe(name, &h);
  if (r < 0)
    goto out;
  /* Nothing is sent to a server the rule does not accept; the request alone
   * would tell an impostor who asks for what. A remote server was named by
   * the caller and is taken on its word (see pipefile.h). */
  if (!remote) {
    r = check_server(h, &connect_time, expect, server, server_size);
    if (r < 0)
      goto out;
  }
  *fd = _open_osfhandle((intptr_t)h, _O_BINARY);
  if (*fd < 0) {
    r = -EMFILE;
    goto out;
  }
  h = INVALID_HANDLE_VALUE; /* the fd owns it now */
  r = 0;
out:
  if (h != INVALID_HANDLE_VALUE)
    CloseHandle(h);
  free(expect);
  free(name);
  return r;
}

int pipefile_connect_server(const char *sock_path, int64_t expect_uid, int *fd,
                            pipefile_uid_t *server_uid) {
  *fd = -1;
  if (server_uid)
    *server_uid = (pipefile_uid_t)-1;
  /* Windows has no uids: a server is named by its account
   * (pipefile_connect_as); refuse rather than ignore a uid. */
  if (expect_uid != PIPEFILE_SERVER_UID_DEFAULT)
    return -ENOTSUP;
  return pipefile_connect_as(sock_path, NULL, fd, NULL, 0);
}
