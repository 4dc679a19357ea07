/* syslogsend.h - one message to the local syslog daemon, never blocking
 * longer than the caller allows.
 *
 * glibc's syslog(3) sends on a blocking socket under a process-wide lock:
 * a syslog daemon that stops reading would stall every thread that logs,
 * the accept loop and shutdown included. This sends each message as one
 * datagram on a non-blocking socket, in syslog(3)'s own format, and leaves
 * to the caller what to do when there is no room in time. */
#ifndef PIPEFILED_SYSLOGSEND_H
#define PIPEFILED_SYSLOGSEND_H

#include <stddef.h>

#define SYSLOGSEND_PATH "/dev/log"
/* The longest datagram sent: rsyslog's default $MaxMessageSize, so a
 * message is never cut by the receiver either. */
#define SYSLOGSEND_MAX 8192
/* The longest header syslogsend puts before a message:
 * "<191>Mmm dd hh:mm:ss pipefiled[4294967295]: " is 44 bytes. */
#define SYSLOGSEND_HDR_MAX 48
/* The longest message that is sent whole; the access log formats its lines
 * to fit (accesslog.h), longer messages are cut. */
#define SYSLOGSEND_MSG_MAX (SYSLOGSEND_MAX - SYSLOGSEND_HDR_MAX)

/* Send len bytes of msg (one line, no newline) at priority pri (facility |
 * severity, e.g. LOG_DAEMON | LOG_INFO) as "pipefiled[PID]". Waits at most
 * wait_ms for the socket to take it. Returns 0, or -errno when the message
 * was not sent (-EAGAIN: no room in time; -ENOENT/-ECONNREFUSED: no syslog
 * daemon). Thread-safe. */
int syslogsend(int pri, const char *msg, size_t len, int wait_ms);

#endif
