/* svcctl.c - send a control to a service, as `sc control NAME CODE` does on
 * Windows (wine's sc.exe has no "control"), for the Windows test suite.
 *
 *   svcctl NAME paramchange   SERVICE_CONTROL_PARAMCHANGE (pipefiled:
 *                             reload the config)
 *   svcctl NAME N             control code N, 128..255 user-defined
 *                             (pipefiled: 128 reopens the access log)
 *
 * Prints the service's state after the control ("state N") on stdout.
 * Exit: 0 the service accepted the control; 1 it did not, or the service
 * or the SCM could not be opened (the Win32 error on stderr); 64 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

int main(int argc, char **argv) {
  wchar_t name[256];
  SERVICE_STATUS st;
  SC_HANDLE scm, svc;
  DWORD code;
  char *end;

  if (argc != 3 ||
      MultiByteToWideChar(CP_UTF8, 0, argv[1], -1, name, 256) <= 0) {
    fprintf(stderr, "usage: svcctl NAME paramchange|CODE\n");
    return 64;
  }
  if (strcmp(argv[2], "paramchange") == 0) {
    code = SERVICE_CONTROL_PARAMCHANGE;
  } else {
    code = (DWORD)strtoul(argv[2], &end, 10);
    if (*end != '\0' || code == 0) {
      fprintf(stderr, "svcctl: bad control %s\n", argv[2]);
      return 64;
    }
  }
  scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  if (scm == NULL) {
    fprintf(stderr, "svcctl: OpenSCManager: Win32 error %lu\n",
            (unsigned long)GetLastError());
    return 1;
  }
  svc = OpenServiceW(scm, name,
                     SERVICE_PAUSE_CONTINUE | SERVICE_USER_DEFINED_CONTROL |
                         SERVICE_QUERY_STATUS);
  if (svc == NULL) {
    fprintf(stderr, "svcctl: OpenService %s: Win32 error %lu\n", argv[1],
            (unsigned long)GetLastError());
    CloseServiceHandle(scm);
    return 1;
  }
  memset(&st, 0, sizeof(st));
  if (!ControlService(svc, code, &st)) {
    fprintf(stderr, "svcctl: ControlService %s %lu: Win32 error %lu\n", argv[1],
            (unsigned long)code, (unsigned long)GetLastError());
    CloseServiceHandle(svc);
    CloseServiceHandle(scm);
    return 1;
  }
  printf("state %lu\n", (unsigned long)st.dwCurrentState);
  CloseServiceHandle(svc);
  CloseServiceHandle(scm);
  return 0;
}
