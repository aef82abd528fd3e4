/* CPU linear and batched matmul through OpenBLAS's or oneDNN's sgemm
 * (ngc_cpu_pick_gemm). Both run single-threaded: OpenBLAS is set so at open
 * (cpu_backend.c) and oneDNN runs one thread inside a parallel region. We
 * split C into one block per thread of the budget and each thread calls
 * sgemm on its own block, so there is only ever one pool of threads. Each C
 * element is reduced inside one sgemm call, so results depend on the thread
 * count only through the library's blocking. */
#include <cblas.h>
#include <omp.h>

#include "cpu.h"
#include "cpu_loops.h"

/* Below this, one thread: the team wake-up costs more than it saves. */
#define GEMM_PAR_MIN_FLOP (1 << 20)
/* Row blocks start at multiples of this (OpenBLAS's micro-kernel height). */
#define GEMM_ROW_ALIGN 16

/* C[i] (M, N) = op(A[i]) (M, K) op(B[i]) (K, N) + beta C[i], i < batch;
 * with bias (N), C starts as bias in every row and beta is taken as 1. */
typedef struct gemm_desc {
  int64_t batch, m, n, k;
  enum CBLAS_TRANSPOSE ta, tb;
  const float *a;
  int64_t lda, sa; /* leading dim, batch stride */
  const float *b;
  int64_t ldb, sb;
  float *c;
  int64_t ldc, sc;
  float beta;
  const float *bias;
} gemm_desc;

/* Rows [r0, r1) and columns [j0, j1) of C in batch bi. Returns 0, or
 * oneDNN's status when its sgemm fails (out of memory for its packing). */
static int gemm_block(const gemm_desc *g, ngc_cpu_gemm engine, int64_t bi, int64_t r0,
                      int64_t r1, int64_t j0, int64_t j1) {
  float *c = g->c + bi * g->sc + r0 * g->ldc + j0;
  float beta = g->beta;
  if (r1 <= r0 || j1 <= j0) return 0;
  if (g->bias) {
    for (int64_t r = 0; r < r1 - r0; r++)
      for (int64_t j = 0; j < j1 - j0; j++) c[r * g->ldc + j] = g->bias[j0 + j];
    beta = 1.0f;
  }
  if (g->k == 0) {
    /* No products: C = beta C. A and B are empty and may be NULL, which
     * oneDNN refuses. */
    for (int64_t r = 0; r < r1 - r0; r++)
      for (int64_t j = 0; j < j1 - j0; j++)
        c[r * g->ldc + j] = beta == 0.0f ? 0.0f : beta * c[r * g->ldc + j];
    return 0;
  }
  const float *a = g->a + bi * g->sa + (g->ta == CblasNoTrans ? r0 * g->lda : r0);
  const float *b = g->b + bi * g->sb + (g->tb == CblasTrans ? j0 * g->ldb : j0);
  if (engine == NGC_CPU_GEMM_ONEDNN)
    return (int)dnnl_sgemm(g->ta == CblasTrans ? 'T' : 'N', g->tb == CblasTrans ? 'T' : 'N',
                           r1 - r0, j1 - j0, g->k, 1.0f, a, g->lda, b, g->ldb, beta, c, g->ldc);
  cblas_sgemm(CblasRowMajor, g->ta, g->tb, (blasint)(r1 - r0), (blasint)(j1 - j0),
              (blasint)g->k, 1.0f, a, (blasint)g->lda, b, (blasint)g->ldb, beta, c,
              (blasint)g->ldc);
  return 0;
}

/* Boundary t of T even parts of [0, total), aligned to `align`. */
static int64_t split_at(int64_t total, int t, int T, int64_t align) {
  if (t >= T) return total;
  int64_t b = total * t / T;
  b = (b + align / 2) / align * align;
  return b < total ? b : total;
}

/* Splits the batch-flattened rows of C over the threads (each thread may
 * cover the end of one batch and the start of the next), or, when there are
 * too few rows, the columns. */
