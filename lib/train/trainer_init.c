/* Building the networks and optimisers of a trainer. */
#include <stdlib.h>
#include <string.h>

#include "train.h"

/* Adam's eps: PyTorch's default, which the reference keeps (REFERENCE.md 6);
 * no weight decay. */
#define ADAM_EPS 1e-8

void ngc_train_cfg_defaults(ngc_train_cfg *cfg, ngc_mode mode) {
  static const int32_t layers[5] = {0, 4, 8, 12, 16};
  int fast = mode == NGC_MODE_FASTCUT || mode == NGC_MODE_FASTNEGCUT;
  memset(cfg, 0, sizeof *cfg);
  cfg->mode = mode;
  cfg->g = (ngc_generator_cfg){3, 3, 64, 9, 0, 0};
  cfg->d = (ngc_discriminator_cfg){3, 64, 3, 0};
  cfg->n_nce = 5;
  memcpy(cfg->nce_layers, layers, sizeof layers);
  cfg->num_patches = 256;
  cfg->netf_nc = 256;
  cfg->z_dim = 64;
  cfg->nce_t = 0.07f;
  cfg->lambda_gan = 1.0f;
  cfg->lambda_nce = fast ? 10.0f : 1.0f;
  cfg->lambda_ms = 1.0f;
  cfg->nce_idt = !fast;
  cfg->flip_equivariance = fast;
  cfg->gan_mode = NGC_GAN_LSGAN;
  cfg->lr = 2e-4;
  cfg->beta1 = 0.5;
  cfg->beta2 = 0.999;
  cfg->batch = 1;
  cfg->world = 1;
}

static int negcut_mode(const ngc_train_cfg *cfg) {
  return cfg->mode == NGC_MODE_NEGCUT || cfg->mode == NGC_MODE_FASTNEGCUT;
}

static negcut_status rand_ids(void *user, int32_t layer, int64_t hw, int64_t n, int64_t *out) {
  ngc_trainer *t = user;
  int64_t *perm = ngc_tape_host(&t->tape, (size_t)hw * sizeof *perm);
  (void)layer;
  if (!perm) return ngc_error(t->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "patch ids: out of memory");
  negcut_status st = ngc_philox_randperm(&t->rng_patch, perm, hw);
  if (st) return ngc_error(t->ctx, st, "patch ids: %lld positions", (long long)hw);
  memcpy(out, perm, (size_t)n * sizeof *out);
  return NEGCUT_OK;
}

/* n normals for this rank's images. With data parallelism, rank r's share
 * [r n, (r + 1) n) of the draw of world * n that one trainer of the whole
 * batch makes (the noise is image-major), so the ranks together use its
 * numbers. */
static negcut_status rand_noise(void *user, int32_t layer, int64_t n, float *out) {
  ngc_trainer *t = user;
  ngc_philox *g = &t->rng_noise;
  (void)layer;
  const uint64_t world = t->cfg.world > 1 ? (uint64_t)t->cfg.world : 1;
  const uint64_t rank = world > 1 ? (uint64_t)t->cfg.rank : 0;
  ngc_philox_normal_at_mt(g->seed, g->stream, 4u * g->counter + rank * (uint64_t)n, (size_t)n,
                          out, t->ctx->threads);
  g->counter += ((uint64_t)n * world + 3) / 4;
  return NEGCUT_OK;
}

static int rand_flip(void *user) {
  ngc_trainer *t = user;
  float u;
  ngc_philox_uniform(&t->rng_flip, &u, 1);
  return u < 0.5f;
}

