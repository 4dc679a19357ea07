/* pipefile.h - the PFP/1 client library: connect, send requests, read
 * responses, GET into a file descriptor, STAT.
 *
 * This header is the whole interface. The wire layout is common/proto.h's
 * (its PFP_* constants, enum pfp_status, pfp_status_name() and
 * pfp_status_message() are part of it); the protocol is described in
 * docs/protocol.md. libpipefile.c holds the protocol; transport_linux.c and
 * transport_win.c (client/transport.h) hold what a platform does
 * differently: connect, read and write, close, and asking who serves the
 * other end.
 *
 * Using it: `make install-dev` installs this header and proto.h in
 * INCLUDEDIR/pipefile/, libpipefile.a in LIBDIR and pipefile.pc; build with
 *   cc prog.c $(pkg-config --cflags --libs pipefile)
 * and #include <pipefile.h>. docs/example-client.c is a whole program
 * (connect, STAT, GET to standard output). The library keeps no global
 * state: connections are independent, and each is used by one thread at a
 * time. The typical sequences:
 *   one request:  pipefile_connect_as, pipefile_get or pipefile_stat (with
 *                 PFP_OP_CLOSE on the last), pipefile_close;
 *   pipelined:    pipefile_send_request for several GETs, then for each in
 *                 order pipefile_read_get_response and, after OK,
 *                 pipefile_read_body or pipefile_read_body_cb (keep what is
 *                 in flight bounded: the server stops reading requests
 *                 while its answers wait in a full socket).
 *
 * Connections and out_fd are C runtime file descriptors (int) on every
 * platform. On Linux a connection is the Unix socket's fd. On Windows it is
 * a named pipe HANDLE wrapped by _open_osfhandle(); the library reads and
 * writes the HANDLE behind it (_get_osfhandle) with ReadFile/WriteFile, so
 * the fd's text or binary mode never changes a byte. Close a connection
 * with pipefile_close() (close() on Linux, _close() on Windows: either
 * closes the socket or the HANDLE). out_fd is written the same way on
 * Windows: the bytes go to its HANDLE untranslated.
 *
 * Two kinds of failure are kept apart:
 *   - the server answered, but not with OK: the call returns 0 and the answer
 *     (status, message, ...) is in struct pipefile_result;
 *   - nothing usable was answered (cannot connect, connection lost, malformed
 *     response, short body, cannot write the output): the call returns a
 *     negative code, -errno or one of the PIPEFILE_E* codes below. On Windows
 *     Win32 errors are turned into the nearest errno value once, in
 *     transport_win.c (ERROR_FILE_NOT_FOUND -> -ENOENT, ERROR_ACCESS_DENIED
 *     -> -EACCES, ERROR_PIPE_BUSY -> -EBUSY, a broken pipe -> end of
 *     stream, ...), so callers test the same codes on both platforms.
 *
 * All I/O is blocking and retried on EINTR. Writes to the socket use
 * MSG_NOSIGNAL, so a server that goes away never raises SIGPIPE; writes to a
 * caller's out_fd are plain write(2)s, and a pipe out_fd may raise SIGPIPE as
 * for any other program (cat(1) behaves the same). Windows has no SIGPIPE: a
 * closed pipe is an error code there.
 *
 * After any negative return the connection's position in the byte stream is
 * unknown: close it. After a 0 return it stays usable for the next request
 * unless the request had PFP_OP_CLOSE or the status was PFP_EPROTO or
 * PFP_EBUSY (the server closes after those). */
