/* CPU instance norm (affine=False, biased variance): one (n, c) plane per
 * task in the plain layout, chunks of (n, c / L) blocks of L channels in the
 * blocked one. A plain plane (up to 256x256 floats, 256 KiB) stays in L2
 * across the passes, so two-pass statistics cost little more than one; a
 * block of 16 channels (4 MiB) does not, so its statistics take one pass over
 * memory (exact two-pass sums per L1-sized chunk, merged). The forward may
 * apply a ReLU or leaky ReLU to its output in the same pass (inorm_act_fwd). */
#include <math.h>

#include "cpu_loops.h"

/* One plane forward: mean, then the variance about the float mean with the
 * residual mean folded back (exact two-pass), float blocks summed into
 * doubles: about 1e-7 relative even for 65536-element planes with a large
 * mean. Then v = (x - mean) * rstd and y = v > 0 ? v : slope v (slope 1:
 * no activation, 0: ReLU, alpha: leaky ReLU). */
NGC_CPU_CLONES static void plane_fwd(const float *restrict x, float *restrict y, int64_t n,
                                     float eps, float slope, float *mean, float *rstd) {
  const double m0 = ngc_cpu_sum(x, n) / (double)n;
  const float mf = (float)m0;
  double s1 = 0.0, s2 = 0.0;
  for (int64_t b = 0; b < n; b += NGC_CPU_BLK) {
    int64_t e = b + NGC_CPU_BLK < n ? b + NGC_CPU_BLK : n;
    float f1 = 0.0f, f2 = 0.0f;
#pragma omp simd reduction(+ : f1, f2)
    for (int64_t i = b; i < e; i++) {
      float d = x[i] - mf;
      f1 += d;
      f2 += d * d;
    }
    s1 += f1;
    s2 += f2;
  }
  const double dm = s1 / (double)n; /* true mean - mf */
  double var = s2 / (double)n - dm * dm;
  if (var < 0.0) var = 0.0;
  const float m = (float)((double)mf + dm), r = (float)(1.0 / sqrt(var + (double)eps));
  *mean = m;
  *rstd = r;
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    const float v = (x[i] - m) * r;
    y[i] = v > 0.0f ? v : slope * v + 0.0f; /* + 0: ReLU gives +0, as act_fwd */
  }
}

/* One plane backward: dx = r * (dy - mean(dy) - y * mean(dy * y)). */
NGC_CPU_CLONES static void plane_bwd(const float *restrict y, const float *restrict g,
                                     float *restrict dx, int64_t n, float r) {
  double sg = 0.0, sgy = 0.0;
  for (int64_t b = 0; b < n; b += NGC_CPU_BLK) {
    int64_t e = b + NGC_CPU_BLK < n ? b + NGC_CPU_BLK : n;
    float f1 = 0.0f, f2 = 0.0f;
#pragma omp simd reduction(+ : f1, f2)
    for (int64_t i = b; i < e; i++) {
      f1 += g[i];
      f2 += g[i] * y[i];
    }
    sg += f1;
    sgy += f2;
  }
  const float mg = (float)(sg / (double)n), mgy = (float)(sgy / (double)n);
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dx[i] = r * (g[i] - mg - y[i] * mgy);
}

/* Blocked planes: hw pixels of L lanes (L channels side by side), the
 * statistics per lane. A plane is cut into chunks of NGC_CPU_BLK pixels (16
 * KiB at L = 16, in L1):
 *  1. per chunk and lane, its float mean cm and the sums of x - cm and of
 *     its square (two passes over the chunk, in L1);
 *  2. per plane, the chunks merged in order into a running (count, mean, M2)
 *     in double (Chan et al.'s pairwise update);
 *  3. per chunk, the normalisation.
 * Each thread runs the three for whole planes, or where that would leave a
 * thread idle (share_chunks) each step is shared among the threads by chunk.
 * The chunks and the merge order depend on the sizes only: the same bits
 * either way and for every thread count. The inner loops run over the lanes:
 * one vector per pixel. */
