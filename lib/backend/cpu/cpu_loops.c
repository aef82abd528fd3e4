/* The CPU backend's own loops: gathers the slot groups (one file per theme)
 * and holds the deterministic reductions they share. */
#include "cpu_loops.h"

void ngc_cpu_fill_loop_ops(ngc_backend_ops *ops) {
  ngc_cpu_fill_eltwise_ops(ops);
  ngc_cpu_fill_spatial_ops(ops);
  ngc_cpu_fill_norm_ops(ops);
  ngc_cpu_fill_gemm_ops(ops);
  ngc_cpu_fill_rows_ops(ops);
  ngc_cpu_fill_loss_ops(ops);
  ngc_cpu_fill_optim_ops(ops);
}

/* At most this many chunks, so their sums fit on the stack. */
#define REDUCE_MAX_CHUNKS 256
#define REDUCE_MIN_CHUNK 16384

double ngc_cpu_reduce(ngc_backend *be, int64_t n, ngc_cpu_chunk_fn fn, const void *arg) {
  double part[REDUCE_MAX_CHUNKS];
  int64_t chunk = REDUCE_MIN_CHUNK, nchunks;
  double s = 0.0;
  if (n <= 0) return 0.0;
  if ((n + chunk - 1) / chunk > REDUCE_MAX_CHUNKS)
    chunk = (n + REDUCE_MAX_CHUNKS - 1) / REDUCE_MAX_CHUNKS;
  nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, n))
  for (int64_t c = 0; c < nchunks; c++) {
    int64_t i0 = c * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
    part[c] = fn(arg, i0, i1);
  }
  for (int64_t c = 0; c < nchunks; c++) s += part[c];
  return s;
}

/* Columns per task: 64 floats of partial sums stay in registers/L1. */
#define COLSUM_W 64
/* Rows per float partial before it is folded into the double. */
#define COLSUM_ROWS 64

void ngc_cpu_colsum(ngc_backend *be, const float *x, int64_t rows, int64_t cols,
                    int64_t ld, double div, int accumulate, float *out) {
  int64_t ntask = (cols + COLSUM_W - 1) / COLSUM_W;
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, rows * cols))
  for (int64_t t = 0; t < ntask; t++) {
    int64_t j0 = t * COLSUM_W, w = cols - j0 < COLSUM_W ? cols - j0 : COLSUM_W;
    double acc[COLSUM_W] = {0};
    float f[COLSUM_W];
    for (int64_t r0 = 0; r0 < rows; r0 += COLSUM_ROWS) {
      int64_t r1 = r0 + COLSUM_ROWS < rows ? r0 + COLSUM_ROWS : rows;
      for (int64_t j = 0; j < w; j++) f[j] = 0.0f;
      for (int64_t r = r0; r < r1; r++) {
        const float *restrict xr = x + r * ld + j0;
#pragma omp simd
        for (int64_t j = 0; j < w; j++) f[j] += xr[j];
      }
      for (int64_t j = 0; j < w; j++) acc[j] += f[j];
    }
    for (int64_t j = 0; j < w; j++) {
      float v = (float)(acc[j] / div);
      out[j0 + j] = accumulate ? out[j0 + j] + v : v;
    }
  }
}
