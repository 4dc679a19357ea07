/* path.h - wire path -> path relative to the served root (pure, no I/O).
 *
 * The one place that decides what a client's path means before the kernel
 * sees it. Rules: leading and repeated '/' are dropped (a leading "/" means
 * the root), "." components are dropped, ".." is taken lexically (as URL
 * paths are) and may not climb above the root, the empty result means the
 * root itself ("."). Symlinks are the kernel's business (resolve.h). */
#ifndef PIPEFILED_PATH_H
#define PIPEFILED_PATH_H

#include <stddef.h>

/* Normalize len bytes of in into out (outsz bytes, NUL-terminated).
 * Returns 0; -EXDEV when ".." would climb above the root; -EPROTO for a NUL
 * byte; -ENAMETOOLONG when out is too small. out is set to "" on error. */
int path_normalize(const char *in, size_t len, char *out, size_t outsz);

#endif
