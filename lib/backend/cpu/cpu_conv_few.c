/* Convolutions to few channels, our own loops (cpu_conv.h,
 * ngc_cpu_conv_few): the generator's last layer (64 -> 3, 7x7) and, run
 * backwards, the data gradient of its first (3 <- 64). oneDNN 2.6 computes
 * these on its 16-channel blocks with 3 of 16 lanes useful: about 90
 * GFLOP/s on this project's machine, against 400 for a convolution between
 * blocked layers.
 *
 * Each 16-float vector holds P = 16 / L neighbouring positions of one row
 * times the L channels of one channel block (the source's layout, block L:
 * 16 or 8, or 1 for plain NCHW, where a vector is 16 positions of one
 * channel). A tap multiplies it by the weights of those channels, repeated
 * P times (packed once per call, or once while a store keeps them), and accumulates; CO outputs times J
 * vectors stay in registers across all channel blocks and taps, and each
 * output is finally the sum of its L lanes. The sums run in the same order
 * for every thread count; only the split of rows between threads varies. */
#include <string.h>

#include "cpu_conv.h"
#include "cpu_loops.h"

#define VL 16   /* floats a vector */
#define MAX_J 8 /* vectors a segment: CO * J accumulators stay in registers */

typedef float vec __attribute__((vector_size(VL * sizeof(float))));
typedef float vec_u __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float))));

typedef struct few_args {
  const float *x, *wp, *b;
  float *y;
  int64_t cb, h, w, ho, wo, k, pad, L, co; /* cb: channel blocks of x */
} few_args;

/* *v = the vector at input position iw (P positions from iw) of the row at
 * xr, zero where a position lies outside [0, w). */
static inline __attribute__((always_inline)) void load_checked(vec *v, const float *xr,
                                                               int64_t iw, int64_t w,
                                                               int64_t L) {
  const int64_t P = VL / L;
  if (iw >= 0 && iw + P <= w) {
    *v = *(const vec_u *)(xr + iw * L);
    return;
  }
  for (int64_t l = 0; l < VL; l++) {
    const int64_t pos = iw + l / L;
    (*v)[l] = pos >= 0 && pos < w ? xr[pos * L + l % L] : 0.0f;
  }
}

/* The outputs of row (n, oh) at positions [ow0, ow0 + J * P) that lie
 * inside the row, for CO output channels. checked: some input position may
 * fall outside the row (zero padding) or some output past its end. */
static inline __attribute__((always_inline)) void segment(const few_args *a, int64_t n,
                                                          int64_t oh, int64_t ow0, int CO,
                                                          int J, int64_t L, int checked) {
  const int64_t P = VL / L, K = a->k;
  vec acc[4][MAX_J];
  for (int o = 0; o < CO; o++)
    for (int j = 0; j < J; j++) acc[o][j] = (vec){0};
  for (int64_t c = 0; c < a->cb; c++)
    for (int64_t kh = 0; kh < K; kh++) {
      const int64_t ih = oh + kh - a->pad;
      if (ih < 0 || ih >= a->h) continue;
      const float *xr = a->x + ((n * a->cb + c) * a->h + ih) * a->w * L;
      const vec *wk = (const vec *)a->wp + ((c * K + kh) * K) * CO;
      for (int64_t kw = 0; kw < K; kw++, wk += CO) {
        const int64_t iw = ow0 + kw - a->pad;
        for (int j = 0; j < J; j++) {
          vec v;
          if (checked) load_checked(&v, xr, iw + j * P, a->w, L);
          else v = *(const vec_u *)(xr + (iw + j * P) * L);
          for (int o = 0; o < CO; o++) acc[o][j] += wk[o] * v;
        }
      }
    }
  for (int o = 0; o < CO; o++) {
    float *yr = a->y + ((n * a->co + o) * a->ho + oh) * a->wo;
    const float bias = a->b ? a->b[o] : 0.0f;
    for (int j = 0; j < J; j++)
      for (int64_t q = 0; q < P; q++) {
        const int64_t ow = ow0 + j * P + q;
        if (checked && ow >= a->wo) break;
        float s = 0.0f;
        for (int64_t l = q * L; l < (q + 1) * L; l++) s += acc[o][j][l];
        yr[ow] = s + bias;
      }
  }
}

