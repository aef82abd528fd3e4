/* PIL-exact bicubic resizing and gray conversion of 8-bit pixels, so that
 * training images match what the reference's torchvision / PIL transforms
 * give (data.h says what is computed). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/data.h"

/* PIL keeps 8-bit resampling sums in int with 32 - 8 - 2 = 22 fraction
 * bits: 8 bits of pixel, 2 of headroom for negative lobes and rounding. */
#define RS_BITS 22

static double cubic(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

/* Per output pixel: first input index, tap count and ksize fixed-point
 * coefficients, for resizing in_size samples to out_size along one axis. */
typedef struct rs_axis {
  int64_t ksize;
  int64_t *first, *count; /* (out) */
  int32_t *k;             /* (out, ksize) */
} rs_axis;

static void rs_axis_free(rs_axis *ax) {
  free(ax->first);
  free(ax->count);
  free(ax->k);
}

static negcut_status rs_axis_make(negcut_ctx *ctx, int64_t in_size, int64_t out_size,
                                  rs_axis *ax) {
  memset(ax, 0, sizeof *ax);
  double scale = (double)in_size / (double)out_size;
  double fscale = scale < 1.0 ? 1.0 : scale; /* widen the kernel when shrinking */
  double support = 2.0 * fscale;
  double inv = 1.0 / fscale; /* multiplied, not divided: PIL's rounding */
  ax->ksize = (int64_t)ceil(support) * 2 + 1;
  double *w = malloc((size_t)ax->ksize * sizeof *w);
  ax->first = malloc((size_t)out_size * sizeof *ax->first);
  ax->count = malloc((size_t)out_size * sizeof *ax->count);
  ax->k = calloc((size_t)out_size * (size_t)ax->ksize, sizeof *ax->k);
  if (!w || !ax->first || !ax->count || !ax->k) {
    free(w);
    rs_axis_free(ax);
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "bicubic resize: out of memory");
  }
  for (int64_t o = 0; o < out_size; o++) {
    double center = ((double)o + 0.5) * scale;
    /* Truncation toward zero, then clamping, as PIL rounds its bounds. */
    int64_t lo = (int64_t)(center - support + 0.5);
    if (lo < 0) lo = 0;
    int64_t hi = (int64_t)(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    int64_t n = hi - lo;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
      w[i] = cubic(((double)(i + lo) - center + 0.5) * inv);
      sum += w[i];
    }
    int32_t *k = ax->k + o * ax->ksize;
    for (int64_t i = 0; i < n; i++) {
      double v = sum != 0.0 ? w[i] / sum : w[i];
      v *= (double)(1 << RS_BITS);
      k[i] = (int32_t)(v < 0.0 ? v - 0.5 : v + 0.5); /* round half away from 0 */
    }
    ax->first[o] = lo;
    ax->count[o] = n;
  }
  free(w);
  return NEGCUT_OK;
}

static inline uint8_t rs_clip8(int64_t acc) {
  int64_t v = acc >> RS_BITS; /* floor, as PIL's arithmetic shift */
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* dst (rows, dw, c) from src (rows, sw, c) along x. */
static void rs_horizontal(const uint8_t *src, int64_t sw, int64_t rows, int64_t c,
                          const rs_axis *ax, uint8_t *dst, int64_t dw) {
  for (int64_t y = 0; y < rows; y++) {
    const uint8_t *s = src + y * sw * c;
    uint8_t *d = dst + y * dw * c;
    for (int64_t x = 0; x < dw; x++) {
      const int32_t *k = ax->k + x * ax->ksize;
      const uint8_t *p = s + ax->first[x] * c;
      for (int64_t ch = 0; ch < c; ch++) {
        int64_t acc = (int64_t)1 << (RS_BITS - 1);
        for (int64_t i = 0; i < ax->count[x]; i++) acc += (int64_t)p[i * c + ch] * k[i];
        d[x * c + ch] = rs_clip8(acc);
      }
    }
  }
}

/* dst (dh, w, c) from src (sh, w, c) along y. */
static void rs_vertical(const uint8_t *src, int64_t w, int64_t c, const rs_axis *ax,
                        uint8_t *dst, int64_t dh) {
  int64_t row = w * c;
  for (int64_t y = 0; y < dh; y++) {
    const int32_t *k = ax->k + y * ax->ksize;
    const uint8_t *s = src + ax->first[y] * row;
    uint8_t *d = dst + y * row;
    for (int64_t j = 0; j < row; j++) {
      int64_t acc = (int64_t)1 << (RS_BITS - 1);
      for (int64_t i = 0; i < ax->count[y]; i++) acc += (int64_t)s[i * row + j] * k[i];
      d[j] = rs_clip8(acc);
    }
  }
}

negcut_status ngc_resize_bicubic(negcut_ctx *ctx, const uint8_t *src, int64_t sw, int64_t sh,
                                 int64_t channels, uint8_t *dst, int64_t dw, int64_t dh) {
  if (!src || !dst || sw < 1 || sh < 1 || dw < 1 || dh < 1 || channels < 1 || channels > 4 ||
      sw > (1 << 20) || sh > (1 << 20) || dw > (1 << 20) || dh > (1 << 20))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "bicubic resize: bad arguments (%lldx%lld -> %lldx%lld, %lld channels)",
                     (long long)sw, (long long)sh, (long long)dw, (long long)dh,
                     (long long)channels);
  negcut_status st = NEGCUT_OK;
  rs_axis ax = {0}, ay = {0};
  uint8_t *tmp = NULL;
  int horiz = dw != sw, vert = dh != sh;
  if (!horiz && !vert) {
    memcpy(dst, src, (size_t)(sw * sh * channels));
    return NEGCUT_OK;
  }
  if (horiz && (st = rs_axis_make(ctx, sw, dw, &ax)) != NEGCUT_OK) goto done;
  if (vert && (st = rs_axis_make(ctx, sh, dh, &ay)) != NEGCUT_OK) goto done;
  if (!vert) {
    rs_horizontal(src, sw, sh, channels, &ax, dst, dw);
    goto done;
  }
  if (!horiz) {
    rs_vertical(src, sw, channels, &ay, dst, dh);
    goto done;
  }
  /* Only the source rows the vertical pass reads go through the horizontal
   * one (as PIL does; the result is the same either way). */
  int64_t y0 = ay.first[0];
  int64_t y1 = ay.first[dh - 1] + ay.count[dh - 1];
  tmp = malloc((size_t)((y1 - y0) * dw * channels));
  if (!tmp) {
    st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "bicubic resize: out of memory");
    goto done;
  }
  rs_horizontal(src + y0 * sw * channels, sw, y1 - y0, channels, &ax, tmp, dw);
  for (int64_t y = 0; y < dh; y++) ay.first[y] -= y0;
  rs_vertical(tmp, dw, channels, &ay, dst, dh);
done: /* success and failure alike */
  free(tmp);
  rs_axis_free(&ax);
  rs_axis_free(&ay);
  return st;
}

void ngc_rgb_to_gray(const uint8_t *rgb, int64_t npix, uint8_t *gray) {
  for (int64_t i = 0; i < npix; i++) {
    const uint8_t *p = rgb + 3 * i;
    gray[i] = (uint8_t)(((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u +
                         (uint32_t)p[2] * 7471u + 0x8000u) >> 16);
  }
}

int64_t ngc_round_to_4(int64_t side) {
  int64_t q = side / 4, r = side % 4;
  if (r > 2 || (r == 2 && (q & 1))) q++;
  return q * 4;
}
