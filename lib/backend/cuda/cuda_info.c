/* What the CUDA build links against, and whether a GPU is there. */
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdio.h>

#include "backend/backend.h"

void ngc_cuda_describe(char *buf, size_t cap) {
  int rt = 0, devices = 0;
  size_t dnn = cudnnGetVersion();
  cudaRuntimeGetVersion(&rt);
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  snprintf(buf, cap, "CUDA runtime %d.%d, cuDNN %zu.%zu.%zu, %d device%s", rt / 1000,
           (rt % 1000) / 10, dnn / 10000, (dnn % 10000) / 100, dnn % 100, devices,
           devices == 1 ? "" : "s");
}

negcut_status ngc_cuda_open(negcut_ctx *ctx, ngc_backend **out) {
  int devices = 0;
  *out = NULL;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0)
    return ngc_error(ctx, NEGCUT_ERR_UNSUPPORTED, "cuda backend: no usable GPU");
  if (ctx->device >= devices)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "cuda backend: device %d, but %d present", (int)ctx->device, devices);
  return ngc_error(ctx, NEGCUT_ERR_UNSUPPORTED,
                   "cuda backend: this build has no CUDA kernels yet; use the cpu backend");
}
