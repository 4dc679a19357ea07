/* test_identity.c - the per-thread identity switch, observed from outside:
 * /proc/thread-self/status and the owner of files created while switched.
 * Needs root; skipped without it (and failed in CI, where root is given). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "identity.h"
#include "log.h"

#define CUID 61011
#define CGID 61012
#define CGRP 61013

static char dir[64];

/* One line of /proc/thread-self/status, e.g. "Uid:", copied into out. */
static void status_line(const char *key, char *out, size_t len) {
  char line[512];
  FILE *f = fopen("/proc/thread-self/status", "r");
  out[0] = '\0';
  assert_non_null(f);
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, key, strlen(key)) == 0) {
      snprintf(out, len, "%s", line + strlen(key));
      break;
    }
  fclose(f);
}

/* The fs id: the 4th field of "Uid:" / "Gid:" (real, effective, saved, fs). */
static unsigned long fs_id(const char *key) {
  char v[256];
  unsigned long r, e, s, fs;
  status_line(key, v, sizeof(v));
  assert_int_equal(sscanf(v, "%lu %lu %lu %lu", &r, &e, &s, &fs), 4);
  return fs;
}

static uint64_t cap_eff(void) {
  char v[256];
  status_line("CapEff:", v, sizeof(v));
  return strtoull(v, NULL, 16);
}

struct seen {
  unsigned long fsuid, fsgid, after_uid, after_gid;
  char groups[256], after_groups[256];
  uint64_t caps;
  uid_t file_uid;
  gid_t file_gid;
  int enter_rc;
};

static void *as_client(void *arg) {
  struct seen *s = arg;
  gid_t groups[] = {CGRP};
  struct identity id = {
      .pid = 1, .uid = CUID, .gid = CGID, .ngroups = 1, .groups = groups};
  char path[128];
  struct stat st;

  assert_int_equal(identity_thread_init(), 0);
  s->enter_rc = identity_enter(&id);
  if (s->enter_rc != 0) {
    identity_thread_done();
    return NULL;
  }
  s->fsuid = fs_id("Uid:");
  s->fsgid = fs_id("Gid:");
  status_line("Groups:", s->groups, sizeof(s->groups));
  s->caps = cap_eff();
  /* The kernel stamps a new file with the creator's fsuid/fsgid. */
  snprintf(path, sizeof(path), "%s/by-client", dir);
  int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
  identity_leave();
  assert_true(fd >= 0);
  assert_int_equal(fstat(fd, &st), 0);
  close(fd);
  s->file_uid = st.st_uid;
  s->file_gid = st.st_gid;
  s->after_uid = fs_id("Uid:");
  s->after_gid = fs_id("Gid:");
  status_line("Groups:", s->after_groups, sizeof(s->after_groups));
  identity_thread_done(); /* as a worker thread ends */
  return NULL;
}

static void require_root(void) {
  if (geteuid() != 0) {
    if (getenv("CI") && strcmp(getenv("CI"), "true") == 0)
      fail_msg("test_identity needs root, and CI runs as root");
    skip();
  }
}

