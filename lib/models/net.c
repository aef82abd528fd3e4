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
}

negcut_status ngc_tape_tensor(ngc_tape *tape, ngc_tensor *t, int32_t ndim,
                              const int64_t *dim) {
  return ngc_arena_tensor(tape->ctx, &tape->dev, t, ndim, dim);
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
  for (int32_t i = 0; i < net->n_params; i++) {
    ngc_tensor_release(&net->params[i].value);
    ngc_tensor_release(&net->params[i].grad);
  }
  free(net->params);
  free(net->layers);
  memset(net, 0, sizeof *net);
}

int32_t ngc_net_add_param(ngc_net *net, const char *name, int32_t ndim,
                          const int64_t *dim, int32_t buffer) {
  ngc_param *p;
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
  p = &net->params[net->n_params];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->buffer = buffer;
  if (ngc_tensor_alloc(net->ctx, net->ctx->be, &p->value, ndim, dim) != NEGCUT_OK)
    return -1;
  if (!buffer &&
      ngc_tensor_alloc(net->ctx, net->ctx->be, &p->grad, ndim, dim) != NEGCUT_OK) {
    ngc_tensor_release(&p->value);
    return -1;
  }
  return net->n_params++;
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

negcut_status ngc_net_zero_grad(ngc_net *net) {
  for (int32_t i = 0; i < net->n_params; i++) {
    if (net->params[i].buffer) continue;
    negcut_status st = ngc_fill(net->ctx, &net->params[i].grad, 0.0f);
    if (st != NEGCUT_OK) return st;
  }
  return NEGCUT_OK;
}
