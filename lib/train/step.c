/* One training iteration (REFERENCE.md 4-7). Shapes: B images per domain,
 * L NCE layers, S patches per layer, nc projection width. */
#include <string.h>

#include "train.h"

static int is_negcut(const ngc_trainer *t) {
  return t->cfg.mode == NGC_MODE_NEGCUT || t->cfg.mode == NGC_MODE_FASTNEGCUT;
}

/* The generator's encoder on one batch, with the features at the NCE
 * layers; the record allows backpropagating into G. */
typedef struct encoding {
  const ngc_tensor *x; /* (B, C, H, W) */
  ngc_seq_rec rec;
  ngc_tensor feat[NGC_MAX_NCE_LAYERS]; /* (B, C_l, H_l, W_l) as used by the loss, or: */
  /* With ids[0] set before encode (keys of CUT and FastCUT): feat[l] holds
   * only the rows (B * n_ids[l], C_l) at the patch ids of the loss. */
  const int64_t *ids[NGC_MAX_NCE_LAYERS];
  int64_t n_ids[NGC_MAX_NCE_LAYERS];
} encoding;

/* record: keep every activation for a backward into G; without it only the
 * features are kept (an encoder pass nothing backpropagates into). */
static negcut_status encode(ngc_trainer *t, const ngc_tensor *x, int flip_back, int record,
                            encoding *e) {
  negcut_status st;
  const ngc_train_cfg *c = &t->cfg;
  e->x = x;
  if (!record) {
    if (flip_back && e->ids[0]) /* rows at patch ids have no W to flip */
      return ngc_error(t->ctx, NEGCUT_ERR_INTERNAL, "encode: cannot flip gathered rows");
    st = ngc_seq_features(&t->G, &t->tape, x, c->n_nce, c->nce_layers, e->ids[0] ? e->ids : NULL,
                          e->n_ids, e->feat);
    for (int32_t l = 0; l < c->n_nce && !st && flip_back; l++) st = ngc_hflip(t->ctx, &e->feat[l], &e->feat[l]);
    return st;
  }
  st = ngc_seq_encode(&t->G, &t->tape, x, c->n_nce, c->nce_layers, &e->rec);
  for (int32_t l = 0; l < c->n_nce && !st; l++) {
    const ngc_tensor *f = ngc_seq_module_act(&t->G, &e->rec, c->nce_layers[l]);
    e->feat[l] = *f;
    if (flip_back) { /* FastCUT: the query features of a flipped input are flipped back */
      st = ngc_tape_tensor_like(&t->tape, &e->feat[l], f);
      if (!st) st = ngc_hflip(t->ctx, f, &e->feat[l]);
    }
  }
  return st;
}

/* Backpropagates gradients g at the features into G; with flip_back the
 * features were flipped back (FastCUT), so the gradients are flipped onto
 * the activations they came from. dx (may be NULL) receives the gradient at
 * the encoder's input. */
static negcut_status encode_backward(ngc_trainer *t, const encoding *e, int flip_back,
                                     ngc_tap_grad *g, ngc_tensor *dx) {
  const ngc_train_cfg *c = &t->cfg;
  negcut_status st = NEGCUT_OK;
  for (int32_t l = 0; l < c->n_nce && !st && flip_back; l++) {
    const int64_t w = e->feat[l].dim[3];
    if (g[l].dense) {
      ngc_tensor *flipped = ngc_tape_host(&t->tape, sizeof *flipped);
      if (!flipped) return ngc_error(t->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "flip: out of memory");
      st = ngc_tape_tensor_like(&t->tape, flipped, g[l].dense);
      if (!st) st = ngc_hflip(t->ctx, g[l].dense, flipped);
      g[l].dense = flipped;
    } else { /* position h * W + w of the flipped feature is h * W + W - 1 - w */
      int64_t *ids = ngc_tape_host(&t->tape, (size_t)g[l].n_ids * sizeof *ids);
      if (!ids) return ngc_error(t->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "flip: out of memory");
      for (int64_t i = 0; i < g[l].n_ids; i++)
        ids[i] = g[l].ids[i] / w * w + (w - 1 - g[l].ids[i] % w);
      g[l].ids = ids;
    }
  }
  if (!st)
    st = ngc_seq_backward_taps(&t->G, &t->tape, &e->rec, NULL, c->n_nce, c->nce_layers, g, dx);
  return st;
}

