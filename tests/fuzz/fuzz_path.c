/* fuzz_path.c - path_normalize (daemon/path.c), the one place that decides
 * what a client's path means, on any bytes and any output size.
 *
 * Input: the first byte picks the output size (0..254 bytes: the edges
 * where ENAMETOOLONG begins; 255: serve.h's PFP_PATH_MAX + 2), the rest is
 * the wire path. The output buffer is malloc'd at exactly that size.
 *
 * Properties: the result is 0, EXDEV, EPROTO (a NUL) or ENAMETOOLONG, and
 * "" on error; on success the output fits the size given, is "." or
 * relative components joined by single '/', with no "", "." or ".."
 * component (so never "/.." nor "../" anywhere), normalising it again
 * gives itself (idempotent), and it equals what an independent reading
 * (split on '/', drop "" and ".", ".." pops and may not pop the root) gives;
 * a buffer fails for size only when it is no larger than the input (what
 * is written is always a part of the input), so serve.c's, larger than any
 * wire path, never does. */
#include <string.h>

#include <uv.h>

#include "fuzz.h"
#include "path.h"
#include "proto.h"

#define PATH_OUT_MAX (PFP_PATH_MAX + 2) /* serve.h's scratch path */

/* The independent reading, into ref (at least len + 2 bytes). Returns 0,
 * UV_EXDEV or UV_EPROTO. */
static int reference(const char *in, size_t len, char *ref) {
  size_t o = 0, i = 0;

  if (memchr(in, '\0', len) != NULL)
    return UV_EPROTO;
  while (i <= len) {
    size_t j = i;
    while (j < len && in[j] != '/')
      j++;
    size_t n = j - i;
    if (n == 2 && in[i] == '.' && in[i + 1] == '.') {
      if (o == 0)
        return UV_EXDEV;
      char *slash = memrchr(ref, '/', o);
      o = slash != NULL ? (size_t)(slash - ref) : 0;
    } else if (n > 0 && !(n == 1 && in[i] == '.')) {
      if (o > 0)
        ref[o++] = '/';
      memcpy(ref + o, in + i, n);
      o += n;
    }
    i = j + 1;
  }
  if (o == 0)
    ref[o++] = '.';
  ref[o] = '\0';
  return 0;
}

static void check_shape(const char *out) {
  size_t len = strlen(out);

  if (strcmp(out, ".") == 0)
    return;
  CHECK(len > 0 && out[0] != '/' && out[len - 1] != '/');
  for (const char *c = out; c != NULL;) {
    const char *e = strchr(c, '/');
    size_t n = e != NULL ? (size_t)(e - c) : strlen(c);
    CHECK(n > 0);
    CHECK(!(n == 1 && c[0] == '.'));
    CHECK(!(n == 2 && c[0] == '.' && c[1] == '.'));
    c = e != NULL ? e + 1 : NULL;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in;
  size_t len, outsz;
  char *out, *again, *ref;
  int r, rr;

  if (size == 0)
    return 0;
  outsz = data[0] == 0xFF ? PATH_OUT_MAX : data[0];
  in = (const char *)data + 1;
  len = size - 1;
  out = malloc(outsz ? outsz : 1);
  ref = malloc(len + 2);
  CHECK(out != NULL && ref != NULL);
  if (outsz > 0)
    memset(out, 'x', outsz);

  r = path_normalize(in, len, out, outsz);
  rr = reference(in, len, ref);
  CHECK(r == 0 || r == UV_EXDEV || r == UV_EPROTO || r == UV_ENAMETOOLONG);
  if (r != 0) {
    CHECK(outsz == 0 || out[0] == '\0');
    if (r == UV_ENAMETOOLONG)
      CHECK(outsz <= len || outsz < 2);
    else
      CHECK(r == rr);
    goto out;
  }
  CHECK(rr == 0);
  CHECK(memchr(out, '\0', outsz) != NULL && strlen(out) < outsz);
  CHECK(strcmp(out, ref) == 0);
  check_shape(out);

  /* Idempotent: the normal form is its own normal form. */
  again = malloc(outsz);
  CHECK(again != NULL);
  CHECK(path_normalize(out, strlen(out), again, outsz) == 0);
  CHECK(strcmp(again, out) == 0);
  free(again);

out:
  free(out);
  free(ref);
  return 0;
}
