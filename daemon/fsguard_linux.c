/* fsguard_linux.c - safe directories and log files on Linux; see fsguard.h.
 *
 * 1. Judging what was found: who owns it, who may write it, the messages.
 * 2. The directory walk from "/", one O_NOFOLLOW component at a time.
 * 3. Log files, opened relative to the walked directory. */
#include "fsguard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FSG_PATH_MAX 4096 /* longest path walked (PATH_MAX) */
#define FSG_MSG_MAX (2 * FSG_PATH_MAX + 256) /* two paths and the reason */
#define FSG_OPEN_TRIES 3 /* the log file vanished or changed under us */

/* ---- 1. judging ------------------------------------------------------- */

const char *fsguard_kind(unsigned m) {
  switch (m & S_IFMT) {
  case S_IFREG:
    return "regular file";
  case S_IFDIR:
    return "directory";
  case S_IFLNK:
    return "symbolic link";
  case S_IFSOCK:
    return "socket";
  case S_IFIFO:
    return "FIFO";
  case S_IFCHR:
    return "character device";
  case S_IFBLK:
    return "block device";
  default:
    return "file of unknown type";
  }
}

/* Only root and the daemon itself may own what the daemon trusts: anyone
 * else could chmod it open or, for a directory, swap its entries. */
static int owner_ok(uid_t uid) { return uid == 0 || uid == geteuid(); }

static void owner_problem(char *buf, size_t len, uid_t uid) {
  uid_t me = geteuid();

  if (me == 0)
    snprintf(buf, len, "owned by uid %lu, not root or pipefiled's user",
             (unsigned long)uid);
  else
    snprintf(buf, len,
             "owned by uid %lu, not root or pipefiled's user (uid %lu)",
             (unsigned long)uid, (unsigned long)me);
}

static void writable_problem(char *buf, size_t len, mode_t m, int dir) {
  const char *who = (m & S_IWGRP) && (m & S_IWOTH) ? "group and others"
                    : (m & S_IWGRP)                ? "group"
                                                   : "others";
  snprintf(buf, len, "writable by %s (mode %04o)%s", who, (unsigned)(m & 07777),
           dir ? " without the sticky bit" : "");
}

/* "<what> <path>: <problem>", or, when the problem is with an ancestor at,
 * "<what> <path>: its ancestor <at> is <problem>". */
static void say(char *buf, size_t len, const char *what, const char *path,
                const char *at, const char *problem) {
  if (strcmp(at, path) == 0)
    snprintf(buf, len, "%s %s: %s", what, path, problem);
  else
    snprintf(buf, len, "%s %s: its ancestor %s is %s", what, path, at, problem);
}

/* A failed ownership or mode check: an error under strict_modes (-EPERM),
 * else a warning and 0, as sshd's StrictModes. */
static int complain(const char *what, const char *path, const char *at,
                    const char *problem, int strict, char *err, size_t errlen) {
  char msg[FSG_MSG_MAX];

  say(msg, sizeof msg, what, path, at, problem);
  if (strict) {
    snprintf(err, errlen, "%s; refusing (strict_modes = no to override)", msg);
    return -EPERM;
  }
  /* Handed up, not logged here: the log itself opens files through this
   * module. Several warnings are joined. */
  size_t used = strnlen(err, errlen);
  if (used + 1 < errlen)
    snprintf(err + used, errlen - used,
             "%s%s; continuing because "
             "strict_modes = no",
             used > 0 ? " | " : "", msg);
  return 0;
}

/* A directory on the way to path (or path itself): trusted owner, and not
 * writable by others unless sticky (there they cannot rename or remove
 * entries they do not own). */
