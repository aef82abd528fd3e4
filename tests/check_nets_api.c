/* The build-your-own handles of negcut/nets.h and negcut/losses.h: tensors,
 * tape tensors and slices, parameters with the reference names, shapes,
 * forward/backward contracts, and the trainer's set_epoch. */
#include <check.h>
#include <math.h>
#include <string.h>

#include <negcut.h>

#include "ngc_test.h"

static negcut_ctx *ctx;

static void setup(void) {
  negcut_ctx_options o;
  negcut_ctx_options_init(&o);
  o.backend = NEGCUT_BACKEND_CPU;
  o.threads = 1;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_OK);
}

static void teardown(void) { negcut_ctx_free(ctx); }

/* ngf 4, one residual block: a generator made in a moment. */
static negcut_generator_options tiny_generator(void) {
  negcut_generator_options g;
  negcut_generator_options_init(&g);
  g.ngf = 4;
  g.n_blocks = 1;
  return g;
}

START_TEST(test_tensors_and_slices) {
  negcut_tape *tape = NULL;
  negcut_tensor *t = NULL, *s = NULL, *u = NULL;
  const int64_t shape[4] = {3, 2, 2, 2};
  float v[24], got[8];
  for (int i = 0; i < 24; i++) v[i] = (float)i;
  ck_assert_int_eq(negcut_tape_create(&tape, ctx), NEGCUT_OK);
  ck_assert_int_eq(negcut_tape_tensor(&t, tape, 4, shape), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_numel(t), 24);
  ck_assert_int_eq(negcut_tensor_write(t, v, 24), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_write(t, v, 23), NEGCUT_ERR_SHAPE);
  /* item 1 of 3 is a view: reads 8..15, writes go through to t */
  ck_assert_int_eq(negcut_tensor_slice(&s, tape, t, 1, 1), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_dim(s, 0), 1);
  ck_assert_int_eq(negcut_tensor_read(s, got, 8), NEGCUT_OK);
  for (int i = 0; i < 8; i++) ck_assert_float_eq(got[i], (float)(8 + i));
  ck_assert_int_eq(negcut_tensor_fill(s, -1.0f), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_read(t, v, 24), NEGCUT_OK);
  ck_assert_float_eq(v[7], 7.0f);
  ck_assert_float_eq(v[8], -1.0f);
  ck_assert_float_eq(v[16], 16.0f);
  /* y = 2 x + 0.5 y on the slices 0 and 2 */
  ck_assert_int_eq(negcut_tensor_slice(&u, tape, t, 2, 1), NEGCUT_OK);
  negcut_tensor *first = NULL;
  ck_assert_int_eq(negcut_tensor_slice(&first, tape, t, 0, 1), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_axpby(2.0f, first, 0.5f, u), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_read(u, got, 8), NEGCUT_OK);
  for (int i = 0; i < 8; i++) ck_assert_float_eq(got[i], 2.0f * (float)i + 0.5f * (float)(16 + i));
  ck_assert_int_eq(negcut_tensor_axpby(1.0f, t, 1.0f, u), NEGCUT_ERR_SHAPE);
  ck_assert_int_eq(negcut_tensor_slice(&s, tape, t, 2, 2), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(negcut_tensor_slice(&s, tape, t, -1, 1), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_tape_tensor(NULL, tape, 4, shape), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_tape_reset(tape), NEGCUT_OK);
  negcut_tape_free(tape);
  negcut_tape_free(NULL);
  negcut_tensor_free(NULL);
}
END_TEST

START_TEST(test_generator_params_and_shapes) {
  negcut_net *g = NULL, *d = NULL;
  int64_t in[4] = {1, 3, 256, 256}, out[4], shape[4];
  ck_assert_int_eq(negcut_net_create_generator(&g, ctx, NULL), NEGCUT_OK);
  /* the reference's 52 state_dict tensors, 4 of them the fixed blur filters */
  ck_assert_int_eq(negcut_net_param_count(g), 52);
  int buffers = 0;
  int64_t trainable = 0;
  for (int32_t i = 0; i < negcut_net_param_count(g); i++) {
    int32_t nd = negcut_net_param_shape(g, i, shape);
    int64_t n = 1;
    for (int32_t k = 0; k < nd; k++) n *= shape[k];
    if (negcut_net_param_is_buffer(g, i)) buffers++;
    else trainable += n;
  }
  ck_assert_int_eq(buffers, 4);
  ck_assert_int_eq(trainable, 11378179); /* REFERENCE.md 1 */
  ck_assert_str_eq(negcut_net_param_name(g, 0), "model.1.weight");
  ck_assert_ptr_null(negcut_net_param_name(g, 52));
  ck_assert_int_eq(negcut_net_output_shape(g, in, out), NEGCUT_OK);
  ck_assert(out[1] == 3 && out[2] == 256 && out[3] == 256);
  static const int32_t modules[5] = {0, 4, 8, 12, 16};
  static const int64_t want[5][3] = {{3, 262, 262}, {128, 256, 256}, {256, 128, 128}, {256, 64, 64}, {256, 64, 64}};
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(negcut_net_feature_shape(g, in, modules[i], out), NEGCUT_OK);
    ck_assert(out[1] == want[i][0] && out[2] == want[i][1] && out[3] == want[i][2]);
  }
  ck_assert_int_eq(negcut_net_feature_shape(g, in, 99, out), NEGCUT_ERR_INVALID_ARGUMENT);
  /* encode refuses layers that are no module (the residual blocks' inner
   * layers are marked -1) before it runs anything */
  {
    negcut_tape *tape = NULL;
    negcut_tensor *x = NULL, *feats[2];
    negcut_record *rec = NULL;
    const int64_t small[4] = {1, 3, 16, 16};
    const int32_t bad[2][2] = {{-1, 4}, {0, 99}};
    ck_assert_int_eq(negcut_tape_create(&tape, ctx), NEGCUT_OK);
    ck_assert_int_eq(negcut_tape_tensor(&x, tape, 4, small), NEGCUT_OK);
    ck_assert_int_eq(negcut_tensor_fill(x, 0.5f), NEGCUT_OK);
    for (int k = 0; k < 2; k++) {
      ck_assert_int_eq(negcut_net_encode(g, tape, x, 2, bad[k], feats, &rec),
                       NEGCUT_ERR_INVALID_ARGUMENT);
      ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), k ? "layer 99" : "layer -1"));
    }
    negcut_tape_free(tape);
  }
  /* a 250x333 input: the reference's size change */
  int64_t odd[4] = {1, 3, 250, 333};
  ck_assert_int_eq(negcut_net_output_shape(g, odd, out), NEGCUT_OK);
  ck_assert(out[2] == 252 && out[3] == 336);
  /* sizes no image has are refused, not overflowed */
  const int64_t huge[3][4] = {{1, 3, INT64_MAX, 64}, {1, 3, 64, 0}, {INT64_MAX, 3, 64, 64}};
  for (int k = 0; k < 3; k++)
    ck_assert_int_eq(negcut_net_output_shape(g, huge[k], out), NEGCUT_ERR_SHAPE);
  ck_assert_int_eq(negcut_net_create_discriminator(&d, ctx, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_net_output_shape(d, in, out), NEGCUT_OK);
  ck_assert(out[1] == 1 && out[2] == 30 && out[3] == 30); /* REFERENCE.md 2 */
  ck_assert_int_eq(negcut_net_feature_shape(d, in, 0, out), NEGCUT_ERR_INVALID_ARGUMENT);
  /* a buffer cannot be written; a parameter round-trips */
  float w[64 * 3 * 7 * 7];
  ck_assert_int_eq(negcut_net_param_read(g, 0, w, 64 * 3 * 7 * 7), NEGCUT_OK);
  w[5] = 0.25f;
  ck_assert_int_eq(negcut_net_param_write(g, 0, w, 64 * 3 * 7 * 7), NEGCUT_OK);
  w[5] = 0;
  ck_assert_int_eq(negcut_net_param_read(g, 0, w, 64 * 3 * 7 * 7), NEGCUT_OK);
  ck_assert_float_eq(w[5], 0.25f);
  ck_assert_int_eq(negcut_net_param_read(g, 0, w, 10), NEGCUT_ERR_SHAPE);
  for (int32_t i = 0; i < negcut_net_param_count(g); i++)
    if (negcut_net_param_is_buffer(g, i)) {
      float f[256 * 16];
      negcut_net_param_shape(g, i, shape);
      size_t n = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
      ck_assert_int_eq(negcut_net_param_write(g, i, f, n), NEGCUT_ERR_INVALID_ARGUMENT);
      break;
    }
  negcut_net_free(g);
  negcut_net_free(d);
  negcut_net_free(NULL);
}
END_TEST

