/* ini_strict.h - a strict reading of an ini file on top of inih: what inih
 * would silently truncate, split or misread is an error that names its
 * line, before inih sees it.
 *
 * inih (ini_parse_stream) still does the parsing; this reader feeds it one
 * line at a time and refuses lines longer than INI_STRICT_LINE_MAX, NUL
 * bytes, unknown sections (the caller says which it knows), text after a
 * section's "]", lines that are not "key = value", and indented lines that
 * inih would take as the previous value's continuation. Errors read
 * "NAME:LINE: [section] key: reason", leaving out what does not apply. Pure:
 * the caller supplies the text. */
#ifndef PIPEFILED_INI_STRICT_H
#define PIPEFILED_INI_STRICT_H

#include <stddef.h>

#define INI_STRICT_LINE_MAX 198   /* inih's compiled-in line limit, less '\n' */
#define INI_STRICT_REASON_MAX 400 /* one reason, before "NAME:LINE: ..." */

struct ini_strict_handler {
  /* Whether section names one the caller knows: 1 or 0. */
  int (*section_known)(void *user, const char *section);
  /* One "key = value" from line, in section ("" before any header).
   * Returns 0 to go on, or a negative code with a reason in why (wl bytes),
   * which ends the parse. */
  int (*on_key)(void *user, unsigned line, const char *section, const char *key,
                const char *value, char *why, size_t wl);
  void *user;
};

/* Parse len bytes of text, from a file called name (for messages), calling
 * h for each section header and key. Returns 0, or UV_EINVAL with the first
 * error in err (errlen bytes; "" on success). */
int ini_strict_parse(const char *name, const char *text, size_t len,
                     const struct ini_strict_handler *h, char *err,
                     size_t errlen);

#endif