negcut_status ngc_trainer_init(ngc_trainer *t, negcut_ctx *ctx, const ngc_train_cfg *cfg) {
  negcut_status st;
  int64_t probe[4] = {1, cfg->g.input_nc, 64, 64}, out[4];
  memset(t, 0, sizeof *t);
  t->ctx = ctx;
  t->cfg = *cfg;
  if (cfg->n_nce < 1 || cfg->n_nce > NGC_MAX_NCE_LAYERS)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "trainer: %d NCE layers (1 to %d)",
                     (int)cfg->n_nce, NGC_MAX_NCE_LAYERS);
  if (cfg->num_patches < 1 || cfg->batch < 1)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "trainer: num_patches %d and batch %d (at least 1 each)",
                     (int)cfg->num_patches, (int)cfg->batch);
  if (!(cfg->nce_t > 0.0f))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "trainer: nce_t %g (the NCE temperature: above 0)", (double)cfg->nce_t);
  if (negcut_mode(cfg) && (cfg->num_patches % 2 || cfg->z_dim < 1))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "trainer: NEGCUT needs an even num_patches (%d) and z_dim at least 1 (%d)",
                     (int)cfg->num_patches, (int)cfg->z_dim);
  /* the optimisers' settings, before the networks are built */
  st = ngc_adam_check(ctx, cfg->lr, cfg->beta1, cfg->beta2, ADAM_EPS, 0.0);
  if (st) return st;
  ngc_tape_init(&t->tape, ctx);
  st = ngc_generator_build(&t->G, ctx, &cfg->g);
  if (!st) st = ngc_discriminator_build(&t->D, ctx, &cfg->d);
  for (int32_t l = 0; l < cfg->n_nce && !st; l++) {
    if (ngc_seq_layer_of_module(&t->G, cfg->nce_layers[l]) < 0 ||
        (l > 0 && cfg->nce_layers[l] <= cfg->nce_layers[l - 1])) {
      st = ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "trainer: NCE layer %d is not a module of the generator in increasing order",
                     (int)cfg->nce_layers[l]);
      break;
    }
    st = ngc_seq_shape(ctx, &t->G, probe, cfg->nce_layers[l], out);
    t->feat_c[l] = (int32_t)out[1];
  }
  if (!st) st = ngc_projector_build(&t->F, ctx, cfg->n_nce, t->feat_c, cfg->netf_nc);
  if (!st) st = ngc_net_init_weights(&t->G, 1, 0.02f);
  if (!st) st = ngc_net_init_weights(&t->D, 2, 0.02f);
  if (!st) st = ngc_net_init_weights(&t->F, 3, 0.02f);
  if (!st) st = ngc_adam_init(&t->opt_g, ctx, &t->G, cfg->lr, cfg->beta1, cfg->beta2, ADAM_EPS, 0.0);
  if (!st) st = ngc_adam_init(&t->opt_d, ctx, &t->D, cfg->lr, cfg->beta1, cfg->beta2, ADAM_EPS, 0.0);
  if (!st) st = ngc_adam_init(&t->opt_f, ctx, &t->F, cfg->lr, cfg->beta1, cfg->beta2, ADAM_EPS, 0.0);
  if (!st && negcut_mode(cfg)) {
    st = ngc_neggen_build(&t->N, ctx, cfg->n_nce, cfg->netf_nc, cfg->z_dim);
    if (!st) st = ngc_projector_build(&t->F_ema, ctx, cfg->n_nce, t->feat_c, cfg->netf_nc);
    if (!st) st = ngc_net_init_weights(&t->N, 4, 0.02f);
    if (!st) st = ngc_net_init_weights(&t->F_ema, 5, 0.02f);
    if (!st && cfg->ema_from_f) st = ngc_ema_nets(ctx, &t->F_ema, &t->F, 0.0f);
    /* lr_N exists in the reference's options but optimizer_N uses lr. */
    if (!st) st = ngc_adam_init(&t->opt_n, ctx, &t->N, cfg->lr, cfg->beta1, cfg->beta2, ADAM_EPS, 0.0);
    t->F_ema.requires_grad = 0;
  }
  ngc_philox_init(&t->rng_patch, ctx->seed, NGC_STREAM_PATCH);
  ngc_philox_init(&t->rng_noise, ctx->seed, NGC_STREAM_NOISE);
  ngc_philox_init(&t->rng_flip, ctx->seed, NGC_STREAM_FLIP);
  t->rand = (ngc_rand_source){rand_ids, rand_noise, rand_flip, t};
  if (st) ngc_trainer_release(t);
  return st;
}

int ngc_trainer_rand_rewindable(const ngc_trainer *t) {
  return t->rand.patch_ids == rand_ids && t->rand.noise == rand_noise &&
         t->rand.flip == rand_flip && t->rand.user == t;
}

void ngc_trainer_release(ngc_trainer *t) {
  if (!t) return;
  if (t->ctx) ngc_graph_cache_free(&t->graphs, t->ctx->be);
  ngc_adam_release(&t->opt_g);
  ngc_adam_release(&t->opt_d);
  ngc_adam_release(&t->opt_f);
  ngc_adam_release(&t->opt_n);
  ngc_net_release(&t->G);
  ngc_net_release(&t->D);
  ngc_net_release(&t->F);
  ngc_net_release(&t->N);
  ngc_net_release(&t->F_ema);
  ngc_tape_free(&t->tape);
  if (t->ctx) ngc_xfer_buf_release(t->ctx->be, &t->reduce_buf);
  memset(t, 0, sizeof *t);
}
