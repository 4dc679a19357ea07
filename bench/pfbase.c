/* pfbase.c - the benchmark's bare baseline: the least a PFP/1 server can do.
 *
 *   pfbase SOCKET ROOT
 *
 * A thread per connection: read a request, open the file beneath ROOT,
 * fstat, write the header, sendfile the body; no identity switch, no path
 * confinement, no log, no limits. Accepted sockets get a 4 MiB send buffer
 * (SO_SNDBUFFORCE as root, past net.core.wmem_max), which is what lets a
 * Unix socket move a large file at the kernel's pace. pipefiled measured
 * against it shows the price of everything pipefiled adds; it runs as its
 * own process so that its CPU can be read from /proc like the others'.
 * Runs until killed; prints "ready" on stdout once listening. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"

#define SNDBUF (4 << 20)
#define STACK (64 << 10) /* 10,000 idle connections are 10,000 threads */

static int root_fd;

static int read_full(int fd, void *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, (char *)buf + got, len - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    got += (size_t)n;
  }
  return 0;
}

/* One request on fd: 0 to go on, -1 to close. */
static int serve_one(int fd) {
  uint8_t req[PFP_REQ_MAX], resp[PFP_RESP_MAX];
  char path[PFP_PATH_MAX + 1];
  struct pfp_request r;
  struct pfp_response h = {0};
  struct stat st;
  const char *why;
  int rc = -1, f = -1;

  if (read_full(fd, req, PFP_REQ_HDR_LEN) != 0)
    return -1;
  size_t plen = ((size_t)req[4] << 8) | req[5];
  if (plen == 0 || plen > PFP_PATH_MAX ||
      read_full(fd, req + PFP_REQ_HDR_LEN, plen) != 0)
    return -1;
  if (pfp_request_decode(req, PFP_REQ_HDR_LEN + plen, &r, &why) <= 0 ||
      r.op != PFP_OP_GET)
    return -1;
  size_t skip = r.path[0] == '/';
  memcpy(path, r.path + skip, plen - skip);
  path[plen - skip] = '\0';
  f = openat(root_fd, path[0] ? path : ".", O_RDONLY | O_CLOEXEC);
  if (f < 0 || fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) {
    h.status = PFP_ENOENT;
    size_t n = pfp_response_encode(resp, &h, "ENOENT: no such file");
    rc = send(fd, resp, n, MSG_NOSIGNAL) == (ssize_t)n && !r.close ? 0 : -1;
    goto out;
  }
  h.file_size = (uint64_t)st.st_size;
  h.mtime = st.st_mtime;
  if (pfp_body_len(h.file_size, r.offset, r.length, &h.body_len) != 0)
    goto out;
  size_t n = pfp_response_encode(resp, &h, NULL);
  /* MSG_MORE: the header leaves with the body's first bytes. */
  if (send(fd, resp, n, MSG_NOSIGNAL | (h.body_len ? MSG_MORE : 0)) !=
      (ssize_t)n)
    goto out;
  off_t off = (off_t)r.offset;
  uint64_t left = h.body_len;
  while (left > 0) {
    ssize_t s = sendfile(fd, f, &off, left > (1u << 30) ? (1u << 30) : left);
    if (s < 0 && errno == EINTR)
      continue;
    if (s <= 0)
      goto out;
    left -= (uint64_t)s;
  }
  rc = r.close ? -1 : 0;
out:
  if (f >= 0)
    close(f);
  return rc;
}

static void *conn_thread(void *arg) {
  int fd = (int)(intptr_t)arg;
  while (serve_one(fd) == 0)
    ;
  close(fd);
  return NULL;
}

int main(int argc, char **argv) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  struct rlimit rl;
  pthread_attr_t attr;
  int lfd, sndbuf = SNDBUF;

  if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
    fprintf(stderr, "usage: pfbase SOCKET ROOT\n");
    return 2;
  }
  root_fd = open(argv[2], O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    perror(argv[2]);
    return 1;
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
  unlink(argv[1]);
  lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      chmod(argv[1], 0666) != 0 || listen(lfd, 4096) != 0) {
    perror(argv[1]);
    return 1;
  }
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, STACK);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE) {
        usleep(10000); /* the client sees a slow accept, not a spin */
        continue;
      }
      perror("accept");
      return 1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) !=
        0)
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    pthread_t t;
    if (pthread_create(&t, &attr, conn_thread, (void *)(intptr_t)fd) != 0)
      close(fd);
  }
}
