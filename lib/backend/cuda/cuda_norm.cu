/* Instance norm and the L2 norm of rows (one warp per row), with the
 * reference's double statistics: the order of the additions differs from
 * the reference's loop, the precision does not.
 *
 * Instance norm: a plane of up to NGC_SUM_CHUNK values is one block's, which
 * computes its statistics and writes it in one launch. A larger plane (a
 * 256x256 generator's outer layers: 64 planes of 65536) is split into
 * chunks of NGC_SUM_CHUNK, one block each, so that the few planes still
 * fill the GPU: one launch computes every chunk's partial statistics, a
 * second merges them in chunk order (the same order whatever the device)
 * and writes the chunk. */
#include "cuda_kernels.cuh"

#define NORM_BLOCK 512
#define ROWS_PER_BLOCK (NGC_BLOCK / 32)

/* Chunk k of a plane of P values: [*lo, *hi). */
__device__ __forceinline__ void norm_chunk(int64_t P, int64_t k, int64_t *lo, int64_t *hi) {
  *lo = k * NGC_SUM_CHUNK;
  *hi = *lo + NGC_SUM_CHUNK < P ? *lo + NGC_SUM_CHUNK : P;
}

/* The normalised, activated value of v: (v - mean) * rstd in double,
 * rounded to float, then (act >= 0) what act_fwd would do to it. */
__device__ __forceinline__ float norm_out(float v, double mu, double r, int act, float alpha) {
  float o = (float)((v - mu) * r);
  if (act == NGC_ACT_RELU) o = o > 0.0f ? o : 0.0f;
  else if (act == NGC_ACT_LRELU) o = o > 0.0f ? o : __fmul_rn(alpha, o);
  return o;
}

/* x[i] as the norm reads it: + b[channel] in float when there is a bias,
 * the bits of a bias add before the norm. */
#define NGC_IN_X(i) (b ? __fadd_rn(xp[i], bias) : xp[i])

/* One block per chunk (blockIdx.x = plane * chunks + chunk) of x (+ b):
 * the chunk's sum and its squared deviations from its own mean (two
 * passes). With one chunk a plane, that is the plane's mean and biased
 * variance: the block writes mean, rstd = 1 / sqrt(var + eps) and
 * y = norm_out(x); with more, it leaves the two sums in part for
 * inorm_merge_kernel. Each thread reads x[i] before it writes y[i], so y
 * may be x. */
static __global__ void inorm_fwd_kernel(const float *x, const float *b, int64_t C, float *y,
                                        float *mean, float *rstd, int64_t P, int64_t chunks,
                                        double2 *part, float eps, int act, float alpha) {
  const int64_t pl = blockIdx.x / chunks;
  int64_t lo, hi;
  norm_chunk(P, blockIdx.x % chunks, &lo, &hi);
  const float *xp = x + pl * P; // (H * W)
  const float bias = b ? b[pl % C] : 0.0f;
  double s = 0.0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += NGC_IN_X(i);
  s = ngc_block_sum(s);
  const double mu = s / (double)(hi - lo);
  double v = 0.0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    const double d = NGC_IN_X(i) - mu;
    v += d * d;
  }
  v = ngc_block_sum(v);
  if (chunks > 1) {
    if (threadIdx.x == 0) part[blockIdx.x] = make_double2(s, v);
    return;
  }
  const double r = 1.0 / sqrt(v / (double)P + eps);
  float *yp = y + pl * P; // (H * W)
  for (int64_t i = threadIdx.x; i < P; i += blockDim.x)
    yp[i] = norm_out(NGC_IN_X(i), mu, r, act, alpha);
  if (threadIdx.x == 0) {
    mean[pl] = (float)mu;
    rstd[pl] = (float)r;
  }
}

/* The split planes' second launch: every thread merges its plane's chunk
 * sums in chunk order (mean = sum / P; the squared deviations from it are
 * each chunk's own plus its count times its mean's distance squared), then
 * the block writes its chunk; chunk 0 also writes mean and rstd. */
static __global__ void inorm_merge_kernel(const float *x, const float *b, int64_t C, float *y,
                                          float *mean, float *rstd, int64_t P, int64_t chunks,
                                          const double2 *part, float eps, int act, float alpha) {
  const int64_t pl = blockIdx.x / chunks, k = blockIdx.x % chunks;
  const double2 *pp = part + pl * chunks; // (chunks)
  double s = 0.0, v = 0.0;
  for (int64_t j = 0; j < chunks; j++) s += pp[j].x;
  const double mu = s / (double)P;
  for (int64_t j = 0; j < chunks; j++) {
    int64_t jl, jh;
    norm_chunk(P, j, &jl, &jh);
    const double n = (double)(jh - jl), d = pp[j].x / n - mu;
    v += pp[j].y + n * d * d;
  }
  const double r = 1.0 / sqrt(v / (double)P + eps);
  int64_t lo, hi;
  norm_chunk(P, k, &lo, &hi);
  const float *xp = x + pl * P; // (H * W)
  float *yp = y + pl * P;       // (H * W)
  const float bias = b ? b[pl % C] : 0.0f;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x)
    yp[i] = norm_out(NGC_IN_X(i), mu, r, act, alpha);
  if (k == 0 && threadIdx.x == 0) {
    mean[pl] = (float)mu;
    rstd[pl] = (float)r;
  }
}
#undef NGC_IN_X

/* Blocks for planes of P values: planes * chunks, with *chunks 1 when a
 * block takes a whole plane; an error status past CUDA's grid limit. */
