/* CPU row ops of the contrastive losses: L2 normalisation, patch gather,
 * mean over positions, diagonal fill, row dot products. */
#include <math.h>
#include <string.h>

#include "cpu_loops.h"

/* y = x / (||x|| + eps) per row, as PyTorch's x.div(norm + eps). */
static negcut_status cpu_l2norm_fwd(ngc_backend *be, float eps, const ngc_tensor *x,
                                    ngc_tensor *y, ngc_tensor *norm) {
  const int64_t M = ngc_d(x, 0), C = ngc_numel(x) / (M ? M : 1);
  const float *px = x->data; // (M, C)
  float *py = y->data;       // (M, C)
  float *pn = norm ? norm->data : NULL; // (M)
  ngc_cpu_enter(be);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, M * C))
  for (int64_t i = 0; i < M; i++) {
    const float *restrict xr = px + i * C;
    float *restrict yr = py + i * C;
    const float r = (float)sqrt(ngc_cpu_dot(xr, xr, C)), d = r + eps;
    if (pn) pn[i] = r;
#pragma omp simd
    for (int64_t j = 0; j < C; j++) yr[j] = xr[j] / d;
  }
  return NEGCUT_OK;
}

/* With r = ||x||, d = r + eps: dx = dy / d - x (x.dy) / (r d^2); at r = 0
 * the second term is taken as 0 (the subgradient PyTorch's norm uses). */
static negcut_status cpu_l2norm_bwd(ngc_backend *be, float eps, const ngc_tensor *x,
                                    const ngc_tensor *norm, const ngc_tensor *dy,
                                    ngc_tensor *dx) {
  const int64_t M = ngc_d(x, 0), C = ngc_numel(x) / (M ? M : 1);
  const float *px = x->data, *pdy = dy->data; // (M, C)
  const float *pn = norm->data;               // (M)
  float *pdx = dx->data;                      // (M, C)
  ngc_cpu_enter(be);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, M * C))
  for (int64_t i = 0; i < M; i++) {
    const float *restrict xr = px + i * C, *restrict gr = pdy + i * C;
    float *restrict dxr = pdx + i * C;
    const double r = pn[i], d = r + (double)eps;
    const float inv = (float)(1.0 / d);
    const float coef = r > 0.0 ? (float)(ngc_cpu_dot(xr, gr, C) / (r * d * d)) : 0.0f;
#pragma omp simd
    for (int64_t j = 0; j < C; j++) dxr[j] = gr[j] * inv - xr[j] * coef;
  }
  return NEGCUT_OK;
}

/* y[(b * n + s), c] = x[b, c, ids[s]]: one task per (b, c) plane, so the
 * random reads stay inside one plane. */
static negcut_status cpu_gather_fwd(ngc_backend *be, const ngc_tensor *x,
                                    const int64_t *ids, int64_t n_ids, ngc_tensor *y) {
  const int64_t B = ngc_d(x, 0), C = ngc_d(x, 1), hw = ngc_d(x, 2) * ngc_d(x, 3);
  const int64_t L = ngc_block_of(be, x);
  const float *px = x->data; // (B, C, H, W) or (B, C/L, H, W, L)
  float *py = y->data;       // (B * n_ids, C)
  ngc_cpu_enter(be);
  if (L > 1) { /* a row is C/L pieces of L contiguous floats */
#pragma omp parallel for collapse(2) schedule(static) num_threads(ngc_cpu_nt(be, 4 * B * C * n_ids))
    for (int64_t b = 0; b < B; b++) {
      for (int64_t s = 0; s < n_ids; s++) {
        float *yr = py + (b * n_ids + s) * C;
        for (int64_t q = 0; q < C / L; q++)
          memcpy(yr + q * L, px + ((b * (C / L) + q) * hw + ids[s]) * L, (size_t)L * sizeof *yr);
      }
    }
    return NEGCUT_OK;
  }
#pragma omp parallel for collapse(2) schedule(static) num_threads(ngc_cpu_nt(be, 4 * B * C * n_ids))
  for (int64_t b = 0; b < B; b++) {
    for (int64_t c = 0; c < C; c++) {
      const float *xp = px + (b * C + c) * hw;
      float *yc = py + b * n_ids * C + c;
      for (int64_t s = 0; s < n_ids; s++) yc[s * C] = xp[ids[s]];
    }
  }
  return NEGCUT_OK;
}

/* dx = 0, then dx[b, c, ids[s]] += dy[b * n + s, c] in order of s, one
 * plane per task: repeated ids add up, with no races. */
static negcut_status cpu_gather_bwd(ngc_backend *be, const ngc_tensor *dy,
                                    const int64_t *ids, int64_t n_ids, ngc_tensor *dx) {
  const int64_t B = ngc_d(dx, 0), C = ngc_d(dx, 1), hw = ngc_d(dx, 2) * ngc_d(dx, 3);
  const int64_t L = ngc_block_of(be, dx);
  const float *pdy = dy->data; // (B * n_ids, C)
  float *pdx = dx->data;       // (B, C, H, W) or (B, C/L, H, W, L)
  ngc_cpu_enter(be);
#pragma omp parallel for collapse(2) schedule(static) num_threads(ngc_cpu_nt(be, B * C * hw))
  for (int64_t b = 0; b < B; b++) {
    for (int64_t q = 0; q < C / L; q++) { /* one plane of L channels */
      float *dxp = pdx + (b * (C / L) + q) * hw * L;
      const float *gc = pdy + b * n_ids * C + q * L;
      memset(dxp, 0, (size_t)(hw * L) * sizeof *dxp);
      for (int64_t s = 0; s < n_ids; s++)
#pragma omp simd
        for (int64_t l = 0; l < L; l++) dxp[ids[s] * L + l] += gc[s * C + l];
    }
  }
  return NEGCUT_OK;
}

