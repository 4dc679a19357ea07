/* conn.h - one client connection: reading requests, answering them in
 * order, timeouts, and the access-log line for each request; a state
 * machine on the completion callbacks of its stream (stream.h).
 *
 * A connection knows nothing of who runs it: a worker, or the acceptor
 * refusing a client, gives it a host (struct conn_host) with the loop, the
 * config in force, a buffer pool, a ready list for yielding and a callback
 * for when it is gone. Ownership runs one way, host -> connection; the
 * connection reports back only through the host's callbacks.
 *
 * A connection holds no buffer while idle: request bytes and the response
 * header live in a buffer taken from the host's pool when bytes arrive and
 * returned when the connection is idle again. While a response is being
 * sent the connection does not read, so a client that pipelines faster
 * than it reads is held back by its own socket (back-pressure).
 *
 * The access log is an audit record: a request is served only once room
 * for its line is reserved. While the log has no room the connection waits
 * (not reading, retrying every few ms) for at most send_timeout, then
 * answers EBUSY and closes. Every request read gets exactly one line; those
 * read but never answered (the client went away, a send failed or timed
 * out) are logged as abandoned when the connection ends. */
#ifndef PIPEFILED_CONN_H
#define PIPEFILED_CONN_H

#include <stdint.h>
#include <uv.h>

#include "proto.h"

struct conn;
struct identity;
struct live;
struct serve_scratch;

/* Bytes of one connection buffer (request, response header, resolved
 * path), as the host's pool hands them out. */
#define CONN_BUF_SIZE (PFP_REQ_MAX + PFP_RESP_MAX + PFP_PATH_MAX + 2)

/* What a connection needs from whoever runs it. Everything happens on the
 * host's loop thread; the host sets the fields, conn.c only reads them. */
struct conn_host {
  uv_loop_t *loop;
  struct live *live;             /* config in force (the host's reference;
                                    it may switch it between callbacks) */
  struct serve_scratch *scratch; /* serve_request()'s per-thread space;
                                    NULL on a host that only refuses */
  unsigned worker_id;            /* for the log: 1..workers, 0 = acceptor */
  int stopping;         /* answer what was received, read no more, then close */
  unsigned big_buffers; /* its connections holding send_buffer (conn.c
                           keeps the count; the host zeroes it) */

  /* A CONN_BUF_SIZE buffer, or NULL (out of memory). */
  void *(*buf_get)(struct conn_host *h);
  /* Give one back; accepts NULL. */
  void (*buf_put)(struct conn_host *h, void *buf);
  /* c has had its turn and has more to do: call conn_resume(c) once the
   * host's other connections have had theirs (next loop iteration). */
  void (*yield)(struct conn_host *h, struct conn *c);
  /* c is gone: its handles are closed and it is freed when this returns.
   * key is the user key its place is counted under (identity_user_key() of
   * the peer it was started with, or the one rekey moved it to). Called
   * once for every connection conn_start() or conn_refuse() made. */
  void (*closed)(struct conn_host *h, struct conn *c, uint32_t key);
  /* The first request told who the client is (where the platform could not
   * at accept: Windows, before the client wrote): move c's counted place
   * from user key from to user key to. Returns 0 (moved), or a UV_E* code
   * (not moved: to is at its per-user limit) and the request is refused
   * with EBUSY. NULL: keys never change on this host. */
  int (*rekey)(struct conn_host *h, uint32_t from, uint32_t to);
  /* c is about to make a call that may wait on a file system for as long
   * as it does not answer (what: "open" or "read" of path, path_len bytes,
   * unchanged until fs_done); fs_done: that call returned. So a worker
   * stuck in one can be seen from outside (worker.h). NULL: not watched. */
  void (*fs_busy)(struct conn_host *h, struct conn *c, const char *what,
                  const char *path, size_t path_len);
  void (*fs_done)(struct conn_host *h);
};

/* The host's bookkeeping inside each connection (its list of connections,
 * its ready list). conn.c never reads or writes it. */
struct conn_link {
  struct conn *prev, *next; /* the host's list of open connections */
  struct conn *ready_next;  /* the host's ready list */
  int ready;                /* on the ready list */
  unsigned char costly;     /* counted in the host's costly peers */
};

/* The protocol a connection speaks, by the endpoint it came in on. */
enum conn_proto {
  CONN_PFP1,  /* PFP/1 (docs/protocol.md) */
  CONN_COMPAT /* the .NET sample's frames (compat.h): greeting, one name,
                 one text, close */
};

/* Start serving connected handle fd (non-blocking), whose peer is *peer,
 * speaking proto, on host h. Returns 0 with *out set (h->closed is called
 * when it is gone; never before this returns) or a UV_E* code (fd is
 * closed, nothing is called back). */
int conn_start_proto(struct conn_host *h, uv_os_fd_t fd, uint64_t conn_id,
                     const struct identity *peer, enum conn_proto proto,
                     struct conn **out);

/* conn_start_proto(..., CONN_PFP1, out). */
int conn_start(struct conn_host *h, uv_os_fd_t fd, uint64_t conn_id,
               const struct identity *peer, struct conn **out);

/* Answer EBUSY (why names the limit; NULL = the default message) on fd,
 * log it like any answer, and close: the refusal of a client over a limit.
 * A compat client is greeted and its name read first (bounded by
 * request_timeout), so that it reads the refusal as its answer rather than
 * failing to send. Same contract as conn_start, without *out. */
int conn_refuse(struct conn_host *h, uv_os_fd_t fd, uint64_t conn_id,
                const struct identity *peer, enum conn_proto proto,
                const char *why);

/* The host's ready list reached c (see conn_host.yield). */
void conn_resume(struct conn *c);

/* Shutdown (h->stopping is set): the response in flight and the requests
 * already received are answered, a partial request is logged as
 * abandoned, and then c closes. Nothing more is read. */
void conn_drain(struct conn *c);

/* Close c at once (shutdown grace period over): the response in flight and
 * the requests not answered are logged (abandoned) if the access log has
 * room now, counted as lost if not. */
void conn_abort(struct conn *c);

/* c's host gave up on it while it was inside fs_busy's call (shutdown,
 * the call never returned) and will never run it again: queue the line of
 * the request being answered as ABANDONED, in the room its ticket holds
 * (else written if there is room, counted as lost if not). Any thread. */
void conn_abandon_stuck(struct conn *c);

/* The host's bookkeeping in c. */
struct conn_link *conn_link(struct conn *c);

#endif
