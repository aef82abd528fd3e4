/* CPU element-wise slots: fill, axpby, add, activations. Memory-bound
 * streams: one static split of [0, n) over the budget, vector inner loops. */
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

static void tanh_clear(struct ngc_cpu_tanh *e) {
  if (e->prim) dnnl_primitive_destroy(e->prim);
  if (e->src) dnnl_memory_destroy(e->src);
  if (e->dst) dnnl_memory_destroy(e->dst);
  *e = (struct ngc_cpu_tanh){0};
}

void ngc_cpu_tanh_free(ngc_backend *be) {
  ngc_cpu *c = ngc_cpu_of(be);
  for (int i = 0; i < NGC_CPU_TANH_KEEP; i++) tanh_clear(&c->tanh[i]);
}

/* Fills the cleared slot e with a tanh primitive over n floats. */
static negcut_status tanh_make(ngc_backend *be, struct ngc_cpu_tanh *e, int64_t n) {
  ngc_cpu *c = ngc_cpu_of(be);
  const dnnl_dims_t dims = {n};
  dnnl_memory_desc_t md;
  dnnl_eltwise_desc_t ed;
  dnnl_primitive_desc_t pd = NULL;
  negcut_status st = ngc_cpu_check(
      be, dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, dnnl_a), "tanh memory desc");
  if (!st)
    st = ngc_cpu_check(be,
                       dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference,
                                                      dnnl_eltwise_tanh, &md, 0.0f, 0.0f),
                       "tanh desc");
  if (!st)
    st = ngc_cpu_check(be, dnnl_primitive_desc_create(&pd, &ed, NULL, c->engine, NULL), "tanh");
  if (!st) st = ngc_cpu_check(be, dnnl_primitive_create(&e->prim, pd), "tanh");
  if (pd) dnnl_primitive_desc_destroy(pd);
  for (int i = 0; i < 2 && !st; i++)
    st = ngc_cpu_check(be, dnnl_memory_create(i ? &e->dst : &e->src, &md, c->engine,
                                              DNNL_MEMORY_NONE),
                       "memory");
  if (st)
    tanh_clear(e);
  else
    e->n = n;
  return st;
}

/* tanh runs oneDNN's eltwise primitive: vector code, at most 1.2 ulp from
 * the true tanh over every float in [1e-8, 12] (glibc's tanhf, which ran
 * here before: 2.1), and 3 us for the 12288 outputs of a 64x64 image where
 * tanhf took 108 on one thread. x and y may be the same tensor. */
static negcut_status tanh_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  ngc_cpu *c = ngc_cpu_of(be);
  const int64_t n = ngc_numel(y);
  struct ngc_cpu_tanh *e = NULL;
  for (int i = 0; i < NGC_CPU_TANH_KEEP && !e; i++)
    if (c->tanh[i].prim && c->tanh[i].n == n) e = &c->tanh[i];
  if (!e) {
    e = &c->tanh[c->tanh_next];
    c->tanh_next = (c->tanh_next + 1) % NGC_CPU_TANH_KEEP;
    tanh_clear(e);
    negcut_status st = tanh_make(be, e, n);
    if (st) return st;
  }
  dnnl_memory_set_data_handle(e->src, x->data);
  dnnl_memory_set_data_handle(e->dst, y->data);
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_DST, e->dst}};
  negcut_status st =
      ngc_cpu_check(be, dnnl_primitive_execute(e->prim, c->stream, 2, args), "tanh");
  return st ? st : ngc_cpu_check(be, dnnl_stream_wait(c->stream), "stream wait");
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
    return tanh_fwd(be, x, y);
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
