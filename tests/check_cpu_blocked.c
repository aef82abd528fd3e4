/* The CPU backend's blocked activation layout (nChw16c / nChw8c, backend.h
 * "Layouts"). Oracle: the same slot on plain tensors, itself checked against
 * the reference backend by check_cpu_loops, check_cpu_conv and the parity
 * suites. Every slot that takes blocked tensors runs once on plain inputs and
 * once on the same values in the blocked layout (block 16 and 8), and the
 * blocked outputs, converted back, must match. Then the op layer's layout
 * checks, whole networks with blocking on and off, and tap gradients given
 * as rows at patch ids against the same gradients made dense. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_conv.h"
#include "core/core.h"
#include "core/tensor.h"
#include "models/net.h"
#include "ngc_test.h"
#include "ops/ops.h"

static negcut_ctx *g_ctx; /* cpu, 2 threads */
static negcut_ctx *g_ref;

static void setup(void) {
  negcut_ctx_options o;
  ck_assert_int_eq(negcut_ctx_options_init(&o), NEGCUT_OK);
  o.backend = NEGCUT_BACKEND_CPU;
  o.threads = 2;
  ck_assert_int_eq(negcut_ctx_create(&g_ctx, &o), NEGCUT_OK);
  o.backend = NEGCUT_BACKEND_REF;
  o.threads = 1;
  ck_assert_int_eq(negcut_ctx_create(&g_ref, &o), NEGCUT_OK);
}

static void teardown(void) {
  negcut_ctx_free(g_ctx);
  negcut_ctx_free(g_ref);
}

#define OK(expr) ck_assert_int_eq((expr), NEGCUT_OK)

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;

static float urand(float lo, float hi) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}

/* A tensor over fresh host memory (the cpu backend's memory is host memory),
 * filled with v, or uniform in [-1, 1] when v is NaN. Freed by tfree. */
static ngc_tensor tnew(int32_t nd, const int64_t *dim, ngc_layout layout, float v) {
  ngc_tensor t = ngc_tensor_view(g_ctx->be, NULL, nd, dim);
  int64_t n = ngc_numel(&t);
  t.data = malloc((size_t)(n ? n : 1) * sizeof(float));
  ck_assert_ptr_nonnull(t.data);
  for (int64_t i = 0; i < n; i++) t.data[i] = isnan(v) ? urand(-1.0f, 1.0f) : v;
  t.layout = layout;
  return t;
}

static void tfree(ngc_tensor *t) {
  free(t->data);
  t->data = NULL;
}

/* ------------------------------------------------- the relayout itself */

START_TEST(test_relayout) {
  for (int32_t blk = 8; blk <= 16; blk += 8) {
    g_ctx->be->act_block = blk;
    const int64_t N = 2, C = 2 * blk, H = 3, W = 5, P = H * W;
    ngc_tensor x = tnew(4, (int64_t[4]){N, C, H, W}, NGC_LAYOUT_PLAIN, NAN);
    ngc_tensor b = tnew(4, x.dim, NGC_LAYOUT_BLOCKED, NAN);
    ngc_tensor back = tnew(4, x.dim, NGC_LAYOUT_PLAIN, NAN);
    OK(ngc_relayout(g_ctx, &x, &b));
    for (int64_t n = 0; n < N; n++) /* (N, C/B, H, W, B), written out by hand */
      for (int64_t c = 0; c < C; c++)
        for (int64_t p = 0; p < P; p++)
          ck_assert_float_eq(b.data[((n * (C / blk) + c / blk) * P + p) * blk + c % blk],
                             x.data[(n * C + c) * P + p]);
    OK(ngc_relayout(g_ctx, &b, &back));
    ck_assert_int_eq(memcmp(back.data, x.data, (size_t)ngc_numel(&x) * sizeof(float)), 0);
    tfree(&x), tfree(&b), tfree(&back);
  }
}
END_TEST

/* ------------------------------------- each slot: blocked vs plain */

#define MAX_T 7

/* A case: tensors t[0..n_in) are inputs (random), t[n_in..n) outputs (NaN:
 * a slot must write each element, or 0 where `zero` says so because the slot
 * accumulates). blk says which are activations, blocked in the second run. */
typedef negcut_status (*case_fn)(negcut_ctx *ctx, ngc_tensor *t);
typedef struct op_case {
  const char *name;
  case_fn fn;
  int n_in, n;
  int32_t nd[MAX_T];
  int64_t dim[MAX_T][4];
  int blk[MAX_T];
  int zero[MAX_T];
  double atol, rtol;
} op_case;

static const int64_t k_ids[] = {0, 5, 62, 5, 17, 40}; /* a repeat: gradients add up */
#define N_IDS ((int64_t)(sizeof k_ids / sizeof k_ids[0]))