/* One evaluation of the NCE loss between a source (keys) and a target
 * (queries) encoding: fresh patch ids (and, for NEGCUT, fresh noise). */
typedef struct nce_eval {
  ngc_proj_rec pk[NGC_MAX_NCE_LAYERS], pq[NGC_MAX_NCE_LAYERS];
  ngc_neg_rec neg[NGC_MAX_NCE_LAYERS];
  ngc_nce_rec nce[NGC_MAX_NCE_LAYERS];
} nce_eval;

/* F_ (NEGCUT's EMA projector) on every position of each source feature,
 * averaged per image: (B, nc), what the negative generator reads. It does
 * not change within an iteration, so it is computed once per source and
 * shared by the N step and the G step; the rows themselves are not kept
 * (the backward through the negatives recomputes them). */
typedef struct ema_proj {
  ngc_tensor mean[NGC_MAX_NCE_LAYERS];
} ema_proj;

static negcut_status project_all(ngc_trainer *t, const encoding *src, ema_proj *p) {
  negcut_status st = NEGCUT_OK;
  int64_t shape[2] = {src->x->dim[0], t->cfg.netf_nc};
  for (int32_t l = 0; l < t->cfg.n_nce && !st; l++) {
    st = ngc_tape_tensor(&t->tape, &p->mean[l], 2, shape);
    if (!st) st = ngc_projector_mean_forward(&t->F_ema, l, &t->tape, &src->feat[l], &p->mean[l]);
  }
  return st;
}

/* The loss values of a step are for reporting only. Each stays in its (1)
 * device tensor until the whole step is enqueued; then all are read at
 * once (one wait on a GPU instead of one per loss) into these raw values,
 * and ngc_train_losses is computed from them. */
#define MAX_READS (6 * NGC_MAX_NCE_LAYERS + 3)
/* All of them in one block of tape scalars: one download per step. */
_Static_assert(MAX_READS <= NGC_TAPE_SCALARS, "a step's loss values fill more than one block");
typedef struct step_raw {
  float g_nce[2][NGC_MAX_NCE_LAYERS]; /* G step: per call, per layer */
  float n_nce[2][NGC_MAX_NCE_LAYERS]; /* N step */
  float div[2][NGC_MAX_NCE_LAYERS];   /* N step diversity, per call with it */
  float d_fake, d_real, g_gan;
  ngc_tensor src[MAX_READS]; /* (1) device tensors, valid until the tape resets */
  float *dst[MAX_READS];
  int n;
} step_raw;

static negcut_status read_later(ngc_trainer *t, step_raw *raw, const ngc_tensor *value,
                                float *dst) {
  if (raw->n == MAX_READS)
    return ngc_error(t->ctx, NEGCUT_ERR_INTERNAL, "step: more than %d loss values", MAX_READS);
  raw->src[raw->n] = *value;
  raw->dst[raw->n++] = dst;
  return NEGCUT_OK;
}

/* The weight of each layer's diversity term in the N step's objective. */
static float div_weight(const ngc_train_cfg *c, int calls) {
  return c->lambda_ms / (float)c->n_nce / (c->diversity_all ? (float)calls : 1.0f);
}

/* lambda_NCE * mean over layers of one NCE evaluation's per-layer values. */
static float nce_value(const ngc_train_cfg *c, const float *per_layer) {
  double total = 0.0;
  for (int32_t l = 0; l < c->n_nce; l++) total += per_layer[l];
  return (float)(c->lambda_nce * total / c->n_nce);
}

/* Reads every deferred value, then the reported losses. */
static negcut_status report_losses(ngc_trainer *t, step_raw *raw, int calls, int neg) {
  const ngc_train_cfg *c = &t->cfg;
  ngc_train_losses *o = &t->losses;
  negcut_status st = ngc_tape_read_scalars(&t->tape, raw->n, raw->src, raw->dst);
  if (st) return st;
  o->d_fake = raw->d_fake;
  o->d_real = raw->d_real;
  o->d = 0.5f * (o->d_fake + o->d_real);
  o->g_gan = raw->g_gan * c->lambda_gan;
  o->nce_x = nce_value(c, raw->g_nce[0]);
  o->nce_y = calls == 2 ? nce_value(c, raw->g_nce[1]) : 0.0f;
  o->g = o->g_gan + (calls == 2 ? 0.5f * (o->nce_x + o->nce_y) : o->nce_x);
  if (neg) {
    double div_total = 0.0;
    const float w_div = div_weight(c, calls);
    for (int i = 0; i < calls; i++)
      if (c->diversity_all || i == calls - 1)
        for (int32_t l = 0; l < c->n_nce; l++) div_total -= (double)w_div * raw->div[i][l];
    const float v0 = nce_value(c, raw->n_nce[0]), v1 = calls == 2 ? nce_value(c, raw->n_nce[1]) : 0.0f;
    o->div = (float)div_total;
    o->n = -(calls == 2 ? 0.5f * (v0 + v1) : v0) + o->div;
  }
  return NEGCUT_OK;
}

