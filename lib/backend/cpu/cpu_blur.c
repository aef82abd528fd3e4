/* The anti-aliasing blurs of the generator and discriminator (REFERENCE.md
 * section 1) as own separable loops with the padding folded into the edge
 * cases, instead of oneDNN depthwise convolutions over a padded copy: both
 * filters are outer products, so each is a 1-D pass along W (on a row) and a
 * 1-D pass along H (a linear combination of whole rows, which vectorises).
 *
 *  blur_down: reflect pad 1, [1,2,1]^2/16, stride 2. Along one axis:
 *    out[i] = (x[2i-1] + 2 x[2i] + x[2i+1]) / 4, x[-1] = x[1], x[H] = x[H-2].
 *  blur_up: replicate pad 1, transposed [1,3,3,1]^2/16 stride 2, crop; that
 *    is bilinear x2 with clamped edges. Along one axis:
 *    out[2i] = (3 x[i] + x[i-1]) / 4, out[2i+1] = (3 x[i] + x[i+1]) / 4.
 * The backward slots are the exact adjoints of these.
 *
 * Planes (n, c) are independent (in the blocked layout, planes (n, c / L)
 * of pixels of L channels): threads split them, each with a slice of the
 * work buffer for the intermediate of its plane. */
#include <omp.h>

#include "cpu_conv.h"

/* The library is built for baseline x86-64; these loops are memory-bound
 * streams that only keep up with memory when vectorised wide, so the plane
 * functions are cloned per ISA and picked at load time (not under
 * ThreadSanitizer, whose calls in the ifunc resolvers would run before it
 * has started). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__)
#define NGC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NGC_CLONES
#endif
#define NGC_INLINE static inline __attribute__((always_inline))

static inline int64_t refl(int64_t i, int64_t n) {
  if (n == 1) return 0; /* no reflection exists; lib/ops rejects such shapes */
  return i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i);
}

/* ------------------------------------------------------------ 1-D passes
 *
 * A row is W pixels of L floats: L = 1 in the plain layout, the channel
 * block in the blocked one, where the L lanes are L channels filtered alike.
 * Every function below is inlined into plane functions made for one L, so
 * the lane loops vanish (L = 1) or become one vector (L = 8, 16). */
#define LANES for (int64_t l = 0; l < L; l++)

/* y (Wo) from t (W), Wo = ceil(W / 2). */
NGC_INLINE void down_1d(const float *t, int64_t W, float *y, int64_t Wo, const int64_t L) {
  if (W == 1) {
    LANES y[l] = t[l];
    return;
  }
  LANES y[l] = 0.5f * t[l] + 0.5f * t[L + l];
  const int64_t inner = (W - 1) / 2; /* j < inner: 2j + 1 <= W - 1 */
  for (int64_t j = 1; j < inner; j++)
    LANES y[j * L + l] = 0.25f * t[(2 * j - 1) * L + l] + 0.5f * t[2 * j * L + l] +
                         0.25f * t[(2 * j + 1) * L + l];
  for (int64_t j = inner > 1 ? inner : 1; j < Wo; j++) {
    const int64_t k0 = refl(2 * j - 1, W) * L, k2 = refl(2 * j + 1, W) * L;
    LANES y[j * L + l] = 0.25f * t[k0 + l] + 0.5f * t[2 * j * L + l] + 0.25f * t[k2 + l];
  }
}

/* t (W) = adjoint of down_1d applied to g (Wo). */
NGC_INLINE void down_1d_adj(const float *g, int64_t Wo, float *t, int64_t W, const int64_t L) {
  if (W == 1) {
    LANES t[l] = g[l];
    return;
  }
  for (int64_t j = 0; j + 1 < Wo; j++)
    LANES {
      t[2 * j * L + l] = 0.5f * g[j * L + l];
      t[(2 * j + 1) * L + l] = 0.25f * (g[j * L + l] + g[(j + 1) * L + l]);
    }
  LANES t[2 * (Wo - 1) * L + l] = 0.5f * g[(Wo - 1) * L + l];
  if (2 * Wo - 1 < W) LANES t[(2 * Wo - 1) * L + l] = 0.25f * g[(Wo - 1) * L + l]; /* W even */
  LANES t[L + l] += 0.25f * g[l];                                   /* x[-1] = x[1] */
  if (W & 1) LANES t[(W - 2) * L + l] += 0.25f * g[(Wo - 1) * L + l]; /* x[W] = x[W-2] */
}

