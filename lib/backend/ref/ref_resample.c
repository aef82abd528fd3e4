/* Reference padding and the two fixed blur filters of REFERENCE.md 1.
 *
 * The blurs are written literally as the reference's steps on each (H, W)
 * plane: pad into a scratch plane, then a depthwise strided correlation
 * (Downsample) or transposed convolution (Upsample), then crop. Their
 * backwards run the adjoint of each step in reverse order. */
#include <stdlib.h>
#include <string.h>

#include "ref.h"

/* Source index in [0, n) of padded position i (0 <= i < n + 2p), or -1 for a
 * zero. Reflect needs p < n (PyTorch ReflectionPad2d: x[-1] = x[1]). */
static int64_t pad_src(int64_t i, int64_t n, int64_t p, ngc_pad_mode mode) {
  int64_t j = i - p;
  if (j >= 0 && j < n) return j;
  switch (mode) {
  case NGC_PAD_ZERO: return -1;
  case NGC_PAD_REFLECT: return j < 0 ? -j : 2 * (n - 1) - j;
  case NGC_PAD_REPLICATE: return j < 0 ? 0 : n - 1;
  }
  return -1;
}

/* y (H + 2p, W + 2p) from x (H, W). */
static void pad_plane(const float *x, int64_t H, int64_t W, int64_t p, ngc_pad_mode mode,
                      float *y) {
  for (int64_t i = 0; i < H + 2 * p; i++)
    for (int64_t j = 0; j < W + 2 * p; j++) {
      int64_t si = pad_src(i, H, p, mode), sj = pad_src(j, W, p, mode);
      y[i * (W + 2 * p) + j] = si < 0 || sj < 0 ? 0.0f : x[si * W + sj];
    }
}

/* Adjoint of pad_plane: dx (H, W) = sum of dy (H + 2p, W + 2p) over every
 * padded position that copies it. */
static void pad_plane_bwd(const float *dy, int64_t H, int64_t W, int64_t p,
                          ngc_pad_mode mode, float *dx) {
  memset(dx, 0, (size_t)(H * W) * sizeof(float));
  for (int64_t i = 0; i < H + 2 * p; i++)
    for (int64_t j = 0; j < W + 2 * p; j++) {
      int64_t si = pad_src(i, H, p, mode), sj = pad_src(j, W, p, mode);
      if (si >= 0 && sj >= 0) dx[si * W + sj] += dy[i * (W + 2 * p) + j];
    }
}

/* Depthwise correlation, zero padding p, stride s:
 * y[oy, ox] = sum_{ky,kx} x[oy*s - p + ky, ox*s - p + kx] f[ky, kx].
 * x (H, W), f (k, k), y (Ho, Wo). */
static void corr_plane(const float *x, int64_t H, int64_t W, const float *f, int64_t k,
                       int64_t s, int64_t p, float *y, int64_t Ho, int64_t Wo) {
  for (int64_t oy = 0; oy < Ho; oy++)
    for (int64_t ox = 0; ox < Wo; ox++) {
      double acc = 0.0;
      for (int64_t ky = 0; ky < k; ky++)
        for (int64_t kx = 0; kx < k; kx++) {
          int64_t iy = oy * s - p + ky, ix = ox * s - p + kx;
          if (iy >= 0 && iy < H && ix >= 0 && ix < W) acc += (double)x[iy * W + ix] * f[ky * k + kx];
        }
      y[oy * Wo + ox] = (float)acc;
    }
}

/* Its adjoint, which is also PyTorch's conv_transpose2d with padding p:
 * y (H, W) = 0, then y[oy*s - p + ky, ...] += x[oy, ox] f[ky, kx] for x (Ho, Wo). */
