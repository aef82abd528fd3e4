/* The public trainer (negcut/train.h): the API contract, progress, and the
 * promise that a resumed run continues exactly as the uninterrupted one. */
#include <dirent.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "negcut/image.h"
#define NEGCUT_EXPERIMENTAL
#include "negcut/experimental.h"
#include "negcut/train.h"
#include "ngc_test.h"
#include "train/trainer.h" /* the tape a trainer set up */
#include "fuzz/fuzz_common.h" /* the fuzz target's trainer, for its regression input */

#define N_IMAGES 8
#define SIDE 36 /* load 36, crop 32 */
#define CROP 32
/* One thread: the run is as deterministic with two (checked by hand), but
 * the CPU backend's OpenMP regions spin-wait, and on a busy machine two
 * threads made this suite 5-50x slower. */
#define THREADS 1
#define SEED 11

static char root[48];      /* <tmp>/trainA, <tmp>/trainB: N_IMAGES PNGs each */
static char scratch[48];   /* state files */

static negcut_ctx *new_ctx(void) {
  negcut_ctx_options co = NEGCUT_CTX_OPTIONS_INIT;
  negcut_ctx *ctx = NULL;
  co.backend = NEGCUT_BACKEND_CPU;
  co.threads = THREADS;
  co.seed = SEED;
  ck_assert_msg(negcut_ctx_create(&ctx, &co) == NEGCUT_OK, "%s", negcut_ctx_last_error(NULL));
  return ctx;
}

