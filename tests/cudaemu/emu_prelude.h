/* cudaemu: forced in front of every .cu file of lib/backend/cuda when the
 * CUDA backend is built against the emulator (NEGCUT_CUDA_EMU): the files
 * are then compiled as C++ by the host compiler, and their kernels run on
 * the CPU, one fiber per CUDA thread (emu_runtime.cpp).
 *
 * The CUDA headers leave __global__, __device__, __host__ and __shared__
 * alone when they are defined already: kernels become plain functions and
 * a __shared__ variable a static one, which the threads of a block share
 * because blocks run one after the other. */
#ifndef NGC_EMU_PRELUDE_H
#define NGC_EMU_PRELUDE_H

#define __global__
#define __device__
#define __host__
#define __shared__ static

#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

/* What a CUDA thread sees of itself; the scheduler points ngc_emu_self at
 * the running fiber's. */
struct ngc_emu_thread {
  uint3 tid, bid;
  dim3 bdim, gdim;
};
extern thread_local ngc_emu_thread *ngc_emu_self;

#define threadIdx (ngc_emu_self->tid)
#define blockIdx (ngc_emu_self->bid)
#define blockDim (ngc_emu_self->bdim)
#define gridDim (ngc_emu_self->gdim)

void __syncthreads(void);
/* Every lane of the warp deposits bits and gets lane (own ^ xor_mask)'s. */
uint64_t ngc_emu_shfl_xor(unsigned mask, uint64_t bits, int xor_mask, int width);

template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask,
                                                   int width = 32) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a wide type");
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof v);
  bits = ngc_emu_shfl_xor(mask, bits, lane_mask, width);
  T r;
  memcpy(&r, &bits, sizeof r);
  return r;
}

/* The round-to-nearest intrinsics: one IEEE operation each, never fused
 * with its neighbours. The emulated files are compiled as nvcc compiles
 * CUDA (-fmad=true): other multiply-adds may become fused ones (-mfma
 * -ffp-contract=fast where the CPU has FMA); the empty asm keeps these
 * results from being contracted. */
#define NGC_EMU_RN(T, name, expr)        \
  static inline T name(T a, T b) {       \
    T r = (expr);                        \
    __asm__("" : "+x"(r));               \
    return r;                            \
  }
NGC_EMU_RN(float, __fadd_rn, a + b)
NGC_EMU_RN(float, __fsub_rn, a - b)
NGC_EMU_RN(float, __fmul_rn, a * b)
NGC_EMU_RN(float, __fdiv_rn, a / b)
NGC_EMU_RN(double, __dmul_rn, a * b)
#undef NGC_EMU_RN
static inline float __fsqrt_rn(float a) { return sqrtf(a); }

/* Queues body as a kernel of grid x block threads on stream s. */
void ngc_emu_launch_body(const char *name, dim3 grid, dim3 block, cudaStream_t s,
                         std::function<void()> body);

/* Fails (aborts) unless p is NULL or points into device memory: a kernel
 * given a host pointer would fault on a GPU. */
void ngc_emu_check_arg(const char *kernel, int index, const void *p);

template <class T> static inline void ngc_emu_check_args(const char *, int, const T &) {}
template <class T> static inline void ngc_emu_check_args(const char *name, int i, T *const &p) {
  ngc_emu_check_arg(name, i, (const void *)p);
}

/* kernel<<<grid, block, 0, s>>>(args...): the arguments are converted to
 * the kernel's parameter types and copied now, at the launch, as CUDA
 * does; the kernel runs when the stream reaches it. */
template <class... P, class... A>
static inline void ngc_emu_launch(const char *name, dim3 grid, dim3 block, cudaStream_t s,
                                  void (*kernel)(P...), A &&...args) {
  std::tuple<typename std::decay<P>::type...> copied(std::forward<A>(args)...);
  std::apply(
      [name](const auto &...a) {
        int i = 0;
        (ngc_emu_check_args(name, i++, a), ...);
      },
      copied);
  ngc_emu_launch_body(name, grid, block, s, [kernel, copied] { std::apply(kernel, copied); });
}

#endif