static void corr_plane_adj(const float *x, int64_t Ho, int64_t Wo, const float *f,
                           int64_t k, int64_t s, int64_t p, float *y, int64_t H, int64_t W) {
  memset(y, 0, (size_t)(H * W) * sizeof(float));
  for (int64_t oy = 0; oy < Ho; oy++)
    for (int64_t ox = 0; ox < Wo; ox++)
      for (int64_t ky = 0; ky < k; ky++)
        for (int64_t kx = 0; kx < k; kx++) {
          int64_t iy = oy * s - p + ky, ix = ox * s - p + kx;
          if (iy >= 0 && iy < H && ix >= 0 && ix < W) y[iy * W + ix] += x[oy * Wo + ox] * f[ky * k + kx];
        }
}

/* Copies the (h, w) window at (top, left) of a (H, W) plane. */
static void crop_plane(const float *x, int64_t W, int64_t top, int64_t left, float *y,
                       int64_t h, int64_t w) {
  for (int64_t i = 0; i < h; i++) memcpy(y + i * w, x + (i + top) * W + left, (size_t)w * sizeof(float));
}

/* Adjoint of crop_plane: x (H, W) zero outside the window. */
static void crop_plane_bwd(const float *y, int64_t h, int64_t w, int64_t top, int64_t left,
                           float *x, int64_t H, int64_t W) {
  memset(x, 0, (size_t)(H * W) * sizeof(float));
  for (int64_t i = 0; i < h; i++) memcpy(x + (i + top) * W + left, y + i * w, (size_t)w * sizeof(float));
}

static negcut_status no_memory(ngc_backend *be, const char *op) {
  return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "ref %s: out of memory", op);
}

/* y (N, C, H + 2p, W + 2p) */
static negcut_status ref_pad_fwd(ngc_backend *be, ngc_pad_mode mode, int32_t pad,
                                 const ngc_tensor *x, ngc_tensor *y) {
  int64_t planes = x->dim[0] * x->dim[1], H = x->dim[2], W = x->dim[3];
  int64_t Hp = H + 2 * pad, Wp = W + 2 * pad;
  for (int64_t c = 0; c < planes; c++)
    pad_plane(x->data + c * H * W, H, W, pad, mode, y->data + c * Hp * Wp);
  return NEGCUT_OK;
}

static negcut_status ref_pad_bwd(ngc_backend *be, ngc_pad_mode mode, int32_t pad,
                                 const ngc_tensor *dy, ngc_tensor *dx) {
  int64_t planes = dx->dim[0] * dx->dim[1], H = dx->dim[2], W = dx->dim[3];
  int64_t Hp = H + 2 * pad, Wp = W + 2 * pad;
  for (int64_t c = 0; c < planes; c++)
    pad_plane_bwd(dy->data + c * Hp * Wp, H, W, pad, mode, dx->data + c * H * W);
  return NEGCUT_OK;
}

/* [1,2,1] x [1,2,1] / 16 */
static const float blur3[9] = {1 / 16.f, 2 / 16.f, 1 / 16.f, 2 / 16.f, 4 / 16.f,
                               2 / 16.f, 1 / 16.f, 2 / 16.f, 1 / 16.f};

/* Downsample: reflect pad 1 -> (H+2, W+2), correlate with blur3 at stride 2
 * -> (ceil(H/2), ceil(W/2)). */
static negcut_status ref_blur_down_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  int64_t planes = x->dim[0] * x->dim[1], H = x->dim[2], W = x->dim[3];
  int64_t Ho = y->dim[2], Wo = y->dim[3];
  float *padded = malloc((size_t)((H + 2) * (W + 2)) * sizeof(float)); // (H + 2, W + 2)
  if (!padded) return no_memory(be, "blur_down_fwd");
  for (int64_t c = 0; c < planes; c++) {
    pad_plane(x->data + c * H * W, H, W, 1, NGC_PAD_REFLECT, padded);
    corr_plane(padded, H + 2, W + 2, blur3, 3, 2, 0, y->data + c * Ho * Wo, Ho, Wo);
  }
  free(padded);
  return NEGCUT_OK;
}

