/* main_win.c - the command line on Windows: arguments -> the console
 * front end (--console), the service control manager's
 * (windows-service/service_win.c), install/uninstall or --check-config;
 * nothing else.
 *
 * Arguments are read from the wide command line (CommandLineToArgvW) and
 * turned into UTF-8, the daemon's encoding for paths, so a config path
 * outside the ANSI code page works. The config is -c FILE, else
 * %ProgramData%\pipefiled\pipefiled.ini when that file exists, else the
 * built-in defaults (as on Linux without -c). A config file is loaded
 * only if no one but SYSTEM, Administrators and pipefiled's own account
 * may change it or its folders (service_config_trusted), whatever its
 * strict_modes says: exit 78 otherwise.
 *
 * --console: Ctrl-C, Ctrl-Break and closing the console stop gracefully;
 * a second Ctrl-C or Ctrl-Break ends the process at once (exit code
 * 0xC000013A, STATUS_CONTROL_C_EXIT). The console's
 * handler runs on a thread of its own, so it only hands the stop to the
 * loop (service_ctl_send). */
/* uv.h first: it includes winsock2.h, which must precede windows.h. */
#include <uv.h>
#include <windows.h>

#include <shellapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "service.h"
#include "version.h"

#define EX_USAGE_CODE 64 /* sysexits.h EX_USAGE */

enum verb { VERB_NONE, VERB_INSTALL, VERB_UNINSTALL };

struct args {
  enum verb verb;
  const char *config; /* -c, --config; NULL: the default */
  const char *account;
  int check, console, help, version;
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: pipefiled --console [-c FILE]\n"
          "       pipefiled [-c FILE] --check-config\n"
          "       pipefiled install [--config FILE] [--account NAME]\n"
          "       pipefiled uninstall\n"
          "Serve files over a named pipe as the user who asks.\n\n"
          "  -c, --config FILE  load settings from FILE (ini); without it,\n"
          "                     %%ProgramData%%\\pipefiled\\pipefiled.ini if "
          "it\n"
          "                     exists, else the built-in defaults\n"
          "      --check-config validate, print the effective config, exit\n"
          "                     0 (valid) or 78 (invalid)\n"
          "      --console      run in this console; Ctrl-C, Ctrl-Break or\n"
          "                     closing it stops gracefully (twice: at once)\n"
          "  -h, --help         this text\n"
          "  -V, --version      print the version\n\n"
          "  install            register the Windows service \"pipefiled\" "
          "(as\n"
          "                     an administrator): automatic start, account\n"
          "                     NT SERVICE\\pipefiled unless --account,\n"
          "                     config FILE (default: the one above, "
          "written\n"
          "                     if missing), Event Log source \"pipefiled\"\n"
          "  uninstall          stop and remove the service; config and logs\n"
          "                     stay\n\n"
          "Without --console or a verb, pipefiled expects to be started by "
          "the\n"
          "service control manager (net start pipefiled). There: sc stop\n"
          "stops gracefully, `sc control pipefiled paramchange` reloads the\n"
          "config, `sc control pipefiled 128` reopens the access log.\n");
}

/* An option's value: "--opt VALUE" or "--opt=VALUE" (long), "-c VALUE"
 * or "-cVALUE" (short). *i is moved past what was taken. NULL when the
 * value is missing. */
static const char *value_of(int argc, char **argv, int *i, const char *arg,
                            size_t prefix) {
  if (arg[prefix] == '=' && arg[1] == '-')
    return arg + prefix + 1;
  if (arg[prefix] != '\0' && arg[1] != '-')
    return arg + prefix;
  if (arg[prefix] != '\0' || *i + 1 >= argc)
    return NULL;
  return argv[++*i];
}

/* 1 if arg is the long option name, alone or with "=VALUE". */
static int is_long(const char *arg, const char *name) {
  size_t n = strlen(name);
  return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

/* Parse argv into a. Returns 0, or EX_USAGE_CODE with the reason
 * printed. */
static int parse(int argc, char **argv, struct args *a) {
  int i = 1;

  memset(a, 0, sizeof(*a));
  if (argc > 1 && strcmp(argv[1], "install") == 0) {
    a->verb = VERB_INSTALL;
    i = 2;
  } else if (argc > 1 && strcmp(argv[1], "uninstall") == 0) {
    a->verb = VERB_UNINSTALL;
    i = 2;
  }
  for (; i < argc; i++) {
    const char *arg = argv[i];
    const char **dest = NULL;
    size_t prefix = 0;

    if (strcmp(arg, "-c") == 0 || (strncmp(arg, "-c", 2) == 0 && arg[2])) {
      dest = &a->config;
      prefix = 2;
    } else if (is_long(arg, "--config")) {
      dest = &a->config;
      prefix = strlen("--config");
    } else if (is_long(arg, "--account") && a->verb == VERB_INSTALL) {
      dest = &a->account;
      prefix = strlen("--account");
    } else if (strcmp(arg, "--check-config") == 0 && a->verb == VERB_NONE) {
      a->check = 1;
    } else if (strcmp(arg, "--console") == 0 && a->verb == VERB_NONE) {
      a->console = 1;
    } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      a->help = 1;
    } else if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
      a->version = 1;
    } else {
      fprintf(stderr, "pipefiled: unexpected argument: %s\n", arg);
      return EX_USAGE_CODE;
    }
    if (dest == NULL)
      continue;
    if (a->verb == VERB_UNINSTALL) {
      fprintf(stderr, "pipefiled: uninstall takes no options\n");
      return EX_USAGE_CODE;
    }
    *dest = value_of(argc, argv, &i, arg, prefix);
    if (*dest == NULL || (*dest)[0] == '\0') {
      fprintf(stderr, "pipefiled: %s needs a value\n", arg);
      return EX_USAGE_CODE;
    }
  }
  if (a->check && a->console) {
    fprintf(stderr, "pipefiled: --check-config and --console exclude each "
                    "other\n");
    return EX_USAGE_CODE;
  }
  return 0;
}