static negcut_status f_pad_reflect(negcut_ctx *c, ngc_tensor *t) {
  return ngc_pad_fwd(c, NGC_PAD_REFLECT, 3, &t[0], &t[1]);
}
static negcut_status f_pad_zero(negcut_ctx *c, ngc_tensor *t) {
  return ngc_pad_fwd(c, NGC_PAD_ZERO, 1, &t[0], &t[1]);
}
static negcut_status f_pad_replicate(negcut_ctx *c, ngc_tensor *t) {
  return ngc_pad_fwd(c, NGC_PAD_REPLICATE, 2, &t[0], &t[1]);
}
static negcut_status f_pad_reflect_bwd(negcut_ctx *c, ngc_tensor *t) {
  return ngc_pad_bwd(c, NGC_PAD_REFLECT, 3, &t[0], &t[1]);
}
static negcut_status f_pad_replicate_bwd(negcut_ctx *c, ngc_tensor *t) {
  return ngc_pad_bwd(c, NGC_PAD_REPLICATE, 2, &t[0], &t[1]);
}
static negcut_status f_inorm(negcut_ctx *c, ngc_tensor *t) {
  return ngc_inorm_fwd(c, 1e-5f, &t[0], &t[1], &t[2], &t[3]);
}
static negcut_status f_inorm_bwd(negcut_ctx *c, ngc_tensor *t) {
  ngc_tensor rstd = t[1];
  for (int64_t i = 0; i < ngc_numel(&rstd); i++) rstd.data[i] = 1.5f + rstd.data[i];
  return ngc_inorm_bwd(c, &t[0], &rstd, &t[2], &t[3]);
}
static negcut_status f_relu(negcut_ctx *c, ngc_tensor *t) {
  return ngc_act_fwd(c, NGC_ACT_RELU, 0.0f, &t[0], &t[1]);
}
static negcut_status f_lrelu_bwd(negcut_ctx *c, ngc_tensor *t) {
  return ngc_act_bwd(c, NGC_ACT_LRELU, 0.2f, &t[0], NULL, &t[1], &t[2]);
}
static negcut_status f_tanh_bwd(negcut_ctx *c, ngc_tensor *t) {
  return ngc_act_bwd(c, NGC_ACT_TANH, 0.0f, NULL, &t[0], &t[1], &t[2]);
}
static negcut_status f_add(negcut_ctx *c, ngc_tensor *t) {
  return ngc_add(c, &t[0], &t[1], &t[2]);
}
static negcut_status f_axpby(negcut_ctx *c, ngc_tensor *t) {
  negcut_status st = ngc_axpby(c, 1.0f, &t[1], 0.0f, &t[2]);
  return st ? st : ngc_axpby(c, 0.75f, &t[0], -0.5f, &t[2]);
}
static negcut_status f_down(negcut_ctx *c, ngc_tensor *t) {
  return ngc_blur_down_fwd(c, &t[0], &t[1]);
}
static negcut_status f_down_bwd(negcut_ctx *c, ngc_tensor *t) {
  return ngc_blur_down_bwd(c, &t[0], &t[1]);
}
static negcut_status f_up(negcut_ctx *c, ngc_tensor *t) {
  return ngc_blur_up_fwd(c, &t[0], &t[1]);
}
static negcut_status f_up_bwd(negcut_ctx *c, ngc_tensor *t) {
  return ngc_blur_up_bwd(c, &t[0], &t[1]);
}
static negcut_status f_hflip(negcut_ctx *c, ngc_tensor *t) {
  negcut_status st = ngc_hflip(c, &t[0], &t[1]);
  return st ? st : ngc_hflip(c, &t[1], &t[1]); /* in place, back again */
}
static negcut_status f_hflip_once(negcut_ctx *c, ngc_tensor *t) {
  return ngc_hflip(c, &t[0], &t[1]);
}
static negcut_status f_gather(negcut_ctx *c, ngc_tensor *t) {
  return ngc_gather_fwd(c, &t[0], k_ids, N_IDS, &t[1]);
}
static negcut_status f_gather_bwd(negcut_ctx *c, ngc_tensor *t) {
  return ngc_gather_bwd(c, &t[0], k_ids, N_IDS, &t[1]);
}
static negcut_status f_conv3s2(negcut_ctx *c, ngc_tensor *t) {
  ngc_conv_params p = {.stride = 2, .pad = 1};
  return ngc_conv2d_fwd(c, &p, &t[0], &t[1], &t[2], &t[3]);
}
static negcut_status f_conv7(negcut_ctx *c, ngc_tensor *t) {
  ngc_conv_params p = {.stride = 1, .pad = 0};
  return ngc_conv2d_fwd(c, &p, &t[0], &t[1], &t[2], &t[3]);
}
static negcut_status f_conv5p2(negcut_ctx *c, ngc_tensor *t) {
  ngc_conv_params p = {.stride = 1, .pad = 2};
  return ngc_conv2d_fwd(c, &p, &t[0], &t[1], &t[2], &t[3]);
}
static negcut_status f_conv4p1(negcut_ctx *c, ngc_tensor *t) {
  ngc_conv_params p = {.stride = 1, .pad = 1};
  return ngc_conv2d_fwd(c, &p, &t[0], &t[1], &t[2], &t[3]);
}
static negcut_status f_conv5p2_bwd(negcut_ctx *c, ngc_tensor *t) {
  ngc_conv_params p = {.stride = 1, .pad = 2};
  return ngc_conv2d_bwd(c, &p, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5]);
}
static negcut_status f_conv3s2_bwd(negcut_ctx *c, ngc_tensor *t) {
  ngc_conv_params p = {.stride = 2, .pad = 1};
  return ngc_conv2d_bwd(c, &p, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5]);
}
static negcut_status f_conv_bias_only_bwd(negcut_ctx *c, ngc_tensor *t) {
  ngc_conv_params p = {.stride = 1, .pad = 1};
  return ngc_conv2d_bwd(c, &p, &t[0], &t[1], &t[2], &t[3], NULL, &t[4]);
}
static negcut_status f_convt(negcut_ctx *c, ngc_tensor *t) {
  ngc_conv_params p = {.stride = 2, .pad = 1, .out_pad = 1};
  return ngc_convt2d_fwd(c, &p, &t[0], &t[1], &t[2], &t[3]);
}
static negcut_status f_convt_bwd(negcut_ctx *c, ngc_tensor *t) {
  ngc_conv_params p = {.stride = 2, .pad = 1, .out_pad = 1};
  return ngc_convt2d_bwd(c, &p, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5]);
}
static negcut_status f_losses(negcut_ctx *c, ngc_tensor *t) {
  negcut_status st = ngc_mse_const_fwd(c, &t[0], 0.25f, &t[2]);
  if (!st) st = ngc_mean_all(c, &t[0], &t[3]);
  if (!st) st = ngc_mad_fwd(c, &t[0], &t[1], &t[4]);
  return st;
}

#define D4(n, c, h, w) {n, c, h, w}

/* C is a multiple of 16 wherever blk is set, so one table serves blocks 8
 * and 16. Odd sizes throughout, batch 2. */
