/* worker.c - worker threads, each with its own uv loop and the host of its
 * connections (conn.h): their list, count, buffer pool and ready list; see
 * worker.h. */
#include "worker.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "identity.h"
#include "live.h"
#include "log.h"
#include "serve.h"
#include "stream.h"
#include "thread.h"

/* A worker with nothing to do for this long returns to the daemon's
 * identity; within it, the next request of the same user switches
 * nothing. */
#define WORKER_SETTLE_MS 50

struct worker_handoff {
  uv_os_fd_t fd;
  uint64_t conn_id;
  struct identity peer;  /* read by the acceptor, counted by its limits */
  enum conn_proto proto; /* by the endpoint it came in on */
};

struct worker {
  struct conn_host host; /* what its connections see: loop, config in
                            force (host.live, our reference), stopping */
  unsigned id;           /* 1..workers, as in the access log */
  uv_thread_t thread;
  uv_loop_t loop;
  uv_async_t wake;         /* new connections, config, stop */
  uv_timer_t stop_timer;   /* shutdown grace period */
  uv_prepare_t settle;     /* each loop turn: while the thread holds a
                              client's credentials, (re)arm settle_timer */
  uv_timer_t settle_timer; /* WORKER_SETTLE_MS without a loop turn: back
                              to the daemon's identity (identity_settle) */
  uv_idle_t turns;         /* runs the ready list while it is not empty; an
                              active idle handle also keeps the loop from
                              sleeping in epoll_wait meanwhile */
  struct conn *conns;      /* every open connection (conn_link prev/next) */
  struct conn *ready, *ready_tail; /* yielded, in order (conn_link) */
  atomic_uint nconns;              /* read by the acceptor to balance load */
  atomic_uint costly; /* of those and the queued, peers whose switch is
                         costly (identity_costly): read by the acceptor */
  atomic_uint queued; /* handed over, not yet taken: load too, since a
                         worker busy with costly requests takes its
                         hand-offs late and would look idle meanwhile */
  void *spare;        /* free list of connection buffers */
  unsigned nspare;
  struct serve_scratch scratch;
  worker_gone_cb gone;   /* tell whoever counted a connection it is gone */
  worker_rekey_cb rekey; /* ... or that it is counted under another user */
  void *gone_ctx;

  /* Shared with other threads, under lock. */
  uv_mutex_t lock;
  struct worker_handoff queue[WORKER_QUEUE_MAX];
  unsigned qhead, qlen;
  struct live *next_live; /* a config to switch to, or NULL */
  int stop_requested;
  unsigned stop_timeout_ms;

  /* The file-system call in progress (conn_host.fs_busy), seen from other
   * threads without a lock on the worker's side: it pays two clock reads
   * and an atomic exchange per request. busy_ms is read by the acceptor;
   * the fields under it are written by the worker only while busy_ms is 0
   * and read by another thread only once it has claimed the call (set
   * BUSY_CLAIMED in busy_ms, holding watch_lock): a worker that finds its
   * call claimed takes watch_lock before it goes on, so the fields, and the
   * connection buffer busy_path points into, stay put while read. */
  _Atomic uint64_t busy_ms; /* monotonic ms the call began (| BUSY_CLAIMED);
                               0 = none */
  atomic_int abandoned;     /* shutdown gave up on it: run nothing more */
  uv_mutex_t watch_lock;    /* held by whoever claims a call */
  uv_cond_t park;           /* never signalled: a worker given up waits */
  struct conn *busy_conn;   /* whose request it is */
  const char *busy_what;    /* "open", "read" */
  const char *busy_path;    /* busy_len bytes, the connection's */
  size_t busy_len;
};

#define WORKER_SHOW_PATH 256 /* bytes of an escaped path in a log line */

static struct worker *worker_of(struct conn_host *h) {
  return (struct worker *)((char *)h - offsetof(struct worker, host));
}

/* ---- the host interface of its connections -------------------------- */

static void *buf_get(struct conn_host *h) {
  struct worker *w = worker_of(h);
  void **b = w->spare;

  if (b == NULL)
    return malloc(CONN_BUF_SIZE);
  w->spare = *b;
  w->nspare--;
  return b;
}

