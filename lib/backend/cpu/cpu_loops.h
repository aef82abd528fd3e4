/* The CPU backend's own loops (everything but convolutions and blurs):
 * the slot groups of cpu_loops.c and the helpers they share.
 *
 * Threads: every slot runs on the context's one budget,
 * ngc_cpu_of(be)->threads. OpenBLAS is single-threaded (cpu_backend.c) and is
 * called from inside our OpenMP regions, each thread on its own block.
 *
 * Determinism: a reduction never depends on scheduling. Sums are float over
 * fixed blocks folded into doubles in a fixed order, and the blocks depend on
 * the sizes only, so most results are the same bits for any thread count;
 * gemm blocks depend on the thread count (DESIGN.md promises bits per count). */
#ifndef NGC_CPU_LOOPS_H
#define NGC_CPU_LOOPS_H

#include "cpu.h"

/* One file per theme, each filling its own slots. */
void ngc_cpu_fill_eltwise_ops(ngc_backend_ops *ops); /* cpu_eltwise.c */
void ngc_cpu_fill_spatial_ops(ngc_backend_ops *ops); /* cpu_spatial.c */
void ngc_cpu_fill_norm_ops(ngc_backend_ops *ops);    /* cpu_norm.c */
void ngc_cpu_fill_gemm_ops(ngc_backend_ops *ops);    /* cpu_gemm.c */
void ngc_cpu_fill_rows_ops(ngc_backend_ops *ops);    /* cpu_rows.c */
void ngc_cpu_fill_loss_ops(ngc_backend_ops *ops);    /* cpu_losses.c */
void ngc_cpu_fill_optim_ops(ngc_backend_ops *ops);   /* cpu_optim.c */

/* Below this much work (elements touched) a slot stays on the calling
 * thread: waking the team costs more than the loop. */
#define NGC_CPU_PAR_MIN 32768

/* Threads for a loop of `work` elements. */
static inline int ngc_cpu_nt(ngc_backend *be, int64_t work) {
  return work >= NGC_CPU_PAR_MIN ? (int)ngc_cpu_of(be)->threads : 1;
}

/* The library is built for baseline x86-64 (SSE2). Kernels that are
 * compute-bound on cache-resident data (instance norm over 64x64 planes:
 * 1.7x faster with AVX-512) are also compiled for x86-64-v3 (AVX2, FMA) and
 * v4 (AVX-512), and the loader picks one per machine (ifunc). The choice is
 * fixed for a process, so runs stay bit-identical on one machine; another
 * machine may differ in the last bits. Only on static functions called from
 * inside a parallel loop: the bodies OpenMP outlines are not cloned. Not
 * under ThreadSanitizer, whose calls in the ifunc resolvers would run before
 * it has started. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) && \
    defined(__ELF__) && !defined(__SANITIZE_THREAD__)
#define NGC_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define NGC_CPU_HAS_CLONES 1
#else
#define NGC_CPU_CLONES
#define NGC_CPU_HAS_CLONES 0 /* the kernels run as compiled: baseline x86-64 */
#endif

/* Float partial sums over blocks this long, folded into a double: the inner
 * loop vectorises and each float sums only a few dozen terms. */
#define NGC_CPU_BLK 256

/* sum x[i] */
static inline double ngc_cpu_sum(const float *restrict x, int64_t n) {
  double s = 0.0;
  for (int64_t b = 0; b < n; b += NGC_CPU_BLK) {
    int64_t e = b + NGC_CPU_BLK < n ? b + NGC_CPU_BLK : n;
    float f = 0.0f;
#pragma omp simd reduction(+ : f)
    for (int64_t i = b; i < e; i++) f += x[i];
    s += f;
  }
  return s;
}

/* sum a[i] * b[i] */
static inline double ngc_cpu_dot(const float *restrict a, const float *restrict b,
                                 int64_t n) {
  double s = 0.0;
  for (int64_t k = 0; k < n; k += NGC_CPU_BLK) {
    int64_t e = k + NGC_CPU_BLK < n ? k + NGC_CPU_BLK : n;
    float f = 0.0f;
#pragma omp simd reduction(+ : f)
    for (int64_t i = k; i < e; i++) f += a[i] * b[i];
    s += f;
  }
  return s;
}

/* A deterministic parallel sum over [0, n): fn sums [i0, i1) (with the
 * helpers above); the chunks depend on n only and their sums are added in
 * order, so the result is the same bits for every thread count. */
typedef double (*ngc_cpu_chunk_fn)(const void *arg, int64_t i0, int64_t i1);
double ngc_cpu_reduce(ngc_backend *be, int64_t n, ngc_cpu_chunk_fn fn, const void *arg);

/* Column sums of a row-major (rows, cols) matrix with row stride ld:
 * out[j] (+)= (sum_r x[r * ld + j]) / div; accumulate adds to out, else
 * assigns.
 * Deterministic for every thread count. */
void ngc_cpu_colsum(ngc_backend *be, const float *x, int64_t rows, int64_t cols,
                    int64_t ld, double div, int accumulate, float *out);

#endif