static negcut_status ref_blur_down_bwd(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx) {
  int64_t planes = dx->dim[0] * dx->dim[1], H = dx->dim[2], W = dx->dim[3];
  int64_t Ho = dy->dim[2], Wo = dy->dim[3];
  float *dpadded = malloc((size_t)((H + 2) * (W + 2)) * sizeof(float)); // (H + 2, W + 2)
  if (!dpadded) return no_memory(be, "blur_down_bwd");
  for (int64_t c = 0; c < planes; c++) {
    corr_plane_adj(dy->data + c * Ho * Wo, Ho, Wo, blur3, 3, 2, 0, dpadded, H + 2, W + 2);
    pad_plane_bwd(dpadded, H, W, 1, NGC_PAD_REFLECT, dx->data + c * H * W);
  }
  free(dpadded);
  return NEGCUT_OK;
}

/* [1,3,3,1] x [1,3,3,1] / 64 * 4 (stride^2, so the upsampled mean is kept) */
static const float blur4[16] = {
    1 / 16.f, 3 / 16.f, 3 / 16.f, 1 / 16.f, 3 / 16.f, 9 / 16.f, 9 / 16.f, 3 / 16.f,
    3 / 16.f, 9 / 16.f, 9 / 16.f, 3 / 16.f, 1 / 16.f, 3 / 16.f, 3 / 16.f, 1 / 16.f};

/* Upsample: replicate pad 1 -> (H+2, W+2); conv_transpose with blur4,
 * stride 2, padding 2 -> ((H+1)*2 - 4 + 4 = 2H+2, 2W+2); drop the first and
 * the last row and column -> (2H, 2W). */
static negcut_status ref_blur_up_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  int64_t planes = x->dim[0] * x->dim[1], H = x->dim[2], W = x->dim[3];
  float *padded = malloc((size_t)((H + 2) * (W + 2)) * sizeof(float));   // (H + 2, W + 2)
  float *full = malloc((size_t)((2 * H + 2) * (2 * W + 2)) * sizeof(float)); // (2H + 2, 2W + 2)
  if (!padded || !full) {
    free(padded);
    free(full);
    return no_memory(be, "blur_up_fwd");
  }
  for (int64_t c = 0; c < planes; c++) {
    pad_plane(x->data + c * H * W, H, W, 1, NGC_PAD_REPLICATE, padded);
    corr_plane_adj(padded, H + 2, W + 2, blur4, 4, 2, 2, full, 2 * H + 2, 2 * W + 2);
    crop_plane(full, 2 * W + 2, 1, 1, y->data + c * 4 * H * W, 2 * H, 2 * W);
  }
  free(padded);
  free(full);
  return NEGCUT_OK;
}

static negcut_status ref_blur_up_bwd(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx) {
  int64_t planes = dx->dim[0] * dx->dim[1], H = dx->dim[2], W = dx->dim[3];
  float *dpadded = malloc((size_t)((H + 2) * (W + 2)) * sizeof(float));   // (H + 2, W + 2)
  float *dfull = malloc((size_t)((2 * H + 2) * (2 * W + 2)) * sizeof(float)); // (2H + 2, 2W + 2)
  if (!dpadded || !dfull) {
    free(dpadded);
    free(dfull);
    return no_memory(be, "blur_up_bwd");
  }
  for (int64_t c = 0; c < planes; c++) {
    crop_plane_bwd(dy->data + c * 4 * H * W, 2 * H, 2 * W, 1, 1, dfull, 2 * H + 2, 2 * W + 2);
    corr_plane(dfull, 2 * H + 2, 2 * W + 2, blur4, 4, 2, 2, dpadded, H + 2, W + 2);
    pad_plane_bwd(dpadded, H, W, 1, NGC_PAD_REPLICATE, dx->data + c * H * W);
  }
  free(dpadded);
  free(dfull);
  return NEGCUT_OK;
}

void ngc_ref_fill_resample_ops(ngc_backend_ops *ops) {
  ops->pad_fwd = ref_pad_fwd;
  ops->pad_bwd = ref_pad_bwd;
  ops->blur_down_fwd = ref_blur_down_fwd;
  ops->blur_down_bwd = ref_blur_down_bwd;
  ops->blur_up_fwd = ref_blur_up_fwd;
  ops->blur_up_bwd = ref_blur_up_bwd;
}
