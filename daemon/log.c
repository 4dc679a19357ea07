/* log.c - the daemon's own messages: level filter, rate limit, and the
 * line for stderr or the system log (written through logsink.h, which
 * never waits on either). */

/* Each message is formatted on the stack and written in one piece, so
 * lines from threads never interleave; see log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "logsink.h"

/* At most PIPE_BUF (4096 on Linux), so one write() to a pipe (journald,
 * a supervisor) is atomic and lines from threads never interleave. */
#define LOG_LINE_MAX 2048
/* Room kept in front of a message for "pipefiled: warning: ". */
#define LOG_PREFIX_ROOM 32

/* The rate limit, like the kernel's printk_ratelimit: per kind of message,
 * at most LOG_RL_BURST in a window of LOG_RL_WINDOW_MS; the rest are
 * counted and summarised in one line. Any message a client can cause
 * (an open error, a failed send) is thereby bounded, however fast the
 * client asks. */
#define LOG_RL_BURST 10
#define LOG_RL_WINDOW_MS 5000
#define LOG_RL_SLOTS 64   /* kinds tracked; more share the overflow slot */
#define LOG_RL_SAMPLE 200 /* bytes of a suppressed message in its summary */
#define LOG_RL_DUE_MAX 4  /* summaries written per message, at most */

/* Atomics: log_setup() runs on SIGHUP while other threads are logging. */
static atomic_int log_to_syslog;
static atomic_int log_level = LOG_LVL_INFO;
static void (*log_guard)(void); /* set before threads start: plain */

static const char *const level_names[] = {"error", "warning", "info", "debug"};
static const enum logsink_priority level_priority[] = {
    [LOG_LVL_ERROR] = LOGSINK_PRI_ERROR,
    [LOG_LVL_WARNING] = LOGSINK_PRI_WARNING,
    [LOG_LVL_INFO] = LOGSINK_PRI_INFO,
    [LOG_LVL_DEBUG] = LOGSINK_PRI_DEBUG,
};

/* The stderr line prefix, in one place: the journal's priority mark when
 * stderr is the journal (logsink_stderr_mark: it shows the name and level
 * itself), else "pipefiled: LEVEL: ". Returns the bytes written (less than
 * len). */
static size_t log_prefix(char *buf, size_t len, enum log_level level) {
  size_t m = logsink_stderr_mark(level_priority[level], buf, len);
  int n;

  if (m > 0)
    return m;
  n = snprintf(buf, len, "pipefiled: %s: ", level_names[level]);
  if (n < 0)
    return 0;
  return (size_t)n < len ? (size_t)n : len - 1;
}

/* One kind of message: the same format string (a call site), or, for a
 * bare "%s", the same text. */
struct rl_slot {
  uintptr_t key;                 /* 0: free */
  int level;                     /* of the last message of this kind */
  int64_t begin_ms;              /* the current window's start */
  unsigned printed;              /* written in this window */
  unsigned long long suppressed; /* not written in this window */
  char sample[LOG_RL_SAMPLE];    /* the first suppressed one's text */
};

/* A summary taken out of the table, to be written outside the lock. */
struct rl_due {
  int level;
  unsigned long long suppressed;
  unsigned burst, window_ms; /* the limit it went over */
  char sample[LOG_RL_SAMPLE];
};

/* The table is only ever held for bookkeeping, never across a write, so a
 * thread that logs waits at most for another's few comparisons. */
static uv_mutex_t rl_mu;
static uv_once_t rl_once = UV_ONCE_INIT;
static struct rl_slot rl_slots[LOG_RL_SLOTS];
static struct rl_slot rl_overflow; /* kinds beyond the table, together */
static unsigned rl_burst = LOG_RL_BURST;
static unsigned rl_window_ms = LOG_RL_WINDOW_MS;

/* uv_mutex_t has no static initializer: the first user makes it, and any
 * thread may log first. uv_mutex_init cannot fail short of the system
 * being out of memory at start-up, where libuv itself aborts too. */
static void rl_init(void) {
  if (uv_mutex_init(&rl_mu) != 0)
    abort();
}