#define NGC_MAX_LANES 16

typedef struct chunk_sums {
  float cm[NGC_MAX_LANES], rs[NGC_MAX_LANES], q[NGC_MAX_LANES];
} chunk_sums;

static inline __attribute__((always_inline)) void chunk_stats(const float *restrict x,
                                                              int64_t k, const int64_t L,
                                                              chunk_sums *restrict s) {
  float f[NGC_MAX_LANES] = {0}, q[NGC_MAX_LANES] = {0}, rs[NGC_MAX_LANES] = {0};
  for (int64_t i = 0; i < k; i++)
#pragma omp simd
    for (int64_t l = 0; l < L; l++) f[l] += x[i * L + l];
#pragma omp simd
  for (int64_t l = 0; l < L; l++) s->cm[l] = f[l] / (float)k;
  for (int64_t i = 0; i < k; i++)
#pragma omp simd
    for (int64_t l = 0; l < L; l++) {
      const float d = x[i * L + l] - s->cm[l];
      rs[l] += d;
      q[l] += d * d;
    }
  for (int64_t l = 0; l < L; l++) {
    s->rs[l] = rs[l];
    s->q[l] = q[l];
  }
}

/* Merges a plane's chunks (n pixels) into float mean and rstd per lane.
 * Compiled per ISA like the chunk kernels: GCC contracts its double
 * multiply-adds into FMAs where the CPU has them, as it did when the merge
 * sat inside the per-ISA block kernel, so the bits stay the same. */
NGC_CPU_CLONES static void plane_merge(const chunk_sums *s, int64_t n, int64_t L, float eps,
                                       float *mean, float *rstd) {
  double cnt = 0.0, mu[NGC_MAX_LANES] = {0}, m2[NGC_MAX_LANES] = {0};
  for (int64_t b = 0; b < n; b += NGC_CPU_BLK, s++) {
    const double nb = (double)(b + NGC_CPU_BLK < n ? NGC_CPU_BLK : n - b), tot = cnt + nb;
    for (int64_t l = 0; l < L; l++) {
      /* the chunk's exact mean and M2: cm plus the residual mean of x - cm */
      const double dm = (double)s->rs[l] / nb, mc = (double)s->cm[l] + dm;
      const double delta = mc - mu[l];
      mu[l] += delta * nb / tot;
      m2[l] += ((double)s->q[l] - dm * (double)s->rs[l]) + delta * delta * cnt * nb / tot;
    }
    cnt = tot;
  }
  for (int64_t l = 0; l < L; l++) {
    mean[l] = (float)mu[l];
    rstd[l] = (float)(1.0 / sqrt(m2[l] / (double)n + (double)eps));
  }
}

static inline __attribute__((always_inline)) void chunk_norm(const float *restrict x,
                                                             float *restrict y, int64_t k,
                                                             const int64_t L, float slope,
                                                             const float *m, const float *r) {
  for (int64_t i = 0; i < k; i++)
#pragma omp simd
    for (int64_t l = 0; l < L; l++) {
      const float v = (x[i * L + l] - m[l]) * r[l];
      y[i * L + l] = v > 0.0f ? v : slope * v + 0.0f;
    }
}

/* Backward per chunk: the float sums of dy and dy * y per lane (1.), merged
 * per plane in double (2.), then dx = r (dy - mean(dy) - y mean(dy y)) (3.). */
typedef struct chunk_grads {
  float g[NGC_MAX_LANES], gy[NGC_MAX_LANES];
} chunk_grads;

