/* pipefile.c - the pipefile command: arguments, output files, messages and
 * exit codes, on top of libpipefile (pipefile.h). */
#include "pipefile.h"
#include "version.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

/* The socket is served by a uid we do not trust: nothing was sent. A
 * permission problem, hence sysexits.h's "permission denied". */
#define EXIT_UNTRUSTED EX_NOPERM

/* A server status s other than OK exits with STATUS_EXIT_BASE + s, so every
 * status in proto.h's table has its own code without a second list here. */
#define STATUS_EXIT_BASE 10
_Static_assert(STATUS_EXIT_BASE + PFP_STATUS_COUNT <= EX__BASE,
               "status exit codes must not reach the sysexits.h range");

struct options {
  const char *socket; /* -s, $PIPEFILE_SOCKET or the default */
  int64_t server_uid; /* --server-uid, $PIPEFILE_SERVER_UID or
                         PIPEFILE_SERVER_UID_DEFAULT */
  const char *cmd;    /* "get" or "stat" */
  const char *path;   /* wire path */
  const char *out;    /* -o; NULL or "-" = standard output */
  uint64_t offset;    /* --offset */
  uint64_t length;    /* --length; 0 = to end of file */
  int have_range;     /* --offset or --length was given */
};

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

static void usage_lines(FILE *f) {
  fprintf(f, "usage: pipefile [-s SOCKET] [--server-uid UID] get PATH "
             "[-o OUT]\n"
             "                [--offset N] [--length N]\n"
             "       pipefile [-s SOCKET] [--server-uid UID] stat PATH\n"
             "       pipefile --help | --version\n");
}

static void print_help(void) {
  usage_lines(stdout);
  printf("\n"
         "Fetch a file from pipefiled, which opens it as the user running this "
         "command.\n"
         "\n"
         "commands:\n"
         "  get PATH     write the file's bytes to standard output, or to OUT\n"
         "  stat PATH    print the file's size and modification time\n"
         "\n"
         "options:\n"
         "  -s, --socket SOCKET  daemon socket (default: $%s,\n"
         "                       else %s)\n"
         "  --server-uid UID     talk only to a server running as UID "
         "(default:\n"
         "                       $%s, else any of root, the owner of\n"
         "                       the socket's directory, or yourself)\n"
         "  -o, --output OUT     write to OUT: the file appears only when "
         "complete\n"
         "                       (written to a temporary name, then renamed); "
         "\"-\" is\n"
         "                       standard output\n"
         "  --offset N           first byte wanted (decimal, default 0)\n"
         "  --length N           most bytes wanted (decimal, default 0 = to "
         "the end)\n"
         "  -h, --help           this help\n"
         "  -V, --version        version\n"
         "\n"
         "PATH is relative to the served root; a leading \"/\" means the "
         "root.\n"
         "\n"
         "exit codes:\n"
         "  %3d  success\n",
         PIPEFILE_SOCKET_ENV, PIPEFILE_DEFAULT_SOCKET, PIPEFILE_SERVER_UID_ENV,
         EX_OK);
  for (int s = 1; s < PFP_STATUS_COUNT; s++)
    printf("  %3d  the server answered %s: %s\n", STATUS_EXIT_BASE + s,
           pfp_status_name(s), pfp_status_message(s));
  printf("  %3d  usage error\n"
         "  %3d  cannot connect to the socket\n"
         "  %3d  cannot create or write the output\n"
         "  %3d  protocol error, connection lost, or short body\n"
         "  %3d  the socket is served by a uid not trusted (see "
         "--server-uid);\n"
         "       nothing was sent\n",
         EX_USAGE, EX_UNAVAILABLE, EX_CANTCREAT, EX_PROTOCOL, EXIT_UNTRUSTED);
}

/* Print "pipefile: <why>" and a pointer to --help; returns EX_USAGE. */
static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "pipefile: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  fprintf(stderr, "Try 'pipefile --help' for more information.\n");
  return EX_USAGE;
}

/* Strict decimal: digits only (no sign, space or base prefix), and the value
 * must fit in 64 bits; strtoull would take "-1" as 2^64-1. */
