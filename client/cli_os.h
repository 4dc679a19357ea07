/* cli_os.h - the pipefile command's platform half, private to client/:
 * the words that name a server on this platform, the command line and
 * environment as UTF-8, standard output for bytes, the -o output file
 * that appears only when complete, the --resume partial file, and the
 * clock and terminal test of the progress meter. cli_linux.c and cli_win.c
 * implement it; pipefile.c (arguments, messages, exit codes) calls only this
 * and pipefile.h. */
#ifndef PIPEFILE_CLI_OS_H
#define PIPEFILE_CLI_OS_H

#include <stdint.h>
#include <time.h>

/* How the command names the one server to trust, and what it says when a
 * server is refused; every field is a constant string. */
struct cli_os {
  const char *server_opt;      /* "--server-uid" / "--server-user" */
  const char *server_env;      /* its environment variable */
  const char *server_arg;      /* "UID" / "USER", in usage lines */
  const char *server_what;     /* what a valid value is, after "is not " */
  const char *server_help;     /* the option's lines in --help */
  const char *refused_by_rule; /* after "X is served by Y, ", the default
                                  rule's refusal */
  const char *exit_untrusted;  /* --help's text for the untrusted exit */
  const char *name_too_long;   /* after "socket path is N bytes, " */
  const char *dir_seps;        /* characters that end a directory in a
                                  file name ("/"; Windows "/\\:"), which
                                  -o DIR/ must not let a PATH's last
                                  component contain */
};
extern const struct cli_os cli_os;

/* The command line as UTF-8 (Windows: from GetCommandLineW, not the ANSI
 * code page's argv, so wire paths and file names keep every character).
 * Returns 0 and sets *argv (valid until exit), or -errno. */
int cli_args(int *argc, char ***argv);

/* The environment variable name as UTF-8, or NULL when unset. */
const char *cli_getenv(const char *name);

/* Standard output as an fd for a file's bytes, untranslated (Windows:
 * binary mode, no "\n" -> "\r\n"). */
int cli_stdout_bytes(void);

/* t (seconds since the epoch) as UTC in *tm. Returns 0, or -1 when out of
 * the platform's range. */
int cli_gmtime(int64_t t, struct tm *tm);

/* The -o output file, written under a temporary name next to out (same
 * directory: the rename stays on one file system and is atomic), named
 * ".BASE.pipefile-XXXXXX"; an interrupt (Ctrl-C, SIGTERM, ...) removes it.
 * One at a time. Returns an fd for writing, or -errno (-EISDIR when out
 * names a directory, "dir/"). */
int cli_temp_create(const char *out);

/* Flush the temporary file's data to disk, close fd and move the file over
 * out (replacing it). Returns 0, or -errno (then the temporary file is
 * still there for cli_temp_discard). */
int cli_temp_commit(int fd, const char *out);

/* Close fd (when >= 0) and remove the temporary file, if one is left. */
void cli_temp_discard(int fd);

/* --resume's partial file: ".BASE.pipefile-partial" next to out, opened
 * (created if missing, mode 0666 less the umask) for appending. Unlike
 * cli_temp_create's file it has a fixed name and is kept when the command
 * fails or is interrupted, so that the next --resume continues it. Its
 * modification time holds the remote file's (cli_partial_stamp), so a
 * later run can tell the remote file changed. Refused when it is not a
 * regular file of our own (a link, a file another user planted: -EPERM).
 * Returns an fd and sets *size and *mtime (0 and 0 for a new file), or
 * -errno (-EISDIR: out names a directory). */
int cli_partial_open(const char *out, uint64_t *size, int64_t *mtime);

/* Empty the partial file, to start over. Returns 0 or -errno. */
int cli_partial_restart(int fd);

/* Set the partial file's modification time to mtime (seconds since the
 * epoch): after every write, which sets it to now. Returns 0 or -errno. */
int cli_partial_stamp(int fd, int64_t mtime);

/* Flush the partial file to disk, close fd and move it over out. Returns 0
 * or -errno (fd is closed either way; the partial stays on failure). */
int cli_partial_commit(int fd, const char *out);

/* Close the partial file's fd (when >= 0), keeping the file. */
void cli_partial_close(int fd);

/* Whether fd (standard error, standard output) is a terminal: the
 * progress meter is for people, never for logs or pipes. */
int cli_is_tty(int fd);

/* A monotonic clock in milliseconds, for the meter's rate and ETA. */
uint64_t cli_now_ms(void);

#endif
