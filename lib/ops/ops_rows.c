/* Matrix and row ops: linear, batched matmul, L2 norm, patch gather, mean
 * over patches, diagonal fill. */
#include "ops.h"

static negcut_status check_linear(negcut_ctx *ctx, const char *op, const ngc_tensor *x,
                                  const ngc_tensor *w, const ngc_tensor *b,
                                  const ngc_tensor *y) {
  NGC_TRY(ngc_op_ndim(ctx, op, "x", x, 2));
  NGC_TRY(ngc_op_ndim(ctx, op, "w", w, 2));
  int64_t w_dim[2] = {w->dim[0], x->dim[1]}, y_dim[2] = {x->dim[0], w->dim[0]};
  NGC_TRY(ngc_op_dims(ctx, op, "w", w, 2, w_dim));
  if (b) NGC_TRY(ngc_op_dims(ctx, op, "b", b, 1, w->dim));
  return ngc_op_dims(ctx, op, ngc_op_out_name(op), y, 2, y_dim);
}

negcut_status ngc_linear_fwd(negcut_ctx *ctx, const ngc_tensor *x, const ngc_tensor *w,
                             const ngc_tensor *b, ngc_tensor *y) {
  NGC_TRY(check_linear(ctx, "linear_fwd", x, w, b, y));
  return NGC_OP_CALL(ctx, "linear_fwd", linear_fwd, x, w, b, y);
}

negcut_status ngc_linear_bwd(negcut_ctx *ctx, const ngc_tensor *x, const ngc_tensor *w,
                             const ngc_tensor *dy, ngc_tensor *dx, ngc_tensor *dw,
                             ngc_tensor *db) {
  NGC_TRY(check_linear(ctx, "linear_bwd", x, w, db, dy));
  if (dx) NGC_TRY(ngc_op_same(ctx, "linear_bwd", "x", x, "dx", dx));
  if (dw) NGC_TRY(ngc_op_same(ctx, "linear_bwd", "w", w, "dw", dw));
  if (!dx && !dw && !db) return NEGCUT_OK;
  return NGC_OP_CALL(ctx, "linear_bwd", linear_bwd, x, w, dy, dx, dw, db);
}

/* a (B, M, K), b (B, N, K), c (B, M, N) */
static negcut_status check_bmm(negcut_ctx *ctx, const char *op, const ngc_tensor *a,
                               const ngc_tensor *b, const ngc_tensor *c, const char *c_name) {
  NGC_TRY(ngc_op_ndim(ctx, op, "a", a, 3));
  NGC_TRY(ngc_op_ndim(ctx, op, "b", b, 3));
  int64_t b_dim[3] = {a->dim[0], b->dim[1], a->dim[2]};
  int64_t c_dim[3] = {a->dim[0], a->dim[1], b->dim[1]};
  NGC_TRY(ngc_op_dims(ctx, op, "b", b, 3, b_dim));
  return ngc_op_dims(ctx, op, c_name, c, 3, c_dim);
}

negcut_status ngc_bmm_fwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                          ngc_tensor *c) {
  NGC_TRY(check_bmm(ctx, "bmm_fwd", a, b, c, "c"));
  return NGC_OP_CALL(ctx, "bmm_fwd", bmm_fwd, a, b, c);
}

negcut_status ngc_bmm_bwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                          const ngc_tensor *dc, ngc_tensor *da, ngc_tensor *db) {
  NGC_TRY(check_bmm(ctx, "bmm_bwd", a, b, dc, "dc"));
  if (da) NGC_TRY(ngc_op_same(ctx, "bmm_bwd", "a", a, "da", da));
  if (db) NGC_TRY(ngc_op_same(ctx, "bmm_bwd", "b", b, "db", db));
  if (!da && !db) return NEGCUT_OK;
  return NGC_OP_CALL(ctx, "bmm_bwd", bmm_bwd, a, b, dc, da, db);
}

static negcut_status check_l2norm(negcut_ctx *ctx, const char *op, float eps,
                                  const ngc_tensor *x, const ngc_tensor *y,
                                  const ngc_tensor *norm) {
  if (!(eps >= 0.0f)) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: eps %g", op, eps);
  NGC_TRY(ngc_op_ndim(ctx, op, "x", x, 2));
  NGC_TRY(ngc_op_same(ctx, op, "x", x, ngc_op_out_name(op), y));
  return ngc_op_dims(ctx, op, "norm", norm, 1, x->dim);
}

negcut_status ngc_l2norm_fwd(negcut_ctx *ctx, float eps, const ngc_tensor *x, ngc_tensor *y,
                             ngc_tensor *norm) {
  NGC_TRY(check_l2norm(ctx, "l2norm_fwd", eps, x, y, norm));
  return NGC_OP_CALL(ctx, "l2norm_fwd", l2norm_fwd, eps, x, y, norm);
}

negcut_status ngc_l2norm_bwd(negcut_ctx *ctx, float eps, const ngc_tensor *x,
                             const ngc_tensor *norm, const ngc_tensor *dy, ngc_tensor *dx) {
  NGC_TRY(check_l2norm(ctx, "l2norm_bwd", eps, x, dy, norm));
  NGC_TRY(ngc_op_same(ctx, "l2norm_bwd", "x", x, "dx", dx));
  return NGC_OP_CALL(ctx, "l2norm_bwd", l2norm_bwd, eps, x, norm, dy, dx);
}

