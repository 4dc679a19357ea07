/* endpoint_os.h (Windows) - the platform fields of struct endpoint, included
 * by endpoint.h only: the pipe instances endpoint_win.c keeps waiting for
 * clients, and the thread that waits on their events. */
#ifndef PIPEFILED_ENDPOINT_OS_H
#define PIPEFILED_ENDPOINT_OS_H

#include <stdint.h>
#include <uv.h>

/* The longest pipe name: "\\.\pipe\" and 256 characters. */
#define ENDPOINT_PATH_MAX 265

/* Instances kept waiting in ConnectNamedPipe, so that a burst of clients
 * never finds the server "busy" (ERROR_PIPE_BUSY) while one is handed on. */
#define ENDPOINT_PENDING 8

struct endpoint_win; /* endpoint_win.c's state, allocated while open */

#define ENDPOINT_PRIVATE_FIELDS                                                \
  struct endpoint_win *win; /* NULL while closed */                            \
  endpoint_accept_cb accept_cb;

#endif