static inline __attribute__((always_inline)) void chunk_gsums(const float *restrict y,
                                                              const float *restrict g,
                                                              int64_t k, const int64_t L,
                                                              chunk_grads *restrict s) {
  float f1[NGC_MAX_LANES] = {0}, f2[NGC_MAX_LANES] = {0};
  for (int64_t i = 0; i < k; i++)
#pragma omp simd
    for (int64_t l = 0; l < L; l++) {
      f1[l] += g[i * L + l];
      f2[l] += g[i * L + l] * y[i * L + l];
    }
  for (int64_t l = 0; l < L; l++) {
    s->g[l] = f1[l];
    s->gy[l] = f2[l];
  }
}

NGC_CPU_CLONES static void plane_gmerge(const chunk_grads *s, int64_t n, int64_t L, float *mg,
                                        float *mgy) {
  double sg[NGC_MAX_LANES] = {0}, sgy[NGC_MAX_LANES] = {0};
  for (int64_t b = 0; b < n; b += NGC_CPU_BLK, s++)
    for (int64_t l = 0; l < L; l++) {
      sg[l] += s->g[l];
      sgy[l] += s->gy[l];
    }
  for (int64_t l = 0; l < L; l++) {
    mg[l] = (float)(sg[l] / (double)n);
    mgy[l] = (float)(sgy[l] / (double)n);
  }
}

static inline __attribute__((always_inline)) void chunk_dx(const float *restrict y,
                                                           const float *restrict g,
                                                           float *restrict dx, int64_t k,
                                                           const int64_t L, const float *r,
                                                           const float *mg, const float *mgy) {
  for (int64_t i = 0; i < k; i++)
#pragma omp simd
    for (int64_t l = 0; l < L; l++)
      dx[i * L + l] = r[l] * (g[i * L + l] - mg[l] - y[i * L + l] * mgy[l]);
}

/* Each kernel made for the blocks oneDNN prefers (16 with AVX-512, 8 with
 * AVX2) with L a constant, so the lane loops are whole vectors. */
#define NGC_BY_LANES(call_16, call_8, call_any) \
  do {                                          \
    if (L == 16)                                \
      call_16;                                  \
    else if (L == 8)                            \
      call_8;                                   \
    else                                        \
      call_any;                                 \
  } while (0)

NGC_CPU_CLONES static void stats_k(const float *x, int64_t k, int64_t L, chunk_sums *s) {
  NGC_BY_LANES(chunk_stats(x, k, 16, s), chunk_stats(x, k, 8, s), chunk_stats(x, k, L, s));
}
NGC_CPU_CLONES static void norm_k(const float *x, float *y, int64_t k, int64_t L, float slope,
                                  const float *m, const float *r) {
  NGC_BY_LANES(chunk_norm(x, y, k, 16, slope, m, r), chunk_norm(x, y, k, 8, slope, m, r),
               chunk_norm(x, y, k, L, slope, m, r));
}
NGC_CPU_CLONES static void gsums_k(const float *y, const float *g, int64_t k, int64_t L,
                                   chunk_grads *s) {
  NGC_BY_LANES(chunk_gsums(y, g, k, 16, s), chunk_gsums(y, g, k, 8, s),
               chunk_gsums(y, g, k, L, s));
}
NGC_CPU_CLONES static void dx_k(const float *y, const float *g, float *dx, int64_t k, int64_t L,
                                const float *r, const float *mg, const float *mgy) {
  NGC_BY_LANES(chunk_dx(y, g, dx, k, 16, r, mg, mgy), chunk_dx(y, g, dx, k, 8, r, mg, mgy),
               chunk_dx(y, g, dx, k, L, r, mg, mgy));
}

/* Chunks per blocked plane of hw pixels, and the pixels of chunk j. */
static int64_t n_chunks(int64_t hw) { return (hw + NGC_CPU_BLK - 1) / NGC_CPU_BLK; }
static int64_t chunk_len(int64_t hw, int64_t j) {
  return hw - j * NGC_CPU_BLK < NGC_CPU_BLK ? hw - j * NGC_CPU_BLK : NGC_CPU_BLK;
}

