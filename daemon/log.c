/* log.c - the daemon's own messages: level filter, stderr or syslog
 * (through syslogsend.h, which never blocks). */

/* Each message is formatted on the stack and written with one write(), so
 * lines from threads never interleave; see log.h. */
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "syslogsend.h"

/* At most PIPE_BUF (4096 on Linux), so one write() to a pipe (journald,
 * a supervisor) is atomic and lines from threads never interleave. */
#define LOG_LINE_MAX 2048

/* Atomics: log_setup() runs on SIGHUP while other threads are logging. */
static atomic_int log_to_syslog;
static atomic_int log_level = LOG_LVL_INFO;

static const char *const level_names[] = {"error", "warning", "info", "debug"};
static const int level_priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

/* The stderr line prefix, in one place, so that journald's "<N>" priority
 * prefix (roadmap: systemd) has one place to go. Returns the bytes written
 * (less than len). */
static size_t log_prefix(char *buf, size_t len, enum log_level level) {
  int n = snprintf(buf, len, "pipefiled: %s: ", level_names[level]);

  if (n < 0)
    return 0;
  return (size_t)n < len ? (size_t)n : len - 1;
}

/* Under a service manager stderr is a socket to the journal. If that stops
 * reading, a blocking write would stall whichever thread logs (the accept
 * loop, a worker), so a socket is written without waiting and a message
 * that does not fit is dropped. A terminal, file or pipe is written as
 * usual: those cannot be told not to wait without changing the descriptor
 * for everyone who shares it. */
static void write_stderr(const char *buf, size_t len) {
  ssize_t n = send(STDERR_FILENO, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0 && errno == ENOTSOCK)
    goto blocking;
  /* Part of the line went out: finish it if room comes soon (a torn line
   * would run into the next one), else give up. */
  for (int tries = 0; n > 0 && (size_t)n < len && tries < 10; tries++) {
    buf += n;
    len -= (size_t)n;
    struct pollfd p = {.fd = STDERR_FILENO, .events = POLLOUT};
    if (poll(&p, 1, 10) <= 0)
      break;
    n = send(STDERR_FILENO, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  return;
blocking:
  while (len > 0) {
    n = write(STDERR_FILENO, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; /* nowhere left to report it */
    buf += n;
    len -= (size_t)n;
  }
}

void log_setup(const char *dest, enum log_level level) {
  int use_syslog = dest != NULL && strcmp(dest, "syslog") == 0;

  if ((int)level < LOG_LVL_ERROR || level > LOG_LVL_DEBUG)
    level = LOG_LVL_INFO;
  atomic_store(&log_level, (int)level);
  atomic_store(&log_to_syslog, use_syslog);
}

void log_msg(enum log_level level, const char *fmt, ...) {
  char buf[LOG_LINE_MAX];
  int saved_errno = errno; /* callers log and then read errno */
  int use_syslog = atomic_load(&log_to_syslog);
  size_t start, n;
  va_list ap;
  int m;

  if ((int)level < LOG_LVL_ERROR || level > LOG_LVL_DEBUG)
    level = LOG_LVL_ERROR;
  if ((int)level > atomic_load(&log_level))
    goto out;

  /* One byte stays free for the '\n'. */
  start = use_syslog ? 0 : log_prefix(buf, sizeof buf - 1, level);
  va_start(ap, fmt);
  m = vsnprintf(buf + start, sizeof buf - 1 - start, fmt, ap);
  va_end(ap);
  if (m < 0)
    m = 0;
  n = start + (size_t)m;
  if (n > sizeof buf - 2)
    n = sizeof buf - 2; /* cut: vsnprintf kept what fit */

  /* A message is one line: a newline inside it (say, from a file name)
   * would let text pose as a message of its own. */
  for (size_t i = start; i < n; i++)
    if (buf[i] == '\n' || buf[i] == '\r')
      buf[i] = ' ';

  if (use_syslog) {
    /* Never waits: these may come from the accept loop or a worker. */
    syslogsend(LOG_DAEMON | level_priority[level], buf, n, 0);
  } else {
    buf[n++] = '\n';
    write_stderr(buf, n);
  }
out:
  errno = saved_errno;
}
