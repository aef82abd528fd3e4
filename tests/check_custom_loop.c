/* The build-your-own API against the trainer: examples/custom_loop.c writes
 * one CUT iteration with negcut/nets.h and negcut/losses.h only; given the
 * trainer's weights, inputs and patch ids it must train the networks to the
 * same bits as the library's own iteration (lib/train/step.c). */
#include <string.h>

#include "ngc_test.h"
#include "train/train.h"

#define CUSTOM_LOOP_INTERFACE_ONLY
#include "custom_loop.c"

#define H 32
#define W 32
#define ITERS 2 /* the second one checks that the optimiser states agree too */

static const struct custom_config tiny = {3, 8, 8, 2, 5, {0, 4, 8, 12, 13}, 16, 32, 1, 1.0f, 1.0f, 0.07f, 2e-4};

/* Injected patch ids: the trainer asks in call order (NCE_X layers 0..L-1,
 * then NCE_Y), the custom loop takes the same table. */
typedef struct ids_source {
  const int64_t *const *ids;
  const int64_t *hw;
  int32_t n_layers, next, calls;
  int mismatch;
} ids_source;

static negcut_status give_ids(void *user, int32_t layer, int64_t hw, int64_t n, int64_t *out) {
  ids_source *s = user;
  int32_t l = s->next % s->n_layers;
  int64_t want = s->hw[l] < tiny.num_patches ? s->hw[l] : tiny.num_patches;
  if (s->next >= 2 * s->n_layers || layer != l || hw != s->hw[l] || n != want) {
    s->mismatch = 1;
    return NEGCUT_ERR_INTERNAL;
  }
  memcpy(out, s->ids[s->next++], (size_t)n * sizeof *out);
  s->calls++;
  return NEGCUT_OK;
}

static uint64_t lcg(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 11;
}

static void fill_images(uint64_t *s, float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = (float)(lcg(s) % 20001) / 10000.0f - 1.0f;
}

static void draw_ids(uint64_t *s, int64_t hw, int64_t n, int64_t *out) {
  int64_t *perm = malloc((size_t)hw * sizeof *perm);
  ck_assert_ptr_nonnull(perm);
  for (int64_t i = 0; i < hw; i++) perm[i] = i;
  for (int64_t i = hw - 1; i > 0; i--) {
    int64_t j = (int64_t)(lcg(s) % (uint64_t)(i + 1)), t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  memcpy(out, perm, (size_t)n * sizeof *out);
  free(perm);
}

static ngc_train_cfg tiny_cfg(void) {
  ngc_train_cfg c;
  ngc_train_cfg_defaults(&c, NGC_MODE_CUT);
  c.g = (ngc_generator_cfg){3, 3, tiny.ngf, tiny.n_blocks, 0, 0};
  c.d = (ngc_discriminator_cfg){3, tiny.ndf, 3, 0};
  c.n_nce = tiny.n_layers;
  memcpy(c.nce_layers, tiny.layers, sizeof c.nce_layers);
  c.num_patches = tiny.num_patches;
  c.netf_nc = tiny.netf_nc;
  c.batch = tiny.batch;
  return c;
}

/* Copies every parameter of the trainer's net into the public one, by name;
 * the fixed buffers must already agree. */
static void copy_params(const ngc_net *from, negcut_net *to) {
  for (int32_t i = 0; i < negcut_net_param_count(to); i++) {
    const char *name = negcut_net_param_name(to, i);
    int32_t j = ngc_net_find_param(from, name);
    int64_t shape[4];
    int32_t nd = negcut_net_param_shape(to, i, shape);
    size_t count = 1;
    ck_assert_msg(j >= 0, "the trainer has no parameter %s", name);
    for (int32_t d = 0; d < nd; d++) count *= (size_t)shape[d];
    ck_assert_int_eq((int64_t)count, ngc_numel(&from->params[j].value));
    float *buf = malloc(count * sizeof *buf), *mine = malloc(count * sizeof *mine);
    ck_assert(buf && mine);
    ck_assert_int_eq(ngc_param_download(from, j, buf, 0), NEGCUT_OK);
    if (negcut_net_param_is_buffer(to, i)) {
      ck_assert_int_eq(negcut_net_param_read(to, i, mine, count), NEGCUT_OK);
      ck_assert_msg(!memcmp(buf, mine, count * sizeof *buf), "buffer %s differs", name);
    } else {
      ck_assert_int_eq(negcut_net_param_write(to, i, buf, count), NEGCUT_OK);
    }
    free(buf);
    free(mine);
  }
  ck_assert_int_eq(negcut_net_param_count(to), from->n_params);
}

/* Compares every parameter; returns the number not bit-identical and
 * asserts that all are within rtol 1e-5, atol 1e-7. */
static int compare_params(const char *net_name, const ngc_net *want, const negcut_net *got) {
  int not_exact = 0;
  for (int32_t i = 0; i < negcut_net_param_count(got); i++) {
    const char *name = negcut_net_param_name(got, i);
    int32_t j = ngc_net_find_param(want, name);
    size_t count = (size_t)ngc_numel(&want->params[j].value);
    float *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b);
    char what[160];
    ck_assert(a && b);
    ck_assert_int_eq(ngc_param_download(want, j, a, 0), NEGCUT_OK);
    ck_assert_int_eq(negcut_net_param_read(got, i, b, count), NEGCUT_OK);
    snprintf(what, sizeof what, "%s.%s", net_name, name);
    if (memcmp(a, b, count * sizeof *a)) {
      not_exact++;
      ck_assert_msg(ngc_test_compare(what, b, a, (int64_t)count, 1e-7, 1e-5) == 0,
                    "%s differs beyond rounding", what);
    }
    free(a);
    free(b);
  }
  return not_exact;
}

