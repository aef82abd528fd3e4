/* The op layer on the reference backend: every backward against central
 * finite differences, forward values on small hand-computed cases, and the
 * argument checks (shapes, NULLs, ranges, dispatch).
 *
 * Gradient checks: inputs from a fixed-seed xorshift, a random projection r
 * of the output, L = sum(y * r) in double; the backward gets dy = r and is
 * compared with (L(x + h) - L(x - h)) / 2h, h = 1e-2, element by element.
 * Activation gradients are pre-filled with NaN (they must be assigned),
 * parameter gradients with a known value (they must be added to). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <negcut.h>

#include "ngc_test.h"
#include "ops/ops.h"

#define FD_H 1e-2f

/* ------------------------------------------------------------ fixtures */

static negcut_ctx *ctx;

#define POOL_MAX 24
static ngc_tensor pool[POOL_MAX];
static int pool_n;

static void setup(void) {
  negcut_ctx_options o;
  negcut_ctx_options_init(&o);
  o.backend = NEGCUT_BACKEND_REF;
  o.threads = 1;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_OK);
  pool_n = 0;
}

static void teardown(void) {
  for (int i = 0; i < pool_n; i++) ngc_tensor_release(&pool[i]);
  pool_n = 0;
  negcut_ctx_free(ctx);
  ctx = NULL;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;

/* Uniform in [-1, 1) (xorshift64). */
static float urand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)((double)(rng >> 40) / 16777216.0 * 2.0 - 1.0);
}

/* A tensor on the context's backend, freed by teardown, filled with v. */
static ngc_tensor *tensor(float v, int32_t ndim, int64_t d0, int64_t d1, int64_t d2,
                          int64_t d3) {
  int64_t d[4] = {d0, d1, d2, d3};
  ck_assert_int_lt(pool_n, POOL_MAX);
  ngc_tensor *t = &pool[pool_n++];
  ck_assert_int_eq(ngc_tensor_alloc(ctx, ctx->be, t, ndim, d), NEGCUT_OK);
  for (int64_t i = 0; i < ngc_numel(t); i++) t->data[i] = v;
  return t;
}
#define T1(v, a) tensor(v, 1, a, 1, 1, 1)
#define T2(v, a, b) tensor(v, 2, a, b, 1, 1)
#define T3(v, a, b, c) tensor(v, 3, a, b, c, 1)
#define T4(v, a, b, c, d) tensor(v, 4, a, b, c, d)

/* Fills t with scale * U(-1, 1). */
static ngc_tensor *randomize(ngc_tensor *t, float scale) {
  for (int64_t i = 0; i < ngc_numel(t); i++) t->data[i] = scale * urand();
  return t;
}

/* Moves every element at least `gap` away from 0 (kinks of relu, |.|). */
static void away_from_zero(ngc_tensor *t, float gap) {
  for (int64_t i = 0; i < ngc_numel(t); i++)
    t->data[i] = copysignf(gap + fabsf(t->data[i]), t->data[i]);
}

static void set(ngc_tensor *t, const float *v) {
  memcpy(t->data, v, (size_t)ngc_numel(t) * sizeof(float));
}

static void expect_close(const char *what, const ngc_tensor *got, const float *want,
                         double atol, double rtol) {
  ck_assert_msg(ngc_test_compare(what, got->data, want, ngc_numel(got), atol, rtol) == 0,
                "%s: values differ", what);
}

/* -------------------------------------------- finite-difference harness */

/* One op under test: its inputs, parameters, the output y that L is taken
 * on, and a function that runs the forward. */
typedef struct fd_case {
  ngc_tensor *x, *w, *b, *y, *r;
  ngc_tensor *aux1, *aux2; /* mean and rstd, or norm */
  ngc_conv_params cp;
  ngc_pad_mode mode;
  int32_t pad;
  ngc_act act;
  float alpha, eps, t;
  const int64_t *ids;
  int64_t n_ids;
  negcut_status (*fwd)(struct fd_case *c);
} fd_case;

/* L = sum(y * r) in double after a fresh forward. */
static double loss_of(fd_case *c) {
  ck_assert_int_eq(c->fwd(c), NEGCUT_OK);
  double L = 0.0;
  for (int64_t i = 0; i < ngc_numel(c->y); i++) L += (double)c->y->data[i] * c->r->data[i];
  return L;
}

/* grad must equal pre + dL/dt, with dL/dt from central differences. The
 * step actually taken in float is used as the denominator. */
static void check_fd(const char *what, fd_case *c, ngc_tensor *t, const ngc_tensor *grad,
                     float pre, double atol, double rtol) {
  int64_t n = ngc_numel(t);
  ck_assert_int_eq(n, ngc_numel(grad));
  float *want = malloc((size_t)n * sizeof(float));
  ck_assert_ptr_nonnull(want);
  for (int64_t i = 0; i < n; i++) {
    float x0 = t->data[i];
    t->data[i] = x0 + FD_H;
    float xp = t->data[i];
    double Lp = loss_of(c);
    t->data[i] = x0 - FD_H;
    float xm = t->data[i];
    double Lm = loss_of(c);
    t->data[i] = x0;
    want[i] = (float)(pre + (Lp - Lm) / ((double)xp - (double)xm));
  }
  loss_of(c); /* leave y as it was */
  int64_t bad = ngc_test_compare(what, grad->data, want, n, atol, rtol);
  free(want);
  ck_assert_msg(bad == 0, "%s: %lld elements differ from finite differences", what,
                (long long)bad);
}

/* A random projection r shaped like y, and y computed. */
static void prepare(fd_case *c) {
  c->r = randomize(tensor(0, c->y->ndim, ngc_d(c->y, 0), ngc_d(c->y, 1), ngc_d(c->y, 2),
                          ngc_d(c->y, 3)),
                   1.0f);
  loss_of(c);
}

/* ------------------------------------------------------ gradient checks */

static negcut_status fwd_act(fd_case *c) {
  return ngc_act_fwd(ctx, c->act, c->alpha, c->x, c->y);
}

START_TEST(test_grad_act) {
  const ngc_act acts[3] = {NGC_ACT_RELU, NGC_ACT_LRELU, NGC_ACT_TANH};
  const char *names[3] = {"relu dx", "lrelu dx", "tanh dx"};
  fd_case c = {.fwd = fwd_act, .alpha = 0.2f, .act = acts[_i]};
  c.x = randomize(T4(0, 2, 3, 5, 6), 1.5f);
  away_from_zero(c.x, 0.05f);
  c.y = T4(0, 2, 3, 5, 6);
  prepare(&c);
  ngc_tensor *dx = T4(NAN, 2, 3, 5, 6);
  /* relu and lrelu read x only, tanh y only: the other may be NULL. */
  ck_assert_int_eq(ngc_act_bwd(ctx, c.act, c.alpha, c.act == NGC_ACT_TANH ? NULL : c.x,
                               c.act == NGC_ACT_TANH ? c.y : NULL, c.r, dx),
                   NEGCUT_OK);
  check_fd(names[_i], &c, c.x, dx, 0.0f, 1e-4, 2e-3);
}
END_TEST

