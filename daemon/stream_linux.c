/* stream_linux.c - socket I/O and sendfile(2) for stream.h on Linux. */
#include "stream.h"

#include <errno.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

ssize_t stream_recv(int sock, void *buf, size_t len) {
  ssize_t n;
  do
    n = recv(sock, buf, len, 0);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

ssize_t stream_send(int sock, const void *buf, size_t len) {
  ssize_t n;
  do
    n = send(sock, buf, len, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

ssize_t stream_send_file(int sock, int file, uint64_t *offset, size_t count) {
  /* sendfile has no MSG_NOSIGNAL: SIGPIPE is ignored process-wide (main.c),
   * so a vanished peer shows up here as EPIPE. */
  off_t off = (off_t)*offset;
  ssize_t n;
  do
    n = sendfile(sock, file, &off, count);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  *offset = (uint64_t)off;
  return n;
}
