/* The MLP heads: the projector (PatchSampleF, REFERENCE.md 3) and NEGCUT's
 * negative generator (REFERENCE.md 7). */
#include <stdio.h>
#include <string.h>

#include "net.h"

#define NGC_L2_EPS 1e-7f

static negcut_status add_mlp(ngc_net *net, int32_t l, int32_t in, int32_t nc) {
  char name[NGC_NAME_MAX];
  int64_t w0[2] = {nc, in}, w2[2] = {nc, nc}, b[1] = {nc};
  int32_t idx;
  snprintf(name, sizeof name, "mlp_%d.0.weight", (int)l);
  idx = ngc_net_add_param(net, name, 2, w0, 0);
  snprintf(name, sizeof name, "mlp_%d.0.bias", (int)l);
  if (idx < 0 || ngc_net_add_param(net, name, 1, b, 0) < 0) return NEGCUT_ERR_OUT_OF_MEMORY;
  snprintf(name, sizeof name, "mlp_%d.2.weight", (int)l);
  if (ngc_net_add_param(net, name, 2, w2, 0) < 0) return NEGCUT_ERR_OUT_OF_MEMORY;
  snprintf(name, sizeof name, "mlp_%d.2.bias", (int)l);
  if (ngc_net_add_param(net, name, 1, b, 0) < 0) return NEGCUT_ERR_OUT_OF_MEMORY;
  net->mlp_in[l] = in;
  net->mlp_w0[l] = idx;
  return NEGCUT_OK;
}

static negcut_status check_layers(negcut_ctx *ctx, int32_t n_layers, int32_t nc) {
  if (n_layers < 1 || n_layers > NGC_MAX_NCE_LAYERS)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%d NCE layers: 1..%d supported",
                     (int)n_layers, NGC_MAX_NCE_LAYERS);
  if (nc < 1)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "projection width %d", (int)nc);
  return NEGCUT_OK;
}

negcut_status ngc_projector_build(ngc_net *net, negcut_ctx *ctx, int32_t n_layers,
                                  const int32_t *channels, int32_t nc) {
  negcut_status st = check_layers(ctx, n_layers, nc);
  ngc_net_init(net, ctx, NGC_NET_PROJECTOR);
  net->n_mlp = n_layers;
  net->nc = nc;
  for (int32_t l = 0; l < n_layers && st == NEGCUT_OK; l++) {
    if (channels[l] < 1)
      return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "layer %d has %d channels", (int)l,
                       (int)channels[l]);
    st = add_mlp(net, l, channels[l], nc);
  }
  return st ? st : ngc_net_alloc_params(net);
}

negcut_status ngc_neggen_build(ngc_net *net, negcut_ctx *ctx, int32_t n_layers, int32_t nc,
                               int32_t z_dim) {
  negcut_status st = check_layers(ctx, n_layers, nc);
  ngc_net_init(net, ctx, NGC_NET_NEGGEN);
  net->n_mlp = n_layers;
  net->nc = nc;
  net->z_dim = z_dim;
  if (z_dim < 0) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "z_dim %d", (int)z_dim);
  for (int32_t l = 0; l < n_layers && st == NEGCUT_OK; l++) st = add_mlp(net, l, nc + z_dim, nc);
  return st ? st : ngc_net_alloc_params(net);
}

negcut_status ngc_mlp_forward(ngc_net *net, int32_t l, ngc_tape *tape, const ngc_tensor *x,
                              ngc_mlp_rec *rec) {
  negcut_ctx *ctx = tape->ctx;
  const ngc_param *p = &net->params[net->mlp_w0[l]];
  int64_t m = x->dim[0], dh[2] = {m, net->nc}, dn[1] = {m};
  negcut_status st;
  rec->x = *x;
  rec->x.owns = 0;
  st = ngc_tape_tensor(tape, &rec->h, 2, dh);
  if (!st) st = ngc_tape_tensor(tape, &rec->r, 2, dh);
  if (!st) st = ngc_tape_tensor(tape, &rec->o, 2, dh);
  if (!st) st = ngc_tape_tensor(tape, &rec->y, 2, dh);
  if (!st) st = ngc_tape_tensor(tape, &rec->norm, 1, dn);
  if (!st) st = ngc_linear_fwd(ctx, x, &p[0].value, &p[1].value, &rec->h);    // (M, nc)
  if (!st) st = ngc_act_fwd(ctx, NGC_ACT_RELU, 0.0f, &rec->h, &rec->r);        // (M, nc)
  if (!st) st = ngc_linear_fwd(ctx, &rec->r, &p[2].value, &p[3].value, &rec->o); // (M, nc)
  if (!st) st = ngc_l2norm_fwd(ctx, NGC_L2_EPS, &rec->o, &rec->y, &rec->norm);
  return st;
}

