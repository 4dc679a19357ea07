/* test_libpipefile.c - unit tests of the client library (client/pipefile.h)
 * against canned server bytes over socketpair(2).
 *
 * Both directions are checked against byte layouts written out by hand from
 * the tables in docs/protocol.md, never produced by common/proto.c, so a bug
 * shared by the codec and the library cannot pass unnoticed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pipefile.h"

/* ---- helpers ---------------------------------------------------------- */

static void be16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void be64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* A response header and message laid out by hand from the response table:
 * magic "pf", version, status, msg_len, reserved, file_size, mtime,
 * body_len, message. Returns its length. */
static size_t canned_resp(uint8_t *buf, uint8_t status, const char *msg,
                          uint64_t file_size, int64_t mtime,
                          uint64_t body_len) {
  size_t mlen = msg ? strlen(msg) : 0;
  buf[0] = 0x70;
  buf[1] = 0x66;
  buf[2] = 1;
  buf[3] = status;
  be16(buf + 4, (uint16_t)mlen);
  be16(buf + 6, 0);
  be64(buf + 8, file_size);
  be64(buf + 16, (uint64_t)mtime);
  be64(buf + 24, body_len);
  if (mlen)
    memcpy(buf + 32, msg, mlen);
  return 32 + mlen;
}

static void write_all_fd(int fd, const void *buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = write(fd, (const char *)buf + done, n - done);
    if (r < 0 && errno == EINTR)
      continue;
    assert_true(r > 0);
    done += (size_t)r;
  }
}

static size_t read_full_fd(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  return got;
}

static uint8_t pattern_byte(uint64_t i) { return (uint8_t)(i * 31 + i / 251); }