static uint64_t lcg(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

/* Smooth random colour images, so that crops and flips matter. */
static void make_folder(negcut_ctx *ctx, const char *dir, uint64_t seed) {
  ck_assert_int_eq(mkdir(dir, 0755), 0);
  for (int i = 0; i < N_IMAGES; i++) {
    negcut_image *img = NULL;
    char path[128];
    uint64_t s = seed * 1000 + (uint64_t)i;
    float base[3], gx[3], gy[3];
    for (int c = 0; c < 3; c++) {
      base[c] = (float)(lcg(&s) % 256);
      gx[c] = (float)(lcg(&s) % 11) - 5.0f;
      gy[c] = (float)(lcg(&s) % 11) - 5.0f;
    }
    ck_assert_int_eq(negcut_image_create(&img, ctx, SIDE, SIDE), NEGCUT_OK);
    for (uint32_t y = 0; y < SIDE; y++)
      for (uint32_t x = 0; x < SIDE; x++)
        for (int c = 0; c < 3; c++) {
          float v = base[c] + gx[c] * (float)x + gy[c] * (float)y + (float)(lcg(&s) % 16);
          v = v < 0 ? -v : v;
          img->pixels[y * img->stride_bytes + x * 3 + (uint32_t)c] = (uint8_t)((int)v % 256);
        }
    snprintf(path, sizeof path, "%s/%02d.png", dir, i);
    ck_assert_int_eq(negcut_image_save(ctx, img, path, NULL), NEGCUT_OK);
    negcut_image_free(img);
  }
}

static void setup(void) {
  char dir[128];
  negcut_ctx *ctx = new_ctx();
  ngc_test_mkdtemp(root, sizeof root, "ngc_train");
  ngc_test_mkdtemp(scratch, sizeof scratch, "ngc_state");
  snprintf(dir, sizeof dir, "%s/trainA", root);
  make_folder(ctx, dir, 1);
  snprintf(dir, sizeof dir, "%s/trainB", root);
  make_folder(ctx, dir, 2);
  negcut_ctx_free(ctx);
}

static void teardown(void) {
  ngc_test_rmtree(root);
  ngc_test_rmtree(scratch);
}

static void path_in(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", scratch, name); }

/* A tiny network on the generated folders (reference defaults otherwise). */
static void tiny_options(negcut_trainer_options *o, negcut_train_mode mode, const char *dataroot) {
  ngc_test_tiny_trainer(o, mode, CROP);
  o->dataroot = dataroot;
  o->load_size = SIDE;
  o->n_epochs = 1;
  o->n_epochs_decay = 1;
}

/* ------------------------------------------------------------ contract */

START_TEST(options_and_create_contract) {
  negcut_ctx *ctx = new_ctx();
  negcut_trainer_options o;
  negcut_trainer *t = (negcut_trainer *)&o; /* must be reset to NULL on failure */

  ck_assert_int_eq(negcut_trainer_options_init(NULL, NEGCUT_MODE_CUT), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_options_init(&o, 7), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_options_init(&o, -1), NEGCUT_ERR_INVALID_ARGUMENT);

  /* the reference defaults (REFERENCE.md 6, 7) */
  ck_assert_int_eq(negcut_trainer_options_init(&o, NEGCUT_MODE_CUT), NEGCUT_OK);
  ck_assert_uint_eq(o.version, NEGCUT_TRAINER_OPTIONS_VERSION);
  ck_assert_int_eq(o.ngf, 64);
  ck_assert_int_eq(o.n_blocks, 9);
  ck_assert_int_eq(o.num_patches, 256);
  ck_assert_int_eq(o.nce_idt, 1);
  ck_assert_int_eq(o.flip_equivariance, 0);
  ck_assert_float_eq(o.lambda_nce, 1.0f);
  ck_assert_int_eq(o.n_epochs, 200);
  ck_assert_int_eq(o.n_epochs_decay, 200);
  ck_assert_int_eq(o.load_size, 286);
  ck_assert_int_eq(o.crop_size, 256);
  ck_assert_double_eq_tol(o.lr, 2e-4, 1e-12);
  ck_assert_double_eq_tol(o.beta1, 0.5, 1e-12);
  ck_assert_int_eq(negcut_trainer_options_init(&o, NEGCUT_MODE_FASTCUT), NEGCUT_OK);
  ck_assert_int_eq(o.nce_idt, 0);
  ck_assert_int_eq(o.flip_equivariance, 1);
  ck_assert_float_eq(o.lambda_nce, 10.0f);
  ck_assert_int_eq(o.n_epochs, 150);
  ck_assert_int_eq(o.n_epochs_decay, 50);

  /* bad arguments give INVALID_ARGUMENT, *out NULL, and a message */
  tiny_options(&o, NEGCUT_MODE_CUT, NULL);
  ck_assert_int_eq(negcut_trainer_create(NULL, ctx, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_create(&t, NULL, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  o.version = NEGCUT_TRAINER_OPTIONS_VERSION + 1;
  t = (negcut_trainer *)&o;
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(t);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "version"));
  o.version = 0;
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  /* versions 1 (before eager), 2 (before tf32) and 3 (before conv_algo) are
   * still accepted, and read only to their end (an exact-size copy: the
   * sanitizer build checks) */
  for (uint32_t v = 1; v <= 3; v++) {
    const size_t size = v == 1   ? offsetof(negcut_trainer_options, eager)
                        : v == 2 ? offsetof(negcut_trainer_options, tf32)
                                 : offsetof(negcut_trainer_options, conv_algo);
    negcut_trainer_options *old = malloc(size);
    ck_assert_ptr_nonnull(old);
    tiny_options(&o, NEGCUT_MODE_CUT, NULL);
    o.version = v;
    memcpy(old, &o, size);
    ck_assert_int_eq(negcut_trainer_create(&t, ctx, old), NEGCUT_OK);
    ck_assert_uint_eq(t->t.tape.winograd, NGC_WINOGRAD_FWD | NGC_WINOGRAD_BWD); /* 0 (AUTO) */
    free(old);
    negcut_trainer_free(t);
    t = NULL;
  }
  /* conv_algo -> the passes whose convolutions may use Winograd */
  static const uint32_t bits[3] = {NGC_WINOGRAD_FWD | NGC_WINOGRAD_BWD, 0,
                                   NGC_WINOGRAD_FWD | NGC_WINOGRAD_BWD};
  for (negcut_conv_algo a = NEGCUT_CONV_AUTO; a <= NEGCUT_CONV_WINOGRAD; a++) {
    tiny_options(&o, NEGCUT_MODE_CUT, NULL);
    o.conv_algo = a;
    ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
    ck_assert_uint_eq(t->t.tape.winograd, bits[a]);
    negcut_trainer_free(t);
    t = NULL;
  }
  /* each bad option is refused at create, with a message naming it */
  static const char *const named[] = {"mode 9",        "ngf 0",          "batch_size 0",
                                      "n_nce_layers 9", "num_patches 0", "lr -1",
                                      "NCE layer 3",    "input_nc 3 and output_nc 1",
                                      "dir_a",          "conv_algo 3",   "conv_algo -1",
                                      "output_nc 1",    "NCE layer -1",  "nce_t 0",
                                      "betas (1, 0.999)", "betas (0.5, -0.5)", "n_epochs_decay -2",
                                      "n_layers_d 0",  "lambda_nce nan", "lr inf",
                                      "ngf 4097 (1 to 4096)", "n_blocks 65", "n_layers_d 9",
                                      "ndf 2147483647", "netf_nc 65537", "n_epochs 1000001",
                                      "both 0", "input_nc 65"};
  for (int k = 0; k < (int)(sizeof named / sizeof named[0]); k++) {
    tiny_options(&o, NEGCUT_MODE_CUT, NULL);
    switch (k) {
    case 0: o.mode = 9; break;
    case 1: o.ngf = 0; break;
    case 2: o.batch_size = 0; break;
    case 3: o.n_nce_layers = 9; break;
    case 4: o.num_patches = 0; break;
    case 5: o.lr = -1.0; break;
    case 6: o.nce_layers[4] = 3; break;   /* not increasing */
    case 7: o.output_nc = 1; break;       /* the NCE encoder needs in == out */
    case 8: o.dir_a = root; break;        /* dir_a without dir_b */
    case 9: o.conv_algo = NEGCUT_CONV_WINOGRAD + 1; break;
    case 10: o.conv_algo = -1; break;
    case 11: o.nce_idt = 0, o.output_nc = 1; break; /* without it too */
    case 12: o.nce_layers[0] = -1; break; /* the residual blocks' inner layers are module -1 */
    case 13: o.nce_t = 0.0f; break;
    case 14: o.beta1 = 1.0; break;
    case 15: o.beta2 = -0.5; break;
    case 16: o.n_epochs_decay = -2; break;
    case 17: o.n_layers_d = 0; break;
    case 18: o.lambda_nce = NAN; break;
    case 19: o.lr = INFINITY; break;
    case 20: o.ngf = 4097; break; /* the caps of negcut_net_create_*: these hung or overflowed */
    case 21: o.n_blocks = 65; break;
    case 22: o.n_layers_d = 9; break;
    case 23: o.ndf = INT32_MAX; break;
    case 24: o.netf_nc = 65537; break;
    case 25: o.n_epochs = 1000001; break;
    case 26: o.n_epochs = o.n_epochs_decay = 0; break;
    case 27: o.input_nc = o.output_nc = 65; break;
    }
    t = (negcut_trainer *)&o;
    ck_assert_msg(negcut_trainer_create(&t, ctx, &o) == NEGCUT_ERR_INVALID_ARGUMENT, "bad option %d accepted", k);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(negcut_ctx_last_error(ctx), named[k]) != NULL, "option %d: \"%s\" does not say \"%s\"",
                  k, negcut_ctx_last_error(ctx), named[k]);
  }
  /* NEGCUT needs an even num_patches (the diversity term halves them) */
  tiny_options(&o, NEGCUT_MODE_NEGCUT, NULL);
  o.num_patches = 15;
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "even num_patches (15)"));
  tiny_options(&o, NEGCUT_MODE_NEGCUT, NULL);
  o.z_dim = 0;
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "z_dim at least 1 (0)"));
  /* an empty dataroot (it read /trainA) and one too long to join are refused */
  static char longroot[4100];
  memset(longroot, 'x', sizeof longroot - 1);
  const char *roots[2] = {"", longroot};
  for (int k = 0; k < 2; k++) {
    tiny_options(&o, NEGCUT_MODE_CUT, roots[k]);
    ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "dataroot is empty or longer"));
  }
  /* a missing data folder is refused at create, naming it */
  tiny_options(&o, NEGCUT_MODE_CUT, "/nonexistent/ngc_data");
  ck_assert_int_ne(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_ptr_null(t);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "/nonexistent/ngc_data"));

  negcut_trainer_free(NULL);
  negcut_ctx_free(ctx);
}
END_TEST

