/* daemon.c - the daemon's states and the order of their transitions; see
 * daemon.h.
 *
 * Start: config and served root -> error log -> the service manager's
 * settings and inherited socket -> identity probe -> access log -> socket
 * (unless inherited) and the compat socket ([compat] pipe_name) -> workers
 * -> accept -> READY. Stop: STOPPING -> stop accepting and remove the
 * sockets we bound -> workers drain within
 * shutdown_timeout -> (loop ends) -> workers joined -> access log drained.
 * Reload: RELOADING -> config all or nothing, then logs -> READY. */
#include "daemon.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accesslog.h"
#include "connlimit.h"
#include "fdlimit.h"
#include "identity.h"
#include "log.h"
#include "notify.h"
#include "resolve.h"
#include "worker.h"

#define LISTEN_BACKLOG 4096
#define FD_RESERVE_MAX 64     /* descriptors kept back, at most */
#define FD_SPARE 8            /* beyond those open at start: reload, reopen */
#define FD_SPARE_PER_WORKER 2 /* and a worker's transient ones (resolving) */
#define LOG_TICK_MS 5000      /* error-log rate-limit window */
#define STATUS_TICK_MS 5000   /* the service manager's status line, refreshed */
#define ENDPOINT_NAME "pipefiled" /* the socket unit's FileDescriptorName= */
/* Past shutdown_timeout, for a worker to end before the daemon exits
 * without it (worker_join_within). */
#define WORKER_JOIN_GRACE_MS 2000

/* What open_root() does about a built-in default root that does not exist. */
enum default_root { ROOT_MUST_EXIST, ROOT_CREATE, ROOT_MAY_BE_MISSING };

/* Create directory path with mode 0755 whatever the umask. */
static int make_root(const char *path) {
  uv_fs_t req;
  int rc = uv_fs_mkdir(NULL, &req, path, 0755, NULL);
  uv_fs_req_cleanup(&req);
  if (rc == 0)
    rc = uv_fs_chmod(NULL, &req, path, 0755, NULL);
  uv_fs_req_cleanup(&req);
  return rc;
}

/* Open the root of config c (read from path, NULL = built-in) as a live
 * config. A missing built-in default root is created at start-up (as the
 * socket's directory is), so that pipefiled runs with no file at all, and is
 * only noted by --check-config (*l is then NULL); a configured root is never
 * created. Errors name the line root was set on, like any bad value. */
static int open_root(const char *path, struct config *c, struct live **l,
                     enum default_root dr, char *err, size_t errlen) {
  char why[CONFIG_PATH_MAX + 128];
  int is_default, rc;

  *l = NULL;
  rc = live_new(c, l, why, sizeof(why));
  is_default = c->root_line == 0 && strcmp(c->root, CONFIG_DEFAULT_ROOT) == 0;
  if (rc == UV_ENOENT && is_default && dr == ROOT_MAY_BE_MISSING) {
    log_warn("root %s does not exist yet; pipefiled creates it (empty) when "
             "it starts",
             c->root);
    return 0;
  }
  if (rc == UV_ENOENT && is_default && dr == ROOT_CREATE &&
      make_root(c->root) == 0) {
    log_info("created the default root %s (empty)", c->root);
    rc = live_new(c, l, why, sizeof(why));
  }
  if (rc == 0)
    return 0;
  if (c->root_line > 0)
    snprintf(err, errlen, "%s:%u: [server] root: %s", path, c->root_line, why);
  else
    snprintf(err, errlen, "%s: [server] root (the default): %s",
             path ? path : "built-in config", why);
  return rc;
}

/* The config named on the command line (defaults, then the file), or the
 * built-in defaults without one. */
static int read_config(const char *path, struct config *c, char *err,
                       size_t errlen) {
  if (path == NULL) {
    config_defaults(c);
    return 0;
  }
  return config_load(c, path, err, errlen);
}

