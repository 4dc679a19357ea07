/* listener.c - count each client against the limits, refuse with EBUSY,
 * hand the others to a worker; see listener.h. */
#include "listener.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connlimit.h"
#include "identity.h"
#include "log.h"
#include "stream.h"
#include "worker.h"

/* ---- the host of refusals -------------------------------------------- */

/* Refusals are rare and short-lived: no pool. */
static void *buf_get(struct conn_host *h) {
  (void)h;
  return malloc(CONN_BUF_SIZE);
}

static void buf_put(struct conn_host *h, void *buf) {
  (void)h;
  free(buf);
}

/* A refusal answers one status and closes: it never has a second turn. */
static void yield(struct conn_host *h, struct conn *c) {
  (void)h;
  conn_resume(c);
}

/* A refused client holds no place in the limits: nothing to give back. */
static void closed(struct conn_host *h, struct conn *c, uint32_t key) {
  (void)h;
  (void)c;
  (void)key;
}

/* ---- limits and hand-off --------------------------------------------- */

/* Take a place for a connection of peer within the limits in force.
 * Returns 0, or a UV_E* code with the reason for the client in why. */
static int take_place(struct listener *l, const struct identity *peer,
                      char *why, size_t len) {
  unsigned max = atomic_load(&l->max_conns);
  unsigned per_user = atomic_load(&l->max_per_user);
  uint32_t key = identity_user_key(peer);
  int rc;

  /* A peer whose user is not known yet (Windows, before it writes) is held
   * to the total only; its first request moves it to its user, within that
   * user's limit (listener_conn_rekey). */
  if (key == IDENTITY_KEY_UNKNOWN)
    per_user = 0;
  rc = connlimit_acquire(key, max, per_user);

  if (rc == UV_EBUSY)
    snprintf(why, len, "connection limit (%u) reached", max);
  else if (rc == UV_EAGAIN)
    snprintf(why, len, "per-user connection limit (%u) reached", per_user);
  else if (rc != 0)
    snprintf(why, len, "too many users connected");
  return rc;
}

/* How much busier a worker looks to a connection of the other kind: one
 * that serves a costly peer to a cheap one, and the reverse. */
#define LISTENER_COSTLY_WEIGHT 8

/* The least loaded worker, ties taken in turn. The load counts the
 * connections waiting in a worker's hand-off queue (worker_load()): a worker
 * held up by costly requests takes its hand-offs late, and by its open
 * connections alone it would look idle and be picked again and again.
 *
 * Clients whose identity is costly to switch to (identity_costly: thousands
 * of groups cost the kernel milliseconds per switch) are kept apart from the
 * others: a worker serving one looks LISTENER_COSTLY_WEIGHT connections
 * busier to a cheap client, and a worker serving none looks that much busier
 * to a costly one. So a costly client's connections gather on one worker,
 * where they share the credentials it holds, and other users' requests do
 * not wait behind its switches; past that imbalance load wins, and with no
 * costly client about nothing changes. At most half the workers (at least
 * one) take costly clients: once that many serve one, the next goes to the
 * least loaded of them, whatever its load. So however many costly
 * connections a user opens (one with subordinate gids can make itself
 * costly, see docs/security.md), the others keep at least half the workers
 * to themselves.
 *
 * A worker stuck in a file-system call (worker_stuck) is not picked at all:
 * a connection handed to it would wait for as long as that file system
 * does not answer, whatever file it asks for. NULL: every worker is. */
static struct worker *pick_worker(struct listener *l, int costly) {
  struct worker *best = NULL;
  unsigned best_n = 0, marked = 0;
  unsigned cap = l->nworkers / 2 > 0 ? l->nworkers / 2 : 1;
  uint64_t now = worker_now_ms();
  int share_taken = 0;

  if (costly) {
    for (unsigned i = 0; i < l->nworkers; i++)
      marked += worker_costly(l->workers[i]) > 0;
    share_taken = marked >= cap;
  }
  for (;;) {
    for (unsigned i = 0; i < l->nworkers; i++) {
      struct worker *w = l->workers[(l->rr + i) % l->nworkers];
      unsigned n = worker_load(w);
      int serves_costly = worker_costly(w) > 0;
      if (worker_stuck(w, now))
        continue;
      if (share_taken && !serves_costly)
        continue; /* the costly clients' share is taken */
      if (serves_costly != (costly != 0))
        n += LISTENER_COSTLY_WEIGHT;
      if (best == NULL || n < best_n) {
        best = w;
        best_n = n;
      }
    }
    if (best != NULL || !share_taken)
      break;
    share_taken = 0; /* every worker of that share is stuck: any other */
  }
  l->rr = (l->rr + 1) % l->nworkers;
  return best;
}