/* The experimental random source: the trainer asks for exactly the draws
 * its documentation lists, uses the given ids, and fails a step with a
 * callback's status. */
typedef struct draws {
  int ids, noise, flips;
  int64_t last_n;
  negcut_status fail_with;
} draws;

static negcut_status count_ids(int32_t layer, int64_t hw, int64_t n, int64_t *out, void *user) {
  draws *d = user;
  (void)layer;
  ck_assert_int_le(n, hw);
  for (int64_t i = 0; i < n; i++) out[i] = hw - 1 - i; /* distinct, in range */
  d->ids++;
  d->last_n = n;
  return d->fail_with;
}

static negcut_status count_noise(int32_t layer, int64_t n, float *out, void *user) {
  draws *d = user;
  (void)layer;
  for (int64_t i = 0; i < n; i++) out[i] = (float)(i % 7) / 7.0f - 0.5f;
  d->noise++;
  return NEGCUT_OK;
}

static int32_t count_flip(void *user) {
  ((draws *)user)->flips++;
  return 1;
}

START_TEST(random_source_is_used) {
  static const negcut_train_mode modes[3] = {NEGCUT_MODE_CUT, NEGCUT_MODE_FASTCUT, NEGCUT_MODE_NEGCUT};
  /* per iteration: {ids, noise, flips} with 4 NCE layers */
  static const int want[3][3] = {{8, 0, 0}, {4, 0, 1}, {16, 16, 0}};
  negcut_ctx *ctx = new_ctx();
  float a[3 * 32 * 32], b[3 * 32 * 32];
  for (int i = 0; i < 3 * 32 * 32; i++) a[i] = b[i] = (float)(i % 13) / 13.0f - 0.5f;
  for (int m = 0; m < 3; m++) {
    negcut_trainer_options o;
    negcut_trainer *t = NULL;
    draws d = {0, 0, 0, 0, NEGCUT_OK};
    negcut_random_source src = {NEGCUT_RANDOM_SOURCE_VERSION, count_ids, count_noise, count_flip, &d};
    negcut_trainer_options_init(&o, modes[m]);
    o.ngf = o.ndf = 4;
    o.n_blocks = 1;
    o.n_nce_layers = 4;
    o.nce_layers[3] = 12;
    o.num_patches = 16;
    o.netf_nc = 16;
    o.z_dim = 4;
    ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
    ck_assert_int_eq(negcut_trainer_set_random_source(t, &src), NEGCUT_OK);
    ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, 32, 32), NEGCUT_OK);
    ck_assert_int_eq(d.ids, want[m][0]);
    ck_assert_int_eq(d.noise, want[m][1]);
    ck_assert_int_eq(d.flips, want[m][2]);
    ck_assert_int_eq(d.last_n, 16);
    /* a failing callback fails the step with its status */
    d.fail_with = NEGCUT_ERR_CANCELLED;
    ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, 32, 32), NEGCUT_ERR_CANCELLED);
    /* back to the trainer's own draws */
    ck_assert_int_eq(negcut_trainer_set_random_source(t, NULL), NEGCUT_OK);
    int before = d.ids;
    ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, 32, 32), NEGCUT_OK);
    ck_assert_int_eq(d.ids, before);
    src.version = 99;
    ck_assert_int_eq(negcut_trainer_set_random_source(t, &src), NEGCUT_ERR_INVALID_ARGUMENT);
    negcut_trainer_free(t);
  }
  negcut_ctx_free(ctx);
}
END_TEST