static negcut_status fwd_conv(fd_case *c) {
  return ngc_conv2d_fwd(ctx, &c->cp, c->x, c->w, c->b, c->y);
}

/* (k, stride, pad) of the generator and discriminator convs, and more. */
static const int32_t conv_cfg[][3] = {{3, 1, 1}, {3, 2, 1}, {4, 1, 1}, {1, 1, 0}, {3, 2, 0},
                                      {5, 1, 2}};

START_TEST(test_grad_conv2d) {
  int32_t k = conv_cfg[_i][0];
  fd_case c = {.fwd = fwd_conv, .cp = {conv_cfg[_i][1], conv_cfg[_i][2], 0}};
  int64_t H = 7, W = 6, Ho = ngc_conv2d_out_size(H, k, c.cp.stride, c.cp.pad),
          Wo = ngc_conv2d_out_size(W, k, c.cp.stride, c.cp.pad);
  c.x = randomize(T4(0, 2, 3, H, W), 1.0f);
  c.w = randomize(T4(0, 4, 3, k, k), 0.3f);
  c.b = randomize(T1(0, 4), 0.5f);
  c.y = T4(0, 2, 4, Ho, Wo);
  prepare(&c);
  ngc_tensor *dx = T4(NAN, 2, 3, H, W), *dw = T4(0.5f, 4, 3, k, k), *db = T1(-0.25f, 4);
  ck_assert_int_eq(ngc_conv2d_bwd(ctx, &c.cp, c.x, c.w, c.r, dx, dw, db), NEGCUT_OK);
  check_fd("conv2d dx", &c, c.x, dx, 0.0f, 1e-3, 2e-3);
  check_fd("conv2d dw", &c, c.w, dw, 0.5f, 1e-3, 2e-3);
  check_fd("conv2d db", &c, c.b, db, -0.25f, 1e-3, 2e-3);
  /* NULL gradients are skipped: db alone gives the same numbers. */
  ngc_tensor *db2 = T1(-0.25f, 4);
  ck_assert_int_eq(ngc_conv2d_bwd(ctx, &c.cp, c.x, c.w, c.r, NULL, NULL, db2), NEGCUT_OK);
  expect_close("conv2d db alone", db2, db->data, 0.0, 0.0);
}
END_TEST

static negcut_status fwd_convt(fd_case *c) {
  return ngc_convt2d_fwd(ctx, &c->cp, c->x, c->w, c->b, c->y);
}

/* (k, stride, pad, out_pad): no_antialias_up's k3 s2 p1 op1, and others. */
static const int32_t convt_cfg[][4] = {{3, 2, 1, 1}, {4, 2, 1, 0}, {3, 1, 1, 0}, {2, 2, 0, 0}};

START_TEST(test_grad_convt2d) {
  int32_t k = convt_cfg[_i][0];
  fd_case c = {.fwd = fwd_convt, .cp = {convt_cfg[_i][1], convt_cfg[_i][2], convt_cfg[_i][3]}};
  int64_t H = 5, W = 4, Ho = ngc_convt2d_out_size(H, k, c.cp.stride, c.cp.pad, c.cp.out_pad),
          Wo = ngc_convt2d_out_size(W, k, c.cp.stride, c.cp.pad, c.cp.out_pad);
  c.x = randomize(T4(0, 2, 3, H, W), 1.0f);
  c.w = randomize(T4(0, 3, 4, k, k), 0.3f);
  c.b = randomize(T1(0, 4), 0.5f);
  c.y = T4(0, 2, 4, Ho, Wo);
  prepare(&c);
  ngc_tensor *dx = T4(NAN, 2, 3, H, W), *dw = T4(0.5f, 3, 4, k, k), *db = T1(-0.25f, 4);
  ck_assert_int_eq(ngc_convt2d_bwd(ctx, &c.cp, c.x, c.w, c.r, dx, dw, db), NEGCUT_OK);
  check_fd("convt2d dx", &c, c.x, dx, 0.0f, 1e-3, 2e-3);
  check_fd("convt2d dw", &c, c.w, dw, 0.5f, 1e-3, 2e-3);
  check_fd("convt2d db", &c, c.b, db, -0.25f, 1e-3, 2e-3);
}
END_TEST

static negcut_status fwd_pad(fd_case *c) {
  return ngc_pad_fwd(ctx, c->mode, c->pad, c->x, c->y);
}

START_TEST(test_grad_pad) {
  static const ngc_pad_mode modes[3] = {NGC_PAD_ZERO, NGC_PAD_REFLECT, NGC_PAD_REPLICATE};
  static const char *names[3] = {"zero pad dx", "reflect pad dx", "replicate pad dx"};
  fd_case c = {.fwd = fwd_pad, .mode = modes[_i], .pad = 3};
  c.x = randomize(T4(0, 2, 3, 5, 4), 1.0f);
  c.y = T4(0, 2, 3, 11, 10);
  prepare(&c);
  ngc_tensor *dx = T4(NAN, 2, 3, 5, 4);
  ck_assert_int_eq(ngc_pad_bwd(ctx, c.mode, c.pad, c.r, dx), NEGCUT_OK);
  check_fd(names[_i], &c, c.x, dx, 0.0f, 1e-3, 2e-3);
}
END_TEST

static negcut_status fwd_inorm(fd_case *c) {
  return ngc_inorm_fwd(ctx, c->eps, c->x, c->y, c->aux1, c->aux2);
}

START_TEST(test_grad_inorm) {
  fd_case c = {.fwd = fwd_inorm, .eps = 1e-5f};
  c.x = randomize(T4(0, 2, 3, 5, 6), 2.0f);
  for (int64_t i = 0; i < 30; i++) c.x->data[i] += 3.0f; /* one plane off-centre */
  c.y = T4(0, 2, 3, 5, 6);
  c.aux1 = T2(0, 2, 3);
  c.aux2 = T2(0, 2, 3);
  prepare(&c);
  ngc_tensor *dx = T4(NAN, 2, 3, 5, 6);
  ck_assert_int_eq(ngc_inorm_bwd(ctx, c.y, c.aux2, c.r, dx), NEGCUT_OK);
  check_fd("inorm dx", &c, c.x, dx, 0.0f, 2e-3, 5e-3);
}
END_TEST

static negcut_status fwd_blur_down(fd_case *c) { return ngc_blur_down_fwd(ctx, c->x, c->y); }
static negcut_status fwd_blur_up(fd_case *c) { return ngc_blur_up_fwd(ctx, c->x, c->y); }

