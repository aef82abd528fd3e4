/* negcut/nets.h: tensors, tapes and networks for build-your-own loops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "checkpoint.h"

#define NEED(ctx, cond, what)                                                     \
  do {                                                                            \
    if (!(cond)) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s", what);  \
  } while (0)

/* Returns NEGCUT_ERR_STATE when rec or one of the tensors is a tape's handle
 * from before its reset. */
#define LIVE(ctx, who, rec, ...)                                                              \
  do {                                                                                        \
    const negcut_tensor *const live_[] = {__VA_ARGS__};                                       \
    negcut_status live_st_ =                                                                  \
        ngc_api_live(ctx, who, rec, (int32_t)(sizeof live_ / sizeof live_[0]), live_);        \
    if (live_st_) return live_st_;                                                            \
  } while (0)

/* ---------------------------------------------------------------- tensors */

negcut_status negcut_tensor_create(negcut_tensor **out, negcut_ctx *ctx, int32_t ndim,
                                   const int64_t *shape) {
  negcut_tensor *t;
  negcut_status st;
  NEED(ctx, out && ctx && shape, "negcut_tensor_create: NULL argument");
  *out = NULL;
  t = calloc(1, sizeof *t);
  if (!t) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "tensor: out of memory");
  t->ctx = ctx;
  st = ngc_tensor_alloc(ctx, ctx->be, &t->t, ndim, shape);
  if (st) {
    free(t);
    return st;
  }
  *out = t;
  return NEGCUT_OK;
}

void negcut_tensor_free(negcut_tensor *t) {
  if (!t) return;
  ngc_tensor_release(&t->t);
  free(t);
}

int32_t negcut_tensor_ndim(const negcut_tensor *t) { return t && !t->dead ? t->t.ndim : 0; }
int64_t negcut_tensor_dim(const negcut_tensor *t, int32_t i) {
  return t && !t->dead && i >= 0 && i < t->t.ndim ? t->t.dim[i] : 0;
}
int64_t negcut_tensor_numel(const negcut_tensor *t) { return t && !t->dead ? ngc_numel(&t->t) : 0; }

static negcut_status transfer(const negcut_tensor *t, void *dst, const void *src, size_t count,
                              int up, const char *who) {
  ngc_backend *be = t->ctx->be;
  LIVE(t->ctx, who, NULL, t);
  if (count != (size_t)ngc_numel(&t->t))
    return ngc_error(t->ctx, NEGCUT_ERR_SHAPE, "%s: %zu values for a tensor of %lld", who, count,
                     (long long)ngc_numel(&t->t));
  return up ? be->ops.upload(be, dst, src, count * sizeof(float))
            : be->ops.download(be, dst, src, count * sizeof(float));
}

