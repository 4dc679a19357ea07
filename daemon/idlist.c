/* idlist.c - membership in a configured id list; see idlist.h. */
#include "idlist.h"

int idlist_has(const struct idlist *l, unsigned id) {
  if (l->all)
    return 1;
  for (unsigned i = 0; i < l->n; i++)
    if (l->ids[i] == id)
      return 1;
  return 0;
}