START_TEST(test_grad_blur) {
  fd_case c = {.fwd = fwd_blur_down};
  c.x = randomize(T4(0, 2, 3, 7, 6), 1.0f); /* odd H, even W */
  c.y = T4(0, 2, 3, 4, 3);
  prepare(&c);
  ngc_tensor *dx = T4(NAN, 2, 3, 7, 6);
  ck_assert_int_eq(ngc_blur_down_bwd(ctx, c.r, dx), NEGCUT_OK);
  check_fd("blur_down dx", &c, c.x, dx, 0.0f, 1e-3, 2e-3);

  fd_case u = {.fwd = fwd_blur_up};
  u.x = randomize(T4(0, 2, 3, 5, 4), 1.0f);
  u.y = T4(0, 2, 3, 10, 8);
  prepare(&u);
  ngc_tensor *ux = T4(NAN, 2, 3, 5, 4);
  ck_assert_int_eq(ngc_blur_up_bwd(ctx, u.r, ux), NEGCUT_OK);
  check_fd("blur_up dx", &u, u.x, ux, 0.0f, 1e-3, 2e-3);
}
END_TEST

static negcut_status fwd_hflip(fd_case *c) { return ngc_hflip(ctx, c->x, c->y); }

static negcut_status fwd_concat(fd_case *c) { return ngc_concat_fwd(ctx, c->x, c->w, c->y); }

START_TEST(test_grad_hflip_concat) {
  fd_case c = {.fwd = fwd_hflip};
  c.x = randomize(T4(0, 2, 3, 5, 7), 1.0f);
  c.y = T4(0, 2, 3, 5, 7);
  prepare(&c);
  ngc_tensor *dx = T4(NAN, 2, 3, 5, 7);
  ck_assert_int_eq(ngc_hflip(ctx, c.r, dx), NEGCUT_OK); /* its own backward */
  check_fd("hflip dx", &c, c.x, dx, 0.0f, 1e-3, 2e-3);

  fd_case k = {.fwd = fwd_concat};
  k.x = randomize(T4(0, 2, 3, 4, 5), 1.0f);
  k.w = randomize(T4(0, 2, 2, 4, 5), 1.0f);
  k.y = T4(0, 2, 5, 4, 5);
  prepare(&k);
  ngc_tensor *da = T4(NAN, 2, 3, 4, 5), *db = T4(NAN, 2, 2, 4, 5);
  ck_assert_int_eq(ngc_concat_bwd(ctx, k.r, da, db), NEGCUT_OK);
  check_fd("concat da", &k, k.x, da, 0.0f, 1e-3, 2e-3);
  check_fd("concat db", &k, k.w, db, 0.0f, 1e-3, 2e-3);
  /* One side alone, on matrices (the noise concat of NEGCUT's N). */
  ngc_tensor *a2 = randomize(T2(0, 4, 3), 1.0f), *b2 = randomize(T2(0, 4, 2), 1.0f);
  ngc_tensor *y2 = T2(0, 4, 5), *db2 = T2(NAN, 4, 2);
  ck_assert_int_eq(ngc_concat_fwd(ctx, a2, b2, y2), NEGCUT_OK);
  ck_assert_float_eq(y2->data[3], b2->data[0]);
  ck_assert_float_eq(y2->data[5], a2->data[3]);
  ck_assert_int_eq(ngc_concat_bwd(ctx, y2, NULL, db2), NEGCUT_OK);
  expect_close("concat db alone", db2, b2->data, 0.0, 0.0);
}
END_TEST

static negcut_status fwd_linear(fd_case *c) { return ngc_linear_fwd(ctx, c->x, c->w, c->b, c->y); }
static negcut_status fwd_bmm(fd_case *c) { return ngc_bmm_fwd(ctx, c->x, c->w, c->y); }

START_TEST(test_grad_linear_bmm) {
  fd_case c = {.fwd = fwd_linear};
  c.x = randomize(T2(0, 5, 4), 1.0f);
  c.w = randomize(T2(0, 3, 4), 0.5f);
  c.b = randomize(T1(0, 3), 0.5f);
  c.y = T2(0, 5, 3);
  prepare(&c);
  ngc_tensor *dx = T2(NAN, 5, 4), *dw = T2(0.5f, 3, 4), *db = T1(-0.25f, 3);
  ck_assert_int_eq(ngc_linear_bwd(ctx, c.x, c.w, c.r, dx, dw, db), NEGCUT_OK);
  check_fd("linear dx", &c, c.x, dx, 0.0f, 1e-3, 2e-3);
  check_fd("linear dw", &c, c.w, dw, 0.5f, 1e-3, 2e-3);
  check_fd("linear db", &c, c.b, db, -0.25f, 1e-3, 2e-3);

  fd_case m = {.fwd = fwd_bmm};
  m.x = randomize(T3(0, 2, 4, 5), 1.0f);
  m.w = randomize(T3(0, 2, 3, 5), 1.0f);
  m.y = T3(0, 2, 4, 3);
  prepare(&m);
  ngc_tensor *da = T3(NAN, 2, 4, 5), *dbm = T3(NAN, 2, 3, 5);
  ck_assert_int_eq(ngc_bmm_bwd(ctx, m.x, m.w, m.r, da, dbm), NEGCUT_OK);
  check_fd("bmm da", &m, m.x, da, 0.0f, 1e-3, 2e-3);
  check_fd("bmm db", &m, m.w, dbm, 0.0f, 1e-3, 2e-3);
}
END_TEST

static negcut_status fwd_l2norm(fd_case *c) {
  return ngc_l2norm_fwd(ctx, c->eps, c->x, c->y, c->aux1);
}

START_TEST(test_grad_l2norm) {
  /* A large eps, so that using norm + eps where norm belongs shows. */
  fd_case c = {.fwd = fwd_l2norm, .eps = 0.1f};
  c.x = randomize(T2(0, 5, 8), 1.0f);
  c.y = T2(0, 5, 8);
  c.aux1 = T1(0, 5);
  prepare(&c);
  ngc_tensor *dx = T2(NAN, 5, 8);
  ck_assert_int_eq(ngc_l2norm_bwd(ctx, c.eps, c.x, c.aux1, c.r, dx), NEGCUT_OK);
  check_fd("l2norm dx", &c, c.x, dx, 0.0f, 1e-3, 3e-3);
}
END_TEST

static negcut_status fwd_gather(fd_case *c) {
  return ngc_gather_fwd(ctx, c->x, c->ids, c->n_ids, c->y);
}
static negcut_status fwd_mean(fd_case *c) { return ngc_mean_fwd(ctx, c->x, c->y); }
static negcut_status fwd_fill_diag(fd_case *c) {
  return ngc_fill_diag_fwd(ctx, c->alpha, c->x, c->y);
}

