/* Reference optimiser updates: Adam and the EMA of parameters. */
#include <math.h>

#include "ref.h"

/* torch.optim.Adam (PyTorch 1.13 _single_tensor_adam, no amsgrad), with the
 * same float operations in the same order so results match to the bit where
 * the compiler does not contract a*b+c:
 *   g = grad + wd * p                  (only when wd != 0)
 *   m = m * b1 + (1 - b1) * g
 *   v = v * b2 + (1 - b2) * g * g
 *   denom = sqrt(v) / sqrt(1 - b2^step) + eps
 *   p = p + (-lr / (1 - b1^step)) * m / denom
 * Python computes the bias corrections and the step size in double and
 * hands them to the float kernels as scalars. */
static negcut_status ref_adam(ngc_backend *be, const ngc_adam_params *p, ngc_tensor *param,
                              const ngc_tensor *grad, ngc_tensor *m, ngc_tensor *v) {
  int64_t n = ngc_numel(param);
  double step = (double)p->step;
  double bc1 = 1.0 - pow((double)p->beta1, step);
  double bc2 = 1.0 - pow((double)p->beta2, step);
  float one_b1 = (float)(1.0 - (double)p->beta1), one_b2 = (float)(1.0 - (double)p->beta2);
  float neg_step_size = (float)-((double)p->lr / bc1);
  float bc2_sqrt = (float)sqrt(bc2);
  /* PyTorch casts each Python-double scalar to float for a float tensor. */
  float b1 = (float)p->beta1, b2 = (float)p->beta2, eps = (float)p->eps;
  float wd = (float)p->weight_decay;
  for (int64_t i = 0; i < n; i++) {
    float g = grad->data[i];
    if (wd != 0.0f) g = g + wd * param->data[i];
    m->data[i] = m->data[i] * b1;
    m->data[i] = m->data[i] + one_b1 * g;
    v->data[i] = v->data[i] * b2;
    v->data[i] = v->data[i] + one_b2 * g * g;
    float denom = sqrtf(v->data[i]) / bc2_sqrt + eps;
    param->data[i] = param->data[i] + neg_step_size * m->data[i] / denom;
  }
  return NEGCUT_OK;
}

/* target = decay * target + (1 - decay) * src */
static negcut_status ref_ema(ngc_backend *be, float decay, ngc_tensor *target,
                             const ngc_tensor *src) {
  int64_t n = ngc_numel(target);
  for (int64_t i = 0; i < n; i++)
    target->data[i] = decay * target->data[i] + (1.0f - decay) * src->data[i];
  return NEGCUT_OK;
}

void ngc_ref_fill_optim_ops(ngc_backend_ops *ops) {
  ops->adam = ref_adam;
  ops->ema = ref_ema;
}
