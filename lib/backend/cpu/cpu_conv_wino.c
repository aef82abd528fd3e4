/* Winograd F(4x4, 3x3) convolutions of our own (cpu_conv.h,
 * ngc_cpu_conv_wino): 3x3 stride-1 convolutions between 16-channel blocked
 * activations at small spatial sizes, where oneDNN 2.6 has only its direct
 * kernels (its Winograd ran slower than them below 32x32 outputs and 32
 * channels, cpu_conv.h): the residual blocks of a small generator (64
 * channels at 16x16) run at the machine's peak direct and still take most of
 * its time.
 *
 * Y = A^T [ (G g G^T) . (B^T d B) ] A per 4x4 output tile and channel pair
 * (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
 * points 0, 1, -1, 2, -2): 36 products per tile where direct sums take 144.
 * Three passes over a tile list, one OpenMP region:
 *   1. each 6x6 input tile d of each channel block becomes B^T d B: 36
 *      vectors of 16 channels, stored as V[e][tile][ci] (e the element);
 *   2. 36 matrix products M[e] (tiles x co) = V[e] (tiles x ci) U[e] (ci x
 *      co), U = G g G^T transformed once (ngc_cpu_wino_weights; U[e][ci][co]):
 *      6 tiles times 4 vectors of outputs in registers, one broadcast of V
 *      per tile and input channel;
 *   3. each tile's 36 vectors of 16 outputs become A^T m A plus the bias,
 *      written where they lie inside the output.
 * Every output is the same sum in the same order for any thread count. */
#include <stdint.h>

#include "cpu_conv.h"
#include "cpu_loops.h"

#define VL 16    /* floats a vector: one 16-channel block */
#define TILE 4   /* outputs a tile side */
#define ALPHA 6  /* inputs a tile side: TILE + 3 - 1 */
#define NE 36    /* ALPHA * ALPHA: elements of a transformed tile */
#define MAX_TB 6 /* tiles a register block */
#define MAX_KV 4 /* output vectors a register block: MAX_TB * MAX_KV accumulators */

typedef float vec __attribute__((vector_size(VL * sizeof(float))));
/* For x, y and the bias, which may lie anywhere a float may (a view); the
 * buffers here (v, m, u) are 64-byte aligned, and every offset into them a
 * whole number of vectors. */
typedef float vec_u __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float))));

typedef struct wino_args {
  const float *x, *u, *b;
  float *y, *v, *m; /* v: V[NE][tiles][ci]; m: M[NE][tiles][co] */
  int64_t ci, co, h, w, ho, wo, pad, th, tw, tiles;
} wino_args;

/* Macros, not functions: a function returning a vector of 16 floats has
 * another ABI in each copy NGC_CPU_CLONES makes. */
#define LD(p) (*(const vec *)(p))
#define SPLAT(s) ((vec){s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s})

/* r = B^T d along one direction. */
#define WINO_BT(d, r)                                \
  do {                                               \
    r[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];         \
    r[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];      \
    r[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];       \
    r[3] = 2.0f * (d[3] - d[1]) - d[2] + d[4];       \
    r[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];       \
    r[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];         \
  } while (0)

/* o = A^T m along one direction. */
#define WINO_AT(m, o)                                      \
  do {                                                     \
    o[0] = m[0] + m[1] + m[2] + m[3] + m[4];               \
    o[1] = m[1] - m[2] + 2.0f * (m[3] - m[4]);             \
    o[2] = m[1] + m[2] + 4.0f * (m[3] + m[4]);             \
    o[3] = m[1] - m[2] + 8.0f * (m[3] - m[4]) + m[5];      \
  } while (0)

/* Tile t: image n, tile row ty, tile column tx. */
static inline void tile_pos(const wino_args *a, int64_t t, int64_t *n, int64_t *ty, int64_t *tx) {
  const int64_t per = a->th * a->tw, r = t % per;
  *n = t / per;
  *ty = r / a->tw;
  *tx = r % a->tw;
}

