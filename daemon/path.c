/* path.c - lexical path rules; see path.h. */
#include "path.h"

#include <string.h>
#include <uv.h>

int path_normalize(const char *in, size_t len, char *out, size_t outsz) {
  size_t o = 0; /* bytes written to out */
  size_t i = 0;

  if (outsz == 0)
    return UV_ENAMETOOLONG;
  out[0] = '\0';
  if (memchr(in, '\0', len) != NULL)
    return UV_EPROTO;

  while (i < len) {
    while (i < len && in[i] == '/')
      i++;
    size_t start = i;
    while (i < len && in[i] != '/')
      i++;
    size_t clen = i - start;
    if (clen == 0 || (clen == 1 && in[start] == '.'))
      continue;
    if (clen == 2 && in[start] == '.' && in[start + 1] == '.') {
      if (o == 0) {
        out[0] = '\0';
        return UV_EXDEV;
      }
      /* Drop the last component written. */
      while (o > 0 && out[o - 1] != '/')
        o--;
      if (o > 0)
        o--; /* the separator before it */
      continue;
    }
    size_t need = clen + (o > 0 ? 1 : 0);
    if (o + need + 1 > outsz) {
      out[0] = '\0';
      return UV_ENAMETOOLONG;
    }
    if (o > 0)
      out[o++] = '/';
    memcpy(out + o, in + start, clen);
    o += clen;
  }
  if (o == 0) {
    if (outsz < 2)
      return UV_ENAMETOOLONG;
    out[o++] = '.';
  }
  out[o] = '\0';
  return 0;
}
