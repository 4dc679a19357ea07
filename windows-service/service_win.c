/* service_win.c - pipefiled as a Windows service: the service control
 * manager drives daemon.c's transitions, as signals do in main_linux.c;
 * and `pipefiled install` / `uninstall` register it.
 *
 * Divisions:
 *   strings     UTF-8 <-> UTF-16, the default paths
 *   controls    another thread -> an async handle -> daemon.c on the loop
 *   the service ServiceMain, its control handler, the run
 *   install     the service, its settings, the Event Log source, the
 *               %ProgramData%\pipefiled folders and a first pipefiled.ini
 *   uninstall
 *
 * The SCM calls the control handler on the dispatcher's thread (the
 * process's main thread, inside StartServiceCtrlDispatcherW) and
 * ServiceMain on a thread of its own, which runs uv_default_loop() and
 * makes every daemon.c call. The SCM is told STOPPED only after
 * daemon_finish and the loop's close: once it hears that, it may end the
 * process. */
#include "service.h"

/* uv.h first: it includes winsock2.h, which must precede windows.h. */
#include <uv.h>
#include <windows.h>

#include <sddl.h>
#include <shlobj.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fsguard_win.h"
#include "log.h"

#define START_HINT_MS 30000     /* the start: config, identity probe, pipe */
#define STOP_MARGIN_MS 10000    /* after shutdown_timeout: join, drain logs */
#define UNINSTALL_WAIT_MS 60000 /* for a running service to stop */
#define PRESHUTDOWN_MS 30000    /* the stop's bound at a system shutdown */
#define INI_LINE_MAX 198        /* config.h's CONFIG_LINE_MAX */

#define EVENTLOG_KEY                                                           \
  L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\"              \
  L"" SERVICE_NAME

/* ------------------------------------------------------------ strings */

wchar_t *service_wide(const char *s) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  wchar_t *w;

  if (n <= 0)
    return NULL;
  w = malloc((size_t)n * sizeof(*w));
  if (w != NULL &&
      MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
    free(w);
    w = NULL;
  }
  return w;
}

char *service_utf8(const wchar_t *w) {
  int n = WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, NULL, 0,
                              NULL, NULL);
  char *s;

  if (n <= 0)
    return NULL;
  s = malloc((size_t)n);
  if (s != NULL && WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, s,
                                       n, NULL, NULL) != n) {
    free(s);
    s = NULL;
  }
  return s;
}

/* malloc'ed concatenation of the wide strings given, up to a NULL. */
static wchar_t *wcat(const wchar_t *first, ...) {
  va_list ap;
  size_t n = 1;
  wchar_t *w;

  va_start(ap, first);
  for (const wchar_t *p = first; p != NULL; p = va_arg(ap, const wchar_t *))
    n += wcslen(p);
  va_end(ap);
  w = malloc(n * sizeof(*w));
  if (w == NULL)
    return NULL;
  w[0] = L'\0';
  va_start(ap, first);
  for (const wchar_t *p = first; p != NULL; p = va_arg(ap, const wchar_t *))
    wcscat(w, p);
  va_end(ap);
  return w;
}

/* FOLDERID_ProgramData, spelt out: mingw's comes from libuuid, which is
 * not linked. */
static const GUID folder_programdata = {
    0x62ab5d82,
    0xfdc1,
    0x4dc3,
    {0xa9, 0xdd, 0x07, 0x0d, 0x1d, 0x49, 0x5d, 0x97}};

/* %ProgramData%\pipefiled, malloc'ed; NULL if neither the known folder
 * nor the environment variable says where %ProgramData% is. */
static wchar_t *data_dir(void) {
  wchar_t *known = NULL, env[MAX_PATH + 1], *dir = NULL;
  DWORD n;

  if (SHGetKnownFolderPath(&folder_programdata, 0, NULL, &known) == S_OK) {
    dir = wcat(known, L"\\" SERVICE_NAME, NULL);
    CoTaskMemFree(known);
    return dir;
  }
  CoTaskMemFree(known);
  n = GetEnvironmentVariableW(L"ProgramData", env, MAX_PATH + 1);
  if (n == 0 || n > MAX_PATH)
    return NULL;
  return wcat(env, L"\\" SERVICE_NAME, NULL);
}

int service_default_config(char *buf, size_t len) {
  wchar_t *dir = data_dir(), *path = NULL;
  char *s = NULL;
  int rc = UV_ENOENT;

  if (dir == NULL)
    goto out;
  rc = UV_ENOMEM;
  path = wcat(dir, L"\\" SERVICE_NAME L".ini", NULL);
  if (path == NULL || (s = service_utf8(path)) == NULL)
    goto out;
  rc = UV_ENOBUFS;
  if (strlen(s) >= len)
    goto out;
  memcpy(buf, s, strlen(s) + 1);
  rc = 0;
out:
  free(s);
  free(path);
  free(dir);
  return rc;
}