static int parse_u64(const char *s, uint64_t *v) {
  uint64_t n = 0;
  *v = 0;
  if (*s == '\0')
    return -EINVAL;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return -EINVAL;
    unsigned d = (unsigned)(*s - '0');
    if (n > (UINT64_MAX - d) / 10)
      return -ERANGE;
    n = n * 10 + d;
  }
  *v = n;
  return 0;
}

/* A uid as --server-uid takes it: decimal, and not (uid_t)-1, which means
 * "no uid" to the kernel. */
static int parse_uid(const char *s, int64_t *uid) {
  uint64_t v;
  int r = parse_u64(s, &v);
  *uid = PIPEFILE_SERVER_UID_DEFAULT;
  if (r < 0)
    return r;
  if (v >= (uint64_t)(uid_t)-1)
    return -ERANGE;
  *uid = (int64_t)v;
  return 0;
}

/* If argv[*i] is the option long (or short, when not NULL), set *val to its
 * value ("--long=V", "--long V", "-sV", "-s V") and return 1; return -1 when
 * the value is missing, 0 when argv[*i] is another option. */
static int take_value(int argc, char **argv, int *i, const char *shrt,
                      const char *lng, const char **val) {
  const char *a = argv[*i];
  size_t ll = strlen(lng);
  if (strncmp(a, lng, ll) == 0 && a[ll] == '=') {
    *val = a + ll + 1;
    return 1;
  }
  if (shrt && strncmp(a, shrt, 2) == 0 && a[2] != '\0') {
    *val = a + 2;
    return 1;
  }
  if (strcmp(a, lng) != 0 && !(shrt && strcmp(a, shrt) == 0))
    return 0;
  if (*i + 1 >= argc)
    return -1;
  *val = argv[++*i];
  return 1;
}

/* Parse the command line into *o. Returns -1 to go on, or an exit code
 * (0 after --help/--version, EX_USAGE after printing why). */
static int parse_args(int argc, char **argv, struct options *o) {
  int only_operands = 0;
  const char *env = getenv(PIPEFILE_SOCKET_ENV);
  const char *uid_env = getenv(PIPEFILE_SERVER_UID_ENV);

  memset(o, 0, sizeof(*o));
  o->socket = env && *env ? env : PIPEFILE_DEFAULT_SOCKET;
  o->server_uid = PIPEFILE_SERVER_UID_DEFAULT;
  /* A bad value must not quietly fall back to the default rule: the user
   * meant to name the server. */
  if (uid_env && *uid_env && parse_uid(uid_env, &o->server_uid) < 0)
    return usage_error("$%s: '%s' is not a uid (a decimal number below %u)",
                       PIPEFILE_SERVER_UID_ENV, uid_env, (unsigned)(uid_t)-1);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    int t;

    if (only_operands || a[0] != '-' || strcmp(a, "-") == 0) {
      if (!o->cmd) {
        if (strcmp(a, "get") != 0 && strcmp(a, "stat") != 0)
          return usage_error("unknown command '%s'", a);
        o->cmd = a;
      } else if (!o->path) {
        o->path = a;
      } else {
        return usage_error("unexpected argument '%s'", a);
      }
      continue;
    }
    if (strcmp(a, "--") == 0) {
      only_operands = 1;
      continue;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      print_help();
      return EX_OK;
    }
    if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
      printf("pipefile %s (protocol PFP/%d)\n", PIPEFILE_VERSION, PFP_VERSION);
      return EX_OK;
    }
    if ((t = take_value(argc, argv, &i, "-s", "--socket", &val)) != 0) {
      if (t < 0)
        return usage_error("%s needs a SOCKET argument", a);
      if (*val == '\0')
        return usage_error("%s: the socket path is empty", a);
      o->socket = val;
    } else if ((t = take_value(argc, argv, &i, NULL, "--server-uid", &val)) !=
               0) {
      if (t < 0)
        return usage_error("%s needs a UID argument", a);
      if (parse_uid(val, &o->server_uid) < 0)
        return usage_error("--server-uid: '%s' is not a uid (a decimal "
                           "number below %u)",
                           val, (unsigned)(uid_t)-1);
    } else if ((t = take_value(argc, argv, &i, "-o", "--output", &val)) != 0) {
      if (t < 0)
        return usage_error("%s needs an OUT argument", a);
      if (*val == '\0')
        return usage_error("%s: the output path is empty", a);
      o->out = val;
    } else if ((t = take_value(argc, argv, &i, NULL, "--offset", &val)) != 0 ||
               (t = take_value(argc, argv, &i, NULL, "--length", &val)) != 0) {
      int is_off = strncmp(a, "--offset", 8) == 0;
      if (t < 0)
        return usage_error("%s needs a number", a);
      if (parse_u64(val, is_off ? &o->offset : &o->length) < 0)
        return usage_error("%s: '%s' is not a decimal number from 0 to "
                           "%" PRIu64,
                           is_off ? "--offset" : "--length", val, UINT64_MAX);
      o->have_range = 1;
    } else {
      return usage_error("unknown option '%s'", a);
    }
  }

  if (!o->cmd)
    return usage_error("no command given");
  if (!o->path)
    return usage_error("%s: PATH is missing", o->cmd);
  if (o->path[0] == '\0')
    return usage_error("%s: PATH is empty", o->cmd);
  if (strlen(o->path) > PFP_PATH_MAX)
    return usage_error("%s: PATH is longer than the protocol's %d bytes",
                       o->cmd, PFP_PATH_MAX);
  if (strcmp(o->cmd, "stat") == 0 && (o->out || o->have_range))
    return usage_error("stat takes no -o, --offset or --length");
  return -1;
}

