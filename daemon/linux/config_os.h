/* config_os.h (Linux) - what the settings' defaults and rules are on this
 * platform, included by config.h only. */
#ifndef PIPEFILED_CONFIG_OS_H
#define PIPEFILED_CONFIG_OS_H

#include "proto.h"

#define CONFIG_OS CONFIG_OS_LINUX /* which keys are this platform's */
#define CONFIG_OS_NAME "Linux"
#define CONFIG_DEFAULT_SOCKET PFP_DEFAULT_SOCKET
#define CONFIG_DEFAULT_ROOT "/srv/pipefiled"
#define CONFIG_SOCKET_NOTE " (the limit for a Unix socket path)"

/* max_connections and its quarter, max_connections_per_user. */
#define CONFIG_DEFAULT_MAX_CONNECTIONS "4096"
#define CONFIG_DEFAULT_MAX_PER_USER "1024"

/* Whether a user or group may be given as a number (a uid or gid). */
#define CONFIG_NUMERIC_IDS 1

/* The compat listener ([compat] pipe_name): where .NET's
 * NamedPipeClientStream looks on Unix, Path.GetTempPath() (TMPDIR, else
 * /tmp) + "CoreFxPipe_" + the pipe name; mono's does the same. */
#define CONFIG_COMPAT_DIR_FROM_ENV 1 /* the daemon's TMPDIR at start */
#define CONFIG_COMPAT_DIR_DEFAULT "/tmp"
#define CONFIG_COMPAT_PREFIX "/CoreFxPipe_"

/* An absolute path: from the root directory. */
#define CONFIG_PATH_ABSOLUTE(v) ((v)[0] == '/')

#endif
