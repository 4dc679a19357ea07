/* pfbench.c - the benchmark's load generator: PFP/1 or HTTP/1.1 over a Unix
 * socket, event-driven like wrk, and a mode that holds idle connections.
 *
 *   pfbench load -s SOCK -p PATH -e LEN [-P pfp|http] [-c CONNS] [-t THREADS]
 *                [-d SECONDS] [-w WARMUP] [-1]
 *   pfbench idle -s SOCK -n CONNS [-P pfp|http]
 *
 * load: CONNS connections spread over THREADS epoll loops, each with one
 * request in flight (no pipelining); -1 asks for one request per connection
 * (PFP's CLOSE bit, HTTP's `Connection: close`) and reconnects after every
 * response. Bodies are read with read() into a per-thread buffer and only
 * counted; every body must be exactly LEN bytes with status OK / 200, or the
 * request is an error (the connection is then dropped and reopened). After
 * WARMUP seconds it prints "measure start", measures for SECONDS, prints
 * "measure end" (so a driver can sample the server's /proc at exactly those
 * moments), then one result line:
 *   result reqs=N bytes=N body_rx=N errors=N seconds=S p50_us=N p99_us=N
 * reqs counts the responses completed inside the window and bytes their
 * bodies (reqs x LEN); body_rx the body bytes read inside the window,
 * whichever response they belong to (GB/s of a huge file); latency is request
 * written to body complete, in a fixed log-linear histogram (no allocation per
 * request). Exit status 0 when errors=0 and reqs>0, else 1.
 *
 * idle: opens CONNS connections (blocking connects), checks that the server
 * sent nothing on any of them (an EBUSY or a close would be readable), prints
 * "idle conns=N errors=N", then holds them until stdin reaches end of file.
 *
 * Built against common/proto.c only (the wire format), not the client
 * library: the library's blocking calls cannot multiplex connections. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define MAX_THREADS 16
#define READ_BUF (1 << 20) /* per thread: what one read() may take */
#define HDR_MAX 4096       /* response header kept per connection */
/* Latency histogram: 1 us steps below 128 us, then 64 steps per power of
 * two (under 1.6% error) up to 2^40 us. */
#define HIST_LINEAR 128
#define HIST_SUB 64
#define HIST_BUCKETS (HIST_LINEAR + (40 - 7) * HIST_SUB)

enum proto_kind { PROTO_PFP, PROTO_HTTP };
enum phase { PHASE_WARMUP, PHASE_MEASURE, PHASE_STOP };

struct opts {
  const char *sock;
  const char *path;
  uint64_t expect;
  enum proto_kind proto;
  int conns, threads, one_per_conn;
  double seconds, warmup;
};

struct conn {
  int fd;
  int in_body;       /* header parsed; counting body bytes */
  size_t hdr_len;    /* bytes of header collected */
  uint64_t body_len; /* expected body */
  uint64_t body_got;
  uint64_t t_sent; /* ns, when the request was written */
  char hdr[HDR_MAX];
};

struct thread {
  pthread_t tid;
  const struct opts *o;
  int ep;
  int nconns;
  int down; /* connections that failed to reopen: retried by the loop */
  struct conn *conns;
  char *buf;
  uint64_t reqs, bytes, body_rx, errors;
  uint64_t hist[HIST_BUCKETS];
};

