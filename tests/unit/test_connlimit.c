/* test_connlimit.c - connection counting: the global limit, the per-user
 * limit, a full uid table, and counts that stay right through colliding
 * uids and removals. Every test gives back what it takes (the counts are
 * the process's). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "connlimit.h"

static void test_global_limit(void **state) {
  (void)state;
  assert_int_equal(connlimit_acquire(1000, 3, 0), 0);
  assert_int_equal(connlimit_acquire(1001, 3, 0), 0);
  assert_int_equal(connlimit_acquire(1002, 3, 0), 0);
  assert_int_equal(connlimit_acquire(1003, 3, 0), UV_EBUSY);
  assert_int_equal(connlimit_acquire(1000, 3, 0), UV_EBUSY);
  assert_int_equal(connlimit_total(), 3);
  connlimit_release(1001);
  assert_int_equal(connlimit_acquire(1003, 3, 0), 0);
  connlimit_release(1000);
  connlimit_release(1002);
  connlimit_release(1003);
  assert_int_equal(connlimit_total(), 0);
}

static void test_per_user_limit_spares_other_users(void **state) {
  (void)state;
  assert_int_equal(connlimit_acquire(1000, 10, 2), 0);
  assert_int_equal(connlimit_acquire(1000, 10, 2), 0);
  assert_int_equal(connlimit_acquire(1000, 10, 2), UV_EAGAIN);
  assert_int_equal(connlimit_of(1000), 2);
  assert_int_equal(connlimit_acquire(1001, 10, 2), 0);
  assert_int_equal(connlimit_acquire(1001, 10, 2), 0);
  assert_int_equal(connlimit_acquire(1001, 10, 2), UV_EAGAIN);
  /* a lower limit (reload) refuses until enough close */
  assert_int_equal(connlimit_acquire(1000, 10, 1), UV_EAGAIN);
  connlimit_release(1000);
  assert_int_equal(connlimit_acquire(1000, 10, 1), UV_EAGAIN);
  connlimit_release(1000);
  assert_int_equal(connlimit_acquire(1000, 10, 1), 0);
  assert_int_equal(connlimit_of(1000), 1);
  connlimit_release(1000);
  connlimit_release(1001);
  connlimit_release(1001);
  assert_int_equal(connlimit_total(), 0);
  assert_int_equal(connlimit_of(1000), 0);
  assert_int_equal(connlimit_of(1001), 0);
}

/* Four users at the per-user limit (a quarter each) would hold every
 * place: the last eighth is kept for users holding less than 1/64. */
static void test_last_places_kept_for_light_users(void **state) {
  (void)state;
  /* 64 places, 16 per user: three users take 48. */
  for (uint32_t u = 1; u <= 3; u++)
    for (int i = 0; i < 16; i++)
      assert_int_equal(connlimit_acquire(u, 64, 16), 0);
  /* A fourth takes places until only 8 (64/8) are left ... */
  for (int i = 0; i < 8; i++)
    assert_int_equal(connlimit_acquire(4, 64, 16), 0);
  /* ... and then, holding 8 >= 1 (64/64), no more: */
  assert_int_equal(connlimit_acquire(4, 64, 16), UV_EAGAIN);
  assert_int_equal(connlimit_acquire(1, 64, 16), UV_EAGAIN);
  /* users with no connection still get in, to the very last place */
  for (uint32_t u = 100; u < 108; u++)
    assert_int_equal(connlimit_acquire(u, 64, 16), 0);
  assert_int_equal(connlimit_acquire(200, 64, 16), UV_EBUSY);
  assert_int_equal(connlimit_total(), 64);
  /* Without a per-user limit the reserve is off too: all is one pool. */
  connlimit_release(100);
  assert_int_equal(connlimit_acquire(4, 64, 0), 0);
  for (uint32_t u = 1; u <= 3; u++)
    for (int i = 0; i < 16; i++)
      connlimit_release(u);
  for (int i = 0; i < 9; i++)
    connlimit_release(4);
  for (uint32_t u = 101; u < 108; u++)
    connlimit_release(u);
  assert_int_equal(connlimit_total(), 0);
}

static void test_zero_is_no_per_user_limit(void **state) {
  (void)state;
  for (int i = 0; i < 5; i++)
    assert_int_equal(connlimit_acquire(0, 5, 0), 0);
  assert_int_equal(connlimit_acquire(0, 5, 0), UV_EBUSY);
  /* counted all the same, so turning the limit on finds them */
  assert_int_equal(connlimit_of(0), 5);
  assert_int_equal(connlimit_acquire(0, 100, 5), UV_EAGAIN);
  for (int i = 0; i < 5; i++)
    connlimit_release(0);
  assert_int_equal(connlimit_total(), 0);
}

