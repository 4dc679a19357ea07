/* fdlimit_win.c - fdlimit.h on Windows: there is no per-process handle
 * limit to raise or read (handles are bounded only by memory, about 2^24
 * per process), so the connection limit is the configured one alone; the
 * count of handles open is still reported, for the start-up message. */
#include "fdlimit.h"

#include <windows.h>

/* Nothing to raise: Windows has no RLIMIT_NOFILE. (The C runtime's 512
 * stdio streams are a different thing, and the daemon does not use
 * them for connections.) */
void fdlimit_raise(void) {}

/* 0: no limit, as fdlimit.h says for "unlimited". */
uint64_t fdlimit_get(void) { return 0; }

/* Every kernel handle the process holds (files, events, threads, the
 * completion ports, registry keys), which is the nearest Windows has to
 * "descriptors open". 0 if the count cannot be read. */
unsigned fdlimit_open_now(void) {
  DWORD n = 0;

  if (!GetProcessHandleCount(GetCurrentProcess(), &n))
    return 0;
  return (unsigned)n;
}
