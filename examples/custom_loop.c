/* custom_loop: one CUT iteration written with the build-your-own API only
 * (negcut/nets.h, negcut/losses.h), in the reference's order (REFERENCE.md
 * 4-6):
 *
 *   fake = G(cat(real_A, real_B))                  fake_B, idt_B: its halves
 *   D step:   L_D = 0.5 (MSE(D(fake_B.detach()), 0) + MSE(D(real_B), 1))
 *   G+F step: L_G = lambda_GAN MSE(D(fake_B), 1) + 0.5 (NCE_X + NCE_Y), D frozen
 *             NCE_X = lambda_NCE mean_l PatchNCE(F_l(G_enc(fake_B)), F_l(G_enc(real_A)))
 *             NCE_Y = lambda_NCE mean_l PatchNCE(F_l(G_enc(idt_B)),  F_l(G_enc(real_B)))
 *
 * custom_cut_iteration() takes the patch ids as input, so that a test can
 * give it the same ids as the library's trainer and compare the two
 * (tests/check_custom_loop.c compiles this file with -DCUSTOM_LOOP_NO_MAIN).
 * main() trains tiny networks for a few iterations on synthetic images.
 *
 * Every intermediate tensor comes from the tape (negcut_tape_tensor) and is
 * gone at the next negcut_tape_reset; fake_B and idt_B are views of G's
 * output (negcut_tensor_slice), and the two gradients that reach fake_B are
 * added with negcut_tensor_axpby.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <negcut.h>

/* ---- The interface. tests/check_custom_loop.c includes this part alone
 * (CUSTOM_LOOP_INTERFACE_ONLY) and links the rest (CUSTOM_LOOP_NO_MAIN). */
#define CUSTOM_MAX_LAYERS NEGCUT_MAX_NCE_LAYERS

/* What the iteration needs; the reference's CUT values in brackets. */
struct custom_config {
  int32_t input_nc;                     /* [3] */
  int32_t ngf, ndf, n_blocks;           /* [64, 64, 9] */
  int32_t n_layers;                     /* NCE layers [5] */
  int32_t layers[CUSTOM_MAX_LAYERS];    /* [0, 4, 8, 12, 16] */
  int32_t num_patches;                  /* S [256] */
  int32_t netf_nc;                      /* [256] */
  int32_t batch;                        /* B [1] */
  float lambda_gan, lambda_nce, nce_t;  /* [1, 1, 0.07] */
  double lr;                            /* [2e-4] */
};

/* Losses of the last iteration, in this order. */
enum { CUSTOM_D_REAL, CUSTOM_D_FAKE, CUSTOM_G_GAN, CUSTOM_NCE_X, CUSTOM_NCE_Y, CUSTOM_G_TOTAL,
       CUSTOM_N_LOSSES };

struct custom_nets; /* G, D, F, their optimisers, the losses, a tape */

int custom_nets_create(struct custom_nets **out, negcut_ctx *ctx, const struct custom_config *c);
void custom_nets_free(struct custom_nets *n);
negcut_net *custom_nets_net(struct custom_nets *n, int which); /* 0 G, 1 D, 2 F */
int custom_feature_positions(struct custom_nets *n, int64_t height, int64_t width, int64_t *hw);
int custom_cut_iteration(struct custom_nets *n, const float *real_a, const float *real_b,
                         int64_t height, int64_t width, const int64_t *const *ids_per_call_layer,
                         float *losses);

#ifndef CUSTOM_LOOP_INTERFACE_ONLY
/* ---- The implementation. */
struct custom_nets {
  negcut_ctx *ctx;
  struct custom_config c;
  negcut_net *g, *d, *f;
  negcut_optimizer *opt_g, *opt_d, *opt_f;
  negcut_loss *gan_real, *gan_fake, *nce;
  negcut_tape *tape;
};

static int fail(struct custom_nets *n, negcut_status st, const char *what) {
  fprintf(stderr, "custom_loop: %s: %s (%s)\n", what, negcut_status_str(st),
          negcut_ctx_last_error(n ? n->ctx : NULL));
  return -1;
}

