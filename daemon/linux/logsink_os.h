/* logsink_os.h (Linux) - the platform fields of struct logsink and the
 * system log's message bound, included by logsink.h only (the build puts
 * daemon/linux/ on the include path). Only logsink_linux.c reads the
 * fields. */
#ifndef PIPEFILED_LOGSINK_OS_H
#define PIPEFILED_LOGSINK_OS_H

/* The longest datagram sent to /dev/log is rsyslog's default
 * $MaxMessageSize (8192), so a message is never cut by the receiver either;
 * logsink_linux.c puts at most 48 bytes of header before it
 * ("<191>Mmm dd hh:mm:ss pipefiled[4294967295]: " is 44). */
#define LOGSINK_SYSLOG_DGRAM_MAX 8192
#define LOGSINK_SYSLOG_HDR_MAX 48
#define LOGSINK_SYSLOG_MSG_MAX                                                 \
  (LOGSINK_SYSLOG_DGRAM_MAX - LOGSINK_SYSLOG_HDR_MAX)

/* file: our descriptor (O_APPEND, blocking, close-on-exec); stderr: 2;
 * off and syslog: -1 (the syslog socket is one for the process). */
#define LOGSINK_PRIVATE_FIELDS int fd;

#endif
