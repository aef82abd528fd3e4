/* Element-wise slots: fill, axpby, add, activations, relayout, hflip,
 * concat.
 *
 * Products feeding a sum use __fmul_rn/__fadd_rn: nvcc would otherwise fuse
 * them into one FMA (one rounding instead of two) and the result would
 * differ in the last bit from the reference's. Every kernel reads an
 * element before it writes the same element, so x and y may be the same
 * tensor. */
#include "cuda_kernels.cuh"

static __global__ void fill_kernel(float *y, int64_t n, float v) {
  NGC_FOR(i, n) y[i] = v;
}

static negcut_status cuda_fill(ngc_backend *be, ngc_tensor *y, float v) {
  const int64_t n = ngc_numel(y);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "fill", fill_kernel, ngc_grid(n), NGC_BLOCK, y->data, n, v);
}

/* beta 0: y's old content is never read (it may be NaN). */
static __global__ void axpby_kernel(float alpha, const float *x, float beta, float *y, int64_t n) {
  NGC_FOR(i, n) {
    const float ax = __fmul_rn(alpha, x[i]);
    y[i] = beta == 0.0f ? ax : __fadd_rn(ax, __fmul_rn(beta, y[i]));
  }
}

static negcut_status cuda_axpby(ngc_backend *be, float alpha, const ngc_tensor *x, float beta,
                                ngc_tensor *y) {
  const int64_t n = ngc_numel(y);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "axpby", axpby_kernel, ngc_grid(n), NGC_BLOCK, alpha, x->data, beta,
                    y->data, n);
}

static __global__ void add_kernel(const float *a, const float *b, float *y, int64_t n) {
  NGC_FOR(i, n) y[i] = a[i] + b[i];
}

static negcut_status cuda_add(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                              ngc_tensor *y) {
  const int64_t n = ngc_numel(y);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "add", add_kernel, ngc_grid(n), NGC_BLOCK, a->data, b->data, y->data, n);
}

static __global__ void act_fwd_kernel(int act, float alpha, const float *x, float *y, int64_t n) {
  NGC_FOR(i, n) {
    const float v = x[i];
    if (act == NGC_ACT_RELU) y[i] = v > 0.0f ? v : 0.0f;
    else if (act == NGC_ACT_LRELU) y[i] = v > 0.0f ? v : __fmul_rn(alpha, v);
    else y[i] = tanhf(v);
  }
}

static negcut_status cuda_act_fwd(ngc_backend *be, ngc_act act, float alpha, const ngc_tensor *x,
                                  ngc_tensor *y) {
  const int64_t n = ngc_numel(y);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "act_fwd", act_fwd_kernel, ngc_grid(n), NGC_BLOCK, (int)act, alpha,
                    x->data, y->data, n);
}

/* relu, lrelu read x; tanh reads y: the other may be NULL. */
static __global__ void act_bwd_kernel(int act, float alpha, const float *x, const float *y,
                                      const float *dy, float *dx, int64_t n) {
  NGC_FOR(i, n) {
    const float g = dy[i];
    if (act == NGC_ACT_RELU) dx[i] = x[i] > 0.0f ? g : 0.0f;
    else if (act == NGC_ACT_LRELU) dx[i] = x[i] > 0.0f ? g : __fmul_rn(alpha, g);
    else dx[i] = __fmul_rn(g, __fsub_rn(1.0f, __fmul_rn(y[i], y[i])));
  }
}

static negcut_status cuda_act_bwd(ngc_backend *be, ngc_act act, float alpha, const ngc_tensor *x,
                                  const ngc_tensor *y, const ngc_tensor *dy, ngc_tensor *dx) {
  const int64_t n = ngc_numel(dx);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "act_bwd", act_bwd_kernel, ngc_grid(n), NGC_BLOCK, (int)act, alpha,
                    x ? x->data : (const float *)NULL, y ? y->data : (const float *)NULL,
                    dy->data, dx->data, n);
}

/* This backend keeps every activation plain (act_block 0), so lib/ops only
 * ever hands it plain tensors: relayout is a copy. */
