/* The sequential executor shared by the generator and the discriminator. */
#include <stdlib.h>
#include <string.h>

#include "net.h"

int32_t ngc_seq_layer_of_module(const ngc_net *net, int32_t m) {
  if (m < 0) return -1; /* layers that are no module of the reference's are marked -1 */
  for (int32_t i = 0; i < net->n_layers; i++)
    if (net->layers[i].module == m) return i;
  return -1;
}

/* Output shape of layer l on input in[4]; 0 when the input is too small. */
static int layer_shape(const ngc_net *net, const ngc_layer *l, const int64_t in[4],
                       int64_t out[4]) {
  const ngc_tensor *w = l->w >= 0 ? &net->params[l->w].value : NULL;
  memcpy(out, in, 4 * sizeof *out);
  switch (l->kind) {
  case NGC_L_PAD:
    if (l->pad_mode == NGC_PAD_REFLECT && (in[2] <= l->pad || in[3] <= l->pad)) return 0;
    out[2] = in[2] + 2 * l->pad;
    out[3] = in[3] + 2 * l->pad;
    break;
  case NGC_L_CONV:
    out[1] = w->dim[0];
    out[2] = ngc_conv2d_out_size(in[2], w->dim[2], l->cp.stride, l->cp.pad);
    out[3] = ngc_conv2d_out_size(in[3], w->dim[3], l->cp.stride, l->cp.pad);
    break;
  case NGC_L_CONVT:
    out[1] = w->dim[1];
    out[2] = ngc_convt2d_out_size(in[2], w->dim[2], l->cp.stride, l->cp.pad, l->cp.out_pad);
    out[3] = ngc_convt2d_out_size(in[3], w->dim[3], l->cp.stride, l->cp.pad, l->cp.out_pad);
    break;
  case NGC_L_DOWN:
    if (in[2] < 2 || in[3] < 2) return 0; /* reflect pad 1 */
    out[2] = ngc_blur_down_out_size(in[2]);
    out[3] = ngc_blur_down_out_size(in[3]);
    break;
  case NGC_L_UP:
    out[2] = 2 * in[2];
    out[3] = 2 * in[3];
    break;
  default:
    break;
  }
  return out[2] >= 1 && out[3] >= 1;
}

/* Layout of layer l's output: a convolution writes the backend's blocked
 * layout when its channels fill whole blocks (so that the pads, norms,
 * activations and blurs after it, which keep their input's layout, and the
 * next convolution need no reorder), plain otherwise; every other layer
 * keeps its input's layout. The network's input is plain (the caller's). */
static ngc_layout layer_layout(const ngc_backend *be, const ngc_layer *l, ngc_layout in,
                               const int64_t out[4]) {
  if (l->kind != NGC_L_CONV && l->kind != NGC_L_CONVT) return in;
  return ngc_act_layout(be, out[1]);
}

static int32_t layers_to_run(const ngc_net *net, int32_t last) {
  if (last < 0) return net->n_layers;
  int32_t li = ngc_seq_layer_of_module(net, last);
  return li < 0 ? -1 : li + 1;
}

negcut_status ngc_seq_shape(negcut_ctx *ctx, const ngc_net *net, const int64_t in[4], int32_t last,
                            int64_t out[4]) {
  int64_t cur[4];
  int32_t n = layers_to_run(net, last);
  if (n < 0)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "network has no module %d",
                     (int)last);
  memcpy(cur, in, sizeof cur);
  /* sizes beyond any image keep the shape arithmetic far from overflow */
  for (int i = 0; i < 4; i++)
    if (cur[i] < 1 || cur[i] > ((int64_t)1 << 31))
      return ngc_error(ctx, NEGCUT_ERR_SHAPE, "network input dimension %d is %lld; 1 to 2^31 expected",
                       i, (long long)cur[i]);
  if (cur[1] != net->in_nc)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "network expects %d input channels, got %lld",
                     (int)net->in_nc, (long long)cur[1]);
  for (int32_t i = 0; i < n; i++) {
    if (!layer_shape(net, &net->layers[i], cur, out))
      return ngc_error(ctx, NEGCUT_ERR_SHAPE,
                       "input %lldx%lld is too small for this network (module %d)",
                       (long long)in[2], (long long)in[3], (int)net->layers[i].module);
    memcpy(cur, out, sizeof cur);
  }
  memcpy(out, cur, sizeof cur);
  return NEGCUT_OK;
}

/* A convolution layer, with its bias or (with_bias 0) without. The
 * convolutions may round to TF32 when the tape allows it, and run in
 * bfloat16 when it does and nothing will be backpropagated (!recorded). */
static negcut_status conv_forward(negcut_ctx *ctx, ngc_net *net, const ngc_layer *l,
                                  const ngc_tensor *x, ngc_tensor *y, const ngc_tape *tape,
                                  int recorded, int with_bias) {
  const ngc_tensor *w = &net->params[l->w].value;
  const ngc_tensor *b = with_bias && l->b >= 0 ? &net->params[l->b].value : NULL;
  ngc_conv_params cp = l->cp;
  cp.bf16 = !recorded && tape->bf16 && l->kind == NGC_L_CONV;
  cp.tf32 = tape->tf32;
  cp.winograd = !(tape->winograd & NGC_WINOGRAD_FWD)  ? NGC_CONV_TRANSFORM_NONE
                : (tape->winograd & NGC_WINOGRAD_ROOMY) ? NGC_CONV_TRANSFORM_ROOMY
                                                        : NGC_CONV_TRANSFORM;
  if (cp.bf16 && tape->w_bf16 && tape->w_bf16_net == net)
    cp.w_bf16 = tape->w_bf16 + net->params[l->w].offset;
  if (tape->w_store && tape->w_store_net == net) cp.w_store = tape->w_store;
  return l->kind == NGC_L_CONV ? ngc_conv2d_fwd(ctx, &cp, x, w, b, y)
                               : ngc_convt2d_fwd(ctx, &cp, x, w, b, y);
}