int service_file_exists(const char *path) {
  wchar_t *w = service_wide(path);
  DWORD attr;

  if (w == NULL)
    return 0;
  attr = GetFileAttributesW(w);
  free(w);
  return attr != INVALID_FILE_ATTRIBUTES &&
         (attr & FILE_ATTRIBUTE_DIRECTORY) == 0;
}

/* path made absolute (GetFullPathNameW: against the current directory),
 * as UTF-8, malloc'ed; NULL if it cannot be. */
static char *full_path(const char *path) {
  wchar_t *w = service_wide(path), *full = NULL;
  char *s = NULL;
  DWORD n = w ? GetFullPathNameW(w, 0, NULL, NULL) : 0;

  if (n > 0 && (full = malloc(n * sizeof(*full))) != NULL &&
      GetFullPathNameW(w, n, full, NULL) < n)
    s = service_utf8(full);
  free(full);
  free(w);
  return s;
}

int service_config_trusted(const char *path) {
  char err[5120], *full;
  int rc;

  if (path == NULL)
    return 1;
  full = full_path(path);
  if (full == NULL) {
    log_error("config file %s: not a usable path", path);
    return 0;
  }
  rc =
      fsguard_win_check_trusted("config file", full, 1, NULL, err, sizeof(err));
  free(full);
  if (rc == UV_ENOENT) /* loading it says it is missing */
    return 1;
  if (rc != 0)
    log_error("%s: a config file, its folder and every folder above must "
              "be writable only by SYSTEM, Administrators or pipefiled's own "
              "account, whatever strict_modes says (a config cannot vouch "
              "for itself)",
              err);
  return rc == 0;
}

/* ----------------------------------------------------------- controls */

/* One daemon per process. The lock orders a sender (another thread)
 * against the close on the loop thread: uv_async_send on a closed handle
 * would post to a loop that may be gone. */
static struct {
  SRWLOCK lock;     /* statically initialised: a Ctrl-C may come early */
  uv_async_t async; /* on uv_default_loop() */
  struct daemon *d;
  int open;         /* async may be sent to */
  unsigned pending; /* SERVICE_CTL_* asked for, not yet acted on */
  int stop_asked;
  int under_scm;      /* service_dispatch: logs need somewhere to go */
  const char *config; /* the service's config path (UTF-8) or NULL */
} ctl = {.lock = SRWLOCK_INIT};

static int logs_have_a_place(const char *path);

/* Close the async handle; senders see it closed first. */
static void ctl_close(void) {
  AcquireSRWLockExclusive(&ctl.lock);
  ctl.open = 0;
  ReleaseSRWLockExclusive(&ctl.lock);
  uv_close((uv_handle_t *)&ctl.async, NULL);
}

static void on_ctl(uv_async_t *a) {
  struct daemon *d = ctl.d;
  unsigned what;

  (void)a;
  AcquireSRWLockExclusive(&ctl.lock);
  what = ctl.pending;
  ctl.pending = 0;
  ReleaseSRWLockExclusive(&ctl.lock);

  if (what & SERVICE_CTL_STOP) {
    if (d->state == DAEMON_RUNNING)
      notify_win_set_stop_hint(d->live->cfg.shutdown_timeout_ms +
                               STOP_MARGIN_MS);
    daemon_stop(d);
    /* The loop ends once everything has closed, this handle too. */
    ctl_close();
    return;
  }
  if (what & SERVICE_CTL_RELOAD) {
    /* A config someone else may write is refused (see
     * service_config_trusted), and under the SCM one that sends a log to
     * stderr (nowhere), as a whole, like any invalid one. (The file is
     * read twice; an edit between the two reads is the administrator's
     * race: no one else may write it.) */
    if (!service_config_trusted(d->config_path) ||
        (ctl.under_scm && d->config_path != NULL &&
         !logs_have_a_place(d->config_path)))
      log_error("reload refused, keeping the running config");
    else
      daemon_reload(d);
  }
  if (what & SERVICE_CTL_REOPEN)
    daemon_reopen(d);
}

int service_ctl_open(struct daemon *d) {
  int rc = uv_async_init(uv_default_loop(), &ctl.async, on_ctl);

  if (rc != 0)
    return rc;
  AcquireSRWLockExclusive(&ctl.lock);
  ctl.d = d;
  ctl.open = 1;
  ReleaseSRWLockExclusive(&ctl.lock);
  return 0;
}

int service_ctl_send(unsigned what) {
  int rc = 0;

  AcquireSRWLockExclusive(&ctl.lock);
  if (!ctl.open)
    rc = UV_ECANCELED;
  else if (ctl.stop_asked && (what & SERVICE_CTL_STOP))
    rc = UV_EALREADY;
  if (rc == 0) {
    ctl.stop_asked |= (what & SERVICE_CTL_STOP) != 0;
    ctl.pending |= what;
    uv_async_send(&ctl.async);
  }
  ReleaseSRWLockExclusive(&ctl.lock);
  return rc;
}

void service_ctl_close(void) { ctl_close(); }

/* -------------------------------------------------------- the service */

static int service_status; /* the process's exit status, set by run() */