/* The process's arguments as UTF-8 (argv[argc] is NULL). Returns NULL if
 * they cannot be had; free with free_args. */
static char **utf8_args(int *argc) {
  wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), argc);
  char **argv = NULL;

  if (wargv == NULL)
    return NULL;
  argv = calloc((size_t)*argc + 1, sizeof(*argv));
  for (int i = 0; argv != NULL && i < *argc; i++) {
    argv[i] = service_utf8(wargv[i]);
    if (argv[i] == NULL) {
      for (int j = 0; j < i; j++)
        free(argv[j]);
      free(argv);
      argv = NULL;
    }
  }
  LocalFree(wargv);
  return argv;
}

static void free_args(int argc, char **argv) {
  for (int i = 0; argv != NULL && i < argc; i++)
    free(argv[i]);
  free(argv);
}

/* The config to use: -c as given; else the default file if it exists;
 * else NULL (the built-in defaults), saying so when say is set. buf holds
 * the default path. */
static const char *config_to_use(const struct args *a, char *buf, size_t len,
                                 int say) {
  if (a->config != NULL)
    return a->config;
  if (service_default_config(buf, len) == 0 && service_file_exists(buf))
    return buf;
  if (say)
    log_info("no config file %s: using the built-in defaults",
             buf[0] ? buf : "%ProgramData%\\pipefiled\\pipefiled.ini");
  return NULL;
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

/* The console's Ctrl-C, Ctrl-Break, close, logoff and shutdown events, on
 * a thread the system makes for each. */
static BOOL WINAPI on_console_event(DWORD type) {
  /* A second event, or one with no daemon to stop: end at once, with the
   * exit code Windows' own handler gives (wine's gives 0, which would pass
   * for a clean stop). */
  if (service_ctl_send(SERVICE_CTL_STOP) != 0)
    ExitProcess(STATUS_CONTROL_C_EXIT);
  /* For these the system ends the process as soon as the handler
   * returns (and anyway after a few seconds): wait here so the stop can
   * drain; main() returning ends the process. */
  if (type == CTRL_CLOSE_EVENT || type == CTRL_LOGOFF_EVENT ||
      type == CTRL_SHUTDOWN_EVENT)
    Sleep(INFINITE);
  return TRUE;
}

/* --console: the daemon on this thread's uv_default_loop(). */
static int run_console(const char *config_path) {
  static struct daemon d; /* large (the listener, the endpoint): not on the
                             stack */
  int status, rc;

  /* Watched before the pipe exists, as on Linux: a stop asked for during
   * the start waits in the loop and is acted on once it runs. */
  rc = service_ctl_open(&d);
  if (rc != 0) {
    log_error("cannot watch for console events: %s", uv_strerror(rc));
    return 1;
  }
  if (!SetConsoleCtrlHandler(on_console_event, TRUE))
    log_warn("cannot handle Ctrl-C (error %lu): it ends pipefiled at once",
             (unsigned long)GetLastError());
  status = daemon_start(&d, config_path);
  if (status != 0) {
    service_ctl_close();
    uv_run(uv_default_loop(), UV_RUN_DEFAULT); /* let the close finish */
    goto out;
  }
  daemon_ready(&d);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  status = daemon_finish(&d);
out:
  uv_loop_close(uv_default_loop());
  return status;
}

int main(void) {
  char defpath[CONFIG_PATH_MAX] = "";
  struct args a;
  char **argv;
  int argc = 0, status;

  argv = utf8_args(&argc);
  if (argv == NULL) {
    fprintf(stderr, "pipefiled: cannot read the command line (error %lu)\n",
            (unsigned long)GetLastError());
    return 1;
  }
  status = parse(argc, argv, &a);
  if (status != 0) {
    usage(stderr);
    goto out;
  }
  if (a.help) {
    usage(stdout);
    goto out;
  }
  if (a.version) {
    printf("pipefiled %s\n", PIPEFILE_VERSION);
    goto out;
  }
  switch (a.verb) {
  case VERB_INSTALL:
    status = service_install(a.config, a.account);
    goto out;
  case VERB_UNINSTALL:
    status = service_uninstall();
    goto out;
  case VERB_NONE:
    break;
  }
  if (a.check || a.console) {
    const char *config = config_to_use(&a, defpath, sizeof(defpath), 1);

    /* Before it is read: a config someone else may write is refused
     * whatever it says (service_win.c does the same under the SCM, where
     * the message goes to the Event Log). */
    if (!service_config_trusted(config))
      status = EX_CONFIG_CODE;
    else if (a.check)
      status = check_config(config);
    else
      status = run_console(config);
    goto out;
  }
  /* Under the SCM, messages before the config is read (and a config that
   * cannot be) have no stderr to go to: service_win.c sends them to the
   * Event Log; so nothing is logged here. */
  status = service_dispatch(config_to_use(&a, defpath, sizeof(defpath), 0));
  if (status == UV_ENOTCONN) {
    fprintf(stderr, "pipefiled: not started by the service control manager; "
                    "to run in this console: pipefiled --console [-c FILE]\n"
                    "\n");
    usage(stderr);
    status = EX_USAGE_CODE;
  }
out:
  free_args(argc, argv);
  return status;
}
