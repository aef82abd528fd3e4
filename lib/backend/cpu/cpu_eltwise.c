/* CPU element-wise slots: fill, axpby, add, activations. Memory-bound
 * streams: one static split of [0, n) over the budget, vector inner loops. */
#include <math.h>

#include "cpu_loops.h"

static negcut_status cpu_fill(ngc_backend *be, ngc_tensor *y, float v) {
  float *restrict py = y->data;
  const int64_t n = ngc_numel(y);
  ngc_cpu_enter(be);
#pragma omp parallel for simd schedule(static) num_threads(ngc_cpu_nt(be, n))
  for (int64_t i = 0; i < n; i++) py[i] = v;
  return NEGCUT_OK;
}

/* x and y may be the same tensor; beta 0 never reads y (it may hold NaN). */
static negcut_status cpu_axpby(ngc_backend *be, float alpha, const ngc_tensor *x,
                               float beta, ngc_tensor *y) {
  const float *px = x->data;
  float *py = y->data;
  const int64_t n = ngc_numel(y);
  ngc_cpu_enter(be);
  if (beta == 0.0f) {
#pragma omp parallel for simd schedule(static) num_threads(ngc_cpu_nt(be, n))
    for (int64_t i = 0; i < n; i++) py[i] = alpha * px[i];
  } else {
#pragma omp parallel for simd schedule(static) num_threads(ngc_cpu_nt(be, n))
    for (int64_t i = 0; i < n; i++) py[i] = alpha * px[i] + beta * py[i];
  }
  return NEGCUT_OK;
}

/* y may be a or b. */
static negcut_status cpu_add(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                             ngc_tensor *y) {
  const float *pa = a->data, *pb = b->data;
  float *py = y->data;
  const int64_t n = ngc_numel(y);
  ngc_cpu_enter(be);
#pragma omp parallel for simd schedule(static) num_threads(ngc_cpu_nt(be, n))
  for (int64_t i = 0; i < n; i++) py[i] = pa[i] + pb[i];
  return NEGCUT_OK;
}

/* The masked selects of the (leaky) ReLU run at a third of memory speed as
 * baseline x86-64 code (what the OpenMP-outlined loop bodies are): they go
 * through functions cloned per ISA instead, one contiguous chunk each. */
#define ACT_CHUNK ((int64_t)16384)

NGC_CPU_CLONES static void relu_fwd_span(const float *x, float *y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

NGC_CPU_CLONES static void lrelu_fwd_span(const float *x, float *y, int64_t n, float alpha) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : alpha * x[i];
}

NGC_CPU_CLONES static void relu_bwd_span(const float *s, const float *dy, float *dx, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dx[i] = s[i] > 0.0f ? dy[i] : 0.0f;
}

NGC_CPU_CLONES static void lrelu_bwd_span(const float *s, const float *dy, float *dx, int64_t n,
                                          float alpha) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dx[i] = s[i] > 0.0f ? dy[i] : alpha * dy[i];
}

static negcut_status cpu_act_fwd(ngc_backend *be, ngc_act act, float alpha,
                                 const ngc_tensor *x, ngc_tensor *y) {
  const float *px = x->data;
  float *py = y->data;
  const int64_t n = ngc_numel(y);
  ngc_cpu_enter(be);
  switch (act) {
  case NGC_ACT_RELU:
  case NGC_ACT_LRELU: {
    const int64_t chunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, n))
    for (int64_t c = 0; c < chunks; c++) {
      const int64_t i0 = c * ACT_CHUNK, len = n - i0 < ACT_CHUNK ? n - i0 : ACT_CHUNK;
      if (act == NGC_ACT_RELU)
        relu_fwd_span(px + i0, py + i0, len);
      else
        lrelu_fwd_span(px + i0, py + i0, len, alpha);
    }
    return NEGCUT_OK;
  }
  case NGC_ACT_TANH:
    /* tanhf costs ~20x a load: worth the team from a few thousand. */
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, 16 * n))
    for (int64_t i = 0; i < n; i++) py[i] = tanhf(px[i]);
    return NEGCUT_OK;
  }
  return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL, "cpu act_fwd: unknown activation %d",
                   (int)act);
}

/* relu and lrelu take the sign from x (PyTorch's threshold/leaky_relu
 * backward), or from y when the caller kept only y (same sign for alpha >= 0);
 * tanh needs y. */
static negcut_status cpu_act_bwd(ngc_backend *be, ngc_act act, float alpha,
                                 const ngc_tensor *x, const ngc_tensor *y,
                                 const ngc_tensor *dy, ngc_tensor *dx) {
  const ngc_tensor *s = x && x->data ? x : y;
  const float *pdy = dy->data;
  float *pdx = dx->data;
  const int64_t n = ngc_numel(dx);
  ngc_cpu_enter(be);
  if (act == NGC_ACT_RELU || act == NGC_ACT_LRELU) {
    if (!s || !s->data)
      return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL, "cpu act_bwd: neither x nor y given");
    const float *ps = s->data;
    const int64_t chunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, n))
    for (int64_t c = 0; c < chunks; c++) {
      const int64_t i0 = c * ACT_CHUNK, len = n - i0 < ACT_CHUNK ? n - i0 : ACT_CHUNK;
      if (act == NGC_ACT_RELU)
        relu_bwd_span(ps + i0, pdy + i0, pdx + i0, len);
      else
        lrelu_bwd_span(ps + i0, pdy + i0, pdx + i0, len, alpha);
    }
    return NEGCUT_OK;
  }
  if (act == NGC_ACT_TANH) {
    if (!y || !y->data)
      return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL, "cpu act_bwd: tanh needs y");
    const float *py = y->data;
#pragma omp parallel for simd schedule(static) num_threads(ngc_cpu_nt(be, n))
    for (int64_t i = 0; i < n; i++) pdx[i] = pdy[i] * (1.0f - py[i] * py[i]);
    return NEGCUT_OK;
  }
  return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL, "cpu act_bwd: unknown activation %d",
                   (int)act);
}

void ngc_cpu_fill_eltwise_ops(ngc_backend_ops *ops) {
  ops->fill = cpu_fill;
  ops->axpby = cpu_axpby;
  ops->add = cpu_add;
  ops->act_fwd = cpu_act_fwd;
  ops->act_bwd = cpu_act_bwd;
}
