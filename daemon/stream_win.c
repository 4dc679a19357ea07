/* stream_win.c - stream.h on a connected named pipe instance: a uv_pipe_t
 * on the worker's loop (native I/O completion port), and file bodies read
 * in chunks on libuv's threadpool, each written before the next is read.
 *
 * How libuv 1.44 reads a pipe: a zero-byte overlapped ReadFile stays
 * pending while nothing arrives, so an idle connection holds no buffer;
 * when it completes, libuv asks the alloc callback for room and reads what
 * PeekNamedPipe says is there. Reading is stopped lazily (as in
 * stream_linux.c): conn.c stops and starts around every request, and
 * uv_read_stop cancels the pending zero-byte read (CancelIoEx, a
 * completion, a new read on restart). So stream_read_stop only marks the
 * stream; if bytes arrive meanwhile the alloc callback gives libuv no room,
 * and the ENOBUFS it then reports stops libuv for real: the bytes wait in
 * the pipe (back-pressure) until reading starts again.
 *
 * Writes: uv_try_write is UV_EAGAIN for every named pipe in libuv 1.44
 * (src/win/stream.c), and a WriteFile that completes at once still posts
 * its completion to the port, so on Windows every write and file send
 * reports from the loop (stream.h allows it; conn.c handles both).
 *
 * Who closes what: uv_pipe_open takes a C runtime descriptor
 * (uv_open_osfhandle), and uv_close closes that descriptor, which closes
 * the pipe handle: nothing else may. */
#include "stream.h"

#include <windows.h>

#include <io.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum { OP_NONE, OP_WRITE, OP_FILE };

/* libuv 1.44's UV_HANDLE_EMULATE_IOCP (src/uv-common.h, internal): set by
 * uv_pipe_open when the handle could not join the loop's completion port
 * (it belongs to another already), which makes every read and write cost a
 * thread-pool wait. endpoint_win.c never binds a port, so it is not
 * expected; checked so that it would be noticed. */
#if UV_VERSION_MAJOR == 1 && UV_VERSION_MINOR == 44
#define STREAM_UV_EMULATE_IOCP 0x00080000u
#endif

struct stream_io {
  uv_pipe_t pipe;   /* the connection, on the stream's loop */
  struct stream *s; /* the stream it serves */
  int uv_reading;   /* uv_read_start is in force */
  int held;         /* the alloc callback gave no room: not reading */
  int op;           /* OP_*: the operation in flight */
  int writing;      /* a uv_write is in flight */
  int working;      /* a file read is on the threadpool */
  int pipe_closed;  /* uv_close finished */
  int std_fd;       /* a descriptor 0..2 holding the handle, or -1 */
  uv_write_t wreq;
  uv_work_t work;
  stream_write_cb write_cb;
  stream_send_cb send_cb;
  stream_close_cb close_cb;
  /* The file send. */
  HANDLE file;  /* our duplicate of the caller's handle */
  HANDLE event; /* for the overlapped reads (no completion port) */
  char *buf;    /* STREAM_CHUNK bytes while a send runs */
  uint64_t foff, fleft, fsent;
  DWORD chunk;    /* bytes asked of the read in flight */
  DWORD got;      /* bytes it read */
  DWORD read_err; /* its Win32 error, or 0 */
};

/* A write's failure in stream.h's terms: the peer gone is UV_EPIPE
 * (libuv says UV_EOF for ERROR_BROKEN_PIPE). */
static int write_err(int rc) {
  return rc == UV_EOF || rc == UV_ENOTCONN ? UV_EPIPE : rc;
}

/* The operation in flight is over: release what it held and report it. The
 * callback may start the next one, or close the stream. */
static void complete(struct stream_io *io, int status) {
  struct stream *s = io->s;
  int op = io->op;

  io->op = OP_NONE;
  if (op == OP_FILE) {
    free(io->buf);
    io->buf = NULL;
    if (io->event != NULL)
      CloseHandle(io->event);
    io->event = NULL;
    if (io->file != NULL)
      CloseHandle(io->file);
    io->file = NULL;
    io->send_cb(s, status, io->fsent);
  } else if (op == OP_WRITE) {
    io->write_cb(s, status);
  }
}

/* After stream_close: once libuv has closed the pipe and no file read is
 * on the threadpool, the operation in flight is reported cancelled, the
 * block freed and the close callback, the stream's last, called. */
