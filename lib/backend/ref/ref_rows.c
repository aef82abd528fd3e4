/* Reference matrix and row ops: linear, batched matmul, patch gather, mean
 * over patches, diagonal fill. */
#include <string.h>

#include "ref.h"

/* y (M, N) = x (M, K) w (N, K)^T + b (N) */
static negcut_status ref_linear_fwd(ngc_backend *be, const ngc_tensor *x,
                                    const ngc_tensor *w, const ngc_tensor *b,
                                    ngc_tensor *y) {
  int64_t M = x->dim[0], K = x->dim[1], N = w->dim[0];
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double acc = b ? b->data[n] : 0.0;
      for (int64_t k = 0; k < K; k++) acc += (double)x->data[m * K + k] * w->data[n * K + k];
      y->data[m * N + n] = (float)acc;
    }
  return NEGCUT_OK;
}

/* dx = dy w (assigned); dw += dy^T x; db += column sums of dy. */
static negcut_status ref_linear_bwd(ngc_backend *be, const ngc_tensor *x,
                                    const ngc_tensor *w, const ngc_tensor *dy,
                                    ngc_tensor *dx, ngc_tensor *dw, ngc_tensor *db) {
  int64_t M = x->dim[0], K = x->dim[1], N = w->dim[0];
  if (dx)
    for (int64_t m = 0; m < M; m++)
      for (int64_t k = 0; k < K; k++) {
        double acc = 0.0;
        for (int64_t n = 0; n < N; n++) acc += (double)dy->data[m * N + n] * w->data[n * K + k];
        dx->data[m * K + k] = (float)acc;
      }
  if (dw)
    for (int64_t n = 0; n < N; n++)
      for (int64_t k = 0; k < K; k++) {
        double acc = 0.0;
        for (int64_t m = 0; m < M; m++) acc += (double)dy->data[m * N + n] * x->data[m * K + k];
        dw->data[n * K + k] += (float)acc;
      }
  if (db)
    for (int64_t n = 0; n < N; n++) {
      double acc = 0.0;
      for (int64_t m = 0; m < M; m++) acc += dy->data[m * N + n];
      db->data[n] += (float)acc;
    }
  return NEGCUT_OK;
}

/* c (B, M, N) = a (B, M, K) b (B, N, K)^T */
static negcut_status ref_bmm_fwd(ngc_backend *be, const ngc_tensor *a,
                                 const ngc_tensor *b, ngc_tensor *c) {
  int64_t B = a->dim[0], M = a->dim[1], K = a->dim[2], N = b->dim[1];
  for (int64_t i = 0; i < B; i++) {
    const float *ai = a->data + i * M * K, *bi = b->data + i * N * K; // (M, K), (N, K)
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double acc = 0.0;
        for (int64_t k = 0; k < K; k++) acc += (double)ai[m * K + k] * bi[n * K + k];
        c->data[(i * M + m) * N + n] = (float)acc;
      }
  }
  return NEGCUT_OK;
}

/* da = dc b, db = dc^T a, both assigned (both are activations). */
static negcut_status ref_bmm_bwd(ngc_backend *be, const ngc_tensor *a,
                                 const ngc_tensor *b, const ngc_tensor *dc,
                                 ngc_tensor *da, ngc_tensor *db) {
  int64_t B = a->dim[0], M = a->dim[1], K = a->dim[2], N = b->dim[1];
  for (int64_t i = 0; i < B; i++) {
    const float *ai = a->data + i * M * K, *bi = b->data + i * N * K; // (M, K), (N, K)
    const float *gi = dc->data + i * M * N;                           // (M, N)
    if (da)
      for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) {
          double acc = 0.0;
          for (int64_t n = 0; n < N; n++) acc += (double)gi[m * N + n] * bi[n * K + k];
          da->data[(i * M + m) * K + k] = (float)acc;
        }
    if (db)
      for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
          double acc = 0.0;
          for (int64_t m = 0; m < M; m++) acc += (double)gi[m * N + n] * ai[m * K + k];
          db->data[(i * N + n) * K + k] = (float)acc;
        }
  }
  return NEGCUT_OK;
}

/* y[b*S + s, c] = x[b, c, ids[s]] for x (B, C, H, W), y (B*S, C). */
static negcut_status ref_gather_fwd(ngc_backend *be, const ngc_tensor *x,
                                    const int64_t *ids, int64_t n_ids, ngc_tensor *y) {
  int64_t B = x->dim[0], C = x->dim[1], P = x->dim[2] * x->dim[3];
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < n_ids; s++)
      for (int64_t c = 0; c < C; c++)
        y->data[(b * n_ids + s) * C + c] = x->data[(b * C + c) * P + ids[s]];
  return NEGCUT_OK;
}