/* Pass 1 for tile t of image n, whose inputs start at row y0, column x0,
 * channel block cb; edge: some input lies outside the image (zero padding,
 * or a last partial tile). */
static inline __attribute__((always_inline)) void in_tile(const wino_args *a, int64_t t,
                                                          int64_t n, int64_t y0, int64_t x0,
                                                          int64_t cb, int edge) {
  const float *xp = a->x + (n * (a->ci / VL) + cb) * a->h * a->w * VL;
  vec tmp[ALPHA][ALPHA];
#pragma GCC unroll 6
  for (int j = 0; j < ALPHA; j++) {
    vec d[ALPHA], r[ALPHA];
    const int64_t xx = x0 + j;
#pragma GCC unroll 6
    for (int i = 0; i < ALPHA; i++) {
      const int64_t yy = y0 + i;
      d[i] = !edge || (yy >= 0 && yy < a->h && xx >= 0 && xx < a->w)
                 ? *(const vec_u *)(xp + (yy * a->w + xx) * VL)
                 : (vec){0};
    }
    WINO_BT(d, r);
#pragma GCC unroll 6
    for (int i = 0; i < ALPHA; i++) tmp[i][j] = r[i];
  }
  float *vp = a->v + t * a->ci + cb * VL;
  const int64_t stride = a->tiles * a->ci; /* from one element to the next */
#pragma GCC unroll 6
  for (int i = 0; i < ALPHA; i++) {
    vec r[ALPHA];
    WINO_BT(tmp[i], r);
#pragma GCC unroll 6
    for (int j = 0; j < ALPHA; j++) *(vec *)(vp + (i * ALPHA + j) * stride) = r[j];
  }
}

NGC_CPU_CLONES static void in_pass(const wino_args *a, int64_t t, int64_t cb) {
  int64_t n, ty, tx;
  tile_pos(a, t, &n, &ty, &tx);
  const int64_t y0 = ty * TILE - a->pad, x0 = tx * TILE - a->pad;
  if (y0 >= 0 && x0 >= 0 && y0 + ALPHA <= a->h && x0 + ALPHA <= a->w)
    in_tile(a, t, n, y0, x0, cb, 0);
  else in_tile(a, t, n, y0, x0, cb, 1);
}

/* Pass 2 for element e, tiles [t0, t0 + TB), outputs [k0, k0 + KV * VL). */
static inline __attribute__((always_inline)) void gemm_block(const wino_args *a, int64_t e,
                                                             int64_t t0, int TB, int64_t k0,
                                                             int KV) {
  vec acc[MAX_TB][MAX_KV];
#pragma GCC unroll 6
  for (int i = 0; i < TB; i++)
#pragma GCC unroll 4
    for (int j = 0; j < KV; j++) acc[i][j] = (vec){0};
  const float *vp = a->v + (e * a->tiles + t0) * a->ci;
  const float *up = a->u + e * a->ci * a->co + k0;
  for (int64_t c = 0; c < a->ci; c++) {
    vec u[MAX_KV];
#pragma GCC unroll 4
    for (int j = 0; j < KV; j++) u[j] = LD(up + c * a->co + j * VL);
#pragma GCC unroll 6
    for (int i = 0; i < TB; i++) {
      const float sv = vp[i * a->ci + c];
      const vec s = SPLAT(sv);
#pragma GCC unroll 4
      for (int j = 0; j < KV; j++) acc[i][j] += s * u[j];
    }
  }
  float *mp = a->m + (e * a->tiles + t0) * a->co + k0;
#pragma GCC unroll 6
  for (int i = 0; i < TB; i++)
#pragma GCC unroll 4
    for (int j = 0; j < KV; j++) *(vec *)(mp + i * a->co + j * VL) = acc[i][j];
}

static inline __attribute__((always_inline)) void gemm_kv(const wino_args *a, int64_t e,
                                                          int64_t k0, int KV) {
  int64_t t = 0;
  for (; t + MAX_TB <= a->tiles; t += MAX_TB) gemm_block(a, e, t, MAX_TB, k0, KV);
  if (a->tiles - t >= 4) gemm_block(a, e, t, 4, k0, KV), t += 4;
  if (a->tiles - t >= 2) gemm_block(a, e, t, 2, k0, KV), t += 2;
  if (a->tiles - t >= 1) gemm_block(a, e, t, 1, k0, KV);
}

