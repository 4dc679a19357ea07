/* pipefile.c - the pipefile command: arguments, output files, messages and
 * exit codes, on top of libpipefile (pipefile.h). What differs between
 * platforms (how a server is named, UTF-8 arguments, the output file) is
 * cli_os.h's; this file is the same on all of them. */
#include "pipefile.h"
#include "cli_os.h"
#include "transport.h"
#include "version.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* sysexits.h's codes, spelled out: Windows has no sysexits.h, and the
 * numbers are the interface (scripts and the tests depend on them). */
#define EX_OK 0
#define EX_USAGE 64       /* command line usage error */
#define EX_UNAVAILABLE 69 /* cannot connect */
#define EX_CANTCREAT 73   /* cannot create or write the output */
#define EX_PROTOCOL 76    /* protocol error, connection lost, short body */
#define EX_NOPERM 77      /* permission denied */
#define EX__BASE 64       /* the first of them */

/* The socket is served by a uid (Windows: an account) we do not trust, or
 * we cannot tell who serves it: nothing was sent. A permission problem,
 * hence sysexits.h's "permission denied". */
#define EXIT_UNTRUSTED EX_NOPERM

/* A server status s other than OK exits with STATUS_EXIT_BASE + s, so every
 * status in proto.h's table has its own code without a second list here. */
#define STATUS_EXIT_BASE 10
_Static_assert(STATUS_EXIT_BASE + PFP_STATUS_COUNT <= EX__BASE,
               "status exit codes must not reach the sysexits.h range");

struct options {
  const char *socket; /* -s, $PIPEFILE_SOCKET or the default */
  const char *server; /* cli_os.server_opt or its environment variable;
                         NULL = the default rule */
  char server_canon[PIPEFILE_SERVER_TEXT_MAX]; /* server, as checked */
  const char *cmd;                             /* "get" or "stat" */
  const char *path;                            /* wire path */
  const char *out; /* -o; NULL or "-" = standard output */
  uint64_t offset; /* --offset */
  uint64_t length; /* --length; 0 = to end of file */
  int have_range;  /* --offset or --length was given */
};

