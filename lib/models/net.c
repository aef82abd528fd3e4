/* Parameters, initialisation and the per-step tape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "net.h"

/* ---------------------------------------------------------------- tape */

negcut_status ngc_tape_init(ngc_tape *tape, negcut_ctx *ctx) {
  memset(tape, 0, sizeof *tape);
  tape->ctx = ctx;
  ngc_arena_init(&tape->dev, ctx->be);
  ngc_arena_init(&tape->host, ctx->ref);
  return NEGCUT_OK;
}

negcut_status ngc_tape_reset(ngc_tape *tape) {
  negcut_status st = ngc_arena_reset(&tape->dev);
  tape->scalars = NULL;
  tape->n_scalars = 0;
  if (st == NEGCUT_OK) st = ngc_arena_reset(&tape->host);
  return st;
}

void *ngc_tape_scratch(ngc_tape *tape, size_t bytes) {
  if (bytes > tape->scratch_bytes) {
    if (tape->scratch) ngc_backend_free(tape->ctx->be, tape->scratch);
    tape->scratch = ngc_backend_alloc(tape->ctx->be, bytes);
    tape->scratch_bytes = tape->scratch ? bytes : 0;
  }
  return tape->scratch;
}

void ngc_tape_free(ngc_tape *tape) {
  if (!tape) return;
  if (tape->scratch) ngc_backend_free(tape->ctx->be, tape->scratch);
  tape->scratch = NULL;
  tape->scratch_bytes = 0;
  ngc_arena_free(&tape->dev);
  ngc_arena_free(&tape->host);
  tape->scalars = NULL;
  tape->n_scalars = 0;
}

void ngc_tape_release(ngc_tape *tape) {
  ngc_backend *dev = tape->dev.be, *host = tape->host.be;
  ngc_tape_free(tape);
  ngc_arena_init(&tape->dev, dev);
  ngc_arena_init(&tape->host, host);
}

size_t ngc_tape_held_bytes(const ngc_tape *tape) {
  return tape->dev.reserved_bytes + tape->host.reserved_bytes + tape->scratch_bytes;
}

negcut_status ngc_tape_tensor(ngc_tape *tape, ngc_tensor *t, int32_t ndim,
                              const int64_t *dim) {
  return ngc_arena_tensor(tape->ctx, &tape->dev, t, ndim, dim);
}

negcut_status ngc_tape_scalar(ngc_tape *tape, ngc_tensor *t) {
  static const int64_t one[1] = {1};
  if (!tape->scalars || tape->n_scalars == NGC_TAPE_SCALARS) {
    ngc_tensor block;
    negcut_status st = ngc_tape_tensor(tape, &block, 1, (int64_t[1]){NGC_TAPE_SCALARS});
    if (st) return st;
    tape->scalars = block.data;
    tape->n_scalars = 0;
  }
  *t = ngc_tensor_view(tape->ctx->be, tape->scalars + tape->n_scalars++, 1, one);
  return NEGCUT_OK;
}

negcut_status ngc_tape_read_scalars(ngc_tape *tape, int32_t n, const ngc_tensor *src,
                                    float *const *dst) {
  ngc_backend *be = tape->ctx->be;
  float block[NGC_TAPE_SCALARS];
  const uintptr_t lo = (uintptr_t)tape->scalars;
  const uintptr_t hi = lo + (uintptr_t)tape->n_scalars * sizeof(float);
  int have = 0;
  negcut_status st = NEGCUT_OK;
  for (int32_t i = 0; i < n && !st; i++) {
    const uintptr_t at = (uintptr_t)src[i].data;
    if (!tape->scalars || at < lo || at >= hi) {
      st = be->ops.download(be, dst[i], src[i].data, sizeof(float));
      continue;
    }
    if (!have) st = be->ops.download(be, block, tape->scalars, (size_t)(hi - lo));
    have = 1;
    if (!st) *dst[i] = block[(at - lo) / sizeof(float)];
  }
  return st;
}

