/* The translator: sizes, batches, RGB8 vs float, tiling under a memory
 * limit (with the seam error measured), sharing one model between threads,
 * and bad arguments. The model is a small random generator saved and loaded
 * through the public API. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <negcut.h>

#include "backend/cpu/cpu.h"      /* which convolutions ran */
#include "backend/cpu/cpu_conv.h"
#include "backend/cpu/cpu_loops.h" /* NGC_CPU_HAS_CLONES */
#include "infer/infer.h" /* the options a translator kept */
#include "models/api.h"  /* a network's gradient slab */
#include "io/safetensors.h"
#include "ops/ops.h" /* ngc_fill */
#include "ngc_test.h"

static char model_path[512];
static negcut_ctx *ctx;
static negcut_model *model;

static negcut_ctx *new_ctx(int threads) {
  negcut_ctx_options o;
  negcut_ctx *c = NULL;
  negcut_ctx_options_init(&o);
  o.backend = NEGCUT_BACKEND_CPU;
  o.threads = threads;
  o.seed = 7;
  ck_assert_int_eq(negcut_ctx_create(&c, &o), NEGCUT_OK);
  return c;
}

/* A generator of the test model's architecture (ngf 8, 2 blocks), with
 * fresh weights. */
static negcut_net *new_generator(void) {
  negcut_generator_options go;
  negcut_net *g = NULL;
  negcut_generator_options_init(&go);
  go.ngf = 8;
  go.n_blocks = 2;
  go.init_gain = 1.0f; /* outputs that use the whole [-1, 1] range */
  ck_assert_int_eq(negcut_net_create_generator(&g, ctx, &go), NEGCUT_OK);
  return g;
}

static void setup(void) {
  char dir[] = "/tmp/ngc_translate_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(model_path, sizeof model_path, "%s/G.safetensors", dir);
  ctx = new_ctx(1);
  negcut_net *g = new_generator();
  ck_assert_int_eq(negcut_net_save(g, model_path), NEGCUT_OK);
  negcut_net_free(g);
  ck_assert_int_eq(negcut_model_load(&model, ctx, model_path), NEGCUT_OK);
}

static void teardown(void) {
  negcut_model_free(model);
  negcut_ctx_free(ctx);
  unlink(model_path);
}

static void smooth_image(float *x, int c, int h, int w, int seed) {
  for (int k = 0; k < c; k++)
    for (int y = 0; y < h; y++)
      for (int i = 0; i < w; i++)
        x[(k * h + y) * w + i] = 0.8f * sinf(0.11f * (float)(y + seed) * (float)(k + 1) + 0.07f * (float)i) *
                                 cosf(0.05f * (float)(i * (seed + 1)) - 0.3f * (float)k);
}

static float *translate_new(negcut_translator *tr, const float *x, int n, int h, int w) {
  float *y = malloc((size_t)(n * 3 * h * w) * sizeof *y);
  const negcut_status st = negcut_translate_f32(tr, x, (uint32_t)n, (uint32_t)h, (uint32_t)w, y);
  ck_assert_msg(st == NEGCUT_OK, "translate %dx%d: %d, %s", w, h, (int)st, negcut_ctx_last_error(ctx));
  return y;
}

START_TEST(test_sizes_kept) {
  static const int sizes[][2] = {{5, 7}, {8, 8}, {33, 47}, {64, 48}, {250, 133}};
  negcut_translator *tr = NULL;
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, NULL), NEGCUT_OK);
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    int h = sizes[s][0], w = sizes[s][1];
    float *x = malloc((size_t)(3 * h * w) * sizeof *x);
    smooth_image(x, 3, h, w, (int)s);
    float *y = translate_new(tr, x, 1, h, w);
    double lo = 1, hi = -1;
    for (int i = 0; i < 3 * h * w; i++) {
      ck_assert_msg(isfinite(y[i]), "%dx%d: non-finite output", w, h);
      lo = fmin(lo, y[i]);
      hi = fmax(hi, y[i]);
    }
    ck_assert_msg(lo >= -1.0 && hi <= 1.0 && hi - lo > 0.1, "%dx%d: range %g..%g", w, h, lo, hi);
    free(x);
    free(y);
  }
  negcut_translator_free(tr);
}
END_TEST

/* A multiple-of-4 image gives exactly what the raw generator gives, with
 * the direct convolutions the network API runs (and the translator's
 * weights kept in the backend's layouts, which the network API does not). The model holds the same
 * parameters without the network's gradient slab, and refuses to zero or
 * train one. */
