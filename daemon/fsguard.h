/* fsguard.h - the directories and files the daemon creates or writes by
 * name (its socket, its log files), made safe against other local users.
 *
 * A daemon that can become any user must not be steered by a symlink or a
 * rename in a directory someone else can write. Like sshd's StrictModes, a
 * directory is trusted only if it and every ancestor is owned by root or
 * the daemon's own user and is not group- or other-writable unless sticky
 * (in a sticky directory such as /tmp nobody can rename or remove another
 * user's entries). Paths are walked one component at a time without
 * following symbolic links, and files are then opened relative to the
 * directory descriptor, never by the whole path again. */
#ifndef PIPEFILED_FSGUARD_H
#define PIPEFILED_FSGUARD_H

#include <stddef.h>

/* Open directory path (absolute) as an O_PATH|O_DIRECTORY descriptor,
 * walking it component by component without following symbolic links, and
 * check it and each ancestor as above. create: make the last component
 * (mode 0755) when it is missing. strict = 0 turns a failed ownership or
 * mode check into a warning on the error log; a symbolic link on the way
 * is refused either way. Returns 0 with *dirfd, or -errno with a one-line
 * reason in err naming the path and what is wrong with it. */
int fsguard_open_dir(const char *path, int strict, int create, int *dirfd,
                     char *err, size_t errlen);

/* Open the log file path (absolute) for appending: its directory through
 * fsguard_open_dir, then the file relative to it with O_NOFOLLOW, created
 * 0640 if missing. Only a regular file or a FIFO is accepted. Returns 0
 * with *fd (blocking, close-on-exec), or -errno with a reason in err. */
int fsguard_open_log(const char *path, int strict, int *fd, char *err,
                     size_t errlen);

#endif
