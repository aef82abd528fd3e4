/* Optimiser updates: Adam and the EMA of parameters, with the reference's
 * float operations in the reference's order (ref_optim.c: PyTorch 1.13's
 * _single_tensor_adam). Every product and sum is an explicitly rounded
 * intrinsic so that nvcc cannot fuse them into FMAs: same bits as the
 * reference. The step-dependent scalars are computed on the host in double,
 * as Python computes them, and passed as floats: as kernel arguments, or,
 * while a CUDA graph is recorded or replayed, through device memory (a
 * graph feed, cuda_graph.c), because they change at every step. */
#include <math.h>
#include <string.h>

#include "cuda_kernels.cuh"

struct adam_scalars {
  float b1, b2, one_b1, one_b2, eps, wd, neg_step_size, bc2_sqrt;
};

static __global__ void adam_kernel(const adam_scalars *fed, adam_scalars arg, float *p,
                                   const float *grad, float *m, float *v, int64_t n) {
  const adam_scalars s = fed ? *fed : arg;
  NGC_FOR(i, n) {
    float g = grad[i];
    if (s.wd != 0.0f) g = __fadd_rn(g, __fmul_rn(s.wd, p[i]));
    float mi = __fmul_rn(m[i], s.b1);
    mi = __fadd_rn(mi, __fmul_rn(s.one_b1, g));
    float vi = __fmul_rn(v[i], s.b2);
    vi = __fadd_rn(vi, __fmul_rn(__fmul_rn(s.one_b2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bc2_sqrt), s.eps);
    p[i] = __fadd_rn(p[i], __fdiv_rn(__fmul_rn(s.neg_step_size, mi), denom));
    m[i] = mi;
    v[i] = vi;
  }
}

static negcut_status cuda_adam(ngc_backend *be, const ngc_adam_params *p, ngc_tensor *param,
                               const ngc_tensor *grad, ngc_tensor *m, ngc_tensor *v) {
  const int64_t n = ngc_numel(param);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  const double step = (double)p->step;
  const double bc1 = 1.0 - pow((double)p->beta1, step);
  const double bc2 = 1.0 - pow((double)p->beta2, step);
  adam_scalars s;
  s.one_b1 = (float)(1.0 - (double)p->beta1);
  s.one_b2 = (float)(1.0 - (double)p->beta2);
  s.neg_step_size = (float)-((double)p->lr / bc1);
  s.bc2_sqrt = (float)sqrt(bc2);
  /* PyTorch casts each Python-double scalar to float for a float tensor. */
  s.b1 = (float)p->beta1;
  s.b2 = (float)p->beta2;
  s.eps = (float)p->eps;
  s.wd = (float)p->weight_decay;
  ngc_cuda *c = ngc_cuda_of(be);
  const int graphed = c->recording || c->replaying;
  if (graphed && (!c->adam_have || memcmp(&c->adam_last, p, sizeof *p))) {
    /* One transfer per distinct set of parameters (compared as given, not
     * as rounded scalars, so that which calls share one does not drift
     * with the step): every parameter of an update, and the optimisers of
     * one step, share theirs. The device copy lives until the recording
     * ends (ngc_cuda_adam_graph_end); a replay only refills the transfer's
     * feed, in the same places, which its signature checks. */
    void *dev = NULL;
    if (c->recording) st = ngc_cuda_scratch(be, sizeof s, &dev, "adam");
    if (!st) st = ngc_cuda_stage_copy(be, dev, &s, sizeof s, ngc_cuda_stream(be));
    if (st) {
      ngc_cuda_free(be, dev);
      return st;
    }
    ngc_cuda_free(be, c->adam_fed);
    c->adam_fed = dev;
    c->adam_last = *p;
    c->adam_have = 1;
  }
  const adam_scalars *fed = graphed ? (const adam_scalars *)c->adam_fed : NULL;
  return NGC_LAUNCH(be, "adam", adam_kernel, ngc_grid(n), NGC_BLOCK, fed, s, param->data,
                    grad->data, m->data, v->data, n);
}

extern "C" void ngc_cuda_adam_graph_end(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  ngc_cuda_free(be, c->adam_fed);
  c->adam_fed = NULL;
  c->adam_have = 0;
}

/* target = decay * target + (1 - decay) * src */
static __global__ void ema_kernel(float decay, float one_minus, float *t, const float *src,
                                  int64_t n) {
  NGC_FOR(i, n) t[i] = __fadd_rn(__fmul_rn(decay, t[i]), __fmul_rn(one_minus, src[i]));
}

static negcut_status cuda_ema(ngc_backend *be, float decay, ngc_tensor *target,
                              const ngc_tensor *src) {
  const int64_t n = ngc_numel(target);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "ema", ema_kernel, ngc_grid(n), NGC_BLOCK, decay, 1.0f - decay,
                    target->data, src->data, n);
}

extern "C" void ngc_cuda_fill_optim_ops(ngc_backend_ops *ops) {
  ops->adam = cuda_adam;
  ops->ema = cuda_ema;
}
