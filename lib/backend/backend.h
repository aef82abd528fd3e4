/*
 * The backend interface: a table of function pointers plus a private
 * pointer (ggml-backend style). Never installed.
 *
 * Memory slots are required. Op slots come in forward/backward pairs; a NULL
 * slot falls back to the reference backend, which works only for backends
 * whose memory is host memory (ref, cpu). A device backend fills every slot
 * except the optional fusions (inorm_act_fwd, composed by lib/ops from
 * other slots where it is NULL; inorm_bias_fwd, used only where it is
 * there) and to_bf16, which only a backend that reads
 * ngc_conv_params.w_bf16 needs. The graph slots are optional too: a
 * backend without them runs everything as it is called.
 *
 * Layouts. Slots receive plain row-major tensors (NGC_LAYOUT_PLAIN), except
 * on a backend with act_block > 0, whose 4-D activations may also be in its
 * blocked layout (NGC_LAYOUT_BLOCKED, core/tensor.h) in these slots: fill,
 * axpby, add, act, conv2d and convt2d (x, y, dx, dy; weights and biases are
 * plain), pad, inorm and inorm_act (mean and rstd plain), blur down and up,
 * hflip, gather (x, dx), the loss reductions mse_const, bce_const, mad and
 * mean_all, and relayout. Operands of one element-wise call share a layout. The network
 * executor keeps activations blocked between layers and converts only at its
 * edges (the input, the output, what the public API hands out).
 *
 * Conventions for every op:
 *  - shapes are already checked by lib/ops; a slot never sees bad shapes;
 *  - backward ASSIGNS activation gradients (dx) and ACCUMULATES (+=) into
 *    parameter gradients (dw, db); any gradient pointer may be NULL, and the
 *    slot then skips that work;
 *  - a slot returns NEGCUT_OK or records a message on be->ctx and returns a
 *    status.
 */
#ifndef NGC_BACKEND_H
#define NGC_BACKEND_H

#include "core/core.h"
#include "core/tensor.h"

/* ngc_conv_params.winograd: whether a pass may use a transform algorithm,
 * and how much scratch memory it may take for it (the CPU's bounds:
 * cpu_conv_cache.c). */
enum {
  NGC_CONV_TRANSFORM_NONE = 0, /* direct sums only */
  NGC_CONV_TRANSFORM = 1,      /* beside memory the caller holds (training) */
  NGC_CONV_TRANSFORM_ROOMY = 2 /* where little else is held (inference), up to
                                  the backend's winograd_scratch_max */
};

/* Weights kept prepared: a backend's copies of weights in the form its
 * convolutions take them (oneDNN's blocked or Winograd layouts, the packed
 * vectors of the CPU's few-channel loops), for an owner whose weights stay
 * the same while the store lives (a translator: its model never changes).
 * The backend adds entries up to cap bytes in all (used: so far), keeps them
 * in impl and sets free_impl with the first; ngc_wstore_clear releases them.
 * Used by one thread at a time, as its owner. */
typedef struct ngc_wstore {
  size_t cap, used;
  void *impl;
  void (*free_impl)(struct ngc_wstore *s);
} ngc_wstore;

static inline void ngc_wstore_clear(ngc_wstore *s) {
  if (s->free_impl) s->free_impl(s);
  s->impl = NULL;
  s->free_impl = NULL;
  s->used = 0;
}

/* conv2d: weight (Co, Ci, k, k), zero padding `pad`, bias (Co) or NULL.
 * conv_transpose2d: weight (Ci, Co, k, k) as PyTorch stores it; out_pad
 * extra rows/cols at the bottom/right. */
typedef struct ngc_conv_params {
  int32_t stride;
  int32_t pad;
  int32_t out_pad; /* transposed only */
  int32_t bf16;    /* forward only: the backend may compute in bfloat16 (inference) */
  int32_t tf32;    /* fp32 products may be rounded to TF32 (tensor cores), in the forward
                      and the backward */
  int32_t winograd; /* fp32: the backend may use a transform algorithm (Winograd, FFT)
                       for this pass: NGC_CONV_TRANSFORM_* */
  const void *w_bf16; /* bf16 forward: w already rounded to bfloat16 (to_bf16), same
                         layout, or NULL; a backend may ignore it */
  ngc_wstore *w_store; /* forward passes: w stays the same while w_store lives, and the
                          backend may keep what it makes of w there (NULL: it makes it
                          at every call); a backend may ignore it */
} ngc_conv_params;

