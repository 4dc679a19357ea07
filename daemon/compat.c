/* compat.c - the .NET sample's frames and text encodings; see compat.h.
 *
 * Map: frames and the greeting; the file name (UTF-16LE -> UTF-8, strict);
 * the file's text (BOM, then UTF-8 or UTF-16 -> UTF-16LE, lenient as
 * File.ReadAllText is). */
#include "compat.h"

#include <string.h>
#include <uv.h>

#define REPLACEMENT 0xFFFDu

/* ---- frames --------------------------------------------------------- */

void compat_frame_header(uint8_t *out, size_t text_len) {
  out[0] = (uint8_t)(text_len >> 8);
  out[1] = (uint8_t)text_len;
}

size_t compat_frame_len(const uint8_t *hdr) {
  return (size_t)hdr[0] << 8 | hdr[1];
}

const uint8_t *compat_greeting(size_t *len) {
  /* A constant (workers share it): the ASCII text, one UTF-16LE unit per
   * character. */
  static const uint8_t frame[] = {
      0,      2 * (sizeof(COMPAT_GREETING) - 1),
#define C(ch) ch, 0
      C('I'), C(' '),
      C('a'), C('m'),
      C(' '), C('t'),
      C('h'), C('e'),
      C(' '), C('o'),
      C('n'), C('e'),
      C(' '), C('t'),
      C('r'), C('u'),
      C('e'), C(' '),
      C('s'), C('e'),
      C('r'), C('v'),
      C('e'), C('r'),
      C('!'),
#undef C
  };
  _Static_assert(sizeof(frame) == 2 + 2 * (sizeof(COMPAT_GREETING) - 1),
                 "the greeting frame spells COMPAT_GREETING");
  *len = sizeof(frame);
  return frame;
}

/* ---- the file name ---------------------------------------------------- */

/* Append code point cp as UTF-8 to out (outsz bytes, one kept for the
 * NUL) at *o. Returns 0 or UV_ENAMETOOLONG. */
static int put_utf8(char *out, size_t outsz, size_t *o, uint32_t cp) {
  uint8_t b[4];
  size_t n;

  if (cp < 0x80) {
    b[0] = (uint8_t)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (uint8_t)(0xC0 | cp >> 6);
    b[1] = (uint8_t)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (uint8_t)(0xE0 | cp >> 12);
    b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    b[2] = (uint8_t)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    b[0] = (uint8_t)(0xF0 | cp >> 18);
    b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    b[3] = (uint8_t)(0x80 | (cp & 0x3F));
    n = 4;
  }
  if (*o + n + 1 > outsz)
    return UV_ENAMETOOLONG;
  memcpy(out + *o, b, n);
  *o += n;
  return 0;
}

int compat_name_decode(const uint8_t *in, size_t len, char *out, size_t outsz) {
  size_t i = 0, o = 0;
  int rc;

  if (outsz == 0)
    return UV_ENAMETOOLONG;
  out[0] = '\0';
  if (len % 2 != 0)
    return UV_EILSEQ;
  while (i < len) {
    uint32_t u = (uint32_t)in[i] | (uint32_t)in[i + 1] << 8, cp = u;
    i += 2;
    if (u >= 0xDC00 && u <= 0xDFFF)
      goto bad; /* a low surrogate with no high one before it */
    if (u >= 0xD800 && u <= 0xDBFF) {
      uint32_t lo;
      if (i == len)
        goto bad;
      lo = (uint32_t)in[i] | (uint32_t)in[i + 1] << 8;
      if (lo < 0xDC00 || lo > 0xDFFF)
        goto bad;
      i += 2;
      cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
    }
    /* A NUL would end the name early for the kernel: refused, as PFP/1
     * refuses one. */
    if (cp == 0)
      goto bad;
    rc = put_utf8(out, outsz, &o, cp);
    if (rc != 0) {
      out[0] = '\0';
      return rc;
    }
  }
  out[o] = '\0';
  return (int)o;
bad:
  out[0] = '\0';
  return UV_EILSEQ;
}

/* ---- the file's text -------------------------------------------------- */

