/* fuzz_config.c - the config loader on any text: config_parse (the whole
 * of config.c's table, value parsers and cross-key rules over ini_strict.c
 * and inih's string reader), and ini_strict_parse alone on the raw bytes,
 * NUL bytes included (config_load hands it a file's bytes that way;
 * config_parse stops at the first NUL).
 *
 * User and group names are looked up as the daemon does (NSS); nothing
 * else leaves the process: config_print writes to memory.
 *
 * Properties: a result is 0 with no error text, or UV_EINVAL with one line
 * "fuzz.ini:LINE: ..." ; a config that loads prints (config_print) as a
 * file that loads again and prints the same, and no printed line is longer
 * than the reader accepts. */
#include <string.h>

#include <uv.h>

#include "config.h"
#include "fuzz.h"
#include "ini_strict.h"

#define NAME "fuzz.ini"

static char *print(const struct config *c, size_t *len) {
  char *buf = NULL;
  FILE *f = open_memstream(&buf, len);
  CHECK(f != NULL);
  config_print(c, f);
  CHECK(fclose(f) == 0);
  return buf;
}

static void check_error(int r, const char *err) {
  CHECK(r == 0 || r == UV_EINVAL);
  if (r == 0) {
    CHECK(err[0] == '\0');
    return;
  }
  CHECK(strncmp(err, NAME ":", sizeof(NAME)) == 0);
  CHECK(strchr(err, '\n') == NULL);
}

static void check_config(const char *text) {
  struct config c, again;
  char err[CONFIG_ERR_MAX];
  char *one, *two;
  size_t n1, n2;
  int r;

  r = config_parse(&c, NAME, text, err, sizeof(err));
  check_error(r, err);
  if (r != 0)
    return;
  one = print(&c, &n1);
  for (const char *l = one; *l != '\0';) {
    const char *e = strchr(l, '\n');
    CHECK(e != NULL && (size_t)(e - l) <= CONFIG_LINE_MAX);
    l = e + 1;
  }
  r = config_parse(&again, NAME, one, err, sizeof(err));
  if (r != 0)
    fprintf(stderr, "printed config does not load: %s\n%s", err, one);
  CHECK(r == 0);
  two = print(&again, &n2);
  CHECK(n1 == n2 && memcmp(one, two, n1) == 0);
  free(one);
  free(two);
}

/* ini_strict with a handler that knows every section and takes every key:
 * the reader's own rules only. */
static int any_section(void *user, const char *section) {
  (void)user;
  (void)section;
  return 1;
}

static int any_key(void *user, unsigned line, const char *section,
                   const char *key, const char *value, char *why, size_t wl) {
  unsigned *lines = user;
  (void)why;
  (void)wl;
  CHECK(line > *lines || line == *lines);
  CHECK(strlen(section) <= INI_STRICT_LINE_MAX);
  CHECK(key[0] != '\0' && strlen(key) + strlen(value) <= INI_STRICT_LINE_MAX);
  *lines = line;
  return 0;
}

static void check_reader(const uint8_t *data, size_t size) {
  unsigned last = 0;
  const struct ini_strict_handler h = {
      .section_known = any_section, .on_key = any_key, .user = &last};
  char err[CONFIG_ERR_MAX];
  int r =
      ini_strict_parse(NAME, (const char *)data, size, &h, err, sizeof(err));
  check_error(r, err);
  if (memchr(data, '\0', size) != NULL)
    CHECK(r == UV_EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);

  CHECK(text != NULL);
  memcpy(text, data, size);
  text[size] = '\0';
  check_config(text);
  check_reader(data, size);
  free(text);
  return 0;
}
