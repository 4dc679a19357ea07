/* test_compat.c - the .NET sample's protocol, pure parts (daemon/compat.c):
 * frames and the greeting, the file name's UTF-16, byte-order marks, UTF-8
 * and UTF-16 text as File.ReadAllText decodes it (U+FFFD per maximal
 * subpart), the frame's size limit at its boundary; and the error texts and
 * the whole-file read (serve.c, compat_linux.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "compat.h"
#include "serve.h"

/* Decode in (len bytes) into a fresh buffer; the UTF-16LE units go to u
 * (room for n), the count of units is returned. */
static size_t units(const uint8_t *in, size_t len, uint16_t *u, size_t n) {
  uint8_t *out = malloc(2 * n);
  assert_non_null(out);
  size_t bytes = compat_text_decode(in, len, out, 2 * n);
  assert_int_equal(bytes % 2, 0);
  assert_true(bytes <= 2 * n);
  for (size_t i = 0; i < bytes / 2; i++)
    u[i] = (uint16_t)(out[2 * i] | out[2 * i + 1] << 8);
  free(out);
  return bytes / 2;
}

static void expect_units(const char *hex_in, const uint16_t *want,
                         size_t nwant) {
  uint8_t in[64];
  uint16_t got[64];
  size_t len = strlen(hex_in) / 2;
  for (size_t i = 0; i < len; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex_in + 2 * i, "%2x", &v), 1);
    in[i] = (uint8_t)v;
  }
  size_t n = units(in, len, got, 64);
  if (n != nwant || memcmp(got, want, 2 * n) != 0)
    print_error("input %s: %zu units\n", hex_in, n);
  assert_int_equal(n, nwant);
  assert_memory_equal(got, want, 2 * n);
}

#define EXPECT(hex, ...)                                                       \
  do {                                                                         \
    static const uint16_t w[] = {__VA_ARGS__};                                 \
    expect_units(hex, w, sizeof(w) / sizeof(*w));                              \
  } while (0)
#define R 0xFFFD

/* ---- frames ----------------------------------------------------------- */

static void test_frames(void **state) {
  uint8_t h[2];
  size_t lens[] = {0, 1, 255, 256, 50, 65534, 65535};
  (void)state;
  for (size_t i = 0; i < sizeof(lens) / sizeof(*lens); i++) {
    compat_frame_header(h, lens[i]);
    assert_int_equal(h[0], lens[i] >> 8); /* big-endian: high byte first */
    assert_int_equal(h[1], lens[i] & 0xFF);
    assert_int_equal(compat_frame_len(h), lens[i]);
  }
  assert_int_equal(COMPAT_FRAME_MAX, 65535);
  assert_int_equal(COMPAT_TEXT_MAX, 65534); /* whole UTF-16 units */
  assert_int_equal(COMPAT_FILE_MAX, 98304);
}

static void test_greeting(void **state) {
  size_t len;
  const uint8_t *g = compat_greeting(&len);
  const char *text = "I am the one true server!";
  (void)state;
  assert_int_equal(len, 2 + 2 * strlen(text));
  assert_int_equal(compat_frame_len(g), 2 * strlen(text));
  for (size_t i = 0; i < strlen(text); i++) {
    assert_int_equal(g[2 + 2 * i], (uint8_t)text[i]);
    assert_int_equal(g[3 + 2 * i], 0);
  }
}

/* ---- the file name ---------------------------------------------------- */

