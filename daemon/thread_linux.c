/* thread_linux.c - thread.h on Linux (pthreads, which uv_thread_t is). */
#include "thread.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

int thread_start(uv_thread_t *t, const char *name, void (*fn)(void *),
                 void *arg) {
  sigset_t all, old;
  int rc;

  /* The new thread inherits the creator's mask: block everything just
   * around the create, so the thread never runs with signals open. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = uv_thread_create(t, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc == 0 && name != NULL) {
    char n[THREAD_NAME_MAX + 1];
    strncpy(n, name, THREAD_NAME_MAX);
    n[THREAD_NAME_MAX] = '\0';
    pthread_setname_np(*t, n); /* for top -H and gdb; cosmetic */
  }
  return rc;
}

int thread_join_timeout(uv_thread_t *t, unsigned timeout_ms) {
  struct timespec until;
  int rc;

  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  rc = pthread_timedjoin_np(*t, NULL, &until);
  if (rc == ETIMEDOUT)
    return UV_ETIMEDOUT;
  return -rc;
}