negcut_status negcut_tensor_write(negcut_tensor *t, const float *src, size_t count) {
  if (!t || !src) return ngc_error(t ? t->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_tensor_write: NULL");
  return transfer(t, t->t.data, src, count, 1, "negcut_tensor_write");
}

negcut_status negcut_tensor_read(const negcut_tensor *t, float *dst, size_t count) {
  if (!t || !dst) return ngc_error(t ? t->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_tensor_read: NULL");
  return transfer(t, dst, t->t.data, count, 0, "negcut_tensor_read");
}

negcut_status negcut_tensor_fill(negcut_tensor *t, float value) {
  if (!t) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_tensor_fill: NULL");
  LIVE(t->ctx, "negcut_tensor_fill", NULL, t);
  return ngc_fill(t->ctx, &t->t, value);
}

negcut_status negcut_tensor_axpby(float alpha, const negcut_tensor *x, float beta, negcut_tensor *y) {
  if (!x || !y) return ngc_error(y ? y->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_tensor_axpby: NULL");
  LIVE(y->ctx, "negcut_tensor_axpby", NULL, x, y);
  return ngc_axpby(y->ctx, alpha, &x->t, beta, &y->t);
}

/* ------------------------------------------------------------------ tapes */

#define NGC_POOL_CHUNK 64

/* The next slot (zeroed), NULL when out of memory. */
static void *pool_take(ngc_handle_pool *p) {
  const int64_t c = p->used / NGC_POOL_CHUNK;
  if (c == p->n_chunks) {
    char **chunks = realloc(p->chunks, (size_t)(c + 1) * sizeof *chunks);
    if (!chunks) return NULL;
    p->chunks = chunks;
    if (!(chunks[c] = malloc(NGC_POOL_CHUNK * p->slot_bytes))) return NULL;
    p->n_chunks++;
  }
  void *slot = p->chunks[c] + (size_t)(p->used++ % NGC_POOL_CHUNK) * p->slot_bytes;
  memset(slot, 0, p->slot_bytes);
  return slot;
}

static void *pool_slot(const ngc_handle_pool *p, int64_t i) {
  return p->chunks[i / NGC_POOL_CHUNK] + (size_t)(i % NGC_POOL_CHUNK) * p->slot_bytes;
}

static void pool_free(ngc_handle_pool *p) {
  for (int64_t c = 0; c < p->n_chunks; c++) free(p->chunks[c]);
  free(p->chunks);
  memset(p, 0, sizeof *p);
}

negcut_status negcut_tape_create(negcut_tape **out, negcut_ctx *ctx) {
  negcut_tape *tp;
  NEED(ctx, out && ctx, "negcut_tape_create: NULL argument");
  tp = calloc(1, sizeof *tp);
  if (!tp) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "tape: out of memory");
  tp->ctx = ctx;
  for (int k = 0; k < 2; k++) {
    tp->tensors[k].slot_bytes = sizeof(negcut_tensor);
    tp->records[k].slot_bytes = sizeof(negcut_record);
  }
  ngc_tape_init(&tp->tape, ctx);
  *out = tp;
  return NEGCUT_OK;
}

negcut_status negcut_tape_reset(negcut_tape *tape) {
  if (!tape) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_tape_reset: NULL");
  ngc_handle_pool *tensors = &tape->tensors[tape->side], *records = &tape->records[tape->side];
  for (int64_t i = 0; i < tensors->used; i++)
    ((negcut_tensor *)pool_slot(tensors, i))->dead = 1;
  for (int64_t i = 0; i < records->used; i++)
    ((negcut_record *)pool_slot(records, i))->kind = NGC_REC_DEAD;
  tensors->used = records->used = 0;
  tape->side ^= 1; /* the other pools' slots died a reset earlier */
  return ngc_tape_reset(&tape->tape);
}

void negcut_tape_free(negcut_tape *tape) {
  if (!tape) return;
  ngc_tape_free(&tape->tape);
  for (int k = 0; k < 2; k++) {
    pool_free(&tape->tensors[k]);
    pool_free(&tape->records[k]);
  }
  free(tape);
}

negcut_status ngc_api_live(negcut_ctx *ctx, const char *who, const negcut_record *rec, int32_t n,
                           const negcut_tensor *const *t) {
  if (rec && rec->kind == NGC_REC_DEAD)
    return ngc_error(ctx, NEGCUT_ERR_STATE, "%s: the record is from before its tape's reset", who);
  for (int32_t i = 0; i < n; i++)
    if (t[i] && t[i]->dead)
      return ngc_error(ctx, NEGCUT_ERR_STATE,
                       "%s: a tensor (argument %d) is from before its tape's reset", who, (int)i);
  return NEGCUT_OK;
}

negcut_status negcut_tape_tensor(negcut_tensor **out, negcut_tape *tape, int32_t ndim,
                                 const int64_t *shape) {
  ngc_tensor t;
  negcut_status st;
  NEED(tape ? tape->ctx : NULL, out && tape && shape, "negcut_tape_tensor: NULL argument");
  *out = NULL;
  st = ngc_tape_tensor(&tape->tape, &t, ndim, shape);
  if (st) return st;
  *out = ngc_api_tape_tensor(tape, &t);
  return *out ? NEGCUT_OK : ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "tape: out of memory");
}

negcut_status negcut_tensor_slice(negcut_tensor **out, negcut_tape *tape, const negcut_tensor *t,
                                  int64_t first, int64_t count) {
  ngc_tensor v;
  int64_t item = 1;
  NEED(tape ? tape->ctx : NULL, out && tape && t, "negcut_tensor_slice: NULL argument");
  *out = NULL;
  LIVE(tape->ctx, "negcut_tensor_slice", NULL, t);
  if (first < 0 || count < 1 || first > t->t.dim[0] - count)
    return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_tensor_slice: %lld items from item %lld of %lld", (long long)count,
                     (long long)first, (long long)t->t.dim[0]);
  for (int32_t i = 1; i < t->t.ndim; i++) item *= t->t.dim[i];
  v = t->t;
  v.owns = 0;
  v.dim[0] = count;
  v.data = t->t.data + first * item;
  *out = ngc_api_tape_tensor(tape, &v);
  return *out ? NEGCUT_OK : ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "tape: out of memory");
}

