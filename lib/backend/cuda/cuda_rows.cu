/* Row ops: patch gather, mean over patches, row-wise dot, diagonal fill.
 *
 * The patch ids arrive as a host array (the tape's host memory, or the
 * caller's): they are staged to a device buffer from the cache on the
 * backend's stream, and the buffer goes back to the cache once the kernel
 * that reads it is enqueued (cuda.h, ordering model). */
#include <stdlib.h>

#include "cuda_kernels.cuh"

#define ROWS_PER_BLOCK (NGC_BLOCK / 32)

/* The ids on the device: *out from the cache (NULL when n_ids is 0). */
static negcut_status stage_ids(ngc_backend *be, const int64_t *ids, int64_t n_ids, int64_t **out,
                               const char *what) {
  void *p = NULL;
  *out = NULL;
  if (n_ids == 0) return NEGCUT_OK;
  const size_t bytes = (size_t)n_ids * sizeof *ids;
  negcut_status st = ngc_cuda_scratch(be, bytes, &p, what);
  if (!st) st = ngc_cuda_stage_copy(be, p, ids, bytes, ngc_cuda_stream(be));
  if (st) {
    ngc_cuda_free(be, p);
    return st;
  }
  *out = (int64_t *)p;
  return NEGCUT_OK;
}

/* y[b*S + s, c] = x[b, c, ids[s]] for x (B, C, P), y (B*S, C). */
static __global__ void gather_fwd_kernel(const float *x, const int64_t *ids, float *y, int64_t B,
                                         int64_t C, int64_t P, int64_t S) {
  NGC_FOR(i, B * S * C) {
    const int64_t c = i % C, s = (i / C) % S, b = i / (C * S);
    y[i] = x[(b * C + c) * P + ids[s]];
  }
}

static negcut_status cuda_gather_fwd(ngc_backend *be, const ngc_tensor *x, const int64_t *ids,
                                     int64_t n_ids, ngc_tensor *y) {
  const int64_t B = x->dim[0], C = x->dim[1], P = x->dim[2] * x->dim[3];
  int64_t *d_ids = NULL; // (n_ids) on the device
  negcut_status st = ngc_cuda_enter(be);
  if (st || B * n_ids * C == 0) return st;
  st = stage_ids(be, ids, n_ids, &d_ids, "gather_fwd");
  if (!st)
    st = NGC_LAUNCH(be, "gather_fwd", gather_fwd_kernel, ngc_grid(B * n_ids * C), NGC_BLOCK,
                    x->data, d_ids, y->data, B, C, P, n_ids);
  ngc_cuda_free(be, d_ids);
  return st;
}

/* Distinct ids: every dx element gets at most one dy element, so one thread
 * per dy element can add it (onto the zeroed dx: 0 + v, as the reference). */
static __global__ void gather_bwd_scatter_kernel(const float *dy, const int64_t *ids, float *dx,
                                                 int64_t B, int64_t C, int64_t P, int64_t S) {
  NGC_FOR(i, B * S * C) {
    const int64_t c = i % C, s = (i / C) % S, b = i / (C * S);
    dx[(b * C + c) * P + ids[s]] += dy[i];
  }
}

/* Repeated ids: one thread per (b, c) plane adds the ids in order, as the
 * reference does, so repeats are summed in a fixed order. */
static __global__ void gather_bwd_ordered_kernel(const float *dy, const int64_t *ids, float *dx,
                                                 int64_t B, int64_t C, int64_t P, int64_t S) {
  NGC_FOR(i, B * C) {
    const int64_t b = i / C, c = i % C;
    float *plane = dx + (b * C + c) * P; // (P)
    for (int64_t s = 0; s < S; s++) plane[ids[s]] += dy[(b * S + s) * C + c];
  }
}

/* 1 when no id repeats (ids already checked to lie in [0, P)); 0 when one
 * does or the check cannot get memory. */
static int ids_distinct(const int64_t *ids, int64_t n_ids, int64_t P) {
  unsigned char *seen = (unsigned char *)calloc((size_t)(P + 7) / 8, 1);
  int ok = seen != NULL;
  for (int64_t s = 0; ok && s < n_ids; s++) {
    const int64_t v = ids[s];
    if (seen[v >> 3] & (1u << (v & 7))) ok = 0;
    seen[v >> 3] |= (unsigned char)(1u << (v & 7));
  }
  free(seen);
  return ok;
}

static negcut_status cuda_gather_bwd(ngc_backend *be, const ngc_tensor *dy, const int64_t *ids,
                                     int64_t n_ids, ngc_tensor *dx) {
  const int64_t B = dx->dim[0], C = dx->dim[1], P = dx->dim[2] * dx->dim[3];
  int64_t *d_ids = NULL; // (n_ids) on the device
  negcut_status st = ngc_cuda_enter(be);
  if (st || ngc_numel(dx) == 0) return st;
  st = ngc_cuda_zero(be, dx->data, (size_t)ngc_numel(dx) * sizeof(float), "gather_bwd");
  if (st || n_ids == 0) return st;
  st = stage_ids(be, ids, n_ids, &d_ids, "gather_bwd");
  if (!st && ids_distinct(ids, n_ids, P))
    st = NGC_LAUNCH(be, "gather_bwd (distinct ids)", gather_bwd_scatter_kernel,
                    ngc_grid(B * n_ids * C), NGC_BLOCK, dy->data, d_ids, dx->data, B, C, P, n_ids);
  else if (!st) /* its own label: a graph replay must take the same kernel as its recording */
    st = NGC_LAUNCH(be, "gather_bwd (repeated ids)", gather_bwd_ordered_kernel, ngc_grid(B * C),
                    NGC_BLOCK, dy->data, d_ids, dx->data, B, C, P, n_ids);
  ngc_cuda_free(be, d_ids);
  return st;
}

