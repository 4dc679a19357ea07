#!/bin/sh
# Fail when a logic file of the daemon would not build on another platform.
#
#   sh scripts/check-portable.sh [DIR...]     (default: daemon)
#
# Logic files are every *.c and *.h in DIR except the platform back ends
# (*_linux.c, *_win.c, and *_linux.h, *_win.h should one appear) and the
# platform headers in DIR/linux/ and DIR/win/ (a seam's *_PRIVATE_FIELDS,
# picked by the Makefile's -Idaemon/$(PLATFORM)). A logic file fails when it
#   1. includes a POSIX-only header: <unistd.h>, <fcntl.h>, any <sys/...>,
#      <pwd.h>, <grp.h>, <pthread.h>, <poll.h>, <syslog.h>, <signal.h>,
#      <sched.h>, <dirent.h>, <dlfcn.h>, <netdb.h>, <termios.h>, <spawn.h>,
#      <semaphore.h>, <strings.h>, <libgen.h>, <sysexits.h>, <netinet/...>,
#      <arpa/...>, <linux/...>;
#   2. has a platform conditional (#if/#ifdef/#ifndef/#elif naming _WIN32,
#      __linux__, __unix__, __APPLE__, _MSC_VER, __MINGW32__, ...);
#   3. names a POSIX-only type outside comments: uid_t, gid_t, pid_t, dev_t,
#      ino_t, mode_t, socklen_t, sigset_t, pthread_*_t, struct stat,
#      struct sockaddr*, struct passwd, struct group, struct ucred.
# Why all of <sys/...>: the Windows CRT has only sys/stat.h, sys/types.h,
# sys/timeb.h and sys/utime.h, and not what a logic file would want from them
# (no uid_t or gid_t, no st_mtim, no S_ISREG); libuv (uv_os_fd_t, uv_pid_t,
# ssize_t, uv_mutex_t, UV_E*) and the seams (identity.h, resolve.h, ...) give
# it portably. <signal.h> is standard C, but the daemon's signals (SIGHUP,
# sigsets) are POSIX's and belong to main_linux.c. Rule 3 catches a POSIX type
# that arrives through another header. <errno.h>, <time.h> and <string.h> are
# standard C and allowed.
#
# Prints one line per finding ("file:line: reason") and exits 1 if there is
# any, 0 if none.
set -u

[ $# -gt 0 ] || set -- daemon

posix_headers='unistd\.h|fcntl\.h|sys/[a-z_0-9/]+\.h|pwd\.h|grp\.h|pthread\.h|poll\.h|syslog\.h|signal\.h|sched\.h|dirent\.h|dlfcn\.h|netdb\.h|termios\.h|spawn\.h|semaphore\.h|strings\.h|libgen\.h|sysexits\.h|netinet/[a-z_0-9]+\.h|arpa/[a-z_0-9]+\.h|linux/[a-z_0-9]+\.h'
platform_macros='_WIN32|_WIN64|WIN32|__linux__|__linux|linux|__gnu_linux__|__unix__|__unix|unix|__APPLE__|__MACH__|__FreeBSD__|__NetBSD__|__OpenBSD__|__DragonFly__|__sun|__CYGWIN__|__MINGW32__|__MINGW64__|_MSC_VER|__ANDROID__|_POSIX_VERSION|_POSIX_C_SOURCE'
posix_types='uid_t|gid_t|pid_t|dev_t|ino_t|mode_t|socklen_t|sigset_t|pthread_[a-z_]+_t|struct[ 	]+(stat|sockaddr[a-z_]*|passwd|group|ucred)'

files=$(for d in "$@"; do
  find "$d" -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' \) \
    ! -name '*_linux.c' ! -name '*_win.c' ! -name '*_linux.h' ! -name '*_win.h'
done | sort)

[ -n "$files" ] || exit 0

# awk: blank out comments (kept line numbers) and string literals, then
# apply the three rules. Includes are matched on the raw line, since the
# header name is inside <> or "".
# shellcheck disable=SC2086
awk -v hdr="$posix_headers" -v mac="$platform_macros" -v typ="$posix_types" '
FNR == 1 { incomment = 0 }
{
  raw = $0
  line = ""
  s = raw
  while (length(s) > 0) {
    if (incomment) {
      i = index(s, "*/")
      if (i == 0) { s = ""; break }
      s = substr(s, i + 2); incomment = 0; line = line " "
      continue
    }
    i = index(s, "/*"); j = index(s, "//")
    if (i == 0 && j == 0) { line = line s; break }
    if (j > 0 && (i == 0 || j < i)) { line = line substr(s, 1, j - 1); break }
    line = line substr(s, 1, i - 1); s = substr(s, i + 2); incomment = 1
  }
  code = line
  gsub(/"([^"\\]|\\.)*"/, "\"\"", code)
  if (match(line, "^[ \t]*#[ \t]*include[ \t]*<(" hdr ")>")) {
    h = substr(line, RSTART, RLENGTH); sub(/^[^<]*/, "", h)
    printf "%s:%d: POSIX-only header %s\n", FILENAME, FNR, h; bad = 1
  }
  if (code ~ "^[ \t]*#[ \t]*(if|ifdef|ifndef|elif)([ \t(!]|$)" &&
      match(code, "(^|[^A-Za-z0-9_])(" mac ")([^A-Za-z0-9_]|$)")) {
    m = substr(code, RSTART, RLENGTH); gsub(/[^A-Za-z0-9_]/, "", m)
    printf "%s:%d: platform conditional on %s\n", FILENAME, FNR, m; bad = 1
  }
  if (code !~ "^[ \t]*#[ \t]*include" &&
      match(code, "(^|[^A-Za-z0-9_])(" typ ")([^A-Za-z0-9_]|$)")) {
    t = substr(code, RSTART, RLENGTH); gsub(/^[^A-Za-z]+|[^A-Za-z0-9_]+$/, "", t)
    printf "%s:%d: POSIX-only type %s\n", FILENAME, FNR, t; bad = 1
  }
}
END { exit bad ? 1 : 0 }
' $files