negcut_status ngc_mlp_backward(ngc_net *net, int32_t l, ngc_tape *tape, const ngc_mlp_rec *rec,
                               const ngc_tensor *dy, ngc_tensor *dx) {
  negcut_ctx *ctx = tape->ctx;
  ngc_param *p = &net->params[net->mlp_w0[l]];
  int g = net->requires_grad;
  ngc_tensor d_o, d_r, d_h;
  negcut_status st = ngc_tape_tensor(tape, &d_o, 2, rec->o.dim);
  if (!st) st = ngc_tape_tensor(tape, &d_r, 2, rec->r.dim);
  if (!st) st = ngc_tape_tensor(tape, &d_h, 2, rec->h.dim);
  if (!st) st = ngc_l2norm_bwd(ctx, NGC_L2_EPS, &rec->o, &rec->norm, dy, &d_o);
  if (!st)
    st = ngc_linear_bwd(ctx, &rec->r, &p[2].value, &d_o, &d_r, g ? &p[2].grad : NULL,
                        g ? &p[3].grad : NULL);
  if (!st) st = ngc_act_bwd(ctx, NGC_ACT_RELU, 0.0f, &rec->h, &rec->r, &d_r, &d_h);
  if (!st)
    st = ngc_linear_bwd(ctx, &rec->x, &p[0].value, &d_h, dx, g ? &p[0].grad : NULL,
                        g ? &p[1].grad : NULL);
  return st;
}

negcut_status ngc_projector_forward(ngc_net *net, int32_t l, ngc_tape *tape,
                                    const ngc_tensor *feat, const int64_t *ids, int64_t n_ids,
                                    ngc_proj_rec *rec) {
  int64_t hw = ngc_d(feat, 2) * ngc_d(feat, 3), n = ids ? n_ids : hw;
  if (n < 1 || n > hw)
    return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "projector: %lld patch ids for a feature map of %lld positions (1 to %lld)",
                     (long long)n, (long long)hw, (long long)hw);
  int64_t *own = ngc_tape_host(tape, (size_t)n * sizeof *own);
  int64_t dx[2] = {ngc_d(feat, 0) * n, ngc_d(feat, 1)};
  ngc_tensor x;
  negcut_status st;
  if (l < 0 || l >= net->n_mlp)
    return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "projector has no layer %d", (int)l);
  if (ngc_d(feat, 1) != net->mlp_in[l])
    return ngc_error(tape->ctx, NEGCUT_ERR_SHAPE, "projector layer %d expects %d channels, got %lld",
                     (int)l, (int)net->mlp_in[l], (long long)ngc_d(feat, 1));
  if (!own) return ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "projector: out of memory");
  for (int64_t i = 0; i < n; i++) own[i] = ids ? ids[i] : i;
  st = ngc_tape_tensor(tape, &x, 2, dx); // (B * n, C)
  if (!st) st = ngc_gather_fwd(tape->ctx, feat, own, n, &x);
  if (!st) st = ngc_projector_forward_rows(net, l, tape, &x, own, n, rec);
  rec->feat = feat;
  return st;
}

negcut_status ngc_projector_forward_rows(ngc_net *net, int32_t l, ngc_tape *tape,
                                         const ngc_tensor *rows, const int64_t *ids,
                                         int64_t n_ids, ngc_proj_rec *rec) {
  if (l < 0 || l >= net->n_mlp)
    return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "projector has no layer %d", (int)l);
  if (rows->ndim != 2 || rows->dim[1] != net->mlp_in[l] || n_ids < 1 || rows->dim[0] % n_ids)
    return ngc_error(tape->ctx, NEGCUT_ERR_SHAPE,
                     "projector layer %d: rows must be (B * %lld, %d)", (int)l,
                     (long long)n_ids, (int)net->mlp_in[l]);
  rec->feat = NULL;
  rec->ids = ids;
  rec->n_ids = n_ids;
  return ngc_mlp_forward(net, l, tape, rows, &rec->mlp);
}

