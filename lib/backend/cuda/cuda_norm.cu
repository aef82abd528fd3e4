/* Instance norm (one block per (n, c) plane) and the L2 norm of rows (one
 * warp per row), with the reference's double statistics: the order of the
 * additions differs from the reference's loop, the precision does not. */
#include "cuda_kernels.cuh"

#define NORM_BLOCK 512
#define ROWS_PER_BLOCK (NGC_BLOCK / 32)

/* Per plane of x (+ b[channel] when b is given, added in float as a bias
 * add before the norm would): mean, biased variance (two passes), rstd =
 * 1 / sqrt(var + eps), y = (x - mean) * rstd, then (act >= 0) the
 * activation act_fwd applies, on the rounded float: the same bits as the
 * slots one after the other. Each thread reads x[i] before it writes y[i],
 * so y may be x. */
static __global__ void inorm_fwd_kernel(const float *x, const float *b, int64_t C, float *y,
                                        float *mean, float *rstd, int64_t P, float eps, int act,
                                        float alpha) {
  const int64_t pl = blockIdx.x;
  const float *xp = x + pl * P; // (H * W)
  float *yp = y + pl * P;       // (H * W)
  const float bias = b ? b[pl % C] : 0.0f;
#define NGC_IN_X(i) (b ? __fadd_rn(xp[i], bias) : xp[i])
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < P; i += blockDim.x) s += NGC_IN_X(i);
  const double mu = ngc_block_sum(s) / (double)P;
  double v = 0.0;
  for (int64_t i = threadIdx.x; i < P; i += blockDim.x) {
    const double d = NGC_IN_X(i) - mu;
    v += d * d;
  }
  const double var = ngc_block_sum(v) / (double)P;
  const double r = 1.0 / sqrt(var + eps);
  for (int64_t i = threadIdx.x; i < P; i += blockDim.x) {
    float o = (float)((NGC_IN_X(i) - mu) * r);
    if (act == NGC_ACT_RELU) o = o > 0.0f ? o : 0.0f;
    else if (act == NGC_ACT_LRELU) o = o > 0.0f ? o : __fmul_rn(alpha, o);
    yp[i] = o;
  }
#undef NGC_IN_X
  if (threadIdx.x == 0) {
    mean[pl] = (float)mu;
    rstd[pl] = (float)r;
  }
}

/* act NGC_NO_ACT: the norm alone; b NULL: no bias. */
static negcut_status inorm_fwd(ngc_backend *be, const char *what, float eps, int act, float alpha,
                               const ngc_tensor *x, const ngc_tensor *b, ngc_tensor *y,
                               ngc_tensor *mean, ngc_tensor *rstd) {
  const int64_t planes = x->dim[0] * x->dim[1], P = x->dim[2] * x->dim[3];
  negcut_status st = ngc_cuda_enter(be);
  if (st || planes == 0) return st;
  if (planes > 0x7fffffff)
    return ngc_error(be->ctx, NEGCUT_ERR_LIMIT, "cuda %s: %lld planes", what, (long long)planes);
  return NGC_LAUNCH(be, what, inorm_fwd_kernel, (unsigned)planes, NORM_BLOCK, x->data,
                    b ? (const float *)b->data : (const float *)NULL, x->dim[1], y->data,
                    mean->data, rstd->data, P, eps, act, alpha);
}

static negcut_status cuda_inorm_fwd(ngc_backend *be, float eps, const ngc_tensor *x,
                                    ngc_tensor *y, ngc_tensor *mean, ngc_tensor *rstd) {
  return inorm_fwd(be, "inorm_fwd", eps, NGC_NO_ACT, 0.0f, x, NULL, y, mean, rstd);
}

static negcut_status cuda_inorm_act_fwd(ngc_backend *be, float eps, ngc_act act, float alpha,
                                        const ngc_tensor *x, ngc_tensor *y, ngc_tensor *mean,
                                        ngc_tensor *rstd) {
  if (act != NGC_ACT_RELU && act != NGC_ACT_LRELU)
    return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL, "cuda inorm_act_fwd: activation %d", (int)act);
  return inorm_fwd(be, "inorm_act_fwd", eps, (int)act, alpha, x, NULL, y, mean, rstd);
}

static negcut_status cuda_inorm_bias_fwd(ngc_backend *be, float eps, int act, float alpha,
                                         const ngc_tensor *x, const ngc_tensor *b, ngc_tensor *y,
                                         ngc_tensor *mean, ngc_tensor *rstd) {
  if (act != NGC_NO_ACT && act != NGC_ACT_RELU && act != NGC_ACT_LRELU)
    return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL, "cuda inorm_bias_fwd: activation %d", act);
  return inorm_fwd(be, "inorm_bias_fwd", eps, act, alpha, x, b, y, mean, rstd);
}

