/* resolve_linux.c - confined open on Linux: openat2(RESOLVE_BENEATH), with
 * an O_NOFOLLOW component walk for kernels before 5.6. */
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define OPEN_FLAGS (O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
#define OPENAT2_RETRIES 8

/* 1 until openat2 turns out to be missing (ENOSYS); then the walk. */
static atomic_int have_openat2 = 1;

int resolve_open_root(const char *root, int *dirfd) {
  *dirfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (*dirfd < 0)
    return -errno;
  return 0;
}

const char *resolve_method(void) {
  return atomic_load(&have_openat2) ? "openat2" : "walk";
}

int resolve_open(int dirfd, const char *relpath, int *fd) {
  *fd = -1;
  if (atomic_load(&have_openat2)) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = OPEN_FLAGS;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    for (int i = 0; i < OPENAT2_RETRIES; i++) {
      long r = syscall(SYS_openat2, dirfd, relpath, &how, sizeof(how));
      if (r >= 0) {
        *fd = (int)r;
        return 0;
      }
      /* EAGAIN: a concurrent rename or mount made the kernel unsure the
       * lookup stayed beneath; it asks us to try again. */
      if (errno == EAGAIN || errno == EINTR)
        continue;
      if (errno != ENOSYS)
        return -errno;
      atomic_store(&have_openat2, 0);
      break;
    }
    if (atomic_load(&have_openat2))
      return -EAGAIN;
  }
  return resolve_open_walk(dirfd, relpath, fd);
}

/* ENOTDIR or ELOOP on a component may mean "that was a symlink": tell the
 * client that the path was refused, not that it does not exist. */
static int symlink_error(int dfd, const char *name, int err) {
  struct stat st;
  if ((err == ENOTDIR || err == ELOOP) &&
      fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
    return -EXDEV;
  return -err;
}

int resolve_open_walk(int dirfd, const char *relpath, int *fd) {
  char comp[256];
  const char *p = relpath;
  int dfd = dirfd;
  int rc = 0;

  *fd = -1;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (len >= sizeof(comp)) {
      rc = -ENAMETOOLONG;
      goto out;
    }
    memcpy(comp, p, len);
    comp[len] = '\0';
    if (!slash) {
      int f = openat(dfd, comp, OPEN_FLAGS | O_NOFOLLOW);
      if (f < 0) {
        rc = symlink_error(dfd, comp, errno);
        goto out;
      }
      *fd = f;
      goto out;
    }
    int next = openat(dfd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      rc = symlink_error(dfd, comp, errno);
      goto out;
    }
    if (dfd != dirfd)
      close(dfd);
    dfd = next;
    p = slash + 1;
  }
out:
  if (dfd != dirfd)
    close(dfd);
  return rc;
}
