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
#include "cpu_loops.h" /* NGC_CPU_HAS_CLONES */

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

/* Convolutions to few channels (the generator's last, 64 -> 3 at 7x7):
 * oneDNN 2.6 computes them on its 16-channel blocks, 3 of 16 lanes useful.
 * Their forward runs our own loops (ngc_cpu_conv_few). oneDNN's kernels for
 * a plain few-channel source and a blocked destination are fast, though (the
 * generator's first convolution, 3 -> 64: 2.6 against 14 ms at 256x256), and
 * both backward passes of a convolution to few channels are such
 * convolutions run the other way. With stride 1 and W~ (I, O, k, k) the
 * weights with taps reversed (flip_swap), p~ = k - 1 - p:
 *   dx = conv(dy, W~, pad p~)                      (a forward pass from dy)
 *   dW = flip_swap(dW~), dW~ the weight gradient of the convolution from
 *        dy to x with pad p~                       (src dy, diff_dst x)
 * Both follow from substituting kh -> k-1-kh in the defining sums. The
 * first relation, the other way round, gives the data gradient of a
 * convolution from few channels to our loops: dx = conv(dy, W~, pad p~) to
 * few channels. */
static int few_shape(const ngc_conv_params *p, int64_t few, int64_t many, int64_t k) {
  return few >= 1 && few <= NGC_FEW_CHANNELS && many >= 16 && p->stride == 1 && p->pad <= k - 1;
}

/* All of this only where oneDNN runs its AVX-512 kernels and our loops have
 * an AVX-512 copy (NGC_CPU_HAS_CLONES: GCC 12 on x86-64): their register
 * blocking is AVX-512's (32 vector registers), and with oneDNN's AVX2
 * kernels (ONEDNN_MAX_CPU_ISA=AVX2) the backward passes run the other way
 * made a 256x256 CUT step slower (6.35 -> 6.60 s, 43 MiB more). */
static int few_here(void) { return NGC_CPU_HAS_CLONES && ngc_cpu_avx512(); }

static int few_out(const ngc_conv_params *p, const ngc_tensor *w) {
  return few_shape(p, w->dim[0], w->dim[1], w->dim[2]) && few_here();
}

/* Whether our loops compute the convolution to few channels y. They write
 * plain tensors, which a tensor of at most NGC_FEW_CHANNELS channels always
 * is (blocks are 8 or 16); checked all the same. */
static int few_loops(ngc_backend *be, const ngc_tensor *y) {
  return ngc_block_of(be, y) == 1 && few_here();
}

/* dst (B, A, k, k) (+)= src (A, B, k, k) with its taps reversed. */
static void flip_swap(const float *src, int64_t A, int64_t B, int64_t k, float *dst,
                      int accumulate) {
  for (int64_t a = 0; a < A; a++)
    for (int64_t b = 0; b < B; b++) {
      const float *s = src + (a * B + b) * k * k;
      float *d = dst + (b * A + a) * k * k;
      for (int64_t t = 0; t < k * k; t++) d[t] = (accumulate ? d[t] : 0.0f) + s[k * k - 1 - t];
    }
}

static negcut_status few_out_bwd(ngc_backend *be, const ngc_conv_params *p,
                                 const ngc_tensor *x, const ngc_tensor *w,
                                 const ngc_tensor *dy, ngc_tensor *dx, ngc_tensor *dw) {
  const int64_t co = w->dim[0], ci = w->dim[1], k = w->dim[2], nw = co * ci * k * k;
  ngc_conv_params q = *p;
  q.pad = (int32_t)(k - 1 - p->pad);
  float *t = ngc_cpu_side(be, (size_t)nw * sizeof(float));
  if (!t) return NEGCUT_ERR_OUT_OF_MEMORY;
  if (dx) {
    flip_swap(w->data, co, ci, k, t, 0);
    ngc_conv_key key = conv_key(be, NGC_CONV_FWD, &q, dy, dx, k, 0);
    float *const args[NGC_CONV_MAX_ARGS] = {dy->data, t, NULL, dx->data};
    negcut_status st = ngc_cpu_conv_run(be, &key, args, NULL);
    if (st) return st;
  }
  if (dw) {
    memset(t, 0, (size_t)nw * sizeof(float));
    ngc_conv_key key = conv_key(be, NGC_CONV_BWD_WEIGHTS, &q, dy, x, k, 0);
    float *const args[NGC_CONV_MAX_ARGS] = {dy->data, x->data, t, NULL};
    negcut_status st = ngc_cpu_conv_run(be, &key, args, NULL);
    if (st) return st;
    flip_swap(t, ci, co, k, dw->data, 1);
  }
  return NEGCUT_OK;
}