negcut_tensor *ngc_api_tape_tensor(negcut_tape *tape, const ngc_tensor *t) {
  negcut_tensor *h = pool_take(&tape->tensors[tape->side]);
  if (!h) return NULL;
  h->ctx = tape->ctx;
  h->t = *t;
  h->t.owns = 0;
  return h;
}

negcut_record *ngc_api_record(negcut_tape *tape, ngc_record_kind kind, const void *owner) {
  negcut_record *r = pool_take(&tape->records[tape->side]);
  if (!r) return NULL;
  r->kind = kind;
  r->owner = owner;
  r->tape = tape;
  return r;
}

/* --------------------------------------------------------------- options */

static const negcut_generator_options gen_defaults = NEGCUT_GENERATOR_OPTIONS_INIT;
static const size_t gen_ends[] = {NGC_END_OF(negcut_generator_options, init_gain)};
static const ngc_options_layout gen_layout = {"negcut_generator_options", 1, gen_ends};
static const negcut_discriminator_options disc_defaults = NEGCUT_DISCRIMINATOR_OPTIONS_INIT;
static const size_t disc_ends[] = {NGC_END_OF(negcut_discriminator_options, init_gain)};
static const ngc_options_layout disc_layout = {"negcut_discriminator_options", 1, disc_ends};
static const negcut_head_options head_defaults = NEGCUT_HEAD_OPTIONS_INIT;
static const size_t head_ends[] = {NGC_END_OF(negcut_head_options, init_gain)};
static const ngc_options_layout head_layout = {"negcut_head_options", 1, head_ends};

negcut_status negcut_generator_options_init_v2(negcut_generator_options *o, uint32_t version) {
  return ngc_options_fill(&gen_layout, o, version, &gen_defaults);
}

negcut_status negcut_generator_options_init(negcut_generator_options *o) {
  return negcut_generator_options_init_v2(o, 1);
}

negcut_status negcut_discriminator_options_init_v2(negcut_discriminator_options *o,
                                                   uint32_t version) {
  return ngc_options_fill(&disc_layout, o, version, &disc_defaults);
}

negcut_status negcut_discriminator_options_init(negcut_discriminator_options *o) {
  return negcut_discriminator_options_init_v2(o, 1);
}

negcut_status negcut_head_options_init_v2(negcut_head_options *o, uint32_t version) {
  return ngc_options_fill(&head_layout, o, version, &head_defaults);
}

negcut_status negcut_head_options_init(negcut_head_options *o) {
  return negcut_head_options_init_v2(o, 1);
}

/* --------------------------------------------------------------- networks */

static negcut_status finish(negcut_net **out, negcut_net *n, negcut_status st, uint32_t id,
                            uint32_t default_id, float gain) {
  if (!st) st = ngc_net_init_weights(&n->net, id ? id : default_id, gain > 0 ? gain : 0.02f);
  if (st) {
    negcut_net_free(n);
    return st;
  }
  *out = n;
  return NEGCUT_OK;
}

