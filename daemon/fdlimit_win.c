/* fdlimit_win.c - fdlimit.h on Windows. Kernel handles have no
 * per-process limit worth the name (about 2^24), but each connection takes
 * one C runtime descriptor: libuv's uv_pipe_open() wants a uv_file, made by
 * uv_open_osfhandle(), and msvcrt's descriptor table has 2048 entries (the
 * connection past it was measured failing with "too many open files" under
 * wine, unanswered). That table is the limit reported here, so daemon.c's
 * connection limit keeps clients past it to a clean EBUSY. */
#include "fdlimit.h"

#include <io.h>
#include <stdint.h>

#define CRT_FDS_MAX 2048 /* msvcrt's table: _setmaxstdio cannot pass it */

/* daemon.c counts two descriptors per connection (its socket and a file,
 * as on Linux); on Windows only the pipe takes a descriptor (a file is a
 * HANDLE), so the table holds one connection per entry. */
#define DESCRIPTORS_PER_TABLE_ENTRY 2

/* Nothing to raise: the table's size is fixed. */
void fdlimit_raise(void) {}

uint64_t fdlimit_get(void) {
  return (uint64_t)CRT_FDS_MAX * DESCRIPTORS_PER_TABLE_ENTRY;
}

/* C runtime descriptors in use now (stdin, stdout, stderr, and any libuv
 * holds), in daemon.c's units. */
unsigned fdlimit_open_now(void) {
  unsigned n = 0;

  for (int fd = 0; fd < CRT_FDS_MAX; fd++)
    if (_get_osfhandle(fd) != -1)
      n++;
  return n * DESCRIPTORS_PER_TABLE_ENTRY;
}
