/* test_proto.c - PFP/1 codec (common/proto.c): exact bytes, round trips,
 * every malformed header, every split point, the status table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

/* Build a request by hand, independently of pfp_request_encode, so a bug in
 * the encoder cannot hide one in the decoder. Returns the bytes written. */
static size_t raw_request(uint8_t *buf, uint8_t op_byte, uint16_t path_len,
                          uint64_t offset, uint64_t length, const char *path,
                          size_t path_bytes) {
  buf[0] = 0x50;
  buf[1] = 0x46;
  buf[2] = 1;
  buf[3] = op_byte;
  buf[4] = (uint8_t)(path_len >> 8);
  buf[5] = (uint8_t)path_len;
  for (int i = 0; i < 8; i++) {
    buf[6 + i] = (uint8_t)(offset >> (56 - 8 * i));
    buf[14 + i] = (uint8_t)(length >> (56 - 8 * i));
  }
  if (path_bytes > 0)
    memcpy(buf + PFP_REQ_HDR_LEN, path, path_bytes);
  return PFP_REQ_HDR_LEN + path_bytes;
}

static uint8_t big[PFP_REQ_MAX + 64];

/* ---- status table -------------------------------------------------------- */

static void test_status_table(void **state) {
  static const struct {
    int code;
    const char *name, *msg;
  } want[] = {
      {0, "OK", "ok"},
      {1, "ENOENT", "no such file"},
      {2, "EACCES", "permission denied"},
      {3, "ENOTREG", "not a regular file"},
      {4, "EXDEV", "path leaves the served root"},
      {5, "EPROTO", "malformed request"},
      {6, "EBUSY", "connection limit reached"},
      {7, "EIO", "input/output error"},
      {8, "EPERM", "the server will not act as this client"},
      {9, "ERANGE", "offset beyond end of file"},
  };
  (void)state;
  assert_int_equal(PFP_STATUS_COUNT, 10);
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    assert_string_equal(pfp_status_name(want[i].code), want[i].name);
    assert_string_equal(pfp_status_message(want[i].code), want[i].msg);
  }
  assert_int_equal(PFP_OK, 0);
  assert_int_equal(PFP_ENOENT, 1);
  assert_int_equal(PFP_ERANGE, 9);
  const int unknown[] = {-1, 10, 255, 256, 1000};
  for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
    assert_string_equal(pfp_status_name(unknown[i]), "UNKNOWN");
    assert_string_equal(pfp_status_message(unknown[i]), "unknown status");
  }
}

/* ---- request encode --------------------------------------------------------
 */

static void test_request_encode_bytes(void **state) {
  uint8_t buf[PFP_REQ_HDR_LEN];
  struct pfp_request req = {.op = PFP_OP_GET,
                            .path_len = 5,
                            .offset = 0x0102030405060708ull,
                            .length = 0x1112131415161718ull};
  static const uint8_t want[PFP_REQ_HDR_LEN] = {
      0x50, 0x46, 0x01, 0x01, 0x00, 0x05, 0x01, 0x02, 0x03, 0x04, 0x05,
      0x06, 0x07, 0x08, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18};
  (void)state;
  assert_int_equal(pfp_request_encode(buf, &req), PFP_REQ_HDR_LEN);
  assert_memory_equal(buf, want, sizeof(want));

  /* STAT with CLOSE: op byte 0x82, path_len 4096 = 0x1000. */
  struct pfp_request stat = {
      .op = PFP_OP_STAT, .close = 1, .path_len = PFP_PATH_MAX};
  static const uint8_t want_stat[PFP_REQ_HDR_LEN] = {
      0x50, 0x46, 0x01, 0x82, 0x10, 0x00, 0, 0, 0, 0, 0,
      0,    0,    0,    0,    0,    0,    0, 0, 0, 0, 0};
  assert_int_equal(pfp_request_encode(buf, &stat), PFP_REQ_HDR_LEN);
  assert_memory_equal(buf, want_stat, sizeof(want_stat));
}

