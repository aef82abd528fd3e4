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
  key.winograd = k == 3 && p->stride == 1 ? p->winograd : 0; /* the shapes it has */
  key.src_blk = (int32_t)ngc_block_of(be, src);
  key.dst_blk = (int32_t)ngc_block_of(be, dst);
  return key;
}

/* y (N, C, H, W) += b (C) per channel; y plain or blocked (block L: the
 * channel of float i of plane q = (n, c / L) is (q % (C / L)) * L + i % L). */
static void bias_add(ngc_backend *be, const ngc_tensor *b, ngc_tensor *y) {
  const int64_t L = ngc_block_of(be, y), cb = y->dim[1] / L;
  const int64_t planes = y->dim[0] * cb, len = y->dim[2] * y->dim[3] * L;
  const float *bp = b->data;
  float *yp = y->data;
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_of(be)->threads)
  for (int64_t q = 0; q < planes; q++) {
    const float *v = bp + (q % cb) * L;
    float *row = yp + q * len;
    for (int64_t j = 0; j < len; j += L)
#pragma omp simd
      for (int64_t l = 0; l < L; l++) row[j + l] += v[l];
  }
}

/* db (C) += sum of dy (N, C, H, W) over N, H, W; dy plain or blocked. Per
 * channel: float sums over 256 positions folded into a double. */
static void bias_grad(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *db) {
  const int64_t L = ngc_block_of(be, dy), n = dy->dim[0], cb = dy->dim[1] / L;
  const int64_t hw = dy->dim[2] * dy->dim[3];
  const float *g = dy->data;
  float *dbp = db->data;
#pragma omp parallel for schedule(static) num_threads(ngc_cpu_of(be)->threads)
  for (int64_t q = 0; q < cb; q++) {
    double total[16] = {0};
    for (int64_t l0 = 0; l0 < L; l0 += 16) { /* lanes in groups of 16 (L = 1, 8, 16) */
      const int64_t nl = L - l0 < 16 ? L - l0 : 16;
      for (int64_t i = 0; i < n; i++) {
        const float *plane = g + (i * cb + q) * hw * L + l0;
        for (int64_t p0 = 0; p0 < hw; p0 += 256) {
          const int64_t p1 = p0 + 256 < hw ? p0 + 256 : hw;
          float s[16] = {0};
          for (int64_t p = p0; p < p1; p++)
#pragma omp simd
            for (int64_t l = 0; l < nl; l++) s[l] += plane[p * L + l];
          for (int64_t l = 0; l < nl; l++) total[l] += s[l];
        }
      }
      for (int64_t l = 0; l < nl; l++) {
        dbp[q * L + l0 + l] += (float)total[l];
        total[l] = 0.0;
      }
    }
  }
}

static negcut_status cpu_conv2d_fwd(ngc_backend *be, const ngc_conv_params *p,
                                    const ngc_tensor *x, const ngc_tensor *w,
                                    const ngc_tensor *b, ngc_tensor *y) {
  // x (N, Ci, H, W), w (Co, Ci, k, k), b (Co) or NULL, y (N, Co, Ho, Wo)
  ngc_cpu_enter(be);
  ngc_conv_key key = conv_key(be, NGC_CONV_FWD, p, x, y, w->dim[2], b != NULL);
  key.bf16 = p->bf16 && ngc_cpu_bf16(); /* elsewhere the float32 primitives, shared */
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
