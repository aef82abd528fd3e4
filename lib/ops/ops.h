/*
 * The op layer: one function per backend slot. Each checks its arguments
 * (NULL tensors, ndim, every dim, parameter ranges) and returns
 * NEGCUT_ERR_INVALID_ARGUMENT or NEGCUT_ERR_SHAPE with a message on ctx that
 * names the op and the shapes; then it runs ctx->be's slot, or the reference
 * slot when ctx->be leaves it NULL and keeps host memory, or fails with
 * NEGCUT_ERR_UNSUPPORTED.
 *
 * Gradient conventions (backend.h): backward ASSIGNS activation gradients
 * (dx, and both da and db of bmm, concat, mad) and ADDS into parameter
 * gradients (dw, db of conv, convt, linear). Where a backward has several
 * gradients, any of them may be NULL to skip it; every other tensor is
 * required, except the optional bias b of the forwards.
 *
 * ctx must be a valid context. To run an op on another backend, use a context
 * made for that backend.
 */
#ifndef NGC_OPS_H
#define NGC_OPS_H

#include <string.h>

#include "backend/backend.h"

/* Output sizes (PyTorch formulas); <= 0 when the input is too small. */
int64_t ngc_conv2d_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad);
int64_t ngc_convt2d_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad,
                             int64_t out_pad);
int64_t ngc_blur_down_out_size(int64_t in); /* ceil(in / 2) */

/* ------------------------------------------------------- element-wise */
negcut_status ngc_fill(negcut_ctx *ctx, ngc_tensor *y, float v);
/* y = alpha x + beta y; beta 0 ignores y's old content. */
negcut_status ngc_axpby(negcut_ctx *ctx, float alpha, const ngc_tensor *x, float beta,
                        ngc_tensor *y);
negcut_status ngc_add(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                      ngc_tensor *y);
/* y = x in y's layout (backend.h, "Layouts"); x and y the same shape. */
negcut_status ngc_relayout(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *y);
/* dst (numel(x) bfloat16 values in the backend's memory) = x rounded to
 * nearest even; NEGCUT_ERR_UNSUPPORTED on a backend without the slot. */
negcut_status ngc_to_bf16(negcut_ctx *ctx, const ngc_tensor *x, void *dst);
negcut_status ngc_act_fwd(negcut_ctx *ctx, ngc_act act, float alpha, const ngc_tensor *x,
                          ngc_tensor *y);
/* relu and lrelu need x (y may be NULL); tanh needs y (x may be NULL). */
negcut_status ngc_act_bwd(negcut_ctx *ctx, ngc_act act, float alpha, const ngc_tensor *x,
                          const ngc_tensor *y, const ngc_tensor *dy, ngc_tensor *dx);

/* ------------------------------------------------------- convolutions */
/* x (N, Ci, H, W), w (Co, Ci, k, k), b (Co) or NULL, y (N, Co, Ho, Wo). */
negcut_status ngc_conv2d_fwd(negcut_ctx *ctx, const ngc_conv_params *p, const ngc_tensor *x,
                             const ngc_tensor *w, const ngc_tensor *b, ngc_tensor *y);
negcut_status ngc_conv2d_bwd(negcut_ctx *ctx, const ngc_conv_params *p, const ngc_tensor *x,
                             const ngc_tensor *w, const ngc_tensor *dy, ngc_tensor *dx,
                             ngc_tensor *dw, ngc_tensor *db);
/* x (N, Ci, H, W), w (Ci, Co, k, k), b (Co) or NULL, y (N, Co, Ho, Wo). */
negcut_status ngc_convt2d_fwd(negcut_ctx *ctx, const ngc_conv_params *p, const ngc_tensor *x,
                              const ngc_tensor *w, const ngc_tensor *b, ngc_tensor *y);
negcut_status ngc_convt2d_bwd(negcut_ctx *ctx, const ngc_conv_params *p, const ngc_tensor *x,
                              const ngc_tensor *w, const ngc_tensor *dy, ngc_tensor *dx,
                              ngc_tensor *dw, ngc_tensor *db);

/* ------------------------------------------------------- spatial ops */
/* x (N, C, H, W) -> y (N, C, H + 2 pad, W + 2 pad); reflect needs pad < H, W. */
negcut_status ngc_pad_fwd(negcut_ctx *ctx, ngc_pad_mode mode, int32_t pad,
                          const ngc_tensor *x, ngc_tensor *y);
negcut_status ngc_pad_bwd(negcut_ctx *ctx, ngc_pad_mode mode, int32_t pad,
                          const ngc_tensor *dy, ngc_tensor *dx);
/* x, y (N, C, H, W); mean, rstd (N, C). */
negcut_status ngc_inorm_fwd(negcut_ctx *ctx, float eps, const ngc_tensor *x, ngc_tensor *y,
                            ngc_tensor *mean, ngc_tensor *rstd);