/* A socketpair: sv[0] is the client's end, sv[1] the fake server's. */
static void pair(int sv[2]) {
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

/* Both ends of a pair closed. */
static void unpair(int sv[2]) {
  close(sv[0]);
  close(sv[1]);
}

/* A canned response (header and message, no body) written on fd. */
static void send_resp(int fd, uint8_t status, const char *msg,
                      uint64_t file_size, int64_t mtime, uint64_t body_len) {
  uint8_t buf[PFP_RESP_MAX];
  write_all_fd(fd, buf,
               canned_resp(buf, status, msg, file_size, mtime, body_len));
}

/* A pair whose server end has already sent a canned response. */
static void answered_pair(int sv[2], uint8_t status, const char *msg,
                          uint64_t file_size, int64_t mtime,
                          uint64_t body_len) {
  pair(sv);
  send_resp(sv[1], status, msg, file_size, mtime, body_len);
}

/* An OK response for a file_size-byte file with body right behind it, laid
 * out in buf. Returns its length. */
static size_t canned_ok_body(uint8_t *buf, uint64_t file_size,
                             const char *body) {
  size_t blen = strlen(body);
  size_t n = canned_resp(buf, PFP_OK, NULL, file_size, 0, blen);
  memcpy(buf + n, body, blen);
  return n + blen;
}

/* The response in res has status and message msg. */
static void expect_answer(const struct pipefile_result *res, int status,
                          const char *msg) {
  assert_int_equal(res->status, status);
  assert_string_equal(res->msg, msg);
}

/* An anonymous file to stream bodies into. */
static int out_file(void) {
  FILE *f = tmpfile();
  assert_non_null(f);
  int fd = dup(fileno(f));
  fclose(f);
  assert_true(fd >= 0);
  return fd;
}

static off_t fd_size(int fd) {
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  return st.st_size;
}

/* Read everything the client sent on the server end, without blocking. */
static size_t drain(int fd, uint8_t *buf, size_t n) {
  size_t got = 0;
  for (;;) {
    ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  return got;
}

/* What the client sent, read on the server end fd, is exactly want. */
static void expect_sent(int fd, const uint8_t *want, size_t n) {
  uint8_t got[64];
  assert_int_equal(drain(fd, got, sizeof(got)), n);
  assert_memory_equal(got, want, n);
}

/* A fake server thread: reads req_len request bytes, then writes an OK
 * header with file_size, mtime and body_len, then body_sent bytes of the
 * pattern, then tail, then closes if asked. Used where the bytes exceed what
 * a socket buffer holds. The test fills in the first fields (a designated
 * initializer zeroes the rest), then calls start_server() and
 * join_server(). */
struct server {
  size_t req_len;
  uint64_t file_size;
  int64_t mtime;
  uint64_t body_len;
  uint64_t body_sent;
  int close_after;
  uint8_t tail[64];
  size_t tail_len;
  /* Filled in by start_server() and the thread. */
  int fd;
  uint8_t head[PFP_RESP_HDR_LEN];
  size_t head_len;
  uint8_t req[PFP_REQ_MAX];
  pthread_t th;
};

static void *server_main(void *arg) {
  struct server *s = arg;
  uint8_t chunk[8192];
  uint64_t i = 0;

  read_full_fd(s->fd, s->req, s->req_len);
  write_all_fd(s->fd, s->head, s->head_len);
  while (i < s->body_sent) {
    size_t n = 0;
    while (n < sizeof(chunk) && i < s->body_sent)
      chunk[n++] = pattern_byte(i++);
    write_all_fd(s->fd, chunk, n);
  }
  if (s->tail_len)
    write_all_fd(s->fd, s->tail, s->tail_len);
  if (s->close_after)
    close(s->fd);
  return NULL;
}

/* Makes the pair sv and starts the server thread on sv[1]. */
static void start_server(struct server *s, int sv[2]) {
  pair(sv);
  s->fd = sv[1];
  s->head_len =
      canned_resp(s->head, PFP_OK, NULL, s->file_size, s->mtime, s->body_len);
  assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void join_server(struct server *s) { pthread_join(s->th, NULL); }

/* ---- request bytes ---------------------------------------------------- */

static void test_request_get_bytes(void **state) {
  (void)state;
  /* GET "/hello.txt" offset 4096 length 100, from the request table. */
  static const uint8_t want[] = {
      0x50, 0x46,                                     /* magic "PF" */
      0x01,                                           /* version */
      0x01,                                           /* op GET */
      0x00, 0x0a,                                     /* path_len 10 */
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, /* offset 4096 */
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, /* length 100 */
      '/',  'h',  'e',  'l',  'l',  'o',  '.',  't',  'x', 't'};
  int sv[2];
  pair(sv);
  assert_int_equal(
      pipefile_send_request(sv[0], PFP_OP_GET, "/hello.txt", 4096, 100), 0);
  expect_sent(sv[1], want, sizeof(want));
  unpair(sv);
}

static void test_request_get_close_bytes(void **state) {
  (void)state;
  /* GET|CLOSE "x": every byte of offset and length distinct, so a wrong
   * byte order shows. */
  static const uint8_t want[] = {0x50, 0x46, 0x01, 0x81, 0x00, 0x01, 0x01, 0x02,
                                 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xf1, 0xf2,
                                 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 'x'};
  int sv[2];
  pair(sv);
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_GET | PFP_OP_CLOSE, "x",
                                         0x0102030405060708ULL,
                                         0xf1f2f3f4f5f6f7f8ULL),
                   0);
  expect_sent(sv[1], want, sizeof(want));
  unpair(sv);
}

static void test_request_stat_bytes(void **state) {
  (void)state;
  static const uint8_t want[] = {
      0x50, 0x46, 0x01, 0x02, 0x00, 0x05, 0, 0, 0,   0,   0,   0,   0,  0,
      0,    0,    0,    0,    0,    0,    0, 0, '/', 'a', '/', 'b', 'c'};
  struct pipefile_result res;
  int sv[2];
  /* pipefile_stat sends the request, then waits for the canned answer. */
  answered_pair(sv, PFP_OK, NULL, 1, 2, 0);
  assert_int_equal(pipefile_stat(sv[0], "/a/bc", 0, &res), 0);
  expect_sent(sv[1], want, sizeof(want));
  unpair(sv);
}

static void test_request_long_path(void **state) {
  (void)state;
  char path[PFP_PATH_MAX + 2];
  uint8_t got[PFP_REQ_MAX + 1];
  int sv[2];
  pair(sv);
  memset(path, 'p', sizeof(path));
  path[PFP_PATH_MAX] = '\0'; /* exactly the longest allowed path */
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_GET, path, 0, 0), 0);
  assert_int_equal(drain(sv[1], got, sizeof(got)), 22 + PFP_PATH_MAX);
  assert_int_equal(got[4], 0x10); /* path_len 4096 = 0x1000 */
  assert_int_equal(got[5], 0x00);
  path[PFP_PATH_MAX] = 'p';
  path[PFP_PATH_MAX + 1] = '\0';
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_GET, path, 0, 0),
                   -ENAMETOOLONG);
  unpair(sv);
}

static void test_request_bad_args(void **state) {
  (void)state;
  uint8_t got[64];
  int sv[2];
  pair(sv);
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_GET, "", 0, 0), -EINVAL);
  assert_int_equal(pipefile_send_request(sv[0], 3, "/a", 0, 0), -EINVAL);
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_STAT, "/a", 1, 0),
                   -EINVAL);
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_STAT, "/a", 0, 1),
                   -EINVAL);
  /* Nothing reached the wire. */
  assert_int_equal(drain(sv[1], got, sizeof(got)), 0);
  unpair(sv);
}

/* ---- GET -------------------------------------------------------------- */

