/* Builders of the generator and the discriminator with the reference's
 * module indices and state_dict names (REFERENCE.md 1, 2, 6). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

typedef struct builder {
  ngc_net *net;
  negcut_status st;
} builder;

static ngc_layer *push(builder *b, ngc_layer_kind kind, int32_t module) {
  ngc_net *net = b->net;
  if (b->st != NEGCUT_OK) return NULL;
  if (net->n_layers == net->cap_layers) {
    int32_t cap = net->cap_layers ? 2 * net->cap_layers : 64;
    ngc_layer *nl = realloc(net->layers, (size_t)cap * sizeof *nl);
    if (!nl) {
      b->st = ngc_error(net->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "network: out of memory");
      return NULL;
    }
    net->layers = nl;
    net->cap_layers = cap;
  }
  ngc_layer *l = &net->layers[net->n_layers++];
  memset(l, 0, sizeof *l);
  l->kind = kind;
  l->module = module;
  l->w = l->b = l->skip = -1;
  return l;
}

static void pad(builder *b, int32_t module, ngc_pad_mode mode, int32_t p) {
  ngc_layer *l = push(b, NGC_L_PAD, module);
  if (l) {
    l->pad_mode = mode;
    l->pad = p;
  }
}

/* A convolution (transposed: k3 s2 p1 output_padding 1) with parameters
 * <prefix>.weight and <prefix>.bias. */
static void conv(builder *b, int32_t module, const char *prefix, int32_t ci, int32_t co,
                 int32_t k, int32_t stride, int32_t p, int32_t transposed) {
  char name[NGC_NAME_MAX + 16];
  ngc_layer *l = push(b, transposed ? NGC_L_CONVT : NGC_L_CONV, module);
  if (!l) return;
  int64_t wd[4] = {transposed ? ci : co, transposed ? co : ci, k, k}, bd[1] = {co};
  l->cp.stride = stride;
  l->cp.pad = p;
  l->cp.out_pad = transposed ? 1 : 0;
  l->c_out = co;
  if (snprintf(name, sizeof name, "%s.weight", prefix) >= (int)sizeof name) {
    b->st = ngc_error(b->net->ctx, NEGCUT_ERR_INTERNAL, "parameter name %s too long", prefix);
    return;
  }
  l->w = ngc_net_add_param(b->net, name, 4, wd, 0);
  if (snprintf(name, sizeof name, "%s.bias", prefix) >= (int)sizeof name) return;
  l->b = l->w >= 0 ? ngc_net_add_param(b->net, name, 1, bd, 0) : -1;
  if (l->w < 0 || l->b < 0) b->st = NEGCUT_ERR_OUT_OF_MEMORY;
}

static void simple(builder *b, int32_t module, ngc_layer_kind kind, ngc_act act, float alpha) {
  ngc_layer *l = push(b, kind, module);
  if (l) {
    l->act = act;
    l->alpha = alpha;
  }
}

/* A blur layer with its fixed `filt` buffer (C, 1, k, k). */
static void blur(builder *b, int32_t module, int32_t c, int32_t up) {
  char name[NGC_NAME_MAX + 16];
  ngc_layer *l = push(b, up ? NGC_L_UP : NGC_L_DOWN, module);
  if (!l) return;
  int32_t k = up ? 4 : 3;
  int64_t d[4] = {c, 1, k, k};
  /* The blur ops have the filter built in; the buffer exists so that
   * checkpoints carry and check it as the reference's state_dict does. */
  snprintf(name, sizeof name, "model.%d.filt", (int)module);
  if (ngc_net_add_param(b->net, name, 4, d, 1) < 0) b->st = NEGCUT_ERR_OUT_OF_MEMORY;
}

/* Fills every blur buffer with its fixed filter: outer([1,2,1])/16 and
 * outer([1,3,3,1])/64*4 (REFERENCE.md 1). */
static negcut_status fill_filters(ngc_net *net) {
  for (int32_t i = 0; i < net->n_params; i++) {
    ngc_param *p = &net->params[i];
    if (!p->buffer) continue;
    int64_t c = p->value.dim[0], k = p->value.dim[2];
    float *h = malloc((size_t)(c * k * k) * sizeof *h);
    if (!h) return ngc_error(net->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "filters: out of memory");
    static const float a3[3] = {1, 2, 1}, a4[4] = {1, 3, 3, 1};
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t y = 0; y < k; y++)
        for (int64_t x = 0; x < k; x++)
          h[(ch * k + y) * k + x] = k == 3 ? a3[y] * a3[x] / 16.0f : a4[y] * a4[x] / 64.0f * 4.0f;
    negcut_status st = ngc_param_upload(net, i, h);
    free(h);
    if (st != NEGCUT_OK) return st;
  }
  return NEGCUT_OK;
}