enum compat_encoding compat_bom(const uint8_t *in, size_t len, size_t *bom) {
  *bom = 0;
  if (len >= 3 && in[0] == 0xEF && in[1] == 0xBB && in[2] == 0xBF) {
    *bom = 3;
    return COMPAT_UTF8;
  }
  if (len >= 2 && in[0] == 0xFF && in[1] == 0xFE) {
    *bom = 2;
    return COMPAT_UTF16LE;
  }
  if (len >= 2 && in[0] == 0xFE && in[1] == 0xFF) {
    *bom = 2;
    return COMPAT_UTF16BE;
  }
  return COMPAT_UTF8;
}

/* The output so far: where it goes, its room, and the bytes the whole text
 * takes (counted on past the room). */
struct out16 {
  uint8_t *p;
  size_t room;
  size_t len;
};

static void put_unit(struct out16 *o, uint32_t u) {
  if (o->len + 2 <= o->room) {
    o->p[o->len] = (uint8_t)u;
    o->p[o->len + 1] = (uint8_t)(u >> 8);
  }
  o->len += 2;
}

static void put_cp(struct out16 *o, uint32_t cp) {
  if (cp < 0x10000) {
    put_unit(o, cp);
    return;
  }
  cp -= 0x10000;
  put_unit(o, 0xD800 + (cp >> 10));
  put_unit(o, 0xDC00 + (cp & 0x3FF));
}

/* UTF-8, with U+FFFD for each maximal subpart of an ill-formed sequence:
 * the longest prefix of a well-formed sequence (Unicode 15, 3.9, Table
 * 3-7), or a single byte that starts none. */
static void decode_utf8(const uint8_t *in, size_t len, struct out16 *o) {
  size_t i = 0;

  while (i < len) {
    uint8_t b = in[i];
    uint32_t cp;
    size_t need, k;
    uint8_t lo = 0x80, hi = 0xBF; /* the second byte's range */

    if (b < 0x80) {
      put_unit(o, b);
      i++;
      continue;
    }
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
      cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 2;
      cp = b & 0x0F;
      if (b == 0xE0)
        lo = 0xA0; /* no overlong forms */
      else if (b == 0xED)
        hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3;
      cp = b & 0x07;
      if (b == 0xF0)
        lo = 0x90; /* no overlong forms */
      else if (b == 0xF4)
        hi = 0x8F; /* nothing past U+10FFFF */
    } else {
      /* 80..C1, F5..FF start no sequence. */
      put_unit(o, REPLACEMENT);
      i++;
      continue;
    }
    for (k = 1; k <= need; k++) {
      uint8_t c;
      if (i + k >= len)
        break;
      c = in[i + k];
      if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF))
        break;
      cp = cp << 6 | (c & 0x3F);
    }
    if (k <= need) {
      /* Bytes i .. i+k-1 are a maximal subpart: one U+FFFD, and the byte
       * that broke it starts afresh. */
      put_unit(o, REPLACEMENT);
      i += k;
      continue;
    }
    put_cp(o, cp);
    i += need + 1;
  }
}

/* UTF-16 of either order; a lone surrogate or an odd last byte becomes
 * U+FFFD. */
static void decode_utf16(const uint8_t *in, size_t len, int big,
                         struct out16 *o) {
  size_t i = 0;

  while (i + 1 < len) {
    uint32_t u = big ? (uint32_t)in[i] << 8 | in[i + 1]
                     : (uint32_t)in[i + 1] << 8 | in[i];
    i += 2;
    if (u >= 0xD800 && u <= 0xDBFF && i + 1 < len) {
      uint32_t lo = big ? (uint32_t)in[i] << 8 | in[i + 1]
                        : (uint32_t)in[i + 1] << 8 | in[i];
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        put_unit(o, u);
        put_unit(o, lo);
        i += 2;
        continue;
      }
    }
    put_unit(o, u >= 0xD800 && u <= 0xDFFF ? REPLACEMENT : u);
  }
  if (i < len)
    put_unit(o, REPLACEMENT);
}

size_t compat_text_decode(const uint8_t *in, size_t len, uint8_t *out,
                          size_t outsz) {
  struct out16 o = {.p = out, .room = outsz, .len = 0};
  size_t bom;
  enum compat_encoding e = compat_bom(in, len, &bom);

  if (e == COMPAT_UTF8)
    decode_utf8(in + bom, len - bom, &o);
  else
    decode_utf16(in + bom, len - bom, e == COMPAT_UTF16BE, &o);
  return o.len;
}
