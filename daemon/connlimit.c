/* connlimit.c - connection counts, in all and per uid; see connlimit.h.
 *
 * The per-uid counts live in an open-addressing hash table with linear
 * probing, twice as many slots as uids it may hold so that probes stay
 * short; an entry is removed by shifting the entries after it back (no
 * tombstones, so the table never degrades). */
#include "connlimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#define SLOTS (2 * CONNLIMIT_UIDS_MAX) /* a power of two */

_Static_assert((SLOTS & (SLOTS - 1)) == 0, "SLOTS must be a power of two");

struct slot {
  uid_t uid;  /* whose count this is */
  unsigned n; /* connections open; 0 = the slot is free */
};

static struct {
  pthread_mutex_t mu;       /* guards everything here */
  unsigned total;           /* connections open, all uids */
  unsigned uids;            /* slots in use */
  struct slot slots[SLOTS]; /* per-uid counts */
} t = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t home(uid_t uid) {
  /* Fibonacci hashing: consecutive uids (the common case) spread out. */
  return (size_t)(((uint32_t)uid * 2654435761u) & (SLOTS - 1));
}

/* The slot holding uid, or the free slot where it would go. Called with
 * t.mu held; the table always has a free slot (uids < SLOTS). */
static struct slot *find(uid_t uid) {
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

int connlimit_acquire(uid_t uid, unsigned max_total, unsigned max_per_user) {
  struct slot *s;
  int rc = 0;

  pthread_mutex_lock(&t.mu);
  if (t.total >= max_total) {
    rc = -EBUSY;
    goto out;
  }
  s = find(uid);
  if (s->n == 0 && t.uids >= CONNLIMIT_UIDS_MAX) {
    rc = -ENOSPC; /* cannot count this uid: refuse, never serve uncounted */
    goto out;
  }
  if (max_per_user > 0 && s->n >= max_per_user) {
    rc = -EUSERS;
    goto out;
  }
  if (s->n == 0) {
    s->uid = uid;
    t.uids++;
  }
  s->n++;
  t.total++;
out:
  pthread_mutex_unlock(&t.mu);
  return rc;
}

void connlimit_release(uid_t uid) {
  struct slot *s;

  pthread_mutex_lock(&t.mu);
  s = find(uid);
  if (s->n > 0 && t.total > 0) {
    t.total--;
    if (--s->n == 0) {
      remove_slot(s);
      t.uids--;
    }
  }
  pthread_mutex_unlock(&t.mu);
}

unsigned connlimit_total(void) {
  unsigned n;

  pthread_mutex_lock(&t.mu);
  n = t.total;
  pthread_mutex_unlock(&t.mu);
  return n;
}

unsigned connlimit_of(uid_t uid) {
  unsigned n;

  pthread_mutex_lock(&t.mu);
  n = find(uid)->n;
  pthread_mutex_unlock(&t.mu);
  return n;
}
