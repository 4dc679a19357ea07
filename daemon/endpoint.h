/* endpoint.h - the listening socket: created, accepted on, removed.
 *
 * Kept apart from serving so that a listener can also arrive ready-made
 * (socket activation) and so that each platform has its own file. */
#ifndef PIPEFILED_ENDPOINT_H
#define PIPEFILED_ENDPOINT_H

#include <stddef.h>
#include <uv.h>

#include "endpoint_os.h" /* ENDPOINT_PRIVATE_FIELDS, from daemon/linux/ */

/* The longest socket path: sizeof(sun_path) less the NUL on Linux. The
 * config's socket key is bounded by it. */
#define ENDPOINT_PATH_MAX 107

struct endpoint {
  uv_os_fd_t fd; /* listening, non-blocking; -1 when closed */
  char path[ENDPOINT_PATH_MAX + 1]; /* the socket file's full path */
  char name[ENDPOINT_PATH_MAX + 1]; /* its last component */
  ENDPOINT_PRIVATE_FIELDS
};

/* Bind and listen on path (absolute, at most ENDPOINT_PATH_MAX bytes) with the
 * given permission bits and group ((unsigned)-1 = the daemon's). The directory
 * is opened and checked by fsguard_open_dir (created, 0755, when missing;
 * strict = 0 turns a failed ownership or mode check into a warning), and
 * everything after that is done relative to it. The file gets its mode and
 * group as it is created, and nobody can connect before listen() anyway.
 * Something already at path: a stale socket of the daemon's own uid (nobody
 * listening) is replaced; a live one is left alone (UV_EADDRINUSE, err names
 * the pid holding it); anything else (not a socket, or a socket of another
 * uid) is never removed (UV_EEXIST, err names its owner). Returns 0 or a UV_E*
 * code with a one-line reason in err. */
int endpoint_listen(struct endpoint *ep, const char *path, unsigned mode,
                    unsigned gid, int strict, int backlog, char *err,
                    size_t errlen);

/* Accept one connection as a non-blocking, close-on-exec descriptor.
 * Returns the descriptor, or a UV_E* code (UV_EAGAIN: none waiting). */
int endpoint_accept(struct endpoint *ep);

/* Stop listening and remove the socket file if it is still ours (same
 * device and inode, looked up relative to the directory descriptor). */
void endpoint_close(struct endpoint *ep);

#endif
