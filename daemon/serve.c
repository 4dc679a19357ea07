/* serve.c - one request, start to response header; see serve.h. */
#include "serve.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "path.h"
#include "policy.h"
#include "resolve.h"
#include "syserr.h"

size_t serve_status_only(uint8_t *resp, int status, const char *reason) {
  char msg[PFP_MSG_MAX + 1];
  struct pfp_response r;

  memset(&r, 0, sizeof(r));
  r.status = (uint8_t)status;
  snprintf(msg, sizeof(msg), "%s: %s", pfp_status_name(status),
           reason ? reason : pfp_status_message(status));
  return pfp_response_encode(resp, &r, msg);
}

/* The one mapping from an OS error (a UV_E* code) to a wire status. Anything
 * unforeseen is a server error, logged (log.h bounds how often), never a
 * success. */
static int status_of(int err, const char **reason) {
  *reason = NULL;
  switch (err) {
  case UV_ENOENT:
  case UV_ENOTDIR:
    return PFP_ENOENT;
  case UV_ENAMETOOLONG:
    *reason = "file name too long";
    return PFP_ENOENT;
  case UV_EACCES:
  case UV_EPERM:
    return PFP_EACCES;
  case UV_EXDEV:
    return PFP_EXDEV;
  case UV_ELOOP:
    *reason = "symbolic link loop, or a link that may not be followed";
    return PFP_EXDEV;
  case UV_EAGAIN:
    /* resolve.h: not a race (those are retried), a lease or lock another
     * process holds on the file; opening it would mean waiting for that.
     * Said at once and not logged: any client can cause it at will. */
    *reason = "the file is leased or locked by another process; try again "
              "later";
    return PFP_EBUSY;
  case UV_EMFILE:
  case UV_ENFILE:
    /* Out of descriptors for the moment (connections hold them): it
     * passes, and the client is told so, not that the file is broken. */
    *reason = "the server is out of file descriptors; try again later";
    return PFP_EBUSY;
  case UV_EISDIR:
  case UV_ENXIO: /* a socket file, or a device with nothing behind it */
  case UV_ENODEV:
    return PFP_ENOTREG;
  default:
    log_error("open failed: %s; answering EIO", syserr_text(err));
    return PFP_EIO;
  }
}

/* The open step every protocol shares: policy, path rules, the identity
 * switch and the confined open, then fstat. Returns PFP_OK with *fd open
 * (the caller's) and *st filled, or another status with *reason (NULL: the
 * status's default message) and *fd not valid. The normalised path goes to
 * res->resolved once there is one. */
static int open_as_client(const struct live *l, uv_os_fd_t sock,
                          uint64_t conn_id, struct identity *id,
                          const char *path, size_t path_len,
                          struct serve_scratch *s, uv_os_fd_t *fd,
                          struct resolve_stat *st, const char **reason,
                          struct serve_result *res) {
  int rc;

  *reason = NULL;
  *fd = (uv_os_fd_t)-1;
  memset(st, 0, sizeof(*st));
  rc = identity_complete(id, sock, &s->id);
  if (rc == UV_EPERM) {
    /* The client withheld its identity (Windows: it connected at the
     * Anonymous or Identification level): nothing can be opened as it. */
    log_warn("conn %llu: pid %ld did not permit impersonation",
             (unsigned long long)conn_id, (long)id->pid);
    *reason = "the client did not permit impersonation (it connected at "
              "the Anonymous or Identification level)";
    return PFP_EPERM;
  }
  if (rc != 0) {
    /* Without the whole identity we cannot act as the client: refuse. */
    log_warn("conn %llu: cannot learn the identity of pid %ld: %s",
             (unsigned long long)conn_id, (long)id->pid, syserr_text(rc));
    *reason = "the server cannot learn this client's identity";
    return PFP_EPERM;
  }
  if (policy_check(&l->cfg, id, reason) != 0)
    return PFP_EPERM;
  rc = path_normalize(path, path_len, s->path, sizeof(s->path));
  if (rc != 0)
    return status_of(rc, reason);
  res->resolved = s->path;
  res->resolved_len = strlen(s->path);
  if (identity_enter(id) != 0) {
    *reason = identity_privileged()
                  ? "the server could not switch to this client's identity"
                  : "the server runs unprivileged and serves only its own "
                    "user";
    return PFP_EPERM;
  }
  rc = resolve_open(l->root_fd, s->path, fd);
  identity_release();
  if (rc != 0) {
    *fd = (uv_os_fd_t)-1;
    return status_of(rc, reason);
  }
  rc = resolve_fstat(*fd, st);
  if (rc == 0 && !st->regular)
    rc = UV_EISDIR; /* not a regular file, whatever it is: ENOTREG */
  if (rc != 0) {
    resolve_close(*fd);
    *fd = (uv_os_fd_t)-1;
    return status_of(rc, reason);
  }
  return PFP_OK;
}