/* A new handle in *out, after checking the options' init_gain. */
static negcut_status new_net(negcut_ctx *ctx, float gain, negcut_net **out) {
  if (!(gain == 0.0f || (gain > 0.0f && isfinite(gain))))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "network: init_gain %g (0 for the default 0.02, else finite and above 0)",
                     (double)gain);
  if (!(*out = calloc(1, sizeof **out)))
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "network: out of memory");
  (*out)->ctx = ctx;
  return NEGCUT_OK;
}

negcut_status negcut_net_create_generator(negcut_net **out, negcut_ctx *ctx,
                                          const negcut_generator_options *opts) {
  negcut_generator_options o = NEGCUT_GENERATOR_OPTIONS_INIT;
  negcut_net *n;
  NEED(ctx, out && ctx, "negcut_net_create_generator: NULL argument");
  *out = NULL;
  if (opts && ngc_options_read(ctx, &gen_layout, &o, opts, &gen_defaults)) return NEGCUT_ERR_INVALID_ARGUMENT;
  if (o.input_nc < 1 || o.output_nc < 1 || o.ngf < 1 || o.n_blocks < 0 || o.ngf > NGC_GEN_MAX_NGF ||
      o.n_blocks > NGC_GEN_MAX_BLOCKS || o.input_nc > NGC_GEN_MAX_NC || o.output_nc > NGC_GEN_MAX_NC)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "generator: input_nc %d, output_nc %d, ngf %d, n_blocks %d out of range",
                     (int)o.input_nc, (int)o.output_nc, (int)o.ngf, (int)o.n_blocks);
  negcut_status st = new_net(ctx, o.init_gain, &n);
  if (st) return st;
  n->gcfg = (ngc_generator_cfg){o.input_nc, o.output_nc, o.ngf, o.n_blocks, o.no_antialias != 0,
                                o.no_antialias_up != 0};
  return finish(out, n, ngc_generator_build(&n->net, ctx, &n->gcfg), o.init_id, 1, o.init_gain);
}

negcut_status negcut_net_create_discriminator(negcut_net **out, negcut_ctx *ctx,
                                              const negcut_discriminator_options *opts) {
  negcut_discriminator_options o = NEGCUT_DISCRIMINATOR_OPTIONS_INIT;
  negcut_net *n;
  NEED(ctx, out && ctx, "negcut_net_create_discriminator: NULL argument");
  *out = NULL;
  if (opts && ngc_options_read(ctx, &disc_layout, &o, opts, &disc_defaults)) return NEGCUT_ERR_INVALID_ARGUMENT;
  if (o.input_nc < 1 || o.ndf < 1 || o.n_layers < 1 || o.n_layers > NGC_DISC_MAX_LAYERS ||
      o.ndf > NGC_DISC_MAX_NDF || o.input_nc > NGC_GEN_MAX_NC)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "discriminator: input_nc %d, ndf %d, n_layers %d out of range",
                     (int)o.input_nc, (int)o.ndf, (int)o.n_layers);
  negcut_status st = new_net(ctx, o.init_gain, &n);
  if (st) return st;
  ngc_discriminator_cfg c = {o.input_nc, o.ndf, o.n_layers, o.no_antialias != 0};
  return finish(out, n, ngc_discriminator_build(&n->net, ctx, &c), o.init_id, 2, o.init_gain);
}

static negcut_status create_head(negcut_net **out, negcut_ctx *ctx, const negcut_head_options *opts,
                                 int neggen) {
  negcut_head_options o = NEGCUT_HEAD_OPTIONS_INIT;
  negcut_net *n;
  NEED(ctx, out && ctx, "negcut_net_create_projector/neggen: NULL argument");
  *out = NULL;
  if (opts && ngc_options_read(ctx, &head_layout, &o, opts, &head_defaults)) return NEGCUT_ERR_INVALID_ARGUMENT;
  if (o.nc > NGC_HEAD_MAX_NC || o.z_dim > NGC_HEAD_MAX_NC || o.n_layers > NEGCUT_MAX_NCE_LAYERS)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "head: nc %d, z_dim %d, %d layers out of range",
                     (int)o.nc, (int)o.z_dim, (int)o.n_layers);
  negcut_status st = new_net(ctx, o.init_gain, &n);
  if (st) return st;
  st = neggen ? ngc_neggen_build(&n->net, ctx, o.n_layers, o.nc, o.z_dim)
               : ngc_projector_build(&n->net, ctx, o.n_layers, o.channels, o.nc);
  return finish(out, n, st, o.init_id, neggen ? 4 : 3, o.init_gain);
}

