/* Learning on a data set whose true translation is known. A: smooth random
 * images (Gaussian colour blobs on a dark background); B: OTHER such images
 * through a fixed colour transform T (a strong tint). The two folders are
 * unpaired, so the networks never see an (x, T(x)) pair; after a short run
 * of the reference's schedule (constant lr, then linear decay), G(A) must be
 * much closer to T(A) than A itself is, on held-out images, for CUT and for
 * NEGCUT.
 *
 * Everything goes through the public API a user takes: PNG folders,
 * negcut_trainer_run, negcut_trainer_save_network, negcut_model_load,
 * negcut_translate_f32. Measured on the CPU backend, one thread (PSNR on the
 * [0, 1] scale, 1024 iterations): identity 13.6 dB; CUT 21.1 dB, NEGCUT
 * 19.6 dB, so the 3 dB margin leaves room for other backends' trajectories. */
#include <math.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "negcut/image.h"
#include "negcut/train.h"
#include "negcut/translate.h"
#include "ngc_test.h"

#ifndef LEARN_SIDE
#define LEARN_SIDE 32
#endif
#ifndef LEARN_IMAGES
#define LEARN_IMAGES 64 /* per domain */
#endif
#ifndef LEARN_EPOCHS
#define LEARN_EPOCHS 8 /* at constant lr, then as many decaying */
#endif
#ifndef LEARN_NGF
#define LEARN_NGF 16
#endif
#ifndef LEARN_REPORT
#define LEARN_REPORT 256
#endif
#define N_TEST 16
#define MARGIN_DB 3.0

static uint64_t lcg(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 11;
}
static float unif(uint64_t *s) { return (float)lcg(s) / (float)(1ull << 53); }

/* One image of the A domain, (3, S, S) in [0, 1]: a dark background and 2-4
 * soft colour blobs. The channels' values lean dark, so T's gains and
 * offsets are identifiable from the distributions alone. */
static void draw_a(uint64_t *s, float *x) {
  const int n = LEARN_SIDE;
  float bg[3], col[4][3], cx[4], cy[4], r2[4];
  int blobs = 2 + (int)(lcg(s) % 3);
  for (int c = 0; c < 3; c++) bg[c] = 0.05f + 0.25f * unif(s);
  for (int k = 0; k < blobs; k++) {
    for (int c = 0; c < 3; c++) col[k][c] = 0.2f + 0.8f * unif(s);
    cx[k] = (float)n * unif(s);
    cy[k] = (float)n * unif(s);
    float r = (float)n * (0.12f + 0.2f * unif(s));
    r2[k] = 2.0f * r * r;
  }
  for (int y = 0; y < n; y++)
    for (int xx = 0; xx < n; xx++) {
      float v[3] = {bg[0], bg[1], bg[2]};
      for (int k = 0; k < blobs; k++) {
        float dx = (float)xx - cx[k], dy = (float)y - cy[k], a = expf(-(dx * dx + dy * dy) / r2[k]);
        for (int c = 0; c < 3; c++) v[c] = v[c] * (1.0f - a) + col[k][c] * a;
      }
      for (int c = 0; c < 3; c++) x[(c * n + y) * n + xx] = v[c];
    }
}

/* T: a strong tint (per-channel gain and offset), [0, 1] -> [0, 1]. */
static void transform(const float *x, float *y) {
  static const float gain[3] = {0.5f, 0.9f, 0.4f}, offset[3] = {0.5f, 0.0f, 0.1f};
  const int hw = LEARN_SIDE * LEARN_SIDE;
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < hw; i++) y[c * hw + i] = offset[c] + gain[c] * x[c * hw + i];
}

static void to_pm1(float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = 2.0f * x[i] - 1.0f;
}

