/* Convolutions: conv2d and conv_transpose2d with PyTorch's shapes. */
#include "ops.h"

/* Checks p, x (N, Ci, H, W), w and b (Co); w is (Co, Ci, k, k) for conv2d
 * and (Ci, Co, k, k) for convt2d (transposed != 0). Sets *co and *k. */
static negcut_status check_conv_inputs(negcut_ctx *ctx, const char *op, int transposed,
                                       const ngc_conv_params *p, const ngc_tensor *x,
                                       const ngc_tensor *w, const ngc_tensor *b,
                                       int64_t *co, int64_t *k) {
  char sx[96], sw[96];
  if (!p) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: params are NULL", op);
  if (p->stride < 1 || p->pad < 0 || p->out_pad < 0 || (transposed && p->out_pad >= p->stride))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "%s: stride %d, pad %d, out_pad %d out of range", op, (int)p->stride,
                     (int)p->pad, (int)p->out_pad);
  NGC_TRY(ngc_op_ndim(ctx, op, "x", x, 4));
  NGC_TRY(ngc_op_ndim(ctx, op, "w", w, 4));
  int64_t ci = transposed ? w->dim[0] : w->dim[1];
  *co = transposed ? w->dim[1] : w->dim[0];
  *k = w->dim[2];
  if (ci != x->dim[1] || w->dim[3] != *k || *k < 1)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: x %s and w %s disagree", op,
                     ngc_shape_str(x, sx, sizeof sx), ngc_shape_str(w, sw, sizeof sw));
  if (b) NGC_TRY(ngc_op_dims(ctx, op, "b", b, 1, co));
  return NEGCUT_OK;
}

/* The output shape (N, Co, Ho, Wo) into y_dim. */
static negcut_status conv_out_dims(negcut_ctx *ctx, const char *op, int transposed,
                                   const ngc_conv_params *p, const ngc_tensor *x,
                                   int64_t co, int64_t k, int64_t *y_dim) {
  char sx[96];
  y_dim[0] = x->dim[0];
  y_dim[1] = co;
  for (int i = 2; i < 4; i++)
    y_dim[i] = transposed ? ngc_convt2d_out_size(x->dim[i], k, p->stride, p->pad, p->out_pad)
                          : ngc_conv2d_out_size(x->dim[i], k, p->stride, p->pad);
  if (y_dim[2] < 1 || y_dim[3] < 1)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: x %s too small for k %lld, pad %d", op,
                     ngc_shape_str(x, sx, sizeof sx), (long long)k, (int)p->pad);
  return NEGCUT_OK;
}

static negcut_status check_fwd(negcut_ctx *ctx, const char *op, int transposed,
                               const ngc_conv_params *p, const ngc_tensor *x,
                               const ngc_tensor *w, const ngc_tensor *b,
                               const ngc_tensor *y) {
  int64_t co = 0, k = 0, y_dim[4];
  NGC_TRY(check_conv_inputs(ctx, op, transposed, p, x, w, b, &co, &k));
  NGC_TRY(conv_out_dims(ctx, op, transposed, p, x, co, k, y_dim));
  return ngc_op_dims(ctx, op, "y", y, 4, y_dim);
}

static negcut_status check_bwd(negcut_ctx *ctx, const char *op, int transposed,
                               const ngc_conv_params *p, const ngc_tensor *x,
                               const ngc_tensor *w, const ngc_tensor *dy,
                               const ngc_tensor *dx, const ngc_tensor *dw,
                               const ngc_tensor *db) {
  int64_t co = 0, k = 0, y_dim[4];
  NGC_TRY(check_conv_inputs(ctx, op, transposed, p, x, w, db, &co, &k));
  NGC_TRY(conv_out_dims(ctx, op, transposed, p, x, co, k, y_dim));
  NGC_TRY(ngc_op_dims(ctx, op, "dy", dy, 4, y_dim));
  if (dx) NGC_TRY(ngc_op_same(ctx, op, "x", x, "dx", dx));
  if (dw) NGC_TRY(ngc_op_same(ctx, op, "w", w, "dw", dw));
  return NEGCUT_OK;
}

negcut_status ngc_conv2d_fwd(negcut_ctx *ctx, const ngc_conv_params *p, const ngc_tensor *x,
                             const ngc_tensor *w, const ngc_tensor *b, ngc_tensor *y) {
  NGC_TRY(check_fwd(ctx, "conv2d_fwd", 0, p, x, w, b, y));
  return NGC_OP_CALL(ctx, "conv2d_fwd", conv2d_fwd, p, x, w, b, y);
}

negcut_status ngc_conv2d_bwd(negcut_ctx *ctx, const ngc_conv_params *p, const ngc_tensor *x,
                             const ngc_tensor *w, const ngc_tensor *dy, ngc_tensor *dx,
                             ngc_tensor *dw, ngc_tensor *db) {
  NGC_TRY(check_bwd(ctx, "conv2d_bwd", 0, p, x, w, dy, dx, dw, db));
  if (!dx && !dw && !db) return NEGCUT_OK;
  return NGC_OP_CALL(ctx, "conv2d_bwd", conv2d_bwd, p, x, w, dy, dx, dw, db);
}

negcut_status ngc_convt2d_fwd(negcut_ctx *ctx, const ngc_conv_params *p, const ngc_tensor *x,
                              const ngc_tensor *w, const ngc_tensor *b, ngc_tensor *y) {
  NGC_TRY(check_fwd(ctx, "convt2d_fwd", 1, p, x, w, b, y));
  return NGC_OP_CALL(ctx, "convt2d_fwd", convt2d_fwd, p, x, w, b, y);
}

negcut_status ngc_convt2d_bwd(negcut_ctx *ctx, const ngc_conv_params *p, const ngc_tensor *x,
                              const ngc_tensor *w, const ngc_tensor *dy, ngc_tensor *dx,
                              ngc_tensor *dw, ngc_tensor *db) {
  NGC_TRY(check_bwd(ctx, "convt2d_bwd", 1, p, x, w, dy, dx, dw, db));
  if (!dx && !dw && !db) return NEGCUT_OK;
  return NGC_OP_CALL(ctx, "convt2d_bwd", convt2d_bwd, p, x, w, dy, dx, dw, db);
}