int daemon_load_config(const char *path, int check, struct config *c,
                       struct live **l, char *err, size_t errlen) {
  *l = NULL;
  if (read_config(path, c, err, errlen) != 0 ||
      open_root(path, c, l, check ? ROOT_MAY_BE_MISSING : ROOT_CREATE, err,
                errlen) != 0)
    return EX_CONFIG_CODE;
  return 0;
}

/* The connection limits in force: max_connections, lowered to what the
 * descriptor limit can carry (each connection may hold its socket and a
 * file), so that clients past it get EBUSY rather than EIO or silence.
 * Kept back: the fixed descriptors (fixed, counted at start-up; they grow
 * with the workers) and a few spare, or a quarter of the limit up to
 * FD_RESERVE_MAX if that is more; so a low limit serves fewer clients
 * rather than none. The per-user limit shrinks in proportion. */
static void effective_limits(const struct config *c, unsigned fixed,
                             unsigned workers, unsigned *max,
                             unsigned *per_user) {
  uint64_t lim = fdlimit_get(), reserve, fit, floor;

  *max = c->max_connections;
  *per_user = c->max_connections_per_user;
  if (lim == 0)
    return;
  reserve = lim / 4 < FD_RESERVE_MAX ? lim / 4 : FD_RESERVE_MAX;
  floor = (uint64_t)fixed + FD_SPARE + FD_SPARE_PER_WORKER * workers;
  if (reserve < floor)
    reserve = floor;
  fit = lim > reserve + 2 ? (lim - reserve) / 2 : 1;
  if ((uint64_t)*max <= fit)
    return;
  *max = (unsigned)fit;
  if (*per_user > 0) {
    uint64_t scaled = (uint64_t)*per_user * *max / c->max_connections;
    *per_user = scaled > 0 ? (unsigned)scaled : 1;
  }
  char each[48] = "";
  if (*per_user > 0)
    snprintf(each, sizeof(each), ", at most %u per user", *per_user);
  log_warn("max_connections %u needs about %llu descriptors but the limit is "
           "%llu; serving at most %u connections%s",
           c->max_connections,
           (unsigned long long)c->max_connections * 2 + reserve,
           (unsigned long long)lim, *max, each);
}

static struct accesslog_opts log_opts(const struct config *c) {
  struct accesslog_opts ao = {.dest = c->access_log,
                              .fmt = c->access_format,
                              .full = c->log_full,
                              .strict_modes = c->strict_modes};
  return ao;
}

static void on_log_tick(uv_timer_t *t) {
  (void)t;
  log_tick();
}

/* Everything a start made, released in reverse once the workers are told
 * to stop (or have no connections): join them, close the socket, drain the
 * access log (if it was started), and drop the config. -> STOPPED. */
static void release(struct daemon *d, int log_started) {
  /* Each worker closes what it still has once shutdown_timeout has passed;
   * one stuck in a file system that does not answer never gets that far.
   * Wait for them until shutdown_timeout + WORKER_JOIN_GRACE_MS from here
   * (the stop), then exit without the stuck ones (worker_join_within). */
  uint64_t now = worker_now_ms();
  uint64_t until = now + WORKER_JOIN_GRACE_MS +
                   (d->live != NULL ? d->live->cfg.shutdown_timeout_ms : 0);

  for (unsigned i = 0; i < d->nworkers; i++) {
    now = worker_now_ms();
    (void)worker_join_within(d->workers[i],
                             until > now ? (unsigned)(until - now) : 0);
  }
  free(d->workers);
  d->workers = NULL;
  d->nworkers = 0;
  endpoint_close(&d->ep);
  endpoint_close(&d->compat_ep); /* harmless when never listened */
  if (log_started)
    accesslog_stop();
  log_flush(); /* no suppressed count is lost at exit */
  notify_close();
  live_unref(d->live);
  d->live = NULL;
  d->state = DAEMON_STOPPED;
}

/* Undo a partial start. Started workers have no connections yet: they stop
 * at once. */
static void unwind(struct daemon *d, int log_started) {
  for (unsigned i = 0; i < d->nworkers; i++)
    worker_stop(d->workers[i], 0);
  release(d, log_started);
}

