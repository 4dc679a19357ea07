/* main_linux.c - the command line and signals on Linux: arguments ->
 * daemon.c's transitions; nothing else.
 *
 * SIGHUP reloads, SIGUSR1 reopens the access log, SIGTERM/SIGINT stop
 * gracefully (a second one ends the process at once). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "daemon.h"
#include "log.h"
#include "version.h"

struct front {
  struct daemon d;
  uv_signal_t sig_hup, sig_usr1, sig_term, sig_int;
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

static void on_signal(uv_signal_t *s, int signum) {
  struct front *f = s->data;
  switch (signum) {
  case SIGHUP:
    daemon_reload(&f->d);
    break;
  case SIGUSR1:
    daemon_reopen(&f->d);
    break;
  default:
    daemon_stop(&f->d);
    /* Closing the SIGINT/SIGTERM handles gives them their default action
     * back: a second Ctrl-C ends the process at once. SIGHUP and SIGUSR1
     * stay watched (and ignored: daemon.c acts on them only while running)
     * so that a logrotate or a reload racing the stop cannot end it with
     * transfers and log lines in flight; unref'd, they do not keep the
     * loop alive. */
    uv_close((uv_handle_t *)&f->sig_term, NULL);
    uv_close((uv_handle_t *)&f->sig_int, NULL);
    uv_unref((uv_handle_t *)&f->sig_hup);
    uv_unref((uv_handle_t *)&f->sig_usr1);
    break;
  }
}

static void watch(struct front *f, uv_signal_t *s, int signum) {
  uv_signal_init(uv_default_loop(), s);
  s->data = f;
  uv_signal_start(s, on_signal, signum);
}

/* --check-config: validate, print what is in force. */
static int check_config(const char *path) {
  struct config c;
  struct live *l = NULL;
  char err[CONFIG_ERR_MAX];

  if (daemon_load_config(path, 1, &c, &l, err, sizeof(err)) != 0) {
    log_error("%s", err);
    return EX_CONFIG_CODE;
  }
  config_print(&c, stdout);
  live_unref(l);
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"check-config", no_argument, NULL, 'C'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"version", no_argument, NULL, 'V'},
                                       {NULL, 0, NULL, 0}};
  static struct front f; /* large (the listener, the endpoint): not on the
                            stack */
  const char *config_path = NULL;
  int check = 0, opt, status;

  while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
    switch (opt) {
    case 'c':
      config_path = optarg;
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
  if (check)
    return check_config(config_path);

  signal(SIGPIPE, SIG_IGN); /* sendfile(2) to a vanished peer */
  /* Watched before the socket exists: a client (or a test) that sees it
   * listening may signal at once, and SIGHUP's default action would end
   * the process. Signals that come during the start wait in the loop and
   * are acted on once it runs. */
  watch(&f, &f.sig_hup, SIGHUP);
  watch(&f, &f.sig_usr1, SIGUSR1);
  watch(&f, &f.sig_term, SIGTERM);
  watch(&f, &f.sig_int, SIGINT);
  status = daemon_start(&f.d, config_path);
  if (status != 0) {
    uv_close((uv_handle_t *)&f.sig_hup, NULL);
    uv_close((uv_handle_t *)&f.sig_usr1, NULL);
    uv_close((uv_handle_t *)&f.sig_term, NULL);
    uv_close((uv_handle_t *)&f.sig_int, NULL);
    uv_run(uv_default_loop(), UV_RUN_DEFAULT); /* let the closes finish */
    goto out;
  }
  daemon_ready(&f.d);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  status = daemon_finish(&f.d);
  {
    /* Closing the last handles restores SIGHUP's default action (the end
     * of the process); blocked, a late one stays pending until exit. */
    sigset_t late;
    sigemptyset(&late);
    sigaddset(&late, SIGHUP);
    sigaddset(&late, SIGUSR1);
    sigprocmask(SIG_BLOCK, &late, NULL);
  }
  uv_close((uv_handle_t *)&f.sig_hup, NULL);
  uv_close((uv_handle_t *)&f.sig_usr1, NULL);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
out:
  uv_loop_close(uv_default_loop());
  return status;
}
