/* Opens backends by kind and describes what was compiled in; the host
 * buffers transfers go through (ngc_xfer_buf). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

negcut_status ngc_backend_open(negcut_ctx *ctx, negcut_backend_kind kind,
                               ngc_backend **out) {
  *out = NULL;
  switch (kind) {
  case NEGCUT_BACKEND_REF: return ngc_ref_open(ctx, out);
  case NEGCUT_BACKEND_CPU: return ngc_cpu_open(ctx, out);
  case NEGCUT_BACKEND_CUDA:
#ifdef NEGCUT_HAVE_CUDA
    return ngc_cuda_open(ctx, out);
#else
    return ngc_error(ctx, NEGCUT_ERR_UNSUPPORTED,
                     "cuda backend: not compiled into this libnegcut");
#endif
  default:
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "unknown backend %d",
                     (int)kind);
  }
}

void ngc_backend_close(ngc_backend *be) {
  if (be) be->ops.close(be);
}

negcut_backend_kind ngc_backend_kind(const ngc_backend *be) { return be->kind; }

const char *ngc_backend_name(const ngc_backend *be) { return be->name; }

void *ngc_backend_alloc(ngc_backend *be, size_t bytes) {
  return be->ops.alloc(be, bytes);
}

void ngc_backend_free(ngc_backend *be, void *p) {
  if (p) be->ops.free(be, p);
}

void ngc_backend_describe(char *buf, size_t cap) {
  size_t n = 0;
  char part[256];
  snprintf(buf, cap, " ref");
  n = strlen(buf);
  ngc_cpu_describe(part, sizeof part);
  snprintf(buf + n, cap - n, ", cpu (%s)", part);
#ifdef NEGCUT_HAVE_CUDA
  n = strlen(buf);
  ngc_cuda_describe(part, sizeof part);
  snprintf(buf + n, cap - n, ", cuda (%s)", part);
#endif
}

void *ngc_host_alloc(ngc_backend *be, size_t bytes) {
  (void)be;
  void *p = NULL;
  /* Round up so that vector loops may read whole 64-byte lines. */
  size_t rounded = (bytes + 63) & ~(size_t)63;
  if (rounded < bytes) return NULL;
  if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) return NULL;
  return p;
}

void ngc_host_free(ngc_backend *be, void *p) {
  (void)be;
  free(p);
}

negcut_status ngc_xfer_buf_grow(ngc_backend *be, ngc_xfer_buf *b, size_t count, const char *what) {
  size_t bytes;
  if (count <= b->cap) return NEGCUT_OK;
  ngc_xfer_buf_release(be, b);
  if (ngc_mul_size(count, sizeof *b->data, &bytes)) {
    if (be->ops.pinned_alloc) b->data = be->ops.pinned_alloc(be, bytes);
    b->pinned = b->data != NULL;
    if (!b->data) b->data = ngc_host_alloc(be, bytes);
  }
  if (!b->data)
    return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu floats", what,
                     count);
  b->cap = count;
  return NEGCUT_OK;
}

void ngc_xfer_buf_release(ngc_backend *be, ngc_xfer_buf *b) {
  if (b->pinned)
    be->ops.pinned_free(be, b->data);
  else
    ngc_host_free(be, b->data);
  *b = (ngc_xfer_buf){0};
}
