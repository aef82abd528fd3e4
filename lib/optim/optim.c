/* Adam state per network, the learning-rate policy, EMA of networks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"

negcut_status ngc_adam_check(negcut_ctx *ctx, double lr, double beta1, double beta2, double eps,
                             double weight_decay) {
  if (isfinite(lr) && lr >= 0.0 && beta1 >= 0.0 && beta1 < 1.0 && beta2 >= 0.0 && beta2 < 1.0 &&
      isfinite(eps) && eps > 0.0 && isfinite(weight_decay) && weight_decay >= 0.0)
    return NEGCUT_OK;
  return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                   "adam: lr %g (finite, at least 0), betas (%g, %g) (each in [0, 1)), eps %g "
                   "(finite, above 0), weight_decay %g (finite, at least 0)",
                   lr, beta1, beta2, eps, weight_decay);
}

negcut_status ngc_adam_init(ngc_adam *a, negcut_ctx *ctx, ngc_net *net, double lr, double beta1,
                            double beta2, double eps, double weight_decay) {
  negcut_status st;
  memset(a, 0, sizeof *a);
  a->net = net;
  a->lr = lr;
  a->beta1 = beta1;
  a->beta2 = beta2;
  a->eps = eps;
  a->weight_decay = weight_decay;
  st = ngc_adam_check(ctx, lr, beta1, beta2, eps, weight_decay);
  if (st) return st;
  if (!net->grads.data)
    return ngc_error(ctx, NEGCUT_ERR_INTERNAL, "adam: network parameters not allocated");
  a->n = net->n_params;
  a->m = calloc((size_t)(a->n ? a->n : 1), sizeof *a->m);
  a->v = calloc((size_t)(a->n ? a->n : 1), sizeof *a->v);
  if (!a->m || !a->v) {
    ngc_adam_release(a);
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "adam: out of memory");
  }
  st = ngc_tensor_alloc(ctx, ctx->be, &a->m_all, 1, net->grads.dim);
  if (!st) st = ngc_tensor_alloc(ctx, ctx->be, &a->v_all, 1, net->grads.dim);
  if (!st) st = ngc_fill(ctx, &a->m_all, 0.0f);
  if (!st) st = ngc_fill(ctx, &a->v_all, 0.0f);
  if (st) {
    ngc_adam_release(a);
    return st;
  }
  for (int32_t i = 0; i < a->n; i++) {
    const ngc_param *p = &net->params[i];
    if (p->buffer) continue;
    a->m[i] = ngc_tensor_view_as(ctx->be, a->m_all.data + p->offset, &p->value);
    a->v[i] = ngc_tensor_view_as(ctx->be, a->v_all.data + p->offset, &p->value);
  }
  return NEGCUT_OK;
}

void ngc_adam_release(ngc_adam *a) {
  if (!a) return;
  ngc_tensor_release(&a->m_all);
  ngc_tensor_release(&a->v_all);
  free(a->m);
  free(a->v);
  memset(a, 0, sizeof *a);
}

negcut_status ngc_adam_update(negcut_ctx *ctx, ngc_adam *a, double lr) {
  ngc_adam_params p = {lr, a->beta1, a->beta2, a->eps, a->weight_decay, a->step + 1};
  ngc_net *net = a->net;
  negcut_status st = ngc_adam_step(ctx, &p, &net->trained, &net->grads, &a->m_all, &a->v_all);
  if (!st) a->step++;
  return st;
}

double ngc_lr_linear(int64_t epoch, int64_t epoch_count, int64_t n_epochs, int64_t n_epochs_decay) {
  /* in double: any int64 arguments, no overflow (the reference's epochs are small) */
  const double over = (double)epoch + (double)epoch_count - 1.0 - (double)n_epochs;
  return 1.0 - (over > 0.0 ? over : 0.0) / ((double)n_epochs_decay + 1.0);
}

negcut_status ngc_ema_nets(negcut_ctx *ctx, ngc_net *target, const ngc_net *src, float decay) {
  if (target->n_params != src->n_params)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "ema: networks of %d and %d parameters",
                     (int)target->n_params, (int)src->n_params);
  for (int32_t i = 0; i < target->n_params; i++) {
    const ngc_param *t = &target->params[i], *s = &src->params[i];
    if (t->buffer != s->buffer || t->offset != s->offset || !ngc_same_shape(&t->value, &s->value))
      return ngc_error(ctx, NEGCUT_ERR_SHAPE, "ema: parameter %s differs in shape", t->name);
  }
  return ngc_ema_update(ctx, decay, &target->trained, &src->trained);
}