START_TEST(test_grad_rows) {
  static const int64_t ids[5] = {3, 0, 19, 7, 3}; /* 3 twice: scatter must add */
  fd_case g = {.fwd = fwd_gather, .ids = ids, .n_ids = 5};
  g.x = randomize(T4(0, 2, 3, 4, 5), 1.0f);
  g.y = T2(0, 10, 3);
  prepare(&g);
  ck_assert_float_eq(g.y->data[(1 * 5 + 2) * 3 + 1], g.x->data[(1 * 3 + 1) * 20 + 19]);
  ngc_tensor *dx = T4(NAN, 2, 3, 4, 5);
  ck_assert_int_eq(ngc_gather_bwd(ctx, g.r, ids, 5, dx), NEGCUT_OK);
  check_fd("gather dx", &g, g.x, dx, 0.0f, 1e-3, 2e-3);

  fd_case m = {.fwd = fwd_mean};
  m.x = randomize(T3(0, 2, 5, 3), 1.0f);
  m.y = T2(0, 2, 3);
  prepare(&m);
  ngc_tensor *mx = T3(NAN, 2, 5, 3);
  ck_assert_int_eq(ngc_mean_bwd(ctx, m.r, mx), NEGCUT_OK);
  check_fd("mean dx", &m, m.x, mx, 0.0f, 1e-3, 2e-3);

  fd_case d = {.fwd = fwd_fill_diag, .alpha = -10.0f};
  d.x = randomize(T3(0, 2, 4, 5), 1.0f);
  d.y = T3(0, 2, 4, 5);
  prepare(&d);
  ck_assert_float_eq(d.y->data[20 + 2 * 5 + 2], -10.0f);
  ck_assert_float_eq(d.y->data[20 + 2 * 5 + 3], d.x->data[20 + 2 * 5 + 3]);
  ngc_tensor *ddx = T3(NAN, 2, 4, 5);
  ck_assert_int_eq(ngc_fill_diag_bwd(ctx, d.r, ddx), NEGCUT_OK);
  check_fd("fill_diag dx", &d, d.x, ddx, 0.0f, 1e-3, 2e-3);
}
END_TEST

static negcut_status fwd_xent0(fd_case *c) { return ngc_xent0_fwd(ctx, c->x, c->y); }
static negcut_status fwd_mse(fd_case *c) { return ngc_mse_const_fwd(ctx, c->x, c->t, c->y); }
static negcut_status fwd_mad(fd_case *c) { return ngc_mad_fwd(ctx, c->x, c->w, c->y); }

START_TEST(test_grad_losses) {
  fd_case x = {.fwd = fwd_xent0};
  x.x = randomize(T2(0, 4, 6), 3.0f);
  x.y = T1(0, 4);
  prepare(&x);
  ngc_tensor *dx = T2(NAN, 4, 6);
  ck_assert_int_eq(ngc_xent0_bwd(ctx, x.x, x.r, dx), NEGCUT_OK);
  check_fd("xent0 dx", &x, x.x, dx, 0.0f, 1e-3, 3e-3);

  fd_case m = {.fwd = fwd_mse, .t = 1.0f};
  m.x = randomize(T4(0, 2, 1, 3, 4), 1.0f);
  m.y = T1(0, 1);
  prepare(&m);
  ngc_tensor *mdx = T4(NAN, 2, 1, 3, 4);
  ck_assert_int_eq(ngc_mse_const_bwd(ctx, m.x, m.t, m.r->data[0], mdx), NEGCUT_OK);
  check_fd("mse_const dx", &m, m.x, mdx, 0.0f, 1e-4, 2e-3);

  fd_case a = {.fwd = fwd_mad};
  a.x = randomize(T3(0, 2, 3, 4), 1.0f);
  a.w = randomize(T3(0, 2, 3, 4), 1.0f);
  for (int64_t i = 0; i < 24; i++) { /* |a - b| >= 0.05, away from the kink */
    float d = a.x->data[i] - a.w->data[i];
    a.x->data[i] = a.w->data[i] + copysignf(0.05f + fabsf(d), d);
  }
  a.y = T1(0, 1);
  prepare(&a);
  ngc_tensor *da = T3(NAN, 2, 3, 4), *db = T3(NAN, 2, 3, 4);
  ck_assert_int_eq(ngc_mad_bwd(ctx, a.x, a.w, a.r->data[0], da, db), NEGCUT_OK);
  check_fd("mad da", &a, a.x, da, 0.0f, 1e-4, 2e-3);
  check_fd("mad db", &a, a.w, db, 0.0f, 1e-4, 2e-3);
}
END_TEST

static negcut_status fwd_rowdot(fd_case *c) { return ngc_rowdot_fwd(ctx, c->x, c->w, c->y); }
static negcut_status fwd_bce(fd_case *c) { return ngc_bce_const_fwd(ctx, c->x, c->t, c->y); }

START_TEST(test_grad_rowdot_bce) {
  fd_case r = {.fwd = fwd_rowdot};
  r.x = randomize(T2(0, 5, 7), 1.0f);
  r.w = randomize(T2(0, 5, 7), 1.0f);
  r.y = T1(0, 5);
  prepare(&r);
  ngc_tensor *da = T2(NAN, 5, 7), *db = T2(NAN, 5, 7);
  ck_assert_int_eq(ngc_rowdot_bwd(ctx, r.x, r.w, r.r, da, db), NEGCUT_OK);
  check_fd("rowdot da", &r, r.x, da, 0.0f, 1e-4, 2e-3);
  check_fd("rowdot db", &r, r.w, db, 0.0f, 1e-4, 2e-3);
  /* forward: a hand-computed pair of rows */
  ngc_tensor *a = T2(0, 2, 3), *b = T2(0, 2, 3), *y = T1(0, 2);
  set(a, (const float[]){1, 2, 3, -1, 0, 2});
  set(b, (const float[]){4, 5, 6, 3, 9, -0.5f});
  ck_assert_int_eq(ngc_rowdot_fwd(ctx, a, b, y), NEGCUT_OK);
  expect_close("rowdot y", y, (const float[]){32, -4}, 1e-6, 0);

  for (int k = 0; k < 2; k++) { /* target 1 (real) and 0 (fake) */
    fd_case c = {.fwd = fwd_bce, .t = (float)k};
    c.x = randomize(T4(0, 2, 1, 3, 4), 3.0f);
    c.y = T1(0, 1);
    prepare(&c);
    ngc_tensor *dx = T4(NAN, 2, 1, 3, 4);
    ck_assert_int_eq(ngc_bce_const_bwd(ctx, c.x, c.t, c.r->data[0], dx), NEGCUT_OK);
    check_fd(k ? "bce(1) dx" : "bce(0) dx", &c, c.x, dx, 0.0f, 1e-4, 2e-3);
  }
  /* forward against the textbook formula, including a large logit */
  ngc_tensor *x = T1(0, 3), *out = T1(0, 1);
  set(x, (const float[]){0.5f, -2.0f, 40.0f});
  ck_assert_int_eq(ngc_bce_const_fwd(ctx, x, 1.0f, out), NEGCUT_OK);
  double want = (log(1 + exp(-0.5)) + log(1 + exp(2.0)) + log(1 + exp(-40.0))) / 3.0;
  expect_close("bce y", out, (const float[]){(float)want}, 1e-6, 1e-6);
}
END_TEST

