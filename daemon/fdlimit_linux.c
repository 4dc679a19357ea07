/* fdlimit_linux.c - fdlimit.h on Linux: RLIMIT_NOFILE. */
#include "fdlimit.h"

#include <fcntl.h>
#include <sys/resource.h>

#define FD_SCAN_MAX 65536 /* descriptors looked at when counting */

void fdlimit_raise(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

uint64_t fdlimit_get(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return 0;
  return (uint64_t)rl.rlim_cur;
}

/* POSIX hands out the lowest free numbers, so the descriptors open at
 * start-up all sit far below FD_SCAN_MAX. */
unsigned fdlimit_open_now(void) {
  uint64_t lim = fdlimit_get();
  unsigned n = 0, top = FD_SCAN_MAX;

  if (lim != 0 && lim < top)
    top = (unsigned)lim;
  for (unsigned fd = 0; fd < top; fd++)
    if (fcntl((int)fd, F_GETFD) != -1)
      n++;
  return n;
}