/* Whether the steps are shared among the threads by chunk, or each thread
 * takes whole planes (its statistics and its output while the plane is in
 * L2: 256 channels at 64x64 took 106 against 88 us forward, 96 against 59
 * backward, the shared way). Shared where whole planes would leave a thread
 * idle for long: fewer planes than threads (a small network's first and last
 * norms have a single 16-channel plane: 9-17 -> 6 us forward, 6 -> 4.2
 * backward at 64x64, 2 threads), or a remainder among few planes. */
static int share_chunks(int64_t planes, int nt) {
  return nt > 1 && planes % nt != 0 && planes < 4 * nt;
}

/* Blocked planes (above). m and r (planes * L floats each) receive the
 * statistics. */
static negcut_status block_fwd(ngc_backend *be, const float *x, float *y, int64_t planes,
                               int64_t hw, int64_t L, float eps, float slope, float *m,
                               float *r) {
  const int64_t nc = n_chunks(hw), tasks = planes * nc;
  const int nt = ngc_cpu_nt(be, planes * hw * L);
  chunk_sums *cs = ngc_cpu_work(be, (size_t)tasks * sizeof *cs);
  if (!cs) return NEGCUT_ERR_OUT_OF_MEMORY;
#define NGC_CHUNK_AT(t) ((t) / nc * hw + (t) % nc * NGC_CPU_BLK) * L /* first float of chunk t */
  if (!share_chunks(planes, nt)) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t pl = 0; pl < planes; pl++) {
      for (int64_t t = pl * nc; t < (pl + 1) * nc; t++)
        stats_k(x + NGC_CHUNK_AT(t), chunk_len(hw, t % nc), L, &cs[t]);
      plane_merge(cs + pl * nc, hw, L, eps, m + pl * L, r + pl * L);
      for (int64_t t = pl * nc; t < (pl + 1) * nc; t++)
        norm_k(x + NGC_CHUNK_AT(t), y + NGC_CHUNK_AT(t), chunk_len(hw, t % nc), L, slope,
               m + pl * L, r + pl * L);
    }
    return NEGCUT_OK;
  }
#pragma omp parallel num_threads(nt)
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; t++)
      stats_k(x + NGC_CHUNK_AT(t), chunk_len(hw, t % nc), L, &cs[t]);
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++)
      plane_merge(cs + pl * nc, hw, L, eps, m + pl * L, r + pl * L);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; t++)
      norm_k(x + NGC_CHUNK_AT(t), y + NGC_CHUNK_AT(t), chunk_len(hw, t % nc), L, slope,
             m + t / nc * L, r + t / nc * L);
  }
  return NEGCUT_OK;
}

static negcut_status block_bwd(ngc_backend *be, const float *y, const float *g, float *dx,
                               int64_t planes, int64_t hw, int64_t L, const float *r) {
  const int64_t nc = n_chunks(hw), tasks = planes * nc;
  const int nt = ngc_cpu_nt(be, planes * hw * L);
  chunk_grads *cs = ngc_cpu_work(be, (size_t)tasks * sizeof *cs +
                                         (size_t)planes * L * 2 * sizeof(float));
  if (!cs) return NEGCUT_ERR_OUT_OF_MEMORY;
  float *mg = (float *)(cs + tasks), *mgy = mg + planes * L;
  if (!share_chunks(planes, nt)) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t pl = 0; pl < planes; pl++) {
      for (int64_t t = pl * nc; t < (pl + 1) * nc; t++)
        gsums_k(y + NGC_CHUNK_AT(t), g + NGC_CHUNK_AT(t), chunk_len(hw, t % nc), L, &cs[t]);
      plane_gmerge(cs + pl * nc, hw, L, mg + pl * L, mgy + pl * L);
      for (int64_t t = pl * nc; t < (pl + 1) * nc; t++)
        dx_k(y + NGC_CHUNK_AT(t), g + NGC_CHUNK_AT(t), dx + NGC_CHUNK_AT(t),
             chunk_len(hw, t % nc), L, r + pl * L, mg + pl * L, mgy + pl * L);
    }
    return NEGCUT_OK;
  }
