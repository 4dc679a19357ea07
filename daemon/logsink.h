/* logsink.h - where log lines go: a file, stderr, the system log or
 * nowhere; the destinations shared by the access log (accesslog.c) and the
 * error log (log.c).
 *
 * A destination is named as configured: "off", "stderr", "syslog", or an
 * absolute file path. The platform's calls live in logsink_linux.c (write,
 * poll, datagrams to /dev/log in syslog(3)'s format) and, with the Windows
 * port, logsink_win.c (WriteFile, the Event Log); a sink's handle sits
 * behind LOGSINK_PRIVATE_FIELDS (logsink_os.h, from daemon/linux/ or
 * daemon/win/). What to do when a destination fails (retry, drop, report)
 * is the caller's: nothing here retries beyond the wait it is given, and
 * nothing waits on the system log or on a stderr that is a socket, so a
 * stalled journal or syslog daemon never stalls a thread that logs. Every
 * call returns 0 or a negative UV_E* code unless it says otherwise. */
#ifndef PIPEFILED_LOGSINK_H
#define PIPEFILED_LOGSINK_H

#include <stddef.h>
#include <uv.h>

#include "logsink_os.h"

#define LOGSINK_PATH_MAX 1024 /* a destination's name, NUL included */

/* LOGSINK_SYSLOG_MSG_MAX (logsink_os.h): the longest message the system
 * log takes whole; longer ones are cut. The access log fits its lines to
 * it (accesslog.h). */

enum logsink_kind {
  LOGSINK_OFF,    /* "off": lines are taken and go nowhere */
  LOGSINK_STDERR, /* "stderr": the process's standard error */
  LOGSINK_SYSLOG, /* "syslog": the system log, one message per line */
  LOGSINK_FILE,   /* a path: appended to, opened through fsguard.h */
};

/* A message's severity in the system log (the facility is always
 * "daemon"). The platform maps it (Linux: LOG_ERR .. LOG_DEBUG). */
enum logsink_priority {
  LOGSINK_PRI_ERROR,
  LOGSINK_PRI_WARNING,
  LOGSINK_PRI_INFO,
  LOGSINK_PRI_DEBUG,
};

/* An open destination, owned by one thread at a time. */
struct logsink {
  enum logsink_kind kind;
  int strict;                  /* strict_modes: for (re)opening a file */
  char name[LOGSINK_PATH_MAX]; /* as configured: "stderr", a path, ... */
  LOGSINK_PRIVATE_FIELDS
};

/* Open the destination spec. A file is opened for appending beneath a
 * directory that passes the strict-modes check (fsguard_open_log; strict 0:
 * an unsafe directory or file is only warned about: 0 is returned with the
 * warning in err, for the caller to log). Returns 0 (err "" or a warning),
 * or
 * UV_EINVAL (spec empty or not a destination), UV_ENAMETOOLONG, or the
 * file's open error, each with a one-line reason in err; *s needs
 * logsink_close() only on 0. */
int logsink_open(struct logsink *s, const char *spec, int strict, char *err,
                 size_t errlen);

/* Open a file sink's path again (logrotate renamed it) and close the old
 * file. Returns 1 when a new file is open (err "" or a warning, as
 * logsink_open), 0 when s is not a file (nothing to do), or a negative code
 * with the reason in err: the old file stays. */
int logsink_reopen(struct logsink *s, char *err, size_t errlen);

/* Close what s holds (never the process's stderr); s is then "off". */
void logsink_close(struct logsink *s);

/* Write all of buf to a stream sink (file, stderr; off takes everything),
 * looping on partial writes. A file or pipe may block (a log file that
 * blocks is what the caller's stop deadline is for); a destination that
 * takes nothing without blocking (a non-blocking stderr) is waited on at
 * most wait_ms per attempt, then UV_EAGAIN. *done says how much went out,
 * whatever the result. The system log takes messages, not a stream:
 * UV_EINVAL (use logsink_syslog for each line). */
int logsink_write(struct logsink *s, const char *buf, size_t len, size_t *done,
                  unsigned wait_ms);

/* Send len bytes of msg (one line, no newline; cut beyond
 * LOGSINK_SYSLOG_MSG_MAX) to the system log at pri, as "pipefiled[PID]".
 * Waits at most wait_ms for room. Returns 0, or the reason it was not sent
 * (UV_EAGAIN: no room in time; UV_ENOENT, UV_ECONNREFUSED: no syslog
 * daemon). Thread-safe. */
int logsink_syslog(enum logsink_priority pri, const char *msg, size_t len,
                   unsigned wait_ms);

/* Write one line (its '\n' included) to stderr for the error log, from any
 * thread, in one piece. Where stderr is a socket (the journal under a
 * service manager) it is never waited on beyond a few ms to finish a line
 * begun: a line with no room is dropped. A terminal, file or pipe is
 * written as usual. Failures are not reported: there is nowhere left. */
void logsink_stderr_line(const char *line, size_t len);

/* The mark that gives a line on stderr its priority, where stderr leads to
 * a log that reads one: on Linux the journal, when JOURNAL_STREAM names
 * stderr's device and inode (sd-daemon(3)'s "<3>" error, "<4>" warning,
 * "<6>" info, "<7>" debug), so that journalctl -p works. Writes it,
 * NUL-terminated, to buf and returns its length; returns 0 when stderr takes
 * plain text (a terminal, a file, a pipe, a socket of someone else's), and
 * the caller writes its own prefix. Checked once per process. */
size_t logsink_stderr_mark(enum logsink_priority pri, char *buf, size_t len);

/* Where s's lines go, for messages: the path, "stderr", or the system
 * log's name (Linux: "/dev/log"). */
const char *logsink_where(const struct logsink *s);

#endif