/* A service has no stderr: a log sent there is lost, and an access log
 * lost is an audit trail lost. So under the SCM the config must send
 * both logs elsewhere (pipefiled install writes such a config). Returns 1
 * if it does, or if the config cannot be read (daemon.c then says why);
 * 0 after logging which key is at fault. */
static int logs_have_a_place(const char *path) {
  static struct config c; /* large: not on the stack */
  char err[CONFIG_ERR_MAX];
  const char *key = NULL;

  if (path == NULL)
    config_defaults(&c);
  else if (config_load(&c, path, err, sizeof(err)) != 0)
    return 1;
  if (strcmp(c.error_log, "stderr") == 0)
    key = "error_log";
  else if (strcmp(c.access_log, "stderr") == 0)
    key = "access_log";
  if (key == NULL)
    return 1;
  if (path == NULL)
    log_error("no config file (-c FILE): the built-in [log] %s = stderr has "
              "nowhere to go in a service; `pipefiled install` registers the "
              "service with a config that sends it elsewhere",
              key);
  else
    log_error("%s: [log] %s = stderr: a service has no stderr; set it to "
              "syslog (the Event Log)%s",
              path, key,
              strcmp(key, "access_log") == 0 ? ", a file or off" : "");
  return 0;
}

static DWORD WINAPI on_control(DWORD code, DWORD type, LPVOID data,
                               LPVOID context) {
  (void)type;
  (void)data;
  (void)context;
  switch (code) {
  case SERVICE_CONTROL_STOP:
  case SERVICE_CONTROL_PRESHUTDOWN: /* the system is shutting down */
  case SERVICE_CONTROL_SHUTDOWN:    /* if preshutdown was not delivered */
    (void)service_ctl_send(SERVICE_CTL_STOP); /* a second one: no-op */
    return NO_ERROR;
  case SERVICE_CONTROL_PARAMCHANGE:
    return service_ctl_send(SERVICE_CTL_RELOAD) == 0
               ? NO_ERROR
               : ERROR_SERVICE_CANNOT_ACCEPT_CTRL;
  case SERVICE_CONTROL_REOPEN:
    return service_ctl_send(SERVICE_CTL_REOPEN) == 0
               ? NO_ERROR
               : ERROR_SERVICE_CANNOT_ACCEPT_CTRL;
  case SERVICE_CONTROL_INTERROGATE:
    return NO_ERROR;
  default:
    return ERROR_CALL_NOT_IMPLEMENTED;
  }
}

/* The daemon on this thread's uv_default_loop(): start, serve until the
 * SCM stops us, finish. Returns the exit status. */
static int run(const char *config_path) {
  static struct daemon d; /* large: not on the stack */
  int status, rc;

  rc = service_ctl_open(&d);
  if (rc != 0) {
    log_error("cannot watch for service controls: %s", uv_strerror(rc));
    return 1;
  }
  if (!service_config_trusted(config_path) || !logs_have_a_place(config_path)) {
    status = EX_CONFIG_CODE;
    service_ctl_close();
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    goto out;
  }
  status = daemon_start(&d, config_path);
  if (status != 0) {
    service_ctl_close();
    uv_run(uv_default_loop(), UV_RUN_DEFAULT); /* let the close finish */
    goto out;
  }
  daemon_ready(&d); /* -> SERVICE_RUNNING (notify_win.c) */
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  status = daemon_finish(&d);
out:
  uv_loop_close(uv_default_loop());
  return status;
}

static void WINAPI service_main(DWORD argc, LPWSTR *argv) {
  SERVICE_STATUS_HANDLE h;

  (void)argc; /* `sc start pipefiled ARGS`: the command line decides */
  (void)argv;
  /* Until the config says otherwise, and for a config that cannot be
   * read: a service's messages go to the Event Log. */
  log_setup("syslog", LOG_LVL_INFO);
  h = RegisterServiceCtrlHandlerExW(L"" SERVICE_NAME, on_control, NULL);
  if (h == NULL) {
    log_error("cannot register with the service control manager (error "
              "%lu)",
              (unsigned long)GetLastError());
    service_status = 1;
    return;
  }
  notify_win_attach(h);
  notify_win_report(SERVICE_START_PENDING, NO_ERROR, 0, START_HINT_MS);
  service_status = run(ctl.config);
  log_flush();
  if (service_status == 0)
    notify_win_report(SERVICE_STOPPED, NO_ERROR, 0, 0);
  else /* sc query shows the daemon's exit status */
    notify_win_report(SERVICE_STOPPED, ERROR_SERVICE_SPECIFIC_ERROR,
                      (unsigned long)service_status, 0);
}

int service_dispatch(const char *config_path) {
  SERVICE_TABLE_ENTRYW table[] = {{(LPWSTR)L"" SERVICE_NAME, service_main},
                                  {NULL, NULL}};

  ctl.under_scm = 1;
  ctl.config = config_path;
  if (!StartServiceCtrlDispatcherW(table)) {
    DWORD e = GetLastError();
    if (e == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT)
      return UV_ENOTCONN;
    fprintf(stderr, "pipefiled: StartServiceCtrlDispatcher: error %lu\n",
            (unsigned long)e);
    return 1;
  }
  return service_status;
}