static negcut_status layer_forward(negcut_ctx *ctx, ngc_net *net, const ngc_layer *l, const ngc_tensor *x,
                                   const ngc_tensor *skip, ngc_tensor *y, ngc_tensor *mean,
                                   ngc_tensor *rstd, const ngc_tape *tape, int recorded) {
  switch (l->kind) {
  case NGC_L_PAD: return ngc_pad_fwd(ctx, l->pad_mode, l->pad, x, y);
  case NGC_L_CONV:
  case NGC_L_CONVT: return conv_forward(ctx, net, l, x, y, tape, recorded, 1);
  case NGC_L_INORM: return ngc_inorm_fwd(ctx, 1e-5f, x, y, mean, rstd);
  case NGC_L_ACT: return ngc_act_fwd(ctx, l->act, l->alpha, x, y);
  case NGC_L_DOWN: return ngc_blur_down_fwd(ctx, x, y);
  case NGC_L_UP: return ngc_blur_up_fwd(ctx, x, y);
  case NGC_L_ADD: return ngc_add(ctx, x, skip, y);
  }
  return ngc_error(ctx, NEGCUT_ERR_INTERNAL, "unknown layer kind %d", (int)l->kind);
}

/* Stats of one instance norm: (N, C). */
static negcut_status stats_tensors(ngc_tape *tape, const int64_t shape[4], ngc_tensor *mean,
                                   ngc_tensor *rstd) {
  int64_t d[2] = {shape[0], shape[1]};
  negcut_status st = ngc_tape_tensor(tape, mean, 2, d);
  return st ? st : ngc_tape_tensor(tape, rstd, 2, d);
}

/* Which activations a record keeps: every one on a backend that keeps
 * activations (ngc_backend.keep_activations); else convolution outputs
 * (what backward needs and cannot cheaply recompute), shortcut outputs and
 * sources, the final output, and the outputs of the modules asked for (the
 * encoder's features). The outputs of pads, norms, activations and blurs in
 * between are recomputed from the last kept one when backward needs them. */
static int keep_output(const ngc_net *net, const ngc_tape *tape, int32_t i, int32_t n,
                       int32_t n_keep, const int32_t *keep) {
  const ngc_layer *l = &net->layers[i];
  if (tape->dev.be->keep_activations || l->kind == NGC_L_CONV || l->kind == NGC_L_CONVT ||
      l->kind == NGC_L_ADD || i == n - 1)
    return 1;
  for (int32_t j = i + 1; j < n; j++)
    if (net->layers[j].kind == NGC_L_ADD && net->layers[j].skip == i + 1) return 1;
  if (n_keep < 0) return l->module >= 0; /* every module's output */
  for (int32_t k = 0; k < n_keep; k++)
    if (keep[k] == l->module) return 1;
  return 0;
}

/* Whether layers i and i + 1 of n are a norm and a ReLU or leaky ReLU,
 * which ngc_inorm_act_fwd runs as one op. */
static int norm_then_act(const ngc_net *net, int32_t i, int32_t n) {
  const ngc_layer *a = &net->layers[i], *b = i + 1 < n ? &net->layers[i + 1] : NULL;
  return a->kind == NGC_L_INORM && b && b->kind == NGC_L_ACT &&
         (b->act == NGC_ACT_RELU || b->act == NGC_ACT_LRELU);
}

/* Whether the output of layer i of n (activation i + 1) feeds only the next
 * layer: it is neither a tapped module's output (n_taps < 0: every module
 * is) nor an ADD's shortcut. */
static int output_feeds_next(const ngc_net *net, int32_t i, int32_t n, int32_t n_taps,
                             const int32_t *taps) {
  if (n_taps < 0 && net->layers[i].module >= 0) return 0;
  for (int32_t k = 0; k < n_taps; k++)
    if (taps[k] == net->layers[i].module) return 0;
  for (int32_t j = i + 1; j < n; j++)
    if (net->layers[j].kind == NGC_L_ADD && net->layers[j].skip == i + 1) return 0;
  return 1;
}

/* Whether an inference pass can fuse layers i and i + 1: a norm and an
 * activation, the norm's output feeding only the activation. */
static int fuse_norm_act(const ngc_net *net, int32_t i, int32_t n, int32_t n_taps,
                         const int32_t *taps) {
  return norm_then_act(net, i, n) && output_feeds_next(net, i, n, n_taps, taps);
}

/* Whether a pass on backend be can leave the bias of convolution layer i of
 * n, whose output has layout `layout`, to the norm after it: the backend has
 * inorm_bias_fwd, the output is plain (the slot's layout) and feeds only
 * that norm. */
static int bias_to_norm(const ngc_backend *be, const ngc_net *net, int32_t i, int32_t n,
                        int32_t n_taps, const int32_t *taps, ngc_layout layout) {
  const ngc_layer *l = &net->layers[i];
  return be->ops.inorm_bias_fwd && layout == NGC_LAYOUT_PLAIN &&
         (l->kind == NGC_L_CONV || l->kind == NGC_L_CONVT) && l->b >= 0 && i + 1 < n &&
         net->layers[i + 1].kind == NGC_L_INORM && output_feeds_next(net, i, n, n_taps, taps);
}