int daemon_start(struct daemon *d, const char *config_path) {
  struct config c;
  struct accesslog_opts ao;
  char err[CONFIG_ERR_MAX], compat_path[ENDPOINT_PATH_MAX + 1] = "";
  const char *why = NULL;
  unsigned nworkers;
  int rc, adopted;

  memset(d, 0, sizeof(*d));
  d->config_path = config_path;
  d->state = DAEMON_STOPPED;
  if (daemon_load_config(config_path, 0, &c, &d->live, err, sizeof(err))) {
    log_error("%s", err);
    return EX_CONFIG_CODE;
  }
  log_setup(c.error_log, c.level);
  fdlimit_raise();
  /* Both read the environment, which is not thread-safe: before the
   * identity probe and the access log start threads. */
  if (notify_init(err, sizeof(err)) != 0)
    log_warn("%s", err);
  adopted = endpoint_adopt(&d->ep, ENDPOINT_NAME, err, sizeof(err));
  if (adopted < 0) {
    log_error("%s", err);
    unwind(d, 0);
    return 1;
  }
  if (adopted && strcmp(d->ep.path, c.socket) != 0)
    log_warn("socket activation: serving the socket passed in, %s; [server] "
             "socket = %s is not used",
             d->ep.path, c.socket);

  /* Read before the identity probe starts threads, like the above: the
   * compat socket's directory is the daemon's TMPDIR at start, as a .NET
   * client's is its own (they agree when both are the default, /tmp). */
  if (c.compat_pipe_name[0] != '\0' &&
      config_compat_path(c.compat_pipe_name, getenv("TMPDIR"), compat_path,
                         sizeof(compat_path)) != 0) {
    log_error("[compat] pipe_name: the socket path for \"%s\" is too long "
              "(TMPDIR too long?)",
              c.compat_pipe_name);
    unwind(d, 0);
    return 1;
  }

  rc = identity_init(&why);
  if (rc < 0) {
    log_error("refusing to start: %s", why);
    unwind(d, 0);
    return 1;
  }
  if (rc == 0)
    log_warn("%s", why);

  ao = log_opts(&c);
  if (accesslog_start(&ao, err, sizeof(err)) != 0) {
    log_error("access_log: %s", err);
    unwind(d, 0);
    return 1;
  }
  /* An inherited socket's mode and group are the service manager's
   * (SocketMode=, SocketGroup=). */
  struct endpoint_opts eo = {.mode = c.socket_mode,
                             .gid = c.socket_gid,
                             .sddl = c.pipe_sddl,
                             .remote = c.remote_clients,
                             .strict = c.strict_modes,
                             .backlog = LISTEN_BACKLOG};
  rc = adopted ? 0 : endpoint_listen(&d->ep, c.socket, &eo, err, sizeof(err));
  if (rc != 0) {
    log_error("%s", err);
    goto fail;
  }
  if (compat_path[0] != '\0') {
    /* Any user may connect, as to a .NET server's pipe (whose own socket
     * lets only its user: dotnet/corefx#34400); who is served is still the
     * policy's choice, per client. */
    struct endpoint_opts co = eo;
    co.mode = 0666;
    co.gid = (uv_gid_t)-1;
    rc = endpoint_listen(&d->compat_ep, compat_path, &co, err, sizeof(err));
    if (rc != 0) {
      log_error("[compat] %s", err);
      goto fail;
    }
  }
  /* Counted once: the CPUs "auto" counts may change while we start. */
  nworkers = config_workers(&c);
  d->workers = calloc(nworkers, sizeof(*d->workers));
  if (d->workers == NULL) {
    log_error("out of memory");
    goto fail;
  }
  for (; d->nworkers < nworkers; d->nworkers++) {
    rc = worker_start(&d->workers[d->nworkers], d->nworkers + 1, d->live,
                      listener_conn_gone, listener_conn_rekey, &d->listener);
    if (rc != 0) {
      log_error("cannot start worker %u: %s", d->nworkers + 1, uv_strerror(rc));
      goto fail;
    }
  }
  rc = listener_start(&d->listener, uv_default_loop(), &d->ep, d->live,
                      d->workers, d->nworkers, c.max_connections,
                      c.max_connections_per_user);
  if (rc != 0) {
    log_error("cannot watch the listening socket: %s", uv_strerror(rc));
    goto fail;
  }
  if (compat_path[0] != '\0') {
    rc = listener_start(&d->compat_listener, uv_default_loop(), &d->compat_ep,
                        d->live, d->workers, d->nworkers, c.max_connections,
                        c.max_connections_per_user);
    if (rc != 0) {
      log_error("cannot watch the compat socket: %s", uv_strerror(rc));
      goto fail;
    }
    listener_set_proto(&d->compat_listener, CONN_COMPAT,
                       &d->listener.next_conn_id);
    d->compat_on = 1;
  }
  /* A rate-limited message flood that stops is summarised within one
   * window even if nothing else is logged. */
  uv_timer_init(uv_default_loop(), &d->log_tick);
  uv_timer_start(&d->log_tick, on_log_tick, LOG_TICK_MS, LOG_TICK_MS);
  uv_unref((uv_handle_t *)&d->log_tick);
  d->state = DAEMON_RUNNING;
  return 0;
fail:
  unwind(d, 1);
  return 1;
}