static negcut_status norm_grid(ngc_backend *be, const char *what, int64_t planes, int64_t P,
                               int64_t *chunks, unsigned *blocks) {
  *chunks = ngc_sum_chunks(P);
  if (planes > 0x7fffffff / *chunks)
    return ngc_error(be->ctx, NEGCUT_ERR_LIMIT, "cuda %s: %lld planes of %lld", what,
                     (long long)planes, (long long)P);
  *blocks = (unsigned)(planes * *chunks);
  return NEGCUT_OK;
}

/* act NGC_NO_ACT: the norm alone; b NULL: no bias. */
static negcut_status inorm_fwd(ngc_backend *be, const char *what, float eps, int act, float alpha,
                               const ngc_tensor *x, const ngc_tensor *b, ngc_tensor *y,
                               ngc_tensor *mean, ngc_tensor *rstd) {
  const int64_t planes = x->dim[0] * x->dim[1], P = x->dim[2] * x->dim[3], C = x->dim[1];
  const float *bd = b ? (const float *)b->data : (const float *)NULL;
  int64_t chunks = 1;
  unsigned blocks = 0;
  negcut_status st = ngc_cuda_enter(be);
  if (st || planes == 0) return st;
  if ((st = norm_grid(be, what, planes, P, &chunks, &blocks))) return st;
  void *part = NULL; // (planes, chunks) double2
  if (chunks > 1 && (st = ngc_cuda_scratch(be, blocks * sizeof(double2), &part, what))) return st;
  st = NGC_LAUNCH(be, what, inorm_fwd_kernel, blocks, NORM_BLOCK, x->data, bd, C, y->data,
                  mean->data, rstd->data, P, chunks, (double2 *)part, eps, act, alpha);
  if (!st && chunks > 1)
    st = NGC_LAUNCH(be, what, inorm_merge_kernel, blocks, NORM_BLOCK, x->data, bd, C, y->data,
                    mean->data, rstd->data, P, chunks, (const double2 *)part, eps, act, alpha);
  ngc_cuda_free(be, part);
  return st;
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

/* dx = rstd * (dy - mean(dy) - y * mean(dy * y)) per plane, chunked as the
 * forward: each block sums dy and dy * y over its chunk; with one chunk a
 * plane it writes dx at once, with more it leaves the sums in part for
 * inorm_bwd_merge_kernel. dx may be dy. */
static __global__ void inorm_bwd_kernel(const float *y, const float *rstd, const float *dy,
                                        float *dx, int64_t P, int64_t chunks, double2 *part) {
  const int64_t pl = blockIdx.x / chunks;
  int64_t lo, hi;
  norm_chunk(P, blockIdx.x % chunks, &lo, &hi);
  const float *yp = y + pl * P, *gp = dy + pl * P; // (H * W)
  double sg = 0.0, sgy = 0.0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    sg += gp[i];
    sgy += (double)gp[i] * yp[i];
  }
  sg = ngc_block_sum(sg);
  sgy = ngc_block_sum(sgy);
  if (chunks > 1) {
    if (threadIdx.x == 0) part[blockIdx.x] = make_double2(sg, sgy);
    return;
  }
  const double mg = sg / (double)P, mgy = sgy / (double)P, r = rstd[pl];
  float *dxp = dx + pl * P; // (H * W)
  for (int64_t i = threadIdx.x; i < P; i += blockDim.x)
    dxp[i] = (float)(r * (gp[i] - mg - yp[i] * mgy));
}

static __global__ void inorm_bwd_merge_kernel(const float *y, const float *rstd, const float *dy,
                                              float *dx, int64_t P, int64_t chunks,
                                              const double2 *part) {
  const int64_t pl = blockIdx.x / chunks;
  const double2 *pp = part + pl * chunks; // (chunks)
  double sg = 0.0, sgy = 0.0;
  for (int64_t j = 0; j < chunks; j++) {
    sg += pp[j].x;
    sgy += pp[j].y;
  }
  const double mg = sg / (double)P, mgy = sgy / (double)P, r = rstd[pl];
  int64_t lo, hi;
  norm_chunk(P, blockIdx.x % chunks, &lo, &hi);
  const float *yp = y + pl * P, *gp = dy + pl * P; // (H * W)
  float *dxp = dx + pl * P;                        // (H * W)
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x)
    dxp[i] = (float)(r * (gp[i] - mg - yp[i] * mgy));
}

static negcut_status cuda_inorm_bwd(ngc_backend *be, const ngc_tensor *y, const ngc_tensor *rstd,
                                    const ngc_tensor *dy, ngc_tensor *dx) {
  const int64_t planes = y->dim[0] * y->dim[1], P = y->dim[2] * y->dim[3];
  int64_t chunks = 1;
  unsigned blocks = 0;
  negcut_status st = ngc_cuda_enter(be);
  if (st || planes == 0) return st;
  if ((st = norm_grid(be, "inorm_bwd", planes, P, &chunks, &blocks))) return st;
  void *part = NULL; // (planes, chunks) double2
  if (chunks > 1 && (st = ngc_cuda_scratch(be, blocks * sizeof(double2), &part, "inorm_bwd")))
    return st;
  st = NGC_LAUNCH(be, "inorm_bwd", inorm_bwd_kernel, blocks, NORM_BLOCK, y->data, rstd->data,
                  dy->data, dx->data, P, chunks, (double2 *)part);
  if (!st && chunks > 1)
    st = NGC_LAUNCH(be, "inorm_bwd", inorm_bwd_merge_kernel, blocks, NORM_BLOCK, y->data,
                    rstd->data, dy->data, dx->data, P, chunks, (const double2 *)part);
  ngc_cuda_free(be, part);
  return st;
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