/* PSNR in dB of x against ref, both in [-1, 1], on the [0, 1] scale. */
static double psnr(const float *x, const float *ref, int64_t n) {
  double se = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double d = 0.5 * ((double)x[i] - (double)ref[i]);
    se += d * d;
  }
  return 10.0 * log10(1.0 / (se / (double)n));
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* PSNR(G(src), want) of the trainer's generator, through the public path:
 * save it, load it as a model, translate. got receives G(src). */
static double evaluate(negcut_ctx *ctx, const negcut_trainer *t, const char *path, const float *src,
                       const float *want, float *got) {
  const int64_t n = (int64_t)N_TEST * 3 * LEARN_SIDE * LEARN_SIDE;
  negcut_model *model = NULL;
  negcut_translator *tr = NULL;
  ck_assert_int_eq(negcut_trainer_save_network(t, NEGCUT_NET_G, path), NEGCUT_OK);
  ck_assert_msg(negcut_model_load(&model, ctx, path) == NEGCUT_OK, "%s", negcut_ctx_last_error(ctx));
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, model, NULL), NEGCUT_OK);
  ck_assert_msg(negcut_translate_f32(tr, src, N_TEST, LEARN_SIDE, LEARN_SIDE, got) == NEGCUT_OK, "%s",
                negcut_ctx_last_error(ctx));
  negcut_translator_free(tr);
  negcut_model_free(model);
  return psnr(got, want, n);
}

/* Writes n images of domain A (or, b_domain, T of A-like images) as PNGs. */
static void write_domain(negcut_ctx *ctx, const char *dir, uint64_t seed, int b_domain) {
  const int hw = LEARN_SIDE * LEARN_SIDE;
  float x[3 * LEARN_SIDE * LEARN_SIDE], y[3 * LEARN_SIDE * LEARN_SIDE];
  ck_assert_int_eq(mkdir(dir, 0755), 0);
  for (int i = 0; i < LEARN_IMAGES; i++) {
    negcut_image *img = NULL;
    char path[128];
    draw_a(&seed, x);
    if (b_domain) transform(x, y);
    ck_assert_int_eq(negcut_image_create(&img, ctx, LEARN_SIDE, LEARN_SIDE), NEGCUT_OK);
    for (int k = 0; k < hw; k++)
      for (int c = 0; c < 3; c++)
        img->pixels[(size_t)k * 3 + (size_t)c] = (uint8_t)lrintf(255.0f * (b_domain ? y : x)[c * hw + k]);
    snprintf(path, sizeof path, "%s/%03d.png", dir, i);
    ck_assert_int_eq(negcut_image_save(ctx, img, path, NULL), NEGCUT_OK);
    negcut_image_free(img);
  }
}

typedef struct run_state {
  const char *name, *path;
  negcut_ctx *ctx;
  negcut_trainer *t;
  const float *src, *want;
  float *got;
} run_state;

static int report(const negcut_train_progress *p, void *user) {
  run_state *r = user;
  if (p->iteration % LEARN_REPORT == 0)
    fprintf(stderr, "%s %5lld (epoch %lld, lr %.2g): D %.3f %.3f  G_GAN %.3f  NCE %.3f %.3f  PSNR %.2f dB\n",
            r->name, (long long)p->iteration, (long long)p->epoch, p->lr, p->d_real, p->d_fake, p->g_gan,
            p->nce_x, p->nce_y, evaluate(r->ctx, r->t, r->path, r->src, r->want, r->got));
  return 0;
}