negcut_status negcut_net_create_projector(negcut_net **out, negcut_ctx *ctx,
                                          const negcut_head_options *opts) {
  return create_head(out, ctx, opts, 0);
}

negcut_status negcut_net_create_neggen(negcut_net **out, negcut_ctx *ctx,
                                       const negcut_head_options *opts) {
  return create_head(out, ctx, opts, 1);
}

void negcut_net_free(negcut_net *net) {
  if (!net) return;
  ngc_net_release(&net->net);
  free(net);
}

static const ngc_param *param_at(const negcut_net *net, int32_t i) {
  return net && i >= 0 && i < net->net.n_params ? &net->net.params[i] : NULL;
}

int32_t negcut_net_param_count(const negcut_net *net) { return net ? net->net.n_params : 0; }

const char *negcut_net_param_name(const negcut_net *net, int32_t i) {
  const ngc_param *p = param_at(net, i);
  return p ? p->name : NULL;
}

int32_t negcut_net_param_shape(const negcut_net *net, int32_t i, int64_t shape[4]) {
  const ngc_param *p = param_at(net, i);
  if (!p || !shape) return 0;
  for (int32_t d = 0; d < 4; d++) shape[d] = d < p->value.ndim ? p->value.dim[d] : 1;
  return p->value.ndim;
}

int32_t negcut_net_param_is_buffer(const negcut_net *net, int32_t i) {
  const ngc_param *p = param_at(net, i);
  return p ? p->buffer : 0;
}

static negcut_status param_io(const negcut_net *net, int32_t i, size_t count, const char *who,
                              const ngc_param **out) {
  const ngc_param *p = param_at(net, i);
  if (!p) return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "%s: no parameter %d", who, (int)i);
  if (count != (size_t)ngc_numel(&p->value))
    return ngc_error(net->ctx, NEGCUT_ERR_SHAPE, "%s: %zu values for %s, which has %lld", who,
                     count, p->name, (long long)ngc_numel(&p->value));
  *out = p;
  return NEGCUT_OK;
}

