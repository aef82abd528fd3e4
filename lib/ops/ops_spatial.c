/* Spatial ops on (N, C, H, W): padding, instance norm, the two blurs,
 * horizontal flip, channel concat. */
#include "ops.h"

static negcut_status check_pad(negcut_ctx *ctx, const char *op, ngc_pad_mode mode,
                               int32_t pad, const ngc_tensor *x, const ngc_tensor *y) {
  char sx[96];
  if (mode != NGC_PAD_ZERO && mode != NGC_PAD_REFLECT && mode != NGC_PAD_REPLICATE)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: unknown mode %d", op, (int)mode);
  if (pad < 0) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: pad %d", op, (int)pad);
  NGC_TRY(ngc_op_ndim(ctx, op, ngc_op_in_name(op), x, 4));
  if (mode == NGC_PAD_REFLECT && (pad >= x->dim[2] || pad >= x->dim[3]))
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: reflect pad %d needs H, W > pad; x is %s",
                     op, (int)pad, ngc_shape_str(x, sx, sizeof sx));
  if (mode == NGC_PAD_REPLICATE && pad > 0 && (x->dim[2] < 1 || x->dim[3] < 1))
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: cannot replicate-pad an empty x %s", op,
                     ngc_shape_str(x, sx, sizeof sx));
  int64_t y_dim[4] = {x->dim[0], x->dim[1], x->dim[2] + 2 * pad, x->dim[3] + 2 * pad};
  NGC_TRY(ngc_op_dims(ctx, op, ngc_op_out_name(op), y, 4, y_dim));
  return ngc_op_layouts(ctx, op, ngc_op_in_name(op), x, ngc_op_out_name(op), y);
}

negcut_status ngc_pad_fwd(negcut_ctx *ctx, ngc_pad_mode mode, int32_t pad,
                          const ngc_tensor *x, ngc_tensor *y) {
  NGC_TRY(check_pad(ctx, "pad_fwd", mode, pad, x, y));
  return NGC_OP_CALL(ctx, "pad_fwd", pad_fwd, mode, pad, x, y);
}

negcut_status ngc_pad_bwd(negcut_ctx *ctx, ngc_pad_mode mode, int32_t pad,
                          const ngc_tensor *dy, ngc_tensor *dx) {
  NGC_TRY(check_pad(ctx, "pad_bwd", mode, pad, dx, dy));
  return NGC_OP_CALL(ctx, "pad_bwd", pad_bwd, mode, pad, dy, dx);
}

static negcut_status check_inorm_fwd(negcut_ctx *ctx, const char *op, float eps,
                                     const ngc_tensor *x, const ngc_tensor *y,
                                     const ngc_tensor *mean, const ngc_tensor *rstd) {
  if (!(eps >= 0.0f)) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: eps %g", op, eps);
  NGC_TRY(ngc_op_ndim(ctx, op, "x", x, 4));
  NGC_TRY(ngc_op_same(ctx, op, "x", x, "y", y));
  NGC_TRY(ngc_op_dims(ctx, op, "mean", mean, 2, x->dim));
  NGC_TRY(ngc_op_dims(ctx, op, "rstd", rstd, 2, x->dim));
  if (x->dim[2] * x->dim[3] < 1) return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: empty planes", op);
  return NEGCUT_OK;
}

negcut_status ngc_inorm_fwd(negcut_ctx *ctx, float eps, const ngc_tensor *x, ngc_tensor *y,
                            ngc_tensor *mean, ngc_tensor *rstd) {
  NGC_TRY(check_inorm_fwd(ctx, "inorm_fwd", eps, x, y, mean, rstd));
  return NGC_OP_CALL(ctx, "inorm_fwd", inorm_fwd, eps, x, y, mean, rstd);
}

negcut_status ngc_inorm_act_fwd(negcut_ctx *ctx, float eps, ngc_act act, float alpha,
                                const ngc_tensor *x, ngc_tensor *y, ngc_tensor *mean,
                                ngc_tensor *rstd) {
  const char *op = "inorm_act_fwd";
  if (act != NGC_ACT_RELU && act != NGC_ACT_LRELU)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: activation %d is not relu or lrelu",
                     op, (int)act);
  NGC_TRY(check_inorm_fwd(ctx, op, eps, x, y, mean, rstd));
  if (ctx->be->ops.inorm_act_fwd) return ctx->be->ops.inorm_act_fwd(ctx->be, eps, act, alpha, x, y, mean, rstd);
  NGC_TRY(NGC_OP_CALL(ctx, op, inorm_fwd, eps, x, y, mean, rstd));
  return NGC_OP_CALL(ctx, op, act_fwd, act, alpha, y, y);
}

