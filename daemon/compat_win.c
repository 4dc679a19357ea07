/* compat_win.c - read a served file's text for the compat protocol
 * (compat.h). resolve_win.c opens files for overlapped I/O, so every
 * ReadFile passes an OVERLAPPED with its offset and an event to wait on. */
#include "compat.h"

#include <windows.h>

#include <string.h>

int compat_read_file(uv_os_fd_t fd, uint8_t *buf, size_t cap, size_t *got) {
  OVERLAPPED ov;
  HANDLE ev;
  size_t n = 0;
  int rc = 0;

  *got = 0;
  ev = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (ev == NULL)
    return uv_translate_sys_error((int)GetLastError());
  while (n < cap) {
    DWORD want = cap - n > 0x10000 ? 0x10000 : (DWORD)(cap - n), r = 0;
    memset(&ov, 0, sizeof(ov));
    ov.Offset = (DWORD)n;
    ov.hEvent = ev;
    if (!ReadFile((HANDLE)fd, buf + n, want, NULL, &ov) &&
        GetLastError() != ERROR_IO_PENDING) {
      DWORD e = GetLastError();
      if (e != ERROR_HANDLE_EOF)
        rc = uv_translate_sys_error((int)e);
      break;
    }
    if (!GetOverlappedResult((HANDLE)fd, &ov, &r, TRUE)) {
      DWORD e = GetLastError();
      if (e != ERROR_HANDLE_EOF)
        rc = uv_translate_sys_error((int)e);
      break;
    }
    if (r == 0)
      break;
    n += r;
  }
  CloseHandle(ev);
  *got = n;
  return rc;
}
