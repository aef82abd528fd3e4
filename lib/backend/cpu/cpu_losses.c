/* CPU losses: cross-entropy against class 0 (PatchNCE), MSE and
 * BCE-with-logits against a constant (LSGAN, vanilla GAN), mean absolute
 * difference (NEGCUT diversity), mean.
 * Scalar outputs come from ngc_cpu_reduce: the same bits for any thread
 * count. */
#include <math.h>

#include "cpu_loops.h"

/* glibc's vector math library (libmvec, reached through -lm) has expf for
 * 4, 8 and 16 lanes. Declaring expf `simd` lets GCC call them from the
 * vectorised loops of exp_sum_span: about 10x faster than scalar calls, each
 * lane within an ulp of expf. Loop tails call the scalar expf, so a value's
 * bits depend on the machine (the clone) and its position in the row, and
 * never on threads. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
__attribute__((simd("notinbranch"))) float expf(float);
#define EXP_COST 2
#else
#define EXP_COST 16 /* scalar calls: weigh a row accordingly */
#endif

/* sum over j < n of exp(x[j] - mx), each exp also stored in e[j] when e is
 * not NULL; float sums over NGC_CPU_BLK folded into a double, as everywhere. */
static NGC_CPU_CLONES double exp_sum_span(const float *restrict x, float *restrict e,
                                          int64_t n, float mx) {
  double s = 0.0;
  for (int64_t b = 0; b < n; b += NGC_CPU_BLK) {
    const int64_t end = b + NGC_CPU_BLK < n ? b + NGC_CPU_BLK : n;
    float f = 0.0f;
    if (e) {
#pragma omp simd reduction(+ : f)
      for (int64_t j = b; j < end; j++) {
        e[j] = expf(x[j] - mx);
        f += e[j];
      }
    } else {
#pragma omp simd reduction(+ : f)
      for (int64_t j = b; j < end; j++) f += expf(x[j] - mx);
    }
    s += f;
  }
  return s;
}

static NGC_CPU_CLONES float max_span(const float *restrict x, int64_t n) {
  float mx = x[0];
#pragma omp simd reduction(max : mx)
  for (int64_t j = 1; j < n; j++) mx = x[j] > mx ? x[j] : mx;
  return mx;
}

/* loss[i] = -x[i, 0] + logsumexp(x[i, :]); the log-sum in double. */
static negcut_status cpu_xent0_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *loss) {
  const int64_t M = ngc_d(x, 0), K = ngc_d(x, 1);
  const float *px = x->data; // (M, K)
  float *pl = loss->data;    // (M)
  ngc_cpu_enter(be);
  if (K == 0) return NEGCUT_OK; /* the op layer refuses it; no x[i, 0] to read */
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, EXP_COST * M * K))
  for (int64_t i = 0; i < M; i++) {
    const float *restrict xr = px + i * K;
    const float mx = max_span(xr, K);
    const double s = exp_sum_span(xr, NULL, K, mx);
    pl[i] = (float)((double)mx - (double)xr[0] + log(s));
  }
  return NEGCUT_OK;
}

/* dx[i, :] = dloss[i] * (softmax(x[i, :]) - e0): the exps go into dx and
 * are scaled in place, one exp per element. */
static negcut_status cpu_xent0_bwd(ngc_backend *be, const ngc_tensor *x,
                                   const ngc_tensor *dloss, ngc_tensor *dx) {
  const int64_t M = ngc_d(x, 0), K = ngc_d(x, 1);
  const float *px = x->data, *pg = dloss->data; // (M, K), (M)
  float *pdx = dx->data;                        // (M, K)
  ngc_cpu_enter(be);
  if (K == 0) return NEGCUT_OK;
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, EXP_COST * M * K))
  for (int64_t i = 0; i < M; i++) {
    const float *restrict xr = px + i * K;
    float *restrict dr = pdx + i * K;
    const float mx = max_span(xr, K);
    const double s = exp_sum_span(xr, dr, K, mx);
    const float g = pg[i], scale = (float)((double)g / s);
#pragma omp simd
    for (int64_t j = 0; j < K; j++) dr[j] *= scale;
    dr[0] -= g;
  }
  return NEGCUT_OK;
}

typedef struct mse_arg {
  const float *x;
  float t;
} mse_arg;

static double mse_chunk(const void *arg, int64_t i0, int64_t i1) {
  const mse_arg *a = arg;
  const float *restrict x = a->x;
  const float t = a->t;
  double s = 0.0;
  for (int64_t b = i0; b < i1; b += NGC_CPU_BLK) {
    int64_t e = b + NGC_CPU_BLK < i1 ? b + NGC_CPU_BLK : i1;
    float f = 0.0f;
#pragma omp simd reduction(+ : f)
    for (int64_t i = b; i < e; i++) f += (x[i] - t) * (x[i] - t);
    s += f;
  }
  return s;
}

/* out (1) = mean((x - t)^2) */
static negcut_status cpu_mse_const_fwd(ngc_backend *be, const ngc_tensor *x, float t,
                                       ngc_tensor *out) {
  const int64_t n = ngc_numel(x);
  mse_arg a = {x->data, t};
  ngc_cpu_enter(be);
  out->data[0] = n ? (float)(ngc_cpu_reduce(be, n, mse_chunk, &a) / (double)n) : NAN;
  return NEGCUT_OK;
}

