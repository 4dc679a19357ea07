/* connlimit.c - connection counts, in all and per uid; see connlimit.h.
 *
 * The per-uid counts live in an open-addressing hash table with linear
 * probing, twice as many slots as uids it may hold so that probes stay
 * short; an entry is removed by shifting the entries after it back (no
 * tombstones, so the table never degrades). */
#include "connlimit.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#define SLOTS (2 * CONNLIMIT_UIDS_MAX) /* a power of two */

_Static_assert((SLOTS & (SLOTS - 1)) == 0, "SLOTS must be a power of two");

struct slot {
  uint32_t uid; /* whose count this is */
  unsigned n;   /* connections open; 0 = the slot is free */
};

static struct {
  uv_mutex_t mu;            /* guards everything here */
  unsigned total;           /* connections open, all uids */
  unsigned uids;            /* slots in use */
  struct slot slots[SLOTS]; /* per-uid counts */
} t;
static uv_once_t once = UV_ONCE_INIT;

static void init(void) {
  /* A lock that cannot be made leaves nothing safe to count with. */
  if (uv_mutex_init(&t.mu) != 0)
    abort();
}

static void lock(void) {
  uv_once(&once, init);
  uv_mutex_lock(&t.mu);
}

static size_t home(uint32_t uid) {
  /* Fibonacci hashing: consecutive uids (the common case) spread out. */
  return (size_t)(((uint32_t)uid * 2654435761u) & (SLOTS - 1));
}

/* The slot holding uid, or the free slot where it would go. Called with
 * t.mu held; the table always has a free slot (uids < SLOTS). */
static struct slot *find(uint32_t uid) {
  size_t i = home(uid);

  while (t.slots[i].n != 0 && t.slots[i].uid != uid)
    i = (i + 1) & (SLOTS - 1);
  return &t.slots[i];
}

/* Free slot s and move back the entries of its probe run that could sit
 * there, so every entry stays reachable from its home slot. */
static void remove_slot(struct slot *s) {
  size_t hole = (size_t)(s - t.slots);
  size_t i = hole;

  t.slots[hole].n = 0;
  for (;;) {
    i = (i + 1) & (SLOTS - 1);
    if (t.slots[i].n == 0)
      return;
    size_t h = home(t.slots[i].uid);
    /* Entry i may move to the hole if its home is not in (hole, i]. */
    int between = hole <= i ? (hole < h && h <= i) : (hole < h || h <= i);
    if (!between) {
      t.slots[hole] = t.slots[i];
      t.slots[i].n = 0;
      hole = i;
    }
  }
}

/* The places kept back from heavy users, and what makes a user heavy. */
static unsigned reserve_of(unsigned max_total) {
  return max_total / CONNLIMIT_RESERVE_DIV;
}

static unsigned heavy_of(unsigned max_total) {
  unsigned n = max_total / CONNLIMIT_HEAVY_DIV;
  return n > 0 ? n : 1;
}

int connlimit_acquire(uint32_t uid, unsigned max_total, unsigned max_per_user) {
  struct slot *s;
  int rc = 0;

  lock();
  if (t.total >= max_total) {
    rc = UV_EBUSY;
    goto out;
  }
  s = find(uid);
  if (s->n == 0 && t.uids >= CONNLIMIT_UIDS_MAX) {
    rc = UV_ENOSPC; /* cannot count this uid: refuse, never serve uncounted */
    goto out;
  }
  if (max_per_user > 0 && s->n >= max_per_user) {
    rc = UV_EAGAIN;
    goto out;
  }
  /* The last places are kept for users with few connections: otherwise
   * max_total / max_per_user users (four, by default) could hold them all
   * and leave everyone else with EBUSY. */
  if (max_per_user > 0 && max_total - t.total <= reserve_of(max_total) &&
      s->n >= heavy_of(max_total)) {
    rc = UV_EAGAIN;
    goto out;
  }
  if (s->n == 0) {
    s->uid = uid;
    t.uids++;
  }
  s->n++;
  t.total++;
out:
  uv_mutex_unlock(&t.mu);
  return rc;
}

int connlimit_move(uint32_t from, uint32_t to, unsigned max_per_user) {
  struct slot *s;
  int rc = 0;

  if (from == to)
    return 0;
  lock();
  if (find(from)->n == 0) {
    rc = UV_EINVAL;
    goto out;
  }
  s = find(to);
  if (s->n == 0 && t.uids >= CONNLIMIT_UIDS_MAX) {
    rc = UV_ENOSPC;
    goto out;
  }
  if (max_per_user > 0 && s->n >= max_per_user) {
    rc = UV_EAGAIN;
    goto out;
  }
  /* to first: removing from's slot may move others in the table. */
  if (s->n == 0) {
    s->uid = to;
    t.uids++;
  }
  s->n++;
  s = find(from);
  if (--s->n == 0) {
    remove_slot(s);
    t.uids--;
  }
out:
  uv_mutex_unlock(&t.mu);
  return rc;
}

void connlimit_release(uint32_t uid) {
  struct slot *s;

  lock();
  s = find(uid);
  if (s->n > 0 && t.total > 0) {
    t.total--;
    if (--s->n == 0) {
      remove_slot(s);
      t.uids--;
    }
  }
  uv_mutex_unlock(&t.mu);
}

unsigned connlimit_total(void) {
  unsigned n;

  lock();
  n = t.total;
  uv_mutex_unlock(&t.mu);
  return n;
}

unsigned connlimit_of(uint32_t uid) {
  unsigned n;

  lock();
  n = find(uid)->n;
  uv_mutex_unlock(&t.mu);
  return n;
}
