/* config.h - the daemon's settings: one table of keys drives parsing,
 * defaults, validation and printing (config.c).
 *
 * A config is parsed into a fresh struct, filled with defaults for what is
 * unset and validated as a whole; only then is it swapped in (start-up and
 * SIGHUP alike). Errors read "FILE:LINE: [section] key: reason". */
#ifndef PIPEFILED_CONFIG_H
#define PIPEFILED_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "accesslog.h" /* enum access_format, enum log_full */
#include "endpoint.h"
#include "idlist.h"
#include "log.h"
#include "proto.h"

/* Platform keys: a key of one platform is refused on the other, with a
 * message saying so (config_os.h picks CONFIG_OS and the defaults). */
#define CONFIG_OS_LINUX 1
#define CONFIG_OS_WIN 2
#include "config_os.h"

/* The pipe's security descriptor on Windows: SYSTEM and Administrators
 * full control; Authenticated Users read and write data (FILE_GENERIC_READ
 * | FILE_GENERIC_WRITE without FILE_APPEND_DATA, which on a pipe is
 * FILE_CREATE_PIPE_INSTANCE: whoever holds it can create instances and
 * squat the name). P: no inherited entries. */
#define CONFIG_DEFAULT_SDDL "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;AU)"
#define CONFIG_SDDL_MAX 1024
#define CONFIG_LINE_MAX 198 /* ini_strict.h's: inih's line limit, less '\n' */
#define CONFIG_LIST_MAX IDLIST_MAX /* entries in one user or group list */
#define CONFIG_SOCKET_MAX ENDPOINT_PATH_MAX /* the platform's limit */
#define CONFIG_ID_NONE ((unsigned)-1)       /* socket_gid: not set */
#define CONFIG_PATH_MAX 1024
#define CONFIG_ERR_MAX 2048     /* one error message, root path included */
#define CONFIG_PIPE_NAME_MAX 80 /* [compat] pipe_name, in bytes */
#define EX_CONFIG_CODE 78       /* sysexits.h EX_CONFIG */
#define CONFIG_SEND_BUFFER_MAX (64u << 20) /* [server] send_buffer */

struct config {
  /* [server] */
  char socket[CONFIG_SOCKET_MAX + 1]; /* listening socket path */
  unsigned socket_mode;               /* permission bits of the socket file */
  char socket_group[64];              /* "" = the daemon's own group */
  unsigned socket_gid; /* resolved socket_group, or CONFIG_ID_NONE */
  char pipe_sddl[CONFIG_SDDL_MAX]; /* Windows: the pipe's security */
  int remote_clients;         /* Windows: accept clients on other machines */
  char root[CONFIG_PATH_MAX]; /* served directory */
  unsigned root_line;         /* line root was set on; 0 = default */
  unsigned workers;           /* worker threads; 0 = auto (config_workers) */
  unsigned max_connections;   /* open connections, all workers */
  unsigned max_connections_per_user; /* per client uid; 0 = no limit */
  int strict_modes; /* refuse (1) or warn (0) on unsafe socket/log dirs */
  unsigned request_timeout_ms;  /* first byte to whole request */
  unsigned idle_timeout_ms;     /* no request on an open connection */
  unsigned send_timeout_ms;     /* no progress while sending */
  unsigned shutdown_timeout_ms; /* in-flight grace on SIGTERM */
  unsigned send_buffer; /* Linux: SO_SNDBUF asked for large bodies; 0 = the
                           kernel's default */
  /* [identity] */
  struct idlist allow_users;  /* uids that may be served */
  struct idlist allow_groups; /* client's gid or a supplementary group */
  struct idlist deny_users;   /* uids never served; beats allow */
  struct idlist deny_groups;  /* groups never served; beats allow */
  int serve_root_clients;     /* 1: uid 0 clients are served */
  /* [log] */
  char access_log[CONFIG_PATH_MAX]; /* "stderr", "syslog", "off" or a path */
  enum access_format access_format;
  enum log_full log_full; /* on a failing destination: block or drop */
  char error_log[16];     /* "stderr" or "syslog" */
  enum log_level level;
  /* [compat] */
  char compat_pipe_name[CONFIG_PIPE_NAME_MAX + 1]; /* "" = no compat
                                                      listener */
};

/* Fill every key with its built-in default. */
void config_defaults(struct config *c);

/* The worker threads c asks for: workers, or for "auto" one per CPU this
 * process may run on (uv_available_parallelism: its affinity, a
 * container's or a unit's CPU set), at least CONFIG_AUTO_WORKERS_MIN, so
 * that a worker stuck in a file system that does not answer leaves one to
 * serve the others, and at most 256. */
#define CONFIG_AUTO_WORKERS_MIN 2
unsigned config_workers(const struct config *c);

/* Parse text (as read from a file called name) on top of defaults.
 * Returns 0, or UV_EINVAL with the first error in err ("name:line: [sec] key:
 * reason"). *c is defaults-plus-text either way; use it only on 0. */
int config_parse(struct config *c, const char *name, const char *text,
                 char *err, size_t errlen);

/* Read and parse a file; as config_parse, plus a UV_E* code when unreadable
 * (err says so; UV_EFBIG: over 1 MiB, refused). */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Where the compat listener of pipe name name listens: Linux
 * tmpdir + "/CoreFxPipe_" + name, where .NET's (and mono's)
 * NamedPipeClientStream connects (tmpdir: the daemon's TMPDIR at start,
 * NULL or "" = /tmp; trailing slashes dropped, as Path.GetTempPath's one
 * is); Windows \\.\pipe\name (tmpdir unused). Returns 0, or
 * UV_ENAMETOOLONG when it does not fit out (len bytes) or the endpoint's
 * limit. */
int config_compat_path(const char *name, const char *tmpdir, char *out,
                       size_t len);

/* Print the effective config as a loadable ini file. */
void config_print(const struct config *c, FILE *out);

/* Names of settings that differ between a and b and that only take effect
 * on restart (socket, workers, ...), comma-separated into buf; "" if none. */
void config_restart_keys(const struct config *a, const struct config *b,
                         char *buf, size_t len);

/* Copy the settings that only take effect on restart from running into
 * next, so a reload leaves them as they are. */
void config_keep_restart_keys(const struct config *running,
                              struct config *next);

#endif
