/* notify.h - telling the service manager how the daemon is: ready,
 * reloading, stopping, still alive (the watchdog), and a one-line status.
 *
 * Linux (notify_linux.c): the sd_notify(3) datagram protocol written
 * directly to $NOTIFY_SOCKET, without libsystemd. Windows (notify_win.c,
 * with service_win.c): the service control manager's status. Without a
 * service manager every call does nothing. A message is sent without
 * waiting and its failure is not reported: a manager that does not read
 * must not stall the loop, and the daemon serves either way. All calls are
 * made on the thread that runs uv_default_loop(). */
#ifndef PIPEFILED_NOTIFY_H
#define PIPEFILED_NOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define NOTIFY_STATUS_MAX 256 /* a status line, NUL included */

enum notify_state {
  NOTIFY_STATUS,    /* only the status line changed */
  NOTIFY_READY,     /* accepting clients: after start, and after a reload */
  NOTIFY_RELOADING, /* a reload begins (NOTIFY_READY follows it) */
  NOTIFY_STOPPING,  /* a graceful stop begins */
  NOTIFY_ALIVE,     /* the watchdog's "still alive" */
};

/* Take the service manager's settings from the environment (Linux:
 * NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID) and remove them from it, so
 * that nothing the daemon starts acts on them. Call once, before any thread
 * exists (the environment is not thread-safe). Returns 0 (also when there
 * is no service manager), or UV_EINVAL with a one-line reason in err when a
 * setting is there but unusable: the daemon then runs without
 * notifications. */
int notify_init(char *err, size_t errlen);

/* Tell the service manager state, with status (one line, no newline; NULL:
 * none) as the status it shows. */
void notify_send(enum notify_state state, const char *status);

/* How often the watchdog wants NOTIFY_ALIVE, in ms (half its timeout, at
 * least 1), or 0 when no watchdog watches this process. */
uint64_t notify_watchdog_ms(void);

/* Close what notify_init opened. */
void notify_close(void);

#endif
