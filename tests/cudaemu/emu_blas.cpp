/* cudaemu: the cuBLAS calls the backend makes, column-major as cuBLAS,
 * computed with OpenBLAS when the stream reaches them.
 *
 * Checked as cuBLAS checks them: the leading dimensions; and what would
 * only go wrong on a GPU: operands outside device memory, and a call
 * queued while a graph is captured without a workspace of the caller's
 * (cublasSetStream drops the workspace; cuBLAS would then allocate one
 * inside the capture). */
#include "emu.h"

#include <cblas.h>

#include <vector>

struct cublasContext {
  cudaStream_t stream;
  void *work;
  size_t work_bytes;
  cublasMath_t math;
  cublasPointerMode_t pointer_mode;
};

namespace {

cublasStatus_t gemm(cublasHandle_t h, const char *what, cublasOperation_t ta,
                    cublasOperation_t tb, int m, int n, int k, const float *alpha,
                    const float *a, int lda, long long sa, const float *b, int ldb, long long sb,
                    const float *beta, float *c, int ldc, long long sc, int batch) {
  auto lock = emu_lock();
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T) ||
      m < 0 || n < 0 || k < 0 || batch < 0)
    return CUBLAS_STATUS_INVALID_VALUE;
  const int arows = ta == CUBLAS_OP_N ? m : k, acols = ta == CUBLAS_OP_N ? k : m;
  const int brows = tb == CUBLAS_OP_N ? k : n, bcols = tb == CUBLAS_OP_N ? n : k;
  if (lda < (arows > 1 ? arows : 1) || ldb < (brows > 1 ? brows : 1) || ldc < (m > 1 ? m : 1))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (h->pointer_mode != CUBLAS_POINTER_MODE_HOST)
    emu_fail("cuBLAS %s: only host pointer mode is emulated", what);
  if (!m || !n || !batch) return CUBLAS_STATUS_SUCCESS;
  /* the extent each operand covers, last matrix of the batch included */
  const size_t a_end = (size_t)((batch - 1) * sa + (long long)(acols - 1) * lda + arows);
  const size_t b_end = (size_t)((batch - 1) * sb + (long long)(bcols - 1) * ldb + brows);
  const size_t c_end = (size_t)((batch - 1) * sc + (long long)(n - 1) * ldc + m);
  if ((k && (!emu_is_device(a, a_end * 4) || !emu_is_device(b, b_end * 4))) ||
      !emu_is_device(c, c_end * 4)) {
    emu_note("cuBLAS %s: an operand is not (wholly) in device memory", what);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (emu_capturing(h->stream) && !h->work) {
    emu_note("cuBLAS %s: queued while capturing, with no workspace set since cublasSetStream "
             "(cuBLAS would allocate one inside the capture)",
             what);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (h->math & ~(unsigned)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)
    emu_fail("cuBLAS %s: math mode %#x is not emulated (exact fp32 only)", what,
             (unsigned)h->math);
  const float al = *alpha, be = *beta;
  void *work = h->work;
  const size_t work_bytes = h->work_bytes;
  const cudaError_t e = emu_enqueue(h->stream, what, [=] {
    /* cuBLAS's scratch is its own: clobber (the start of) it */
    if (work) memset(work, 0xa5, work_bytes < ((size_t)64 << 10) ? work_bytes : (size_t)64 << 10);
    for (int i = 0; i < batch; i++)
      cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_T ? CblasTrans : CblasNoTrans,
                  tb == CUBLAS_OP_T ? CblasTrans : CblasNoTrans, m, n, k, al, a + i * sa, lda,
                  b + i * sb, ldb, be, c + i * sc, ldc);
  });
  return e ? CUBLAS_STATUS_EXECUTION_FAILED : CUBLAS_STATUS_SUCCESS;
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *h) {
  openblas_set_num_threads(1); /* its pool would only spin beside the emulator's one thread */
  *h = new cublasContext{nullptr, nullptr, 0, CUBLAS_DEFAULT_MATH, CUBLAS_POINTER_MODE_HOST};
  return CUBLAS_STATUS_SUCCESS;
}

/* cuBLAS documents an implicit cudaDeviceSynchronize: it waits for the
 * device, and invalidates a capture under way (in any thread). */
cublasStatus_t cublasDestroy(cublasHandle_t h) {
  (void)cudaDeviceSynchronize();
  (void)cudaGetLastError();
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  auto lock = emu_lock();
  h->stream = s;
  h->work = nullptr; /* as cuBLAS: back to its own workspace pool */
  h->work_bytes = 0;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *work, size_t bytes) {
  auto lock = emu_lock();
  if (bytes && !emu_is_device(work, bytes)) {
    emu_note("cublasSetWorkspace(%p, %zu): not device memory", work, bytes);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  h->work = bytes ? work : nullptr;
  h->work_bytes = bytes;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  h->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode(cublasHandle_t h, cublasPointerMode_t mode) {
  h->pointer_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
  default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

const char *cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS: return "success";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
  case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
  default: return "unknown error (cudaemu)";
  }
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float *alpha, const float *a, int lda,
                           const float *b, int ldb, const float *beta, float *c, int ldc) {
  return gemm(h, "sgemm", ta, tb, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float *alpha, const float *a, int lda,
                                         long long sa, const float *b, int ldb, long long sb,
                                         const float *beta, float *c, int ldc, long long sc,
                                         int batch) {
  return gemm(h, "sgemm batched", ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc,
              sc, batch);
}

} // extern "C"
