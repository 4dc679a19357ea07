/* stream.h - a connection's transport, completion style: start reading
 * into a buffer the caller supplies, stop reading, write a buffer, send a
 * range of an open file, close; each reports through a callback.
 *
 * The shape is libuv's uv_stream_t, so that one caller (conn.c) runs on
 * readiness (Linux: epoll, stream_linux.c) and on completion ports (Windows
 * named pipes, which have no readiness) alike. How the platform waits, and
 * what "try again" looks like there, stays behind this header.
 *
 * Contracts, for every platform:
 * - Reads are reported only from the loop, never before stream_read_start()
 *   returns. A read reports bytes (> 0), 0 (nothing after all: the buffer
 *   is the caller's again), UV_EOF, or an error (UV_ENOBUFS: the alloc
 *   callback gave no room). Data is read only while reading is started.
 * - One write or file send at a time. Its callback runs once, when every
 *   byte is out or the operation failed: before the call returns when it
 *   completes at once (so the common small answer costs no loop turn), else
 *   later from the loop. Callers must be ready for both.
 * - Writing to a peer that went away fails (UV_EPIPE or UV_ECONNRESET);
 *   it never raises a signal.
 * - stream_close() ends a stream at any time; an operation in flight is
 *   then reported with UV_ECANCELED before the close callback, which is
 *   the last call for the stream. The close callback runs from the loop,
 *   or before stream_close() returns when nothing was in flight (Linux: a
 *   stream that never had to wait has nothing to wait for). */
#ifndef PIPEFILED_STREAM_H
#define PIPEFILED_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct stream;

/* Give the stream room for the next read (buf->len 0: none). */
typedef void (*stream_alloc_cb)(struct stream *s, size_t suggested,
                                uv_buf_t *buf);
typedef void (*stream_read_cb)(struct stream *s, ssize_t nread,
                               const uv_buf_t *buf);
typedef void (*stream_write_cb)(struct stream *s, int status);
/* status 0: all bytes asked were sent; UV_EOF: the file ended first (it
 * shrank); else an error. sent: body bytes that went out either way. */
typedef void (*stream_send_cb)(struct stream *s, int status, uint64_t sent);
typedef void (*stream_close_cb)(struct stream *s);

/* STREAM_PRIVATE_FIELDS: the platform's (daemon/<platform>/stream_os.h). */
#include "stream_os.h"

struct stream {
  void *data;      /* the caller's */
  uv_loop_t *loop; /* the loop every callback runs on */
  STREAM_PRIVATE_FIELDS
};

/* Make s the transport of connected handle fd (non-blocking) on loop.
 * Returns 0 (s owns fd: stream_close closes it) or a UV_E* code (fd is
 * still the caller's). */
int stream_init(uv_loop_t *loop, struct stream *s, uv_os_fd_t fd);

/* The connected handle, for asking who the peer is. */
uv_os_fd_t stream_fd(const struct stream *s);

/* Read whenever data arrives, into buffers alloc gives, reporting each to
 * cb, until stream_read_stop(). Starting again while started only changes
 * the callbacks. Returns 0 or a UV_E* code. */
int stream_read_start(struct stream *s, stream_alloc_cb alloc,
                      stream_read_cb cb);

/* Read no more until stream_read_start(); the peer's further bytes wait in
 * the platform's buffers (back-pressure). Cheap: callers may stop and
 * start around every request. */
void stream_read_stop(struct stream *s);

/* Read what has already arrived, without waiting (shutdown: answer what
 * the client sent). Returns bytes (> 0), UV_EAGAIN (nothing there), UV_EOF,
 * or an error. */
ssize_t stream_try_read(struct stream *s, void *buf, size_t len);

/* Write len bytes of buf (which stays the caller's, unchanged, until cb).
 * Returns 0 (cb will run) or a UV_E* code (it will not: UV_EBUSY when an
 * operation is in flight). */
int stream_write(struct stream *s, const void *buf, size_t len,
                 stream_write_cb cb);

/* Send len bytes of file from offset, without a copy through user space
 * where the platform allows (Linux: sendfile). The file stays the
 * caller's. Returns 0 (cb will run) or a UV_E* code (it will not). */
int stream_send_file(struct stream *s, uv_os_fd_t file, uint64_t offset,
                     uint64_t len, stream_send_cb cb);

/* The largest body stream_send_head_file() joins with its head: copying
 * 16 KiB twice costs less than a second send and a second wake-up of the
 * client (docs/performance.md). */
#define STREAM_INLINE_MAX (16u << 10)

/* Write hlen bytes of head, then send len bytes of file from offset: the
 * two as one operation, cb reporting the body bytes sent. Linux: a body of
 * at most STREAM_INLINE_MAX bytes is read into tmp (the caller's, that
 * large, free until this returns; NULL: never) and written with the head in
 * one sendmsg, so the client is woken once and reads the answer in one go;
 * a larger one follows the head by sendfile. Returns 0 (cb will run),
 * UV_ENOTSUP where the platform does not join them (Windows: write the
 * head, then send the file), or another UV_E* code (cb will not run). */
int stream_send_head_file(struct stream *s, const void *head, size_t hlen,
                          uv_os_fd_t file, uint64_t offset, uint64_t len,
                          void *tmp, stream_send_cb cb);

/* Loop time (uv_now) when bytes last went out on s; 0 = never. For a send
 * timeout that counts time without progress, not the whole transfer. */
uint64_t stream_last_sent_ms(const struct stream *s);

/* Ask for a send buffer of bytes for s, for a large body: fewer, larger
 * sends and wake-ups. Linux: SO_SNDBUF, which the kernel doubles and caps
 * at net.core.wmem_max, the administrator's bound (no privilege is used to
 * pass it). Returns 0, or UV_ENOTSUP where a pipe's buffers are fixed when
 * it is made (Windows). */
int stream_send_buffer(struct stream *s, unsigned bytes);

/* Close s and its handle (see the contracts above for what is reported).
 * cb may be NULL. */
void stream_close(struct stream *s, stream_close_cb cb);

/* Close a connected handle that never became a stream (refused, or handed
 * to a worker that is stopping). */
void stream_discard(uv_os_fd_t fd);

#endif
