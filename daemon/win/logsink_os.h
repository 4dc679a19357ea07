/* logsink_os.h (Windows) - the platform fields of struct logsink and the
 * system log's limits, included by logsink.h only. The system log is the
 * Windows Event Log (ReportEventW under the "pipefiled" source). */
#ifndef PIPEFILED_LOGSINK_OS_H
#define PIPEFILED_LOGSINK_OS_H

/* ReportEventW takes strings of up to 31,839 characters; keep well under. */
#define LOGSINK_SYSLOG_MSG_MAX 8000

/* file: our HANDLE (FILE_APPEND_DATA); stderr: the process's. */
#define LOGSINK_PRIVATE_FIELDS void *handle;

#endif
