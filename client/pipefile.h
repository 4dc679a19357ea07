/* pipefile.h - the PFP/1 client library: connect, send requests, read
 * responses, GET into a file descriptor, STAT.
 *
 * This header is the whole interface. The wire layout is common/proto.h's;
 * the protocol is described in docs/protocol.md.
 *
 * Two kinds of failure are kept apart:
 *   - the server answered, but not with OK: the call returns 0 and the answer
 *     (status, message, ...) is in struct pipefile_result;
 *   - nothing usable was answered (cannot connect, connection lost, malformed
 *     response, short body, cannot write the output): the call returns a
 *     negative code, -errno or one of the PIPEFILE_E* codes below.
 *
 * All I/O is blocking and retried on EINTR. Writes to the socket use
 * MSG_NOSIGNAL, so a server that goes away never raises SIGPIPE; writes to a
 * caller's out_fd are plain write(2)s, and a pipe out_fd may raise SIGPIPE as
 * for any other program (cat(1) behaves the same).
 *
 * After any negative return the connection's position in the byte stream is
 * unknown: close it. After a 0 return it stays usable for the next request
 * unless the request had PFP_OP_CLOSE or the status was PFP_EPROTO or
 * PFP_EBUSY (the server closes after those). */
#ifndef PIPEFILE_H
#define PIPEFILE_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "proto.h"

/* The daemon's default socket; the CLI also reads $PIPEFILE_SOCKET. */
#define PIPEFILE_DEFAULT_SOCKET PFP_DEFAULT_SOCKET
#define PIPEFILE_SOCKET_ENV "PIPEFILE_SOCKET"
/* The CLI's default for --server-uid. */
#define PIPEFILE_SERVER_UID_ENV "PIPEFILE_SERVER_UID"

/* expect_uid for pipefile_connect_server: no uid named, use the default rule
 * (see pipefile_server_trusted). */
#define PIPEFILE_SERVER_UID_DEFAULT (-1)

/* Longest socket path connect() accepts: sun_path less its NUL (107 bytes
 * on Linux). */
