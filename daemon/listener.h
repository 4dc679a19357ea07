/* listener.h - who may connect: the connection limits (global and per
 * user, counted in connlimit.h), connection ids, EBUSY refusals, and the
 * choice of worker.
 *
 * It takes an endpoint that is already listening, whoever made it (bound
 * here, or inherited from a service manager); the endpoint accepts and
 * hands over each client (endpoint.h). A refusal is answered and logged by
 * conn.c like any other answer, on the acceptor's loop, with the listener
 * as its host (worker 0 in the access log). */
#ifndef PIPEFILED_LISTENER_H
#define PIPEFILED_LISTENER_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "conn.h"
#include "endpoint.h"

struct identity;
struct live;
struct worker;

#define LISTENER_WATCH_MS 250 /* how often stuck workers are looked for */

struct listener {
  struct conn_host host; /* of refusals, on the acceptor's loop */
  struct endpoint *ep;
  struct worker **workers;
  unsigned nworkers;
  atomic_uint max_conns;    /* changed by reload */
  atomic_uint max_per_user; /* 0 = no per-user limit; changed by reload */
  uint64_t next_conn_id;    /* also the count of clients accepted (by
                               every listener that shares it) */
  uint64_t refused;         /* clients refused at the door (limits, no room) */
  unsigned rr;              /* round-robin start among equally busy workers */
  enum conn_proto proto;    /* what its clients speak */
  uint64_t *next_id;        /* connection ids, shared by every listener of
                               the daemon (its own next_conn_id by default) */
  uv_timer_t watch;         /* looks for workers stuck in a file system */
  int watching;             /* watch is started, not yet closed */
};

/* Start accepting on ep (listening) on loop, clients speaking PFP/1
 * (listener_set_proto, before the loop runs: another), with at most
 * max_conns
 * connections open and max_per_user of one uid (0 = no limit), handing
 * each to the least busy of workers that is not stuck in a file system
 * (worker_stuck; when all are, the client is refused with EBUSY), and
 * every LISTENER_WATCH_MS have the workers say whether they are stuck
 * (worker_watch, once per stall). live is the config refusals are
 * answered under: borrowed, the caller keeps it (and each one given to
 * listener_set_live) alive until the loop has run after listener_stop.
 * Returns 0 or a UV_E* code. */
int listener_start(struct listener *l, uv_loop_t *loop, struct endpoint *ep,
                   struct live *live, struct worker **workers,
                   unsigned nworkers, unsigned max_conns,
                   unsigned max_per_user);

/* Clients of l speak proto and take their connection ids from *ids (a
 * counter shared with another listener on the same loop, so that ids stay
 * unique in the access log). Call right after listener_start. */
void listener_set_proto(struct listener *l, enum conn_proto proto,
                        uint64_t *ids);

/* New limits for connections accepted from now on (reload); connections
 * already open stay. */
void listener_set_max(struct listener *l, unsigned max_conns,
                      unsigned max_per_user);

/* The config refusals are answered under from now on (reload; borrowed). */
void listener_set_live(struct listener *l, struct live *live);

/* A connection handed to a worker is gone: give back its place in the
 * limits, counted under user key key. A worker_gone_cb (worker.h), any
 * thread; ctx is unused. */
void listener_conn_gone(void *ctx, uint32_t key);

/* A connection's place moves from user key from to to, within the
 * per-user limit in force (connlimit_move). A worker_rekey_cb, any thread;
 * ctx is the listener. */
int listener_conn_rekey(void *ctx, uint32_t from, uint32_t to);

/* Clients accepted and refused so far (for the status line; on the loop's
 * thread). */
void listener_counts(const struct listener *l, uint64_t *accepted,
                     uint64_t *refused);

/* Stop accepting and close the endpoint (its socket file is removed). */
void listener_stop(struct listener *l);

#endif
