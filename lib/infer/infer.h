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

struct negcut_translator {
  negcut_ctx *ctx;
  const negcut_model *model;
  negcut_translator_options opts;
  ngc_tape tape;
  ngc_xfer_buf in_host, out_host; /* (N, C, H, W) staging, grown as needed */
  ngc_graph_cache graphs; /* CUDA graphs of the generator, per recent input shape */
  void *w_bf16;           /* bf16: the model's weights rounded once (tape.w_bf16), or NULL */
  ngc_wstore w_store;     /* the model's weights as the backend's convolutions take them
                             (tape.w_store), for small models (translator.c) */
  int64_t exact_kept[2], exact_resumed; /* the last exact-tiles image's ngc_norm_ctl counts */
  int64_t exact_tile;      /* and its tile side; 0: the last image took no exact tiles */
  int64_t exact_region[2]; /* the largest region of the last run's exact tiles; 0: not exact */
};

/* The working bytes a run of the generator on (n, c, h, w) is estimated to
 * take; tile 1: a tile's (translator.c). Whatever fits max_memory_bytes
 * runs whole. */
uint64_t ngc_run_bytes(const negcut_translator *tr, int64_t n, int64_t h, int64_t w, int tile);
/* Exact tiles of side t on an H x W image: the floats each tile may keep of
 * where its last pass stopped into *cap, and the estimated work of all
 * passes (translator.c); 0 when a tile's run does not fit the budget, -1
 * when out of memory. */
double ngc_exact_plan(const negcut_translator *tr, int64_t H, int64_t W, int64_t t, size_t *cap);
/* The working memory the translator holds now (tape and staging buffers;
 * not the weights' copies). */
size_t ngc_translator_held_bytes(const negcut_translator *tr);

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
