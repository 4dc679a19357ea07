/* endpoint_os.h (Windows) - the platform fields of struct endpoint, included
 * by endpoint.h only: the pipe instances endpoint_win.c keeps waiting for
 * clients, and the thread that waits on their events. */
#ifndef PIPEFILED_ENDPOINT_OS_H
#define PIPEFILED_ENDPOINT_OS_H

#include <stdint.h>
#include <uv.h>

/* The longest pipe path in bytes: "\\.\pipe\" and 256 characters (of
 * ASCII; a name with other characters meets the byte limit first). */
#define ENDPOINT_PATH_MAX 265
#define ENDPOINT_NAME_MAX 256 /* UTF-16 units after "\\.\pipe\" */

/* Instances kept waiting in ConnectNamedPipe, so that a burst of clients
 * never finds the server "busy" (ERROR_PIPE_BUSY) while one is handed on. */
#define ENDPOINT_PENDING 8

/* Connected handles waiting for the loop (the waiter thread stops taking
 * connections while it is full: clients then wait in WaitNamedPipe, as in
 * a listen backlog). */
#define ENDPOINT_QUEUE_MAX 64
#define ENDPOINT_ACCEPT_BATCH 64   /* handed on per loop wake-up */
#define ENDPOINT_RETRY_MS 1000     /* instances could not be made: retry */
#define ENDPOINT_PIPE_BUFFER 65536 /* each instance's in and out buffers */

struct endpoint_win; /* endpoint_win.c's state, allocated while open */

#define ENDPOINT_PRIVATE_FIELDS                                                \
  struct endpoint_win *win; /* NULL while closed */                            \
  endpoint_accept_cb accept_cb;

#endif