/* ------------------------------------------------------------ install */

/* Print what failed, with the system's text for error e. */
static void say_error(const char *what, DWORD e) {
  wchar_t *msg = NULL;
  char *m = NULL;

  if (FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER |
                         FORMAT_MESSAGE_FROM_SYSTEM |
                         FORMAT_MESSAGE_IGNORE_INSERTS,
                     NULL, e, 0, (LPWSTR)&msg, 0, NULL) > 0)
    m = service_utf8(msg);
  if (m != NULL) /* the system's text ends in "\r\n" */
    m[strcspn(m, "\r\n")] = '\0';
  fprintf(stderr, "pipefiled: %s: %s (error %lu)%s\n", what, m ? m : "failed",
          (unsigned long)e,
          e == ERROR_ACCESS_DENIED ? "; run it as an administrator" : "");
  free(m);
  LocalFree(msg);
}

/* This program's full path, malloc'ed (long paths: the buffer grows). */
static wchar_t *exe_path(void) {
  for (DWORD size = MAX_PATH; size <= 32768; size *= 2) {
    wchar_t *p = malloc(size * sizeof(*p));
    DWORD n;

    if (p == NULL)
      return NULL;
    n = GetModuleFileNameW(NULL, p, size);
    if (n > 0 && n < size)
      return p;
    free(p);
    if (n == 0)
      return NULL;
  }
  return NULL;
}

/* The SID of the virtual account NT SERVICE\name, as SDDL text
 * (LocalFree it): S-1-5-80 followed by the SHA-1 of the upper-cased name in
 * UTF-16LE as five 32-bit sub-authorities, the same as `sc showsid`. Made
 * here rather than looked up: it exists before the service does, and
 * wine's LookupAccountNameW knows no NT SERVICE accounts. NULL on error. */
static wchar_t *service_sid(const wchar_t *name) {
  HCRYPTPROV prov = 0;
  HCRYPTHASH hash = 0;
  BYTE digest[20];
  DWORD len = sizeof(digest), sub[5];
  wchar_t upper[257], *text = NULL;
  size_t n = wcslen(name);

  if (n == 0 || n > 256)
    return NULL;
  wcscpy(upper, name);
  CharUpperBuffW(upper, (DWORD)n);
  if (CryptAcquireContextW(&prov, NULL, NULL, PROV_RSA_FULL,
                           CRYPT_VERIFYCONTEXT) &&
      CryptCreateHash(prov, CALG_SHA1, 0, 0, &hash) &&
      CryptHashData(hash, (const BYTE *)upper, (DWORD)(n * sizeof(*upper)),
                    0) &&
      CryptGetHashParam(hash, HP_HASHVAL, digest, &len, 0) && len == 20) {
    wchar_t buf[128];
    for (int i = 0; i < 5; i++) /* little-endian, as Windows is */
      sub[i] = (DWORD)digest[4 * i] | (DWORD)digest[4 * i + 1] << 8 |
               (DWORD)digest[4 * i + 2] << 16 | (DWORD)digest[4 * i + 3] << 24;
    swprintf(buf, 128, L"S-1-5-80-%lu-%lu-%lu-%lu-%lu", (unsigned long)sub[0],
             (unsigned long)sub[1], (unsigned long)sub[2],
             (unsigned long)sub[3], (unsigned long)sub[4]);
    text = LocalAlloc(LMEM_FIXED, (wcslen(buf) + 1) * sizeof(*buf));
    if (text != NULL)
      wcscpy(text, buf);
  }
  if (hash)
    CryptDestroyHash(hash);
  if (prov)
    CryptReleaseContext(prov, 0);
  return text;
}

/* The SID, as SDDL text, that the folders are granted to (LocalFree it;
 * NULL if none is found):
 * - account NT SERVICE\X (a virtual account, pipefiled's by default): X's
 *   service SID;
 * - else, when the service SID type could be set (the service's own SID,
 *   NT SERVICE\pipefiled, is then in its token): that SID, so that no
 *   other service running as the same account may write pipefiled's logs;
 * - else the account's, looked up. */
static wchar_t *writer_sid(const wchar_t *account, int sid_type_set) {
  static const wchar_t prefix[] = L"NT SERVICE\\";
  const size_t np = wcslen(prefix);
  BYTE sid[SECURITY_MAX_SID_SIZE];
  wchar_t domain[256], *text = NULL;
  DWORD sidlen = sizeof(sid), domlen = 256;
  SID_NAME_USE use;

  if (_wcsnicmp(account, prefix, np) == 0)
    return service_sid(account + np);
  if (sid_type_set)
    return service_sid(L"" SERVICE_NAME);
  if (LookupAccountNameW(NULL, account, sid, &sidlen, domain, &domlen, &use))
    (void)ConvertSidToStringSidW(sid, &text);
  return text;
}

/* Create directory dir with the protected DACL sddl (nothing inherited
 * from %ProgramData%, where every user may create files). An existing one
 * is left as it is: trusted_data() judged it before, and judges it again
 * after (someone may have made it in between). Returns 0, or the error. */