static void rl_lock(void) {
  uv_once(&rl_once, rl_init);
  uv_mutex_lock(&rl_mu);
}

static int64_t mono_ms(void) {
  /* A vDSO read on Linux, no system call. */
  return (int64_t)(uv_hrtime() / 1000000);
}

/* FNV-1a of the text, never 0 (a free slot). Should it equal another
 * kind's key (a hash, or a format string's address), the two kinds only
 * share one budget. */
static uintptr_t text_key(const char *text, size_t len) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)text[i];
    h *= 1099511628211ULL;
  }
  return (uintptr_t)h | 1;
}

/* Move slot's suppressed count into a summary (with the lock held). */
static void rl_take(struct rl_slot *slot, struct rl_due *due) {
  due->level = slot->level;
  due->suppressed = slot->suppressed;
  due->burst = rl_burst;
  due->window_ms = rl_window_ms;
  memcpy(due->sample, slot->sample, sizeof(due->sample));
  slot->suppressed = 0;
}

/* The slot for key: its own, a free one, one whose window has ended with
 * nothing to report, or else the overflow slot. With the lock held. */
static struct rl_slot *rl_find(uintptr_t key, int64_t now) {
  struct rl_slot *spare = NULL;

  for (int i = 0; i < LOG_RL_SLOTS; i++) {
    struct rl_slot *s = &rl_slots[i];
    if (s->key == key)
      return s;
    if (spare == NULL && (s->key == 0 || (s->suppressed == 0 &&
                                          now - s->begin_ms >= rl_window_ms)))
      spare = s;
  }
  if (spare == NULL)
    return &rl_overflow;
  memset(spare, 0, sizeof(*spare));
  spare->key = key;
  spare->begin_ms = now;
  return spare;
}

/* Summaries whose window has ended, up to max of them (with the lock
 * held): so a burst is summed up soon after it stops, even if that kind of
 * message never comes again, as long as anything is logged. all: every
 * count, ended or not (log_flush). Returns how many. */
static int rl_sweep(int64_t now, int all, struct rl_due *due, int max) {
  int n = 0;

  for (int i = 0; i <= LOG_RL_SLOTS && n < max; i++) {
    struct rl_slot *s = i < LOG_RL_SLOTS ? &rl_slots[i] : &rl_overflow;
    if (s->suppressed > 0 && (all || now - s->begin_ms >= rl_window_ms)) {
      rl_take(s, &due[n++]);
      s->begin_ms = now;
      s->printed = 0;
    }
  }
  return n;
}

void log_ratelimit_set(unsigned burst, unsigned window_ms) {
  rl_lock();
  rl_burst = burst;
  rl_window_ms = window_ms;
  memset(rl_slots, 0, sizeof(rl_slots));
  memset(&rl_overflow, 0, sizeof(rl_overflow));
  uv_mutex_unlock(&rl_mu);
}

void log_set_guard(void (*guard)(void)) { log_guard = guard; }

void log_setup(const char *dest, enum log_level level) {
  int use_syslog = dest != NULL && strcmp(dest, "syslog") == 0;

  if ((int)level < LOG_LVL_ERROR || level > LOG_LVL_DEBUG)
    level = LOG_LVL_INFO;
  atomic_store(&log_level, (int)level);
  atomic_store(&log_to_syslog, use_syslog);
}

/* Write one message of len bytes at buf + start (start bytes are free for
 * the prefix; one byte after the text is free for the '\n'). */
static void log_write(enum log_level level, char *buf, size_t start,
                      size_t len) {
  size_t n = start + len;

  if (log_guard != NULL)
    log_guard();
  /* A message is one line: a newline inside it (say, from a file name)
   * would let text pose as a message of its own. */
  for (size_t i = start; i < n; i++)
    if (buf[i] == '\n' || buf[i] == '\r')
      buf[i] = ' ';

  if (atomic_load(&log_to_syslog)) {
    /* Never waits: these may come from the accept loop or a worker. */
    logsink_syslog(level_priority[level], buf + start, len, 0);
  } else {
    char pre[LOG_PREFIX_ROOM + 1];
    size_t p = log_prefix(pre, sizeof pre, level);
    memcpy(buf + start - p, pre, p);
    buf[n++] = '\n';
    logsink_stderr_line(buf + start - p, p + len + 1);
  }
}

