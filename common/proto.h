/* proto.h - PFP/1 wire format: request/response headers, status table.
 *
 * Pure functions over byte buffers, shared by the daemon and the client so
 * neither has its own copy of the layout. No I/O, no allocation.
 * Layout and semantics: docs/protocol.md. */
#ifndef PIPEFILE_PROTO_H
#define PIPEFILE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PFP_VERSION 1
#define PFP_REQ_HDR_LEN 22
#define PFP_RESP_HDR_LEN 32
#define PFP_PATH_MAX 4096 /* path_len is 1..PFP_PATH_MAX */
#define PFP_MSG_MAX 1024  /* msg_len is 0..PFP_MSG_MAX */
#define PFP_REQ_MAX (PFP_REQ_HDR_LEN + PFP_PATH_MAX)
#define PFP_RESP_MAX (PFP_RESP_HDR_LEN + PFP_MSG_MAX) /* header + message */

/* Where the daemon listens and the client looks when told nothing else. */
#define PFP_DEFAULT_SOCKET "/run/pipefiled/pipefiled.sock"

#define PFP_OP_GET 1
#define PFP_OP_STAT 2
#define PFP_OP_CLOSE 0x80 /* flag: server closes after answering */

/* The one status table: code, name, default message. Drives the enum, the
 * names in messages and logs, and the client's exit codes. */
#define PFP_STATUS_MAP(X)                                                      \
  X(0, OK, "ok")                                                               \
  X(1, ENOENT, "no such file")                                                 \
  X(2, EACCES, "permission denied")                                            \
  X(3, ENOTREG, "not a regular file")                                          \
  X(4, EXDEV, "path leaves the served root")                                   \
  X(5, EPROTO, "malformed request")                                            \
  X(6, EBUSY, "connection limit reached")                                      \
  X(7, EIO, "input/output error")                                              \
  X(8, EPERM, "the server will not act as this client")                        \
  X(9, ERANGE, "offset beyond end of file")

enum pfp_status {
#define PFP_STATUS_ENUM(code, name, msg) PFP_##name = code,
  PFP_STATUS_MAP(PFP_STATUS_ENUM)
#undef PFP_STATUS_ENUM
      PFP_STATUS_COUNT
};

struct pfp_request {
  uint8_t op;        /* PFP_OP_GET or PFP_OP_STAT, without the CLOSE flag */
  uint8_t close;     /* 1 if the CLOSE flag was set */
  uint16_t path_len; /* 1..PFP_PATH_MAX */
  uint64_t offset;   /* GET: first byte wanted */
  uint64_t length;   /* GET: most bytes wanted, 0 = to end of file */
  const char *path;  /* points into the decoded buffer; not NUL-terminated */
};

struct pfp_response {
  uint8_t status;     /* enum pfp_status */
  uint16_t msg_len;   /* 0..PFP_MSG_MAX */
  uint64_t file_size; /* size at open; 0 on error */
  int64_t mtime;      /* seconds since the epoch; 0 on error */
  uint64_t body_len;  /* bytes of file data that follow the message */
};

/* Name ("ENOENT") and default message ("no such file") of a status; both
 * return "UNKNOWN"/"unknown status" for codes outside the table. */
const char *pfp_status_name(int status);
const char *pfp_status_message(int status);

/* Encode a request header for path_len bytes of path into buf (at least
 * PFP_REQ_HDR_LEN bytes). Returns PFP_REQ_HDR_LEN, or -EINVAL if the request
 * is not one a server would accept (bad op, path_len 0 or too long, STAT
 * with offset/length). The path bytes follow the header on the wire. */
int pfp_request_encode(uint8_t *buf, const struct pfp_request *req);

/* Decode a request from the first len bytes of buf.
 * Returns the whole request's size (header + path) when complete, 0 when more
 * bytes are needed, or -EPROTO when the bytes can never form a valid request:
 * bad magic, version or op bits, path_len 0 or > PFP_PATH_MAX, a NUL byte in
 * the path, STAT with a non-zero offset or length. A header is rejected as soon
 * as its 22 bytes are in, without waiting for the path. On -EPROTO, *why is
 * set to a static explanation. *req is cleared on entry. */
int pfp_request_decode(const uint8_t *buf, size_t len, struct pfp_request *req,
                       const char **why);

/* Encode a response header plus message into buf (at least PFP_RESP_MAX
 * bytes). msg may be NULL for none; it is cut at PFP_MSG_MAX bytes (on a
 * UTF-8 boundary). Sets resp->msg_len. Returns the bytes written. */
size_t pfp_response_encode(uint8_t *buf, struct pfp_response *resp,
                           const char *msg);

/* The body a GET of [offset, offset+length) gets from a file of file_size
 * bytes: min(length or all, file_size - offset). Returns 0, or -ERANGE when
 * offset > file_size. Daemon and client share it so they cannot disagree. */
int pfp_body_len(uint64_t file_size, uint64_t offset, uint64_t length,
                 uint64_t *body_len);

/* Decode a response header from buf (PFP_RESP_HDR_LEN bytes).
 * Returns 0, or -EPROTO for bad magic/version, msg_len > PFP_MSG_MAX, a
 * non-zero reserved field, an unknown status, a body on an error, or a
 * message on success.
 * *resp is cleared on entry. */
int pfp_response_decode(const uint8_t *buf, struct pfp_response *resp);

#endif
