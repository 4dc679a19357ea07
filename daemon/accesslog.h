/* accesslog.h - one line per request, written off the serving threads.
 *
 * Workers and the acceptor hand a record to accesslog_write(), which copies
 * it into a bounded in-memory queue and returns at once: it never blocks on
 * the destination and never allocates. A writer thread formats the records
 * (text or JSON), looks up user names (cached; a slow NSS lookup delays only
 * the writer) and writes them in batches. When the queue is full or a write
 * fails (disk full), records are dropped and counted, and the count is
 * reported on the error log. */
#ifndef PIPEFILED_ACCESSLOG_H
#define PIPEFILED_ACCESSLOG_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"

#define ACCESSLOG_QUEUE_BYTES (1u << 20) /* bound on queued records */
#define ACCESSLOG_LINE_MAX 32768         /* bound on one formatted line */

struct access_record {
  int64_t time_ms;      /* UTC, ms since the epoch, when the request came */
  unsigned worker;      /* 1..workers; 0 = the acceptor */
  uint64_t conn;        /* connection id, unique for the daemon's life */
  pid_t pid;            /* client's pid, from the kernel */
  uid_t uid;            /* client's uid, from the kernel */
  gid_t gid;            /* client's gid, from the kernel */
  const char *proto;    /* "pfp1" */
  const char *op;       /* "GET", "STAT", or "-" when not known */
  const char *path;     /* wire path bytes (not NUL-terminated), may be NULL */
  size_t path_len;      /* at most PFP_PATH_MAX */
  int status;           /* enum pfp_status */
  uint64_t bytes;       /* body bytes sent */
  uint64_t size;        /* file size at open, 0 if none */
  uint64_t duration_us; /* from request to last byte */
};

/* Start the writer thread for dest ("stderr", "syslog", "off", or a file
 * path opened O_APPEND) in the given format. Returns 0 or -errno (file cannot
 * be opened). */
int accesslog_start(const char *dest, enum access_format fmt);

/* The wall clock in ms since the epoch, as access_record.time_ms wants. */
int64_t accesslog_now_ms(void);

/* Queue one record; never blocks, never fails visibly (drops are counted). */
void accesslog_write(const struct access_record *r);

/* Switch destination/format (SIGHUP). The current file is reopened even if
 * the name is unchanged, which is what logrotate needs. Returns 0 or -errno;
 * on error the old destination stays. */
int accesslog_reconfigure(const char *dest, enum access_format fmt);

/* Reopen the current file (SIGUSR1); asynchronous, errors go to the error
 * log. */
void accesslog_reopen(void);

/* Write everything queued, stop the writer thread, close the file. */
void accesslog_stop(void);

/* Records dropped so far (queue full or write failed). */
uint64_t accesslog_dropped(void);

/* Format r as one line (with '\n') into buf; user is the name to print.
 * Returns the length; lines are cut to fit len (ends with '\n' regardless).
 * Exposed for tests. */
size_t accesslog_format(char *buf, size_t len, const struct access_record *r,
                        const char *user, enum access_format fmt);

#endif
