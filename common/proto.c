/* proto.c - PFP/1 encode and decode; see proto.h and docs/protocol.md. */
#include "proto.h"

#include <errno.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

const char *pfp_status_name(int status) {
  switch (status) {
#define PFP_STATUS_CASE(code, name, msg)                                       \
  case code:                                                                   \
    return #name;
    PFP_STATUS_MAP(PFP_STATUS_CASE)
#undef PFP_STATUS_CASE
  }
  return "UNKNOWN";
}

const char *pfp_status_message(int status) {
  switch (status) {
#define PFP_STATUS_CASE(code, name, msg)                                       \
  case code:                                                                   \
    return msg;
    PFP_STATUS_MAP(PFP_STATUS_CASE)
#undef PFP_STATUS_CASE
  }
  return "unknown status";
}

int pfp_request_encode(uint8_t *buf, const struct pfp_request *req) {
  if (req->op != PFP_OP_GET && req->op != PFP_OP_STAT)
    return -EINVAL;
  if (req->path_len == 0 || req->path_len > PFP_PATH_MAX)
    return -EINVAL;
  if (req->op == PFP_OP_STAT && (req->offset != 0 || req->length != 0))
    return -EINVAL;
  buf[0] = 'P';
  buf[1] = 'F';
  buf[2] = PFP_VERSION;
  buf[3] = (uint8_t)(req->op | (req->close ? PFP_OP_CLOSE : 0));
  put16(buf + 4, req->path_len);
  put64(buf + 6, req->offset);
  put64(buf + 14, req->length);
  return PFP_REQ_HDR_LEN;
}

int pfp_request_decode(const uint8_t *buf, size_t len, struct pfp_request *req,
                       const char **why) {
  memset(req, 0, sizeof(*req));
  *why = NULL;
  /* Judge the bytes we have as early as possible: a client that sends "GET /"
   * learns at once, not after the request timeout. */
  if (len >= 1 && buf[0] != 'P')
    goto bad_magic;
  if (len >= 2 && buf[1] != 'F')
    goto bad_magic;
  if (len >= 3 && buf[2] != PFP_VERSION) {
    *why = "unsupported protocol version";
    return -EPROTO;
  }
  if (len >= 4) {
    uint8_t op = buf[3] & (uint8_t)~PFP_OP_CLOSE;
    if (op != PFP_OP_GET && op != PFP_OP_STAT) {
      *why = "unknown operation";
      return -EPROTO;
    }
  }
  if (len < PFP_REQ_HDR_LEN)
    return 0;

  req->op = buf[3] & (uint8_t)~PFP_OP_CLOSE;
  req->close = (buf[3] & PFP_OP_CLOSE) != 0;
  req->path_len = get16(buf + 4);
  req->offset = get64(buf + 6);
  req->length = get64(buf + 14);
  if (req->path_len == 0) {
    *why = "empty path";
    return -EPROTO;
  }
  if (req->path_len > PFP_PATH_MAX) {
    *why = "path longer than 4096 bytes";
    return -EPROTO;
  }
  if (req->op == PFP_OP_STAT && (req->offset != 0 || req->length != 0)) {
    *why = "STAT with a non-zero offset or length";
    return -EPROTO;
  }
  if (len < (size_t)PFP_REQ_HDR_LEN + req->path_len)
    return 0;
  req->path = (const char *)buf + PFP_REQ_HDR_LEN;
  if (memchr(req->path, '\0', req->path_len) != NULL) {
    *why = "NUL byte in path";
    return -EPROTO;
  }
  return PFP_REQ_HDR_LEN + req->path_len;

bad_magic:
  *why = "not a PFP request (bad magic)";
  return -EPROTO;
}

/* Longest prefix of s, at most max bytes, that does not split a UTF-8
 * sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max) {
  if (len <= max)
    return len;
  size_t n = max;
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return n;
}

size_t pfp_response_encode(uint8_t *buf, struct pfp_response *resp,
                           const char *msg) {
  size_t mlen = msg ? utf8_cut(msg, strlen(msg), PFP_MSG_MAX) : 0;
  resp->msg_len = (uint16_t)mlen;
  buf[0] = 'p';
  buf[1] = 'f';
  buf[2] = PFP_VERSION;
  buf[3] = resp->status;
  put16(buf + 4, resp->msg_len);
  put16(buf + 6, 0);
  put64(buf + 8, resp->file_size);
  put64(buf + 16, (uint64_t)resp->mtime);
  put64(buf + 24, resp->body_len);
  if (mlen)
    memcpy(buf + PFP_RESP_HDR_LEN, msg, mlen);
  return PFP_RESP_HDR_LEN + mlen;
}

int pfp_response_decode(const uint8_t *buf, struct pfp_response *resp) {
  memset(resp, 0, sizeof(*resp));
  if (buf[0] != 'p' || buf[1] != 'f' || buf[2] != PFP_VERSION)
    return -EPROTO;
  if (get16(buf + 6) != 0)
    return -EPROTO;
  resp->status = buf[3];
  resp->msg_len = get16(buf + 4);
  resp->file_size = get64(buf + 8);
  resp->mtime = (int64_t)get64(buf + 16);
  resp->body_len = get64(buf + 24);
  if (resp->status >= PFP_STATUS_COUNT || resp->msg_len > PFP_MSG_MAX)
    return -EPROTO;
  if (resp->status != PFP_OK && resp->body_len != 0)
    return -EPROTO;
  if (resp->status == PFP_OK && resp->msg_len != 0)
    return -EPROTO;
  return 0;
}

int pfp_body_len(uint64_t file_size, uint64_t offset, uint64_t length,
                 uint64_t *body_len) {
  *body_len = 0;
  if (offset > file_size)
    return -ERANGE;
  uint64_t avail = file_size - offset;
  *body_len = length != 0 && length < avail ? length : avail;
  return 0;
}