negcut_status negcut_net_param_read(const negcut_net *net, int32_t i, float *dst, size_t count) {
  const ngc_param *p = NULL;
  negcut_status st = param_io(net, i, count, "negcut_net_param_read", &p);
  if (!st && !dst) st = ngc_error(net->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_net_param_read: NULL");
  return st ? st : ngc_param_download(&net->net, i, dst, 0);
}

negcut_status negcut_net_param_write(negcut_net *net, int32_t i, const float *src, size_t count) {
  const ngc_param *p = NULL;
  negcut_status st = param_io(net, i, count, "negcut_net_param_write", &p);
  if (!st && !src) st = ngc_error(net->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_net_param_write: NULL");
  if (!st && p->buffer)
    st = ngc_error(net->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s is a fixed buffer", p->name);
  return st ? st : ngc_param_upload(&net->net, i, src);
}

negcut_status negcut_net_grad_read(const negcut_net *net, int32_t i, float *dst, size_t count) {
  const ngc_param *p = NULL;
  negcut_status st = param_io(net, i, count, "negcut_net_grad_read", &p);
  if (!st && !dst) st = ngc_error(net->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_net_grad_read: NULL");
  return st ? st : ngc_param_download(&net->net, i, dst, 1);
}

negcut_status negcut_net_zero_grad(negcut_net *net) {
  if (!net) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_net_zero_grad: NULL");
  return ngc_net_zero_grad(&net->net);
}

negcut_status negcut_net_set_requires_grad(negcut_net *net, int32_t on) {
  if (!net) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_net_set_requires_grad: NULL");
  if (on && !net->net.grads.data)
    return ngc_error(net->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_net_set_requires_grad: this network was made without gradients");
  net->net.requires_grad = on != 0;
  return NEGCUT_OK;
}

static const char *kind_name(ngc_net_kind k) {
  switch (k) {
  case NGC_NET_GENERATOR: return "generator";
  case NGC_NET_DISCRIMINATOR: return "discriminator";
  case NGC_NET_PROJECTOR: return "projector";
  default: return "negative_generator";
  }
}

negcut_status negcut_net_save(const negcut_net *net, const char *path) {
  ngc_cfg_meta meta;
  if (!net || !path) return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_net_save: NULL");
  if (net->net.kind == NGC_NET_GENERATOR) {
    ngc_generator_cfg_meta(&net->gcfg, &meta);
  } else {
    meta.n = 2;
    meta.keys[0] = "net";
    meta.values[0] = kind_name(net->net.kind);
    meta.keys[1] = "format";
    meta.values[1] = "libnegcut";
  }
  return ngc_net_save(net->ctx, &net->net, path, meta.n, meta.keys, meta.values);
}

negcut_status negcut_net_load(negcut_net *net, const char *path) {
  ngc_st_file *f = NULL;
  negcut_status st;
  if (!net || !path) return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_net_load: NULL");
  st = ngc_st_open(net->ctx, path, &f);
  if (!st) st = ngc_net_load(net->ctx, &net->net, f, path);
  ngc_st_close(f);
  return st;
}

/* ------------------------------------------------ forward and backward */

static int sequential(const negcut_net *net) {
  return net->net.kind == NGC_NET_GENERATOR || net->net.kind == NGC_NET_DISCRIMINATOR;
}

negcut_status negcut_net_output_shape(const negcut_net *net, const int64_t in[4], int64_t out[4]) {
  if (!net || !in || !out || !sequential(net))
    return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_net_output_shape: NULL or not a generator/discriminator");
  return ngc_seq_shape(net->ctx, &net->net, in, -1, out);
}

negcut_status negcut_net_feature_shape(const negcut_net *net, const int64_t in[4], int32_t module,
                                       int64_t out[4]) {
  if (!net || !in || !out || net->net.kind != NGC_NET_GENERATOR || module < 0)
    return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_net_feature_shape: NULL, not a generator, or a negative module");
  return ngc_seq_shape(net->ctx, &net->net, in, module, out);
}

negcut_status negcut_net_forward(negcut_net *net, negcut_tape *tape, const negcut_tensor *x,
                                 negcut_tensor *y, negcut_record **rec) {
  negcut_record *r = NULL;
  ngc_tape scratch;
  negcut_status st;
  if (!net || !x || !y || !sequential(net) || (tape && !rec))
    return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_net_forward: NULL argument, a record pointer missing, or not a generator/discriminator");
  LIVE(net->ctx, "negcut_net_forward", NULL, x, y);
  if (!tape) { /* inference on a throwaway tape */
    ngc_tape_init(&scratch, net->ctx);
    st = ngc_seq_forward(&net->net, &scratch, &x->t, -1, NULL, &y->t);
    ngc_tape_free(&scratch);
    return st;
  }
  *rec = NULL;
  r = ngc_api_record(tape, NGC_REC_SEQ, net);
  if (!r) return ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "forward: out of memory");
  st = ngc_seq_forward(&net->net, &tape->tape, &x->t, -1, &r->u.seq, &y->t);
  if (!st) *rec = r;
  return st;
}

negcut_status negcut_net_encode(negcut_net *net, negcut_tape *tape, const negcut_tensor *x,
                                int32_t n, const int32_t *layers, negcut_tensor **feats,
                                negcut_record **rec) {
  negcut_record *r;
  negcut_status st;
  if (!net || !tape || !x || !layers || !feats || !rec || net->net.kind != NGC_NET_GENERATOR ||
      n < 1 || n > NGC_MAX_NCE_LAYERS)
    return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_net_encode: NULL argument, not a generator, or n outside 1..%d",
                     NGC_MAX_NCE_LAYERS);
  *rec = NULL;
  LIVE(net->ctx, "negcut_net_encode", NULL, x);
  for (int32_t i = 0; i < n; i++)
    if (ngc_seq_layer_of_module(&net->net, layers[i]) < 0 || (i && layers[i] <= layers[i - 1]))
      return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                       "negcut_net_encode: layer %d is not a module index in increasing order",
                       (int)layers[i]);
  r = ngc_api_record(tape, NGC_REC_SEQ, net);
  if (!r) return ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "encode: out of memory");
  st = ngc_seq_encode(&net->net, &tape->tape, &x->t, n, layers, &r->u.seq);
  r->n_taps = n;
  memcpy(r->taps, layers, (size_t)n * sizeof *layers);
  for (int32_t i = 0; i < n && !st; i++) {
    /* The caller sees NCHW: a feature kept in the backend's blocked layout
     * is handed out as a plain copy (the record keeps the original). */
    const ngc_tensor *f = ngc_seq_module_act(&net->net, &r->u.seq, layers[i]);
    ngc_tensor plain;
    if (f->layout != NGC_LAYOUT_PLAIN) {
      st = ngc_tape_tensor(&tape->tape, &plain, f->ndim, f->dim);
      if (!st) st = ngc_relayout(tape->ctx, f, &plain);
      if (st) break;
      f = &plain;
    }
    feats[i] = ngc_api_tape_tensor(tape, f);
    if (!feats[i]) st = ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "encode: out of memory");
  }
  if (!st) *rec = r;
  return st;
}

