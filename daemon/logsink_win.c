/* logsink_win.c - logsink.h on Windows: log files through fsguard (a
 * HANDLE opened for appending), the process's standard error, and the
 * Windows Event Log in place of syslog.
 *
 * 1. open, reopen, close
 * 2. stream sinks: file and stderr (WriteFile; WriteConsoleW to a console)
 * 3. the Event Log (ReportEventW under the source "pipefiled") */
#include "logsink.h"

#include <windows.h>

#include <stdio.h>
#include <string.h>

#include "fsguard.h"

/* The event id every message is reported under. The message table compiled
 * into pipefiled.exe (windows-service/messages.mc) holds message 1 as the
 * single insertion string "%1", so the Event Viewer shows our text as it
 * is; windmc's defaults (severity Success, no facility) make that id
 * exactly 1. Without the table (an exe built without it, or a source
 * registered to another file) the text still sits in the record, and the
 * viewer prefixes it with "the description cannot be found". */
#define LOGSINK_EVENT_ID 1
#define LOGSINK_EVENT_SOURCE L"pipefiled"
#define LOGSINK_EVENT_WHERE                                                    \
  "the Windows Event Log (Application, source pipefiled)"

/* A stderr write that takes nothing (a PIPE_NOWAIT pipe) is retried this
 * often, each try 1 ms apart, before the line is dropped. */
#define LOGSINK_STDERR_TRIES 10

/* UTF-16 units converted per WriteConsoleW: a whole error-log line
 * (log.c's LOG_LINE_MAX and prefix) goes out in one call. */
#define LOGSINK_CONSOLE_CHUNK 4096

/* No handle: off, syslog, or a stderr the process does not have. */
static int no_handle(HANDLE h) {
  return h == NULL || h == INVALID_HANDLE_VALUE;
}

/* ---- 1. open, reopen, close ------------------------------------------- */

int logsink_open(struct logsink *s, const char *spec, int strict, char *err,
                 size_t errlen) {
  uv_os_fd_t h;
  int r = 0;

  memset(s, 0, sizeof *s);
  s->handle = NULL;
  s->strict = strict;
  if (errlen > 0)
    err[0] = '\0'; /* no warning */
  if (spec == NULL || spec[0] == '\0') {
    snprintf(err, errlen, "no log destination");
    r = UV_EINVAL;
    goto out;
  }
  if (strlen(spec) >= sizeof s->name) {
    snprintf(err, errlen, "log path too long");
    r = UV_ENAMETOOLONG;
    goto out;
  }
  strcpy(s->name, spec);
  if (strcmp(spec, "off") == 0) {
    s->kind = LOGSINK_OFF;
  } else if (strcmp(spec, "stderr") == 0) {
    /* A service has no standard error: the handle is NULL or invalid, and
     * lines written there go nowhere (logsink_write), which is what
     * "stderr" means for a process that has none. */
    s->kind = LOGSINK_STDERR;
    s->handle = GetStdHandle(STD_ERROR_HANDLE);
  } else if (strcmp(spec, "syslog") == 0) {
    s->kind = LOGSINK_SYSLOG;
  } else {
    r = fsguard_open_log(spec, strict, &h, err, errlen);
    if (r < 0)
      goto out;
    s->kind = LOGSINK_FILE;
    s->handle = h;
  }
out:
  return r;
}

int logsink_reopen(struct logsink *s, char *err, size_t errlen) {
  uv_os_fd_t h;
  int r;

  if (errlen > 0)
    err[0] = '\0';
  if (s->kind != LOGSINK_FILE)
    return 0;
  /* The file is open with FILE_SHARE_DELETE, so a rotation could rename
   * it while we held it; the name now leads to a new file (or none). */
  r = fsguard_open_log(s->name, s->strict, &h, err, errlen);
  if (r < 0)
    return r;
  CloseHandle(s->handle);
  s->handle = h;
  return 1;
}