/* Report a failure to reach the daemon: EX_UNAVAILABLE, or EXIT_UNTRUSTED
 * for a server we would not talk to. */
static int connect_error(const struct options *o, int r, uid_t server_uid) {
  if (r == PIPEFILE_EUNTRUSTED) {
    if (o->server_uid >= 0)
      fprintf(stderr,
              "pipefile: %s: %s is served by uid %lu, not the expected uid "
              "%" PRId64 "; refusing to talk to it\n",
              o->path, o->socket, (unsigned long)server_uid, o->server_uid);
    else
      fprintf(stderr,
              "pipefile: %s: %s is served by uid %lu, which is neither root "
              "nor the owner of its directory; refusing to talk to it "
              "(another user's socket?)\n",
              o->path, o->socket, (unsigned long)server_uid);
    return EXIT_UNTRUSTED;
  }
  if (r == -ENAMETOOLONG)
    fprintf(stderr,
            "pipefile: %s: cannot connect to %s: socket path is %zu bytes, "
            "longer than the %zu a Unix socket address holds\n",
            o->path, o->socket, strlen(o->socket), PIPEFILE_SOCKET_PATH_MAX);
  else
    fprintf(stderr, "pipefile: %s: cannot connect to %s: %s\n", o->path,
            o->socket, pipefile_strerror(r));
  return EX_UNAVAILABLE;
}

/* Turn a library error or a server refusal into a message and exit code. */
static int request_error(const struct options *o, const char *outname, int r,
                         const struct pipefile_result *res) {
  if (r == 0) {
    /* The server's message starts with the status name; fall back to the
     * table's text if it sent none. */
    if (res->msg[0])
      fprintf(stderr, "pipefile: %s: %s\n", o->path, res->msg);
    else
      fprintf(stderr, "pipefile: %s: %s: %s\n", o->path,
              pfp_status_name(res->status), pfp_status_message(res->status));
    return STATUS_EXIT_BASE + res->status;
  }
  if (r == PIPEFILE_EWRITE) {
    fprintf(stderr, "pipefile: %s: cannot write %s: %s\n", o->path, outname,
            strerror(res->write_errno));
    return EX_CANTCREAT;
  }
  if (r == -EPIPE) {
    fprintf(stderr,
            "pipefile: %s: short body: connection closed after %" PRIu64
            " of %" PRIu64 " bytes\n",
            o->path, res->body_done, res->body_len);
    return EX_PROTOCOL;
  }
  fprintf(stderr, "pipefile: %s: %s\n", o->path, pipefile_strerror(r));
  return EX_PROTOCOL;
}

/* Create the temporary file next to out (so rename() stays on one file
 * system and is atomic), named ".BASE.pipefile-XXXXXX". Returns its fd and
 * fills tmp_path, or -errno. */
