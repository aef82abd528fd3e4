/* Reference losses: cross-entropy with target 0, MSE against a constant,
 * mean absolute difference, mean. Scalar outputs are (1) tensors. */
#include <math.h>

#include "ref.h"

/* loss[i] = -x[i,0] + logsumexp(x[i,:]) for x (M, K), loss (M); the max is
 * subtracted first so exp never overflows. */
static negcut_status ref_xent0_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *loss) {
  int64_t M = x->dim[0], K = x->dim[1];
  for (int64_t i = 0; i < M; i++) {
    const float *xi = x->data + i * K; // (K)
    double mx = xi[0], se = 0.0;
    for (int64_t k = 1; k < K; k++) mx = xi[k] > mx ? xi[k] : mx;
    for (int64_t k = 0; k < K; k++) se += exp(xi[k] - mx);
    loss->data[i] = (float)(-xi[0] + mx + log(se));
  }
  return NEGCUT_OK;
}

/* dx[i,k] = dloss[i] * (softmax(x[i])[k] - (k == 0)) */
static negcut_status ref_xent0_bwd(ngc_backend *be, const ngc_tensor *x,
                                   const ngc_tensor *dloss, ngc_tensor *dx) {
  int64_t M = x->dim[0], K = x->dim[1];
  for (int64_t i = 0; i < M; i++) {
    const float *xi = x->data + i * K; // (K)
    double mx = xi[0], se = 0.0;
    for (int64_t k = 1; k < K; k++) mx = xi[k] > mx ? xi[k] : mx;
    for (int64_t k = 0; k < K; k++) se += exp(xi[k] - mx);
    for (int64_t k = 0; k < K; k++)
      dx->data[i * K + k] = (float)(dloss->data[i] * (exp(xi[k] - mx) / se - (k == 0)));
  }
  return NEGCUT_OK;
}

/* out (1) = mean((x - t)^2) */
static negcut_status ref_mse_const_fwd(ngc_backend *be, const ngc_tensor *x, float t,
                                       ngc_tensor *out) {
  int64_t n = ngc_numel(x);
  double acc = 0.0;
  for (int64_t i = 0; i < n; i++) acc += ((double)x->data[i] - t) * ((double)x->data[i] - t);
  out->data[0] = (float)(acc / (double)n);
  return NEGCUT_OK;
}

/* dx = dout * 2 (x - t) / n */
static negcut_status ref_mse_const_bwd(ngc_backend *be, const ngc_tensor *x, float t,
                                       float dout, ngc_tensor *dx) {
  int64_t n = ngc_numel(x);
  for (int64_t i = 0; i < n; i++)
    dx->data[i] = (float)(dout * 2.0 * ((double)x->data[i] - t) / (double)n);
  return NEGCUT_OK;
}

/* out (1) = mean |a - b| */
static negcut_status ref_mad_fwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                 ngc_tensor *out) {
  int64_t n = ngc_numel(a);
  double acc = 0.0;
  for (int64_t i = 0; i < n; i++) acc += fabs((double)a->data[i] - b->data[i]);
  out->data[0] = (float)(acc / (double)n);
  return NEGCUT_OK;
}

/* da = dout * sign(a - b) / n, db = -da, sign(0) = 0. */
static negcut_status ref_mad_bwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                 float dout, ngc_tensor *da, ngc_tensor *db) {
  int64_t n = ngc_numel(a);
  for (int64_t i = 0; i < n; i++) {
    float d = a->data[i] - b->data[i];
    double g = dout * (double)((d > 0.0f) - (d < 0.0f)) / (double)n;
    if (da) da->data[i] = (float)g;
    if (db) db->data[i] = (float)-g;
  }
  return NEGCUT_OK;
}

/* out (1) = mean(x) */
static negcut_status ref_mean_all(ngc_backend *be, const ngc_tensor *x, ngc_tensor *out) {
  int64_t n = ngc_numel(x);
  double acc = 0.0;
  for (int64_t i = 0; i < n; i++) acc += x->data[i];
  out->data[0] = (float)(acc / (double)n);
  return NEGCUT_OK;
}

/* mean(max(x, 0) - x t + log1p(exp(-|x|))): BCEWithLogits without overflow. */
static negcut_status ref_bce_const_fwd(ngc_backend *be, const ngc_tensor *x, float t,
                                       ngc_tensor *out) {
  int64_t n = ngc_numel(x);
  double acc = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double v = x->data[i];
    acc += (v > 0 ? v : 0) - v * t + log1p(exp(-fabs(v)));
  }
  out->data[0] = (float)(acc / (double)n);
  return NEGCUT_OK;
}

static negcut_status ref_bce_const_bwd(ngc_backend *be, const ngc_tensor *x, float t, float dout,
                                       ngc_tensor *dx) {
  int64_t n = ngc_numel(x);
  for (int64_t i = 0; i < n; i++) {
    double sig = 1.0 / (1.0 + exp(-(double)x->data[i]));
    dx->data[i] = (float)(dout * (sig - t) / (double)n);
  }
  return NEGCUT_OK;
}

void ngc_ref_fill_loss_ops(ngc_backend_ops *ops) {
  ops->bce_const_fwd = ref_bce_const_fwd;
  ops->bce_const_bwd = ref_bce_const_bwd;
  ops->xent0_fwd = ref_xent0_fwd;
  ops->xent0_bwd = ref_xent0_bwd;
  ops->mse_const_fwd = ref_mse_const_fwd;
  ops->mse_const_bwd = ref_mse_const_bwd;
  ops->mad_fwd = ref_mad_fwd;
  ops->mad_bwd = ref_mad_bwd;
  ops->mean_all = ref_mean_all;
}
