/* Losses: cross-entropy with target 0 (one warp per row), and the scalar
 * means (MSE, BCE with logits, mean absolute difference, mean), each a sum
 * in double, as the reference's. Scalars are written into (1) device
 * tensors; nothing here waits for the device.
 *
 * A scalar mean is two passes in a fixed shape: REDUCE_BLOCKS (or fewer,
 * by the size only) blocks each sum a grid-stride share into one double,
 * then one block sums those in order. */
#include "cuda_kernels.cuh"

#define ROWS_PER_BLOCK (NGC_BLOCK / 32)
#define REDUCE_BLOCKS 256

/* Terms of the sums; operator() gives term i in double. */
struct mse_term {
  const float *x;
  float t;
  __device__ double operator()(int64_t i) const {
    const double d = (double)x[i] - t;
    return d * d;
  }
};

struct bce_term {
  const float *x;
  float t;
  __device__ double operator()(int64_t i) const {
    const double v = x[i];
    return (v > 0 ? v : 0) - v * t + log1p(exp(-fabs(v)));
  }
};

struct mad_term {
  const float *a, *b;
  __device__ double operator()(int64_t i) const { return fabs((double)a[i] - b[i]); }
};

struct mean_term {
  const float *x;
  __device__ double operator()(int64_t i) const { return x[i]; }
};

template <class Term>
static __global__ void reduce_part_kernel(Term term, int64_t n, double *part) {
  double acc = 0.0;
  NGC_FOR(i, n) acc += term(i);
  acc = ngc_block_sum(acc);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

/* out[0] = (float)(sum of part / div), one block. */
static __global__ void reduce_final_kernel(const double *part, int nparts, double div,
                                           float *out) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += part[i];
  acc = ngc_block_sum(acc);
  if (threadIdx.x == 0) out[0] = (float)(acc / div);
}

/* out (1) = (float)(sum of term over [0, n) / n). */
template <class Term>
static negcut_status mean_of(ngc_backend *be, const char *what, Term term, int64_t n, float *out) {
  void *part = NULL; // (blocks) doubles
  const unsigned blocks = ngc_grid(n) < REDUCE_BLOCKS ? ngc_grid(n) : REDUCE_BLOCKS;
  negcut_status st = ngc_cuda_scratch(be, blocks * sizeof(double), &part, what);
  if (st) return st;
  st = NGC_LAUNCH(be, what, reduce_part_kernel<Term>, blocks, NGC_BLOCK, term, n, (double *)part);
  if (!st)
    st = NGC_LAUNCH(be, what, reduce_final_kernel, 1, NGC_BLOCK, (const double *)part,
                    (int)blocks, (double)n, out);
  ngc_cuda_free(be, part);
  return st;
}

/* ----------------------------------------------------------- cross-entropy */

/* Per row of x (M, K): mx = max, se = sum exp(x - mx) (double); fwd:
 * loss = -x0 + mx + log(se); bwd: dx = dloss (softmax - e0). */
static __global__ void xent0_kernel(const float *x, const float *dloss, float *loss, float *dx,
                                    int64_t M, int64_t K) {
  const int64_t m = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (m >= M) return; /* whole warps leave together */
  const float *xr = x + m * K; // (K)
  double mx = xr[0];
  for (int64_t k = lane; k < K; k += 32) mx = fmax(mx, (double)xr[k]);
  mx = ngc_warp_max(mx);
  double se = 0.0;
  for (int64_t k = lane; k < K; k += 32) se += exp(xr[k] - mx);
  se = ngc_warp_sum(se);
  if (loss) {
    if (lane == 0) loss[m] = (float)(-xr[0] + mx + log(se));
    return;
  }
  const double g = dloss[m];
  for (int64_t k = lane; k < K; k += 32)
    dx[m * K + k] = (float)(g * (exp(xr[k] - mx) / se - (k == 0)));
}

