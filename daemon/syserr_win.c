/* syserr_win.c - syserr.h on Windows: uv_strerror's words.
 *
 * On Windows libuv's UV_E* codes are its own numbers (UV_ENOENT is -4058),
 * not -errno, so strerror(-err) would name an unrelated or unknown C
 * runtime error. Win32 errors are turned into UV_E* codes once, at the
 * boundary (uv_translate_sys_error), and uv_strerror is the one table that
 * knows every such code. Its words differ from glibc's ("no such file or
 * directory" against "No such file or directory"), which is why the choice
 * is made per platform here. */
#include "syserr.h"

#include <uv.h>

const char *syserr_text(int err) { return uv_strerror(err); }