negcut_status ngc_tape_tensor_like(ngc_tape *tape, ngc_tensor *t, const ngc_tensor *like) {
  negcut_status st = ngc_tape_tensor(tape, t, like->ndim, like->dim);
  if (!st) t->layout = like->layout;
  return st;
}

void *ngc_tape_host(ngc_tape *tape, size_t bytes) {
  void *p = ngc_arena_alloc(&tape->host, bytes);
  if (p) memset(p, 0, bytes);
  return p;
}

/* ---------------------------------------------------------- parameters */

negcut_status ngc_net_init(ngc_net *net, negcut_ctx *ctx, ngc_net_kind kind) {
  memset(net, 0, sizeof *net);
  net->ctx = ctx;
  net->kind = kind;
  net->requires_grad = 1;
  return NEGCUT_OK;
}

void ngc_net_release(ngc_net *net) {
  if (!net) return;
  ngc_tensor_release(&net->slab);
  ngc_tensor_release(&net->grads);
  free(net->params);
  free(net->layers);
  memset(net, 0, sizeof *net);
}

int32_t ngc_net_add_param(ngc_net *net, const char *name, int32_t ndim,
                          const int64_t *dim, int32_t buffer) {
  ngc_param *p;
  if (net->slab.data) {
    ngc_error(net->ctx, NEGCUT_ERR_INTERNAL, "network: parameter %s added after allocation",
              name);
    return -1;
  }
  if (net->n_params == net->cap_params) {
    int32_t cap = net->cap_params ? 2 * net->cap_params : 32;
    ngc_param *np = realloc(net->params, (size_t)cap * sizeof *np);
    if (!np) {
      ngc_error(net->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "network: out of memory");
      return -1;
    }
    net->params = np;
    net->cap_params = cap;
  }
  if (ndim < 1 || ndim > NGC_MAX_DIMS) {
    ngc_error(net->ctx, NEGCUT_ERR_INTERNAL, "network: parameter %s has %d dims", name, (int)ndim);
    return -1;
  }
  for (int32_t d = 0; d < ndim; d++)
    if (dim[d] < 1 || dim[d] > ((int64_t)1 << 31)) {
      ngc_error(net->ctx, NEGCUT_ERR_INTERNAL, "network: parameter %s has size %lld in dim %d",
                name, (long long)dim[d], (int)d);
      return -1;
    }
  p = &net->params[net->n_params];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->buffer = buffer;
  p->value = ngc_tensor_view(net->ctx->be, NULL, ndim, dim);
  return net->n_params++;
}

static int64_t aligned(int64_t n) {
  return (n + NGC_PARAM_ALIGN - 1) / NGC_PARAM_ALIGN * NGC_PARAM_ALIGN;
}

negcut_status ngc_net_alloc_params(ngc_net *net) {
  negcut_ctx *ctx = net->ctx;
  int64_t span = 0, trained = 0;
  negcut_status st;
  if (net->slab.data)
    return ngc_error(ctx, NEGCUT_ERR_INTERNAL, "network: parameters allocated twice");
  /* Trainable parameters first, so that they form one span; buffers after. */
  for (int32_t buffers = 0; buffers < 2; buffers++) {
    for (int32_t i = 0; i < net->n_params; i++) {
      ngc_param *p = &net->params[i];
      if (p->buffer != buffers) continue;
      p->offset = span;
      span += aligned(ngc_numel(&p->value));
    }
    if (!buffers) trained = span;
  }
  st = ngc_tensor_alloc(ctx, ctx->be, &net->slab, 1, &span);
  if (!st) st = ngc_fill(ctx, &net->slab, 0.0f);
  /* A network frozen before its parameters exist (an inference model) gets
   * no gradients: at ngf 64 that is 45 MB of zeros not held. */
  if (!st && net->requires_grad) st = ngc_tensor_alloc(ctx, ctx->be, &net->grads, 1, &trained);
  if (!st && net->requires_grad) st = ngc_fill(ctx, &net->grads, 0.0f);
  if (st) {
    ngc_tensor_release(&net->slab);
    ngc_tensor_release(&net->grads);
    return st;
  }
  net->trained = ngc_tensor_view(ctx->be, net->slab.data, 1, &trained);
  for (int32_t i = 0; i < net->n_params; i++) {
    ngc_param *p = &net->params[i];
    p->value.data = net->slab.data + p->offset;
    if (!p->buffer && net->grads.data)
      p->grad = ngc_tensor_view_as(ctx->be, net->grads.data + p->offset, &p->value);
  }
  return NEGCUT_OK;
}

