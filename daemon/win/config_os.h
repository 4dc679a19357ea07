/* config_os.h (Windows) - what the settings' defaults and rules are on this
 * platform, included by config.h only. The defaults name the usual
 * %ProgramData% (C:\ProgramData); an install elsewhere writes its paths in
 * its pipefiled.ini (`pipefiled.exe install` does). */
#ifndef PIPEFILED_CONFIG_OS_H
#define PIPEFILED_CONFIG_OS_H

#define CONFIG_OS CONFIG_OS_WIN /* which keys are this platform's */
#define CONFIG_OS_NAME "Windows"
#define CONFIG_DEFAULT_SOCKET "\\\\.\\pipe\\pipefiled"
#define CONFIG_DEFAULT_ROOT "C:\\ProgramData\\pipefiled\\files"
#define CONFIG_SOCKET_NOTE " (a pipe name: \\\\.\\pipe\\ and 256 characters)"

/* max_connections and its quarter, max_connections_per_user: each
 * connection takes one of the C runtime's 2048 descriptors (uv_pipe_open
 * wants one), some of which the daemon holds itself (fdlimit_win.c). */
#define CONFIG_DEFAULT_MAX_CONNECTIONS "2000"
#define CONFIG_DEFAULT_MAX_PER_USER "500"

/* Whether a user or group may be given as a number: not on Windows, where
 * principals are SIDs (named, or written S-1-...) and the numbers the log
 * shows are only the daemon's own names for them. */
#define CONFIG_NUMERIC_IDS 0

/* The compat listener ([compat] pipe_name): the named pipe
 * \\.\pipe\NAME that .NET's NamedPipeClientStream opens on Windows. */
#define CONFIG_COMPAT_DIR_FROM_ENV 0
#define CONFIG_COMPAT_DIR_DEFAULT "\\\\.\\pipe"
#define CONFIG_COMPAT_PREFIX "\\"

/* An absolute path: a drive and a separator (C:\...), or a UNC or device
 * path (\\...); the pipe name is checked by endpoint_win.c. */
#define CONFIG_PATH_ABSOLUTE(v)                                                \
  (((((v)[0] | 0x20) >= 'a' && ((v)[0] | 0x20) <= 'z') && (v)[1] == ':' &&     \
    ((v)[2] == '\\' || (v)[2] == '/')) ||                                      \
   ((v)[0] == '\\' && (v)[1] == '\\'))

#endif
