/* stream_os.h (Windows) - the platform fields of struct stream, included by
 * stream.h only. The libuv pipe (opened on the worker's own loop, native
 * IOCP) and the operation in flight live in a block of stream_win.c's own
 * (struct stream_io), allocated apart: libuv may still hold it after a
 * failed stream_init, when the caller frees the struct stream at once. */
#ifndef PIPEFILED_STREAM_OS_H
#define PIPEFILED_STREAM_OS_H

#include <stdint.h>
#include <uv.h>

#define STREAM_CHUNK 65536 /* bytes of a file read and written at a time */

struct stream_io;

#define STREAM_PRIVATE_FIELDS                                                  \
  struct stream_io *io; /* the pipe and the operation in flight */             \
  uv_os_fd_t handle;    /* the connected pipe instance */                      \
  int reading;          /* the caller wants reads (stream_read_start) */       \
  int closing;                                                                 \
  stream_alloc_cb alloc_cb;                                                    \
  stream_read_cb read_cb;                                                      \
  uint64_t last_sent_ms;

#endif