static void maybe_finish(struct stream_io *io) {
  struct stream *s = io->s;
  stream_close_cb cb = io->close_cb;

  if (!io->pipe_closed || io->working)
    return;
  if (io->op != OP_NONE)
    complete(io, UV_ECANCELED);
  s->io = NULL;
  free(io);
  if (cb != NULL)
    cb(s);
}

static void on_pipe_closed(uv_handle_t *h) {
  struct stream_io *io = h->data;

  io->pipe_closed = 1;
  maybe_finish(io);
}

static void free_on_close(uv_handle_t *h) { free(h->data); }

/* ---- reading ---------------------------------------------------------- */

static void on_uv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct stream_io *io = h->data;
  struct stream *s = io->s;

  *buf = uv_buf_init(NULL, 0);
  if (!s->reading) {
    io->held = 1; /* on_uv_read stops libuv: see the top of this file */
    return;
  }
  s->alloc_cb(s, suggested, buf);
}

static void on_uv_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  struct stream_io *io = h->data;
  struct stream *s = io->s;

  if (nread == UV_ENOBUFS && io->held) {
    io->held = 0;
    uv_read_stop(h);
    io->uv_reading = 0;
    return;
  }
  if (nread < 0 && nread != UV_ENOBUFS)
    io->uv_reading = 0; /* libuv stops itself on EOF and errors */
  if (!s->reading) {
    /* Not asked for, and without a buffer it cannot be bytes: EOF or an
     * error, which the next zero-byte read finds again once reading
     * starts. */
    if (io->uv_reading)
      uv_read_stop(h);
    io->uv_reading = 0;
    return;
  }
  s->read_cb(s, nread, buf);
}

/* ---- writing ---------------------------------------------------------- */

static int read_next(struct stream_io *io);

static void file_written(struct stream_io *io, int status) {
  struct stream *s = io->s;
  int rc;

  if (status == 0) {
    io->fsent += io->got;
    io->foff += io->got;
    io->fleft -= io->got;
    s->last_sent_ms = uv_now(s->loop);
  }
  if (s->closing) {
    maybe_finish(io);
  } else if (status < 0) {
    complete(io, write_err(status));
  } else if (io->fleft == 0) {
    complete(io, 0);
  } else if ((rc = read_next(io)) != 0) {
    complete(io, rc);
  }
}

static void on_written(uv_write_t *req, int status) {
  struct stream_io *io = req->data;
  struct stream *s = io->s;

  io->writing = 0;
  if (io->op == OP_FILE) {
    file_written(io, status);
    return;
  }
  if (s->closing) {
    maybe_finish(io); /* reports UV_ECANCELED once the pipe is closed */
    return;
  }
  if (status == 0)
    s->last_sent_ms = uv_now(s->loop);
  complete(io, write_err(status));
}

/* ---- file bodies ------------------------------------------------------ */

/* On the threadpool: the next chunk, at its offset. The event's low bit
 * keeps the completion off any port the file may have joined. */
static void work_read(uv_work_t *req) {
  struct stream_io *io = req->data;
  OVERLAPPED ov;
  DWORD n = 0, e = 0;

  memset(&ov, 0, sizeof(ov));
  ov.Offset = (DWORD)io->foff;
  ov.OffsetHigh = (DWORD)(io->foff >> 32);
  ov.hEvent = (HANDLE)((uintptr_t)io->event | 1);
  if (!ReadFile(io->file, io->buf, io->chunk, &n, &ov)) {
    e = GetLastError();
    if (e == ERROR_IO_PENDING)
      e = GetOverlappedResult(io->file, &ov, &n, TRUE) ? 0 : GetLastError();
    if (e == ERROR_HANDLE_EOF) /* an overlapped handle's end of file */
      e = n = 0;
  }
  io->got = n;
  io->read_err = e;
}

static void after_read(uv_work_t *req, int status) {
  struct stream_io *io = req->data;
  struct stream *s = io->s;
  uv_buf_t b;
  int rc;

  io->working = 0;
  if (s->closing) {
    maybe_finish(io);
    return;
  }
  if (status < 0) {
    complete(io, status);
    return;
  }
  if (io->read_err != 0) {
    complete(io, uv_translate_sys_error(io->read_err));
    return;
  }
  if (io->got == 0) {
    complete(io, UV_EOF); /* the file ended first: it shrank */
    return;
  }
  b = uv_buf_init(io->buf, io->got);
  rc = uv_write(&io->wreq, (uv_stream_t *)&io->pipe, &b, 1, on_written);
  if (rc != 0) {
    complete(io, write_err(rc));
    return;
  }
  io->writing = 1;
}

/* Read the next chunk (at most STREAM_CHUNK: one buffer per sending
 * connection, and nothing read before the last chunk is out). */