static void test_request_encode_invalid(void **state) {
  uint8_t buf[PFP_REQ_HDR_LEN];
  const struct pfp_request bad[] = {
      {.op = 0, .path_len = 1},
      {.op = 3, .path_len = 1},
      {.op = PFP_OP_GET | PFP_OP_CLOSE, .path_len = 1}, /* flag goes in close */
      {.op = PFP_OP_GET, .path_len = 0},
      {.op = PFP_OP_GET, .path_len = PFP_PATH_MAX + 1},
      {.op = PFP_OP_STAT, .path_len = 1, .offset = 1},
      {.op = PFP_OP_STAT, .path_len = 1, .length = 1},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(pfp_request_encode(buf, &bad[i]), -EINVAL);
}

/* ---- request decode --------------------------------------------------------
 */

static void check_round_trip(uint8_t op, int close, uint64_t offset,
                             uint64_t length, size_t path_len) {
  struct pfp_request in = {.op = op,
                           .close = (uint8_t)close,
                           .path_len = (uint16_t)path_len,
                           .offset = offset,
                           .length = length};
  struct pfp_request out;
  const char *why = "unset";

  memset(big, 0xAB, sizeof(big));
  assert_int_equal(pfp_request_encode(big, &in), PFP_REQ_HDR_LEN);
  for (size_t i = 0; i < path_len; i++)
    big[PFP_REQ_HDR_LEN + i] = (uint8_t)('a' + i % 26);
  /* Extra bytes after the request (a pipelined next one) are not consumed. */
  size_t total = PFP_REQ_HDR_LEN + path_len;
  assert_int_equal(pfp_request_decode(big, total + 10, &out, &why), (int)total);
  assert_null(why);
  assert_int_equal(out.op, op);
  assert_int_equal(out.close, close);
  assert_int_equal(out.path_len, path_len);
  assert_true(out.offset == offset);
  assert_true(out.length == length);
  assert_ptr_equal(out.path, (const char *)big + PFP_REQ_HDR_LEN);
  assert_int_equal(pfp_request_decode(big, total, &out, &why), (int)total);
}

static void test_request_round_trip(void **state) {
  (void)state;
  check_round_trip(PFP_OP_GET, 0, 0, 0, 1);
  check_round_trip(PFP_OP_GET, 1, 0, 0, 1);
  check_round_trip(PFP_OP_GET, 0, 4096, 1, 17);
  check_round_trip(PFP_OP_GET, 1, UINT64_MAX, UINT64_MAX, PFP_PATH_MAX);
  check_round_trip(PFP_OP_STAT, 0, 0, 0, 1);
  check_round_trip(PFP_OP_STAT, 1, 0, 0, PFP_PATH_MAX);
}

static void test_request_close_flag(void **state) {
  uint8_t buf[64];
  struct pfp_request req;
  const char *why;
  (void)state;
  size_t n = raw_request(buf, 0x81, 1, 0, 0, "a", 1);
  assert_int_equal(pfp_request_decode(buf, n, &req, &why), (int)n);
  assert_int_equal(req.op, PFP_OP_GET);
  assert_int_equal(req.close, 1);
  n = raw_request(buf, 0x82, 1, 0, 0, "a", 1);
  assert_int_equal(pfp_request_decode(buf, n, &req, &why), (int)n);
  assert_int_equal(req.op, PFP_OP_STAT);
  assert_int_equal(req.close, 1);
  n = raw_request(buf, 0x02, 1, 0, 0, "a", 1);
  assert_int_equal(pfp_request_decode(buf, n, &req, &why), (int)n);
  assert_int_equal(req.close, 0);
}

/* Every prefix of a valid request is "need more", never an error. */
static void check_incomplete(size_t path_len) {
  struct pfp_request req;
  const char *why;
  char path[PFP_PATH_MAX];

  memset(path, 'p', sizeof(path));
  size_t total =
      raw_request(big, 0x01, (uint16_t)path_len, 7, 9, path, path_len);
  for (size_t len = 0; len < total; len++) {
    why = "unset";
    int r = pfp_request_decode(big, len, &req, &why);
    if (r != 0)
      print_error("path_len %u, split at %u: %d\n", (unsigned)path_len,
                  (unsigned)len, r);
    assert_int_equal(r, 0);
    assert_null(why);
  }
  assert_int_equal(pfp_request_decode(big, total, &req, &why), (int)total);
}

static void test_request_incomplete(void **state) {
  (void)state;
  check_incomplete(1);
  check_incomplete(3);
  check_incomplete(PFP_PATH_MAX);
  /* Nothing at all. */
  struct pfp_request req;
  const char *why;
  assert_int_equal(pfp_request_decode(big, 0, &req, &why), 0);
}

struct malformed {
  const char *what;
  uint8_t bytes[PFP_REQ_HDR_LEN + 8];
  size_t len;      /* judged after exactly this many bytes */
  const char *why; /* the explanation */
};

#define HDR(op, plen_hi, plen_lo)                                              \
  0x50, 0x46, 0x01, op, plen_hi, plen_lo, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  \
      0, 0, 0, 0

static const struct malformed malformed[] = {
    {"bad magic, byte 0 alone", {'G'}, 1, "not a PFP request (bad magic)"},
    {"response magic", {'p', 'f'}, 1, "not a PFP request (bad magic)"},
    {"bad magic, byte 1", {'P', 'f'}, 2, "not a PFP request (bad magic)"},
    {"version 0", {'P', 'F', 0}, 3, "unsupported protocol version"},
    {"version 2", {'P', 'F', 2}, 3, "unsupported protocol version"},
    {"op 0", {'P', 'F', 1, 0x00}, 4, "unknown operation"},
    {"op 3", {'P', 'F', 1, 0x03}, 4, "unknown operation"},
    {"op 3 with CLOSE", {'P', 'F', 1, 0x83}, 4, "unknown operation"},
    {"CLOSE alone", {'P', 'F', 1, 0x80}, 4, "unknown operation"},
    {"unknown op bit 0x40", {'P', 'F', 1, 0x41}, 4, "unknown operation"},
    {"unknown op bit 0x04", {'P', 'F', 1, 0x06}, 4, "unknown operation"},
    {"op 0x7f", {'P', 'F', 1, 0x7f}, 4, "unknown operation"},
    {"op 0xff", {'P', 'F', 1, 0xff}, 4, "unknown operation"},
    {"path_len 0", {HDR(0x01, 0, 0)}, PFP_REQ_HDR_LEN, "empty path"},
    {"path_len 4097",
     {HDR(0x01, 0x10, 0x01)},
     PFP_REQ_HDR_LEN,
     "path longer than 4096 bytes"},
    {"path_len 65535",
     {HDR(0x02, 0xff, 0xff)},
     PFP_REQ_HDR_LEN,
     "path longer than 4096 bytes"},
    {"STAT with offset",
     {0x50, 0x46, 0x01, 0x02, 0, 1, 0, 0, 0, 0, 0,
      0,    0,    1,    0,    0, 0, 0, 0, 0, 0, 0},
     PFP_REQ_HDR_LEN,
     "STAT with a non-zero offset or length"},
    {"STAT with high offset byte",
     {0x50, 0x46, 0x01, 0x82, 0, 1, 0x80, 0, 0, 0, 0,
      0,    0,    0,    0,    0, 0, 0,    0, 0, 0, 0},
     PFP_REQ_HDR_LEN,
     "STAT with a non-zero offset or length"},
    {"STAT with length",
     {0x50, 0x46, 0x01, 0x02, 0, 1, 0, 0, 0, 0, 0,
      0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 1},
     PFP_REQ_HDR_LEN,
     "STAT with a non-zero offset or length"},
    {"NUL first in path",
     {HDR(0x01, 0, 3), 0, 'a', 'b'},
     PFP_REQ_HDR_LEN + 3,
     "NUL byte in path"},
    {"NUL inside path",
     {HDR(0x01, 0, 3), 'a', 0, 'b'},
     PFP_REQ_HDR_LEN + 3,
     "NUL byte in path"},
    {"NUL last in path",
     {HDR(0x01, 0, 3), 'a', 'b', 0},
     PFP_REQ_HDR_LEN + 3,
     "NUL byte in path"},
};

static void test_request_malformed(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
    const struct malformed *m = &malformed[i];
    struct pfp_request req;
    const char *why;
    uint8_t buf[PFP_REQ_HDR_LEN + 64];

    /* Judged as soon as the deciding bytes are in... */
    memset(buf, 0, sizeof(buf));
    memcpy(buf, m->bytes, m->len);
    why = NULL;
    if (pfp_request_decode(buf, m->len, &req, &why) != -EPROTO)
      print_error("case: %s\n", m->what);
    assert_int_equal(pfp_request_decode(buf, m->len, &req, &why), -EPROTO);
    assert_non_null(why);
    assert_string_equal(why, m->why);
    /* ...and not one byte earlier: before that it is still a valid prefix
     * (for the NUL cases, the path is not complete). */
    if (m->len > 1) {
      why = "unset";
      assert_int_equal(pfp_request_decode(buf, m->len - 1, &req, &why), 0);
      assert_null(why);
    }
    /* More bytes do not change the verdict. */
    assert_int_equal(pfp_request_decode(buf, sizeof(buf), &req, &why), -EPROTO);
    assert_string_equal(why, m->why);
  }
}