negcut_status ngc_inorm_bias_fwd(negcut_ctx *ctx, float eps, int act, float alpha,
                                 const ngc_tensor *x, const ngc_tensor *b, ngc_tensor *y,
                                 ngc_tensor *mean, ngc_tensor *rstd) {
  const char *op = "inorm_bias_fwd";
  if (act != NGC_NO_ACT && act != NGC_ACT_RELU && act != NGC_ACT_LRELU)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: activation %d is not relu, lrelu or none",
                     op, act);
  NGC_TRY(check_inorm_fwd(ctx, op, eps, x, y, mean, rstd));
  NGC_TRY(ngc_op_dims(ctx, op, "b", b, 1, &x->dim[1]));
  if (x->layout != NGC_LAYOUT_PLAIN || y->layout != NGC_LAYOUT_PLAIN)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: blocked tensors", op);
  if (!ctx->be->ops.inorm_bias_fwd)
    return ngc_error(ctx, NEGCUT_ERR_UNSUPPORTED, "%s: backend %s has no inorm_bias_fwd", op,
                     ctx->be->name);
  return ctx->be->ops.inorm_bias_fwd(ctx->be, eps, act, alpha, x, b, y, mean, rstd);
}

negcut_status ngc_inorm_bwd(negcut_ctx *ctx, const ngc_tensor *y, const ngc_tensor *rstd,
                            const ngc_tensor *dy, ngc_tensor *dx) {
  const char *op = "inorm_bwd";
  NGC_TRY(ngc_op_ndim(ctx, op, "y", y, 4));
  NGC_TRY(ngc_op_dims(ctx, op, "rstd", rstd, 2, y->dim));
  NGC_TRY(ngc_op_same(ctx, op, "y", y, "dy", dy));
  NGC_TRY(ngc_op_same(ctx, op, "y", y, "dx", dx));
  if (y->dim[2] * y->dim[3] < 1) return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: empty planes", op);
  return NGC_OP_CALL(ctx, op, inorm_bwd, y, rstd, dy, dx);
}

/* x (N, C, H, W) with H, W >= 2 (reflect pad 1), y (N, C, ceil(H/2), ceil(W/2)). */
static negcut_status check_blur_down(negcut_ctx *ctx, const char *op, const ngc_tensor *x,
                                     const ngc_tensor *y) {
  char sx[96];
  NGC_TRY(ngc_op_ndim(ctx, op, ngc_op_in_name(op), x, 4));
  if (x->dim[2] < 2 || x->dim[3] < 2)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: x %s needs H, W >= 2", op,
                     ngc_shape_str(x, sx, sizeof sx));
  int64_t y_dim[4] = {x->dim[0], x->dim[1], ngc_blur_down_out_size(x->dim[2]),
                      ngc_blur_down_out_size(x->dim[3])};
  NGC_TRY(ngc_op_dims(ctx, op, ngc_op_out_name(op), y, 4, y_dim));
  return ngc_op_layouts(ctx, op, ngc_op_in_name(op), x, ngc_op_out_name(op), y);
}

negcut_status ngc_blur_down_fwd(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *y) {
  NGC_TRY(check_blur_down(ctx, "blur_down_fwd", x, y));
  return NGC_OP_CALL(ctx, "blur_down_fwd", blur_down_fwd, x, y);
}

negcut_status ngc_blur_down_bwd(negcut_ctx *ctx, const ngc_tensor *dy, ngc_tensor *dx) {
  NGC_TRY(check_blur_down(ctx, "blur_down_bwd", dx, dy));
  return NGC_OP_CALL(ctx, "blur_down_bwd", blur_down_bwd, dy, dx);
}

/* x (N, C, H, W), y (N, C, 2H, 2W). */
static negcut_status check_blur_up(negcut_ctx *ctx, const char *op, const ngc_tensor *x,
                                   const ngc_tensor *y) {
  char sx[96];
  NGC_TRY(ngc_op_ndim(ctx, op, ngc_op_in_name(op), x, 4));
  if (x->dim[2] < 1 || x->dim[3] < 1)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: x %s is empty", op,
                     ngc_shape_str(x, sx, sizeof sx));
  int64_t y_dim[4] = {x->dim[0], x->dim[1], 2 * x->dim[2], 2 * x->dim[3]};
  NGC_TRY(ngc_op_dims(ctx, op, ngc_op_out_name(op), y, 4, y_dim));
  return ngc_op_layouts(ctx, op, ngc_op_in_name(op), x, ngc_op_out_name(op), y);
}