START_TEST(test_matches_network) {
  negcut_net *g = new_generator();
  negcut_tensor *x = NULL, *y = NULL;
  negcut_translator *tr = NULL;
  int64_t in[4] = {1, 3, 32, 40}, out[4];
  float xs[3 * 32 * 40], want[3 * 32 * 40];
  ck_assert_int_eq(negcut_net_load(g, model_path), NEGCUT_OK);
  ck_assert_ptr_nonnull(g->net.grads.data);
  ck_assert_ptr_null(model->net.grads.data);
  ck_assert_ptr_nonnull(model->net.slab.data);
  ck_assert_int_eq(model->net.slab.dim[0], g->net.slab.dim[0]);
  for (int32_t i = 0; i < model->net.n_params; i++)
    ck_assert_ptr_null(model->net.params[i].grad.data);
  ck_assert_int_eq(ngc_net_zero_grad(&model->net), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "without gradients"));
  ck_assert_int_eq(negcut_net_output_shape(g, in, out), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_create(&x, ctx, 4, in), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_create(&y, ctx, 4, out), NEGCUT_OK);
  smooth_image(xs, 3, 32, 40, 3);
  ck_assert_int_eq(negcut_tensor_write(x, xs, 3 * 32 * 40), NEGCUT_OK);
  ck_assert_int_eq(negcut_net_forward(g, NULL, x, y, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_tensor_read(y, want, 3 * 32 * 40), NEGCUT_OK);
  negcut_translator_options o;
  negcut_translator_options_init(&o);
  o.conv_algo = NEGCUT_CONV_DIRECT;
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_OK);
  float *got = translate_new(tr, xs, 1, 32, 40);
  ck_assert_int_eq(ngc_test_compare("translator vs network", got, want, 3 * 32 * 40, 0, 0), 0);
  /* a small model: the translator kept its weights prepared, same bits */
  ck_assert_uint_eq(tr->w_store.cap, 4 * (size_t)ngc_numel(&model->net.slab) * sizeof(float));
  ck_assert_uint_gt(tr->w_store.used, 0);
  free(got);
  negcut_translator_free(tr);
  /* The default (AUTO): where the machine has them, our own Winograd
   * convolutions (cpu_conv_wino.c) run the 3x3 ones between 16-channel
   * blocks (16 -> 32, the blocks' 32 -> 32, 32 -> 16), on the weights the
   * translator keeps transformed; within float rounding of the direct sums
   * (outputs in [-1, 1]; Winograd's transforms add a few times the rounding
   * of a direct sum). */
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, NULL), NEGCUT_OK);
  const int64_t own0 = ngc_cpu_of(ctx->be)->own_wino_runs;
  got = translate_new(tr, xs, 1, 32, 40);
  const int64_t own = ngc_cpu_of(ctx->be)->own_wino_runs - own0;
  printf("translator (AUTO): %lld convolutions on our own Winograd\n", (long long)own);
  if (ctx->be->act_block == 16 && ngc_cpu_avx512() && NGC_CPU_HAS_CLONES)
    ck_assert_int_eq(own, 6);
  ck_assert_int_eq(ngc_test_compare("translator (AUTO) vs network", got, want, 3 * 32 * 40, 2e-5, 0), 0);
  free(got);
  negcut_translator_free(tr);
  negcut_tensor_free(x);
  negcut_tensor_free(y);
  negcut_net_free(g);
}
END_TEST

START_TEST(test_batch_and_rgb8) {
  enum { H = 20, W = 27, N = 3 };
  negcut_translator *tr = NULL;
  uint8_t src[N][H * W * 3], dst[N][H * W * 3], one[H * W * 3];
  const uint8_t *sp[N];
  uint8_t *dp[N];
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, NULL), NEGCUT_OK);
  for (int n = 0; n < N; n++) {
    for (int i = 0; i < H * W * 3; i++) src[n][i] = (uint8_t)((i * (n + 3) * 7) % 251);
    sp[n] = src[n];
    dp[n] = dst[n];
  }
  ck_assert_int_eq(negcut_translate_rgb8_batch(tr, N, sp, W, H, W * 3, dp, W * 3), NEGCUT_OK);
  for (int n = 0; n < N; n++) {
    ck_assert_int_eq(negcut_translate_rgb8(tr, src[n], W, H, W * 3, one, W * 3), NEGCUT_OK);
    ck_assert_msg(memcmp(one, dst[n], sizeof one) == 0, "batch item %d differs from a single call", n);
  }
  /* RGB8 is the float path with the reference's conversions. */
  float x[3 * H * W];
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < H * W; i++) x[c * H * W + i] = ((float)src[1][i * 3 + c] / 255.0f - 0.5f) / 0.5f;
  float *y = translate_new(tr, x, 1, H, W);
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < H * W; i++) {
      float v = fminf(1.0f, fmaxf(-1.0f, y[c * H * W + i]));
      ck_assert_int_eq(dst[1][i * 3 + c], (uint8_t)((v + 1.0f) / 2.0f * 255.0f));
    }
  free(y);
  /* A stride with padding bytes works and leaves the padding alone. */
  uint8_t padded_src[H][W * 3 + 5], padded_dst[H][W * 3 + 9];
  memset(padded_dst, 0xAB, sizeof padded_dst);
  for (int r = 0; r < H; r++) memcpy(padded_src[r], src[1] + r * W * 3, W * 3);
  ck_assert_int_eq(negcut_translate_rgb8(tr, &padded_src[0][0], W, H, W * 3 + 5, &padded_dst[0][0], W * 3 + 9),
                   NEGCUT_OK);
  for (int r = 0; r < H; r++) {
    ck_assert_int_eq(memcmp(padded_dst[r], dst[1] + r * W * 3, W * 3), 0);
    for (int k = W * 3; k < W * 3 + 9; k++) ck_assert_int_eq(padded_dst[r][k], 0xAB);
  }
  negcut_translator_free(tr);
}
END_TEST

/* Mean absolute difference of a and b (n values), the largest in *worst. */
static double mean_abs(const float *a, const float *b, int n, double *worst) {
  double sum = 0;
  *worst = 0;
  for (int i = 0; i < n; i++) {
    sum += fabs((double)a[i] - b[i]);
    *worst = fmax(*worst, fabs((double)a[i] - b[i]));
  }
  return sum / n;
}

/* Tiles with feathered overlap: the result stays close to the whole-image
 * result; the seam error is printed (docs/TRANSLATE.md quotes it). */
START_TEST(test_tiling) {
  enum { H = 160, W = 200 };
  negcut_translator_options o;
  negcut_translator *whole = NULL, *tiled = NULL, *limited = NULL;
  float *x = malloc(3 * H * W * sizeof *x);
  smooth_image(x, 3, H, W, 5);
  ck_assert_int_eq(negcut_translator_create(&whole, ctx, model, NULL), NEGCUT_OK);
  negcut_translator_options_init(&o);
  o.tile_px = 64;
  o.overlap_px = 16;
  ck_assert_int_eq(negcut_translator_create(&tiled, ctx, model, &o), NEGCUT_OK);
  float *a = translate_new(whole, x, 1, H, W), *b = translate_new(tiled, x, 1, H, W);
  double worst;
  const double mean = mean_abs(a, b, 3 * H * W, &worst);
  printf("tiling 200x160, tile 64, overlap 16: mean abs diff %.4f, max %.4f (output range [-1, 1])\n",
         mean, worst);
  ck_assert_msg(mean < 0.1, "tiles differ from the whole image by %g on average", mean);
  /* A memory limit too small for the whole image tiles by itself. */
  negcut_translator_options_init(&o);
  o.max_memory_bytes = 6u << 20;
  ck_assert_int_eq(negcut_translator_create(&limited, ctx, model, &o), NEGCUT_OK);
  float *c = translate_new(limited, x, 1, H, W);
  const double lmean = mean_abs(a, c, 3 * H * W, &worst);
  printf("memory limit 6 MiB: mean abs diff %.4f\n", lmean);
  ck_assert(lmean < 0.1);
  ck_assert(lmean > 0); /* it did tile */
  /* An absurd limit is refused with a reason, not a crash. */
  negcut_translator *tiny = NULL;
  o.max_memory_bytes = 1024;
  ck_assert_int_eq(negcut_translator_create(&tiny, ctx, model, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_translate_f32(tiny, x, 1, H, W, c), NEGCUT_ERR_LIMIT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "max_memory_bytes"));
  negcut_translator_free(tiny);
  free(a);
  free(b);
  free(c);
  free(x);
  negcut_translator_free(whole);
  negcut_translator_free(tiled);
  negcut_translator_free(limited);
}
END_TEST

