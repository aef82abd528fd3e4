/* negcut_model: a generator loaded from a checkpoint, read-only after. */
#include <stdlib.h>
#include <string.h>

#include "infer.h"

static negcut_status model_from_file(negcut_model **out, negcut_ctx *ctx, const ngc_st_file *f,
                                     const char *label) {
  negcut_model *m = calloc(1, sizeof *m);
  negcut_status st;
  if (!m) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "model: out of memory");
  m->ctx = ctx;
  st = ngc_generator_cfg_of(ctx, f, label, &m->cfg);
  /* The file must hold every parameter of the generator its metadata (or
   * its names) describe, as F32 of the exact shape: checked on the layout,
   * before the parameters' memory is allocated, so that what a file makes
   * us allocate stays in proportion to the file's own size. */
  if (st == NEGCUT_OK) st = ngc_generator_layout(&m->net, ctx, &m->cfg);
  if (st == NEGCUT_OK) st = ngc_net_check_file(ctx, &m->net, f, label);
  m->net.requires_grad = 0; /* before the allocation: no gradient slab */
  if (st == NEGCUT_OK) st = ngc_generator_alloc(&m->net);
  if (st == NEGCUT_OK) st = ngc_net_read(ctx, &m->net, f, label); /* checked above */
  if (st != NEGCUT_OK) {
    negcut_model_free(m);
    return st;
  }
  *out = m;
  return NEGCUT_OK;
}

negcut_status negcut_model_load(negcut_model **out, negcut_ctx *ctx, const char *path) {
  ngc_st_file *f = NULL;
  negcut_status st;
  if (!out || !ctx || !path)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_model_load: NULL argument");
  *out = NULL;
  st = ngc_st_open(ctx, path, &f);
  if (st == NEGCUT_OK) st = model_from_file(out, ctx, f, path);
  ngc_st_close(f);
  return st;
}

negcut_status negcut_model_load_memory(negcut_model **out, negcut_ctx *ctx, const void *data,
                                       size_t size) {
  ngc_st_file *f = NULL;
  negcut_status st;
  if (!out || !ctx || !data)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_model_load_memory: NULL argument");
  *out = NULL;
  st = ngc_st_open_memory(ctx, data, size, &f);
  if (st == NEGCUT_OK) st = model_from_file(out, ctx, f, "model in memory");
  ngc_st_close(f);
  return st;
}

void negcut_model_free(negcut_model *model) {
  if (!model) return;
  ngc_net_release(&model->net);
  free(model);
}

int32_t negcut_model_input_channels(const negcut_model *model) {
  return model ? model->cfg.input_nc : 0;
}

int32_t negcut_model_output_channels(const negcut_model *model) {
  return model ? model->cfg.output_nc : 0;
}
