/* listener.c - accept, count against the limits, refuse with EBUSY, hand
 * off; see listener.h. */
#include "listener.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "accesslog.h"
#include "connlimit.h"
#include "identity.h"
#include "log.h"
#include "serve.h"
#include "stream.h"

static void on_accept(uv_poll_t *h, int status, int events);

/* Tell the client it is over a limit (why names which; NULL = the default
 * message), log it, and close. The socket is fresh, so the small response
 * always fits its buffer: no waiting. */
static void refuse_busy(int fd, uint64_t id, const struct identity *peer,
                        const char *why) {
  uint8_t resp[PFP_RESP_MAX];
  int64_t t_ms = accesslog_now_ms();
  uint64_t t0 = uv_hrtime();

  size_t len = serve_status_only(resp, PFP_EBUSY, why);
  (void)stream_send(fd, resp, len);
  close(fd);
  struct access_record r = {
      .time_ms = t_ms,
      .worker = 0,
      .conn = id,
      .pid = peer->pid,
      .uid = peer->uid,
      .gid = peer->gid,
      .proto = "pfp1",
      .op = "-",
      .status = PFP_EBUSY,
      .duration_us = (uv_hrtime() - t0) / 1000,
  };
  /* The acceptor cannot wait: a record that finds no room is counted. */
  if (accesslog_write(&r) != 0)
    accesslog_lost(1);
}

/* Take a place for a connection of peer within the limits in force. Returns
 * 0, or -errno with the reason for the client in why. */
static int take_place(struct listener *l, const struct identity *peer,
                      char *why, size_t len) {
  unsigned max = atomic_load(&l->max_conns);
  unsigned per_user = atomic_load(&l->max_per_user);
  int rc = connlimit_acquire(peer->uid, max, per_user);

  if (rc == -EBUSY)
    snprintf(why, len, "connection limit (%u) reached", max);
  else if (rc == -EUSERS)
    snprintf(why, len, "per-user connection limit (%u) reached", per_user);
  else if (rc != 0)
    snprintf(why, len, "too many users connected");
  return rc;
}

static struct worker *pick_worker(struct listener *l) {
  struct worker *best = NULL;
  unsigned best_n = 0;
  for (unsigned i = 0; i < l->nworkers; i++) {
    struct worker *w = l->workers[(l->rr + i) % l->nworkers];
    unsigned n = atomic_load(&w->nconns);
    if (best == NULL || n < best_n) {
      best = w;
      best_n = n;
    }
  }
  l->rr = (l->rr + 1) % l->nworkers;
  return best;
}

static void on_resume(uv_timer_t *t) {
  struct listener *l = t->data;
  uv_poll_start(&l->poll, UV_READABLE, on_accept);
}

static void on_accept(uv_poll_t *h, int status, int events) {
  struct listener *l = h->data;
  (void)events;

  if (status < 0) {
    log_error("listening socket: %s", uv_strerror(status));
    return;
  }
  for (int i = 0; i < LISTENER_ACCEPT_BATCH; i++) {
    int fd = endpoint_accept(l->ep);
    if (fd == -EAGAIN)
      return;
    if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
      /* Out of descriptors or memory: pending clients wait in the backlog
       * rather than the loop spinning on a ready socket it cannot take. */
      int64_t now = (int64_t)uv_now(h->loop);
      if (now - l->last_emfile_log > 10000) {
        log_error("accept: %s; pausing accepts (max_connections is above "
                  "what the system allows?)",
                  strerror(-fd));
        l->last_emfile_log = now;
      }
      uv_poll_stop(&l->poll);
      uv_timer_start(&l->pause, on_resume, LISTENER_EMFILE_PAUSE_MS, 0);
      return;
    }
    if (fd < 0)
      continue; /* ECONNABORTED and friends: that client is gone */
    uint64_t id = ++l->next_conn_id;
    struct identity peer;
    char why[80];
    int rc = identity_peer(fd, &peer);
    if (rc != 0) {
      /* No kernel-given identity, no service (and no uid to count). */
      log_warn("conn %llu: cannot read peer credentials: %s",
               (unsigned long long)id, strerror(-rc));
      close(fd);
      continue;
    }
    if (take_place(l, &peer, why, sizeof(why)) != 0) {
      refuse_busy(fd, id, &peer, why);
      continue;
    }
    if (worker_hand(pick_worker(l), fd, id, &peer) != 0) {
      connlimit_release(peer.uid);
      refuse_busy(fd, id, &peer, NULL);
    }
  }
}

int listener_start(struct listener *l, uv_loop_t *loop, struct endpoint *ep,
                   struct worker **workers, unsigned nworkers,
                   unsigned max_conns, unsigned max_per_user) {
  int rc;

  memset(l, 0, sizeof(*l));
  l->ep = ep;
  l->workers = workers;
  l->nworkers = nworkers;
  l->last_emfile_log = -100000;
  atomic_init(&l->max_conns, max_conns);
  atomic_init(&l->max_per_user, max_per_user);
  rc = uv_poll_init(loop, &l->poll, ep->fd);
  if (rc != 0)
    return rc;
  uv_timer_init(loop, &l->pause);
  l->poll.data = l;
  l->pause.data = l;
  return uv_poll_start(&l->poll, UV_READABLE, on_accept);
}

void listener_set_max(struct listener *l, unsigned max_conns,
                      unsigned max_per_user) {
  atomic_store(&l->max_conns, max_conns);
  atomic_store(&l->max_per_user, max_per_user);
}

void listener_stop(struct listener *l) {
  uv_close((uv_handle_t *)&l->poll, NULL);
  uv_close((uv_handle_t *)&l->pause, NULL);
  endpoint_close(l->ep);
}
