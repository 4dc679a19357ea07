/* cli_linux.c - the pipefile command's Linux half (cli_os.h): uids name
 * the server, argv and the environment are already bytes, and the -o file
 * is a mkstemp(3) file renamed over OUT, removed by a signal handler if the
 * command is interrupted; --resume's partial file keeps the remote mtime in
 * its own (futimens), and the meter's clock is CLOCK_MONOTONIC. */
#include "cli_os.h"
#include "pipefile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert((uid_t)-1 == 4294967295u, "server_what names (uid_t)-1");

const struct cli_os cli_os = {
    .server_opt = "--server-uid",
    .server_env = PIPEFILE_SERVER_UID_ENV,
    .server_arg = "UID",
    .server_what = "a uid (a decimal number below 4294967295) or a known "
                   "user name",
    .server_help =
        "  --server-uid UID, --expect-server-user USER\n"
        "                       talk only to a server running as UID or "
        "USER (a uid\n"
        "                       or a user name), checked before anything is "
        "sent\n"
        "                       (default: $" PIPEFILE_SERVER_UID_ENV
        ", else any of root,\n"
        "                       the owner of the socket's directory, or "
        "yourself)\n",
    .refused_by_rule = "which is neither root nor the owner of its "
                       "directory; refusing to talk to it (another user's "
                       "socket?)",
    .exit_untrusted = "the socket is served by a uid not trusted (see "
                      "--server-uid);\n"
                      "       nothing was sent\n",
    .name_too_long = "longer than the 107 a Unix socket address holds",
    .dir_seps = "/",
};
_Static_assert(PIPEFILE_SOCKET_PATH_MAX == 107, "name_too_long names it");

int cli_args(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return 0;
}

const char *cli_getenv(const char *name) { return getenv(name); }

int cli_stdout_bytes(void) { return STDOUT_FILENO; }

int cli_gmtime(int64_t t, struct tm *tm) {
  time_t tt = (time_t)t;
  if ((int64_t)tt != t || gmtime_r(&tt, tm) == NULL)
    return -1;
  return 0;
}

/* The temporary output file, visible to the signal handler so that Ctrl-C
 * does not leave it behind. Written only while those signals are blocked. */
static char tmp_path[PATH_MAX];
static volatile sig_atomic_t tmp_live;
static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static void on_fatal_signal(int sig) {
  if (tmp_live)
    unlink(tmp_path);
  /* SA_RESETHAND restored the default action and sig is blocked until we
   * return, so this ends the process by sig as if we never caught it. */
  raise(sig);
}

static void block_cleanup_signals(int block, sigset_t *old) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < sizeof(cleanup_signals) / sizeof(*cleanup_signals);
       i++)
    sigaddset(&set, cleanup_signals[i]);
  if (block)
    sigprocmask(SIG_BLOCK, &set, old);
  else
    sigprocmask(SIG_SETMASK, old, NULL);
}

static void install_signal_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_fatal_signal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof(cleanup_signals) / sizeof(*cleanup_signals);
       i++) {
    struct sigaction old;
    /* A signal ignored by our parent (nohup) stays ignored. */
    if (sigaction(cleanup_signals[i], NULL, &old) == 0 &&
        old.sa_handler == SIG_IGN)
      continue;
    sigaction(cleanup_signals[i], &sa, NULL);
  }
}

int cli_temp_create(const char *out) {
  const char *slash = strrchr(out, '/');
  const char *base = slash ? slash + 1 : out;
  int dirlen = slash ? (int)(slash - out + 1) : 0;
  sigset_t old;
  mode_t mask;
  int fd;
  int r;

  if (*base == '\0')
    return -EISDIR;
  r = snprintf(tmp_path, sizeof(tmp_path), "%.*s.%s.pipefile-XXXXXX", dirlen,
               out, base);
  if (r < 0 || (size_t)r >= sizeof(tmp_path))
    return -ENAMETOOLONG;
  install_signal_handlers();
  block_cleanup_signals(1, &old);
  fd = mkstemp(tmp_path);
  r = fd < 0 ? -errno : 0;
  if (fd >= 0)
    tmp_live = 1;
  block_cleanup_signals(0, &old);
  if (r < 0)
    return r;
  /* mkstemp makes 0600; give the finished file the mode a plain
   * "> OUT" would, so the umask decides as usual. */
  mask = umask(0);
  umask(mask);
  if (fchmod(fd, 0666 & ~mask) < 0) {
    r = -errno;
    close(fd);
    return r;
  }
  return fd;
}

int cli_temp_commit(int fd, const char *out) {
  sigset_t old;
  int r = fsync(fd) < 0 ? -errno : 0;
  /* close() can report a deferred write error (NFS). */
  if (close(fd) < 0 && r == 0)
    r = -errno;
  if (r < 0)
    return r;
  block_cleanup_signals(1, &old);
  if (rename(tmp_path, out) < 0)
    r = -errno;
  else
    tmp_live = 0;
  block_cleanup_signals(0, &old);
  return r;
}

void cli_temp_discard(int fd) {
  sigset_t old;
  if (fd >= 0)
    close(fd);
  block_cleanup_signals(1, &old);
  if (tmp_live)
    unlink(tmp_path);
  tmp_live = 0;
  block_cleanup_signals(0, &old);
}

/* The partial file's name, for cli_partial_commit's rename. */
static char partial_path[PATH_MAX];

int cli_partial_open(const char *out, uint64_t *size, int64_t *mtime) {
  const char *slash = strrchr(out, '/');
  const char *base = slash ? slash + 1 : out;
  int dirlen = slash ? (int)(slash - out + 1) : 0;
  struct stat st;
  int fd;
  int r;

  *size = 0;
  *mtime = 0;
  if (*base == '\0')
    return -EISDIR;
  r = snprintf(partial_path, sizeof(partial_path), "%.*s.%s.pipefile-partial",
               dirlen, out, base);
  if (r < 0 || (size_t)r >= sizeof(partial_path))
    return -ENAMETOOLONG;
  /* O_NOFOLLOW and the owner check: in a directory others can write to
   * (a sticky /tmp), someone else's file or link under this name must not
   * receive our bytes, nor be renamed over OUT. O_APPEND: every write goes
   * to the end, also after cli_partial_restart truncates. */
  fd = open(partial_path,
            O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) < 0) {
    r = -errno;
    goto fail;
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1) {
    r = -EPERM;
    goto fail;
  }
  *size = (uint64_t)st.st_size;
  *mtime = (int64_t)st.st_mtim.tv_sec;
  return fd;
fail:
  close(fd);
  return r;
}

int cli_partial_restart(int fd) { return ftruncate(fd, 0) < 0 ? -errno : 0; }

int cli_partial_stamp(int fd, int64_t mtime) {
  struct timespec ts[2];
  ts[0].tv_sec = 0;
  ts[0].tv_nsec = UTIME_OMIT; /* atime: not ours to keep */
  ts[1].tv_sec = (time_t)mtime;
  ts[1].tv_nsec = 0;
  return futimens(fd, ts) < 0 ? -errno : 0;
}

int cli_partial_commit(int fd, const char *out) {
  int r = fsync(fd) < 0 ? -errno : 0;
  if (close(fd) < 0 && r == 0)
    r = -errno;
  if (r == 0 && rename(partial_path, out) < 0)
    r = -errno;
  return r;
}

void cli_partial_close(int fd) {
  if (fd >= 0)
    close(fd);
}

int cli_is_tty(int fd) { return isatty(fd); }

uint64_t cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