int32_t ngc_net_find_param(const ngc_net *net, const char *name) {
  for (int32_t i = 0; i < net->n_params; i++)
    if (strcmp(net->params[i].name, name) == 0) return i;
  return -1;
}

int64_t ngc_net_param_numel(const ngc_net *net) {
  int64_t n = 0;
  for (int32_t i = 0; i < net->n_params; i++)
    if (!net->params[i].buffer) n += ngc_numel(&net->params[i].value);
  return n;
}

negcut_status ngc_param_upload(ngc_net *net, int32_t i, const float *src) {
  ngc_tensor *t = &net->params[i].value;
  ngc_backend *be = t->be;
  return be->ops.upload(be, t->data, src, (size_t)ngc_numel(t) * sizeof(float));
}

negcut_status ngc_param_download(const ngc_net *net, int32_t i, float *dst, int grad) {
  const ngc_tensor *t = grad ? &net->params[i].grad : &net->params[i].value;
  ngc_backend *be = net->params[i].value.be;
  if (!t->data)
    return ngc_error(net->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s has no gradient",
                     net->params[i].name);
  return be->ops.download(be, dst, t->data, (size_t)ngc_numel(t) * sizeof(float));
}

/* Weights have >= 2 dims; PyTorch's fans: fan_in = dim1 * receptive field,
 * fan_out = dim0 * receptive field. Normals come from the counter-based
 * generator at a per-parameter offset, so the values do not depend on the
 * order in which networks are made. */
negcut_status ngc_net_init_weights(ngc_net *net, uint32_t init_id, float gain) {
  negcut_status st = NEGCUT_OK;
  float *host = NULL;
  for (int32_t i = 0; i < net->n_params && st == NEGCUT_OK; i++) {
    ngc_param *p = &net->params[i];
    int64_t n = ngc_numel(&p->value);
    if (p->buffer) continue;
    free(host);
    host = malloc((size_t)(n ? n : 1) * sizeof *host);
    if (!host) return ngc_error(net->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "init: out of memory");
    if (p->value.ndim >= 2) {
      int64_t rf = 1;
      for (int32_t d = 2; d < p->value.ndim; d++) rf *= p->value.dim[d];
      double fan_in = (double)p->value.dim[1] * rf, fan_out = (double)p->value.dim[0] * rf;
      double std = gain * sqrt(2.0 / (fan_in + fan_out));
      uint64_t offset = ((uint64_t)init_id << 48) | ((uint64_t)i << 32);
      ngc_philox_normal_at(net->ctx->seed, NGC_STREAM_INIT, offset, (size_t)n, host);
      for (int64_t j = 0; j < n; j++) host[j] = (float)(host[j] * std);
    } else {
      memset(host, 0, (size_t)n * sizeof *host);
    }
    st = ngc_param_upload(net, i, host);
  }
  free(host);
  return st;
}

static negcut_status no_grads(const ngc_net *net) {
  if (!net->slab.data)
    return ngc_error(net->ctx, NEGCUT_ERR_INTERNAL, "network: parameters not allocated");
  return ngc_error(net->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                   "network: made without gradients (frozen before its parameters were allocated)");
}

negcut_status ngc_net_zero_grad(ngc_net *net) {
  if (!net->grads.data) return no_grads(net);
  return ngc_fill(net->ctx, &net->grads, 0.0f);
}
