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
  return st;
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
  return st;
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
  rec->feat = feat;
  rec->ids = own;
  rec->n_ids = n;
  st = ngc_tape_tensor(tape, &x, 2, dx); // (B * n, C)
  if (!st) st = ngc_gather_fwd(tape->ctx, feat, own, n, &x);
  if (!st) st = ngc_mlp_forward(net, l, tape, &x, &rec->mlp);
  return st;
}

negcut_status ngc_projector_backward(ngc_net *net, int32_t l, ngc_tape *tape,
                                     const ngc_proj_rec *rec, const ngc_tensor *dy,
                                     ngc_tensor *dfeat) {
  ngc_tensor dx;
  negcut_status st;
  if (!dfeat) return ngc_mlp_backward(net, l, tape, &rec->mlp, dy, NULL);
  st = ngc_tape_tensor(tape, &dx, 2, rec->mlp.x.dim);
  if (!st) st = ngc_mlp_backward(net, l, tape, &rec->mlp, dy, &dx);
  if (!st) st = ngc_gather_bwd(tape->ctx, &dx, rec->ids, rec->n_ids, dfeat);
  return st;
}

negcut_status ngc_neggen_forward(ngc_net *net, int32_t l, ngc_tape *tape, const ngc_tensor *h_all,
                                 int64_t batch, const ngc_tensor *z, ngc_neg_rec *rec) {
  negcut_ctx *ctx = tape->ctx;
  int64_t nc = net->nc, s = batch > 0 ? z->dim[0] / batch : 0;
  int64_t p = batch > 0 ? h_all->dim[0] / batch : 0;
  negcut_status st;
  ngc_tensor h3, rep;
  if (batch < 1 || h_all->ndim != 2 || h_all->dim[1] != nc || h_all->dim[0] != batch * p ||
      z->ndim != 2 || z->dim[1] != net->z_dim || z->dim[0] != batch * s || s < 1)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE,
                     "negative generator: h_all must be (B*P, %lld) and z (B*S, %d)",
                     (long long)nc, (int)net->z_dim);
  rec->batch = batch;
  rec->positions = p;
  rec->count = s;
  int64_t *zeros = ngc_tape_host(tape, (size_t)s * sizeof *zeros);
  if (!zeros) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "negative generator: out of memory");
  rec->zeros = zeros;
  h3 = ngc_tensor_view(h_all->be, h_all->data, 3, (int64_t[3]){batch, p, nc}); // (B, P, nc)
  st = ngc_tape_tensor(tape, &rec->mean, 4, (int64_t[4]){batch, nc, 1, 1});
  if (!st) st = ngc_tape_tensor(tape, &rep, 2, (int64_t[2]){batch * s, nc});
  if (!st) st = ngc_tape_tensor(tape, &rec->cat, 2, (int64_t[2]){batch * s, nc + net->z_dim});
  if (!st) {
    ngc_tensor mean2 = ngc_tensor_view(rec->mean.be, rec->mean.data, 2, (int64_t[2]){batch, nc});
    st = ngc_mean_fwd(ctx, &h3, &mean2);
  }
  /* Repeat the mean S times: a gather of position 0 of a 1x1 "image". */
  if (!st) st = ngc_gather_fwd(ctx, &rec->mean, zeros, s, &rep);
  if (!st) st = ngc_concat_fwd(ctx, &rep, z, &rec->cat);
  if (!st) st = ngc_mlp_forward(net, l, tape, &rec->cat, &rec->mlp);
  return st;
}

negcut_status ngc_neggen_backward(ngc_net *net, int32_t l, ngc_tape *tape, const ngc_neg_rec *rec,
                                  const ngc_tensor *dy, ngc_tensor *dh_all) {
  negcut_ctx *ctx = tape->ctx;
  int64_t b = rec->batch, s = rec->count, nc = net->nc;
  ngc_tensor dcat, drep, dmean;
  negcut_status st;
  if (!dh_all) return ngc_mlp_backward(net, l, tape, &rec->mlp, dy, NULL);
  st = ngc_tape_tensor(tape, &dcat, 2, rec->cat.dim);
  if (!st) st = ngc_tape_tensor(tape, &drep, 2, (int64_t[2]){b * s, nc});
  if (!st) st = ngc_tape_tensor(tape, &dmean, 4, rec->mean.dim);
  if (!st) st = ngc_mlp_backward(net, l, tape, &rec->mlp, dy, &dcat);
  if (!st) st = ngc_concat_bwd(ctx, &dcat, &drep, NULL); /* z gets no gradient */
  if (!st) st = ngc_gather_bwd(ctx, &drep, rec->zeros, s, &dmean);
  if (!st) {
    ngc_tensor dm2 = ngc_tensor_view(dmean.be, dmean.data, 2, (int64_t[2]){b, nc});
    ngc_tensor dh3 = ngc_tensor_view(dh_all->be, dh_all->data, 3,
                                     (int64_t[3]){b, rec->positions, nc});
    st = ngc_mean_bwd(ctx, &dm2, &dh3);
  }
  return st;
}
