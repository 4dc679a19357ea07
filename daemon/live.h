/* live.h - the config in force: immutable, reference-counted, with its
 * served root already open.
 *
 * A reload builds a new one and hands a reference to each worker; a worker
 * drops the old one when it switches, and the last reference frees it. So no
 * request ever sees half of one config and half of another, and the hot path
 * takes no lock. */
#ifndef PIPEFILED_LIVE_H
#define PIPEFILED_LIVE_H

#include <stdatomic.h>

#include "config.h"

struct live {
  atomic_uint refs;
  int root_fd;       /* the served root, opened O_PATH by the daemon */
  struct config cfg; /* never changed once published */
};

/* Make a live config from c, opening its root. Returns 0 or -errno with a
 * one-line reason in err ("ROOT: strerror"). */
int live_new(const struct config *c, struct live **out, char *err,
             size_t errlen);

struct live *live_ref(struct live *l);

/* Drop a reference; frees at zero. Accepts NULL. */
void live_unref(struct live *l);

#endif