static const op_case k_cases[] = {
    {"pad reflect 3", f_pad_reflect, 1, 2, {4, 4}, {D4(2, 32, 7, 9), D4(2, 32, 13, 15)}, {1, 1}, {0}, 0, 0},
    {"pad zero 1", f_pad_zero, 1, 2, {4, 4}, {D4(2, 16, 5, 4), D4(2, 16, 7, 6)}, {1, 1}, {0}, 0, 0},
    {"pad replicate 2", f_pad_replicate, 1, 2, {4, 4}, {D4(1, 16, 3, 5), D4(1, 16, 7, 9)}, {1, 1}, {0}, 0, 0},
    {"pad reflect 3 bwd", f_pad_reflect_bwd, 1, 2, {4, 4}, {D4(2, 32, 13, 15), D4(2, 32, 7, 9)}, {1, 1}, {0}, 1e-6, 1e-6},
    {"pad replicate 2 bwd", f_pad_replicate_bwd, 1, 2, {4, 4}, {D4(1, 16, 7, 9), D4(1, 16, 3, 5)}, {1, 1}, {0}, 1e-6, 1e-6},
    {"inorm fwd", f_inorm, 1, 4, {4, 4, 2, 2}, {D4(2, 32, 23, 19), D4(2, 32, 23, 19), D4(2, 32, 0, 0), D4(2, 32, 0, 0)}, {1, 1, 0, 0}, {0}, 1e-5, 1e-5},
    {"inorm bwd", f_inorm_bwd, 3, 4, {4, 2, 4, 4}, {D4(2, 32, 9, 11), D4(2, 32, 0, 0), D4(2, 32, 9, 11), D4(2, 32, 9, 11)}, {1, 0, 1, 1}, {0}, 1e-5, 1e-5},
    {"relu fwd", f_relu, 1, 2, {4, 4}, {D4(2, 16, 5, 7), D4(2, 16, 5, 7)}, {1, 1}, {0}, 0, 0},
    {"lrelu bwd", f_lrelu_bwd, 2, 3, {4, 4, 4}, {D4(2, 16, 5, 7), D4(2, 16, 5, 7), D4(2, 16, 5, 7)}, {1, 1, 1}, {0}, 0, 0},
    {"tanh bwd", f_tanh_bwd, 2, 3, {4, 4, 4}, {D4(1, 32, 3, 3), D4(1, 32, 3, 3), D4(1, 32, 3, 3)}, {1, 1, 1}, {0}, 0, 0},
    {"add", f_add, 2, 3, {4, 4, 4}, {D4(2, 16, 5, 7), D4(2, 16, 5, 7), D4(2, 16, 5, 7)}, {1, 1, 1}, {0}, 0, 0},
    {"axpby", f_axpby, 2, 3, {4, 4, 4}, {D4(2, 16, 5, 7), D4(2, 16, 5, 7), D4(2, 16, 5, 7)}, {1, 1, 1}, {0}, 0, 0},
    {"blur down odd", f_down, 1, 2, {4, 4}, {D4(2, 32, 7, 9), D4(2, 32, 4, 5)}, {1, 1}, {0}, 1e-6, 1e-6},
    {"blur down even", f_down, 1, 2, {4, 4}, {D4(1, 16, 8, 12), D4(1, 16, 4, 6)}, {1, 1}, {0}, 1e-6, 1e-6},
    {"blur down narrow", f_down, 1, 2, {4, 4}, {D4(1, 16, 5, 3), D4(1, 16, 3, 2)}, {1, 1}, {0}, 1e-6, 1e-6},
    {"blur down bwd odd", f_down_bwd, 1, 2, {4, 4}, {D4(2, 32, 4, 5), D4(2, 32, 7, 9)}, {1, 1}, {0}, 1e-6, 1e-6},
    {"blur down bwd even", f_down_bwd, 1, 2, {4, 4}, {D4(1, 16, 4, 6), D4(1, 16, 8, 12)}, {1, 1}, {0}, 1e-6, 1e-6},
    {"blur up", f_up, 1, 2, {4, 4}, {D4(2, 32, 5, 6), D4(2, 32, 10, 12)}, {1, 1}, {0}, 1e-6, 1e-6},
    {"blur up 1x1", f_up, 1, 2, {4, 4}, {D4(1, 16, 1, 1), D4(1, 16, 2, 2)}, {1, 1}, {0}, 1e-6, 1e-6},
    {"blur up bwd", f_up_bwd, 1, 2, {4, 4}, {D4(2, 32, 10, 12), D4(2, 32, 5, 6)}, {1, 1}, {0}, 1e-6, 1e-6},
    {"hflip there and back", f_hflip, 1, 2, {4, 4}, {D4(2, 16, 3, 7), D4(2, 16, 3, 7)}, {1, 1}, {0}, 0, 0},
    {"hflip", f_hflip_once, 1, 2, {4, 4}, {D4(2, 16, 3, 6), D4(2, 16, 3, 6)}, {1, 1}, {0}, 0, 0},
    {"gather", f_gather, 1, 2, {4, 2}, {D4(2, 32, 7, 9), D4(2 * N_IDS, 32, 0, 0)}, {1, 0}, {0}, 0, 0},
    {"gather bwd", f_gather_bwd, 1, 2, {2, 4}, {D4(2 * N_IDS, 32, 0, 0), D4(2, 32, 7, 9)}, {0, 1}, {0}, 0, 0},
    /* x, w, b -> y: blocked to blocked, plain (3 channels) to blocked, blocked to plain */
    {"conv 3x3 s2 32->16", f_conv3s2, 3, 4, {4, 4, 1, 4}, {D4(2, 32, 9, 11), D4(16, 32, 3, 3), D4(16, 0, 0, 0), D4(2, 16, 5, 6)}, {1, 0, 0, 1}, {0}, 1e-5, 1e-5},
    {"conv 7x7 3->16", f_conv7, 3, 4, {4, 4, 1, 4}, {D4(1, 3, 12, 13), D4(16, 3, 7, 7), D4(16, 0, 0, 0), D4(1, 16, 6, 7)}, {0, 0, 0, 1}, {0}, 1e-5, 1e-5},
    {"conv 7x7 16->3", f_conv7, 3, 4, {4, 4, 1, 4}, {D4(1, 16, 12, 13), D4(3, 16, 7, 7), D4(3, 0, 0, 0), D4(1, 3, 6, 7)}, {1, 0, 0, 0}, {0}, 1e-5, 1e-5},
    {"conv 5x5 p2 32->4", f_conv5p2, 3, 4, {4, 4, 1, 4}, {D4(2, 32, 7, 70), D4(4, 32, 5, 5), D4(4, 0, 0, 0), D4(2, 4, 7, 70)}, {1, 0, 0, 0}, {0}, 1e-5, 1e-5},
    {"conv 4x4 p1 32->3", f_conv4p1, 3, 4, {4, 4, 1, 4}, {D4(1, 32, 5, 41), D4(3, 32, 4, 4), D4(3, 0, 0, 0), D4(1, 3, 4, 40)}, {1, 0, 0, 0}, {0}, 1e-5, 1e-5},
    {"conv 4x4 p1 64->1", f_conv4p1, 3, 4, {4, 4, 1, 4}, {D4(2, 64, 7, 9), D4(1, 64, 4, 4), D4(1, 0, 0, 0), D4(2, 1, 6, 8)}, {1, 0, 0, 0}, {0}, 1e-5, 1e-5},
    /* x, w, dy -> dx, dw (+=), db (+=) */
    {"conv 5x5 p2 32->4 bwd", f_conv5p2_bwd, 3, 6, {4, 4, 4, 4, 4, 1}, {D4(2, 32, 7, 70), D4(4, 32, 5, 5), D4(2, 4, 7, 70), D4(2, 32, 7, 70), D4(4, 32, 5, 5), D4(4, 0, 0, 0)}, {1, 0, 0, 1, 0, 0}, {0, 0, 0, 0, 1, 1}, 1e-4, 1e-5},
    {"conv 5x5 p2 3->32 bwd", f_conv5p2_bwd, 3, 6, {4, 4, 4, 4, 4, 1}, {D4(2, 3, 7, 70), D4(32, 3, 5, 5), D4(2, 32, 7, 70), D4(2, 3, 7, 70), D4(32, 3, 5, 5), D4(32, 0, 0, 0)}, {0, 0, 1, 0, 0, 0}, {0, 0, 0, 0, 1, 1}, 1e-4, 1e-5},
    {"conv 3x3 s2 bwd", f_conv3s2_bwd, 3, 6, {4, 4, 4, 4, 4, 1}, {D4(2, 32, 9, 11), D4(16, 32, 3, 3), D4(2, 16, 5, 6), D4(2, 32, 9, 11), D4(16, 32, 3, 3), D4(16, 0, 0, 0)}, {1, 0, 1, 1, 0, 0}, {0, 0, 0, 0, 1, 1}, 1e-4, 1e-5},
    {"conv bwd, bias only", f_conv_bias_only_bwd, 3, 5, {4, 4, 4, 4, 1}, {D4(2, 16, 5, 7), D4(32, 16, 3, 3), D4(2, 32, 5, 7), D4(2, 16, 5, 7), D4(32, 0, 0, 0)}, {1, 0, 1, 1, 0}, {0, 0, 0, 0, 1}, 1e-5, 1e-5},
    {"convt 3x3 s2", f_convt, 3, 4, {4, 4, 1, 4}, {D4(2, 32, 4, 5), D4(32, 16, 3, 3), D4(16, 0, 0, 0), D4(2, 16, 8, 10)}, {1, 0, 0, 1}, {0}, 1e-5, 1e-5},
    {"convt 3x3 s2 bwd", f_convt_bwd, 3, 6, {4, 4, 4, 4, 4, 1}, {D4(2, 32, 4, 5), D4(32, 16, 3, 3), D4(2, 16, 8, 10), D4(2, 32, 4, 5), D4(32, 16, 3, 3), D4(16, 0, 0, 0)}, {1, 0, 1, 1, 0, 0}, {0, 0, 0, 0, 1, 1}, 1e-4, 1e-5},
    {"mse, mean, mad", f_losses, 2, 5, {4, 4, 1, 1, 1}, {D4(2, 32, 5, 7), D4(2, 32, 5, 7), D4(1, 0, 0, 0), D4(1, 0, 0, 0), D4(1, 0, 0, 0)}, {1, 1, 0, 0, 0}, {0}, 1e-6, 1e-5},
};