static void buf_put(struct conn_host *h, void *buf) {
  struct worker *w = worker_of(h);

  if (buf == NULL)
    return;
  if (w->nspare < WORKER_SPARE_BUFS) {
    *(void **)buf = w->spare; /* a free buffer links the list */
    w->spare = buf;
    w->nspare++;
  } else {
    free(buf);
  }
}

static void free_spares(struct worker *w) {
  while (w->spare != NULL) {
    void **b = w->spare;
    w->spare = *b;
    free(b);
  }
  w->nspare = 0;
}

static void on_turns(uv_idle_t *i);

static void yield(struct conn_host *h, struct conn *c) {
  struct worker *w = worker_of(h);
  struct conn_link *l = conn_link(c);

  if (l->ready)
    return;
  l->ready = 1;
  l->ready_next = NULL;
  if (w->ready_tail != NULL)
    conn_link(w->ready_tail)->ready_next = c;
  else
    w->ready = c;
  w->ready_tail = c;
  uv_idle_start(&w->turns, on_turns); /* a no-op when already started */
}

/* Give each connection on the ready list its turn, in order. Those that
 * yield again meanwhile wait for the next iteration, so connections with
 * bytes to read or room to write (epoll) go between. */
static void on_turns(uv_idle_t *i) {
  struct worker *w = i->data;
  struct conn *c = w->ready;

  w->ready = w->ready_tail = NULL;
  while (c != NULL) {
    struct conn *next = conn_link(c)->ready_next;
    conn_link(c)->ready = 0;
    conn_resume(c);
    c = next;
  }
  if (w->ready == NULL)
    uv_idle_stop(&w->turns);
}

static void unready(struct worker *w, struct conn *c) {
  struct conn *prev = NULL, *it = w->ready;

  while (it != NULL && it != c) {
    prev = it;
    it = conn_link(it)->ready_next;
  }
  if (it == NULL)
    return;
  if (prev != NULL)
    conn_link(prev)->ready_next = conn_link(c)->ready_next;
  else
    w->ready = conn_link(c)->ready_next;
  if (w->ready_tail == c)
    w->ready_tail = prev;
  conn_link(c)->ready = 0;
}

static void maybe_exit(struct worker *w) {
  if (!w->host.stopping || w->conns != NULL)
    return;
  if (!uv_is_closing((uv_handle_t *)&w->wake)) {
    uv_close((uv_handle_t *)&w->wake, NULL);
    uv_close((uv_handle_t *)&w->stop_timer, NULL);
    uv_close((uv_handle_t *)&w->turns, NULL);
    uv_close((uv_handle_t *)&w->settle, NULL);
    uv_close((uv_handle_t *)&w->settle_timer, NULL);
  }
}

static int rekey(struct conn_host *h, uint32_t from, uint32_t to) {
  struct worker *w = worker_of(h);
  return w->rekey(w->gone_ctx, from, to);
}

static void closed(struct conn_host *h, struct conn *c, uint32_t key) {
  struct worker *w = worker_of(h);
  struct conn_link *l = conn_link(c);

  if (l->ready)
    unready(w, c);
  if (l->prev != NULL)
    conn_link(l->prev)->next = l->next;
  else
    w->conns = l->next;
  if (l->next != NULL)
    conn_link(l->next)->prev = l->prev;
  atomic_fetch_sub(&w->nconns, 1);
  if (l->costly)
    atomic_fetch_sub(&w->costly, 1);
  w->gone(w->gone_ctx, key);
  maybe_exit(w);
}

/* ---- watched file-system calls --------------------------------------- */

uint64_t worker_now_ms(void) { return uv_hrtime() / 1000000u; }

/* path as it may appear in the error log: printable ASCII as is; the
 * quote, the backslash and every other byte as \xHH (a file name may hold
 * control or terminal bytes); cut with "..." to fit out. */
static void show_path(char *out, size_t cap, const char *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;

  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    int plain = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
    if (o + (plain ? 1 : 4) + 4 > cap) {
      memcpy(out + o, "...", 3);
      o += 3;
      break;
    }
    if (plain) {
      out[o++] = (char)ch;
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[ch >> 4];
      out[o++] = hex[ch & 15];
    }
  }
  out[o] = '\0';
}