typedef enum ngc_pad_mode {
  NGC_PAD_ZERO = 0,
  NGC_PAD_REFLECT = 1,
  NGC_PAD_REPLICATE = 2
} ngc_pad_mode;

typedef enum ngc_act {
  NGC_ACT_RELU = 0,
  NGC_ACT_LRELU = 1, /* slope alpha for x < 0 */
  NGC_ACT_TANH = 2
} ngc_act;
/* "No activation", where an int act may also name one (inorm_bias_fwd). */
#define NGC_NO_ACT (-1)

/* Adam with PyTorch semantics: bias correction, eps outside the sqrt. */
typedef struct ngc_adam_params {
  double lr, beta1, beta2, eps, weight_decay; /* doubles, as PyTorch's Python floats */
  int64_t step; /* 1-based step number after this update */
} ngc_adam_params;

typedef struct ngc_backend_ops {
  /* ------------------------------------------------------------ memory */
  void *(*alloc)(ngc_backend *be, size_t bytes); /* NULL when out of memory */
  void (*free)(ngc_backend *be, void *p);
  negcut_status (*upload)(ngc_backend *be, void *dst, const void *host, size_t bytes);
  negcut_status (*download)(ngc_backend *be, void *host, const void *src, size_t bytes);
  negcut_status (*sync)(ngc_backend *be);
  void (*close)(ngc_backend *be);
  /* Page-locked host memory, which upload and download move at the bus's
   * full rate (a pageable buffer goes through the driver's own staging);
   * NULL when out of it. NULL slots where the backend's memory is the
   * host's (ngc_xfer_buf then takes aligned host memory). */
  void *(*pinned_alloc)(ngc_backend *be, size_t bytes);
  void (*pinned_free)(ngc_backend *be, void *p);

  /* ------------------------------------------------------ element-wise */
  negcut_status (*fill)(ngc_backend *be, ngc_tensor *y, float v);
  /* y = alpha * x + beta * y (beta 0 ignores y's old content). */
  negcut_status (*axpby)(ngc_backend *be, float alpha, const ngc_tensor *x,
                         float beta, ngc_tensor *y);
  /* y = a + b */
  negcut_status (*add)(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                       ngc_tensor *y);
  negcut_status (*act_fwd)(ngc_backend *be, ngc_act act, float alpha,
                           const ngc_tensor *x, ngc_tensor *y);
  /* x or y may be used, whichever the function needs (tanh: y). */
  negcut_status (*act_bwd)(ngc_backend *be, ngc_act act, float alpha,
                           const ngc_tensor *x, const ngc_tensor *y,
                           const ngc_tensor *dy, ngc_tensor *dx);

  /* y = x with y's layout (the same shape; either layout on either side). */
  negcut_status (*relayout)(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y);
  /* dst (numel(x) bfloat16 values in this backend's memory) = x rounded to
   * nearest even. Optional. */
  negcut_status (*to_bf16)(ngc_backend *be, const ngc_tensor *x, void *dst);

  /* ------------------------------------------------------ convolutions */
  negcut_status (*conv2d_fwd)(ngc_backend *be, const ngc_conv_params *p,
                              const ngc_tensor *x, const ngc_tensor *w,
                              const ngc_tensor *b, ngc_tensor *y);
  negcut_status (*conv2d_bwd)(ngc_backend *be, const ngc_conv_params *p,
                              const ngc_tensor *x, const ngc_tensor *w,
                              const ngc_tensor *dy, ngc_tensor *dx,
                              ngc_tensor *dw, ngc_tensor *db);
  negcut_status (*convt2d_fwd)(ngc_backend *be, const ngc_conv_params *p,
                               const ngc_tensor *x, const ngc_tensor *w,
                               const ngc_tensor *b, ngc_tensor *y);
  negcut_status (*convt2d_bwd)(ngc_backend *be, const ngc_conv_params *p,
                               const ngc_tensor *x, const ngc_tensor *w,
                               const ngc_tensor *dy, ngc_tensor *dx,
                               ngc_tensor *dw, ngc_tensor *db);

  /* ----------------------------------------------------- spatial ops */
  negcut_status (*pad_fwd)(ngc_backend *be, ngc_pad_mode mode, int32_t pad,
                           const ngc_tensor *x, ngc_tensor *y);
  negcut_status (*pad_bwd)(ngc_backend *be, ngc_pad_mode mode, int32_t pad,
                           const ngc_tensor *dy, ngc_tensor *dx);
  /* Instance norm, affine=False: per (n, c) over H*W, biased variance.
   * mean and rstd are (N, C) and are written by the forward. */
  negcut_status (*inorm_fwd)(ngc_backend *be, float eps, const ngc_tensor *x,
                             ngc_tensor *y, ngc_tensor *mean, ngc_tensor *rstd);
  /* inorm_fwd, then act (NGC_ACT_RELU or _LRELU) on y in the same pass; y
   * holds the activation's output, mean and rstd the norm's statistics. May
   * be NULL: lib/ops then runs inorm_fwd and act_fwd. */
  negcut_status (*inorm_act_fwd)(ngc_backend *be, float eps, ngc_act act, float alpha,
                                 const ngc_tensor *x, ngc_tensor *y, ngc_tensor *mean,
                                 ngc_tensor *rstd);
  /* The norm (act NGC_NO_ACT) or the norm and act (NGC_ACT_RELU or _LRELU) of
   * x + b, b (C) added per channel as the norm reads x: the bits of a bias
   * add before inorm_fwd / inorm_act_fwd, without its pass over x. Plain
   * layout. Optional: where it is there, the inference executor leaves the
   * bias of a convolution whose output only feeds a norm to that norm. */
  negcut_status (*inorm_bias_fwd)(ngc_backend *be, float eps, int act, float alpha,
                                  const ngc_tensor *x, const ngc_tensor *b, ngc_tensor *y,
                                  ngc_tensor *mean, ngc_tensor *rstd);
  negcut_status (*inorm_bwd)(ngc_backend *be, const ngc_tensor *y,
                             const ngc_tensor *rstd, const ngc_tensor *dy,
                             ngc_tensor *dx);
  /* Blur-pool: reflect pad 1, [1,2,1]^2/16 depthwise, stride 2. */
  negcut_status (*blur_down_fwd)(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y);
  negcut_status (*blur_down_bwd)(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx);
  /* Blur-upsample x2 (REFERENCE.md 1): replicate pad 1, [1,3,3,1]^2/16
   * transposed stride 2, crop. */
  negcut_status (*blur_up_fwd)(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y);
  negcut_status (*blur_up_bwd)(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx);
  /* Mirror along W. Its own inverse, so backward is the same call. */
  negcut_status (*hflip)(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y);
  /* Concatenate along dim 1: a (N, Ca, ...), b (N, Cb, ...), any ndim >= 2. */
  negcut_status (*concat_fwd)(ngc_backend *be, const ngc_tensor *a,
                              const ngc_tensor *b, ngc_tensor *y);
  negcut_status (*concat_bwd)(ngc_backend *be, const ngc_tensor *dy,
                              ngc_tensor *da, ngc_tensor *db);

  /* ------------------------------------------------- matrices and rows */
  /* y (M, N) = x (M, K) w^T (N, K) + b (N) */
  negcut_status (*linear_fwd)(ngc_backend *be, const ngc_tensor *x,
                              const ngc_tensor *w, const ngc_tensor *b,
                              ngc_tensor *y);
  negcut_status (*linear_bwd)(ngc_backend *be, const ngc_tensor *x,
                              const ngc_tensor *w, const ngc_tensor *dy,
                              ngc_tensor *dx, ngc_tensor *dw, ngc_tensor *db);
  /* c (B, M, N) = a (B, M, K) b (B, N, K)^T */
  negcut_status (*bmm_fwd)(ngc_backend *be, const ngc_tensor *a,
                           const ngc_tensor *b, ngc_tensor *c);
  negcut_status (*bmm_bwd)(ngc_backend *be, const ngc_tensor *a,
                           const ngc_tensor *b, const ngc_tensor *dc,
                           ngc_tensor *da, ngc_tensor *db);
  /* y = x / (||x||_2 + eps) per row of (M, C); norm (M) saved. */
  negcut_status (*l2norm_fwd)(ngc_backend *be, float eps, const ngc_tensor *x,
                              ngc_tensor *y, ngc_tensor *norm);
  negcut_status (*l2norm_bwd)(ngc_backend *be, float eps, const ngc_tensor *x,
                              const ngc_tensor *norm, const ngc_tensor *dy,
                              ngc_tensor *dx);
  /* Rows of a (B, C, H, W) feature at positions ids[0..S) (h*W + w),
   * batch-major: y (B*S, C). */
  negcut_status (*gather_fwd)(ngc_backend *be, const ngc_tensor *x,
                              const int64_t *ids, int64_t n_ids, ngc_tensor *y);
  negcut_status (*gather_bwd)(ngc_backend *be, const ngc_tensor *dy,
                              const int64_t *ids, int64_t n_ids, ngc_tensor *dx);
  /* Mean over the middle dim: x (B, P, C) -> y (B, C). */
  negcut_status (*mean_fwd)(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y);
  negcut_status (*mean_bwd)(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx);
  /* y (M) = sum_c a[m, c] b[m, c]: the positive logits of PatchNCE. */
  negcut_status (*rowdot_fwd)(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                              ngc_tensor *y);
  /* da = dy * b, db = dy * a (assigned; either may be NULL). */
  negcut_status (*rowdot_bwd)(ngc_backend *be, const ngc_tensor *a, const ngc_tensor *b,
                              const ngc_tensor *dy, ngc_tensor *da, ngc_tensor *db);
  /* Set the diagonal of each (M, N) matrix of x (B, M, N) to v (i < min(M, N)). */
  negcut_status (*fill_diag_fwd)(ngc_backend *be, float v, const ngc_tensor *x,
                                 ngc_tensor *y);
  negcut_status (*fill_diag_bwd)(ngc_backend *be, const ngc_tensor *dy,
                                 ngc_tensor *dx);

  /* -------------------------------------------------------- losses */
  /* loss (M) = -x[i,0] + logsumexp(x[i,:]) for logits x (M, K). */
  negcut_status (*xent0_fwd)(ngc_backend *be, const ngc_tensor *x, ngc_tensor *loss);
  /* dx = dloss[i] * (softmax(x[i]) - e0) */
  negcut_status (*xent0_bwd)(ngc_backend *be, const ngc_tensor *x,
                             const ngc_tensor *dloss, ngc_tensor *dx);
  /* out (1) = mean((x - t)^2) */
  negcut_status (*mse_const_fwd)(ngc_backend *be, const ngc_tensor *x, float t,
                                 ngc_tensor *out);
  negcut_status (*mse_const_bwd)(ngc_backend *be, const ngc_tensor *x, float t,
                                 float dout, ngc_tensor *dx);
  /* out (1) = mean BCEWithLogits(x, t) = mean(max(x,0) - x t + log(1 + e^-|x|)) */
  negcut_status (*bce_const_fwd)(ngc_backend *be, const ngc_tensor *x, float t,
                                 ngc_tensor *out);
  /* dx = dout * (sigmoid(x) - t) / n */
  negcut_status (*bce_const_bwd)(ngc_backend *be, const ngc_tensor *x, float t,
                                 float dout, ngc_tensor *dx);
  /* out (1) = mean |a - b| */
  negcut_status (*mad_fwd)(ngc_backend *be, const ngc_tensor *a,
                           const ngc_tensor *b, ngc_tensor *out);
  negcut_status (*mad_bwd)(ngc_backend *be, const ngc_tensor *a,
                           const ngc_tensor *b, float dout, ngc_tensor *da,
                           ngc_tensor *db);
  /* out (1) = mean(x) */
  negcut_status (*mean_all)(ngc_backend *be, const ngc_tensor *x, ngc_tensor *out);

  /* ------------------------------------------------------ optimisers */
  negcut_status (*adam)(ngc_backend *be, const ngc_adam_params *p,
                        ngc_tensor *param, const ngc_tensor *grad,
                        ngc_tensor *m, ngc_tensor *v);
  /* target = decay * target + (1 - decay) * src */
  negcut_status (*ema)(ngc_backend *be, float decay, ngc_tensor *target,
                       const ngc_tensor *src);

  /* ----------------------------------------------- graphs (optional) */
  /* Recording (CUDA graphs). Between graph_begin and graph_end, op slots
   * are recorded instead of run; download and sync refuse. Host data
   * handed to the device (upload, gather's ids, Adam's scalars) is recorded
   * as a copy from a buffer the graph owns; with feeds 0 (a recording that
   * will be launched without a replay pass, so its host data could never be
   * refreshed) such a transfer fails instead. The recording is replayed by
   * graph_launch, in the backend's order like any op, on the same
   * addresses: every tensor it touches must hold the same role at each
   * launch. Scratch the recorded slots used stays reserved for the graph
   * until graph_free. graph_end with keep 0 (after a failed slot) discards
   * the recording and returns NEGCUT_OK with *graph NULL; with keep 1 it
   * fails (message on be->ctx) when the recording cannot be replayed
   * safely, and the caller then runs the slots again unrecorded. */
  negcut_status (*graph_begin)(ngc_backend *be, int feeds);
  negcut_status (*graph_end)(ngc_backend *be, int keep, void **graph);
  negcut_status (*graph_launch)(ngc_backend *be, void *graph);
  void (*graph_free)(ngc_backend *be, void *graph); /* NULL is fine */
  /* Replaying with fresh host data. Between graph_replay_begin and
   * graph_replay_end the caller makes the same calls, in the same order, as
   * while recording graph: nothing is run, but the host data each call
   * hands over (upload, gather's ids, Adam's scalars) replaces what the
   * recording copied. graph_replay_end(be, 1) checks that the calls matched
   * the recording (a mismatch is NEGCUT_ERR_INTERNAL), and the caller then
   * launches it with graph_launch; graph_replay_end(be, 0), after a failed
   * call, only stops. Host state the calls changed (random draws, step
   * counters) is the caller's to restore if it runs them again unrecorded,
   * which it may do only if the graph was not launched. */
  negcut_status (*graph_replay_begin)(ngc_backend *be, void *graph);
  negcut_status (*graph_replay_end)(ngc_backend *be, int ok);
} ngc_backend_ops;

