/*
 * Build your own: the losses of CUT and NEGCUT as handles with forward and
 * backward (REFERENCE.md 4, 5, 7). A forward returns the loss value and a
 * record on the tape; backward takes d(total)/d(loss), the weight the caller
 * gives this loss, and assigns the input gradients.
 *
 *   GAN        inputs: pred (the discriminator's output)        grads: dpred
 *   PatchNCE   inputs: q, k (B*S, C); k is detached             grads: dq
 *   learned    inputs: q, k, negs (B*N, C); k detached          grads: dq, dnegs
 *   diversity  inputs: negs (B*N, C), N even; value is
 *              -mean |n[:, :N/2] - n[:, N/2:]| per image        grads: dnegs
 * A gradient pointer may be NULL to skip it.
 */
#ifndef NEGCUT_LOSSES_H
#define NEGCUT_LOSSES_H

#include "nets.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct negcut_loss negcut_loss;

typedef int32_t negcut_loss_kind;
#define NEGCUT_LOSS_GAN_LSGAN 1   /* mean (pred - target)^2 */
#define NEGCUT_LOSS_GAN_VANILLA 2 /* mean BCEWithLogits(pred, target) */
#define NEGCUT_LOSS_PATCHNCE 3    /* CUT: in-image negatives, -10 diagonal */
#define NEGCUT_LOSS_LEARNED_NCE 4 /* NEGCUT: generated negatives only */
#define NEGCUT_LOSS_DIVERSITY 5   /* NEGCUT: diversity of the negatives */

#define NEGCUT_LOSS_OPTIONS_VERSION 1
typedef struct negcut_loss_options {
  uint32_t version;
  negcut_loss_kind kind;
  float tau;          /* NCE temperature; 0: 0.07 */
  int32_t batch;      /* images per batch (NCE negatives stay within an image); 0: 1 */
  int32_t target_real; /* GAN: 1 compares with "real" (1.0), 0 with "fake" (0.0) */
} negcut_loss_options;
#define NEGCUT_LOSS_OPTIONS_INIT { NEGCUT_LOSS_OPTIONS_VERSION, NEGCUT_LOSS_GAN_LSGAN, 0.0f, 0, 1 }

/* The defaults above; _v2 the struct of `version` (core.h, "Options structs"). */
NEGCUT_API negcut_status negcut_loss_options_init(negcut_loss_options *o);
NEGCUT_API negcut_status negcut_loss_options_init_v2(negcut_loss_options *o, uint32_t version);
NEGCUT_API negcut_status negcut_loss_create(negcut_loss **out, negcut_ctx *ctx,
                                            const negcut_loss_options *opts);
NEGCUT_API void negcut_loss_free(negcut_loss *loss);
/* inputs: n_inputs tensors as listed above; *value gets the loss. */
NEGCUT_API negcut_status negcut_loss_forward(negcut_loss *loss, negcut_tape *tape, int32_t n_inputs,
                                             const negcut_tensor *const *inputs, float *value,
                                             negcut_record **rec);
/* grads: one slot per gradient listed above (NULL entries skipped). */
NEGCUT_API negcut_status negcut_loss_backward(negcut_loss *loss, const negcut_record *rec,
                                              float dloss, int32_t n_grads,
                                              negcut_tensor *const *grads);

/* ------------------------------------------------------------ optimisers */
typedef struct negcut_optimizer negcut_optimizer;

#define NEGCUT_ADAM_OPTIONS_VERSION 1
typedef struct negcut_adam_options {
  uint32_t version;
  double lr;           /* 2e-4 */
  double beta1, beta2; /* 0.5, 0.999 (the reference's, not PyTorch's default) */
  double eps;          /* 1e-8 */
  double weight_decay; /* 0 */
} negcut_adam_options;
#define NEGCUT_ADAM_OPTIONS_INIT { NEGCUT_ADAM_OPTIONS_VERSION, 2e-4, 0.5, 0.999, 1e-8, 0.0 }

/* The defaults above; _v2 the struct of `version` (core.h, "Options structs"). */
NEGCUT_API negcut_status negcut_adam_options_init(negcut_adam_options *o);
NEGCUT_API negcut_status negcut_adam_options_init_v2(negcut_adam_options *o, uint32_t version);
/* Adam (PyTorch semantics) over every trainable parameter of net. */
NEGCUT_API negcut_status negcut_optimizer_create_adam(negcut_optimizer **out, negcut_net *net,
                                                      const negcut_adam_options *opts);
NEGCUT_API void negcut_optimizer_free(negcut_optimizer *opt);
/* One update from the accumulated gradients. */
NEGCUT_API negcut_status negcut_optimizer_step(negcut_optimizer *opt);
NEGCUT_API negcut_status negcut_optimizer_set_lr(negcut_optimizer *opt, double lr);
/* The reference's `linear` policy: the factor for 1-based epoch t. */
NEGCUT_API double negcut_lr_linear(int64_t epoch, int64_t n_epochs, int64_t n_epochs_decay);
/* target <- decay * target + (1 - decay) * src, for two nets of one shape
 * (NEGCUT's F_ follows F with decay 0.9). */
NEGCUT_API negcut_status negcut_net_ema(negcut_net *target, const negcut_net *src, float decay);

#ifdef __cplusplus
}
#endif
#endif