static void test_get_streams_exact_body(void **state) {
  (void)state;
  /* Larger than the socket buffers and not a multiple of the library's
   * buffer, so partial reads and the last short chunk are exercised. */
  const uint64_t body = 3 * PIPEFILE_BUF_SIZE + 12345;
  const uint64_t size = body + 7;
  struct server srv = {.req_len = 22 + 2,
                       .file_size = size,
                       .mtime = 1732490028,
                       .body_len = body,
                       .body_sent = body};
  struct pipefile_result res;
  int sv[2];
  int out = out_file();

  /* A pipelined next response right behind the body: the library must not
   * eat into it. */
  srv.tail_len =
      canned_resp(srv.tail, PFP_ENOENT, "ENOENT: no such file", 0, 0, 0);
  start_server(&srv, sv);

  assert_int_equal(pipefile_get(sv[0], "/f", 7, 0, 0, out, &res), 0);
  expect_answer(&res, PFP_OK, "");
  assert_int_equal(res.file_size, size);
  assert_int_equal(res.mtime, 1732490028);
  assert_int_equal(res.body_len, body);
  assert_int_equal(res.body_done, body);
  assert_int_equal(fd_size(out), (off_t)body);

  /* The file holds exactly the pattern. */
  uint8_t *got = malloc(body);
  assert_non_null(got);
  assert_int_equal(pread(out, got, body, 0), (ssize_t)body);
  for (uint64_t i = 0; i < body; i++)
    if (got[i] != pattern_byte(i))
      fail_msg("byte %llu differs", (unsigned long long)i);
  free(got);

  /* The next response is intact. */
  assert_int_equal(pipefile_read_response(sv[0], &res), 0);
  expect_answer(&res, PFP_ENOENT, "ENOENT: no such file");

  join_server(&srv);
  static const uint8_t want_hdr[] = {0x50, 0x46, 1, 1, 0, 2, 0, 0, 0, 0, 0,
                                     0,    0,    7, 0, 0, 0, 0, 0, 0, 0, 0};
  assert_memory_equal(srv.req, want_hdr, sizeof(want_hdr));
  assert_memory_equal(srv.req + 22, "/f", 2);
  close(out);
  unpair(sv);
}

static void test_get_range_and_empty(void **state) {
  (void)state;
  uint8_t buf[256];
  struct pipefile_result res;
  int sv[2];
  int out = out_file();

  pair(sv);
  /* offset 2, length 3 of a 10-byte file: body_len 3. */
  write_all_fd(sv[1], buf, canned_ok_body(buf, 10, "cde"));
  assert_int_equal(pipefile_get(sv[0], "/r", 2, 3, 0, out, &res), 0);
  assert_int_equal(res.body_done, 3);
  assert_int_equal(fd_size(out), 3);

  /* offset == file_size: OK with an empty body. */
  send_resp(sv[1], PFP_OK, NULL, 10, 0, 0);
  assert_int_equal(pipefile_get(sv[0], "/r", 10, 0, 0, out, &res), 0);
  assert_int_equal(res.status, PFP_OK);
  assert_int_equal(res.body_len, 0);
  assert_int_equal(fd_size(out), 3);
  close(out);
  unpair(sv);
}

static void test_get_body_len_mismatch(void **state) {
  (void)state;
  /* An OK answer for a 10-byte file whose body_len does not fit the
   * request. */
  static const struct {
    uint64_t body_len, offset;
  } cases[] = {
      {9, 0},  /* offset 0, length 0: body_len must be 10, not 9 */
      {0, 11}, /* OK for an offset beyond the file */
  };
  struct pipefile_result res;
  int sv[2];

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    answered_pair(sv, PFP_OK, NULL, 10, 0, cases[i].body_len);
    assert_int_equal(pipefile_get(sv[0], "/a", cases[i].offset, 0, 0, -1, &res),
                     -EPROTO);
    unpair(sv);
  }
}

static void test_get_short_body(void **state) {
  (void)state;
  struct pipefile_result res;
  int sv[2];
  int out = out_file();

  /* The server reads the request, announces 100 bytes and gives up after
   * 40 (the file shrank). */
  struct server srv = {.req_len = 22 + 2,
                       .file_size = 100,
                       .body_len = 100,
                       .body_sent = 40,
                       .close_after = 1};
  start_server(&srv, sv);
  assert_int_equal(pipefile_get(sv[0], "/a", 0, 0, 0, out, &res), -EPIPE);
  join_server(&srv);
  assert_int_equal(res.body_len, 100);
  assert_int_equal(res.body_done, 40);
  assert_int_equal(fd_size(out), 40);
  close(out);
  close(sv[0]);
}

static void test_get_error_status(void **state) {
  (void)state;
  struct pipefile_result res;
  int sv[2];
  int out = out_file();

  answered_pair(sv, PFP_EACCES, "EACCES: permission denied", 0, 0, 0);
  /* A refusal is an answer, not a local error: 0 and the status. */
  assert_int_equal(pipefile_get(sv[0], "/secret", 0, 0, 0, out, &res), 0);
  expect_answer(&res, PFP_EACCES, "EACCES: permission denied");
  assert_int_equal(res.file_size, 0);
  assert_int_equal(res.body_len, 0);
  assert_int_equal(fd_size(out), 0);

  /* ERANGE on the same connection, which stays usable. */
  send_resp(sv[1], PFP_ERANGE, "ERANGE: offset beyond end of file", 0, 0, 0);
  assert_int_equal(pipefile_get(sv[0], "/a", 99, 0, 0, out, &res), 0);
  expect_answer(&res, PFP_ERANGE, "ERANGE: offset beyond end of file");
  close(out);
  unpair(sv);
}

