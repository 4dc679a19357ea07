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
#include <uv.h>

#include "config.h"

struct live {
  atomic_uint refs;
  uv_os_fd_t root_fd; /* the served root (resolve_open_root) */
  struct config cfg;  /* never changed once published */
};

/* Make a live config from c, opening its root. Returns 0 or a UV_E* code
 * with a one-line reason in err ("ROOT: reason"). */
int live_new(const struct config *c, struct live **out, char *err,
             size_t errlen);

struct live *live_ref(struct live *l);

/* Drop a reference; frees at zero. Accepts NULL. */
void live_unref(struct live *l);

#endif
