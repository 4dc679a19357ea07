/* compat.h - the .NET documentation sample's named-pipe protocol (its
 * StreamString class), pure: frames, the greeting, the file name's UTF-16
 * and the file's text as File.ReadAllText reads it. No I/O: conn.c runs the
 * exchange and serve.c opens the file as the client.
 *
 * A frame is a u16 big-endian byte length, then that many bytes of
 * UTF-16LE text (no BOM). The exchange: the server sends the greeting
 * frame, reads one frame (the file name), sends one frame (the file's text,
 * or an error text: the protocol has no other channel) and closes.
 * Everything here is pure but compat_read_file(), the platform's. */
#ifndef PIPEFILED_COMPAT_H
#define PIPEFILED_COMPAT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proto.h"

#define COMPAT_GREETING "I am the one true server!"
#define COMPAT_HDR_LEN 2        /* the u16 length */
#define COMPAT_FRAME_MAX 65535u /* text bytes one frame can say */
/* The largest text that fits: whole UTF-16 units, so 65534 bytes. */
#define COMPAT_TEXT_MAX (COMPAT_FRAME_MAX - COMPAT_FRAME_MAX % 2)
/* Bytes of a file that may still fit: a UTF-8 BOM and three bytes for every
 * UTF-16 unit (no encoding takes more per unit). A larger file cannot fit
 * and is refused without being read. */
#define COMPAT_FILE_MAX (3 + 3 * (COMPAT_TEXT_MAX / 2)) /* 98304 */
/* A file name's frame: every byte of a PFP/1 path as one UTF-16 unit. */
#define COMPAT_NAME_MAX (2 * PFP_PATH_MAX)
#define COMPAT_FRAME_BUF (COMPAT_HDR_LEN + COMPAT_FRAME_MAX)

/* What a file's bytes are taken to be (File.ReadAllText: UTF-8 unless a
 * byte-order mark says otherwise). */
enum compat_encoding { COMPAT_UTF8, COMPAT_UTF16LE, COMPAT_UTF16BE };

/* The greeting frame (header included) and its length. */
const uint8_t *compat_greeting(size_t *len);

/* Write the header of a frame of text_len bytes (<= COMPAT_FRAME_MAX) at
 * out[0..1]. */
void compat_frame_header(uint8_t *out, size_t text_len);

/* The text length a frame header says. */
size_t compat_frame_len(const uint8_t *hdr);

/* Decode a file name frame's text (len bytes of UTF-16LE) into out
 * (outsz bytes, NUL-terminated UTF-8). Returns the UTF-8 length, or
 * UV_EILSEQ for an odd length, a lone surrogate or U+0000 (no client writes
 * those: the sample's encoder replaces lone surrogates), or
 * UV_ENAMETOOLONG when out is too small. */
int compat_name_decode(const uint8_t *in, size_t len, char *out, size_t outsz);

/* The encoding a file's first bytes declare, and the length of the mark
 * (0: none, UTF-8). UTF-8 EF BB BF, UTF-16LE FF FE and UTF-16BE FE FF are
 * honoured; nothing else is (a UTF-32 mark reads as UTF-16LE text). */
enum compat_encoding compat_bom(const uint8_t *in, size_t len, size_t *bom);

/* Decode len bytes of a file (its BOM included) as File.ReadAllText does,
 * writing the text as UTF-16LE into out (outsz bytes; what does not fit is
 * not written). Invalid UTF-8 becomes U+FFFD, one for each maximal subpart
 * (Unicode's "best practice", as .NET's decoder does); in UTF-16 a lone
 * surrogate or an odd last byte becomes U+FFFD. Returns the bytes the whole
 * text takes as UTF-16LE, which may exceed outsz: then out holds a prefix
 * and the text does not fit. */
size_t compat_text_decode(const uint8_t *in, size_t len, uint8_t *out,
                          size_t outsz);

/* ---- the one platform call (compat_linux.c, compat_win.c) ---- */

/* Read from the start of file fd (opened by resolve_open) into buf until
 * cap bytes or the end of the file. Returns 0 with *got set, or a UV_E*
 * code. A regular file's read may wait for the disk, as sendfile does for
 * PFP/1; never for another process (resolve_open refuses leased files). */
int compat_read_file(uv_os_fd_t fd, uint8_t *buf, size_t cap, size_t *got);

#endif
