/* Kernels the cuDNN and cuBLAS slots need around their library calls: bias
 * add and bias gradient, deterministic column sums, bfloat16 conversion. */
#include <cuda_bf16.h>

#include "cuda_kernels.cuh"

/* ------------------------------------------------------------------ bias */

static __global__ void bias_add_kernel(float *y, const float *b, int64_t total, int64_t c, int64_t hw) {
  NGC_FOR(i, total) y[i] += b[(i / hw) % c];
}

extern "C" negcut_status ngc_cuda_bias_add(ngc_backend *be, float *y, const float *b, int64_t n,
                                           int64_t c, int64_t hw) {
  const int64_t total = n * c * hw;
  if (total == 0) return NEGCUT_OK;
  return NGC_LAUNCH(be, "bias add", bias_add_kernel, ngc_grid(total), NGC_BLOCK, y, b, total, c,
                    hw);
}

/* db[ch] += (float)(sum over n, hw of dy), the sum in double as the
 * reference's. Where the planes hold at most NGC_SUM_CHUNK values, a
 * channel (its plane in every sample) is one block's; larger planes are
 * split into chunks, one block each (blockIdx.x = (ch * n + sample) *
 * chunks + chunk), whose sums bias_grad_merge_kernel adds in order. */
static __global__ void bias_grad_kernel(const float *dy, float *db, int64_t n, int64_t c,
                                        int64_t hw, int64_t chunks, double *part) {
  double acc = 0.0;
  if (!part) { /* the whole channel */
    const int64_t ch = blockIdx.x;
    for (int64_t s = 0; s < n; s++) {
      const float *row = dy + (s * c + ch) * hw; // (HW)
      for (int64_t j = threadIdx.x; j < hw; j += blockDim.x) acc += row[j];
    }
    acc = ngc_block_sum(acc);
    if (threadIdx.x == 0) db[ch] += (float)acc;
    return;
  }
  const int64_t plane = blockIdx.x / chunks, ch = plane / n, s = plane % n;
  const int64_t lo = blockIdx.x % chunks * NGC_SUM_CHUNK;
  const int64_t hi = lo + NGC_SUM_CHUNK < hw ? lo + NGC_SUM_CHUNK : hw;
  const float *row = dy + (s * c + ch) * hw; // (HW)
  for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) acc += row[j];
  acc = ngc_block_sum(acc);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

static __global__ void bias_grad_merge_kernel(const double *part, float *db, int64_t c,
                                              int64_t per_channel) {
  NGC_FOR(ch, c) {
    double acc = 0.0;
    for (int64_t k = 0; k < per_channel; k++) acc += part[ch * per_channel + k];
    db[ch] += (float)acc;
  }
}

extern "C" negcut_status ngc_cuda_bias_grad(ngc_backend *be, const float *dy, float *db,
                                            int64_t n, int64_t c, int64_t hw) {
  if (c == 0 || n == 0) return NEGCUT_OK; /* no samples: nothing to add */
  const int64_t chunks = ngc_sum_chunks(hw), per_channel = n * chunks;
  if (c > 0x7fffffff / (chunks > 1 ? per_channel : 1))
    return ngc_error(be->ctx, NEGCUT_ERR_LIMIT, "cuda bias gradient: %lld channels of %lld",
                     (long long)c, (long long)(n * hw));
  if (chunks == 1)
    return NGC_LAUNCH(be, "bias gradient", bias_grad_kernel, (unsigned)c, NGC_BLOCK, dy, db, n,
                      c, hw, (int64_t)1, (double *)NULL);
  void *part = NULL; // (c, n, chunks) doubles
  const unsigned blocks = (unsigned)(c * per_channel);
  negcut_status st = ngc_cuda_scratch(be, blocks * sizeof(double), &part, "bias gradient");
  if (st) return st;
  st = NGC_LAUNCH(be, "bias gradient", bias_grad_kernel, blocks, NGC_BLOCK, dy, db, n, c, hw,
                  chunks, (double *)part);
  if (!st)
    st = NGC_LAUNCH(be, "bias gradient", bias_grad_merge_kernel, ngc_grid(c), NGC_BLOCK,
                    (const double *)part, db, c, per_channel);
  ngc_cuda_free(be, part);
  return st;
}

/* ------------------------------------------------------------ column sums */

#define COLSUM_TX 32   /* columns per block */
#define COLSUM_TY 8    /* row phases per block */
#define COLSUM_CHUNKS 256 /* at most this many row chunks */
#define COLSUM_MIN_ROWS 64 /* at least this many rows per chunk */

/* Pass 1: part[b, chunk, j] = sum of x[b, r, j] over the chunk's rows; the
 * COLSUM_TY row phases are added in order 0, 1, ... */
