/* notify_win.c - notify.h on Windows: the service control manager's view
 * of the service (SetServiceStatus), through the status handle that
 * service_win.c attaches (windows-service/service.h).
 *
 * READY is SERVICE_RUNNING (accepting stop, preshutdown, shutdown and
 * paramchange);
 * STOPPING is SERVICE_STOP_PENDING with a wait hint of the drain's bound
 * plus a margin, so that `net stop` and a system shutdown wait for
 * responses in flight; RELOADING, STATUS and ALIVE change nothing the SCM
 * shows (a service stays RUNNING while it reloads, and the SCM has no
 * status line and no watchdog). Without a handle (--console) every call
 * does nothing. Everything here runs on the service's thread, the one
 * that runs uv_default_loop(): no lock. */
#include "notify.h"

/* uv.h first: it includes winsock2.h, which must precede windows.h. */
#include <uv.h>
#include <windows.h>

#include "service.h"

#define STOP_HINT_DEFAULT_MS 30000 /* until service_win.c sets one */

static SERVICE_STATUS_HANDLE handle; /* NULL: no SCM (console) */
static SERVICE_STATUS status;        /* what was reported last */
static DWORD stop_hint_ms = STOP_HINT_DEFAULT_MS;
static int active; /* between notify_init and notify_close */

void notify_win_attach(void *status_handle) {
  handle = (SERVICE_STATUS_HANDLE)status_handle;
  memset(&status, 0, sizeof(status));
  status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
}

void notify_win_set_stop_hint(unsigned long ms) { stop_hint_ms = ms; }

void notify_win_report(unsigned long state, unsigned long win32_exit,
                       unsigned long specific_exit,
                       unsigned long wait_hint_ms) {
  int pending =
      state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING ||
      state == SERVICE_CONTINUE_PENDING || state == SERVICE_PAUSE_PENDING;

  if (handle == NULL)
    return;
  status.dwCurrentState = state;
  /* Controls only while running: during a start the daemon cannot act on
   * them yet, and during a stop there is nothing left to reload. */
  status.dwControlsAccepted =
      state == SERVICE_RUNNING
          ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_PRESHUTDOWN |
                SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PARAMCHANGE
          : 0;
  status.dwWin32ExitCode = win32_exit;
  status.dwServiceSpecificExitCode = specific_exit;
  /* The SCM judges a pending service hung when the check point stops
   * moving for longer than the wait hint. */
  status.dwCheckPoint = pending ? status.dwCheckPoint + 1 : 0;
  status.dwWaitHint = pending ? wait_hint_ms : 0;
  /* A failure has nowhere to go: the SCM is the one we would tell. */
  (void)SetServiceStatus(handle, &status);
  if (state == SERVICE_STOPPED) /* the handle is not to be used after it */
    handle = NULL;
}

int notify_init(char *err, size_t errlen) {
  if (errlen > 0)
    err[0] = '\0';
  active = handle != NULL;
  return 0;
}

void notify_send(enum notify_state state, const char *status_line) {
  (void)status_line; /* the SCM shows none */
  if (!active)
    return;
  switch (state) {
  case NOTIFY_READY:
    notify_win_report(SERVICE_RUNNING, NO_ERROR, 0, 0);
    break;
  case NOTIFY_STOPPING:
    notify_win_report(SERVICE_STOP_PENDING, NO_ERROR, 0, stop_hint_ms);
    break;
  case NOTIFY_RELOADING:
  case NOTIFY_STATUS:
  case NOTIFY_ALIVE:
    break;
  }
}

uint64_t notify_watchdog_ms(void) { return 0; /* the SCM has no watchdog */ }

/* The handle stays with service_win.c, which reports SERVICE_STOPPED
 * after daemon_finish: only notify.h's calls stop here. */
void notify_close(void) { active = 0; }