/* ------------------------------------------------- hand-computed forwards */

START_TEST(test_fwd_conv) {
  /* 1x1: y0 = x0, y1 = x1 + 1, y2 = 2 x0 - x1 + 0.5 */
  ngc_conv_params p1 = {.stride = 1};
  ngc_tensor *x = T4(0, 1, 2, 2, 2), *w = T4(0, 3, 2, 1, 1), *b = T1(0, 3);
  ngc_tensor *y = T4(NAN, 1, 3, 2, 2);
  set(x, (const float[]){1, 2, 3, 4, 5, 6, 7, 8});
  set(w, (const float[]){1, 0, 0, 1, 2, -1});
  set(b, (const float[]){0, 1, 0.5f});
  ck_assert_int_eq(ngc_conv2d_fwd(ctx, &p1, x, w, b, y), NEGCUT_OK);
  expect_close("conv 1x1", y,
               (const float[]){1, 2, 3, 4, 6, 7, 8, 9, -2.5f, -1.5f, -0.5f, 0.5f}, 1e-6, 0);

  /* 3x3 ones over ones, zero pad 1: each output counts its in-bounds taps. */
  ngc_conv_params p3 = {.stride = 1, .pad = 1};
  ngc_tensor *x3 = T4(1, 1, 1, 3, 3), *w3 = T4(1, 1, 1, 3, 3), *y3 = T4(NAN, 1, 1, 3, 3);
  ck_assert_int_eq(ngc_conv2d_fwd(ctx, &p3, x3, w3, NULL, y3), NEGCUT_OK);
  expect_close("conv 3x3 pad 1", y3, (const float[]){4, 6, 4, 6, 9, 6, 4, 6, 4}, 1e-6, 0);
  /* Stride 2 keeps the corners and the centre. */
  ngc_conv_params p32 = {.stride = 2, .pad = 1};
  ngc_tensor *y32 = T4(NAN, 1, 1, 2, 2);
  ck_assert_int_eq(ngc_conv2d_fwd(ctx, &p32, x3, w3, NULL, y32), NEGCUT_OK);
  expect_close("conv 3x3 stride 2", y32, (const float[]){4, 4, 4, 4}, 1e-6, 0);

  /* Transposed, k2 s2 p0 with ones: each input fills its own 2x2 block. */
  ngc_conv_params pt = {.stride = 2};
  ngc_tensor *xt = T4(0, 1, 1, 2, 2), *wt = T4(1, 1, 1, 2, 2), *yt = T4(NAN, 1, 1, 4, 4);
  set(xt, (const float[]){1, 2, 3, 4});
  ck_assert_int_eq(ngc_convt2d_fwd(ctx, &pt, xt, wt, NULL, yt), NEGCUT_OK);
  expect_close("convt 2x2 stride 2", yt,
               (const float[]){1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 1e-6, 0);
}
END_TEST

START_TEST(test_fwd_pad) {
  ngc_tensor *x = T4(0, 1, 1, 3, 3);
  set(x, (const float[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
  /* ReflectionPad2d(2): rows and columns run 2 1 0 1 2 1 0. */
  ngc_tensor *y = T4(NAN, 1, 1, 7, 7);
  ck_assert_int_eq(ngc_pad_fwd(ctx, NGC_PAD_REFLECT, 2, x, y), NEGCUT_OK);
  expect_close("reflect pad 2", y,
               (const float[]){9, 8, 7, 8, 9, 8, 7, 6, 5, 4, 5, 6, 5, 4, 3, 2, 1,
                               2, 3, 2, 1, 6, 5, 4, 5, 6, 5, 4, 9, 8, 7, 8, 9, 8,
                               7, 6, 5, 4, 5, 6, 5, 4, 3, 2, 1, 2, 3, 2, 1},
               0, 0);
  ngc_tensor *r = T4(NAN, 1, 1, 5, 5);
  ck_assert_int_eq(ngc_pad_fwd(ctx, NGC_PAD_REPLICATE, 1, x, r), NEGCUT_OK);
  expect_close("replicate pad 1", r,
               (const float[]){1, 1, 2, 3, 3, 1, 1, 2, 3, 3, 4, 4, 5, 6, 6, 7, 7, 8, 9, 9, 7, 7, 8, 9, 9},
               0, 0);
  ck_assert_int_eq(ngc_pad_fwd(ctx, NGC_PAD_ZERO, 1, x, r), NEGCUT_OK);
  expect_close("zero pad 1", r,
               (const float[]){0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 4, 5, 6, 0, 0, 7, 8, 9, 0, 0, 0, 0, 0, 0},
               0, 0);
}
END_TEST

START_TEST(test_fwd_blur_down) {
  /* Channel 0: x = 4i + j. Separable with unit sum, so y = 4 f(i) + f(j) with
   * f = the 1-D filter on [0 1 2 3]: f0 = (1 + 0 + 1)/4 = 0.5 (x[-1] = x[1]),
   * f1 = (1 + 4 + 3)/4 = 2.
   * Channel 1: a 1 at (1, 1). 1-D: out0 = (x1 + 2 x0 + x1)/4 = 0.5 (reflected
   * twice), out1 = (x1 + 2 x2 + x3)/4 = 0.25; y = outer product. */
  ngc_tensor *x = T4(0, 1, 2, 4, 4), *y = T4(NAN, 1, 2, 2, 2);
  for (int i = 0; i < 16; i++) x->data[i] = (float)i;
  x->data[16 + 5] = 1.0f;
  ck_assert_int_eq(ngc_blur_down_fwd(ctx, x, y), NEGCUT_OK);
  expect_close("blur_down 4x4", y,
               (const float[]){2.5f, 4, 8.5f, 10, 0.25f, 0.125f, 0.125f, 0.0625f}, 1e-6, 0);
  /* Odd size: ceil(5 / 2) = 3, and a constant stays constant. */
  ngc_tensor *c = T4(2.0f, 1, 1, 5, 3), *yc = T4(NAN, 1, 1, 3, 2);
  ck_assert_int_eq(ngc_blur_down_fwd(ctx, c, yc), NEGCUT_OK);
  expect_close("blur_down constant", yc, (const float[]){2, 2, 2, 2, 2, 2}, 1e-6, 0);
}
END_TEST

/* REFERENCE.md 1: bilinear x2, align_corners False, edges clamped:
 * out[2i] = (3 x[i] + x[i-1]) / 4, out[2i+1] = (3 x[i] + x[i+1]) / 4. */
static float bilinear_tap(const float *x, int64_t n, int64_t stride, int64_t o) {
  int64_t i = o / 2, nb = o % 2 ? i + 1 : i - 1;
  nb = nb < 0 ? 0 : nb >= n ? n - 1 : nb;
  return (3.0f * x[i * stride] + x[nb * stride]) / 4.0f;
}

START_TEST(test_fwd_blur_up_is_bilinear) {
  int64_t H = 5, W = 7;
  ngc_tensor *x = randomize(T4(0, 1, 2, H, W), 1.0f), *y = T4(NAN, 1, 2, 2 * H, 2 * W);
  ck_assert_int_eq(ngc_blur_up_fwd(ctx, x, y), NEGCUT_OK);
  float *rows = malloc((size_t)(2 * H * W) * sizeof(float));       // (2H, W)
  float *want = malloc((size_t)(2 * H * 2 * W * 2) * sizeof(float)); // (2, 2H, 2W)
  ck_assert(rows && want);
  for (int64_t c = 0; c < 2; c++) {
    const float *xc = x->data + c * H * W;
    for (int64_t o = 0; o < 2 * H; o++)
      for (int64_t j = 0; j < W; j++) rows[o * W + j] = bilinear_tap(xc + j, H, W, o);
    for (int64_t o = 0; o < 2 * H; o++)
      for (int64_t q = 0; q < 2 * W; q++)
        want[(c * 2 * H + o) * 2 * W + q] = bilinear_tap(rows + o * W, W, 1, q);
  }
  expect_close("blur_up vs bilinear", y, want, 1e-6, 0);
  free(rows);
  free(want);
}
END_TEST

START_TEST(test_fwd_norms) {
  /* Plane [1 2 3 4]: mean 2.5, biased variance 1.25. Plane [5 5 5 5]: var 0. */
  ngc_tensor *x = T4(0, 1, 2, 2, 2), *y = T4(NAN, 1, 2, 2, 2);
  ngc_tensor *mean = T2(NAN, 1, 2), *rstd = T2(NAN, 1, 2);
  set(x, (const float[]){1, 2, 3, 4, 5, 5, 5, 5});
  ck_assert_int_eq(ngc_inorm_fwd(ctx, 1e-5f, x, y, mean, rstd), NEGCUT_OK);
  float r0 = (float)(1.0 / sqrt(1.25 + 1e-5)), r1 = (float)(1.0 / sqrt(1e-5));
  expect_close("inorm mean", mean, (const float[]){2.5f, 5.0f}, 1e-6, 0);
  expect_close("inorm rstd", rstd, (const float[]){r0, r1}, 0, 1e-6);
  expect_close("inorm y", y, (const float[]){-1.5f * r0, -0.5f * r0, 0.5f * r0, 1.5f * r0, 0, 0, 0, 0},
               1e-6, 1e-6);
  /* Rows [3 4] and [0 0]: y = x / (norm + eps). */
  ngc_tensor *v = T2(0, 2, 2), *u = T2(NAN, 2, 2), *norm = T1(NAN, 2);
  set(v, (const float[]){3, 4, 0, 0});
  ck_assert_int_eq(ngc_l2norm_fwd(ctx, 1.0f, v, u, norm), NEGCUT_OK);
  expect_close("l2norm norm", norm, (const float[]){5, 0}, 1e-6, 0);
  expect_close("l2norm y", u, (const float[]){0.5f, 4.0f / 6.0f, 0, 0}, 1e-6, 0);
}
END_TEST

START_TEST(test_fwd_losses) {
  /* Row 0: small logits, direct formula. Row 1: huge logits, which a naive
   * exp would overflow: -1000 + 1000 + log(1 + e^-1 + e^-1000) */
  ngc_tensor *x = T2(0, 2, 3), *loss = T1(NAN, 2);
  set(x, (const float[]){0.5f, -1.0f, 2.0f, 1000.0f, 999.0f, 0.0f});
  ck_assert_int_eq(ngc_xent0_fwd(ctx, x, loss), NEGCUT_OK);
  float want[2] = {(float)(-0.5 + log(exp(0.5) + exp(-1.0) + exp(2.0))),
                   (float)log(1.0 + exp(-1.0))};
  expect_close("xent0", loss, want, 1e-6, 1e-6);

  ngc_tensor *v = T1(0, 4), *out = T1(NAN, 1), *v2 = T1(0, 4);
  set(v, (const float[]){1, 2, 3, 6});
  set(v2, (const float[]){2, 2, 1, 6});
  ck_assert_int_eq(ngc_mean_all(ctx, v, out), NEGCUT_OK);
  ck_assert_float_eq(out->data[0], 3.0f);
  ck_assert_int_eq(ngc_mse_const_fwd(ctx, v, 1.0f, out), NEGCUT_OK);
  ck_assert_float_eq(out->data[0], (0 + 1 + 4 + 25) / 4.0f);
  ck_assert_int_eq(ngc_mad_fwd(ctx, v, v2, out), NEGCUT_OK);
  ck_assert_float_eq(out->data[0], (1 + 0 + 2 + 0) / 4.0f);
  /* sign(0) = 0 */
  ngc_tensor *da = T1(NAN, 4);
  ck_assert_int_eq(ngc_mad_bwd(ctx, v, v2, 2.0f, da, NULL), NEGCUT_OK);
  expect_close("mad da", da, (const float[]){-0.5f, 0, 0.5f, 0}, 0, 0);
}
END_TEST

START_TEST(test_fwd_elementwise_optim) {
  ngc_tensor *x = T1(0, 3), *y = T1(NAN, 3), *y2 = T1(0, 3);
  set(x, (const float[]){1, -2, 3});
  ck_assert_int_eq(ngc_axpby(ctx, 2.0f, x, 0.0f, y), NEGCUT_OK); /* NaN in y ignored */
  expect_close("axpby beta 0", y, (const float[]){2, -4, 6}, 0, 0);
  ck_assert_int_eq(ngc_axpby(ctx, 1.0f, x, -0.5f, y), NEGCUT_OK);
  expect_close("axpby", y, (const float[]){0, 0, 0}, 0, 0);
  ck_assert_int_eq(ngc_add(ctx, x, x, y2), NEGCUT_OK);
  expect_close("add", y2, (const float[]){2, -4, 6}, 0, 0);
  ck_assert_int_eq(ngc_fill(ctx, y2, 7.0f), NEGCUT_OK);
  expect_close("fill", y2, (const float[]){7, 7, 7}, 0, 0);
  ngc_tensor *t = T1(1.0f, 3), *s = T1(3.0f, 3);
  ck_assert_int_eq(ngc_ema_update(ctx, 0.9f, t, s), NEGCUT_OK);
  expect_close("ema", t, (const float[]){1.2f, 1.2f, 1.2f}, 1e-6, 0);

  /* Adam, lr 0.1, betas (0.9, 0.999), eps 1e-8, p = 1, grads 0.5 then -0.25:
   * step 1: m = 0.05, v = 2.5e-4, bc1 = 0.1, bc2 = 1e-3,
   *         p = 1 - (0.1/0.1) * 0.05 / (sqrt(2.5e-4)/sqrt(1e-3) + 1e-8) = 0.9
   * step 2: m = 0.045 - 0.025 = 0.02, v = 2.4975e-4 + 6.25e-5 = 3.1225e-4,
   *         bc1 = 0.19, bc2 = 1.999e-3,
   *         p = 0.9 - (0.1/0.19) * 0.02 / sqrt(3.1225e-4/1.999e-3) = 0.8733663
   * v is checked to 4e-5 relative only: 1 - 0.999f is 0.00099998713, not
   * 0.001 (float betas; PyTorch's are double). */
  ngc_adam_params ap = {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1};
  ngc_tensor *p = T1(1.0f, 1), *g = T1(0.5f, 1), *m = T1(0, 1), *v = T1(0, 1);
  ck_assert_int_eq(ngc_adam_step(ctx, &ap, p, g, m, v), NEGCUT_OK);
  ck_assert_float_eq_tol(p->data[0], 0.9f, 1e-6f);
  ck_assert_float_eq_tol(m->data[0], 0.05f, 1e-7f);
  ck_assert_float_eq_tol(v->data[0], 2.5e-4f, 1e-8f);
  g->data[0] = -0.25f;
  ap.step = 2;
  ck_assert_int_eq(ngc_adam_step(ctx, &ap, p, g, m, v), NEGCUT_OK);
  ck_assert_float_eq_tol(m->data[0], 0.02f, 1e-7f);
  ck_assert_float_eq_tol(v->data[0], 3.1225e-4f, 1.2e-8f);
  ck_assert_float_eq_tol(p->data[0], 0.8733663f, 1e-6f);
  /* Weight decay enters the gradient: g = 0.1 + 0.5 * 2 = 1.1, and a first
   * step moves by lr: p = 2 - 1 * 0.11 / sqrt(0.00121 / 0.001) = 1.9. */
  ngc_adam_params wd = {0.1f, 0.9f, 0.999f, 1e-8f, 0.5f, 1};
  p->data[0] = 2.0f;
  g->data[0] = 0.1f;
  m->data[0] = v->data[0] = 0.0f;
  ck_assert_int_eq(ngc_adam_step(ctx, &wd, p, g, m, v), NEGCUT_OK);
  ck_assert_float_eq_tol(m->data[0], 0.11f, 1e-7f);
  ck_assert_float_eq_tol(p->data[0], 1.9f, 1e-6f);
}
END_TEST

/* ------------------------------------------------------ argument checks */

#define ck_error(call, st, needle)                                             \
  do {                                                                         \
    ck_assert_int_eq((call), (st));                                            \
    ck_assert_msg(strstr(negcut_ctx_last_error(ctx), (needle)) != NULL,        \
                  "message \"%s\" lacks \"%s\"", negcut_ctx_last_error(ctx),    \
                  (needle));                                                   \
  } while (0)

START_TEST(test_errors) {
  ngc_conv_params cp = {.stride = 1, .pad = 1};
  ngc_tensor *x = T4(0, 2, 3, 7, 6), *w = T4(0, 4, 3, 3, 3), *b = T1(0, 4);
  ngc_tensor *y = T4(0, 2, 4, 7, 6), *bad_y = T4(0, 2, 4, 6, 6);
  ck_assert_int_eq(ngc_conv2d_fwd(ctx, &cp, x, w, b, y), NEGCUT_OK);
  ck_error(ngc_conv2d_fwd(ctx, &cp, x, w, b, bad_y), NEGCUT_ERR_SHAPE, "conv2d_fwd");
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "(2, 4, 6, 6)"));
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "(2, 4, 7, 6)"));
  ck_error(ngc_conv2d_fwd(ctx, &cp, NULL, w, b, y), NEGCUT_ERR_INVALID_ARGUMENT, "conv2d_fwd");
  ck_error(ngc_conv2d_fwd(ctx, &cp, x, w, b, NULL), NEGCUT_ERR_INVALID_ARGUMENT, "y");
  ck_error(ngc_conv2d_fwd(ctx, &cp, x, w, bad_y, y), NEGCUT_ERR_SHAPE, "b");
  ck_error(ngc_conv2d_fwd(ctx, &cp, x, b, NULL, y), NEGCUT_ERR_SHAPE, "w");
  ck_error(ngc_conv2d_bwd(ctx, &cp, x, w, bad_y, NULL, NULL, b), NEGCUT_ERR_SHAPE, "dy");
  ck_error(ngc_conv2d_bwd(ctx, &cp, x, w, y, y, NULL, NULL), NEGCUT_ERR_SHAPE, "dx");
  ngc_conv_params s0 = {.pad = 1}, neg = {.stride = 1, .pad = -1}, opad = {.stride = 2, .pad = 1, .out_pad = 2};
  ck_error(ngc_conv2d_fwd(ctx, &s0, x, w, b, y), NEGCUT_ERR_INVALID_ARGUMENT, "stride");
  ck_error(ngc_conv2d_fwd(ctx, &neg, x, w, b, y), NEGCUT_ERR_INVALID_ARGUMENT, "pad");
  ck_error(ngc_convt2d_fwd(ctx, &opad, x, w, b, y), NEGCUT_ERR_INVALID_ARGUMENT, "out_pad");
  ck_error(ngc_conv2d_fwd(ctx, NULL, x, w, b, y), NEGCUT_ERR_INVALID_ARGUMENT, "params");
  ngc_tensor *mean = T2(0, 2, 4), *rstd = T2(0, 2, 4), *b3 = T1(0, 3);
  ck_error(ngc_inorm_bias_fwd(ctx, 1e-5f, NGC_ACT_TANH, 0, y, b, y, mean, rstd),
           NEGCUT_ERR_INVALID_ARGUMENT, "not relu, lrelu or none");
  ck_error(ngc_inorm_bias_fwd(ctx, 1e-5f, NGC_NO_ACT, 0, y, b3, y, mean, rstd), NEGCUT_ERR_SHAPE,
           "b is");
  if (!ctx->be->ops.inorm_bias_fwd) /* the host backends add the bias in the convolution */
    ck_error(ngc_inorm_bias_fwd(ctx, 1e-5f, NGC_NO_ACT, 0, y, b, y, mean, rstd), NEGCUT_ERR_UNSUPPORTED,
             "has no inorm_bias_fwd");
  uint16_t half[4 * 3 * 3 * 3]; /* as many as w has floats */
  ck_error(ngc_to_bf16(ctx, w, NULL), NEGCUT_ERR_INVALID_ARGUMENT, "dst");
  if (!ctx->be->ops.to_bf16) /* the host backends keep their weights in fp32 */
    ck_error(ngc_to_bf16(ctx, w, half), NEGCUT_ERR_UNSUPPORTED, "has no to_bf16");

  ngc_tensor *small = T4(0, 1, 1, 2, 5), *padded = T4(0, 1, 1, 6, 9);
  ck_error(ngc_pad_fwd(ctx, NGC_PAD_REFLECT, 2, small, padded), NEGCUT_ERR_SHAPE, "reflect");
  ck_assert_int_eq(ngc_pad_fwd(ctx, NGC_PAD_REPLICATE, 2, small, padded), NEGCUT_OK);
  ck_error(ngc_pad_fwd(ctx, (ngc_pad_mode)7, 2, small, padded), NEGCUT_ERR_INVALID_ARGUMENT,
           "mode");
  ck_error(ngc_blur_down_fwd(ctx, x, y), NEGCUT_ERR_SHAPE, "blur_down_fwd");
  ck_error(ngc_blur_up_bwd(ctx, x, y), NEGCUT_ERR_SHAPE, "blur_up_bwd");

  int64_t ids[2] = {0, 42};
  ngc_tensor *rows = T2(0, 4, 3);
  ck_error(ngc_gather_fwd(ctx, x, ids, 2, rows), NEGCUT_ERR_INVALID_ARGUMENT, "ids[1] = 42");
  ids[1] = 41;
  ck_assert_int_eq(ngc_gather_fwd(ctx, x, ids, 2, rows), NEGCUT_OK);
  ck_error(ngc_gather_fwd(ctx, x, NULL, 2, rows), NEGCUT_ERR_INVALID_ARGUMENT, "gather_fwd");

  ngc_tensor *lx = T2(0, 5, 4), *lw = T2(0, 3, 5), *ly = T2(0, 5, 3);
  ck_error(ngc_linear_fwd(ctx, lx, lw, NULL, ly), NEGCUT_ERR_SHAPE, "linear_fwd");
  ck_error(ngc_act_fwd(ctx, (ngc_act)9, 0, lx, lx), NEGCUT_ERR_INVALID_ARGUMENT, "act_fwd");
  ck_error(ngc_act_bwd(ctx, NGC_ACT_TANH, 0, lx, NULL, lx, lx), NEGCUT_ERR_INVALID_ARGUMENT,
           "act_bwd");
  ck_error(ngc_xent0_fwd(ctx, lx, ly), NEGCUT_ERR_SHAPE, "loss");
  ck_error(ngc_mse_const_fwd(ctx, lx, 0, ly), NEGCUT_ERR_SHAPE, "out");
  ck_error(ngc_concat_fwd(ctx, lx, ly, lx), NEGCUT_ERR_SHAPE, "concat_fwd");
  ck_error(ngc_fill_diag_fwd(ctx, 0, lx, lx), NEGCUT_ERR_SHAPE, "fill_diag_fwd");

  ngc_adam_params ap = {0.1f, 1.0f, 0.999f, 1e-8f, 0, 1};
  ck_error(ngc_adam_step(ctx, &ap, lx, lx, lx, lx), NEGCUT_ERR_INVALID_ARGUMENT, "adam");
  ap.beta1 = 0.9f;
  ap.step = 0;
  ck_error(ngc_adam_step(ctx, &ap, lx, lx, lx, lx), NEGCUT_ERR_INVALID_ARGUMENT, "step");
  ap.step = 1;
  ck_error(ngc_adam_step(ctx, &ap, lx, lx, ly, lx), NEGCUT_ERR_SHAPE, "m is (5, 3)");
  ck_error(ngc_ema_update(ctx, NAN, lx, lx), NEGCUT_ERR_INVALID_ARGUMENT, "decay");
}
END_TEST