static void learns(negcut_train_mode mode, const char *name) {
  const int64_t img = 3 * LEARN_SIDE * LEARN_SIDE;
  negcut_ctx_options co = NEGCUT_CTX_OPTIONS_INIT;
  negcut_ctx *ctx = NULL;
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  negcut_train_progress p;
  float *src = malloc((size_t)(N_TEST * img) * sizeof *src), *want = malloc((size_t)(N_TEST * img) * sizeof *want);
  float *got = malloc((size_t)(N_TEST * img) * sizeof *got);
  uint64_t s_test = 3;
  char root[] = "/tmp/ngc_learn_XXXXXX", path[64], dir_a[64], dir_b[64];
  static const int32_t layers[5] = {0, 4, 8, 12, 13};
  double t0 = seconds();

  ck_assert(src && want && got);
  ck_assert_ptr_nonnull(mkdtemp(root));
  snprintf(path, sizeof path, "%s/G.safetensors", root);
  snprintf(dir_a, sizeof dir_a, "%s/trainA", root);
  snprintf(dir_b, sizeof dir_b, "%s/trainB", root);
  co.backend = NEGCUT_BACKEND_CPU;
  co.threads = 1; /* tiny ops: one thread is faster than two on a busy machine */
  co.seed = 2024;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &co), NEGCUT_OK);
  /* unpaired: the B images are T of OTHER draws than the A images */
  write_domain(ctx, dir_a, 1, 0);
  write_domain(ctx, dir_b, 2, 1);
  /* held-out A images and their true translations */
  for (int i = 0; i < N_TEST; i++) {
    draw_a(&s_test, src + i * img);
    transform(src + i * img, want + i * img);
  }
  to_pm1(src, N_TEST * img);
  to_pm1(want, N_TEST * img);

  ck_assert_int_eq(negcut_trainer_options_init(&o, mode), NEGCUT_OK);
  o.dataroot = root;
  o.ngf = LEARN_NGF;
  o.ndf = LEARN_NGF;
  o.n_blocks = 2;
  o.n_nce_layers = 5;
  memcpy(o.nce_layers, layers, sizeof layers);
  o.num_patches = 64;
  o.netf_nc = 64;
  o.load_size = LEARN_SIDE;
  o.crop_size = LEARN_SIDE;
  /* the reference's schedule, shortened: constant lr, then linear decay */
  o.n_epochs = LEARN_EPOCHS;
  o.n_epochs_decay = LEARN_EPOCHS;
  ck_assert_msg(negcut_trainer_create(&t, ctx, &o) == NEGCUT_OK, "%s", negcut_ctx_last_error(ctx));
  run_state r = {name, path, ctx, t, src, want, got};
  ck_assert_msg(negcut_trainer_run(t, 0, report, &r) == NEGCUT_OK, "%s", negcut_ctx_last_error(ctx));
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, 2 * LEARN_EPOCHS * LEARN_IMAGES);

  double p_g = evaluate(ctx, t, path, src, want, got), p_id = psnr(src, want, N_TEST * img);
  negcut_trainer_free(t);
  fprintf(stderr, "%s: PSNR(G(A), T(A)) %.2f dB, PSNR(A, T(A)) %.2f dB; %lld iterations, %dx%d, ngf %d: %.1f s\n",
          name, p_g, p_id, (long long)p.iteration, LEARN_SIDE, LEARN_SIDE, LEARN_NGF, seconds() - t0);
  ck_assert_msg(p_g > p_id + MARGIN_DB, "%s did not learn T: %.2f dB vs %.2f dB for the identity", name, p_g, p_id);

  negcut_ctx_free(ctx);
  ngc_test_rmtree(root);
  free(src);
  free(want);
  free(got);
}

START_TEST(cut_learns) { learns(NEGCUT_MODE_CUT, "CUT"); }
END_TEST

START_TEST(negcut_learns) { learns(NEGCUT_MODE_NEGCUT, "NEGCUT"); }
END_TEST

int main(void) {
  Suite *s = suite_create("learning");
  TCase *cut = tcase_create("cut"), *neg = tcase_create("negcut"); /* CK_RUN_CASE picks one */
  tcase_set_timeout(cut, 200);
  tcase_set_timeout(neg, 200);
  tcase_add_test(cut, cut_learns);
  tcase_add_test(neg, negcut_learns);
  suite_add_tcase(s, cut);
  suite_add_tcase(s, neg);
  return ngc_test_run(s);
}