negcut_status ngc_generator_layout(ngc_net *net, negcut_ctx *ctx, const ngc_generator_cfg *cfg) {
  builder b = {net, NEGCUT_OK};
  char name[NGC_NAME_MAX + 16];
  int32_t ngf = cfg->ngf, m = 0;
  ngc_net_init(net, ctx, NGC_NET_GENERATOR);
  net->in_nc = cfg->input_nc;

  pad(&b, m++, NGC_PAD_REFLECT, 3);
  conv(&b, m++, "model.1", cfg->input_nc, ngf, 7, 1, 0, 0);
  simple(&b, m++, NGC_L_INORM, 0, 0);
  simple(&b, m++, NGC_L_ACT, NGC_ACT_RELU, 0);
  for (int32_t i = 0; i < 2; i++) {
    int32_t ci = ngf << i, co = ngf << (i + 1);
    snprintf(name, sizeof name, "model.%d", (int)m);
    if (cfg->no_antialias) {
      conv(&b, m++, name, ci, co, 3, 2, 1, 0);
      simple(&b, m++, NGC_L_INORM, 0, 0);
      simple(&b, m++, NGC_L_ACT, NGC_ACT_RELU, 0);
    } else {
      conv(&b, m++, name, ci, co, 3, 1, 1, 0);
      simple(&b, m++, NGC_L_INORM, 0, 0);
      simple(&b, m++, NGC_L_ACT, NGC_ACT_RELU, 0);
      blur(&b, m++, co, 0);
    }
  }
  for (int32_t blk = 0; blk < cfg->n_blocks; blk++, m++) {
    int32_t c = ngf * 4, start = net->n_layers; /* activation index of the block input */
    snprintf(name, sizeof name, "model.%d.conv_block.1", (int)m);
    pad(&b, -1, NGC_PAD_REFLECT, 1);
    conv(&b, -1, name, c, c, 3, 1, 0, 0);
    simple(&b, -1, NGC_L_INORM, 0, 0);
    simple(&b, -1, NGC_L_ACT, NGC_ACT_RELU, 0);
    snprintf(name, sizeof name, "model.%d.conv_block.5", (int)m);
    pad(&b, -1, NGC_PAD_REFLECT, 1);
    conv(&b, -1, name, c, c, 3, 1, 0, 0);
    simple(&b, -1, NGC_L_INORM, 0, 0);
    ngc_layer *add = push(&b, NGC_L_ADD, m);
    if (add) add->skip = start;
  }
  for (int32_t i = 0; i < 2; i++) {
    int32_t ci = ngf * (4 >> i), co = ci / 2;
    if (cfg->no_antialias_up) {
      snprintf(name, sizeof name, "model.%d", (int)m);
      conv(&b, m++, name, ci, co, 3, 2, 1, 1);
    } else {
      blur(&b, m++, ci, 1);
      snprintf(name, sizeof name, "model.%d", (int)m);
      conv(&b, m++, name, ci, co, 3, 1, 1, 0);
    }
    simple(&b, m++, NGC_L_INORM, 0, 0);
    simple(&b, m++, NGC_L_ACT, NGC_ACT_RELU, 0);
  }
  pad(&b, m++, NGC_PAD_REFLECT, 3);
  snprintf(name, sizeof name, "model.%d", (int)m);
  conv(&b, m++, name, ngf, cfg->output_nc, 7, 1, 0, 0);
  simple(&b, m++, NGC_L_ACT, NGC_ACT_TANH, 0);
  net->n_modules = m;
  return b.st;
}

negcut_status ngc_generator_alloc(ngc_net *net) {
  negcut_status st = ngc_net_alloc_params(net);
  return st == NEGCUT_OK ? fill_filters(net) : st;
}

negcut_status ngc_generator_build(ngc_net *net, negcut_ctx *ctx, const ngc_generator_cfg *cfg) {
  negcut_status st = ngc_generator_layout(net, ctx, cfg);
  return st == NEGCUT_OK ? ngc_generator_alloc(net) : st;
}

negcut_status ngc_discriminator_build(ngc_net *net, negcut_ctx *ctx,
                                      const ngc_discriminator_cfg *cfg) {
  builder b = {net, NEGCUT_OK};
  char name[NGC_NAME_MAX + 16];
  int32_t ndf = cfg->ndf, m = 0, mult = 1, prev;
  ngc_net_init(net, ctx, NGC_NET_DISCRIMINATOR);
  net->in_nc = cfg->input_nc;

  conv(&b, m++, "model.0", cfg->input_nc, ndf, 4, cfg->no_antialias ? 2 : 1, 1, 0);
  simple(&b, m++, NGC_L_ACT, NGC_ACT_LRELU, 0.2f);
  if (!cfg->no_antialias) blur(&b, m++, ndf, 0);
  for (int32_t n = 1; n < cfg->n_layers; n++) {
    prev = mult;
    mult = (1 << n) < 8 ? (1 << n) : 8;
    snprintf(name, sizeof name, "model.%d", (int)m);
    conv(&b, m++, name, ndf * prev, ndf * mult, 4, cfg->no_antialias ? 2 : 1, 1, 0);
    simple(&b, m++, NGC_L_INORM, 0, 0);
    simple(&b, m++, NGC_L_ACT, NGC_ACT_LRELU, 0.2f);
    if (!cfg->no_antialias) blur(&b, m++, ndf * mult, 0);
  }
  prev = mult;
  mult = (1 << cfg->n_layers) < 8 ? (1 << cfg->n_layers) : 8;
  snprintf(name, sizeof name, "model.%d", (int)m);
  conv(&b, m++, name, ndf * prev, ndf * mult, 4, 1, 1, 0);
  simple(&b, m++, NGC_L_INORM, 0, 0);
  simple(&b, m++, NGC_L_ACT, NGC_ACT_LRELU, 0.2f);
  snprintf(name, sizeof name, "model.%d", (int)m);
  conv(&b, m++, name, ndf * mult, 1, 4, 1, 1, 0);
  net->n_modules = m;
  if (b.st == NEGCUT_OK) b.st = ngc_net_alloc_params(net);
  if (b.st == NEGCUT_OK) b.st = fill_filters(net);
  return b.st;
}
