/* Element-wise ops: fill, axpby, add, activations. */
#include "ops.h"

negcut_status ngc_fill(negcut_ctx *ctx, ngc_tensor *y, float v) {
  NGC_TRY(ngc_op_need(ctx, "fill", "y", y));
  return NGC_OP_CALL(ctx, "fill", fill, y, v);
}

negcut_status ngc_axpby(negcut_ctx *ctx, float alpha, const ngc_tensor *x, float beta,
                        ngc_tensor *y) {
  NGC_TRY(ngc_op_same(ctx, "axpby", "x", x, "y", y));
  return NGC_OP_CALL(ctx, "axpby", axpby, alpha, x, beta, y);
}

negcut_status ngc_add(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                      ngc_tensor *y) {
  NGC_TRY(ngc_op_same(ctx, "add", "a", a, "b", b));
  NGC_TRY(ngc_op_same(ctx, "add", "a", a, "y", y));
  return NGC_OP_CALL(ctx, "add", add, a, b, y);
}

negcut_status ngc_to_bf16(negcut_ctx *ctx, const ngc_tensor *x, void *dst) {
  NGC_TRY(ngc_op_need(ctx, "to_bf16", "x", x));
  if (!dst) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "to_bf16: dst is NULL");
  if (!ctx->be->ops.to_bf16)
    return ngc_error(ctx, NEGCUT_ERR_UNSUPPORTED, "to_bf16: backend %s has no to_bf16",
                     ctx->be->name);
  return ctx->be->ops.to_bf16(ctx->be, x, dst);
}

negcut_status ngc_relayout(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *y) {
  NGC_TRY(ngc_op_need(ctx, "relayout", "x", x));
  NGC_TRY(ngc_op_need(ctx, "relayout", "y", y));
  NGC_TRY(ngc_op_dims(ctx, "relayout", "y", y, x->ndim, x->dim));
  return NGC_OP_CALL(ctx, "relayout", relayout, x, y);
}

static negcut_status check_act(negcut_ctx *ctx, const char *op, ngc_act act) {
  if (act != NGC_ACT_RELU && act != NGC_ACT_LRELU && act != NGC_ACT_TANH)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: unknown activation %d", op,
                     (int)act);
  return NEGCUT_OK;
}

negcut_status ngc_act_fwd(negcut_ctx *ctx, ngc_act act, float alpha, const ngc_tensor *x,
                          ngc_tensor *y) {
  NGC_TRY(check_act(ctx, "act_fwd", act));
  NGC_TRY(ngc_op_same(ctx, "act_fwd", "x", x, "y", y));
  return NGC_OP_CALL(ctx, "act_fwd", act_fwd, act, alpha, x, y);
}

negcut_status ngc_act_bwd(negcut_ctx *ctx, ngc_act act, float alpha, const ngc_tensor *x,
                          const ngc_tensor *y, const ngc_tensor *dy, ngc_tensor *dx) {
  NGC_TRY(check_act(ctx, "act_bwd", act));
  NGC_TRY(ngc_op_same(ctx, "act_bwd", "dy", dy, "dx", dx));
  if (act == NGC_ACT_TANH)
    NGC_TRY(ngc_op_same(ctx, "act_bwd", "dy", dy, "y", y));
  else
    NGC_TRY(ngc_op_same(ctx, "act_bwd", "dy", dy, "x", x));
  return NGC_OP_CALL(ctx, "act_bwd", act_bwd, act, alpha, x, y, dy, dx);
}