/* Tell the service manager state with a one-line summary: the counts
 * first, so that a long root cut at NOTIFY_STATUS_MAX loses only its tail.
 * Accepted counts every client taken from the socket, the refused ones
 * (limits) among them; requests, every one answered. */
static void status_tell(struct daemon *d, enum notify_state state) {
  char status[NOTIFY_STATUS_MAX];
  uint64_t accepted, refused;

  listener_counts(&d->listener, &accepted, &refused);
  if (d->compat_on) { /* ids are shared: accepted counts both already */
    uint64_t unused, crefused;
    listener_counts(&d->compat_listener, &unused, &crefused);
    refused += crefused;
  }
  if (snprintf(status, sizeof(status),
               "%u workers, %llu requests; connections: %u open, %llu "
               "accepted, %llu refused; serving %s on %s",
               d->nworkers, (unsigned long long)accesslog_records(),
               connlimit_total(), (unsigned long long)accepted,
               (unsigned long long)refused, d->live->cfg.root, d->ep.path) < 0)
    status[0] = '\0';
  notify_send(state, status);
}

static void on_notify_tick(uv_timer_t *t) {
  struct daemon *d = t->data;
  status_tell(d, notify_watchdog_ms() ? NOTIFY_ALIVE : NOTIFY_STATUS);
}

/* The last step of a start, once the front end has made its own handles
 * (signal watchers): every descriptor the daemon keeps is open now and
 * nothing is accepted before the loop runs, so count them and set the
 * limits they leave room for; then say so. */
void daemon_ready(struct daemon *d) {
  const struct config *c = &d->live->cfg;
  unsigned max, per_user;
  uint64_t interval;
  char mode[64 + 128], self[128];

  d->fds_fixed = fdlimit_open_now();
  effective_limits(c, d->fds_fixed, d->nworkers, &max, &per_user);
  listener_set_max(&d->listener, max, per_user);
  if (d->compat_on)
    listener_set_max(&d->compat_listener, max, per_user);
  if (identity_privileged())
    snprintf(mode, sizeof(mode), "switching identity per request");
  else if (identity_user_name(identity_self_uid(), self, sizeof(self)) == 0)
    snprintf(mode, sizeof(mode), "unprivileged: serving only uid %lu (%s)",
             (unsigned long)identity_self_uid(), self);
  else
    snprintf(mode, sizeof(mode), "unprivileged: serving only uid %lu",
             (unsigned long)identity_self_uid());
  if (d->compat_on)
    log_info("compat: the .NET sample's protocol (pipe name %s) on %s",
             c->compat_pipe_name, d->compat_ep.path);
  log_info("ready: serving %s on %s%s with %u workers (%s; paths resolved "
           "with %s)",
           c->root, d->ep.path,
           endpoint_inherited(&d->ep) ? " (passed by the service manager)" : "",
           d->nworkers, mode, resolve_method());
  status_tell(d, NOTIFY_READY);
  /* The watchdog, when one watches, wants a ping at least every half of
   * its timeout; the status line is refreshed with it. */
  interval = notify_watchdog_ms();
  if (interval == 0 || interval > STATUS_TICK_MS)
    interval = STATUS_TICK_MS;
  uv_timer_init(uv_default_loop(), &d->notify_tick);
  d->notify_tick.data = d;
  uv_timer_start(&d->notify_tick, on_notify_tick, interval, interval);
  uv_unref((uv_handle_t *)&d->notify_tick);
}