/* A NULL slot falls back to the reference only on a host-memory backend. */
START_TEST(test_dispatch) {
  ngc_tensor *y = T1(0, 4);
  ngc_backend saved = *ctx->be;
  ngc_backend fake = saved; /* a copy of the ref backend with a hole */
  fake.name = "fake";
  fake.ops.fill = NULL;
  ctx->be = &fake;
  ck_assert_int_eq(ngc_fill(ctx, y, 5.0f), NEGCUT_OK);
  ck_assert_float_eq(y->data[3], 5.0f);
  fake.host_memory = 0;
  negcut_status st = ngc_fill(ctx, y, 6.0f);
  ctx->be = ctx->ref;
  ck_assert_int_eq(st, NEGCUT_ERR_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "fake"));
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "fill"));
  ck_assert_float_eq(y->data[3], 5.0f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("ops_grad");
  TCase *g = tcase_create("grad");
  tcase_add_checked_fixture(g, setup, teardown);
  tcase_add_loop_test(g, test_grad_act, 0, 3);
  tcase_add_loop_test(g, test_grad_conv2d, 0, (int)(sizeof conv_cfg / sizeof conv_cfg[0]));
  tcase_add_loop_test(g, test_grad_convt2d, 0, (int)(sizeof convt_cfg / sizeof convt_cfg[0]));
  tcase_add_loop_test(g, test_grad_pad, 0, 3);
  tcase_add_test(g, test_grad_inorm);
  tcase_add_test(g, test_grad_blur);
  tcase_add_test(g, test_grad_hflip_concat);
  tcase_add_test(g, test_grad_linear_bmm);
  tcase_add_test(g, test_grad_l2norm);
  tcase_add_test(g, test_grad_rows);
  tcase_add_test(g, test_grad_losses);
  tcase_add_test(g, test_grad_rowdot_bce);
  suite_add_tcase(s, g);
  TCase *f = tcase_create("forward");
  tcase_add_checked_fixture(f, setup, teardown);
  tcase_add_test(f, test_fwd_conv);
  tcase_add_test(f, test_fwd_pad);
  tcase_add_test(f, test_fwd_blur_down);
  tcase_add_test(f, test_fwd_blur_up_is_bilinear);
  tcase_add_test(f, test_fwd_norms);
  tcase_add_test(f, test_fwd_losses);
  tcase_add_test(f, test_fwd_elementwise_optim);
  suite_add_tcase(s, f);
  TCase *e = tcase_create("checks");
  tcase_add_checked_fixture(e, setup, teardown);
  tcase_add_test(e, test_errors);
  tcase_add_test(e, test_dispatch);
  suite_add_tcase(s, e);
  return ngc_test_run(s);
}