/* The earliest fault is the one reported. */
static void test_request_first_fault_wins(void **state) {
  uint8_t buf[PFP_REQ_HDR_LEN];
  struct pfp_request req;
  const char *why;
  (void)state;
  /* Bad version and bad op: the version is reported. */
  raw_request(buf, 0x03, 0, 0, 0, NULL, 0);
  buf[2] = 9;
  assert_int_equal(pfp_request_decode(buf, sizeof(buf), &req, &why), -EPROTO);
  assert_string_equal(why, "unsupported protocol version");
}

/* ---- responses -------------------------------------------------------------
 */

static void test_response_encode_bytes(void **state) {
  uint8_t buf[PFP_RESP_MAX];
  struct pfp_response resp = {.status = PFP_OK,
                              .file_size = 0x0102030405060708ull,
                              .mtime = -2,
                              .body_len = 0x10};
  static const uint8_t want[PFP_RESP_HDR_LEN] = {
      0x70, 0x66, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03,
      0x04, 0x05, 0x06, 0x07, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};
  (void)state;
  assert_int_equal(pfp_response_encode(buf, &resp, NULL), PFP_RESP_HDR_LEN);
  assert_int_equal(resp.msg_len, 0);
  assert_memory_equal(buf, want, sizeof(want));

  /* An error with its message. */
  struct pfp_response err = {.status = PFP_ENOENT, .msg_len = 99};
  const char *msg = "ENOENT: no such file";
  size_t n = pfp_response_encode(buf, &err, msg);
  assert_int_equal(n, PFP_RESP_HDR_LEN + strlen(msg));
  assert_int_equal(err.msg_len, strlen(msg));
  assert_int_equal(buf[3], PFP_ENOENT);
  assert_int_equal(buf[4], 0);
  assert_int_equal(buf[5], strlen(msg));
  assert_memory_equal(buf + PFP_RESP_HDR_LEN, msg, strlen(msg));
  /* An empty message is no message. */
  assert_int_equal(pfp_response_encode(buf, &err, ""), PFP_RESP_HDR_LEN);
  assert_int_equal(err.msg_len, 0);
}

