/* Graphs of tape runs (net.h): a few recordings per caller, keyed by the
 * run's shape and the tape's state, the least recently used evicted. */
#include <stdio.h>
#include <string.h>

#include "net.h"

void ngc_graph_key_of(const ngc_tape *tape, const int64_t shape[4], ngc_graph_key *k) {
  memset(k, 0, sizeof *k); /* compared with memcmp */
  memcpy(k->shape, shape, sizeof k->shape);
  k->scratch = tape->scratch;
  k->scratch_bytes = tape->scratch_bytes;
  k->arena_blocks = tape->dev.n_backend_allocs;
}

static int find(const ngc_graph_cache *gc, const ngc_graph_key *k) {
  for (int i = 0; i < NGC_GRAPH_SLOTS; i++)
    if (gc->slot[i].used && !memcmp(&gc->slot[i].key, k, sizeof *k)) return i;
  return -1;
}

/* The slot of k, made (in the least recently used one) if need be. */
static int take(ngc_graph_cache *gc, ngc_backend *be, const ngc_graph_key *k) {
  int i = find(gc, k);
  if (i < 0) {
    i = 0;
    for (int j = 1; j < NGC_GRAPH_SLOTS; j++)
      if (gc->slot[j].used < gc->slot[i].used) i = j;
    if (gc->slot[i].graph) be->ops.graph_free(be, gc->slot[i].graph);
    gc->slot[i].graph = NULL;
    gc->slot[i].key = *k;
  }
  gc->slot[i].used = ++gc->runs;
  return i;
}

ngc_graph_plan ngc_graph_lookup(ngc_graph_cache *gc, ngc_backend *be, const ngc_graph_key *k,
                                void **graph) {
  *graph = NULL;
  if (!be->ops.graph_begin || gc->off) return NGC_GRAPH_RUN;
  const int i = find(gc, k);
  if (i < 0) return NGC_GRAPH_RUN;
  gc->slot[i].used = ++gc->runs;
  *graph = gc->slot[i].graph;
  return *graph ? NGC_GRAPH_REPLAY : NGC_GRAPH_RECORD;
}

void ngc_graph_ran(ngc_graph_cache *gc, ngc_backend *be, const ngc_graph_key *after) {
  if (be->ops.graph_begin && !gc->off) take(gc, be, after);
}

negcut_status ngc_graph_record(ngc_graph_cache *gc, ngc_backend *be, const ngc_tape *tape,
                               const ngc_graph_key *k, int feeds,
                               negcut_status (*run)(const void *arg), const void *arg,
                               void **graph) {
  ngc_graph_key after;
  void *g = NULL;
  *graph = NULL;
  negcut_status st = be->ops.graph_begin(be, feeds);
  if (st) return st;
  const negcut_status ran = run(arg);
  st = be->ops.graph_end(be, ran == NEGCUT_OK, &g);
  if (!st) st = ran;
  ngc_graph_key_of(tape, k->shape, &after);
  if (!st && memcmp(k, &after, sizeof after))
    st = ngc_error(tape->ctx, NEGCUT_ERR_UNSUPPORTED, "graph: the recorded run moved the tape");
  if (st) {
    if (g) be->ops.graph_free(be, g);
    return st;
  }
  const int i = take(gc, be, k);
  if (gc->slot[i].graph) be->ops.graph_free(be, gc->slot[i].graph);
  gc->slot[i].graph = g;
  gc->n_recorded++;
  *graph = g;
  return NEGCUT_OK;
}

void ngc_graph_forget(ngc_graph_cache *gc, ngc_backend *be) {
  for (int i = 0; i < NGC_GRAPH_SLOTS; i++) {
    if (gc->slot[i].graph) be->ops.graph_free(be, gc->slot[i].graph);
    memset(&gc->slot[i], 0, sizeof gc->slot[i]);
  }
}

void ngc_graph_off(ngc_graph_cache *gc, negcut_ctx *ctx) {
  snprintf(gc->why, sizeof gc->why, "%s", negcut_ctx_last_error(ctx));
  gc->off = 1;
  ngc_error_clear(ctx);
  ngc_graph_forget(gc, ctx->be);
}

void ngc_graph_cache_free(ngc_graph_cache *gc, ngc_backend *be) {
  ngc_graph_forget(gc, be);
  memset(gc, 0, sizeof *gc);
}