static void test_name(void **state) {
  char out[64];
  (void)state;
  /* "a/é" , a BMP ideograph, and U+1F600 as a surrogate pair. */
  static const uint8_t n1[] = {'a', 0, '/', 0, 0xE9, 0};
  assert_int_equal(compat_name_decode(n1, sizeof(n1), out, sizeof(out)), 4);
  assert_string_equal(out, "a/\xC3\xA9");
  static const uint8_t n2[] = {0x2D, 0x4E, 0x3D, 0xD8, 0x00, 0xDE};
  assert_int_equal(compat_name_decode(n2, sizeof(n2), out, sizeof(out)), 7);
  assert_string_equal(out, "\xE4\xB8\xAD\xF0\x9F\x98\x80");
  /* The empty name is the empty path (the root: not a regular file). */
  assert_int_equal(compat_name_decode(n1, 0, out, sizeof(out)), 0);
  assert_string_equal(out, "");

  /* Refused: an odd length, lone surrogates, U+0000. */
  static const struct {
    uint8_t b[6];
    size_t len;
  } bad[] = {
      {{'a', 0, 'b'}, 3},
      {{0x3D, 0xD8}, 2},                     /* high at the end */
      {{0x3D, 0xD8, 'a', 0}, 4},             /* high, then not a low */
      {{0x00, 0xDE, 'a', 0}, 4},             /* a low first */
      {{'a', 0, 0x3D, 0xD8, 0x3D, 0xD8}, 6}, /* two highs */
      {{'a', 0, 0, 0, 'b', 0}, 6},           /* NUL */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    memset(out, 'X', sizeof(out));
    assert_int_equal(compat_name_decode(bad[i].b, bad[i].len, out, sizeof(out)),
                     UV_EILSEQ);
    assert_string_equal(out, "");
  }
  /* Bounded: "a/é" needs 5 bytes with its NUL. */
  assert_int_equal(compat_name_decode(n1, sizeof(n1), out, 5), 4);
  assert_int_equal(compat_name_decode(n1, sizeof(n1), out, 4), UV_ENAMETOOLONG);
  assert_string_equal(out, "");
  assert_int_equal(compat_name_decode(n1, sizeof(n1), out, 0), UV_ENAMETOOLONG);
}

/* ---- the file's text -------------------------------------------------- */

static void test_bom(void **state) {
  size_t bom;
  (void)state;
  assert_int_equal(compat_bom((const uint8_t *)"\xEF\xBB\xBFx", 4, &bom),
                   COMPAT_UTF8);
  assert_int_equal(bom, 3);
  assert_int_equal(compat_bom((const uint8_t *)"\xFF\xFEx", 3, &bom),
                   COMPAT_UTF16LE);
  assert_int_equal(bom, 2);
  assert_int_equal(compat_bom((const uint8_t *)"\xFE\xFFx", 3, &bom),
                   COMPAT_UTF16BE);
  assert_int_equal(bom, 2);
  assert_int_equal(compat_bom((const uint8_t *)"\xEF\xBB", 2, &bom),
                   COMPAT_UTF8);
  assert_int_equal(bom, 0);
  assert_int_equal(compat_bom((const uint8_t *)"ab", 2, &bom), COMPAT_UTF8);
  assert_int_equal(bom, 0);
  assert_int_equal(compat_bom(NULL, 0, &bom), COMPAT_UTF8);
  assert_int_equal(bom, 0);
}

static void test_text_encodings(void **state) {
  (void)state;
  /* UTF-8, with and without its BOM (stripped). */
  EXPECT("6869", 'h', 'i');
  EXPECT("EFBBBF6869", 'h', 'i');
  EXPECT("C3A9E282ACF09F9880", 0xE9, 0x20AC, 0xD83D, 0xDE00);
  /* Only the first mark is one: a later U+FEFF is text. */
  EXPECT("EFBBBF6869EFBBBF", 'h', 'i', 0xFEFF);
  /* UTF-16LE and UTF-16BE marks, a surrogate pair in each. */
  EXPECT("FFFE68006900", 'h', 'i');
  EXPECT("FFFE3DD800DE", 0xD83D, 0xDE00);
  EXPECT("FEFF00680069", 'h', 'i');
  EXPECT("FEFFD83DDE00", 0xD83D, 0xDE00);
  /* UTF-16: a lone surrogate or an odd last byte is U+FFFD. */
  EXPECT("FFFE3DD86800", R, 'h');
  EXPECT("FFFE00DE6800", R, 'h');
  EXPECT("FFFE68003DD8", 'h', R);
  EXPECT("FFFE680069", 'h', R);
  EXPECT("FEFF0068D83D", 'h', R);
}

/* Invalid UTF-8: one U+FFFD per maximal subpart (Unicode 15, 3.9, Table
 * 3-8; what .NET's UTF8Encoding and Python's "replace" both do). */
static void test_text_invalid_utf8(void **state) {
  (void)state;
  EXPECT("61F18080E180C262806380BF64", 'a', R, R, R, 'b', R, 'c', R, R, 'd');
  EXPECT("EDA080", R, R, R);      /* a surrogate's encoding */
  EXPECT("C0AF", R, R);           /* overlong */
  EXPECT("E08080", R, R, R);      /* overlong */
  EXPECT("F4908080", R, R, R, R); /* past U+10FFFF */
  EXPECT("E282", R);              /* cut short at the end */
  EXPECT("F0908041", R, 'A');     /* cut short, then ASCII */
  EXPECT("FF", R);
  EXPECT("EFBBBFFF", R); /* BOM, then garbage */
}