START_TEST(calls_without_data) {
  negcut_ctx *ctx = new_ctx();
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  negcut_train_progress p;
  uint32_t w = 1, h = 1;
  char path[128];
  float *a = calloc(3 * CROP * CROP, sizeof *a), *b = calloc(3 * CROP * CROP, sizeof *b);
  ck_assert(a && b);

  tiny_options(&o, NEGCUT_MODE_CUT, NULL);
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_step(t), NEGCUT_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "step_batch"));
  ck_assert_int_eq(negcut_trainer_run(t, 1, NULL, NULL), NEGCUT_ERR_STATE);
  ck_assert_int_eq(negcut_trainer_step(NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_run(t, -1, NULL, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_progress(t, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_progress(NULL, &p), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_visuals(t, &w, &h, NULL, NULL, NULL, NULL), NEGCUT_ERR_STATE);
  ck_assert_int_eq(negcut_trainer_visuals(t, NULL, &h, NULL, NULL, NULL, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_step_batch(t, NULL, b, CROP, CROP), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_step_batch(t, a, NULL, CROP, CROP), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, 0, CROP), NEGCUT_ERR_INVALID_ARGUMENT);
  /* sizes the generator would change (they failed deep inside, NEGCUT's at
   * its patch ids), refused with the reason */
  ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, CROP - 2, CROP), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "multiples of 4"));
  ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, CROP, CROP - 1), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, 65540, CROP), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_step_batch(NULL, a, b, CROP, CROP), NEGCUT_ERR_INVALID_ARGUMENT);
  path_in(path, sizeof path, "G.safetensors");
  ck_assert_int_eq(negcut_trainer_save_network(t, NEGCUT_NET_N, path), NEGCUT_ERR_INVALID_ARGUMENT); /* CUT has no N */
  ck_assert_int_eq(negcut_trainer_save_network(t, 17, path), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_save_network(t, NEGCUT_NET_G, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_save_state(NULL, path), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_load_state(t, NULL), NEGCUT_ERR_INVALID_ARGUMENT);

  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, 0);
  ck_assert_int_eq(p.total_iterations, 0);
  ck_assert_int_eq(p.iterations_per_epoch, 0);
  ck_assert_int_eq(p.epoch, 1);
  ck_assert_double_eq_tol(p.lr, 2e-4, 1e-12);

  /* a caller's batch: finite losses, the iteration counts, visuals */
  for (int i = 0; i < 3 * CROP * CROP; i++) {
    a[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    b[i] = (float)((i * 53) % 89) / 44.0f - 1.0f;
  }
  /* values outside [-1, 1] (a NaN, pixels of 0..255) are refused, naming
   * the first; they trained every parameter to NaN */
  const float bad[3] = {NAN, 255.0f, -1.01f};
  for (int k = 0; k < 3; k++) {
    float keep = b[77];
    b[77] = bad[k];
    ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, CROP, CROP), NEGCUT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "real_b[77]"));
    b[77] = keep;
  }
  a[5] = 1.0005f; /* rounding beyond 1 is let through */
  ck_assert_msg(negcut_trainer_step_batch(t, a, b, CROP, CROP) == NEGCUT_OK, "%s", negcut_ctx_last_error(ctx));
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, 1);
  ck_assert_int_eq(p.epoch, 1); /* step_batch does not advance the epoch */
  ck_assert(isfinite(p.d_real) && isfinite(p.d_fake) && isfinite(p.g_gan) && isfinite(p.nce_x) &&
            isfinite(p.nce_y) && isfinite(p.g_total));
  ck_assert(p.d_real > 0 && p.g_gan > 0 && p.nce_x > 0 && p.nce_y > 0);
  ck_assert_float_eq_tol(p.g_total, p.g_gan + 0.5f * (p.nce_x + p.nce_y), 1e-5f);
  ck_assert_int_eq(negcut_trainer_visuals(t, &w, &h, NULL, NULL, NULL, NULL), NEGCUT_OK);
  ck_assert_uint_eq(w, CROP);
  ck_assert_uint_eq(h, CROP);
  uint8_t *rgb = malloc(3 * CROP * CROP);
  ck_assert_ptr_nonnull(rgb);
  ck_assert_int_eq(negcut_trainer_visuals(t, &w, &h, rgb, NULL, NULL, NULL), NEGCUT_OK);
  /* real_A comes back as the input, as 8 bits */
  ck_assert_uint_eq(rgb[0], (uint8_t)((a[0] + 1.0f) / 2.0f * 255.0f));
  ck_assert_uint_eq(rgb[1], (uint8_t)((a[CROP * CROP] + 1.0f) / 2.0f * 255.0f));
  free(rgb);

  free(a);
  free(b);
  negcut_trainer_free(t);
  negcut_ctx_free(ctx);
}
END_TEST

static int cancel_after_two(const negcut_train_progress *p, void *user) {
  int *calls = user;
  (*calls)++;
  return p->iteration >= 2;
}