/* The patch ids of layer l (hw positions): min(hw, num_patches) of them,
 * in tape host memory. */
static negcut_status draw_layer_ids(ngc_trainer *t, int32_t l, int64_t hw, const int64_t **ids,
                                    int64_t *n) {
  *n = hw < t->cfg.num_patches ? hw : t->cfg.num_patches;
  int64_t *own = ngc_tape_host(&t->tape, (size_t)*n * sizeof *own);
  if (!own) return ngc_error(t->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "nce: out of memory");
  *ids = own;
  return t->rand.patch_ids(t->rand.user, l, hw, *n, own);
}

/* The patch ids of one NCE evaluation on x drawn ahead, into e (keys that
 * need only those rows): the same draws, in the same order, as
 * nce_forward makes when it draws them itself. */
static negcut_status draw_ids(ngc_trainer *t, const ngc_tensor *x, encoding *e) {
  const ngc_train_cfg *c = &t->cfg;
  negcut_status st = NEGCUT_OK;
  for (int32_t l = 0; l < c->n_nce && !st; l++) {
    int64_t out[4];
    st = ngc_seq_shape(t->ctx, &t->G, x->dim, c->nce_layers[l], out);
    if (!st) st = draw_layer_ids(t, l, out[2] * out[3], &e->ids[l], &e->n_ids[l]);
  }
  return st;
}

/* One NCE evaluation; its per-layer values land in per_layer[] when the
 * step reports (read_later). Patch ids: the ones src was encoded at, else
 * drawn here. */
static negcut_status nce_forward(ngc_trainer *t, const encoding *src, const encoding *tgt,
                                 const ema_proj *hp, nce_eval *ev, step_raw *raw,
                                 float *per_layer) {
  const ngc_train_cfg *c = &t->cfg;
  int64_t b = src->x->dim[0];
  negcut_status st = NEGCUT_OK;
  for (int32_t l = 0; l < c->n_nce && !st; l++) {
    const int64_t *ids = src->ids[l];
    int64_t n = src->n_ids[l];
    if (ids) {
      st = ngc_projector_forward_rows(&t->F, l, &t->tape, &src->feat[l], ids, n, &ev->pk[l]);
    } else {
      st = draw_layer_ids(t, l, tgt->feat[l].dim[2] * tgt->feat[l].dim[3], &ids, &n);
      if (!st) st = ngc_projector_forward(&t->F, l, &t->tape, &src->feat[l], ids, n, &ev->pk[l]);
    }
    if (!st) st = ngc_projector_forward(&t->F, l, &t->tape, &tgt->feat[l], ids, n, &ev->pq[l]);
    const ngc_tensor *negs = NULL;
    if (!st && hp) {
      int64_t count = b * c->num_patches;
      ngc_tensor z;
      float *host = ngc_tape_host(&t->tape, (size_t)(count * c->z_dim) * sizeof *host);
      if (!host) return ngc_error(t->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "noise: out of memory");
      st = t->rand.noise(t->rand.user, l, count * c->z_dim, host);
      if (!st) st = ngc_tape_tensor(&t->tape, &z, 2, (int64_t[2]){count, c->z_dim});
      if (!st) st = t->ctx->be->ops.upload(t->ctx->be, z.data, host, (size_t)ngc_numel(&z) * sizeof(float));
      if (!st) st = ngc_neggen_forward_mean(&t->N, l, &t->tape, &hp->mean[l], &z, &ev->neg[l]);
      negs = &ev->neg[l].mlp.y;
    }
    if (!st)
      st = ngc_nce_forward(&t->tape, &ev->pq[l].mlp.y, &ev->pk[l].mlp.y, negs, b, c->nce_t, &ev->nce[l]);
    if (!st) st = read_later(t, raw, &ev->nce[l].value, &per_layer[l]);
  }
  return st;
}

/* Backward of weight * NCE (weight includes lambda_NCE / L and the 0.5 of
 * NCE_both) into F and G through the queries, and for NEGCUT through the
 * negatives into G's encoder of the source (the reference's undetached n). */
