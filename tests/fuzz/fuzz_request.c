/* fuzz_request.c - the daemon's PFP/1 request parser (pfp_request_decode)
 * on whatever a client may send: one buffer of pipelined requests, read the
 * way conn.c reads it, each decoded path then normalised as serve.c does.
 *
 * Properties checked beyond "no crash, no leak, no undefined behaviour":
 * a result is -EPROTO, 0 (more bytes needed) or the request's exact size;
 * a complete request re-encodes to the same 22 header bytes; a verdict
 * never changes as more bytes arrive (no prefix of a valid request is
 * refused, no longer buffer rescues a refused one). */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "path.h"
#include "proto.h"

#include <uv.h>

/* serve.c's scratch path: a wire path plus its NUL. */
#define OUT_MAX (PFP_PATH_MAX + 1)

static int decode_checked(const uint8_t *buf, size_t len,
                          struct pfp_request *req) {
  const char *why = "unset";
  int n = pfp_request_decode(buf, len, req, &why);

  CHECK(n == -EPROTO || n == 0 || (n >= PFP_REQ_HDR_LEN && (size_t)n <= len));
  CHECK((n == -EPROTO) == (why != NULL));
  if (n > 0) {
    uint8_t hdr[PFP_REQ_HDR_LEN];
    CHECK(req->op == PFP_OP_GET || req->op == PFP_OP_STAT);
    CHECK(req->path_len >= 1 && req->path_len <= PFP_PATH_MAX);
    CHECK((size_t)n == PFP_REQ_HDR_LEN + (size_t)req->path_len);
    CHECK(req->path == (const char *)buf + PFP_REQ_HDR_LEN);
    CHECK(memchr(req->path, '\0', req->path_len) == NULL);
    CHECK(pfp_request_encode(hdr, req) == PFP_REQ_HDR_LEN);
    CHECK(memcmp(hdr, buf, PFP_REQ_HDR_LEN) == 0);
  }
  return n;
}

/* Every prefix of buf[0..len) gets a verdict consistent with the whole:
 * "more" stays "more" until the request is complete, and once refused, a
 * longer prefix is refused too. */
static void check_prefixes(const uint8_t *buf, size_t len, int whole) {
  struct pfp_request req;
  int refused = 0;
  size_t upto = whole > 0 ? (size_t)whole : len;

  for (size_t k = 0; k <= upto; k++) {
    int n = decode_checked(buf, k, &req);
    if (refused)
      CHECK(n == -EPROTO);
    if (n == -EPROTO)
      refused = 1;
    if (whole > 0 && k < upto)
      CHECK(n == 0);
    if (n > 0)
      CHECK(k == upto && n == whole);
  }
  CHECK(refused == (whole == -EPROTO));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct pfp_request req;
  char out[OUT_MAX];
  size_t off = 0;
  int first = 1;

  /* Pipelined requests, oldest first, as conn.c consumes them. */
  while (off < size) {
    int n = decode_checked(data + off, size - off, &req);
    if (first)
      check_prefixes(data, size, n);
    first = 0;
    if (n <= 0)
      break;
    int r = path_normalize(req.path, req.path_len, out, sizeof(out));
    CHECK(r == 0 || r == UV_EXDEV);
    CHECK(r != 0 || strlen(out) < sizeof(out));
    off += (size_t)n;
  }
  return 0;
}
