/* Optimiser updates: one Adam step, the EMA of parameters. */
#include "ops.h"

negcut_status ngc_adam_step(negcut_ctx *ctx, const ngc_adam_params *p, ngc_tensor *param,
                            const ngc_tensor *grad, ngc_tensor *m, ngc_tensor *v) {
  const char *op = "adam_step";
  if (!p) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: params are NULL", op);
  /* Written so that NaN fails every test. */
  if (!(p->lr >= 0.0f) || !(p->eps >= 0.0f) || !(p->weight_decay >= 0.0f) ||
      !(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f) ||
      p->step < 1)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "%s: lr %g, betas (%g, %g), eps %g, weight_decay %g, step %lld out of range",
                     op, p->lr, p->beta1, p->beta2, p->eps, p->weight_decay,
                     (long long)p->step);
  NGC_TRY(ngc_op_same(ctx, op, "param", param, "grad", grad));
  NGC_TRY(ngc_op_same(ctx, op, "param", param, "m", m));
  NGC_TRY(ngc_op_same(ctx, op, "param", param, "v", v));
  return NGC_OP_CALL(ctx, op, adam, p, param, grad, m, v);
}

negcut_status ngc_ema_update(negcut_ctx *ctx, float decay, ngc_tensor *target,
                             const ngc_tensor *src) {
  if (!(decay >= 0.0f && decay <= 1.0f))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "ema_update: decay %g outside [0, 1]",
                     decay);
  NGC_TRY(ngc_op_same(ctx, "ema_update", "target", target, "src", src));
  return NGC_OP_CALL(ctx, "ema_update", ema, decay, target, src);
}
