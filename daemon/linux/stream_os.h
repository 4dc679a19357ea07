/* stream_os.h (Linux) - the platform fields of struct stream, included by
 * stream.h only; only stream_linux.c reads them.
 *
 * The build puts daemon/linux/ on the include path (daemon/win/ on Windows,
 * with its own stream_os.h), so stream.h names one header and has no
 * platform conditional. Linux waits on readiness: a uv_poll_t on the
 * socket, and non-blocking recv/send/sendfile loops that stop at EAGAIN. */
#ifndef PIPEFILED_STREAM_OS_H
#define PIPEFILED_STREAM_OS_H

#include <stdint.h>
#include <uv.h>

#define STREAM_PRIVATE_FIELDS                                                  \
  uv_poll_t poll; /* readiness of fd, once polled */                           \
  int polled;     /* poll was made (uv_poll_init): made on first wait */       \
  int fd;         /* the connected socket; -1 once closed */                   \
  int events;     /* uv_poll events asked for now */                           \
  int reading;    /* stream_read_start() in force */                           \
  int blocked;    /* the operation in flight waits for writability */          \
  int closing;    /* stream_close() called */                                  \
  int op;         /* the operation in flight (stream_linux.c's enum) */        \
  stream_alloc_cb alloc_cb;                                                    \
  stream_read_cb read_cb;                                                      \
  const char *wbuf; /* write: bytes not yet sent */                            \
  size_t wlen;                                                                 \
  stream_write_cb write_cb;                                                    \
  int file; /* file send: source, next offset, bytes left, sent */             \
  uint64_t foff;                                                               \
  uint64_t fleft;                                                              \
  uint64_t fsent;                                                              \
  stream_send_cb send_cb;                                                      \
  stream_close_cb close_cb;                                                    \
  uint64_t last_sent_ms; /* uv_now when bytes last went out */

#endif
