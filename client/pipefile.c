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

/* Requests in flight on one connection: get sends at most this many
 * (and at most PIPELINE_BYTES of them) before reading their answers, so
 * the requests always fit in the socket's buffers and neither side can
 * block writing while the other is blocked writing too. */
#define PIPELINE_MAX 64
#define PIPELINE_BYTES 65536

/* The progress meter: shown on a terminal only, once a transfer has run
 * PROGRESS_AFTER_MS (short ones stay quiet), redrawn every
 * PROGRESS_EVERY_MS. */
#define PROGRESS_AFTER_MS 1000
#define PROGRESS_EVERY_MS 250

struct options {
  const char *socket; /* -s, $PIPEFILE_SOCKET or the default */
  const char *server; /* cli_os.server_opt or its environment variable;
                         NULL = the default rule */
  char server_canon[PIPEFILE_SERVER_TEXT_MAX]; /* server, as checked */
  const char *cmd;                             /* "get" or "stat" */
  char **paths;     /* wire paths, npaths of them (argv's) */
  int npaths;       /* >= 1 after parse_args */
  const char *path; /* paths[0], or the one being reported on */
  const char *out;  /* -o; NULL or "-" = standard output */
  int out_dir;      /* out ends with a separator: a directory */
  uint64_t offset;  /* --offset */
  uint64_t length;  /* --length; 0 = to end of file */
  int have_range;   /* --offset or --length was given */
  int resume;       /* --resume */
};