static void on_client(struct endpoint *ep, uv_os_fd_t fd) {
  struct listener *l = ep->data;
  uint64_t id = ++*l->next_id;
  struct identity peer;
  struct worker *w;
  char why[80];
  int rc = identity_peer(fd, &peer);

  if (rc != 0) {
    /* No kernel-given identity, no service (and no uid to count). */
    log_warn("conn %llu: cannot read peer credentials: %s",
             (unsigned long long)id, uv_strerror(rc));
    stream_discard(fd);
    return;
  }
  if (take_place(l, &peer, why, sizeof(why)) != 0) {
    l->refused++;
    (void)conn_refuse(&l->host, fd, id, &peer, l->proto, why);
    return;
  }
  w = pick_worker(l, identity_costly(&peer));
  if (w == NULL) {
    /* Better a clear refusal now than a connection that waits behind a
     * file system nobody can say will ever answer. */
    connlimit_release(identity_user_key(&peer));
    l->refused++;
    log_warn("conn %llu: every worker is stuck in a file system that does "
             "not answer; refusing",
             (unsigned long long)id);
    (void)conn_refuse(&l->host, fd, id, &peer, l->proto,
                      "every worker is waiting on a file system that does "
                      "not answer; try again later");
    return;
  }
  if (worker_hand(w, fd, id, &peer, l->proto) != 0) {
    connlimit_release(identity_user_key(&peer));
    l->refused++;
    (void)conn_refuse(&l->host, fd, id, &peer, l->proto, NULL);
  }
}

void listener_conn_gone(void *ctx, uint32_t key) {
  (void)ctx;
  connlimit_release(key);
}

int listener_conn_rekey(void *ctx, uint32_t from, uint32_t to) {
  struct listener *l = ctx;

  return connlimit_move(from, to, atomic_load(&l->max_per_user));
}

static void on_watch(uv_timer_t *t) {
  struct listener *l = t->data;
  uint64_t now = worker_now_ms();

  /* Two listeners may share the workers (compat): a stall is still said
   * once, worker_watch remembers it. */
  for (unsigned i = 0; i < l->nworkers; i++)
    worker_watch(l->workers[i], now);
}

int listener_start(struct listener *l, uv_loop_t *loop, struct endpoint *ep,
                   struct live *live, struct worker **workers,
                   unsigned nworkers, unsigned max_conns,
                   unsigned max_per_user) {
  int rc;

  memset(l, 0, sizeof(*l));
  l->host = (struct conn_host){
      .loop = loop,
      .live = live,
      .worker_id = 0,
      .buf_get = buf_get,
      .buf_put = buf_put,
      .yield = yield,
      .closed = closed,
  };
  l->ep = ep;
  l->proto = CONN_PFP1;
  l->next_id = &l->next_conn_id;
  l->workers = workers;
  l->nworkers = nworkers;
  atomic_init(&l->max_conns, max_conns);
  atomic_init(&l->max_per_user, max_per_user);
  ep->data = l;
  rc = endpoint_accept_start(ep, loop, on_client);
  if (rc != 0)
    return rc;
  /* Unreferenced: it never keeps the loop alive; closed by listener_stop. */
  uv_timer_init(loop, &l->watch);
  l->watch.data = l;
  uv_timer_start(&l->watch, on_watch, LISTENER_WATCH_MS, LISTENER_WATCH_MS);
  uv_unref((uv_handle_t *)&l->watch);
  l->watching = 1;
  return 0;
}

void listener_set_proto(struct listener *l, enum conn_proto proto,
                        uint64_t *ids) {
  l->proto = proto;
  l->next_id = ids;
}

void listener_set_max(struct listener *l, unsigned max_conns,
                      unsigned max_per_user) {
  atomic_store(&l->max_conns, max_conns);
  atomic_store(&l->max_per_user, max_per_user);
}

void listener_set_live(struct listener *l, struct live *live) {
  l->host.live = live;
}

void listener_counts(const struct listener *l, uint64_t *accepted,
                     uint64_t *refused) {
  *accepted = l->next_conn_id;
  *refused = l->refused;
}

void listener_stop(struct listener *l) {
  l->host.stopping = 1;
  endpoint_close(l->ep);
  if (l->watching) {
    l->watching = 0;
    uv_close((uv_handle_t *)&l->watch, NULL);
  }
}