static int judge_dir(const struct stat *st, const char *what, const char *path,
                     const char *at, int strict, char *err, size_t errlen) {
  char problem[160];
  int rc;

  if (!owner_ok(st->st_uid)) {
    owner_problem(problem, sizeof problem, st->st_uid);
    rc = complain(what, path, at, problem, strict, err, errlen);
    if (rc != 0)
      return rc;
  }
  if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(st->st_mode & S_ISVTX)) {
    writable_problem(problem, sizeof problem, st->st_mode, 1);
    rc = complain(what, path, at, problem, strict, err, errlen);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* A symbolic link at at (path or an ancestor) is refused whatever
 * strict_modes says: following it is exactly how the daemon would be
 * steered elsewhere. rest is what path has after at; the message offers
 * the real path, resolved here only for the admin to read. */
static int refuse_link(const char *what, const char *path, const char *at,
                       const char *rest, char *err, size_t errlen) {
  char msg[FSG_MSG_MAX];
  char *real = realpath(at, NULL);

  say(msg, sizeof msg, what, path, at, "a symbolic link");
  if (real != NULL)
    snprintf(err, errlen, "%s; refusing to follow it (use the real path, %s%s)",
             msg, strcmp(real, "/") == 0 && rest[0] == '/' ? "" : real, rest);
  else
    snprintf(err, errlen, "%s; refusing to follow it (use the real path)", msg);
  free(real);
  return -ELOOP;
}

/* ---- 2. the walk ------------------------------------------------------ */

/* Make the missing directory name in parent (already judged), 0755 whatever
 * the umask, and open it without following. fchmod needs a real
 * descriptor (not O_PATH); the O_NOFOLLOW open makes sure the mode goes to
 * the directory just made and not through a symlink swapped in. Returns 0
 * with *fd (O_PATH), -EEXIST if something appeared there meanwhile (the
 * caller then treats it as any existing entry), or -errno. */
static int make_dir(int parent, const char *name, int *fd) {
  struct stat st;
  int rfd, rc = 0;

  *fd = -1;
  if (mkdirat(parent, name, 0755) != 0)
    return -errno;
  rfd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rfd < 0)
    return -errno;
  if (fstat(rfd, &st) != 0) {
    rc = -errno;
    goto out;
  }
  /* Ours unless swapped meanwhile; then it is judged, not chmod'ed. */
  if (st.st_uid == geteuid() && (st.st_mode & 07777) != 0755 &&
      fchmod(rfd, 0755) != 0) {
    rc = -errno;
    goto out;
  }
  *fd = openat(rfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (*fd < 0)
    rc = -errno;
out:
  close(rfd);
  return rc;
}

/* path (absolute) without repeated slashes, "." components or a trailing
 * slash, into norm (FSG_PATH_MAX bytes), so that messages name each
 * directory once and as the admin would write it. ".." is refused: the
 * walk would judge a directory and then leave it, and a configured path
 * has no reason to go back up. */
static int normalise(const char *what, const char *path, char *norm, char *err,
                     size_t errlen) {
  size_t len = 0;
  const char *p = path;

  if (path == NULL || path[0] != '/') {
    snprintf(err, errlen, "%s %s: not an absolute path", what,
             path ? path : "(none)");
    return -EINVAL;
  }
  if (strlen(path) >= FSG_PATH_MAX) {
    snprintf(err, errlen, "%s %.64s...: path too long", what, path);
    return -ENAMETOOLONG;
  }
  for (;;) {
    const char *end;
    size_t n;

    while (*p == '/')
      p++;
    if (*p == '\0')
      break;
    end = strchrnul(p, '/');
    n = (size_t)(end - p);
    if (n > NAME_MAX) {
      snprintf(err, errlen, "%s %s: a component is longer than %d bytes", what,
               path, NAME_MAX);
      return -ENAMETOOLONG;
    }
    if (n == 2 && p[0] == '.' && p[1] == '.') {
      snprintf(err, errlen, "%s %s: \"..\" in the path; give it without", what,
               path);
      return -EINVAL;
    }
    if (!(n == 1 && p[0] == '.')) {
      norm[len++] = '/';
      memcpy(norm + len, p, n);
      len += n;
    }
    p = end;
  }
  if (len == 0)
    norm[len++] = '/';
  norm[len] = '\0';
  return 0;
}

int fsguard_open_dir(const char *what, const char *path, int strict, int create,
                     uv_os_fd_t *dirfd, char *err, size_t errlen) {
  char norm[FSG_PATH_MAX]; /* path, normalised */
  char at[FSG_PATH_MAX];   /* the part of it walked so far */
  char name[NAME_MAX + 1];
  size_t atlen = 1;
  const char *p;
  struct stat st;
  int fd = -1, nfd, rc;
  if (errlen > 0)
    err[0] = '\0'; /* no warning yet */

  *dirfd = -1;
  rc = normalise(what, path, norm, err, errlen);
  if (rc != 0)
    return rc;
  strcpy(at, "/");
  fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0) {
    rc = -errno;
    snprintf(err, errlen, "%s %s: /: %s", what, norm, strerror(-rc));
    goto out;
  }
  rc = judge_dir(&st, what, norm, at, strict, err, errlen);
  if (rc != 0)
    goto out;
  for (p = norm + 1; *p != '\0';) {
    const char *end = strchrnul(p, '/');
    size_t n = (size_t)(end - p);

    memcpy(name, p, n);
    name[n] = '\0';
    p = *end ? end + 1 : end;
    if (atlen > 1)
      at[atlen++] = '/';
    memcpy(at + atlen, name, n + 1);
    atlen += n;

    nfd = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (nfd < 0 && errno == ENOENT && *end == '\0' && create) {
      rc = make_dir(fd, name, &nfd);
      if (rc == -EEXIST) { /* made meanwhile: judged like any other */
        nfd = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      } else if (rc != 0) {
        snprintf(err, errlen, "%s %s: cannot create it: %s", what, norm,
                 strerror(-rc));
        goto out;
      }
    }
    if (nfd < 0) {
      rc = -errno;
      /* O_PATH|O_NOFOLLOW|O_DIRECTORY on a symlink fails ENOTDIR (or
       * ELOOP): look at the entry itself to say which. */
      if ((rc == -ENOTDIR || rc == -ELOOP) &&
          fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode))
        rc = refuse_link(what, norm, at, end, err, errlen);
      else if (rc == -ENOENT)
        say(err, errlen, what, norm, at, "missing");
      else if (rc == -ENOTDIR)
        say(err, errlen, what, norm, at, "not a directory");
      else
        snprintf(err, errlen, "%s %s: %s: %s", what, norm, at, strerror(-rc));
      goto out;
    }
    close(fd);
    fd = nfd;
    if (fstat(fd, &st) != 0) {
      rc = -errno;
      snprintf(err, errlen, "%s %s: %s: %s", what, norm, at, strerror(-rc));
      goto out;
    }
    if (S_ISLNK(st.st_mode)) { /* in case the link itself was opened */
      rc = refuse_link(what, norm, at, end, err, errlen);
      goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
      rc = -ENOTDIR;
      say(err, errlen, what, norm, at, "not a directory");
      goto out;
    }
    rc = judge_dir(&st, what, norm, at, strict, err, errlen);
    if (rc != 0)
      goto out;
  }
  *dirfd = fd;
  fd = -1;
