/* service.h - the Windows front end's shared parts (Windows build only):
 * controls from other threads to the daemon on the loop thread, the
 * service control manager's side (service_win.c), install/uninstall, the
 * default paths, and the hook by which notify_win.c reports the service's
 * status. No <windows.h> here: handles travel as void *.
 *
 * Threads: daemon.h's calls are made on the thread that runs
 * uv_default_loop() (the service's own thread under the SCM, the main
 * thread in --console). The SCM's control handler and the console's
 * Ctrl-C handler run on other threads: they only service_ctl_send(). */
#ifndef PIPEFILED_SERVICE_H
#define PIPEFILED_SERVICE_H

#include <stddef.h>
#include <wchar.h>

#include "daemon.h"

#define SERVICE_NAME "pipefiled"
#define SERVICE_DISPLAY_NAME "pipefiled file server"
/* `sc control pipefiled 128`: reopen the access log (after it was
 * renamed), as SIGUSR1 does on Linux. User controls are 128..255. */
#define SERVICE_CONTROL_REOPEN 128

/* What another thread asks the daemon to do. */
enum service_ctl {
  SERVICE_CTL_STOP = 1,   /* daemon_stop */
  SERVICE_CTL_RELOAD = 2, /* daemon_reload */
  SERVICE_CTL_REOPEN = 4, /* daemon_reopen */
};

/* On the loop thread, before daemon_start: watch for controls to d (an
 * async handle on uv_default_loop(), which keeps the loop running until
 * a stop closes it). Returns 0 or a UV_E* code. */
int service_ctl_open(struct daemon *d);

/* From any thread: ask for ctl. Returns 0 (it will be acted on, on the
 * loop thread, once the loop runs), UV_EALREADY (a stop was asked for
 * already: the caller decides whether a second one ends the process), or
 * UV_ECANCELED (nobody listens: not open yet, or closed). */
int service_ctl_send(unsigned ctl);

/* On the loop thread: stop watching (after a failed start). Later sends
 * return UV_ECANCELED. A stop closes it by itself. */
void service_ctl_close(void);

/* Run as a service: connect to the SCM (StartServiceCtrlDispatcherW) and
 * serve with config_path (UTF-8; NULL: built-in defaults) until it stops
 * us. Returns the process exit status, or UV_ENOTCONN when this process
 * was not started by the SCM (run --console instead). */
int service_dispatch(const char *config_path);

/* Register the service (admin only): see windows-service/README.md.
 * config_path and account are UTF-8 or NULL (the defaults). Messages go to
 * stdout/stderr. Returns the exit status (0, or 1). */
int service_install(const char *config_path, const char *account);

/* Stop (bounded wait) and delete the service and its event source; the
 * config and logs stay. Returns the exit status. */
int service_uninstall(void);

/* The default config file, %ProgramData%\pipefiled\pipefiled.ini, as
 * UTF-8 into buf. Returns 0, or a UV_E* code (UV_ENOBUFS: too long). */
int service_default_config(char *buf, size_t len);

/* 1 if path (UTF-8) names an existing file (not a directory), else 0. */
int service_file_exists(const char *path);

/* The config file path (UTF-8; NULL: none, the built-in defaults) checked
 * with fsguard_win_check_trusted before it is loaded, at start and at
 * reload: a config cannot vouch for itself. Returns 1 when it may be
 * loaded (also when it is missing: loading it then says so), 0 after
 * logging why not. */
int service_config_trusted(const char *path);

/* UTF-8 <-> UTF-16, malloc'ed (free()); NULL when s is not valid in its
 * encoding or memory ran out. */
wchar_t *service_wide(const char *s);
char *service_utf8(const wchar_t *w);

/* notify_win.c: the service's status as the SCM sees it. service_win.c
 * attaches the SERVICE_STATUS_HANDLE (NULL, the default, in --console:
 * every notify.h call then does nothing) and reports the states only it
 * knows (START_PENDING, STOPPED); notify.h's calls report RUNNING and
 * STOP_PENDING. All on the service's thread. */
void notify_win_attach(void *status_handle);
/* Report state (a SERVICE_* state) with its exit codes and wait hint. */
void notify_win_report(unsigned long state, unsigned long win32_exit,
                       unsigned long specific_exit, unsigned long wait_hint_ms);
/* The wait hint STOP_PENDING will carry: the drain's bound plus a margin. */
void notify_win_set_stop_hint(unsigned long ms);

#endif