/* dx = (x - t) * (2 / n) * dout, PyTorch's mse_loss_backward order. */
static negcut_status cpu_mse_const_bwd(ngc_backend *be, const ngc_tensor *x, float t,
                                       float dout, ngc_tensor *dx) {
  const int64_t n = ngc_numel(x);
  const float *px = x->data;
  float *pdx = dx->data;
  const float norm = (float)(2.0 / (double)(n ? n : 1));
  ngc_cpu_enter(be);
#pragma omp parallel for simd schedule(static) num_threads(ngc_cpu_nt(be, n))
  for (int64_t i = 0; i < n; i++) pdx[i] = (px[i] - t) * norm * dout;
  return NEGCUT_OK;
}

typedef struct mad_arg {
  const float *a, *b;
} mad_arg;

static double mad_chunk(const void *arg, int64_t i0, int64_t i1) {
  const mad_arg *m = arg;
  const float *restrict a = m->a, *restrict b = m->b;
  double s = 0.0;
  for (int64_t k = i0; k < i1; k += NGC_CPU_BLK) {
    int64_t e = k + NGC_CPU_BLK < i1 ? k + NGC_CPU_BLK : i1;
    float f = 0.0f;
#pragma omp simd reduction(+ : f)
    for (int64_t i = k; i < e; i++) f += fabsf(a[i] - b[i]);
    s += f;
  }
  return s;
}

/* out (1) = mean |a - b| */
static negcut_status cpu_mad_fwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                 ngc_tensor *out) {
  const int64_t n = ngc_numel(a);
  mad_arg m = {a->data, b->data};
  ngc_cpu_enter(be);
  out->data[0] = n ? (float)(ngc_cpu_reduce(be, n, mad_chunk, &m) / (double)n) : NAN;
  return NEGCUT_OK;
}

/* da = sign(a - b) * (dout / n) (sign(0) = 0), db = -da; either may be NULL.
 * The two stores in one pass, so a and b are read once. */
static negcut_status cpu_mad_bwd(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                                 float dout, ngc_tensor *da, ngc_tensor *db) {
  const int64_t n = ngc_numel(a);
  const float *pa = a->data, *pb = b->data;
  float *pda = da ? da->data : NULL, *pdb = db ? db->data : NULL;
  const float g = (float)((double)dout / (double)(n ? n : 1));
  ngc_cpu_enter(be);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, n))
  for (int64_t i = 0; i < n; i++) {
    const float d = pa[i] - pb[i];
    const float s = d > 0.0f ? g : d < 0.0f ? -g : 0.0f;
    if (pda) pda[i] = s;
    if (pdb) pdb[i] = -s;
  }
  return NEGCUT_OK;
}

typedef struct bce_arg {
  const float *x;
  float t;
} bce_arg;

static double bce_chunk(const void *arg, int64_t i0, int64_t i1) {
  const bce_arg *a = arg;
  const float *restrict x = a->x;
  const double t = a->t;
  double s = 0.0;
  for (int64_t i = i0; i < i1; i++) {
    const double v = x[i];
    s += (v > 0.0 ? v : 0.0) - v * t + log1p(exp(-fabs(v)));
  }
  return s;
}

/* out (1) = mean(max(x, 0) - x t + log(1 + e^-|x|)): BCEWithLogits against a
 * constant target, without overflow; per element in double (exp and log
 * dominate either way). */
static negcut_status cpu_bce_const_fwd(ngc_backend *be, const ngc_tensor *x, float t,
                                       ngc_tensor *out) {
  const int64_t n = ngc_numel(x);
  bce_arg a = {x->data, t};
  ngc_cpu_enter(be);
  out->data[0] = n ? (float)(ngc_cpu_reduce(be, n, bce_chunk, &a) / (double)n) : NAN;
  return NEGCUT_OK;
}

/* dx = (sigmoid(x) - t) * dout / n, in double: in float, sigmoid(x) - 1
 * cancels for x > ~8 (the logits of a confident discriminator). */
static negcut_status cpu_bce_const_bwd(ngc_backend *be, const ngc_tensor *x, float t,
                                       float dout, ngc_tensor *dx) {
  const int64_t n = ngc_numel(x);
  const float *px = x->data;
  float *pdx = dx->data;
  const double g = (double)dout / (double)(n ? n : 1);
  ngc_cpu_enter(be);
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_nt(be, EXP_COST * n))
  for (int64_t i = 0; i < n; i++)
    pdx[i] = (float)((1.0 / (1.0 + exp(-(double)px[i])) - (double)t) * g);
  return NEGCUT_OK;
}

static double sum_chunk(const void *arg, int64_t i0, int64_t i1) {
  return ngc_cpu_sum((const float *)arg + i0, i1 - i0);
}

/* out (1) = mean(x) */
static negcut_status cpu_mean_all(ngc_backend *be, const ngc_tensor *x, ngc_tensor *out) {
  const int64_t n = ngc_numel(x);
  ngc_cpu_enter(be);
  out->data[0] = n ? (float)(ngc_cpu_reduce(be, n, sum_chunk, x->data) / (double)n) : NAN;
  return NEGCUT_OK;
}

void ngc_cpu_fill_loss_ops(ngc_backend_ops *ops) {
  ops->xent0_fwd = cpu_xent0_fwd;
  ops->xent0_bwd = cpu_xent0_bwd;
  ops->mse_const_fwd = cpu_mse_const_fwd;
  ops->mse_const_bwd = cpu_mse_const_bwd;
  ops->mad_fwd = cpu_mad_fwd;
  ops->mad_bwd = cpu_mad_bwd;
  ops->mean_all = cpu_mean_all;
  ops->bce_const_fwd = cpu_bce_const_fwd;
  ops->bce_const_bwd = cpu_bce_const_bwd;
}