static negcut_status nce_backward(ngc_trainer *t, const encoding *src, const encoding *tgt,
                                  int flip_back, const ema_proj *hp, const nce_eval *ev,
                                  float weight, ngc_tensor *dtgt) {
  const ngc_train_cfg *c = &t->cfg;
  /* The queries' gradients stay rows at the patch ids (ngc_tap_grad); the
   * negatives' reach every position of the keys' features. */
  ngc_tensor dq, drows_q[NGC_MAX_NCE_LAYERS], dfeat_k[NGC_MAX_NCE_LAYERS];
  ngc_tap_grad gq[NGC_MAX_NCE_LAYERS], gk[NGC_MAX_NCE_LAYERS];
  int through_negs = hp && !c->detach_negatives;
  negcut_status st = NEGCUT_OK;
  for (int32_t l = 0; l < c->n_nce && !st; l++) {
    ngc_tensor dneg, dmean;
    st = ngc_tape_tensor(&t->tape, &dq, 2, ev->pq[l].mlp.y.dim);
    if (!st && through_negs) st = ngc_tape_tensor(&t->tape, &dneg, 2, ev->neg[l].mlp.y.dim);
    if (!st) st = ngc_nce_backward(&t->tape, &ev->nce[l], weight, &dq, through_negs ? &dneg : NULL);
    if (!st) st = ngc_projector_backward_rows(&t->F, l, &t->tape, &ev->pq[l], &dq, &drows_q[l]);
    gq[l] = (ngc_tap_grad){.rows = &drows_q[l], .ids = ev->pq[l].ids, .n_ids = ev->pq[l].n_ids};
    if (!st && through_negs) {
      st = ngc_tape_tensor(&t->tape, &dmean, 2, hp->mean[l].dim);
      if (!st) st = ngc_tape_tensor_like(&t->tape, &dfeat_k[l], &src->feat[l]);
      if (!st) st = ngc_neggen_backward_mean(&t->N, l, &t->tape, &ev->neg[l], &dneg, &dmean);
      if (!st) st = ngc_projector_mean_backward(&t->F_ema, l, &t->tape, &src->feat[l], &dmean, &dfeat_k[l]);
      gk[l] = (ngc_tap_grad){.dense = &dfeat_k[l]};
    }
  }
  if (!st) st = encode_backward(t, tgt, flip_back, gq, dtgt);
  if (!st && through_negs) st = encode_backward(t, src, 0, gk, NULL);
  return st;
}

static negcut_status upload(ngc_trainer *t, ngc_tensor *dst, const float *src, size_t count) {
  return t->ctx->be->ops.upload(t->ctx->be, dst->data, src, count * sizeof(float));
}

/* The first or second B images of a (2B, C, H, W) tensor. */
static ngc_tensor half_view(const ngc_tensor *x, int64_t b, int second) {
  int64_t d[4] = {b, x->dim[1], x->dim[2], x->dim[3]};
  ngc_tensor v =
      ngc_tensor_view(x->be, x->data + (second ? b * x->dim[1] * x->dim[2] * x->dim[3] : 0), 4, d);
  v.layout = x->layout; /* batch slices keep either layout */
  return v;
}

/* Data parallelism (ngc_train_cfg.world): net's gradients become their
 * mean over the ranks, before its optimiser update. With allreduce_host
 * the function sums a host copy, which goes back to the device after. */
static negcut_status reduce_grads(ngc_trainer *t, ngc_net *net) {
  const ngc_train_cfg *c = &t->cfg;
  negcut_ctx *ctx = t->ctx;
  ngc_backend *be = ctx->be;
  if (c->world <= 1) return NEGCUT_OK;
  const size_t n = (size_t)ngc_numel(&net->grads), bytes = n * sizeof(float);
  float *data = net->grads.data;
  negcut_status st;
  if (c->allreduce_host) {
    st = ngc_xfer_buf_grow(be, &t->reduce_buf, n, "trainer (allreduce's host copy)");
    if (st) return st;
    data = t->reduce_buf.data;
    st = be->ops.download(be, data, net->grads.data, bytes); /* waits for the gradients */
  } else {
    st = be->ops.sync(be);
  }
  if (st) return st;
  if (c->allreduce(data, n, c->allreduce_user) != 0)
    return ngc_error(ctx, NEGCUT_ERR_IO,
                     "trainer: the allreduce function failed (rank %d of %d, %zu floats)",
                     (int)c->rank, (int)c->world, n);
  if (c->allreduce_host) {
    st = be->ops.upload(be, net->grads.data, data, bytes);
    if (st) return st;
  }
  return ngc_axpby(ctx, 1.0f / (float)c->world, &net->grads, 0.0f, &net->grads);
}