#define BUSY_CLAIMED (UINT64_C(1) << 63) /* busy_ms: reported stuck */

/* A worker given up by shutdown (worker_join_within) whose call returned,
 * or that comes to another: it must touch nothing more (the daemon is
 * exiting around it), so it waits for good; the exit ends it. Called with
 * watch_lock held, or not. */
static void park(struct worker *w, int locked) {
  if (!locked)
    uv_mutex_lock(&w->watch_lock);
  for (;;)
    uv_cond_wait(&w->park, &w->watch_lock);
}

static void fs_busy(struct conn_host *h, struct conn *c, const char *what,
                    const char *path, size_t len) {
  struct worker *w = worker_of(h);
  uint64_t now = worker_now_ms();

  if (atomic_load_explicit(&w->abandoned, memory_order_relaxed))
    park(w, 0);
  w->busy_conn = c;
  w->busy_what = what;
  w->busy_path = path;
  w->busy_len = len;
  /* Release: whoever claims this call sees the fields above. */
  atomic_store_explicit(&w->busy_ms, now > 0 ? now : 1, memory_order_release);
}

static void fs_done(struct conn_host *h) {
  struct worker *w = worker_of(h);
  uint64_t was = atomic_exchange(&w->busy_ms, 0);
  char shown[WORKER_SHOW_PATH];

  if (was & BUSY_CLAIMED) {
    /* Whoever claimed it may still be reading our fields: wait for it. */
    uv_mutex_lock(&w->watch_lock);
    if (atomic_load(&w->abandoned))
      park(w, 1);
    show_path(shown, sizeof(shown), w->busy_path, w->busy_len);
    uv_mutex_unlock(&w->watch_lock);
    log_warn("worker %u: back after %llu ms in %s of \"%s\"; taking new "
             "connections again",
             w->id,
             (unsigned long long)(worker_now_ms() - (was & ~BUSY_CLAIMED)),
             w->busy_what, shown);
  } else if (atomic_load_explicit(&w->abandoned, memory_order_relaxed)) {
    park(w, 0);
  }
}

int worker_stuck(const struct worker *w, uint64_t now_ms) {
  uint64_t since = atomic_load(&w->busy_ms) & ~BUSY_CLAIMED;
  return since != 0 && now_ms >= since && now_ms - since >= WORKER_STUCK_MS;
}

/* Claim the call w is in, if it is in one (watch_lock held): from then on
 * its fields hold still until watch_lock is let go. Returns the call's
 * start (ms), or 0 when w is in none. claimed: it was claimed already. */
static uint64_t claim(struct worker *w, int *claimed) {
  uint64_t v = atomic_load(&w->busy_ms);

  *claimed = 0;
  while (v != 0) {
    if (v & BUSY_CLAIMED) {
      *claimed = 1;
      return v & ~BUSY_CLAIMED;
    }
    /* A failed exchange reloads v: the call ended, or another began. */
    if (atomic_compare_exchange_weak(&w->busy_ms, &v, v | BUSY_CLAIMED))
      return v;
  }
  return 0;
}

void worker_watch(struct worker *w, uint64_t now_ms) {
  char shown[WORKER_SHOW_PATH];
  const char *what = NULL;
  int claimed;

  if (!worker_stuck(w, now_ms))
    return;
  uv_mutex_lock(&w->watch_lock);
  if (!atomic_load(&w->abandoned) && claim(w, &claimed) != 0 && !claimed) {
    what = w->busy_what;
    show_path(shown, sizeof(shown), w->busy_path, w->busy_len);
  }
  uv_mutex_unlock(&w->watch_lock);
  if (what != NULL)
    log_warn("worker %u: stuck for over %u s in %s of \"%s\"; it gets no "
             "new connections until that returns",
             w->id, WORKER_STUCK_MS / 1000, what, shown);
}

/* ---- the thread ------------------------------------------------------ */

/* A handed-over connection that never started (its descriptor is closed):
 * give back what worker_hand() and the acceptor counted for it. */
