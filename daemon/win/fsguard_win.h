/* fsguard_win.h (Windows) - what fsguard_win.c offers beyond fsguard.h:
 * the strict trust check of a file the daemon reads and obeys (its config)
 * or of a folder it is installed from, used by the service front end
 * (windows-service/, daemon/main_win.c). Kept here, below them, so that
 * fsguard_win.c depends on nothing above it. */
#ifndef PIPEFILED_FSGUARD_WIN_H
#define PIPEFILED_FSGUARD_WIN_H

#include <stddef.h>

/* fsguard_win.c: whether path (UTF-8, absolute) may be trusted whatever
 * strict_modes says: every component no reparse point; each ancestor and
 * the folder owned by SYSTEM, Administrators, TrustedInstaller or this
 * process's own account (its service SID under the SCM), with no one else
 * allowed to take control of them or to delete or rename their entries,
 * nor, in the folder itself, to add entries. is_file: path is a file (a
 * config), checked beyond its folder: a regular file, owned as above,
 * which no one else may write, delete or take control of. what names path
 * in the message ("config file"). also: one more SID, as SDDL text
 * ("S-1-5-80-..."), trusted as this process's own account is, or NULL
 * (install: the SID the service's folders are granted to). Returns 0; UV_ENOENT
 * when path (or a folder on the way) is missing; UV_EPERM (untrusted), UV_ELOOP
 * (a reparse point) or another UV_E* code, with a one-line reason in err that
 * names the path and the problem and ends in "; refusing" when it is the
 * trust that failed. */
int fsguard_win_check_trusted(const char *what, const char *path, int is_file,
                              const char *also, char *err, size_t errlen);

#endif