/* One case with channel block blk: plain run, blocked run, compare. */
static void run_case(const op_case *k, int32_t blk) {
  ngc_tensor p[MAX_T], b[MAX_T];
  char what[128];
  g_ctx->be->act_block = blk;
  for (int i = 0; i < k->n; i++) {
    const int out = i >= k->n_in, nan_out = out && !k->zero[i];
    /* inputs random, accumulated outputs 0, assigned outputs NaN */
    p[i] = tnew(k->nd[i], k->dim[i], NGC_LAYOUT_PLAIN, out && k->zero[i] ? 0.0f : NAN);
    b[i] = tnew(k->nd[i], k->dim[i], k->blk[i] ? NGC_LAYOUT_BLOCKED : NGC_LAYOUT_PLAIN, 0.0f);
    if (nan_out)
      for (int64_t e = 0; e < ngc_numel(&p[i]); e++) p[i].data[e] = b[i].data[e] = NAN;
    else
      OK(ngc_relayout(g_ctx, &p[i], &b[i]));
  }
  OK(k->fn(g_ctx, p));
  OK(k->fn(g_ctx, b));
  for (int i = k->n_in; i < k->n; i++) {
    ngc_tensor back = tnew(k->nd[i], k->dim[i], NGC_LAYOUT_PLAIN, NAN);
    OK(ngc_relayout(g_ctx, &b[i], &back));
    snprintf(what, sizeof what, "%s (block %d) output %d", k->name, (int)blk, i - k->n_in);
    ck_assert_msg(ngc_test_compare(what, back.data, p[i].data, ngc_numel(&back), k->atol, k->rtol) == 0,
                  "%s differs from the plain layout", what);
    tfree(&back);
  }
  for (int i = 0; i < k->n; i++) tfree(&p[i]), tfree(&b[i]);
}

START_TEST(test_slot_blocked_vs_plain) {
  const op_case *k = &k_cases[_i];
  run_case(k, 16);
  run_case(k, 8);
  g_ctx->be->act_block = 16;
}
END_TEST