static void test_switch_is_per_thread_and_complete(void **state) {
  const char *why = NULL;
  char main_groups[256], main_after[256], path[128];
  struct seen s;
  pthread_t t;
  struct stat st;
  (void)state;

  require_root();
  assert_int_equal(identity_init(&why), 1);
  assert_non_null(why);
  strcpy(dir, "/tmp/pf-identity-XXXXXX");
  assert_non_null(mkdtemp(dir));
  assert_int_equal(chmod(dir, 01777), 0);
  status_line("Groups:", main_groups, sizeof(main_groups));

  memset(&s, 0, sizeof(s));
  assert_int_equal(pthread_create(&t, NULL, as_client, &s), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(s.enter_rc, 0);

  /* On the switched thread: the client's ids and only its groups. */
  assert_int_equal(s.fsuid, CUID);
  assert_int_equal(s.fsgid, CGID);
  unsigned long g1 = 0, g2 = 0;
  assert_int_equal(sscanf(s.groups, "%lu %lu", &g1, &g2), 1); /* just one */
  assert_int_equal(g1, CGRP);
  /* Acting as a client, nothing but CAP_SETUID/CAP_SETGID (bits 7 and 6). */
  assert_int_equal(s.caps & ~(uint64_t)0xc0, 0);
  assert_int_equal(s.file_uid, CUID);
  assert_int_equal(s.file_gid, CGID);
  /* And back again afterwards. */
  assert_int_equal(s.after_uid, 0);
  assert_int_equal(s.after_gid, 0);
  assert_string_equal(s.after_groups, main_groups);

  /* The main thread never moved: a file it creates is root's. */
  status_line("Groups:", main_after, sizeof(main_after));
  assert_string_equal(main_after, main_groups);
  assert_int_equal(fs_id("Uid:"), 0);
  snprintf(path, sizeof(path), "%s/by-main", dir);
  int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
  assert_true(fd >= 0);
  assert_int_equal(fstat(fd, &st), 0);
  close(fd);
  assert_int_equal(st.st_uid, 0);
  assert_int_equal(st.st_gid, 0);

  unlink(path);
  snprintf(path, sizeof(path), "%s/by-client", dir);
  unlink(path);
  rmdir(dir);
}

/* What a worker holds between requests (identity_release): the last
 * client's credentials, exactly; the next client's replace them entirely,
 * groups too, even for the same uid; a log line (the guard) or
 * identity_leave() returns the thread to the daemon's, but never inside an
 * enter/release window. Observed in /proc/thread-self/status. */
struct held_seen {
  int rc[6];
  unsigned long fs[6][2]; /* fsuid, fsgid after each step */
  char groups[6][256];
  char main_groups[256];
};

static void note(struct held_seen *h, int i) {
  h->fs[i][0] = fs_id("Uid:");
  h->fs[i][1] = fs_id("Gid:");
  status_line("Groups:", h->groups[i], sizeof(h->groups[i]));
}

static void *hold_and_switch(void *arg) {
  struct held_seen *h = arg;
  gid_t ga[] = {CGRP}, gb[] = {CGRP + 10, CGRP + 11};
  struct identity a = {
      .pid = 1, .uid = CUID, .gid = CGID, .ngroups = 1, .groups = ga};
  struct identity a_bare = {.pid = 1, .uid = CUID, .gid = CGID};
  struct identity b = {
      .pid = 1, .uid = CUID + 10, .gid = CGID + 10, .ngroups = 2, .groups = gb};

  assert_int_equal(identity_thread_init(), 0);
  h->rc[0] = identity_enter(&a);
  identity_release();
  note(h, 0); /* a's, still held */
  h->rc[1] = identity_enter(&a_bare);
  identity_release();
  note(h, 1); /* same uid and gid, no groups: none left */
  h->rc[2] = identity_enter(&b);
  identity_release();
  note(h, 2); /* b's, exactly */
  h->rc[3] = identity_enter(&a);
  log_warn("test: a line inside the window");
  note(h, 3); /* still a's: the guard waits for the window to end */
  identity_release();
  log_warn("test: a line after it");
  note(h, 4); /* the daemon's */
  h->rc[4] = identity_enter(&b);
  identity_release();
  identity_thread_done();
  note(h, 5); /* the daemon's */
  return NULL;
}

static void test_held_credentials_are_exact_and_leave_for_logging(void **st) {
  const char *why = NULL;
  struct held_seen h;
  pthread_t t;
  (void)st;

  require_root();
  assert_int_equal(identity_init(&why), 1); /* installs the log guard */
  memset(&h, 0, sizeof(h));
  status_line("Groups:", h.main_groups, sizeof(h.main_groups));
  assert_int_equal(pthread_create(&t, NULL, hold_and_switch, &h), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  for (int i = 0; i < 5; i++)
    assert_int_equal(h.rc[i], 0);

  assert_int_equal(h.fs[0][0], CUID);
  assert_int_equal(h.fs[0][1], CGID);
  assert_int_equal(strtoul(h.groups[0], NULL, 10), CGRP);
  assert_int_equal(h.fs[1][0], CUID);
  assert_true(strspn(h.groups[1], " \t\n") == strlen(h.groups[1])); /* none */
  assert_int_equal(h.fs[2][0], CUID + 10);
  assert_int_equal(h.fs[2][1], CGID + 10);
  unsigned long g1 = 0, g2 = 0;
  assert_int_equal(sscanf(h.groups[2], "%lu %lu", &g1, &g2), 2);
  assert_int_equal(g1, CGRP + 10);
  assert_int_equal(g2, CGRP + 11);
  assert_int_equal(h.fs[3][0], CUID);
  assert_int_equal(h.fs[4][0], 0);
  assert_int_equal(h.fs[4][1], 0);
  assert_string_equal(h.groups[4], h.main_groups);
  assert_int_equal(h.fs[5][0], 0);
  assert_string_equal(h.groups[5], h.main_groups);
}

static struct identity_scratch scratch; /* ~400 KiB: not on the stack */

static void test_peer_credentials_come_from_the_kernel(void **state) {
  int sv[2];
  struct identity id;
  unsigned uid, gid;
  (void)state;

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  assert_int_equal(identity_peer(sv[0], &id), 0);
  assert_int_equal(id.pid, getpid());
  assert_int_equal(id.uid, geteuid());
  assert_int_equal(id.gid, getegid());
  assert_int_equal(identity_log_ids(&id, &uid, &gid), 0);
  assert_int_equal(uid, geteuid());
  assert_int_equal(gid, getegid());
  assert_int_equal(identity_is_root(&id), geteuid() == 0);
  assert_int_equal(identity_user_key(&id), geteuid());
  memset(&scratch, 0, sizeof(scratch));
  assert_int_equal(identity_complete(&id, sv[0], &scratch), 0);
  assert_int_equal((int)id.ngroups, getgroups(0, NULL));
  close(sv[0]);
  close(sv[1]);
}

/* A peer in n supplementary groups, made on a thread that holds them (the
 * kernel records the connecting thread's credentials). */
struct costly_case {
  unsigned n;
  int costly, complete_n;
};

static void *peer_in_groups(void *arg) {
  struct costly_case *cc = arg;
  static gid_t groups[3000];
  int sv[2];
  struct identity id;

  for (unsigned i = 0; i < cc->n; i++)
    groups[i] = 64000 + i;
  if (syscall(SYS_setgroups, cc->n, groups) != 0 ||
      socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    return NULL;
  if (identity_peer(sv[0], &id) == 0) {
    cc->costly = identity_costly(&id);
    cc->complete_n =
        identity_complete(&id, sv[0], &scratch) == 0 ? (int)id.ngroups : -1;
  }
  close(sv[0]);
  close(sv[1]);
  return NULL;
}

/* The acceptor learns from the kernel how many groups a peer has (for
 * scheduling, listener.c): over IDENTITY_CHEAP_GROUPS is costly, and the
 * groups the worker then reads are all there. */
static void test_costly_is_counted_at_accept(void **state) {
  const char *why = NULL;
  struct costly_case cases[] = {{0, -1, -1},
                                {IDENTITY_CHEAP_GROUPS, -1, -1},
                                {IDENTITY_CHEAP_GROUPS + 1, -1, -1},
                                {3000, -1, -1}};
  (void)state;

  require_root();
  assert_int_equal(identity_init(&why), 1);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    pthread_t t;
    memset(&scratch, 0, sizeof(scratch));
    assert_int_equal(pthread_create(&t, NULL, peer_in_groups, &cases[i]), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(cases[i].costly, cases[i].n > IDENTITY_CHEAP_GROUPS);
    assert_int_equal(cases[i].complete_n, (int)cases[i].n);
  }
}

/* A connected socketpair made on a thread in n groups from first (the
 * kernel records the connecting thread's credentials). */
struct pair_in_groups {
  unsigned n;
  gid_t first;
  int sv[2];
};

static void *make_pair_in_groups(void *arg) {
  struct pair_in_groups *p = arg;
  gid_t groups[64];

  for (unsigned i = 0; i < p->n; i++)
    groups[i] = p->first + i;
  p->sv[0] = p->sv[1] = -1;
  if (syscall(SYS_setgroups, p->n, groups) == 0)
    (void)socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv);
  return NULL;
}

/* Requests of connections taking turns on one worker are completed from
 * what it kept without asking the kernel again (shown with descriptors
 * that no longer work), each with its own groups; a peer in more groups
 * than a slot holds is asked again. */
static void test_complete_keeps_recent_peers_apart(void **state) {
  struct pair_in_groups a = {2, 100, {-1, -1}}, b = {1, 200, {-1, -1}},
                        d = {IDENTITY_KEPT_GROUPS + 1, 300, {-1, -1}};
  struct pair_in_groups *all[] = {&a, &b, &d};
  struct identity ia, ib, id;
  (void)state;

  require_root();
  memset(&scratch, 0, sizeof(scratch));
  for (size_t i = 0; i < 3; i++) {
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, make_pair_in_groups, all[i]), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(all[i]->sv[0] >= 0);
  }
  assert_int_equal(identity_peer(a.sv[0], &ia), 0);
  assert_int_equal(identity_peer(b.sv[0], &ib), 0);
  assert_int_equal(identity_peer(d.sv[0], &id), 0);
  assert_int_equal(identity_complete(&id, d.sv[0], &scratch), 0);
  assert_int_equal(id.ngroups, IDENTITY_KEPT_GROUPS + 1);
  assert_int_equal(identity_complete(&ia, a.sv[0], &scratch), 0);
  assert_int_equal(identity_complete(&ib, b.sv[0], &scratch), 0);
  for (size_t i = 0; i < 3; i++) {
    close(all[i]->sv[0]);
    close(all[i]->sv[1]);
  }
  for (int round = 0; round < 2; round++) {
    assert_int_equal(identity_complete(&ia, a.sv[0], &scratch), 0);
    assert_int_equal(ia.ngroups, 2);
    assert_int_equal(ia.groups[0], 100);
    assert_int_equal(ia.groups[1], 101);
    assert_int_equal(identity_complete(&ib, b.sv[0], &scratch), 0);
    assert_int_equal(ib.ngroups, 1);
    assert_int_equal(ib.groups[0], 200);
  }
  assert_int_equal(identity_complete(&id, d.sv[0], &scratch), UV_EBADF);
  assert_int_equal(id.ngroups, 0);

  /* A later peer whose serial falls in a's slot gets its own groups. */
  struct pair_in_groups e = {1, 400, {-1, -1}};
  struct identity ie;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, make_pair_in_groups, &e), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_true(e.sv[0] >= 0);
  do
    assert_int_equal(identity_peer(e.sv[0], &ie), 0);
  while (ie.serial % IDENTITY_KEPT != ia.serial % IDENTITY_KEPT);
  assert_int_equal(identity_complete(&ie, e.sv[0], &scratch), 0);
  assert_int_equal(ie.ngroups, 1);
  assert_int_equal(ie.groups[0], 400);
  /* and a, its slot taken, asks the kernel again (here of no descriptor:
   * a's number may be e's by now) */
  assert_int_equal(identity_complete(&ia, -1, &scratch), UV_EBADF);
  close(e.sv[0]);
  close(e.sv[1]);
}