static void usage_lines(FILE *f) {
  fprintf(f,
          "usage: pipefile [-s SOCKET] [%s %s] get PATH [-o OUT]\n"
          "                [--offset N] [--length N]\n"
          "       pipefile [-s SOCKET] [%s %s] stat PATH\n"
          "       pipefile --help | --version\n",
          cli_os.server_opt, cli_os.server_arg, cli_os.server_opt,
          cli_os.server_arg);
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
         "%s"
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
         PIPEFILE_SOCKET_ENV, PIPEFILE_DEFAULT_SOCKET, cli_os.server_help,
         EX_OK);
  for (int s = 1; s < PFP_STATUS_COUNT; s++)
    printf("  %3d  the server answered %s: %s\n", STATUS_EXIT_BASE + s,
           pfp_status_name(s), pfp_status_message(s));
  printf("  %3d  usage error\n"
         "  %3d  cannot connect to the socket\n"
         "  %3d  cannot create or write the output\n"
         "  %3d  protocol error, connection lost, or short body\n"
         "  %3d  %s",
         EX_USAGE, EX_UNAVAILABLE, EX_CANTCREAT, EX_PROTOCOL, EXIT_UNTRUSTED,
         cli_os.exit_untrusted);
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
  const char *env = cli_getenv(PIPEFILE_SOCKET_ENV);
  const char *server_env = cli_getenv(cli_os.server_env);

  memset(o, 0, sizeof(*o));
  o->socket = env && *env ? env : PIPEFILE_DEFAULT_SOCKET;
  /* A bad value must not quietly fall back to the default rule: the user
   * meant to name the server. Each value is checked where it is met, so a
   * bad $VAR is an error even when the option overrides it. */
  if (server_env && *server_env) {
    o->server = server_env;
    if (pipefile_server_user_check(o->server, o->server_canon,
                                   sizeof(o->server_canon)) < 0)
      return usage_error("$%s: '%s' is not %s", cli_os.server_env, o->server,
                         cli_os.server_what);
  }
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
    } else if ((t = take_value(argc, argv, &i, NULL, cli_os.server_opt,
                               &val)) != 0) {
      if (t < 0)
        return usage_error("%s needs a %s argument", a, cli_os.server_arg);
      o->server = val;
      if (pipefile_server_user_check(o->server, o->server_canon,
                                     sizeof(o->server_canon)) < 0)
        return usage_error("%s: '%s' is not %s", cli_os.server_opt, val,
                           cli_os.server_what);
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
 * for a server we would not talk to or could not identify. server is who
 * serves the socket, as the library named it ("" if unknown). */
static int connect_error(const struct options *o, int r, const char *server) {
  if (r == PIPEFILE_EUNTRUSTED) {
    if (o->server)
      fprintf(stderr,
              "pipefile: %s: %s is served by %s, not the expected %s; "
              "refusing to talk to it\n",
              o->path, o->socket, server, o->server_canon);
    else
      fprintf(stderr, "pipefile: %s: %s is served by %s, %s\n", o->path,
              o->socket, server, cli_os.refused_by_rule);
    return EXIT_UNTRUSTED;
  }
  if (r == PIPEFILE_EIDENTITY || r == PIPEFILE_EREMOTE) {
    fprintf(stderr, "pipefile: %s: %s: %s; refusing to talk to it\n", o->path,
            o->socket, pipefile_strerror(r));
    return EXIT_UNTRUSTED;
  }
  if (r == -ENAMETOOLONG)
    fprintf(stderr,
            "pipefile: %s: cannot connect to %s: socket path is %zu bytes, "
            "%s\n",
            o->path, o->socket, strlen(o->socket), cli_os.name_too_long);
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
            transport_strerror(-res->write_errno));
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

static int cmd_get(const struct options *o) {
  struct pipefile_result res;
  char server[PIPEFILE_SERVER_TEXT_MAX];
  int to_file = o->out && strcmp(o->out, "-") != 0;
  const char *outname = to_file ? o->out : "standard output";
  int out_fd = -1;
  int sock = -1;
  int rc;
  int r;

  if (to_file) {
    /* Before connecting: a request is wasted if its bytes have nowhere to
     * go. */
    out_fd = cli_temp_create(o->out);
    if (out_fd < 0) {
      fprintf(stderr,
              "pipefile: %s: cannot create a temporary file for %s: %s\n",
              o->path, o->out, transport_strerror(out_fd));
      rc = EX_CANTCREAT;
      goto out;
    }
  } else {
    out_fd = cli_stdout_bytes();
    if (out_fd < 0) {
      fprintf(stderr, "pipefile: %s: cannot write standard output: %s\n",
              o->path, transport_strerror(out_fd));
      rc = EX_CANTCREAT;
      goto out;
    }
  }
  r = pipefile_connect_as(o->socket, o->server, &sock, server, sizeof(server));
  if (r < 0) {
    rc = connect_error(o, r, server);
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
    /* The data must be on disk before the name says it is complete; closing
     * can report a deferred write error (NFS). */
    int fd = out_fd;
    out_fd = -1;
    r = cli_temp_commit(fd, o->out);
    if (r < 0) {
      fprintf(stderr, "pipefile: %s: cannot write %s: %s\n", o->path, o->out,
              transport_strerror(r));
      rc = EX_CANTCREAT;
      goto out;
    }
  }
  rc = EX_OK;
out:
  pipefile_close(sock);
  if (to_file)
    cli_temp_discard(out_fd);
  return rc;
}

static int cmd_stat(const struct options *o) {
  struct pipefile_result res;
  char server[PIPEFILE_SERVER_TEXT_MAX];
  char when[64] = "out of range";
  struct tm tm;
  int sock = -1;
  int rc;
  int r;

  r = pipefile_connect_as(o->socket, o->server, &sock, server, sizeof(server));
  if (r < 0) {
    rc = connect_error(o, r, server);
    goto out;
  }
  r = pipefile_stat(sock, o->path, PFP_OP_CLOSE, &res);
  if (r < 0 || res.status != PFP_OK) {
    rc = request_error(o, "standard output", r, &res);
    goto out;
  }
  if (cli_gmtime(res.mtime, &tm) == 0)
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  printf("size %" PRIu64 "\nmtime %" PRId64 " (%s)\n", res.file_size, res.mtime,
         when);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "pipefile: %s: cannot write standard output: %s\n", o->path,
            transport_strerror(-errno));
    rc = EX_CANTCREAT;
    goto out;
  }
  rc = EX_OK;
out:
  pipefile_close(sock);
  return rc;
}

int main(int argc, char **argv) {
  struct options o;
  int rc;

  if (cli_args(&argc, &argv) < 0) {
    fprintf(stderr, "pipefile: cannot read the command line\n");
    return EX_USAGE;
  }
  rc = parse_args(argc, argv, &o);
  if (rc >= 0)
    return rc;
  if (strcmp(o.cmd, "get") == 0)
    return cmd_get(&o);
  return cmd_stat(&o);
}