/* t (2W) from x (W). */
NGC_INLINE void up_1d(const float *x, int64_t W, float *t, const int64_t L) {
  LANES t[l] = x[l];
  for (int64_t j = 0; j + 1 < W; j++)
    LANES {
      t[(2 * j + 1) * L + l] = 0.75f * x[j * L + l] + 0.25f * x[(j + 1) * L + l];
      t[(2 * j + 2) * L + l] = 0.75f * x[(j + 1) * L + l] + 0.25f * x[j * L + l];
    }
  LANES t[(2 * W - 1) * L + l] = x[(W - 1) * L + l];
}

/* x (W) = adjoint of up_1d applied to g (2W). */
NGC_INLINE void up_1d_adj(const float *g, int64_t W, float *x, const int64_t L) {
  if (W == 1) {
    LANES x[l] = g[l] + g[L + l];
    return;
  }
  LANES x[l] = g[l] + 0.75f * g[L + l] + 0.25f * g[2 * L + l];
  for (int64_t j = 1; j + 1 < W; j++)
    LANES x[j * L + l] = 0.25f * (g[(2 * j - 1) * L + l] + g[(2 * j + 2) * L + l]) +
                         0.75f * (g[2 * j * L + l] + g[(2 * j + 1) * L + l]);
  LANES x[(W - 1) * L + l] = 0.25f * g[(2 * W - 3) * L + l] + 0.75f * g[(2 * W - 2) * L + l] +
                             g[(2 * W - 1) * L + l];
}

/* dst = a * r0 + b * r1 + c * r2 over n floats (the pass along H). */
NGC_INLINE void rows3(float *restrict dst, const float *r0, const float *r1, const float *r2,
                         float a, float b, float c, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dst[i] = a * r0[i] + b * r1[i] + c * r2[i];
}

/* ------------------------------------------------------------ planes */

/* y (Ho, Wo) from x (H, W); t holds one row (W). The interior of each
 * output row is one fused loop over both passes (a separate vertical pass
 * into t costs a second short loop per row, which shows at W = 128..256);
 * the first and the reflected last column go through t. */
NGC_INLINE void down_plane(const float *x, int64_t H, int64_t W, float *y, float *t,
                           const int64_t L) {
  const int64_t Ho = (H + 1) / 2, Wo = (W + 1) / 2, inner = (W - 1) / 2, row = W * L;
  for (int64_t i = 0; i < Ho; i++) {
    const float *r0 = x + refl(2 * i - 1, H) * row, *r1 = x + 2 * i * row,
                *r2 = x + refl(2 * i + 1, H) * row;
    float *yr = y + i * Wo * L;
    if (H == 1 || W < 4) {
      if (H == 1)
        rows3(t, r0, r1, r2, 0.0f, 1.0f, 0.0f, row);
      else
        rows3(t, r0, r1, r2, 0.25f, 0.5f, 0.25f, row);
      down_1d(t, W, yr, Wo, L);
      continue;
    }
    /* j in [1, inner): columns 2j-1, 2j, 2j+1 all inside the row */
    for (int64_t j = 1; j < inner; j++) {
#pragma omp simd
      for (int64_t l = 0; l < L; l++) {
        const int64_t k = 2 * j * L + l;
        const float a = r0[k - L] + r2[k - L] + 2.0f * r1[k - L];
        const float b = r0[k] + r2[k] + 2.0f * r1[k];
        const float c = r0[k + L] + r2[k + L] + 2.0f * r1[k + L];
        yr[j * L + l] = 0.0625f * (a + c) + 0.125f * b;
      }
    }
    /* the edges: column 0 (reads x[-1] = x[1]) and j >= inner */
    LANES {
      const float c0 = 0.25f * (r0[l] + r2[l]) + 0.5f * r1[l];
      const float c1 = 0.25f * (r0[L + l] + r2[L + l]) + 0.5f * r1[L + l];
      yr[l] = 0.5f * c0 + 0.5f * c1;
    }
    for (int64_t j = inner > 1 ? inner : 1; j < Wo; j++) {
      const int64_t k0 = refl(2 * j - 1, W) * L, k1 = 2 * j * L, k2 = refl(2 * j + 1, W) * L;
      LANES {
        const float c0 = 0.25f * (r0[k0 + l] + r2[k0 + l]) + 0.5f * r1[k0 + l];
        const float c1 = 0.25f * (r0[k1 + l] + r2[k1 + l]) + 0.5f * r1[k1 + l];
        const float c2 = 0.25f * (r0[k2 + l] + r2[k2 + l]) + 0.5f * r1[k2 + l];
        yr[j * L + l] = 0.25f * c0 + 0.5f * c1 + 0.25f * c2;
      }
    }
  }
}