START_TEST(custom_loop_matches_trainer) {
  negcut_ctx_options co = NEGCUT_CTX_OPTIONS_INIT;
  negcut_ctx *ctx = NULL;
  ngc_trainer t;
  ngc_train_cfg cfg = tiny_cfg();
  struct custom_nets *n = NULL;
  int64_t hw[CUSTOM_MAX_LAYERS], *ids[2 * CUSTOM_MAX_LAYERS];
  const int64_t img = (int64_t)tiny.batch * 3 * H * W;
  float *a = malloc((size_t)img * sizeof *a), *b = malloc((size_t)img * sizeof *b), losses[CUSTOM_N_LOSSES];
  uint64_t s = 12345;

  co.backend = NEGCUT_BACKEND_CPU;
  co.threads = 1;
  co.seed = 3;
  ck_assert(a && b);
  ck_assert_int_eq(negcut_ctx_create(&ctx, &co), NEGCUT_OK);
  ck_assert_int_eq(ngc_trainer_init(&t, ctx, &cfg), NEGCUT_OK);
  ck_assert_int_eq(custom_nets_create(&n, ctx, &tiny), 0);
  copy_params(&t.G, custom_nets_net(n, 0));
  copy_params(&t.D, custom_nets_net(n, 1));
  copy_params(&t.F, custom_nets_net(n, 2));
  ck_assert_int_eq(custom_feature_positions(n, H, W, hw), 0);
  for (int32_t i = 0; i < 2 * tiny.n_layers; i++) {
    ids[i] = malloc((size_t)tiny.num_patches * sizeof *ids[i]);
    ck_assert_ptr_nonnull(ids[i]);
  }

  int exact = 1;
  for (int it = 0; it < ITERS; it++) {
    ids_source src = {(const int64_t *const *)ids, hw, tiny.n_layers, 0, 0, 0};
    fill_images(&s, a, img);
    fill_images(&s, b, img);
    for (int32_t i = 0; i < 2 * tiny.n_layers; i++) {
      int64_t l = i % tiny.n_layers;
      draw_ids(&s, hw[l], hw[l] < tiny.num_patches ? hw[l] : tiny.num_patches, ids[i]);
    }
    t.rand.patch_ids = give_ids;
    t.rand.user = &src;
    ck_assert_msg(ngc_train_step(&t, a, b, H, W, tiny.lr) == NEGCUT_OK, "trainer: %s",
                  negcut_ctx_last_error(ctx));
    ck_assert_msg(!src.mismatch && src.calls == 2 * tiny.n_layers,
                  "the trainer asked for patch ids in another order or size");
    ck_assert_int_eq(custom_cut_iteration(n, a, b, H, W, (const int64_t *const *)ids, losses), 0);

    /* the losses are computed by the same code on the same values */
    const float want[CUSTOM_N_LOSSES] = {t.losses.d_real, t.losses.d_fake, t.losses.g_gan,
                                         t.losses.nce_x, t.losses.nce_y, t.losses.g};
    ck_assert_int_eq(ngc_test_compare("losses", losses, want, CUSTOM_N_LOSSES, 1e-7, 1e-6), 0);
    int not_exact = compare_params("G", &t.G, custom_nets_net(n, 0)) +
                    compare_params("D", &t.D, custom_nets_net(n, 1)) +
                    compare_params("F", &t.F, custom_nets_net(n, 2));
    if (not_exact) exact = 0;
    fprintf(stderr, "custom loop, iteration %d: %d parameter tensors not bit-identical "
                    "(all within rtol 1e-5, atol 1e-7)\n", it + 1, not_exact);
  }
  /* Same ops in the same order on the same backend and threads: the bits
   * must agree, not merely the values. */
  ck_assert_msg(exact, "the custom loop is within rounding of the trainer but not bit-identical");

  for (int32_t i = 0; i < 2 * tiny.n_layers; i++) free(ids[i]);
  free(a);
  free(b);
  custom_nets_free(n);
  ngc_trainer_release(&t);
  negcut_ctx_free(ctx);
}
END_TEST

int main(void) {
  Suite *s = suite_create("custom_loop");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, custom_loop_matches_trainer);
  suite_add_tcase(s, tc);
  return ngc_test_run(s);
}