static void test_response_round_trip(void **state) {
  uint8_t buf[PFP_RESP_MAX];
  (void)state;
  for (int st = 0; st < PFP_STATUS_COUNT; st++) {
    struct pfp_response in = {.status = (uint8_t)st}, out;
    if (st == PFP_OK) {
      in.file_size = UINT64_MAX;
      in.mtime = INT64_MIN;
      in.body_len = 12345;
    }
    char msg[64];
    snprintf(msg, sizeof(msg), "%s: %s", pfp_status_name(st),
             pfp_status_message(st));
    size_t n = pfp_response_encode(buf, &in, st == PFP_OK ? NULL : msg);
    assert_int_equal(pfp_response_decode(buf, &out), 0);
    assert_int_equal(out.status, st);
    assert_int_equal(out.msg_len, in.msg_len);
    assert_int_equal(n, PFP_RESP_HDR_LEN + out.msg_len);
    assert_true(out.file_size == in.file_size);
    assert_true(out.mtime == in.mtime);
    assert_true(out.body_len == in.body_len);
    if (st != PFP_OK)
      assert_memory_equal(buf + PFP_RESP_HDR_LEN, msg, strlen(msg));
  }
}

/* Encode prefix_len 'a's followed by tail; return the encoded msg_len. */
static size_t cut_len(size_t prefix_len, const char *tail) {
  static char msg[PFP_MSG_MAX + 64];
  static uint8_t buf[PFP_RESP_MAX];
  struct pfp_response resp = {.status = PFP_EIO};
  memset(msg, 'a', prefix_len);
  strcpy(msg + prefix_len, tail);
  size_t n = pfp_response_encode(buf, &resp, msg);
  assert_int_equal(n, PFP_RESP_HDR_LEN + resp.msg_len);
  assert_memory_equal(buf + PFP_RESP_HDR_LEN, msg, resp.msg_len);
  return resp.msg_len;
}

