/* worker.h - a worker thread with its own uv loop; owns its connections
 * from hand-off until they close, their list, their counts, their buffer
 * pool and the ready list that takes turns among them.
 *
 * The acceptor hands a connected handle to a worker through a bounded,
 * locked queue and a uv_async wake-up; after that the connection never
 * changes thread. Config changes and stop requests arrive the same way.
 * Each connection runs as a conn.h state machine with the worker as its
 * host; the worker tells whoever counted the connection (the listener's
 * limits) when it is gone, through the callback given at start.
 *
 * A worker publishes when it entered a call that may wait on a file system
 * (the open, the fstat, a read or sendfile of a body) and on what path, so
 * that a file system that stops answering (FUSE, NFS) holds up only that
 * worker's connections: the acceptor skips a worker stuck for over
 * WORKER_STUCK_MS (worker_stuck), a watch says so once per stall
 * (worker_watch), and shutdown leaves such a worker behind
 * (worker_join_within) instead of waiting for it forever. */
#ifndef PIPEFILED_WORKER_H
#define PIPEFILED_WORKER_H

#include <stdint.h>
#include <uv.h>

#include "conn.h" /* enum conn_proto */

struct identity;
struct live;
struct worker;

#define WORKER_QUEUE_MAX 1024 /* connections handed over, not yet taken */
#define WORKER_SPARE_BUFS 64  /* idle connection buffers kept for reuse */

/* A connection handed to a worker is gone (closed, or never started): called
 * on the worker's thread, once per worker_hand() that returned 0, with the
 * user key its place is counted under. */
typedef void (*worker_gone_cb)(void *ctx, uint32_t key);

/* A connection's counted place moves from user key from to to (conn.h's
 * conn_host.rekey), on the worker's thread. Returns 0 or a UV_E* code. */
typedef int (*worker_rekey_cb)(void *ctx, uint32_t from, uint32_t to);

/* Create and start worker id with config l (a reference is taken); gone
 * and rekey (with ctx) are told of every connection that ends or changes
 * user. Returns 0 or a UV_E* code. */
int worker_start(struct worker **out, unsigned id, struct live *l,
                 worker_gone_cb gone, worker_rekey_cb rekey, void *ctx);

/* Hand a connected handle, whose peer is *peer and which speaks proto, to
 * the worker (any thread). From then on the worker closes fd and reports it
 * gone. Returns 0, or UV_EAGAIN when its queue is full or it is stopping (the
 * caller keeps fd). */
int worker_hand(struct worker *w, uv_os_fd_t fd, uint64_t conn_id,
                const struct identity *peer, enum conn_proto proto);

/* Connections the worker has open or has been handed and not yet taken
 * (any thread; for balancing). */
unsigned worker_load(const struct worker *w);

/* Of those, the connections whose peers are costly to switch to
 * (identity_costly; any thread; for balancing). */
unsigned worker_costly(const struct worker *w);

/* Switch the worker to config l for new requests (a reference is taken). */
void worker_set_live(struct worker *w, struct live *l);

/* Begin a graceful stop: idle connections close now, responses in flight
 * may finish within timeout_ms, then everything closes. */
void worker_stop(struct worker *w, unsigned timeout_ms);

#define WORKER_STUCK_MS                                                        \
  1000 /* in one file-system call: gets no new                                 \
          connections */

/* Monotonic ms, the clock worker_stuck and worker_watch take. */
uint64_t worker_now_ms(void);

/* Whether w has been inside one file-system call for WORKER_STUCK_MS or
 * more at now_ms (any thread; one atomic load). */
int worker_stuck(const struct worker *w, uint64_t now_ms);

/* Log, once per stall, that w is stuck and in what call of which path
 * (the acceptor's loop runs it every few hundred ms). Any thread. */
void worker_watch(struct worker *w, uint64_t now_ms);

/* Wait at most timeout_ms (after worker_stop) for the thread to end, and
 * free the worker. A worker still running then (stuck in a call that does
 * not return) is given up: the request it is stuck in is logged on the
 * error log and as ABANDONED on the access log, the thread is left to park
 * for good if the call ever returns (it touches nothing again), and w is
 * not freed. Returns 0 (joined and freed) or UV_ETIMEDOUT (given up).
 * Accepts NULL. */
int worker_join_within(struct worker *w, unsigned timeout_ms);

#endif