static __global__ void colsum_part_kernel(const float *x, int64_t rows, int64_t cols, int64_t chunk_rows,
                                   int64_t chunks, double *part) {
  __shared__ double acc[COLSUM_TY][COLSUM_TX];
  const int64_t j = (int64_t)blockIdx.x * COLSUM_TX + threadIdx.x;
  const int64_t chunk = blockIdx.y, b = blockIdx.z;
  const int64_t r0 = chunk * chunk_rows, r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
  const float *xb = x + b * rows * cols; // (rows, cols)
  double s = 0.0;
  if (j < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += COLSUM_TY) s += xb[r * cols + j];
  acc[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    double t = 0.0;
    for (int k = 0; k < COLSUM_TY; k++) t += acc[k][threadIdx.x];
    part[(b * chunks + chunk) * cols + j] = t;
  }
}

/* Pass 2: the chunks of each column in order. */
static __global__ void colsum_final_kernel(const double *part, int64_t batch, int64_t cols,
                                    int64_t chunks, double div, int accumulate, float *out) {
  NGC_FOR(i, batch * cols) {
    const int64_t b = i / cols, j = i % cols;
    double s = 0.0;
    for (int64_t k = 0; k < chunks; k++) s += part[(b * chunks + k) * cols + j];
    const float v = (float)(s / div);
    out[i] = accumulate ? out[i] + v : v;
  }
}

extern "C" negcut_status ngc_cuda_colsum(ngc_backend *be, const float *x, int64_t batch,
                                         int64_t rows, int64_t cols, double div, int accumulate,
                                         float *out) {
  if (batch == 0 || cols == 0) return NEGCUT_OK;
  int64_t chunk_rows = (rows + COLSUM_CHUNKS - 1) / COLSUM_CHUNKS;
  if (chunk_rows < COLSUM_MIN_ROWS) chunk_rows = COLSUM_MIN_ROWS;
  const int64_t chunks = rows > 0 ? (rows + chunk_rows - 1) / chunk_rows : 1;
  const int64_t col_blocks = (cols + COLSUM_TX - 1) / COLSUM_TX;
  if (batch > 65535 || col_blocks > 0x7fffffff)
    return ngc_error(be->ctx, NEGCUT_ERR_LIMIT, "cuda column sum: %lld x %lld columns",
                     (long long)batch, (long long)cols);
  void *part = NULL; // (batch, chunks, cols) doubles
  negcut_status st =
      ngc_cuda_scratch(be, (size_t)(batch * chunks * cols) * sizeof(double), &part, "column sum");
  if (st) return st;
  const dim3 grid((unsigned)col_blocks, (unsigned)chunks, (unsigned)batch);
  const dim3 block(COLSUM_TX, COLSUM_TY);
  st = NGC_LAUNCH(be, "column sum", colsum_part_kernel, grid, block, x, rows, cols, chunk_rows,
                  chunks, (double *)part);
  if (!st)
    st = NGC_LAUNCH(be, "column sum", colsum_final_kernel, ngc_grid(batch * cols), NGC_BLOCK,
                    (const double *)part, batch, cols, chunks, div, accumulate, out);
  ngc_cuda_free(be, part);
  return st;
}

/* --------------------------------------------------------------- bfloat16 */

static __global__ void to_bf16_kernel(const float *src, __nv_bfloat16 *dst, int64_t n) {
  NGC_FOR(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

/* dst = src, plus b[channel] when b is given: the bits of a conversion and
 * a bias add in a row (the conversion is exact), in one pass. */
static __global__ void from_bf16_kernel(const __nv_bfloat16 *src, float *dst, const float *b,
                                        int64_t n, int64_t c, int64_t hw) {
  NGC_FOR(i, n) {
    const float v = __bfloat162float(src[i]);
    dst[i] = b ? v + b[(i / hw) % c] : v;
  }
}

extern "C" negcut_status ngc_cuda_to_bf16(ngc_backend *be, const float *src, void *dst,
                                          int64_t n) {
  if (n == 0) return NEGCUT_OK;
  return NGC_LAUNCH(be, "to bf16", to_bf16_kernel, ngc_grid(n), NGC_BLOCK, src,
                    (__nv_bfloat16 *)dst, n);
}

extern "C" negcut_status ngc_cuda_from_bf16(ngc_backend *be, const void *src, float *dst,
                                            const float *b, int64_t n, int64_t c, int64_t hw) {
  if (n == 0) return NEGCUT_OK;
  return NGC_LAUNCH(be, "from bf16", from_bf16_kernel, ngc_grid(n), NGC_BLOCK,
                    (const __nv_bfloat16 *)src, dst, b, n, c, hw);
}
