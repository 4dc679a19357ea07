/* worker.c - worker threads, each with its own uv loop; see worker.h. */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "connlimit.h"
#include "identity.h"
#include "log.h"

static void maybe_exit(struct worker *w) {
  if (!w->stopping || w->conns != NULL)
    return;
  if (!uv_is_closing((uv_handle_t *)&w->wake)) {
    uv_close((uv_handle_t *)&w->wake, NULL);
    uv_close((uv_handle_t *)&w->stop_timer, NULL);
  }
}

void worker_conn_closed(struct worker *w) { maybe_exit(w); }

static void on_stop_timer(uv_timer_t *t) {
  struct worker *w = t->data;
  struct conn *c = w->conns;
  if (c)
    log_warn("worker %u: shutdown timeout; closing %u connections", w->id,
             atomic_load(&w->nconns));
  while (c) {
    struct conn *next = conn_next(c);
    conn_abort(c);
    c = next;
  }
}

static void on_wake(uv_async_t *a) {
  struct worker *w = a->data;
  struct worker_handoff batch[WORKER_QUEUE_MAX];
  struct live *next_live;
  unsigned n, stop, timeout;

  uv_mutex_lock(&w->lock);
  n = w->qlen;
  for (unsigned i = 0; i < n; i++)
    batch[i] = w->queue[(w->qhead + i) % WORKER_QUEUE_MAX];
  w->qhead = (w->qhead + n) % WORKER_QUEUE_MAX;
  w->qlen = 0;
  next_live = w->next_live;
  w->next_live = NULL;
  stop = w->stop_requested;
  timeout = w->stop_timeout_ms;
  uv_mutex_unlock(&w->lock);

  if (next_live) {
    live_unref(w->live);
    w->live = next_live;
  }
  for (unsigned i = 0; i < n; i++) {
    if (w->stopping) {
      close(batch[i].fd);
      connlimit_release(batch[i].peer.uid);
    } else {
      conn_start(w, batch[i].fd, batch[i].conn_id, &batch[i].peer);
    }
  }
  if (stop && !w->stopping) {
    w->stopping = 1;
    struct conn *c = w->conns;
    while (c) {
      struct conn *next = conn_next(c);
      conn_drain(c);
      c = next;
    }
    uv_timer_start(&w->stop_timer, on_stop_timer, timeout, 0);
    maybe_exit(w);
  }
}

static void run(void *arg) {
  struct worker *w = arg;
  char name[16];

  snprintf(name, sizeof(name), "pf-worker-%u", w->id);
  pthread_setname_np(pthread_self(), name); /* for top -H and gdb */
  if (identity_thread_init() != 0) {
    /* The start-up probe did the same; failing now means serving with
     * more privilege than a client may borrow. */
    log_error("worker %u: cannot drop capabilities; aborting", w->id);
    abort();
  }
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

int worker_start(struct worker **out, unsigned id, struct live *l) {
  struct worker *w;
  int rc;

  *out = NULL;
  w = calloc(1, sizeof(*w));
  if (w == NULL)
    return -ENOMEM;
  w->id = id;
  rc = uv_loop_init(&w->loop);
  if (rc != 0)
    goto fail_free;
  uv_async_init(&w->loop, &w->wake, on_wake);
  uv_timer_init(&w->loop, &w->stop_timer);
  w->wake.data = w;
  w->stop_timer.data = w;
  uv_mutex_init(&w->lock);
  w->live = live_ref(l);
  /* The thread starts with every signal blocked (it inherits the mask):
   * signals belong to the main loop. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = uv_thread_create(&w->thread, run, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0)
    goto fail_loop;
  *out = w;
  return 0;
fail_loop:
  live_unref(w->live);
  uv_mutex_destroy(&w->lock);
  uv_close((uv_handle_t *)&w->wake, NULL);
  uv_close((uv_handle_t *)&w->stop_timer, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
fail_free:
  free(w);
  return rc;
}

int worker_hand(struct worker *w, int fd, uint64_t conn_id,
                const struct identity *peer) {
  int rc = 0;
  uv_mutex_lock(&w->lock);
  if (w->stop_requested || w->qlen == WORKER_QUEUE_MAX) {
    rc = -EAGAIN;
  } else {
    struct worker_handoff *h =
        &w->queue[(w->qhead + w->qlen) % WORKER_QUEUE_MAX];
    h->fd = fd;
    h->conn_id = conn_id;
    h->peer = *peer;
    w->qlen++;
  }
  uv_mutex_unlock(&w->lock);
  if (rc == 0)
    uv_async_send(&w->wake);
  return rc;
}

void worker_set_live(struct worker *w, struct live *l) {
  struct live *old;
  uv_mutex_lock(&w->lock);
  old = w->next_live;
  w->next_live = live_ref(l);
  uv_mutex_unlock(&w->lock);
  live_unref(old);
  uv_async_send(&w->wake);
}

void worker_stop(struct worker *w, unsigned timeout_ms) {
  uv_mutex_lock(&w->lock);
  w->stop_requested = 1;
  w->stop_timeout_ms = timeout_ms;
  uv_mutex_unlock(&w->lock);
  uv_async_send(&w->wake);
}

void worker_join(struct worker *w) {
  if (w == NULL)
    return;
  uv_thread_join(&w->thread);
  uv_loop_close(&w->loop);
  live_unref(w->live);
  live_unref(w->next_live);
  conn_free_spares(w);
  uv_mutex_destroy(&w->lock);
  free(w);
}
