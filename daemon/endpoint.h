/* endpoint.h - the listening endpoint: created, accepted on, removed.
 *
 * Kept apart from serving so that a listener can also arrive ready-made
 * (socket activation) and so that each platform has its own file: the
 * endpoint owns how clients are waited for and taken (Linux: a uv_poll on
 * the listening socket, accept4 in batches, a pause when descriptors run
 * out) and hands each connection on as a portable handle. */
#ifndef PIPEFILED_ENDPOINT_H
#define PIPEFILED_ENDPOINT_H

#include <stddef.h>
#include <uv.h>

struct endpoint;

/* A client connected: fd is a connected, non-blocking handle, the
 * callee's from now on. */
typedef void (*endpoint_accept_cb)(struct endpoint *ep, uv_os_fd_t fd);

/* ENDPOINT_PRIVATE_FIELDS, ENDPOINT_PATH_MAX: the platform's
 * (daemon/<platform>/endpoint_os.h). */
#include "endpoint_os.h"

/* A zeroed struct endpoint is closed: endpoint_close() on it does nothing. */
struct endpoint {
  void *data;                       /* the caller's */
  char path[ENDPOINT_PATH_MAX + 1]; /* where clients connect, for messages */
  ENDPOINT_PRIVATE_FIELDS
};

/* How to listen: each platform reads its own fields. */
struct endpoint_opts {
  unsigned mode;    /* Linux: the socket file's permission bits */
  uv_gid_t gid;     /* Linux: its group (-1 = the daemon's) */
  const char *sddl; /* Windows: the pipe's security descriptor (SDDL) */
  int remote;       /* Windows: accept clients on other machines (SMB) */
  int strict;       /* strict_modes: refuse (1) or warn (0) */
  int backlog;      /* Linux: listen()'s backlog */
};

/* Bind and listen on path (Linux: absolute, at most ENDPOINT_PATH_MAX bytes)
 * as o says.
 * Linux: the directory is opened and checked by fsguard_open_dir (created,
 * 0755, when missing; strict = 0 turns a failed ownership or mode check
 * into a warning), and everything after that is done relative to it. The
 * file gets its mode and group as it is created, and nobody can connect
 * before listen() anyway. Something already at path: a stale socket of the
 * daemon's own uid (nobody listening) is replaced; a live one is left alone
 * (UV_EADDRINUSE, err names the pid holding it); anything else (not a
 * socket, or a socket of another uid) is never removed (UV_EEXIST, err
 * names its owner).
 * Windows: path is "\\.\pipe\NAME"; the first instance is created with
 * FILE_FLAG_FIRST_PIPE_INSTANCE (another server of that name: UV_EADDRINUSE)
 * and every instance with the security descriptor o->sddl and, unless
 * o->remote, PIPE_REJECT_REMOTE_CLIENTS.
 * Returns 0 or a UV_E* code with a one-line reason in err. */
int endpoint_listen(struct endpoint *ep, const char *path,
                    const struct endpoint_opts *o, char *err, size_t errlen);

/* Take the listening socket a service manager passed (socket activation)
 * instead of binding one. Linux: LISTEN_FDS sockets from descriptor 3 on,
 * for this process if LISTEN_PID is its pid, named by LISTEN_FDNAMES; the
 * one taken is the only one passed, or else the one called name. It must be
 * a listening local stream socket. The settings are removed from the
 * environment whatever they hold (nothing the daemon starts may take them
 * up), and passed sockets not taken are closed. Call before any thread
 * exists: the environment is not thread-safe.
 * Returns 1 with ep accepting-ready on the inherited socket (its path, or
 * "@name" for an abstract one, in ep->path; endpoint_close never removes
 * it: it is the manager's), 0 when nothing was passed to this process (bind
 * with endpoint_listen), or a UV_E* code with a one-line reason in err when
 * sockets were passed but none can be served (UV_ENOTSOCK: not a listening
 * local stream socket; UV_ENOENT: none called name; UV_EINVAL: malformed
 * settings); the daemon must then refuse to start rather than bind a
 * socket of its own behind the manager's back. */
int endpoint_adopt(struct endpoint *ep, const char *name, char *err,
                   size_t errlen);

/* Whether ep's socket came from the service manager (endpoint_adopt). */
int endpoint_inherited(const struct endpoint *ep);

/* Accept clients on loop, handing each to cb, until endpoint_close().
 * Accepts come in batches (the others on the loop get their turn between),
 * and pause for a while when the process is out of descriptors or memory
 * (clients then wait in the backlog; logged, rate-limited). Errors that
 * concern one client only (it went away) are skipped. Returns 0 or a UV_E*
 * code. */
int endpoint_accept_start(struct endpoint *ep, uv_loop_t *loop,
                          endpoint_accept_cb cb);

/* Stop accepting and listening and remove the socket file if it is still
 * ours (bound by endpoint_listen, same device and inode, looked up relative
 * to the directory descriptor; an adopted socket is never removed). Closing
 * twice is harmless. */
void endpoint_close(struct endpoint *ep);

#endif
