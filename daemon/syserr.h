/* syserr.h - the text of an error code, in the words this platform's users
 * know it by.
 *
 * Logic files hold errors as UV_E* codes; on Linux those are -errno, and
 * their text is strerror()'s ("No such file or directory"), which is what
 * messages and tests have always shown. uv_strerror() words them
 * differently, and strerror() of a UV_E* code means nothing on Windows
 * (syserr_win.c will use uv_strerror), so the choice is made here, once. */
#ifndef PIPEFILED_SYSERR_H
#define PIPEFILED_SYSERR_H

/* The text for err, a negative UV_E* code; never NULL. */
const char *syserr_text(int err);

#endif