/* The largest text that fits is 65534 bytes of UTF-16 (32767 units); one
 * unit more does not fit, and nothing past the room is written. */
static void test_limit(void **state) {
  uint8_t *in = malloc(COMPAT_FILE_MAX + 1);
  uint8_t *out = malloc(COMPAT_TEXT_MAX + 16);
  (void)state;
  assert_non_null(in);
  assert_non_null(out);

  memset(in, 'x', 32767);
  memset(out, 0xAA, COMPAT_TEXT_MAX + 16);
  assert_int_equal(compat_text_decode(in, 32767, out, COMPAT_TEXT_MAX), 65534);
  assert_int_equal(out[65532], 'x');
  assert_int_equal(out[65534], 0xAA);
  in[32767] = 'y';
  assert_int_equal(compat_text_decode(in, 32768, out, COMPAT_TEXT_MAX), 65536);
  for (size_t i = COMPAT_TEXT_MAX; i < COMPAT_TEXT_MAX + 16; i++)
    assert_int_equal(out[i], 0xAA); /* never past the room */

  /* The largest file that can fit: a UTF-8 BOM and 32767 three-byte
   * characters, COMPAT_FILE_MAX bytes. */
  memcpy(in, "\xEF\xBB\xBF", 3);
  for (size_t i = 0; i < 32767; i++)
    memcpy(in + 3 + 3 * i, "\xE2\x82\xAC", 3);
  assert_int_equal(
      compat_text_decode(in, COMPAT_FILE_MAX, out, COMPAT_TEXT_MAX), 65534);
  assert_int_equal(out[0], 0xAC);
  assert_int_equal(out[1], 0x20);
  /* UTF-16LE: the mark and 65534 bytes, 65536 bytes in all. */
  in[0] = 0xFF;
  in[1] = 0xFE;
  memset(in + 2, 'z', 65534);
  assert_int_equal(compat_text_decode(in, 65536, out, COMPAT_TEXT_MAX), 65534);
  assert_int_equal(compat_text_decode(in, 65538, out, COMPAT_TEXT_MAX), 65536);
  free(in);
  free(out);
}

/* ---- the error texts and the read (serve.c, compat_linux.c) ----------- */

static void test_error_text(void **state) {
  uint8_t f[COMPAT_FRAME_BUF];
  const char *want = "pipefiled: ENOENT: no such file";
  size_t n;
  (void)state;
  n = serve_text_status(f, PFP_ENOENT, NULL);
  assert_int_equal(n, 2 + 2 * strlen(want));
  assert_int_equal(compat_frame_len(f), 2 * strlen(want));
  for (size_t i = 0; i < strlen(want); i++) {
    assert_int_equal(f[2 + 2 * i], (uint8_t)want[i]);
    assert_int_equal(f[3 + 2 * i], 0);
  }
  want = "pipefiled: EPROTO: request timed out";
  n = serve_text_status(f, PFP_EPROTO, "request timed out");
  assert_int_equal(n, 2 + 2 * strlen(want));
  assert_int_equal(f[2 + 2 * 11], 'E');
}

static void test_read_file(void **state) {
  char path[] = "/tmp/test_compat_XXXXXX";
  uint8_t buf[16];
  size_t got = 99;
  int fd = mkstemp(path);
  (void)state;
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "0123456789", 10), 10);
  /* From the start, whatever the descriptor's offset. */
  assert_int_equal(compat_read_file(fd, buf, sizeof(buf), &got), 0);
  assert_int_equal(got, 10);
  assert_memory_equal(buf, "0123456789", 10);
  /* Never past cap. */
  assert_int_equal(compat_read_file(fd, buf, 4, &got), 0);
  assert_int_equal(got, 4);
  close(fd);
  unlink(path);
  assert_int_equal(compat_read_file(fd, buf, 4, &got), UV_EBADF);
  assert_int_equal(got, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_frames),
      cmocka_unit_test(test_greeting),
      cmocka_unit_test(test_name),
      cmocka_unit_test(test_bom),
      cmocka_unit_test(test_text_encodings),
      cmocka_unit_test(test_text_invalid_utf8),
      cmocka_unit_test(test_limit),
      cmocka_unit_test(test_error_text),
      cmocka_unit_test(test_read_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
