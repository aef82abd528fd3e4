/* EXIF orientation: finding tag 0x0112 in a JPEG's APP1 Exif segment, and
 * turning decoded pixels upright. The parser trusts no offset or count in
 * the file: every read is bounds-checked in 64-bit arithmetic first, and
 * anything odd means "no orientation" rather than a refused image. */
#include <string.h>

#include "image_codec.h"

typedef struct tiff {
  const uint8_t *p;
  uint64_t n;
  int le; /* "II": little-endian; "MM": big-endian */
} tiff;

/* Callers check off + 2 (or + 4) <= n first. */
static unsigned rd16(const tiff *t, uint64_t off) {
  const uint8_t *b = t->p + off;
  return t->le ? (unsigned)b[0] | (unsigned)b[1] << 8 : (unsigned)b[0] << 8 | (unsigned)b[1];
}

static uint32_t rd32(const tiff *t, uint64_t off) {
  const uint8_t *b = t->p + off;
  return t->le ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 24
               : (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
                     (uint32_t)b[3];
}

/* The TIFF structure inside the Exif segment: header, then IFD0's entries
 * of 12 bytes (tag, type, count, value or offset). */
static int tiff_orientation(const uint8_t *p, uint64_t n) {
  tiff t = {p, n, 0};
  if (n < 8) return 1;
  if (p[0] == 'I' && p[1] == 'I')
    t.le = 1;
  else if (!(p[0] == 'M' && p[1] == 'M'))
    return 1;
  if (rd16(&t, 2) != 42) return 1;
  uint64_t ifd = rd32(&t, 4);
  if (ifd + 2 > n) return 1;
  unsigned count = rd16(&t, ifd);
  for (unsigned i = 0; i < count; i++) {
    uint64_t e = ifd + 2 + 12 * (uint64_t)i;
    if (e + 12 > n) return 1;
    if (rd16(&t, e) != 0x0112) continue;
    unsigned type = rd16(&t, e + 2);
    uint32_t cnt = rd32(&t, e + 4);
    /* SHORT as the standard says; a LONG from a sloppy writer is harmless. */
    uint32_t v = type == 3 ? rd16(&t, e + 8) : type == 4 ? rd32(&t, e + 8) : 0;
    return cnt >= 1 && v >= 1 && v <= 8 ? (int)v : 1;
  }
  return 1;
}

int ngc_image_exif_orientation(const uint8_t *d, size_t size) {
  uint64_t n = size, pos = 2; /* after SOI */
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return 1;
  while (pos + 2 <= n) {
    if (d[pos] != 0xFF) return 1;
    unsigned marker = d[pos + 1];
    if (marker == 0xFF) { /* fill byte before a marker */
      pos++;
      continue;
    }
    pos += 2;
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue; /* no length */
    if (marker == 0xDA || marker == 0xD9) return 1; /* scan data or end: no EXIF before */
    if (pos + 2 > n) return 1;
    uint64_t len = (uint64_t)d[pos] << 8 | d[pos + 1]; /* includes its own 2 bytes */
    if (len < 2 || len > n - pos) return 1;
    if (marker == 0xE1 && len >= 2 + 6 && memcmp(d + pos + 2, "Exif\0\0", 6) == 0)
      return tiff_orientation(d + pos + 8, len - 8);
    pos += len;
  }
  return 1;
}

negcut_status ngc_image_apply_orientation(negcut_ctx *ctx, negcut_image **img,
                                          int orientation) {
  if (orientation <= 1 || orientation > 8) return NEGCUT_OK;
  const negcut_image *in = *img;
  const uint64_t w = in->width, h = in->height;
  int swap = orientation >= 5; /* 5..8 exchange width and height */
  negcut_image *o = NULL;
  negcut_status st = ngc_image_alloc(ctx, "EXIF orientation", swap ? in->height : in->width,
                                     swap ? in->width : in->height, UINT64_MAX, &o);
  if (st != NEGCUT_OK) return st;
  const uint8_t *src = in->pixels;
  const size_t ss = in->stride_bytes;
  for (uint64_t y = 0; y < o->height; y++) {
    uint8_t *row = o->pixels + y * o->stride_bytes;
    for (uint64_t x = 0; x < o->width; x++) {
      /* (sx, sy): the stored pixel shown at (x, y) once upright. */
      uint64_t sx, sy;
      switch (orientation) {
      case 2: sx = w - 1 - x; sy = y; break;         /* mirrored left-right */
      case 3: sx = w - 1 - x; sy = h - 1 - y; break; /* turned 180 */
      case 4: sx = x; sy = h - 1 - y; break;         /* mirrored top-bottom */
      case 5: sx = y; sy = x; break;                 /* transposed */
      case 6: sx = y; sy = h - 1 - x; break;         /* needs 90 clockwise */
      case 7: sx = w - 1 - y; sy = h - 1 - x; break; /* transversed */
      default: sx = w - 1 - y; sy = x; break;        /* 8: needs 90 counter-clockwise */
      }
      memcpy(row + x * 3, src + sy * ss + sx * 3, 3);
    }
  }
  negcut_image_free(*img);
  *img = o;
  return NEGCUT_OK;
}
