/* What the CUDA C++ files share: launch sizes, grid-stride loops, and
 * reductions whose order depends only on the shape, never on timing, so
 * that a result is the same bits on every run (DESIGN.md: determinism).
 * No float atomics anywhere. */
#ifndef NGC_CUDA_KERNELS_CUH
#define NGC_CUDA_KERNELS_CUH

#include "cuda.h"

#define NGC_BLOCK 256      /* threads per block of element-wise kernels */
#define NGC_MAX_GRID 65536 /* blocks; larger sizes loop (grid-stride) */

/* Blocks for n elements at NGC_BLOCK threads each, at least 1. */
static inline unsigned ngc_grid(int64_t n) {
  int64_t b = (n + NGC_BLOCK - 1) / NGC_BLOCK;
  return (unsigned)(b < 1 ? 1 : b > NGC_MAX_GRID ? NGC_MAX_GRID : b);
}

/* Sums over long planes are split into chunks of this many values, one
 * block each, whose partial sums a second launch adds in chunk order: a
 * handful of large planes then still fills the GPU, and the order of the
 * additions depends only on the shape. */
#define NGC_SUM_CHUNK 4096

/* Chunks of a run of n values: 1 (one block takes it all) when n <=
 * NGC_SUM_CHUNK. */
static inline int64_t ngc_sum_chunks(int64_t n) {
  return n <= NGC_SUM_CHUNK ? 1 : (n + NGC_SUM_CHUNK - 1) / NGC_SUM_CHUNK;
}

/* Grid-stride loop over [0, n) with 64-bit indices. */
#define NGC_FOR(i, n)                                                                   \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)(n); \
       i += (int64_t)gridDim.x * blockDim.x)

/* Launches kernel on the backend's stream and checks the launch (nothing
 * while a graph is replayed, cuda_graph.c); the value is a negcut_status.
 * Built against tests/cudaemu (NGC_CUDA_EMU), the CPU emulator queues it. */
#ifdef NGC_CUDA_EMU
#define NGC_ENQUEUE(kernel, grid, block, stream, ...) \
  ngc_emu_launch(#kernel, (grid), (block), (stream), kernel, __VA_ARGS__)
#else
#define NGC_ENQUEUE(kernel, grid, block, stream, ...) \
  kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif
#define NGC_LAUNCH(be, what, kernel, grid, block, ...)                                 \
  (ngc_cuda_skip((be), (what))                                                          \
       ? NEGCUT_OK                                                                      \
       : (NGC_ENQUEUE(kernel, grid, block, ngc_cuda_stream(be), __VA_ARGS__),          \
          ngc_cuda_launched((be), (what))))

/* The sum over the 32 lanes, in every lane; the butterfly adds the same
 * pairs in every lane, so all lanes hold the same bits. */
__device__ __forceinline__ double ngc_warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double ngc_warp_max(double v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* The sum of v over the block (blockDim.x a multiple of 32, at most 1024),
 * returned to every thread. Every thread of the block must call it. */
__device__ __forceinline__ double ngc_block_sum(double v) {
  __shared__ double part[32];
  __shared__ double total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = ngc_warp_sum(v);
  __syncthreads(); /* part and total may still be read by a previous call */
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    double s = lane < warps ? part[lane] : 0.0;
    s = ngc_warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

#endif