/* Exact tiles: the norms use the whole image's statistics, gathered tile by
 * tile, so the tiles give the whole-image result up to rounding where the
 * overlap covers what a core's values depend on, and much closer than
 * plain tiles where it does not. Also with a 1-pixel final tile row and
 * column (201x161: the padded edge is a core of its own), a batch of 2,
 * a flat image (whose norms see channels of one value: exactly 0 whole),
 * and an old (version 3) options struct, which means no exact tiles. */
START_TEST(test_exact_tiles) {
  enum { H = 161, W = 201 };
  negcut_translator_options o;
  negcut_translator *whole = NULL, *tr = NULL;
  float *x = malloc(2 * 3 * H * W * sizeof *x);
  smooth_image(x, 3, H, W, 5);
  smooth_image(x + 3 * H * W, 3, H, W, 9);
  ck_assert_int_eq(negcut_translator_create(&whole, ctx, model, NULL), NEGCUT_OK);
  float *a = translate_new(whole, x, 2, H, W);
  const int32_t overlaps[2] = {16, 64};
  for (int v = 0; v < 2; v++) {
    double worst, plain, exact, worst_plain;
    negcut_translator_options_init_v2(&o, NEGCUT_TRANSLATOR_OPTIONS_VERSION);
    o.tile_px = 64;
    o.overlap_px = overlaps[v];
    ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_OK);
    float *b = translate_new(tr, x, 2, H, W);
    plain = mean_abs(a, b, 2 * 3 * H * W, &worst_plain);
    negcut_translator_free(tr);
    free(b);
    o.exact_tiles = 1;
    ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_OK);
    b = translate_new(tr, x, 2, H, W);
    exact = mean_abs(a, b, 2 * 3 * H * W, &worst);
    printf("201x161, tile 64, overlap %d: mean abs diff %.5f (max %.4f) plain, %.2e (max %.2e) "
           "exact tiles\n", (int)overlaps[v], plain, worst_plain, exact, worst);
    ck_assert_msg(exact < plain / 3, "exact tiles %g, plain %g", exact, plain);
    if (v == 1) ck_assert_msg(worst < 1e-4, "exact tiles with a wide overlap differ by %g", worst);
    negcut_translator_free(tr);
    free(b);
  }
  /* a flat image (every channel one value): its norms' inputs are flat
   * channels, which normalise to exactly 0 whole; tiled, with the same maps */
  {
    double worst;
    float *flat = malloc(3 * H * W * sizeof *flat);
    for (int64_t i = 0; i < 3 * H * W; i++) flat[i] = i < H * W ? 0.4f : i < 2 * H * W ? -0.3f : 0.9f;
    float *fa = translate_new(whole, flat, 1, H, W);
    negcut_translator_options_init_v2(&o, NEGCUT_TRANSLATOR_OPTIONS_VERSION);
    o.tile_px = 64;
    o.exact_tiles = 1;
    ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_OK);
    float *fb = translate_new(tr, flat, 1, H, W);
    mean_abs(fa, fb, 3 * H * W, &worst);
    printf("a flat 201x161 image in exact tiles of 64: max abs diff %.2e from the whole image\n",
           worst);
    ck_assert_msg(worst < 1e-5, "a flat image in exact tiles differs by %g", worst);
    negcut_translator_free(tr);
    free(fa);
    free(fb);
    free(flat);
  }
  /* an image that fits runs whole with exact_tiles too: the same bits */
  negcut_translator_options_init_v2(&o, NEGCUT_TRANSLATOR_OPTIONS_VERSION);
  o.exact_tiles = 1;
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_OK);
  float *c = translate_new(tr, x, 2, H, W);
  ck_assert_mem_eq(a, c, 2 * 3 * H * W * sizeof *a);
  negcut_translator_free(tr);
  free(c);
  /* a version 3 struct has no exact_tiles: plain tiles, no error */
  negcut_translator_options_init(&o);
  ck_assert_int_eq(o.version, 3);
  o.tile_px = 64;
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_OK);
  ck_assert_int_eq(tr->opts.exact_tiles, 0);
  negcut_translator_free(tr);
  free(a);
  free(x);
  negcut_translator_free(whole);
}
END_TEST

/* Exact tiles keep where each tile's pass stopped, where the budget leaves
 * room, and the next pass resumes there: with the norm's input and the open
 * ResNet block's input kept, with the block's input alone (its layers run
 * again), or from the image. The same operations on the same values: the
 * same bits every way, and the counts say which ran. The budget that leaves
 * room for a block's input but not for both comes from the translator's own
 * plan (ngc_exact_plan) and the network's (ngc_seq_norm_plan), so a plan
 * that disagrees with what a pass keeps fails here. */
