/* CPU optimiser updates: Adam (PyTorch 1.13 single-tensor order) and the
 * EMA of NEGCUT's momentum projector. Element-wise, one pass. */
#include <math.h>

#include "cpu_loops.h"

/* Elements per chunk a thread takes: the loops run through functions
 * cloned per ISA (cpu_loops.h), as OpenMP's outlined bodies are not. This
 * file is compiled with -ffp-contract=off, so no clone fuses a product and a
 * sum into an FMA (the bits stay PyTorch's), and with -fno-math-errno, so
 * that sqrtf vectorises (an IEEE square root either way). */
#define OPTIM_CHUNK ((int64_t)16384)

typedef struct adam_scalars {
  float b1, b2, one_b1, one_b2, eps, wd, neg_step_size, bc2_sqrt;
} adam_scalars;

NGC_CPU_CLONES static void adam_span(const adam_scalars *k, float *restrict pp,
                                     const float *restrict pg, float *restrict pm,
                                     float *restrict pv, int64_t n) {
  const adam_scalars s = *k;
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    float g = pg[i];
    if (s.wd != 0.0f) g = g + s.wd * pp[i];
    const float mi = pm[i] * s.b1 + s.one_b1 * g;
    const float vi = pv[i] * s.b2 + (s.one_b2 * g) * g;
    pm[i] = mi;
    pv[i] = vi;
    pp[i] = pp[i] + (s.neg_step_size * mi) / (sqrtf(vi) / s.bc2_sqrt + s.eps);
  }
}

/* The per-step scalars in double, as PyTorch computes them in Python; each
 * Python scalar cast to float where it meets a float tensor; then the
 * element-wise part in float in torch.optim.Adam's order:
 *   g += wd * p;  m = m * b1 + (1 - b1) * g;  v = v * b2 + ((1 - b2) * g) * g;
 *   denom = sqrt(v) / sqrt(bc2) + eps;  p += (-lr / bc1) * m / denom. */
static negcut_status cpu_adam(ngc_backend *be, const ngc_adam_params *p,
                              ngc_tensor *param, const ngc_tensor *grad, ngc_tensor *m,
                              ngc_tensor *v) {
  const int64_t n = ngc_numel(param), chunks = (n + OPTIM_CHUNK - 1) / OPTIM_CHUNK;
  float *pp = param->data, *pm = m->data, *pv = v->data;
  const float *pg = grad->data;
  const double bc1 = 1.0 - pow(p->beta1, (double)p->step);
  const double bc2 = 1.0 - pow(p->beta2, (double)p->step);
  const adam_scalars k = {(float)p->beta1, (float)p->beta2, (float)(1.0 - p->beta1),
                          (float)(1.0 - p->beta2), (float)p->eps, (float)p->weight_decay,
                          (float)(-(p->lr / bc1)), (float)sqrt(bc2)};
  ngc_cpu_enter(be);
  if (p->step < 1)
    return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL, "cpu adam: step %lld is not 1-based",
                     (long long)p->step);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, 4 * n))
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t i0 = c * OPTIM_CHUNK, len = n - i0 < OPTIM_CHUNK ? n - i0 : OPTIM_CHUNK;
    adam_span(&k, pp + i0, pg + i0, pm + i0, pv + i0, len);
  }
  return NEGCUT_OK;
}

NGC_CPU_CLONES static void ema_span(float decay, float omd, float *restrict pt,
                                    const float *restrict ps, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) pt[i] = decay * pt[i] + omd * ps[i];
}

/* target = decay * target + (1 - decay) * src */
static negcut_status cpu_ema(ngc_backend *be, float decay, ngc_tensor *target,
                             const ngc_tensor *src) {
  const int64_t n = ngc_numel(target), chunks = (n + OPTIM_CHUNK - 1) / OPTIM_CHUNK;
  float *pt = target->data;
  const float *ps = src->data;
  const float omd = (float)(1.0 - (double)decay);
  ngc_cpu_enter(be);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, 2 * n))
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t i0 = c * OPTIM_CHUNK, len = n - i0 < OPTIM_CHUNK ? n - i0 : OPTIM_CHUNK;
    ema_span(decay, omd, pt + i0, ps + i0, len);
  }
  return NEGCUT_OK;
}

void ngc_cpu_fill_optim_ops(ngc_backend_ops *ops) {
  ops->adam = cpu_adam;
  ops->ema = cpu_ema;
}