out:
  if (fd >= 0)
    close(fd);
  return rc;
}

/* ---- 3. log files ----------------------------------------------------- */

/* An existing log file, as fstatat saw it without following: the type is
 * refused outright, owner, mode and links as strict_modes says. A second
 * hard link would let whoever made it (in a sticky directory, say) point
 * the log at a file of root's that is not writable by others. */
static int judge_log(const struct stat *st, const char *path, int strict,
                     char *err, size_t errlen) {
  char problem[160];
  int rc;

  if (S_ISLNK(st->st_mode)) {
    snprintf(err, errlen, "log file %s: a symbolic link; refusing to follow it",
             path);
    return -ELOOP;
  }
  if (!S_ISREG(st->st_mode) && !S_ISFIFO(st->st_mode)) {
    snprintf(err, errlen,
             "log file %s: a %s, not a regular file or a FIFO; refusing", path,
             fsguard_kind(st->st_mode));
    return -EINVAL;
  }
  if (!owner_ok(st->st_uid)) {
    owner_problem(problem, sizeof problem, st->st_uid);
    rc = complain("log file", path, path, problem, strict, err, errlen);
    if (rc != 0)
      return rc;
  }
  if (st->st_mode & (S_IWGRP | S_IWOTH)) {
    writable_problem(problem, sizeof problem, st->st_mode, 0);
    rc = complain("log file", path, path, problem, strict, err, errlen);
    if (rc != 0)
      return rc;
  }
  if (S_ISREG(st->st_mode) && st->st_nlink > 1) {
    snprintf(problem, sizeof problem, "a file with %lu hard links",
             (unsigned long)st->st_nlink);
    rc = complain("log file", path, path, problem, strict, err, errlen);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int fsguard_open_log(const char *path, int strict, uv_os_fd_t *fd, char *err,
                     size_t errlen) {
  char dir[FSG_PATH_MAX];
  const char *slash = path ? strrchr(path, '/') : NULL;
  const char *name;
  struct stat seen, got;
  int dfd = -1, f = -1, rc = 0, flags;
  if (errlen > 0)
    err[0] = '\0'; /* no warning yet */

  *fd = -1;
  if (path == NULL || path[0] != '/' || slash == NULL || slash[1] == '\0' ||
      strcmp(slash + 1, ".") == 0 || strcmp(slash + 1, "..") == 0 ||
      (size_t)(slash - path) >= sizeof dir) {
    snprintf(err, errlen, "log file %s: not an absolute file path",
             path ? path : "(none)");
    return -EINVAL;
  }
  name = slash + 1;
  memcpy(dir, path, (size_t)(slash - path));
  dir[slash - path] = '\0';
  rc = fsguard_open_dir("log directory", dir[0] ? dir : "/", strict, 0, &dfd,
                        err, errlen);
  if (rc != 0)
    return rc;
  /* O_NONBLOCK only for the open: a FIFO without a reader fails (ENXIO)
   * instead of blocking the calling thread. */
  for (int i = 0; i < FSG_OPEN_TRIES; i++) {
    /* A new file is certainly ours and a regular file: O_EXCL never
     * follows a symlink, even a dangling one. */
    f = openat(dfd, name,
               O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NONBLOCK |
                   O_NOFOLLOW | O_NOCTTY,
               0640);
    if (f >= 0)
      break;
    if (errno != EEXIST) {
      rc = -errno;
      snprintf(err, errlen, "log file %s: %s", path, strerror(-rc));
      goto out;
    }
    /* It exists: judge what is there before opening it (opening a device
     * may already do something), then check we opened that very file. */
    if (fstatat(dfd, name, &seen, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT)
        continue; /* removed meanwhile (rotation): create it */
      rc = -errno;
      snprintf(err, errlen, "log file %s: %s", path, strerror(-rc));
      goto out;
    }
    rc = judge_log(&seen, path, strict, err, errlen);
    if (rc != 0)
      goto out;
    f = openat(dfd, name,
               O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW |
                   O_NOCTTY);
    if (f < 0) {
      if (errno == ENOENT)
        continue;
      rc = -errno;
      if (rc == -ELOOP) /* swapped for a link since fstatat */
        snprintf(err, errlen,
                 "log file %s: a symbolic link; refusing to follow it", path);
      else
        snprintf(err, errlen, "log file %s: %s", path, strerror(-rc));
      goto out;
    }
    if (fstat(f, &got) != 0) {
      rc = -errno;
      snprintf(err, errlen, "log file %s: %s", path, strerror(-rc));
      goto out;
    }
    if (got.st_dev == seen.st_dev && got.st_ino == seen.st_ino)
      break;
    close(f); /* replaced between the look and the open: look again */
    f = -1;
  }
  if (f < 0) {
    rc = -EAGAIN;
    snprintf(err, errlen, "log file %s: keeps changing while being opened",
             path);
    goto out;
  }
  flags = fcntl(f, F_GETFL);
  if (flags < 0 || fcntl(f, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    rc = -errno;
    snprintf(err, errlen, "log file %s: %s", path, strerror(-rc));
    goto out;
  }
  *fd = f;
  f = -1;
out:
  if (f >= 0)
    close(f);
  close(dfd);
  return rc;
}
