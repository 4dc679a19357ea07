/* endpoint.h - the listening socket: created, accepted on, removed.
 *
 * Kept apart from serving so that a listener can also arrive ready-made
 * (socket activation) and so that each platform has its own file. */
#ifndef PIPEFILED_ENDPOINT_H
#define PIPEFILED_ENDPOINT_H

#include <stddef.h>
#include <sys/types.h>

struct endpoint {
  int fd;         /* listening, non-blocking; -1 when closed */
  char path[108]; /* socket file we created */
  dev_t dev;      /* identity of that file, so we only ever remove our own */
  ino_t ino;
};

/* Bind and listen on path with the given permission bits and group (-1 =
 * the daemon's). The file is never connectable with wider permissions than
 * asked: it is created under a restrictive umask and chmod/chown'ed before
 * listen(). A stale socket file (nobody listening) is replaced; a live one
 * is left alone (-EADDRINUSE, err names the pid holding it); a path that is
 * not a socket is never removed (-EEXIST). Returns 0 or -errno with a
 * one-line reason in err. */
int endpoint_listen(struct endpoint *ep, const char *path, unsigned mode,
                    gid_t gid, int backlog, char *err, size_t errlen);

/* Accept one connection as a non-blocking, close-on-exec descriptor.
 * Returns the descriptor, or -errno (-EAGAIN: none waiting). */
int endpoint_accept(struct endpoint *ep);

/* Stop listening and remove the socket file if it is still ours. */
void endpoint_close(struct endpoint *ep);

#endif