static void test_full_table_fails_closed(void **state) {
  (void)state;
  for (unsigned u = 0; u < CONNLIMIT_UIDS_MAX; u++)
    assert_int_equal(connlimit_acquire(5000 + u, 1000000, 4), 0);
  /* a new uid cannot be counted: refused, never served uncounted */
  assert_int_equal(connlimit_acquire(1, 1000000, 4), UV_ENOSPC);
  assert_int_equal(connlimit_acquire(1, 1000000, 0), UV_ENOSPC);
  /* uids already counted still get theirs */
  assert_int_equal(connlimit_acquire(5000, 1000000, 4), 0);
  connlimit_release(5000);
  connlimit_release(5001);
  assert_int_equal(connlimit_acquire(1, 1000000, 4), 0);
  connlimit_release(1);
  for (unsigned u = 0; u < CONNLIMIT_UIDS_MAX; u++)
    if (u != 1)
      connlimit_release(5000 + u);
  assert_int_equal(connlimit_total(), 0);
}

/* Random takes and gives against a model, with uids that share a home
 * slot (they differ by a multiple of the table size), so probing and the
 * backward shift on removal are exercised. */
static void test_counts_match_a_model(void **state) {
  enum { UIDS = 64, STEPS = 200000 };
  unsigned model[UIDS];
  unsigned total = 0;
  (void)state;

  memset(model, 0, sizeof(model));
  srand(12345);
  for (int step = 0; step < STEPS; step++) {
    unsigned i = (unsigned)rand() % UIDS;
    uint32_t uid = (uint32_t)(7 + (i % 8) * 2 * CONNLIMIT_UIDS_MAX + i / 8);
    if (rand() % 2) {
      int rc = connlimit_acquire(uid, 100000, 3);
      if (model[i] < 3) {
        assert_int_equal(rc, 0);
        model[i]++;
        total++;
      } else {
        assert_int_equal(rc, UV_EAGAIN);
      }
    } else if (model[i] > 0) {
      connlimit_release(uid);
      model[i]--;
      total--;
    }
    if (step % 1000 == 0) {
      for (unsigned j = 0; j < UIDS; j++)
        assert_int_equal(
            connlimit_of(
                (uint32_t)(7 + (j % 8) * 2 * CONNLIMIT_UIDS_MAX + j / 8)),
            model[j]);
      assert_int_equal(connlimit_total(), total);
    }
  }
  for (unsigned i = 0; i < UIDS; i++)
    while (model[i]-- > 0)
      connlimit_release(
          (uint32_t)(7 + (i % 8) * 2 * CONNLIMIT_UIDS_MAX + i / 8));
  assert_int_equal(connlimit_total(), 0);
}

static void test_release_of_an_unknown_uid_changes_nothing(void **state) {
  (void)state;
  assert_int_equal(connlimit_acquire(1000, 10, 0), 0);
  connlimit_release(4242);
  assert_int_equal(connlimit_total(), 1);
  assert_int_equal(connlimit_of(1000), 1);
  connlimit_release(1000);
  assert_int_equal(connlimit_total(), 0);
}

/* A place moves to the user a connection turned out to be (Windows learns
 * it at the first request): the total stays, the per-user limit of the new
 * user holds, and a refused move leaves everything as it was. */
static void test_move(void **state) {
  (void)state;
  assert_int_equal(connlimit_acquire(UINT32_MAX, 10, 0), 0); /* unknown */
  assert_int_equal(connlimit_acquire(UINT32_MAX, 10, 0), 0);
  assert_int_equal(connlimit_acquire(UINT32_MAX, 10, 0), 0);
  assert_int_equal(connlimit_acquire(500, 10, 2), 0);
  assert_int_equal(connlimit_move(UINT32_MAX, 500, 2), 0);
  assert_int_equal(connlimit_of(500), 2);
  assert_int_equal(connlimit_of(UINT32_MAX), 2);
  assert_int_equal(connlimit_total(), 4);
  /* 500 is at its limit: the next unknown one cannot become 500 */
  assert_int_equal(connlimit_move(UINT32_MAX, 500, 2), UV_EAGAIN);
  assert_int_equal(connlimit_of(500), 2);
  assert_int_equal(connlimit_of(UINT32_MAX), 2);
  /* but may become another user, and moving to oneself is nothing */
  assert_int_equal(connlimit_move(UINT32_MAX, 501, 2), 0);
  assert_int_equal(connlimit_move(501, 501, 2), 0);
  assert_int_equal(connlimit_of(501), 1);
  /* nothing to move from */
  assert_int_equal(connlimit_move(777, 502, 2), UV_EINVAL);
  assert_int_equal(connlimit_of(502), 0);
  assert_int_equal(connlimit_total(), 4);
  connlimit_release(UINT32_MAX);
  connlimit_release(500);
  connlimit_release(500);
  connlimit_release(501);
  assert_int_equal(connlimit_total(), 0);
  assert_int_equal(connlimit_of(UINT32_MAX), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_move),
      cmocka_unit_test(test_global_limit),
      cmocka_unit_test(test_per_user_limit_spares_other_users),
      cmocka_unit_test(test_last_places_kept_for_light_users),
      cmocka_unit_test(test_zero_is_no_per_user_limit),
      cmocka_unit_test(test_full_table_fails_closed),
      cmocka_unit_test(test_counts_match_a_model),
      cmocka_unit_test(test_release_of_an_unknown_uid_changes_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