/* dx = 0, then scatter-add (an id may repeat). */
static negcut_status ref_gather_bwd(ngc_backend *be, const ngc_tensor *dy,
                                    const int64_t *ids, int64_t n_ids, ngc_tensor *dx) {
  int64_t B = dx->dim[0], C = dx->dim[1], P = dx->dim[2] * dx->dim[3];
  memset(dx->data, 0, (size_t)ngc_numel(dx) * sizeof(float));
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < n_ids; s++)
      for (int64_t c = 0; c < C; c++)
        dx->data[(b * C + c) * P + ids[s]] += dy->data[(b * n_ids + s) * C + c];
  return NEGCUT_OK;
}

/* y (B, C) = mean over P of x (B, P, C) */
static negcut_status ref_mean_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  int64_t B = x->dim[0], P = x->dim[1], C = x->dim[2];
  for (int64_t b = 0; b < B; b++)
    for (int64_t c = 0; c < C; c++) {
      double acc = 0.0;
      for (int64_t p = 0; p < P; p++) acc += x->data[(b * P + p) * C + c];
      y->data[b * C + c] = (float)(acc / (double)P);
    }
  return NEGCUT_OK;
}

static negcut_status ref_mean_bwd(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx) {
  int64_t B = dx->dim[0], P = dx->dim[1], C = dx->dim[2];
  for (int64_t b = 0; b < B; b++)
    for (int64_t p = 0; p < P; p++)
      for (int64_t c = 0; c < C; c++)
        dx->data[(b * P + p) * C + c] = (float)(dy->data[b * C + c] / (double)P);
  return NEGCUT_OK;
}

/* y = x with y[b, i, i] = v for i < min(M, N); x, y (B, M, N). */
static negcut_status ref_fill_diag_fwd(ngc_backend *be, float v, const ngc_tensor *x,
                                       ngc_tensor *y) {
  int64_t B = x->dim[0], M = x->dim[1], N = x->dim[2];
  memmove(y->data, x->data, (size_t)ngc_numel(x) * sizeof(float));
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < M && i < N; i++) y->data[(b * M + i) * N + i] = v;
  return NEGCUT_OK;
}

/* The overwritten diagonal gets no gradient. */
static negcut_status ref_fill_diag_bwd(ngc_backend *be, const ngc_tensor *dy,
                                       ngc_tensor *dx) {
  int64_t B = dy->dim[0], M = dy->dim[1], N = dy->dim[2];
  memmove(dx->data, dy->data, (size_t)ngc_numel(dy) * sizeof(float));
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < M && i < N; i++) dx->data[(b * M + i) * N + i] = 0.0f;
  return NEGCUT_OK;
}

static negcut_status ref_rowdot_fwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                    ngc_tensor *y) {
  int64_t m = a->dim[0], c = a->dim[1];
  for (int64_t i = 0; i < m; i++) {
    double acc = 0.0;
    for (int64_t j = 0; j < c; j++) acc += (double)a->data[i * c + j] * b->data[i * c + j];
    y->data[i] = (float)acc;
  }
  return NEGCUT_OK;
}

static negcut_status ref_rowdot_bwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                    const ngc_tensor *dy, ngc_tensor *da, ngc_tensor *db) {
  int64_t m = a->dim[0], c = a->dim[1];
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < c; j++) {
      float ai = a->data[i * c + j], bi = b->data[i * c + j];
      if (da) da->data[i * c + j] = dy->data[i] * bi;
      if (db) db->data[i * c + j] = dy->data[i] * ai;
    }
  return NEGCUT_OK;
}

void ngc_ref_fill_rows_ops(ngc_backend_ops *ops) {
  ops->rowdot_fwd = ref_rowdot_fwd;
  ops->rowdot_bwd = ref_rowdot_bwd;
  ops->linear_fwd = ref_linear_fwd;
  ops->linear_bwd = ref_linear_bwd;
  ops->bmm_fwd = ref_bmm_fwd;
  ops->bmm_bwd = ref_bmm_bwd;
  ops->gather_fwd = ref_gather_fwd;
  ops->gather_bwd = ref_gather_bwd;
  ops->mean_fwd = ref_mean_fwd;
  ops->mean_bwd = ref_mean_bwd;
  ops->fill_diag_fwd = ref_fill_diag_fwd;
  ops->fill_diag_bwd = ref_fill_diag_bwd;
}