static void test_get_ebusy_before_request(void **state) {
  (void)state;
  struct pipefile_result res;
  int sv[2];

  /* The server refuses at once and closes before reading: sending fails
   * (without SIGPIPE killing us), but the answer is still there. */
  answered_pair(sv, PFP_EBUSY, "EBUSY: connection limit reached", 0, 0, 0);
  close(sv[1]);
  assert_int_equal(pipefile_get(sv[0], "/a", 0, 0, 0, -1, &res), 0);
  expect_answer(&res, PFP_EBUSY, "EBUSY: connection limit reached");
  close(sv[0]);

  /* Closed without a word: the connection is reported lost. */
  pair(sv);
  close(sv[1]);
  assert_int_equal(pipefile_get(sv[0], "/a", 0, 0, 0, -1, &res), -ECONNRESET);
  close(sv[0]);
}

static void test_get_write_error(void **state) {
  (void)state;
  uint8_t buf[64];
  struct pipefile_result res;
  int sv[2];
  int ro = open("/dev/null", O_RDONLY);

  assert_true(ro >= 0);
  pair(sv);
  write_all_fd(sv[1], buf, canned_ok_body(buf, 4, "data"));
  assert_int_equal(pipefile_get(sv[0], "/a", 0, 0, 0, ro, &res),
                   PIPEFILE_EWRITE);
  assert_int_equal(res.write_errno, EBADF);
  assert_int_equal(res.body_done, 0);
  close(ro);
  unpair(sv);
}

/* Reads a pipe to its end, counting bytes and checking the pattern. */
struct drainer {
  int fd;
  uint64_t n;
  int bad;
};

static void *drainer_main(void *arg) {
  struct drainer *d = arg;
  uint8_t buf[4096];
  for (;;) {
    usleep(1000); /* slower than the writer, so the pipe fills up */
    ssize_t r = read(d->fd, buf, sizeof(buf));
    if (r <= 0)
      break;
    for (ssize_t i = 0; i < r; i++)
      if (buf[i] != pattern_byte(d->n + (uint64_t)i))
        d->bad = 1;
    d->n += (uint64_t)r;
  }
  return NULL;
}

static void test_get_nonblocking_out(void **state) {
  (void)state;
  /* A non-blocking output pipe that fills up: EAGAIN must mean "wait", not
   * failure. */
  const uint64_t body = 512 * 1024;
  struct pipefile_result res;
  struct server srv = {.req_len = 22 + 2,
                       .file_size = body,
                       .body_len = body,
                       .body_sent = body};
  struct drainer d = {0};
  pthread_t dt;
  int sv[2], p[2];

  assert_int_equal(pipe(p), 0);
  assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
  d.fd = p[0];
  start_server(&srv, sv);
  assert_int_equal(pthread_create(&dt, NULL, drainer_main, &d), 0);
  assert_int_equal(pipefile_get(sv[0], "/p", 0, 0, 0, p[1], &res), 0);
  assert_int_equal(res.body_done, body);
  close(p[1]);
  pthread_join(dt, NULL);
  join_server(&srv);
  assert_int_equal(d.n, body);
  assert_false(d.bad);
  close(p[0]);
  unpair(sv);
}

static void test_pipelined_discard(void **state) {
  (void)state;
  uint8_t buf[256];
  struct pipefile_result res;
  int sv[2];
  size_t n;

  pair(sv);
  /* Two requests out, then both answers: a body discarded with out_fd -1,
   * then a STAT answer. */
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_GET, "/a", 0, 0), 0);
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_STAT, "/b", 0, 0), 0);
  n = canned_ok_body(buf, 5, "hello");
  n += canned_resp(buf + n, PFP_OK, NULL, 77, -1, 0);
  write_all_fd(sv[1], buf, n);
  assert_int_equal(pipefile_read_response(sv[0], &res), 0);
  assert_int_equal(res.body_len, 5);
  assert_int_equal(pipefile_read_body(sv[0], -1, &res), 0);
  assert_int_equal(res.body_done, 5);
  assert_int_equal(pipefile_read_response(sv[0], &res), 0);
  assert_int_equal(res.file_size, 77);
  assert_int_equal(res.mtime, -1);
  unpair(sv);
}

/* What a progress callback saw: every call's body_done, in order. */
struct seen {
  uint64_t done[64];
  int calls;
  int stop_at; /* the call that returns -ECANCELED; 0 = none */
};

static int record_progress(void *arg, const struct pipefile_result *res) {
  struct seen *s = arg;
  if (s->calls < 64)
    s->done[s->calls] = res->body_done;
  s->calls++;
  return s->calls == s->stop_at ? -ECANCELED : 0;
}