static _Atomic int phase = PHASE_WARMUP;
static char request[PFP_REQ_MAX + 256];
static size_t request_len;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int hist_bucket(uint64_t us) {
  if (us < HIST_LINEAR)
    return (int)us;
  int e = 63 - __builtin_clzll(us); /* >= 7 */
  int b = HIST_LINEAR + (e - 7) * HIST_SUB + (int)((us >> (e - 6)) & 63);
  return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

/* The middle of a bucket, in microseconds. */
static double hist_value(int b) {
  if (b < HIST_LINEAR)
    return b + 0.5;
  int e = (b - HIST_LINEAR) / HIST_SUB + 7, sub = (b - HIST_LINEAR) % HIST_SUB;
  double lo = (double)(1ull << e) + (double)sub * (double)(1ull << (e - 6));
  return lo + (double)(1ull << (e - 6)) / 2;
}

static double hist_pct(const uint64_t *h, uint64_t total, double pct) {
  if (total == 0)
    return 0;
  uint64_t want = (uint64_t)((double)total * pct / 100.0), seen = 0;
  for (int b = 0; b < HIST_BUCKETS; b++) {
    seen += h[b];
    if (seen > want)
      return hist_value(b);
  }
  return hist_value(HIST_BUCKETS - 1);
}

/* A blocking connect (a full backlog waits instead of failing, bounded by
 * SO_SNDTIMEO), then non-blocking for the loop. Returns the fd or -errno. */
static int unix_connect(const char *path, int nonblock) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  struct timeval tv = {.tv_sec = 10};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  if (nonblock && fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

static int build_request(const struct opts *o) {
  size_t plen = strlen(o->path);
  if (o->proto == PROTO_PFP) {
    struct pfp_request r = {.op = PFP_OP_GET, .path_len = (uint16_t)plen};
    uint8_t hdr[PFP_REQ_HDR_LEN];
    if (plen == 0 || plen > PFP_PATH_MAX || pfp_request_encode(hdr, &r) < 0)
      return -EINVAL;
    if (o->one_per_conn)
      hdr[3] |= PFP_OP_CLOSE;
    memcpy(request, hdr, sizeof(hdr));
    memcpy(request + sizeof(hdr), o->path, plen);
    request_len = sizeof(hdr) + plen;
    return 0;
  }
  int n = snprintf(request, sizeof(request),
                   "GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n", o->path,
                   o->one_per_conn ? "Connection: close\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof(request))
    return -EINVAL;
  request_len = (size_t)n;
  return 0;
}

static int send_request(struct conn *c) {
  c->in_body = 0;
  c->hdr_len = 0;
  c->body_got = 0;
  c->t_sent = now_ns();
  ssize_t n = write(c->fd, request, request_len);
  /* A fresh request on an idle socket always fits its send buffer. */
  return n == (ssize_t)request_len ? 0 : -EIO;
}

static int conn_open(struct thread *t, struct conn *c) {
  int fd = unix_connect(t->o->sock, 1);
  if (fd < 0)
    return fd;
  c->fd = fd;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    close(fd);
    c->fd = -1;
    return -errno;
  }
  return send_request(c);
}

static void conn_close(struct conn *c) {
  if (c->fd >= 0)
    close(c->fd); /* also leaves the epoll set */
  c->fd = -1;
}

/* Parse the response header in c->hdr. Returns its length when complete
 * (setting c->body_len), 0 when more bytes are needed, -1 when it is not a
 * success with the expected body length. */
static int parse_header(const struct opts *o, struct conn *c) {
  if (o->proto == PROTO_PFP) {
    struct pfp_response r;
    if (c->hdr_len < PFP_RESP_HDR_LEN)
      return 0;
    if (pfp_response_decode((const uint8_t *)c->hdr, &r) != 0)
      return -1;
    if (c->hdr_len < PFP_RESP_HDR_LEN + (size_t)r.msg_len)
      return 0;
    if (r.status != PFP_OK || r.body_len != o->expect)
      return -1;
    c->body_len = r.body_len;
    return PFP_RESP_HDR_LEN + r.msg_len;
  }
  char *end = memmem(c->hdr, c->hdr_len, "\r\n\r\n", 4);
  if (end == NULL)
    return c->hdr_len >= HDR_MAX ? -1 : 0;
  *end = '\0';
  if (strncmp(c->hdr, "HTTP/1.1 200 ", 13) != 0)
    return -1;
  /* Header names are case-insensitive; nginx writes "Content-Length". */
  const char *cl = strcasestr(c->hdr, "\r\nContent-Length:");
  if (cl == NULL)
    return -1;
  char *stop;
  unsigned long long len = strtoull(cl + 17, &stop, 10);
  if (stop == cl + 17 || len != o->expect)
    return -1;
  c->body_len = len;
  return (int)(end + 4 - c->hdr);
}

/* A response finished (ok) or failed: count it, then either send the next
 * request or reconnect. */
static void conn_done(struct thread *t, struct conn *c, int ok) {
  int measuring = atomic_load(&phase) == PHASE_MEASURE;
  /* Errors count from the start (a failing setup shows), requests and
   * latencies only inside the window. */
  if (ok && measuring) {
    t->reqs++;
    t->bytes += c->body_len;
    t->hist[hist_bucket((now_ns() - c->t_sent) / 1000)]++;
  } else if (!ok && atomic_load(&phase) != PHASE_STOP) {
    t->errors++;
  }
  if (atomic_load(&phase) == PHASE_STOP) {
    conn_close(c);
    return;
  }
  if (ok && !t->o->one_per_conn) {
    if (send_request(c) == 0)
      return;
    if (atomic_load(&phase) != PHASE_STOP)
      t->errors++;
  }
  conn_close(c);
  if (conn_open(t, c) != 0) {
    if (atomic_load(&phase) != PHASE_STOP)
      t->errors++;
    conn_close(c);
    t->down++;
  }
}

/* Feed n bytes that arrived on c. Returns 0, or -1 when the response is
 * wrong (extra bytes, bad header). */
static int conn_feed(struct thread *t, struct conn *c, const char *p,
                     size_t n) {
  while (n > 0) {
    if (!c->in_body) {
      size_t room = HDR_MAX - c->hdr_len, take = n < room ? n : room;
      memcpy(c->hdr + c->hdr_len, p, take);
      c->hdr_len += take;
      int h = parse_header(t->o, c);
      if (h < 0)
        return -1;
      if (h == 0) {
        if (take == n)
          return 0;
        return -1; /* header longer than HDR_MAX */
      }
      /* Bytes past the header are body. */
      size_t used = take - (c->hdr_len - (size_t)h);
      p += used;
      n -= used;
      c->in_body = 1;
    }
    uint64_t want = c->body_len - c->body_got;
    uint64_t take = n < want ? n : want;
    c->body_got += take;
    if (atomic_load(&phase) == PHASE_MEASURE)
      t->body_rx += take;
    p += take;
    n -= take;
    if (c->body_got == c->body_len) {
      if (n > 0)
        return -1; /* no pipelining: nothing may follow a body */
      conn_done(t, c, 1);
      return 0;
    }
  }
  return 0;
}

static void *load_thread(void *arg) {
  struct thread *t = arg;
  struct epoll_event evs[256];

  for (int i = 0; i < t->nconns; i++) {
    t->conns[i].fd = -1;
    if (conn_open(t, &t->conns[i]) != 0) {
      t->errors++;
      conn_close(&t->conns[i]);
      t->down++;
    }
  }
  while (atomic_load(&phase) != PHASE_STOP) {
    int n = epoll_wait(t->ep, evs, 256, 50);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c->fd < 0)
        continue;
      ssize_t r = read(c->fd, t->buf, READ_BUF);
      if (r < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      /* An end of stream before the body is complete is a failure; the
       * connection is reopened by conn_done. */
      if (r <= 0 || conn_feed(t, c, t->buf, (size_t)r) != 0)
        conn_done(t, c, 0);
    }
    /* A connection that could not be reopened is retried here (scanned
     * only then: at 1,000 connections a scan per wakeup would cost the
     * load generator CPU that the server on the same cores would miss). */
    if (t->down > 0 && atomic_load(&phase) != PHASE_STOP) {
      t->down = 0;
      for (int i = 0; i < t->nconns; i++) {
        if (t->conns[i].fd >= 0 || conn_open(t, &t->conns[i]) == 0)
          continue;
        conn_close(&t->conns[i]);
        t->errors++;
        t->down++;
      }
    }
  }
  for (int i = 0; i < t->nconns; i++)
    conn_close(&t->conns[i]);
  return NULL;
}

static void sleep_s(double s) {
  struct timespec ts = {.tv_sec = (time_t)s,
                        .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Room for CONNS descriptors (and the server's, in the same limits). */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static int run_load(const struct opts *o) {
  static struct thread th[MAX_THREADS];
  int nt = o->threads < o->conns ? o->threads : o->conns;
  int rc = 1;

  if (build_request(o) != 0) {
    fprintf(stderr, "pfbench: bad path\n");
    return 2;
  }
  for (int i = 0; i < nt; i++) {
    struct thread *t = &th[i];
    t->o = o;
    t->nconns = o->conns / nt + (i < o->conns % nt);
    t->conns = calloc((size_t)t->nconns, sizeof(*t->conns));
    t->buf = malloc(READ_BUF);
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    if (t->conns == NULL || t->buf == NULL || t->ep < 0) {
      fprintf(stderr, "pfbench: out of memory or descriptors\n");
      return 2;
    }
  }
  for (int i = 0; i < nt; i++)
    pthread_create(&th[i].tid, NULL, load_thread, &th[i]);
  sleep_s(o->warmup);
  printf("measure start\n");
  fflush(stdout);
  uint64_t t0 = now_ns();
  atomic_store(&phase, PHASE_MEASURE);
  sleep_s(o->seconds);
  atomic_store(&phase, PHASE_STOP);
  double secs = (double)(now_ns() - t0) / 1e9;
  printf("measure end\n");
  fflush(stdout);

  static uint64_t hist[HIST_BUCKETS];
  uint64_t reqs = 0, bytes = 0, body_rx = 0, errors = 0;
  for (int i = 0; i < nt; i++) {
    pthread_join(th[i].tid, NULL);
    reqs += th[i].reqs;
    bytes += th[i].bytes;
    body_rx += th[i].body_rx;
    errors += th[i].errors;
    for (int b = 0; b < HIST_BUCKETS; b++)
      hist[b] += th[i].hist[b];
    close(th[i].ep);
    free(th[i].conns);
    free(th[i].buf);
  }
  printf("result reqs=%llu bytes=%llu body_rx=%llu errors=%llu seconds=%.3f "
         "p50_us=%.0f p99_us=%.0f\n",
         (unsigned long long)reqs, (unsigned long long)bytes,
         (unsigned long long)body_rx, (unsigned long long)errors, secs,
         hist_pct(hist, reqs, 50), hist_pct(hist, reqs, 99));
  fflush(stdout);
  if (errors == 0 && reqs > 0)
    rc = 0;
  return rc;
}

static int run_idle(const struct opts *o) {
  struct pollfd *p = calloc((size_t)o->conns + 1, sizeof(*p));
  int n = 0, errors = 0;
  char c;

  if (p == NULL)
    return 2;
  for (; n < o->conns; n++) {
    int fd = unix_connect(o->sock, 0);
    if (fd < 0) {
      fprintf(stderr, "pfbench: connection %d: %s\n", n + 1, strerror(-fd));
      errors++;
      break;
    }
    p[n] = (struct pollfd){.fd = fd, .events = POLLIN};
  }
  /* The server had time to accept (the driver waits for its descriptors
   * too); anything readable now is a refusal or a close. */
  sleep_s(0.2);
  if (n > 0 && poll(p, (nfds_t)n, 0) > 0)
    for (int i = 0; i < n; i++) {
      if (p[i].revents == 0)
        continue;
      /* Say once what the server said (an EBUSY's message, or nothing). */
      if (errors++ == 0) {
        char msg[256];
        ssize_t got = read(p[i].fd, msg, sizeof(msg) - 1);
        msg[got > 0 ? got : 0] = '\0';
        fprintf(stderr,
                "pfbench: connection %d: the server sent %zd bytes%s%s\n",
                i + 1, got, got > PFP_RESP_HDR_LEN ? ": " : "",
                got > PFP_RESP_HDR_LEN ? msg + PFP_RESP_HDR_LEN : "");
      }
    }
  printf("idle conns=%d errors=%d\n", n, errors);
  fflush(stdout);
  while (read(0, &c, 1) > 0)
    ;
  for (int i = 0; i < n; i++)
    close(p[i].fd);
  free(p);
  return errors ? 1 : 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: pfbench load -s SOCK -p PATH -e LEN [-P pfp|http] [-c CONNS]"
          " [-t THREADS] [-d SECONDS] [-w WARMUP] [-1]\n"
          "       pfbench idle -s SOCK -n CONNS\n");
}

int main(int argc, char **argv) {
  struct opts o = {.proto = PROTO_PFP,
                   .conns = 1,
                   .threads = 2,
                   .seconds = 2,
                   .warmup = 0.5};
  int opt, idle;

  if (argc < 2 || (strcmp(argv[1], "load") && strcmp(argv[1], "idle"))) {
    usage();
    return 2;
  }
  idle = strcmp(argv[1], "idle") == 0;
  optind = 2;
  while ((opt = getopt(argc, argv, "s:p:e:P:c:n:t:d:w:1")) != -1) {
    switch (opt) {
    case 's':
      o.sock = optarg;
      break;
    case 'p':
      o.path = optarg;
      break;
    case 'e':
      o.expect = strtoull(optarg, NULL, 10);
      break;
    case 'P':
      if (strcmp(optarg, "pfp") == 0)
        o.proto = PROTO_PFP;
      else if (strcmp(optarg, "http") == 0)
        o.proto = PROTO_HTTP;
      else {
        usage();
        return 2;
      }
      break;
    case 'c':
    case 'n':
      o.conns = atoi(optarg);
      break;
    case 't':
      o.threads = atoi(optarg);
      break;
    case 'd':
      o.seconds = atof(optarg);
      break;
    case 'w':
      o.warmup = atof(optarg);
      break;
    case '1':
      o.one_per_conn = 1;
      break;
    default:
      usage();
      return 2;
    }
  }
  if (o.sock == NULL || o.conns < 1 || o.threads < 1 ||
      o.threads > MAX_THREADS || (!idle && o.path == NULL) ||
      strlen(o.sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    usage();
    return 2;
  }
  raise_nofile();
  return idle ? run_idle(&o) : run_load(&o);
}
