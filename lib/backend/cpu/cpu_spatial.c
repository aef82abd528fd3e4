/* CPU spatial slots: padding (zero, reflect, replicate), horizontal flip,
 * channel concatenation. Row copies; parallel over (plane, row). Pads and
 * the flip take either layout; concat only plain tensors. */
#include <string.h>

#include "cpu_loops.h"

/* Source index of padded position i (in [-pad, n + pad)) along an axis of
 * length n, or -1 for a zero. Reflection repeats for pads >= n, which
 * PyTorch refuses and lib/ops never sends, so that no index leaves [0, n). */
static inline int64_t pad_src(ngc_pad_mode mode, int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  if (mode == NGC_PAD_ZERO) return -1;
  if (mode == NGC_PAD_REPLICATE || n == 1) return i < 0 ? 0 : n - 1;
  int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

/* Pads and flips see an activation as planes (n, c / L) of H rows of W
 * pixels of L floats: L = 1 for plain NCHW, the block for a blocked tensor.
 * A pixel moves as a whole. */
static inline void copy_px(float *restrict dst, const float *restrict src, int64_t L) {
  for (int64_t l = 0; l < L; l++) dst[l] = src[l];
}

static negcut_status cpu_pad_fwd(ngc_backend *be, ngc_pad_mode mode, int32_t pad,
                                 const ngc_tensor *x, ngc_tensor *y) {
  const int64_t L = ngc_block_of(be, x), planes = ngc_d(x, 0) * ngc_d(x, 1) / L;
  const int64_t H = ngc_d(x, 2), W = ngc_d(x, 3);
  const int64_t Ho = ngc_d(y, 2), Wo = ngc_d(y, 3), p = pad;
  const float *px = x->data; // (N, C/L, H, W, L)
  float *py = y->data;       // (N, C/L, H + 2p, W + 2p, L)
  ngc_cpu_enter(be);
#pragma omp parallel for collapse(2) schedule(static) num_threads(ngc_cpu_nt(be, planes * Ho * Wo * L))
  for (int64_t pl = 0; pl < planes; pl++) {
    for (int64_t oh = 0; oh < Ho; oh++) {
      float *yr = py + (pl * Ho + oh) * Wo * L;
      int64_t sh = pad_src(mode, oh - p, H);
      if (sh < 0) {
        memset(yr, 0, (size_t)(Wo * L) * sizeof *yr);
        continue;
      }
      const float *xr = px + (pl * H + sh) * W * L;
      for (int64_t j = 0; j < p; j++) {
        int64_t s = pad_src(mode, j - p, W);
        if (s < 0) memset(yr + j * L, 0, (size_t)L * sizeof *yr);
        else copy_px(yr + j * L, xr + s * L, L);
      }
      memcpy(yr + p * L, xr, (size_t)(W * L) * sizeof *yr);
      for (int64_t j = p + W; j < Wo; j++) {
        int64_t s = pad_src(mode, j - p, W);
        if (s < 0) memset(yr + j * L, 0, (size_t)L * sizeof *yr);
        else copy_px(yr + j * L, xr + s * L, L);
      }
    }
  }
  return NEGCUT_OK;
}

static inline void add_px(float *restrict dst, const float *restrict src, int64_t L) {
  for (int64_t l = 0; l < L; l++) dst[l] += src[l];
}

/* dxr (=/+=) the contributions of one padded row dyr: its middle lands
 * in place, its border pixels on their mirrored/replicated sources. */
static inline void pad_row_bwd(ngc_pad_mode mode, int64_t p, int64_t W, int64_t L,
                               const float *restrict dyr, float *restrict dxr,
                               int assign) {
  if (assign) {
    memcpy(dxr, dyr + p * L, (size_t)(W * L) * sizeof *dxr);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < W * L; i++) dxr[i] += dyr[p * L + i];
  }
  if (mode == NGC_PAD_ZERO) return;
  for (int64_t j = 0; j < p; j++) add_px(dxr + pad_src(mode, j - p, W) * L, dyr + j * L, L);
  for (int64_t j = p + W; j < W + 2 * p; j++)
    add_px(dxr + pad_src(mode, j - p, W) * L, dyr + j * L, L);
}

/* Each dx row gathers its own contributions (its padded row, then the border
 * rows that map onto it, in order), so rows are independent and the sums do
 * not depend on the thread count. */