START_TEST(progress_with_data) {
  negcut_ctx *ctx = new_ctx();
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  negcut_train_progress p;
  int calls = 0;

  tiny_options(&o, NEGCUT_MODE_CUT, root);
  ck_assert_msg(negcut_trainer_create(&t, ctx, &o) == NEGCUT_OK, "%s", negcut_ctx_last_error(ctx));
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, 0);
  ck_assert_int_eq(p.iterations_per_epoch, N_IMAGES);
  ck_assert_int_eq(p.total_iterations, N_IMAGES * 2);
  ck_assert_int_eq(p.epoch, 1);
  ck_assert_double_eq_tol(p.lr, 2e-4, 1e-12);
  ck_assert_int_eq(negcut_trainer_run(t, 5, cancel_after_two, &calls), NEGCUT_ERR_CANCELLED);
  ck_assert_int_eq(calls, 2);
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, 2);
  ck_assert(p.images_per_second > 0);
  /* across the epoch boundary the linear policy halves lr (1 + 1 epochs) */
  ck_assert_int_eq(negcut_trainer_run(t, N_IMAGES, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, N_IMAGES + 2);
  ck_assert_int_eq(p.epoch, 2);
  ck_assert_double_eq_tol(p.lr, 1e-4, 1e-12);
  /* run(0) goes to the end of the schedule */
  ck_assert_int_eq(negcut_trainer_run(t, 0, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, 2 * N_IMAGES);
  negcut_trainer_free(t);
  negcut_ctx_free(ctx);
}
END_TEST

/* ------------------------------------------------------------ resume */

/* Compares two state files tensor by tensor (every network and the Adam
 * moments) and their metadata (counters); returns the number of
 * differences, printing each. */
static int compare_states(const char *pa, const char *pb, int expect_negcut, int verbose) {
  negcut_ctx *ctx = new_ctx();
  ngc_st_file *fa = NULL, *fb = NULL;
  int diff = 0, nets[5] = {0};
  ck_assert_int_eq(ngc_st_open(ctx, pa, &fa), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_open(ctx, pb, &fb), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_count(fa), ngc_st_count(fb));
  for (int64_t i = 0; i < ngc_st_count(fa); i++) {
    const ngc_st_entry *ea = ngc_st_entry_at(fa, i), *eb = ngc_st_find(fb, ea->name);
    static const char *tags[5] = {"G.", "D.", "F.", "N.", "F_."};
    for (int k = 0; k < 5; k++)
      if (!strncmp(ea->name, tags[k], strlen(tags[k]))) nets[k]++;
    if (!eb || eb->nbytes != ea->nbytes || memcmp(ea->data, eb->data, ea->nbytes)) {
      if (verbose && diff < 10) fprintf(stderr, "resume: tensor %s differs\n", ea->name);
      diff++;
    }
  }
  for (int64_t i = 0; i < ngc_st_metadata_count(fa); i++) {
    const char *k, *v, *vb;
    ck_assert_int_eq(ngc_st_metadata_at(fa, i, &k, &v), NEGCUT_OK);
    vb = ngc_st_metadata(fb, k);
    if (!vb || strcmp(v, vb)) {
      if (verbose) fprintf(stderr, "resume: metadata %s: %s vs %s\n", k, v, vb ? vb : "(missing)");
      diff++;
    }
  }
  /* the file holds every network of the mode */
  ck_assert(nets[0] > 0 && nets[1] > 0 && nets[2] > 0);
  ck_assert(expect_negcut ? nets[3] > 0 && nets[4] > 0 : nets[3] == 0 && nets[4] == 0);
  ngc_st_close(fa);
  ngc_st_close(fb);
  negcut_ctx_free(ctx);
  return diff;
}

/* total iterations uninterrupted vs split + save + a new trainer on a new
 * context + load + the rest: every tensor of the state must be identical. */
static void resume_is_exact(negcut_train_mode mode, int total, int split) {
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  negcut_train_progress p;
  negcut_ctx *ctx = new_ctx();
  char pa[128], pb[128], pc[128];
  path_in(pa, sizeof pa, "a.state");
  path_in(pb, sizeof pb, "b.state");
  path_in(pc, sizeof pc, "c.state");
  tiny_options(&o, mode, root);

  ck_assert_msg(negcut_trainer_create(&t, ctx, &o) == NEGCUT_OK, "%s", negcut_ctx_last_error(ctx));
  ck_assert_msg(negcut_trainer_run(t, total, NULL, NULL) == NEGCUT_OK, "%s", negcut_ctx_last_error(ctx));
  ck_assert_int_eq(negcut_trainer_save_state(t, pa), NEGCUT_OK);
  negcut_trainer_free(t);
  negcut_ctx_free(ctx);

  ctx = new_ctx();
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_run(t, split, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_save_state(t, pc), NEGCUT_OK);
  negcut_trainer_free(t);
  negcut_ctx_free(ctx);

  ctx = new_ctx();
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_msg(negcut_trainer_load_state(t, pc) == NEGCUT_OK, "%s", negcut_ctx_last_error(ctx));
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, split);
  ck_assert_int_eq(negcut_trainer_run(t, total - split, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, total);
  ck_assert_int_eq(negcut_trainer_save_state(t, pb), NEGCUT_OK);
  negcut_trainer_free(t);
  negcut_ctx_free(ctx);

  int diff = compare_states(pa, pb, mode == NEGCUT_MODE_NEGCUT, 1);
  ck_assert_msg(diff == 0, "mode %d: %d tensors or counters differ after resume at %d of %d", (int)mode, diff,
                split, total);
  /* the comparison can tell: the state at the split differs from the end */
  ck_assert_int_gt(compare_states(pa, pc, mode == NEGCUT_MODE_NEGCUT, 0), 0);
}

START_TEST(resume_cut) { resume_is_exact(NEGCUT_MODE_CUT, 6, 3); }
END_TEST

/* Saved in epoch 1, resumed into epoch 2: the data order, lr and fine-tune
 * state must come back too. */
START_TEST(resume_cut_across_epoch) { resume_is_exact(NEGCUT_MODE_CUT, N_IMAGES + 2, N_IMAGES - 1); }
END_TEST

START_TEST(resume_negcut) { resume_is_exact(NEGCUT_MODE_NEGCUT, 6, 3); }
END_TEST

/* ------------------------------------------------------------ state files */

static uint8_t *slurp(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long n;
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  ck_assert(n > 0);
  rewind(f);
  buf = malloc((size_t)n);
  ck_assert_ptr_nonnull(buf);
  ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *size = (size_t)n;
  return buf;
}

START_TEST(save_state_is_atomic) {
  negcut_ctx *ctx = new_ctx();
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  char keep[128], missing[160];
  struct stat sb;
  struct rlimit old, small;
  size_t n0, n1;

  path_in(keep, sizeof keep, "keep.state");
  snprintf(missing, sizeof missing, "%s/no_such_dir/x.state", scratch);
  tiny_options(&o, NEGCUT_MODE_CUT, root);
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_run(t, 1, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_save_state(t, keep), NEGCUT_OK);
  uint8_t *before = slurp(keep, &n0);

  /* a path in a missing folder: IO, a message naming it, nothing created */
  ck_assert_int_eq(negcut_trainer_save_state(t, missing), NEGCUT_ERR_IO);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "no_such_dir"));
  ck_assert_int_ne(stat(missing, &sb), 0);

  /* a save that fails part-way at the same path (the file size limit stops
   * the write: root ignores permissions, not RLIMIT_FSIZE) leaves the old
   * state whole, and no temporary file behind */
  ck_assert_int_eq(negcut_trainer_run(t, 1, NULL, NULL), NEGCUT_OK); /* the new state differs */
  ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
  small = old;
  small.rlim_cur = 4096;
  signal(SIGXFSZ, SIG_IGN);
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
  negcut_status st = negcut_trainer_save_state(t, keep);
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_DFL);
  ck_assert_int_eq(st, NEGCUT_ERR_IO);
  uint8_t *after = slurp(keep, &n1);
  ck_assert_uint_eq(n0, n1);
  ck_assert(!memcmp(before, after, n0));
  free(after);
  {
    DIR *d = opendir(scratch);
    struct dirent *e;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
      ck_assert_msg(!strstr(e->d_name, ".tmp."), "temporary file %s left behind", e->d_name);
    closedir(d);
  }
  /* the intact file still loads */
  ck_assert_int_eq(negcut_trainer_load_state(t, keep), NEGCUT_OK);
  /* and a successful save replaces it */
  ck_assert_int_eq(negcut_trainer_run(t, 1, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_save_state(t, keep), NEGCUT_OK);
  after = slurp(keep, &n1);
  ck_assert(n0 != n1 || memcmp(before, after, n0));
  free(after);
  free(before);
  negcut_trainer_free(t);
  negcut_ctx_free(ctx);
}
END_TEST

