/* CPU backend internals: oneDNN engine and stream, the thread budget. */
#ifndef NGC_CPU_H
#define NGC_CPU_H

#include <oneapi/dnnl/dnnl.h>

#include "backend/backend.h"

typedef struct ngc_cpu {
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  int32_t threads;
  int32_t gemm;     /* ngc_cpu_gemm: the sgemm of linear and bmm (cpu_gemm.c) */
  void *conv_cache; /* cpu_conv.c: primitives keyed by shape */
  /* The smallest convolutions that may run Winograd (cpu_conv_cache.c):
   * both channel counts, and output pixels per image. NGC_WINOGRAD_MIN_*
   * by default; tests lower them to reach the Winograd kernels with small
   * shapes, before the first convolution (built primitives are cached). */
  int32_t wino_min_channels, wino_min_pixels;
  int64_t few_runs; /* convolutions run by ngc_cpu_conv_few (cpu_conv_few.c); for tests */
  int64_t own_wino_runs; /* convolutions run by ngc_cpu_conv_wino (cpu_conv_wino.c); for tests */
  /* oneDNN's tanh primitives (cpu_eltwise.c), one per element count, the
   * last NGC_CPU_TANH_KEEP counts kept; tanh_next: the slot replaced next. */
#define NGC_CPU_TANH_KEEP 4
  struct ngc_cpu_tanh {
    int64_t n;
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst;
  } tanh[NGC_CPU_TANH_KEEP];
  int32_t tanh_next;
} ngc_cpu;

/* Whose sgemm computes linear layers and batched matmuls. OpenBLAS, unless
 * the machine has AVX-512 and the OpenBLAS build does not know this CPU and
 * runs its AVX2 kernels (Debian's 0.3.21 on AMD Zen 5: half the rate), where
 * oneDNN's JIT sgemm is used instead. Fixed per machine (and oneDNN's
 * ONEDNN_MAX_CPU_ISA, which lowers the ISA it reports), so one machine and
 * thread count always give the same bits. */
typedef enum ngc_cpu_gemm { NGC_CPU_GEMM_OPENBLAS = 0, NGC_CPU_GEMM_ONEDNN = 1 } ngc_cpu_gemm;
ngc_cpu_gemm ngc_cpu_pick_gemm(void);
/* Whether oneDNN runs its avx512_core kernels here (ONEDNN_MAX_CPU_ISA can
 * lower that): the condition of its sgemm pick and of its Winograd
 * convolution kernels. */
int ngc_cpu_avx512(void);
/* Whether oneDNN runs its avx512_core_bf16 kernels here (bf16 dot products
 * in hardware): the condition of bf16 convolutions, which elsewhere would be
 * emulated (slower than float32) or, below AVX-512, missing. */
int ngc_cpu_bf16(void);
const char *ngc_cpu_gemm_name(ngc_cpu_gemm g);

static inline ngc_cpu *ngc_cpu_of(ngc_backend *be) { return (ngc_cpu *)be->impl; }

/* Sets the OpenMP thread count of the calling thread to the budget; called
 * at the top of every slot so oneDNN and our loops agree. */
void ngc_cpu_enter(ngc_backend *be);

/* The backend's growing work buffer (64-byte aligned; cpu_conv_cache.c),
 * valid until the next call of a slot: the staged arguments and scratchpads
 * of ngc_cpu_conv_run, the chunk sums of instance norm. NULL (with a message
 * on be->ctx) when out of memory. */
void *ngc_cpu_work(ngc_backend *be, size_t bytes);
/* A second growing buffer (64-byte aligned), for what a slot prepares beside
 * the work buffer: weights reversed for ngc_cpu_conv_run, packed weights of
 * ngc_cpu_conv_few. Valid
 * until the next call of a slot. */
void *ngc_cpu_side(ngc_backend *be, size_t bytes);

/* Slot groups, each in its own file: convolutions and blurs through oneDNN
 * (cpu_conv.c), the rest through OpenBLAS and own OpenMP loops
 * (cpu_loops.c). Each overrides the reference slots it implements. */
void ngc_cpu_fill_conv_ops(ngc_backend_ops *ops);
void ngc_cpu_fill_loop_ops(ngc_backend_ops *ops);
/* Frees the primitive cache of cpu_conv.c. */
void ngc_cpu_conv_cache_free(ngc_backend *be);
/* Frees the tanh primitives of cpu_eltwise.c. */
void ngc_cpu_tanh_free(ngc_backend *be);

/* Turns a oneDNN status into ours, with a message naming what failed. */
negcut_status ngc_cpu_check(ngc_backend *be, dnnl_status_t s, const char *what);

#endif
