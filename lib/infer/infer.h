/* Inference internals: the loaded model and the translator. */
#ifndef NGC_INFER_H
#define NGC_INFER_H

#include "models/checkpoint.h"
#include "models/net.h"
#include "negcut/translate.h"

struct negcut_model {
  negcut_ctx *ctx; /* the context that holds the weights */
  ngc_generator_cfg cfg;
  ngc_net net;
};

/* What a recorded generator run depends on (translator.c): the input's
 * shape and every address it touches (compared with memcmp). */
typedef struct ngc_graph_key {
  int64_t n, h, w;
  const void *x, *y, *scratch;
  size_t scratch_bytes;
  uint64_t arena_blocks; /* the tape arena's backend allocations so far */
} ngc_graph_key;

#define NGC_TRANSLATOR_GRAPHS 4

typedef struct ngc_graph_slot {
  ngc_graph_key key;
  void *graph;   /* NULL: seen once, recorded when seen again */
  uint64_t used; /* the run that used it last (evict the oldest) */
} ngc_graph_slot;

struct negcut_translator {
  negcut_ctx *ctx;
  const negcut_model *model;
  negcut_translator_options opts;
  ngc_tape tape;
  float *in_host, *out_host; /* (N, C, H, W) staging, grown as needed */
  size_t in_cap, out_cap;
  /* CUDA graphs of the generator, one per recent input shape */
  ngc_graph_slot graphs[NGC_TRANSLATOR_GRAPHS];
  uint64_t runs;
  int32_t graphs_off;   /* a recording failed: everything runs eagerly */
  char graph_why[256];  /* why (for tests and benchmarks) */
  uint64_t n_recorded, n_replayed; /* statistics, for tests and benchmarks */
};

/* Mirror index of i into [0, n): reflection without repeating the edge,
 * periodic for any i (so pads wider than the image work too). */
static inline int64_t ngc_reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

#endif