static void test_read_body_cb(void **state) {
  (void)state;
  const uint64_t body = 3 * PIPEFILE_BUF_SIZE + 100;
  struct server srv = {.req_len = 22 + 2,
                       .file_size = body,
                       .body_len = body,
                       .body_sent = body};
  struct pipefile_result res;
  struct seen seen = {0};
  int sv[2];
  int out = out_file();

  start_server(&srv, sv);
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_GET, "/f", 0, 0), 0);
  assert_int_equal(pipefile_read_get_response(sv[0], 0, 0, &res), 0);
  assert_int_equal(res.body_len, body);
  assert_int_equal(
      pipefile_read_body_cb(sv[0], out, &res, record_progress, &seen), 0);
  join_server(&srv);
  /* Called after every piece, each time with more, the last with all, and
   * the bytes it reports are already in the output. */
  assert_true(seen.calls >= 4);
  for (int i = 1; i < seen.calls && i < 64; i++)
    assert_true(seen.done[i] > seen.done[i - 1] &&
                seen.done[i] - seen.done[i - 1] <= PIPEFILE_BUF_SIZE);
  assert_int_equal(seen.done[seen.calls - 1], body);
  assert_int_equal(fd_size(out), (off_t)body);
  close(out);
  unpair(sv);

  /* A callback that says stop: its code comes back, after the bytes of
   * that piece were written. */
  /* Small enough for the socket's buffer: the server thread never blocks
   * on the bytes left unread. */
  const uint64_t small = PIPEFILE_BUF_SIZE + 100;
  struct server srv2 = {.req_len = 22 + 2,
                        .file_size = small,
                        .body_len = small,
                        .body_sent = small};
  struct seen stop = {.stop_at = 1};
  out = out_file();
  start_server(&srv2, sv);
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_GET, "/f", 0, 0), 0);
  assert_int_equal(pipefile_read_get_response(sv[0], 0, 0, &res), 0);
  join_server(&srv2);
  assert_int_equal(
      pipefile_read_body_cb(sv[0], out, &res, record_progress, &stop),
      -ECANCELED);
  assert_int_equal(stop.calls, 1);
  assert_true(stop.done[0] > 0 && stop.done[0] < small);
  assert_int_equal(fd_size(out), (off_t)stop.done[0]);
  assert_int_equal(res.body_done, stop.done[0]);
  unpair(sv);
  close(out);
}

static void test_read_get_response_pipelined(void **state) {
  (void)state;
  uint8_t buf[512];
  struct pipefile_result res;
  int sv[2];
  size_t n;
  int out = out_file();

  /* Three GETs out before any answer: a range, a refusal, a whole file. */
  pair(sv);
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_GET, "/a", 2, 3), 0);
  assert_int_equal(pipefile_send_request(sv[0], PFP_OP_GET, "/b", 0, 0), 0);
  assert_int_equal(
      pipefile_send_request(sv[0], PFP_OP_GET | PFP_OP_CLOSE, "/c", 0, 0), 0);
  n = canned_ok_body(buf, 10, "cde");
  n += canned_resp(buf + n, PFP_ENOENT, "ENOENT: no such file", 0, 0, 0);
  n += canned_ok_body(buf + n, 4, "cccc");
  write_all_fd(sv[1], buf, n);
  assert_int_equal(pipefile_read_get_response(sv[0], 2, 3, &res), 0);
  expect_answer(&res, PFP_OK, "");
  assert_int_equal(pipefile_read_body(sv[0], out, &res), 0);
  assert_int_equal(pipefile_read_get_response(sv[0], 0, 0, &res), 0);
  expect_answer(&res, PFP_ENOENT, "ENOENT: no such file");
  assert_int_equal(pipefile_read_get_response(sv[0], 0, 0, &res), 0);
  assert_int_equal(res.body_len, 4);
  assert_int_equal(pipefile_read_body(sv[0], out, &res), 0);
  assert_int_equal(fd_size(out), 7);
  uint8_t got[8];
  assert_int_equal(pread(out, got, 7, 0), 7);
  assert_memory_equal(got, "cdecccc", 7);
  unpair(sv);

  /* An OK whose body_len does not fit the request (2 bytes for a 10-byte
   * file from offset 2, all of it wanted: 8): -EPROTO, not trusted. */
  pair(sv);
  n = canned_resp(buf, PFP_OK, NULL, 10, 0, 2);
  write_all_fd(sv[1], buf, n);
  assert_int_equal(pipefile_read_get_response(sv[0], 2, 0, &res), -EPROTO);
  unpair(sv);
  close(out);
}

/* ---- malformed responses ---------------------------------------------- */

static void expect_read(const uint8_t *bytes, size_t n, int close_after,
                        int want) {
  struct pipefile_result res;
  int sv[2];
  pair(sv);
  write_all_fd(sv[1], bytes, n);
  if (close_after)
    close(sv[1]);
  assert_int_equal(pipefile_read_response(sv[0], &res), want);
  /* On failure nothing half-read is left in the result. */
  if (want < 0) {
    assert_int_equal(res.status, 0);
    assert_int_equal(res.body_len, 0);
    assert_string_equal(res.msg, "");
  }
  close(sv[0]);
  if (!close_after)
    close(sv[1]);
}

static void test_bad_magic(void **state) {
  (void)state;
  uint8_t buf[64];
  size_t n = canned_resp(buf, PFP_OK, NULL, 0, 0, 0);
  buf[0] = 'P'; /* the request's magic, not the response's */
  expect_read(buf, n, 0, -EPROTO);
}