struct ngc_backend {
  const char *name;
  negcut_backend_kind kind;
  int32_t host_memory; /* data pointers are host addresses */
  /* Channel block B of the backend's preferred activation layout
   * (NGC_LAYOUT_BLOCKED); 0 when it has none. Decided at open. */
  int32_t act_block;
  /* 1: training records keep every activation instead of recomputing the
   * outputs of pads, norms, activations and blurs in backward (the same
   * bits either way): memory traded for launches, where memory is plenty
   * and launches are the cost (CUDA). 0: the host backends, whose memory
   * is the machine's. */
  int32_t keep_activations;
  /* The largest scratchpad a transform algorithm may take at
   * NGC_CONV_TRANSFORM_ROOMY (ngc_conv_params.winograd), beyond the other
   * convolutions' needs; 0 where transform algorithms need no memory of
   * the caller's to count. */
  size_t winograd_scratch_max;
  /* Counted by the device backend (0 on the host ones), for tests and
   * benchmarks: allocations from the driver (cudaMalloc: the caching
   * allocator's misses) and calls that make the host wait for the device
   * (synchronising with a stream, an event or the whole device). */
  uint64_t n_driver_allocs, n_host_waits;
  negcut_ctx *ctx;     /* for error messages and the thread budget */
  void *impl;          /* private state */
  ngc_backend_ops ops;
};