/* A later request of the same connection is completed from the worker's
 * scratch space without asking the kernel (shown with a descriptor that
 * no longer works); a new peer, even one whose identity lives at the same
 * address, never gets the groups an earlier one left there. */
static void test_complete_keeps_groups_per_connection_only(void **state) {
  int sv[2], fd;
  struct identity id;
  (void)state;

  memset(&scratch, 0, sizeof(scratch));
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  fd = sv[0];
  assert_int_equal(identity_peer(fd, &id), 0);
  assert_int_equal(identity_complete(&id, fd, &scratch), 0);
  unsigned n = id.ngroups;
  close(sv[0]);
  close(sv[1]);

  id.ngroups = 0;
  assert_int_equal(identity_complete(&id, fd, &scratch), 0);
  assert_int_equal(id.ngroups, n);

  /* The next connection's identity, in the same struct. */
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  assert_int_equal(identity_peer(sv[0], &id), 0);
  close(sv[0]);
  close(sv[1]);
  assert_int_equal(identity_complete(&id, sv[0], &scratch), UV_EBADF);
  assert_int_equal(id.ngroups, 0);
  /* And the failure forgot the earlier peer's groups too. */
  assert_int_equal(identity_complete(&id, sv[0], &scratch), UV_EBADF);
}

/* policy.c asks these instead of reading uids and gids itself. */
static void test_lists_match_user_and_every_group(void **state) {
  gid_t groups[] = {300, 301};
  struct identity id = {
      .pid = 1, .uid = 1000, .gid = 200, .ngroups = 2, .groups = groups};
  struct idlist l;
  (void)state;

  memset(&l, 0, sizeof(l));
  l.n = 1;
  l.ids[0] = 1000;
  assert_true(identity_user_in(&id, &l));
  assert_false(identity_group_in(&id, &l));
  l.ids[0] = 200; /* the primary group */
  assert_false(identity_user_in(&id, &l));
  assert_true(identity_group_in(&id, &l));
  l.ids[0] = 301; /* a supplementary group */
  assert_true(identity_group_in(&id, &l));
  l.ids[0] = 302;
  assert_false(identity_group_in(&id, &l));
  l.n = 0;
  l.all = 1;
  assert_true(identity_user_in(&id, &l));
  assert_true(identity_group_in(&id, &l));
  assert_false(identity_is_root(&id));
  id.uid = 0;
  assert_true(identity_is_root(&id));
}

