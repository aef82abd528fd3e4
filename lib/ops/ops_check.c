/* Argument checks shared by the op layer; each message names the op. */
#include <stdio.h>

#include "ops.h"

int64_t ngc_conv2d_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad) {
  if (stride < 1 || in + 2 * pad < k) return 0;
  return (in + 2 * pad - k) / stride + 1;
}

int64_t ngc_convt2d_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad,
                             int64_t out_pad) {
  return (in - 1) * stride - 2 * pad + k + out_pad;
}

int64_t ngc_blur_down_out_size(int64_t in) { return (in + 1) / 2; }

negcut_status ngc_op_need(negcut_ctx *ctx, const char *op, const char *name,
                          const ngc_tensor *t) {
  if (!t) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, name);
  if (t->ndim < 1 || t->ndim > NGC_MAX_DIMS)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: %s has %d dims", op, name, (int)t->ndim);
  for (int32_t i = 0; i < t->ndim; i++)
    if (t->dim[i] < 0)
      return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: %s has a negative dim", op, name);
  if (!t->data && ngc_numel(t) > 0)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: %s has no data", op, name);
  if (t->layout == NGC_LAYOUT_BLOCKED) {
    const int64_t b = ctx->be->act_block;
    if (b < 1 || t->ndim != 4 || t->dim[1] % b)
      return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                       "%s: %s is blocked, which backend %s cannot hold for its shape", op, name,
                       ctx->be->name);
  }
  return NEGCUT_OK;
}

negcut_status ngc_op_layouts(negcut_ctx *ctx, const char *op, const char *na,
                             const ngc_tensor *a, const char *nb, const ngc_tensor *b) {
  if (a->layout != b->layout)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: %s and %s are in different layouts",
                     op, na, nb);
  return NEGCUT_OK;
}

negcut_status ngc_op_plain(negcut_ctx *ctx, const char *op, const char *name,
                           const ngc_tensor *t) {
  if (t->layout != NGC_LAYOUT_PLAIN)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: %s must be in the plain layout", op,
                     name);
  return NEGCUT_OK;
}

negcut_status ngc_op_ndim(negcut_ctx *ctx, const char *op, const char *name,
                          const ngc_tensor *t, int32_t ndim) {
  char s[96];
  NGC_TRY(ngc_op_need(ctx, op, name, t));
  if (t->ndim != ndim)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: %s is %s, expected %d dims", op, name,
                     ngc_shape_str(t, s, sizeof s), (int)ndim);
  return NEGCUT_OK;
}

negcut_status ngc_op_dims(negcut_ctx *ctx, const char *op, const char *name,
                          const ngc_tensor *t, int32_t ndim, const int64_t *want) {
  char s[96], w[96];
  NGC_TRY(ngc_op_need(ctx, op, name, t));
  ngc_tensor expect = ngc_tensor_view(NULL, NULL, ndim, want);
  if (!ngc_same_shape(t, &expect))
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: %s is %s, expected %s", op, name,
                     ngc_shape_str(t, s, sizeof s), ngc_shape_str(&expect, w, sizeof w));
  return NEGCUT_OK;
}

negcut_status ngc_op_same(negcut_ctx *ctx, const char *op, const char *na,
                          const ngc_tensor *a, const char *nb, const ngc_tensor *b) {
  NGC_TRY(ngc_op_need(ctx, op, na, a));
  NGC_TRY(ngc_op_dims(ctx, op, nb, b, a->ndim, a->dim));
  return ngc_op_layouts(ctx, op, na, a, nb, b);
}