START_TEST(test_exact_tile_states) {
  enum { H = 161, W = 201, T = 64, OV = 64 };
  negcut_translator_options o;
  negcut_translator *whole = NULL, *tr = NULL;
  float *x = malloc(3 * H * W * sizeof *x);
  smooth_image(x, 3, H, W, 5);
  ck_assert_int_eq(negcut_translator_create(&whole, ctx, model, NULL), NEGCUT_OK);
  float *ref = translate_new(whole, x, 1, H, W);
  negcut_translator_options_init_v2(&o, NEGCUT_TRANSLATOR_OPTIONS_VERSION);
  o.tile_px = T;
  o.overlap_px = OV;
  o.exact_tiles = 1;
  /* the default budget: every stopping point kept whole */
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_OK);
  float *a = translate_new(tr, x, 1, H, W);
  double worst, mean = mean_abs(ref, a, 3 * H * W, &worst);
  ck_assert_msg(worst < 1e-4, "exact tiles resumed differ from the whole image by %g", worst);
  const int32_t K = ngc_seq_norm_channels(&model->net, NULL, 0);
  const int64_t n_tiles = ((H + T - 1) / T) * ((W + T - 1) / T);
  ck_assert_int_eq(tr->exact_kept[0], (int64_t)K * n_tiles); /* every norm of every tile */
  ck_assert_int_eq(tr->exact_kept[1], 0);
  ck_assert_int_eq(tr->exact_resumed, (int64_t)K * n_tiles); /* every pass but the first */
  size_t cap;
  ck_assert(ngc_exact_plan(tr, H, W, T, &cap) > 0.0);
  const uint64_t used = tr->opts.max_memory_bytes - (uint64_t)cap * n_tiles * sizeof(float);
  negcut_translator_free(tr);
  /* room for the first residual block's input, not for it and the norm's */
  ngc_norm_plan *plan = calloc((size_t)K, sizeof *plan);
  const int64_t rh = (T + 2 * OV < H ? T + 2 * OV : H + 3) & ~3, rw = (T + 2 * OV < W ? T + 2 * OV : W + 3) & ~3;
  ck_assert(ngc_seq_norm_plan(&model->net, (int64_t[4]){1, 3, rh, rw}, plan, K) > 0.0);
  int32_t k = 0;
  while (k < K && !plan[k].block_numel) k++;
  ck_assert_int_lt(k, K);
  ck_assert_int_gt(plan[k].state_numel, plan[k].block_numel);
  o.max_memory_bytes = used + (uint64_t)((plan[k].block_numel + plan[k].state_numel) / 2) * n_tiles * sizeof(float);
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_OK);
  float *b = translate_new(tr, x, 1, H, W);
  printf("exact tiles 201x161, tile 64: %.2e (max %.2e) from the whole image; kept %lld whole, then "
         "with %llu bytes %lld whole and %lld blocks' inputs, %lld passes resumed\n",
         mean, worst, (long long)K * n_tiles, (unsigned long long)o.max_memory_bytes,
         (long long)tr->exact_kept[0], (long long)tr->exact_kept[1], (long long)tr->exact_resumed);
  ck_assert_int_gt(tr->exact_kept[1], 0);
  ck_assert_int_lt(tr->exact_kept[0], (int64_t)K * n_tiles);
  ck_assert_mem_eq(a, b, 3 * H * W * sizeof *a);
  negcut_translator_free(tr);
  /* no room (the norms' maps fit; an explicit tile_px runs whatever the budget):
   * every pass from the image */
  o.max_memory_bytes = 1 << 20;
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_OK);
  float *c = translate_new(tr, x, 1, H, W);
  ck_assert_int_eq(tr->exact_kept[0] + tr->exact_kept[1] + tr->exact_resumed, 0);
  ck_assert_mem_eq(a, c, 3 * H * W * sizeof *a);
  negcut_translator_free(tr);
  free(plan);
  free(a);
  free(b);
  free(c);
  free(ref);
  free(x);
  negcut_translator_free(whole);
}
END_TEST

/* A pass resumes only from a state kept on an input of its own shape: one
 * kept at norm 0 of a 64x64 pass is refused by a 64x68 one (an internal
 * error with both sizes, nothing run). */
START_TEST(test_exact_state_input_checked) {
  ngc_tape tape;
  ngc_tensor x, x2;
  double mean[64], m2[64];
  ngc_norm_state state = {.layer = -1, .cap = (size_t)1 << 24};
  ck_assert_int_eq(ngc_tape_init(&tape, ctx), NEGCUT_OK);
  ck_assert_int_eq(ngc_tape_tensor(&tape, &x, 4, (int64_t[4]){1, 3, 64, 64}), NEGCUT_OK);
  ck_assert_int_eq(ngc_tape_tensor(&tape, &x2, 4, (int64_t[4]){1, 3, 64, 68}), NEGCUT_OK);
  ck_assert_int_eq(ngc_fill(ctx, &x, 0.25f), NEGCUT_OK);
  ngc_norm_ctl ctl = {.measure = 1, .win = {0, 64, 0, 64}, .mean = mean, .m2 = m2, .state = &state};
  ck_assert_int_eq(ngc_seq_forward_ctl(&model->net, &tape, &x, NULL, &ctl), NEGCUT_OK);
  ck_assert_int_ge(state.layer, 0);
  ck_assert_int_eq(ctl.kept[0], 1);
  ctl.n_frozen = 1;
  ck_assert_int_eq(ngc_seq_forward_ctl(&model->net, &tape, &x2, NULL, &ctl), NEGCUT_ERR_INTERNAL);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "kept from a 64x64 input, not 68x64"));
  ck_assert_int_eq(ctl.resumed, 0);
  ngc_error_clear(ctx);
  ngc_norm_state_clear(&state);
  ngc_tape_free(&tape);
}
END_TEST

/* Exact tiles with tile_px 0 (the side picked by estimated work,
 * exact_tile_side) under a sweep of budgets, none of which fits the image
 * whole: the whole image's result every time. Each time a translator first
 * runs the largest square image that fits whole: before exact tiles it
 * gives back what that run left (release_for_exact), which would sit
 * beside the tiles' stopping points; it then holds what a fresh translator
 * holds (at most a tile's estimated run), with the same bits. */
