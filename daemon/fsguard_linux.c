/* fsguard_linux.c - safe directories and log files on Linux; see fsguard.h. */
#include "fsguard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* FIRST CUT: opens the directory and the file without following a final
 * symlink; the ancestor checks come with issue 5's hardening. */
int fsguard_open_dir(const char *path, int strict, int create, int *dirfd,
                     char *err, size_t errlen) {
  (void)strict;
  (void)create;
  *dirfd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (*dirfd < 0) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", path, strerror(e));
    return -e;
  }
  return 0;
}

int fsguard_open_log(const char *path, int strict, int *fd, char *err,
                     size_t errlen) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  int dfd = -1, f, rc = 0, flags;

  *fd = -1;
  if (path[0] != '/' || slash == NULL || slash[1] == '\0' ||
      (size_t)(slash - path) >= sizeof dir) {
    snprintf(err, errlen, "%s: not an absolute file path", path);
    return -EINVAL;
  }
  memcpy(dir, path, (size_t)(slash - path));
  dir[slash - path] = '\0';
  rc = fsguard_open_dir(dir[0] ? dir : "/", strict, 0, &dfd, err, errlen);
  if (rc != 0)
    return rc;
  /* O_NONBLOCK only for the open: a FIFO without a reader fails (ENXIO)
   * instead of blocking the control thread. */
  f = openat(dfd, slash + 1,
             O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK |
                 O_NOFOLLOW | O_NOCTTY,
             0640);
  if (f < 0) {
    rc = -errno;
    snprintf(err, errlen, "%s: %s", path, strerror(-rc));
    goto out;
  }
  flags = fcntl(f, F_GETFL);
  if (flags >= 0)
    fcntl(f, F_SETFL, flags & ~O_NONBLOCK);
  *fd = f;
out:
  close(dfd);
  return rc;
}
