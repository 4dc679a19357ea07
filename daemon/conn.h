/* conn.h - one client connection on a worker: reading requests, answering
 * them in order, timeouts, and the access-log line for each request.
 *
 * A connection holds no buffer while idle: request bytes and the response
 * header live in a conn_buf taken from the worker's spare list when bytes
 * arrive and returned when the connection is idle again. While a response
 * is being sent the connection does not read, so a client that pipelines
 * faster than it reads is held back by its own socket (back-pressure). */
#ifndef PIPEFILED_CONN_H
#define PIPEFILED_CONN_H

#include <stdint.h>

#include "worker.h"

/* Start serving descriptor fd on worker w. Closes fd on failure. */
void conn_start(struct worker *w, int fd, uint64_t conn_id);

/* Shutdown (the worker's stopping flag is set): the response in flight and
 * the requests already received are answered, a partial request is logged
 * as abandoned, and then c closes. Nothing more is read. */
void conn_drain(struct conn *c);

/* Close c at once (shutdown grace period over). */
void conn_abort(struct conn *c);

/* The connection after c in its worker's list. */
struct conn *conn_next(struct conn *c);

/* Free the worker's spare connection buffers (at worker exit). */
void conn_free_spares(struct worker *w);

/* Reserve a place for a new connection against max; returns 1 if granted.
 * Every grant is released by the connection's close, or by
 * conn_unreserve() when the hand-off fails. */
int conn_reserve(unsigned max);
void conn_unreserve(void);

#endif