START_TEST(test_exact_tiles_auto) {
  enum { H = 161, W = 201, OV = 48 };
  negcut_translator_options o;
  negcut_translator *whole = NULL, *tr = NULL, *fresh = NULL;
  float *x = malloc(3 * H * W * sizeof *x), *xs = malloc(3 * H * W * sizeof *xs);
  smooth_image(x, 3, H, W, 6);
  ck_assert_int_eq(negcut_translator_create(&whole, ctx, model, NULL), NEGCUT_OK);
  float *ref = translate_new(whole, x, 1, H, W);
  const uint64_t full = ngc_run_bytes(whole, 1, (H + 3) & ~3, (W + 3) & ~3, 0);
  negcut_translator_options_init_v2(&o, NEGCUT_TRANSLATOR_OPTIONS_VERSION);
  o.exact_tiles = 1;
  o.overlap_px = OV;
  for (int f = 100; f >= 50; f -= 25) { /* sides 64, 48 and 16 px */
    o.max_memory_bytes = full * (uint64_t)f / 100 - 1;
    int S = 4; /* the largest square that runs whole */
    while (S + 4 < H && ngc_run_bytes(whole, 1, S + 4, S + 4, 0) <= o.max_memory_bytes) S += 4;
    smooth_image(xs, 3, S, S, 7);
    ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_OK);
    ck_assert_int_eq(negcut_translator_create(&fresh, ctx, model, &o), NEGCUT_OK);
    float *ys = translate_new(tr, xs, 1, S, S);
    ck_assert_int_eq(tr->exact_tile, 0); /* whole */
    const size_t held_whole = ngc_translator_held_bytes(tr);
    float *a = translate_new(tr, x, 1, H, W), *b = translate_new(fresh, x, 1, H, W);
    const int64_t t = tr->exact_tile, rh = (t + 2 * OV < H ? t + 2 * OV : H + 3) & ~3,
                  rw = (t + 2 * OV < W ? t + 2 * OV : W + 3) & ~3;
    const size_t held = ngc_translator_held_bytes(tr);
    double worst, mean = mean_abs(ref, a, 3 * H * W, &worst);
    printf("exact tiles 201x161, overlap %d, under %llu bytes: %lld px tiles, %.2e (max %.2e) from the "
           "whole image, %lld passes resumed; held %zu after %dx%d whole, %zu after\n", OV,
           (unsigned long long)o.max_memory_bytes, (long long)t, mean, worst,
           (long long)tr->exact_resumed, held_whole, S, S, held);
    ck_assert_int_gt(t, 0);
    ck_assert_msg(worst < 1e-4, "budget %llu: exact tiles differ from the whole image by %g",
                  (unsigned long long)o.max_memory_bytes, worst);
    ck_assert_mem_eq(a, b, 3 * H * W * sizeof *a);
    ck_assert_uint_eq(held, ngc_translator_held_bytes(fresh));
    ck_assert_uint_le(held, ngc_run_bytes(tr, 1, rh, rw, 1) - tr->w_store.cap);
    free(ys);
    free(a);
    free(b);
    negcut_translator_free(tr);
    negcut_translator_free(fresh);
  }
  free(ref);
  free(x);
  free(xs);
  negcut_translator_free(whole);
}
END_TEST

/* bf16 convolutions against fp32: PSNR on the 8-bit scale of the output,
 * for a generator of the default architecture (random weights), and which
 * primitives ran. At 64x64 the convolutions at 64x64 and 32x32 take
 * Winograd (with AUTO, on AVX-512), which stays float32 under bf16, and
 * so does the last 7x7 (to 3 channels, our own loops on AVX-512); the first
 * 7x7 and the residual blocks' (16x16) run bf16 where the CPU has bf16 dot
 * products. Without them bf16 means float32: the same bits. */
START_TEST(test_bf16_accuracy) {
  enum { H = 64, W = 64, N = 3 * H * W };
  negcut_generator_options go;
  negcut_net *g = NULL;
  negcut_model *big = NULL;
  negcut_translator *t32 = NULL, *t16 = NULL, *t16d = NULL;
  negcut_translator_options o;
  ngc_backend *be = ctx->be;
  char path[600];
  snprintf(path, sizeof path, "%s.default", model_path);
  negcut_generator_options_init(&go);
  go.init_gain = 1.0f;
  ck_assert_int_eq(negcut_net_create_generator(&g, ctx, &go), NEGCUT_OK);
  ck_assert_int_eq(negcut_net_save(g, path), NEGCUT_OK);
  negcut_net_free(g);
  ck_assert_int_eq(negcut_model_load(&big, ctx, path), NEGCUT_OK);
  negcut_translator_options_init(&o);
  ck_assert_int_eq(negcut_translator_create(&t32, ctx, big, &o), NEGCUT_OK);
  o.bf16 = 1;
  ck_assert_int_eq(negcut_translator_create(&t16, ctx, big, &o), NEGCUT_OK);
  o.conv_algo = NEGCUT_CONV_DIRECT;
  ck_assert_int_eq(negcut_translator_create(&t16d, ctx, big, &o), NEGCUT_OK);
  float *x = malloc(N * sizeof *x), *a, *b, *c;
  smooth_image(x, 3, H, W, 9);
  int64_t w0 = ngc_cpu_conv_winograd_runs(be, NGC_CONV_FWD), h0 = ngc_cpu_conv_bf16_runs(be);
  const int64_t f0 = ngc_cpu_of(be)->few_runs;
  a = translate_new(t32, x, 1, H, W);
  int64_t w32 = ngc_cpu_conv_winograd_runs(be, NGC_CONV_FWD) - w0;
  ck_assert_int_eq(ngc_cpu_conv_bf16_runs(be), h0);
  b = translate_new(t16, x, 1, H, W);
  int64_t w16 = ngc_cpu_conv_winograd_runs(be, NGC_CONV_FWD) - w0 - w32;
  int64_t h16 = ngc_cpu_conv_bf16_runs(be) - h0;
  c = translate_new(t16d, x, 1, H, W);
  int64_t h16d = ngc_cpu_conv_bf16_runs(be) - h0 - h16;
  ck_assert_int_eq(ngc_cpu_conv_winograd_runs(be, NGC_CONV_FWD) - w0, w32 + w16);
  /* 24 convolutions: two 7x7, four at 64x64 and 32x32, 18 in the blocks */
  printf("bf16: Winograd runs fp32 %lld, bf16 %lld; bf16 runs %lld (AUTO), %lld (DIRECT)\n",
         (long long)w32, (long long)w16, (long long)h16, (long long)h16d);
  ck_assert_int_eq(w16, w32);
  ck_assert_int_eq(w32, ngc_cpu_avx512() ? 4 : 0);
  /* the last 7x7 (64 -> 3) runs our float32 loops where AVX-512 is, in all three */
  const int64_t few = NGC_CPU_HAS_CLONES && ngc_cpu_avx512() ? 1 : 0; /* cpu_conv.c's few_here */
  ck_assert_int_eq(ngc_cpu_of(be)->few_runs - f0, 3 * few);
  if (ngc_cpu_bf16()) {
    double p16 = ngc_test_psnr(b, a, N), p16d = ngc_test_psnr(c, a, N);
    printf("bf16 vs fp32, default generator 64x64: PSNR %.1f dB (AUTO), %.1f dB (DIRECT)\n", p16,
           p16d);
    ck_assert_int_eq(h16, 24 - w32 - few);
    ck_assert_int_eq(h16d, 24 - few);
    ck_assert_msg(p16 >= 40.0 && p16d >= 40.0, "bf16 PSNR %.1f / %.1f dB < 40", p16, p16d);
    ck_assert_msg(isfinite(p16) && isfinite(p16d),
                  "bf16 gave exactly the fp32 result: was bf16 used?");
  } else {
    printf("bf16: no AVX512-BF16 on this CPU: float32 instead, checked to give the same bits\n");
    ck_assert_int_eq(h16 + h16d, 0);
    ck_assert_int_eq(ngc_test_compare("bf16 without AVX512-BF16", b, a, N, 0, 0), 0);
  }
  free(x);
  free(a);
  free(b);
  free(c);
  negcut_translator_free(t32);
  negcut_translator_free(t16);
  negcut_translator_free(t16d);
  negcut_model_free(big);
  unlink(path);
}
END_TEST