START_TEST(load_state_errors) {
  negcut_ctx *ctx = new_ctx();
  negcut_trainer_options o;
  negcut_trainer *t = NULL, *other = NULL;
  negcut_train_progress p;
  char state[128], net[128], missing[128];

  path_in(state, sizeof state, "a.state");
  path_in(net, sizeof net, "G.safetensors");
  path_in(missing, sizeof missing, "missing.state");
  tiny_options(&o, NEGCUT_MODE_CUT, root);
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_run(t, 1, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_save_state(t, state), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_save_network(t, NEGCUT_NET_G, net), NEGCUT_OK);

  /* a missing file: IO naming it; the trainer is untouched */
  ck_assert_int_eq(negcut_trainer_load_state(t, missing), NEGCUT_ERR_IO);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "missing.state"));
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, 1);
  /* a network checkpoint is not a training state */
  ck_assert_int_eq(negcut_trainer_load_state(t, net), NEGCUT_ERR_BAD_FORMAT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "not a libnegcut training state"));
  negcut_trainer_free(t);

  /* other options: refused with both configurations in the message, and
   * nothing loaded */
  o.ngf = 16;
  ck_assert_int_eq(negcut_trainer_create(&other, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_load_state(other, state), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "ngf=8"));
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "ngf=16"));
  ck_assert_int_eq(negcut_trainer_progress(other, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, 0);
  negcut_trainer_free(other);
  tiny_options(&o, NEGCUT_MODE_NEGCUT, root);
  ck_assert_int_eq(negcut_trainer_create(&other, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_load_state(other, state), NEGCUT_ERR_INVALID_ARGUMENT);
  negcut_trainer_free(other);
  negcut_ctx_free(ctx);
}
END_TEST

/* Writes the state at src to dst with metadata key (NULL: none) set to
 * value, and without tensor drop (NULL: every tensor). */
static void patch_state(const char *src, const char *dst, const char *key, const char *value,
                        const char *drop) {
  ngc_st_file *f = NULL;
  ngc_st_writer *w = NULL;
  ck_assert_int_eq(ngc_st_open(NULL, src, &f), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_create(NULL, &w), NEGCUT_OK);
  for (int64_t i = 0; i < ngc_st_count(f); i++) {
    const ngc_st_entry *e = ngc_st_entry_at(f, i);
    if (drop && !strcmp(e->name, drop)) continue;
    ck_assert_int_eq(ngc_st_writer_add(w, e->name, e->dtype, e->ndim, e->shape, e->data), NEGCUT_OK);
  }
  for (int64_t i = 0; i < ngc_st_metadata_count(f); i++) {
    const char *k, *v;
    ck_assert_int_eq(ngc_st_metadata_at(f, i, &k, &v), NEGCUT_OK);
    ck_assert_int_eq(ngc_st_writer_set_metadata(w, k, key && !strcmp(k, key) ? value : v),
                     NEGCUT_OK);
  }
  ck_assert_int_eq(ngc_st_write(NULL, w, dst), NEGCUT_OK);
  ngc_st_writer_free(w);
  ngc_st_close(f);
}

/* Writes the state at src to dst with value at float 0 of tensor name
 * (NULL: none), and with one more tensor named extra (NULL: none). */
static void patch_tensor(const char *src, const char *dst, const char *name, float value,
                         const char *extra) {
  ngc_st_file *f = NULL;
  ngc_st_writer *w = NULL;
  static float copy[1 << 16];
  const int64_t one = 1;
  ck_assert_int_eq(ngc_st_open(NULL, src, &f), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_create(NULL, &w), NEGCUT_OK);
  for (int64_t i = 0; i < ngc_st_count(f); i++) {
    const ngc_st_entry *e = ngc_st_entry_at(f, i);
    const void *data = e->data;
    if (name && !strcmp(e->name, name)) {
      ck_assert_uint_le(e->nbytes, sizeof copy);
      memcpy(copy, e->data, e->nbytes);
      copy[0] = value;
      data = copy;
    }
    ck_assert_int_eq(ngc_st_writer_add(w, e->name, e->dtype, e->ndim, e->shape, data), NEGCUT_OK);
  }
  if (extra) ck_assert_int_eq(ngc_st_writer_add(w, extra, NGC_ST_F32, 1, &one, &value), NEGCUT_OK);
  for (int64_t i = 0; i < ngc_st_metadata_count(f); i++) {
    const char *k, *v;
    ck_assert_int_eq(ngc_st_metadata_at(f, i, &k, &v), NEGCUT_OK);
    ck_assert_int_eq(ngc_st_writer_set_metadata(w, k, v), NEGCUT_OK);
  }
  ck_assert_int_eq(ngc_st_write(NULL, w, dst), NEGCUT_OK);
  ngc_st_writer_free(w);
  ngc_st_close(f);
}

/* What a state holds is checked before anything is loaded (found by a
 * sweep of the API: these loaded, and the next step trained NaNs or ran
 * with a negative learning rate): values finite, Adam's second moments at
 * least 0, no tensor this trainer has no place for, the epoch at most the
 * one after the schedule's last. */
START_TEST(load_state_values) {
  static const struct {
    const char *name; /* tensor to poison, or NULL */
    float value;
    const char *extra, *key, *key_value, *says;
  } bad[] = {
      {"G.model.1.weight", NAN, NULL, NULL, NULL, "'G.model.1.weight' holds nan"},
      {"F_.mlp_0.0.bias", INFINITY, NULL, NULL, NULL, "'F_.mlp_0.0.bias' holds inf"},
      {"adam.G.m.model.1.bias", -INFINITY, NULL, NULL, NULL, "holds -inf"},
      {"adam.D.v.model.0.weight", -1e-9f, NULL, NULL, NULL, "a second moment"},
      {NULL, 1.0f, "G.extra", NULL, NULL, "tensors, where this trainer's state has"},
      {NULL, 0.0f, NULL, "epoch", "4", "epoch 4 is past this trainer's schedule of 1 + 1"},
  };
  negcut_ctx *ctx = new_ctx();
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  char state[128], patched[128], again[128];
  path_in(state, sizeof state, "v.state");
  path_in(patched, sizeof patched, "vpatched.state");
  path_in(again, sizeof again, "vagain.state");
  tiny_options(&o, NEGCUT_MODE_NEGCUT, root); /* 1 + 1 epochs */
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_run(t, 1, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_save_state(t, state), NEGCUT_OK);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (bad[i].key)
      patch_state(state, patched, bad[i].key, bad[i].key_value, NULL);
    else
      patch_tensor(state, patched, bad[i].name, bad[i].value, bad[i].extra);
    ck_assert_int_eq(negcut_trainer_load_state(t, patched), NEGCUT_ERR_BAD_FORMAT);
    ck_assert_msg(strstr(negcut_ctx_last_error(ctx), bad[i].says), "case %zu: %s", i,
                  negcut_ctx_last_error(ctx));
  }
  /* nothing was loaded; the epoch after the last one, and a second moment
   * of 0, are a state's own */
  ck_assert_int_eq(negcut_trainer_save_state(t, again), NEGCUT_OK);
  size_t na = 0, nb = 0;
  uint8_t *a = ngc_test_read_file(state, &na), *b = ngc_test_read_file(again, &nb);
  ck_assert(na == nb && !memcmp(a, b, na));
  free(a), free(b);
  patch_state(state, patched, "epoch", "3", NULL);
  ck_assert_int_eq(negcut_trainer_load_state(t, patched), NEGCUT_OK);
  patch_tensor(state, patched, "adam.D.v.model.0.weight", 0.0f, NULL);
  ck_assert_int_eq(negcut_trainer_load_state(t, patched), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_step(t), NEGCUT_OK);
  negcut_trainer_free(t);
  negcut_ctx_free(ctx);
}
END_TEST

