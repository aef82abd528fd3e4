/*
 * The losses of CUT, FastCUT and NEGCUT (REFERENCE.md 4, 5, 7). Each forward
 * keeps what its backward needs in a record on the tape and leaves its value
 * in a (1) device tensor, one of the tape's scalars (read it only when
 * reporting, with ngc_loss_value or, for many at once, ngc_tape_read_scalars:
 * reading synchronises a device backend). Backward takes the upstream
 * gradient of the scalar (the loss weight) as a host float.
 */
#ifndef NGC_LOSSES_H
#define NGC_LOSSES_H

#include "models/net.h"

typedef enum ngc_gan_mode { NGC_GAN_LSGAN = 0, NGC_GAN_VANILLA = 1 } ngc_gan_mode;

typedef struct ngc_gan_rec {
  ngc_gan_mode mode;
  const ngc_tensor *pred;
  float target;
  ngc_tensor value; /* (1) */
} ngc_gan_rec;

/* lsgan: mean (pred - target)^2; vanilla: mean BCEWithLogits(pred, target);
 * target 1 for real, 0 for fake. */
negcut_status ngc_gan_loss_forward(ngc_tape *tape, ngc_gan_mode mode, const ngc_tensor *pred,
                                   int target_is_real, ngc_gan_rec *rec);
negcut_status ngc_gan_loss_backward(ngc_tape *tape, const ngc_gan_rec *rec, float dloss,
                                    ngc_tensor *dpred);

/* Contrastive loss of one layer, mean over the B*S queries of
 * cross-entropy(target 0) of [q_i.k_i, q_i.neg_j ...] / tau.
 *  - PatchNCE (negs NULL): negatives are the other keys of the same image
 *    (q and k reshaped to (batch, S, C)), the diagonal set to -10 before
 *    dividing by tau and kept as a logit.
 *  - learned (negs (batch * Nn, C)): NEGCUT's generated negatives only, no
 *    mask.
 * k is detached (no gradient); negs get one unless the caller passes NULL. */
typedef struct ngc_nce_rec {
  const ngc_tensor *q, *k, *negs;
  int64_t batch, rows, n_neg;
  float tau;
  ngc_tensor lpos;   /* (B*S) */
  ngc_tensor lneg;   /* (B, S, Nn) raw products */
  ngc_tensor logits; /* (B*S, 1 + Nn), already / tau */
  ngc_tensor per_query; /* (B*S) */
  ngc_tensor value;  /* (1) */
} ngc_nce_rec;

negcut_status ngc_nce_forward(ngc_tape *tape, const ngc_tensor *q, const ngc_tensor *k,
                              const ngc_tensor *negs, int64_t batch, float tau, ngc_nce_rec *rec);
/* dq assigned (may be NULL); dnegs assigned (may be NULL). */
negcut_status ngc_nce_backward(ngc_tape *tape, const ngc_nce_rec *rec, float dloss,
                               ngc_tensor *dq, ngc_tensor *dnegs);

/* NEGCUT's diversity term before its weight: -mean |n[:, :half] - n[:, half:]|
 * over each image's negatives viewed as (batch, Nn, C). */
typedef struct ngc_div_rec {
  ngc_tensor first, second; /* (B, Nn/2, C, 1) */
  ngc_tensor value;         /* (1): the mean absolute difference (positive) */
} ngc_div_rec;
negcut_status ngc_diversity_forward(ngc_tape *tape, const ngc_tensor *negs, int64_t batch,
                                    ngc_div_rec *rec);
/* d(-mad)/dnegs * dloss: the sign of the term is applied here. */
negcut_status ngc_diversity_backward(ngc_tape *tape, const ngc_div_rec *rec, float dloss,
                                     ngc_tensor *dnegs);

/* Reads a (1) loss tensor to the host. */
negcut_status ngc_loss_value(negcut_ctx *ctx, const ngc_tensor *value, float *out);

#endif