/* dx = rstd * (dy - mean(dy) - y * mean(dy * y)) per plane; dx may be dy. */
static __global__ void inorm_bwd_kernel(const float *y, const float *rstd, const float *dy,
                                        float *dx, int64_t P) {
  const int64_t pl = blockIdx.x;
  const float *yp = y + pl * P, *gp = dy + pl * P; // (H * W)
  float *dxp = dx + pl * P;                        // (H * W)
  double sg = 0.0, sgy = 0.0;
  for (int64_t i = threadIdx.x; i < P; i += blockDim.x) {
    sg += gp[i];
    sgy += (double)gp[i] * yp[i];
  }
  const double mg = ngc_block_sum(sg) / (double)P;
  const double mgy = ngc_block_sum(sgy) / (double)P;
  const double r = rstd[pl];
  for (int64_t i = threadIdx.x; i < P; i += blockDim.x)
    dxp[i] = (float)(r * (gp[i] - mg - yp[i] * mgy));
}

static negcut_status cuda_inorm_bwd(ngc_backend *be, const ngc_tensor *y, const ngc_tensor *rstd,
                                    const ngc_tensor *dy, ngc_tensor *dx) {
  const int64_t planes = y->dim[0] * y->dim[1], P = y->dim[2] * y->dim[3];
  negcut_status st = ngc_cuda_enter(be);
  if (st || planes == 0) return st;
  if (planes > 0x7fffffff)
    return ngc_error(be->ctx, NEGCUT_ERR_LIMIT, "cuda inorm_bwd: %lld planes", (long long)planes);
  return NGC_LAUNCH(be, "inorm_bwd", inorm_bwd_kernel, (unsigned)planes, NORM_BLOCK, y->data,
                    rstd->data, dy->data, dx->data, P);
}

/* Per row of x (M, C): norm = ||x||, y = x / (norm + eps); one warp a row,
 * each lane reading and writing the same columns, so y may be x. */
static __global__ void l2norm_fwd_kernel(const float *x, float *y, float *norm, int64_t M,
                                         int64_t C, float eps) {
  const int64_t m = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (m >= M) return; /* whole warps leave together */
  const float *xr = x + m * C; // (C)
  double ss = 0.0;
  for (int64_t c = lane; c < C; c += 32) ss += (double)xr[c] * xr[c];
  const double nrm = sqrt(ngc_warp_sum(ss));
  for (int64_t c = lane; c < C; c += 32) y[m * C + c] = (float)(xr[c] / (nrm + eps));
  if (lane == 0) norm[m] = (float)nrm;
}

/* With d = norm + eps: dx = dy / d - x (dy . x) / (d^2 norm); the second
 * term is 0 at norm 0, as the reference's. */
static __global__ void l2norm_bwd_kernel(const float *x, const float *norm, const float *dy,
                                         float *dx, int64_t M, int64_t C, float eps) {
  const int64_t m = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (m >= M) return;
  const float *xr = x + m * C, *gr = dy + m * C; // (C)
  double dot = 0.0;
  for (int64_t c = lane; c < C; c += 32) dot += (double)gr[c] * xr[c];
  dot = ngc_warp_sum(dot);
  const double nrm = norm[m], d = nrm + eps;
  const double k = nrm > 0.0 ? dot / (d * d * nrm) : 0.0;
  for (int64_t c = lane; c < C; c += 32) dx[m * C + c] = (float)(gr[c] / d - xr[c] * k);
}

static unsigned row_blocks(int64_t M) {
  return (unsigned)((M + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
}

static negcut_status cuda_l2norm_fwd(ngc_backend *be, float eps, const ngc_tensor *x,
                                     ngc_tensor *y, ngc_tensor *norm) {
  const int64_t M = x->dim[0], C = ngc_numel(x) / (M ? M : 1);
  negcut_status st = ngc_cuda_enter(be);
  if (st || M == 0) return st;
  return NGC_LAUNCH(be, "l2norm_fwd", l2norm_fwd_kernel, row_blocks(M), NGC_BLOCK, x->data,
                    y->data, norm->data, M, C, eps);
}

static negcut_status cuda_l2norm_bwd(ngc_backend *be, float eps, const ngc_tensor *x,
                                     const ngc_tensor *norm, const ngc_tensor *dy,
                                     ngc_tensor *dx) {
  const int64_t M = x->dim[0], C = ngc_numel(x) / (M ? M : 1);
  negcut_status st = ngc_cuda_enter(be);
  if (st || M == 0) return st;
  return NGC_LAUNCH(be, "l2norm_bwd", l2norm_bwd_kernel, row_blocks(M), NGC_BLOCK, x->data,
                    norm->data, dy->data, dx->data, M, C, eps);
}

extern "C" void ngc_cuda_fill_norm_ops(ngc_backend_ops *ops) {
  ops->inorm_fwd = cuda_inorm_fwd;
  ops->inorm_act_fwd = cuda_inorm_act_fwd;
  ops->inorm_bias_fwd = cuda_inorm_bias_fwd;
  ops->inorm_bwd = cuda_inorm_bwd;
  ops->l2norm_fwd = cuda_l2norm_fwd;
  ops->l2norm_bwd = cuda_l2norm_bwd;
}
