/* negcut/losses.h: the losses and optimisers as public handles. */
#include <math.h>
#include <stdlib.h>

#include "losses.h"
#include "models/api.h"
#include "negcut/losses.h"
#include "optim/optim.h"

struct negcut_loss {
  negcut_ctx *ctx;
  negcut_loss_options o;
};

static const negcut_loss_options loss_defaults = NEGCUT_LOSS_OPTIONS_INIT;
static const size_t loss_ends[] = {NGC_END_OF(negcut_loss_options, target_real)};
static const ngc_options_layout loss_layout = {"negcut_loss_options", 1, loss_ends};

negcut_status negcut_loss_options_init_v2(negcut_loss_options *o, uint32_t version) {
  return ngc_options_fill(&loss_layout, o, version, &loss_defaults);
}

negcut_status negcut_loss_options_init(negcut_loss_options *o) {
  return negcut_loss_options_init_v2(o, 1);
}

negcut_status negcut_loss_create(negcut_loss **out, negcut_ctx *ctx, const negcut_loss_options *opts) {
  negcut_loss *l;
  if (!out || !ctx || !opts) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_loss_create: NULL argument");
  *out = NULL;
  negcut_loss_options o;
  negcut_status st = ngc_options_read(ctx, &loss_layout, &o, opts, &loss_defaults);
  if (st) return st;
  if (o.kind < NEGCUT_LOSS_GAN_LSGAN || o.kind > NEGCUT_LOSS_DIVERSITY || !(o.tau >= 0) ||
      !isfinite(o.tau) || o.batch < 0)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_loss_create: kind %d, tau %g, batch %d",
                     (int)o.kind, o.tau, (int)o.batch);
  if (!(l = calloc(1, sizeof *l))) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "loss: out of memory");
  l->ctx = ctx;
  l->o = o;
  if (!l->o.tau) l->o.tau = 0.07f;
  if (!l->o.batch) l->o.batch = 1;
  *out = l;
  return NEGCUT_OK;
}

void negcut_loss_free(negcut_loss *loss) { free(loss); }

static int inputs_wanted(negcut_loss_kind k) {
  return k == NEGCUT_LOSS_PATCHNCE ? 2 : k == NEGCUT_LOSS_LEARNED_NCE ? 3 : 1;
}

static int grads_wanted(negcut_loss_kind k) { return k == NEGCUT_LOSS_LEARNED_NCE ? 2 : 1; }

typedef union loss_rec {
  ngc_gan_rec gan;
  ngc_nce_rec nce;
  ngc_div_rec div;
} loss_rec;

negcut_status negcut_loss_forward(negcut_loss *loss, negcut_tape *tape, int32_t n_inputs,
                                  const negcut_tensor *const *inputs, float *value, negcut_record **rec) {
  negcut_ctx *ctx = loss ? loss->ctx : NULL;
  negcut_record *r;
  loss_rec *lr;
  const ngc_tensor *value_t;
  negcut_status st;
  if (!loss || !tape || !inputs || !value || !rec || n_inputs != inputs_wanted(loss->o.kind))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_loss_forward: NULL argument or %d inputs (this loss takes %d)",
                     (int)n_inputs, loss ? inputs_wanted(loss->o.kind) : 0);
  for (int32_t i = 0; i < n_inputs; i++)
    if (!inputs[i]) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_loss_forward: input %d is NULL", (int)i);
  *rec = NULL;
  st = ngc_api_live(ctx, "negcut_loss_forward", NULL, n_inputs, inputs);
  if (st) return st;
  r = ngc_api_record(tape, NGC_REC_LOSS, loss);
  lr = ngc_tape_host(&tape->tape, sizeof *lr);
  if (!r || !lr) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "loss: out of memory");
  r->u.loss = lr;
  switch (loss->o.kind) {
  case NEGCUT_LOSS_GAN_LSGAN:
  case NEGCUT_LOSS_GAN_VANILLA:
    st = ngc_gan_loss_forward(&tape->tape, loss->o.kind == NEGCUT_LOSS_GAN_LSGAN ? NGC_GAN_LSGAN : NGC_GAN_VANILLA,
                              &inputs[0]->t, loss->o.target_real, &lr->gan);
    value_t = &lr->gan.value;
    break;
  case NEGCUT_LOSS_PATCHNCE:
  case NEGCUT_LOSS_LEARNED_NCE:
    st = ngc_nce_forward(&tape->tape, &inputs[0]->t, &inputs[1]->t,
                         loss->o.kind == NEGCUT_LOSS_LEARNED_NCE ? &inputs[2]->t : NULL, loss->o.batch,
                         loss->o.tau, &lr->nce);
    value_t = &lr->nce.value;
    break;
  default:
    st = ngc_diversity_forward(&tape->tape, &inputs[0]->t, loss->o.batch, &lr->div);
    value_t = &lr->div.value;
    break;
  }
  if (!st) st = ngc_loss_value(ctx, value_t, value);
  if (loss->o.kind == NEGCUT_LOSS_DIVERSITY) *value = -*value;
  if (!st) *rec = r;
  return st;
}