/* Handles a tape gave out are dead after negcut_tape_reset: each use in the
 * next step is refused with NEGCUT_ERR_STATE (the tape grew past one block,
 * whose memory the reset gave back: reading through a stale handle would be
 * a use-after-free, which the sanitizer build of CI reports), beside the
 * live handles of that step, which work. */
START_TEST(test_stale_handles_after_reset) {
  negcut_generator_options g = tiny_generator();
  negcut_net *net = NULL;
  negcut_tape *tape = NULL;
  negcut_tensor *x = NULL, *y = NULL, *dy = NULL, *dx = NULL, *old = NULL, *feats[1];
  negcut_record *r1 = NULL, *r2 = NULL, *enc = NULL, *lrec = NULL;
  const int64_t shape[4] = {1, 3, 64, 64};
  const int32_t layer = 4;
  float v[4];
  ck_assert_int_eq(negcut_net_create_generator(&net, ctx, &g), NEGCUT_OK);
  ck_assert_int_eq(negcut_tape_create(&tape, ctx), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_create(&x, ctx, 4, shape), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_create(&y, ctx, 4, shape), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_create(&dy, ctx, 4, shape), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_create(&dx, ctx, 4, shape), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_fill(x, 0.1f), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_fill(dy, 0.01f), NEGCUT_OK);
  ck_assert_int_eq(negcut_net_forward(net, tape, x, y, &r1), NEGCUT_OK);
  ck_assert_int_eq(negcut_net_forward(net, tape, x, y, &r2), NEGCUT_OK);
  ck_assert_int_eq(negcut_net_encode(net, tape, x, 1, &layer, feats, &enc), NEGCUT_OK);
  ck_assert_int_eq(negcut_tape_tensor(&old, tape, 4, shape), NEGCUT_OK);
  negcut_loss_options lo;
  negcut_loss_options_init(&lo);
  lo.kind = NEGCUT_LOSS_GAN_LSGAN;
  negcut_loss *gan = NULL;
  ck_assert_int_eq(negcut_loss_create(&gan, ctx, &lo), NEGCUT_OK);
  const negcut_tensor *gan_in[1] = {feats[0]};
  ck_assert_int_eq(negcut_loss_forward(gan, tape, 1, gan_in, v, &lrec), NEGCUT_OK);

  ck_assert_int_eq(negcut_tape_reset(tape), NEGCUT_OK);
  ck_assert_int_eq(negcut_net_backward(net, r2, dy, 0, NULL, dx), NEGCUT_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "before its tape's reset"));
  ck_assert_int_eq(negcut_net_backward(net, r1, dy, 0, NULL, dx), NEGCUT_ERR_STATE);
  negcut_tensor *gfeat[1] = {NULL};
  ck_assert_int_eq(negcut_loss_backward(gan, lrec, 1.0f, 1, gfeat), NEGCUT_ERR_STATE);
  ck_assert_int_eq(negcut_tensor_read(feats[0], v, 1), NEGCUT_ERR_STATE);
  ck_assert_int_eq(negcut_tensor_fill(old, 0.0f), NEGCUT_ERR_STATE);
  ck_assert_int_eq(negcut_tensor_axpby(1.0f, x, 1.0f, old), NEGCUT_ERR_STATE);
  ck_assert_int_eq(negcut_tensor_numel(old), 0);
  ck_assert_int_eq(negcut_tensor_ndim(old), 0);
  ck_assert_int_eq(negcut_net_forward(net, tape, old, y, &r1), NEGCUT_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "argument 0"));
  /* the next step's handles work, and the last step's stay refused beside
   * them (the usual mistake: a record kept from the step before) */
  negcut_record *now = NULL;
  negcut_tensor *fresh = NULL;
  ck_assert_int_eq(negcut_net_forward(net, tape, x, y, &now), NEGCUT_OK);
  ck_assert_int_eq(negcut_net_forward(net, tape, x, y, &now), NEGCUT_OK);
  ck_assert_int_eq(negcut_tape_tensor(&fresh, tape, 4, shape), NEGCUT_OK);
  ck_assert_int_eq(negcut_net_backward(net, now, dy, 0, NULL, dx), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_fill(fresh, 0.5f), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_numel(fresh), 64 * 64 * 3);
  ck_assert_int_eq(negcut_net_backward(net, r1, dy, 0, NULL, dx), NEGCUT_ERR_STATE);
  ck_assert_int_eq(negcut_net_backward(net, r2, dy, 0, NULL, dx), NEGCUT_ERR_STATE);
  ck_assert_int_eq(negcut_tensor_fill(old, 0.0f), NEGCUT_ERR_STATE);
  ck_assert_int_eq(negcut_tensor_read(feats[0], v, 1), NEGCUT_ERR_STATE);
  negcut_loss_free(gan);
  negcut_tensor_free(x);
  negcut_tensor_free(y);
  negcut_tensor_free(dy);
  negcut_tensor_free(dx);
  negcut_tape_free(tape);
  negcut_net_free(net);
}
END_TEST

