/* test_conn.c - one connection (conn.c) driven over a socketpair on a bare
 * uv_loop_t, with a test host: no worker, no listener, no acceptor.
 *
 * The test plays the client on the other end of the pair and runs the loop
 * itself between its reads, so each test sees what a client sees (bytes,
 * their order, the close) and what the audit log says (the access log is
 * started to a temporary file). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "accesslog.h"
#include "config.h"
#include "conn.h"
#include "identity.h"
#include "live.h"
#include "log.h"
#include "proto.h"
#include "serve.h"

#define TEST_WORKER_ID 7
#define WAIT_MS 5000        /* bound on every wait for the daemon side */
#define BIG_SIZE (8u << 20) /* more than a socket buffer holds */
#define MAX_YIELDS 8

static char dir[64], root[96], logpath[128];
static struct serve_scratch scratch; /* large: not on the stack */

/* The state of one test: the loop, the host, the client's end. */
struct fixture {
  uv_loop_t loop;
  struct conn_host host;
  struct live *live;
  struct conn *conn;
  int client;      /* the test's end of the pair; -1 once closed */
  int log_running; /* accesslog_start() done, accesslog_stop() not yet */
  int closed;      /* host.closed calls */
  unsigned yields; /* host.yield calls */
  struct conn *yielded[MAX_YIELDS];
  uint8_t in[1 << 16]; /* bytes the client received */
  size_t in_len;
  int eof; /* the daemon closed its end */
};

/* ---- the test host: a pool-less buffer source, a ready list the test
 * runs by hand, a closed flag -------------------------------------------- */

static struct fixture *fixture_of(struct conn_host *h) {
  return (struct fixture *)((char *)h - offsetof(struct fixture, host));
}

static void *t_buf_get(struct conn_host *h) {
  (void)h;
  return malloc(CONN_BUF_SIZE);
}

static void t_buf_put(struct conn_host *h, void *buf) {
  (void)h;
  free(buf);
}

static void t_yield(struct conn_host *h, struct conn *c) {
  struct fixture *f = fixture_of(h);
  assert_true(f->yields < MAX_YIELDS);
  f->yielded[f->yields++] = c;
}

static void t_closed(struct conn_host *h, struct conn *c, uint32_t key) {
  struct fixture *f = fixture_of(h);
  assert_ptr_equal(c, f->conn);
  assert_int_equal(key, getuid()); /* counted under the peer's uid */
  f->closed++;
}

/* Linux knows the user at accept: a connection is never moved. */
static int t_rekey(struct conn_host *h, uint32_t from, uint32_t to) {
  (void)h;
  fail_msg("rekey %u -> %u on Linux", (unsigned)from, (unsigned)to);
  return UV_EINVAL;
}

/* ---- files, log, set-up --------------------------------------------- */

static void put_file(const char *name, const void *data, size_t len) {
  char path[160];
  int fd;

  snprintf(path, sizeof(path), "%s/%s", root, name);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  close(fd);
}

static int64_t mtime_of(const char *name) {
  char path[160];
  struct stat st;

  snprintf(path, sizeof(path), "%s/%s", root, name);
  assert_int_equal(stat(path, &st), 0);
  return (int64_t)st.st_mtim.tv_sec;
}

static int group_setup(void **state) {
  const char *why;
  char *big;

  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/test_conn.XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  chmod(dir, 0755);
  snprintf(root, sizeof(root), "%s/root", dir);
  if (mkdir(root, 0755) != 0)
    return -1;
  put_file("a", "hello, pipefile\n", 16);
  put_file("b", "bee", 3);
  put_file("c", "", 0);
  big = calloc(1, BIG_SIZE);
  put_file("big", big, BIG_SIZE);
  free(big);
  /* Privileged (root) or not, the peer is this process: serving it works
   * either way. */
  if (identity_init(&why) < 0) {
    fprintf(stderr, "identity_init: %s\n", why);
    return -1;
  }
  log_setup("stderr", LOG_LVL_ERROR);
  return 0;
}