static negcut_status forward_recorded(ngc_net *net, ngc_tape *tape, const ngc_tensor *x,
                                      int32_t n, int32_t n_keep, const int32_t *keep,
                                      ngc_seq_rec *rec, ngc_tensor *y) {
  negcut_status st;
  int64_t in[4] = {ngc_d(x, 0), ngc_d(x, 1), ngc_d(x, 2), ngc_d(x, 3)};
  /* Two scratch buffers for the outputs not kept (none when every one is):
   * the current input and the output. */
  float *pool[2] = {NULL, NULL};
  rec->n_run = n;
  rec->acts = ngc_tape_host(tape, (size_t)(n + 1) * sizeof *rec->acts);
  rec->mean = ngc_tape_host(tape, (size_t)n * sizeof *rec->mean);
  rec->rstd = ngc_tape_host(tape, (size_t)n * sizeof *rec->rstd);
  rec->norm_bias = ngc_tape_host(tape, (size_t)n * sizeof *rec->norm_bias); /* zeroed */
  if (!rec->acts || !rec->mean || !rec->rstd || !rec->norm_bias)
    return ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "forward: out of host memory");
  if (!tape->dev.be->keep_activations) {
    const int64_t biggest = ngc_seq_peak_numel(net, in);
    float *scratch = ngc_tape_scratch(tape, 2 * (size_t)biggest * sizeof(float));
    if (!scratch)
      return ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "forward: cannot allocate %lld floats",
                       (long long)(2 * biggest));
    pool[0] = scratch;
    pool[1] = scratch + biggest;
  }
  rec->acts[0] = *x;
  rec->acts[0].owns = 0;
  int input_transient = 0;
  const ngc_tensor *pending_bias = NULL; /* left by the convolution to the norm after it */
  for (int32_t i = 0; i < n; i++) {
    const ngc_layer *l = &net->layers[i];
    int64_t out[4];
    ngc_tensor work;
    /* A norm whose output nothing keeps and the (leaky) ReLU after it run as
     * one op: the norm's output is never written (backward recomputes it
     * from the kept input and the saved statistics, like any transient). */
    const int fuse = norm_then_act(net, i, n) && !keep_output(net, tape, i, n, n_keep, keep);
    int keep_it = keep_output(net, tape, i + fuse, n, n_keep, keep);
    for (int k = 0; k < 4; k++) in[k] = ngc_d(&rec->acts[i], k);
    layer_shape(net, l, in, out);
    st = NEGCUT_OK;
    if (keep_it)
      st = ngc_tape_tensor(tape, &work, 4, out);
    else
      work = ngc_tensor_view(tape->dev.be, rec->acts[i].data == pool[0] ? pool[1] : pool[0], 4, out);
    work.layout = layer_layout(tape->dev.be, l, rec->acts[i].layout, out);
    if (st == NEGCUT_OK && l->kind == NGC_L_INORM)
      st = stats_tensors(tape, out, &rec->mean[i], &rec->rstd[i]);
    /* A convolution whose kept output feeds only the norm after it leaves
     * its bias to that norm (one pass fewer); the output is kept without
     * it, and backward's recomputation of the norm adds it the same way. */
    const int leave_bias =
        bias_to_norm(tape->dev.be, net, i, n, n_keep, keep, work.layout);
    rec->norm_bias[i] = pending_bias;
    if (st == NEGCUT_OK && pending_bias)
      st = ngc_inorm_bias_fwd(tape->ctx, 1e-5f, fuse ? (int)l[1].act : NGC_NO_ACT,
                              fuse ? l[1].alpha : 0.0f, &rec->acts[i], pending_bias, &work,
                              &rec->mean[i], &rec->rstd[i]);
    else if (st == NEGCUT_OK && fuse)
      st = ngc_inorm_act_fwd(tape->ctx, 1e-5f, l[1].act, l[1].alpha, &rec->acts[i], &work,
                             &rec->mean[i], &rec->rstd[i]);
    else if (st == NEGCUT_OK && leave_bias)
      st = conv_forward(tape->ctx, net, l, &rec->acts[i], &work, tape, 1, 0);
    else if (st == NEGCUT_OK)
      st = layer_forward(tape->ctx, net, l, &rec->acts[i], l->kind == NGC_L_ADD ? &rec->acts[l->skip] : NULL,
                         &work, &rec->mean[i], &rec->rstd[i], tape, 1);
    if (st != NEGCUT_OK) return st;
    pending_bias = leave_bias ? &net->params[l->b].value : NULL;
    /* Layer i has read its input: a transient one is forgotten (its shape
     * stays, for the backward's recomputation). */
    if (input_transient) rec->acts[i].data = NULL;
    if (fuse) rec->acts[++i] = ngc_tensor_view_as(tape->dev.be, NULL, &work);
    rec->acts[i + 1] = work;
    input_transient = !keep_it;
  }
  if (y) return ngc_relayout(tape->ctx, &rec->acts[n], y);
  return NEGCUT_OK;
}

int64_t ngc_seq_peak_numel(const ngc_net *net, const int64_t in[4]) {
  int64_t shape[4], out[4], biggest = in[0] * in[1] * in[2] * in[3];
  memcpy(shape, in, sizeof shape);
  for (int32_t i = 0; i < net->n_layers; i++) {
    if (!layer_shape(net, &net->layers[i], shape, out)) break;
    if (out[0] * out[1] * out[2] * out[3] > biggest) biggest = out[0] * out[1] * out[2] * out[3];
    memcpy(shape, out, sizeof shape);
  }
  return biggest;
}

void ngc_norm_state_clear(ngc_norm_state *s) {
  free(s->data);
  s->data = NULL;
  s->held = 0;
  s->layer = -1;
}

/* Where an inference pass stands: the layer about to run, the norms run
 * before it, and the open ResNet block's first layer and norms before it
 * (-1: none open). */
typedef struct pass_point {
  int32_t layer, norms, block_layer, block_norms;
} pass_point;

/* Keeps where a measuring pass on input `in` stopped (at, before norm
 * at->norms, whose input is x; skip the open block's input) in ks: both
 * activations (*kept 1), or the block's input alone, a later point than ks
 * holds (2); 0 when neither fits or memory runs out, and ks stays as it
 * was. */
static negcut_status keep_point(ngc_tape *tape, ngc_norm_state *ks, const pass_point *at,
                                const ngc_tensor *in, const ngc_tensor *x, const ngc_tensor *skip,
                                int *kept) {
  ngc_backend *be = tape->dev.be;
  const ngc_tensor *acts[2] = {x, skip && skip->data ? skip : NULL};
  const size_t n0 = (size_t)ngc_numel(x), n1 = acts[1] ? (size_t)ngc_numel(skip) : 0;
  const int whole = n0 + n1 <= ks->cap;
  const int block = !whole && acts[1] && n1 <= ks->cap && at->block_layer > ks->layer;
  const size_t need = whole ? n0 + n1 : n1;
  *kept = 0;
  if (!whole && !block) return NEGCUT_OK;
  if (ks->held < need) {
    float *grown = realloc(ks->data, need * sizeof *grown);
    if (!grown) return NEGCUT_OK; /* a pass more from the older point */
    ks->data = grown;
    ks->held = need;
  }
  if (block) acts[0] = acts[1]; /* resume at the block's start, its input as the pass's */
  ks->layer = -1;
  ks->n_acts = whole && acts[1] ? 2 : 1;
  float *dst = ks->data;
  for (int a = 0; a < ks->n_acts; a++) {
    const size_t n = (size_t)ngc_numel(acts[a]);
    negcut_status st = be->ops.download(be, dst, acts[a]->data, n * sizeof *dst);
    if (st) return st;
    memcpy(ks->dim[a], acts[a]->dim, sizeof ks->dim[a]);
    ks->layout[a] = acts[a]->layout;
    dst += n;
  }
  memcpy(ks->input, in->dim, sizeof ks->input);
  ks->layer = block ? at->block_layer : at->layer;
  ks->norms = block ? at->block_norms : at->norms;
  ks->block_layer = at->block_layer;
  ks->block_norms = at->block_norms;
  *kept = block ? 2 : 1;
  return NEGCUT_OK;
}

