/* thread.h - what libuv's threads lack: start one with every signal blocked
 * and a name, and join one with a time limit.
 *
 * Logic files use uv_thread_t, uv_mutex_t, uv_cond_t and uv_once_t; the
 * three calls here are the rest, written per platform (thread_linux.c;
 * thread_win.c arrives with the Windows port). */
#ifndef PIPEFILED_THREAD_H
#define PIPEFILED_THREAD_H

#include <uv.h>

#define THREAD_NAME_MAX 15 /* Linux's limit, less the NUL */

/* Start fn(arg) on a new thread named name (cut to THREAD_NAME_MAX) with
 * every signal blocked: signals belong to the main loop, so no serving or
 * logging thread is ever interrupted by one. Returns 0 or a UV_E* code. */
int thread_start(uv_thread_t *t, const char *name, void (*fn)(void *),
                 void *arg);

/* Wait at most timeout_ms for t to end. Returns 0 (joined) or
 * UV_ETIMEDOUT (still running: t is left alone, not joined). */
int thread_join_timeout(uv_thread_t *t, unsigned timeout_ms);

#endif