static int read_next(struct stream_io *io) {
  int rc;

  io->chunk = io->fleft < STREAM_CHUNK ? (DWORD)io->fleft : STREAM_CHUNK;
  io->got = 0;
  io->read_err = 0;
  io->working = 1;
  rc = uv_queue_work(io->s->loop, &io->work, work_read, after_read);
  if (rc != 0)
    io->working = 0;
  return rc;
}

/* ---- stream.h --------------------------------------------------------- */

int stream_init(uv_loop_t *loop, struct stream *s, uv_os_fd_t fd) {
  struct stream_io *io;
  int crt, rc;

  s->loop = loop;
  s->io = NULL;
  s->handle = fd;
  s->reading = 0;
  s->closing = 0;
  s->alloc_cb = NULL;
  s->read_cb = NULL;
  s->last_sent_ms = 0;
  io = calloc(1, sizeof(*io));
  if (io == NULL)
    return UV_ENOMEM;
  crt = uv_open_osfhandle(fd);
  if (crt < 0) {
    /* The C runtime's descriptor table is full (msvcrt: 2048). */
    free(io);
    return UV_EMFILE;
  }
  /* Descriptors 0..2 (a service has no standard handles) are duplicated by
   * uv_pipe_open, which then closes only its duplicate: the descriptor is
   * closed right after uv_close (stream_close), so that the last handle
   * goes and pending I/O ends. */
  io->std_fd = crt <= 2 ? crt : -1;
  uv_pipe_init(loop, &io->pipe, 0);
  io->pipe.data = io;
  io->s = s;
  rc = uv_pipe_open(&io->pipe, crt);
  if (rc != 0) {
    /* Only for a handle that is not a pipe (endpoint_win.c never gives
     * one). The handle stays the caller's (stream.h), so the descriptor
     * is not closed: msvcrt cannot forget one without closing its handle,
     * and loses that one slot. */
    uv_close((uv_handle_t *)&io->pipe, free_on_close);
    return rc;
  }
#ifdef STREAM_UV_EMULATE_IOCP
  if (io->pipe.flags & STREAM_UV_EMULATE_IOCP)
    log_warn("connection pipe handle is bound to another completion port: "
             "libuv serves it in its slow emulated mode");
#endif
  io->wreq.data = io;
  io->work.data = io;
  s->io = io;
  return 0;
}

uv_os_fd_t stream_fd(const struct stream *s) { return s->handle; }

int stream_read_start(struct stream *s, stream_alloc_cb alloc,
                      stream_read_cb cb) {
  struct stream_io *io = s->io;
  int rc;

  if (s->closing)
    return UV_EINVAL;
  s->alloc_cb = alloc;
  s->read_cb = cb;
  s->reading = 1;
  if (!io->uv_reading) {
    rc = uv_read_start((uv_stream_t *)&io->pipe, on_uv_alloc, on_uv_read);
    if (rc != 0) {
      s->reading = 0;
      return rc;
    }
    io->uv_reading = 1;
  }
  return 0;
}

void stream_read_stop(struct stream *s) {
  s->reading = 0; /* lazily: see the top of this file */
}

ssize_t stream_try_read(struct stream *s, void *buf, size_t len) {
  HANDLE h = (HANDLE)s->handle;
  DWORD avail = 0, n = 0, e;
  OVERLAPPED ov;
  ssize_t rc;

  if (s->closing)
    return UV_EBADF;
  if (!PeekNamedPipe(h, NULL, 0, NULL, &avail, NULL)) {
    e = GetLastError();
    return e == ERROR_BROKEN_PIPE ? UV_EOF : uv_translate_sys_error(e);
  }
  if (avail == 0 || len == 0)
    return UV_EAGAIN;
  if (avail > len)
    avail = len > MAXDWORD ? MAXDWORD : (DWORD)len;
  /* The handle is overlapped and on the loop's port: an OVERLAPPED is
   * required, and its event's low bit keeps the completion off the port
   * (libuv would take it for one of its requests). The bytes are there, so
   * the read completes at once; should it not, it is cancelled, never
   * waited for. */
  memset(&ov, 0, sizeof(ov));
  ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (ov.hEvent == NULL)
    return uv_translate_sys_error(GetLastError());
  ov.hEvent = (HANDLE)((uintptr_t)ov.hEvent | 1);
  if (ReadFile(h, buf, avail, &n, &ov)) {
    rc = n > 0 ? (ssize_t)n : UV_EAGAIN;
  } else if ((e = GetLastError()) == ERROR_IO_PENDING) {
    CancelIoEx(h, &ov);
    rc =
        GetOverlappedResult(h, &ov, &n, TRUE) && n > 0 ? (ssize_t)n : UV_EAGAIN;
  } else {
    rc = e == ERROR_BROKEN_PIPE ? UV_EOF : uv_translate_sys_error(e);
  }
  CloseHandle((HANDLE)((uintptr_t)ov.hEvent & ~(uintptr_t)1));
  return rc;
}