static void usage_lines(FILE *f) {
  fprintf(f,
          "usage: pipefile [-s SOCKET] [%s %s] get PATH... [-o OUT]\n"
          "                [--offset N] [--length N] [--resume]\n"
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
         "  get PATH...  write the files' bytes to standard output, one after "
         "another,\n"
         "               or to OUT; several PATHs go over one connection, "
         "pipelined\n"
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
         "                       standard output. OUT ending in \"/\" is a "
         "directory:\n"
         "                       each PATH is saved there under its last "
         "component;\n"
         "                       several PATHs with -o need one\n"
         "  --offset N           first byte wanted (decimal, default 0)\n"
         "  --length N           most bytes wanted (decimal, default 0 = to "
         "the end)\n"
         "  --resume             continue an interrupted get -o: the bytes so "
         "far are kept\n"
         "                       in .OUT.pipefile-partial beside OUT; if the "
         "remote file's\n"
         "                       size and mtime (STAT) still match, only the "
         "rest is\n"
         "                       fetched, else it starts over. One PATH, -o "
         "needed\n"
         "  -h, --help           this help\n"
         "  -V, --version        version\n"
         "\n"
         "When standard error is a terminal (and the bytes do not go to one), "
         "a transfer\n"
         "that lasts more than a second shows its progress there (bytes, "
         "rate, time left).\n"
         "\n"
         "PATH is relative to the served root; a leading \"/\" means the "
         "root.\n"
         "\n"
         "With several PATHs the exit code is the first failure's; the PATHs "
         "after a\n"
         "refusal are still fetched, those after a lost connection are not.\n"
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

/* The last component of a wire path: the name -o DIR/ saves it under.
 * Every separator of the platform counts, so that a wire path's last
 * component can never carry a directory of its own (Windows: "a/..\\x"). */
static const char *out_base(const char *path) {
  const char *b = path;
  for (const char *p = path; *p; p++)
    if (strchr(cli_os.dir_seps, *p))
      b = p + 1;
  return b;
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
      } else if (!o->paths || strcmp(o->cmd, "get") == 0) {
        /* Operands stay where argv holds them; options between them are
         * skipped by compacting the list in place. */
        if (!o->paths)
          o->paths = argv + i;
        o->paths[o->npaths++] = argv[i];
      } else {
        return usage_error("unexpected argument '%s'", a);
      }
      continue;
    }
    if (strcmp(a, "--resume") == 0) {
      o->resume = 1;
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
                               &val)) != 0 ||
               (t = take_value(argc, argv, &i, NULL, "--expect-server-user",
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
  if (o->npaths == 0)
    return usage_error("%s: PATH is missing", o->cmd);
  for (int k = 0; k < o->npaths; k++) {
    if (o->paths[k][0] == '\0')
      return usage_error("%s: PATH is empty", o->cmd);
    if (strlen(o->paths[k]) > PFP_PATH_MAX)
      return usage_error("%s: PATH is longer than the protocol's %d bytes",
                         o->cmd, PFP_PATH_MAX);
  }
  o->path = o->paths[0];
  if (strcmp(o->cmd, "stat") == 0 && (o->out || o->have_range || o->resume))
    return usage_error("stat takes no -o, --offset, --length or --resume");
  if (o->out && strcmp(o->out, "-") != 0)
    o->out_dir = strchr(cli_os.dir_seps, o->out[strlen(o->out) - 1]) != NULL;
  if (o->npaths > 1 && o->out && strcmp(o->out, "-") != 0 && !o->out_dir)
    return usage_error("-o with several PATHs must name a directory, ending "
                       "in \"/\" (%s/)",
                       o->out);
  if (o->resume) {
    if (!o->out || strcmp(o->out, "-") == 0)
      return usage_error("--resume needs -o OUT (a file to continue)");
    if (o->npaths > 1)
      return usage_error("--resume takes one PATH");
    if (o->have_range)
      return usage_error("--resume takes no --offset or --length");
  }
  if (o->out_dir) {
    /* Each file's name is its PATH's last component: never one that could
     * leave the directory or collide with another's. */
    for (int k = 0; k < o->npaths; k++) {
      const char *b = out_base(o->paths[k]);
      if (*b == '\0' || strcmp(b, ".") == 0 || strcmp(b, "..") == 0)
        return usage_error("%s: no file name to save it under in %s",
                           o->paths[k], o->out);
      for (int j = 0; j < k; j++)
        if (strcmp(out_base(o->paths[j]), b) == 0)
          return usage_error("%s and %s would both be saved as %s%s",
                             o->paths[j], o->paths[k], o->out, b);
    }
  }
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

/* One transfer's progress meter, and --resume's stamping of the partial
 * file, both driven by pipefile_read_body_cb after each piece written. */
struct meter {
  const char *path;
  int tty;           /* stderr is a terminal: draw */
  int shown;         /* drawn at least once: end the line */
  uint64_t base;     /* bytes already there (--resume) */
  uint64_t start_ms; /* when this transfer began */
  uint64_t last_ms;  /* last drawn */
  int partial_fd;    /* >= 0: stamp mtime on it after each piece */
  int64_t mtime;     /* the remote file's, for the stamp */
  int stamp_err;     /* the stamp's -errno, when it failed */
};

/* to_stdout_fd: the body goes to standard output (that fd), else -1. */
static void meter_init(struct meter *m, const char *path, uint64_t base,
                       int to_stdout_fd) {
  memset(m, 0, sizeof(*m));
  m->path = path;
  /* Standard error is descriptor 2 with every C runtime. Not over the
   * file's own bytes when they go to a terminal too. */
  m->tty = cli_is_tty(2) && !(to_stdout_fd >= 0 && cli_is_tty(to_stdout_fd));
  m->base = base;
  m->start_ms = cli_now_ms();
  m->partial_fd = -1;
}

/* n bytes as "123 B", "12.3 KiB", ... */
static void human(char *buf, size_t size, double n) {
  static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t u = 0;
  while (n >= 1024 && u + 1 < sizeof(unit) / sizeof(*unit)) {
    n /= 1024;
    u++;
  }
  snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", n, unit[u]);
}

static void meter_draw(struct meter *m, uint64_t done, uint64_t total,
                       uint64_t now) {
  char have[32], all[32], rate[32], eta[32] = "--:--";
  double secs = (double)(now - m->start_ms) / 1000.0;
  double bps = secs > 0 ? (double)done / secs : 0;
  int pct =
      total
          ? (int)((double)(done + m->base) * 100.0 / (double)(total + m->base))
          : 100;
  size_t plen = strlen(m->path);

  human(have, sizeof(have), (double)(done + m->base));
  human(all, sizeof(all), (double)(total + m->base));
  human(rate, sizeof(rate), bps);
  if (bps > 0) {
    uint64_t left = (uint64_t)((double)(total - done) / bps);
    snprintf(eta, sizeof(eta), "%" PRIu64 ":%02u", left / 60,
             (unsigned)(left % 60));
  }
  /* One line, redrawn in place: a long PATH shows its end. */
  fprintf(stderr, "\rpipefile: %s%s: %s of %s (%d%%), %s/s, ETA %s   ",
          plen > 32 ? "..." : "", plen > 32 ? m->path + plen - 29 : m->path,
          have, all, pct, rate, eta);
  fflush(stderr);
  m->shown = 1;
  m->last_ms = now;
}

static int on_progress(void *arg, const struct pipefile_result *res) {
  struct meter *m = arg;
  uint64_t now;

  if (m->partial_fd >= 0) {
    int r = cli_partial_stamp(m->partial_fd, m->mtime);
    if (r < 0) {
      m->stamp_err = r;
      return r;
    }
  }
  if (!m->tty)
    return 0;
  now = cli_now_ms();
  if (now - m->start_ms >= PROGRESS_AFTER_MS &&
      (!m->shown || now - m->last_ms >= PROGRESS_EVERY_MS))
    meter_draw(m, res->body_done, res->body_len, now);
  return 0;
}

/* The final state, and the end of the meter's line, if it was drawn. */
static void meter_end(struct meter *m, const struct pipefile_result *res) {
  if (!m->shown)
    return;
  meter_draw(m, res->body_done, res->body_len, cli_now_ms());
  fputc('\n', stderr);
}

/* Where -o OUT puts PATH: OUT itself, or OUT's directory and PATH's last
 * component. Returns 0 or -ENAMETOOLONG. */
static int out_name(const struct options *o, const char *path, char *buf,
                    size_t size) {
  int n = o->out_dir ? snprintf(buf, size, "%s%s", o->out, out_base(path))
                     : snprintf(buf, size, "%s", o->out);
  return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Longest -o name built; a longer one is refused (-ENAMETOOLONG). */
#define OUT_NAME_MAX 8192

/* Whether the server closes the connection after answering status s. */
static int status_closes(int s) { return s == PFP_EPROTO || s == PFP_EBUSY; }

/* Read the answer to one pipelined GET (o->path) and its body into the
 * output. *fd_single is the temporary file made for a single -o OUT before
 * connecting (consumed here), stdout_fd standard output's. Sets *lost when
 * the connection cannot be used for the next answer. Returns an exit
 * code. */
static int get_one(const struct options *o, int sock, int stdout_fd,
                   int *fd_single, int unsent, int *lost) {
  struct pipefile_result res;
  struct meter m;
  char name[OUT_NAME_MAX];
  int to_file = o->out && strcmp(o->out, "-") != 0;
  const char *outname = to_file ? name : "standard output";
  int out_fd = -1;
  int rc;
  int r;

  name[0] = '\0';
  if (to_file && out_name(o, o->path, name, sizeof(name)) < 0)
    snprintf(name, sizeof(name), "%s", o->out);
  r = pipefile_read_get_response(sock, o->offset, o->length, &res);
  /* OK to a request the server never received cannot be true. */
  if (r == 0 && unsent && res.status == PFP_OK)
    r = -ECONNRESET;
  if (r < 0 || res.status != PFP_OK) {
    *lost = r < 0 || unsent || status_closes(res.status);
    rc = request_error(o, outname, r, &res);
    goto out;
  }
  if (!to_file) {
    out_fd = stdout_fd;
  } else if (*fd_single >= 0) {
    out_fd = *fd_single;
    *fd_single = -1;
  } else {
    out_fd = strlen(name) >= sizeof(name) - 1 ? -ENAMETOOLONG
                                              : cli_temp_create(name);
    if (out_fd < 0) {
      fprintf(stderr,
              "pipefile: %s: cannot create a temporary file for %s: %s\n",
              o->path, name, transport_strerror(out_fd));
      /* The body is on its way: read it into nothing, so that the next
       * answer can be read. */
      *lost = pipefile_read_body(sock, -1, &res) < 0;
      rc = EX_CANTCREAT;
      goto out;
    }
  }
  meter_init(&m, o->path, o->offset, to_file ? -1 : out_fd);
  r = pipefile_read_body_cb(sock, out_fd, &res, on_progress, &m);
  meter_end(&m, &res);
  if (r < 0) {
    *lost = 1;
    rc = request_error(o, outname, r, &res);
    goto out;
  }
  if (to_file) {
    /* The data must be on disk before the name says it is complete; closing
     * can report a deferred write error (NFS). */
    int fd = out_fd;
    out_fd = -1;
    r = cli_temp_commit(fd, name);
    if (r < 0) {
      fprintf(stderr, "pipefile: %s: cannot write %s: %s\n", o->path, name,
              transport_strerror(r));
      rc = EX_CANTCREAT;
      goto out;
    }
  }
  rc = EX_OK;
out:
  if (to_file && out_fd >= 0)
    cli_temp_discard(out_fd);
  return rc;
}

static int cmd_get(struct options *o) {
  char server[PIPEFILE_SERVER_TEXT_MAX];
  int to_file = o->out && strcmp(o->out, "-") != 0;
  int fd_single = -1;
  int stdout_fd = -1;
  int sock = -1;
  int next = 0; /* the next answer to read */
  int lost = 0;
  int rc = EX_OK;
  int r;

  if (to_file && !o->out_dir) {
    /* Before connecting: a request is wasted if its bytes have nowhere to
     * go. */
    fd_single = cli_temp_create(o->out);
    if (fd_single < 0) {
      fprintf(stderr,
              "pipefile: %s: cannot create a temporary file for %s: %s\n",
              o->path, o->out, transport_strerror(fd_single));
      rc = EX_CANTCREAT;
      goto out;
    }
  } else if (!to_file) {
    stdout_fd = cli_stdout_bytes();
    if (stdout_fd < 0) {
      fprintf(stderr, "pipefile: %s: cannot write standard output: %s\n",
              o->path, transport_strerror(stdout_fd));
      rc = EX_CANTCREAT;
      goto out;
    }
  }
  r = pipefile_connect_as(o->socket, o->server, &sock, server, sizeof(server));
  if (r < 0) {
    rc = connect_error(o, r, server);
    goto out;
  }
  /* Windows of requests: send up to PIPELINE_MAX of them, then read their
   * answers in order. The last request of the run carries CLOSE, so the
   * server frees the connection at once instead of at its idle timeout. */
  while (next < o->npaths && !lost) {
    int end = next;
    int unsent = 0;
    size_t bytes = 0;
    while (end < o->npaths && end - next < PIPELINE_MAX) {
      size_t len = PFP_REQ_HDR_LEN + strlen(o->paths[end]);
      int flags = end == o->npaths - 1 ? PFP_OP_CLOSE : 0;
      if (end > next && bytes + len > PIPELINE_BYTES)
        break;
      r = pipefile_send_request(sock, PFP_OP_GET | flags, o->paths[end],
                                o->offset, o->length);
      if (r == -ECONNRESET) {
        /* The server closed: it may have said why (EBUSY) before this
         * request got in; read what it left, this request's answer too. */
        unsent = 1;
        end++;
        break;
      }
      if (r < 0) {
        o->path = o->paths[end];
        fprintf(stderr, "pipefile: %s: %s\n", o->path, pipefile_strerror(r));
        if (rc == EX_OK)
          rc = EX_PROTOCOL;
        lost = 1;
        break;
      }
      bytes += len;
      end++;
    }
    for (; next < end && !lost; next++) {
      int code;
      o->path = o->paths[next];
      code = get_one(o, sock, stdout_fd, &fd_single, unsent && next == end - 1,
                     &lost);
      if (rc == EX_OK)
        rc = code;
    }
  }
  if (next < o->npaths)
    fprintf(stderr,
            "pipefile: %d of %d PATHs not fetched: the connection "
            "was lost\n",
            o->npaths - next, o->npaths);
out:
  pipefile_close(sock);
  if (fd_single >= 0)
    cli_temp_discard(fd_single);
  return rc;
}

/* get --resume -o OUT: continue .OUT.pipefile-partial (cli_os.h) when the
 * remote file is the one it was started from, else start it over. */
static int cmd_resume(struct options *o) {
  struct pipefile_result res;
  struct meter m;
  char server[PIPEFILE_SERVER_TEXT_MAX];
  char name[OUT_NAME_MAX];
  uint64_t have = 0, size, offset;
  int64_t have_mtime = 0, mtime;
  int pfd = -1;
  int sock = -1;
  int rc;
  int r;

  r = out_name(o, o->path, name, sizeof(name));
  if (r == 0)
    r = pfd = cli_partial_open(name, &have, &have_mtime);
  if (r < 0) {
    fprintf(stderr, "pipefile: %s: cannot open the partial file for %s: %s\n",
            o->path, name, transport_strerror(r));
    rc = EX_CANTCREAT;
    goto out;
  }
  r = pipefile_connect_as(o->socket, o->server, &sock, server, sizeof(server));
  if (r < 0) {
    rc = connect_error(o, r, server);
    goto out;
  }
  r = pipefile_stat(sock, o->path, 0, &res);
  if (r < 0 || res.status != PFP_OK) {
    rc = request_error(o, name, r, &res);
    goto out;
  }
  size = res.file_size;
  mtime = res.mtime;
  offset = have;
  if (have > 0 && (mtime != have_mtime || size < have)) {
    fprintf(stderr,
            "pipefile: %s: the remote file changed since the partial "
            "transfer (now %" PRIu64 " bytes, mtime %" PRId64
            "; partial %" PRIu64 " bytes, mtime %" PRId64 "): starting over\n",
            o->path, size, mtime, have, have_mtime);
    r = cli_partial_restart(pfd);
    if (r < 0)
      goto write_error;
    offset = 0;
  }
  /* The partial's mtime says which remote file its bytes are from, from
   * before its first byte: a run killed at any point leaves either that
   * stamp or a newer write time, which the next run takes for a change. */
  r = cli_partial_stamp(pfd, mtime);
  if (r < 0)
    goto write_error;
  r = pipefile_send_request(sock, PFP_OP_GET | PFP_OP_CLOSE, o->path, offset,
                            0);
  if (r == 0)
    r = pipefile_read_get_response(sock, offset, 0, &res);
  if (r < 0 || res.status != PFP_OK) {
    rc = request_error(o, name, r, &res);
    goto out;
  }
  if (res.mtime != mtime || res.file_size != size) {
    /* Changed between STAT and GET: these bytes would not continue the
     * partial. Its stamp is the old mtime, so the next run starts over. */
    fprintf(stderr,
            "pipefile: %s: the remote file changed during the transfer; "
            "run again to start over\n",
            o->path);
    rc = EX_PROTOCOL;
    goto out;
  }
  meter_init(&m, o->path, offset, -1);
  m.partial_fd = pfd;
  m.mtime = mtime;
  r = pipefile_read_body_cb(sock, pfd, &res, on_progress, &m);
  meter_end(&m, &res);
  if (m.stamp_err < 0) {
    r = m.stamp_err;
    goto write_error;
  }
  if (r < 0) {
    rc = request_error(o, name, r, &res);
    goto out;
  }
  r = cli_partial_commit(pfd, name);
  pfd = -1;
  if (r < 0)
    goto write_error;
  rc = EX_OK;
  goto out;
write_error:
  fprintf(stderr, "pipefile: %s: cannot write the partial file for %s: %s\n",
          o->path, name, transport_strerror(r));
  rc = EX_CANTCREAT;
out:
  pipefile_close(sock);
  cli_partial_close(pfd);
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
    return o.resume ? cmd_resume(&o) : cmd_get(&o);
  return cmd_stat(&o);
}
