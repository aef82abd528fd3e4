/* Linear layers and the batched matmul on cuBLAS (fp32, no TF32).
 *
 * cuBLAS is column-major. A row-major (r, c) matrix at p is, to cuBLAS, the
 * column-major (c, r) matrix of its transpose with leading dimension c. So
 * each row-major product is computed as the product of the transposes,
 * e.g. y = x w^T as y^T = w x^T: "w^T" below means the column-major view of
 * row-major w, and so on. Bias sums are own deterministic reductions. */
#include <limits.h>

#include "cuda.h"

/* cuBLAS takes int sizes. */
static negcut_status fits(ngc_backend *be, const char *what, int64_t a, int64_t b, int64_t c) {
  if (a > INT_MAX || b > INT_MAX || c > INT_MAX || a * b > INT_MAX || b * c > INT_MAX ||
      a * c > INT_MAX)
    return ngc_error(be->ctx, NEGCUT_ERR_LIMIT, "cuda %s: a matrix has 2^31 or more elements",
                     what);
  return NEGCUT_OK;
}

static int64_t ld(int64_t v) { return v > 1 ? v : 1; }

static negcut_status zero(ngc_backend *be, const char *what, float *p, int64_t n) {
  return ngc_cuda_zero(be, p, (size_t)n * sizeof(float), what);
}

/* Column-major C (m, n) = op(A) op(B) + beta C with op(A) (m, k), op(B)
 * (k, n), batch times with the given strides (batch 1: plain gemm). With
 * k = 0 the product is empty: C = beta C. */
static negcut_status gemm(ngc_backend *be, const char *what, cublasOperation_t ta,
                          cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const float *a,
                          int64_t lda, int64_t stride_a, const float *b, int64_t ldb,
                          int64_t stride_b, float beta, float *c, int64_t ldc, int64_t stride_c,
                          int64_t batch) {
  const float one = 1.0f;
  cublasHandle_t h = ngc_cuda_of(be)->blas;
  if (m == 0 || n == 0 || batch == 0) return NEGCUT_OK;
  if (k == 0) {
    if (beta != 0.0f) return NEGCUT_OK; /* only beta 1 is used with k = 0: C unchanged */
    return zero(be, what, c, batch > 1 ? batch * stride_c : m * n);
  }
  if (batch > INT_MAX)
    return ngc_error(be->ctx, NEGCUT_ERR_LIMIT, "cuda %s: batch %lld too large", what,
                     (long long)batch);
  if (ngc_cuda_skip(be, what)) return NEGCUT_OK;
  if (batch == 1)
    return ngc_cuda_check_blas(be,
                               cublasSgemm(h, ta, tb, (int)m, (int)n, (int)k, &one, a,
                                           (int)ld(lda), b, (int)ld(ldb), &beta, c,
                                           (int)ld(ldc)),
                               what);
  return ngc_cuda_check_blas(
      be,
      cublasSgemmStridedBatched(h, ta, tb, (int)m, (int)n, (int)k, &one, a, (int)ld(lda),
                                stride_a, b, (int)ld(ldb), stride_b, &beta, c, (int)ld(ldc),
                                stride_c, (int)batch),
      what);
}

/* y (M, N) = x (M, K) w (N, K)^T + b (N) */
static negcut_status cuda_linear_fwd(ngc_backend *be, const ngc_tensor *x, const ngc_tensor *w,
                                     const ngc_tensor *b, ngc_tensor *y) {
  const int64_t M = x->dim[0], K = x->dim[1], N = w->dim[0];
  negcut_status st = ngc_cuda_enter(be);
  if (!st) st = fits(be, "linear_fwd", M, K, N);
  /* y^T (N, M) = (w^T)^T (N, K) . x^T (K, M) */
  if (!st)
    st = gemm(be, "linear_fwd", CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, w->data, K, 0, x->data, K, 0,
              0.0f, y->data, N, 0, 1);
  if (!st && b) st = ngc_cuda_bias_add(be, y->data, b->data, M, N, 1);
  return st;
}

/* dx = dy w (assigned); dw += dy^T x; db += column sums of dy. */
static negcut_status cuda_linear_bwd(ngc_backend *be, const ngc_tensor *x, const ngc_tensor *w,
                                     const ngc_tensor *dy, ngc_tensor *dx, ngc_tensor *dw,
                                     ngc_tensor *db) {
  const int64_t M = x->dim[0], K = x->dim[1], N = w->dim[0];
  negcut_status st = ngc_cuda_enter(be);
  if (!st) st = fits(be, "linear_bwd", M, K, N);
  /* dx^T (K, M) = w^T (K, N) . dy^T (N, M) */
  if (!st && dx)
    st = gemm(be, "linear_bwd dx", CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, w->data, K, 0, dy->data,
              N, 0, 0.0f, dx->data, K, 0, 1);
  /* dw^T (K, N) += x^T (K, M) . (dy^T)^T (M, N) */
  if (!st && dw)
    st = gemm(be, "linear_bwd dw", CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, x->data, K, 0, dy->data,
              N, 0, 1.0f, dw->data, K, 0, 1);
  if (!st && db) st = ngc_cuda_colsum(be, dy->data, 1, M, N, 1.0, 1, db->data);
  return st;
}

/* c (B, M, N) = a (B, M, K) b (B, N, K)^T: per batch the linear forward. */
static negcut_status cuda_bmm_fwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                  ngc_tensor *c) {
  const int64_t B = a->dim[0], M = a->dim[1], K = a->dim[2], N = b->dim[1];
  negcut_status st = ngc_cuda_enter(be);
  if (!st) st = fits(be, "bmm_fwd", M, K, N);
  /* c_i^T (N, M) = (b_i^T)^T (N, K) . a_i^T (K, M) */
  if (!st)
    st = gemm(be, "bmm_fwd", CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, b->data, K, N * K, a->data, K,
              M * K, 0.0f, c->data, N, M * N, B);
  return st;
}

/* da = dc b, db = dc^T a, both assigned (both are activations). */
static negcut_status cuda_bmm_bwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                  const ngc_tensor *dc, ngc_tensor *da, ngc_tensor *db) {
  const int64_t B = a->dim[0], M = a->dim[1], K = a->dim[2], N = b->dim[1];
  negcut_status st = ngc_cuda_enter(be);
  if (!st) st = fits(be, "bmm_bwd", M, K, N);
  /* da_i^T (K, M) = b_i^T (K, N) . dc_i^T (N, M) */
  if (!st && da)
    st = gemm(be, "bmm_bwd da", CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, b->data, K, N * K, dc->data,
              N, M * N, 0.0f, da->data, K, M * K, B);
  /* db_i^T (K, N) = a_i^T (K, M) . (dc_i^T)^T (M, N) */
  if (!st && db)
    st = gemm(be, "bmm_bwd db", CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, a->data, K, M * K, dc->data,
              N, M * N, 0.0f, db->data, K, N * K, B);
  return st;
}

void ngc_cuda_fill_gemm_ops(ngc_backend_ops *ops) {
  ops->linear_fwd = cuda_linear_fwd;
  ops->linear_bwd = cuda_linear_bwd;
  ops->bmm_fwd = cuda_bmm_fwd;
  ops->bmm_bwd = cuda_bmm_bwd;
}
