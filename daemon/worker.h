/* worker.h - a worker thread with its own uv loop; owns its connections
 * from hand-off until they close.
 *
 * The acceptor hands a connected descriptor to a worker through a bounded,
 * locked queue and a uv_async wake-up; after that the connection never
 * changes thread. Config changes and stop requests arrive the same way. */
#ifndef PIPEFILED_WORKER_H
#define PIPEFILED_WORKER_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "identity.h"
#include "live.h"
#include "serve.h"

#define WORKER_QUEUE_MAX 1024 /* connections handed over, not yet taken */
#define WORKER_SPARE_BUFS 64  /* idle connection buffers kept for reuse */

struct conn;
struct conn_buf;

struct worker_handoff {
  int fd;
  uint64_t conn_id;
  struct identity peer; /* read by the acceptor; counted in connlimit.h */
};

struct worker {
  unsigned id; /* 1..workers, as in the access log */
  uv_thread_t thread;
  uv_loop_t loop;
  uv_async_t wake;        /* new connections, config, stop */
  uv_timer_t stop_timer;  /* shutdown grace period */
  struct live *live;      /* config in force on this thread */
  struct conn *conns;     /* every open connection (doubly linked) */
  atomic_uint nconns;     /* read by the acceptor to balance load */
  struct conn_buf *spare; /* free list of connection buffers */
  unsigned nspare;
  struct serve_scratch scratch;
  int stopping;

  /* Shared with other threads, under lock. */
  uv_mutex_t lock;
  struct worker_handoff queue[WORKER_QUEUE_MAX];
  unsigned qhead, qlen;
  struct live *next_live; /* a config to switch to, or NULL */
  int stop_requested;
  unsigned stop_timeout_ms;
};

/* Create and start worker id with config l (a reference is taken).
 * Returns 0 or -errno. */
int worker_start(struct worker **out, unsigned id, struct live *l);

/* Hand a connected descriptor, whose peer is *peer and whose place in the
 * connection limits is taken, to the worker (any thread). From then on the
 * worker closes fd and releases the place. Returns 0, or -EAGAIN when its
 * queue is full or it is stopping (the caller keeps both). */
int worker_hand(struct worker *w, int fd, uint64_t conn_id,
                const struct identity *peer);

/* Switch the worker to config l for new requests (a reference is taken). */
void worker_set_live(struct worker *w, struct live *l);

/* Begin a graceful stop: idle connections close now, responses in flight
 * may finish within timeout_ms, then everything closes. */
void worker_stop(struct worker *w, unsigned timeout_ms);

/* Called by conn.c on the worker thread when one of its connections is
 * gone, so a stopping worker can end once the last one is. */
void worker_conn_closed(struct worker *w);

/* Wait for the thread to end and free the worker. */
void worker_join(struct worker *w);

#endif
