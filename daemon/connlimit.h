/* connlimit.h - how many connections are open, in all and per client uid:
 * the global and the per-user connection limits.
 *
 * The listener asks for a place before it hands a connection to a worker,
 * and gives it back when the worker reports the connection gone. Counts are
 * shared by every thread (one mutex, held for a few instructions). So that one
 * user cannot take every connection, each uid also has a count of its own,
 * kept in a fixed table: when the table is full a new uid is refused
 * (fail closed) rather than served uncounted. */
#ifndef PIPEFILED_CONNLIMIT_H
#define PIPEFILED_CONNLIMIT_H

#include <stdint.h>
#include <uv.h>

#define CONNLIMIT_UIDS_MAX 16384 /* distinct uids with connections at once */
#define CONNLIMIT_RESERVE_DIV 8  /* the last 1/8 of max_total places ... */
#define CONNLIMIT_HEAVY_DIV 64   /* ... are not for a uid holding 1/64 */

/* Uids are user keys (identity_user_key(): the uid on Linux). */

/* Take a place for a connection of uid. max_total bounds all connections,
 * max_per_user those of one uid (0 = no per-user limit). Every uid is
 * counted either way, so a reload that turns the per-user limit on finds
 * the counts right. Returns 0 (the place is taken: release it with
 * connlimit_release),
 * UV_EBUSY when max_total connections are open, UV_EAGAIN when uid has
 * max_per_user open (it may try again when one of its own closes) or, with
 * a per-user limit, when only the last 1/CONNLIMIT_RESERVE_DIV of the
 * places are free and uid already holds 1/CONNLIMIT_HEAVY_DIV of
 * max_total (at least 1): those are kept for users with few connections, so
 * a handful of users at their limit cannot shut everyone else out; or
 * UV_ENOSPC when
 * CONNLIMIT_UIDS_MAX other uids have
 * connections open. Limits lowered below the current counts refuse new
 * connections until enough close; open ones are never cut. */
int connlimit_acquire(uint32_t uid, unsigned max_total, unsigned max_per_user);

/* Move one place from uid from to uid to (a connection's user became known
 * after it was counted: Windows), within max_per_user for to (0 = none;
 * the total does not change). Returns 0 (moved), UV_EAGAIN (to holds
 * max_per_user), UV_ENOSPC (to cannot be counted: the table is full) or
 * UV_EINVAL (from holds no place): then nothing moved. */
int connlimit_move(uint32_t from, uint32_t to, unsigned max_per_user);

/* Give back a place taken by connlimit_acquire for uid. */
void connlimit_release(uint32_t uid);

/* Connections open now: in all, and of uid. For tests and messages. */
unsigned connlimit_total(void);
unsigned connlimit_of(uint32_t uid);

#endif