static void test_response_message_cut(void **state) {
  (void)state;
  assert_int_equal(cut_len(1024, ""), 1024);
  assert_int_equal(cut_len(1025, ""), 1024);
  assert_int_equal(
      cut_len(1000, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 1024);
  /* A 2-byte character ending exactly at the limit stays; across it goes. */
  assert_int_equal(cut_len(1022, "\xc3\xa9"), 1024);
  assert_int_equal(cut_len(1023, "\xc3\xa9"), 1023);
  assert_int_equal(cut_len(1023, "\xc3\xa9zz"), 1023);
  /* 3-byte: at the limit; split after 1 and after 2 of its bytes. */
  assert_int_equal(cut_len(1021, "\xe2\x82\xac"), 1024);
  assert_int_equal(cut_len(1022, "\xe2\x82\xac"), 1022);
  assert_int_equal(cut_len(1023, "\xe2\x82\xac"), 1023);
  /* 4-byte, every split. */
  assert_int_equal(cut_len(1020, "\xf0\x9f\x98\x80"), 1024);
  assert_int_equal(cut_len(1021, "\xf0\x9f\x98\x80"), 1021);
  assert_int_equal(cut_len(1022, "\xf0\x9f\x98\x80"), 1022);
  assert_int_equal(cut_len(1023, "\xf0\x9f\x98\x80"), 1023);
  /* A 4-byte character right after the limit is left out whole. */
  assert_int_equal(cut_len(1024, "\xf0\x9f\x98\x80"), 1024);
}

static void test_response_decode_malformed(void **state) {
  uint8_t good[PFP_RESP_MAX], buf[PFP_RESP_MAX];
  struct pfp_response resp = {.status = PFP_EACCES}, out;
  (void)state;
  pfp_response_encode(good, &resp, "EACCES: permission denied");
  assert_int_equal(pfp_response_decode(good, &out), 0);

#define MUTATE(off, val)                                                       \
  do {                                                                         \
    memcpy(buf, good, sizeof(buf));                                            \
    buf[off] = (uint8_t)(val);                                                 \
    assert_int_equal(pfp_response_decode(buf, &out), -EPROTO);                 \
  } while (0)
  MUTATE(0, 'P'); /* a request's magic */
  MUTATE(1, 'F');
  MUTATE(2, 0); /* version */
  MUTATE(2, 2);
  MUTATE(6, 1); /* reserved */
  MUTATE(7, 1);
  MUTATE(3, 10); /* unknown status */
  MUTATE(3, 255);
  MUTATE(31, 1); /* a body on an error */
  MUTATE(24, 1);
  /* msg_len 1025 (0x0401) */
  memcpy(buf, good, sizeof(buf));
  buf[4] = 0x04;
  buf[5] = 0x01;
  assert_int_equal(pfp_response_decode(buf, &out), -EPROTO);
  /* msg_len 1024 is fine */
  buf[5] = 0x00;
  assert_int_equal(pfp_response_decode(buf, &out), 0);
  assert_int_equal(out.msg_len, PFP_MSG_MAX);
  /* OK may carry a body, but no message (msg_len is 0 on success). */
  memcpy(buf, good, sizeof(buf));
  buf[3] = PFP_OK;
  buf[31] = 7;
  assert_int_equal(pfp_response_decode(buf, &out), -EPROTO);
  buf[4] = 0;
  buf[5] = 0;
  assert_int_equal(pfp_response_decode(buf, &out), 0);
  assert_int_equal(out.body_len, 7);
#undef MUTATE
}

static void test_body_len(void **state) {
  uint64_t n = 99;
  (void)state;
  assert_int_equal(pfp_body_len(100, 0, 0, &n), 0);
  assert_int_equal(n, 100);
  assert_int_equal(pfp_body_len(100, 10, 0, &n), 0);
  assert_int_equal(n, 90);
  assert_int_equal(pfp_body_len(100, 10, 5, &n), 0);
  assert_int_equal(n, 5);
  assert_int_equal(pfp_body_len(100, 10, 1000, &n), 0);
  assert_int_equal(n, 90);
  assert_int_equal(pfp_body_len(100, 100, 0, &n), 0); /* empty, not ERANGE */
  assert_int_equal(n, 0);
  assert_int_equal(pfp_body_len(100, 101, 0, &n), -ERANGE);
  assert_int_equal(n, 0);
  assert_int_equal(pfp_body_len(0, 0, 0, &n), 0);
  assert_int_equal(n, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_status_table),
      cmocka_unit_test(test_request_encode_bytes),
      cmocka_unit_test(test_request_encode_invalid),
      cmocka_unit_test(test_request_round_trip),
      cmocka_unit_test(test_request_close_flag),
      cmocka_unit_test(test_request_incomplete),
      cmocka_unit_test(test_request_malformed),
      cmocka_unit_test(test_request_first_fault_wins),
      cmocka_unit_test(test_response_encode_bytes),
      cmocka_unit_test(test_response_round_trip),
      cmocka_unit_test(test_response_message_cut),
      cmocka_unit_test(test_response_decode_malformed),
      cmocka_unit_test(test_body_len),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