negcut_status ngc_projector_backward(ngc_net *net, int32_t l, ngc_tape *tape,
                                     const ngc_proj_rec *rec, const ngc_tensor *dy,
                                     ngc_tensor *dfeat) {
  ngc_tensor dx;
  negcut_status st;
  if (!dfeat) return ngc_mlp_backward(net, l, tape, &rec->mlp, dy, NULL);
  st = ngc_projector_backward_rows(net, l, tape, rec, dy, &dx);
  if (!st) st = ngc_gather_bwd(tape->ctx, &dx, rec->ids, rec->n_ids, dfeat);
  return st;
}

negcut_status ngc_projector_backward_rows(ngc_net *net, int32_t l, ngc_tape *tape,
                                          const ngc_proj_rec *rec, const ngc_tensor *dy,
                                          ngc_tensor *drows) {
  negcut_status st = ngc_tape_tensor(tape, drows, 2, rec->mlp.x.dim);
  return st ? st : ngc_mlp_backward(net, l, tape, &rec->mlp, dy, drows);
}

negcut_status ngc_neggen_forward_mean(ngc_net *net, int32_t l, ngc_tape *tape, const ngc_tensor *mean,
                                      const ngc_tensor *z, ngc_neg_rec *rec) {
  negcut_ctx *ctx = tape->ctx;
  int64_t nc = net->nc, batch = mean->dim[0], s = batch > 0 ? z->dim[0] / batch : 0;
  negcut_status st;
  ngc_tensor rep;
  if (mean->ndim != 2 || mean->dim[1] != nc || batch < 1 || z->ndim != 2 ||
      z->dim[1] != net->z_dim || z->dim[0] != batch * s || s < 1)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE,
                     "negative generator: mean must be (B, %lld) and z (B*S, %d)", (long long)nc,
                     (int)net->z_dim);
  rec->batch = batch;
  rec->count = s;
  int64_t *zeros = ngc_tape_host(tape, (size_t)s * sizeof *zeros);
  if (!zeros) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "negative generator: out of memory");
  rec->zeros = zeros;
  /* The mean as a (B, nc, 1, 1) "image" whose one position is repeated S
   * times by a gather. */
  rec->mean = ngc_tensor_view(mean->be, mean->data, 4, (int64_t[4]){batch, nc, 1, 1});
  st = ngc_tape_tensor(tape, &rep, 2, (int64_t[2]){batch * s, nc});
  if (!st) st = ngc_tape_tensor(tape, &rec->cat, 2, (int64_t[2]){batch * s, nc + net->z_dim});
  if (!st) st = ngc_gather_fwd(ctx, &rec->mean, zeros, s, &rep);
  if (!st) st = ngc_concat_fwd(ctx, &rep, z, &rec->cat);
  if (!st) st = ngc_mlp_forward(net, l, tape, &rec->cat, &rec->mlp);
  return st;
}

negcut_status ngc_neggen_backward_mean(ngc_net *net, int32_t l, ngc_tape *tape,
                                       const ngc_neg_rec *rec, const ngc_tensor *dy,
                                       ngc_tensor *dmean) {
  negcut_ctx *ctx = tape->ctx;
  int64_t b = rec->batch, s = rec->count, nc = net->nc;
  ngc_tensor dcat, drep;
  negcut_status st;
  if (!dmean) return ngc_mlp_backward(net, l, tape, &rec->mlp, dy, NULL);
  st = ngc_tape_tensor(tape, &dcat, 2, rec->cat.dim);
  if (!st) st = ngc_tape_tensor(tape, &drep, 2, (int64_t[2]){b * s, nc});
  if (!st) st = ngc_mlp_backward(net, l, tape, &rec->mlp, dy, &dcat);
  if (!st) st = ngc_concat_bwd(ctx, &dcat, &drep, NULL); /* z gets no gradient */
  if (!st) {
    ngc_tensor dm4 = ngc_tensor_view(dmean->be, dmean->data, 4, (int64_t[4]){b, nc, 1, 1});
    st = ngc_gather_bwd(ctx, &drep, rec->zeros, s, &dm4);
  }
  return st;
}

