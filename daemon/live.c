/* live.c - reference-counted config in force; see live.h. */
#include "live.h"

#include <stdio.h>
#include <stdlib.h>

#include "resolve.h"
#include "syserr.h"

int live_new(const struct config *c, struct live **out, char *err,
             size_t errlen) {
  struct live *l = NULL;
  int rc;

  *out = NULL;
  l = calloc(1, sizeof(*l));
  if (l == NULL)
    return UV_ENOMEM;
  l->cfg = *c;
  rc = resolve_open_root(c->root, &l->root_fd);
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", c->root, syserr_text(rc));
    free(l);
    return rc;
  }
  atomic_init(&l->refs, 1);
  *out = l;
  return 0;
}

struct live *live_ref(struct live *l) {
  atomic_fetch_add(&l->refs, 1);
  return l;
}

void live_unref(struct live *l) {
  if (l == NULL || atomic_fetch_sub(&l->refs, 1) != 1)
    return;
  resolve_close(l->root_fd);
  free(l);
}
