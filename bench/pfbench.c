/* pfbench.c - pipefiled against a bare-bones baseline server, same client,
 * same files, same process tree; prints ratios.
 *
 * The baseline answers PFP/1 with the least a server can do: a thread per
 * connection, open, fstat, send the header, sendfile, no identity switch,
 * no confinement, no log. pipefiled / baseline is therefore the price of
 * everything pipefiled adds, and for large files how close it comes to what
 * the kernel can move through a Unix socket. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pipefile.h"

#define CONNS 4 /* client threads in the multi-connection scenarios */

static int root_fd;
static atomic_int stop_flag;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the baseline server ---- */

static int read_full(int fd, void *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
    if (n <= 0)
      return -1;
    got += (size_t)n;
  }
  return 0;
}

static void *baseline_conn(void *arg) {
  int fd = (int)(intptr_t)arg;
  uint8_t req[PFP_REQ_MAX + 1], resp[PFP_RESP_MAX];
  struct pfp_request r;
  const char *why;

  for (;;) {
    if (read_full(fd, req, PFP_REQ_HDR_LEN) != 0)
      break;
    size_t plen = ((size_t)req[4] << 8) | req[5];
    if (plen > PFP_PATH_MAX || read_full(fd, req + PFP_REQ_HDR_LEN, plen) != 0)
      break;
    if (pfp_request_decode(req, PFP_REQ_HDR_LEN + plen, &r, &why) <= 0)
      break;
    char path[PFP_PATH_MAX + 1];
    memcpy(path, r.path[0] == '/' ? r.path + 1 : r.path, plen);
    path[r.path[0] == '/' ? plen - 1 : plen] = '\0';
    struct pfp_response resp_h = {0};
    struct stat st;
    int f = openat(root_fd, path, O_RDONLY | O_CLOEXEC);
    if (f < 0 || fstat(f, &st) != 0) {
      resp_h.status = PFP_ENOENT;
      size_t n = pfp_response_encode(resp, &resp_h, "ENOENT: no such file");
      send(fd, resp, n, MSG_NOSIGNAL);
    } else {
      resp_h.file_size = (uint64_t)st.st_size;
      pfp_body_len(resp_h.file_size, r.offset, r.length, &resp_h.body_len);
      size_t n = pfp_response_encode(resp, &resp_h, NULL);
      send(fd, resp, n, MSG_NOSIGNAL);
      off_t off = (off_t)r.offset;
      uint64_t left = resp_h.body_len;
      while (left > 0) {
        ssize_t s = sendfile(fd, f, &off, left > (1 << 20) ? (1 << 20) : left);
        if (s <= 0)
          break;
        left -= (uint64_t)s;
      }
    }
    if (f >= 0)
      close(f);
    if (r.close)
      break;
  }
  close(fd);
  return NULL;
}

static void *baseline_accept(void *arg) {
  int lfd = (int)(intptr_t)arg;
  for (;;) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
      break;
    pthread_t t;
    pthread_create(&t, NULL, baseline_conn, (void *)(intptr_t)fd);
    pthread_detach(t);
  }
  return NULL;
}

static int baseline_start(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  unlink(path);
  if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(lfd, 1024) != 0) {
    perror("baseline");
    exit(1);
  }
  pthread_t t;
  pthread_create(&t, NULL, baseline_accept, (void *)(intptr_t)lfd);
  pthread_detach(t);
  return lfd;
}

/* ---- the load ---- */

struct load {
  const char *sock;
  const char *path;
  int per_conn; /* a new connection for every request */
  double seconds;
  uint64_t reqs, bytes, errors;
};

static void *load_thread(void *arg) {
  struct load *l = arg;
  struct pipefile_result res;
  int fd = -1;
  double end = now() + l->seconds;

  while (now() < end && !atomic_load(&stop_flag)) {
    if (fd < 0 && pipefile_connect(l->sock, &fd) != 0) {
      l->errors++;
      break;
    }
    int rc = pipefile_get(fd, l->path, 0, 0, l->per_conn ? PFP_OP_CLOSE : 0, -1,
                          &res);
    if (rc != 0 || res.status != PFP_OK) {
      l->errors++;
      close(fd);
      fd = -1;
      continue;
    }
    l->reqs++;
    l->bytes += res.body_done;
    if (l->per_conn) {
      close(fd);
      fd = -1;
    }
  }
  if (fd >= 0)
    close(fd);
  return NULL;
}

/* Run conns client threads for seconds; returns requests/s or MiB/s. */
static double run(const char *sock, const char *path, int conns, int per_conn,
                  double seconds, int want_bytes, uint64_t *errors) {
  pthread_t t[CONNS];
  struct load l[CONNS];
  double t0 = now();
  for (int i = 0; i < conns; i++) {
    l[i] = (struct load){sock, path, per_conn, seconds, 0, 0, 0};
    pthread_create(&t[i], NULL, load_thread, &l[i]);
  }
  uint64_t reqs = 0, bytes = 0;
  for (int i = 0; i < conns; i++) {
    pthread_join(t[i], NULL);
    reqs += l[i].reqs;
    bytes += l[i].bytes;
    *errors += l[i].errors;
  }
  double dt = now() - t0;
  return want_bytes ? (double)bytes / dt / 1048576.0 : (double)reqs / dt;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: pfbench SOCKET ROOT BASELINE_SOCKET [seconds]\n");
    return 64;
  }
  const char *sock = argv[1], *base = argv[3];
  double secs = argc > 4 ? atof(argv[4]) : 2.0;
  root_fd = open(argv[2], O_PATH | O_DIRECTORY);
  if (root_fd < 0) {
    perror(argv[2]);
    return 1;
  }
  baseline_start(base);

  struct {
    const char *name, *path;
    int conns, per_conn, bytes;
  } sc[] = {
      {"4 KiB, keep-alive, 1 connection", "/small", 1, 0, 0},
      {"4 KiB, keep-alive, 4 connections", "/small", CONNS, 0, 0},
      {"4 KiB, one request per connection, 4 clients", "/small", CONNS, 1, 0},
      {"large file, 1 connection", "/big", 1, 0, 1},
  };
  uint64_t errors = 0;
  printf("%-48s %12s %12s %7s\n", "scenario", "pipefiled", "baseline", "ratio");
  for (size_t i = 0; i < sizeof(sc) / sizeof(sc[0]); i++) {
    /* Interleave: baseline, pipefiled, baseline, pipefiled; best of two,
     * so a passing hiccup on this shared machine does not decide. */
    double b = 0, p = 0;
    for (int round = 0; round < 2; round++) {
      double x = run(base, sc[i].path, sc[i].conns, sc[i].per_conn, secs,
                     sc[i].bytes, &errors);
      double y = run(sock, sc[i].path, sc[i].conns, sc[i].per_conn, secs,
                     sc[i].bytes, &errors);
      b = x > b ? x : b;
      p = y > p ? y : p;
    }
    printf("%-48s %9.0f %s %9.0f %s %6.2fx\n", sc[i].name, p,
           sc[i].bytes ? "MiB/s" : "req/s", b, sc[i].bytes ? "MiB/s" : "req/s",
           b > 0 ? p / b : 0.0);
  }
  if (errors) {
    fprintf(stderr, "pfbench: %llu requests failed\n",
            (unsigned long long)errors);
    return 1;
  }
  return 0;
}