/* The layout be keeps a 4-D activation of c channels in: its blocked one
 * when the channels fill whole blocks, else plain. */
static inline ngc_layout ngc_act_layout(const ngc_backend *be, int64_t c) {
  return be->act_block > 0 && c % be->act_block == 0 ? NGC_LAYOUT_BLOCKED : NGC_LAYOUT_PLAIN;
}

/* Channel block of t on be: act_block for a blocked tensor, 1 for a plain one. */
static inline int64_t ngc_block_of(const ngc_backend *be, const ngc_tensor *t) {
  return t->layout == NGC_LAYOUT_BLOCKED ? be->act_block : 1;
}

/* Each backend's constructor (lib/backend/<name>/). */
negcut_status ngc_ref_open(negcut_ctx *ctx, ngc_backend **out);
negcut_status ngc_cpu_open(negcut_ctx *ctx, ngc_backend **out);
negcut_status ngc_cuda_open(negcut_ctx *ctx, ngc_backend **out);
void ngc_cpu_describe(char *buf, size_t cap);
void ngc_cuda_describe(char *buf, size_t cap);

/* Aligned host memory for host backends (64-byte aligned). */
void *ngc_host_alloc(ngc_backend *be, size_t bytes);
void ngc_host_free(ngc_backend *be, void *p);

/* A host buffer of floats that data goes to and from the backend through,
 * kept for reuse: page-locked where the backend has such memory
 * (ops.pinned_alloc), else, or when none is left, aligned host memory. */
typedef struct ngc_xfer_buf {
  float *data;
  size_t cap;     /* floats */
  int32_t pinned; /* data came from ops.pinned_alloc */
} ngc_xfer_buf;

/* Grows b to hold count floats (its contents are not kept);
 * NEGCUT_ERR_OUT_OF_MEMORY, what naming the buffer's user, when it cannot. */
negcut_status ngc_xfer_buf_grow(ngc_backend *be, ngc_xfer_buf *b, size_t count, const char *what);
/* Frees b's memory (no transfer may still use it) and empties it. */
void ngc_xfer_buf_release(ngc_backend *be, ngc_xfer_buf *b);

#endif
