/* compat_linux.c - read a served file's text for the compat protocol
 * (compat.h): pread from offset 0, whatever the descriptor's offset. */
#include "compat.h"

#include <errno.h>
#include <unistd.h>

int compat_read_file(uv_os_fd_t fd, uint8_t *buf, size_t cap, size_t *got) {
  size_t n = 0;

  *got = 0;
  while (n < cap) {
    ssize_t r = pread(fd, buf + n, cap - n, (off_t)n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      break;
    n += (size_t)r;
  }
  *got = n;
  return 0;
}