static DWORD make_dir(const wchar_t *dir, const wchar_t *sddl) {
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, FALSE};
  DWORD e = 0;
  char *u = service_utf8(dir);

  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
          sddl, SDDL_REVISION_1, &sa.lpSecurityDescriptor, NULL)) {
    e = GetLastError();
    goto out;
  }
  if (CreateDirectoryW(dir, &sa))
    printf("created %s\n", u ? u : "a folder");
  else if ((e = GetLastError()) == ERROR_ALREADY_EXISTS) {
    printf("%s exists: kept (its owner and permissions are trusted)\n",
           u ? u : "a folder");
    e = 0;
  }
out:
  LocalFree(sa.lpSecurityDescriptor);
  free(u);
  return e;
}

/* Write the first pipefiled.ini at path (never over an existing one):
 * the served root and the access log under dir, the error log to the
 * Event Log. Returns 0 or the error. */
static DWORD write_ini(const wchar_t *path, const wchar_t *dir) {
  char *d = service_utf8(dir), *p = service_utf8(path), text[2048];
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, FALSE};
  HANDLE h = INVALID_HANDLE_VALUE;
  DWORD e = ERROR_NOT_ENOUGH_MEMORY, done;
  int n;

  if (d == NULL || p == NULL)
    goto out;
  /* inih's line limit: a longer root or access_log line is refused. */
  e = ERROR_FILENAME_EXCED_RANGE;
  if (strlen(d) + sizeof("access_log = \\logs\\access.log") > INI_LINE_MAX)
    goto out;
  n = snprintf(text, sizeof(text),
               "; pipefiled.ini - written by `pipefiled install`. Every key "
               "not set here\r\n"
               "; has its built-in default: `pipefiled --check-config -c "
               "FILE` prints\r\n"
               "; them all. `sc control pipefiled paramchange` re-reads this "
               "file.\r\n"
               "\r\n"
               "[server]\r\n"
               "socket = %s\r\n"
               "; Clients are served files beneath it, opened as "
               "themselves.\r\n"
               "root = %s\\files\r\n"
               "\r\n"
               "[log]\r\n"
               "access_log = %s\\logs\\access.log\r\n"
               "; The Windows Event Log (Application, source "
               "pipefiled).\r\n"
               "error_log = syslog\r\n",
               CONFIG_DEFAULT_SOCKET, d, d);
  if (n < 0 || (size_t)n >= sizeof(text))
    goto out;
  /* Owned by Administrators, as the folders (make_data); the DACL is
   * the folder's, inherited. */
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
          L"O:BA", SDDL_REVISION_1, &sa.lpSecurityDescriptor, NULL)) {
    e = GetLastError();
    goto out;
  }
  h = CreateFileW(path, GENERIC_WRITE, 0, &sa, CREATE_NEW,
                  FILE_ATTRIBUTE_NORMAL, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    e = GetLastError();
    if (e == ERROR_FILE_EXISTS) {
      printf("%s exists: kept\n", p);
      e = 0;
    }
    goto out;
  }
  if (!WriteFile(h, text, (DWORD)n, &done, NULL) || done != (DWORD)n) {
    e = GetLastError();
    goto out;
  }
  printf("wrote %s\n", p);
  e = 0;
out:
  if (h != INVALID_HANDLE_VALUE)
    CloseHandle(h);
  LocalFree(sa.lpSecurityDescriptor);
  free(d);
  free(p);
  return e;
}

/* The folders and the first config, for a service running as sid.
 * %ProgramData%\pipefiled: SYSTEM and Administrators full, the service
 * read (its config). files\ (the served root): also read for
 * Authenticated Users, as clients open files there as themselves. logs\:
 * the service may write; users may not read (the access log says who
 * fetched what). */
static DWORD make_data(const wchar_t *dir, const wchar_t *config,
                       const wchar_t *sid) {
  /* Owned by Administrators (O:BA), not by the installing admin's own
   * account: the service trusts SYSTEM, Administrators and itself, and an
   * admin's token may make its user the owner of what it creates. */
  static const wchar_t admin[] = L"O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";
  wchar_t sddl[512], *sub = NULL;
  DWORD e;

  swprintf(sddl, 512, L"%ls(A;OICI;0x1200a9;;;%ls)", admin, sid);
  if ((e = make_dir(dir, sddl)) != 0)
    goto out;
  swprintf(sddl, 512, L"%ls(A;OICI;0x1200a9;;;%ls)(A;OICI;0x1200a9;;;AU)",
           admin, sid);
  e = ERROR_NOT_ENOUGH_MEMORY;
  if ((sub = wcat(dir, L"\\files", NULL)) == NULL ||
      (e = make_dir(sub, sddl)) != 0)
    goto out;
  free(sub);
  swprintf(sddl, 512, L"%ls(A;OICI;0x1301bf;;;%ls)", admin, sid);
  e = ERROR_NOT_ENOUGH_MEMORY;
  if ((sub = wcat(dir, L"\\logs", NULL)) == NULL ||
      (e = make_dir(sub, sddl)) != 0)
    goto out;
  e = write_ini(config, dir);
out:
  free(sub);
  return e;
}

