/* syslogsend.c - non-blocking datagrams to /dev/log; see syslogsend.h. */
#include "syslogsend.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

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

int syslogsend(int pri, const char *msg, size_t len, int wait_ms) {
  static const struct sockaddr_un addr = {AF_UNIX, SYSLOGSEND_PATH};
  char buf[SYSLOGSEND_MAX];
  struct tm tm;
  time_t now = time(NULL);
  int fd = get_sock();
  size_t n;

  if (fd < 0)
    return fd;
  /* "<PRI>Mmm dd hh:mm:ss pipefiled[PID]: MSG", local time, as syslog(3). */
  localtime_r(&now, &tm);
  n = (size_t)snprintf(buf, sizeof(buf), "<%d>", pri & 0x3ff);
  n += strftime(buf + n, sizeof(buf) - n, "%b %e %H:%M:%S ", &tm);
  n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                        "pipefiled[%ld]: ", (long)getpid());
  if (len > sizeof(buf) - n)
    len = sizeof(buf) - n;
  memcpy(buf + n, msg, len);
  n += len;

  /* An unconnected datagram socket cannot poll for room at the receiver,
   * so a full syslog queue is retried every millisecond until wait_ms. */
  for (int waited = 0;; waited++) {
    ssize_t sent = sendto(fd, buf, n, MSG_NOSIGNAL,
                          (const struct sockaddr *)&addr, sizeof(addr));
    if (sent >= 0)
      return 0;
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN || waited >= wait_ms)
      return -errno;
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
}
