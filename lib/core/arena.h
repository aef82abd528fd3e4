/*
 * Per-step activation arena: a bump allocator over one backend's memory.
 *
 * A training or inference step takes what it needs with ngc_arena_alloc /
 * ngc_arena_tensor and gives it all back at once with ngc_arena_reset at the
 * start of the next step. The first step may need several blocks; reset then
 * replaces them by one block of the largest step seen (the high-water mark),
 * so a step that repeats makes no backend allocation at all and gets the
 * same addresses every time (which CUDA graphs and cached oneDNN primitives
 * rely on). A step that needs more than before grows the arena again, and
 * the following reset folds it back into one block.
 *
 * Every pointer handed out is 64-byte aligned (block bases come from the
 * backend, which aligns to at least 64; offsets are multiples of 64) and
 * valid until the next reset or free. Memory is not initialised.
 *
 * Ownership and threads: the arena owns its blocks; tensors made by
 * ngc_arena_tensor do not own their data (owns = 0), so releasing them is a
 * no-op. One thread uses an arena at a time. A zeroed ngc_arena is a valid
 * empty arena with no backend: ngc_arena_free accepts it (and NULL), and
 * allocating from it fails cleanly.
 */
#ifndef NGC_ARENA_H
#define NGC_ARENA_H

#include "core.h"
#include "tensor.h"

#define NGC_ARENA_ALIGN 64
/* Smallest block the arena asks for, so that many small allocations of a
 * first step do not each cost a backend allocation. */
#define NGC_ARENA_MIN_BLOCK ((size_t)1 << 20)

typedef struct ngc_arena_block {
  unsigned char *base; /* backend memory; only address arithmetic on host */
  size_t cap_bytes;
  size_t used_bytes;
} ngc_arena_block;

typedef struct ngc_arena {
  ngc_backend *be;
  ngc_arena_block *blocks; /* host array; the last block is the one in use */
  int32_t n_blocks;
  int32_t cap_blocks;
  size_t step_bytes;     /* handed out since the last reset, aligned */
  size_t high_water_bytes; /* the largest step_bytes seen */
  /* Read-only statistics, for tests and benchmarks. */
  uint64_t n_backend_allocs; /* blocks ever allocated from the backend */
  size_t reserved_bytes;     /* backend memory held now */
} ngc_arena;

/* An empty arena on be; allocates nothing. */
void ngc_arena_init(ngc_arena *a, ngc_backend *be);
/* bytes (0 counts as 1) of backend memory, 64-byte aligned; NULL when the
 * size overflows or the backend is out of memory. Records no message (core
 * cannot reach the backend's context): the caller words the failure. */
void *ngc_arena_alloc(ngc_arena *a, size_t bytes);
/* A tensor header of ndim/dim over arena memory (owns = 0); failures are
 * recorded on ctx. */
negcut_status ngc_arena_tensor(negcut_ctx *ctx, ngc_arena *a, ngc_tensor *t,
                               int32_t ndim, const int64_t *dim);
/* Starts a new step: everything handed out becomes invalid. If the last step
 * spanned several blocks, they are freed and one block of the high-water
 * size is allocated. NEGCUT_ERR_OUT_OF_MEMORY (no message) if that fails;
 * the arena is then empty but valid and allocates on demand again. */
negcut_status ngc_arena_reset(ngc_arena *a);
/* Frees every block and zeroes the arena. NULL and zeroed arenas are fine. */
void ngc_arena_free(ngc_arena *a);

#endif