/* The Event Log source: messages are found in this exe's message table
 * (windows-service/messages.mc: one message, id 1, "%1"). */
static DWORD add_event_source(const wchar_t *exe) {
  HKEY k;
  DWORD types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE |
                EVENTLOG_INFORMATION_TYPE,
        e;

  e = (DWORD)RegCreateKeyExW(HKEY_LOCAL_MACHINE, EVENTLOG_KEY, 0, NULL, 0,
                             KEY_SET_VALUE, NULL, &k, NULL);
  if (e != ERROR_SUCCESS)
    return e;
  e = (DWORD)RegSetValueExW(k, L"EventMessageFile", 0, REG_EXPAND_SZ,
                            (const BYTE *)exe,
                            (DWORD)((wcslen(exe) + 1) * sizeof(*exe)));
  if (e == ERROR_SUCCESS)
    e = (DWORD)RegSetValueExW(k, L"TypesSupported", 0, REG_DWORD,
                              (const BYTE *)&types, sizeof(types));
  RegCloseKey(k);
  return e;
}

/* The optional settings: a failure is reported and install goes on (wine
 * implements only some of them). Returns 1 if the service SID type was
 * set (the service's SID is then in its token). */
static int configure(SC_HANDLE svc) {
  SERVICE_DESCRIPTIONW desc = {
      (LPWSTR)L"Serves files over the named pipe \\\\.\\pipe\\pipefiled to "
              L"local clients, opening each file as the client who asks."};
  SC_ACTION restart[2] = {{SC_ACTION_RESTART, 5000}, {SC_ACTION_RESTART, 5000}};
  SERVICE_FAILURE_ACTIONSW fa = {86400, NULL, NULL, 2, restart};
  SERVICE_SID_INFO sid = {SERVICE_SID_TYPE_UNRESTRICTED};
  /* Only what serving needs: impersonating the client and traversing
   * folders it may not list; everything else is removed from the token. */
  static wchar_t privs[] = L"SeImpersonatePrivilege\0"
                           L"SeChangeNotifyPrivilege\0";
  SERVICE_REQUIRED_PRIVILEGES_INFOW rp = {privs};
  /* At a system shutdown, services that take SHUTDOWN get a few seconds
   * only; PRESHUTDOWN waits up to this long, which covers the default
   * shutdown_timeout and its margin. */
  SERVICE_PRESHUTDOWN_INFO pre = {PRESHUTDOWN_MS};
  int sid_set;

  if (!ChangeServiceConfig2W(svc, SERVICE_CONFIG_DESCRIPTION, &desc))
    say_error("description not set", GetLastError());
  if (!ChangeServiceConfig2W(svc, SERVICE_CONFIG_PRESHUTDOWN_INFO, &pre))
    say_error("preshutdown time-out not set", GetLastError());
  if (ChangeServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &fa))
    printf("recovery: restart after 5 s, twice; the count resets after a "
           "day\n");
  else
    say_error("recovery actions not set", GetLastError());
  sid_set = ChangeServiceConfig2W(svc, SERVICE_CONFIG_SERVICE_SID_INFO, &sid);
  if (!sid_set)
    say_error("service SID type not set", GetLastError());
  if (ChangeServiceConfig2W(svc, SERVICE_CONFIG_REQUIRED_PRIVILEGES_INFO, &rp))
    printf("privileges: SeImpersonatePrivilege and SeChangeNotifyPrivilege "
           "only\n");
  else
    say_error("required privileges not set", GetLastError());
  return sid_set;
}

/* Whether what install relies on may be trusted (fsguard_win.c's rules,
 * strictly): pipefiled.exe and its folders (the loader takes DLLs from
 * the exe's folder first: IPHLPAPI.DLL and USERENV.dll are not
 * KnownDLLs, so whoever can add a file there runs code with
 * SeImpersonatePrivilege), and %ProgramData%\pipefiled, files\, logs\ and
 * the config. Any user may create %ProgramData%\pipefiled before install
 * and own it, so an existing one is only kept if it passes. sid: the SID
 * the folders are granted to (SDDL), trusted too: an earlier install made
 * logs\ writable by it. Before the service is created, missing ones pass
 * (they are made); after the folders are made (after: 1), everything must
 * exist and pass, which catches a folder someone made in between. Returns
 * 1, or 0 after saying what is wrong and what to do. */
