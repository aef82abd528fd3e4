/* Reference convolutions, PyTorch semantics, written as the defining sums.
 *
 * Both ops share one index relation between an input position i and an
 * output position o through kernel tap k:   i = o * s - p + k.
 * conv2d reads y[o] = sum_k x[i] w[k] (a gather over i); conv_transpose2d is
 * its adjoint, y[i] += x[o] w[k] (a gather over o). Every output element is
 * one double sum, assigned once; parameter gradients are added (+=). */
#include "ref.h"

/* i = o*s - p + k, or -1 when it falls outside [0, n). */
static int64_t tap_fwd(int64_t o, int64_t k, int64_t s, int64_t p, int64_t n) {
  int64_t i = o * s - p + k;
  return i >= 0 && i < n ? i : -1;
}

/* The o with o*s - p + k = i, or -1 when there is none in [0, n). */
static int64_t tap_inv(int64_t i, int64_t k, int64_t s, int64_t p, int64_t n) {
  int64_t t = i + p - k;
  if (t < 0 || t % s != 0 || t / s >= n) return -1;
  return t / s;
}

/* y (N, Co, Ho, Wo) = x (N, Ci, H, W) (*) w (Co, Ci, k, k) + b (Co) */
static negcut_status ref_conv2d_fwd(ngc_backend *be, const ngc_conv_params *p,
                                    const ngc_tensor *x, const ngc_tensor *w,
                                    const ngc_tensor *b, ngc_tensor *y) {
  int64_t N = x->dim[0], Ci = x->dim[1], H = x->dim[2], W = x->dim[3];
  int64_t Co = w->dim[0], K = w->dim[2], Ho = y->dim[2], Wo = y->dim[3];
  int64_t s = p->stride, pd = p->pad;
  for (int64_t n = 0; n < N; n++)
    for (int64_t co = 0; co < Co; co++)
      for (int64_t oy = 0; oy < Ho; oy++)
        for (int64_t ox = 0; ox < Wo; ox++) {
          double acc = b ? b->data[co] : 0.0;
          for (int64_t ci = 0; ci < Ci; ci++)
            for (int64_t ky = 0; ky < K; ky++)
              for (int64_t kx = 0; kx < K; kx++) {
                int64_t iy = tap_fwd(oy, ky, s, pd, H), ix = tap_fwd(ox, kx, s, pd, W);
                if (iy < 0 || ix < 0) continue;
                acc += (double)x->data[((n * Ci + ci) * H + iy) * W + ix] *
                       w->data[((co * Ci + ci) * K + ky) * K + kx];
              }
          y->data[((n * Co + co) * Ho + oy) * Wo + ox] = (float)acc;
        }
  return NEGCUT_OK;
}

static negcut_status ref_conv2d_bwd(ngc_backend *be, const ngc_conv_params *p,
                                    const ngc_tensor *x, const ngc_tensor *w,
                                    const ngc_tensor *dy, ngc_tensor *dx,
                                    ngc_tensor *dw, ngc_tensor *db) {
  int64_t N = x->dim[0], Ci = x->dim[1], H = x->dim[2], W = x->dim[3];
  int64_t Co = w->dim[0], K = w->dim[2], Ho = dy->dim[2], Wo = dy->dim[3];
  int64_t s = p->stride, pd = p->pad;
  if (dx) /* dx[n,ci,iy,ix] = sum dy[n,co,oy,ox] w[co,ci,ky,kx] over iy = oy*s-p+ky */
    for (int64_t n = 0; n < N; n++)
      for (int64_t ci = 0; ci < Ci; ci++)
        for (int64_t iy = 0; iy < H; iy++)
          for (int64_t ix = 0; ix < W; ix++) {
            double acc = 0.0;
            for (int64_t co = 0; co < Co; co++)
              for (int64_t ky = 0; ky < K; ky++)
                for (int64_t kx = 0; kx < K; kx++) {
                  int64_t oy = tap_inv(iy, ky, s, pd, Ho), ox = tap_inv(ix, kx, s, pd, Wo);
                  if (oy < 0 || ox < 0) continue;
                  acc += (double)dy->data[((n * Co + co) * Ho + oy) * Wo + ox] *
                         w->data[((co * Ci + ci) * K + ky) * K + kx];
                }
            dx->data[((n * Ci + ci) * H + iy) * W + ix] = (float)acc;
          }
  if (dw) /* dw[co,ci,ky,kx] += sum dy[n,co,oy,ox] x[n,ci,oy*s-p+ky,ox*s-p+kx] */
    for (int64_t co = 0; co < Co; co++)
      for (int64_t ci = 0; ci < Ci; ci++)
        for (int64_t ky = 0; ky < K; ky++)
          for (int64_t kx = 0; kx < K; kx++) {
            double acc = 0.0;
            for (int64_t n = 0; n < N; n++)
              for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                  int64_t iy = tap_fwd(oy, ky, s, pd, H), ix = tap_fwd(ox, kx, s, pd, W);
                  if (iy < 0 || ix < 0) continue;
                  acc += (double)dy->data[((n * Co + co) * Ho + oy) * Wo + ox] *
                         x->data[((n * Ci + ci) * H + iy) * W + ix];
                }
            dw->data[((co * Ci + ci) * K + ky) * K + kx] += (float)acc;
          }
  if (db) /* db[co] += sum dy[n,co,:,:] */
    for (int64_t co = 0; co < Co; co++) {
      double acc = 0.0;
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < Ho * Wo; i++) acc += dy->data[(n * Co + co) * Ho * Wo + i];
      db->data[co] += (float)acc;
    }
  return NEGCUT_OK;
}

