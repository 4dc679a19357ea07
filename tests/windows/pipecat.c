/* pipecat.c - a raw named-pipe client for the Windows test suite: what the
 * tests send is exactly the bytes on its standard input, and what they read
 * is exactly the bytes the server wrote, so Python (tests/system/pfp.py)
 * can speak malformed, pipelined or partial PFP/1 to pipefiled.exe.
 *
 *   pipecat NAME [IDLE_MS]   connect to the pipe NAME (\\.\pipe\x), copy
 *                            stdin to the pipe and the pipe to stdout, both
 *                            binary, until the server closes the pipe.
 *   pipecat --probe NAME [MS]  whether an instance of NAME is waiting for a
 *                            client, without connecting (WaitNamedPipe):
 *                            the daemon sees no probe connection.
 *   pipecat --sqos=LEVEL NAME [IDLE_MS]  as the first form, letting the
 *                            server act as us only at LEVEL: anonymous,
 *                            identification, impersonation or delegation
 *                            (SECURITY_SQOS_PRESENT; the default without it
 *                            is impersonation).
 *
 * A pipe has no half-close: stdin's end does not reach the server. So after
 * stdin ends pipecat keeps reading until the server closes; IDLE_MS (default
 * 10000) bounds any wait for the server's next bytes, stdin open or not.
 *
 * Exit: 0 the server closed the pipe; 2 IDLE_MS passed with nothing from
 * the server; 69 cannot connect (the Win32 error on stderr); 74 another
 * I/O error; 64 usage. --probe: 0 available, 1 not (within MS, default 0).
 *
 * The pipe handle is overlapped: a synchronous handle serialises its I/O, so
 * a write from the stdin thread would wait behind the main thread's pending
 * read (a deadlock once the server waits for the rest of a request). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <windows.h>

#define BUF_SIZE 65536
#define CONNECT_WAIT_MS 5000

static HANDLE pipe_h = INVALID_HANDLE_VALUE;

static int widen(const char *s, wchar_t *out, int outlen) {
  return MultiByteToWideChar(CP_UTF8, 0, s, -1, out, outlen) > 0 ? 0 : -1;
}

/* One overlapped I/O on the pipe, waited for up to ms (INFINITE: no bound).
 * Returns 1 done (*n bytes), 0 the pipe is closed, -2 timed out (the I/O is
 * cancelled), -1 another error (GetLastError). */
static int pipe_io(int write, void *buf, DWORD len, DWORD *n, DWORD ms) {
  OVERLAPPED ov;
  BOOL ok;
  DWORD err;

  memset(&ov, 0, sizeof(ov));
  ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (ov.hEvent == NULL)
    return -1;
  *n = 0;
  ok = write ? WriteFile(pipe_h, buf, len, NULL, &ov)
             : ReadFile(pipe_h, buf, len, NULL, &ov);
  err = ok ? ERROR_SUCCESS : GetLastError();
  if (!ok && err == ERROR_IO_PENDING) {
    if (WaitForSingleObject(ov.hEvent, ms) == WAIT_TIMEOUT) {
      CancelIoEx(pipe_h, &ov);
      GetOverlappedResult(pipe_h, &ov, n, TRUE); /* wait for the cancel */
      CloseHandle(ov.hEvent);
      return -2;
    }
    ok = GetOverlappedResult(pipe_h, &ov, n, FALSE);
    err = ok ? ERROR_SUCCESS : GetLastError();
  } else if (ok) {
    ok = GetOverlappedResult(pipe_h, &ov, n, FALSE);
    err = ok ? ERROR_SUCCESS : GetLastError();
  }
  CloseHandle(ov.hEvent);
  if (ok)
    return 1;
  if (err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED ||
      err == ERROR_NO_DATA || err == ERROR_HANDLE_EOF) {
    return 0;
  }
  if (err == ERROR_MORE_DATA) /* a message-mode pipe: take what came */
    return 1;
  SetLastError(err);
  return -1;
}

/* stdin -> pipe, on its own thread. Ends at stdin's end or when the pipe
 * will not take more (the server closed: the reader sees that too). */
static DWORD WINAPI copy_in(LPVOID arg) {
  static char buf[BUF_SIZE];
  HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
  DWORD got, put, n;

  (void)arg;
  for (;;) {
    if (!ReadFile(in, buf, sizeof(buf), &got, NULL) || got == 0)
      return 0;
    for (put = 0; put < got; put += n) {
      if (pipe_io(1, buf + put, got - put, &n, INFINITE) != 1)
        return 0;
    }
  }
}

