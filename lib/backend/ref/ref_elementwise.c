/* Reference element-wise ops: fill, axpby, add, activations, relayout,
 * hflip, concat. */
#include <math.h>
#include <string.h>

#include "ref.h"

static negcut_status ref_fill(ngc_backend *be, ngc_tensor *y, float v) {
  int64_t n = ngc_numel(y);
  for (int64_t i = 0; i < n; i++) y->data[i] = v;
  return NEGCUT_OK;
}

static negcut_status ref_axpby(ngc_backend *be, float alpha, const ngc_tensor *x,
                               float beta, ngc_tensor *y) {
  int64_t n = ngc_numel(y);
  for (int64_t i = 0; i < n; i++) /* beta 0: old y never read, even NaN */
    y->data[i] = beta == 0.0f ? alpha * x->data[i] : alpha * x->data[i] + beta * y->data[i];
  return NEGCUT_OK;
}

static negcut_status ref_add(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                             ngc_tensor *y) {
  int64_t n = ngc_numel(y);
  for (int64_t i = 0; i < n; i++) y->data[i] = a->data[i] + b->data[i];
  return NEGCUT_OK;
}

/* Offset of (n, c, p) (p = h * W + w) in a tensor of C channels, P
 * positions, channel block b (1: plain NCHW; else (N, C/b, H, W, b)). */
static int64_t offset(int64_t n, int64_t c, int64_t p, int64_t C, int64_t P, int64_t b) {
  return ((n * (C / b) + c / b) * P + p) * b + c % b;
}

/* Works for either layout on either side (the blocks come from be), so the
 * CPU backend uses it as is: it only runs at a network's edges. */
static negcut_status ref_relayout(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  const int64_t N = ngc_d(x, 0), C = ngc_d(x, 1), P = ngc_d(x, 2) * ngc_d(x, 3);
  const int64_t bx = ngc_block_of(be, x), by = ngc_block_of(be, y);
  if (bx == by) {
    memcpy(y->data, x->data, (size_t)ngc_numel(x) * sizeof(float));
    return NEGCUT_OK;
  }
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t p = 0; p < P; p++)
        y->data[offset(n, c, p, C, P, by)] = x->data[offset(n, c, p, C, P, bx)];
  return NEGCUT_OK;
}

static negcut_status ref_act_fwd(ngc_backend *be, ngc_act act, float alpha,
                                 const ngc_tensor *x, ngc_tensor *y) {
  int64_t n = ngc_numel(y);
  for (int64_t i = 0; i < n; i++) {
    float v = x->data[i];
    switch (act) {
    case NGC_ACT_RELU: y->data[i] = v > 0.0f ? v : 0.0f; break;
    case NGC_ACT_LRELU: y->data[i] = v > 0.0f ? v : alpha * v; break;
    case NGC_ACT_TANH: y->data[i] = tanhf(v); break;
    }
  }
  return NEGCUT_OK;
}

/* relu, lrelu: from x; tanh: dy * (1 - y^2). */
static negcut_status ref_act_bwd(ngc_backend *be, ngc_act act, float alpha,
                                 const ngc_tensor *x, const ngc_tensor *y,
                                 const ngc_tensor *dy, ngc_tensor *dx) {
  int64_t n = ngc_numel(dx);
  for (int64_t i = 0; i < n; i++) {
    float g = dy->data[i];
    switch (act) {
    case NGC_ACT_RELU: dx->data[i] = x->data[i] > 0.0f ? g : 0.0f; break;
    case NGC_ACT_LRELU: dx->data[i] = x->data[i] > 0.0f ? g : alpha * g; break;
    case NGC_ACT_TANH: dx->data[i] = g * (1.0f - y->data[i] * y->data[i]); break;
    }
  }
  return NEGCUT_OK;
}

/* Swaps mirrored pairs, so x and y may be the same tensor. */
static negcut_status ref_hflip(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  int64_t W = x->dim[x->ndim - 1], rows = ngc_numel(x) / W;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x->data + r * W; // (W)
    float *yr = y->data + r * W;       // (W)
    for (int64_t w = 0; w < (W + 1) / 2; w++) {
      float a = xr[w], b = xr[W - 1 - w];
      yr[w] = b;
      yr[W - 1 - w] = a;
    }
  }
  return NEGCUT_OK;
}

/* Along dim 1: a (N, Ca, ...), b (N, Cb, ...) -> y (N, Ca + Cb, ...); the
 * trailing dims (H*W, or 1 for matrices) form one contiguous block per
 * channel, so each sample is two memcpy's. */
static negcut_status ref_concat_fwd(ngc_backend *be, const ngc_tensor *a,
                                    const ngc_tensor *b, ngc_tensor *y) {
  int64_t N = a->dim[0], na = ngc_numel(a) / N, nb = ngc_numel(b) / N;
  for (int64_t i = 0; i < N; i++) {
    memcpy(y->data + i * (na + nb), a->data + i * na, (size_t)na * sizeof(float));
    memcpy(y->data + i * (na + nb) + na, b->data + i * nb, (size_t)nb * sizeof(float));
  }
  return NEGCUT_OK;
}

static negcut_status ref_concat_bwd(ngc_backend *be, const ngc_tensor *dy,
                                    ngc_tensor *da, ngc_tensor *db) {
  if (!da && !db) return NEGCUT_OK;
  int64_t N = dy->dim[0], n = ngc_numel(dy) / N;
  /* Per-sample sizes of a and b; either gradient may be NULL. */
  int64_t na = da ? ngc_numel(da) / N : n - ngc_numel(db) / N, nb = n - na;
  for (int64_t i = 0; i < N; i++) {
    if (da) memcpy(da->data + i * na, dy->data + i * n, (size_t)na * sizeof(float));
    if (db) memcpy(db->data + i * nb, dy->data + i * n + na, (size_t)nb * sizeof(float));
  }
  return NEGCUT_OK;
}

void ngc_ref_fill_elementwise_ops(ngc_backend_ops *ops) {
  ops->fill = ref_fill;
  ops->axpby = ref_axpby;
  ops->add = ref_add;
  ops->act_fwd = ref_act_fwd;
  ops->act_bwd = ref_act_bwd;
  ops->relayout = ref_relayout;
  ops->hflip = ref_hflip;
  ops->concat_fwd = ref_concat_fwd;
  ops->concat_bwd = ref_concat_bwd;
}