static negcut_status gemm_run(ngc_backend *be, const gemm_desc *g) {
  const int64_t rows = g->batch * g->m;
  const double flop = 2.0 * (double)rows * (double)g->n * (double)g->k;
  const int threads = (int)ngc_cpu_of(be)->threads;
  const ngc_cpu_gemm engine = (ngc_cpu_gemm)ngc_cpu_of(be)->gemm;
  int nt = flop < GEMM_PAR_MIN_FLOP ? 1 : threads;
  int err = 0;
  if (rows == 0 || g->n == 0) return NEGCUT_OK;
  if (nt <= 1) {
    /* Outside a parallel region oneDNN would start the whole budget. */
    omp_set_num_threads(1);
    for (int64_t bi = 0; bi < g->batch && !err; bi++)
      err = gemm_block(g, engine, bi, 0, g->m, 0, g->n);
    omp_set_num_threads(threads);
  } else {
    const int by_rows = rows >= (int64_t)nt * GEMM_ROW_ALIGN || rows >= g->n;
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      int mine = 0;
      if (by_rows) {
        int64_t r = split_at(rows, t, T, GEMM_ROW_ALIGN);
        const int64_t r1 = split_at(rows, t + 1, T, GEMM_ROW_ALIGN);
        while (r < r1 && !mine) {
          int64_t bi = r / g->m, i0 = r % g->m;
          int64_t e = (bi + 1) * g->m < r1 ? (bi + 1) * g->m : r1;
          mine = gemm_block(g, engine, bi, i0, i0 + (e - r), 0, g->n);
          r = e;
        }
      } else {
        int64_t j0 = split_at(g->n, t, T, GEMM_ROW_ALIGN), j1 = split_at(g->n, t + 1, T, GEMM_ROW_ALIGN);
        for (int64_t bi = 0; bi < g->batch && !mine; bi++)
          mine = gemm_block(g, engine, bi, 0, g->m, j0, j1);
      }
      if (mine) {
#pragma omp atomic write
        err = mine;
      }
    }
  }
  return err ? ngc_cpu_check(be, (dnnl_status_t)err, "sgemm") : NEGCUT_OK;
}

/* y (M, N) = x (M, K) w (N, K)^T + b (N) */
static negcut_status cpu_linear_fwd(ngc_backend *be, const ngc_tensor *x,
                                    const ngc_tensor *w, const ngc_tensor *b,
                                    ngc_tensor *y) {
  const int64_t M = ngc_d(x, 0), K = ngc_d(x, 1), N = ngc_d(w, 0);
  gemm_desc g = {1, M, N, K, CblasNoTrans, CblasTrans, x->data, K, 0, w->data, K, 0,
                 y->data, N, 0, 0.0f, b ? b->data : NULL};
  ngc_cpu_enter(be);
  return gemm_run(be, &g);
}

/* dx (M, K) = dy (M, N) w (N, K); dw (N, K) += dy^T x; db (N) += colsum dy. */
static negcut_status cpu_linear_bwd(ngc_backend *be, const ngc_tensor *x,
                                    const ngc_tensor *w, const ngc_tensor *dy,
                                    ngc_tensor *dx, ngc_tensor *dw, ngc_tensor *db) {
  const int64_t M = ngc_d(dy, 0), N = ngc_d(dy, 1), K = ngc_d(w, 1);
  ngc_cpu_enter(be);
  if (dx) {
    gemm_desc g = {1, M, K, N, CblasNoTrans, CblasNoTrans, dy->data, N, 0, w->data, K, 0,
                   dx->data, K, 0, 0.0f, NULL};
    negcut_status st = gemm_run(be, &g);
    if (st) return st;
  }
  if (dw) {
    gemm_desc g = {1, N, K, M, CblasTrans, CblasNoTrans, dy->data, N, 0, x->data, K, 0,
                   dw->data, K, 0, 1.0f, NULL};
    negcut_status st = gemm_run(be, &g);
    if (st) return st;
  }
  if (db) ngc_cpu_colsum(be, dy->data, M, N, N, 1.0, 1, db->data);
  return NEGCUT_OK;
}

/* c (B, M, N) = a (B, M, K) b (B, N, K)^T */
static negcut_status cpu_bmm_fwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                 ngc_tensor *c) {
  const int64_t B = ngc_d(a, 0), M = ngc_d(a, 1), K = ngc_d(a, 2), N = ngc_d(b, 1);
  gemm_desc g = {B, M, N, K, CblasNoTrans, CblasTrans, a->data, K, M * K, b->data, K, N * K,
                 c->data, N, M * N, 0.0f, NULL};
  ngc_cpu_enter(be);
  return gemm_run(be, &g);
}

/* da (B, M, K) = dc b; db (B, N, K) = dc^T a; both assigned. */
static negcut_status cpu_bmm_bwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                 const ngc_tensor *dc, ngc_tensor *da, ngc_tensor *db) {
  const int64_t B = ngc_d(a, 0), M = ngc_d(a, 1), K = ngc_d(a, 2), N = ngc_d(b, 1);
  ngc_cpu_enter(be);
  if (da) {
    gemm_desc g = {B, M, K, N, CblasNoTrans, CblasNoTrans, dc->data, N, M * N, b->data, K,
                   N * K, da->data, K, M * K, 0.0f, NULL};
    negcut_status st = gemm_run(be, &g);
    if (st) return st;
  }
  if (db) {
    gemm_desc g = {B, N, K, M, CblasTrans, CblasNoTrans, dc->data, N, M * N, a->data, K,
                   M * K, db->data, K, N * K, 0.0f, NULL};
    return gemm_run(be, &g);
  }
  return NEGCUT_OK;
}

void ngc_cpu_fill_gemm_ops(ngc_backend_ops *ops) {
  ops->linear_fwd = cpu_linear_fwd;
  ops->linear_bwd = cpu_linear_bwd;
  ops->bmm_fwd = cpu_bmm_fwd;
  ops->bmm_bwd = cpu_bmm_bwd;
}
