/* endpoint_os.h (Linux) - the platform fields of struct endpoint, included
 * by endpoint.h only; only endpoint_linux.c reads them.
 *
 * The build puts daemon/linux/ on the include path (daemon/win/ on Windows,
 * with its own endpoint_os.h), so endpoint.h names one header and has no
 * platform conditional. */
#ifndef PIPEFILED_ENDPOINT_OS_H
#define PIPEFILED_ENDPOINT_OS_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/* The longest socket path: sizeof(sun_path) less the NUL on Linux. */
#define ENDPOINT_PATH_MAX 107

#define ENDPOINT_ACCEPT_BATCH 64     /* accepts per wake-up, for fairness */
#define ENDPOINT_EMFILE_PAUSE_MS 100 /* out of descriptors: retry after */
#define ENDPOINT_LISTEN_FDS_MAX 64   /* sockets a service manager may pass */

#define ENDPOINT_PRIVATE_FIELDS                                                \
  int fd;    /* listening, non-blocking; valid while open */                   \
  int open;  /* fd is ours to close */                                         \
  int dirfd; /* the socket's directory (O_PATH, checked by fsguard.h);         \
                valid while path[0] != '\0' */                                 \
  char name[ENDPOINT_PATH_MAX + 1]; /* last component, relative to dirfd */    \
  int bound;     /* we created the file below: ours to remove */               \
  int inherited; /* passed by the service manager: never removed */            \
  dev_t dev;     /* identity of that file, so we only ever remove our own */   \
  ino_t ino;                                                                   \
  int accepting;    /* poll and pause are initialised */                       \
  uv_poll_t poll;   /* readability of fd: clients waiting */                   \
  uv_timer_t pause; /* out of descriptors: accept again later */               \
  endpoint_accept_cb accept_cb;                                                \
  int64_t last_emfile_log; /* loop ms, to rate-limit that message */

#endif
