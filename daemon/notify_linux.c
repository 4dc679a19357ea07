/* notify_linux.c - notify.h on Linux: sd_notify(3)'s datagram protocol,
 * written directly to $NOTIFY_SOCKET (a path, or an abstract name written
 * with a leading '@'), one "KEY=value\n" line per field.
 *
 * The socket is non-blocking and never connected: each datagram names the
 * manager's address, and a full or missing receiver loses the message
 * rather than stall the loop. The kernel attaches our pid to each datagram
 * when the manager asks for credentials (systemd's NotifyAccess=main), and
 * threads share the pid, so any message is the main process's. */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A message: state lines and a status of NOTIFY_STATUS_MAX. */
#define NOTIFY_MSG_MAX (NOTIFY_STATUS_MAX + 128)

static int sock = -1;           /* datagram socket; -1: no manager */
static struct sockaddr_un addr; /* the manager's */
static socklen_t addrlen;       /* of addr, exactly (abstract names) */
static uint64_t watchdog_ms;    /* 0: no watchdog */

/* A decimal number from the environment: 0, or -EINVAL. */
static int env_u64(const char *s, uint64_t *out) {
  char *end;
  unsigned long long v;

  if (s[0] < '0' || s[0] > '9')
    return -EINVAL;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return -EINVAL;
  *out = v;
  return 0;
}

/* The manager's address from NOTIFY_SOCKET: 0 or -EINVAL (other address
 * families, such as "vsock:", are not for a local daemon). */
static int parse_addr(const char *s) {
  size_t n = strlen(s);

  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if ((s[0] != '/' && s[0] != '@') || n < 2 || n >= sizeof(addr.sun_path))
    return -EINVAL;
  memcpy(addr.sun_path, s, n);
  if (s[0] == '@') {
    /* Abstract: the leading NUL is the name's first byte, and the name is
     * exactly n bytes long (no trailing NUL counts). */
    addr.sun_path[0] = '\0';
    addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  } else {
    addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  }
  return 0;
}

/* The watchdog's interval from WATCHDOG_USEC and WATCHDOG_PID: it watches
 * us only when WATCHDOG_PID is unset or our pid (a forking parent may have
 * passed its own on). 0 or -EINVAL. */
static int parse_watchdog(const char *usec, const char *pid) {
  uint64_t us = 0, p = 0;

  watchdog_ms = 0;
  if (usec == NULL)
    return 0;
  if (env_u64(usec, &us) != 0 || us == 0)
    return -EINVAL;
  if (pid != NULL && (env_u64(pid, &p) != 0 || p == 0))
    return -EINVAL;
  if (pid != NULL && p != (uint64_t)getpid())
    return 0;
  /* Ping at half the timeout, as sd_watchdog_enabled(3) advises. */
  watchdog_ms = us / 2000 > 0 ? us / 2000 : 1;
  return 0;
}

int notify_init(char *err, size_t errlen) {
  const char *s = getenv("NOTIFY_SOCKET");
  const char *wd = getenv("WATCHDOG_USEC");
  const char *wdpid = getenv("WATCHDOG_PID");
  int rc = 0;

  if (errlen > 0)
    err[0] = '\0';
  notify_close();
  if (s == NULL)
    goto out;
  if (parse_addr(s) != 0) {
    snprintf(err, errlen,
             "NOTIFY_SOCKET=%.120s is not a socket path or @name; not "
             "notifying the service manager",
             s);
    rc = -EINVAL;
    goto out;
  }
  if (parse_watchdog(wd, wdpid) != 0) {
    snprintf(err, errlen,
             "WATCHDOG_USEC=%.40s WATCHDOG_PID=%.40s: not numbers; no "
             "watchdog pings",
             wd, wdpid ? wdpid : "(unset)");
    rc = -EINVAL; /* readiness is still told */
  }
  sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    rc = -errno;
    snprintf(err, errlen, "NOTIFY_SOCKET: socket: %s", strerror(-rc));
    watchdog_ms = 0;
  }
out:
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  return rc;
}

void notify_send(enum notify_state state, const char *status) {
  char msg[NOTIFY_MSG_MAX];
  struct timespec ts;
  size_t n = 0;
  int m = 0;

  if (sock < 0)
    return;
  switch (state) {
  case NOTIFY_READY:
    m = snprintf(msg, sizeof(msg), "READY=1\n");
    break;
  case NOTIFY_RELOADING:
    /* systemd's Type=notify-reload wants the time the reload began, so
     * that the READY=1 that ends it is told apart from an earlier one. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    m = snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\n",
                 (unsigned long long)ts.tv_sec * 1000000ULL +
                     (unsigned long long)ts.tv_nsec / 1000);
    break;
  case NOTIFY_STOPPING:
    m = snprintf(msg, sizeof(msg), "STOPPING=1\n");
    break;
  case NOTIFY_ALIVE:
    m = snprintf(msg, sizeof(msg), "WATCHDOG=1\n");
    break;
  case NOTIFY_STATUS:
    break;
  }
  n = m > 0 ? (size_t)m : 0;
  if (status != NULL) {
    m = snprintf(msg + n, sizeof(msg) - n, "STATUS=%.*s\n",
                 NOTIFY_STATUS_MAX - 1, status);
    if (m > 0) {
      /* One line: a newline in the text would start a field of its own. */
      for (size_t i = n + 7; i < n + (size_t)m - 1; i++)
        if (msg[i] == '\n')
          msg[i] = ' ';
      n += (size_t)m;
    }
  }
  if (n == 0 || n >= sizeof(msg))
    return;
  (void)sendto(sock, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL,
               (const struct sockaddr *)&addr, addrlen);
}

uint64_t notify_watchdog_ms(void) { return sock >= 0 ? watchdog_ms : 0; }

void notify_close(void) {
  if (sock >= 0)
    close(sock);
  sock = -1;
  watchdog_ms = 0;
}