static negcut_status cuda_xent0_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *loss) {
  const int64_t M = x->dim[0], K = x->dim[1];
  negcut_status st = ngc_cuda_enter(be);
  if (st || M == 0) return st;
  return NGC_LAUNCH(be, "xent0_fwd", xent0_kernel,
                    (unsigned)((M + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK), NGC_BLOCK, x->data,
                    (const float *)NULL, loss->data, (float *)NULL, M, K);
}

static negcut_status cuda_xent0_bwd(ngc_backend *be, const ngc_tensor *x,
                                    const ngc_tensor *dloss, ngc_tensor *dx) {
  const int64_t M = x->dim[0], K = x->dim[1];
  negcut_status st = ngc_cuda_enter(be);
  if (st || M == 0) return st;
  return NGC_LAUNCH(be, "xent0_bwd", xent0_kernel,
                    (unsigned)((M + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK), NGC_BLOCK, x->data,
                    dloss->data, (float *)NULL, dx->data, M, K);
}

/* ---------------------------------------------------------- scalar means */

static negcut_status cuda_mse_const_fwd(ngc_backend *be, const ngc_tensor *x, float t,
                                        ngc_tensor *out) {
  negcut_status st = ngc_cuda_enter(be);
  if (st) return st;
  return mean_of(be, "mse_const_fwd", mse_term{x->data, t}, ngc_numel(x), out->data);
}

/* dx = dout * 2 (x - t) / n */
static __global__ void mse_const_bwd_kernel(const float *x, float t, float dout, float *dx,
                                            int64_t n) {
  NGC_FOR(i, n) dx[i] = (float)(__dmul_rn(__dmul_rn((double)dout, 2.0), (double)x[i] - t) / (double)n);
}

static negcut_status cuda_mse_const_bwd(ngc_backend *be, const ngc_tensor *x, float t, float dout,
                                        ngc_tensor *dx) {
  const int64_t n = ngc_numel(x);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "mse_const_bwd", mse_const_bwd_kernel, ngc_grid(n), NGC_BLOCK, x->data, t,
                    dout, dx->data, n);
}

static negcut_status cuda_bce_const_fwd(ngc_backend *be, const ngc_tensor *x, float t,
                                        ngc_tensor *out) {
  negcut_status st = ngc_cuda_enter(be);
  if (st) return st;
  return mean_of(be, "bce_const_fwd", bce_term{x->data, t}, ngc_numel(x), out->data);
}

/* dx = dout * (sigmoid(x) - t) / n */
static __global__ void bce_const_bwd_kernel(const float *x, float t, float dout, float *dx,
                                            int64_t n) {
  NGC_FOR(i, n) {
    const double sig = 1.0 / (1.0 + exp(-(double)x[i]));
    dx[i] = (float)(__dmul_rn((double)dout, sig - t) / (double)n);
  }
}

static negcut_status cuda_bce_const_bwd(ngc_backend *be, const ngc_tensor *x, float t, float dout,
                                        ngc_tensor *dx) {
  const int64_t n = ngc_numel(x);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "bce_const_bwd", bce_const_bwd_kernel, ngc_grid(n), NGC_BLOCK, x->data, t,
                    dout, dx->data, n);
}

static negcut_status cuda_mad_fwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                  ngc_tensor *out) {
  negcut_status st = ngc_cuda_enter(be);
  if (st) return st;
  return mean_of(be, "mad_fwd", mad_term{a->data, b->data}, ngc_numel(a), out->data);
}

/* da = dout sign(a - b) / n, db = -da, sign(0) = 0 (either may be NULL). */
static __global__ void mad_bwd_kernel(const float *a, const float *b, float dout, float *da,
                                      float *db, int64_t n) {
  NGC_FOR(i, n) {
    const float d = a[i] - b[i];
    const double g = (double)dout * (double)((d > 0.0f) - (d < 0.0f)) / (double)n;
    if (da) da[i] = (float)g;
    if (db) db[i] = (float)-g;
  }
}

static negcut_status cuda_mad_bwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                  float dout, ngc_tensor *da, ngc_tensor *db) {
  const int64_t n = ngc_numel(a);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0 || (!da && !db)) return st;
  return NGC_LAUNCH(be, "mad_bwd", mad_bwd_kernel, ngc_grid(n), NGC_BLOCK, a->data, b->data,
                    dout, da ? da->data : (float *)NULL, db ? db->data : (float *)NULL, n);
}

static negcut_status cuda_mean_all(ngc_backend *be, const ngc_tensor *x, ngc_tensor *out) {
  negcut_status st = ngc_cuda_enter(be);
  if (st) return st;
  return mean_of(be, "mean_all", mean_term{x->data}, ngc_numel(x), out->data);
}

extern "C" void ngc_cuda_fill_loss_ops(ngc_backend_ops *ops) {
  ops->xent0_fwd = cuda_xent0_fwd;
  ops->xent0_bwd = cuda_xent0_bwd;
  ops->mse_const_fwd = cuda_mse_const_fwd;
  ops->mse_const_bwd = cuda_mse_const_bwd;
  ops->bce_const_fwd = cuda_bce_const_fwd;
  ops->bce_const_bwd = cuda_bce_const_bwd;
  ops->mad_fwd = cuda_mad_fwd;
  ops->mad_bwd = cuda_mad_bwd;
  ops->mean_all = cuda_mean_all;
}
