/* log.h - the daemon's own messages (not the access log): levels, a rate
 * limit, stderr or syslog (written through logsink.h). Thread-safe; each
 * message is one write; nothing here waits for another thread's write. */
#ifndef PIPEFILED_LOG_H
#define PIPEFILED_LOG_H

/* Levels, most severe first; a message is written when its level is at most
 * the one set (config.h's [log] level). */
enum log_level { LOG_LVL_ERROR, LOG_LVL_WARNING, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Send messages to "stderr" or "syslog", dropping those above level. */
void log_setup(const char *dest, enum log_level level);

/* Log one message (one line: newlines in it become spaces). Rate limited
 * like the kernel's printk_ratelimit: of one kind of message (the same fmt,
 * or the same text when fmt is "%s"), at most 10 are written in 5 s; the
 * rest are counted, and the count is written as "N similar messages
 * suppressed ..." (at the level of that kind, with the first suppressed
 * message's text) once the window has ended and anything is logged, or at
 * log_tick() or log_flush(). Messages filtered out by level do not count. */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Write the summaries of the windows that have ended. log_msg() does this
 * too, but only when something is logged: a timer calling this every few
 * seconds makes the summary of a flood that stopped come on time. */
void log_tick(void);

/* Write the summary of every message suppressed so far, window ended or
 * not: before the last line at exit, so no count is lost. */
void log_flush(void);

/* For tests: burst messages per window_ms for each kind (burst 0: no
 * limit); forgets all counts, unreported ones too. */
void log_ratelimit_set(unsigned burst, unsigned window_ms);

/* guard is called before every line is written, on the thread writing it:
 * identity_settle(), installed by identity_init(), so that a worker still
 * holding a client's credentials (identity.h) writes as the daemon (a
 * syslog line is sent to a path, looked up with the thread's credentials).
 * Set once, before any thread logs; NULL: none. */
void log_set_guard(void (*guard)(void));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
