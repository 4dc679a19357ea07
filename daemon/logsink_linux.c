/* logsink_linux.c - logsink.h on Linux: log files through fsguard, stderr
 * that never stalls on a socket (with the journal's priority marks when it
 * is the journal), non-blocking datagrams to /dev/log. */
#include "logsink.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fsguard.h"

#define SYSLOG_PATH "/dev/log"

_Static_assert(sizeof("<191>Mmm dd hh:mm:ss pipefiled[4294967295]: ") - 1 <=
                   LOGSINK_SYSLOG_HDR_MAX,
               "the syslog header fits its room");

/* ---- open, reopen, close ---------------------------------------------- */

int logsink_open(struct logsink *s, const char *spec, int strict, char *err,
                 size_t errlen) {
  int r = 0;

  memset(s, 0, sizeof *s);
  s->fd = -1;
  s->strict = strict;
  if (errlen > 0)
    err[0] = '\0'; /* no warning */
  if (spec == NULL || spec[0] == '\0') {
    snprintf(err, errlen, "no log destination");
    r = -EINVAL;
    goto out;
  }
  if (strlen(spec) >= sizeof s->name) {
    snprintf(err, errlen, "log path too long");
    r = -ENAMETOOLONG;
    goto out;
  }
  strcpy(s->name, spec);
  if (strcmp(spec, "off") == 0) {
    s->kind = LOGSINK_OFF;
  } else if (strcmp(spec, "stderr") == 0) {
    s->kind = LOGSINK_STDERR;
    s->fd = STDERR_FILENO;
  } else if (strcmp(spec, "syslog") == 0) {
    s->kind = LOGSINK_SYSLOG;
  } else {
    r = fsguard_open_log(spec, strict, &s->fd, err, errlen);
    if (r < 0)
      goto out;
    s->kind = LOGSINK_FILE;
  }
out:
  return r;
}

int logsink_reopen(struct logsink *s, char *err, size_t errlen) {
  int fd, r;

  if (errlen > 0)
    err[0] = '\0';
  if (s->kind != LOGSINK_FILE)
    return 0;
  r = fsguard_open_log(s->name, s->strict, &fd, err, errlen);
  if (r < 0)
    return r;
  close(s->fd);
  s->fd = fd;
  return 1;
}

void logsink_close(struct logsink *s) {
  /* stderr is the process's; the syslog socket is shared by every sink. */
  if (s->kind == LOGSINK_FILE && s->fd >= 0)
    close(s->fd);
  s->fd = -1;
  s->kind = LOGSINK_OFF;
}

const char *logsink_where(const struct logsink *s) {
  return s->kind == LOGSINK_SYSLOG ? SYSLOG_PATH : s->name;
}

/* ---- stream sinks: file and stderr ------------------------------------ */

int logsink_write(struct logsink *s, const char *buf, size_t len, size_t *done,
                  unsigned wait_ms) {
  *done = 0;
  if (s->kind == LOGSINK_OFF) {
    *done = len;
    return 0;
  }
  if (s->kind == LOGSINK_SYSLOG)
    return -EINVAL;
  while (*done < len) {
    ssize_t n = write(s->fd, buf + *done, len - *done);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      /* stderr may be non-blocking (shared with a libuv loop): wait a
       * bounded time rather than spin or block for ever. */
      struct pollfd p = {.fd = s->fd, .events = POLLOUT};
      int rc = poll(&p, 1, (int)wait_ms);
      if (rc > 0 || (rc < 0 && errno == EINTR))
        continue;
      return -EAGAIN;
    }
    if (n < 0)
      return -errno;
    if (n == 0)
      return -EIO;
    *done += (size_t)n;
  }
  return 0;
}

/* Under a service manager stderr is a socket to the journal. If that stops
 * reading, a blocking write would stall whichever thread logs (the accept
 * loop, a worker), so a socket is written without waiting and a message
 * that does not fit is dropped. A terminal, file or pipe is written as
 * usual: those cannot be told not to wait without changing the descriptor
 * for everyone who shares it. */