negcut_status negcut_net_backward(negcut_net *net, const negcut_record *rec, const negcut_tensor *dy,
                                  int32_t n, const negcut_tensor *const *dfeats, negcut_tensor *dx) {
  ngc_tensor dt[NGC_MAX_NCE_LAYERS];
  int32_t taps[NGC_MAX_NCE_LAYERS], k = 0;
  if (net && rec) LIVE(net->ctx, "negcut_net_backward", rec, dy, dx);
  if (!net || !rec || rec->kind != NGC_REC_SEQ || rec->owner != net || n < 0 || n > rec->n_taps ||
      (n && !dfeats))
    return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_net_backward: NULL argument, or a record of another network");
  negcut_status st = ngc_api_live(net->ctx, "negcut_net_backward (dfeats)", NULL, n, dfeats);
  if (st) return st;
  for (int32_t i = 0; i < n; i++)
    if (dfeats[i]) {
      if (!ngc_same_shape(&dfeats[i]->t, ngc_seq_module_act(&net->net, &rec->u.seq, rec->taps[i])))
        return ngc_error(rec->tape->ctx, NEGCUT_ERR_SHAPE, "negcut_net_backward: dfeats[%d] has the wrong shape", (int)i);
      dt[k] = dfeats[i]->t;
      taps[k++] = rec->taps[i];
    }
  if (dy && !ngc_same_shape(&dy->t, &rec->u.seq.acts[rec->u.seq.n_run]))
    return ngc_error(rec->tape->ctx, NEGCUT_ERR_SHAPE, "negcut_net_backward: dy has the wrong shape");
  if (dx && !ngc_same_shape(&dx->t, &rec->u.seq.acts[0]))
    return ngc_error(rec->tape->ctx, NEGCUT_ERR_SHAPE, "negcut_net_backward: dx has the wrong shape");
  return ngc_seq_backward(&net->net, &rec->tape->tape, &rec->u.seq, dy ? &dy->t : NULL, k, taps, dt,
                          dx ? &dx->t : NULL);
}