/* The counters of a state are decimal digits within bounds: strtoull took
 * "-1" as 2^64 - 1, and 2^63 - 1 iterations or Adam steps loaded, and the
 * next iteration overflowed them (undefined behaviour; found by
 * tests/fuzz/fuzz_trainer_state's harness). Refused before anything is
 * loaded. */
START_TEST(load_state_counters) {
  static const struct {
    const char *key, *value;
  } bad[] = {
      {"iteration", "9223372036854775807"}, {"iteration", "-1"}, {"iteration", " 1"},
      {"iteration", "+1"}, {"iteration", "18446744073709551616"}, {"iteration", "1x"},
      {"epoch", "0"}, {"adam.G", "9223372036854775807"}, {"adam.D", "-5"},
      {"data.finetune", "2"}, {"data.index", "99999999999999999999"}, {"rng.flip", ""},
  };
  negcut_ctx *ctx = new_ctx();
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  negcut_train_progress p;
  char state[128], patched[128];
  path_in(state, sizeof state, "c.state");
  path_in(patched, sizeof patched, "patched.state");
  tiny_options(&o, NEGCUT_MODE_CUT, root);
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_run(t, 1, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_save_state(t, state), NEGCUT_OK);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    patch_state(state, patched, bad[i].key, bad[i].value, NULL);
    ck_assert_int_eq(negcut_trainer_load_state(t, patched), NEGCUT_ERR_BAD_FORMAT);
    ck_assert_msg(strstr(negcut_ctx_last_error(ctx), bad[i].key), "%s=%s: %s", bad[i].key,
                  bad[i].value, negcut_ctx_last_error(ctx));
  }
  /* the largest counters allowed load, and the trainer goes on */
  patch_state(state, patched, "iteration", "9007199254740992", NULL);
  ck_assert_int_eq(negcut_trainer_load_state(t, patched), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_progress(t, &p), NEGCUT_OK);
  ck_assert_int_eq(p.iteration, (int64_t)1 << 53);
  ck_assert_int_eq(negcut_trainer_step(t), NEGCUT_OK);
  negcut_trainer_free(t);

  /* the fuzz target's input, on the fuzz target's trainer */
  char froot[128];
  size_t n = 0;
  uint8_t *bytes = ngc_test_fuzz_regress("trainer_state", "iteration-int64-max.safetensors", &n);
  path_in(froot, sizeof froot, "fuzz");
  ck_assert_int_eq(mkdir(froot, 0700), 0);
  fuzz_make_train_data(froot);
  fuzz_trainer_options(&o, froot);
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  fuzz_write_file(patched, bytes, n);
  ck_assert_int_eq(negcut_trainer_load_state(t, patched), NEGCUT_ERR_BAD_FORMAT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "'iteration' 9223372036854775807 is outside"));
  negcut_trainer_free(t);
  free(bytes);
  negcut_ctx_free(ctx);
}
END_TEST