negcut_status negcut_loss_backward(negcut_loss *loss, const negcut_record *rec, float dloss,
                                   int32_t n_grads, negcut_tensor *const *grads) {
  negcut_ctx *ctx = loss ? loss->ctx : NULL;
  const loss_rec *lr;
  negcut_status st = loss && rec ? ngc_api_live(ctx, "negcut_loss_backward", rec, 0, NULL) : NEGCUT_OK;
  if (st) return st;
  if (!loss || !rec || rec->kind != NGC_REC_LOSS || rec->owner != loss || !grads ||
      n_grads != grads_wanted(loss->o.kind))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_loss_backward: NULL argument, a record of another loss, or %d gradients (this loss gives %d)",
                     (int)n_grads, loss ? grads_wanted(loss->o.kind) : 0);
  st = ngc_api_live(ctx, "negcut_loss_backward", NULL, n_grads, (const negcut_tensor *const *)grads);
  if (st) return st;
  lr = rec->u.loss;
  ngc_tape *tape = &rec->tape->tape;
  switch (loss->o.kind) {
  case NEGCUT_LOSS_GAN_LSGAN:
  case NEGCUT_LOSS_GAN_VANILLA:
    return grads[0] ? ngc_gan_loss_backward(tape, &lr->gan, dloss, &grads[0]->t) : NEGCUT_OK;
  case NEGCUT_LOSS_PATCHNCE:
    return ngc_nce_backward(tape, &lr->nce, dloss, grads[0] ? &grads[0]->t : NULL, NULL);
  case NEGCUT_LOSS_LEARNED_NCE:
    return ngc_nce_backward(tape, &lr->nce, dloss, grads[0] ? &grads[0]->t : NULL,
                            grads[1] ? &grads[1]->t : NULL);
  default:
    return grads[0] ? ngc_diversity_backward(tape, &lr->div, dloss, &grads[0]->t) : NEGCUT_OK;
  }
}

/* ------------------------------------------------------------ optimisers */

struct negcut_optimizer {
  negcut_ctx *ctx;
  ngc_adam adam;
  double lr;
};

static const negcut_adam_options adam_defaults = NEGCUT_ADAM_OPTIONS_INIT;
static const size_t adam_ends[] = {NGC_END_OF(negcut_adam_options, weight_decay)};
static const ngc_options_layout adam_layout = {"negcut_adam_options", 1, adam_ends};

negcut_status negcut_adam_options_init_v2(negcut_adam_options *o, uint32_t version) {
  return ngc_options_fill(&adam_layout, o, version, &adam_defaults);
}

negcut_status negcut_adam_options_init(negcut_adam_options *o) {
  return negcut_adam_options_init_v2(o, 1);
}

negcut_status negcut_optimizer_create_adam(negcut_optimizer **out, negcut_net *net,
                                           const negcut_adam_options *opts) {
  negcut_adam_options o = NEGCUT_ADAM_OPTIONS_INIT;
  negcut_optimizer *opt;
  negcut_status st;
  if (!out || !net) return ngc_error(net ? net->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_optimizer_create_adam: NULL");
  *out = NULL;
  if (opts && (st = ngc_options_read(net->ctx, &adam_layout, &o, opts, &adam_defaults))) return st;
  if (!(opt = calloc(1, sizeof *opt))) return ngc_error(net->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "adam: out of memory");
  opt->ctx = net->ctx;
  opt->lr = o.lr;
  st = ngc_adam_init(&opt->adam, net->ctx, &net->net, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay);
  if (st) {
    free(opt);
    return st;
  }
  *out = opt;
  return NEGCUT_OK;
}

void negcut_optimizer_free(negcut_optimizer *opt) {
  if (!opt) return;
  ngc_adam_release(&opt->adam);
  free(opt);
}

negcut_status negcut_optimizer_step(negcut_optimizer *opt) {
  if (!opt) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_optimizer_step: NULL");
  return ngc_adam_update(opt->ctx, &opt->adam, opt->lr);
}

negcut_status negcut_optimizer_set_lr(negcut_optimizer *opt, double lr) {
  if (!opt || !(lr >= 0 && isfinite(lr)))
    return ngc_error(opt ? opt->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_optimizer_set_lr: %s", opt ? "lr must be finite, at least 0" : "NULL");
  opt->lr = lr;
  return NEGCUT_OK;
}

double negcut_lr_linear(int64_t epoch, int64_t n_epochs, int64_t n_epochs_decay) {
  return ngc_lr_linear(epoch, 1, n_epochs, n_epochs_decay);
}

negcut_status negcut_net_ema(negcut_net *target, const negcut_net *src, float decay) {
  if (!target || !src) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_net_ema: NULL");
  return ngc_ema_nets(target->ctx, &target->net, &src->net, decay);
}
