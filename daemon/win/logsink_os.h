/* logsink_os.h (Windows) - the platform fields of struct logsink and the
 * system log's limits, included by logsink.h only. The system log is the
 * Windows Event Log (ReportEventW under the "pipefiled" source). Only
 * logsink_win.c reads the fields. */
#ifndef PIPEFILED_LOGSINK_OS_H
#define PIPEFILED_LOGSINK_OS_H

/* ReportEventW takes strings of up to 31,839 characters; keep well under,
 * at rsyslog's size as on Linux, so that the access log's syslog lines are
 * the same length on both. logsink_win.c converts a message to UTF-16 in
 * a buffer of this many characters on the logging thread's stack. */
#define LOGSINK_SYSLOG_MSG_MAX 8000

/* file: our HANDLE (FILE_APPEND_DATA, synchronous); stderr: the process's
 * (NULL or INVALID_HANDLE_VALUE in a service, which has none); off and
 * syslog: NULL (the Event Log source is one for the process). A void *
 * so that logsink.h's users need no <windows.h>. */
#define LOGSINK_PRIVATE_FIELDS void *handle;

#endif
