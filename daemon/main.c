/* main.c - start-up and shutdown order, and the signals that move between
 * them; nothing else.
 *
 * Start: config and served root -> error log -> identity probe -> access
 * log -> socket -> workers -> accept. Stop (SIGTERM/SIGINT): stop accepting and
 * remove the socket -> workers drain within shutdown_timeout -> access log
 * drained. SIGHUP: reload config (all or nothing) and reopen logs. SIGUSR1:
 * reopen. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <uv.h>

#include "accesslog.h"
#include "config.h"
#include "endpoint.h"
#include "identity.h"
#include "listener.h"
#include "live.h"
#include "log.h"
#include "resolve.h"
#include "version.h"
#include "worker.h"

#define LISTEN_BACKLOG 4096
#define FD_RESERVE_MAX 64 /* descriptors kept back, at most */
#define FD_SPARE 8        /* beyond those open at start: reload, log reopen */
#define FD_SPARE_PER_WORKER 2 /* and a worker's transient ones (resolving) */
#define FD_SCAN_MAX 65536     /* descriptors looked at when counting */

struct daemon {
  const char *config_path; /* NULL: built-in defaults */
  struct live *live;
  struct endpoint ep;
  struct listener listener;
  struct worker **workers;
  unsigned nworkers;
  uv_signal_t sig_hup, sig_usr1, sig_term, sig_int;
  uv_timer_t log_tick; /* summarises error-log floods that stopped */
  unsigned fds_fixed;  /* descriptors open before the first connection */
  int stopping;
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: pipefiled [-c FILE] [--check-config]\n"
          "Serve files over a local socket as the user who asks.\n\n"
          "  -c, --config FILE  load settings from FILE (ini); without it,\n"
          "                     built-in defaults (see config/pipefiled.ini)\n"
          "      --check-config validate, print the effective config, exit\n"
          "                     0 (valid) or 78 (invalid)\n"
          "  -h, --help         this text\n"
          "  -V, --version      print the version\n\n"
          "Signals: SIGHUP reloads the config and reopens logs, SIGUSR1\n"
          "reopens logs, SIGTERM/SIGINT stop gracefully.\n");
}

/* What open_root() does about a built-in default root that does not exist. */
enum default_root { ROOT_MUST_EXIST, ROOT_CREATE, ROOT_MAY_BE_MISSING };

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
  if (rc == -ENOENT && is_default && dr == ROOT_MAY_BE_MISSING) {
    log_warn("root %s does not exist yet; pipefiled creates it (empty) when "
             "it starts",
             c->root);
    return 0;
  }
  if (rc == -ENOENT && is_default && dr == ROOT_CREATE &&
      mkdir(c->root, 0755) == 0 && chmod(c->root, 0755) == 0) {
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

/* A server holding many connections needs more than the usual 1024
 * descriptors: take what the hard limit allows. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* Descriptors open now. Called once before accepting: the loops, logs,
 * socket and root, which every connection comes on top of. POSIX hands out
 * the lowest free numbers, so they all sit far below FD_SCAN_MAX. */
static unsigned fds_open(void) {
  struct rlimit rl;
  unsigned n = 0, top = FD_SCAN_MAX;

  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < top)
    top = (unsigned)rl.rlim_cur;
  for (unsigned fd = 0; fd < top; fd++)
    if (fcntl((int)fd, F_GETFD) != -1)
      n++;
  return n;
}

/* The connection limits in force: max_connections, lowered to what the
 * descriptor limit can carry (each connection may hold its socket and a
 * file), so that clients past it get EBUSY rather than EIO or silence.
 * Kept back: the fixed descriptors (fixed, counted at start-up; they grow
 * with the workers) and a few spare, or a quarter of the limit up to
 * FD_RESERVE_MAX if that is more; so a low limit serves fewer clients
 * rather than none. The per-user limit shrinks in proportion. */
