/* cli_linux.c - the pipefile command's Linux half (cli_os.h): uids name
 * the server, argv and the environment are already bytes, and the -o file
 * is a mkstemp(3) file renamed over OUT, removed by a signal handler if the
 * command is interrupted. */
#include "cli_os.h"
#include "pipefile.h"

#include <errno.h>
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
    .server_what = "a uid (a decimal number below 4294967295)",
    .server_help = "  --server-uid UID     talk only to a server running as "
                   "UID (default:\n"
                   "                       $" PIPEFILE_SERVER_UID_ENV
                   ", else any of root, the owner of\n"
                   "                       the socket's directory, or "
                   "yourself)\n",
    .refused_by_rule = "which is neither root nor the owner of its "
                       "directory; refusing to talk to it (another user's "
                       "socket?)",
    .exit_untrusted = "the socket is served by a uid not trusted (see "
                      "--server-uid);\n"
                      "       nothing was sent\n",
    .name_too_long = "longer than the 107 a Unix socket address holds",
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
