/* holdfile.c - hold a file open with no sharing, as another program (an
 * editor, a backup) may, for the Windows test suite: pipefiled must answer
 * EBUSY ("leased or locked by another process") at once, not wait.
 *
 *   holdfile PATH   open PATH for reading with share mode 0 (nobody else
 *                   may open it), print "held" on stdout, then keep it open
 *                   until stdin ends (the test closes it, or kills us).
 *
 * Exit: 0 after stdin ended; 1 the file could not be opened (the Win32
 * error on stderr); 64 usage. */
#include <stdio.h>
#include <windows.h>

int main(int argc, char **argv) {
  wchar_t w[1024];
  char buf[256];
  DWORD n;
  HANDLE h;

  if (argc != 2) {
    fprintf(stderr, "usage: holdfile PATH\n");
    return 64;
  }
  if (MultiByteToWideChar(CP_UTF8, 0, argv[1], -1, w, 1024) <= 0) {
    fprintf(stderr, "holdfile: bad path\n");
    return 64;
  }
  h = CreateFileW(w, GENERIC_READ, 0, NULL, OPEN_EXISTING,
                  FILE_ATTRIBUTE_NORMAL, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    fprintf(stderr, "holdfile: cannot open %s: Win32 error %lu\n", argv[1],
            (unsigned long)GetLastError());
    return 1;
  }
  printf("held\n");
  fflush(stdout);
  while (ReadFile(GetStdHandle(STD_INPUT_HANDLE), buf, sizeof(buf), &n, NULL) &&
         n > 0) {
  }
  CloseHandle(h);
  return 0;
}