typedef struct worker {
  const negcut_model *model;
  int seed;
  float *out;
  int rc;
} worker;

enum { TH = 40, TW = 52 };

static void *run_worker(void *arg) {
  worker *wk = arg;
  negcut_ctx_options o;
  negcut_ctx *c = NULL;
  negcut_translator *tr = NULL;
  float x[3 * TH * TW];
  negcut_ctx_options_init(&o);
  o.backend = NEGCUT_BACKEND_CPU;
  o.threads = 1;
  wk->rc = negcut_ctx_create(&c, &o);
  if (!wk->rc) wk->rc = negcut_translator_create(&tr, c, wk->model, NULL);
  smooth_image(x, 3, TH, TW, wk->seed);
  for (int rep = 0; rep < 3 && !wk->rc; rep++)
    wk->rc = negcut_translate_f32(tr, x, 1, TH, TW, wk->out);
  negcut_translator_free(tr);
  negcut_ctx_free(c);
  return NULL;
}

/* One model, four threads with their own contexts and translators: each
 * result equals the single-threaded one bit for bit. */
START_TEST(test_threads_share_model) {
  enum { T = 4 };
  pthread_t th[T];
  worker wk[T];
  negcut_translator *tr = NULL;
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, NULL), NEGCUT_OK);
  for (int i = 0; i < T; i++) {
    wk[i] = (worker){model, i, malloc(3 * TH * TW * sizeof(float)), -1};
    ck_assert_int_eq(pthread_create(&th[i], NULL, run_worker, &wk[i]), 0);
  }
  for (int i = 0; i < T; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
  for (int i = 0; i < T; i++) {
    float x[3 * TH * TW];
    ck_assert_int_eq(wk[i].rc, NEGCUT_OK);
    smooth_image(x, 3, TH, TW, i);
    float *want = translate_new(tr, x, 1, TH, TW);
    ck_assert_msg(memcmp(want, wk[i].out, 3 * TH * TW * sizeof(float)) == 0, "thread %d differs", i);
    free(want);
    free(wk[i].out);
  }
  negcut_translator_free(tr);
}
END_TEST