#define PIPEFILE_SOCKET_PATH_MAX                                               \
  (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* The one bound on body buffering: a body of any size passes through a
 * buffer of this many bytes, so memory use does not grow with the file. */
#define PIPEFILE_BUF_SIZE 65536

/* Library error codes that have no errno of their own. Far below any
 * -errno (errno values are < 4096 on Linux), like libuv's UV_EOF. */
#define PIPEFILE_EWRITE                                                        \
  (-20001) /* writing to out_fd failed: see write_errno                        \
            */
#define PIPEFILE_EUNTRUSTED                                                    \
  (-20002) /* the socket is served by a uid the rule does not trust            \
            */

/* One response. The first part is exactly what the server said; the second
 * is what this side saw while receiving the body. */
struct pipefile_result {
  int status;                /* enum pfp_status: PFP_OK or a refusal */
  char msg[PFP_MSG_MAX + 1]; /* server's message, NUL-terminated; "" if none */
  uint64_t file_size;        /* size at open; 0 on error */
  int64_t mtime;             /* seconds since the epoch; 0 on error */
  uint64_t body_len;         /* body bytes announced; 0 on error and STAT */
  uint64_t body_done;        /* body bytes received and written to out_fd */
  int write_errno;           /* after PIPEFILE_EWRITE: errno of the write */
};

/* Connect to the Unix socket at sock_path and check its server with the
 * default rule (see pipefile_connect_server). On success returns 0 and sets
 * *fd to a blocking, close-on-exec stream socket the caller close()s.
 * Returns -EINVAL for an empty path, -ENAMETOOLONG when sock_path is longer
 * than PIPEFILE_SOCKET_PATH_MAX, or -errno from socket()/connect()
 * (-ENOENT: no such socket, -ECONNREFUSED: nobody listening, -EACCES, ...),
 * or PIPEFILE_EUNTRUSTED. *fd is -1 on entry and on failure. */
int pipefile_connect(const char *sock_path, int *fd);

/* The trust rule, with nothing but numbers in it. Returns 1 when a server
 * running as server_uid may be sent requests, else 0. With expect_uid >= 0
 * only that uid is trusted. With PIPEFILE_SERVER_UID_DEFAULT: root, the
 * owner of the socket's directory (a daemon with its own user in its own
 * directory, /run/pipefiled) or the client itself (a user's own daemon).
 * Why: in a directory others can create in (a sticky /tmp/x), another
 * user can bind the name while the daemon is down; such a socket is served
 * by a uid that is none of these. */
int pipefile_server_trusted(uid_t server_uid, uid_t dir_owner, uid_t self,
                            int64_t expect_uid);

/* pipefile_connect, then check who serves the socket before anything is
 * sent: the server's uid from SO_PEERCRED must pass pipefile_server_trusted
 * with dir_owner from lstat() of sock_path's directory and self = getuid().
 * expect_uid is a uid, or PIPEFILE_SERVER_UID_DEFAULT for the default rule.
 * *server_uid (when not NULL) is set to the server's uid as soon as it is
 * known, so a caller can name it after PIPEFILE_EUNTRUSTED; (uid_t)-1
 * otherwise.
 * Returns 0 with *fd as pipefile_connect; PIPEFILE_EUNTRUSTED when the
 * server is not trusted (the connection is closed, nothing was sent); as
 * pipefile_connect; or -errno from getsockopt()/lstat(). pipefile_connect is
 * this with the default rule. */
int pipefile_connect_server(const char *sock_path, int64_t expect_uid, int *fd,
                            uid_t *server_uid);

/* Send one request: op is PFP_OP_GET or PFP_OP_STAT, optionally or'ed with
 * PFP_OP_CLOSE; path is a NUL-terminated wire path (1..PFP_PATH_MAX bytes);
 * offset and length as in the protocol (both 0 for STAT). The whole request
 * is written even if the kernel takes it in pieces.
 * Returns 0; -EINVAL for a bad op, an empty path or STAT with an offset or
 * length; -ENAMETOOLONG for a path over PFP_PATH_MAX bytes; -ECONNRESET when
 * the server has closed (send's EPIPE is reported as this, so that -EPIPE
 * always means a short body; a response may still be waiting to be read,
 * e.g. EBUSY); or -errno from send(). */
int pipefile_send_request(int fd, int op, const char *path, uint64_t offset,
                          uint64_t length);

/* Read one response header and its message, not the body. *res is cleared
 * on entry. Control bytes in the message are replaced by '?', so it is safe
 * to print on a terminal.
 * Returns 0 with *res filled (res->body_len body bytes follow on the socket
 * and must be read, e.g. with pipefile_read_body, before the next response);
 * -EPROTO when the bytes are not a valid PFP/1 response header; -ECONNRESET
 * when the connection ends before the header and message are complete; or
 * -errno from recv(). */
int pipefile_read_response(int fd, struct pipefile_result *res);

/* Read exactly res->body_len body bytes from fd and write them to out_fd,
 * or discard them when out_fd < 0, through one PIPEFILE_BUF_SIZE buffer on
 * the stack. A non-blocking out_fd is waited on with poll().
 * Never reads past the body, so pipelined responses stay intact.
 * Sets res->body_done and res->write_errno (cleared on entry).
 * Returns 0 when the whole body arrived and was written; -EPIPE when the
 * connection ended before body_len bytes (a short body: the server could
 * not deliver the whole file); PIPEFILE_EWRITE when writing to out_fd
 * failed (res->write_errno says why); or -errno from recv(). */
int pipefile_read_body(int fd, int out_fd, struct pipefile_result *res);

/* GET path's bytes [offset, offset+length) (length 0 = to end of file) and
 * stream the body into out_fd (< 0: discard). flags is 0 or PFP_OP_CLOSE.
 * *res is cleared on entry.
 * Returns 0 when a whole response arrived: res->status is PFP_OK and all of
 * res->body_len bytes were written to out_fd, or res->status is the
 * server's refusal with res->msg (nothing written). Otherwise as
 * pipefile_send_request, pipefile_read_response and pipefile_read_body, and
 * -EPROTO when an OK response's sizes do not fit the request (body_len is
 * not min(length or all, file_size - offset)). If the server refused before
 * reading the request (EBUSY), that answer is returned even when sending
 * failed. */
int pipefile_get(int fd, const char *path, uint64_t offset, uint64_t length,
                 int flags, int out_fd, struct pipefile_result *res);

/* STAT path: size and mtime in *res (cleared on entry). flags is 0 or
 * PFP_OP_CLOSE. Returns as pipefile_get (an OK STAT with a body is
 * -EPROTO). */
int pipefile_stat(int fd, const char *path, int flags,
                  struct pipefile_result *res);

/* A message for a negative code from this library. The codes whose errno
 * text would mislead here (-EPROTO, -EPIPE, -ECONNRESET, PIPEFILE_EWRITE,
 * PIPEFILE_EUNTRUSTED)
 * get the library's meaning; others get strerror(-err). Never NULL. */
const char *pipefile_strerror(int err);

#endif
