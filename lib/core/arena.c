/* Per-step activation arena over backend memory. */
#include <stdlib.h>
#include <string.h>

#include "arena.h"

void ngc_arena_init(ngc_arena *a, ngc_backend *be) {
  memset(a, 0, sizeof *a);
  a->be = be;
}

/* Appends a block of cap bytes; 0 on failure. No message: core sits below
 * the backend layer and cannot reach the backend's context, so callers that
 * hold a context word the failure (ngc_arena_tensor does). */
static int add_block(ngc_arena *a, size_t cap) {
  if (a->n_blocks == a->cap_blocks) {
    int32_t want = a->cap_blocks ? 2 * a->cap_blocks : 4;
    ngc_arena_block *nb = realloc(a->blocks, (size_t)want * sizeof *nb);
    if (!nb) return 0;
    a->blocks = nb;
    a->cap_blocks = want;
  }
  void *p = ngc_backend_alloc(a->be, cap);
  if (!p) return 0;
  a->blocks[a->n_blocks].base = p;
  a->blocks[a->n_blocks].cap_bytes = cap;
  a->blocks[a->n_blocks].used_bytes = 0;
  a->n_blocks++;
  a->n_backend_allocs++;
  a->reserved_bytes += cap; /* cannot wrap: the backend holds that much */
  return 1;
}

static void free_blocks(ngc_arena *a) {
  for (int32_t i = 0; i < a->n_blocks; i++)
    ngc_backend_free(a->be, a->blocks[i].base);
  a->n_blocks = 0;
  a->reserved_bytes = 0;
}

void *ngc_arena_alloc(ngc_arena *a, size_t bytes) {
  size_t need, step;
  if (!a || !a->be) return NULL;
  if (bytes == 0) bytes = 1; /* distinct pointers for empty tensors */
  if (!ngc_add_size(bytes, NGC_ARENA_ALIGN - 1, &need) ||
      !ngc_add_size(a->step_bytes, need & ~(size_t)(NGC_ARENA_ALIGN - 1), &step))
    return NULL;
  need &= ~(size_t)(NGC_ARENA_ALIGN - 1);
  ngc_arena_block *b = a->n_blocks ? &a->blocks[a->n_blocks - 1] : NULL;
  if (!b || b->cap_bytes - b->used_bytes < need) {
    /* Doubling bounds the blocks a first step needs by log2 of its size;
     * the next reset merges them, so the slack is only paid once. */
    size_t cap = NGC_ARENA_MIN_BLOCK;
    if (b && b->cap_bytes <= SIZE_MAX / 2 && 2 * b->cap_bytes > cap) cap = 2 * b->cap_bytes;
    if (need > cap) cap = need;
    if (!add_block(a, cap)) return NULL;
    b = &a->blocks[a->n_blocks - 1];
  }
  void *p = b->base + b->used_bytes;
  b->used_bytes += need;
  a->step_bytes = step;
  if (step > a->high_water_bytes) a->high_water_bytes = step;
  return p;
}

negcut_status ngc_arena_tensor(negcut_ctx *ctx, ngc_arena *a, ngc_tensor *t,
                               int32_t ndim, const int64_t *dim) {
  size_t n = sizeof(float);
  if (!a || !t || !dim || ndim < 1 || ndim > NGC_MAX_DIMS)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "arena tensor: bad arguments");
  for (int32_t i = 0; i < ndim; i++) {
    if (dim[i] < 0 || !ngc_mul_size(n, (size_t)dim[i], &n))
      return ngc_error(ctx, NEGCUT_ERR_LIMIT, "arena tensor: size overflows");
  }
  float *data = ngc_arena_alloc(a, n);
  if (!data)
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY,
                     "arena tensor: cannot allocate %zu bytes on %s", n,
                     a->be ? ngc_backend_name(a->be) : "no backend");
  *t = ngc_tensor_view(a->be, data, ndim, dim);
  return NEGCUT_OK;
}

negcut_status ngc_arena_reset(ngc_arena *a) {
  if (!a) return NEGCUT_ERR_INVALID_ARGUMENT;
  a->step_bytes = 0;
  if (a->n_blocks > 1) {
    free_blocks(a);
    if (!add_block(a, a->high_water_bytes)) return NEGCUT_ERR_OUT_OF_MEMORY;
  } else if (a->n_blocks == 1) {
    a->blocks[0].used_bytes = 0;
  }
  return NEGCUT_OK;
}

void ngc_arena_free(ngc_arena *a) {
  if (!a) return;
  if (a->be) free_blocks(a);
  free(a->blocks);
  memset(a, 0, sizeof *a);
}