static int group_teardown(void **state) {
  char cmd[96];

  (void)state;
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* A connection on a fresh loop with the defaults, but idle_ms of idle
 * timeout; the access log to a new file. */
static struct fixture *start(unsigned idle_ms) {
  static unsigned n;
  struct fixture *f = calloc(1, sizeof(*f));
  struct accesslog_opts ao = {.dest = logpath, .fmt = ACCESS_TEXT};
  struct identity peer;
  struct config cfg;
  char err[256];
  int sv[2];

  assert_non_null(f);
  snprintf(logpath, sizeof(logpath), "%s/access-%u.log", dir, ++n);
  accesslog_stop(); /* a failed test before may have left it running */
  assert_int_equal(accesslog_start(&ao, err, sizeof(err)), 0);
  f->log_running = 1;
  config_defaults(&cfg);
  /* The kernel's own send buffer: BIG_SIZE must be more than it holds, and
   * send_buffer would make it 8 MiB where net.core.wmem_max allows. */
  cfg.send_buffer = 0;
  snprintf(cfg.root, sizeof(cfg.root), "%s", root);
  cfg.idle_timeout_ms = idle_ms;
  cfg.serve_root_clients = 1; /* the peer is this process, root or not */
  assert_int_equal(live_new(&cfg, &f->live, err, sizeof(err)), 0);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->host = (struct conn_host){
      .loop = &f->loop,
      .live = f->live,
      .scratch = &scratch,
      .worker_id = TEST_WORKER_ID,
      .buf_get = t_buf_get,
      .buf_put = t_buf_put,
      .yield = t_yield,
      .closed = t_closed,
      .rekey = t_rekey,
  };
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
      0);
  f->client = sv[1];
  assert_int_equal(identity_peer(sv[0], &peer), 0);
  assert_int_equal(conn_start(&f->host, sv[0], 1, &peer, &f->conn), 0);
  return f;
}

static void client_close(struct fixture *f) {
  if (f->client >= 0)
    close(f->client);
  f->client = -1;
}

/* Stop the access log (everything queued is written) and return its
 * contents, NUL-terminated. */