/* "root" (uid 0, gid 0) and "daemon" (uid 1, gid 1) exist on every Debian
 * system; the nosuch names never do. */
static void test_name_lookups(void **state) {
  unsigned id = 99;
  char name[16];
  (void)state;

  assert_int_equal(identity_user_id("root", &id), 0);
  assert_int_equal(id, 0);
  assert_int_equal(identity_user_id("daemon", &id), 0);
  assert_int_equal(id, 1);
  assert_int_equal(identity_group_id("daemon", &id), 0);
  assert_int_equal(id, 1);
  assert_int_equal(identity_user_id("nosuchuser_pf", &id), UV_ENOENT);
  assert_int_equal(identity_group_id("nosuchgroup_pf", &id), UV_ENOENT);

  assert_int_equal(identity_user_name(0, name, sizeof(name)), 0);
  assert_string_equal(name, "root");
  assert_int_equal(identity_user_name(1, name, 5), UV_ENOBUFS); /* daemon */
  assert_string_equal(name, "");
  assert_int_equal(identity_user_name(4000123, name, sizeof(name)), UV_ENOENT);
  assert_string_equal(name, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_switch_is_per_thread_and_complete),
      cmocka_unit_test(test_held_credentials_are_exact_and_leave_for_logging),
      cmocka_unit_test(test_peer_credentials_come_from_the_kernel),
      cmocka_unit_test(test_complete_keeps_groups_per_connection_only),
      cmocka_unit_test(test_costly_is_counted_at_accept),
      cmocka_unit_test(test_complete_keeps_recent_peers_apart),
      cmocka_unit_test(test_lists_match_user_and_every_group),
      cmocka_unit_test(test_name_lookups),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
