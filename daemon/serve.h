/* serve.h - answer one request: policy, path rules, identity switch, the
 * confined open, and the response header (PFP/1) or text frame (compat).
 *
 * serve_request() and serve_text() share one open step, the only caller of
 * identity_enter()/identity_leave() and of resolve_open(): every file the
 * daemon opens for a client is opened there, as that client, whatever the
 * protocol. OS errors become wire statuses in one switch whose default is a
 * logged EIO, never success. */
#ifndef PIPEFILED_SERVE_H
#define PIPEFILED_SERVE_H

#include <stdint.h>
#include <uv.h>

#include "compat.h"
#include "identity.h"
#include "live.h"
#include "proto.h"
#include "stream.h"

/* Per-thread scratch space, so that a request allocates nothing. */
struct serve_scratch {
  struct identity_scratch id;        /* completes each request's identity */
  char path[PFP_PATH_MAX + 2];       /* the normalised path */
  uint8_t text[COMPAT_FILE_MAX + 1]; /* serve_text(): the file, read whole
                                        (one byte over: it grew); conn.c:
                                        a small body on its way out
                                        (stream_send_head_file) */
};
_Static_assert(COMPAT_FILE_MAX + 1 >= STREAM_INLINE_MAX,
               "serve_scratch.text lends stream_send_head_file its buffer");

struct serve_result {
  int status;      /* enum pfp_status */
  uv_os_fd_t fd;   /* the file to send body_len bytes from: valid only
                      with status OK and body_len > 0 (Linux: else -1) */
  uint64_t offset; /* where the body starts in fd */
  uint64_t body_len;
  uint64_t file_size;   /* for the log: known once the file is open */
  uint64_t version;     /* resolve_stat's, at the open */
  size_t resp_len;      /* bytes of header + message encoded into resp */
  const char *resolved; /* the normalised path, in the scratch space (valid
                           until the worker's next request), or NULL */
  size_t resolved_len;
};

/* Answer req from the client on sock, connection conn_id (identity id as
 * identity_peer() gave it; completed here, identity_complete) under config
 * l. Encodes the response header and message into resp
 * (PFP_RESP_MAX bytes) and fills res; on OK with a body, res->fd is the
 * file, owned by the caller from then on. Never fails: every outcome is a
 * status. */
void serve_request(const struct live *l, uv_os_fd_t sock, uint64_t conn_id,
                   struct identity *id, const struct pfp_request *req,
                   struct serve_scratch *s, uint8_t *resp,
                   struct serve_result *res);

/* Encode an error response carrying only a status (not OK) and reason
 * (EPROTO, EBUSY, ...) into resp; reason NULL = the status's default message.
 * Returns the length. */
size_t serve_status_only(uint8_t *resp, int status, const char *reason);

/* The compat protocol (compat.h): answer the file name (name_len bytes
 * of UTF-8, a path relative to the root as in PFP/1) with the file's text,
 * read whole as the client and re-encoded: one frame written into frame
 * (COMPAT_FRAME_BUF bytes). Fills res: status, file_size, resolved,
 * body_len (the text's bytes on OK) and resp_len (the frame's bytes,
 * header included); never a file to send (res->fd is not valid). A text
 * that does not fit in a frame is ERANGE with an error text naming the
 * limit and the file's size; every other outcome as serve_request's, as an
 * error text (serve_text_status). Never fails. */
void serve_text(const struct live *l, uv_os_fd_t sock, uint64_t conn_id,
                struct identity *id, const char *name, size_t name_len,
                struct serve_scratch *s, uint8_t *frame,
                struct serve_result *res);

/* Encode the compat error text for status (not OK) and reason (NULL = the
 * status's default message) as one frame into frame (COMPAT_FRAME_BUF
 * bytes): "pipefiled: ENOENT: no such file". Returns the frame's length. */
size_t serve_text_status(uint8_t *frame, int status, const char *reason);

#endif
