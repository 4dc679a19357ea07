/* accesslog.h - one line per request, written off the serving threads: an
 * audit record, so no line means no byte.
 *
 * Workers and the acceptor put records into a bounded in-memory queue and
 * never block on the destination or allocate. A worker reserves room for a
 * request's record before it serves the request (accesslog_reserve); when
 * the queue, or this user's share of it, is full the request waits
 * (back-pressure) instead of being served unlogged. A writer thread formats
 * the records (text or JSON, accesslog_format.c), looks up user names
 * (identity.h, cached) and writes them in batches to the destination
 * (logsink.h), one write per batch or one message per line for syslog.
 *
 * When the destination fails (a write error such as ENOSPC or EIO, syslog
 * gone or not reading), log_full decides:
 *   block (the default): the writer keeps the lines and retries, backing
 *     off from 100 ms to 1 s; the queue fills and requests wait until their
 *     time runs out. When a retry fails too, the error log says once
 *     "access log: blocked: ..." with the records waiting, and "access log:
 *     resumed: ..." when the destination takes writes again.
 *   drop: the lines are dropped, counted and reported on the error log
 *     ("access log: N records dropped (where: why)", at most every 10 s).
 * Either way logging resumes by itself when the destination recovers. At
 * stop the writer drains; a failing destination is retried for 3 s, then
 * what is left is dropped, reported and counted (accesslog_dropped()), and
 * the writer exits within the stop's 5 s bound.
 *
 * The line: one per record, ending in '\n', these fields in this order:
 *   time=2026-11-24T23:13:48.123Z worker=1 conn=17 pid=123 uid=1000
 *   user=alice gid=1000 proto=pfp1 op=GET path="/a b" resolved="a b"
 *   status=OK bytes=4096 size=4096 duration_us=52
 * or in JSON the same keys in the same order, numbers as numbers, resolved
 * null when there is none ("-" in text). path is the wire path, resolved
 * the normalised one that was served; status ABANDONED marks a request read
 * but never answered.
 *   text: path and resolved are double-quoted; bytes that are controls,
 *     DEL, non-ASCII, shell-active ($ ` !) or '[' print as \xHH, the quote
 *     and backslash as \" and \\; user, op and proto print bytes other
 *     than [A-Za-z0-9._-] as \xHH. A line is inert pasted into a shell.
 *   JSON: valid UTF-8 is kept except C1 controls U+0080..U+009F (U+0085
 *     included), U+2028 and U+2029, the bidi controls and invisible code
 *     points (U+061C, U+200B..U+200F, U+202A..U+202E, U+2060..U+206F,
 *     U+FEFF), written \uXXXX like other controls, and '[' as \u005b; each
 *     byte of invalid UTF-8 is \udcXX (Python's surrogateescape).
 * A line longer than its cap (ACCESSLOG_LINE_MAX for a file or stderr; one
 * message, LOGSINK_SYSLOG_MSG_MAX, for syslog) keeps every field: the paths
 * are cut to share the room the other fields leave. resolved (what was
 * served) comes first: it stays whole while that leaves path a quarter of
 * the room, and path gets the rest. A cut path loses its middle, not its
 * end: a third of its room keeps the head, the rest the tail (the file
 * name), and the cut is marked between them, inside the quotes, as
 * "head...[truncated N bytes]...tail" (N wire bytes left out). Since every
 * '[' of a path is escaped, the marker's '[' is the only raw one in a line:
 * a name cannot forge a cut. */
#ifndef PIPEFILED_ACCESSLOG_H
#define PIPEFILED_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define ACCESSLOG_QUEUE_BYTES (1u << 20) /* bound on queued records */
#define ACCESSLOG_LINE_MAX 32768         /* bound on one formatted line */
#define ACCESSLOG_USER_MAX 64 /* longer user names print as the uid */

enum access_format { ACCESS_TEXT, ACCESS_JSON };

/* What the access log does when its destination fails (disk full, syslog
 * gone): block = serve nothing whose record cannot be written; drop = serve,
 * count and report the lost records. A full queue always blocks. */
enum log_full { LOG_FULL_BLOCK, LOG_FULL_DROP };

/* Shares of the queue (see accesslog_reserve): one user holds at most
 * ACCESSLOG_UID_SHARE bytes, and a user that holds ACCESSLOG_UID_SMALL or
 * more may not take the last ACCESSLOG_QUEUE_SPARE bytes of free room. */
#define ACCESSLOG_UID_SHARE (ACCESSLOG_QUEUE_BYTES / 4)
#define ACCESSLOG_UID_SMALL (ACCESSLOG_QUEUE_BYTES / 32)
#define ACCESSLOG_QUEUE_SPARE (ACCESSLOG_QUEUE_BYTES / 4)

/* A status for the log only: the request was read in full but never
 * answered (the client went away, a send timed out). */
#define ACCESS_ABANDONED (-1)