/* ctl's measurement of x, the input of the norm at `at` (skip: the open
 * block's input) in a pass on `in`, copied to the host as the backend holds
 * it: the window's per-channel mean and M2 in double, two passes. The
 * pass's stopping point goes to ctl->state (keep_point). */
static negcut_status measure_window(ngc_tape *tape, const ngc_tensor *in, const ngc_tensor *x,
                                    const ngc_tensor *skip, const pass_point *at,
                                    ngc_norm_ctl *ctl) {
  ngc_backend *be = tape->dev.be;
  const int64_t C = ngc_d(x, 1), H = ngc_d(x, 2), W = ngc_d(x, 3), in_h = ngc_d(in, 2),
                s = in_h / H;
  const int64_t y0 = ctl->win[0] / s, y1 = ctl->win[1] / s, x0 = ctl->win[2] / s,
                x1 = ctl->win[3] / s, B = ngc_block_of(be, x);
  int kept = 0; /* 1: x is the state's first activation */
  if (ngc_d(x, 0) != 1 || in_h % H || y0 < 0 || y1 > H || x0 < 0 || x1 > W || y0 >= y1 ||
      x0 >= x1)
    return ngc_error(tape->ctx, NEGCUT_ERR_INTERNAL, "norm window (%lld..%lld, %lld..%lld) in %lldx%lld",
                     (long long)y0, (long long)y1, (long long)x0, (long long)x1, (long long)H,
                     (long long)W);
  negcut_status st = ctl->state ? keep_point(tape, ctl->state, at, in, x, skip, &kept) : NEGCUT_OK;
  if (st) return st;
  if (kept) ctl->kept[kept - 1]++;
  float *host = kept == 1 ? ctl->state->data : ngc_tape_host(tape, (size_t)ngc_numel(x) * sizeof *host);
  if (!host) return ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "norm window: out of memory");
  if (kept != 1) st = be->ops.download(be, host, x->data, (size_t)ngc_numel(x) * sizeof *host);
  if (st) return st;
  ctl->count = (y1 - y0) * (x1 - x0);
  for (int64_t c = 0; c < C; c++) { /* (c, i, j) of a layout with channel block B */
    const float *p = host + (c / B) * H * W * B + c % B;
    double sum = 0.0, q = 0.0;
    for (int64_t i = y0; i < y1; i++)
      for (int64_t j = x0; j < x1; j++) sum += p[(i * W + j) * B];
    const double m = sum / (double)ctl->count;
    for (int64_t i = y0; i < y1; i++)
      for (int64_t j = x0; j < x1; j++) q += (p[(i * W + j) * B] - m) * (p[(i * W + j) * B] - m);
    ctl->mean[c] = m;
    ctl->m2[c] = q;
  }
  return NEGCUT_OK;
}

/* Resumes a pass at ctl->state's norm: its activations into buf[0] (cur)
 * and buf[1] (skip), each at most biggest floats. */
static negcut_status resume_state(ngc_tape *tape, const ngc_norm_state *ks, float *const *buf,
                                  int64_t biggest, ngc_tensor *cur, ngc_tensor *skip) {
  ngc_backend *be = tape->dev.be;
  const float *src = ks->data;
  for (int a = 0; a < ks->n_acts; a++) {
    ngc_tensor t = ngc_tensor_view(be, buf[a], 4, ks->dim[a]);
    t.layout = ks->layout[a];
    const int64_t n = ngc_numel(&t);
    if (n > biggest)
      return ngc_error(tape->ctx, NEGCUT_ERR_INTERNAL, "resumed pass: a kept activation does not fit");
    negcut_status st = be->ops.upload(be, t.data, src, (size_t)n * sizeof *src);
    if (st) return st;
    src += n;
    *(a ? skip : cur) = t;
  }
  return NEGCUT_OK;
}

/* Norm k of ctl with its frozen statistics, then act (the layer after the
 * norm, or NULL): x -> y. */
static negcut_status frozen_norm(ngc_tape *tape, const ngc_norm_ctl *ctl, int32_t k,
                                 const ngc_tensor *x, const ngc_layer *act, ngc_tensor *y) {
  const ngc_conv_params cp = {.stride = 1}; /* fp32, direct, nothing kept */
  negcut_status st = ngc_conv2d_fwd(tape->ctx, &cp, x, &ctl->w[k], &ctl->b[k], y);
  if (!st && act) st = ngc_act_fwd(tape->ctx, act->act, act->alpha, y, y);
  return st;
}

/* Inference: three buffers of the largest activation rotate; the input of
 * the current ResNet block is kept alive until its shortcut is added. */
