/* daemon.h - the daemon's life as explicit transitions: start, reload,
 * reopen, stop, finish.
 *
 * A front end drives it: main_linux.c from the command line and signals;
 * the Windows service (service_win.c) will drive the same calls from the
 * service control manager. All calls are made on the thread that runs
 * uv_default_loop().
 *
 *   NEW --daemon_start--> RUNNING --daemon_stop--> STOPPING
 *        (fails: STOPPED)    |  daemon_reload, daemon_reopen
 *   STOPPING --(loop ends)--> daemon_finish --> STOPPED */
#ifndef PIPEFILED_DAEMON_H
#define PIPEFILED_DAEMON_H

#include <uv.h>

#include "config.h"
#include "endpoint.h"
#include "listener.h"
#include "live.h"

enum daemon_state {
  DAEMON_NEW,
  DAEMON_RUNNING,
  DAEMON_STOPPING,
  DAEMON_STOPPED
};

struct daemon {
  enum daemon_state state;
  const char *config_path; /* NULL: built-in defaults */
  struct live *live;       /* the config in force */
  struct endpoint ep;
  struct listener listener;
  struct endpoint compat_ep;       /* [compat] pipe_name's, if set */
  struct listener compat_listener; /* its clients speak CONN_COMPAT */
  int compat_on;                   /* compat_listener is started */
  struct worker **workers;
  unsigned nworkers;      /* started */
  uv_timer_t log_tick;    /* summarises error-log floods that stopped */
  uv_timer_t notify_tick; /* status line and watchdog pings (notify.h) */
  unsigned fds_fixed;     /* descriptors open before the first connection */
};

/* Read the config (path, or the built-in defaults for NULL) and open its
 * served root. check: a missing built-in default root is only warned about
 * (*l is NULL then); otherwise it is created. Returns 0, or EX_CONFIG_CODE
 * with "FILE:LINE: [section] key: reason" in err. */
int daemon_load_config(const char *path, int check, struct config *c,
                       struct live **l, char *err, size_t errlen);

/* NEW -> RUNNING: config and served root, error log, the service manager's
 * settings (notify.h) and socket (socket activation: endpoint_adopt),
 * identity probe, access log, socket (bound, unless inherited), workers,
 * accepting on uv_default_loop(). Returns 0, or the
 * exit status to end with (EX_CONFIG_CODE for a bad config, 1 otherwise;
 * the reason is on the error log) with d left STOPPED and nothing running. */
int daemon_start(struct daemon *d, const char *config_path);

/* RUNNING, once the front end has made its own handles (signal watchers):
 * count the descriptors the daemon keeps, set the connection limits they
 * leave room for, log the "ready" line and tell the service manager
 * (READY=1 and a status line, then the status and watchdog pings on a
 * timer). */
void daemon_ready(struct daemon *d);

/* RUNNING: re-read the config, all or nothing (an invalid one is refused and
 * the running one kept), and reopen the logs; the service manager is told
 * RELOADING before and READY after, either way. */
void daemon_reload(struct daemon *d);

/* RUNNING: reopen the access log (after logrotate renamed it). */
void daemon_reopen(struct daemon *d);

/* RUNNING -> STOPPING: tell the service manager, stop accepting and remove
 * the socket (unless inherited: the manager's); connections
 * finish what they received within shutdown_timeout. uv_default_loop()
 * returns once everything has closed. A second call does nothing. */
void daemon_stop(struct daemon *d);

/* After uv_run returned: join the workers, drain the access log, free.
 * -> STOPPED. Returns the exit status (0). */
int daemon_finish(struct daemon *d);

#endif
