/* conn.h - one client connection on a worker: reading requests, answering
 * them in order, timeouts, and the access-log line for each request.
 *
 * A connection holds no buffer while idle: request bytes and the response
 * header live in a conn_buf taken from the worker's spare list when bytes
 * arrive and returned when the connection is idle again. While a response
 * is being sent the connection does not read, so a client that pipelines
 * faster than it reads is held back by its own socket (back-pressure).
 *
 * The access log is an audit record: a request is served only once room
 * for its line is reserved. While the log has no room the connection waits
 * (not reading, retrying every few ms) for at most send_timeout, then
 * answers EBUSY and closes. Every request read gets exactly one line; those
 * read but never answered (the client went away, a send failed or timed
 * out) are logged as abandoned when the connection ends. */
#ifndef PIPEFILED_CONN_H
#define PIPEFILED_CONN_H

#include <stdint.h>

#include "worker.h"

/* Start serving descriptor fd, whose peer is *peer, on worker w. The
 * connection's place in the limits (connlimit.h) is released when it closes,
 * or here on failure (fd is then closed). */
void conn_start(struct worker *w, int fd, uint64_t conn_id,
                const struct identity *peer);

/* Shutdown (the worker's stopping flag is set): the response in flight and
 * the requests already received are answered, a partial request is logged
 * as abandoned, and then c closes. Nothing more is read. */
void conn_drain(struct conn *c);

/* Close c at once (shutdown grace period over): the response in flight and
 * the requests not answered are logged (abandoned) if the access log has
 * room now, counted as lost if not. */
void conn_abort(struct conn *c);

/* The connection after c in its worker's list. */
struct conn *conn_next(struct conn *c);

/* Free the worker's spare connection buffers (at worker exit). */
void conn_free_spares(struct worker *w);

#endif