static negcut_status forward_inference(ngc_net *net, ngc_tape *tape, const ngc_tensor *x,
                                       int32_t n, ngc_tensor *y, int32_t n_taps,
                                       const int32_t *taps, const int64_t *const *ids,
                                       const int64_t *n_ids, ngc_tensor *feats,
                                       ngc_norm_ctl *ctl) {
  negcut_status st;
  int64_t shape[4] = {ngc_d(x, 0), ngc_d(x, 1), ngc_d(x, 2), ngc_d(x, 3)}, out[4];
  int64_t biggest = ngc_seq_peak_numel(net, shape), max_nc = 1;
  float *buf[3];
  ngc_tensor cur = *x, next, mean, rstd;
  ngc_tensor skip = {0}; /* the shortcut's source while a ResNet block runs */
  const ngc_tensor *pending_bias = NULL; /* left by the convolution to the norm after it */
  int32_t norms = 0; /* norms run so far (ctl) */

  for (int32_t i = 0; i < n; i++) {
    layer_shape(net, &net->layers[i], shape, out);
    if (out[0] * out[1] > max_nc) max_nc = out[0] * out[1];
    memcpy(shape, out, sizeof shape);
  }
  float *scratch = ngc_tape_scratch(tape, 3 * (size_t)biggest * sizeof(float));
  if (!scratch)
    return ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "inference: cannot allocate %lld floats",
                     (long long)(3 * biggest));
  for (int i = 0; i < 3; i++) buf[i] = scratch + i * biggest;
  st = stats_tensors(tape, (int64_t[4]){max_nc, 1, 1, 1}, &mean, &rstd);
  if (st != NEGCUT_OK) return st;

  memcpy(shape, (int64_t[4]){ngc_d(x, 0), ngc_d(x, 1), ngc_d(x, 2), ngc_d(x, 3)}, sizeof shape);
  int32_t i0 = 0, block_layer = -1, block_norms = 0; /* the open ResNet block (ctl) */
  if (ctl && ctl->state && ctl->state->layer >= 0) { /* where an earlier pass stopped */
    const ngc_norm_state *ks = ctl->state;
    if (memcmp(ks->input, x->dim, sizeof ks->input))
      return ngc_error(tape->ctx, NEGCUT_ERR_INTERNAL,
                       "resumed pass: the state was kept from a %lldx%lld input, not %lldx%lld",
                       (long long)ks->input[3], (long long)ks->input[2], (long long)ngc_d(x, 3),
                       (long long)ngc_d(x, 2));
    st = resume_state(tape, ks, buf, biggest, &cur, &skip);
    if (st != NEGCUT_OK) return st;
    i0 = ks->layer;
    norms = ks->norms;
    if (ks->n_acts == 2) block_layer = ks->block_layer, block_norms = ks->block_norms;
    ctl->resumed++;
    memcpy(shape, cur.dim, sizeof shape);
  }
  for (int32_t i = i0; i < n; i++) {
    const ngc_layer *l = &net->layers[i];
    float *dst = NULL;
    layer_shape(net, l, shape, out);
    const ngc_layout lay = layer_layout(tape->dev.be, l, cur.layout, out);
    /* Is the current activation the shortcut of a later ADD? */
    for (int32_t j = i; j < n; j++)
      if (net->layers[j].kind == NGC_L_ADD && net->layers[j].skip == i) {
        skip = cur;
        block_layer = i;
        block_norms = norms;
        break;
      }
    for (int b = 0; b < 3 && !dst; b++)
      if (buf[b] != cur.data && buf[b] != skip.data) dst = buf[b];
    /* A norm followed by a (leaky) ReLU runs as one op when nothing reads
     * the norm's own output; l becomes the activation layer. */
    const int fuse = fuse_norm_act(net, i, n, n_taps, taps);
    if (fuse) l = &net->layers[++i];
    if (i == n - 1 && y && y->layout == lay) {
      next = *y; /* the last layer writes the caller's tensor */
    } else {
      next = ngc_tensor_view(tape->dev.be, dst, 4, out);
      next.layout = lay;
    }
    if (fuse || l->kind == NGC_L_INORM) {
      mean.ndim = rstd.ndim = 2;
      mean.dim[0] = rstd.dim[0] = out[0];
      mean.dim[1] = rstd.dim[1] = out[1];
    }
    /* A convolution whose output only feeds a norm leaves its bias to the
     * norm, where the backend can add it as the norm reads: one pass fewer
     * (not under ctl, whose norms see the whole input). */
    const int leave_bias = !ctl && bias_to_norm(tape->dev.be, net, i, n, n_taps, taps, lay);
    const int ctl_norm = ctl && (fuse || l->kind == NGC_L_INORM) ? norms++ : -1;
    if (ctl_norm >= 0 && ctl->measure && ctl_norm == ctl->n_frozen)
      return measure_window(tape, x, &cur, &skip,
                            &(pass_point){fuse ? i - 1 : i, ctl_norm, block_layer, block_norms}, ctl);
    if (ctl_norm >= 0 && ctl_norm < ctl->n_frozen)
      st = frozen_norm(tape, ctl, ctl_norm, &cur, fuse ? l : NULL, &next);
    else if (pending_bias)
      st = ngc_inorm_bias_fwd(tape->ctx, 1e-5f, fuse ? (int)l->act : NGC_NO_ACT, fuse ? l->alpha : 0.0f,
                              &cur, pending_bias, &next, &mean, &rstd);
    else if (fuse)
      st = ngc_inorm_act_fwd(tape->ctx, 1e-5f, l->act, l->alpha, &cur, &next, &mean, &rstd);
    else if (leave_bias)
      st = conv_forward(tape->ctx, net, l, &cur, &next, tape, 0, 0);
    else
      st = layer_forward(tape->ctx, net, l, &cur, &skip, &next, &mean, &rstd, tape, 0);
    pending_bias = leave_bias ? &net->params[l->b].value : NULL;
    if (st != NEGCUT_OK) return st;
    if (l->kind == NGC_L_ADD) skip.data = NULL, block_layer = -1;
    for (int32_t k = 0; k < n_taps && !st; k++) /* keep a copy of each tapped output */
      if (l->module == taps[k] && ids) {
        st = ngc_tape_tensor(tape, &feats[k], 2, (int64_t[2]){out[0] * n_ids[k], out[1]});
        if (!st) st = ngc_gather_fwd(tape->ctx, &next, ids[k], n_ids[k], &feats[k]);
      } else if (l->module == taps[k]) {
        st = ngc_tape_tensor_like(tape, &feats[k], &next);
        if (!st) st = ngc_axpby(tape->ctx, 1.0f, &next, 0.0f, &feats[k]);
      }
    if (st != NEGCUT_OK) return st;
    cur = next;
    memcpy(shape, out, sizeof shape);
  }
  if (y && cur.data != y->data) return ngc_relayout(tape->ctx, &cur, y);
  return NEGCUT_OK;
}

negcut_status ngc_seq_forward(ngc_net *net, ngc_tape *tape, const ngc_tensor *x,
                              int32_t last, ngc_seq_rec *rec, ngc_tensor *y) {
  int64_t in[4], out[4];
  char a[64], b[64];
  int32_t n = layers_to_run(net, last);
  negcut_status st;
  if (!x || x->ndim != 4)
    return ngc_error(tape->ctx, NEGCUT_ERR_SHAPE, "network input must be (N, C, H, W)");
  for (int i = 0; i < 4; i++) in[i] = x->dim[i];
  st = ngc_seq_shape(tape->ctx, net, in, last, out);
  if (st != NEGCUT_OK) return st;
  if (y) {
    ngc_tensor want = ngc_tensor_view(NULL, NULL, 4, out);
    if (!ngc_same_shape(y, &want))
      return ngc_error(tape->ctx, NEGCUT_ERR_SHAPE, "network output is %s, expected %s",
                       ngc_shape_str(y, a, sizeof a), ngc_shape_str(&want, b, sizeof b));
  } else if (!rec) {
    return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "inference needs an output tensor");
  }
  /* An encoder pass (last >= 0) keeps every module's output for taps. */
  if (rec) return forward_recorded(net, tape, x, n, last >= 0 ? -1 : 0, NULL, rec, y);
  return forward_inference(net, tape, x, n, y, 0, NULL, NULL, NULL, NULL, NULL);
}