negcut_status ngc_neggen_forward(ngc_net *net, int32_t l, ngc_tape *tape, const ngc_tensor *h_all,
                                 int64_t batch, const ngc_tensor *z, ngc_neg_rec *rec) {
  negcut_ctx *ctx = tape->ctx;
  int64_t nc = net->nc, p = batch > 0 ? h_all->dim[0] / batch : 0;
  ngc_tensor mean;
  negcut_status st;
  if (batch < 1 || h_all->ndim != 2 || h_all->dim[1] != nc || h_all->dim[0] != batch * p)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "negative generator: h_all must be (B*P, %lld)",
                     (long long)nc);
  ngc_tensor h3 = ngc_tensor_view(h_all->be, h_all->data, 3, (int64_t[3]){batch, p, nc}); // (B, P, nc)
  st = ngc_tape_tensor(tape, &mean, 2, (int64_t[2]){batch, nc});
  if (!st) st = ngc_mean_fwd(ctx, &h3, &mean); /* not re-normalised (REFERENCE.md 7) */
  if (!st) st = ngc_neggen_forward_mean(net, l, tape, &mean, z, rec);
  rec->positions = p;
  return st;
}

negcut_status ngc_neggen_backward(ngc_net *net, int32_t l, ngc_tape *tape, const ngc_neg_rec *rec,
                                  const ngc_tensor *dy, ngc_tensor *dh_all) {
  ngc_tensor dmean;
  negcut_status st;
  if (!dh_all) return ngc_neggen_backward_mean(net, l, tape, rec, dy, NULL);
  st = ngc_tape_tensor(tape, &dmean, 2, (int64_t[2]){rec->batch, net->nc});
  if (!st) st = ngc_neggen_backward_mean(net, l, tape, rec, dy, &dmean);
  if (!st) {
    ngc_tensor dh3 = ngc_tensor_view(dh_all->be, dh_all->data, 3,
                                     (int64_t[3]){rec->batch, rec->positions, net->nc});
    st = ngc_mean_bwd(tape->ctx, &dmean, &dh3);
  }
  return st;
}

/* The projector on every position of one image at a time, in the tape's
 * scratch: x (P, C), h, r, o (P, nc), a, b (P, nc) work, norm (P). */
typedef struct all_pos {
  ngc_tensor x, h, r, o, a, b, norm;
} all_pos;

/* 0, 1, ..., hw - 1 on the tape's host memory (NULL when out of memory). */
static int64_t *every_position(ngc_tape *tape, int64_t hw) {
  int64_t *ids = ngc_tape_host(tape, (size_t)hw * sizeof *ids);
  for (int64_t i = 0; ids && i < hw; i++) ids[i] = i;
  return ids;
}

/* ids: every_position(tape, H * W), made once by the caller. */
static negcut_status all_pos_forward(ngc_net *net, int32_t l, ngc_tape *tape, const ngc_tensor *feat,
                                     const int64_t *ids, int64_t img, all_pos *w) {
  negcut_ctx *ctx = tape->ctx;
  const ngc_param *p = &net->params[net->mlp_w0[l]];
  int64_t c = feat->dim[1], hw = feat->dim[2] * feat->dim[3], nc = net->nc;
  size_t need = (size_t)(hw * (2 * c + 5 * nc + 1));
  float *s = ngc_tape_scratch(tape, need * sizeof(float));
  negcut_status st;
  if (!s) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "projector: cannot allocate %zu floats", need);
  ngc_backend *be = tape->dev.be;
  w->x = ngc_tensor_view(be, s, 2, (int64_t[2]){hw, c});
  w->h = ngc_tensor_view(be, s + hw * c, 2, (int64_t[2]){hw, nc});
  w->r = ngc_tensor_view(be, s + hw * (c + nc), 2, (int64_t[2]){hw, nc});
  w->o = ngc_tensor_view(be, s + hw * (c + 2 * nc), 2, (int64_t[2]){hw, nc});
  w->a = ngc_tensor_view(be, s + hw * (c + 3 * nc), 2, (int64_t[2]){hw, nc});
  /* b has room for (hw, max(c, nc)): the backward's dx (hw, c) lands there too */
  w->b = ngc_tensor_view(be, s + hw * (c + 4 * nc), 2, (int64_t[2]){hw, nc});
  w->norm = ngc_tensor_view(be, s + hw * (2 * c + 5 * nc), 1, (int64_t[1]){hw});
  ngc_tensor one = ngc_tensor_view(feat->be, feat->data + img * c * hw, 4,
                                   (int64_t[4]){1, c, feat->dim[2], feat->dim[3]});
  one.layout = feat->layout; /* an image of a blocked batch is blocked */
  st = ngc_gather_fwd(ctx, &one, ids, hw, &w->x);
  if (!st) st = ngc_linear_fwd(ctx, &w->x, &p[0].value, &p[1].value, &w->h);
  if (!st) st = ngc_act_fwd(ctx, NGC_ACT_RELU, 0.0f, &w->h, &w->r);
  if (!st) st = ngc_linear_fwd(ctx, &w->r, &p[2].value, &p[3].value, &w->o);
  if (!st) st = ngc_l2norm_fwd(ctx, 1e-7f, &w->o, &w->a, &w->norm); /* a: the rows y */
  return st;
}