/* J: 8 vectors for up to 3 outputs (24 accumulators, 3 weight vectors and
 * the source vector in AVX-512's 32 registers), 6 for 4. L: the source's
 * channel block, a constant in each copy (the offsets of the loads fold). */
static inline __attribute__((always_inline)) void row_co(const few_args *a, int64_t n,
                                                         int64_t oh, int CO, int64_t L) {
  const int J = CO == 4 ? 6 : 8;
  const int64_t span = J * (VL / L);
  for (int64_t ow0 = 0; ow0 < a->wo; ow0 += span) {
    /* inside when every position read, [ow0 - pad, ow0 + span + k - 1 - pad),
     * lies in the row and every position written in [0, wo) */
    const int inside = ow0 - a->pad >= 0 && ow0 + span + a->k - 1 - a->pad <= a->w &&
                       ow0 + span <= a->wo;
    if (inside) segment(a, n, oh, ow0, CO, J, L, 0);
    else segment(a, n, oh, ow0, CO, J, L, 1);
  }
}

static inline __attribute__((always_inline)) void row_l(const few_args *a, int64_t n,
                                                        int64_t oh, int64_t L) {
  switch (a->co) {
  case 1: row_co(a, n, oh, 1, L); break;
  case 2: row_co(a, n, oh, 2, L); break;
  case 3: row_co(a, n, oh, 3, L); break;
  default: row_co(a, n, oh, 4, L); break;
  }
}

/* co in 1..4 and L in {16, 8, 1} (the backend's blocks), checked by the callers. */
NGC_CPU_CLONES static void few_row(const few_args *a, int64_t n, int64_t oh) {
  switch (a->L) {
  case 16: row_l(a, n, oh, 16); break;
  case 8: row_l(a, n, oh, 8); break;
  default: row_l(a, n, oh, 1); break;
  }
}

negcut_status ngc_cpu_conv_few(ngc_backend *be, int32_t pad, int flip, const ngc_tensor *x,
                               const float *w, const float *b, ngc_tensor *y,
                               ngc_wstore *keep) {
  const int64_t L = ngc_block_of(be, x), ci = x->dim[1], co = y->dim[1];
  const int64_t k = x->dim[2] + 2 * pad - y->dim[2] + 1, cb = ci / L;
  const size_t bytes = (size_t)(cb * k * k * co * VL) * sizeof(float);
  const ngc_cpu_wkey key = {.w = w, .pack = NGC_CPU_PACK_FEW, .pack_dims = {L, k, co, flip}};
  int fresh = 0;
  float *wp = keep ? ngc_cpu_kept(keep, &key, bytes, &fresh) : NULL;
  if (!wp) { /* packed now, for this call only */
    wp = ngc_cpu_side(be, bytes);
    fresh = 1;
  }
  if (!wp) return NEGCUT_ERR_OUT_OF_MEMORY;
  /* wp[c][kh][kw][o] = the vector of channels c * L + l % L of that tap */
  for (int64_t c = 0; c < cb && fresh; c++)
    for (int64_t t = 0; t < k * k; t++)
      for (int64_t o = 0; o < co; o++)
        for (int64_t l = 0; l < VL; l++) {
          const int64_t i = c * L + l % L;
          wp[((c * k * k + t) * co + o) * VL + l] =
              flip ? w[(i * co + o) * k * k + (k * k - 1 - t)] : w[(o * ci + i) * k * k + t];
        }
  const few_args a = {.x = x->data, .wp = wp, .b = b, .y = y->data, .cb = cb,
                      .h = x->dim[2], .w = x->dim[3], .ho = y->dim[2], .wo = y->dim[3],
                      .k = k, .pad = pad, .L = L, .co = co};
  ngc_cpu_of(be)->few_runs++;
  const int64_t rows = y->dim[0] * y->dim[2];
  const int nt = ngc_cpu_nt(be, rows * a.wo * co * ci * k * k / 16);
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t r = 0; r < rows; r++) few_row(&a, r / a.ho, r % a.ho);
  return NEGCUT_OK;
}
