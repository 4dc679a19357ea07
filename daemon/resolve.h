/* resolve.h - open a file beneath the served root, never outside it.
 *
 * The path is already normalized (path.h): relative, no "." or "..". The
 * kernel does the confinement where it can (Linux: openat2 with
 * RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS, so symlinks are followed only while
 * they stay beneath the root); elsewhere a component walk that refuses every
 * symlink. Files are opened non-blocking and without becoming a controlling
 * terminal, so a FIFO or device can never stall a worker. Called with the
 * client's identity in force: permissions are checked at open. */
#ifndef PIPEFILED_RESOLVE_H
#define PIPEFILED_RESOLVE_H

/* Open the root directory for later resolve_open() calls.
 * Returns 0 or -errno (-ENOTDIR if it is not a directory). */
int resolve_open_root(const char *root, int *dirfd);

/* Open relpath beneath dirfd for reading. Returns 0 and *fd, or -errno:
 * -EXDEV when the path (through a symlink) leaves the root, and the usual
 * open errors (-ENOENT, -EACCES, -ELOOP, ...). *fd is -1 on error. */
int resolve_open(int dirfd, const char *relpath, int *fd);

/* The fallback walk, used when the kernel lacks openat2; exposed so tests can
 * run it on any kernel. Any symlink on the way is refused with -EXDEV. */
int resolve_open_walk(int dirfd, const char *relpath, int *fd);

/* "openat2" or "walk": which method resolve_open() uses (for the start-up
 * log line). */
const char *resolve_method(void);

#endif