static void handoff_gone(struct worker *w, const struct worker_handoff *hd) {
  if (identity_costly(&hd->peer))
    atomic_fetch_sub(&w->costly, 1);
  w->gone(w->gone_ctx, identity_user_key(&hd->peer));
}

static void start_conn(struct worker *w, const struct worker_handoff *hd) {
  struct conn *c;

  if (conn_start_proto(&w->host, hd->fd, hd->conn_id, &hd->peer, hd->proto,
                       &c) != 0) {
    handoff_gone(w, hd); /* conn_start_proto closed fd */
    return;
  }
  conn_link(c)->costly = (unsigned char)identity_costly(&hd->peer);
  conn_link(c)->next = w->conns;
  if (w->conns != NULL)
    conn_link(w->conns)->prev = c;
  w->conns = c;
  atomic_fetch_add(&w->nconns, 1);
}

static void on_stop_timer(uv_timer_t *t) {
  struct worker *w = t->data;
  struct conn *c = w->conns;

  if (c)
    log_warn("worker %u: shutdown timeout; closing %u connections", w->id,
             atomic_load(&w->nconns));
  /* Connections are freed only once their handles have closed (a later
   * loop phase), so the list holds while we walk it. */
  for (; c != NULL; c = conn_link(c)->next)
    conn_abort(c);
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
    live_unref(w->host.live);
    w->host.live = next_live;
  }
  for (unsigned i = 0; i < n; i++) {
    if (w->host.stopping) {
      stream_discard(batch[i].fd);
      handoff_gone(w, &batch[i]);
    } else {
      start_conn(w, &batch[i]);
    }
    /* After start_conn counted it: the load never dips in between. */
    atomic_fetch_sub(&w->queued, 1);
  }
  if (stop && !w->host.stopping) {
    w->host.stopping = 1;
    for (struct conn *c = w->conns; c != NULL; c = conn_link(c)->next)
      conn_drain(c);
    uv_timer_start(&w->stop_timer, on_stop_timer, timeout, 0);
    maybe_exit(w);
  }
}

static void on_settle_timer(uv_timer_t *t) {
  (void)t;
  identity_settle();
}

/* Before every wait: a worker that holds a client's credentials gives them
 * up once it has had nothing to do for WORKER_SETTLE_MS. While it is busy
 * the timer keeps moving and the next request of the same user costs no
 * switch. */
static void on_settle(uv_prepare_t *p) {
  struct worker *w = p->data;

  if (identity_holding())
    uv_timer_start(&w->settle_timer, on_settle_timer, WORKER_SETTLE_MS, 0);
}

static void run(void *arg) {
  struct worker *w = arg;

  if (identity_thread_init() != 0) {
    /* The start-up probe did the same; failing now means serving with
     * more privilege than a client may borrow. */
    log_error("worker %u: cannot drop capabilities; aborting", w->id);
    abort();
  }
  uv_run(&w->loop, UV_RUN_DEFAULT);
  identity_thread_done();
}

