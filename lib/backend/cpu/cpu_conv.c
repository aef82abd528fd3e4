/* Convolution slots of the CPU backend: conv2d and ConvTranspose2d, forward
 * and backward, on cached oneDNN convolution primitives (cpu_conv_cache.c).
 *
 * A ConvTranspose2d with weight (Ci, Co, k, k) is the adjoint of the
 * convolution from its output (N, Co, Ho, Wo) to its input (N, Ci, H, W)
 * with that same array read as (O = Ci, I = Co, k, k). So its forward is
 * that convolution's backward-data, its backward-data that convolution's
 * forward, and its weight gradient that convolution's weight gradient with
 * src and diff_dst swapped; only three primitive kinds exist. output_padding
 * needs nothing: with out_pad < stride the convolution of the (larger)
 * output with symmetric padding still lands on H x W. */
#include <omp.h>
#include <string.h>

#include "cpu_conv.h"

static ngc_conv_key conv_key(ngc_backend *be, ngc_conv_op op, const ngc_conv_params *p,
                             const ngc_tensor *src, const ngc_tensor *dst, int64_t k,
                             int bias) {
  ngc_conv_key key;
  memset(&key, 0, sizeof key); /* the key is compared with memcmp */
  key.op = op;
  key.threads = ngc_cpu_of(be)->threads;
  key.bias = bias;
  key.n = (int32_t)src->dim[0];
  key.ci = (int32_t)src->dim[1];
  key.h = (int32_t)src->dim[2];
  key.w = (int32_t)src->dim[3];
  key.co = (int32_t)dst->dim[1];
  key.ho = (int32_t)dst->dim[2];
  key.wo = (int32_t)dst->dim[3];
  key.k = (int32_t)k;
  key.stride = p->stride;
  key.pad = p->pad;
  return key;
}

/* y (N, C, H, W) += b (C) per channel. */
static void bias_add(ngc_backend *be, const ngc_tensor *b, ngc_tensor *y) {
  const int64_t nc = y->dim[0] * y->dim[1], c = y->dim[1], hw = y->dim[2] * y->dim[3];
  const float *bp = b->data;
  float *yp = y->data;
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_of(be)->threads)
  for (int64_t i = 0; i < nc; i++) {
    const float v = bp[i % c];
    float *row = yp + i * hw;
#pragma omp simd
    for (int64_t j = 0; j < hw; j++) row[j] += v;
  }
}

/* db (C) += sum of dy (N, C, H, W) over N, H, W. */
static void bias_grad(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *db) {
  const int64_t n = dy->dim[0], c = dy->dim[1], hw = dy->dim[2] * dy->dim[3];
  const float *g = dy->data;
  float *dbp = db->data;
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_of(be)->threads)
  for (int64_t ch = 0; ch < c; ch++) {
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
      const float *row = g + (i * c + ch) * hw;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < hw; j++) s += row[j];
      total += s;
    }
    dbp[ch] += (float)total;
  }
}

static negcut_status cpu_conv2d_fwd(ngc_backend *be, const ngc_conv_params *p,
                                    const ngc_tensor *x, const ngc_tensor *w,
                                    const ngc_tensor *b, ngc_tensor *y) {
  // x (N, Ci, H, W), w (Co, Ci, k, k), b (Co) or NULL, y (N, Co, Ho, Wo)
  ngc_cpu_enter(be);
  ngc_conv_key key = conv_key(be, NGC_CONV_FWD, p, x, y, w->dim[2], b != NULL);
  key.bf16 = p->bf16 != 0;
  float *const args[NGC_CONV_MAX_ARGS] = {x->data, w->data, b ? b->data : NULL, y->data};
  return ngc_cpu_conv_run(be, &key, args);
}