/* y (B, C) = mean over P of x (B, P, C). */
static negcut_status cpu_mean_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  const int64_t B = ngc_d(x, 0), P = ngc_d(x, 1), C = ngc_d(x, 2) * ngc_d(x, 3);
  ngc_cpu_enter(be);
  for (int64_t b = 0; b < B; b++)
    ngc_cpu_colsum(be, x->data + b * P * C, P, C, C, (double)P, 0, y->data + b * C);
  return NEGCUT_OK;
}

/* dx[b, p, :] = dy[b, :] / P */
static negcut_status cpu_mean_bwd(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx) {
  const int64_t B = ngc_d(dx, 0), P = ngc_d(dx, 1), C = ngc_d(dx, 2) * ngc_d(dx, 3);
  const float *pdy = dy->data; // (B, C)
  float *pdx = dx->data;       // (B, P, C)
  const float fp = (float)P;
  ngc_cpu_enter(be);
#pragma omp parallel for collapse(2) schedule(static) num_threads(ngc_cpu_nt(be, B * P * C))
  for (int64_t b = 0; b < B; b++) {
    for (int64_t p = 0; p < P; p++) {
      const float *restrict g = pdy + b * C;
      float *restrict dxr = pdx + (b * P + p) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; c++) dxr[c] = g[c] / fp;
    }
  }
  return NEGCUT_OK;
}

/* dst = src with dst[b, i, i] = v for i < min(M, N); src may be dst. */
static void copy_set_diag(ngc_backend *be, const float *src, float *dst, int64_t B,
                          int64_t M, int64_t N, float v) {
  const int64_t n = B * M * N;
  if (src != dst) {
#pragma omp parallel for simd schedule(static) num_threads(ngc_cpu_nt(be, n))
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
  }
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < M && i < N; i++) dst[(b * M + i) * N + i] = v;
}

/* x, y (B, M, N) */
static negcut_status cpu_fill_diag_fwd(ngc_backend *be, float v, const ngc_tensor *x,
                                       ngc_tensor *y) {
  ngc_cpu_enter(be);
  copy_set_diag(be, x->data, y->data, ngc_d(x, 0), ngc_d(x, 1), ngc_d(x, 2), v);
  return NEGCUT_OK;
}

/* The overwritten diagonal gets no gradient. */
static negcut_status cpu_fill_diag_bwd(ngc_backend *be, const ngc_tensor *dy,
                                       ngc_tensor *dx) {
  ngc_cpu_enter(be);
  copy_set_diag(be, dy->data, dx->data, ngc_d(dy, 0), ngc_d(dy, 1), ngc_d(dy, 2), 0.0f);
  return NEGCUT_OK;
}

/* y (M) = sum_c a[m, c] b[m, c] */
static negcut_status cpu_rowdot_fwd(ngc_backend *be, const ngc_tensor *a,
                                    const ngc_tensor *b, ngc_tensor *y) {
  const int64_t M = ngc_d(a, 0), C = ngc_d(a, 1);
  const float *pa = a->data, *pb = b->data; // (M, C)
  float *py = y->data;                      // (M)
  ngc_cpu_enter(be);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, M * C))
  for (int64_t i = 0; i < M; i++) py[i] = (float)ngc_cpu_dot(pa + i * C, pb + i * C, C);
  return NEGCUT_OK;
}

/* da = dy * b, db = dy * a, assigned; either may be NULL. */
static negcut_status cpu_rowdot_bwd(ngc_backend *be, const ngc_tensor *a,
                                    const ngc_tensor *b, const ngc_tensor *dy,
                                    ngc_tensor *da, ngc_tensor *db) {
  const int64_t M = ngc_d(a, 0), C = ngc_d(a, 1);
  const float *pa = a->data, *pb = b->data, *pdy = dy->data; // (M, C), (M)
  float *pda = da ? da->data : NULL, *pdb = db ? db->data : NULL;
  ngc_cpu_enter(be);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, M * C))
  for (int64_t i = 0; i < M; i++) {
    const float g = pdy[i];
    if (pda) {
#pragma omp simd
      for (int64_t j = 0; j < C; j++) pda[i * C + j] = g * pb[i * C + j];
    }
    if (pdb) {
#pragma omp simd
      for (int64_t j = 0; j < C; j++) pdb[i * C + j] = g * pa[i * C + j];
    }
  }
  return NEGCUT_OK;
}

void ngc_cpu_fill_rows_ops(ngc_backend_ops *ops) {
  ops->l2norm_fwd = cpu_l2norm_fwd;
  ops->l2norm_bwd = cpu_l2norm_bwd;
  ops->gather_fwd = cpu_gather_fwd;
  ops->gather_bwd = cpu_gather_bwd;
  ops->mean_fwd = cpu_mean_fwd;
  ops->mean_bwd = cpu_mean_bwd;
  ops->fill_diag_fwd = cpu_fill_diag_fwd;
  ops->fill_diag_bwd = cpu_fill_diag_bwd;
  ops->rowdot_fwd = cpu_rowdot_fwd;
  ops->rowdot_bwd = cpu_rowdot_bwd;
}