static void test_bad_version(void **state) {
  (void)state;
  uint8_t buf[64];
  size_t n = canned_resp(buf, PFP_OK, NULL, 0, 0, 0);
  buf[2] = 2;
  expect_read(buf, n, 0, -EPROTO);
}

static void test_bad_fields(void **state) {
  (void)state;
  uint8_t buf[64];
  size_t n;

  n = canned_resp(buf, PFP_OK, NULL, 0, 0, 0);
  buf[7] = 1; /* reserved */
  expect_read(buf, n, 0, -EPROTO);
  n = canned_resp(buf, PFP_STATUS_COUNT, NULL, 0, 0, 0); /* unknown status */
  expect_read(buf, n, 0, -EPROTO);
  n = canned_resp(buf, PFP_EIO, NULL, 0, 0, 5); /* body on an error */
  expect_read(buf, n, 0, -EPROTO);
  n = canned_resp(buf, PFP_EIO, NULL, 0, 0, 0);
  be16(buf + 4, PFP_MSG_MAX + 1); /* message too long */
  expect_read(buf, n, 0, -EPROTO);
}

static void test_not_pfp_then_close(void **state) {
  (void)state;
  /* Fewer than 32 bytes, but already not PFP/1: a protocol error, not a
   * lost connection. */
  const char *http = "HTTP/1.0 400 Bad Request\r\n";
  expect_read((const uint8_t *)http, strlen(http), 1, -EPROTO);
}

static void test_truncated(void **state) {
  (void)state;
  uint8_t buf[64] = {0};
  size_t n;

  expect_read(buf, 0, 1, -ECONNRESET); /* nothing at all */
  n = canned_resp(buf, PFP_OK, NULL, 0, 0, 0);
  expect_read(buf, n - 5, 1, -ECONNRESET); /* header cut short */
  n = canned_resp(buf, PFP_ENOENT, "ENOENT: no such file", 0, 0, 0);
  expect_read(buf, n - 3, 1, -ECONNRESET); /* message cut short */
}

static void test_message_sanitized(void **state) {
  (void)state;
  struct pipefile_result res;
  int sv[2];
  answered_pair(sv, PFP_EIO, "EIO: \x1b[2Jgone\n\x7f caf\xc3\xa9", 0, 0, 0);
  assert_int_equal(pipefile_read_response(sv[0], &res), 0);
  assert_string_equal(res.msg, "EIO: ?[2Jgone?? caf\xc3\xa9");
  unpair(sv);
}

/* ---- STAT ------------------------------------------------------------- */

static void test_stat(void **state) {
  (void)state;
  struct pipefile_result res;
  int sv[2];
  /* mtime is signed: a file from before 1970 must stay negative. */
  answered_pair(sv, PFP_OK, NULL, 0x0123456789ULL, -86400, 0);
  assert_int_equal(pipefile_stat(sv[0], "/old", 0, &res), 0);
  assert_int_equal(res.status, PFP_OK);
  assert_int_equal(res.file_size, 0x0123456789ULL);
  assert_true(res.mtime == -86400);
  assert_int_equal(res.body_len, 0);

  send_resp(sv[1], PFP_ENOTREG, "ENOTREG: not a regular file", 0, 0, 0);
  assert_int_equal(pipefile_stat(sv[0], "/dir", 0, &res), 0);
  expect_answer(&res, PFP_ENOTREG, "ENOTREG: not a regular file");

  /* An OK STAT with a body breaks the protocol. */
  send_resp(sv[1], PFP_OK, NULL, 3, 0, 3);
  assert_int_equal(pipefile_stat(sv[0], "/x", 0, &res), -EPROTO);
  unpair(sv);
}

/* ---- connect ---------------------------------------------------------- */

static void test_connect(void **state) {
  (void)state;
  char dir[] = "/tmp/test_libpipefile.XXXXXX";
  char path[PATH_MAX];
  char longp[256];
  struct sockaddr_un sa;
  int fd = 123;
  int ls;

  memset(longp, 'a', sizeof(longp));
  longp[0] = '/';
  longp[PIPEFILE_SOCKET_PATH_MAX + 1] = '\0'; /* one byte too long */
  assert_int_equal(pipefile_connect(longp, &fd), -ENAMETOOLONG);
  assert_int_equal(fd, -1);
  fd = 123;
  assert_int_equal(pipefile_connect("", &fd), -EINVAL);
  assert_int_equal(fd, -1);

  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/s", dir);
  assert_int_equal(pipefile_connect(path, &fd), -ENOENT);
  assert_int_equal(fd, -1);

  ls = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(ls >= 0);
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  strcpy(sa.sun_path, path);
  assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
  /* Bound but not listening: refused. */
  assert_int_equal(pipefile_connect(path, &fd), -ECONNREFUSED);
  assert_int_equal(listen(ls, 1), 0);
  assert_int_equal(pipefile_connect(path, &fd), 0);
  assert_true(fd >= 0);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  close(fd);
  close(ls);
  unlink(path);
  rmdir(dir);
}

/* ---- who serves the socket ------------------------------------------- */