/* x (B, C, H, W), ids in [0, H*W), y (B * n_ids, C) */
static negcut_status check_gather(negcut_ctx *ctx, const char *op, const ngc_tensor *x,
                                  const int64_t *ids, int64_t n_ids, const ngc_tensor *y) {
  NGC_TRY(ngc_op_ndim(ctx, op, ngc_op_in_name(op), x, 4));
  if (n_ids < 0 || (n_ids > 0 && !ids))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: %lld ids at %p", op,
                     (long long)n_ids, (const void *)ids);
  int64_t P = x->dim[2] * x->dim[3];
  for (int64_t s = 0; s < n_ids; s++)
    if (ids[s] < 0 || ids[s] >= P)
      return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: ids[%lld] = %lld outside [0, %lld)",
                       op, (long long)s, (long long)ids[s], (long long)P);
  int64_t y_dim[2] = {x->dim[0] * n_ids, x->dim[1]};
  return ngc_op_dims(ctx, op, ngc_op_out_name(op), y, 2, y_dim);
}

negcut_status ngc_gather_fwd(negcut_ctx *ctx, const ngc_tensor *x, const int64_t *ids,
                             int64_t n_ids, ngc_tensor *y) {
  NGC_TRY(check_gather(ctx, "gather_fwd", x, ids, n_ids, y));
  return NGC_OP_CALL(ctx, "gather_fwd", gather_fwd, x, ids, n_ids, y);
}

negcut_status ngc_gather_bwd(negcut_ctx *ctx, const ngc_tensor *dy, const int64_t *ids,
                             int64_t n_ids, ngc_tensor *dx) {
  NGC_TRY(check_gather(ctx, "gather_bwd", dx, ids, n_ids, dy));
  return NGC_OP_CALL(ctx, "gather_bwd", gather_bwd, dy, ids, n_ids, dx);
}

/* x (B, P, C) with P >= 1, y (B, C) */
static negcut_status check_mean(negcut_ctx *ctx, const char *op, const ngc_tensor *x,
                                const ngc_tensor *y) {
  NGC_TRY(ngc_op_ndim(ctx, op, ngc_op_in_name(op), x, 3));
  if (x->dim[1] < 1) return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: mean over 0 rows", op);
  int64_t y_dim[2] = {x->dim[0], x->dim[2]};
  return ngc_op_dims(ctx, op, ngc_op_out_name(op), y, 2, y_dim);
}

negcut_status ngc_mean_fwd(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *y) {
  NGC_TRY(check_mean(ctx, "mean_fwd", x, y));
  return NGC_OP_CALL(ctx, "mean_fwd", mean_fwd, x, y);
}

negcut_status ngc_mean_bwd(negcut_ctx *ctx, const ngc_tensor *dy, ngc_tensor *dx) {
  NGC_TRY(check_mean(ctx, "mean_bwd", dx, dy));
  return NGC_OP_CALL(ctx, "mean_bwd", mean_bwd, dy, dx);
}

negcut_status ngc_fill_diag_fwd(negcut_ctx *ctx, float v, const ngc_tensor *x,
                                ngc_tensor *y) {
  NGC_TRY(ngc_op_ndim(ctx, "fill_diag_fwd", "x", x, 3));
  NGC_TRY(ngc_op_same(ctx, "fill_diag_fwd", "x", x, "y", y));
  return NGC_OP_CALL(ctx, "fill_diag_fwd", fill_diag_fwd, v, x, y);
}

negcut_status ngc_fill_diag_bwd(negcut_ctx *ctx, const ngc_tensor *dy, ngc_tensor *dx) {
  NGC_TRY(ngc_op_ndim(ctx, "fill_diag_bwd", "dy", dy, 3));
  NGC_TRY(ngc_op_same(ctx, "fill_diag_bwd", "dy", dy, "dx", dx));
  return NGC_OP_CALL(ctx, "fill_diag_bwd", fill_diag_bwd, dy, dx);
}

/* a, b (M, C) -> y (M) */
static negcut_status check_rowdot(negcut_ctx *ctx, const char *op, const ngc_tensor *a,
                                  const ngc_tensor *b, const ngc_tensor *y, const char *yname) {
  NGC_TRY(ngc_op_ndim(ctx, op, "a", a, 2));
  NGC_TRY(ngc_op_same(ctx, op, "a", a, "b", b));
  return ngc_op_dims(ctx, op, yname, y, 1, a->dim);
}

negcut_status ngc_rowdot_fwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                             ngc_tensor *y) {
  NGC_TRY(check_rowdot(ctx, "rowdot_fwd", a, b, y, "y"));
  return NGC_OP_CALL(ctx, "rowdot_fwd", rowdot_fwd, a, b, y);
}

negcut_status ngc_rowdot_bwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                             const ngc_tensor *dy, ngc_tensor *da, ngc_tensor *db) {
  NGC_TRY(check_rowdot(ctx, "rowdot_bwd", a, b, dy, "dy"));
  if (da) NGC_TRY(ngc_op_same(ctx, "rowdot_bwd", "a", a, "da", da));
  if (db) NGC_TRY(ngc_op_same(ctx, "rowdot_bwd", "b", b, "db", db));
  if (!da && !db) return NEGCUT_OK;
  return NGC_OP_CALL(ctx, "rowdot_bwd", rowdot_bwd, a, b, dy, da, db);
}
