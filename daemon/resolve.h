/* resolve.h - open a file beneath the served root, never outside it.
 *
 * The path is already normalized (path.h): relative, no "." or "..". The
 * kernel does the confinement where it can (Linux: openat2 with
 * RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS, so symlinks are followed only while
 * they stay beneath the root); where it cannot, or when it keeps answering
 * EAGAIN (a rename storm elsewhere on the system), a userspace walk with the
 * same rules does it. Files are opened non-blocking and without becoming a
 * controlling terminal, so a FIFO or device can never stall a worker, and
 * the call never sleeps. Called with the client's identity in force:
 * permissions are checked at open, component by component. */
#ifndef PIPEFILED_RESOLVE_H
#define PIPEFILED_RESOLVE_H

#include <stdint.h>
#include <uv.h>

/* What serving needs to know of a file resolve_open() opened. */
struct resolve_stat {
  uint64_t size;
  int64_t mtime;    /* seconds since the epoch */
  uint64_t version; /* changes when the file's data or size changes, as
                       finely as the platform tells (the last write time:
                       Linux ns, Windows 100 ns) */
  int regular;      /* a regular file: not a directory, FIFO, device, ... */
};

/* Open the root directory for later resolve_open() calls (Linux: O_PATH,
 * so it grants nothing by itself). Returns 0 or a UV_E* code (UV_ENOTDIR if
 * it is not a directory). */
int resolve_open_root(const char *root, uv_os_fd_t *dirfd);

/* Open relpath beneath dirfd for reading. Returns 0 and *fd, or a UV_E*
 * code: UV_EXDEV when the path (itself, or through a symlink: an absolute
 * target, or ".." above the root) leaves the root; UV_ELOOP after 40
 * symlinks, for a magic link, or (in the walk) past 4096 components or
 * 64 KiB of link text in one lookup (Windows: any symbolic link, junction
 * or other name-surrogate reparse point beneath the root, wherever it
 * points: Windows follows no link); UV_EAGAIN when the file is leased or
 * locked by another process, so opening it would have to wait; and the usual
 * open errors (UV_ENOENT, UV_EACCES, UV_ENOTDIR, UV_ENAMETOOLONG, ...). *fd is
 * not valid on error (Linux: -1). Never UV_EAGAIN for a rename or mount
 * race: that is retried. */
int resolve_open(uv_os_fd_t dirfd, const char *relpath, uv_os_fd_t *fd);

/* The userspace walk, used when the kernel lacks openat2 or after openat2's
 * EAGAINs; exposed so tests can run it on any kernel. Same contract as
 * resolve_open(): each component is opened with O_NOFOLLOW from its
 * parent's descriptor; a symlink's target is read and walked in its place,
 * relative to the link's directory; ".." goes back to the directory the
 * walk came from (never above the root: UV_EXDEV) instead of asking the
 * kernel for "..", so a concurrent rename cannot lead it out. Paths more
 * than 1024 directories deep are UV_ENAMETOOLONG; at most 16 directory
 * descriptors are held at once. A platform without such a walk returns
 * UV_ENOTSUP. */
int resolve_open_walk(uv_os_fd_t dirfd, const char *relpath, uv_os_fd_t *fd);

/* Size, modification time and type of an open file. Returns 0 or a UV_E*
 * code. */
int resolve_fstat(uv_os_fd_t fd, struct resolve_stat *st);

/* Close a file or root opened here. */
void resolve_close(uv_os_fd_t fd);

/* "openat2" or "walk": which method resolve_open() uses (for the start-up
 * log line). */
const char *resolve_method(void);

#endif