#ifndef PIPEFILE_H
#define PIPEFILE_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* The platform's names and limits: the only platform conditional of the
 * interface (libuv's uv.h does the same), so that what a caller sees differs
 * in values, never in function signatures. */
#ifdef _WIN32
/* The daemon's default pipe (daemon/win/config_os.h). */
#define PIPEFILE_DEFAULT_SOCKET "\\\\.\\pipe\\pipefiled"
/* Longest pipe name taken: "\\SERVER\pipe\" and the pipe's own name of at
 * most 256 characters (CreateNamedPipe's limit) fit with room to spare; the
 * 256 is checked separately (-ENAMETOOLONG either way). Bytes of UTF-8. */
#define PIPEFILE_SOCKET_PATH_MAX 1023
#else
/* The daemon's default socket. */
#define PIPEFILE_DEFAULT_SOCKET PFP_DEFAULT_SOCKET
/* Longest socket path connect() accepts: sun_path less its NUL (107 bytes
 * on Linux; transport_linux.c checks this against struct sockaddr_un). */
#define PIPEFILE_SOCKET_PATH_MAX 107
#endif
/* The CLI also reads $PIPEFILE_SOCKET. */
#define PIPEFILE_SOCKET_ENV "PIPEFILE_SOCKET"
/* The CLI's default for --server-uid (Linux). */
#define PIPEFILE_SERVER_UID_ENV "PIPEFILE_SERVER_UID"
/* The CLI's default for --server-user (Windows). */
#define PIPEFILE_SERVER_USER_ENV "PIPEFILE_SERVER_USER"

/* expect_uid for pipefile_connect_server: no uid named, use the default rule
 * (see pipefile_server_trusted). */
#define PIPEFILE_SERVER_UID_DEFAULT (-1)

/* Room for a server's name as pipefile_connect_as and
 * pipefile_server_user_check write it ("uid 1000", or on Windows
 * "S-1-5-21-...-1001 (HOST\user)"), NUL included; longer names are cut. */
#define PIPEFILE_SERVER_TEXT_MAX 512

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
/* Windows only: who serves the pipe cannot be read (the server's process
 * and the pipe's owner are both hidden from us, or the call failed). Fail
 * closed: treated like PIPEFILE_EUNTRUSTED, nothing was sent. */
#define PIPEFILE_EIDENTITY (-20003)
/* Windows only: a remote pipe (\\SERVER\pipe\NAME) and no server named:
 * a remote server's account cannot be read from here, so the caller must
 * name the one it trusts (pipefile_connect_as). Nothing was sent. */
#define PIPEFILE_EREMOTE (-20004)
/* Windows only: the name is not a named pipe's (\\.\pipe\NAME or
 * \\SERVER\pipe\NAME), or what it opened is not a pipe. */
#define PIPEFILE_ENOTPIPE (-20005)

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

/* A uid as the trust rule takes it: uid_t on Linux is this very type
 * (unsigned 32 bits, checked in transport_linux.c), so callers pass uid_t
 * values and pointers unchanged; <sys/types.h> is not needed here. Windows
 * has no uids: there the server is named by its account (SID). */
typedef uint32_t pipefile_uid_t;

/* Connect to the daemon at sock_path and check its server with the default
 * rule (see pipefile_connect_server). On success returns 0 and sets *fd to a
 * blocking connection the caller closes with pipefile_close(): on Linux a
 * close-on-exec stream socket, on Windows a named pipe (see the top).
 * Returns -EINVAL for an empty path, -ENAMETOOLONG when sock_path is longer
 * than PIPEFILE_SOCKET_PATH_MAX, or -errno from socket()/connect()
 * (-ENOENT: no such socket, -ECONNREFUSED: nobody listening, -EACCES, ...),
 * or PIPEFILE_EUNTRUSTED. *fd is -1 on entry and on failure.
 * Windows: sock_path is a pipe name in UTF-8, \\.\pipe\NAME or
 * \\SERVER\pipe\NAME (else PIPEFILE_ENOTPIPE; -ENAMETOOLONG when NAME
 * is over 256 characters). -ENOENT: no such pipe; -EBUSY: every instance
 * stayed busy for the few seconds waited; -EACCES: the pipe's security
 * refuses us; and the Windows codes PIPEFILE_EIDENTITY and PIPEFILE_EREMOTE
 * (a remote pipe always needs pipefile_connect_as with a named server). */
int pipefile_connect(const char *sock_path, int *fd);

/* The trust rule, with nothing but numbers in it. Returns 1 when a server
 * running as server_uid may be sent requests, else 0. With expect_uid >= 0
 * only that uid is trusted. With PIPEFILE_SERVER_UID_DEFAULT: root, the
 * owner of the socket's directory (a daemon with its own user in its own
 * directory, /run/pipefiled) or the client itself (a user's own daemon).
 * Why: in a directory others can create in (a sticky /tmp/x), another
 * user can bind the name while the daemon is down; such a socket is served
 * by a uid that is none of these. (Linux's rule; Windows' is
 * pipefile_connect_as's.) */
int pipefile_server_trusted(pipefile_uid_t server_uid, pipefile_uid_t dir_owner,
                            pipefile_uid_t self, int64_t expect_uid);

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
 * this with the default rule.
 * Windows: only PIPEFILE_SERVER_UID_DEFAULT is taken (any uid: -ENOTSUP,
 * nothing is opened), meaning Windows' default rule (pipefile_connect_as
 * with no server named); *server_uid stays (pipefile_uid_t)-1. */
int pipefile_connect_server(const char *sock_path, int64_t expect_uid, int *fd,
                            pipefile_uid_t *server_uid);

