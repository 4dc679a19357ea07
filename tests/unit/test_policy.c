/* test_policy.c - which clients are served: allow/deny users and groups,
 * root clients. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "policy.h"

static struct config cfg;

static void list(struct idlist *l, int all, unsigned n, const unsigned *ids) {
  memset(l, 0, sizeof(*l));
  l->all = all;
  l->n = n;
  if (n > 0)
    memcpy(l->ids, ids, n * sizeof(*ids));
}

static int check(uid_t uid, gid_t gid, unsigned ngroups, const gid_t *groups) {
  struct identity id = {
      .pid = 1, .uid = uid, .gid = gid, .ngroups = ngroups, .groups = groups};
  const char *why = "unset";
  int rc = policy_check(&cfg, &id, &why);
  if (rc == 0)
    assert_null(why);
  else
    assert_non_null(why);
  return rc;
}

static int setup(void **state) {
  (void)state;
  config_defaults(&cfg);
  return 0;
}

static void test_defaults_serve_everyone_but_root(void **state) {
  (void)state;
  gid_t g[] = {100};
  assert_int_equal(check(1000, 1000, 0, NULL), 0);
  assert_int_equal(check(1000, 1000, 1, g), 0);
  assert_int_equal(check(0, 0, 0, NULL), UV_EPERM);
  cfg.serve_root_clients = 1;
  assert_int_equal(check(0, 0, 0, NULL), 0);
}

static void test_allow_users(void **state) {
  (void)state;
  unsigned ids[] = {1000, 1002};
  list(&cfg.allow_users, 0, 2, ids);
  assert_int_equal(check(1000, 5, 0, NULL), 0);
  assert_int_equal(check(1002, 5, 0, NULL), 0);
  assert_int_equal(check(1001, 5, 0, NULL), UV_EPERM);
}

static void test_allow_groups_primary_or_supplementary(void **state) {
  (void)state;
  unsigned ids[] = {50};
  gid_t with[] = {7, 50};
  gid_t without[] = {7, 51};
  list(&cfg.allow_groups, 0, 1, ids);
  assert_int_equal(check(1000, 50, 0, NULL), 0);
  assert_int_equal(check(1000, 1000, 2, with), 0);
  assert_int_equal(check(1000, 1000, 2, without), UV_EPERM);
  assert_int_equal(check(1000, 1000, 0, NULL), UV_EPERM);
}

static void test_deny_beats_allow(void **state) {
  (void)state;
  unsigned u[] = {1001};
  unsigned g[] = {66};
  gid_t sup[] = {3, 66};
  list(&cfg.deny_users, 0, 1, u);
  list(&cfg.deny_groups, 0, 1, g);
  assert_int_equal(check(1000, 1000, 0, NULL), 0);
  assert_int_equal(check(1001, 1000, 0, NULL), UV_EPERM);
  assert_int_equal(check(1000, 66, 0, NULL), UV_EPERM);
  assert_int_equal(check(1000, 1000, 2, sup), UV_EPERM);
}

static void test_deny_all_groups(void **state) {
  (void)state;
  list(&cfg.deny_groups, 1, 0, NULL);
  assert_int_equal(check(1000, 1000, 0, NULL), UV_EPERM);
}

static void test_empty_allow_serves_nobody(void **state) {
  (void)state;
  list(&cfg.allow_users, 0, 0, NULL);
  assert_int_equal(check(1000, 1000, 0, NULL), UV_EPERM);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_defaults_serve_everyone_but_root, setup),
      cmocka_unit_test_setup(test_allow_users, setup),
      cmocka_unit_test_setup(test_allow_groups_primary_or_supplementary, setup),
      cmocka_unit_test_setup(test_deny_beats_allow, setup),
      cmocka_unit_test_setup(test_deny_all_groups, setup),
      cmocka_unit_test_setup(test_empty_allow_serves_nobody, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