/* y (N, Co, Ho, Wo) with y[n,co,oy,ox] = b[co] + sum x[n,ci,iy,ix] w[ci,co,ky,kx]
 * over oy = iy*s - p + ky; w is (Ci, Co, k, k). Ho = (H-1)s - 2p + k + out_pad. */
static negcut_status ref_convt2d_fwd(ngc_backend *be, const ngc_conv_params *p,
                                     const ngc_tensor *x, const ngc_tensor *w,
                                     const ngc_tensor *b, ngc_tensor *y) {
  int64_t N = x->dim[0], Ci = x->dim[1], H = x->dim[2], W = x->dim[3];
  int64_t Co = w->dim[1], K = w->dim[2], Ho = y->dim[2], Wo = y->dim[3];
  int64_t s = p->stride, pd = p->pad;
  for (int64_t n = 0; n < N; n++)
    for (int64_t co = 0; co < Co; co++)
      for (int64_t oy = 0; oy < Ho; oy++)
        for (int64_t ox = 0; ox < Wo; ox++) {
          double acc = b ? b->data[co] : 0.0;
          for (int64_t ci = 0; ci < Ci; ci++)
            for (int64_t ky = 0; ky < K; ky++)
              for (int64_t kx = 0; kx < K; kx++) {
                int64_t iy = tap_inv(oy, ky, s, pd, H), ix = tap_inv(ox, kx, s, pd, W);
                if (iy < 0 || ix < 0) continue;
                acc += (double)x->data[((n * Ci + ci) * H + iy) * W + ix] *
                       w->data[((ci * Co + co) * K + ky) * K + kx];
              }
          y->data[((n * Co + co) * Ho + oy) * Wo + ox] = (float)acc;
        }
  return NEGCUT_OK;
}

static negcut_status ref_convt2d_bwd(ngc_backend *be, const ngc_conv_params *p,
                                     const ngc_tensor *x, const ngc_tensor *w,
                                     const ngc_tensor *dy, ngc_tensor *dx,
                                     ngc_tensor *dw, ngc_tensor *db) {
  int64_t N = x->dim[0], Ci = x->dim[1], H = x->dim[2], W = x->dim[3];
  int64_t Co = w->dim[1], K = w->dim[2], Ho = dy->dim[2], Wo = dy->dim[3];
  int64_t s = p->stride, pd = p->pad;
  if (dx) /* dx[n,ci,iy,ix] = sum dy[n,co,iy*s-p+ky,ix*s-p+kx] w[ci,co,ky,kx] */
    for (int64_t n = 0; n < N; n++)
      for (int64_t ci = 0; ci < Ci; ci++)
        for (int64_t iy = 0; iy < H; iy++)
          for (int64_t ix = 0; ix < W; ix++) {
            double acc = 0.0;
            for (int64_t co = 0; co < Co; co++)
              for (int64_t ky = 0; ky < K; ky++)
                for (int64_t kx = 0; kx < K; kx++) {
                  int64_t oy = tap_fwd(iy, ky, s, pd, Ho), ox = tap_fwd(ix, kx, s, pd, Wo);
                  if (oy < 0 || ox < 0) continue;
                  acc += (double)dy->data[((n * Co + co) * Ho + oy) * Wo + ox] *
                         w->data[((ci * Co + co) * K + ky) * K + kx];
                }
            dx->data[((n * Ci + ci) * H + iy) * W + ix] = (float)acc;
          }
  if (dw) /* dw[ci,co,ky,kx] += sum x[n,ci,iy,ix] dy[n,co,iy*s-p+ky,ix*s-p+kx] */
    for (int64_t ci = 0; ci < Ci; ci++)
      for (int64_t co = 0; co < Co; co++)
        for (int64_t ky = 0; ky < K; ky++)
          for (int64_t kx = 0; kx < K; kx++) {
            double acc = 0.0;
            for (int64_t n = 0; n < N; n++)
              for (int64_t iy = 0; iy < H; iy++)
                for (int64_t ix = 0; ix < W; ix++) {
                  int64_t oy = tap_fwd(iy, ky, s, pd, Ho), ox = tap_fwd(ix, kx, s, pd, Wo);
                  if (oy < 0 || ox < 0) continue;
                  acc += (double)x->data[((n * Ci + ci) * H + iy) * W + ix] *
                         dy->data[((n * Co + co) * Ho + oy) * Wo + ox];
                }
            dw->data[((ci * Co + co) * K + ky) * K + kx] += (float)acc;
          }
  if (db)
    for (int64_t co = 0; co < Co; co++) {
      double acc = 0.0;
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < Ho * Wo; i++) acc += dy->data[(n * Co + co) * Ho * Wo + i];
      db->data[co] += (float)acc;
    }
  return NEGCUT_OK;
}

void ngc_ref_fill_conv_ops(ngc_backend_ops *ops) {
  ops->conv2d_fwd = ref_conv2d_fwd;
  ops->conv2d_bwd = ref_conv2d_bwd;
  ops->convt2d_fwd = ref_convt2d_fwd;
  ops->convt2d_bwd = ref_convt2d_bwd;
}
