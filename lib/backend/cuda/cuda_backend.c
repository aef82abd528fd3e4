/* The CUDA backend: one device, one stream, cuDNN and cuBLAS bound to it,
 * own kernels for the rest (cuda_*.cu). Fills every slot of the vtable,
 * the optional ones too (the fused norm + activation, graphs): a NULL op
 * slot would fall back to the reference backend, which cannot read device
 * memory. */
#include <stdlib.h>

#include "cuda.h"

negcut_status ngc_cuda_check(ngc_backend *be, cudaError_t e, const char *what) {
  if (e == cudaSuccess) return NEGCUT_OK;
  (void)cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
  negcut_status st = e == cudaErrorMemoryAllocation ? NEGCUT_ERR_OUT_OF_MEMORY
                     : e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver
                         ? NEGCUT_ERR_UNSUPPORTED
                         : NEGCUT_ERR_BACKEND;
  return ngc_error(be->ctx, st, "cuda %s: %s (%s)", what, cudaGetErrorString(e),
                   cudaGetErrorName(e));
}

/* A failed library call may leave a runtime error of its own behind, which
 * the next launch's check would report as its own: both clear it (an error
 * of the device itself is sticky and comes back anyway). */
negcut_status ngc_cuda_check_dnn(ngc_backend *be, cudnnStatus_t s, const char *what) {
  if (s == CUDNN_STATUS_SUCCESS) return NEGCUT_OK;
  (void)cudaGetLastError();
  /* cuDNN 9 statuses are a category (thousands) plus a detail */
  negcut_status st = s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
                             s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED
                         ? NEGCUT_ERR_OUT_OF_MEMORY
                     : CUDNN_STATUS_CATEGORY(s) == CUDNN_STATUS_NOT_SUPPORTED ? NEGCUT_ERR_UNSUPPORTED
                                                                                : NEGCUT_ERR_BACKEND;
  return ngc_error(be->ctx, st, "cuDNN %s: %s (status %d)", what, cudnnGetErrorString(s),
                   (int)s);
}

negcut_status ngc_cuda_check_blas(ngc_backend *be, cublasStatus_t s, const char *what) {
  if (s == CUBLAS_STATUS_SUCCESS) return NEGCUT_OK;
  (void)cudaGetLastError();
  negcut_status st = s == CUBLAS_STATUS_ALLOC_FAILED ? NEGCUT_ERR_OUT_OF_MEMORY
                     : s == CUBLAS_STATUS_NOT_SUPPORTED ? NEGCUT_ERR_UNSUPPORTED
                                                        : NEGCUT_ERR_BACKEND;
  return ngc_error(be->ctx, st, "cuBLAS %s: %s (%s)", what, cublasGetStatusString(s),
                   cublasGetStatusName(s));
}

negcut_status ngc_cuda_launched(ngc_backend *be, const char *what) {
  return ngc_cuda_check(be, cudaGetLastError(), what);
}

negcut_status ngc_cuda_enter(ngc_backend *be) {
  return ngc_cuda_check(be, cudaSetDevice(ngc_cuda_of(be)->device), "set device");
}

/* Safe on a partly opened backend: every member may still be zero. */
static void cuda_close(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  if (c) {
    ngc_cuda_wide_enter(); /* cudaFree, cublasDestroy...: no other thread's capture */
    cudaSetDevice(c->device);
    ngc_cuda_graphs_close(be); /* first: it gives the stream back */
    if (c->stream) cudaStreamSynchronize(c->stream);
    cudaStreamSynchronize(0); /* uploads still in flight */
    ngc_cuda_convs_destroy(be);
    ngc_cuda_stage_destroy(be);
    if (c->work) ngc_cuda_free(be, c->work);
    if (c->blas_work) ngc_cuda_free(be, c->blas_work);
    ngc_cuda_cache_destroy(be);
    if (c->blas) cublasDestroy(c->blas);
    if (c->dnn) cudnnDestroy(c->dnn);
    if (c->stream) cudaStreamDestroy(c->stream);
    (void)cudaGetLastError();
    ngc_cuda_wide_leave();
    free(c);
  }
  free(be);
}