negcut_status ngc_blur_up_fwd(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *y) {
  NGC_TRY(check_blur_up(ctx, "blur_up_fwd", x, y));
  return NGC_OP_CALL(ctx, "blur_up_fwd", blur_up_fwd, x, y);
}

negcut_status ngc_blur_up_bwd(negcut_ctx *ctx, const ngc_tensor *dy, ngc_tensor *dx) {
  NGC_TRY(check_blur_up(ctx, "blur_up_bwd", dx, dy));
  return NGC_OP_CALL(ctx, "blur_up_bwd", blur_up_bwd, dy, dx);
}

negcut_status ngc_hflip(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *y) {
  NGC_TRY(ngc_op_same(ctx, "hflip", "x", x, "y", y));
  if (ngc_numel(x) == 0) return NEGCUT_OK;
  return NGC_OP_CALL(ctx, "hflip", hflip, x, y);
}

/* a (N, Ca, ...), b (N, Cb, ...), y (N, Ca + Cb, ...): same ndim >= 2 and the
 * same dims apart from dim 1. */
static negcut_status check_concat(negcut_ctx *ctx, const char *op, const ngc_tensor *a,
                                  const ngc_tensor *b, const ngc_tensor *y) {
  char sa[96], sb[96];
  NGC_TRY(ngc_op_need(ctx, op, "a", a));
  NGC_TRY(ngc_op_ndim(ctx, op, "b", b, a->ndim));
  if (a->ndim < 2 || a->dim[0] < 1)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: a %s needs 2+ dims and N >= 1", op,
                     ngc_shape_str(a, sa, sizeof sa));
  int64_t y_dim[NGC_MAX_DIMS];
  for (int32_t i = 0; i < a->ndim; i++) {
    if (i != 1 && a->dim[i] != b->dim[i])
      return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: a %s and b %s differ beyond dim 1", op,
                       ngc_shape_str(a, sa, sizeof sa), ngc_shape_str(b, sb, sizeof sb));
    y_dim[i] = i == 1 ? a->dim[1] + b->dim[1] : a->dim[i];
  }
  NGC_TRY(ngc_op_dims(ctx, op, "y", y, a->ndim, y_dim));
  NGC_TRY(ngc_op_plain(ctx, op, "a", a));
  NGC_TRY(ngc_op_plain(ctx, op, "b", b));
  return ngc_op_plain(ctx, op, "y", y);
}

negcut_status ngc_concat_fwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                             ngc_tensor *y) {
  NGC_TRY(check_concat(ctx, "concat_fwd", a, b, y));
  return NGC_OP_CALL(ctx, "concat_fwd", concat_fwd, a, b, y);
}

/* The slot needs at least one of da, db to know the split. */
negcut_status ngc_concat_bwd(negcut_ctx *ctx, const ngc_tensor *dy, ngc_tensor *da,
                             ngc_tensor *db) {
  const char *op = "concat_bwd";
  char sy[96];
  NGC_TRY(ngc_op_need(ctx, op, "dy", dy));
  if (!da && !db) return NEGCUT_OK;
  if (da && db) {
    NGC_TRY(check_concat(ctx, op, da, db, dy));
  } else {
    const ngc_tensor *g = da ? da : db;
    NGC_TRY(ngc_op_ndim(ctx, op, da ? "da" : "db", g, dy->ndim));
    for (int32_t i = 0; i < dy->ndim; i++)
      if (dy->ndim < 2 || (i != 1 && g->dim[i] != dy->dim[i]) || g->dim[1] > dy->dim[1] ||
          dy->dim[0] < 1)
        return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: %s does not fit in dy %s", op,
                         da ? "da" : "db", ngc_shape_str(dy, sy, sizeof sy));
    NGC_TRY(ngc_op_plain(ctx, op, da ? "da" : "db", g));
    NGC_TRY(ngc_op_plain(ctx, op, "dy", dy));
  }
  return NGC_OP_CALL(ctx, op, concat_bwd, dy, da, db);
}