static negcut_status cpu_conv2d_fwd(ngc_backend *be, const ngc_conv_params *p,
                                    const ngc_tensor *x, const ngc_tensor *w,
                                    const ngc_tensor *b, ngc_tensor *y) {
  // x (N, Ci, H, W), w (Co, Ci, k, k), b (Co) or NULL, y (N, Co, Ho, Wo)
  ngc_cpu_enter(be);
  if (few_out(p, w) && few_loops(be, y))
    return ngc_cpu_conv_few(be, p->pad, 0, x, w->data, b ? b->data : NULL, y, p->w_store);
  if (ngc_cpu_wino_shape(be, p, x, w, y)) {
    const float *u = ngc_cpu_wino_weights(be, w->data, w->dim[1], w->dim[0], p->w_store);
    if (u) return ngc_cpu_conv_wino(be, p->pad, x, u, b ? b->data : NULL, y);
  }
  ngc_conv_key key = conv_key(be, NGC_CONV_FWD, p, x, y, w->dim[2], b != NULL);
  key.bf16 = p->bf16 && ngc_cpu_bf16(); /* elsewhere the float32 primitives, shared */
  float *const args[NGC_CONV_MAX_ARGS] = {x->data, w->data, b ? b->data : NULL, y->data};
  return ngc_cpu_conv_run(be, &key, args, p->w_store);
}

static negcut_status cpu_conv2d_bwd(ngc_backend *be, const ngc_conv_params *p,
                                    const ngc_tensor *x, const ngc_tensor *w,
                                    const ngc_tensor *dy, ngc_tensor *dx, ngc_tensor *dw,
                                    ngc_tensor *db) {
  // x (N, Ci, H, W), w (Co, Ci, k, k), dy (N, Co, Ho, Wo); dx like x, dw like w, db (Co)
  negcut_status st = NEGCUT_OK;
  ngc_cpu_enter(be);
  if (few_out(p, w)) {
    st = few_out_bwd(be, p, x, w, dy, dx, dw);
    if (st == NEGCUT_OK && db) bias_grad(be, dy, db);
    return st;
  }
  if (dx && few_shape(p, w->dim[1], w->dim[0], w->dim[2]) && few_loops(be, dx)) {
    st = ngc_cpu_conv_few(be, (int32_t)(w->dim[2] - 1 - p->pad), 1, dy, w->data, NULL, dx,
                          NULL);
    if (st) return st;
  } else if (dx) {
    ngc_conv_key key = conv_key(be, NGC_CONV_BWD_DATA, p, x, dy, w->dim[2], 0);
    float *const args[NGC_CONV_MAX_ARGS] = {dy->data, w->data, dx->data, NULL};
    st = ngc_cpu_conv_run(be, &key, args, NULL);
    if (st) return st;
  }
  if (dw) {
    /* oneDNN reduces the bias gradient inside the weight pass for free. */
    ngc_conv_key key = conv_key(be, NGC_CONV_BWD_WEIGHTS, p, x, dy, w->dim[2], db != NULL);
    float *const args[NGC_CONV_MAX_ARGS] = {x->data, dy->data, dw->data, db ? db->data : NULL};
    st = ngc_cpu_conv_run(be, &key, args, NULL);
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
  negcut_status st = ngc_cpu_conv_run(be, &key, args, p->w_store);
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
    st = ngc_cpu_conv_run(be, &key, args, NULL);
    if (st) return st;
  }
  if (dw) {
    ngc_conv_key key = conv_key(be, NGC_CONV_BWD_WEIGHTS, p, dy, x, w->dim[2], 0);
    float *const args[NGC_CONV_MAX_ARGS] = {dy->data, x->data, dw->data, NULL};
    st = ngc_cpu_conv_run(be, &key, args, NULL);
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
