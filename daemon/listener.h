/* listener.h - the accept loop on the main uv loop: the connection limits
 * (global and per user, counted in connlimit.h), EBUSY refusals, and hand-off
 * to the least busy worker.
 *
 * It takes an endpoint that is already listening, whoever made it (bound
 * here, or inherited from a service manager). */
#ifndef PIPEFILED_LISTENER_H
#define PIPEFILED_LISTENER_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "endpoint.h"
#include "worker.h"

#define LISTENER_ACCEPT_BATCH 64 /* accepts per wake-up, for fairness */
#define LISTENER_EMFILE_PAUSE_MS 100

struct listener {
  uv_poll_t poll;
  uv_timer_t pause; /* out of descriptors: retry later */
  struct endpoint *ep;
  struct worker **workers;
  unsigned nworkers;
  atomic_uint max_conns;    /* changed by reload */
  atomic_uint max_per_user; /* 0 = no per-user limit; changed by reload */
  uint64_t next_conn_id;
  unsigned rr; /* round-robin start among equally busy workers */
  int64_t last_emfile_log;
};

/* Start accepting on ep (listening, non-blocking) on loop, with at most
 * max_conns connections open and max_per_user of one uid (0 = no limit).
 * Returns 0 or a libuv error. */
int listener_start(struct listener *l, uv_loop_t *loop, struct endpoint *ep,
                   struct worker **workers, unsigned nworkers,
                   unsigned max_conns, unsigned max_per_user);

/* New limits for connections accepted from now on (reload); connections
 * already open stay. */
void listener_set_max(struct listener *l, unsigned max_conns,
                      unsigned max_per_user);

/* Stop accepting and close the endpoint (its socket file is removed). */
void listener_stop(struct listener *l);

#endif
