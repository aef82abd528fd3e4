/* Tensor headers and their backend storage. */
#include <stdio.h>
#include <string.h>

#include "tensor.h"

ngc_tensor ngc_tensor_view(ngc_backend *be, float *data, int32_t ndim,
                           const int64_t *dim) {
  ngc_tensor t;
  memset(&t, 0, sizeof t);
  t.ndim = ndim;
  for (int32_t i = 0; i < ndim && i < NGC_MAX_DIMS; i++) t.dim[i] = dim[i];
  t.data = data;
  t.be = be;
  return t;
}

negcut_status ngc_tensor_alloc(negcut_ctx *ctx, ngc_backend *be, ngc_tensor *t,
                               int32_t ndim, const int64_t *dim) {
  size_t n = sizeof(float);
  if (ndim < 1 || ndim > NGC_MAX_DIMS)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "tensor: %d dims", (int)ndim);
  for (int32_t i = 0; i < ndim; i++) {
    if (dim[i] < 0 || !ngc_mul_size(n, (size_t)dim[i], &n))
      return ngc_error(ctx, NEGCUT_ERR_LIMIT, "tensor: size overflows");
  }
  *t = ngc_tensor_view(be, NULL, ndim, dim);
  t->data = ngc_backend_alloc(be, n);
  if (!t->data)
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY,
                     "tensor: cannot allocate %zu bytes on %s", n, ngc_backend_name(be));
  t->owns = 1;
  return NEGCUT_OK;
}

void ngc_tensor_release(ngc_tensor *t) {
  if (t && t->owns && t->data) ngc_backend_free(t->be, t->data);
  if (t) {
    t->data = NULL;
    t->owns = 0;
  }
}

int ngc_same_shape(const ngc_tensor *a, const ngc_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int32_t i = 0; i < a->ndim; i++)
    if (a->dim[i] != b->dim[i]) return 0;
  return 1;
}

const char *ngc_shape_str(const ngc_tensor *t, char *buf, size_t cap) {
  size_t n = 0;
  n += (size_t)snprintf(buf, cap, "(");
  for (int32_t i = 0; i < t->ndim && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)t->dim[i]);
  if (n < cap) snprintf(buf + n, cap - n, ")");
  return buf;
}