/* A state file that does not fit (a tensor missing, the last one loaded;
 * a data position outside the data set) is refused before anything is
 * written: the trainer saves the same bytes as before the failed loads. */
START_TEST(load_state_atomic) {
  negcut_ctx *ctx = new_ctx();
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  char old[128], now[128], again[128], patched[128];
  path_in(old, sizeof old, "old.state");
  path_in(now, sizeof now, "now.state");
  path_in(again, sizeof again, "again.state");
  path_in(patched, sizeof patched, "patched.state");
  tiny_options(&o, NEGCUT_MODE_NEGCUT, root);
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_run(t, 1, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_save_state(t, old), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_run(t, 1, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_save_state(t, now), NEGCUT_OK);
  /* the last tensor of the file: every other one would load first */
  ngc_st_file *f = NULL;
  ck_assert_int_eq(ngc_st_open(NULL, old, &f), NEGCUT_OK);
  char last[160];
  snprintf(last, sizeof last, "%s", ngc_st_entry_at(f, ngc_st_count(f) - 1)->name);
  ngc_st_close(f);
  patch_state(old, patched, NULL, NULL, last);
  ck_assert_int_eq(negcut_trainer_load_state(t, patched), NEGCUT_ERR_BAD_FORMAT);
  ck_assert_msg(strstr(negcut_ctx_last_error(ctx), "is missing"), "%s", negcut_ctx_last_error(ctx));
  patch_state(old, patched, "data.index", "1000000", NULL);
  ck_assert_int_eq(negcut_trainer_load_state(t, patched), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_trainer_save_state(t, again), NEGCUT_OK);
  size_t na = 0, nb = 0;
  uint8_t *a = ngc_test_read_file(now, &na), *b = ngc_test_read_file(again, &nb);
  ck_assert_uint_eq(na, nb);
  ck_assert_msg(!memcmp(a, b, na), "a failed load changed the trainer (dropped '%s')", last);
  free(a), free(b);
  negcut_trainer_free(t);
  negcut_ctx_free(ctx);
}
END_TEST

int main(void) {
  Suite *s = suite_create("train");
  TCase *api = tcase_create("api"), *resume = tcase_create("resume");
  tcase_add_test(api, options_and_create_contract);
  tcase_add_test(api, calls_without_data);
  tcase_add_test(api, random_source_is_used);
  tcase_add_unchecked_fixture(api, setup, teardown);
  tcase_set_timeout(api, 30);
  tcase_add_test(api, progress_with_data);
  tcase_add_test(api, save_state_is_atomic);
  tcase_add_test(api, load_state_errors);
  tcase_add_test(api, load_state_counters);
  tcase_add_test(api, load_state_atomic);
  tcase_add_test(api, load_state_values);
  tcase_add_unchecked_fixture(resume, setup, teardown);
  tcase_set_timeout(resume, 60);
  tcase_add_test(resume, resume_cut);
  tcase_add_test(resume, resume_cut_across_epoch);
  tcase_add_test(resume, resume_negcut);
  suite_add_tcase(s, api);
  suite_add_tcase(s, resume);
  return ngc_test_run(s);
}