static void effective_limits(const struct config *c, unsigned fixed,
                             unsigned *max, unsigned *per_user) {
  struct rlimit rl;
  rlim_t reserve, fit;

  *max = c->max_connections;
  *per_user = c->max_connections_per_user;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return;
  reserve = rl.rlim_cur / 4 < FD_RESERVE_MAX ? rl.rlim_cur / 4 : FD_RESERVE_MAX;
  rlim_t floor = (rlim_t)fixed + FD_SPARE + FD_SPARE_PER_WORKER * c->workers;
  if (reserve < floor)
    reserve = floor;
  fit = rl.rlim_cur > reserve + 2 ? (rl.rlim_cur - reserve) / 2 : 1;
  if ((rlim_t)*max <= fit)
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
           (unsigned long long)rl.rlim_cur, *max, each);
}

static void reload(struct daemon *d) {
  struct config c;
  struct live *l = NULL;
  char err[CONFIG_ERR_MAX], keys[256];

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
  struct accesslog_opts ao = {.dest = c.access_log,
                              .fmt = c.access_format,
                              .full = c.log_full,
                              .strict_modes = c.strict_modes};
  int rc = accesslog_reconfigure(&ao, err, sizeof(err));
  if (rc != 0) {
    log_error("reload failed, keeping the running config: access_log: %s", err);
    live_unref(l);
    accesslog_reopen();
    return;
  }
  log_setup(c.error_log, c.level);
  unsigned max, per_user;
  effective_limits(&c, d->fds_fixed, &max, &per_user);
  listener_set_max(&d->listener, max, per_user);
  listener_set_live(&d->listener, l);
  for (unsigned i = 0; i < d->nworkers; i++)
    worker_set_live(d->workers[i], l);
  live_unref(d->live);
  d->live = l;
  log_info("reloaded %s", d->config_path);
}

static void stop(struct daemon *d) {
  if (d->stopping)
    return;
  d->stopping = 1;
  log_info("stopping: no new connections; finishing responses in flight "
           "(up to %u ms)",
           d->live->cfg.shutdown_timeout_ms);
  listener_stop(&d->listener);
  for (unsigned i = 0; i < d->nworkers; i++)
    worker_stop(d->workers[i], d->live->cfg.shutdown_timeout_ms);
  /* Closing our signal handles gives SIGINT/SIGTERM their default action
   * back: a second Ctrl-C ends the process at once. */
  uv_close((uv_handle_t *)&d->sig_hup, NULL);
  uv_close((uv_handle_t *)&d->sig_usr1, NULL);
  uv_close((uv_handle_t *)&d->sig_term, NULL);
  uv_close((uv_handle_t *)&d->sig_int, NULL);
  uv_close((uv_handle_t *)&d->log_tick, NULL);
}

static void on_log_tick(uv_timer_t *t) {
  (void)t;
  log_tick();
}

static void on_signal(uv_signal_t *s, int signum) {
  struct daemon *d = s->data;
  switch (signum) {
  case SIGHUP:
    reload(d);
    break;
  case SIGUSR1:
    accesslog_reopen();
    break;
  default:
    stop(d);
    break;
  }
}