START_TEST(test_bad_arguments) {
  negcut_translator *tr = NULL;
  negcut_translator_options o;
  negcut_model *m = NULL;
  uint8_t px[3 * 8 * 8] = {0};
  float f[3 * 8 * 8] = {0};
  ck_assert_int_eq(negcut_translator_create(NULL, ctx, model, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, NULL, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  negcut_translator_options_init(&o);
  o.version = 77;
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(tr);
  negcut_translator_options_init(&o);
  o.tile_px = 5;
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  /* an overlap near INT32_MAX wrapped negative when rounded up to 4 */
  for (int k = 0; k < 3; k++) {
    negcut_translator_options_init(&o);
    if (k == 0) o.overlap_px = INT32_MAX;
    if (k == 1) o.overlap_px = (1 << 20) + 1;
    if (k == 2) o.tile_px = INT32_MAX;
    ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, &o), NEGCUT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(tr);
  }
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_translate_rgb8(tr, NULL, 8, 8, 24, px, 24), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_translate_rgb8(tr, px, 0, 8, 24, px, 24), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_translate_rgb8(tr, px, 8, 8, 23, px, 24), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "stride"));
  ck_assert_int_eq(negcut_translate_f32(tr, f, 0, 8, 8, f), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_translate_f32(tr, f, 1, 1u << 20, 1u << 20, f), NEGCUT_ERR_LIMIT);
  /* a count times size that wraps 64 bits, and strides whose last row's
   * offset wraps, are refused before anything is read */
  ck_assert_int_eq(negcut_translate_f32(tr, f, UINT32_MAX, UINT32_MAX, UINT32_MAX, f),
                   NEGCUT_ERR_LIMIT);
  ck_assert_int_eq(negcut_translate_rgb8(tr, px, 8, 8, SIZE_MAX, px, 24), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_translate_rgb8(tr, px, 8, 8, 24, px, SIZE_MAX / 4), NEGCUT_ERR_INVALID_ARGUMENT);
  negcut_translator_free(tr);
  negcut_translator_free(NULL);
  negcut_model_free(NULL);
  ck_assert_int_eq(negcut_model_load(&m, ctx, "/nonexistent/G.safetensors"), NEGCUT_ERR_IO);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(negcut_model_load_memory(&m, ctx, "garbage!", 8), NEGCUT_ERR_LIMIT);
  ck_assert_int_eq(negcut_model_load_memory(&m, ctx, "\x08\0\0\0\0\0\0\0notjson!", 16), NEGCUT_ERR_BAD_FORMAT);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(negcut_model_input_channels(model), 3);
  ck_assert_int_eq(negcut_model_output_channels(model), 3);
  /* A context of another backend cannot run this model's weights in place. */
  negcut_ctx_options co;
  negcut_ctx *ref = NULL;
  negcut_ctx_options_init(&co);
  co.backend = NEGCUT_BACKEND_REF;
  ck_assert_int_eq(negcut_ctx_create(&ref, &co), NEGCUT_OK);
  ck_assert_int_eq(negcut_translator_create(&tr, ref, model, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  negcut_ctx_free(ref);
}
END_TEST

/* Model files a fuzz target once failed on (tests/fuzz/regress/model/):
 * configurations too large, or larger than the weights the file holds, are
 * refused before their memory is allocated (a file must hold every weight of
 * the generator it describes); a NaN weight translates to
 * black instead of converting NaN to an integer (undefined behaviour). */
START_TEST(test_hostile_models) {
  static const struct {
    const char *file;
    negcut_status st;
    const char *says;
  } cases[] = {
      {"ngf-1048576.safetensors", NEGCUT_ERR_LIMIT, "ngf 1048576 is above the limit of 4096"},
      {"n_blocks-1048576.safetensors", NEGCUT_ERR_LIMIT, "n_blocks 1048576 is above"},
      {"inferred-ngf-2p30.safetensors", NEGCUT_ERR_LIMIT, "ngf 1073741824 is above"},
      {"input_nc-0.safetensors", NEGCUT_ERR_BAD_FORMAT, "input_nc 0 is below 1"},
      {"ngf-512-no-weights.safetensors", NEGCUT_ERR_BAD_FORMAT, "'model.1.weight' is missing"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = 0;
    uint8_t *bytes = ngc_test_fuzz_regress("model", cases[i].file, &n);
    negcut_model *m = NULL;
    ck_assert_int_eq(negcut_model_load_memory(&m, ctx, bytes, n), cases[i].st);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(negcut_ctx_last_error(ctx), cases[i].says), "%s: '%s'", cases[i].file,
                  negcut_ctx_last_error(ctx));
    free(bytes);
  }
  /* The largest generator the limits allow (ngf 4096, 64 blocks: about a
   * terabyte of weights) described by a file with no tensors: refused as
   * the file it is, before anything is allocated (allocating first would
   * fail with OUT_OF_MEMORY instead). */
  {
    static const char *meta[][2] = {{"net", "generator"}, {"input_nc", "3"},
                                    {"output_nc", "3"},    {"ngf", "4096"},
                                    {"n_blocks", "64"},    {"no_antialias", "0"},
                                    {"no_antialias_up", "0"}};
    ngc_st_writer *w = NULL;
    void *file = NULL;
    size_t len = 0;
    negcut_model *m = NULL;
    ck_assert_int_eq(ngc_st_writer_create(ctx, &w), NEGCUT_OK);
    for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++)
      ck_assert_int_eq(ngc_st_writer_set_metadata(w, meta[i][0], meta[i][1]), NEGCUT_OK);
    ck_assert_int_eq(ngc_st_write_memory(ctx, w, &file, &len), NEGCUT_OK);
    ck_assert_int_eq(negcut_model_load_memory(&m, ctx, file, len), NEGCUT_ERR_BAD_FORMAT);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(negcut_ctx_last_error(ctx), "'model.1.weight' is missing"), "'%s'",
                  negcut_ctx_last_error(ctx));
    ngc_st_writer_free(w);
    free(file);
  }
  /* An infinite weight, through the model loader and the nets API: refused
   * by name, and the net it was loaded into keeps its values. */
  {
    char bad[600];
    negcut_net *g = new_generator();
    negcut_model *m = NULL;
    ck_assert_int_eq(negcut_net_load(g, model_path), NEGCUT_OK);
    int64_t shape[4] = {1, 1, 1, 1};
    const int32_t nd = negcut_net_param_shape(g, 0, shape);
    size_t count = 1;
    for (int32_t d = 0; d < nd; d++) count *= (size_t)shape[d];
    float *w = malloc(count * sizeof *w), *after = malloc(count * sizeof *after);
    ck_assert(w && after);
    ck_assert_int_eq(negcut_net_param_read(g, 0, w, count), NEGCUT_OK);
    w[count - 1] = INFINITY;
    ck_assert_int_eq(negcut_net_param_write(g, 0, w, count), NEGCUT_OK);
    snprintf(bad, sizeof bad, "%s.inf", model_path);
    ck_assert_int_eq(negcut_net_save(g, bad), NEGCUT_OK);
    ck_assert_int_eq(negcut_model_load(&m, ctx, bad), NEGCUT_ERR_BAD_FORMAT);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(negcut_ctx_last_error(ctx), "holds +inf"), "'%s'", negcut_ctx_last_error(ctx));
    ck_assert_int_eq(negcut_net_load(g, model_path), NEGCUT_OK);
    ck_assert_int_eq(negcut_net_load(g, bad), NEGCUT_ERR_BAD_FORMAT);
    ck_assert_int_eq(negcut_net_param_read(g, 0, after, count), NEGCUT_OK);
    ck_assert(isfinite(after[count - 1]));
    unlink(bad);
    free(w), free(after);
    negcut_net_free(g);
  }
  /* A NaN weight (found by fuzzing: it reached an undefined float-to-uint8
   * conversion) is refused by name. */
  size_t n = 0;
  uint8_t *bytes = ngc_test_fuzz_regress("model", "nan-weight.safetensors", &n);
  negcut_model *m = NULL;
  ck_assert_int_eq(negcut_model_load_memory(&m, ctx, bytes, n), NEGCUT_ERR_BAD_FORMAT);
  ck_assert_ptr_null(m);
  ck_assert_msg(strstr(negcut_ctx_last_error(ctx), "'model.7.weight' holds NaN"), "'%s'",
                negcut_ctx_last_error(ctx));
  free(bytes);
}
END_TEST