static negcut_status d_step(ngc_trainer *t, const ngc_tensor *fake_b, const ngc_tensor *real_b,
                            double lr, step_raw *raw) {
  ngc_seq_rec rf, rr;
  ngc_gan_rec gf, gr;
  ngc_tensor pf, pr, dpf, dpr;
  int64_t out[4];
  negcut_status st = ngc_seq_shape(t->ctx, &t->D, fake_b->dim, -1, out);
  if (!st) st = ngc_tape_tensor(&t->tape, &dpf, 4, out);
  if (!st) st = ngc_tape_tensor(&t->tape, &dpr, 4, out);
  if (!st) st = ngc_seq_forward(&t->D, &t->tape, fake_b, -1, &rf, NULL); /* fake_B detached */
  if (!st) {
    pf = rf.acts[rf.n_run];
    st = ngc_gan_loss_forward(&t->tape, t->cfg.gan_mode, &pf, 0, &gf);
  }
  if (!st) st = ngc_seq_forward(&t->D, &t->tape, real_b, -1, &rr, NULL);
  if (!st) {
    pr = rr.acts[rr.n_run];
    st = ngc_gan_loss_forward(&t->tape, t->cfg.gan_mode, &pr, 1, &gr);
  }
  if (!st) st = read_later(t, raw, &gf.value, &raw->d_fake);
  if (!st) st = read_later(t, raw, &gr.value, &raw->d_real);
  t->D.requires_grad = 1;
  if (!st) st = ngc_net_zero_grad(&t->D);
  if (!st) st = ngc_gan_loss_backward(&t->tape, &gf, 0.5f, &dpf);
  if (!st) st = ngc_seq_backward(&t->D, &t->tape, &rf, &dpf, 0, NULL, NULL, NULL);
  if (!st) st = ngc_gan_loss_backward(&t->tape, &gr, 0.5f, &dpr);
  if (!st) st = ngc_seq_backward(&t->D, &t->tape, &rr, &dpr, 0, NULL, NULL, NULL);
  if (!st) st = reduce_grads(t, &t->D);
  if (!st) st = ngc_adam_update(t->ctx, &t->opt_d, lr);
  return st;
}

/* NEGCUT's adversarial step: N maximises the contrastive loss (q and k
 * detached) and the diversity of its negatives. Gradients reach only N. */
static negcut_status n_step(ngc_trainer *t, const encoding *src[2], const encoding *tgt[2],
                            const ema_proj *hp[2], int calls, double lr, step_raw *raw) {
  const ngc_train_cfg *c = &t->cfg;
  nce_eval *ev = ngc_tape_host(&t->tape, 2 * sizeof *ev);
  ngc_div_rec *div = ngc_tape_host(&t->tape, 2 * NGC_MAX_NCE_LAYERS * sizeof *div);
  float w_nce = -(calls == 2 ? 0.5f : 1.0f) * c->lambda_nce / (float)c->n_nce;
  negcut_status st = ev && div ? NEGCUT_OK
                               : ngc_error(t->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "n step: out of memory");
  for (int i = 0; i < calls && !st; i++)
    st = nce_forward(t, src[i], tgt[i], hp[i], &ev[i], raw, raw->n_nce[i]);
  t->N.requires_grad = 1;
  if (!st) st = ngc_net_zero_grad(&t->N);
  for (int i = 0; i < calls && !st; i++) {
    /* the diversity term: the last call's negatives (reference) or all */
    int with_div = c->diversity_all || i == calls - 1;
    const float w_div = div_weight(c, calls);
    for (int32_t l = 0; l < c->n_nce && !st; l++) {
      ngc_tensor dneg, ddiv;
      const ngc_tensor *negs = &ev[i].neg[l].mlp.y;
      st = ngc_tape_tensor(&t->tape, &dneg, 2, negs->dim);
      if (!st) st = ngc_nce_backward(&t->tape, &ev[i].nce[l], w_nce, NULL, &dneg);
      if (!st && with_div) {
        ngc_div_rec *d = &div[i * NGC_MAX_NCE_LAYERS + l];
        st = ngc_diversity_forward(&t->tape, negs, src[i]->x->dim[0], d);
        if (!st) st = read_later(t, raw, &d->value, &raw->div[i][l]);
        if (!st) st = ngc_tape_tensor(&t->tape, &ddiv, 2, negs->dim);
        if (!st) st = ngc_diversity_backward(&t->tape, d, w_div, &ddiv);
        if (!st) st = ngc_axpby(t->ctx, 1.0f, &ddiv, 1.0f, &dneg);
      }
      if (!st) st = ngc_neggen_backward_mean(&t->N, l, &t->tape, &ev[i].neg[l], &dneg, NULL);
    }
  }
  if (!st) st = reduce_grads(t, &t->N);
  if (!st) st = ngc_adam_update(t->ctx, &t->opt_n, lr);
  t->N.requires_grad = 0;
  return st;
}

