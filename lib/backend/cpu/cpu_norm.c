/* CPU instance norm (affine=False, biased variance): one (n, c) plane per
 * task, or one (n, c / L) block of L channels in the blocked layout. A plain
 * plane (up to 256x256 floats, 256 KiB) stays in L2 across the passes, so
 * two-pass statistics cost little more than one; a block of 16 channels
 * (4 MiB) does not, so its statistics take one pass over memory (exact
 * two-pass sums per L1-sized chunk, merged). The forward may apply a ReLU or
 * leaky ReLU to its output in the same pass (inorm_act_fwd). */
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
 * statistics per lane, the same two passes with L float sums at a time,
 * folded into doubles every NGC_CPU_BLK pixels. The inner loops run over the
 * lanes: one vector per pixel. */
#define NGC_MAX_LANES 16

static inline __attribute__((always_inline)) void block_fwd(const float *restrict x,
                                                            float *restrict y, int64_t n,
                                                            const int64_t L, float eps,
                                                            float slope, float *mean,
                                                            float *rstd) {
  /* Per chunk of NGC_CPU_BLK pixels (16 KiB at L = 16, in L1): its mean and
   * its sum of squared deviations, two passes over the chunk; merged into
   * the running (count, mean, M2) in double (Chan et al.'s pairwise
   * update), so memory is read once for the statistics. */
  double cnt = 0.0, mu[NGC_MAX_LANES] = {0}, m2[NGC_MAX_LANES] = {0};
  float m[NGC_MAX_LANES], r[NGC_MAX_LANES];
  for (int64_t b = 0; b < n; b += NGC_CPU_BLK) {
    const int64_t e = b + NGC_CPU_BLK < n ? b + NGC_CPU_BLK : n;
    const float k = (float)(e - b);
    float f[NGC_MAX_LANES] = {0}, cm[NGC_MAX_LANES], q[NGC_MAX_LANES] = {0},
          rs[NGC_MAX_LANES] = {0};
    for (int64_t i = b; i < e; i++)
#pragma omp simd
      for (int64_t l = 0; l < L; l++) f[l] += x[i * L + l];
#pragma omp simd
    for (int64_t l = 0; l < L; l++) cm[l] = f[l] / k;
    for (int64_t i = b; i < e; i++)
#pragma omp simd
      for (int64_t l = 0; l < L; l++) {
        const float d = x[i * L + l] - cm[l];
        rs[l] += d;
        q[l] += d * d;
      }
    const double nb = (double)(e - b), tot = cnt + nb;
    for (int64_t l = 0; l < L; l++) {
      /* the chunk's exact mean and M2: cm plus the residual mean of x - cm */
      const double dm = (double)rs[l] / nb, mc = (double)cm[l] + dm;
      const double delta = mc - mu[l];
      mu[l] += delta * nb / tot;
      m2[l] += ((double)q[l] - dm * (double)rs[l]) + delta * delta * cnt * nb / tot;
    }
    cnt = tot;
  }
  for (int64_t l = 0; l < L; l++) {
    m[l] = (float)mu[l];
    r[l] = (float)(1.0 / sqrt(m2[l] / (double)n + (double)eps));
    mean[l] = m[l];
    rstd[l] = r[l];
  }
  for (int64_t i = 0; i < n; i++)
#pragma omp simd
    for (int64_t l = 0; l < L; l++) {
      const float v = (x[i * L + l] - m[l]) * r[l];
      y[i * L + l] = v > 0.0f ? v : slope * v + 0.0f;
    }
}