/* Options version 1 (before tf32 and eager) and 2 (before conv_algo) are
 * still accepted, read only up to their own end, and mean what version 3's
 * defaults mean; on the CPU tf32 and eager change nothing; versions 0 and 4
 * are refused, and so is a conv_algo that is no NEGCUT_CONV_* value.
 * NEGCUT_CONV_DIRECT stays within float rounding of the default. */
START_TEST(test_options_versions) {
  enum { H = 24, W = 20 };
  /* version 1's layout, followed by bytes a v1 caller never wrote */
  struct {
    uint32_t version;
    uint64_t max_memory_bytes;
    int32_t tile_px, overlap_px, bf16;
    int32_t garbage[8];
  } v1;
  memset(&v1, 0, sizeof v1);
  v1.version = 1;
  for (int i = 0; i < 8; i++) v1.garbage[i] = 0x5a5a5a5a;
  negcut_translator_options o;
  negcut_translator *def = NULL, *old = NULL, *fast = NULL, *bad = NULL, *v2 = NULL, *direct = NULL;
  float *x = malloc(3 * H * W * sizeof *x);
  smooth_image(x, 3, H, W, 3);
  ck_assert_int_eq(negcut_translator_create(&def, ctx, model, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_translator_create(&old, ctx, model, (const negcut_translator_options *)&v1),
                   NEGCUT_OK);
  ck_assert_int_eq(old->opts.tf32, 0); /* not read from the bytes after v1's end */
  ck_assert_int_eq(old->opts.eager, 0);
  ck_assert_int_eq(old->opts.overlap_px, 32);
  negcut_translator_options_init(&o);
  ck_assert_uint_eq(o.version, 3);
  { /* version 2: an exact-size copy (the sanitizer build checks the read) */
    const size_t size = offsetof(negcut_translator_options, conv_algo);
    unsigned char *o2 = malloc(size);
    ck_assert_ptr_nonnull(o2);
    o.version = 2;
    memcpy(o2, &o, size);
    o.version = 3;
    ck_assert_int_eq(negcut_translator_create(&v2, ctx, model, (const negcut_translator_options *)o2),
                     NEGCUT_OK);
    ck_assert_int_eq(v2->opts.conv_algo, NEGCUT_CONV_AUTO);
    free(o2);
  }
  o.conv_algo = NEGCUT_CONV_DIRECT;
  ck_assert_int_eq(negcut_translator_create(&direct, ctx, model, &o), NEGCUT_OK);
  for (int k = 0; k < 2; k++) {
    o.conv_algo = k ? NEGCUT_CONV_WINOGRAD + 1 : -1;
    ck_assert_int_eq(negcut_translator_create(&bad, ctx, model, &o), NEGCUT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "conv_algo"));
    ck_assert_ptr_null(bad);
  }
  o.conv_algo = NEGCUT_CONV_AUTO;
  /* conv_algo -> the passes that may use Winograd: AUTO (what old structs
   * mean) the forward, DIRECT none */
  ck_assert_uint_eq(def->tape.winograd, NGC_WINOGRAD_FWD | NGC_WINOGRAD_ROOMY);
  ck_assert_uint_eq(old->tape.winograd, NGC_WINOGRAD_FWD | NGC_WINOGRAD_ROOMY);
  ck_assert_uint_eq(v2->tape.winograd, NGC_WINOGRAD_FWD | NGC_WINOGRAD_ROOMY);
  ck_assert_uint_eq(direct->tape.winograd, 0);
  o.tf32 = 1;
  o.eager = 1;
  ck_assert_int_eq(negcut_translator_create(&fast, ctx, model, &o), NEGCUT_OK);
  float *a = translate_new(def, x, 1, H, W), *b = translate_new(old, x, 1, H, W);
  float *c = translate_new(fast, x, 1, H, W), *d = translate_new(v2, x, 1, H, W);
  float *e = translate_new(direct, x, 1, H, W);
  ck_assert_mem_eq(a, b, 3 * H * W * sizeof *a);
  ck_assert_mem_eq(a, c, 3 * H * W * sizeof *a);
  ck_assert_mem_eq(a, d, 3 * H * W * sizeof *a);
  for (int i = 0; i < 3 * H * W; i++) ck_assert_float_eq_tol(e[i], a[i], 1e-5f);
  o.version = 0;
  ck_assert_int_eq(negcut_translator_create(&bad, ctx, model, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  o.version = NEGCUT_TRANSLATOR_OPTIONS_VERSION + 1;
  ck_assert_int_eq(negcut_translator_create(&bad, ctx, model, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "expected 1 to 4"));
  ck_assert_ptr_null(bad);
  negcut_translator_free(def);
  negcut_translator_free(old);
  negcut_translator_free(fast);
  negcut_translator_free(v2);
  negcut_translator_free(direct);
  free(a), free(b), free(c), free(d), free(e), free(x);
}
END_TEST

int main(void) {
  Suite *s = suite_create("translate");
  TCase *tc = tcase_create("translator");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_sizes_kept);
  tcase_add_test(tc, test_matches_network);
  tcase_add_test(tc, test_batch_and_rgb8);
  tcase_add_test(tc, test_tiling);
  tcase_add_test(tc, test_exact_tiles);
  tcase_add_test(tc, test_exact_tile_states);
  tcase_add_test(tc, test_exact_tiles_auto);
  tcase_add_test(tc, test_exact_state_input_checked);
  tcase_add_test(tc, test_threads_share_model);
  tcase_add_test(tc, test_bad_arguments);
  tcase_add_test(tc, test_options_versions);
  tcase_add_test(tc, test_hostile_models);
  tcase_add_test(tc, test_bf16_accuracy);
  suite_add_tcase(s, tc);
  return ngc_test_run(s);
}