static void test_server_trusted(void **state) {
  (void)state;
  /* Default rule: root, the directory's owner, or ourselves. */
  assert_true(pipefile_server_trusted(0, 100, 200, -1));
  assert_true(pipefile_server_trusted(100, 100, 200, -1));
  assert_true(pipefile_server_trusted(200, 100, 200, -1));
  /* Another user's socket in a root-owned sticky directory. */
  assert_false(pipefile_server_trusted(300, 0, 200, -1));
  assert_false(pipefile_server_trusted(300, 100, 200, -1));
  /* A named uid replaces the rule, root included. */
  assert_true(pipefile_server_trusted(300, 0, 200, 300));
  assert_false(pipefile_server_trusted(0, 0, 200, 300));
  assert_false(pipefile_server_trusted(200, 200, 200, 300));
  assert_true(pipefile_server_trusted(0, 100, 200, 0));
}

/* Bind and listen on path as uid (forked, so the listener's credentials are
 * uid's); returns the child's pid, which listens until *go is closed. */
static pid_t listen_as(uid_t uid, const char *path, int *go) {
  int ready[2], hold[2];
  char c;
  pid_t pid;

  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(hold), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct sockaddr_un sa;
    int ls;
    close(ready[0]);
    close(hold[1]);
    if (setgid(uid) < 0 || setuid(uid) < 0)
      _exit(1);
    ls = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(ls, 4) < 0)
      _exit(1);
    if (write(ready[1], "r", 1) != 1)
      _exit(1);
    /* Until the parent closes its end (or dies). */
    (void)read(hold[0], &c, 1);
    _exit(0);
  }
  close(ready[1]);
  close(hold[0]);
  assert_int_equal(read(ready[0], &c, 1), 1);
  close(ready[0]);
  *go = hold[1];
  return pid;
}

static void stop_listener(pid_t pid, int go) {
  int st;
  close(go);
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_connect_server(void **state) {
  (void)state;
  char dir[] = "/tmp/test_libpipefile.XXXXXX";
  char path[PATH_MAX];
  uid_t other = 61001; /* the system tests' UID_A */
  uid_t who = 123;
  int fd = 123;
  int go;
  pid_t pid;

  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/s", dir);
  /* Our own listener: trusted by default and by name. */
  pid = listen_as(getuid(), path, &go);
  assert_int_equal(pipefile_connect_server(path, -1, &fd, &who), 0);
  assert_true(fd >= 0);
  assert_int_equal(who, getuid());
  close(fd);
  assert_int_equal(pipefile_connect_server(path, getuid(), &fd, NULL), 0);
  close(fd);
  /* Named as someone else: refused, reported, closed. */
  assert_int_equal(
      pipefile_connect_server(path, (int64_t)getuid() + 1, &fd, &who),
      PIPEFILE_EUNTRUSTED);
  assert_int_equal(fd, -1);
  assert_int_equal(who, getuid());
  stop_listener(pid, go);
  unlink(path);

  if (getuid() != 0) {
    rmdir(dir);
    skip();
  }
  /* Another uid's socket in a root-owned sticky directory: refused. */
  assert_int_equal(chmod(dir, 01777), 0);
  pid = listen_as(other, path, &go);
  assert_int_equal(pipefile_connect(path, &fd), PIPEFILE_EUNTRUSTED);
  assert_int_equal(fd, -1);
  assert_int_equal(pipefile_connect_server(path, -1, &fd, &who),
                   PIPEFILE_EUNTRUSTED);
  assert_int_equal(who, other);
  assert_int_equal(pipefile_connect_server(path, other, &fd, NULL), 0);
  close(fd);
  /* The same uid owning the directory: its daemon, trusted. */
  assert_int_equal(chown(dir, other, other), 0);
  assert_int_equal(pipefile_connect(path, &fd), 0);
  close(fd);
  stop_listener(pid, go);
  unlink(path);
  rmdir(dir);
}

/* pipefile_connect_as: the same rule, the server named as text (the form
 * the CLI prints and the one Windows shares). */
static void test_connect_as(void **state) {
  (void)state;
  char dir[] = "/tmp/test_libpipefile.XXXXXX";
  char path[PATH_MAX];
  char me[32], other_uid[32], want[64], server[PIPEFILE_SERVER_TEXT_MAX];
  int fd = 123;
  int go;
  pid_t pid;

  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/s", dir);
  snprintf(me, sizeof(me), "%lu", (unsigned long)getuid());
  snprintf(other_uid, sizeof(other_uid), "%lu", (unsigned long)getuid() + 1);
  snprintf(want, sizeof(want), "uid %s", me);
  /* A server_user that names nobody: refused before anything is opened
   * (no socket exists yet, so -ENOENT would show a connect attempt). */
  strcpy(server, "stale");
  assert_int_equal(
      pipefile_connect_as(path, "abc", &fd, server, sizeof(server)), -EINVAL);
  assert_int_equal(fd, -1);
  assert_string_equal(server, "");
  assert_int_equal(pipefile_connect_as(path, "4294967295", &fd, NULL, 0),
                   -ERANGE);
  assert_int_equal(pipefile_connect_as(path, NULL, &fd, NULL, 0), -ENOENT);

  pid = listen_as(getuid(), path, &go);
  /* Default rule ("" and NULL alike) and by name: ourselves, trusted. */
  assert_int_equal(pipefile_connect_as(path, "", &fd, server, sizeof(server)),
                   0);
  assert_true(fd >= 0);
  pipefile_close(fd);
  assert_string_equal(server, want);
  assert_int_equal(pipefile_connect_as(path, me, &fd, NULL, 0), 0);
  pipefile_close(fd);
  /* Named as someone else: refused, and who it is said for the message;
   * a too small buffer is cut, still a string. */
  assert_int_equal(
      pipefile_connect_as(path, other_uid, &fd, server, sizeof(server)),
      PIPEFILE_EUNTRUSTED);
  assert_int_equal(fd, -1);
  assert_string_equal(server, want);
  assert_int_equal(pipefile_connect_as(path, other_uid, &fd, server, 3),
                   PIPEFILE_EUNTRUSTED);
  assert_string_equal(server, "ui");
  stop_listener(pid, go);
  unlink(path);
  rmdir(dir);
  pipefile_close(-1); /* ignored */
}

static void test_server_user_check(void **state) {
  (void)state;
  char canon[PIPEFILE_SERVER_TEXT_MAX];
  const char *bad[] = {"", "-1", "abc", "1e3", " 5", "5 ", "+5", "0x10"};

  assert_int_equal(pipefile_server_user_check("61001", canon, sizeof(canon)),
                   0);
  assert_string_equal(canon, "uid 61001");
  assert_int_equal(pipefile_server_user_check("007", canon, sizeof(canon)), 0);
  assert_string_equal(canon, "uid 7");
  assert_int_equal(pipefile_server_user_check("0", NULL, 0), 0);
  assert_int_equal(pipefile_server_user_check("4294967294", NULL, 0), 0);
  /* (uid_t)-1 means "no uid" to the kernel; more does not fit. */
  assert_int_equal(
      pipefile_server_user_check("4294967295", canon, sizeof(canon)), -ERANGE);
  assert_string_equal(canon, "");
  assert_int_equal(
      pipefile_server_user_check("99999999999999999999999", NULL, 0), -ERANGE);
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    strcpy(canon, "stale");
    assert_int_equal(pipefile_server_user_check(bad[i], canon, sizeof(canon)),
                     -EINVAL);
    assert_string_equal(canon, "");
  }
  assert_int_equal(pipefile_server_user_check(NULL, NULL, 0), -EINVAL);
  /* A user name, from the user database: root is uid 0 everywhere; an
   * unknown name is refused, never taken for the default rule. */
  assert_int_equal(pipefile_server_user_check("root", canon, sizeof(canon)), 0);
  assert_string_equal(canon, "uid 0");
  strcpy(canon, "stale");
  assert_int_equal(
      pipefile_server_user_check("no-such-user-pf9", canon, sizeof(canon)),
      -EINVAL);
  assert_string_equal(canon, "");
}

