/* resolve_linux.c - confined open on Linux: openat2(RESOLVE_BENEATH), and a
 * userspace component walk with the same rules for kernels before 5.6 and
 * for when openat2 keeps answering EAGAIN (a rename storm).
 *
 * Map: resolve_open_root, resolve_method; resolve_open (openat2, a few quick
 * retries, then the walk); the walk: its directory stack (walk_push,
 * walk_pop), link splicing (walk_follow), the loop (resolve_open_walk),
 * which bounds its own work (WALK_STEPS_MAX, WALK_SPLICED_MAX). */
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define OPEN_FLAGS (O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
#define DIR_FLAGS (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* openat2 attempts before the walk. The kernel answers EAGAIN for a scoped
 * lookup whenever any rename or mount anywhere on the system ran while it
 * walked a "..": under a rename storm a retry tends to fail the same way, so
 * there are only a few, separated by a sched_yield() (microseconds, never a
 * sleep), and the walk, which never asks the kernel for "..", does the rest. */
#define OPENAT2_TRIES 3

#define WALK_LINKS_MAX 40   /* symlinks followed per walk: the kernel's */
#define WALK_DEPTH_MAX 1024 /* directories below the root on the stack */
#define WALK_FDS_HELD 16    /* of those, open at once (the rest by dev/ino) */
#define WALK_PATH_MAX (2 * PATH_MAX) /* path left to walk, links spliced in */

/* The work one walk may do: components looked at, and bytes of link text
 * spliced in. 40 links of ~4 KiB of "a/../" each are some 64,000 steps and
 * 160 KiB; a client pipelining such lookups would hold a worker for
 * ~150 ms a request. Past either bound the walk gives up with ELOOP, as the
 * kernel does for too many links. A real path (at most PATH_MAX, and
 * links of sane length) stays far below both. openat2 needs no such
 * bound of ours: the kernel caps its work at 40 links of PATH_MAX each. */
#define WALK_STEPS_MAX 4096
#define WALK_SPLICED_MAX (64u << 10)

/* 1 until openat2 turns out to be missing (ENOSYS); then the walk. */
static atomic_int have_openat2 = 1;

int resolve_open_root(const char *root, uv_os_fd_t *dirfd) {
  *dirfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (*dirfd < 0)
    return -errno;
  return 0;
}

const char *resolve_method(void) {
  return atomic_load(&have_openat2) ? "openat2" : "walk";
}

int resolve_open(uv_os_fd_t dirfd, const char *relpath, uv_os_fd_t *fd) {
  *fd = -1;
  if (!atomic_load(&have_openat2))
    return resolve_open_walk(dirfd, relpath, fd);

  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = OPEN_FLAGS;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (int i = 0; i < OPENAT2_TRIES; i++) {
    long r = syscall(SYS_openat2, dirfd, relpath, &how, sizeof(how));
    if (r >= 0) {
      *fd = (int)r;
      return 0;
    }
    if (errno == ENOSYS) {
      atomic_store(&have_openat2, 0);
      break;
    }
    /* EAGAIN is either the rename/mount race above or a lease on the file
     * (O_NONBLOCK open of a leased file): openat2 cannot tell us which.
     * The walk can: its final open is a plain openat. */
    if (errno != EAGAIN && errno != EINTR)
      return -errno;
    if (i > 0 && i + 1 < OPENAT2_TRIES)
      sched_yield();
  }
  return resolve_open_walk(dirfd, relpath, fd);
}

/* ---------------------------------------------------------------- walk */

/* One directory on the way down from the root. dir[k] is a child of
 * dir[k-1] as found by name, so ".." is a pop and never a kernel lookup of
 * "..", which is what a concurrent rename could send above the root. */
struct walk_dir {
  int fd;    /* O_PATH descriptor, or -1 while closed to bound the fds held */
  dev_t dev; /* identity recorded when fd was closed; checked on reopening */
  ino_t ino;
};

struct walk {
  struct walk_dir dir[WALK_DEPTH_MAX + 1]; /* [0]: the root, not ours */
  int top;                                 /* the current directory */
  int low;        /* lowest k >= 1 with an open fd: exactly low..top are open */
  int links;      /* symlinks followed so far */
  unsigned steps; /* components looked at so far (WALK_STEPS_MAX) */
  size_t spliced; /* bytes of link text spliced so far (WALK_SPLICED_MAX) */
  size_t start;   /* the path left: path[start..], NUL-terminated */
  char path[WALK_PATH_MAX]; /* kept at the end, so links splice in front */
  char link[PATH_MAX];      /* one symlink's target */
};

/* Enter the directory fd (a child of the current one). Past WALK_FDS_HELD
 * open directories the oldest is closed, its identity kept, so a deep tree
 * cannot make a worker hold hundreds of descriptors. Takes fd. */
static int walk_push(struct walk *w, int fd) {
  struct stat st;

  if (w->top == WALK_DEPTH_MAX) {
    close(fd);
    return -ENAMETOOLONG;
  }
  w->top++;
  w->dir[w->top].fd = fd;
  if (w->top - w->low + 1 > WALK_FDS_HELD) {
    struct walk_dir *old = &w->dir[w->low];
    if (fstat(old->fd, &st) != 0)
      return -errno; /* the fd stays on the stack: closed at the end */
    old->dev = st.st_dev;
    old->ino = st.st_ino;
    close(old->fd);
    old->fd = -1;
    w->low++;
  }
  return 0;
}

/* "..": back to the directory we came from, if the current one may be
 * searched. Above the root is -EXDEV, as RESOLVE_BENEATH says. A parent whose
 * fd was closed is reopened as the current directory's "..", accepted only if
 * it is still the same directory (else the tree moved during the walk and the
 * path is -ENOENT): the current directory may since have been moved anywhere,
 * even out of the root, and its ".." with it. */
static int walk_pop(struct walk *w) {
  struct walk_dir *cur, *up;
  struct stat st;

  if (w->top == 0)
    return -EXDEV;
  cur = &w->dir[w->top];
  up = &w->dir[w->top - 1];
  if (w->top - 1 >= 1 && up->fd < 0) {
    int fd = openat(cur->fd, "..", DIR_FLAGS);
    if (fd < 0)
      return -errno;
    if (fstat(fd, &st) != 0 || st.st_dev != up->dev || st.st_ino != up->ino) {
      close(fd);
      return -ENOENT;
    }
    up->fd = fd;
    w->low = w->top - 1;
  } else {
    /* The kernel looks ".." up in the current directory, which takes
     * search permission there (that openat of ".." above checks it too). */
    int fd = openat(cur->fd, ".", DIR_FLAGS);
    if (fd < 0)
      return -errno;
    close(fd);
  }
  close(cur->fd);
  cur->fd = -1;
  w->top--;
  if (w->top == 0)
    w->low = 1;
  return 0;
}

/* name in the current directory did not open as expected (err): if it is a
 * symlink, splice its target in front of what follows it in the path
 * (path[w->start..]) and return 0; if not, -err. An absolute target is
 * -EXDEV, as RESOLVE_BENEATH says; the target's ".." are walked like any
 * other, so one that climbs above the root is -EXDEV too. Magic links
 * (/proc/PID/fd/N) are never followed: their text is spliced, not their
 * object. */
static int walk_follow(struct walk *w, const char *name, int err) {
  ssize_t n = readlinkat(w->dir[w->top].fd, name, w->link, sizeof(w->link));

  if (n < 0)
    return errno == EINVAL ? -err : -errno; /* EINVAL: not a symlink */
  if ((size_t)n == sizeof(w->link))
    return -ENAMETOOLONG;
  if (++w->links > WALK_LINKS_MAX)
    return -ELOOP;
  w->spliced += (size_t)n;
  if (w->spliced > WALK_SPLICED_MAX)
    return -ELOOP;
  if (n == 0)
    return -ENOENT;
  if (w->link[0] == '/')
    return -EXDEV;
  if ((size_t)n > w->start)
    return -ENAMETOOLONG;
  w->start -= (size_t)n;
  memcpy(w->path + w->start, w->link, (size_t)n);
  return 0;
}

/* Close the directories the walk opened (not the root: the caller's). */
static void walk_end(struct walk *w) {
  for (int k = 1; k <= w->top; k++)
    if (w->dir[k].fd >= 0)
      close(w->dir[k].fd);
}

int resolve_open_walk(uv_os_fd_t dirfd, const char *relpath, uv_os_fd_t *fd) {
  struct walk w;
  size_t len = strlen(relpath);
  char name[NAME_MAX + 1];
  int rc = 0;

  *fd = -1;
  w.dir[0].fd = dirfd;
  w.top = 0;
  w.low = 1;
  w.links = 0;
  w.steps = 0;
  w.spliced = 0;
  if (relpath[0] == '/')
    return -EXDEV;
  if (len == 0)
    return -ENOENT;
  if (len >= sizeof(w.path))
    return -ENAMETOOLONG;
  w.start = sizeof(w.path) - 1 - len;
  memcpy(w.path + w.start, relpath, len + 1);

  for (;;) {
    const char *p = w.path + w.start;
    while (*p == '/')
      p++;
    size_t n = strcspn(p, "/");
    const char *after = p + n; /* the slashes after it, or the end */
    const char *q = after;
    while (*q == '/')
      q++;
    int last = *q == '\0';
    int must_dir = last && *after == '/'; /* "name/" must be a directory */
    int cur = w.dir[w.top].fd;

    if (n == 0) { /* only slashes left: a link's target ended the path */
      rc = -ENOENT;
      goto out;
    }
    if (++w.steps > WALK_STEPS_MAX) {
      rc = -ELOOP;
      goto out;
    }
    if (n >= sizeof(name)) {
      rc = -ENAMETOOLONG;
      goto out;
    }
    memcpy(name, p, n);
    name[n] = '\0';
    /* What follows name, slashes included: a spliced target keeps them. */
    w.start = (size_t)(after - w.path);

    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
      if (name[1] == '.' && (rc = walk_pop(&w)) != 0)
        goto out;
      if (!last)
        continue;
      /* The path ends in a directory: open it as any final component. */
      *fd = openat(w.dir[w.top].fd, ".", OPEN_FLAGS);
      rc = *fd < 0 ? -errno : 0;
      goto out;
    }
    if (!last) {
      int next = openat(cur, name, DIR_FLAGS);
      if (next >= 0) {
        if ((rc = walk_push(&w, next)) != 0)
          goto out;
        continue;
      }
      /* O_NOFOLLOW|O_DIRECTORY on a symlink: ENOTDIR (or ELOOP). */
      if (errno != ENOTDIR && errno != ELOOP) {
        rc = -errno;
        goto out;
      }
      if ((rc = walk_follow(&w, name, ENOTDIR)) != 0)
        goto out;
      continue;
    }
    /* The final component, with the real flags. O_NOFOLLOW makes a symlink
     * ELOOP (ENOTDIR with O_DIRECTORY), never followed by the kernel; a
     * plain open never answers EAGAIN for a rename race, so EAGAIN here is
     * a lease or lock on the file, and it goes back as it is. */
    int f = openat(cur, name,
                   OPEN_FLAGS | O_NOFOLLOW | (must_dir ? O_DIRECTORY : 0));
    if (f >= 0) {
      *fd = f;
      goto out;
    }
    if (errno != ELOOP && !(must_dir && errno == ENOTDIR)) {
      rc = -errno;
      goto out;
    }
    if ((rc = walk_follow(&w, name, errno)) != 0)
      goto out;
  }
out:
  walk_end(&w);
  if (rc != 0 && *fd >= 0) {
    close(*fd);
    *fd = -1;
  }
  return rc;
}

int resolve_fstat(uv_os_fd_t fd, struct resolve_stat *st) {
  struct stat sb;

  if (fstat(fd, &sb) != 0)
    return -errno;
  st->size = (uint64_t)sb.st_size;
  st->mtime = (int64_t)sb.st_mtim.tv_sec;
  /* Not ctime: a rename over the file or its unlink moves that, and the
   * open file still holds the very same bytes. */
  st->version =
      (uint64_t)sb.st_mtim.tv_sec * 1000000000u + (uint64_t)sb.st_mtim.tv_nsec;
  st->regular = S_ISREG(sb.st_mode);
  return 0;
}

void resolve_close(uv_os_fd_t fd) { close(fd); }
