/* fuzz_compat.c - the compat protocol's decoders (daemon/compat.c) on
 * hostile bytes: a file name frame's UTF-16LE (compat_name_decode, with
 * the buffer conn.c gives it) and a file's bytes as File.ReadAllText reads
 * them (compat_text_decode). Every output buffer is malloc'd at exactly the
 * size passed, so one byte too many is an ASan report.
 *
 * Properties: conn.c's buffer (3 bytes of UTF-8 per UTF-16 unit, plus the
 * NUL) is always enough; a decoded name is exactly strlen bytes and its
 * UTF-8 decodes back to the very same UTF-16 (and so does the name after a
 * UTF-16LE BOM); with one byte less room the name is refused, not cut; a
 * text's length does not depend on the room given, a smaller room gets a
 * prefix of the same text, the text is well-formed UTF-16, and it takes at
 * least one unit per 3 bytes of the file (which COMPAT_FILE_MAX relies on:
 * a larger file never fits a frame). */
#include <string.h>

#include <uv.h>

#include "compat.h"
#include "fuzz.h"

/* The text as UTF-16LE (needs len bytes of room), or the length it needs
 * when out is too small: as compat_text_decode, checked. */
static size_t text(const uint8_t *in, size_t len, uint8_t **out) {
  size_t need = compat_text_decode(in, len, NULL, 0);
  uint8_t *buf = malloc(need ? need : 1);
  CHECK(buf != NULL);
  CHECK(compat_text_decode(in, len, buf, need) == need);
  *out = buf;
  return need;
}

/* Every high surrogate is followed by a low one, and every low one follows
 * a high one. */
static int well_formed16(const uint8_t *p, size_t len) {
  for (size_t i = 0; i + 1 < len; i += 2) {
    unsigned u = p[i] | (unsigned)p[i + 1] << 8;
    if (u >= 0xDC00 && u <= 0xDFFF)
      return 0;
    if (u >= 0xD800 && u <= 0xDBFF) {
      unsigned lo;
      if (i + 3 >= len)
        return 0;
      lo = p[i + 2] | (unsigned)p[i + 3] << 8;
      if (lo < 0xDC00 || lo > 0xDFFF)
        return 0;
      i += 2;
    }
  }
  return len % 2 == 0;
}

static void check_text(const uint8_t *data, size_t size) {
  uint8_t *full, *part;
  size_t bom, n, room;

  compat_bom(data, size, &bom);
  CHECK(bom <= size);
  n = text(data, size, &full);
  CHECK(n % 2 == 0 && well_formed16(full, n));
  CHECK(3 * (n / 2) >= size - bom);
  /* Half the room: a prefix, and the same length reported. */
  room = n / 2;
  part = malloc(room ? room : 1);
  CHECK(part != NULL);
  CHECK(compat_text_decode(data, size, part, room) == n);
  CHECK(memcmp(part, full, room - room % 2) == 0);
  free(part);
  free(full);
}

static void check_name(const uint8_t *data, size_t size) {
  size_t outsz = size / 2 * 3 + 1; /* conn.c's compat_named */
  char *out = malloc(outsz);
  int n;

  CHECK(out != NULL);
  n = compat_name_decode(data, size, out, outsz);
  CHECK(n == UV_EILSEQ || n >= 0);
  if (n < 0) {
    CHECK(out[0] == '\0');
    free(out);
    return;
  }
  CHECK((size_t)n < outsz && strlen(out) == (size_t)n);

  /* Back to UTF-16: the same units. A name starting with U+FEFF would be
   * taken as a UTF-8 BOM, so that one is compared after a UTF-16LE BOM
   * only. */
  if (!(n >= 3 && memcmp(out, "\xEF\xBB\xBF", 3) == 0)) {
    uint8_t *back;
    size_t m = text((const uint8_t *)out, (size_t)n, &back);
    CHECK(m == size && memcmp(back, data, size) == 0);
    free(back);
  }
  {
    uint8_t *with = malloc(size + 2), *back;
    size_t m;
    CHECK(with != NULL);
    with[0] = 0xFF;
    with[1] = 0xFE;
    memcpy(with + 2, data, size);
    m = text(with, size + 2, &back);
    CHECK(m == size && memcmp(back, data, size) == 0);
    free(back);
    free(with);
  }

  /* Exactly enough room, then one byte less: refused whole. */
  {
    char *tight = malloc((size_t)n + 1);
    CHECK(tight != NULL);
    CHECK(compat_name_decode(data, size, tight, (size_t)n + 1) == n);
    CHECK(memcmp(tight, out, (size_t)n + 1) == 0);
    CHECK(compat_name_decode(data, size, tight, (size_t)n) == UV_ENAMETOOLONG);
    CHECK(tight[0] == '\0' || n == 0);
    free(tight);
  }
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= COMPAT_HDR_LEN)
    CHECK(compat_frame_len(data) <= COMPAT_FRAME_MAX);
  check_name(data, size);
  check_text(data, size);
  return 0;
}
