/* endpoint_os.h (Linux) - the platform fields of struct endpoint, included
 * by endpoint.h only (the build puts daemon/linux/ on the include path).
 * Only endpoint_linux.c reads them. */
#ifndef PIPEFILED_ENDPOINT_OS_H
#define PIPEFILED_ENDPOINT_OS_H

#include <sys/types.h>

/* The socket's directory is opened once and checked (fsguard.h); the file
 * is then created, checked and removed relative to it, and removed only if
 * it is still the one we created (same device and inode). */
#define ENDPOINT_PRIVATE_FIELDS                                                \
  int dirfd; /* O_PATH; valid while path[0] != '\0' */                         \
  int bound; /* we created the file: ours to remove */                         \
  dev_t dev; /* identity of that file */                                       \
  ino_t ino;

#endif