void serve_request(const struct live *l, uv_os_fd_t sock, uint64_t conn_id,
                   struct identity *id, const struct pfp_request *req,
                   struct serve_scratch *s, uint8_t *resp,
                   struct serve_result *res) {
  const char *reason = NULL;
  struct resolve_stat st;
  int status;
  uv_os_fd_t fd;

  memset(res, 0, sizeof(*res));
  res->fd = (uv_os_fd_t)-1;
  status = open_as_client(l, sock, conn_id, id, req->path, req->path_len, s,
                          &fd, &st, &reason, res);
  if (status != PFP_OK)
    goto out;
  /* From here on file_size is known; it goes to the log even for ERANGE,
   * whose wire header says 0. */
  res->file_size = st.size;
  res->version = st.version;
  if (req->op == PFP_OP_GET && pfp_body_len(res->file_size, req->offset,
                                            req->length, &res->body_len) != 0) {
    status = PFP_ERANGE;
    resolve_close(fd);
    goto out;
  }
  res->offset = req->offset;

out:
  res->status = status;
  if (status != PFP_OK) {
    res->resp_len = serve_status_only(resp, status, reason);
  } else {
    struct pfp_response r = {.status = PFP_OK,
                             .file_size = res->file_size,
                             .mtime = st.mtime,
                             .body_len = res->body_len};
    res->resp_len = pfp_response_encode(resp, &r, NULL);
  }
  if (status == PFP_OK && res->body_len > 0)
    res->fd = fd;
  else if (status == PFP_OK)
    resolve_close(fd);
}

/* ---- the compat protocol (compat.h) ------------------------------------ */

size_t serve_text_status(uint8_t *frame, int status, const char *reason) {
  char msg[PFP_MSG_MAX + 1];
  int n =
      snprintf(msg, sizeof(msg), "pipefiled: %s: %s", pfp_status_name(status),
               reason ? reason : pfp_status_message(status));
  size_t len, text;

  len = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
  text = compat_text_decode((const uint8_t *)msg, len, frame + COMPAT_HDR_LEN,
                            COMPAT_FRAME_MAX);
  compat_frame_header(frame, text);
  return COMPAT_HDR_LEN + text;
}

void serve_text(const struct live *l, uv_os_fd_t sock, uint64_t conn_id,
                struct identity *id, const char *name, size_t name_len,
                struct serve_scratch *s, uint8_t *frame,
                struct serve_result *res) {
  const char *reason = NULL;
  char why[160];
  struct resolve_stat st;
  size_t got = 0, text = 0;
  int status, rc;
  uv_os_fd_t fd;

  memset(res, 0, sizeof(*res));
  res->fd = (uv_os_fd_t)-1;
  status = open_as_client(l, sock, conn_id, id, name, name_len, s, &fd, &st,
                          &reason, res);
  if (status != PFP_OK)
    goto out;
  res->file_size = st.size;
  /* A file too large to fit whatever its text is is not read at all; one
   * byte past the bound is read, so that a file that grew says so. */
  if (st.size > COMPAT_FILE_MAX) {
    got = (size_t)COMPAT_FILE_MAX + 1;
    rc = 0;
  } else {
    rc = compat_read_file(fd, s->text, sizeof(s->text), &got);
  }
  resolve_close(fd);
  if (rc != 0) {
    status = status_of(rc, &reason);
    goto out;
  }
  if (got <= COMPAT_FILE_MAX) {
    text = compat_text_decode(s->text, got, frame + COMPAT_HDR_LEN,
                              COMPAT_TEXT_MAX);
    if (text <= COMPAT_TEXT_MAX) {
      compat_frame_header(frame, text);
      res->body_len = text;
      res->resp_len = COMPAT_HDR_LEN + text;
      res->status = PFP_OK;
      return;
    }
  }
  /* Never cut short: the sample would send the first 65535 bytes (half a
   * UTF-16 unit at the end) and the client could not tell. ERANGE: the
   * size is what is refused, as for a PFP/1 range past the end. */
  status = PFP_ERANGE;
  if (got > COMPAT_FILE_MAX)
    snprintf(why, sizeof(why),
             "the file's text does not fit in one frame (at most %u bytes "
             "of UTF-16); the file has %llu bytes",
             (unsigned)COMPAT_TEXT_MAX,
             (unsigned long long)(st.size > got ? st.size : got));
  else
    snprintf(why, sizeof(why),
             "the file's text does not fit in one frame (at most %u bytes "
             "of UTF-16); the file has %llu bytes, %llu bytes as UTF-16",
             (unsigned)COMPAT_TEXT_MAX, (unsigned long long)got,
             (unsigned long long)text);
  reason = why;
out:
  res->status = status;
  res->resp_len = serve_text_status(frame, status, reason);
}