static int trusted_data(const wchar_t *exe, const wchar_t *dir,
                        const wchar_t *config, const wchar_t *sid, int after) {
  static const wchar_t *const subs[] = {L"", L"\\files", L"\\logs"};
  char err[5120], *path = NULL, *s = service_utf8(sid);
  wchar_t *w = NULL;
  int ok = 0, rc;

  if (s == NULL)
    goto nomem;
  if (!after) {
    /* GetModuleFileNameW may give "\\?\C:\...": the check takes C:\... */
    if ((path = service_utf8(wcsncmp(exe, L"\\\\?\\", 4) == 0 ? exe + 4
                                                              : exe)) == NULL)
      goto nomem;
    rc = fsguard_win_check_trusted("program", path, 1, s, err, sizeof(err));
    if (rc != 0) {
      fprintf(stderr,
              "pipefiled: %s\npipefiled: a service runs DLLs found beside its "
              "program: copy pipefiled.exe to a folder only administrators "
              "can write, e.g. %%ProgramFiles%%\\pipefiled, and install "
              "from there\n",
              err);
      goto out;
    }
    free(path);
    path = NULL;
  }
  for (size_t i = 0; i <= sizeof(subs) / sizeof(subs[0]); i++) {
    int is_file = i == sizeof(subs) / sizeof(subs[0]);

    free(w);
    free(path);
    path = NULL;
    w = is_file ? wcat(config, NULL) : wcat(dir, subs[i], NULL);
    if (w == NULL || (path = service_utf8(w)) == NULL)
      goto nomem;
    rc = fsguard_win_check_trusted(is_file ? "config file" : "folder", path,
                                   is_file, s, err, sizeof(err));
    if (rc == 0 || (rc == UV_ENOENT && !after))
      continue;
    fprintf(stderr, "pipefiled: %s\npipefiled: %s\n", err,
            rc == UV_ENOENT ? "it should exist by now; install again"
                            : "remove it or fix its permissions (only SYSTEM, "
                              "Administrators and the service may write "
                              "it), then install again");
    goto out;
  }
  ok = 1;
  goto out;
nomem:
  fprintf(stderr, "pipefiled: out of memory\n");
out:
  free(w);
  free(path);
  free(s);
  return ok;
}

/* Tell the administrator now if the service will refuse its config
 * (install goes on: the file is theirs to fix, before the start). Run as
 * the installing user, so a root the service account cannot read is not
 * caught here. */
static void check_for_service(const wchar_t *config) {
  static struct config c; /* large: not on the stack */
  struct live *l = NULL;
  char err[CONFIG_ERR_MAX], *path = service_utf8(config);

  if (path == NULL)
    return;
  if (daemon_load_config(path, 1, &c, &l, err, sizeof(err)) != 0)
    log_error("%s", err);
  else if (logs_have_a_place(path))
    printf("%s: valid\n", path);
  live_unref(l);
  free(path);
}