void logsink_stderr_line(const char *buf, size_t len) {
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

/* ---- the journal's priority marks on stderr --------------------------- */

/* A priority's severity in the system log and the journal. */
static const int severity[] = {
    [LOGSINK_PRI_ERROR] = LOG_ERR,
    [LOGSINK_PRI_WARNING] = LOG_WARNING,
    [LOGSINK_PRI_INFO] = LOG_INFO,
    [LOGSINK_PRI_DEBUG] = LOG_DEBUG,
};

static uv_once_t journal_once = UV_ONCE_INIT;
static int stderr_is_journal;

/* systemd sets JOURNAL_STREAM=DEV:INO for a service whose stderr is the
 * journal. The variable is inherited by whatever the service starts, whose
 * stderr may be redirected elsewhere; so it counts only if it names the
 * very descriptor 2 we have (systemd.exec(5)). */
static void journal_detect(void) {
  const char *v = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;
  char tail;

  if (v == NULL || sscanf(v, "%llu:%llu%c", &dev, &ino, &tail) != 2 ||
      fstat(STDERR_FILENO, &st) != 0)
    return;
  stderr_is_journal = (unsigned long long)st.st_dev == dev &&
                      (unsigned long long)st.st_ino == ino;
}

size_t logsink_stderr_mark(enum logsink_priority pri, char *buf, size_t len) {
  int n;

  uv_once(&journal_once, journal_detect);
  if (!stderr_is_journal || (unsigned)pri > LOGSINK_PRI_DEBUG)
    return 0;
  n = snprintf(buf, len, "<%d>", severity[pri]);
  return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* ---- the system log: datagrams to /dev/log ---------------------------- */

/* glibc's syslog(3) sends on a blocking socket under a process-wide lock:
 * a syslog daemon that stops reading would stall every thread that logs,
 * the accept loop and shutdown included. This sends each message as one
 * datagram on a non-blocking socket, in syslog(3)'s own format, and leaves
 * to the caller what to do when there is no room in time. */

static atomic_int sock_fd = -1;

/* One socket for the process, made on first use. It is never connected:
 * each datagram names /dev/log, so a restarted syslog daemon is found again
 * without any reconnect state, and threads share it without a lock. */
static int get_sock(void) {
  int fd = atomic_load(&sock_fd);
  if (fd >= 0)
    return fd;
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int expected = -1;
  if (!atomic_compare_exchange_strong(&sock_fd, &expected, fd)) {
    close(fd); /* another thread was first */
    fd = expected;
  }
  return fd;
}

int logsink_syslog(enum logsink_priority pri, const char *msg, size_t len,
                   unsigned wait_ms) {
  static const struct sockaddr_un addr = {AF_UNIX, SYSLOG_PATH};
  char hdr[LOGSINK_SYSLOG_HDR_MAX + 16];
  struct tm tm;
  time_t now = time(NULL);
  int fd = get_sock();
  size_t n;

  if (fd < 0)
    return fd;
  if ((unsigned)pri > LOGSINK_PRI_DEBUG)
    pri = LOGSINK_PRI_ERROR;
  /* "<PRI>Mmm dd hh:mm:ss pipefiled[PID]: MSG", local time, as syslog(3). */
  localtime_r(&now, &tm);
  n = (size_t)snprintf(hdr, sizeof(hdr), "<%d>", LOG_DAEMON | severity[pri]);
  n += strftime(hdr + n, sizeof(hdr) - n, "%b %e %H:%M:%S ", &tm);
  n += (size_t)snprintf(hdr + n, sizeof(hdr) - n,
                        "pipefiled[%ld]: ", (long)getpid());
  if (n > LOGSINK_SYSLOG_HDR_MAX)
    n = LOGSINK_SYSLOG_HDR_MAX; /* cannot happen: see the assertion above */
  if (len > LOGSINK_SYSLOG_DGRAM_MAX - n)
    len = LOGSINK_SYSLOG_DGRAM_MAX - n;

  /* Header and message go out as one datagram without a copy. */
  struct iovec iov[2] = {{.iov_base = hdr, .iov_len = n},
                         {.iov_base = (void *)msg, .iov_len = len}};
  struct msghdr mh = {.msg_name = (void *)&addr,
                      .msg_namelen = sizeof(addr),
                      .msg_iov = iov,
                      .msg_iovlen = 2};

  /* An unconnected datagram socket cannot poll for room at the receiver,
   * so a full syslog queue is retried every millisecond until wait_ms. */
  for (unsigned waited = 0;; waited++) {
    ssize_t sent = sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (sent >= 0)
      return 0;
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN || waited >= wait_ms)
      return -errno;
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
}
