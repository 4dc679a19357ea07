/* test_notify.c - unit tests of notify_linux.c: the sd_notify(3) datagrams
 * to $NOTIFY_SOCKET. */

/* Each state's message as the service manager receives it (a path and an
 * abstract socket), a status line kept to one line, the settings taken out
 * of the environment, the watchdog's interval and whose it is, unusable
 * settings refused, and no manager at all making every call a no-op. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "notify.h"

/* The manager's end: a datagram socket at path ("@name": abstract). */
static int manager(const char *name) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(name);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  assert_true(fd >= 0);
  memcpy(sa.sun_path, name, strlen(name));
  if (name[0] == '@')
    sa.sun_path[0] = '\0';
  else
    len++;
  unlink(name);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
  return fd;
}

/* The next message, NUL-terminated; "" if none within 1 s. */
static void next(int fd, char *buf, size_t len) {
  struct timeval tv = {1, 0};
  ssize_t n;

  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  n = recv(fd, buf, len - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
}

static void states(const char *where) {
  char err[256], msg[1024];
  int fd = manager(where);

  setenv("NOTIFY_SOCKET", where, 1);
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  assert_int_equal(notify_init(err, sizeof err), 0);
  assert_null(getenv("NOTIFY_SOCKET")); /* nothing started inherits it */

  notify_send(NOTIFY_READY, "2 workers");
  next(fd, msg, sizeof msg);
  assert_string_equal(msg, "READY=1\nSTATUS=2 workers\n");
  notify_send(NOTIFY_RELOADING, NULL);
  next(fd, msg, sizeof msg);
  assert_true(strncmp(msg, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
  assert_true(strtoull(msg + 27, NULL, 10) > 0);
  notify_send(NOTIFY_STOPPING, NULL);
  next(fd, msg, sizeof msg);
  assert_string_equal(msg, "STOPPING=1\n");
  notify_send(NOTIFY_ALIVE, NULL);
  next(fd, msg, sizeof msg);
  assert_string_equal(msg, "WATCHDOG=1\n");
  /* A newline in the status cannot start a field of its own. */
  notify_send(NOTIFY_STATUS, "a\nREADY=1");
  next(fd, msg, sizeof msg);
  assert_string_equal(msg, "STATUS=a READY=1\n");
  notify_close();
  close(fd);
  if (where[0] == '/')
    unlink(where);
}

static void test_path(void **state) {
  char path[64];
  (void)state;
  snprintf(path, sizeof path, "/tmp/test_notify.%ld", (long)getpid());
  states(path);
}

static void test_abstract(void **state) {
  char name[64];
  (void)state;
  snprintf(name, sizeof name, "@test_notify.%ld", (long)getpid());
  states(name);
}

static void test_watchdog(void **state) {
  char err[256], pid[32];
  (void)state;

  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  setenv("NOTIFY_SOCKET", "@test_notify_wd", 1);
  setenv("WATCHDOG_USEC", "200000", 1);
  setenv("WATCHDOG_PID", pid, 1);
  assert_int_equal(notify_init(err, sizeof err), 0);
  assert_int_equal(notify_watchdog_ms(), 100); /* half the timeout */
  assert_null(getenv("WATCHDOG_USEC"));
  assert_null(getenv("WATCHDOG_PID"));

  /* Another process's watchdog (a wrapper's) is not ours to feed. */
  setenv("NOTIFY_SOCKET", "@test_notify_wd", 1);
  setenv("WATCHDOG_USEC", "200000", 1);
  setenv("WATCHDOG_PID", "1", 1);
  assert_int_equal(notify_init(err, sizeof err), 0);
  assert_int_equal(notify_watchdog_ms(), 0);

  /* A watchdog with no socket to ping is none. */
  unsetenv("NOTIFY_SOCKET");
  setenv("WATCHDOG_USEC", "200000", 1);
  assert_int_equal(notify_init(err, sizeof err), 0);
  assert_int_equal(notify_watchdog_ms(), 0);
  notify_close();
}

static void test_unusable(void **state) {
  char err[256];
  (void)state;

  setenv("NOTIFY_SOCKET", "relative/path", 1);
  assert_int_equal(notify_init(err, sizeof err), UV_EINVAL);
  assert_non_null(strstr(err, "NOTIFY_SOCKET=relative/path"));
  notify_send(NOTIFY_READY, "x"); /* a no-op, not a crash */

  setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
  assert_int_equal(notify_init(err, sizeof err), UV_EINVAL);

  setenv("NOTIFY_SOCKET", "@test_notify_bad", 1);
  setenv("WATCHDOG_USEC", "12x", 1);
  assert_int_equal(notify_init(err, sizeof err), UV_EINVAL);
  assert_non_null(strstr(err, "WATCHDOG_USEC=12x"));
  assert_int_equal(notify_watchdog_ms(), 0);
  notify_close();

  /* No manager: nothing to do, and nothing said. */
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  assert_int_equal(notify_init(err, sizeof err), 0);
  assert_string_equal(err, "");
  notify_send(NOTIFY_STOPPING, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_path),
      cmocka_unit_test(test_abstract),
      cmocka_unit_test(test_watchdog),
      cmocka_unit_test(test_unusable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