#pragma omp parallel num_threads(nt)
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; t++)
      gsums_k(y + NGC_CHUNK_AT(t), g + NGC_CHUNK_AT(t), chunk_len(hw, t % nc), L, &cs[t]);
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++)
      plane_gmerge(cs + pl * nc, hw, L, mg + pl * L, mgy + pl * L);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
      const int64_t pl = t / nc;
      dx_k(y + NGC_CHUNK_AT(t), g + NGC_CHUNK_AT(t), dx + NGC_CHUNK_AT(t),
           chunk_len(hw, t % nc), L, r + pl * L, mg + pl * L, mgy + pl * L);
    }
  }
#undef NGC_CHUNK_AT
  return NEGCUT_OK;
}

/* Planes of either layout: a plain plane is one channel (one task each), a
 * blocked one L (chunked, above). slope: the activation on the output (1:
 * none). */
static negcut_status inorm_fwd(ngc_backend *be, float eps, float slope, const ngc_tensor *x,
                               ngc_tensor *y, ngc_tensor *mean, ngc_tensor *rstd) {
  const int64_t L = ngc_block_of(be, x);
  const int64_t planes = ngc_d(x, 0) * ngc_d(x, 1) / L, hw = ngc_d(x, 2) * ngc_d(x, 3);
  const float *px = x->data; // (N, C/L, H, W, L)
  float *py = y->data;       // (N, C/L, H, W, L)
  float *pm = mean->data, *pr = rstd->data; // (N, C)
  ngc_cpu_enter(be);
  if (L > 1) return block_fwd(be, px, py, planes, hw, L, eps, slope, pm, pr);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, planes * hw))
  for (int64_t pl = 0; pl < planes; pl++)
    plane_fwd(px + pl * hw, py + pl * hw, hw, eps, slope, &pm[pl], &pr[pl]);
  return NEGCUT_OK;
}

static negcut_status cpu_inorm_fwd(ngc_backend *be, float eps, const ngc_tensor *x,
                                   ngc_tensor *y, ngc_tensor *mean, ngc_tensor *rstd) {
  return inorm_fwd(be, eps, 1.0f, x, y, mean, rstd);
}

static negcut_status cpu_inorm_act_fwd(ngc_backend *be, float eps, ngc_act act, float alpha,
                                       const ngc_tensor *x, ngc_tensor *y, ngc_tensor *mean,
                                       ngc_tensor *rstd) {
  return inorm_fwd(be, eps, act == NGC_ACT_RELU ? 0.0f : alpha, x, y, mean, rstd);
}

static negcut_status cpu_inorm_bwd(ngc_backend *be, const ngc_tensor *y,
                                   const ngc_tensor *rstd, const ngc_tensor *dy,
                                   ngc_tensor *dx) {
  const int64_t L = ngc_block_of(be, y);
  const int64_t planes = ngc_d(y, 0) * ngc_d(y, 1) / L, hw = ngc_d(y, 2) * ngc_d(y, 3);
  const float *py = y->data, *pdy = dy->data; // (N, C/L, H, W, L)
  const float *pr = rstd->data;               // (N, C)
  float *pdx = dx->data;                      // (N, C/L, H, W, L)
  ngc_cpu_enter(be);
  if (L > 1) return block_bwd(be, py, pdy, pdx, planes, hw, L, pr);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, planes * hw))
  for (int64_t pl = 0; pl < planes; pl++)
    plane_bwd(py + pl * hw, pdy + pl * hw, pdx + pl * hw, hw, pr[pl]);
  return NEGCUT_OK;
}

void ngc_cpu_fill_norm_ops(ngc_backend_ops *ops) {
  ops->inorm_fwd = cpu_inorm_fwd;
  ops->inorm_act_fwd = cpu_inorm_act_fwd;
  ops->inorm_bwd = cpu_inorm_bwd;
}