static void log_summary(const struct rl_due *d) {
  char buf[LOG_PREFIX_ROOM + LOG_RL_SAMPLE + 128];
  int m =
      snprintf(buf + LOG_PREFIX_ROOM, sizeof(buf) - LOG_PREFIX_ROOM - 1,
               "%llu similar messages suppressed (more than %u in %u s); "
               "the first: %s",
               d->suppressed, d->burst, (d->window_ms + 999) / 1000, d->sample);
  size_t len = m < 0 ? 0 : (size_t)m;

  if (len > sizeof(buf) - LOG_PREFIX_ROOM - 2)
    len = sizeof(buf) - LOG_PREFIX_ROOM - 2;
  log_write((enum log_level)d->level, buf, LOG_PREFIX_ROOM, len);
}

/* Keep a suppressed message's text for its summary, cut on a UTF-8
 * character boundary. */
static void rl_sample(struct rl_slot *slot, const char *text, size_t len) {
  if (len > sizeof(slot->sample) - 1) {
    len = sizeof(slot->sample) - 1;
    while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
      len--;
  }
  memcpy(slot->sample, text, len);
  slot->sample[len] = '\0';
}

void log_msg(enum log_level level, const char *fmt, ...) {
  char buf[LOG_LINE_MAX];
  struct rl_due due[LOG_RL_DUE_MAX + 1];
  int saved_errno = errno; /* callers log and then read errno */
  const size_t start = LOG_PREFIX_ROOM;
  int ndue, print = 0;
  int64_t now;
  size_t n;
  va_list ap;
  int m;

  if ((int)level < LOG_LVL_ERROR || level > LOG_LVL_DEBUG)
    level = LOG_LVL_ERROR;
  if ((int)level > atomic_load(&log_level))
    goto out;

  /* One byte stays free for the '\n'. */
  va_start(ap, fmt);
  m = vsnprintf(buf + start, sizeof buf - 1 - start, fmt, ap);
  va_end(ap);
  if (m < 0)
    m = 0;
  n = (size_t)m;
  if (n > sizeof buf - 2 - start)
    n = sizeof buf - 2 - start; /* cut: vsnprintf kept what fit */

  /* A bare "%s" carries messages of every kind: the text tells them
   * apart. Otherwise the call site does, whatever its arguments (a
   * connection id, an errno), so one kind cannot evade the limit by
   * varying them. */
  uintptr_t key =
      strcmp(fmt, "%s") == 0 ? text_key(buf + start, n) : (uintptr_t)fmt;
  now = mono_ms();
  rl_lock();
  ndue = rl_sweep(now, 0, due, LOG_RL_DUE_MAX);
  struct rl_slot *slot = rl_find(key, now);
  if (now - slot->begin_ms >= rl_window_ms) {
    if (slot->suppressed > 0)
      rl_take(slot, &due[ndue++]);
    slot->begin_ms = now;
    slot->printed = 0;
  }
  slot->level = (int)level;
  if (rl_burst == 0 || slot->printed < rl_burst) {
    slot->printed++;
    print = 1;
  } else if (slot->suppressed++ == 0) {
    rl_sample(slot, buf + start, n);
  }
  uv_mutex_unlock(&rl_mu);

  for (int i = 0; i < ndue; i++)
    log_summary(&due[i]);
  if (print)
    log_write(level, buf, start, n);
out:
  errno = saved_errno;
}

/* Write the summaries that are due (all: every one), a few at a time, so
 * the lock is never held across a write. */
static void log_sweep(int all) {
  struct rl_due due[LOG_RL_DUE_MAX];
  int saved_errno = errno;
  int n;

  do {
    rl_lock();
    n = rl_sweep(mono_ms(), all, due, LOG_RL_DUE_MAX);
    uv_mutex_unlock(&rl_mu);
    for (int i = 0; i < n; i++)
      log_summary(&due[i]);
  } while (n == LOG_RL_DUE_MAX);
  errno = saved_errno;
}

void log_tick(void) { log_sweep(0); }

void log_flush(void) { log_sweep(1); }