negcut_status negcut_projector_forward(negcut_net *net, negcut_tape *tape, int32_t l,
                                       const negcut_tensor *feat, const int64_t *ids, int64_t n_ids,
                                       negcut_tensor **out, negcut_record **rec) {
  negcut_record *r;
  negcut_status st;
  if (!net || !tape || !feat || !out || !rec || net->net.kind != NGC_NET_PROJECTOR || feat->t.ndim != 4)
    return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_projector_forward: NULL argument, not a projector, or feat not (B, C, H, W)");
  *rec = NULL;
  *out = NULL;
  LIVE(net->ctx, "negcut_projector_forward", NULL, feat);
  r = ngc_api_record(tape, NGC_REC_PROJ, net);
  if (!r) return ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "projector: out of memory");
  st = ngc_projector_forward(&net->net, l, &tape->tape, &feat->t, ids, n_ids, &r->u.proj);
  if (!st && !(*out = ngc_api_tape_tensor(tape, &r->u.proj.mlp.y)))
    st = ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "projector: out of memory");
  r->taps[0] = l;
  if (!st) *rec = r;
  return st;
}

negcut_status negcut_projector_backward(negcut_net *net, const negcut_record *rec,
                                        const negcut_tensor *dy, negcut_tensor *dfeat) {
  if (net && rec) LIVE(net->ctx, "negcut_projector_backward", rec, dy, dfeat);
  if (!net || !rec || !dy || rec->kind != NGC_REC_PROJ || rec->owner != net)
    return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_projector_backward: NULL argument or a record of another network");
  if (!ngc_same_shape(&dy->t, &rec->u.proj.mlp.y) || (dfeat && !ngc_same_shape(&dfeat->t, rec->u.proj.feat)))
    return ngc_error(rec->tape->ctx, NEGCUT_ERR_SHAPE, "negcut_projector_backward: wrong shapes");
  return ngc_projector_backward(&net->net, rec->taps[0], &rec->tape->tape, &rec->u.proj, &dy->t,
                                dfeat ? &dfeat->t : NULL);
}

negcut_status negcut_neggen_forward(negcut_net *net, negcut_tape *tape, int32_t l,
                                    const negcut_tensor *h_all, int64_t batch, const negcut_tensor *z,
                                    negcut_tensor **out, negcut_record **rec) {
  negcut_record *r;
  negcut_status st;
  if (!net || !tape || !h_all || !z || !out || !rec || net->net.kind != NGC_NET_NEGGEN)
    return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_neggen_forward: NULL argument or not a negative generator");
  LIVE(net->ctx, "negcut_neggen_forward", NULL, h_all, z);
  if (l < 0 || l >= net->net.n_mlp)
    return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_neggen_forward: no layer %d", (int)l);
  *rec = NULL;
  *out = NULL;
  r = ngc_api_record(tape, NGC_REC_NEG, net);
  if (!r) return ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "neggen: out of memory");
  st = ngc_neggen_forward(&net->net, l, &tape->tape, &h_all->t, batch, &z->t, &r->u.neg);
  if (!st && !(*out = ngc_api_tape_tensor(tape, &r->u.neg.mlp.y)))
    st = ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "neggen: out of memory");
  r->taps[0] = l;
  if (!st) *rec = r;
  return st;
}

negcut_status negcut_neggen_backward(negcut_net *net, const negcut_record *rec, const negcut_tensor *dy,
                                     negcut_tensor *dh_all) {
  if (net && rec) LIVE(net->ctx, "negcut_neggen_backward", rec, dy, dh_all);
  if (!net || !rec || !dy || rec->kind != NGC_REC_NEG || rec->owner != net)
    return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_neggen_backward: NULL argument or a record of another network");
  if (!ngc_same_shape(&dy->t, &rec->u.neg.mlp.y) ||
      (dh_all && (dh_all->t.ndim != 2 || dh_all->t.dim[0] != rec->u.neg.batch * rec->u.neg.positions ||
                  dh_all->t.dim[1] != net->net.nc)))
    return ngc_error(rec->tape->ctx, NEGCUT_ERR_SHAPE, "negcut_neggen_backward: wrong shapes");
  return ngc_neggen_backward(&net->net, rec->taps[0], &rec->tape->tape, &rec->u.neg, &dy->t,
                             dh_all ? &dh_all->t : NULL);
}