/* Outputs [k0, k0 + kv * VL) of element e, all tiles; kv in 1..MAX_KV. */
NGC_CPU_CLONES static void gemm_pass(const wino_args *a, int64_t e, int64_t k0, int64_t kv) {
  switch (kv) {
  case 1: gemm_kv(a, e, k0, 1); break;
  case 2: gemm_kv(a, e, k0, 2); break;
  case 3: gemm_kv(a, e, k0, 3); break;
  default: gemm_kv(a, e, k0, 4); break;
  }
}

/* Pass 3 for tile t, output block kb. */
NGC_CPU_CLONES static void out_pass(const wino_args *a, int64_t t, int64_t kb) {
  int64_t n, ty, tx;
  tile_pos(a, t, &n, &ty, &tx);
  const float *mp = a->m + t * a->co + kb * VL;
  const int64_t stride = a->tiles * a->co;
  vec tmp[TILE][ALPHA];
#pragma GCC unroll 6
  for (int j = 0; j < ALPHA; j++) {
    vec m[ALPHA], o[TILE];
#pragma GCC unroll 6
    for (int i = 0; i < ALPHA; i++) m[i] = LD(mp + (i * ALPHA + j) * stride);
    WINO_AT(m, o);
#pragma GCC unroll 4
    for (int i = 0; i < TILE; i++) tmp[i][j] = o[i];
  }
  const vec bias = a->b ? *(const vec_u *)(a->b + kb * VL) : (vec){0};
  float *yp = a->y + (n * (a->co / VL) + kb) * a->ho * a->wo * VL;
  for (int i = 0; i < TILE && ty * TILE + i < a->ho; i++) {
    vec o[TILE];
    WINO_AT(tmp[i], o);
    const int64_t yy = ty * TILE + i;
    for (int j = 0; j < TILE && tx * TILE + j < a->wo; j++)
      *(vec_u *)(yp + (yy * a->wo + tx * TILE + j) * VL) = o[j] + bias;
  }
}

/* Tiles of the output y, all images. */
static int64_t tile_count(const ngc_tensor *y) {
  return y->dim[0] * ((y->dim[2] + TILE - 1) / TILE) * ((y->dim[3] + TILE - 1) / TILE);
}

int ngc_cpu_wino_shape(ngc_backend *be, const ngc_conv_params *p, const ngc_tensor *x,
                       const ngc_tensor *w, const ngc_tensor *y) {
  const int64_t ci = x->dim[1], co = y->dim[1];
  if (p->winograd != NGC_CONV_TRANSFORM_ROOMY || w->dim[2] != 3 || w->dim[3] != 3 ||
      p->stride != 1 || ci % VL || co % VL || ngc_block_of(be, x) != VL ||
      ngc_block_of(be, y) != VL || !NGC_CPU_HAS_CLONES || !ngc_cpu_avx512())
    return 0;
  /* the scratch of ngc_cpu_conv_wino: V and M */
  return (uint64_t)(NE * tile_count(y) * (ci + co)) * sizeof(float) <=
         NGC_OWN_WINOGRAD_MAX_SCRATCH;
}

/* U[e][c][k0 .. k0 + VL) = (G g G^T)[e] for the VL kernels g from input c
 * to outputs k0.. of w (co, ci, 3, 3). */