/* The fused norm + activation (inorm_act) against the two ops run one after
 * the other, both layouts, ReLU and leaky ReLU; and the composition the op
 * layer falls back to on a backend without the slot (ref). */
START_TEST(test_inorm_act) {
  const int64_t d[4] = {2, 32, 19, 23}, ds[2] = {2, 32};
  for (int blocked = 0; blocked < 2; blocked++)
    for (int a = 0; a < 2; a++) {
      const ngc_act act = a ? NGC_ACT_LRELU : NGC_ACT_RELU;
      const ngc_layout lay = blocked ? NGC_LAYOUT_BLOCKED : NGC_LAYOUT_PLAIN;
      ngc_tensor x = tnew(4, d, lay, NAN), y1 = tnew(4, d, lay, NAN), y2 = tnew(4, d, lay, NAN);
      ngc_tensor m1 = tnew(2, ds, NGC_LAYOUT_PLAIN, 0.0f), r1 = tnew(2, ds, NGC_LAYOUT_PLAIN, 0.0f);
      ngc_tensor m2 = tnew(2, ds, NGC_LAYOUT_PLAIN, 0.0f), r2 = tnew(2, ds, NGC_LAYOUT_PLAIN, 0.0f);
      OK(ngc_inorm_act_fwd(g_ctx, 1e-5f, act, 0.2f, &x, &y1, &m1, &r1));
      OK(ngc_inorm_fwd(g_ctx, 1e-5f, &x, &y2, &m2, &r2));
      OK(ngc_act_fwd(g_ctx, act, 0.2f, &y2, &y2));
      ck_assert(ngc_test_compare("inorm_act y", y1.data, y2.data, ngc_numel(&x), 0, 0) == 0);
      ck_assert_int_eq(memcmp(y1.data, y2.data, (size_t)ngc_numel(&x) * sizeof(float)), 0);
      ck_assert(ngc_test_compare("inorm_act mean", m1.data, m2.data, 64, 0, 0) == 0);
      ck_assert(ngc_test_compare("inorm_act rstd", r1.data, r2.data, 64, 0, 0) == 0);
      tfree(&x), tfree(&y1), tfree(&y2), tfree(&m1), tfree(&r1), tfree(&m2), tfree(&r2);
    }
  /* ref has no fused slot: the op layer composes */
  ngc_tensor x = tnew(4, d, NGC_LAYOUT_PLAIN, NAN), y1 = tnew(4, d, NGC_LAYOUT_PLAIN, NAN);
  ngc_tensor y2 = tnew(4, d, NGC_LAYOUT_PLAIN, NAN);
  ngc_tensor m = tnew(2, ds, NGC_LAYOUT_PLAIN, 0.0f), r = tnew(2, ds, NGC_LAYOUT_PLAIN, 0.0f);
  x.be = y1.be = y2.be = m.be = r.be = g_ref->be;
  ck_assert_ptr_null(g_ref->be->ops.inorm_act_fwd);
  OK(ngc_inorm_act_fwd(g_ref, 1e-5f, NGC_ACT_LRELU, 0.2f, &x, &y1, &m, &r));
  OK(ngc_inorm_fwd(g_ref, 1e-5f, &x, &y2, &m, &r));
  OK(ngc_act_fwd(g_ref, NGC_ACT_LRELU, 0.2f, &y2, &y2));
  ck_assert(ngc_test_compare("ref inorm_act y", y1.data, y2.data, ngc_numel(&x), 0, 0) == 0);
  ck_assert_int_eq(ngc_inorm_act_fwd(g_ref, 1e-5f, NGC_ACT_TANH, 0.0f, &x, &y1, &m, &r),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  tfree(&x), tfree(&y1), tfree(&y2), tfree(&m), tfree(&r);
}
END_TEST

/* The blocked norm's one-pass statistics on planes whose mean is far from
 * zero next to their spread (x = 1000 + 0.01 u): as exact as the plain
 * two-pass ones. */
START_TEST(test_inorm_block_precision) {
  const int64_t d[4] = {1, 16, 64, 64}, ds[2] = {1, 16};
  ngc_tensor x = tnew(4, d, NGC_LAYOUT_PLAIN, NAN), xb = tnew(4, d, NGC_LAYOUT_BLOCKED, 0.0f);
  ngc_tensor y = tnew(4, d, NGC_LAYOUT_PLAIN, NAN), yb = tnew(4, d, NGC_LAYOUT_BLOCKED, NAN);
  ngc_tensor back = tnew(4, d, NGC_LAYOUT_PLAIN, NAN);
  ngc_tensor m = tnew(2, ds, NGC_LAYOUT_PLAIN, 0.0f), r = tnew(2, ds, NGC_LAYOUT_PLAIN, 0.0f);
  ngc_tensor mb = tnew(2, ds, NGC_LAYOUT_PLAIN, 0.0f), rb = tnew(2, ds, NGC_LAYOUT_PLAIN, 0.0f);
  for (int64_t i = 0; i < ngc_numel(&x); i++) x.data[i] = 1000.0f + 0.01f * x.data[i];
  OK(ngc_relayout(g_ctx, &x, &xb));
  OK(ngc_inorm_fwd(g_ctx, 1e-5f, &x, &y, &m, &r));
  OK(ngc_inorm_fwd(g_ctx, 1e-5f, &xb, &yb, &mb, &rb));
  OK(ngc_relayout(g_ctx, &yb, &back));
  ck_assert(ngc_test_compare("far mean: mean", mb.data, m.data, 16, 0, 1e-7) == 0);
  ck_assert(ngc_test_compare("far mean: rstd", rb.data, r.data, 16, 0, 1e-4) == 0);
  ck_assert(ngc_test_compare("far mean: y", back.data, y.data, ngc_numel(&x), 1e-3, 0) == 0);
  tfree(&x), tfree(&xb), tfree(&y), tfree(&yb), tfree(&back);
  tfree(&m), tfree(&r), tfree(&mb), tfree(&rb);
}
END_TEST

/* The blocked norm shares the chunks of its planes among the threads (a
 * single 16-channel plane too, and a last chunk shorter than the others):
 * forward and backward give the same bits on 1, 2 and 3 threads. */
START_TEST(test_inorm_threads) {
  /* 1, 3 and 5 planes of 16 channels (2, 6, 10 of 8): each shared on 2 or 3 threads */
  static const int64_t shapes[3][4] = {{1, 16, 53, 41}, {3, 16, 24, 40}, {5, 16, 20, 24}};
  for (int s = 0; s < 3; s++) {
    const int64_t *d = shapes[s], ds[2] = {d[0], d[1]}, n = d[0] * d[1] * d[2] * d[3];
    ngc_tensor x = tnew(4, d, NGC_LAYOUT_BLOCKED, NAN), g = tnew(4, d, NGC_LAYOUT_BLOCKED, NAN);
    ngc_tensor y[3], dx[3], m[3], r[3];
    for (int t = 0; t < 3; t++) {
      negcut_ctx *c;
      negcut_ctx_options o;
      OK(negcut_ctx_options_init(&o));
      o.backend = NEGCUT_BACKEND_CPU;
      o.threads = t + 1;
      OK(negcut_ctx_create(&c, &o));
      ck_assert_int_eq(c->be->act_block, g_ctx->be->act_block);
      y[t] = tnew(4, d, NGC_LAYOUT_BLOCKED, NAN), dx[t] = tnew(4, d, NGC_LAYOUT_BLOCKED, NAN);
      m[t] = tnew(2, ds, NGC_LAYOUT_PLAIN, NAN), r[t] = tnew(2, ds, NGC_LAYOUT_PLAIN, NAN);
      OK(ngc_inorm_fwd(c, 1e-5f, &x, &y[t], &m[t], &r[t]));
      OK(ngc_inorm_bwd(c, &y[t], &r[t], &g, &dx[t]));
      if (t) {
        ck_assert_int_eq(memcmp(y[t].data, y[0].data, (size_t)n * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(dx[t].data, dx[0].data, (size_t)n * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(m[t].data, m[0].data, (size_t)ds[0] * ds[1] * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(r[t].data, r[0].data, (size_t)ds[0] * ds[1] * sizeof(float)), 0);
      }
      negcut_ctx_free(c);
    }
    /* and the values: per channel, mean 0 and variance 1 (1 - eps r^2) */
    const int64_t L = g_ctx->be->act_block, hw = d[2] * d[3];
    for (int64_t c = 0; c < d[0] * d[1]; c++) {
      double s1 = 0.0, s2 = 0.0;
      const float *p = y[0].data + (c / L) * hw * L + c % L;
      for (int64_t i = 0; i < hw; i++) s1 += p[i * L], s2 += (double)p[i * L] * p[i * L];
      ck_assert_msg(fabs(s1 / (double)hw) < 1e-5 && fabs(s2 / (double)hw - 1.0) < 1e-3,
                    "plane %lld: mean %g, variance %g", (long long)c, s1 / (double)hw,
                    s2 / (double)hw);
    }
    for (int t = 0; t < 3; t++) tfree(&y[t]), tfree(&dx[t]), tfree(&m[t]), tfree(&r[t]);
    tfree(&x), tfree(&g);
  }
}
END_TEST

/* ------------------------------------------------ the op layer's checks */

START_TEST(test_layout_checks) {
  g_ctx->be->act_block = 16;
  int64_t d[4] = {1, 16, 4, 4}, d24[4] = {1, 24, 4, 4};
  ngc_tensor pl = tnew(4, d, NGC_LAYOUT_PLAIN, 1.0f), bl = tnew(4, d, NGC_LAYOUT_BLOCKED, 1.0f);
  ngc_tensor odd = tnew(4, d24, NGC_LAYOUT_BLOCKED, 1.0f), out = tnew(4, d, NGC_LAYOUT_BLOCKED, 0.0f);
  ngc_tensor cat = tnew(4, (int64_t[4]){1, 32, 4, 4}, NGC_LAYOUT_PLAIN, 0.0f);
  /* mixed layouts in an element-wise op */
  ck_assert_int_eq(ngc_add(g_ctx, &pl, &bl, &out), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(g_ctx), "different layouts"));
  ck_assert_int_eq(ngc_pad_fwd(g_ctx, NGC_PAD_ZERO, 0, &pl, &out), NEGCUT_ERR_INVALID_ARGUMENT);
  /* channels that do not fill whole blocks */
  ck_assert_int_eq(ngc_act_fwd(g_ctx, NGC_ACT_RELU, 0.0f, &odd, &odd), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(g_ctx), "blocked"));
  /* a slot that takes no blocked tensors */
  ck_assert_int_eq(ngc_concat_fwd(g_ctx, &bl, &bl, &cat), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(g_ctx), "plain layout"));
  /* a backend without a blocked layout (ref) refuses one */
  ngc_tensor rb = bl;
  rb.be = g_ref->be;
  ck_assert_int_eq(ngc_act_fwd(g_ref, NGC_ACT_RELU, 0.0f, &rb, &rb), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(g_ref), "ref"));
  /* nothing was written by the refused calls */
  for (int64_t i = 0; i < ngc_numel(&out); i++) ck_assert_float_eq(out.data[i], 0.0f);
  tfree(&pl), tfree(&bl), tfree(&odd), tfree(&out), tfree(&cat);
}
END_TEST