/* Everything an iteration asks of the device, on a tape just reset: every
 * op is enqueued, nothing is read back. *raw_out: the deferred loss reads. */
static negcut_status step_run(ngc_trainer *t, const float *real_a, const float *real_b, int64_t h,
                              int64_t w, double lr, int flipped, step_raw **raw_out) {
  const ngc_train_cfg *c = &t->cfg;
  negcut_ctx *ctx = t->ctx;
  int64_t b = c->batch, ch = c->g.input_nc, img = ch * h * w;
  int idt = c->nce_idt, neg = is_negcut(t), calls = idt ? 2 : 1;
  ngc_tensor real, real_in, fake, dfake, real_a_t, real_b_t, fake_b, idt_b, pred, dpred, dfb;
  ngc_seq_rec rg, rd;
  ngc_gan_rec gg;
  encoding enc_src[2], enc_tgt[2];
  ema_proj hp[2];
  nce_eval *ev;
  step_raw *raw;
  int64_t dshape[4];
  negcut_status st;

  memset(enc_src, 0, sizeof enc_src);
  memset(enc_tgt, 0, sizeof enc_tgt);
  ev = ngc_tape_host(&t->tape, 2 * sizeof *ev);
  raw = ngc_tape_host(&t->tape, sizeof *raw);
  if (!ev || !raw) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "step: out of memory");
  *raw_out = raw;
  /* real = cat(real_A, real_B) along the batch when the identity loss is on */
  st = ngc_tape_tensor(&t->tape, &real, 4, (int64_t[4]){2 * b, ch, h, w});
  if (!st) st = upload(t, &real, real_a, (size_t)(b * img));
  if (!st) {
    ngc_tensor second = half_view(&real, b, 1);
    st = upload(t, &second, real_b, (size_t)(b * img));
  }
  if (st) return st;
  real_a_t = half_view(&real, b, 0);
  real_b_t = half_view(&real, b, 1);
  real_in = idt ? real : real_a_t;
  if (flipped) {
    ngc_tensor f;
    st = ngc_tape_tensor(&t->tape, &f, 4, real_in.dim);
    if (!st) st = ngc_hflip(ctx, &real_in, &f);
    real_in = f;
  }
  /* G forward: fake = G(real) (nB, C_out, H, W) */
  if (!st) st = ngc_seq_forward(&t->G, &t->tape, &real_in, -1, &rg, NULL);
  if (st) return st;
  fake = rg.acts[rg.n_run];
  t->last_real = real;
  t->last_fake = fake;
  fake_b = half_view(&fake, b, 0);
  idt_b = half_view(&fake, b, 1);

  /* ---- D step */
  st = d_step(t, &fake_b, &real_b_t, lr, raw);

  /* ---- encoders shared by the N step and the G step */
  const encoding *src[2] = {&enc_src[0], &enc_src[1]}, *tgt[2] = {&enc_tgt[0], &enc_tgt[1]};
  const ema_proj *hps[2] = {NULL, NULL};
  for (int i = 0; i < calls && !st; i++) {
    /* The keys are detached: G's encoder of the source gets a gradient only
     * through NEGCUT's undetached negatives. */
    /* CUT and FastCUT use the keys only at the patch ids of the G step's
     * NCE: drawn now, gathered at encoding time (not whole feature maps). */
    const ngc_tensor *key_in = i ? &real_b_t : &real_a_t;
    if (!neg) st = draw_ids(t, key_in, &enc_src[i]);
    if (!st) st = encode(t, key_in, 0, neg && !c->detach_negatives, &enc_src[i]);
    if (!st) st = encode(t, i ? &idt_b : &fake_b, flipped, 1, &enc_tgt[i]);
    if (!st && neg) {
      st = project_all(t, &enc_src[i], &hp[i]);
      hps[i] = &hp[i];
    }
  }

  /* ---- N step */
  if (!st && neg) st = n_step(t, src, tgt, hps, calls, lr, raw);

  /* ---- G + F step */
  t->D.requires_grad = 0;
  if (!st) st = ngc_seq_shape(ctx, &t->D, fake_b.dim, -1, dshape);
  if (!st) st = ngc_tape_tensor(&t->tape, &dpred, 4, dshape);
  if (!st) st = ngc_seq_forward(&t->D, &t->tape, &fake_b, -1, &rd, NULL);
  if (!st) {
    pred = rd.acts[rd.n_run];
    st = ngc_gan_loss_forward(&t->tape, c->gan_mode, &pred, 1, &gg);
  }
  if (!st) st = read_later(t, raw, &gg.value, &raw->g_gan);
  for (int i = 0; i < calls && !st; i++)
    st = nce_forward(t, src[i], tgt[i], hps[i], &ev[i], raw, raw->g_nce[i]);

  if (!st) st = ngc_net_zero_grad(&t->G);
  if (!st) st = ngc_net_zero_grad(&t->F);
  if (!st) st = ngc_tape_tensor(&t->tape, &dfake, 4, fake.dim);
  if (!st) st = ngc_fill(ctx, &dfake, 0.0f);
  dfb = half_view(&dfake, b, 0);
  if (!st) st = ngc_gan_loss_backward(&t->tape, &gg, c->lambda_gan, &dpred);
  if (!st) st = ngc_seq_backward(&t->D, &t->tape, &rd, &dpred, 0, NULL, NULL, &dfb);
  for (int i = 0; i < calls && !st; i++) {
    ngc_tensor dslice = half_view(&dfake, b, i), dt;
    float weight = (calls == 2 ? 0.5f : 1.0f) * c->lambda_nce / (float)c->n_nce;
    st = ngc_tape_tensor(&t->tape, &dt, 4, dslice.dim);
    if (!st) st = nce_backward(t, src[i], tgt[i], flipped, hps[i], &ev[i], weight, &dt);
    if (!st) st = ngc_axpby(ctx, 1.0f, &dt, 1.0f, &dslice);
  }
  if (!st) st = ngc_seq_backward(&t->G, &t->tape, &rg, &dfake, 0, NULL, NULL, NULL);
  if (!st) st = reduce_grads(t, &t->G);
  if (!st) st = reduce_grads(t, &t->F);
  if (!st) st = ngc_adam_update(ctx, &t->opt_g, lr);
  if (!st) st = ngc_adam_update(ctx, &t->opt_f, lr);
  if (!st && neg) st = ngc_ema_nets(ctx, &t->F_ema, &t->F, 0.9f);
  return st;
}