int32_t ngc_seq_norm_channels(const ngc_net *net, int64_t *channels, int32_t cap) {
  int64_t shape[4] = {1, net->in_nc, 1024, 1024}, out[4]; /* channels do not depend on size */
  int32_t k = 0;
  for (int32_t i = 0; i < net->n_layers; i++) {
    if (!layer_shape(net, &net->layers[i], shape, out)) break;
    if (net->layers[i].kind == NGC_L_INORM && k++ < cap) channels[k - 1] = out[1];
    memcpy(shape, out, sizeof shape);
  }
  return k;
}

double ngc_seq_norm_plan(const ngc_net *net, const int64_t in[4], ngc_norm_plan *plan, int32_t cap) {
  int64_t shape[4], out[4], skip_numel = 0;
  int32_t k = 0, skip_until = -1; /* the open block's ADD */
  double work = 0.0, block_work = 0.0;
  memcpy(shape, in, sizeof shape);
  for (int32_t i = 0; i < net->n_layers; i++) {
    const ngc_layer *l = &net->layers[i];
    const int64_t numel = shape[0] * shape[1] * shape[2] * shape[3];
    for (int32_t j = i; j < net->n_layers; j++) /* the input of i is a shortcut's source */
      if (net->layers[j].kind == NGC_L_ADD && net->layers[j].skip == i) {
        skip_until = j;
        skip_numel = numel;
        block_work = work;
        break;
      }
    if (!layer_shape(net, l, shape, out)) return 0.0;
    if (l->kind == NGC_L_INORM && k++ < cap) {
      const int open = skip_until >= i;
      plan[k - 1].state_numel = numel + (open ? skip_numel : 0);
      plan[k - 1].work_before = work;
      plan[k - 1].block_numel = open ? skip_numel : 0;
      plan[k - 1].block_work = open ? block_work : 0.0;
    }
    const ngc_tensor *w = l->w >= 0 ? &net->params[l->w].value : NULL;
    const double out_numel = (double)(out[0] * out[1] * out[2] * out[3]);
    if (l->kind == NGC_L_CONV) /* w (co, ci, kh, kw) */
      work += out_numel * (double)(w->dim[1] * w->dim[2] * w->dim[3]);
    else if (l->kind == NGC_L_CONVT) /* w (ci, co, kh, kw): every input value to co kh kw outputs */
      work += (double)numel * (double)(w->dim[1] * w->dim[2] * w->dim[3]);
    else
      work += out_numel;
    memcpy(shape, out, sizeof shape);
  }
  return work;
}

negcut_status ngc_seq_forward_ctl(ngc_net *net, ngc_tape *tape, const ngc_tensor *x,
                                  ngc_tensor *y, ngc_norm_ctl *ctl) {
  int64_t in[4], out[4];
  if (!x || x->ndim != 4 || ngc_d(x, 0) != 1 || !ctl || (!y && !ctl->measure))
    return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "forward_ctl: bad argument");
  for (int i = 0; i < 4; i++) in[i] = x->dim[i];
  negcut_status st = ngc_seq_shape(tape->ctx, net, in, -1, out);
  if (st) return st;
  return forward_inference(net, tape, x, net->n_layers, y, 0, NULL, NULL, NULL, NULL, ctl);
}

negcut_status ngc_seq_encode(ngc_net *net, ngc_tape *tape, const ngc_tensor *x, int32_t n_taps,
                             const int32_t *taps, ngc_seq_rec *rec) {
  int64_t in[4], out[4];
  negcut_status st;
  if (!x || x->ndim != 4 || n_taps < 1)
    return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "encode: input (N, C, H, W) and taps needed");
  for (int i = 0; i < 4; i++) in[i] = x->dim[i];
  st = ngc_seq_shape(tape->ctx, net, in, taps[n_taps - 1], out);
  if (st) return st;
  return forward_recorded(net, tape, x, layers_to_run(net, taps[n_taps - 1]), n_taps, taps, rec, NULL);
}

negcut_status ngc_seq_features(ngc_net *net, ngc_tape *tape, const ngc_tensor *x, int32_t n_taps,
                               const int32_t *taps, const int64_t *const *ids,
                               const int64_t *n_ids, ngc_tensor *feats) {
  int64_t in[4], out[4];
  negcut_status st;
  if (!x || x->ndim != 4 || n_taps < 1)
    return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "features: input (N, C, H, W) and taps needed");
  for (int i = 0; i < 4; i++) in[i] = x->dim[i];
  st = ngc_seq_shape(tape->ctx, net, in, taps[n_taps - 1], out);
  if (st) return st;
  return forward_inference(net, tape, x, layers_to_run(net, taps[n_taps - 1]), NULL, n_taps, taps,
                           ids, n_ids, feats, NULL);
}

const ngc_tensor *ngc_seq_module_act(const ngc_net *net, const ngc_seq_rec *rec, int32_t m) {
  int32_t li = ngc_seq_layer_of_module(net, m);
  if (li < 0 || li >= rec->n_run || !rec->acts[li + 1].data) return NULL;
  return &rec->acts[li + 1];
}

/* x: the layer's input, y: its output, either NULL when the layer's
 * backward does not read it (see needs_input / needs_output). */
static int needs_input(const ngc_layer *l) {
  return l->kind == NGC_L_CONV || l->kind == NGC_L_CONVT ||
         (l->kind == NGC_L_ACT && l->act != NGC_ACT_TANH);
}

static int needs_output(const ngc_layer *l) {
  return l->kind == NGC_L_INORM || (l->kind == NGC_L_ACT && l->act == NGC_ACT_TANH);
}