static int temp_create(const char *out) {
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

/* Remove the temporary file, if any. */
static void temp_discard(void) {
  sigset_t old;
  block_cleanup_signals(1, &old);
  if (tmp_live)
    unlink(tmp_path);
  tmp_live = 0;
  block_cleanup_signals(0, &old);
}

/* Move the finished temporary file over out. Returns 0 or -errno. */
static int temp_commit(const char *out) {
  sigset_t old;
  int r = 0;
  block_cleanup_signals(1, &old);
  if (rename(tmp_path, out) < 0)
    r = -errno;
  else
    tmp_live = 0;
  block_cleanup_signals(0, &old);
  return r;
}

static int cmd_get(const struct options *o) {
  struct pipefile_result res;
  int to_file = o->out && strcmp(o->out, "-") != 0;
  const char *outname = to_file ? o->out : "standard output";
  int out_fd = STDOUT_FILENO;
  uid_t server_uid;
  int sock = -1;
  int rc;
  int r;

  if (to_file) {
    /* Before connecting: a request is wasted if its bytes have nowhere to
     * go. */
    install_signal_handlers();
    out_fd = temp_create(o->out);
    if (out_fd < 0) {
      fprintf(stderr,
              "pipefile: %s: cannot create a temporary file for %s: %s\n",
              o->path, o->out, strerror(-out_fd));
      rc = EX_CANTCREAT;
      goto out;
    }
  }
  r = pipefile_connect_server(o->socket, o->server_uid, &sock, &server_uid);
  if (r < 0) {
    rc = connect_error(o, r, server_uid);
    goto out;
  }
  /* One request per run: CLOSE lets the server free the connection at once
   * instead of waiting for its idle timeout. */
  r = pipefile_get(sock, o->path, o->offset, o->length, PFP_OP_CLOSE, out_fd,
                   &res);
  if (r < 0 || res.status != PFP_OK) {
    rc = request_error(o, outname, r, &res);
    goto out;
  }
  if (to_file) {
    /* The data must be on disk before the name says it is complete; close()
     * can report a deferred write error (NFS). */
    int fd = out_fd;
    out_fd = -1;
    r = fsync(fd) < 0 ? -errno : 0;
    if (close(fd) < 0 && r == 0)
      r = -errno;
    if (r == 0)
      r = temp_commit(o->out);
    if (r < 0) {
      fprintf(stderr, "pipefile: %s: cannot write %s: %s\n", o->path, o->out,
              strerror(-r));
      rc = EX_CANTCREAT;
      goto out;
    }
  }
  rc = EX_OK;
out:
  if (sock >= 0)
    close(sock);
  if (to_file && out_fd >= 0)
    close(out_fd);
  if (to_file)
    temp_discard();
  return rc;
}

static int cmd_stat(const struct options *o) {
  struct pipefile_result res;
  char when[64] = "out of range";
  struct tm tm;
  time_t t;
  uid_t server_uid;
  int sock = -1;
  int rc;
  int r;

  r = pipefile_connect_server(o->socket, o->server_uid, &sock, &server_uid);
  if (r < 0) {
    rc = connect_error(o, r, server_uid);
    goto out;
  }
  r = pipefile_stat(sock, o->path, PFP_OP_CLOSE, &res);
  if (r < 0 || res.status != PFP_OK) {
    rc = request_error(o, "standard output", r, &res);
    goto out;
  }
  t = (time_t)res.mtime;
  if ((int64_t)t == res.mtime && gmtime_r(&t, &tm) != NULL)
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  printf("size %" PRIu64 "\nmtime %" PRId64 " (%s)\n", res.file_size, res.mtime,
         when);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "pipefile: %s: cannot write standard output: %s\n", o->path,
            strerror(errno));
    rc = EX_CANTCREAT;
    goto out;
  }
  rc = EX_OK;
out:
  if (sock >= 0)
    close(sock);
  return rc;
}

int main(int argc, char **argv) {
  struct options o;
  int rc = parse_args(argc, argv, &o);
  if (rc >= 0)
    return rc;
  if (strcmp(o.cmd, "get") == 0)
    return cmd_get(&o);
  return cmd_stat(&o);
}
