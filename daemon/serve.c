/* serve.c - one request, start to response header; see serve.h. */
#include "serve.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "path.h"
#include "policy.h"
#include "resolve.h"

size_t serve_status_only(uint8_t *resp, int status, const char *reason) {
  char msg[PFP_MSG_MAX + 1];
  struct pfp_response r;

  memset(&r, 0, sizeof(r));
  r.status = (uint8_t)status;
  snprintf(msg, sizeof(msg), "%s: %s", pfp_status_name(status),
           reason ? reason : pfp_status_message(status));
  return pfp_response_encode(resp, &r, msg);
}

/* The one mapping from an OS error to a wire status. Anything unforeseen is
 * a server error, logged (log.h bounds how often), never a success. */
static int status_of(int err, const char **reason) {
  *reason = NULL;
  switch (err) {
  case ENOENT:
  case ENOTDIR:
    return PFP_ENOENT;
  case ENAMETOOLONG:
    *reason = "file name too long";
    return PFP_ENOENT;
  case EACCES:
  case EPERM:
    return PFP_EACCES;
  case EXDEV:
    return PFP_EXDEV;
  case ELOOP:
    *reason = "symbolic link loop, or a link that may not be followed";
    return PFP_EXDEV;
  case EAGAIN:
    /* resolve.h: not a race (those are retried), a lease or lock another
     * process holds on the file; opening it would mean waiting for that.
     * Said at once and not logged: any client can cause it at will. */
    *reason = "the file is leased or locked by another process; try again "
              "later";
    return PFP_EBUSY;
  case EISDIR:
  case ENXIO: /* a socket file, or a device with nothing behind it */
  case ENODEV:
    return PFP_ENOTREG;
  default:
    log_error("open failed: %s; answering EIO", strerror(err));
    return PFP_EIO;
  }
}

void serve_request(const struct live *l, int sock, uint64_t conn_id,
                   struct identity *id, const struct pfp_request *req,
                   struct serve_scratch *s, uint8_t *resp,
                   struct serve_result *res) {
  const char *reason = NULL;
  struct stat st;
  int status, rc, fd = -1;

  memset(res, 0, sizeof(*res));
  res->fd = -1;

  /* A peer's groups are fixed when it connects: successive requests on one
   * connection (keep-alive, pipelining) need not ask the kernel again.
   * Connection ids are never reused, so a match is always that peer. */
  if (s->groups_of == conn_id) {
    id->groups = s->groups;
    id->ngroups = s->ngroups;
    rc = 0;
  } else {
    s->groups_of = 0;
    rc = identity_groups(sock, id, s->groups, IDENTITY_GROUPS_MAX);
    if (rc == 0) {
      s->groups_of = conn_id;
      s->ngroups = id->ngroups;
    }
  }
  if (rc != 0) {
    /* Without the client's groups we cannot act as it: refuse. */
    log_warn("cannot read the groups of pid %ld: %s", (long)id->pid,
             strerror(-rc));
    status = PFP_EPERM;
    reason = "the server cannot learn this client's groups";
    goto out;
  }
  if (policy_check(&l->cfg, id, &reason) != 0) {
    status = PFP_EPERM;
    goto out;
  }
  rc = path_normalize(req->path, req->path_len, s->path, sizeof(s->path));
  if (rc != 0) {
    status = status_of(-rc, &reason);
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
    status = status_of(-rc, &reason);
    goto out;
  }
  if (fstat(fd, &st) != 0) {
    status = status_of(errno, &reason);
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    status = PFP_ENOTREG;
    goto out;
  }
  /* From here on file_size is known; it goes to the log even for ERANGE,
   * whose wire header says 0. */
  res->file_size = (uint64_t)st.st_size;
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
                             .mtime = (int64_t)st.st_mtim.tv_sec,
                             .body_len = res->body_len};
    res->resp_len = pfp_response_encode(resp, &r, NULL);
  }
  if (status == PFP_OK && res->body_len > 0)
    res->fd = fd;
  else if (fd >= 0)
    close(fd);
}