/* dx (H, W) from dy (Ho, Wo); u holds (Ho, W). */
NGC_INLINE void down_plane_adj(const float *dy, int64_t H, int64_t W, float *dx, float *u,
                               const int64_t L) {
  const int64_t Ho = (H + 1) / 2, Wo = (W + 1) / 2, row = W * L;
  for (int64_t i = 0; i < Ho; i++) down_1d_adj(dy + i * Wo * L, Wo, u + i * row, W, L);
  if (H == 1) {
    for (int64_t j = 0; j < row; j++) dx[j] = u[j];
    return;
  }
  /* Row h: even h = 2i gets u[i] / 2; odd h = 2i + 1 gets (u[i] + u[i+1]) / 4,
   * plus what the reflected rows x[-1] = x[1] and x[H] = x[H-2] add. */
  for (int64_t h = 0; h < H; h++) {
    float *d = dx + h * row;
    const float *ua = u + (h / 2) * row;
    if (!(h & 1)) {
      rows3(d, ua, ua, ua, 0.5f, 0.0f, 0.0f, row);
      continue;
    }
    const int64_t i1 = (h + 1) / 2;
    float wa = 0.25f, wb = i1 < Ho ? 0.25f : 0.0f;
    const float *ub = u + (i1 < Ho ? i1 : h / 2) * row;
    if (h == 1) wa += 0.25f; /* u[0] also reads x[-1] = x[1] */
    if ((H & 1) && h == H - 2) {
      /* the last output reads x[H] = x[H-2]; here ub is u[Ho-1] */
      wb += 0.25f;
    }
    rows3(d, ua, ub, ub, wa, wb, 0.0f, row);
  }
}

/* y (2H, 2W) from x (H, W); t holds (H, 2W). */
NGC_INLINE void up_plane(const float *x, int64_t H, int64_t W, float *y, float *t,
                         const int64_t L) {
  const int64_t W2 = 2 * W * L;
  for (int64_t i = 0; i < H; i++) up_1d(x + i * W * L, W, t + i * W2, L);
  for (int64_t i = 0; i < H; i++) {
    const float *prev = t + (i > 0 ? i - 1 : 0) * W2, *cur = t + i * W2,
                *next = t + (i + 1 < H ? i + 1 : i) * W2;
    rows3(y + 2 * i * W2, prev, cur, cur, 0.25f, 0.75f, 0.0f, W2);
    rows3(y + (2 * i + 1) * W2, next, cur, cur, 0.25f, 0.75f, 0.0f, W2);
  }
}

/* dx (H, W) from dy (2H, 2W); v holds (2H, W). */
NGC_INLINE void up_plane_adj(const float *dy, int64_t H, int64_t W, float *dx, float *v,
                             const int64_t L) {
  const int64_t row = W * L;
  for (int64_t i = 0; i < 2 * H; i++) up_1d_adj(dy + i * 2 * row, W, v + i * row, L);
  for (int64_t i = 0; i < H; i++) {
    /* dx[i] = 3/4 (v[2i] + v[2i+1]) + 1/4 v[2i-1] + 1/4 v[2i+2], the outer
     * rows clamped to v[0] and v[2H-1] at the edges. */
    const float *v0 = v + (i > 0 ? 2 * i - 1 : 0) * row, *v1 = v + 2 * i * row,
                *v2 = v + (2 * i + 1) * row, *v3 = v + (i + 1 < H ? 2 * i + 2 : 2 * i + 1) * row;
    float *d = dx + i * row;
#pragma omp simd
    for (int64_t j = 0; j < row; j++) d[j] = 0.25f * (v0[j] + v3[j]) + 0.75f * (v1[j] + v2[j]);
  }
}

/* ------------------------------------------------------------ slots */

typedef void (*plane_fn)(const float *in, int64_t H, int64_t W, float *out, float *tmp);

/* Each plane function made for each lane count: L = 1 (plain), 8 and 16
 * (the blocks oneDNN prefers with AVX2 and AVX-512). */
