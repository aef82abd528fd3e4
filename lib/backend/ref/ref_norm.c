/* Reference normalisations: instance norm over planes, L2 norm over rows. */
#include <math.h>

#include "ref.h"

/* Per (n, c) plane of x (N, C, H, W): mean, biased variance,
 * rstd = 1 / sqrt(var + eps), y = (x - mean) * rstd. mean, rstd (N, C). */
static negcut_status ref_inorm_fwd(ngc_backend *be, float eps, const ngc_tensor *x,
                                   ngc_tensor *y, ngc_tensor *mean, ngc_tensor *rstd) {
  int64_t planes = x->dim[0] * x->dim[1], P = x->dim[2] * x->dim[3];
  for (int64_t c = 0; c < planes; c++) {
    const float *xc = x->data + c * P; // (H * W)
    float *yc = y->data + c * P;       // (H * W)
    double mu = 0.0, var = 0.0;
    for (int64_t i = 0; i < P; i++) mu += xc[i];
    mu /= (double)P;
    for (int64_t i = 0; i < P; i++) var += (xc[i] - mu) * (xc[i] - mu);
    var /= (double)P;
    double r = 1.0 / sqrt(var + eps);
    for (int64_t i = 0; i < P; i++) yc[i] = (float)((xc[i] - mu) * r);
    mean->data[c] = (float)mu;
    rstd->data[c] = (float)r;
  }
  return NEGCUT_OK;
}

/* dx = rstd * (dy - mean(dy) - y * mean(dy * y)), per plane. */
static negcut_status ref_inorm_bwd(ngc_backend *be, const ngc_tensor *y,
                                   const ngc_tensor *rstd, const ngc_tensor *dy,
                                   ngc_tensor *dx) {
  int64_t planes = y->dim[0] * y->dim[1], P = y->dim[2] * y->dim[3];
  for (int64_t c = 0; c < planes; c++) {
    const float *yc = y->data + c * P, *gc = dy->data + c * P; // (H * W)
    float *dxc = dx->data + c * P;                             // (H * W)
    double mg = 0.0, mgy = 0.0;
    for (int64_t i = 0; i < P; i++) {
      mg += gc[i];
      mgy += (double)gc[i] * yc[i];
    }
    mg /= (double)P;
    mgy /= (double)P;
    for (int64_t i = 0; i < P; i++)
      dxc[i] = (float)(rstd->data[c] * (gc[i] - mg - yc[i] * mgy));
  }
  return NEGCUT_OK;
}

/* Per row of x (M, C): norm = ||x||_2, y = x / (norm + eps). norm (M). */
static negcut_status ref_l2norm_fwd(ngc_backend *be, float eps, const ngc_tensor *x,
                                    ngc_tensor *y, ngc_tensor *norm) {
  int64_t M = x->dim[0], C = ngc_numel(x) / M;
  for (int64_t m = 0; m < M; m++) {
    const float *xr = x->data + m * C; // (C)
    double ss = 0.0;
    for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
    double nrm = sqrt(ss);
    for (int64_t c = 0; c < C; c++) y->data[m * C + c] = (float)(xr[c] / (nrm + eps));
    norm->data[m] = (float)nrm;
  }
  return NEGCUT_OK;
}

/* With d = norm + eps:  dx = dy / d - x * (dy . x) / (d^2 * norm).
 * At norm 0 the second term is taken as 0, as PyTorch's norm backward does. */
static negcut_status ref_l2norm_bwd(ngc_backend *be, float eps, const ngc_tensor *x,
                                    const ngc_tensor *norm, const ngc_tensor *dy,
                                    ngc_tensor *dx) {
  int64_t M = x->dim[0], C = ngc_numel(x) / M;
  for (int64_t m = 0; m < M; m++) {
    const float *xr = x->data + m * C, *gr = dy->data + m * C; // (C)
    double nrm = norm->data[m], d = nrm + eps, dot = 0.0;
    for (int64_t c = 0; c < C; c++) dot += (double)gr[c] * xr[c];
    double k = nrm > 0.0 ? dot / (d * d * nrm) : 0.0;
    for (int64_t c = 0; c < C; c++) dx->data[m * C + c] = (float)(gr[c] / d - xr[c] * k);
  }
  return NEGCUT_OK;
}

void ngc_ref_fill_norm_ops(ngc_backend_ops *ops) {
  ops->inorm_fwd = ref_inorm_fwd;
  ops->inorm_bwd = ref_inorm_bwd;
  ops->l2norm_fwd = ref_l2norm_fwd;
  ops->l2norm_bwd = ref_l2norm_bwd;
}
