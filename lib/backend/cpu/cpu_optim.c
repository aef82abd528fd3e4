/* CPU optimiser updates: Adam (PyTorch 1.13 single-tensor order) and the
 * EMA of NEGCUT's momentum projector. Element-wise, one pass. */
#include <math.h>

#include "cpu_loops.h"

/* The per-step scalars in double, as PyTorch computes them in Python; each
 * Python scalar cast to float where it meets a float tensor; then the
 * element-wise part in float in torch.optim.Adam's order:
 *   g += wd * p;  m = m * b1 + (1 - b1) * g;  v = v * b2 + ((1 - b2) * g) * g;
 *   denom = sqrt(v) / sqrt(bc2) + eps;  p += (-lr / bc1) * m / denom. */
static negcut_status cpu_adam(ngc_backend *be, const ngc_adam_params *p,
                              ngc_tensor *param, const ngc_tensor *grad, ngc_tensor *m,
                              ngc_tensor *v) {
  const int64_t n = ngc_numel(param);
  float *restrict pp = param->data, *restrict pm = m->data, *restrict pv = v->data;
  const float *restrict pg = grad->data;
  const float b1 = (float)p->beta1, b2 = (float)p->beta2, eps = (float)p->eps;
  const float wd = (float)p->weight_decay;
  const float omb1 = (float)(1.0 - p->beta1), omb2 = (float)(1.0 - p->beta2);
  const double bc1 = 1.0 - pow(p->beta1, (double)p->step);
  const double bc2 = 1.0 - pow(p->beta2, (double)p->step);
  const float neg_step = (float)(-(p->lr / bc1));
  const float bc2_sqrt = (float)sqrt(bc2);
  ngc_cpu_enter(be);
  if (p->step < 1)
    return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL, "cpu adam: step %lld is not 1-based",
                     (long long)p->step);
  /* No `simd` here: clang will not vectorise sqrtf under math-errno and
   * says so; GCC vectorises this loop at -O3 anyway. */
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, 4 * n))
  for (int64_t i = 0; i < n; i++) {
    float g = pg[i];
    if (wd != 0.0f) g = g + wd * pp[i];
    const float mi = pm[i] * b1 + omb1 * g;
    const float vi = pv[i] * b2 + (omb2 * g) * g;
    pm[i] = mi;
    pv[i] = vi;
    pp[i] = pp[i] + (neg_step * mi) / (sqrtf(vi) / bc2_sqrt + eps);
  }
  return NEGCUT_OK;
}

/* target = decay * target + (1 - decay) * src */
static negcut_status cpu_ema(ngc_backend *be, float decay, ngc_tensor *target,
                             const ngc_tensor *src) {
  const int64_t n = ngc_numel(target);
  float *restrict pt = target->data;
  const float *restrict ps = src->data;
  const float omd = (float)(1.0 - (double)decay);
  ngc_cpu_enter(be);
#pragma omp parallel for simd schedule(static) num_threads(ngc_cpu_nt(be, 2 * n))
  for (int64_t i = 0; i < n; i++) pt[i] = decay * pt[i] + omd * ps[i];
  return NEGCUT_OK;
}

void ngc_cpu_fill_optim_ops(ngc_backend_ops *ops) {
  ops->adam = cpu_adam;
  ops->ema = cpu_ema;
}