static negcut_status cuda_relayout(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  const int64_t n = ngc_numel(x);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0 || x->data == y->data) return st;
  if (x->layout != NGC_LAYOUT_PLAIN || y->layout != NGC_LAYOUT_PLAIN)
    return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL, "cuda relayout: a blocked tensor");
  return ngc_cuda_copy(be, y->data, x->data, (size_t)n * sizeof(float), "relayout");
}

static negcut_status cuda_to_bf16(ngc_backend *be, const ngc_tensor *x, void *dst) {
  negcut_status st = ngc_cuda_enter(be);
  return st ? st : ngc_cuda_to_bf16(be, x->data, dst, ngc_numel(x));
}

/* One thread per mirrored pair of a row, so x and y may alias. */
static __global__ void hflip_kernel(const float *x, float *y, int64_t rows, int64_t w) {
  const int64_t pairs = (w + 1) / 2;
  NGC_FOR(i, rows * pairs) {
    const int64_t r = i / pairs, j = i % pairs;
    const float a = x[r * w + j], b = x[r * w + w - 1 - j];
    y[r * w + j] = b;
    y[r * w + w - 1 - j] = a;
  }
}

static negcut_status cuda_hflip(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  const int64_t w = x->dim[x->ndim - 1], n = ngc_numel(x);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0 || w == 0) return st;
  return NGC_LAUNCH(be, "hflip", hflip_kernel, ngc_grid(n / 2 + 1), NGC_BLOCK, x->data, y->data,
                    n / w, w);
}

/* y (N, na + nb) per sample from a (N, na) and b (N, nb): the trailing dims
 * of each sample are one contiguous block. */
static __global__ void concat_fwd_kernel(const float *a, const float *b, float *y, int64_t n,
                                         int64_t na, int64_t nb) {
  NGC_FOR(i, n * (na + nb)) {
    const int64_t s = i / (na + nb), r = i % (na + nb);
    y[i] = r < na ? a[s * na + r] : b[s * nb + r - na];
  }
}

static negcut_status cuda_concat_fwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                     ngc_tensor *y) {
  const int64_t N = a->dim[0], na = ngc_numel(a) / N, nb = ngc_numel(b) / N;
  negcut_status st = ngc_cuda_enter(be);
  if (st || N * (na + nb) == 0) return st;
  return NGC_LAUNCH(be, "concat_fwd", concat_fwd_kernel, ngc_grid(N * (na + nb)), NGC_BLOCK,
                    a->data, b->data, y->data, N, na, nb);
}

/* part (N, width) = columns [off, off + width) of dy (N, total). */
static __global__ void concat_bwd_kernel(const float *dy, float *part, int64_t n, int64_t total,
                                         int64_t off, int64_t width) {
  NGC_FOR(i, n * width) {
    const int64_t s = i / width, r = i % width;
    part[i] = dy[s * total + off + r];
  }
}

static negcut_status cuda_concat_bwd(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *da,
                                     ngc_tensor *db) {
  negcut_status st = ngc_cuda_enter(be);
  if (st || (!da && !db)) return st;
  /* Per-sample sizes of a and b; either gradient may be NULL. */
  const int64_t N = dy->dim[0], n = ngc_numel(dy) / N;
  const int64_t na = da ? ngc_numel(da) / N : n - ngc_numel(db) / N, nb = n - na;
  if (da && N * na != 0)
    st = NGC_LAUNCH(be, "concat_bwd", concat_bwd_kernel, ngc_grid(N * na), NGC_BLOCK, dy->data,
                    da->data, N, n, (int64_t)0, na);
  if (!st && db && N * nb != 0)
    st = NGC_LAUNCH(be, "concat_bwd", concat_bwd_kernel, ngc_grid(N * nb), NGC_BLOCK, dy->data,
                    db->data, N, n, na, nb);
  return st;
}

extern "C" void ngc_cuda_fill_eltwise_ops(ngc_backend_ops *ops) {
  ops->fill = cuda_fill;
  ops->axpby = cuda_axpby;
  ops->add = cuda_add;
  ops->act_fwd = cuda_act_fwd;
  ops->act_bwd = cuda_act_bwd;
  ops->relayout = cuda_relayout;
  ops->to_bf16 = cuda_to_bf16;
  ops->hflip = cuda_hflip;
  ops->concat_fwd = cuda_concat_fwd;
  ops->concat_bwd = cuda_concat_bwd;
}
