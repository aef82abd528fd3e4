/* Losses: cross-entropy with target 0, MSE to a constant, mean absolute
 * difference, mean. Scalar results are (1) tensors. */
#include "ops.h"

static const int64_t one[1] = {1};

static negcut_status check_xent0(negcut_ctx *ctx, const char *op, const ngc_tensor *x,
                                 const ngc_tensor *loss, const char *loss_name) {
  NGC_TRY(ngc_op_ndim(ctx, op, "x", x, 2));
  if (x->dim[1] < 1) return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: x has no logits", op);
  return ngc_op_dims(ctx, op, loss_name, loss, 1, x->dim);
}

negcut_status ngc_xent0_fwd(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *loss) {
  NGC_TRY(check_xent0(ctx, "xent0_fwd", x, loss, "loss"));
  return NGC_OP_CALL(ctx, "xent0_fwd", xent0_fwd, x, loss);
}

negcut_status ngc_xent0_bwd(negcut_ctx *ctx, const ngc_tensor *x, const ngc_tensor *dloss,
                            ngc_tensor *dx) {
  NGC_TRY(check_xent0(ctx, "xent0_bwd", x, dloss, "dloss"));
  NGC_TRY(ngc_op_same(ctx, "xent0_bwd", "x", x, "dx", dx));
  return NGC_OP_CALL(ctx, "xent0_bwd", xent0_bwd, x, dloss, dx);
}

static negcut_status check_nonempty(negcut_ctx *ctx, const char *op, const ngc_tensor *x) {
  NGC_TRY(ngc_op_need(ctx, op, "x", x));
  if (ngc_numel(x) < 1) return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: mean of nothing", op);
  return NEGCUT_OK;
}

negcut_status ngc_mse_const_fwd(negcut_ctx *ctx, const ngc_tensor *x, float t,
                                ngc_tensor *out) {
  NGC_TRY(check_nonempty(ctx, "mse_const_fwd", x));
  NGC_TRY(ngc_op_dims(ctx, "mse_const_fwd", "out", out, 1, one));
  return NGC_OP_CALL(ctx, "mse_const_fwd", mse_const_fwd, x, t, out);
}

negcut_status ngc_mse_const_bwd(negcut_ctx *ctx, const ngc_tensor *x, float t, float dout,
                                ngc_tensor *dx) {
  NGC_TRY(check_nonempty(ctx, "mse_const_bwd", x));
  NGC_TRY(ngc_op_same(ctx, "mse_const_bwd", "x", x, "dx", dx));
  return NGC_OP_CALL(ctx, "mse_const_bwd", mse_const_bwd, x, t, dout, dx);
}

negcut_status ngc_mad_fwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                          ngc_tensor *out) {
  NGC_TRY(check_nonempty(ctx, "mad_fwd", a));
  NGC_TRY(ngc_op_same(ctx, "mad_fwd", "a", a, "b", b));
  NGC_TRY(ngc_op_dims(ctx, "mad_fwd", "out", out, 1, one));
  return NGC_OP_CALL(ctx, "mad_fwd", mad_fwd, a, b, out);
}

negcut_status ngc_mad_bwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                          float dout, ngc_tensor *da, ngc_tensor *db) {
  NGC_TRY(check_nonempty(ctx, "mad_bwd", a));
  NGC_TRY(ngc_op_same(ctx, "mad_bwd", "a", a, "b", b));
  if (da) NGC_TRY(ngc_op_same(ctx, "mad_bwd", "a", a, "da", da));
  if (db) NGC_TRY(ngc_op_same(ctx, "mad_bwd", "a", a, "db", db));
  if (!da && !db) return NEGCUT_OK;
  return NGC_OP_CALL(ctx, "mad_bwd", mad_bwd, a, b, dout, da, db);
}

negcut_status ngc_mean_all(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *out) {
  NGC_TRY(check_nonempty(ctx, "mean_all", x));
  NGC_TRY(ngc_op_dims(ctx, "mean_all", "out", out, 1, one));
  return NGC_OP_CALL(ctx, "mean_all", mean_all, x, out);
}

negcut_status ngc_bce_const_fwd(negcut_ctx *ctx, const ngc_tensor *x, float t, ngc_tensor *out) {
  NGC_TRY(check_nonempty(ctx, "bce_const_fwd", x));
  NGC_TRY(ngc_op_dims(ctx, "bce_const_fwd", "out", out, 1, one));
  return NGC_OP_CALL(ctx, "bce_const_fwd", bce_const_fwd, x, t, out);
}

negcut_status ngc_bce_const_bwd(negcut_ctx *ctx, const ngc_tensor *x, float t, float dout,
                                ngc_tensor *dx) {
  NGC_TRY(check_nonempty(ctx, "bce_const_bwd", x));
  NGC_TRY(ngc_op_same(ctx, "bce_const_bwd", "x", x, "dx", dx));
  return NGC_OP_CALL(ctx, "bce_const_bwd", bce_const_bwd, x, t, dout, dx);
}