/* The portable form of pipefile_connect_server, naming the server in the
 * platform's own terms. server_user is NULL or "" for the default rule, else
 * the one server to trust:
 *   Linux:   a uid in decimal (below (uid_t)-1), or a user name looked
 *            up with getpwnam_r (a string of digits is always a uid);
 *            the rules are those of pipefile_connect_server.
 *   Windows: an account name (NAME or DOMAIN\NAME, LookupAccountNameW) or a
 *            SID string (S-1-5-..., ConvertStringSidToSidW). Who serves a
 *            local pipe is checked twice: the user SID of the process
 *            Windows names as its server (GetNamedPipeServerProcessId ->
 *            OpenProcess -> OpenProcessToken; not when that process began
 *            after the connect started: its pid was reused) and the owner
 *            SID of the pipe object's security descriptor, which only its
 *            creator could set (a non-administrator only to its own SID).
 *            Each that can be read must pass; if neither can:
 *            PIPEFILE_EIDENTITY (fail closed). The default rule trusts
 *            LocalSystem (S-1-5-18), NT SERVICE\pipefiled
 *            (S-1-5-80-756166237-3088793109-59807773-1750720689-3947911101)
 *            and the client's own user; for the pipe's owner also
 *            Administrators (S-1-5-32-544). With server_user given, both
 *            must be that account, except that the owner may also be
 *            Administrators.
 *            A remote pipe (\\SERVER\pipe\NAME) names a process on
 *            another machine, whose account cannot be read from here: it is
 *            refused (PIPEFILE_EREMOTE) unless server_user is given, and
 *            then server_user is taken as the caller's word that it trusts
 *            whoever serves that pipe on SERVER (SMB authenticated the
 *            machine, not the account); it is not compared with anything.
 * server (when not NULL, server_size bytes, PIPEFILE_SERVER_TEXT_MAX is
 * enough) receives who serves the connection as soon as it is known, for
 * messages: "uid 1000", or "S-1-5-18 (NT AUTHORITY\SYSTEM)"; "" if unknown.
 * Returns as pipefile_connect_server, and -EINVAL (-ERANGE: a uid too big)
 * when server_user does not name a server, e.g. no such user (nothing is
 * opened then). */
int pipefile_connect_as(const char *sock_path, const char *server_user, int *fd,
                        char *server, size_t server_size);

/* Check server_user as pipefile_connect_as would take it (on Windows this
 * looks the account up), before anything is opened: returns 0 and writes
 * its canonical text to canon ("uid 1000"; "S-1-5-21-... (HOST\user)"),
 * or -EINVAL (-ERANGE: a uid too big) and writes "". canon may be NULL. */
int pipefile_server_user_check(const char *server_user, char *canon,
                               size_t canon_size);

/* Close a connection from pipefile_connect*; fd < 0 is ignored. */
void pipefile_close(int fd);

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
 * the stack. A non-blocking out_fd is waited on with poll() (Linux).
 * Never reads past the body, so pipelined responses stay intact.
 * Sets res->body_done and res->write_errno (cleared on entry).
 * Returns 0 when the whole body arrived and was written; -EPIPE when the
 * connection ended before body_len bytes (a short body: the server could
 * not deliver the whole file); PIPEFILE_EWRITE when writing to out_fd
 * failed (res->write_errno says why); or -errno from recv(). */
int pipefile_read_body(int fd, int out_fd, struct pipefile_result *res);

/* Called by pipefile_read_body_cb after each piece of a body has been
 * written to out_fd (res->body_done of res->body_len bytes so far). Return
 * 0 to go on, or a negative code to stop: the read returns that code and
 * the connection's position is lost (close it). */
typedef int (*pipefile_progress_fn)(void *arg,
                                    const struct pipefile_result *res);

/* pipefile_read_body, calling progress(arg, res) (when not NULL) after each
 * piece written, at most every PIPEFILE_BUF_SIZE bytes: for a progress
 * meter, or to act on the output as it grows. Returns as
 * pipefile_read_body, or the callback's negative code. */
int pipefile_read_body_cb(int fd, int out_fd, struct pipefile_result *res,
                          pipefile_progress_fn progress, void *arg);

/* Read the response to a GET that was sent with pipefile_send_request
 * (with this offset and length), not its body: for pipelining, where
 * several requests are sent before the first answer is read, and answers
 * come back in the order of the requests. As pipefile_read_response, and
 * -EPROTO when an OK response's sizes do not fit the request (body_len is
 * not min(length or all, file_size - offset)). After 0 with res->status ==
 * PFP_OK, read the body (pipefile_read_body*) before the next response;
 * after a refusal there is no body. */
int pipefile_read_get_response(int fd, uint64_t offset, uint64_t length,
                               struct pipefile_result *res);

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
 * PIPEFILE_EUNTRUSTED, and the Windows-only codes)
 * get the library's meaning; others get strerror(-err), or on Windows a
 * text for the errno values transport_win.c maps Win32 errors to, since the
 * C runtime knows none above 42 (ECONNRESET, EPROTO, ...). Never NULL. */
const char *pipefile_strerror(int err);

#endif