/* inorm_fwd then act (relu or lrelu) in place on y, in one pass where the
 * backend can; y is the activation's output. */
negcut_status ngc_inorm_act_fwd(negcut_ctx *ctx, float eps, ngc_act act, float alpha,
                                const ngc_tensor *x, ngc_tensor *y, ngc_tensor *mean,
                                ngc_tensor *rstd);
/* The norm of x + b (b (C) per channel), then act (relu, lrelu or NGC_NO_ACT):
 * the bits of a bias add before ngc_inorm_fwd / ngc_inorm_act_fwd. Plain x
 * only; NEGCUT_ERR_UNSUPPORTED on a backend without inorm_bias_fwd. */
negcut_status ngc_inorm_bias_fwd(negcut_ctx *ctx, float eps, int act, float alpha,
                                 const ngc_tensor *x, const ngc_tensor *b, ngc_tensor *y,
                                 ngc_tensor *mean, ngc_tensor *rstd);
negcut_status ngc_inorm_bwd(negcut_ctx *ctx, const ngc_tensor *y, const ngc_tensor *rstd,
                            const ngc_tensor *dy, ngc_tensor *dx);
/* x (N, C, H, W), H, W >= 2 -> y (N, C, ceil(H/2), ceil(W/2)). */
negcut_status ngc_blur_down_fwd(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *y);
negcut_status ngc_blur_down_bwd(negcut_ctx *ctx, const ngc_tensor *dy, ngc_tensor *dx);
/* x (N, C, H, W) -> y (N, C, 2H, 2W). */
negcut_status ngc_blur_up_fwd(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *y);
negcut_status ngc_blur_up_bwd(negcut_ctx *ctx, const ngc_tensor *dy, ngc_tensor *dx);
/* Mirror along the last dim; also its own backward. x and y may alias. */
negcut_status ngc_hflip(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *y);
/* Along dim 1: a (N, Ca, ...), b (N, Cb, ...) -> y (N, Ca + Cb, ...). */
negcut_status ngc_concat_fwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                             ngc_tensor *y);
negcut_status ngc_concat_bwd(negcut_ctx *ctx, const ngc_tensor *dy, ngc_tensor *da,
                             ngc_tensor *db);

/* -------------------------------------------------- matrices and rows */
/* x (M, K), w (N, K), b (N) or NULL, y (M, N). */
negcut_status ngc_linear_fwd(negcut_ctx *ctx, const ngc_tensor *x, const ngc_tensor *w,
                             const ngc_tensor *b, ngc_tensor *y);
negcut_status ngc_linear_bwd(negcut_ctx *ctx, const ngc_tensor *x, const ngc_tensor *w,
                             const ngc_tensor *dy, ngc_tensor *dx, ngc_tensor *dw,
                             ngc_tensor *db);
/* a (B, M, K), b (B, N, K), c (B, M, N). */
negcut_status ngc_bmm_fwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                          ngc_tensor *c);
negcut_status ngc_bmm_bwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                          const ngc_tensor *dc, ngc_tensor *da, ngc_tensor *db);
/* x, y (M, C); norm (M). */
negcut_status ngc_l2norm_fwd(negcut_ctx *ctx, float eps, const ngc_tensor *x, ngc_tensor *y,
                             ngc_tensor *norm);
negcut_status ngc_l2norm_bwd(negcut_ctx *ctx, float eps, const ngc_tensor *x,
                             const ngc_tensor *norm, const ngc_tensor *dy, ngc_tensor *dx);
/* x (B, C, H, W), ids[n_ids] in [0, H*W) -> y (B * n_ids, C). */
negcut_status ngc_gather_fwd(negcut_ctx *ctx, const ngc_tensor *x, const int64_t *ids,
                             int64_t n_ids, ngc_tensor *y);
negcut_status ngc_gather_bwd(negcut_ctx *ctx, const ngc_tensor *dy, const int64_t *ids,
                             int64_t n_ids, ngc_tensor *dx);
/* x (B, P, C) -> y (B, C). */
negcut_status ngc_mean_fwd(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *y);
negcut_status ngc_mean_bwd(negcut_ctx *ctx, const ngc_tensor *dy, ngc_tensor *dx);
/* x, y (B, M, N); y[b, i, i] = v. */
negcut_status ngc_fill_diag_fwd(negcut_ctx *ctx, float v, const ngc_tensor *x,
                                ngc_tensor *y);
negcut_status ngc_fill_diag_bwd(negcut_ctx *ctx, const ngc_tensor *dy, ngc_tensor *dx);

/* ----------------------------------------------------------- losses */
/* x (M, K), K >= 1 -> loss (M). */
negcut_status ngc_xent0_fwd(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *loss);
negcut_status ngc_xent0_bwd(negcut_ctx *ctx, const ngc_tensor *x, const ngc_tensor *dloss,
                            ngc_tensor *dx);
/* out (1) = mean((x - t)^2); x non-empty. */
negcut_status ngc_mse_const_fwd(negcut_ctx *ctx, const ngc_tensor *x, float t,
                                ngc_tensor *out);
