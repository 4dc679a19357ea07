/* stream_os.h (Windows) - the platform fields of struct stream, included by
 * stream.h only: a libuv pipe opened on the worker's own loop (native IOCP)
 * and the state of the write or file send in flight. */
#ifndef PIPEFILED_STREAM_OS_H
#define PIPEFILED_STREAM_OS_H

#include <stdint.h>
#include <uv.h>

#define STREAM_PRIVATE_FIELDS                                                  \
  uv_pipe_t pipe;                                                              \
  uv_os_fd_t handle; /* the connected pipe instance */                         \
  int closing;                                                                 \
  stream_alloc_cb alloc_cb;                                                    \
  stream_read_cb read_cb;                                                      \
  stream_write_cb write_cb;                                                    \
  stream_send_cb send_cb;                                                      \
  stream_close_cb close_cb;                                                    \
  uint64_t last_sent_ms;

#endif