/* Hyperparameters that would train NaNs are refused where they are given
 * (found by a sweep of the API: each was accepted, and the weights or the
 * loss became NaN or infinite): init_gain, the NCE temperature, Adam's
 * options and learning rate; and a projector asked for more patches than
 * its feature map has positions (it allocated first). */
START_TEST(test_bad_hyperparameters) {
  negcut_generator_options g = tiny_generator();
  negcut_net *net = NULL;
  const float gains[3] = {INFINITY, NAN, -0.5f};
  for (int i = 0; i < 3; i++) {
    g.init_gain = gains[i];
    ck_assert_int_eq(negcut_net_create_generator(&net, ctx, &g), NEGCUT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(net);
    ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "init_gain"));
  }
  g.init_gain = 0.0f; /* the default */
  ck_assert_int_eq(negcut_net_create_generator(&net, ctx, &g), NEGCUT_OK);

  negcut_loss_options lo;
  negcut_loss_options_init(&lo);
  lo.kind = NEGCUT_LOSS_PATCHNCE;
  negcut_loss *loss = NULL;
  const float taus[3] = {NAN, INFINITY, -1.0f};
  for (int i = 0; i < 3; i++) {
    lo.tau = taus[i];
    ck_assert_int_eq(negcut_loss_create(&loss, ctx, &lo), NEGCUT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(loss);
  }

  negcut_optimizer *opt = NULL;
  for (int i = 0; i < 7; i++) {
    negcut_adam_options ao;
    negcut_adam_options_init(&ao);
    switch (i) {
    case 0: ao.lr = INFINITY; break;
    case 1: ao.lr = NAN; break;
    case 2: ao.beta1 = 1.5; break;
    case 3: ao.beta2 = 1.0; break;
    case 4: ao.eps = 0.0; break;
    case 5: ao.weight_decay = INFINITY; break;
    case 6: ao.weight_decay = -1.0; break;
    }
    ck_assert_msg(negcut_optimizer_create_adam(&opt, net, &ao) == NEGCUT_ERR_INVALID_ARGUMENT,
                  "Adam option %d accepted", i);
    ck_assert_ptr_null(opt);
    ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "adam:"));
  }
  ck_assert_int_eq(negcut_optimizer_create_adam(&opt, net, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_optimizer_set_lr(opt, INFINITY), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_optimizer_set_lr(opt, NAN), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_optimizer_set_lr(opt, 1e-3), NEGCUT_OK);
  negcut_optimizer_free(opt);

  /* a projector over 4x4 features: 1 to 16 patch ids */
  negcut_head_options ho;
  negcut_head_options_init(&ho);
  ho.n_layers = 1;
  ho.channels[0] = 3;
  ho.nc = 8;
  negcut_net *proj = NULL;
  negcut_tape *tape = NULL;
  negcut_tensor *feat = NULL, *out = NULL;
  negcut_record *rec = NULL;
  const int64_t shape[4] = {1, 3, 4, 4};
  int64_t ids[17];
  for (int i = 0; i < 17; i++) ids[i] = i % 16;
  ck_assert_int_eq(negcut_net_create_projector(&proj, ctx, &ho), NEGCUT_OK);
  ck_assert_int_eq(negcut_tape_create(&tape, ctx), NEGCUT_OK);
  ck_assert_int_eq(negcut_tape_tensor(&feat, tape, 4, shape), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_fill(feat, 0.25f), NEGCUT_OK);
  const int64_t bad_n[3] = {17, 0, INT64_MAX};
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(negcut_projector_forward(proj, tape, 0, feat, ids, bad_n[i], &out, &rec),
                     NEGCUT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "patch ids"));
  }
  ck_assert_int_eq(negcut_projector_forward(proj, tape, 0, feat, ids, 16, &out, &rec), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_dim(out, 0), 16);
  negcut_tape_free(tape);
  negcut_net_free(proj);
  negcut_net_free(net);
}
END_TEST

