/* What the CUDA build links against, and whether a GPU is there. Works with
 * no driver and no device (negcut_build_info calls it on every machine). */
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdio.h>

#include "backend/backend.h"

void ngc_cuda_describe(char *buf, size_t cap) {
  int rt = 0, devices = 0;
  size_t dnn = cudnnGetVersion();
  cudaRuntimeGetVersion(&rt);
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  (void)cudaGetLastError(); /* no device is an answer here, not an error */
  snprintf(buf, cap, "CUDA runtime %d.%d, cuDNN %zu.%zu.%zu, %d device%s", rt / 1000,
           (rt % 1000) / 10, dnn / 10000, (dnn % 10000) / 100, dnn % 100, devices,
           devices == 1 ? "" : "s");
}