NGC_CPU_CLONES static void transform_weights(const float *w, int64_t ci, int64_t co,
                                             int64_t c, int64_t k0, float *u) {
  vec g[9], t[ALPHA][3];
  for (int tap = 0; tap < 9; tap++)
    for (int l = 0; l < VL; l++)
      g[tap][l] = w[((k0 + l) * ci + c) * 9 + tap];
  /* t = G g (along kh), then r = t G^T (along kw), G's rows
   * (1/4, 0, 0) (-1/6, -1/6, -1/6) (-1/6, 1/6, -1/6) (1/24, 1/12, 1/6)
   * (1/24, -1/12, 1/6) (0, 0, 1) */
#define WINO_G(g0, g1, g2, r)                                         \
  do {                                                                \
    r[0] = g0 * 0.25f;                                                \
    r[1] = (g0 + g1 + g2) * (-1.0f / 6.0f);                           \
    r[2] = (g0 - g1 + g2) * (-1.0f / 6.0f);                           \
    r[3] = g0 * (1.0f / 24.0f) + g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f); \
    r[4] = g0 * (1.0f / 24.0f) - g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f); \
    r[5] = g2;                                                        \
  } while (0)
  for (int j = 0; j < 3; j++) {
    vec r[ALPHA];
    WINO_G(g[j], g[3 + j], g[6 + j], r);
    for (int i = 0; i < ALPHA; i++) t[i][j] = r[i];
  }
  for (int i = 0; i < ALPHA; i++) {
    vec r[ALPHA];
    WINO_G(t[i][0], t[i][1], t[i][2], r);
    for (int j = 0; j < ALPHA; j++) *(vec *)(u + ((i * ALPHA + j) * ci + c) * co + k0) = r[j];
  }
#undef WINO_G
}

const float *ngc_cpu_wino_weights(ngc_backend *be, const float *w, int64_t ci, int64_t co,
                                  ngc_wstore *keep) {
  if (!keep) return NULL;
  const ngc_cpu_wkey key = {.w = w, .pack = NGC_CPU_PACK_WINOGRAD, .pack_dims = {ci, co}};
  int fresh = 0;
  float *u = ngc_cpu_kept(keep, &key, (size_t)(NE * ci * co) * sizeof(float), &fresh);
  if (!u || !fresh) return u;
  const int64_t kbs = co / VL;
  const int nt = ngc_cpu_nt(be, ci * co * NE);
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t q = 0; q < ci * kbs; q++) transform_weights(w, ci, co, q / kbs, q % kbs * VL, u);
  return u;
}

negcut_status ngc_cpu_conv_wino(ngc_backend *be, int32_t pad, const ngc_tensor *x,
                                const float *u, const float *b, ngc_tensor *y) {
  wino_args a = {.x = x->data, .u = u, .b = b, .y = y->data, .ci = x->dim[1],
                 .co = y->dim[1], .h = x->dim[2], .w = x->dim[3], .ho = y->dim[2],
                 .wo = y->dim[3], .pad = pad};
  a.th = (a.ho + TILE - 1) / TILE;
  a.tw = (a.wo + TILE - 1) / TILE;
  a.tiles = tile_count(y);
  const size_t vn = (size_t)(NE * a.tiles * a.ci), mn = (size_t)(NE * a.tiles * a.co);
  float *scratch = ngc_cpu_work(be, (vn + mn) * sizeof(float));
  if (!scratch) return NEGCUT_ERR_OUT_OF_MEMORY;
  a.v = scratch;
  a.m = scratch + vn;
  ngc_cpu_of(be)->own_wino_runs++;
  const int64_t cbs = a.ci / VL, kbs = a.co / VL, kgs = (kbs + MAX_KV - 1) / MAX_KV;
  const int nt = ngc_cpu_nt(be, a.tiles * NE * a.ci * a.co / VL);
#pragma omp parallel num_threads(nt)
  {
#pragma omp for schedule(static)
    for (int64_t q = 0; q < a.tiles * cbs; q++) in_pass(&a, q / cbs, q % cbs);
#pragma omp for schedule(static)
    for (int64_t q = 0; q < NE * kgs; q++) {
      const int64_t g = q % kgs, kv = kbs - g * MAX_KV < MAX_KV ? kbs - g * MAX_KV : MAX_KV;
      gemm_pass(&a, q / kgs, g * MAX_KV * VL, kv);
    }
#pragma omp for schedule(static)
    for (int64_t q = 0; q < a.tiles * kbs; q++) out_pass(&a, q / kbs, q % kbs);
  }
  return NEGCUT_OK;
}