static negcut_status cpu_conv2d_bwd(ngc_backend *be, const ngc_conv_params *p,
                                    const ngc_tensor *x, const ngc_tensor *w,
                                    const ngc_tensor *dy, ngc_tensor *dx, ngc_tensor *dw,
                                    ngc_tensor *db) {
  // x (N, Ci, H, W), w (Co, Ci, k, k), dy (N, Co, Ho, Wo); dx like x, dw like w, db (Co)
  negcut_status st = NEGCUT_OK;
  ngc_cpu_enter(be);
  if (dx) {
    ngc_conv_key key = conv_key(be, NGC_CONV_BWD_DATA, p, x, dy, w->dim[2], 0);
    float *const args[NGC_CONV_MAX_ARGS] = {dy->data, w->data, dx->data, NULL};
    st = ngc_cpu_conv_run(be, &key, args);
    if (st) return st;
  }
  if (dw) {
    /* oneDNN reduces the bias gradient inside the weight pass for free. */
    ngc_conv_key key = conv_key(be, NGC_CONV_BWD_WEIGHTS, p, x, dy, w->dim[2], db != NULL);
    float *const args[NGC_CONV_MAX_ARGS] = {x->data, dy->data, dw->data, db ? db->data : NULL};
    st = ngc_cpu_conv_run(be, &key, args);
  } else if (db) {
    bias_grad(be, dy, db);
  }
  return st;
}

static negcut_status cpu_convt2d_fwd(ngc_backend *be, const ngc_conv_params *p,
                                     const ngc_tensor *x, const ngc_tensor *w,
                                     const ngc_tensor *b, ngc_tensor *y) {
  // x (N, Ci, H, W), w (Ci, Co, k, k), b (Co) or NULL, y (N, Co, Ho, Wo)
  ngc_cpu_enter(be);
  /* The adjoint convolution runs y -> x: src is y, dst is x. */
  ngc_conv_key key = conv_key(be, NGC_CONV_BWD_DATA, p, y, x, w->dim[2], 0);
  float *const args[NGC_CONV_MAX_ARGS] = {x->data, w->data, y->data, NULL};
  negcut_status st = ngc_cpu_conv_run(be, &key, args);
  if (st == NEGCUT_OK && b) bias_add(be, b, y);
  return st;
}

static negcut_status cpu_convt2d_bwd(ngc_backend *be, const ngc_conv_params *p,
                                     const ngc_tensor *x, const ngc_tensor *w,
                                     const ngc_tensor *dy, ngc_tensor *dx, ngc_tensor *dw,
                                     ngc_tensor *db) {
  // x (N, Ci, H, W), w (Ci, Co, k, k), dy (N, Co, Ho, Wo); dx like x, dw like w, db (Co)
  negcut_status st = NEGCUT_OK;
  ngc_cpu_enter(be);
  if (dx) {
    ngc_conv_key key = conv_key(be, NGC_CONV_FWD, p, dy, x, w->dim[2], 0);
    float *const args[NGC_CONV_MAX_ARGS] = {dy->data, w->data, NULL, dx->data};
    st = ngc_cpu_conv_run(be, &key, args);
    if (st) return st;
  }
  if (dw) {
    ngc_conv_key key = conv_key(be, NGC_CONV_BWD_WEIGHTS, p, dy, x, w->dim[2], 0);
    float *const args[NGC_CONV_MAX_ARGS] = {dy->data, x->data, dw->data, NULL};
    st = ngc_cpu_conv_run(be, &key, args);
    if (st) return st;
  }
  /* The adjoint convolution's bias would be per Ci: reduce dy ourselves. */
  if (db) bias_grad(be, dy, db);
  return st;
}

void ngc_cpu_fill_conv_ops(ngc_backend_ops *ops) {
  ops->conv2d_fwd = cpu_conv2d_fwd;
  ops->conv2d_bwd = cpu_conv2d_bwd;
  ops->convt2d_fwd = cpu_convt2d_fwd;
  ops->convt2d_bwd = cpu_convt2d_bwd;
  ngc_cpu_fill_blur_ops(ops);
}