static negcut_status layer_backward(negcut_ctx *ctx, ngc_net *net, const ngc_layer *l,
                                    const ngc_seq_rec *rec, int32_t i, const ngc_tensor *x,
                                    const ngc_tensor *y, const ngc_tensor *dy, ngc_tensor *dx,
                                    const ngc_tape *tape) {
  const ngc_tensor *w = l->w >= 0 ? &net->params[l->w].value : NULL;
  ngc_conv_params cp = l->cp;
  cp.tf32 = tape->tf32;
  cp.winograd = tape->winograd & NGC_WINOGRAD_BWD ? NGC_CONV_TRANSFORM : NGC_CONV_TRANSFORM_NONE;
  ngc_tensor *dw = l->w >= 0 && net->requires_grad ? &net->params[l->w].grad : NULL;
  ngc_tensor *db = l->b >= 0 && net->requires_grad ? &net->params[l->b].grad : NULL;
  switch (l->kind) {
  case NGC_L_PAD: return dx ? ngc_pad_bwd(ctx, l->pad_mode, l->pad, dy, dx) : NEGCUT_OK;
  case NGC_L_CONV: return ngc_conv2d_bwd(ctx, &cp, x, w, dy, dx, dw, db);
  case NGC_L_CONVT: return ngc_convt2d_bwd(ctx, &cp, x, w, dy, dx, dw, db);
  case NGC_L_INORM: return dx ? ngc_inorm_bwd(ctx, y, &rec->rstd[i], dy, dx) : NEGCUT_OK;
  case NGC_L_ACT: return dx ? ngc_act_bwd(ctx, l->act, l->alpha, x, y, dy, dx) : NEGCUT_OK;
  case NGC_L_DOWN: return dx ? ngc_blur_down_bwd(ctx, dy, dx) : NEGCUT_OK;
  case NGC_L_UP: return dx ? ngc_blur_up_bwd(ctx, dy, dx) : NEGCUT_OK;
  case NGC_L_ADD: return dx ? ngc_axpby(ctx, 1.0f, dy, 0.0f, dx) : NEGCUT_OK;
  }
  return ngc_error(ctx, NEGCUT_ERR_INTERNAL, "unknown layer kind %d", (int)l->kind);
}

/* Activation a of rec: kept, or recomputed into buf[0..1] by running the
 * layers from the last kept activation before it again (only pads, norms,
 * activations and blurs lie in between; a norm recomputes the statistics
 * it saved, bit for bit, adding the bias its convolution left to it). */
static negcut_status materialize(ngc_net *net, ngc_tape *tape, const ngc_seq_rec *rec, int32_t a,
                                 float *const buf[2], ngc_tensor *out) {
  int32_t k = a;
  ngc_tensor cur;
  while (!rec->acts[k].data) k--;
  cur = rec->acts[k];
  for (int32_t j = k; j < a; j++) {
    ngc_tensor next = ngc_tensor_view_as(tape->dev.be, cur.data == buf[0] ? buf[1] : buf[0],
                                         &rec->acts[j + 1]);
    negcut_status st =
        rec->norm_bias[j]
            ? ngc_inorm_bias_fwd(tape->ctx, 1e-5f, NGC_NO_ACT, 0.0f, &cur, rec->norm_bias[j], &next,
                                 &rec->mean[j], &rec->rstd[j])
            : layer_forward(tape->ctx, net, &net->layers[j], &cur, NULL, &next, &rec->mean[j],
                            &rec->rstd[j], tape, 1);
    if (st) return st;
    cur = next;
  }
  *out = cur;
  return NEGCUT_OK;
}

/* n rounded up to a multiple of 16 floats (64 bytes) */
static int64_t round_up16(int64_t n) { return (n + 15) & ~(int64_t)15; }

/* Backward keeps three gradient buffers and rotates them: the layer's
 * incoming gradient, its outgoing one, and the pending shortcut gradient of
 * the ResNet block being traversed. So backward needs about three
 * activations' worth of memory, not one per layer; the third only as large
 * as the activations inside a block (ngc_seq_backward_taps). */
typedef struct grad_pool {
  float *buf[3];
  int64_t cap[3]; /* floats */
} grad_pool;

/* *out: a tensor like `like` over the first buffer that is neither a nor b
 * (the third only when a and b are the other two). */
static negcut_status pool_pick(ngc_tape *tape, const grad_pool *p, const float *a, const float *b,
                               const ngc_tensor *like, ngc_tensor *out) {
  for (int i = 0; i < 3; i++)
    if (p->buf[i] != a && p->buf[i] != b) {
      if (ngc_numel(like) > p->cap[i])
        return ngc_error(tape->ctx, NEGCUT_ERR_INTERNAL,
                         "backward: gradient buffer %d holds %lld floats, %lld needed", i,
                         (long long)p->cap[i], (long long)ngc_numel(like));
      *out = ngc_tensor_view_as(tape->dev.be, p->buf[i], like);
      return NEGCUT_OK;
    }
  return ngc_error(tape->ctx, NEGCUT_ERR_INTERNAL, "backward: no free gradient buffer");
}

/* Adds the tap gradient g into the gradient of activation a (a fresh
 * buffer if it has none yet). A dense g in another layout than the
 * activation (a caller's plain gradient at a blocked feature) is converted
 * first; rows are scattered into the fresh buffer, or into the free one of
 * the pool and then added. */
static negcut_status grad_add(ngc_tape *tape, const ngc_seq_rec *rec, const grad_pool *pool,
                              ngc_tensor *d, uint8_t *has, int32_t a, const ngc_tap_grad *g,
                              const float *pending) {
  ngc_tensor conv;
  const ngc_tensor *src = &conv;
  negcut_status st;
  if (!g->dense) {
    ngc_tensor *to = &d[a];
    if (has[a]) {
      st = pool_pick(tape, pool, d[a].data, pending, &rec->acts[a], &conv);
      to = &conv;
    } else {
      st = pool_pick(tape, pool, pending, NULL, &rec->acts[a], &d[a]);
      has[a] = 1;
    }
    if (!st) st = ngc_gather_bwd(tape->ctx, g->rows, g->ids, g->n_ids, to);
    return st || to == &d[a] ? st : ngc_axpby(tape->ctx, 1.0f, &conv, 1.0f, &d[a]);
  }
  if (g->dense->layout != rec->acts[a].layout) {
    st = ngc_tape_tensor_like(tape, &conv, &rec->acts[a]);
    if (!st) st = ngc_relayout(tape->ctx, g->dense, &conv);
    if (st) return st;
  } else {
    src = g->dense;
  }
  if (has[a]) return ngc_axpby(tape->ctx, 1.0f, src, 1.0f, &d[a]);
  st = pool_pick(tape, pool, pending, NULL, &rec->acts[a], &d[a]);
  has[a] = 1;
  return st ? st : ngc_axpby(tape->ctx, 1.0f, src, 0.0f, &d[a]);
}