static negcut_status cpu_pad_bwd(ngc_backend *be, ngc_pad_mode mode, int32_t pad,
                                 const ngc_tensor *dy, ngc_tensor *dx) {
  const int64_t L = ngc_block_of(be, dx), planes = ngc_d(dx, 0) * ngc_d(dx, 1) / L;
  const int64_t H = ngc_d(dx, 2), W = ngc_d(dx, 3);
  const int64_t Ho = ngc_d(dy, 2), Wo = ngc_d(dy, 3), p = pad;
  const float *pdy = dy->data; // (N, C/L, H + 2p, W + 2p, L)
  float *pdx = dx->data;       // (N, C/L, H, W, L)
  ngc_cpu_enter(be);
#pragma omp parallel for collapse(2) schedule(static) num_threads(ngc_cpu_nt(be, planes * Ho * Wo * L))
  for (int64_t pl = 0; pl < planes; pl++) {
    for (int64_t h = 0; h < H; h++) {
      const float *dyp = pdy + pl * Ho * Wo * L;
      float *dxr = pdx + (pl * H + h) * W * L;
      pad_row_bwd(mode, p, W, L, dyp + (h + p) * Wo * L, dxr, 1);
      if (mode == NGC_PAD_ZERO) continue;
      for (int64_t oh = 0; oh < p; oh++)
        if (pad_src(mode, oh - p, H) == h) pad_row_bwd(mode, p, W, L, dyp + oh * Wo * L, dxr, 0);
      for (int64_t oh = p + H; oh < Ho; oh++)
        if (pad_src(mode, oh - p, H) == h) pad_row_bwd(mode, p, W, L, dyp + oh * Wo * L, dxr, 0);
    }
  }
  return NEGCUT_OK;
}

/* Mirror along W (pixels of L floats). Swaps pairs, so x and y may be the
 * same tensor. */
static negcut_status cpu_hflip(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  const int64_t L = ngc_block_of(be, x), W = x->dim[x->ndim - 1];
  const int64_t rows = ngc_numel(x) / (W * L);
  const float *px = x->data;
  float *py = y->data;
  ngc_cpu_enter(be);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, rows * W * L))
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = px + r * W * L;
    float *yr = py + r * W * L;
    for (int64_t i = 0, j = W - 1; i <= j; i++, j--) {
      for (int64_t l = 0; l < L; l++) {
        float a = xr[i * L + l], b = xr[j * L + l];
        yr[i * L + l] = b;
        yr[j * L + l] = a;
      }
    }
  }
  return NEGCUT_OK;
}

/* y (N, Ca + Cb, H, W) from a (N, Ca, H, W) and b (N, Cb, H, W): plane
 * copies. */
static negcut_status cpu_concat_fwd(ngc_backend *be, const ngc_tensor *a,
                                    const ngc_tensor *b, ngc_tensor *y) {
  const int64_t N = ngc_d(y, 0), Ca = ngc_d(a, 1), Cb = ngc_d(b, 1);
  const int64_t C = Ca + Cb, hw = ngc_d(y, 2) * ngc_d(y, 3);
  ngc_cpu_enter(be);
#pragma omp parallel for collapse(2) schedule(static) num_threads(ngc_cpu_nt(be, N * C * hw))
  for (int64_t n = 0; n < N; n++) {
    for (int64_t c = 0; c < C; c++) {
      const float *src = c < Ca ? a->data + (n * Ca + c) * hw : b->data + (n * Cb + c - Ca) * hw;
      memcpy(y->data + (n * C + c) * hw, src, (size_t)hw * sizeof(float));
    }
  }
  return NEGCUT_OK;
}

/* da, db: slices of dy; either may be NULL. */
static negcut_status cpu_concat_bwd(ngc_backend *be, const ngc_tensor *dy,
                                    ngc_tensor *da, ngc_tensor *db) {
  if (!da && !db) return NEGCUT_OK;
  const int64_t N = ngc_d(dy, 0), C = ngc_d(dy, 1), hw = ngc_d(dy, 2) * ngc_d(dy, 3);
  const int64_t Ca = da ? ngc_d(da, 1) : C - ngc_d(db, 1), Cb = C - Ca;
  ngc_cpu_enter(be);
#pragma omp parallel for collapse(2) schedule(static) num_threads(ngc_cpu_nt(be, N * C * hw))
  for (int64_t n = 0; n < N; n++) {
    for (int64_t c = 0; c < C; c++) {
      float *dst = c < Ca ? (da ? da->data + (n * Ca + c) * hw : NULL)
                          : (db ? db->data + (n * Cb + c - Ca) * hw : NULL);
      if (dst) memcpy(dst, dy->data + (n * C + c) * hw, (size_t)hw * sizeof(float));
    }
  }
  return NEGCUT_OK;
}

void ngc_cpu_fill_spatial_ops(ngc_backend_ops *ops) {
  ops->pad_fwd = cpu_pad_fwd;
  ops->pad_bwd = cpu_pad_bwd;
  ops->hflip = cpu_hflip;
  ops->concat_fwd = cpu_concat_fwd;
  ops->concat_bwd = cpu_concat_bwd;
}