/* With caller-supplied batches the schedule follows set_epoch. */
START_TEST(test_trainer_set_epoch) {
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  negcut_train_progress p;
  negcut_trainer_options_init(&o, NEGCUT_MODE_CUT);
  o.ngf = o.ndf = 4;
  o.n_blocks = 1;
  o.nce_layers[3] = 12;
  o.nce_layers[4] = 12;
  o.n_nce_layers = 4;
  o.n_epochs = 10;
  o.n_epochs_decay = 10;
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert(fabs(p.lr - 2e-4) < 1e-12);
  ck_assert_int_eq(negcut_trainer_set_epoch(t, 16), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert(fabs(p.lr - 2e-4 * (1.0 - 6.0 / 11.0)) < 1e-12);
  ck_assert_int_eq(negcut_trainer_set_epoch(t, 0), NEGCUT_ERR_INVALID_ARGUMENT);
  /* the schedule's last epoch (lr / 11), not one past it (lr 0, then negative) */
  ck_assert_int_eq(negcut_trainer_set_epoch(t, 20), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert(fabs(p.lr - 2e-4 / 11.0) < 1e-12);
  ck_assert_int_eq(negcut_trainer_set_epoch(t, 21), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_set_epoch(t, INT64_MAX), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert(fabs(p.lr - 2e-4 / 11.0) < 1e-12); /* a refused epoch changes nothing */
  ck_assert(fabs(negcut_lr_linear(16, 10, 10) - (1.0 - 6.0 / 11.0)) < 1e-12);
  ck_assert(negcut_lr_linear(INT64_MIN, 10, 10) == 1.0); /* before the decay, no overflow */
  ck_assert(negcut_lr_linear(INT64_MAX, 10, INT64_MAX) < 1.0);
  negcut_trainer_free(t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("nets_api");
  TCase *tc = tcase_create("api");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_tensors_and_slices);
  tcase_add_test(tc, test_generator_params_and_shapes);
  tcase_add_test(tc, test_stale_handles_after_reset);
  tcase_add_test(tc, test_bad_hyperparameters);
  tcase_add_test(tc, test_trainer_set_epoch);
  suite_add_tcase(s, tc);
  return ngc_test_run(s);
}