void logsink_close(struct logsink *s) {
  /* stderr is the process's, and the Event Log handle is shared by all. */
  if (s->kind == LOGSINK_FILE && !no_handle(s->handle))
    CloseHandle(s->handle);
  s->handle = NULL;
  s->kind = LOGSINK_OFF;
}

const char *logsink_where(const struct logsink *s) {
  return s->kind == LOGSINK_SYSLOG ? LOGSINK_EVENT_WHERE : s->name;
}

/* ---- 2. stream sinks: file and stderr --------------------------------- */

/* A console shows UTF-16 (WriteConsoleW) whatever its code page. Our text
 * is UTF-8, which WriteFile would hand to the console as bytes of its code
 * page (437 or 1252, usually), garbling every non-ASCII file name. Written
 * in chunks cut after a newline where there is one, else on a character
 * boundary. Returns 0 when written, 1 when h is not a console (the caller
 * writes bytes), or a negative UV_E* code. */
static int console_write(HANDLE h, const char *buf, size_t len) {
  wchar_t w[LOGSINK_CONSOLE_CHUNK];
  DWORD mode;

  if (!GetConsoleMode(h, &mode))
    return 1;
  while (len > 0) {
    size_t n = len < LOGSINK_CONSOLE_CHUNK ? len : LOGSINK_CONSOLE_CHUNK;
    DWORD wrote;
    int m;

    if (n < len) {
      size_t nl = n;
      while (nl > 0 && buf[nl - 1] != '\n')
        nl--;
      if (nl > 0)
        n = nl;
      else
        while (n > 1 && ((unsigned char)buf[n] & 0xC0) == 0x80)
          n--;
    }
    /* Flags 0: bytes that are not UTF-8 show as U+FFFD. */
    m = MultiByteToWideChar(CP_UTF8, 0, buf, (int)n, w, LOGSINK_CONSOLE_CHUNK);
    if (m <= 0 || !WriteConsoleW(h, w, (DWORD)m, &wrote, NULL))
      return uv_translate_sys_error((int)GetLastError());
    buf += n;
    len -= n;
  }
  return 0;
}

int logsink_write(struct logsink *s, const char *buf, size_t len, size_t *done,
                  unsigned wait_ms) {
  unsigned waited = 0;

  *done = 0;
  if (s->kind == LOGSINK_OFF) {
    *done = len;
    return 0;
  }
  if (s->kind == LOGSINK_SYSLOG)
    return UV_EINVAL;
  if (no_handle(s->handle)) { /* stderr of a process without one */
    *done = len;
    return 0;
  }
  if (s->kind == LOGSINK_STDERR) {
    int r = console_write(s->handle, buf, len);
    if (r <= 0) {
      if (r == 0)
        *done = len;
      return r;
    }
  }
  while (*done < len) {
    size_t want = len - *done;
    DWORD n = 0;

    /* WriteFile takes a DWORD; our batches are far smaller, but a
     * size_t is not. */
    if (want > 0x40000000u)
      want = 0x40000000u;
    if (!WriteFile(s->handle, buf + *done, (DWORD)want, &n, NULL))
      return uv_translate_sys_error((int)GetLastError());
    if (n == 0) {
      /* Only a PIPE_NOWAIT pipe that is full takes nothing and says yes:
       * a file, a console or a blocking pipe block instead. Wait for room
       * as long as the caller allows, a millisecond at a time, as there is
       * nothing to wait on for it. */
      if (waited >= wait_ms)
        return UV_EAGAIN;
      Sleep(1);
      waited++;
      continue;
    }
    *done += n;
  }
  return 0;
}

/* A service has no stderr (the handle is NULL): lines go nowhere, which is
 * why a service logs to the Event Log. A console gets the line as UTF-16
 * (console_write); a file or a pipe as it is, in one WriteFile, which a
 * pipe keeps whole against writes from other threads. */