struct access_record {
  int64_t time_ms;      /* UTC, ms since the epoch, when the request came */
  unsigned worker;      /* 1..workers; 0 = the acceptor */
  uint64_t conn;        /* connection id, unique for the daemon's life */
  uv_pid_t pid;         /* client's pid, from the kernel */
  unsigned uid;         /* client's uid (identity_log_ids) */
  unsigned gid;         /* client's gid (identity_log_ids) */
  const char *proto;    /* "pfp1" */
  const char *op;       /* "GET", "STAT", or "-" when not known */
  const char *path;     /* wire path bytes (not NUL-terminated), may be NULL */
  size_t path_len;      /* at most PFP_PATH_MAX */
  const char *resolved; /* normalised path served (NUL-free), or NULL */
  size_t resolved_len;  /* at most path_len + 1 ("" resolves to ".") */
  int status;           /* enum pfp_status, or ACCESS_ABANDONED */
  uint64_t bytes;       /* body bytes sent */
  uint64_t size;        /* file size at open, 0 if none */
  uint64_t duration_us; /* from request to last byte */
};

/* Room reserved in the queue for one record (see accesslog_reserve). */
struct accesslog_ticket {
  uint32_t key;   /* whose share it counts against (identity_user_key) */
  uint32_t bytes; /* 0: no reservation held */
};

/* Where and how to log: dest is "stderr", "syslog", "off", or an absolute
 * file path, opened for appending without following a symbolic link beneath
 * a directory that passes the strict-modes check (logsink.h, fsguard.h). */
struct accesslog_opts {
  const char *dest;
  enum access_format fmt;
  enum log_full full;
  int strict_modes; /* 0: an unsafe log directory is only warned about */
};

/* Start the writer thread. Returns 0 or a negative UV_E* code (on Linux
 * -errno, as every code here), with a one-line reason in err (the file
 * cannot be opened safely). */
int accesslog_start(const struct accesslog_opts *o, char *err, size_t errlen);

/* The wall clock in ms since the epoch, as access_record.time_ms wants. */
int64_t accesslog_now_ms(void);

/* Reserve room for one record of the user key (identity_user_key(); on
 * Linux the uid) whose path is at most path_len bytes (and its resolved
 * path at most path_len + 1). Never blocks. Returns 0 (t holds the room),
 * UV_EPIPE when the log is not running, or UV_EAGAIN when there is no room
 * for it now: the caller waits and tries again (the writer frees room
 * within milliseconds unless the destination fails).
 *
 * The share rule, so that users who flood cannot stall other users' lines:
 * a user's bytes (reserved and queued, until the writer takes them) may not
 * pass ACCESSLOG_UID_SHARE; a user already holding ACCESSLOG_UID_SMALL may
 * not take the last ACCESSLOG_QUEUE_SPARE bytes of free room, which stay
 * for users that hold little. So however many users flood, a light user
 * finds room. The users are counted in a bounded table; when it is full
 * (hundreds of users at once) a new one gets UV_EAGAIN like a full queue. */
int accesslog_reserve(struct accesslog_ticket *t, uint32_t key,
                      size_t path_len);

/* Queue r, a record of t's user, in the room t holds (paths no longer than
 * reserved). Never fails; t is empty afterwards. */
void accesslog_commit(struct accesslog_ticket *t,
                      const struct access_record *r);

/* Give back the room t holds, if any; t is empty afterwards. */
void accesslog_cancel(struct accesslog_ticket *t);

/* Reserve and commit in one, counted against the share of r->uid (the
 * user key on Linux): 0, or UV_EAGAIN (UV_EPIPE when not running) with
 * nothing queued. */
int accesslog_write(const struct access_record *r);

/* Count n records that could not be queued and are given up (the caller
 * could not wait); reported on the error log like other losses. */
void accesslog_lost(uint64_t n);

/* Switch destination/format/log_full (SIGHUP). The current file is reopened
 * even if the name is unchanged, which is what logrotate needs. Returns 0
 * or a negative code with the reason in err; on error the old destination
 * stays. */
int accesslog_reconfigure(const struct accesslog_opts *o, char *err,
                          size_t errlen);

/* Reopen the current file (SIGUSR1); asynchronous, errors go to the error
 * log. */
void accesslog_reopen(void);

/* Write everything queued, stop the writer thread, close the file. */
void accesslog_stop(void);

/* Records lost so far (destination failed with log_full = drop, or
 * given up by accesslog_lost). */
uint64_t accesslog_dropped(void);

/* Records committed or given up so far: one per request answered, refusals
 * included, whether or not its line was written (the status line's
 * "requests"). Any thread. */
uint64_t accesslog_records(void);

/* ---- formatting (accesslog_format.c): pure, no I/O, no threads ---- */

/* Format r as one line (with '\n') into buf; user is the name to print
 * (NULL or "": the uid). len is the cap, '\n' included (at most
 * ACCESSLOG_LINE_MAX is used). Returns the length. A record that does not
 * fit keeps every field and cuts the paths in the middle, marked
 * "...[truncated N bytes]..."; only a len too small for the other fields
 * and two markers gives a plain cut prefix of the line. The line ends with '\n'
 * regardless. Called by the writer; safe on any bytes (for tests and fuzzing).
 */
size_t accesslog_format(char *buf, size_t len, const struct access_record *r,
                        const char *user, enum access_format fmt);

/* Whether a user name prints as itself: 1 to ACCESSLOG_USER_MAX bytes of
 * [A-Za-z0-9._-], nothing that could be taken for structure. The writer
 * prints any other name as the uid. */
int accesslog_user_printable(const char *name);

#endif