START_TEST(test_preferred_block) {
  /* What oneDNN prefers here (nChw16c with AVX-512, nChw8c with AVX2); the
   * slots above run with either whatever the machine is. */
  int32_t blk = ngc_cpu_pick_block(g_ctx->be);
  fprintf(stderr, "cpu backend: oneDNN prefers activation block %d\n", (int)blk);
  ck_assert(blk == 0 || blk == 8 || blk == 16);
  ck_assert_int_eq(g_ctx->be->act_block, blk);
}
END_TEST

/* ------------------------------------------------- whole networks */

/* Runs G (ngf 16, 2 blocks) on x with the given block: inference output,
 * recorded output, tapped features and every gradient of a backward with
 * gradients at the output and the taps. */
typedef struct net_run {
  float *y_inf, *y, *feat[3], *dx, *grads;
  int64_t n_y, n_feat[3], n_dx, n_grads;
} net_run;

/* Every parameter gradient of g, concatenated into a new array of *n. */
static float *copy_grads(const ngc_net *g, int64_t *n) {
  int64_t total = 0;
  for (int32_t i = 0; i < g->n_params; i++)
    if (g->params[i].grad.data) total += ngc_numel(&g->params[i].grad);
  float *out = malloc((size_t)(total ? total : 1) * sizeof(float));
  ck_assert_ptr_nonnull(out);
  for (int32_t i = 0, off = 0; i < g->n_params; i++) {
    if (!g->params[i].grad.data) continue;
    const int64_t k = ngc_numel(&g->params[i].grad);
    memcpy(out + off, g->params[i].grad.data, (size_t)k * sizeof(float));
    off += (int32_t)k;
  }
  *n = total;
  return out;
}

