/* syserr_linux.c - syserr.h on Linux: UV_E* codes are -errno there. */
#include "syserr.h"

#include <string.h>

const char *syserr_text(int err) { return strerror(-err); }
