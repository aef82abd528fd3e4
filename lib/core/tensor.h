/* Internal tensor: up to 4 dims of float32 in one backend's memory.
 * The API speaks NCHW; a matrix is (rows, cols) with ndim 2. */
#ifndef NGC_TENSOR_H
#define NGC_TENSOR_H

#include "core.h"

#define NGC_MAX_DIMS 4

/* Layout of the bytes behind data. Plain row-major (NCHW for 4-D), or the
 * owning backend's blocked activation layout: a 4-D (N, C, H, W) tensor
 * stored as (N, C/B, H, W, B) with B = the backend's act_block, C a multiple of B
 * (oneDNN's nChw16c for B = 16). Same number of floats either way, and the
 * batch stays outermost, so batch slices of a blocked tensor are blocked
 * tensors. Only backends with act_block > 0 ever see one (lib/ops checks). */
typedef enum ngc_layout { NGC_LAYOUT_PLAIN = 0, NGC_LAYOUT_BLOCKED = 1 } ngc_layout;

typedef struct ngc_tensor {
  int32_t ndim;
  int64_t dim[NGC_MAX_DIMS];
  float *data;     /* backend memory */
  ngc_backend *be; /* who owns data; NULL for a view of caller memory */
  ngc_layout layout;
  int32_t owns;    /* data is freed with the tensor */
} ngc_tensor;

static inline int64_t ngc_numel(const ngc_tensor *t) {
  int64_t n = 1;
  for (int32_t i = 0; i < t->ndim; i++) n *= t->dim[i];
  return n;
}

/* Dim i counted from the left, 1 when the tensor has fewer dims: so a
 * (B, C) tensor reads as (B, C, 1, 1) through ngc_d(t, 0..3). */
static inline int64_t ngc_d(const ngc_tensor *t, int32_t i) {
  return i < t->ndim ? t->dim[i] : 1;
}

/* A tensor header over existing memory (not owned). */
ngc_tensor ngc_tensor_view(ngc_backend *be, float *data, int32_t ndim,
                           const int64_t *dim);
/* A view with like's dims and layout over data (not owned). */
static inline ngc_tensor ngc_tensor_view_as(ngc_backend *be, float *data, const ngc_tensor *like) {
  ngc_tensor t = ngc_tensor_view(be, data, like->ndim, like->dim);
  t.layout = like->layout;
  return t;
}
/* Allocates ndim/dim on be; the data is not initialised. */
negcut_status ngc_tensor_alloc(negcut_ctx *ctx, ngc_backend *be, ngc_tensor *t,
                               int32_t ndim, const int64_t *dim);
void ngc_tensor_release(ngc_tensor *t);
int ngc_same_shape(const ngc_tensor *a, const ngc_tensor *b);
/* "(2, 3, 8, 8)" into buf, for messages. */
const char *ngc_shape_str(const ngc_tensor *t, char *buf, size_t cap);

#endif
