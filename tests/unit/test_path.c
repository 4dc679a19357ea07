/* test_path.c - lexical path rules (daemon/path.c): slashes, ".", "..",
 * climbing out, the root itself, NUL bytes, output bounds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "path.h"
#include "proto.h"

/* Room for the longest wire path and its NUL, as the daemon sizes it. */
#define OUT_MAX (PFP_PATH_MAX + 1)

struct path_case {
  const char *in;
  int rc;
  const char *out; /* "" on error */
};

static void check(const char *in, size_t len, int rc, const char *want) {
  char out[OUT_MAX];
  memset(out, 'X', sizeof(out));
  int r = path_normalize(in, len, out, sizeof(out));
  if (r != rc || strcmp(out, want) != 0)
    print_error("input \"%.*s\": got %d \"%s\"\n", (int)len, in, r, out);
  assert_int_equal(r, rc);
  assert_string_equal(out, want);
}

static void check_cases(const struct path_case *cases, size_t n) {
  for (size_t i = 0; i < n; i++)
    check(cases[i].in, strlen(cases[i].in), cases[i].rc, cases[i].out);
}

#define CHECK_CASES(c) check_cases(c, sizeof(c) / sizeof(*c))

static void test_plain_and_slashes(void **state) {
  static const struct path_case cases[] = {
      {"a", 0, "a"},
      {"a/b/c.txt", 0, "a/b/c.txt"},
      {"/a", 0, "a"}, /* a leading "/" means the root */
      {"///a", 0, "a"},
      {"a//b", 0, "a/b"},
      {"//a///b//", 0, "a/b"},
      {"a/", 0, "a"}, /* trailing slash dropped */
      {"a/b/", 0, "a/b"},
      {"a b/ c ", 0, "a b/ c "},   /* spaces are ordinary bytes */
      {"a\\..\\b", 0, "a\\..\\b"}, /* so are backslashes, on Linux */
      {"\xff\xfe/\x01", 0, "\xff\xfe/\x01"},
  };
  (void)state;
  CHECK_CASES(cases);
}

static void test_dot(void **state) {
  static const struct path_case cases[] = {
      {"./a", 0, "a"},
      {"a/./b", 0, "a/b"},
      {"a/.", 0, "a"},
      {"./././a/.", 0, "a"},
      {".a", 0, ".a"}, /* only a whole "." component is special */
      {"a.", 0, "a."},
      {"...", 0, "..."},
      {"a/..b/b..", 0, "a/..b/b.."},
      {".hidden/.x", 0, ".hidden/.x"},
  };
  (void)state;
  CHECK_CASES(cases);
}

static void test_dotdot(void **state) {
  static const struct path_case cases[] = {
      {"a/../b", 0, "b"},         {"a/b/../c", 0, "a/c"},
      {"a/b/../../c", 0, "c"},    {"a/..", 0, "."},
      {"a/b/..", 0, "a"},         {"ab/cd/../..", 0, "."},
      {"a/b/c/../../..", 0, "."}, {"/a/../b/./c/", 0, "b/c"},
      {"a//..//b", 0, "b"},       {"long-name/../x", 0, "x"},
  };
  (void)state;
  CHECK_CASES(cases);
}

static void test_climbing_out(void **state) {
  static const struct path_case cases[] = {
      {"..", UV_EXDEV, ""},
      {"/..", UV_EXDEV, ""},
      {"../a", UV_EXDEV, ""},
      {"./..", UV_EXDEV, ""},
      {"a/../..", UV_EXDEV, ""},
      {"a/../../a", UV_EXDEV, ""},
      {"a/b/../../../etc/passwd", UV_EXDEV, ""},
      {"//../..", UV_EXDEV, ""},
      {"a/./../../", UV_EXDEV, ""},
  };
  (void)state;
  CHECK_CASES(cases);
}

static void test_root_itself(void **state) {
  static const struct path_case cases[] = {
      {"/", 0, "."}, {"", 0, "."},    {"//", 0, "."},
      {".", 0, "."}, {"/./", 0, "."}, {"./.", 0, "."},
  };
  (void)state;
  CHECK_CASES(cases);
}

static void test_nul(void **state) {
  (void)state;
  check("a\0b", 3, UV_EPROTO, "");
  check("\0", 1, UV_EPROTO, "");
  check("a/b\0", 4, UV_EPROTO, "");
  /* A NUL beats every other verdict. */
  check("../\0", 4, UV_EPROTO, "");
  /* Only len bytes are read: a NUL after them does not count. */
  check("ab\0", 2, 0, "ab");
}

