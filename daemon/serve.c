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
  case UV_EISDIR:
  case UV_ENXIO: /* a socket file, or a device with nothing behind it */
  case UV_ENODEV:
    return PFP_ENOTREG;
  default:
    log_error("open failed: %s; answering EIO", syserr_text(err));
    return PFP_EIO;
  }
}

void serve_request(const struct live *l, uv_os_fd_t sock, uint64_t conn_id,
                   struct identity *id, const struct pfp_request *req,
                   struct serve_scratch *s, uint8_t *resp,
                   struct serve_result *res) {
  const char *reason = NULL;
  struct resolve_stat st;
  int status, rc, have_file = 0;
  uv_os_fd_t fd;

  memset(&st, 0, sizeof(st));
  memset(res, 0, sizeof(*res));
  res->fd = (uv_os_fd_t)-1;
  fd = (uv_os_fd_t)-1;

  rc = identity_complete(id, sock, &s->id);
  if (rc == UV_EPERM) {
    /* The client withheld its identity (Windows: it connected at the
     * Anonymous or Identification level): nothing can be opened as it. */
    log_warn("conn %llu: pid %ld did not permit impersonation",
             (unsigned long long)conn_id, (long)id->pid);
    status = PFP_EPERM;
    reason = "the client did not permit impersonation (it connected at "
             "the Anonymous or Identification level)";
    goto out;
  }
  if (rc != 0) {
    /* Without the whole identity we cannot act as the client: refuse. */
    log_warn("conn %llu: cannot learn the identity of pid %ld: %s",
             (unsigned long long)conn_id, (long)id->pid, syserr_text(rc));
    status = PFP_EPERM;
    reason = "the server cannot learn this client's identity";
    goto out;
  }
  if (policy_check(&l->cfg, id, &reason) != 0) {
    status = PFP_EPERM;
    goto out;
  }
  rc = path_normalize(req->path, req->path_len, s->path, sizeof(s->path));
  if (rc != 0) {
    status = status_of(rc, &reason);
    goto out;
  }
  res->resolved = s->path;
  res->resolved_len = strlen(s->path);
  if (identity_enter(id) != 0) {
    status = PFP_EPERM;
    reason = identity_privileged()
                 ? "the server could not switch to this client's identity"
                 : "the server runs unprivileged and serves only its own user";
    goto out;
  }
  rc = resolve_open(l->root_fd, s->path, &fd);
  identity_leave();
  if (rc != 0) {
    status = status_of(rc, &reason);
    goto out;
  }
  have_file = 1;
  rc = resolve_fstat(fd, &st);
  if (rc != 0) {
    status = status_of(rc, &reason);
    goto out;
  }
  if (!st.regular) {
    status = PFP_ENOTREG;
    goto out;
  }
  /* From here on file_size is known; it goes to the log even for ERANGE,
   * whose wire header says 0. */
  res->file_size = st.size;
  if (req->op == PFP_OP_GET && pfp_body_len(res->file_size, req->offset,
                                            req->length, &res->body_len) != 0) {
    status = PFP_ERANGE;
    goto out;
  }
  res->offset = req->offset;
  status = PFP_OK;

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
  else if (have_file)
    resolve_close(fd);
}
