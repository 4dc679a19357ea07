/* fuzz_response.c - the client's side of PFP/1: pfp_response_decode, and
 * pipefile_read_response (libpipefile) reading whatever a server sends from
 * a socketpair, the bytes written in full and the far end shut, so every
 * read ends (no file system is touched).
 *
 * Properties: a decoded header obeys the rules the decoder promises
 * (status known, message only on an error, body only on success, message
 * within PFP_MSG_MAX) and re-encodes to the same bytes; the client accepts
 * exactly what the decoder accepts and then hands over a message of
 * msg_len bytes with no control character (it may reach a terminal). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "pipefile.h"
#include "proto.h"

#define INPUT_MAX 4096 /* well below a socket's buffer: writes never wait */

static void check_decoder(const uint8_t *data, size_t size) {
  struct pfp_response resp;
  uint8_t again[PFP_RESP_MAX];
  char msg[PFP_MSG_MAX + 1];
  uint64_t body;
  int r;

  if (size < PFP_RESP_HDR_LEN)
    return;
  r = pfp_response_decode(data, &resp);
  CHECK(r == 0 || r == -EPROTO);
  if (r != 0)
    return;
  CHECK(resp.status < PFP_STATUS_COUNT);
  CHECK(resp.msg_len <= PFP_MSG_MAX);
  CHECK(resp.status == PFP_OK ? resp.msg_len == 0 : resp.body_len == 0);
  /* The encoder writes back what was decoded, when the message is all
   * there and is a C string (the encoder's msg is one). */
  if (size - PFP_RESP_HDR_LEN >= resp.msg_len &&
      memchr(data + PFP_RESP_HDR_LEN, '\0', resp.msg_len) == NULL) {
    struct pfp_response enc = resp;
    memcpy(msg, data + PFP_RESP_HDR_LEN, resp.msg_len);
    msg[resp.msg_len] = '\0';
    CHECK(pfp_response_encode(again, &enc, resp.msg_len ? msg : NULL) ==
          PFP_RESP_HDR_LEN + (size_t)resp.msg_len);
    CHECK(memcmp(again, data, PFP_RESP_HDR_LEN + (size_t)resp.msg_len) == 0);
  }
  /* The body a GET of the whole file or of its tail would announce. */
  if (pfp_body_len(resp.file_size, resp.body_len, 0, &body) == 0)
    CHECK(body == resp.file_size - resp.body_len);
  else
    CHECK(resp.body_len > resp.file_size && body == 0);
}

static void check_client(const uint8_t *data, size_t size) {
  struct pipefile_result res;
  struct pfp_response resp;
  int sv[2], r;

  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  CHECK(size == 0 || write(sv[1], data, size) == (ssize_t)size);
  CHECK(shutdown(sv[1], SHUT_WR) == 0);
  r = pipefile_read_response(sv[0], &res);
  CHECK(close(sv[0]) == 0 && close(sv[1]) == 0);

  if (size < PFP_RESP_HDR_LEN) {
    CHECK(r == -ECONNRESET || r == -EPROTO);
    return;
  }
  if (pfp_response_decode(data, &resp) != 0) {
    CHECK(r == -EPROTO);
    return;
  }
  if (size - PFP_RESP_HDR_LEN < resp.msg_len) {
    CHECK(r == -ECONNRESET);
    return;
  }
  CHECK(r == 0);
  CHECK(res.status == resp.status && res.file_size == resp.file_size &&
        res.mtime == resp.mtime && res.body_len == resp.body_len);
  CHECK(strlen(res.msg) == resp.msg_len);
  for (size_t i = 0; i < resp.msg_len; i++) {
    unsigned char c = (unsigned char)res.msg[i];
    CHECK(c >= 0x20 && c != 0x7f);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > INPUT_MAX)
    return 0;
  check_decoder(data, size);
  check_client(data, size);
  return 0;
}
