/* transport_win.h - helpers the Windows halves of the client share
 * (transport_win.c defines them; cli_win.c uses them too): Win32 errors as
 * errno values, and UTF-8 <-> UTF-16. Included only by *_win.c files. */
#ifndef PIPEFILE_TRANSPORT_WIN_H
#define PIPEFILE_TRANSPORT_WIN_H

#include <windows.h>

/* The errno value nearest to Win32 error err (EIO when none is near):
 * the library's codes are -errno on every platform. */
int transport_win_errno(DWORD err);

/* s (UTF-8, NUL-terminated) as a new UTF-16 string the caller free()s.
 * Returns 0, -EINVAL when s is not valid UTF-8, or -ENOMEM. */
int transport_win_utf16(const char *s, wchar_t **out);

/* The service SID of NT SERVICE\\pipefiled, which the default rule trusts:
 * S-1-5-80- and the SHA-1 of L"PIPEFILED" (UTF-16LE) as five little-endian
 * 32-bit numbers, as Windows makes every service's SID (transport_win.c,
 * pipefiled_sid; tests/unit/test_libpipefile_win.c recomputes it). */
#define TRANSPORT_WIN_PIPEFILED_SID                                            \
  L"S-1-5-80-756166237-3088793109-59807773-1750720689-3947911101"

/* w (UTF-16, NUL-terminated) as a new UTF-8 string the caller free()s, or
 * NULL (no memory, or w is not valid UTF-16). */
char *transport_win_utf8(const wchar_t *w);

#endif
