/* The reference backend: host memory and portable C ops (ref_*.c). */
#include <stdlib.h>
#include <string.h>

#include "ref.h"

static negcut_status ref_copy_bytes(ngc_backend *be, void *dst, const void *src,
                                    size_t bytes) {
  (void)be;
  if (bytes) memmove(dst, src, bytes);
  return NEGCUT_OK;
}

static negcut_status ref_sync(ngc_backend *be) {
  (void)be;
  return NEGCUT_OK;
}

static void ref_close(ngc_backend *be) { free(be); }

void ngc_ref_fill_ops(ngc_backend_ops *ops) {
  ops->alloc = ngc_host_alloc;
  ops->free = ngc_host_free;
  ops->upload = ref_copy_bytes;
  ops->download = ref_copy_bytes;
  ops->sync = ref_sync;
  ngc_ref_fill_compute_ops(ops);
}

negcut_status ngc_ref_open(negcut_ctx *ctx, ngc_backend **out) {
  ngc_backend *be = calloc(1, sizeof *be);
  if (!be) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "ref backend: out of memory");
  be->name = "ref";
  be->kind = NEGCUT_BACKEND_REF;
  be->host_memory = 1;
  be->ctx = ctx;
  ngc_ref_fill_ops(&be->ops);
  be->ops.close = ref_close;
  *out = be;
  return NEGCUT_OK;
}