static void fill_ops(ngc_backend_ops *ops) {
  ngc_cuda_fill_memory_ops(ops);
  ngc_cuda_fill_conv_ops(ops);
  ngc_cuda_fill_gemm_ops(ops);
  ngc_cuda_fill_eltwise_ops(ops);
  ngc_cuda_fill_spatial_ops(ops);
  ngc_cuda_fill_norm_ops(ops);
  ngc_cuda_fill_rows_ops(ops);
  ngc_cuda_fill_loss_ops(ops);
  ngc_cuda_fill_optim_ops(ops);
  ngc_cuda_fill_graph_ops(ops);
  ops->close = cuda_close;
}

/* What cuBLAS's documentation recommends for Hopper (less is fine before). */
#define BLAS_WORK_BYTES ((size_t)32 << 20)

/* cuBLAS in true fp32: no TF32 tensor ops, no reduced-precision reductions. */
static negcut_status open_blas(ngc_backend *be, ngc_cuda *c) {
  negcut_status st = ngc_cuda_check_blas(be, cublasCreate(&c->blas), "create");
  if (!st) st = ngc_cuda_check_blas(be, cublasSetStream(c->blas, c->stream), "set stream");
  if (!st)
    st = ngc_cuda_check_blas(
        be,
        cublasSetMathMode(c->blas, (cublasMath_t)(CUBLAS_DEFAULT_MATH |
                                                  CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)),
        "set math mode");
  if (!st)
    st = ngc_cuda_check_blas(be, cublasSetPointerMode(c->blas, CUBLAS_POINTER_MODE_HOST),
                             "set pointer mode");
  if (!st) st = ngc_cuda_scratch(be, BLAS_WORK_BYTES, &c->blas_work, "cuBLAS workspace");
  if (!st) c->blas_work_bytes = BLAS_WORK_BYTES;
  if (!st)
    st = ngc_cuda_check_blas(be, cublasSetWorkspace(c->blas, c->blas_work, c->blas_work_bytes),
                             "set workspace");
  return st;
}

negcut_status ngc_cuda_open(negcut_ctx *ctx, ngc_backend **out) {
  int devices = 0;
  negcut_status st;
  *out = NULL;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    (void)cudaGetLastError();
    /* the reason matters when there is a GPU but, say, the driver is too old */
    return ngc_error(ctx, NEGCUT_ERR_UNSUPPORTED, "cuda backend: no usable GPU (%s)",
                     e != cudaSuccess ? cudaGetErrorString(e) : "no device");
  }
  if (ctx->device >= devices)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "cuda backend: device %d, but %d present", (int)ctx->device, devices);
  /* calloc: fields added to ngc_backend later default to 0 */
  ngc_backend *be = calloc(1, sizeof *be);
  ngc_cuda *c = calloc(1, sizeof *c);
  if (!be || !c) {
    free(be);
    free(c);
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cuda backend: out of memory");
  }
  be->name = "cuda";
  be->kind = NEGCUT_BACKEND_CUDA;
  be->host_memory = 0;
  be->keep_activations = 1; /* about 150 launches fewer per small CUT step */
  be->ctx = ctx;
  be->impl = c;
  c->device = ctx->device;
  fill_ops(&be->ops);

  st = ngc_cuda_enter(be);
  /* A blocking stream (not cudaStreamNonBlocking): it is ordered against the
   * legacy default stream, which carries the uploads (cuda_transfer.c). */
  if (!st) st = ngc_cuda_check(be, cudaStreamCreate(&c->stream), "create stream");
  c->run_stream = c->stream;
  ngc_cuda_wide_enter(); /* the libraries' handles may synchronise the device */
  if (!st) st = ngc_cuda_check_dnn(be, cudnnCreate(&c->dnn), "create");
  if (!st) st = ngc_cuda_check_dnn(be, cudnnSetStream(c->dnn, c->stream), "set stream");
  if (!st) st = ngc_cuda_cache_create(be);
  if (!st) st = open_blas(be, c);
  ngc_cuda_wide_leave();
  if (!st) st = ngc_cuda_stage_create(be);
  if (st) {
    cuda_close(be);
    return st;
  }
  *out = be;
  return NEGCUT_OK;
}
