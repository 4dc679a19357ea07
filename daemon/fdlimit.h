/* fdlimit.h - how many descriptors (handles) the process may hold, for the
 * connection limit: raise the soft limit, read it, count those open.
 *
 * Per platform: fdlimit_linux.c (RLIMIT_NOFILE); fdlimit_win.c (the C
 * runtime's descriptor table, one entry per connection). */
#ifndef PIPEFILED_FDLIMIT_H
#define PIPEFILED_FDLIMIT_H

#include <stdint.h>

/* Raise the soft limit to the hard one: a server holding many connections
 * needs more than the usual 1024. Best effort. */
void fdlimit_raise(void);

/* The limit in force, or 0 when there is none (unlimited). */
uint64_t fdlimit_get(void);

/* Descriptors open now. */
unsigned fdlimit_open_now(void);

#endif