negcut_status ngc_projector_mean_forward(ngc_net *net, int32_t l, ngc_tape *tape,
                                         const ngc_tensor *feat, ngc_tensor *mean) {
  negcut_ctx *ctx = tape->ctx;
  int64_t b = feat->dim[0], hw = feat->dim[2] * feat->dim[3], nc = net->nc;
  negcut_status st = NEGCUT_OK;
  const int64_t *ids;
  if (feat->ndim != 4 || feat->dim[1] != net->mlp_in[l] || mean->ndim != 2 || mean->dim[0] != b ||
      mean->dim[1] != nc)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "projector mean: feature (B, %d, H, W) -> (B, %lld)",
                     (int)net->mlp_in[l], (long long)nc);
  if (!(ids = every_position(tape, hw)))
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "projector: out of memory");
  for (int64_t i = 0; i < b && !st; i++) {
    all_pos w;
    st = all_pos_forward(net, l, tape, feat, ids, i, &w);
    if (!st) {
      ngc_tensor y3 = ngc_tensor_view(w.a.be, w.a.data, 3, (int64_t[3]){1, hw, nc});
      ngc_tensor m = ngc_tensor_view(mean->be, mean->data + i * nc, 2, (int64_t[2]){1, nc});
      st = ngc_mean_fwd(ctx, &y3, &m);
    }
  }
  return st;
}

negcut_status ngc_projector_mean_backward(ngc_net *net, int32_t l, ngc_tape *tape,
                                          const ngc_tensor *feat, const ngc_tensor *dmean,
                                          ngc_tensor *dfeat) {
  negcut_ctx *ctx = tape->ctx;
  ngc_param *p = &net->params[net->mlp_w0[l]];
  int g = net->requires_grad;
  int64_t b = feat->dim[0], c = feat->dim[1], hw = feat->dim[2] * feat->dim[3], nc = net->nc;
  const int64_t *ids = every_position(tape, hw);
  negcut_status st = NEGCUT_OK;
  if (!ids) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "projector: out of memory");
  for (int64_t i = 0; i < b && !st; i++) {
    all_pos w;
    /* recompute this image's rows, then back through the mean: dy = dmean / P per row */
    st = all_pos_forward(net, l, tape, feat, ids, i, &w);
    ngc_tensor dm = ngc_tensor_view(dmean->be, dmean->data + i * nc, 2, (int64_t[2]){1, nc});
    ngc_tensor dy3 = ngc_tensor_view(w.b.be, w.b.data, 3, (int64_t[3]){1, hw, nc});
    ngc_tensor dx = ngc_tensor_view(w.b.be, w.b.data, 2, (int64_t[2]){hw, c});
    ngc_tensor one = ngc_tensor_view(dfeat->be, dfeat->data + i * c * hw, 4,
                                     (int64_t[4]){1, c, feat->dim[2], feat->dim[3]});
    one.layout = dfeat->layout;
    if (!st) st = ngc_mean_bwd(ctx, &dm, &dy3);                          // b = dy (P, nc)
    if (!st) st = ngc_l2norm_bwd(ctx, 1e-7f, &w.o, &w.norm, &w.b, &w.a);  // a = do
    if (!st)
      st = ngc_linear_bwd(ctx, &w.r, &p[2].value, &w.a, &w.b, g ? &p[2].grad : NULL,
                          g ? &p[3].grad : NULL);                          // b = dr
    if (!st) st = ngc_act_bwd(ctx, NGC_ACT_RELU, 0.0f, &w.h, &w.r, &w.b, &w.a); // a = dh
    if (!st)
      st = ngc_linear_bwd(ctx, &w.x, &p[0].value, &w.a, &dx, g ? &p[0].grad : NULL,
                          g ? &p[1].grad : NULL);                          // b = dx (P, C)
    if (!st) st = ngc_gather_bwd(ctx, &dx, ids, hw, &one);
  }
  return st;
}