/* The reload proper: see daemon_reload. */
static void reload(struct daemon *d) {
  struct config c;
  struct accesslog_opts ao;
  struct live *l = NULL;
  char err[CONFIG_ERR_MAX], keys[256];
  unsigned max, per_user;

  if (d->config_path == NULL) {
    log_info("SIGHUP: no config file to reload; reopening logs");
    accesslog_reopen();
    return;
  }
  keys[0] = '\0';
  if (read_config(d->config_path, &c, err, sizeof(err)) == 0) {
    config_restart_keys(&d->live->cfg, &c, keys, sizeof(keys));
    config_keep_restart_keys(&d->live->cfg, &c);
    /* On failure l stays NULL and err says why. */
    (void)open_root(d->config_path, &c, &l, ROOT_MUST_EXIST, err, sizeof(err));
  }
  if (l == NULL) {
    log_error("reload failed, keeping the running config: %s", err);
    accesslog_reopen();
    return;
  }
  if (keys[0])
    log_warn("reload: %s changed; that takes a restart, keeping the running "
             "value",
             keys);
  ao = log_opts(&c);
  if (accesslog_reconfigure(&ao, err, sizeof(err)) != 0) {
    log_error("reload failed, keeping the running config: access_log: %s", err);
    live_unref(l);
    accesslog_reopen();
    return;
  }
  log_setup(c.error_log, c.level);
  effective_limits(&c, d->fds_fixed, d->nworkers, &max, &per_user);
  listener_set_max(&d->listener, max, per_user);
  listener_set_live(&d->listener, l);
  if (d->compat_on) {
    listener_set_max(&d->compat_listener, max, per_user);
    listener_set_live(&d->compat_listener, l);
  }
  for (unsigned i = 0; i < d->nworkers; i++)
    worker_set_live(d->workers[i], l);
  live_unref(d->live);
  d->live = l;
  log_info("reloaded %s", d->config_path);
}

void daemon_reload(struct daemon *d) {
  if (d->state != DAEMON_RUNNING)
    return;
  /* READY follows whether the new config was taken or refused: the daemon
   * serves either way, with the running config if need be. */
  notify_send(NOTIFY_RELOADING, "reloading");
  reload(d);
  status_tell(d, NOTIFY_READY);
}

void daemon_reopen(struct daemon *d) {
  if (d->state == DAEMON_RUNNING)
    accesslog_reopen();
}

void daemon_stop(struct daemon *d) {
  unsigned grace;

  if (d->state != DAEMON_RUNNING)
    return;
  d->state = DAEMON_STOPPING;
  grace = d->live->cfg.shutdown_timeout_ms;
  notify_send(NOTIFY_STOPPING, "stopping: finishing responses in flight");
  log_info("stopping: no new connections; finishing responses in flight "
           "(up to %u ms)",
           grace);
  listener_stop(&d->listener);
  if (d->compat_on)
    listener_stop(&d->compat_listener);
  for (unsigned i = 0; i < d->nworkers; i++)
    worker_stop(d->workers[i], grace);
  uv_close((uv_handle_t *)&d->log_tick, NULL);
  uv_close((uv_handle_t *)&d->notify_tick, NULL);
}

int daemon_finish(struct daemon *d) {
  release(d, 1);
  log_info("stopped");
  return 0;
}