int service_install(const char *config_path, const char *account) {
  wchar_t *exe = NULL, *dir = NULL, *config = NULL, *cmd = NULL, *acct = NULL,
          *sid = NULL, full[MAX_PATH * 4];
  SC_HANDLE scm = NULL, svc = NULL;
  char *u = NULL;
  DWORD e;
  int status = 1, added_source = 0, sid_type_set;

  if ((exe = exe_path()) == NULL || (dir = data_dir()) == NULL) {
    say_error("cannot find this program's path or %ProgramData%",
              GetLastError());
    goto out;
  }
  if (config_path != NULL) {
    wchar_t *w = service_wide(config_path);
    DWORD n = w ? GetFullPathNameW(w, MAX_PATH * 4, full, NULL) : 0;
    free(w);
    if (n == 0 || n >= MAX_PATH * 4) {
      fprintf(stderr, "pipefiled: --config %s: not a usable path\n",
              config_path);
      goto out;
    }
    config = wcat(full, NULL);
  } else {
    config = wcat(dir, L"\\" SERVICE_NAME L".ini", NULL);
  }
  /* The virtual account by default: a SID of its own, where LocalService's
   * is shared by many services. */
  acct = account ? service_wide(account)
                 : wcat(L"NT SERVICE\\" SERVICE_NAME, NULL);
  /* The full path, quoted: an unquoted path with spaces would let the
   * SCM try "C:\Program.exe" first. */
  cmd = config ? wcat(L"\"", exe, L"\" -c \"", config, L"\"", NULL) : NULL;
  if (config == NULL || acct == NULL || cmd == NULL) {
    fprintf(stderr, "pipefiled: out of memory\n");
    goto out;
  }
  /* Before anything is created: the SID the folders will be granted to,
   * assuming the service SID type can be set (checked again below). */
  if ((sid = writer_sid(acct, 1)) == NULL) {
    say_error("cannot find the account's SID", GetLastError());
    goto out;
  }
  if (!trusted_data(exe, dir, config, sid, 0))
    goto out;
  LocalFree(sid);
  sid = NULL;

  scm = OpenSCManagerW(NULL, NULL,
                       SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
  if (scm == NULL) {
    say_error("cannot open the service control manager", GetLastError());
    goto out;
  }
  /* No password: a virtual account (NT SERVICE\NAME), LocalService,
   * NetworkService or a managed service account need none. */
  svc = CreateServiceW(scm, L"" SERVICE_NAME, L"" SERVICE_DISPLAY_NAME,
                       SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                       SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, cmd, NULL,
                       NULL, NULL, acct, NULL);
  if (svc == NULL) {
    e = GetLastError();
    say_error("cannot create the service", e);
    if (e == ERROR_SERVICE_EXISTS)
      fprintf(stderr, "pipefiled: run `pipefiled uninstall` first\n");
    goto out;
  }
  u = service_utf8(cmd);
  printf("installed service %s (%s), automatic start, as %s:\n  %s\n",
         SERVICE_NAME, SERVICE_DISPLAY_NAME,
         account ? account : "NT SERVICE\\" SERVICE_NAME, u ? u : "");
  free(u);
  u = NULL;
  sid_type_set = configure(svc);

  if ((e = add_event_source(exe)) != 0) {
    say_error("cannot register the Event Log source", e);
    goto undo;
  }
  added_source = 1;
  printf("Event Log source %s registered (Application log)\n", SERVICE_NAME);

  sid = writer_sid(acct, sid_type_set);
  if (sid == NULL) {
    /* Without a SID the logs folder could not be made writable for the
     * service: say so rather than leave a service that cannot log. */
    say_error("cannot find the account's SID", GetLastError());
    goto undo;
  }
  u = service_utf8(sid);
  printf("the service's folders are granted to %s\n", u ? u : "its SID");
  free(u);
  u = NULL;
  if ((e = make_data(dir, config, sid)) != 0) {
    say_error("cannot prepare the data folders and the config", e);
    goto undo;
  }
  if (!trusted_data(exe, dir, config, sid, 1))
    goto undo;
  check_for_service(config);
  printf("start it with: net start %s (or sc start %s)\n", SERVICE_NAME,
         SERVICE_NAME);
  status = 0;
  goto out;
undo:
  /* All or nothing: a half-installed service would fail at start. */
  if (added_source)
    RegDeleteKeyW(HKEY_LOCAL_MACHINE, EVENTLOG_KEY);
  if (DeleteService(svc))
    fprintf(stderr, "pipefiled: service removed again\n");
out:
  if (svc != NULL)
    CloseServiceHandle(svc);
  if (scm != NULL)
    CloseServiceHandle(scm);
  LocalFree(sid);
  free(u);
  free(cmd);
  free(acct);
  free(config);
  free(dir);
  free(exe);
  return status;
}

/* ---------------------------------------------------------- uninstall */

/* Ask a running service to stop and wait for it, at most
 * UNINSTALL_WAIT_MS. Returns 1 if it is stopped. */
static int stop_and_wait(SC_HANDLE svc) {
  SERVICE_STATUS st;
  ULONGLONG until = GetTickCount64() + UNINSTALL_WAIT_MS;

  if (!QueryServiceStatus(svc, &st))
    return 0;
  if (st.dwCurrentState == SERVICE_STOPPED)
    return 1;
  printf("stopping %s ...\n", SERVICE_NAME);
  if (!ControlService(svc, SERVICE_CONTROL_STOP, &st) &&
      GetLastError() != ERROR_SERVICE_CANNOT_ACCEPT_CTRL)
    say_error("cannot stop the service", GetLastError());
  while (QueryServiceStatus(svc, &st) && st.dwCurrentState != SERVICE_STOPPED &&
         GetTickCount64() < until)
    Sleep(250);
  return st.dwCurrentState == SERVICE_STOPPED;
}

int service_uninstall(void) {
  SC_HANDLE scm = NULL, svc = NULL;
  wchar_t *dir = data_dir();
  char *d = dir ? service_utf8(dir) : NULL;
  DWORD e;
  int status = 1;

  scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  if (scm == NULL) {
    say_error("cannot open the service control manager", GetLastError());
    goto out;
  }
  svc = OpenServiceW(scm, L"" SERVICE_NAME,
                     SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE);
  if (svc == NULL) {
    e = GetLastError();
    if (e != ERROR_SERVICE_DOES_NOT_EXIST) {
      say_error("cannot open the service", e);
      goto out;
    }
    printf("service %s is not installed\n", SERVICE_NAME);
  } else {
    if (!stop_and_wait(svc))
      fprintf(stderr,
              "pipefiled: the service did not stop within %d s; it is "
              "removed once it stops\n",
              UNINSTALL_WAIT_MS / 1000);
    if (!DeleteService(svc) &&
        (e = GetLastError()) != ERROR_SERVICE_MARKED_FOR_DELETE) {
      say_error("cannot delete the service", e);
      goto out;
    }
    printf("service %s removed\n", SERVICE_NAME);
  }
  e = (DWORD)RegDeleteKeyW(HKEY_LOCAL_MACHINE, EVENTLOG_KEY);
  if (e == ERROR_SUCCESS)
    printf("Event Log source %s removed (its past events stay)\n",
           SERVICE_NAME);
  else if (e != ERROR_FILE_NOT_FOUND)
    say_error("cannot remove the Event Log source", e);
  printf("left %s (config, served files, logs): remove it by hand if it is "
         "no longer wanted\n",
         d ? d : "%ProgramData%\\pipefiled");
  status = 0;
out:
  if (svc != NULL)
    CloseServiceHandle(svc);
  if (scm != NULL)
    CloseServiceHandle(scm);
  free(d);
  free(dir);
  return status;
}