/* ------------------------------------------------------- CUDA graphs
 * A step whose tape has settled (ngc_graph_cache, net.h) is recorded once
 * per image size and flip state, then replayed: step_run makes every call
 * again, for the host's part (random draws, Adam's step counters, the
 * images, ids, noise and scalars the device needs), while the backend
 * enqueues nothing; then the recording is launched. If a recording
 * or a replay fails, the step runs unrecorded from the same host state
 * (the caller's random source cannot be rewound: with one, no graphs). */

/* The host state step_run changes besides the tape. */
typedef struct step_rewind {
  ngc_philox patch, noise;
  int64_t adam[4];
  int32_t d_grad, n_grad;
} step_rewind;

static void rewind_save(const ngc_trainer *t, step_rewind *r) {
  r->patch = t->rng_patch;
  r->noise = t->rng_noise;
  r->adam[0] = t->opt_g.step;
  r->adam[1] = t->opt_d.step;
  r->adam[2] = t->opt_f.step;
  r->adam[3] = t->opt_n.step;
  r->d_grad = t->D.requires_grad;
  r->n_grad = t->N.requires_grad;
}

static void rewind_to(ngc_trainer *t, const step_rewind *r) {
  t->rng_patch = r->patch;
  t->rng_noise = r->noise;
  t->opt_g.step = r->adam[0];
  t->opt_d.step = r->adam[1];
  t->opt_f.step = r->adam[2];
  t->opt_n.step = r->adam[3];
  t->D.requires_grad = r->d_grad;
  t->N.requires_grad = r->n_grad;
}

