/* log.h - the daemon's own messages (not the access log): levels, stderr or
 * syslog. Thread-safe; each message is one write. */
#ifndef PIPEFILED_LOG_H
#define PIPEFILED_LOG_H

#include "config.h"

/* Send messages to "stderr" or "syslog", dropping those above level. */
void log_setup(const char *dest, enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