void logsink_stderr_line(const char *line, size_t len) {
  HANDLE h = GetStdHandle(STD_ERROR_HANDLE);
  int tries = 0;

  if (no_handle(h) || console_write(h, line, len) <= 0)
    return; /* nowhere, or the console took it (or failed: nowhere left) */
  while (len > 0) {
    DWORD n = 0;

    if (!WriteFile(h, line, (DWORD)len, &n, NULL))
      return; /* nowhere left to report it */
    if (n == 0 && ++tries > LOGSINK_STDERR_TRIES)
      return; /* a full PIPE_NOWAIT pipe: drop the rest */
    if (n == 0)
      Sleep(1);
    line += n;
    len -= n;
  }
}

/* No journal on Windows: stderr is always plain text, and a service's
 * priorities go to the Event Log instead (logsink_syslog). */
size_t logsink_stderr_mark(enum logsink_priority pri, char *buf, size_t len) {
  (void)pri;
  if (len > 0)
    buf[0] = '\0';
  return 0;
}

/* ---- 3. the Event Log --------------------------------------------------- */

/* One source handle for the process, registered on first use. It is
 * thread-safe (ReportEventW may be called on it from any thread) and never
 * closed: the system closes it when the process ends. Registering needs no
 * privilege and succeeds even when the source is not in the registry (the
 * service's install adds it, with the message table's file); the records
 * then lack their text's template, not their text. */
static uv_once_t source_once = UV_ONCE_INIT;
static HANDLE source;
static int source_err; /* why RegisterEventSourceW failed, as UV_E* */

static void source_register(void) {
  source = RegisterEventSourceW(NULL, LOGSINK_EVENT_SOURCE);
  if (source == NULL)
    source_err = uv_translate_sys_error((int)GetLastError());
}

/* The event type for a priority: the Event Log knows three; debug is
 * information there. */
static WORD event_type(enum logsink_priority pri) {
  switch (pri) {
  case LOGSINK_PRI_ERROR:
    return EVENTLOG_ERROR_TYPE;
  case LOGSINK_PRI_WARNING:
    return EVENTLOG_WARNING_TYPE;
  case LOGSINK_PRI_INFO:
  case LOGSINK_PRI_DEBUG:
    return EVENTLOG_INFORMATION_TYPE;
  }
  return EVENTLOG_ERROR_TYPE; /* not a priority: as syslog's fallback */
}

/* wait_ms is not used: ReportEventW is a local RPC to the Event Log
 * service and takes no time limit. Unlike a syslog daemon, that service is
 * part of the system and does not stop reading while the system runs;
 * under wine it is a stub that takes every message. */
int logsink_syslog(enum logsink_priority pri, const char *msg, size_t len,
                   unsigned wait_ms) {
  /* UTF-8 never takes more UTF-16 units than bytes. 16 KB on the stack of
   * a logging thread, like log.c's own line buffer, far below the 1 MB
   * every thread gets. */
  wchar_t w[LOGSINK_SYSLOG_MSG_MAX + 1];
  LPCWSTR strings[1] = {w};
  int n = 0;

  (void)wait_ms;
  uv_once(&source_once, source_register);
  if (source == NULL)
    return source_err;
  if (len > LOGSINK_SYSLOG_MSG_MAX) {
    len = LOGSINK_SYSLOG_MSG_MAX;
    /* Cut on a character boundary: back over UTF-8 continuation bytes so
     * the last character is whole rather than a replacement mark. */
    while (len > 0 && ((unsigned char)msg[len] & 0xC0) == 0x80)
      len--;
  }
  if (len > 0) {
    /* Flags 0: a byte that is not UTF-8 (a client's file name, say) becomes
     * U+FFFD instead of failing the whole message. */
    n = MultiByteToWideChar(CP_UTF8, 0, msg, (int)len, w,
                            LOGSINK_SYSLOG_MSG_MAX);
    if (n <= 0)
      return uv_translate_sys_error((int)GetLastError());
  }
  w[n] = L'\0';
  if (!ReportEventW(source, event_type(pri), 0, LOGSINK_EVENT_ID, NULL, 1, 0,
                    strings, NULL))
    return uv_translate_sys_error((int)GetLastError());
  return 0;
}
