/* transport.h - the client library's platform half, private to client/:
 * blocking reads and writes on a connection and on the caller's out_fd, and
 * the texts of the error codes a platform adds. transport_linux.c (Unix
 * sockets) and transport_win.c (named pipes) implement it, together with
 * the connecting functions of pipefile.h (pipefile_connect_server,
 * pipefile_connect_as, pipefile_server_user_check, pipefile_close), which
 * are wholly a platform's: how to reach the daemon and how to tell who
 * serves it share no code between Linux and Windows. libpipefile.c, the
 * protocol, calls only these. */
#ifndef PIPEFILE_TRANSPORT_H
#define PIPEFILE_TRANSPORT_H

#include <stddef.h>

/* Read up to n (> 0) bytes from connection fd, waiting for at least one.
 * Returns 0 with *got > 0 bytes, or *got == 0 at the end of the stream (the
 * server closed; on Windows also a broken pipe); or -errno. Retries EINTR. */
int transport_recv(int fd, void *buf, size_t n, size_t *got);

/* Write all n bytes of buf to connection fd. A server that has closed costs
 * -EPIPE, never a signal. Returns 0 or -errno. */
int transport_send(int fd, const void *buf, size_t n);

/* Write all n bytes of buf to the caller's out_fd (a file, a pipe or a
 * terminal; on Linux possibly left non-blocking by whoever created it, then
 * waited on). Returns 0 or -errno. */
int transport_write_out(int out_fd, const void *buf, size_t n);

/* A text for -errno err as this platform's codes mean it: strerror() on
 * Linux; on Windows a table for the values transport_win.c maps Win32
 * errors to (the C runtime's strerror knows none above 42), else
 * strerror(). Never NULL. */
const char *transport_strerror(int err);

#endif