static net_run run_generator(int32_t blk, int antialias) {
  static const int32_t taps[3] = {4, 8, 12};
  ngc_net g;
  ngc_tape tape;
  ngc_seq_rec rec;
  net_run r;
  memset(&r, 0, sizeof r);
  g_rng = 0x1234567ull; /* the same inputs every run */
  g_ctx->be->act_block = blk;
  ngc_generator_cfg cfg = {3, 3, 16, 2, !antialias, !antialias};
  OK(ngc_generator_build(&g, g_ctx, &cfg));
  OK(ngc_net_init_weights(&g, 7, 0.02f));
  OK(ngc_tape_init(&tape, g_ctx));
  int64_t xd[4] = {2, 3, 20, 24};
  ngc_tensor x = tnew(4, xd, NGC_LAYOUT_PLAIN, NAN), y = tnew(4, xd, NGC_LAYOUT_PLAIN, NAN);
  ngc_tensor yi = tnew(4, xd, NGC_LAYOUT_PLAIN, NAN), dy = tnew(4, xd, NGC_LAYOUT_PLAIN, NAN);
  ngc_tensor dx = tnew(4, xd, NGC_LAYOUT_PLAIN, NAN);
  OK(ngc_seq_forward(&g, &tape, &x, -1, NULL, &yi));
  OK(ngc_tape_reset(&tape));
  OK(ngc_seq_forward(&g, &tape, &x, -1, &rec, &y));
  OK(ngc_net_zero_grad(&g));
  OK(ngc_seq_backward(&g, &tape, &rec, &dy, 0, NULL, NULL, &dx));
  /* the encoder pass: features at the taps, plain gradients injected there
   * (the backward converts them), parameter gradients accumulate */
  ngc_seq_rec enc;
  ngc_tensor dtaps[3];
  OK(ngc_seq_encode(&g, &tape, &x, 3, taps, &enc));
  for (int t = 0; t < 3; t++) {
    const ngc_tensor *f = ngc_seq_module_act(&g, &enc, taps[t]);
    ck_assert_ptr_nonnull(f);
    /* every tap has 32 or 64 channels: blocked whenever the backend blocks */
    ck_assert_int_eq(f->layout, blk ? NGC_LAYOUT_BLOCKED : NGC_LAYOUT_PLAIN);
    ngc_tensor plain = tnew(4, f->dim, NGC_LAYOUT_PLAIN, NAN);
    OK(ngc_relayout(g_ctx, f, &plain));
    r.feat[t] = plain.data;
    r.n_feat[t] = ngc_numel(&plain);
    dtaps[t] = tnew(4, f->dim, NGC_LAYOUT_PLAIN, NAN);
  }
  OK(ngc_seq_backward(&g, &tape, &enc, NULL, 3, taps, dtaps, NULL));
  r.grads = copy_grads(&g, &r.n_grads);
  r.y_inf = yi.data, r.y = y.data, r.dx = dx.data;
  r.n_y = r.n_dx = ngc_numel(&x);
  for (int t = 0; t < 3; t++) tfree(&dtaps[t]);
  tfree(&x), tfree(&dy);
  ngc_tape_free(&tape);
  ngc_net_release(&g);
  return r;
}