negcut_status ngc_seq_backward(ngc_net *net, ngc_tape *tape, const ngc_seq_rec *rec,
                               const ngc_tensor *dy, int32_t n_taps, const int32_t *taps,
                               const ngc_tensor *dtaps, ngc_tensor *dx) {
  ngc_tap_grad g[NGC_MAX_NCE_LAYERS];
  if (n_taps < 0 || n_taps > NGC_MAX_NCE_LAYERS)
    return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "backward: %d taps", (int)n_taps);
  for (int32_t t = 0; t < n_taps; t++) g[t] = (ngc_tap_grad){.dense = &dtaps[t]};
  return ngc_seq_backward_taps(net, tape, rec, dy, n_taps, taps, g, dx);
}

negcut_status ngc_seq_backward_taps(ngc_net *net, ngc_tape *tape, const ngc_seq_rec *rec,
                                    const ngc_tensor *dy, int32_t n_taps, const int32_t *taps,
                                    const ngc_tap_grad *dtaps, ngc_tensor *dx) {
  int32_t n = rec->n_run;
  negcut_status st = NEGCUT_OK;
  /* Without dx, the gradient of an activation is wanted only where a layer
   * at or after it has parameters to train: the image's gradient through
   * the first convolution (a full backward-data pass) is not computed, and
   * a net that trains nothing has nothing to do. */
  int32_t first_param = n;
  for (int32_t i = 0; i < n && net->requires_grad; i++)
    if (net->layers[i].w >= 0 || net->layers[i].b >= 0) {
      first_param = i;
      break;
    }
  if (!dx && first_param == n) return NEGCUT_OK;
  ngc_tensor *d = ngc_tape_host(tape, (size_t)(n + 1) * sizeof *d);
  uint8_t *has = ngc_tape_host(tape, (size_t)(n + 1));
  /* pend[a]: the shortcut gradient still to be added into d[a] */
  const ngc_tensor **pend = ngc_tape_host(tape, (size_t)(n + 1) * sizeof *pend);
  const float *pending = NULL; /* the buffer pend[] refers to, while one is open */
  grad_pool pool;
  if (!d || !has || !pend)
    return ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "backward: out of host memory");
  /* Scratch: two gradient buffers for the largest activation; the third is
   * picked only while a shortcut's gradient waits (pool_pick: it holds one
   * of the other two), so it holds gradients of activations within a
   * residual block; recomputation buffers for the largest activation not
   * kept. At a 256x256 CUT step's batch-2 generator: 64 + 64 + 8 + 64 + 64
   * MB, where every buffer was 64 MB (allocated device memory on CUDA; on
   * the CPU the pages never touched had not counted). */
  int64_t biggest = 1, in_block = 1, redone_max = 1;
  for (int32_t i = 0; i <= n; i++) {
    const int64_t k = ngc_numel(&rec->acts[i]);
    if (k > biggest) biggest = k;
    if (!rec->acts[i].data && k > redone_max) redone_max = k;
  }
  for (int32_t i = 0; i < n; i++)
    if (net->layers[i].kind == NGC_L_ADD)
      for (int32_t a = net->layers[i].skip; a <= i + 1; a++)
        if (ngc_numel(&rec->acts[a]) > in_block) in_block = ngc_numel(&rec->acts[a]);
  biggest = round_up16(biggest);
  in_block = round_up16(in_block);
  redone_max = round_up16(redone_max);
  float *redo[2] = {NULL, NULL}; /* recomputed activations (none when all are kept) */
  ngc_tensor redone;     /* the last one recomputed ... */
  int32_t redone_at = -1; /* ... and its index */
  const int64_t floats =
      2 * biggest + in_block + (tape->dev.be->keep_activations ? 0 : 2 * redone_max);
  float *scratch = ngc_tape_scratch(tape, (size_t)floats * sizeof(float));
  if (!scratch)
    return ngc_error(tape->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "backward: cannot allocate %lld floats",
                     (long long)floats);
  pool = (grad_pool){{scratch, scratch + biggest, scratch + 2 * biggest},
                     {biggest, biggest, in_block}};
  if (!tape->dev.be->keep_activations) {
    redo[0] = pool.buf[2] + in_block;
    redo[1] = redo[0] + redone_max;
  }
  if (dy) st = grad_add(tape, rec, &pool, d, has, n, &(ngc_tap_grad){.dense = dy}, pending);
  for (int32_t i = n - 1; i >= 0 && st == NEGCUT_OK; i--) {
    const ngc_layer *l = &net->layers[i];
    for (int32_t t = 0; t < n_taps && st == NEGCUT_OK && (dx || i >= first_param); t++)
      if (ngc_seq_layer_of_module(net, taps[t]) == i)
        st = grad_add(tape, rec, &pool, d, has, i + 1, &dtaps[t], pending);
    if (st != NEGCUT_OK || !has[i + 1]) continue;
    if (l->kind == NGC_L_ADD) {
      /* Both inputs receive dy: the body reads it in place, and it waits in
       * its buffer for the shortcut's source. */
      pend[l->skip] = &d[i + 1];
      pending = d[i + 1].data;
      d[i] = d[i + 1];
      has[i] = 1;
      if (i == 0 && dx) st = ngc_axpby(tape->ctx, 1.0f, &d[0], 0.0f, dx);
    } else {
      ngc_tensor *din = NULL;
      if (i == 0 && dx) {
        din = dx;
      } else if (i > 0 && (dx || i > first_param)) {
        st = pool_pick(tape, &pool, d[i + 1].data, pending, &rec->acts[i], &d[i]);
        din = &d[i];
      }
      ngc_tensor x = rec->acts[i], y = rec->acts[i + 1];
      /* The last recomputed activation stays valid until the next
       * recomputation: a ReLU's input is the norm before it's output. */
      if (!st && needs_input(l) && !x.data) {
        if (redone_at != i) st = materialize(net, tape, rec, i, redo, &redone);
        redone_at = i;
        x = redone;
      }
      if (!st && needs_output(l) && !y.data) {
        if (redone_at != i + 1) st = materialize(net, tape, rec, i + 1, redo, &redone);
        redone_at = i + 1;
        y = redone;
      }
      if (!st) st = layer_backward(tape->ctx, net, l, rec, i, &x, &y, &d[i + 1], din, tape);
      has[i] = din != NULL;
    }
    if (st == NEGCUT_OK && pend[i] && has[i]) {
      st = ngc_axpby(tape->ctx, 1.0f, pend[i], 1.0f, i == 0 && dx ? dx : &d[i]);
      pending = NULL;
    }
  }
  if (st == NEGCUT_OK && dx && !has[0]) st = ngc_fill(tape->ctx, dx, 0.0f);
  return st;
}