static void test_out_too_small(void **state) {
  char out[8];
  (void)state;
  /* "abc" needs 4 bytes. */
  memset(out, 'X', sizeof(out));
  assert_int_equal(path_normalize("abc", 3, out, 4), 0);
  assert_string_equal(out, "abc");
  memset(out, 'X', sizeof(out));
  assert_int_equal(path_normalize("abc", 3, out, 3), UV_ENAMETOOLONG);
  assert_string_equal(out, "");
  /* Fails on the component that does not fit, after earlier ones. */
  memset(out, 'X', sizeof(out));
  assert_int_equal(path_normalize("ab/cd", 5, out, 5), UV_ENAMETOOLONG);
  assert_string_equal(out, "");
  assert_int_equal(path_normalize("ab/cd", 5, out, 6), 0);
  assert_string_equal(out, "ab/cd");
  /* The root needs 2 bytes for ".". */
  memset(out, 'X', sizeof(out));
  assert_int_equal(path_normalize("/", 1, out, 1), UV_ENAMETOOLONG);
  assert_string_equal(out, "");
  assert_int_equal(path_normalize("/", 1, out, 2), 0);
  assert_string_equal(out, ".");
  /* No room at all: nothing is written. */
  out[0] = 'X';
  assert_int_equal(path_normalize("a", 1, out, 0), UV_ENAMETOOLONG);
  assert_int_equal(out[0], 'X');
}

/* The longest wire path in the buffer the daemon gives it. */
static void test_longest_path(void **state) {
  static char in[PFP_PATH_MAX], want[PFP_PATH_MAX + 1];
  (void)state;

  /* 4096 bytes, one component: fits exactly. */
  memset(in, 'n', sizeof(in));
  memcpy(want, in, sizeof(in));
  want[PFP_PATH_MAX] = '\0';
  check(in, sizeof(in), 0, want);

  /* "a/" 2048 times: 4095 bytes out, the trailing slash dropped. */
  for (size_t i = 0; i < sizeof(in); i += 2) {
    in[i] = 'a';
    in[i + 1] = '/';
  }
  memcpy(want, in, sizeof(in) - 1);
  want[PFP_PATH_MAX - 1] = '\0';
  check(in, sizeof(in), 0, want);

  /* "/" then 4095 bytes: the leading slash goes. */
  memset(in, 'n', sizeof(in));
  in[0] = '/';
  memcpy(want, in + 1, sizeof(in) - 1);
  want[PFP_PATH_MAX - 1] = '\0';
  check(in, sizeof(in), 0, want);

  /* 819 "a/" down and 819 "../" back up, padded with '/': the root. One
   * "a/" fewer and the last ".." climbs out. */
  for (size_t down = 819; down >= 818; down--) {
    size_t o = 0;
    memset(in, '/', sizeof(in));
    for (size_t i = 0; i < down; i++, o += 2)
      memcpy(in + o, "a/", 2);
    for (size_t i = 0; i < 819; i++, o += 3)
      memcpy(in + o, "../", 3);
    assert_true(o <= sizeof(in));
    check(in, sizeof(in), down == 819 ? 0 : UV_EXDEV, down == 819 ? "." : "");
  }

  /* 1024 "a/" down, 682 "../" up: 342 components stay. */
  size_t o = 0;
  memset(in, '/', sizeof(in));
  for (size_t i = 0; i < 1024; i++, o += 2)
    memcpy(in + o, "a/", 2);
  for (size_t i = 0; i < 682; i++, o += 3)
    memcpy(in + o, "../", 3);
  assert_int_equal(o, 4094);
  for (size_t i = 0; i < 342; i++)
    memcpy(want + 2 * i, "a/", 2);
  want[2 * 342 - 1] = '\0';
  check(in, sizeof(in), 0, want);

  /* 4096 slashes: the root. */
  memset(in, '/', sizeof(in));
  check(in, sizeof(in), 0, ".");

  /* 4096 bytes of "./": the root. */
  for (size_t i = 0; i < sizeof(in); i += 2) {
    in[i] = '.';
    in[i + 1] = '/';
  }
  check(in, sizeof(in), 0, ".");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_and_slashes),
      cmocka_unit_test(test_dot),
      cmocka_unit_test(test_dotdot),
      cmocka_unit_test(test_climbing_out),
      cmocka_unit_test(test_root_itself),
      cmocka_unit_test(test_nul),
      cmocka_unit_test(test_out_too_small),
      cmocka_unit_test(test_longest_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