/* y (B, C) = mean over P of x (B, P, C) */
static negcut_status cuda_mean_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  negcut_status st = ngc_cuda_enter(be);
  if (st) return st;
  return ngc_cuda_colsum(be, x->data, x->dim[0], x->dim[1], x->dim[2], (double)x->dim[1], 0,
                         y->data);
}

static __global__ void mean_bwd_kernel(const float *dy, float *dx, int64_t B, int64_t P,
                                       int64_t C) {
  NGC_FOR(i, B * P * C) {
    const int64_t b = i / (P * C), c = i % C;
    dx[i] = (float)(dy[b * C + c] / (double)P);
  }
}

static negcut_status cuda_mean_bwd(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx) {
  const int64_t B = dx->dim[0], P = dx->dim[1], C = dx->dim[2];
  negcut_status st = ngc_cuda_enter(be);
  if (st || B * P * C == 0) return st;
  return NGC_LAUNCH(be, "mean_bwd", mean_bwd_kernel, ngc_grid(B * P * C), NGC_BLOCK, dy->data,
                    dx->data, B, P, C);
}

/* y[m] = sum_c a[m, c] b[m, c] in double, one warp a row. */
static __global__ void rowdot_fwd_kernel(const float *a, const float *b, float *y, int64_t M,
                                         int64_t C) {
  const int64_t m = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (m >= M) return; /* whole warps leave together */
  double acc = 0.0;
  for (int64_t c = lane; c < C; c += 32) acc += (double)a[m * C + c] * b[m * C + c];
  acc = ngc_warp_sum(acc);
  if (lane == 0) y[m] = (float)acc;
}

static negcut_status cuda_rowdot_fwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                     ngc_tensor *y) {
  const int64_t M = a->dim[0], C = a->dim[1];
  negcut_status st = ngc_cuda_enter(be);
  if (st || M == 0) return st;
  return NGC_LAUNCH(be, "rowdot_fwd", rowdot_fwd_kernel,
                    (unsigned)((M + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK), NGC_BLOCK, a->data,
                    b->data, y->data, M, C);
}

/* da = dy * b, db = dy * a (either NULL). */
static __global__ void rowdot_bwd_kernel(const float *a, const float *b, const float *dy,
                                         float *da, float *db, int64_t M, int64_t C) {
  NGC_FOR(i, M * C) {
    const float g = dy[i / C], ai = a[i], bi = b[i];
    if (da) da[i] = g * bi;
    if (db) db[i] = g * ai;
  }
}

static negcut_status cuda_rowdot_bwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                     const ngc_tensor *dy, ngc_tensor *da, ngc_tensor *db) {
  const int64_t M = a->dim[0], C = a->dim[1];
  negcut_status st = ngc_cuda_enter(be);
  if (st || M * C == 0 || (!da && !db)) return st;
  return NGC_LAUNCH(be, "rowdot_bwd", rowdot_bwd_kernel, ngc_grid(M * C), NGC_BLOCK, a->data,
                    b->data, dy->data, da ? da->data : (float *)NULL,
                    db ? db->data : (float *)NULL, M, C);
}

/* y[b, i, i] = v for i < min(M, N) on y (B, M, N). */
static __global__ void set_diag_kernel(float *y, int64_t B, int64_t M, int64_t N, float v) {
  const int64_t D = M < N ? M : N;
  NGC_FOR(i, B * D) {
    const int64_t b = i / D, k = i % D;
    y[(b * M + k) * N + k] = v;
  }
}

/* y = x (a copy unless they are one tensor), then its diagonals = v. */
static negcut_status copy_set_diag(ngc_backend *be, const char *what, const ngc_tensor *x,
                                   ngc_tensor *y, float v) {
  const int64_t B = x->dim[0], M = x->dim[1], N = x->dim[2], n = ngc_numel(x);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  if (y->data != x->data)
    st = ngc_cuda_copy(be, y->data, x->data, (size_t)n * sizeof(float), what);
  const int64_t D = M < N ? M : N;
  if (!st && B * D != 0)
    st = NGC_LAUNCH(be, what, set_diag_kernel, ngc_grid(B * D), NGC_BLOCK, y->data, B, M, N, v);
  return st;
}

static negcut_status cuda_fill_diag_fwd(ngc_backend *be, float v, const ngc_tensor *x,
                                        ngc_tensor *y) {
  return copy_set_diag(be, "fill_diag_fwd", x, y, v);
}

/* The overwritten diagonal gets no gradient. */
static negcut_status cuda_fill_diag_bwd(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx) {
  return copy_set_diag(be, "fill_diag_bwd", dy, dx, 0.0f);
}

extern "C" void ngc_cuda_fill_rows_ops(ngc_backend_ops *ops) {
  ops->gather_fwd = cuda_gather_fwd;
  ops->gather_bwd = cuda_gather_bwd;
  ops->mean_fwd = cuda_mean_fwd;
  ops->mean_bwd = cuda_mean_bwd;
  ops->rowdot_fwd = cuda_rowdot_fwd;
  ops->rowdot_bwd = cuda_rowdot_bwd;
  ops->fill_diag_fwd = cuda_fill_diag_fwd;
  ops->fill_diag_bwd = cuda_fill_diag_bwd;
}
