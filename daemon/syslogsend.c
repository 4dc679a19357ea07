/* syslogsend.c - non-blocking datagrams to /dev/log; see syslogsend.h. */
#include "syslogsend.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
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
  char hdr[SYSLOGSEND_HDR_MAX + 16];
  struct tm tm;
  time_t now = time(NULL);
  int fd = get_sock();
  size_t n;

  if (fd < 0)
    return fd;
  /* "<PRI>Mmm dd hh:mm:ss pipefiled[PID]: MSG", local time, as syslog(3). */
  localtime_r(&now, &tm);
  n = (size_t)snprintf(hdr, sizeof(hdr), "<%d>", pri & 0x3ff);
  n += strftime(hdr + n, sizeof(hdr) - n, "%b %e %H:%M:%S ", &tm);
  n += (size_t)snprintf(hdr + n, sizeof(hdr) - n,
                        "pipefiled[%ld]: ", (long)getpid());
  if (n > SYSLOGSEND_HDR_MAX)
    n = SYSLOGSEND_HDR_MAX; /* cannot happen: see SYSLOGSEND_HDR_MAX */
  if (len > SYSLOGSEND_MAX - n)
    len = SYSLOGSEND_MAX - n;

  /* Header and message go out as one datagram without a copy. */
  struct iovec iov[2] = {{.iov_base = hdr, .iov_len = n},
                         {.iov_base = (void *)msg, .iov_len = len}};
  struct msghdr mh = {.msg_name = (void *)&addr,
                      .msg_namelen = sizeof(addr),
                      .msg_iov = iov,
                      .msg_iovlen = 2};

  /* An unconnected datagram socket cannot poll for room at the receiver,
   * so a full syslog queue is retried every millisecond until wait_ms. */
  for (int waited = 0;; waited++) {
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
