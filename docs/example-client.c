/* example-client.c - a program of one's own on libpipefile (pipefile.h):
 * connect to pipefiled (checking who serves the socket before anything is
 * sent), STAT a file, then GET it to standard output, both on one
 * connection. The daemon opens the file as the user running this.
 *
 * Build it against an installed library (`make install install-dev`):
 *   cc -o example-client example-client.c \
 *     $(pkg-config --cflags --libs pipefile)
 * Run it:
 *   ./example-client [SOCKET] PATH > copy
 *
 * Exit status: 0, or 1 when anything failed (a message says what). */
#define _POSIX_C_SOURCE 200809L /* fileno(), also under -std=c11 */

#include <pipefile.h>

#include <inttypes.h>
#include <stdio.h>

int main(int argc, char **argv) {
  const char *sock = PIPEFILE_DEFAULT_SOCKET;
  const char *path;
  struct pipefile_result res;
  int fd = -1;
  int rc = 1;
  int r;

  if (argc == 2) {
    path = argv[1];
  } else if (argc == 3) {
    sock = argv[1];
    path = argv[2];
  } else {
    fprintf(stderr, "usage: example-client [SOCKET] PATH\n");
    return 2;
  }

  /* The default trust rule: the server must run as root, as the owner of
   * the socket's directory, or as ourselves. pipefile_connect_as names one
   * server instead. */
  r = pipefile_connect(sock, &fd);
  if (r < 0) {
    fprintf(stderr, "example-client: %s: %s\n", sock, pipefile_strerror(r));
    goto out;
  }

  /* Two kinds of failure: r < 0, nothing usable came back (close the
   * connection); r == 0 with a status other than PFP_OK, the server
   * refused and said why (the connection stays usable). */
  r = pipefile_stat(fd, path, 0, &res);
  if (r < 0) {
    fprintf(stderr, "example-client: %s: %s\n", path, pipefile_strerror(r));
    goto out;
  }
  if (res.status != PFP_OK) {
    fprintf(stderr, "example-client: %s: %s\n", path,
            res.msg[0] ? res.msg : pfp_status_message(res.status));
    goto out;
  }
  fprintf(stderr, "example-client: %s: %" PRIu64 " bytes, mtime %" PRId64 "\n",
          path, res.file_size, res.mtime);

  /* The whole file (offset 0, length 0), straight into standard output;
   * PFP_OP_CLOSE: the server closes after this answer, as we are done. */
  fflush(stdout);
  r = pipefile_get(fd, path, 0, 0, PFP_OP_CLOSE, fileno(stdout), &res);
  if (r < 0) {
    fprintf(stderr, "example-client: %s: %s\n", path, pipefile_strerror(r));
    goto out;
  }
  if (res.status != PFP_OK) {
    fprintf(stderr, "example-client: %s: %s\n", path,
            res.msg[0] ? res.msg : pfp_status_message(res.status));
    goto out;
  }
  rc = 0;
out:
  pipefile_close(fd);
  return rc;
}