#define PLANE_FNS(name)                                                              \
  NGC_CLONES static void name##_1(const float *i, int64_t H, int64_t W, float *o,   \
                                  float *t) {                                       \
    name(i, H, W, o, t, 1);                                                         \
  }                                                                                 \
  NGC_CLONES static void name##_8(const float *i, int64_t H, int64_t W, float *o,   \
                                  float *t) {                                       \
    name(i, H, W, o, t, 8);                                                         \
  }                                                                                 \
  NGC_CLONES static void name##_16(const float *i, int64_t H, int64_t W, float *o,  \
                                   float *t) {                                      \
    name(i, H, W, o, t, 16);                                                        \
  }                                                                                 \
  static plane_fn name##_for(int64_t L) {                                           \
    return L == 16 ? name##_16 : L == 8 ? name##_8 : name##_1;                      \
  }
PLANE_FNS(down_plane)
PLANE_FNS(down_plane_adj)
PLANE_FNS(up_plane)
PLANE_FNS(up_plane_adj)

/* Runs fn on every plane of in (N*C/L planes of in_hw pixels of L floats)
 * into out, with H, W the size of the small side (the input of down, the
 * output of up's adjoint...), tmp_px pixels of intermediate per thread. */
static negcut_status run_planes(ngc_backend *be, plane_fn fn, int64_t L, const float *in,
                                int64_t in_hw, float *out, int64_t out_hw, int64_t planes,
                                int64_t H, int64_t W, int64_t tmp_px) {
  const int threads = ngc_cpu_of(be)->threads;
  const int64_t tmp_stride = (tmp_px * L + 15) / 16 * 16; /* 64-byte slices */
  float *tmp = ngc_cpu_work(be, (size_t)(tmp_stride * threads) * sizeof(float));
  if (!tmp) return NEGCUT_ERR_OUT_OF_MEMORY;
#pragma omp parallel num_threads(threads)
  {
    float *mine = tmp + tmp_stride * omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; p++)
      fn(in + p * in_hw * L, H, W, out + p * out_hw * L, mine);
  }
  return NEGCUT_OK;
}

static negcut_status cpu_blur_down_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  // x (N, C, H, W) -> y (N, C, ceil(H/2), ceil(W/2))
  const int64_t H = x->dim[2], W = x->dim[3], Ho = (H + 1) / 2, Wo = (W + 1) / 2;
  const int64_t L = ngc_block_of(be, x);
  ngc_cpu_enter(be);
  return run_planes(be, down_plane_for(L), L, x->data, H * W, y->data, Ho * Wo,
                    x->dim[0] * x->dim[1] / L, H, W, Ho * W);
}

static negcut_status cpu_blur_down_bwd(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx) {
  // dy (N, C, ceil(H/2), ceil(W/2)) -> dx (N, C, H, W)
  const int64_t H = dx->dim[2], W = dx->dim[3], Ho = (H + 1) / 2, Wo = (W + 1) / 2;
  const int64_t L = ngc_block_of(be, dx);
  ngc_cpu_enter(be);
  return run_planes(be, down_plane_adj_for(L), L, dy->data, Ho * Wo, dx->data, H * W,
                    dx->dim[0] * dx->dim[1] / L, H, W, Ho * W);
}

static negcut_status cpu_blur_up_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  // x (N, C, H, W) -> y (N, C, 2H, 2W)
  const int64_t H = x->dim[2], W = x->dim[3];
  const int64_t L = ngc_block_of(be, x);
  ngc_cpu_enter(be);
  return run_planes(be, up_plane_for(L), L, x->data, H * W, y->data, 4 * H * W,
                    x->dim[0] * x->dim[1] / L, H, W, 2 * H * W);
}

static negcut_status cpu_blur_up_bwd(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx) {
  // dy (N, C, 2H, 2W) -> dx (N, C, H, W)
  const int64_t H = dx->dim[2], W = dx->dim[3];
  const int64_t L = ngc_block_of(be, dx);
  ngc_cpu_enter(be);
  return run_planes(be, up_plane_adj_for(L), L, dy->data, 4 * H * W, dx->data, H * W,
                    dx->dim[0] * dx->dim[1] / L, H, W, 2 * H * W);
}

void ngc_cpu_fill_blur_ops(ngc_backend_ops *ops) {
  ops->blur_down_fwd = cpu_blur_down_fwd;
  ops->blur_down_bwd = cpu_blur_down_bwd;
  ops->blur_up_fwd = cpu_blur_up_fwd;
  ops->blur_up_bwd = cpu_blur_up_bwd;
}