static inline __attribute__((always_inline)) void block_bwd(const float *restrict y,
                                                            const float *restrict g,
                                                            float *restrict dx, int64_t n,
                                                            const int64_t L, const float *r) {
  double sg[NGC_MAX_LANES] = {0}, sgy[NGC_MAX_LANES] = {0};
  float mg[NGC_MAX_LANES], mgy[NGC_MAX_LANES];
  for (int64_t b = 0; b < n; b += NGC_CPU_BLK) {
    const int64_t e = b + NGC_CPU_BLK < n ? b + NGC_CPU_BLK : n;
    float f1[NGC_MAX_LANES] = {0}, f2[NGC_MAX_LANES] = {0};
    for (int64_t i = b; i < e; i++)
#pragma omp simd
      for (int64_t l = 0; l < L; l++) {
        f1[l] += g[i * L + l];
        f2[l] += g[i * L + l] * y[i * L + l];
      }
    for (int64_t l = 0; l < L; l++) {
      sg[l] += f1[l];
      sgy[l] += f2[l];
    }
  }
  for (int64_t l = 0; l < L; l++) {
    mg[l] = (float)(sg[l] / (double)n);
    mgy[l] = (float)(sgy[l] / (double)n);
  }
  for (int64_t i = 0; i < n; i++)
#pragma omp simd
    for (int64_t l = 0; l < L; l++)
      dx[i * L + l] = r[l] * (g[i * L + l] - mg[l] - y[i * L + l] * mgy[l]);
}

/* Made for each block oneDNN prefers (16 with AVX-512, 8 with AVX2), so the
 * lane loops are whole vectors. */
NGC_CPU_CLONES static void block_fwd_16(const float *x, float *y, int64_t n, float eps,
                                        float slope, float *mean, float *rstd) {
  block_fwd(x, y, n, 16, eps, slope, mean, rstd);
}
NGC_CPU_CLONES static void block_fwd_8(const float *x, float *y, int64_t n, float eps,
                                       float slope, float *mean, float *rstd) {
  block_fwd(x, y, n, 8, eps, slope, mean, rstd);
}
NGC_CPU_CLONES static void block_bwd_16(const float *y, const float *g, float *dx, int64_t n,
                                        const float *r) {
  block_bwd(y, g, dx, n, 16, r);
}
NGC_CPU_CLONES static void block_bwd_8(const float *y, const float *g, float *dx, int64_t n,
                                       const float *r) {
  block_bwd(y, g, dx, n, 8, r);
}

/* Planes of either layout: a plain plane is one channel, a blocked one L.
 * slope: the activation on the output (1: none). */
static negcut_status inorm_fwd(ngc_backend *be, float eps, float slope, const ngc_tensor *x,
                               ngc_tensor *y, ngc_tensor *mean, ngc_tensor *rstd) {
  const int64_t L = ngc_block_of(be, x);
  const int64_t planes = ngc_d(x, 0) * ngc_d(x, 1) / L, hw = ngc_d(x, 2) * ngc_d(x, 3);
  const float *px = x->data; // (N, C/L, H, W, L)
  float *py = y->data;       // (N, C/L, H, W, L)
  float *pm = mean ? mean->data : NULL, *pr = rstd ? rstd->data : NULL; // (N, C)
  ngc_cpu_enter(be);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, planes * hw * L))
  for (int64_t pl = 0; pl < planes; pl++) {
    float m[NGC_MAX_LANES], r[NGC_MAX_LANES];
    if (L == 1)
      plane_fwd(px + pl * hw, py + pl * hw, hw, eps, slope, &m[0], &r[0]);
    else if (L == 16)
      block_fwd_16(px + pl * hw * L, py + pl * hw * L, hw, eps, slope, m, r);
    else
      block_fwd_8(px + pl * hw * L, py + pl * hw * L, hw, eps, slope, m, r);
    for (int64_t l = 0; l < L; l++) {
      if (pm) pm[pl * L + l] = m[l];
      if (pr) pr[pl * L + l] = r[l];
    }
  }
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
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, planes * hw * L))
  for (int64_t pl = 0; pl < planes; pl++) {
    if (L == 1)
      plane_bwd(py + pl * hw, pdy + pl * hw, pdx + pl * hw, hw, pr[pl]);
    else if (L == 16)
      block_bwd_16(py + pl * hw * L, pdy + pl * hw * L, pdx + pl * hw * L, hw, pr + pl * L);
    else
      block_bwd_8(py + pl * hw * L, pdy + pl * hw * L, pdx + pl * hw * L, hw, pr + pl * L);
  }
  return NEGCUT_OK;
}

void ngc_cpu_fill_norm_ops(ngc_backend_ops *ops) {
  ops->inorm_fwd = cpu_inorm_fwd;
  ops->inorm_act_fwd = cpu_inorm_act_fwd;
  ops->inorm_bwd = cpu_inorm_bwd;
}