negcut_status ngc_mse_const_bwd(negcut_ctx *ctx, const ngc_tensor *x, float t, float dout,
                                ngc_tensor *dx);
/* out (1) = mean |a - b|; a, b the same shape. */
negcut_status ngc_mad_fwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                          ngc_tensor *out);
negcut_status ngc_mad_bwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                          float dout, ngc_tensor *da, ngc_tensor *db);
/* out (1) = mean(x) */
negcut_status ngc_mean_all(negcut_ctx *ctx, const ngc_tensor *x, ngc_tensor *out);
/* out (1) = mean BCEWithLogits(x, t); backward dx = dout (sigmoid(x) - t) / n. */
negcut_status ngc_bce_const_fwd(negcut_ctx *ctx, const ngc_tensor *x, float t, ngc_tensor *out);
negcut_status ngc_bce_const_bwd(negcut_ctx *ctx, const ngc_tensor *x, float t, float dout,
                                ngc_tensor *dx);
/* y (M) = row-wise dot products of a, b (M, C); da, db assigned, either NULL. */
negcut_status ngc_rowdot_fwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                             ngc_tensor *y);
negcut_status ngc_rowdot_bwd(negcut_ctx *ctx, const ngc_tensor *a, const ngc_tensor *b,
                             const ngc_tensor *dy, ngc_tensor *da, ngc_tensor *db);

/* -------------------------------------------------------- optimisers */
/* param, grad, m, v the same shape; lr, eps >= 0, betas in [0, 1), step >= 1. */
negcut_status ngc_adam_step(negcut_ctx *ctx, const ngc_adam_params *p, ngc_tensor *param,
                            const ngc_tensor *grad, ngc_tensor *m, ngc_tensor *v);
/* target = decay target + (1 - decay) src; decay in [0, 1]. */
negcut_status ngc_ema_update(negcut_ctx *ctx, float decay, ngc_tensor *target,
                             const ngc_tensor *src);

/* -------------------- for the files of lib/ops only (ops_check.c) */

/* Each returns NEGCUT_OK or records "<op>: ..." on ctx and returns the error.
 * Layouts: ngc_op_need accepts a blocked tensor only where ctx's backend can
 * hold it (act_block > 0, 4-D, C a multiple of the block); ngc_op_same also
 * requires one layout, ngc_op_layouts only that. Ops whose slots take no
 * blocked tensors (backend.h lists those that do) either require fewer than
 * 4 dims or check ngc_op_plain. */
negcut_status ngc_op_need(negcut_ctx *ctx, const char *op, const char *name,
                          const ngc_tensor *t);
/* t has exactly ndim dims equal to want[0..ndim). */
negcut_status ngc_op_dims(negcut_ctx *ctx, const char *op, const char *name,
                          const ngc_tensor *t, int32_t ndim, const int64_t *want);
/* t has ndim dims (any sizes). */
negcut_status ngc_op_ndim(negcut_ctx *ctx, const char *op, const char *name,
                          const ngc_tensor *t, int32_t ndim);
/* a and b have the same shape and layout. */
negcut_status ngc_op_same(negcut_ctx *ctx, const char *op, const char *na,
                          const ngc_tensor *a, const char *nb, const ngc_tensor *b);
negcut_status ngc_op_layouts(negcut_ctx *ctx, const char *op, const char *na,
                             const ngc_tensor *a, const char *nb, const ngc_tensor *b);
negcut_status ngc_op_plain(negcut_ctx *ctx, const char *op, const char *name,
                           const ngc_tensor *t);

/* Names for messages: "dx" and "dy" in a backward op ("..._bwd"), else "x"
 * and "y", so one check serves both directions. */
static inline const char *ngc_op_in_name(const char *op) {
  return strstr(op, "_bwd") ? "dx" : "x";
}
static inline const char *ngc_op_out_name(const char *op) {
  return strstr(op, "_bwd") ? "dy" : "y";
}

#define NGC_TRY(expr)                                                          \
  do {                                                                         \
    negcut_status ngc_try_st_ = (expr);                                        \
    if (ngc_try_st_ != NEGCUT_OK) return ngc_try_st_;                          \
  } while (0)

/* Runs slot `slot` of ctx's backend, else the reference slot for a host
 * backend, else fails; op names the op in the message. */
#define NGC_OP_CALL(ctx, op, slot, ...)                                        \
  ((ctx)->be->ops.slot ? (ctx)->be->ops.slot((ctx)->be, __VA_ARGS__)           \
   : (ctx)->be->host_memory && (ctx)->ref->ops.slot                            \
       ? (ctx)->ref->ops.slot((ctx)->ref, __VA_ARGS__)                         \
       : ngc_error((ctx), NEGCUT_ERR_UNSUPPORTED, "%s: backend %s has no %s",  \
                   (op), (ctx)->be->name, #slot))

#endif
