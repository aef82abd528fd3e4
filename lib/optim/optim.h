/* Optimisers (REFERENCE.md 6, 7): Adam over a network's parameters with
 * PyTorch semantics, the reference's `linear` learning-rate policy, and the
 * EMA that NEGCUT uses for F_. */
#ifndef NGC_OPTIM_H
#define NGC_OPTIM_H

#include "models/net.h"

typedef struct ngc_adam {
  ngc_net *net;
  ngc_tensor m_all, v_all; /* the moments, laid out as the net's gradients */
  ngc_tensor *m, *v; /* per parameter, views into them (buffers: no data) */
  int32_t n;
  int64_t step;      /* updates taken */
  double lr, beta1, beta2, eps, weight_decay;
} ngc_adam;

/* NEGCUT_ERR_INVALID_ARGUMENT, with the values, unless lr and weight_decay
 * are finite and at least 0, the betas in [0, 1) and eps finite and above 0
 * (ngc_adam_init checks them too; a caller may check before building). */
negcut_status ngc_adam_check(negcut_ctx *ctx, double lr, double beta1, double beta2, double eps,
                             double weight_decay);
negcut_status ngc_adam_init(ngc_adam *a, negcut_ctx *ctx, ngc_net *net, double lr, double beta1,
                            double beta2, double eps, double weight_decay);
void ngc_adam_release(ngc_adam *a);
/* One update of every parameter of the net from its accumulated gradient,
 * at learning rate lr (the schedule's current value): one op over the
 * net's trainable span. */
negcut_status ngc_adam_update(negcut_ctx *ctx, ngc_adam *a, double lr);

/* The `linear` policy: factor during 1-based epoch t is
 * 1 - max(0, t + epoch_count - 1 - n_epochs) / (n_epochs_decay + 1). */
double ngc_lr_linear(int64_t epoch, int64_t epoch_count, int64_t n_epochs, int64_t n_epochs_decay);

/* target <- decay * target + (1 - decay) * src over matching parameters:
 * one op over the trainable spans. */
negcut_status ngc_ema_nets(negcut_ctx *ctx, ngc_net *target, const ngc_net *src, float decay);

#endif