static int write_all(HANDLE out, const char *p, DWORD len) {
  DWORD n;
  while (len > 0) {
    if (!WriteFile(out, p, len, &n, NULL) || n == 0)
      return -1;
    p += n;
    len -= n;
  }
  return 0;
}

static int probe(const char *name, DWORD ms) {
  wchar_t w[512];
  if (widen(name, w, 512) != 0)
    return 64;
  /* Waits only for an instance to be listening; opens nothing. A zero
   * timeout means NMPWAIT_USE_DEFAULT_WAIT to Windows: ask for 1 ms. */
  return WaitNamedPipeW(w, ms == 0 ? 1 : ms) ? 0 : 1;
}

static HANDLE connect_pipe(const wchar_t *w, DWORD sqos) {
  ULONGLONG deadline = GetTickCount64() + CONNECT_WAIT_MS;
  for (;;) {
    HANDLE h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, 0, NULL,
                           OPEN_EXISTING, FILE_FLAG_OVERLAPPED | sqos, NULL);
    if (h != INVALID_HANDLE_VALUE)
      return h;
    /* Every instance taken: wait for one (bounded), as a client must. */
    if (GetLastError() != ERROR_PIPE_BUSY || GetTickCount64() >= deadline)
      return INVALID_HANDLE_VALUE;
    WaitNamedPipeW(w, 200);
  }
}

int main(int argc, char **argv) {
  static char buf[BUF_SIZE];
  wchar_t w[512];
  DWORD idle_ms = 10000, n;
  HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE), th;
  DWORD sqos = 0;
  int r;

  if (argc >= 3 && strcmp(argv[1], "--probe") == 0)
    return probe(argv[2], argc > 3 ? (DWORD)strtoul(argv[3], NULL, 10) : 0);
  if (argc >= 2 && strncmp(argv[1], "--sqos=", 7) == 0) {
    static const struct {
      const char *name;
      DWORD flag;
    } levels[] = {{"anonymous", SECURITY_ANONYMOUS},
                  {"identification", SECURITY_IDENTIFICATION},
                  {"impersonation", SECURITY_IMPERSONATION},
                  {"delegation", SECURITY_DELEGATION}};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
      if (strcmp(argv[1] + 7, levels[i].name) == 0)
        sqos = SECURITY_SQOS_PRESENT | levels[i].flag;
    if (sqos == 0) {
      fprintf(stderr, "pipecat: unknown level %s\n", argv[1] + 7);
      return 64;
    }
    argv++;
    argc--;
  }
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: pipecat [--sqos=LEVEL] NAME [IDLE_MS] | pipecat "
                    "--probe NAME [MS]\n");
    return 64;
  }
  if (argc == 3)
    idle_ms = (DWORD)strtoul(argv[2], NULL, 10);
  if (widen(argv[1], w, 512) != 0) {
    fprintf(stderr, "pipecat: bad pipe name\n");
    return 64;
  }
  pipe_h = connect_pipe(w, sqos);
  if (pipe_h == INVALID_HANDLE_VALUE) {
    fprintf(stderr, "pipecat: cannot connect to %s: Win32 error %lu\n", argv[1],
            (unsigned long)GetLastError());
    return 69;
  }
  th = CreateThread(NULL, 0, copy_in, NULL, 0, NULL);
  if (th == NULL) {
    fprintf(stderr, "pipecat: CreateThread: %lu\n",
            (unsigned long)GetLastError());
    return 74;
  }
  CloseHandle(th); /* the process ends with main: stdin may never end */
  for (;;) {
    r = pipe_io(0, buf, sizeof(buf), &n, idle_ms);
    if (r == 1) {
      if (n > 0 && write_all(out, buf, n) != 0) {
        fprintf(stderr, "pipecat: writing stdout: %lu\n",
                (unsigned long)GetLastError());
        return 74;
      }
      continue;
    }
    if (r == 0)
      return 0;
    if (r == -2) {
      fprintf(stderr, "pipecat: nothing from the server for %lu ms\n",
              (unsigned long)idle_ms);
      return 2;
    }
    fprintf(stderr, "pipecat: reading the pipe: Win32 error %lu\n",
            (unsigned long)GetLastError());
    return 74;
  }
}
