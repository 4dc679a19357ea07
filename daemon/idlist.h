/* idlist.h - a configured list of user or group ids ("*" = everyone), and
 * whether an id is in it.
 *
 * Its own module so that the config (which fills lists) and the identity
 * back end (which matches a client against them) both use it without
 * depending on each other. */
#ifndef PIPEFILED_IDLIST_H
#define PIPEFILED_IDLIST_H

#define IDLIST_MAX 64       /* entries in one list */
#define IDLIST_TEXT_MAX 198 /* the list as written: one ini line at most */

/* A list of numeric ids; "*" sets all. Names are resolved when loaded;
 * text keeps the entries as written so --check-config prints names, not
 * just the ids they resolved to. */
struct idlist {
  int all;
  unsigned n;
  unsigned ids[IDLIST_MAX];
  char text[IDLIST_TEXT_MAX + 1]; /* "alice,1000" as given; "" if unset */
};

/* Whether id is in l (always, for "*"). */
int idlist_has(const struct idlist *l, unsigned id);

#endif
