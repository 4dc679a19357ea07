/* thread_win.c - thread.h on Windows: libuv's threads (a uv_thread_t is the
 * thread's HANDLE there) with a name, and a join with a time limit.
 *
 * There are no signals to block: Windows delivers console control events
 * (Ctrl+C) and service controls on threads of its own making, never by
 * interrupting one of ours, so a new thread needs no mask. */
#include "thread.h"

#include <windows.h>

#include <string.h>

/* SetThreadDescription came with Windows 10 1607; Windows 8 and Server
 * 2012 lack it. Looked up once; where absent the thread has no name. */
typedef HRESULT(WINAPI *set_desc_fn)(HANDLE, PCWSTR);

static uv_once_t desc_once = UV_ONCE_INIT;
static set_desc_fn set_desc;

static void desc_lookup(void) {
  HMODULE k32 = GetModuleHandleW(L"kernel32.dll");
  FARPROC p = k32 ? GetProcAddress(k32, "SetThreadDescription") : NULL;

  /* Through a void * so that -Wcast-function-type does not object to a
   * cast every Win32 program makes. */
  void *v = (void *)p;
  set_desc = (set_desc_fn)v;
}

int thread_start(uv_thread_t *t, const char *name, void (*fn)(void *),
                 void *arg) {
  int rc = uv_thread_create(t, fn, arg);

  if (rc == 0 && name != NULL) {
    wchar_t w[THREAD_NAME_MAX + 1];
    size_t i;

    uv_once(&desc_once, desc_lookup);
    /* Names are ours and ASCII ("pf-worker-3"): widened byte by byte. */
    for (i = 0; i < THREAD_NAME_MAX && name[i] != '\0'; i++)
      w[i] = (wchar_t)(unsigned char)name[i];
    w[i] = L'\0';
    if (set_desc != NULL)
      set_desc(*t, w); /* for debuggers and ETW; cosmetic */
  }
  return rc;
}

int thread_join_timeout(uv_thread_t *t, unsigned timeout_ms) {
  /* INFINITE is (DWORD)-1: the longest wait the caller can ask for is
   * the same either way. */
  DWORD w = WaitForSingleObject(*t, (DWORD)timeout_ms);

  if (w == WAIT_TIMEOUT)
    return UV_ETIMEDOUT;
  if (w != WAIT_OBJECT_0)
    return uv_translate_sys_error((int)GetLastError());
  /* Ended: uv_thread_join returns at once and closes the handle. */
  return uv_thread_join(t);
}
