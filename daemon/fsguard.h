/* fsguard.h - the directories and files the daemon creates or writes by
 * name (its socket, its log files), made safe against other local users.
 *
 * A daemon that can become any user must not be steered by a symlink or a
 * rename in a directory someone else can write. Like sshd's StrictModes, a
 * directory is trusted only if it and every ancestor is owned by root or
 * the daemon's own user (its euid) and is not group- or other-writable
 * unless sticky (in a sticky directory such as /tmp nobody can rename or
 * remove another user's entries). Paths are walked one component at a time
 * without following symbolic links, and files are then opened relative to
 * the directory descriptor, never by the whole path again. */
#ifndef PIPEFILED_FSGUARD_H
#define PIPEFILED_FSGUARD_H

#include <stddef.h>
#include <uv.h>

/* Open directory path (absolute; "." components are skipped, ".." is
 * refused) as an O_PATH|O_DIRECTORY close-on-exec descriptor, walking it
 * from "/" component by component without following symbolic links, and
 * check it and each ancestor as above. what names the directory in
 * messages ("socket directory", "log directory"). create: make the last
 * component when it is missing, mode 0755 whatever the umask (only the
 * last: a missing ancestor is an error). strict = 0 turns a failed
 * ownership or mode check into a warning: the call succeeds with the
 * warning in err, for the caller to log (this module logs nothing, since
 * the log opens its files through it); a symbolic link
 * on the way is refused either way (-ELOOP; the message suggests the real
 * path). Returns 0 with *dirfd and err "" or a warning, or -errno (-EPERM:
 * untrusted owner or mode) with a one-line reason in err naming the path
 * and what is wrong. */
int fsguard_open_dir(const char *what, const char *path, int strict, int create,
                     uv_os_fd_t *dirfd, char *err, size_t errlen);

/* Open the log file path (absolute) for appending: its directory through
 * fsguard_open_dir (not created), then the file relative to it with
 * O_NOFOLLOW, created 0640 (less if the umask says so) if missing. An
 * existing file must be a regular file or a FIFO (else -EINVAL), not a
 * symbolic link (-ELOOP), and, unless strict is 0 (then a warning),
 * owned by root or the daemon's euid, not group- or other-writable and
 * without other hard links (-EPERM). A FIFO with no reader fails (-ENXIO)
 * rather than blocking. Returns 0 with *fd (blocking, O_APPEND,
 * close-on-exec) and err "" or a warning, as fsguard_open_dir, or -errno
 * with a one-line reason in err. */
int fsguard_open_log(const char *path, int strict, uv_os_fd_t *fd, char *err,
                     size_t errlen);

/* What a stat mode's type is, for messages: "regular file", "symbolic
 * link", "socket", ... (mode: the platform's st_mode; Windows: the file's
 * dwFileAttributes, with FILE_ATTRIBUTE_DEVICE for what is not a disk
 * file). Error codes above are written -errno as on Linux; on Windows they
 * are the UV_E* codes of the same names. */
const char *fsguard_kind(unsigned mode);

#endif