int stream_write(struct stream *s, const void *buf, size_t len,
                 stream_write_cb cb) {
  struct stream_io *io = s->io;
  uv_buf_t b;
  int rc;

  if (s->closing)
    return UV_EINVAL;
  if (io->op != OP_NONE)
    return UV_EBUSY;
  if (len > ULONG_MAX)
    return UV_EINVAL; /* a uv_buf_t's length is a ULONG here */
  b = uv_buf_init((char *)buf, (unsigned)len);
  io->op = OP_WRITE;
  io->write_cb = cb;
  rc = uv_write(&io->wreq, (uv_stream_t *)&io->pipe, &b, 1, on_written);
  if (rc != 0) {
    io->op = OP_NONE;
    return write_err(rc);
  }
  io->writing = 1;
  return 0;
}

int stream_send_file(struct stream *s, uv_os_fd_t file, uint64_t offset,
                     uint64_t len, stream_send_cb cb) {
  struct stream_io *io = s->io;
  HANDLE self = GetCurrentProcess();
  int rc;

  if (s->closing)
    return UV_EINVAL;
  if (io->op != OP_NONE)
    return UV_EBUSY;
  if (len == 0) {
    cb(s, 0, 0); /* complete at once */
    return 0;
  }
  /* The caller may close its handle as soon as it closes the stream, while
   * a read of ours is still on the threadpool; a handle value is reused at
   * once, and a read from someone else's handle (another client's pipe)
   * would take their bytes. So the reads use a duplicate of our own. */
  if (!DuplicateHandle(self, (HANDLE)file, self, &io->file, 0, FALSE,
                       DUPLICATE_SAME_ACCESS)) {
    io->file = NULL;
    return uv_translate_sys_error(GetLastError());
  }
  io->buf = malloc(STREAM_CHUNK);
  io->event = CreateEventW(NULL, TRUE, FALSE, NULL);
  io->op = OP_FILE;
  io->send_cb = cb;
  io->foff = offset;
  io->fleft = len;
  io->fsent = 0;
  rc = io->buf == NULL     ? UV_ENOMEM
       : io->event == NULL ? uv_translate_sys_error(GetLastError())
                           : read_next(io);
  if (rc != 0) {
    /* Not started: nothing reported (stream.h). */
    free(io->buf);
    io->buf = NULL;
    if (io->event != NULL)
      CloseHandle(io->event);
    io->event = NULL;
    CloseHandle(io->file);
    io->file = NULL;
    io->op = OP_NONE;
  }
  return rc;
}

uint64_t stream_last_sent_ms(const struct stream *s) { return s->last_sent_ms; }

int stream_send_head_file(struct stream *s, const void *head, size_t hlen,
                          uv_os_fd_t file, uint64_t offset, uint64_t len,
                          void *tmp, stream_send_cb cb) {
  (void)s, (void)head, (void)hlen, (void)file, (void)offset, (void)len;
  (void)tmp, (void)cb;
  return UV_ENOTSUP; /* conn.c writes the head, then sends the file */
}

int stream_send_buffer(struct stream *s, unsigned bytes) {
  (void)s;
  (void)bytes;
  return UV_ENOTSUP; /* fixed by CreateNamedPipe (endpoint_win.c) */
}

void stream_close(struct stream *s, stream_close_cb cb) {
  struct stream_io *io = s->io;

  if (s->closing)
    return;
  s->closing = 1;
  s->reading = 0;
  io->close_cb = cb;
  if (io->working)
    uv_cancel((uv_req_t *)&io->work); /* else after_read waits for it */
  /* Closes the descriptor and with it the handle; the pending zero-byte
   * read and any write end with ERROR_OPERATION_ABORTED before
   * on_pipe_closed. */
  uv_close((uv_handle_t *)&io->pipe, on_pipe_closed);
  if (io->std_fd >= 0)
    _close(io->std_fd);
  io->std_fd = -1;
}

void stream_discard(uv_os_fd_t fd) {
  DisconnectNamedPipe((HANDLE)fd);
  CloseHandle((HANDLE)fd);
}