#define TRY(call)                                   \
  do {                                              \
    negcut_status st_ = (call);                     \
    if (st_ != NEGCUT_OK) return fail(n, st_, #call); \
  } while (0)

/* A tape tensor of t's shape (NULL on failure, with the message on ctx). */
static negcut_tensor *like(struct custom_nets *n, const negcut_tensor *t) {
  int64_t shape[4] = {1, 1, 1, 1};
  int32_t nd = negcut_tensor_ndim(t);
  negcut_tensor *out = NULL;
  for (int32_t i = 0; i < nd && i < 4; i++) shape[i] = negcut_tensor_dim(t, i);
  return negcut_tape_tensor(&out, n->tape, nd, shape) == NEGCUT_OK ? out : NULL;
}

negcut_net *custom_nets_net(struct custom_nets *n, int which) {
  return which == 0 ? n->g : which == 1 ? n->d : which == 2 ? n->f : NULL;
}

/* channels[l] (may be NULL) and hw[l] = H_l * W_l (may be NULL) of each NCE
 * layer's feature for height x width images. */
static int feature_shapes(struct custom_nets *n, int64_t height, int64_t width, int32_t *channels,
                          int64_t *hw) {
  const int64_t in[4] = {1, n->c.input_nc, height, width};
  for (int32_t l = 0; l < n->c.n_layers; l++) {
    int64_t out[4];
    TRY(negcut_net_feature_shape(n->g, in, n->c.layers[l], out));
    if (channels) channels[l] = (int32_t)out[1];
    if (hw) hw[l] = out[2] * out[3];
  }
  return 0;
}

/* hw[l] = H_l * W_l positions of NCE layer l for height x width images:
 * the range the patch ids of layer l are drawn from. */
int custom_feature_positions(struct custom_nets *n, int64_t height, int64_t width, int64_t *hw) {
  return feature_shapes(n, height, width, NULL, hw);
}

int custom_nets_create(struct custom_nets **out, negcut_ctx *ctx, const struct custom_config *c) {
  negcut_generator_options go = NEGCUT_GENERATOR_OPTIONS_INIT;
  negcut_discriminator_options dopt = NEGCUT_DISCRIMINATOR_OPTIONS_INIT;
  negcut_head_options fo = NEGCUT_HEAD_OPTIONS_INIT;
  negcut_adam_options ao = NEGCUT_ADAM_OPTIONS_INIT;
  negcut_loss_options lo = NEGCUT_LOSS_OPTIONS_INIT;
  struct custom_nets *n = calloc(1, sizeof *n);
  negcut_status st;
  *out = NULL;
  if (!n) return -1;
  n->ctx = ctx;
  n->c = *c;
  go.input_nc = go.output_nc = c->input_nc;
  go.ngf = c->ngf;
  go.n_blocks = c->n_blocks;
  dopt.input_nc = c->input_nc;
  dopt.ndf = c->ndf;
  ao.lr = c->lr;
  fo.n_layers = c->n_layers;
  fo.nc = c->netf_nc;
  st = negcut_net_create_generator(&n->g, ctx, &go);
  if (!st) st = negcut_net_create_discriminator(&n->d, ctx, &dopt);
  if (!st) st = negcut_tape_create(&n->tape, ctx);
  /* The reference creates F lazily on the first batch; here the feature
   * shapes give the MLPs' input widths. */
  if (!st && feature_shapes(n, 32, 32, fo.channels, NULL)) st = NEGCUT_ERR_INTERNAL;
  if (!st) st = negcut_net_create_projector(&n->f, ctx, &fo);
  if (!st) st = negcut_optimizer_create_adam(&n->opt_g, n->g, &ao);
  if (!st) st = negcut_optimizer_create_adam(&n->opt_d, n->d, &ao);
  if (!st) st = negcut_optimizer_create_adam(&n->opt_f, n->f, &ao);
  lo.kind = NEGCUT_LOSS_GAN_LSGAN;
  lo.target_real = 1;
  if (!st) st = negcut_loss_create(&n->gan_real, ctx, &lo);
  lo.target_real = 0;
  if (!st) st = negcut_loss_create(&n->gan_fake, ctx, &lo);
  lo.kind = NEGCUT_LOSS_PATCHNCE;
  lo.tau = c->nce_t;
  lo.batch = c->batch;
  if (!st) st = negcut_loss_create(&n->nce, ctx, &lo);
  if (st) {
    fail(n, st, "custom_nets_create");
    custom_nets_free(n);
    return -1;
  }
  *out = n;
  return 0;
}

void custom_nets_free(struct custom_nets *n) {
  if (!n) return;
  negcut_loss_free(n->gan_real);
  negcut_loss_free(n->gan_fake);
  negcut_loss_free(n->nce);
  negcut_optimizer_free(n->opt_g);
  negcut_optimizer_free(n->opt_d);
  negcut_optimizer_free(n->opt_f);
  negcut_tape_free(n->tape);
  negcut_net_free(n->g);
  negcut_net_free(n->d);
  negcut_net_free(n->f);
  free(n);
}

/* The encoder pass of G on one batch: its features and its record. */
struct encoding {
  negcut_tensor *feat[CUSTOM_MAX_LAYERS]; /* (B, C_l, H_l, W_l), tape-owned */
  negcut_record *rec;
};

/* One PatchNCE evaluation (REFERENCE.md 4) between source (keys) and target
 * (queries) features at ids[l]: the value lambda_NCE * mean_l NCE_l. */
struct nce_eval {
  negcut_record *q_rec[CUSTOM_MAX_LAYERS], *nce_rec[CUSTOM_MAX_LAYERS];
  negcut_tensor *q[CUSTOM_MAX_LAYERS];
};

static int nce_forward(struct custom_nets *n, const struct encoding *src, const struct encoding *tgt,
                       const int64_t *const *ids, struct nce_eval *ev, float *value) {
  double total = 0.0;
  for (int32_t l = 0; l < n->c.n_layers; l++) {
    int64_t hw = negcut_tensor_dim(src->feat[l], 2) * negcut_tensor_dim(src->feat[l], 3);
    int64_t n_ids = hw < n->c.num_patches ? hw : n->c.num_patches;
    negcut_tensor *k;
    negcut_record *k_rec;
    float v;
    /* keys first, queries at the same ids, through the same MLP */
    TRY(negcut_projector_forward(n->f, n->tape, l, src->feat[l], ids[l], n_ids, &k, &k_rec));
    TRY(negcut_projector_forward(n->f, n->tape, l, tgt->feat[l], ids[l], n_ids, &ev->q[l], &ev->q_rec[l]));
    const negcut_tensor *in[2] = {ev->q[l], k};
    TRY(negcut_loss_forward(n->nce, n->tape, 2, in, &v, &ev->nce_rec[l]));
    total += v;
  }
  *value = (float)(n->c.lambda_nce * total / n->c.n_layers);
  return 0;
}

/* weight * NCE backpropagated through F (queries only: k is detached) and
 * G's encoder pass on the target; dtgt receives the gradient at the target
 * image. */
static int nce_backward(struct custom_nets *n, const struct encoding *tgt, const struct nce_eval *ev,
                        float weight, negcut_tensor *dtgt) {
  negcut_tensor *dfeat[CUSTOM_MAX_LAYERS];
  for (int32_t l = 0; l < n->c.n_layers; l++) {
    negcut_tensor *dq = like(n, ev->q[l]);
    dfeat[l] = like(n, tgt->feat[l]);
    if (!dq || !dfeat[l]) return fail(n, NEGCUT_ERR_OUT_OF_MEMORY, "nce_backward");
    TRY(negcut_loss_backward(n->nce, ev->nce_rec[l], weight, 1, &dq));
    TRY(negcut_projector_backward(n->f, ev->q_rec[l], dq, dfeat[l]));
  }
  TRY(negcut_net_backward(n->g, tgt->rec, NULL, n->c.n_layers, (const negcut_tensor *const *)dfeat, dtgt));
  return 0;
}

/* ids_per_call_layer[call * L + l]: min(S, H_l W_l) patch ids of NCE layer l
 * for call 0 (NCE_X) and call 1 (NCE_Y). losses may be NULL. */
int custom_cut_iteration(struct custom_nets *n, const float *real_a, const float *real_b,
                         int64_t height, int64_t width, const int64_t *const *ids_per_call_layer,
                         float *losses) {
  const struct custom_config *c = &n->c;
  const int64_t b = c->batch, ch = c->input_nc, img = b * ch * height * width;
  const int64_t half[4] = {b, ch, height, width}, both[4] = {2 * b, ch, height, width};
  int64_t dshape[4];
  negcut_tensor *real, *fake, *dfake, *ra, *rb, *fb, *ib, *dfb, *dib, *pred_f, *pred_r, *pred, *dpred, *dt;
  negcut_record *rec_g, *rec_df, *rec_dr, *rec_d, *rec_lf, *rec_lr, *rec_lg;
  struct encoding src[2], tgt[2];
  struct nce_eval ev[2];
  float d_fake, d_real, g_gan, nce[2];

  TRY(negcut_tape_reset(n->tape));
  TRY(negcut_net_output_shape(n->d, half, dshape));
  TRY(negcut_tape_tensor(&real, n->tape, 4, both)); /* cat(real_A, real_B) */
  TRY(negcut_tape_tensor(&fake, n->tape, 4, both));
  TRY(negcut_tape_tensor(&dfake, n->tape, 4, both));
  TRY(negcut_tape_tensor(&pred_f, n->tape, 4, dshape));
  TRY(negcut_tape_tensor(&pred_r, n->tape, 4, dshape));
  TRY(negcut_tape_tensor(&pred, n->tape, 4, dshape));
  TRY(negcut_tape_tensor(&dpred, n->tape, 4, dshape));
  TRY(negcut_tape_tensor(&dt, n->tape, 4, half));
  TRY(negcut_tensor_slice(&ra, n->tape, real, 0, b));
  TRY(negcut_tensor_slice(&rb, n->tape, real, b, b));
  TRY(negcut_tensor_slice(&fb, n->tape, fake, 0, b)); /* fake_B */
  TRY(negcut_tensor_slice(&ib, n->tape, fake, b, b)); /* idt_B */
  TRY(negcut_tensor_slice(&dfb, n->tape, dfake, 0, b));
  TRY(negcut_tensor_slice(&dib, n->tape, dfake, b, b));

  /* ---- G forward on cat(real_A, real_B) (IN is per image, so one run
   * equals two) */
  TRY(negcut_tensor_write(ra, real_a, (size_t)img));
  TRY(negcut_tensor_write(rb, real_b, (size_t)img));
  TRY(negcut_net_forward(n->g, n->tape, real, fake, &rec_g));

  /* ---- D step: L_D = 0.5 (MSE(D(fake_B.detach()), 0) + MSE(D(real_B), 1)) */
  TRY(negcut_net_forward(n->d, n->tape, fb, pred_f, &rec_df));
  TRY(negcut_loss_forward(n->gan_fake, n->tape, 1, (const negcut_tensor *const *)&pred_f, &d_fake, &rec_lf));
  TRY(negcut_net_forward(n->d, n->tape, rb, pred_r, &rec_dr));
  TRY(negcut_loss_forward(n->gan_real, n->tape, 1, (const negcut_tensor *const *)&pred_r, &d_real, &rec_lr));
  TRY(negcut_net_set_requires_grad(n->d, 1));
  TRY(negcut_net_zero_grad(n->d));
  /* the fake branch stops at D's input (dx NULL): fake_B is detached */
  TRY(negcut_loss_backward(n->gan_fake, rec_lf, 0.5f, 1, &dpred));
  TRY(negcut_net_backward(n->d, rec_df, dpred, 0, NULL, NULL));
  TRY(negcut_loss_backward(n->gan_real, rec_lr, 0.5f, 1, &dpred));
  TRY(negcut_net_backward(n->d, rec_dr, dpred, 0, NULL, NULL));
  TRY(negcut_optimizer_step(n->opt_d));

  /* ---- encoder passes: sources real_A, real_B (keys), targets fake_B,
   * idt_B (queries) */
  for (int i = 0; i < 2; i++) {
    TRY(negcut_net_encode(n->g, n->tape, i ? rb : ra, c->n_layers, c->layers, src[i].feat, &src[i].rec));
    TRY(negcut_net_encode(n->g, n->tape, i ? ib : fb, c->n_layers, c->layers, tgt[i].feat, &tgt[i].rec));
  }

  /* ---- G + F step, D frozen: L_G = lambda_GAN MSE(D(fake_B), 1) + 0.5 (NCE_X + NCE_Y) */
  TRY(negcut_net_set_requires_grad(n->d, 0));
  TRY(negcut_net_forward(n->d, n->tape, fb, pred, &rec_d));
  TRY(negcut_loss_forward(n->gan_real, n->tape, 1, (const negcut_tensor *const *)&pred, &g_gan, &rec_lg));
  g_gan *= c->lambda_gan;
  for (int i = 0; i < 2; i++)
    if (nce_forward(n, &src[i], &tgt[i], ids_per_call_layer + i * c->n_layers, &ev[i], &nce[i])) return -1;

  TRY(negcut_net_zero_grad(n->g));
  TRY(negcut_net_zero_grad(n->f));
  /* dfake = [dGAN + dNCE_X ; dNCE_Y]: GAN through frozen D into fake_B ... */
  TRY(negcut_tensor_fill(dfake, 0.0f));
  TRY(negcut_loss_backward(n->gan_real, rec_lg, c->lambda_gan, 1, &dpred));
  TRY(negcut_net_backward(n->d, rec_d, dpred, 0, NULL, dfb));
  /* ... and d(0.5 lambda_NCE / L * sum_l NCE_l) through F and the encoder
   * passes, added into fake_B's and idt_B's halves */
  for (int i = 0; i < 2; i++) {
    if (nce_backward(n, &tgt[i], &ev[i], 0.5f * c->lambda_nce / (float)c->n_layers, dt)) return -1;
    TRY(negcut_tensor_axpby(1.0f, dt, 1.0f, i ? dib : dfb));
  }
  TRY(negcut_net_backward(n->g, rec_g, dfake, 0, NULL, NULL));
  TRY(negcut_optimizer_step(n->opt_g));
  TRY(negcut_optimizer_step(n->opt_f));

  if (losses) {
    losses[CUSTOM_D_REAL] = d_real;
    losses[CUSTOM_D_FAKE] = d_fake;
    losses[CUSTOM_G_GAN] = g_gan;
    losses[CUSTOM_NCE_X] = nce[0];
    losses[CUSTOM_NCE_Y] = nce[1];
    losses[CUSTOM_G_TOTAL] = g_gan + 0.5f * (nce[0] + nce[1]);
  }
  return 0;
}

#ifndef CUSTOM_LOOP_NO_MAIN
/* A small deterministic generator for the example's patch ids and images. */
static uint64_t next_u64(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 11;
}

/* The first n of a random permutation of 0 .. hw-1 (as the reference
 * draws patch ids). */
static void draw_ids(uint64_t *s, int64_t hw, int64_t n, int64_t *perm, int64_t *out) {
  for (int64_t i = 0; i < hw; i++) perm[i] = i;
  for (int64_t i = hw - 1; i > 0; i--) {
    int64_t j = (int64_t)(next_u64(s) % (uint64_t)(i + 1)), tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
  memcpy(out, perm, (size_t)n * sizeof *out);
}

int main(void) {
  struct custom_config c = {3, 8, 8, 2, 5, {0, 4, 8, 12, 13}, 16, 32, 1, 1.0f, 1.0f, 0.07f, 2e-4};
  const int64_t h = 32, w = 32, img = 3 * h * w;
  negcut_ctx_options co = NEGCUT_CTX_OPTIONS_INIT;
  negcut_ctx *ctx = NULL;
  struct custom_nets *n = NULL;
  int64_t hw[CUSTOM_MAX_LAYERS], *ids[2 * CUSTOM_MAX_LAYERS] = {0}, *perm = NULL;
  float *a = malloc((size_t)img * sizeof *a), *b = malloc((size_t)img * sizeof *b), losses[CUSTOM_N_LOSSES];
  uint64_t s = 42;
  int rc = 1;

  co.backend = NEGCUT_BACKEND_CPU;
  co.threads = 2;
  co.seed = 7;
  if (!a || !b || negcut_ctx_create(&ctx, &co)) {
    fprintf(stderr, "custom_loop: %s\n", negcut_ctx_last_error(NULL));
    goto out;
  }
  if (custom_nets_create(&n, ctx, &c) || custom_feature_positions(n, h, w, hw)) goto out;
  for (int32_t i = 0; i < 2 * c.n_layers; i++) {
    int64_t l = i % c.n_layers;
    ids[i] = malloc((size_t)hw[l] * sizeof *ids[i]);
    if (!ids[i]) goto out;
  }
  perm = malloc((size_t)hw[0] * sizeof *perm); /* layer 0 has the most positions */
  if (!perm) goto out;
  printf("iter    D_real   D_fake    G_GAN    NCE_X    NCE_Y        G\n");
  for (int it = 1; it <= 5; it++) {
    /* synthetic unpaired images: A horizontal, B vertical gradients */
    for (int64_t k = 0; k < img; k++) {
      int64_t y = (k / w) % h, x = k % w;
      float noise = (float)(next_u64(&s) % 1000) / 5000.0f - 0.1f;
      a[k] = (float)x / (float)(w - 1) * 1.6f - 0.8f + noise;
      b[k] = (float)y / (float)(h - 1) * 1.6f - 0.8f - noise;
    }
    for (int32_t i = 0; i < 2 * c.n_layers; i++) {
      int64_t l = i % c.n_layers, cnt = hw[l] < c.num_patches ? hw[l] : c.num_patches;
      draw_ids(&s, hw[l], cnt, perm, ids[i]);
    }
    if (custom_cut_iteration(n, a, b, h, w, (const int64_t *const *)ids, losses)) goto out;
    printf("%4d %8.4f %8.4f %8.4f %8.4f %8.4f %8.4f\n", it, losses[CUSTOM_D_REAL], losses[CUSTOM_D_FAKE],
           losses[CUSTOM_G_GAN], losses[CUSTOM_NCE_X], losses[CUSTOM_NCE_Y], losses[CUSTOM_G_TOTAL]);
  }
  rc = 0;
out:
  for (int i = 0; i < 2 * CUSTOM_MAX_LAYERS; i++) free(ids[i]);
  free(perm);
  free(a);
  free(b);
  custom_nets_free(n);
  negcut_ctx_free(ctx);
  return rc;
}
#endif
#endif /* CUSTOM_LOOP_INTERFACE_ONLY */