static void test_strerror(void **state) {
  (void)state;
  /* Each local failure reads differently. */
  const char *m[] = {
      pipefile_strerror(-EPROTO),     pipefile_strerror(-EPIPE),
      pipefile_strerror(-ECONNRESET), pipefile_strerror(PIPEFILE_EWRITE),
      pipefile_strerror(-ENOENT),     pipefile_strerror(PIPEFILE_EUNTRUSTED)};
  for (size_t i = 0; i < 6; i++) {
    assert_non_null(m[i]);
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(m[i], m[j]);
  }
  assert_non_null(strstr(pipefile_strerror(-EPIPE), "short body"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_get_bytes),
      cmocka_unit_test(test_request_get_close_bytes),
      cmocka_unit_test(test_request_stat_bytes),
      cmocka_unit_test(test_request_long_path),
      cmocka_unit_test(test_request_bad_args),
      cmocka_unit_test(test_get_streams_exact_body),
      cmocka_unit_test(test_get_range_and_empty),
      cmocka_unit_test(test_get_body_len_mismatch),
      cmocka_unit_test(test_get_short_body),
      cmocka_unit_test(test_get_error_status),
      cmocka_unit_test(test_get_ebusy_before_request),
      cmocka_unit_test(test_get_write_error),
      cmocka_unit_test(test_get_nonblocking_out),
      cmocka_unit_test(test_pipelined_discard),
      cmocka_unit_test(test_read_body_cb),
      cmocka_unit_test(test_read_get_response_pipelined),
      cmocka_unit_test(test_bad_magic),
      cmocka_unit_test(test_bad_version),
      cmocka_unit_test(test_bad_fields),
      cmocka_unit_test(test_not_pfp_then_close),
      cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_message_sanitized),
      cmocka_unit_test(test_stat),
      cmocka_unit_test(test_connect),
      cmocka_unit_test(test_server_trusted),
      cmocka_unit_test(test_connect_server),
      cmocka_unit_test(test_connect_as),
      cmocka_unit_test(test_server_user_check),
      cmocka_unit_test(test_strerror),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