static void watch(struct daemon *d, uv_signal_t *s, int signum) {
  uv_signal_init(uv_default_loop(), s);
  s->data = d;
  uv_signal_start(s, on_signal, signum);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"check-config", no_argument, NULL, 'C'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"version", no_argument, NULL, 'V'},
                                       {NULL, 0, NULL, 0}};
  struct daemon d;
  struct config c;
  char err[CONFIG_ERR_MAX];
  const char *why = NULL;
  int check = 0, opt, rc, status = 1;
  unsigned started = 0;

  memset(&d, 0, sizeof(d));
  while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
    switch (opt) {
    case 'c':
      d.config_path = optarg;
      break;
    case 'C':
      check = 1;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case 'V':
      printf("pipefiled %s\n", PIPEFILE_VERSION);
      return 0;
    default:
      usage(stderr);
      return 64;
    }
  }
  if (optind < argc) {
    usage(stderr);
    return 64;
  }

  if (read_config(d.config_path, &c, err, sizeof(err)) != 0 ||
      open_root(d.config_path, &c, &d.live,
                check ? ROOT_MAY_BE_MISSING : ROOT_CREATE, err,
                sizeof(err)) != 0) {
    log_error("%s", err);
    return EX_CONFIG_CODE;
  }
  if (check) {
    config_print(&c, stdout);
    live_unref(d.live);
    return 0;
  }

  log_setup(c.error_log, c.level);
  signal(SIGPIPE, SIG_IGN); /* sendfile(2) to a vanished peer */
  raise_fd_limit();

  rc = identity_init(&why);
  if (rc < 0) {
    log_error("refusing to start: %s", why);
    goto out;
  }
  if (rc == 0)
    log_warn("%s", why);

  struct accesslog_opts ao = {.dest = c.access_log,
                              .fmt = c.access_format,
                              .full = c.log_full,
                              .strict_modes = c.strict_modes};
  rc = accesslog_start(&ao, err, sizeof(err));
  if (rc != 0) {
    log_error("access_log: %s", err);
    goto out;
  }

  rc = endpoint_listen(&d.ep, c.socket, c.socket_mode, c.socket_gid,
                       c.strict_modes, LISTEN_BACKLOG, err, sizeof(err));
  if (rc != 0) {
    log_error("%s", err);
    goto out_log;
  }

  d.nworkers = c.workers;
  d.workers = calloc(c.workers, sizeof(*d.workers));
  if (d.workers == NULL)
    goto out_ep;
  for (; started < c.workers; started++) {
    rc = worker_start(&d.workers[started], started + 1, d.live,
                      listener_conn_gone, &d.listener);
    if (rc != 0)
      break;
  }
  if (started < c.workers) {
    log_error("cannot start worker %u: %s", started + 1, uv_strerror(rc));
    goto out_workers;
  }

  rc =
      listener_start(&d.listener, uv_default_loop(), &d.ep, d.live, d.workers,
                     d.nworkers, c.max_connections, c.max_connections_per_user);
  if (rc != 0) {
    log_error("cannot watch the listening socket: %s", uv_strerror(rc));
    goto out_workers;
  }
  watch(&d, &d.sig_hup, SIGHUP);
  watch(&d, &d.sig_usr1, SIGUSR1);
  watch(&d, &d.sig_term, SIGTERM);
  watch(&d, &d.sig_int, SIGINT);
  /* A rate-limited message flood that stops is summarised within one
   * window even if nothing else is logged. */
  uv_timer_init(uv_default_loop(), &d.log_tick);
  uv_timer_start(&d.log_tick, on_log_tick, 5000, 5000);
  uv_unref((uv_handle_t *)&d.log_tick);
  /* Every descriptor the daemon keeps is open now (the signal watchers
   * made the last ones) and nothing is accepted before uv_run: count them
   * and set the limits they leave room for. */
  unsigned max, per_user;
  d.fds_fixed = fds_open();
  effective_limits(&c, d.fds_fixed, &max, &per_user);
  listener_set_max(&d.listener, max, per_user);

  char mode[64];
  if (identity_privileged())
    snprintf(mode, sizeof(mode), "switching identity per request");
  else
    snprintf(mode, sizeof(mode), "unprivileged: serving only uid %lu",
             (unsigned long)identity_self_uid());
  log_info("ready: serving %s on %s with %u workers (%s; paths resolved "
           "with %s)",
           c.root, c.socket, c.workers, mode, resolve_method());
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  status = 0;
  goto out_joined;

out_workers:
  /* Started workers have no connections yet: they stop at once. */
  for (unsigned i = 0; i < started; i++)
    worker_stop(d.workers[i], 0);
out_joined:
  for (unsigned i = 0; i < started; i++)
    worker_join(d.workers[i]);
  free(d.workers);
out_ep:
  endpoint_close(&d.ep);
out_log:
  accesslog_stop();
  log_flush(); /* no suppressed count is lost at exit */
  if (status == 0)
    log_info("stopped");
out:
  live_unref(d.live);
  uv_loop_close(uv_default_loop());
  return status;
}