int worker_start(struct worker **out, unsigned id, struct live *l,
                 worker_gone_cb gone, worker_rekey_cb rekey_cb, void *ctx) {
  struct worker *w;
  char name[THREAD_NAME_MAX + 1];
  int rc;

  *out = NULL;
  w = calloc(1, sizeof(*w));
  if (w == NULL)
    return UV_ENOMEM;
  w->id = id;
  w->gone = gone;
  w->rekey = rekey_cb;
  w->gone_ctx = ctx;
  rc = uv_loop_init(&w->loop);
  if (rc != 0)
    goto fail_free;
  uv_async_init(&w->loop, &w->wake, on_wake);
  uv_timer_init(&w->loop, &w->stop_timer);
  uv_idle_init(&w->loop, &w->turns);
  uv_prepare_init(&w->loop, &w->settle);
  uv_timer_init(&w->loop, &w->settle_timer);
  /* An idle worker holds nobody's credentials (a thread's /proc status is
   * readable by everyone): docs/design.md, "The identity a worker holds". */
  w->settle.data = w;
  uv_prepare_start(&w->settle, on_settle);
  uv_unref((uv_handle_t *)&w->settle);
  uv_unref((uv_handle_t *)&w->settle_timer);
  w->wake.data = w;
  w->stop_timer.data = w;
  w->turns.data = w;
  uv_mutex_init(&w->lock);
  uv_mutex_init(&w->watch_lock);
  uv_cond_init(&w->park);
  w->host = (struct conn_host){
      .loop = &w->loop,
      .live = live_ref(l),
      .scratch = &w->scratch,
      .worker_id = id,
      .buf_get = buf_get,
      .buf_put = buf_put,
      .yield = yield,
      .closed = closed,
      .rekey = rekey,
      .fs_busy = fs_busy,
      .fs_done = fs_done,
  };
  snprintf(name, sizeof(name), "pf-worker-%u", id);
  rc = thread_start(&w->thread, name, run, w);
  if (rc != 0)
    goto fail_loop;
  *out = w;
  return 0;
fail_loop:
  live_unref(w->host.live);
  uv_mutex_destroy(&w->lock);
  uv_mutex_destroy(&w->watch_lock);
  uv_cond_destroy(&w->park);
  uv_close((uv_handle_t *)&w->wake, NULL);
  uv_close((uv_handle_t *)&w->stop_timer, NULL);
  uv_close((uv_handle_t *)&w->turns, NULL);
  uv_close((uv_handle_t *)&w->settle, NULL);
  uv_close((uv_handle_t *)&w->settle_timer, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
fail_free:
  free(w);
  return rc;
}

int worker_hand(struct worker *w, uv_os_fd_t fd, uint64_t conn_id,
                const struct identity *peer, enum conn_proto proto) {
  int rc = 0;

  uv_mutex_lock(&w->lock);
  if (w->stop_requested || w->qlen == WORKER_QUEUE_MAX) {
    rc = UV_EAGAIN;
  } else {
    struct worker_handoff *h =
        &w->queue[(w->qhead + w->qlen) % WORKER_QUEUE_MAX];
    h->fd = fd;
    h->conn_id = conn_id;
    h->peer = *peer;
    h->proto = proto;
    w->qlen++;
    atomic_fetch_add(&w->queued, 1);
    if (identity_costly(peer))
      atomic_fetch_add(&w->costly, 1);
  }
  uv_mutex_unlock(&w->lock);
  if (rc == 0)
    uv_async_send(&w->wake);
  return rc;
}

unsigned worker_load(const struct worker *w) {
  return atomic_load(&w->nconns) + atomic_load(&w->queued);
}

unsigned worker_costly(const struct worker *w) {
  return atomic_load(&w->costly);
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

/* The thread has ended: free everything. */
static void worker_free(struct worker *w) {
  uv_loop_close(&w->loop);
  live_unref(w->host.live);
  live_unref(w->next_live);
  free_spares(w);
  uv_mutex_destroy(&w->lock);
  uv_mutex_destroy(&w->watch_lock);
  uv_cond_destroy(&w->park);
  free(w);
}

int worker_join_within(struct worker *w, unsigned timeout_ms) {
  char shown[WORKER_SHOW_PATH];
  const char *what = NULL;
  uint64_t took = 0, since;
  int claimed;

  if (w == NULL)
    return 0;
  if (thread_join_timeout(&w->thread, timeout_ms) == 0) {
    worker_free(w);
    return 0;
  }
  /* A claimed call holds still while watch_lock is held, and the worker
   * parks when it returns: the request it is stuck in is ours to log. A
   * worker between calls parks at its next one (it may be at a later stage
   * of a stop that came to it late). Nothing of w may be freed. */
  uv_mutex_lock(&w->watch_lock);
  atomic_store(&w->abandoned, 1);
  since = claim(w, &claimed);
  if (since != 0) {
    took = worker_now_ms() - since;
    what = w->busy_what;
    show_path(shown, sizeof(shown), w->busy_path, w->busy_len);
    conn_abandon_stuck(w->busy_conn);
  }
  uv_mutex_unlock(&w->watch_lock);
  if (what != NULL)
    log_error("worker %u: still in %s of \"%s\" after %llu ms; exiting "
              "without it (that request is logged ABANDONED)",
              w->id, what, shown, (unsigned long long)took);
  else
    log_error("worker %u: did not stop in time; exiting without it", w->id);
  return UV_ETIMEDOUT;
}