typedef struct step_args {
  ngc_trainer *t;
  const float *real_a, *real_b;
  int64_t h, w;
  double lr;
  int flipped;
  step_raw **raw;
} step_args;

static negcut_status run_args(const void *arg) {
  const step_args *a = arg;
  return step_run(a->t, a->real_a, a->real_b, a->h, a->w, a->lr, a->flipped, a->raw);
}

/* Records step_run and launches the recording; *launched once it was
 * handed to the device (after that the step must not run again). */
static negcut_status step_record(const step_args *a, const ngc_graph_key *key, int *launched) {
  ngc_trainer *t = a->t;
  ngc_backend *be = t->ctx->be;
  void *g = NULL;
  negcut_status st = ngc_graph_record(&t->graphs, be, &t->tape, key, 1, run_args, a, &g);
  if (st) return st;
  *launched = 1;
  t->graphs.n_replayed++;
  return be->ops.graph_launch(be, g);
}

/* Runs step_run's host part again for recording g, then launches g. */
static negcut_status step_replay(const step_args *a, void *g, const ngc_graph_key *key,
                                 int *launched) {
  ngc_trainer *t = a->t;
  ngc_backend *be = t->ctx->be;
  ngc_graph_key after;
  negcut_status st = be->ops.graph_replay_begin(be, g);
  if (st) return st;
  const negcut_status ran = run_args(a);
  st = be->ops.graph_replay_end(be, ran == NEGCUT_OK);
  if (!st) st = ran;
  ngc_graph_key_of(&t->tape, key->shape, &after);
  if (!st && memcmp(key, &after, sizeof after))
    st = ngc_error(t->ctx, NEGCUT_ERR_INTERNAL, "step graph: the replayed step moved the tape");
  if (!st && t->graphs.fault) {
    t->graphs.fault = 0;
    st = ngc_error(t->ctx, NEGCUT_ERR_INTERNAL, "step graph: replay refused (a test's fault)");
  }
  if (st) return st;
  *launched = 1;
  t->graphs.n_replayed++;
  return be->ops.graph_launch(be, g);
}

negcut_status ngc_train_step(ngc_trainer *t, const float *real_a, const float *real_b, int64_t h,
                             int64_t w, double lr) {
  const ngc_train_cfg *c = &t->cfg;
  ngc_backend *be = t->ctx->be;
  const int flipped = c->flip_equivariance ? t->rand.flip(t->rand.user) : 0;
  const int64_t shape[4] = {c->batch, h, w, flipped};
  const int graphs = !t->eager && be->ops.graph_replay_begin && ngc_trainer_rand_rewindable(t);
  ngc_graph_key key, after;
  step_raw *raw = NULL;
  step_rewind rw;
  void *g = NULL;
  int launched = 0;
  const step_args args = {t, real_a, real_b, h, w, lr, flipped, &raw};
  ngc_error_clear(t->ctx);
  negcut_status st = ngc_tape_reset(&t->tape);
  if (st) return ngc_error(t->ctx, st, "step: cannot reset the tape (out of memory)");
  ngc_graph_key_of(&t->tape, shape, &key);
  const ngc_graph_plan plan = graphs ? ngc_graph_lookup(&t->graphs, be, &key, &g) : NGC_GRAPH_RUN;
  if (plan == NGC_GRAPH_RUN) {
    st = run_args(&args);
    ngc_graph_key_of(&t->tape, shape, &after);
    if (!st && graphs) ngc_graph_ran(&t->graphs, be, &after);
  } else {
    rewind_save(t, &rw);
    st = plan == NGC_GRAPH_RECORD ? step_record(&args, &key, &launched)
                                  : step_replay(&args, g, &key, &launched);
    if (st && launched) { /* the device has the step (or failed on it): no second run */
      ngc_graph_off(&t->graphs, t->ctx);
      return ngc_error(t->ctx, st, "%s", t->graphs.why);
    }
    if (st) { /* nothing was launched: unrecorded from now on, from the same host state */
      ngc_graph_off(&t->graphs, t->ctx);
      rewind_to(t, &rw);
      st = ngc_tape_reset(&t->tape);
      if (st) return ngc_error(t->ctx, st, "step: cannot reset the tape (out of memory)");
      st = run_args(&args);
    }
  }
  if (!st) st = report_losses(t, raw, c->nce_idt ? 2 : 1, is_negcut(t));
  if (!st) t->iteration++;
  return st;
}
