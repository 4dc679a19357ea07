/* stream.h - moving bytes on a connected, non-blocking client socket.
 *
 * Each call makes at most one system call and never blocks: -EAGAIN means
 * "wait until the socket is ready". The body goes from file to socket
 * without a copy through user space where the platform allows (Linux:
 * sendfile). Writing to a peer that went away returns -EPIPE, never a
 * signal. */
#ifndef PIPEFILED_STREAM_H
#define PIPEFILED_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bytes read (0 = the peer closed), or -errno. */
ssize_t stream_recv(int sock, void *buf, size_t len);

/* Bytes written (> 0), or -errno. */
ssize_t stream_send(int sock, const void *buf, size_t len);

/* Send up to count bytes of file from *offset, advancing it. Bytes sent
 * (0 = the file ended early: it shrank), or -errno. */
ssize_t stream_send_file(int sock, int file, uint64_t *offset, size_t count);

#endif
