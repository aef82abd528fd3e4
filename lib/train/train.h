/*
 * The training iteration of CUT, FastCUT and NEGCUT (REFERENCE.md 4-7), on
 * the networks of lib/models, the losses of lib/losses and the optimisers of
 * lib/optim. ngc_train_step runs one iteration on one batch, in the
 * reference's order: CUT/FastCUT: D step, then G+F step; NEGCUT: D step, N
 * step, G+F step, EMA of F_.
 *
 * The reference's data-dependent initialisation (REFERENCE.md 6) runs one
 * forward and the D and G backward passes on the first batch without any
 * optimiser step, only so that PyTorch creates the lazily built F (and N,
 * F_) before their optimisers; the gradients it leaves are zeroed before
 * the first step uses them. Here every network exists from the start, so
 * that pass would change no parameter and no optimiser moment: it is not
 * run. The first batch is then trained on normally, as in the reference.
 */
#ifndef NGC_TRAIN_H
#define NGC_TRAIN_H

#include "core/philox.h"
#include "negcut/train.h" /* negcut_allreduce_fn */
#include "losses/losses.h"
#include "models/net.h"
#include "optim/optim.h"

typedef enum ngc_mode { NGC_MODE_CUT = 0, NGC_MODE_FASTCUT = 1, NGC_MODE_NEGCUT = 2, NGC_MODE_FASTNEGCUT = 3 } ngc_mode;

typedef struct ngc_train_cfg {
  ngc_mode mode;
  ngc_generator_cfg g;
  ngc_discriminator_cfg d;
  int32_t n_nce;
  int32_t nce_layers[NGC_MAX_NCE_LAYERS];
  int32_t num_patches, netf_nc, z_dim;
  float nce_t, lambda_gan, lambda_nce, lambda_ms;
  int32_t nce_idt, flip_equivariance;
  ngc_gan_mode gan_mode;
  double lr, beta1, beta2;
  int32_t batch;
  /* Reference quirks (REFERENCE.md 7), on by default; 1 turns each off. */
  int32_t detach_negatives;  /* detach n in G's loss (reference: not detached) */
  int32_t ema_from_f;        /* start F_ as a copy of F (reference: own init) */
  int32_t diversity_all;     /* diversity averaged over every NCE call of the N step (reference: last call only) */
  /* Data parallelism (negcut_trainer_options): rank of world (1: alone);
   * allreduce sums a gradient slab over the ranks, NULL when alone;
   * allreduce_host: it is given a host copy of a slab in device memory
   * (NEGCUT_ALLREDUCE_HOST on a device backend). */
  int32_t rank, world;
  negcut_allreduce_fn allreduce;
  void *allreduce_user;
  int32_t allreduce_host;
} ngc_train_cfg;

/* Where an iteration's random draws come from. The default reads the
 * trainer's Philox streams; parity tests inject the reference's draws. */
typedef struct ngc_rand_source {
  /* n ids in [0, hw) for NCE layer l of the current call */
  negcut_status (*patch_ids)(void *user, int32_t layer, int64_t hw, int64_t n, int64_t *out);
  /* n standard normals for the negative generator of layer l */
  negcut_status (*noise)(void *user, int32_t layer, int64_t n, float *out);
  /* 1 to flip this iteration's input (flip equivariance) */
  int (*flip)(void *user);
  void *user;
} ngc_rand_source;

/* Loss values of the last iteration (host copies). */
typedef struct ngc_train_losses {
  float d_real, d_fake, d, g_gan, nce_x, nce_y, g, n, div;
} ngc_train_losses;

typedef struct ngc_trainer {
  negcut_ctx *ctx;
  ngc_train_cfg cfg;
  ngc_net G, D, F, N, F_ema;
  ngc_adam opt_g, opt_d, opt_f, opt_n;
  ngc_tape tape;
  ngc_philox rng_patch, rng_noise, rng_flip;
  ngc_rand_source rand;
  int64_t iteration;
  ngc_train_losses losses;
  int32_t feat_c[NGC_MAX_NCE_LAYERS]; /* channels at each NCE layer */
  ngc_tensor last_real, last_fake; /* views into the tape, valid until the next step */
  /* CUDA graphs of the step (step.c), one per image size and flip state */
  ngc_graph_cache graphs;
  int32_t eager; /* never record the step */
  /* cfg.allreduce_host's host copy of a gradient slab (the largest yet) */
  ngc_xfer_buf reduce_buf;
} ngc_trainer;

/* Fills cfg with the reference defaults of mode. */
void ngc_train_cfg_defaults(ngc_train_cfg *cfg, ngc_mode mode);
negcut_status ngc_trainer_init(ngc_trainer *t, negcut_ctx *ctx, const ngc_train_cfg *cfg);
void ngc_trainer_release(ngc_trainer *t);
/* 1 when t->rand is the trainer's own Philox source, whose state a step
 * can save and restore (a caller's source cannot be rewound). */
int ngc_trainer_rand_rewindable(const ngc_trainer *t);
/* One iteration on real_a, real_b (B, C, H, W) host floats in [-1, 1], at
 * learning rate lr. On a backend that records graphs the step is recorded
 * once its tape has settled (the second or third step of a size and flip
 * state) and replayed from then on: the host still makes every call, for
 * its random draws and step counters, but the device work is one launch. */
negcut_status ngc_train_step(ngc_trainer *t, const float *real_a, const float *real_b,
                             int64_t h, int64_t w, double lr);

#endif