static char *log_text(struct fixture *f) {
  FILE *fp;
  char *buf;
  long n;

  if (f->log_running)
    accesslog_stop();
  f->log_running = 0;
  fp = fopen(logpath, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  n = ftell(fp);
  rewind(fp);
  buf = calloc(1, (size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
  fclose(fp);
  return buf;
}

static size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

/* The idx-th line of s (0-based), copied into out. */
static void nth_line(const char *s, unsigned idx, char *out, size_t len) {
  for (unsigned i = 0; i < idx; i++) {
    s = strchr(s, '\n');
    assert_non_null(s);
    s++;
  }
  size_t n = strcspn(s, "\n");
  assert_true(n < len);
  memcpy(out, s, n);
  out[n] = '\0';
}

static void finish(struct fixture *f) {
  client_close(f);
  /* Whatever the test left open ends now; the loop must be empty after. */
  for (int i = 0; i < 1000 && f->closed == 0; i++)
    uv_run(&f->loop, UV_RUN_NOWAIT), usleep(1000);
  assert_int_equal(f->closed, 1);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  if (f->log_running)
    accesslog_stop();
  live_unref(f->live);
  free(f);
}

/* ---- driving ---------------------------------------------------------- */

static void client_send(struct fixture *f, const void *buf, size_t len) {
  assert_int_equal(send(f->client, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static size_t get_request(uint8_t *buf, uint8_t op, const char *path) {
  struct pfp_request r = {.op = op, .path_len = (uint16_t)strlen(path)};
  assert_int_equal(pfp_request_encode(buf, &r), PFP_REQ_HDR_LEN);
  memcpy(buf + PFP_REQ_HDR_LEN, path, r.path_len);
  return PFP_REQ_HDR_LEN + r.path_len;
}

/* Run the loop and read what the daemon sends until done(f) or WAIT_MS;
 * returns the ms it took. read_in = 0: the client reads nothing. */
static unsigned pump(struct fixture *f, int (*done)(struct fixture *),
                     int read_in) {
  uint64_t t0 = uv_hrtime();

  for (;;) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (read_in && f->client >= 0 && !f->eof && f->in_len < sizeof(f->in)) {
      ssize_t n = recv(f->client, f->in + f->in_len, sizeof(f->in) - f->in_len,
                       MSG_DONTWAIT);
      if (n > 0)
        f->in_len += (size_t)n;
      else if (n == 0)
        f->eof = 1;
      else
        assert_true(errno == EAGAIN);
    }
    if (done(f))
      return (unsigned)((uv_hrtime() - t0) / 1000000);
    if ((uv_hrtime() - t0) / 1000000 > WAIT_MS)
      fail_msg("the connection did not get there within %u ms", WAIT_MS);
    poll(NULL, 0, 1);
  }
}

static size_t want_bytes;
static int got_bytes(struct fixture *f) { return f->in_len >= want_bytes; }
static int got_eof(struct fixture *f) { return f->eof; }
static int got_closed(struct fixture *f) { return f->closed > 0; }
static int got_yield(struct fixture *f) { return f->yields > 0; }
static int got_2_yields(struct fixture *f) { return f->yields > 1; }

/* Complete responses among the bytes received so far. */
static unsigned responses_in(const struct fixture *f) {
  size_t off = 0;
  unsigned n = 0;
  struct pfp_response r;

  while (f->in_len - off >= PFP_RESP_HDR_LEN &&
         pfp_response_decode(f->in + off, &r) == 0 &&
         f->in_len - off >= PFP_RESP_HDR_LEN + r.msg_len + (size_t)r.body_len) {
    off += PFP_RESP_HDR_LEN + r.msg_len + (size_t)r.body_len;
    n++;
  }
  return n;
}

static unsigned want_responses;
static int got_responses(struct fixture *f) {
  return responses_in(f) >= want_responses;
}

/* The response at *off in the bytes received: header fields into r, the
 * message or body into text (NUL-terminated); *off moves past it. */
static void next_response(struct fixture *f, size_t *off,
                          struct pfp_response *r, char *text, size_t len) {
  assert_true(f->in_len - *off >= PFP_RESP_HDR_LEN);
  assert_int_equal(pfp_response_decode(f->in + *off, r), 0);
  size_t n = r->msg_len + (size_t)r->body_len;
  assert_true(f->in_len - *off >= PFP_RESP_HDR_LEN + n);
  assert_true(n < len);
  memcpy(text, f->in + *off + PFP_RESP_HDR_LEN, n);
  text[n] = '\0';
  *off += PFP_RESP_HDR_LEN + n;
}

/* ---- tests ------------------------------------------------------------ */

/* A GET is answered with exactly the header the protocol prescribes and
 * the file's bytes, and logged once with the host's worker id. */
static void test_get_byte_exact(void **state) {
  struct fixture *f = start(10000);
  uint8_t req[PFP_REQ_MAX], want[PFP_RESP_MAX + 16];
  struct pfp_response r = {.status = PFP_OK,
                           .file_size = 16,
                           .mtime = mtime_of("a"),
                           .body_len = 16};
  size_t n;
  char line[1024];
  (void)state;

  n = pfp_response_encode(want, &r, NULL);
  memcpy(want + n, "hello, pipefile\n", 16);
  n += 16;
  client_send(f, req, get_request(req, PFP_OP_GET, "a"));
  want_bytes = n;
  pump(f, got_bytes, 1);
  if (f->in_len != n)
    fail_msg("got %zu bytes: %.*s", f->in_len, (int)(f->in_len - 32),
             (const char *)f->in + 32);
  assert_memory_equal(f->in, want, n);
  /* keep-alive: the connection stays open after the answer */
  assert_int_equal(f->closed, 0);
  client_close(f);
  pump(f, got_closed, 0);
  char *log = log_text(f);
  assert_int_equal(count_lines(log), 1);
  nth_line(log, 0, line, sizeof(line));
  assert_non_null(strstr(line, " worker=7 conn=1 "));
  assert_non_null(strstr(line, " op=GET path=\"a\" "));
  assert_non_null(strstr(line, " status=OK bytes=16 size=16 "));
  free(log);
  finish(f);
}

/* Requests sent together are answered in the order sent, each with its own
 * status, and logged in that order. */
static void test_pipelined_in_order(void **state) {
  struct fixture *f = start(10000);
  static const char *const paths[] = {"a", "b", "missing", "c", "b"};
  static const uint8_t ops[] = {PFP_OP_GET, PFP_OP_STAT, PFP_OP_GET, PFP_OP_GET,
                                PFP_OP_GET};
  static const int status[] = {PFP_OK, PFP_OK, PFP_ENOENT, PFP_OK, PFP_OK};
  static const char *const body[] = {"hello, pipefile\n", "", NULL, "", "bee"};
  uint8_t req[5 * PFP_REQ_MAX];
  size_t len = 0, off = 0;
  char text[PFP_MSG_MAX + 64], line[1024];
  uint8_t enoent[PFP_RESP_MAX];
  (void)state;

  for (int i = 0; i < 5; i++)
    len += get_request(req + len, ops[i], paths[i]);
  client_send(f, req, len);
  /* 4 headers with 16 + 3 body bytes, and ENOENT's header and message */
  want_bytes =
      4 * PFP_RESP_HDR_LEN + 19 + serve_status_only(enoent, PFP_ENOENT, NULL);
  pump(f, got_bytes, 1);
  for (int i = 0; i < 5; i++) {
    struct pfp_response r;
    size_t at = off;
    next_response(f, &off, &r, text, sizeof(text));
    assert_int_equal(r.status, status[i]);
    if (body[i] != NULL)
      assert_string_equal(text, body[i]);
    else
      assert_memory_equal(f->in + at, enoent, off - at);
  }
  assert_int_equal(off, f->in_len);
  client_close(f);
  pump(f, got_closed, 0);
  char *log = log_text(f);
  assert_int_equal(count_lines(log), 5);
  for (unsigned i = 0; i < 5; i++) {
    char want[96];
    nth_line(log, i, line, sizeof(line));
    snprintf(want, sizeof(want),
             " op=%s path=\"%s\" resolved=\"%s\" status=%s ",
             ops[i] == PFP_OP_GET ? "GET" : "STAT", paths[i], paths[i],
             pfp_status_name(status[i]));
    assert_non_null(strstr(line, want));
  }
  free(log);
  finish(f);
}

/* A header that can never be a request is answered EPROTO, logged, and the
 * connection is closed: nothing after it can be told apart. */
static void test_bad_header_eproto(void **state) {
  struct fixture *f = start(10000);
  uint8_t junk[PFP_REQ_HDR_LEN];
  struct pfp_response r;
  char text[PFP_MSG_MAX + 1], line[1024];
  size_t off = 0;
  (void)state;

  memset(junk, 'X', sizeof(junk));
  client_send(f, junk, sizeof(junk));
  pump(f, got_eof, 1);
  next_response(f, &off, &r, text, sizeof(text));
  assert_int_equal(r.status, PFP_EPROTO);
  assert_true(strncmp(text, "EPROTO: ", 8) == 0);
  assert_int_equal(off, f->in_len); /* and nothing after it */
  pump(f, got_closed, 0);
  char *log = log_text(f);
  assert_int_equal(count_lines(log), 1);
  nth_line(log, 0, line, sizeof(line));
  assert_non_null(strstr(line, " status=EPROTO "));
  free(log);
  finish(f);
}

/* A connection nobody uses is closed after idle_timeout, without a line
 * (no request, nothing to audit). */
static void test_idle_timeout_closes(void **state) {
  struct fixture *f = start(150);
  (void)state;

  unsigned ms = pump(f, got_eof, 1);
  assert_true(ms >= 140);
  assert_int_equal(f->in_len, 0);
  pump(f, got_closed, 0);
  char *log = log_text(f);
  assert_int_equal(count_lines(log), 0);
  free(log);
  finish(f);
}

/* A client that goes away in the middle of a large body, with a request
 * pipelined behind it: the transfer is logged with the bytes that went out,
 * and the request read but never answered as abandoned. */
static void test_abandoned_request_logged(void **state) {
  struct fixture *f = start(10000);
  uint8_t req[2 * PFP_REQ_MAX];
  char line[1024];
  size_t len;
  (void)state;

  len = get_request(req, PFP_OP_GET, "big");
  len += get_request(req + len, PFP_OP_STAT, "a");
  client_send(f, req, len);
  /* The client reads the header and a little, then stops. */
  want_bytes = PFP_RESP_HDR_LEN + 1000;
  pump(f, got_bytes, 1);
  for (int i = 0; i < 20; i++)
    uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(f->closed, 0);
  client_close(f);
  pump(f, got_closed, 0);
  char *log = log_text(f);
  assert_int_equal(count_lines(log), 2);
  nth_line(log, 0, line, sizeof(line));
  assert_non_null(
      strstr(line, " op=GET path=\"big\" resolved=\"big\" status=OK bytes="));
  unsigned long long bytes = strtoull(strstr(line, " bytes=") + 7, NULL, 10);
  assert_true(bytes >= 1000 - PFP_RESP_HDR_LEN && bytes < BIG_SIZE);
  nth_line(log, 1, line, sizeof(line));
  assert_non_null(strstr(line, " op=STAT path=\"a\" "));
  /* ACCESS_ABANDONED: "ABANDONED" once the formatter names it */
  assert_true(strstr(line, " status=ABANDONED ") != NULL ||
              strstr(line, " status=UNKNOWN ") != NULL);
  free(log);
  finish(f);
}

/* Many pipelined requests: after CONN_REQ_BUDGET (16) answers the
 * connection gives the host's other connections a turn (yield) and goes
 * on only when resumed; aborted meanwhile, the requests it had read and
 * not answered are each logged as abandoned. */
static void test_yield_then_abort_logs_the_rest(void **state) {
  struct fixture *f = start(10000);
  uint8_t req[20 * (PFP_REQ_HDR_LEN + 1)];
  size_t len = 0;
  char line[1024];
  (void)state;

  for (int i = 0; i < 20; i++)
    len += get_request(req + len, PFP_OP_STAT, "b");
  client_send(f, req, len);
  pump(f, got_yield, 1);
  want_bytes = 16 * PFP_RESP_HDR_LEN;
  pump(f, got_bytes, 1);
  assert_int_equal(f->yields, 1);
  assert_ptr_equal(f->yielded[0], f->conn);
  assert_int_equal(f->in_len, 16 * PFP_RESP_HDR_LEN); /* no more: parked */
  /* One resume: the next turn answers the rest. */
  conn_resume(f->conn);
  want_bytes = 20 * PFP_RESP_HDR_LEN;
  pump(f, got_bytes, 1);
  /* Again, and abort the connection while it is parked. */
  len = 0;
  for (int i = 0; i < 20; i++)
    len += get_request(req + len, PFP_OP_STAT, "b");
  client_send(f, req, len);
  pump(f, got_2_yields, 1);
  conn_abort(f->conn);
  pump(f, got_closed, 1);
  char *log = log_text(f);
  assert_int_equal(count_lines(log), 40);
  for (unsigned i = 0; i < 40; i++) {
    nth_line(log, i, line, sizeof(line));
    assert_non_null(strstr(line, " op=STAT path=\"b\" "));
    assert_true((strstr(line, " status=OK ") != NULL) == (i < 36));
  }
  free(log);
  finish(f);
}

/* A chain of 40 symlinks whose targets are ~4 KiB of "a/../": each lookup
 * of chain/l0 walks some 64,000 components, milliseconds of work. */
static void make_chain(void) {
  char path[160], target[4096];

  snprintf(path, sizeof(path), "%s/chain", root);
  assert_int_equal(mkdir(path, 0755), 0);
  snprintf(path, sizeof(path), "%s/chain/a", root);
  assert_int_equal(mkdir(path, 0755), 0);
  for (int i = 0; i < 40; i++) {
    size_t n = 0;
    while (n + 5 + 8 < 4000)
      n += (size_t)snprintf(target + n, sizeof(target) - n, "a/../");
    snprintf(target + n, sizeof(target) - n, i < 39 ? "l%d" : "../b", i + 1);
    snprintf(path, sizeof(path), "%s/chain/l%d", root, i);
    assert_int_equal(symlink(target, path), 0);
  }
}

/* Costly pipelined requests: past CONN_TURN_NS (1 ms) of answering, the
 * connection yields after its first answer instead of after 16, so one
 * client's expensive requests cannot hold the worker from the others. */
static void test_costly_requests_yield_after_one(void **state) {
  struct fixture *f = start(10000);
  uint8_t req[4 * (PFP_REQ_HDR_LEN + 16)];
  size_t len = 0;
  (void)state;

  make_chain();
  for (int i = 0; i < 4; i++)
    len += get_request(req + len, PFP_OP_STAT, "chain/l0");
  client_send(f, req, len);
  pump(f, got_yield, 1);
  want_responses = 1;
  pump(f, got_responses, 1);
  assert_int_equal(f->yields, 1);
  assert_int_equal(responses_in(f), 1); /* one answer, then parked */
  /* Each resume is one more turn of one answer. */
  for (unsigned k = 2; k <= 4; k++) {
    conn_resume(f->conn);
    want_responses = k;
    pump(f, got_responses, 1);
    assert_int_equal(responses_in(f), k);
  }
  size_t off = 0;
  struct pfp_response r;
  char text[128];
  for (int i = 0; i < 4; i++) {
    next_response(f, &off, &r, text, sizeof(text));
    /* "b" at the end of the chain; or, when a rename anywhere on the
     * machine sent openat2 to the walk, that walk's work budget refusing
     * the chain: either way the request was expensive and answered. */
    if (r.status == PFP_OK)
      assert_int_equal(r.file_size, 3);
    else
      assert_int_equal(r.status, PFP_EXDEV);
  }
  finish(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_byte_exact),
      cmocka_unit_test(test_pipelined_in_order),
      cmocka_unit_test(test_bad_header_eproto),
      cmocka_unit_test(test_idle_timeout_closes),
      cmocka_unit_test(test_abandoned_request_logged),
      cmocka_unit_test(test_yield_then_abort_logs_the_rest),
      cmocka_unit_test(test_costly_requests_yield_after_one),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