static double max_abs(const float *x, int64_t n) {
  double m = 0.0;
  for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

static void free_run(net_run *r) {
  free(r->y_inf), free(r->y), free(r->dx), free(r->grads);
  for (int t = 0; t < 3; t++) free(r->feat[t]);
}

START_TEST(test_generator_blocked_vs_plain) {
  const int antialias = _i;
  net_run plain = run_generator(0, antialias);
  for (int32_t blk = 8; blk <= 16; blk += 8) {
    net_run b = run_generator(blk, antialias);
    char what[96];
#define SAME(field, n, atol)                                                               \
  do {                                                                                     \
    snprintf(what, sizeof what, "G%s block %d: %s", antialias ? "" : " (no antialias)",    \
             (int)blk, #field);                                                            \
    ck_assert_msg(ngc_test_compare(what, b.field, plain.field, n, atol, 1e-4) == 0, "%s",  \
                  what);                                                                   \
  } while (0)
    SAME(y_inf, plain.n_y, 1e-5);
    SAME(y, plain.n_y, 1e-5);
    for (int t = 0; t < 3; t++) SAME(feat[t], plain.n_feat[t], 1e-5);
    SAME(dx, plain.n_dx, 1e-5);
    /* weight gradients sum thousands of products in another order */
    SAME(grads, plain.n_grads, 1e-5 * max_abs(plain.grads, plain.n_grads));
#undef SAME
    free_run(&b);
  }
  free_run(&plain);
  g_ctx->be->act_block = 16;
}
END_TEST

/* Tap gradients given as rows at patch ids (what the trainer passes) and
 * the same gradients made dense: the same backward. Taps 4 and 12 sit on
 * activations the layers above also send gradients to (the scatter is
 * added), tap 16 is the last (the scatter starts the gradient). */
START_TEST(test_sparse_tap_grads) {
  static const int32_t taps[3] = {4, 12, 16};
  static const int64_t ids[5] = {3, 0, 17, 3, 29}; /* a repeat adds up */
  ngc_net g;
  ngc_tape tape;
  ngc_seq_rec enc;
  g_ctx->be->act_block = _i ? 16 : 0;
  ngc_generator_cfg cfg = {3, 3, 16, 2, 0, 0};
  OK(ngc_generator_build(&g, g_ctx, &cfg));
  OK(ngc_net_init_weights(&g, 3, 0.02f));
  OK(ngc_tape_init(&tape, g_ctx));
  int64_t xd[4] = {2, 3, 24, 24};
  ngc_tensor x = tnew(4, xd, NGC_LAYOUT_PLAIN, NAN);
  ngc_tensor dx[2] = {tnew(4, xd, NGC_LAYOUT_PLAIN, NAN), tnew(4, xd, NGC_LAYOUT_PLAIN, NAN)};
  float *grads[2] = {NULL, NULL};
  int64_t n_grads = 0;
  OK(ngc_seq_encode(&g, &tape, &x, 3, taps, &enc));
  ngc_tensor rows[3], dense[3];
  ngc_tap_grad sparse[3];
  for (int t = 0; t < 3; t++) {
    const ngc_tensor *f = ngc_seq_module_act(&g, &enc, taps[t]);
    rows[t] = tnew(2, (int64_t[2]){2 * 5, f->dim[1]}, NGC_LAYOUT_PLAIN, NAN);
    dense[t] = tnew(4, f->dim, f->layout, NAN);
    OK(ngc_gather_bwd(g_ctx, &rows[t], ids, 5, &dense[t]));
    sparse[t] = (ngc_tap_grad){.rows = &rows[t], .ids = ids, .n_ids = 5};
  }
  for (int run = 0; run < 2; run++) {
    OK(ngc_net_zero_grad(&g));
    if (run == 0) OK(ngc_seq_backward(&g, &tape, &enc, NULL, 3, taps, dense, &dx[0]));
    else OK(ngc_seq_backward_taps(&g, &tape, &enc, NULL, 3, taps, sparse, &dx[1]));
    grads[run] = copy_grads(&g, &n_grads);
  }
  ck_assert(ngc_test_compare("sparse taps: dx", dx[1].data, dx[0].data, ngc_numel(&x), 1e-6, 1e-5) == 0);
  ck_assert(ngc_test_compare("sparse taps: grads", grads[1], grads[0], n_grads, 1e-6, 1e-5) == 0);
  for (int t = 0; t < 3; t++) tfree(&rows[t]), tfree(&dense[t]);
  free(grads[0]), free(grads[1]);
  tfree(&x), tfree(&dx[0]), tfree(&dx[1]);
  ngc_tape_free(&tape);
  ngc_net_release(&g);
  g_ctx->be->act_block = 16;
}
END_TEST

/* A backward without dx computes no gradient for the image: the first
 * convolution's backward-data is skipped (counted through a wrapped slot),
 * and every parameter gradient is the same bits as with dx. */
static __typeof__(((ngc_backend_ops *)0)->conv2d_bwd) g_real_conv_bwd;
static int g_image_dx; /* conv backward-data passes into 3-channel inputs */

static negcut_status counting_conv_bwd(ngc_backend *be, const ngc_conv_params *p,
                                       const ngc_tensor *x, const ngc_tensor *w,
                                       const ngc_tensor *dy, ngc_tensor *dx, ngc_tensor *dw,
                                       ngc_tensor *db) {
  if (dx && x->dim[1] == 3) g_image_dx++;
  return g_real_conv_bwd(be, p, x, w, dy, dx, dw, db);
}

START_TEST(test_backward_without_dx) {
  ngc_net g;
  ngc_tape tape;
  ngc_seq_rec rec;
  float *grads[2] = {NULL, NULL};
  int64_t n_grads = 0;
  ngc_generator_cfg cfg = {3, 3, 16, 2, 0, 0};
  OK(ngc_generator_build(&g, g_ctx, &cfg));
  OK(ngc_net_init_weights(&g, 5, 0.02f));
  OK(ngc_tape_init(&tape, g_ctx));
  int64_t xd[4] = {2, 3, 20, 24};
  ngc_tensor x = tnew(4, xd, NGC_LAYOUT_PLAIN, NAN), y = tnew(4, xd, NGC_LAYOUT_PLAIN, NAN);
  ngc_tensor dy = tnew(4, xd, NGC_LAYOUT_PLAIN, NAN), dx = tnew(4, xd, NGC_LAYOUT_PLAIN, NAN);
  g_real_conv_bwd = g_ctx->be->ops.conv2d_bwd;
  g_ctx->be->ops.conv2d_bwd = counting_conv_bwd;
  for (int run = 0; run < 2; run++) {
    g_image_dx = 0;
    OK(ngc_tape_reset(&tape));
    OK(ngc_seq_forward(&g, &tape, &x, -1, &rec, &y));
    OK(ngc_net_zero_grad(&g));
    OK(ngc_seq_backward(&g, &tape, &rec, &dy, 0, NULL, NULL, run == 0 ? &dx : NULL));
    ck_assert_int_eq(g_image_dx, run == 0 ? 1 : 0);
    grads[run] = copy_grads(&g, &n_grads);
  }
  g_ctx->be->ops.conv2d_bwd = g_real_conv_bwd;
  ck_assert(max_abs(grads[0], n_grads) > 0.0);
  ck_assert(memcmp(grads[0], grads[1], (size_t)n_grads * sizeof(float)) == 0);
  free(grads[0]), free(grads[1]);
  tfree(&x), tfree(&y), tfree(&dy), tfree(&dx);
  ngc_tape_free(&tape);
  ngc_net_release(&g);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("cpu_blocked");
  TCase *tc = tcase_create("blocked");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_relayout);
  tcase_add_loop_test(tc, test_slot_blocked_vs_plain, 0, (int)(sizeof k_cases / sizeof k_cases[0]));
  tcase_add_test(tc, test_inorm_act);
  tcase_add_test(tc, test_inorm_block_precision);
  tcase_add_test(tc, test_inorm_threads);
  tcase_add_test(tc, test_layout_checks);
  tcase_add_test(tc, test_preferred_block);
  tcase_add_loop_test(tc, test_generator_blocked_vs_plain, 0, 2);
  tcase_add_loop_test(tc, test_sparse_tap_grads, 0, 2);
  tcase_add_test(tc, test_backward_without_dx);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ngc_test_run(suite()); }
