/* Whole networks and training iterations on the CUDA backend against the
 * CPU backend, through the public API, same seed on both:
 *   - the generator (blur resampling, and the strided-conv / transposed-conv
 *     variant): the same initial weights, forward, encoder features,
 *     backward to the input and to every parameter;
 *   - the translator in fp32 against the CPU's, and in bf16 against fp32;
 *   - the translator's CUDA graphs against eager runs, TF32 against fp32;
 *   - translators of one model in several threads, each on its own context,
 *     while another context is freed in the middle of a recording;
 *   - CUT, NEGCUT and FastCUT steps replayed from CUDA graphs against eager ones;
 *   - two CUT iterations and one NEGCUT iteration (test_train_negcut says
 *     why one): losses, and every parameter and Adam moment of every
 *     network afterwards (the state file).
 * Tolerances are NMSE (sum (a - b)^2 / sum b^2), printed with each result:
 * cuDNN and oneDNN both sum in fp32 but in different orders, so networks
 * agree to about 1e-6 relative, and gradients (through instance norm and
 * PatchNCE's 1/0.07 logits) a little less. The biases of convs feeding an
 * instance norm have an exactly zero gradient: both sides hold rounding
 * noise there (and Adam steps of either sign), held to noise floors
 * instead. Skips (77) without a GPU. */
#define NEGCUT_EXPERIMENTAL /* train/trainer.h reads negcut_random_source */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer/infer.h"   /* the translator's graph statistics */
#include "models/api.h"    /* a recorded pass's module outputs */
#include "ops/ops.h"
#include "train/trainer.h" /* the trainer's */
#include "io/safetensors.h"
#include "negcut/nets.h"
#include "negcut/train.h"
#include "negcut/translate.h"
#include "ngc_test.h"

#define SEED 7
#define FWD_NMSE 1e-8   /* network outputs and features */
#define GRAD_NMSE 1e-6  /* gradients, parameters after Adam steps */
#define MOMENT_NMSE 1e-4 /* Adam's m and v (v is quadratic in the gradient) */
#define LOSS_REL 1e-4   /* losses, relative */
#define BF16_PSNR_DB 30.0
/* TF32 training against fp32, one iteration. Products keep ~10 mantissa
 * bits (2^-11 relative): losses agree to ~1e-4 relative, but the weight
 * gradients of convolutions before an instance norm are sums that mostly
 * cancel, so their relative error is larger (Adam's moments: NMSE ~1e-2 on
 * the emulator). Parameters: see train_cmp. */
#define TF32_LOSS_REL 1e-2
#define TF32_MOMENT_NMSE 1e-1

static negcut_ctx *g_cu, *g_cpu;

#define OK(ctx, call) \
  ck_assert_msg((call) == NEGCUT_OK, "%s: %s", #call, negcut_ctx_last_error(ctx))

static uint64_t g_rng = 0x853C49E6748FEA9Bull;

static float urand(float lo, float hi) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}

static float *frand(int64_t n, float lo, float hi) {
  float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
  ck_assert_ptr_nonnull(p);
  for (int64_t i = 0; i < n; i++) p[i] = urand(lo, hi);
  return p;
}

static double nmse(const float *got, const float *want, int64_t n) {
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < n; i++) {
    if (isnan(got[i]) != isnan(want[i])) return INFINITY;
    if (isnan(want[i])) continue;
    const double e = (double)got[i] - want[i];
    num += e * e;
    den += (double)want[i] * want[i];
  }
  return num == 0.0 ? 0.0 : num / (den > 1e-300 ? den : 1e-300);
}

static void expect_nmse(const char *what, const float *got, const float *want, int64_t n,
                        double thr) {
  const double e = nmse(got, want, n);
  printf("  %-60s nmse %-9.3g (max %.0g)\n", what, e, thr);
  if (!(e <= thr)) ngc_test_compare(what, got, want, n, 0.0, 0.0);
  ck_assert_msg(e <= thr, "%s: nmse %g above %g", what, e, thr);
}

static double max_abs(const float *v, int64_t n) {
  double m = 0.0;
  for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)v[i]));
  return m;
}

/* A tensor whose true value is ~0 (the bias gradient of a conv followed by
 * instance norm is exactly 0 in exact arithmetic): both sides hold float32
 * cancellation noise, so NMSE means nothing; |got - want| <= floor instead. */
static void expect_floor(const char *what, const float *got, const float *want, int64_t n,
                         double floor, const char *why) {
  double worst = 0.0;
  for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
  printf("  %-60s max err %-9.3g (max %.3g, %s)\n", what, worst, floor, why);
  if (!(worst <= floor)) ngc_test_compare(what, got, want, n, floor, 0.0);
  ck_assert_msg(worst <= floor, "%s: max error %g above %g", what, worst, floor);
}

/* A tensor on ctx holding host values v (or uninitialised when v is NULL). */
static negcut_tensor *tensor(negcut_ctx *ctx, int32_t nd, const int64_t *shape, const float *v) {
  negcut_tensor *t = NULL;
  OK(ctx, negcut_tensor_create(&t, ctx, nd, shape));
  if (v) OK(ctx, negcut_tensor_write(t, v, (size_t)negcut_tensor_numel(t)));
  return t;
}

static float *read_all(negcut_ctx *ctx, const negcut_tensor *t) {
  const int64_t n = negcut_tensor_numel(t);
  float *h = malloc((size_t)(n ? n : 1) * sizeof *h);
  ck_assert_ptr_nonnull(h);
  OK(ctx, negcut_tensor_read(t, h, (size_t)n));
  return h;
}

/* ------------------------------------------------------------ generator */

typedef struct side {
  negcut_ctx *ctx;
  negcut_net *g;
  negcut_tape *tape;
  negcut_tensor *x, *y, *dy, *dx;
  negcut_record *rec;
} side;

static void gen_case(int no_antialias, int32_t ngf, int32_t blocks, int64_t N, int64_t H,
                     int64_t W) {
  negcut_generator_options go;
  side s[2]; /* 0: cuda, 1: cpu */
  char what[160], tag[96];
  snprintf(tag, sizeof tag, "generator%s ngf %d blocks %d (%lld, 3, %lld, %lld)",
           no_antialias ? " no_antialias" : "", (int)ngf, (int)blocks, (long long)N,
           (long long)H, (long long)W);
  negcut_generator_options_init(&go);
  go.ngf = ngf;
  go.n_blocks = blocks;
  go.no_antialias = no_antialias;
  go.no_antialias_up = no_antialias;
  const int64_t in[4] = {N, 3, H, W};
  int64_t out[4];
  float *x = frand(N * 3 * H * W, -1, 1);
  for (int k = 0; k < 2; k++) {
    s[k].ctx = k ? g_cpu : g_cu;
    OK(s[k].ctx, negcut_net_create_generator(&s[k].g, s[k].ctx, &go));
    OK(s[k].ctx, negcut_tape_create(&s[k].tape, s[k].ctx));
  }
  OK(g_cu, negcut_net_output_shape(s[0].g, in, out));
  const int64_t ny = out[0] * out[1] * out[2] * out[3];
  float *dy = frand(ny, -1, 1);

  /* the same initial weights: drawn on the host from the seed, uploaded */
  const int32_t np = negcut_net_param_count(s[0].g);
  ck_assert_int_eq(np, negcut_net_param_count(s[1].g));
  for (int32_t i = 0; i < np; i++) {
    int64_t shp[4] = {1, 1, 1, 1};
    const int32_t nd = negcut_net_param_shape(s[0].g, i, shp);
    int64_t n = 1;
    for (int32_t d = 0; d < nd; d++) n *= shp[d];
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    OK(g_cu, negcut_net_param_read(s[0].g, i, a, (size_t)n));
    OK(g_cpu, negcut_net_param_read(s[1].g, i, b, (size_t)n));
    ck_assert_msg(!memcmp(a, b, (size_t)n * sizeof *a), "%s: initial %s differs", tag,
                  negcut_net_param_name(s[0].g, i));
    /* biases: the init's zeros would hide a bias added in the wrong place */
    const char *name = negcut_net_param_name(s[0].g, i);
    if (strlen(name) > 5 && !strcmp(name + strlen(name) - 5, ".bias")) {
      float *r = frand(n, -0.5f, 0.5f);
      OK(g_cu, negcut_net_param_write(s[0].g, i, r, (size_t)n));
      OK(g_cpu, negcut_net_param_write(s[1].g, i, r, (size_t)n));
      free(r);
    }
    free(a), free(b);
  }

  for (int k = 0; k < 2; k++) {
    s[k].x = tensor(s[k].ctx, 4, in, x);
    s[k].y = tensor(s[k].ctx, 4, out, NULL);
    s[k].dy = tensor(s[k].ctx, 4, out, dy);
    s[k].dx = tensor(s[k].ctx, 4, in, NULL);
    OK(s[k].ctx, negcut_net_zero_grad(s[k].g));
    OK(s[k].ctx, negcut_net_forward(s[k].g, s[k].tape, s[k].x, s[k].y, &s[k].rec));
    OK(s[k].ctx, negcut_net_backward(s[k].g, s[k].rec, s[k].dy, 0, NULL, s[k].dx));
  }
  float *y0 = read_all(g_cu, s[0].y), *y1 = read_all(g_cpu, s[1].y);
  snprintf(what, sizeof what, "%s forward", tag);
  expect_nmse(what, y0, y1, ny, FWD_NMSE);
  float *dx0 = read_all(g_cu, s[0].dx), *dx1 = read_all(g_cpu, s[1].dx);
  snprintf(what, sizeof what, "%s dx", tag);
  expect_nmse(what, dx0, dx1, N * 3 * H * W, GRAD_NMSE);
  /* Parameter gradients. Those the CPU finds ~0 next to the largest (the
   * biases of convs feeding an instance norm) are noise on both sides and
   * are held to a noise floor of the network's gradient scale instead. */
  float **ga = calloc((size_t)np, sizeof *ga), **gb = calloc((size_t)np, sizeof *gb);
  int64_t *gn = calloc((size_t)np, sizeof *gn);
  double gmax = 0.0;
  ck_assert(ga && gb && gn);
  for (int32_t i = 0; i < np; i++) {
    if (negcut_net_param_is_buffer(s[0].g, i)) continue;
    int64_t shp[4] = {1, 1, 1, 1};
    const int32_t nd = negcut_net_param_shape(s[0].g, i, shp);
    int64_t n = 1;
    for (int32_t d = 0; d < nd; d++) n *= shp[d];
    ga[i] = malloc((size_t)n * sizeof *ga[i]), gb[i] = malloc((size_t)n * sizeof *gb[i]);
    ck_assert_ptr_nonnull(ga[i]);
    ck_assert_ptr_nonnull(gb[i]);
    OK(g_cu, negcut_net_grad_read(s[0].g, i, ga[i], (size_t)n));
    OK(g_cpu, negcut_net_grad_read(s[1].g, i, gb[i], (size_t)n));
    gn[i] = n;
    gmax = fmax(gmax, max_abs(gb[i], n));
  }
  for (int32_t i = 0; i < np; i++) {
    if (!gb[i]) continue;
    snprintf(what, sizeof what, "%s grad %s", tag, negcut_net_param_name(s[0].g, i));
    if (nmse(ga[i], gb[i], gn[i]) > GRAD_NMSE && max_abs(gb[i], gn[i]) <= 1e-4 * gmax)
      expect_floor(what, ga[i], gb[i], gn[i], 5e-5 * gmax, "true value ~0");
    else
      expect_nmse(what, ga[i], gb[i], gn[i], GRAD_NMSE);
    free(ga[i]), free(gb[i]);
  }
  free(ga), free(gb), free(gn);

  /* the encoder pass: features at modules 0, 4, 8 and the first ResBlock */
  const int32_t layers[4] = {0, 4, 8, no_antialias ? 10 : 12};
  negcut_tensor *f[2][4];
  negcut_record *rec[2];
  for (int k = 0; k < 2; k++) {
    OK(s[k].ctx, negcut_tape_reset(s[k].tape));
    OK(s[k].ctx, negcut_net_encode(s[k].g, s[k].tape, s[k].x, 4, layers, f[k], &rec[k]));
  }
  for (int l = 0; l < 4; l++) {
    float *a = read_all(g_cu, f[0][l]), *b = read_all(g_cpu, f[1][l]);
    snprintf(what, sizeof what, "%s feature %d", tag, (int)layers[l]);
    expect_nmse(what, a, b, negcut_tensor_numel(f[1][l]), FWD_NMSE);
    free(a), free(b);
  }

  /* A recorded pass to module 4 keeps every module's output: the first
   * convolution's (module 1) must hold its bias, not leave it to the norm
   * after it, as CUDA training does where nothing else reads the output. */
  float *m1[2];
  int64_t m1n = 0;
  for (int k = 0; k < 2; k++) {
    ngc_seq_rec r;
    ngc_tensor plain;
    OK(s[k].ctx, negcut_tape_reset(s[k].tape));
    OK(s[k].ctx, ngc_seq_forward(&s[k].g->net, &s[k].tape->tape, &s[k].x->t, 4, &r, NULL));
    const ngc_tensor *a = ngc_seq_module_act(&s[k].g->net, &r, 1);
    ck_assert_ptr_nonnull(a);
    OK(s[k].ctx, ngc_tape_tensor(&s[k].tape->tape, &plain, a->ndim, a->dim));
    OK(s[k].ctx, ngc_relayout(s[k].ctx, a, &plain));
    m1n = ngc_numel(&plain);
    m1[k] = malloc((size_t)m1n * sizeof *m1[k]);
    ck_assert_ptr_nonnull(m1[k]);
    OK(s[k].ctx, s[k].ctx->be->ops.download(s[k].ctx->be, m1[k], plain.data,
                                            (size_t)m1n * sizeof *m1[k]));
  }
  snprintf(what, sizeof what, "%s recorded to module 4: module 1", tag);
  expect_nmse(what, m1[0], m1[1], m1n, FWD_NMSE);
  free(m1[0]), free(m1[1]);

  for (int k = 0; k < 2; k++) {
    negcut_tensor_free(s[k].x);
    negcut_tensor_free(s[k].y);
    negcut_tensor_free(s[k].dy);
    negcut_tensor_free(s[k].dx);
    negcut_tape_free(s[k].tape);
    negcut_net_free(s[k].g);
  }
  free(x), free(dy), free(y0), free(y1), free(dx0), free(dx1);
}

START_TEST(test_generator) {
  gen_case(0, 16, 3, 2, 64, 48); /* batch 2, H != W */
  gen_case(1, 8, 2, 1, 36, 36);  /* strided conv down, transposed conv up */
}
END_TEST

/* ----------------------------------------------------------- translator */

/* A random default generator with ngf 16 (init gain 1: outputs across the
 * whole range, not near 0; biases in [-0.5, 0.5) instead of the init's 0s,
 * so that a misplaced bias shows), made on the CPU and saved to a new
 * temporary file whose name lands in path (a mkstemp template). */
static void save_generator(char *path) {
  negcut_generator_options go;
  negcut_net *g = NULL;
  int64_t shape[4];
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  negcut_generator_options_init(&go);
  go.ngf = 16;
  go.init_gain = 1.0f;
  OK(g_cpu, negcut_net_create_generator(&g, g_cpu, &go));
  for (int32_t i = 0; i < negcut_net_param_count(g); i++)
    if (!negcut_net_param_is_buffer(g, i) && negcut_net_param_shape(g, i, shape) == 1) {
      float *b = frand(shape[0], -0.5f, 0.5f);
      OK(g_cpu, negcut_net_param_write(g, i, b, (size_t)shape[0]));
      free(b);
    }
  OK(g_cpu, negcut_net_save(g, path));
  negcut_net_free(g);
}

static float *translate(negcut_ctx *ctx, const char *path, int bf16, const float *x, uint32_t n,
                        uint32_t h, uint32_t w) {
  negcut_model *m = NULL;
  negcut_translator *tr = NULL;
  negcut_translator_options to;
  negcut_translator_options_init(&to);
  to.bf16 = bf16;
  float *y = malloc((size_t)n * 3 * h * w * sizeof *y);
  ck_assert_ptr_nonnull(y);
  OK(ctx, negcut_model_load(&m, ctx, path));
  OK(ctx, negcut_translator_create(&tr, ctx, m, &to));
  OK(ctx, negcut_translate_f32(tr, x, n, h, w, y));
  /* the images went through page-locked host buffers on CUDA */
  const int pinned = ctx->be->kind == NEGCUT_BACKEND_CUDA;
  ck_assert_int_eq(tr->in_host.pinned, pinned);
  ck_assert_int_eq(tr->out_host.pinned, pinned);
  negcut_translator_free(tr);
  negcut_model_free(m);
  return y;
}

START_TEST(test_translator) {
  char path[] = "/tmp/ngc_cuda_gen_XXXXXX";
  const uint32_t n = 2, h = 64, w = 64;
  save_generator(path);
  float *x = frand((int64_t)n * 3 * h * w, -1, 1);
  float *ref = translate(g_cpu, path, 0, x, n, h, w);
  float *f32 = translate(g_cu, path, 0, x, n, h, w);
  float *bf = translate(g_cu, path, 1, x, n, h, w);
  unlink(path);
  const int64_t ny = (int64_t)n * 3 * h * w;
  expect_nmse("translator fp32: cuda vs cpu", f32, ref, ny, FWD_NMSE);
  const double psnr = ngc_test_psnr(bf, f32, ny);
  printf("  %-60s PSNR %.1f dB (min %.0f; %s)\n", "translator bf16 vs fp32 on cuda", psnr,
         BF16_PSNR_DB, isfinite(psnr) ? "bf16 ran" : "identical: bf16 fell back to fp32");
  ck_assert_msg(psnr >= BF16_PSNR_DB, "bf16 PSNR %.1f dB below %.0f", psnr, BF16_PSNR_DB);
  free(x), free(ref), free(f32), free(bf);
}
END_TEST

/* CUDA graphs in the translator: the first call with a size runs eagerly,
 * the second records the generator and launches the recording, later ones
 * launch it. Every output must equal an eager translator's bit for bit (the
 * same kernels on the same data), for new input content at each call, for
 * a change of size and back (one recording per size), for tiles (several
 * sizes in one call), and in bf16. TF32 is compared with exact fp32 (NMSE
 * printed: TF32 rounds each product's inputs to 10 mantissa bits). */
#define TF32_NMSE 1e-4

static void expect_same(const char *what, const float *got, const float *want, int64_t n) {
  int64_t diff = 0;
  for (int64_t i = 0; i < n; i++) diff += memcmp(&got[i], &want[i], sizeof *got) != 0;
  printf("  %-60s %lld of %lld values differ (want 0)\n", what, (long long)diff, (long long)n);
  ck_assert_msg(diff == 0, "%s: %lld values differ", what, (long long)diff);
}

static void graphs_case(negcut_model *m, const char *what, negcut_translator_options *o) {
  negcut_translator *eager = NULL, *tr = NULL;
  static const uint32_t sizes[][2] = {{64, 64}, {64, 64}, {64, 64}, {48, 80}, {48, 80},
                                      {48, 80}, {64, 64}, {64, 64}};
  const int runs = (int)(sizeof sizes / sizeof sizes[0]);
  char name[128];
  o->eager = 1;
  OK(g_cu, negcut_translator_create(&eager, g_cu, m, o));
  o->eager = 0;
  OK(g_cu, negcut_translator_create(&tr, g_cu, m, o));
  for (int r = 0; r < runs; r++) {
    const uint32_t h = sizes[r][0], w = sizes[r][1];
    const int64_t n = 3 * (int64_t)h * w;
    float *x = frand(n, -1, 1), *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    OK(g_cu, negcut_translate_f32(eager, x, 1, h, w, a));
    OK(g_cu, negcut_translate_f32(tr, x, 1, h, w, b));
    ck_assert_msg(!tr->graphs.off, "%s: graphs turned off: %s", what, tr->graphs.why);
    snprintf(name, sizeof name, "%s run %d (%ux%u): graph vs eager", what, r + 1, (unsigned)w,
             (unsigned)h);
    expect_same(name, b, a, n);
    free(x), free(a), free(b);
  }
  printf("  %-60s %llu recorded, %llu launched\n", what, (unsigned long long)tr->graphs.n_recorded,
         (unsigned long long)tr->graphs.n_replayed);
  if (!o->tile_px) { /* 64x64: eager, recorded, launched; 48x80 the same; 64x64 launched twice */
    ck_assert_uint_eq(tr->graphs.n_recorded, 2);
    ck_assert_uint_eq(tr->graphs.n_replayed, 6);
  } else {
    ck_assert_uint_ge(tr->graphs.n_replayed, 1);
  }
  ck_assert_int_eq(eager->graphs.n_recorded, 0);
  negcut_translator_free(eager);
  negcut_translator_free(tr);
}

/* One model shared by translators of three threads, each on its own CUDA
 * context (translate.h: a model may serve translators in several threads).
 * Each thread translates four images of its own: the first call runs
 * eagerly, the second records the generator, the later ones launch the
 * recording, while the other threads record, launch and at the end free
 * theirs. Meanwhile a fourth thread opens a context, translates once and,
 * as soon as thread 0 has begun recording, frees it all: cudaFree and
 * cublasDestroy, which synchronise the whole device and so would invalidate
 * a recording under way on it (the backend holds device-wide calls back
 * until no recording is under way; thread 0 goes on once the fourth thread
 * has freed its context or waits to). Every output equals the main thread's eager translator's
 * bit for bit (the same kernels and cuDNN algorithms on the same data;
 * contexts share nothing but the device), and no thread's recording failed. */
enum { SHARE_THREADS = 3, SHARE_CALLS = 4, SHARE_PX = 48 };

typedef struct share_worker {
  const negcut_model *model;
  const float *x;        /* (SHARE_CALLS, 3, SHARE_PX, SHARE_PX) */
  float *y;              /* the same shape */
  int hook;              /* thread 0: tells the fourth thread when it records */
  uint64_t recorded, launched;
  char why[300];         /* a failure, or why graphs were turned off */
} share_worker;

/* The fourth thread's cue: thread 0 is recording (go), and it has freed its
 * context (freed). */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int go, freed;
} g_share = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

/* Sets *flag. */
static void share_signal(int *flag) {
  pthread_mutex_lock(&g_share.mu);
  *flag = 1;
  pthread_cond_broadcast(&g_share.cv);
  pthread_mutex_unlock(&g_share.mu);
}

/* Threads waiting to make a device-wide call (lib/backend/cuda/cuda.h). */
int ngc_cuda_wide_waiting(void);

static negcut_status (*g_graph_begin)(ngc_backend *, int);

/* Thread 0's graph_begin: with the recording begun, lets the fourth thread
 * free its context, and goes on once it has (no lock: the recording is
 * invalidated) or once it waits to (held back until the recording ends). */
static negcut_status cueing_graph_begin(ngc_backend *be, int feeds) {
  negcut_status st = g_graph_begin(be, feeds);
  if (st) return st;
  share_signal(&g_share.go);
  for (int ms = 0; ms < 120000; ms += 5) { /* 2 minutes: a stuck fourth thread */
    pthread_mutex_lock(&g_share.mu);
    const int freed = g_share.freed;
    pthread_mutex_unlock(&g_share.mu);
    if (freed || ngc_cuda_wide_waiting() > 0) break;
    nanosleep(&(struct timespec){0, 5000000L}, NULL);
  }
  return st;
}

static void *share_run(void *arg) {
  share_worker *wk = arg;
  const int64_t img = 3 * SHARE_PX * SHARE_PX;
  negcut_ctx_options o;
  negcut_ctx *c = NULL;
  negcut_translator *tr = NULL;
  negcut_ctx_options_init(&o);
  o.backend = NEGCUT_BACKEND_CUDA;
  o.seed = SEED;
  negcut_status st = negcut_ctx_create(&c, &o);
  if (!st && wk->hook) {
    g_graph_begin = c->be->ops.graph_begin;
    c->be->ops.graph_begin = cueing_graph_begin;
  }
  if (!st) st = negcut_translator_create(&tr, c, wk->model, NULL);
  for (int k = 0; k < SHARE_CALLS && !st; k++)
    st = negcut_translate_f32(tr, wk->x + k * img, 1, SHARE_PX, SHARE_PX, wk->y + k * img);
  if (st)
    snprintf(wk->why, sizeof wk->why, "%s", negcut_ctx_last_error(c));
  else if (tr->graphs.off)
    snprintf(wk->why, sizeof wk->why, "graphs turned off: %s", tr->graphs.why);
  if (tr) wk->recorded = tr->graphs.n_recorded, wk->launched = tr->graphs.n_replayed;
  negcut_translator_free(tr);
  negcut_ctx_free(c);
  if (wk->hook) share_signal(&g_share.go); /* had it not recorded */
  return NULL;
}

/* The fourth thread: a context that has taken device memory, freed once
 * thread 0 records. */
static void *share_free_run(void *arg) {
  const negcut_model *model = arg;
  float x[3 * 16 * 16], y[3 * 16 * 16];
  negcut_ctx_options o;
  negcut_ctx *c = NULL;
  negcut_translator *tr = NULL;
  for (int i = 0; i < 3 * 16 * 16; i++) x[i] = (float)(i % 7) / 7.0f - 0.5f;
  negcut_ctx_options_init(&o);
  o.backend = NEGCUT_BACKEND_CUDA;
  negcut_status st = negcut_ctx_create(&c, &o);
  if (!st) st = negcut_translator_create(&tr, c, model, NULL);
  if (!st) st = negcut_translate_f32(tr, x, 1, 16, 16, y);
  pthread_mutex_lock(&g_share.mu);
  while (!g_share.go) pthread_cond_wait(&g_share.cv, &g_share.mu);
  pthread_mutex_unlock(&g_share.mu);
  negcut_translator_free(tr);
  negcut_ctx_free(c); /* cudaFree of every block it took */
  share_signal(&g_share.freed);
  return (void *)(intptr_t)(st != NEGCUT_OK);
}

START_TEST(test_translator_threads) {
  char path[] = "/tmp/ngc_cuda_gen_XXXXXX";
  const int64_t img = 3 * SHARE_PX * SHARE_PX, n = SHARE_CALLS * img;
  negcut_model *m = NULL;
  negcut_translator *eager = NULL;
  negcut_translator_options to;
  share_worker wk[SHARE_THREADS];
  pthread_t th[SHARE_THREADS], freer;
  void *freer_failed = NULL;
  save_generator(path);
  OK(g_cu, negcut_model_load(&m, g_cu, path));
  unlink(path);
  for (int t = 0; t < SHARE_THREADS; t++) {
    wk[t] = (share_worker){.model = m, .x = frand(n, -1, 1), .y = malloc((size_t)n * sizeof(float)),
                           .hook = t == 0};
    ck_assert_ptr_nonnull(wk[t].y);
  }
  ck_assert_int_eq(pthread_create(&freer, NULL, share_free_run, m), 0);
  for (int t = 0; t < SHARE_THREADS; t++)
    ck_assert_int_eq(pthread_create(&th[t], NULL, share_run, &wk[t]), 0);
  for (int t = 0; t < SHARE_THREADS; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
  ck_assert_int_eq(pthread_join(freer, &freer_failed), 0);
  ck_assert_msg(!freer_failed, "the fourth thread's translation failed");
  negcut_translator_options_init(&to);
  to.eager = 1;
  OK(g_cu, negcut_translator_create(&eager, g_cu, m, &to));
  float *want = malloc((size_t)img * sizeof *want);
  ck_assert_ptr_nonnull(want);
  for (int t = 0; t < SHARE_THREADS; t++) {
    ck_assert_msg(!wk[t].why[0], "thread %d: %s", t, wk[t].why);
    char name[96];
    printf("  thread %d: %llu recorded, %llu launched\n", t, (unsigned long long)wk[t].recorded,
           (unsigned long long)wk[t].launched);
    ck_assert_uint_eq(wk[t].recorded, 1);
    ck_assert_uint_eq(wk[t].launched, SHARE_CALLS - 1);
    for (int k = 0; k < SHARE_CALLS; k++) {
      OK(g_cu, negcut_translate_f32(eager, wk[t].x + k * img, 1, SHARE_PX, SHARE_PX, want));
      snprintf(name, sizeof name, "thread %d call %d vs eager on one thread", t, k + 1);
      expect_same(name, wk[t].y + k * img, want, img);
    }
    free((void *)wk[t].x), free(wk[t].y);
  }
  free(want);
  negcut_translator_free(eager);
  negcut_model_free(m);
}
END_TEST

/* Counts the calls of the CUDA slot it stands in for. */
static int g_bias_calls;
static negcut_status (*g_inorm_bias)(ngc_backend *, float, int, float, const ngc_tensor *,
                                     const ngc_tensor *, ngc_tensor *, ngc_tensor *, ngc_tensor *);
static negcut_status counting_inorm_bias(ngc_backend *be, float eps, int act, float alpha,
                                         const ngc_tensor *x, const ngc_tensor *b, ngc_tensor *y,
                                         ngc_tensor *mean, ngc_tensor *rstd) {
  g_bias_calls++;
  return g_inorm_bias(be, eps, act, alpha, x, b, y, mean, rstd);
}

/* The outputs of modules 4, 8 and 12 (two convolutions' and a block's)
 * through ngc_seq_features, the inference pass training encodes keys with,
 * one after the other in a host array of *count floats. */
static float *features(const char *path, const float *x, uint32_t n, uint32_t h, uint32_t w,
                       int64_t *count) {
  static const int32_t taps[3] = {4, 8, 12};
  negcut_model *m = NULL;
  ngc_tape tape;
  ngc_tensor xin, feats[3];
  OK(g_cu, negcut_model_load(&m, g_cu, path));
  OK(g_cu, ngc_tape_init(&tape, g_cu));
  OK(g_cu, ngc_tape_tensor(&tape, &xin, 4, (int64_t[4]){n, 3, h, w}));
  OK(g_cu, g_cu->be->ops.upload(g_cu->be, xin.data, x, (size_t)ngc_numel(&xin) * sizeof *x));
  OK(g_cu, ngc_seq_features((ngc_net *)&m->net, &tape, &xin, 3, taps, NULL, NULL, feats));
  *count = 0;
  for (int k = 0; k < 3; k++) *count += ngc_numel(&feats[k]);
  float *all = malloc((size_t)*count * sizeof *all), *at = all;
  ck_assert_ptr_nonnull(all);
  for (int k = 0; k < 3; k++) {
    OK(g_cu, g_cu->be->ops.download(g_cu->be, at, feats[k].data,
                                    (size_t)ngc_numel(&feats[k]) * sizeof *at));
    at += ngc_numel(&feats[k]);
  }
  ngc_tape_free(&tape);
  negcut_model_free(m);
  return all;
}

/* The translator's CUDA-only shortcuts (a convolution's bias added by the
 * norm after it, bf16 weights rounded once) give the bits of the plain
 * slots: the same translations, and the same tapped features, with those
 * slots taken away. The biases are random, and the shortcut must have run. */
START_TEST(test_translator_fusions) {
  char path[] = "/tmp/ngc_cuda_gen_XXXXXX";
  const uint32_t n = 2, h = 48, w = 64;
  const int64_t ny = (int64_t)n * 3 * h * w;
  save_generator(path);
  float *x = frand(ny, -1, 1);
  ngc_backend_ops *ops = &g_cu->be->ops;
  const ngc_backend_ops saved = *ops;
  g_inorm_bias = saved.inorm_bias_fwd;
  ck_assert_ptr_nonnull(g_inorm_bias);
  for (int what = 0; what < 3; what++) { /* fp32, bf16 translations; features */
    int64_t count = ny;
    ops->inorm_bias_fwd = counting_inorm_bias;
    g_bias_calls = 0;
    float *fused = what < 2 ? translate(g_cu, path, what, x, n, h, w) : features(path, x, n, h, w, &count);
    const int calls = g_bias_calls;
    ops->inorm_bias_fwd = NULL;
    ops->to_bf16 = NULL;
    float *plain = what < 2 ? translate(g_cu, path, what, x, n, h, w) : features(path, x, n, h, w, &count);
    *ops = saved;
    static const char *name[3] = {"translator fp32: fused vs plain slots",
                                  "translator bf16: fused vs plain slots",
                                  "features 4, 8, 12: fused vs plain slots"};
    printf("  %-60s %d norms took a bias\n", name[what], calls);
    ck_assert_int_gt(calls, 0);
    expect_same(name[what], fused, plain, count);
    free(fused), free(plain);
  }
  unlink(path);
  free(x);
}
END_TEST

/* How many graphs tr holds recorded. */
static int live_recordings(const negcut_translator *tr) {
  int live = 0;
  for (int i = 0; i < NGC_GRAPH_SLOTS; i++) live += tr->graphs.slot[i].graph != NULL;
  return live;
}

/* A translator under a budget that runs a small image whole (recorded and
 * launched as a graph), then a larger one in exact tiles (which first gives
 * back the tape and forgets the recordings on it), then the small one
 * again (recorded anew on the new tape): the bits of an eager translator
 * for the small image, those of a fresh translator for the large one. */
static void exact_after_graphs(negcut_model *m, const negcut_translator *sizer, const float *big,
                               uint32_t h, uint32_t w) {
  const uint32_t s = h / 2;
  const int64_t ns = 3 * (int64_t)s * s, nb = 3 * (int64_t)h * w;
  negcut_translator *tr = NULL, *fresh = NULL, *eager = NULL;
  negcut_translator_options o;
  float *xs = frand(ns, -1, 1), *want = malloc((size_t)ns * sizeof *want),
        *got = malloc((size_t)ns * sizeof *got), *a = malloc((size_t)nb * sizeof *a),
        *b = malloc((size_t)nb * sizeof *b);
  ck_assert(want && got && a && b);
  negcut_translator_options_init_v2(&o, NEGCUT_TRANSLATOR_OPTIONS_VERSION);
  o.exact_tiles = 1;
  o.overlap_px = 16;
  o.max_memory_bytes = ngc_run_bytes(sizer, 1, h, w, 0) - 1; /* the large image takes tiles */
  ck_assert_uint_le(ngc_run_bytes(sizer, 1, s, s, 0), o.max_memory_bytes);
  OK(g_cu, negcut_translator_create(&tr, g_cu, m, &o));
  OK(g_cu, negcut_translator_create(&fresh, g_cu, m, &o));
  o.eager = 1;
  OK(g_cu, negcut_translator_create(&eager, g_cu, m, &o));
  OK(g_cu, negcut_translate_f32(eager, xs, 1, s, s, want));
  for (int r = 0; r < 3; r++) { /* unrecorded, recorded and launched, launched */
    OK(g_cu, negcut_translate_f32(tr, xs, 1, s, s, got));
    expect_same("exact-tiles translator, small image whole: graph vs eager", got, want, ns);
  }
  ck_assert_msg(!tr->graphs.off, "graphs turned off: %s", tr->graphs.why);
  ck_assert_uint_eq(tr->graphs.n_recorded, 1);
  ck_assert_uint_eq(tr->graphs.n_replayed, 2);
  ck_assert_int_eq(live_recordings(tr), 1);
  OK(g_cu, negcut_translate_f32(tr, big, 1, h, w, a));
  ck_assert_int_gt(tr->exact_tile, 0);
  /* a recording kept would launch on memory given back, were the new
   * tape's memory to take the old addresses (the key it is found by) */
  ck_assert_int_eq(live_recordings(tr), 0);
  OK(g_cu, negcut_translate_f32(fresh, big, 1, h, w, b));
  printf("  exact tiles of %lld px after graphs, under %llu bytes\n", (long long)tr->exact_tile,
         (unsigned long long)o.max_memory_bytes);
  expect_same("exact tiles after whole runs vs a fresh translator", a, b, nb);
  ck_assert_uint_eq(ngc_translator_held_bytes(tr), ngc_translator_held_bytes(fresh));
  for (int r = 0; r < 3; r++) {
    OK(g_cu, negcut_translate_f32(tr, xs, 1, s, s, got));
    expect_same("the small image again after exact tiles: graph vs eager", got, want, ns);
  }
  ck_assert_msg(!tr->graphs.off, "graphs turned off: %s", tr->graphs.why);
  ck_assert_uint_eq(tr->graphs.n_recorded, 2); /* the first recording was forgotten */
  ck_assert_uint_eq(tr->graphs.n_replayed, 4);
  ck_assert_int_eq(live_recordings(tr), 1);
  negcut_translator_free(tr);
  negcut_translator_free(fresh);
  negcut_translator_free(eager);
  free(xs), free(want), free(got), free(a), free(b);
}

START_TEST(test_translator_graphs) {
  negcut_model *m = NULL;
  negcut_translator_options o;
  char path[] = "/tmp/ngc_cuda_graph_XXXXXX";
  save_generator(path);
  OK(g_cu, negcut_model_load(&m, g_cu, path));
  unlink(path);

  negcut_translator_options_init(&o);
  graphs_case(m, "fp32", &o);
  negcut_translator_options_init(&o);
  o.bf16 = 1;
  graphs_case(m, "bf16", &o);
  negcut_translator_options_init(&o);
  o.tile_px = 32;
  o.overlap_px = 8;
  graphs_case(m, "fp32 tiles 32 + 8", &o);

  /* TF32 against exact fp32 */
  negcut_translator *t32 = NULL, *ttf = NULL;
  const uint32_t h = 64, w = 64;
  const int64_t n = 3 * (int64_t)h * w;
  float *x = frand(n, -1, 1), *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
  negcut_translator_options_init(&o);
  OK(g_cu, negcut_translator_create(&t32, g_cu, m, &o));
  o.tf32 = 1;
  OK(g_cu, negcut_translator_create(&ttf, g_cu, m, &o));
  OK(g_cu, negcut_translate_f32(t32, x, 1, h, w, a));
  OK(g_cu, negcut_translate_f32(ttf, x, 1, h, w, b));
  printf("  %-60s %s\n", "translator tf32 vs fp32",
         memcmp(a, b, (size_t)n * sizeof *a) ? "(tf32 ran)" : "(identical: no TF32 algorithm chosen)");
  expect_nmse("translator tf32 vs fp32 on cuda", b, a, n, TF32_NMSE);
  negcut_translator_free(ttf);
  /* exact tiles (the norms' statistics gathered tile by tile: downloads,
   * diagonal 1x1 convolutions) against the whole image; an overlap that
   * covers it makes them the same up to rounding */
  negcut_translator_options_init_v2(&o, NEGCUT_TRANSLATOR_OPTIONS_VERSION);
  o.tile_px = 32;
  o.overlap_px = 64;
  o.exact_tiles = 1;
  OK(g_cu, negcut_translator_create(&ttf, g_cu, m, &o));
  OK(g_cu, negcut_translate_f32(ttf, x, 1, h, w, b));
  expect_nmse("translator exact tiles 32 + 64 vs whole on cuda", b, a, n, 1e-9);
  negcut_translator_free(ttf);
  exact_after_graphs(m, t32, x, h, w);
  negcut_translator_free(t32);
  negcut_model_free(m);
  free(x), free(a), free(b);
}
END_TEST

/* ----------------------------------------------------------- training */

/* Two trainers' runs compared: their names in messages, and the
 * tolerances: losses relative, Adam moments NMSE, parameters NMSE or, when
 * param_lr > 0, at most param_lr * lr apart per Adam step (a first step
 * moves each parameter by about lr times its gradient's sign, so a flipped
 * sign of a near-zero gradient is 2 lr, and NMSE says nothing). */
typedef struct train_cmp {
  const char *side[2];
  double loss_rel, param_nmse, param_lr, moment_nmse;
} train_cmp;

static const train_cmp k_cuda_vs_cpu = {{"cuda", "cpu"}, LOSS_REL, GRAD_NMSE, 0, MOMENT_NMSE};
/* NEGCUT: parameters bounded per Adam step (test_train_negcut says why) */
static const train_cmp k_negcut_cuda_vs_cpu = {{"cuda", "cpu"}, LOSS_REL, 0, 2.2, MOMENT_NMSE};
static const train_cmp k_tf32_vs_fp32 = {{"tf32", "fp32"}, TF32_LOSS_REL, 0, 2.2,
                                         TF32_MOMENT_NMSE};

static void expect_loss(const char *what, float a, float b, const train_cmp *c) {
  const double tol = c->loss_rel * fmax(fabs(a), fabs(b)) + 1e-6;
  printf("  %-60s %s %-12.8g %s %-12.8g\n", what, c->side[0], a, c->side[1], b);
  ck_assert_msg(fabs((double)a - b) <= tol, "%s: %s %g, %s %g", what, c->side[0], a, c->side[1],
                b);
}

static double entry_max_abs(const ngc_st_entry *e) {
  double m = 0.0;
  for (size_t j = 0; j < e->nbytes / sizeof(float); j++) {
    float v;
    memcpy(&v, (const char *)e->data + j * sizeof v, sizeof v); /* not aligned */
    m = fmax(m, fabs((double)v));
  }
  return m;
}

/* Set by zero_grad_kind: max |m| and max |v| over the net's moments. */
static double g_moment_scale[2];

/* Whether state entry `entry` (a parameter "<net>.<p>" or a moment
 * "adam.<net>.<m|v>.<p>") belongs to a bias whose gradient is ~0 on the
 * CPU (cpu: its state file): max |m of p| <= 1e-4 max |m| of the net.
 * Such a gradient (the bias of a conv feeding an instance norm: exactly 0
 * in exact arithmetic) is float32 cancellation noise on both sides, and
 * Adam turns noise into steps of up to lr of either sign, so the parameter
 * and its moments are compared against floors, not by NMSE. Returns -1 for
 * other entries, else 0 (parameter), 1 (m) or 2 (v). */
static int zero_grad_kind(const ngc_st_file *cpu, const char *entry) {
  char net[16], mname[256], prefix[32];
  const char *p;
  int kind;
  if (!strncmp(entry, "adam.", 5)) {
    const char *t = entry + 5, *dot = strchr(t, '.');
    if (!dot || (size_t)(dot - t) >= sizeof net || (dot[1] != 'm' && dot[1] != 'v') || dot[2] != '.')
      return -1;
    memcpy(net, t, (size_t)(dot - t));
    net[dot - t] = '\0';
    kind = dot[1] == 'm' ? 1 : 2;
    p = dot + 3;
  } else {
    const char *dot = strchr(entry, '.');
    if (!dot || (size_t)(dot - entry) >= sizeof net) return -1;
    memcpy(net, entry, (size_t)(dot - entry));
    net[dot - entry] = '\0';
    kind = 0;
    p = dot + 1;
  }
  const size_t pl = strlen(p);
  if (pl < 5 || strcmp(p + pl - 5, ".bias")) return -1; /* only biases are exactly 0 */
  snprintf(mname, sizeof mname, "adam.%s.m.%s", net, p);
  const ngc_st_entry *me = ngc_st_find(cpu, mname);
  if (!me || me->dtype != NGC_ST_F32) return -1; /* a buffer, or a net without Adam */
  g_moment_scale[0] = g_moment_scale[1] = 0.0;
  for (int k = 0; k < 2; k++) {
    snprintf(prefix, sizeof prefix, "adam.%s.%c.", net, k ? 'v' : 'm');
    for (int64_t i = 0; i < ngc_st_count(cpu); i++) {
      const ngc_st_entry *e = ngc_st_entry_at(cpu, i);
      if (e->dtype == NGC_ST_F32 && !strncmp(e->name, prefix, strlen(prefix)))
        g_moment_scale[k] = fmax(g_moment_scale[k], entry_max_abs(e));
    }
  }
  return entry_max_abs(me) <= 1e-4 * g_moment_scale[0] ? kind : -1;
}

/* Iterations of trainer 0 (on ctx[0], with tf32[0]) against trainer 1,
 * same seed and batches: every loss, then every parameter and moment. */
static void train_case(negcut_train_mode mode, const char *name, int iterations,
                       negcut_ctx *const ctx[2], const int tf32[2], const train_cmp *cmp) {
  negcut_trainer_options o;
  negcut_trainer *t[2] = {NULL, NULL};
  const uint32_t side_px = 32;
  const int64_t n = 3 * side_px * side_px;
  char what[160];
  ngc_test_tiny_trainer(&o, mode, 32);
  /* The same images whichever tests ran before (CK_RUN_CASE=train too). */
  const char *seed = getenv("NGC_TEST_TRAIN_SEED"); /* to try other images */
  g_rng = (seed && strtoull(seed, NULL, 0) ? strtoull(seed, NULL, 0) : 0x2545F4914F6CDD1Dull) ^
          (uint64_t)mode;
  float *a = frand(n, -1, 1), *b = frand(n, -1, 1);
  for (int k = 0; k < 2; k++) {
    o.tf32 = tf32[k];
    OK(ctx[k], negcut_trainer_create(&t[k], ctx[k], &o));
    /* AUTO: Winograd in every pass on the CPU; on CUDA cuDNN's transform
     * algorithms stay last in the forward passes (lib/train/trainer.c) */
    const int gpu = ctx[k]->be->kind == NEGCUT_BACKEND_CUDA;
    ck_assert_uint_eq(t[k]->t.tape.winograd,
                      gpu ? NGC_WINOGRAD_BWD : NGC_WINOGRAD_FWD | NGC_WINOGRAD_BWD);
  }
  int differ = 0;
  for (int it = 1; it <= iterations; it++) {
    negcut_train_progress p[2];
    for (int k = 0; k < 2; k++) {
      OK(ctx[k], negcut_trainer_step_batch(t[k], a, b, side_px, side_px));
      OK(ctx[k], negcut_trainer_progress(t[k], &p[k]));
    }
    static const char *names[] = {"d_real", "d_fake", "g_gan", "nce_x",
                                  "nce_y", "g_total", "n_total", "diversity"};
    float v[2][8];
    for (int k = 0; k < 2; k++) {
      const float l[8] = {p[k].d_real, p[k].d_fake, p[k].g_gan,   p[k].nce_x,
                          p[k].nce_y,  p[k].g_total, p[k].n_total, p[k].diversity};
      memcpy(v[k], l, sizeof l);
    }
    for (int i = 0; i < 8; i++) {
      snprintf(what, sizeof what, "%s iteration %d: %s", name, it, names[i]);
      expect_loss(what, v[0][i], v[1][i], cmp);
      differ += memcmp(&v[0][i], &v[1][i], sizeof v[0][i]) != 0;
    }
  }

  /* every parameter and moment, through the state files */
  char dir[64], path[2][96];
  ngc_test_mkdtemp(dir, sizeof dir, "ngc_cuda_nets");
  ngc_st_file *f[2];
  for (int k = 0; k < 2; k++) {
    snprintf(path[k], sizeof path[k], "%s/state%d.safetensors", dir, k);
    OK(ctx[k], negcut_trainer_save_state(t[k], path[k]));
    OK(g_cpu, ngc_st_open(g_cpu, path[k], &f[k]));
  }
  ck_assert_int_eq(ngc_st_count(f[0]), ngc_st_count(f[1]));
  double worst_param = 0.0, worst_moment = 0.0;
  for (int64_t i = 0; i < ngc_st_count(f[0]); i++) {
    const ngc_st_entry *ea = ngc_st_entry_at(f[0], i), *eb = ngc_st_find(f[1], ea->name);
    ck_assert_ptr_nonnull(eb);
    ck_assert_int_eq(ea->nbytes, eb->nbytes);
    if (ea->dtype != NGC_ST_F32) continue;
    const int64_t cnt = (int64_t)(ea->nbytes / sizeof(float));
    float *va = malloc(ea->nbytes ? ea->nbytes : 1), *vb = malloc(eb->nbytes ? eb->nbytes : 1);
    ck_assert_ptr_nonnull(va);
    ck_assert_ptr_nonnull(vb);
    memcpy(va, ea->data, ea->nbytes); /* entries are not aligned */
    memcpy(vb, eb->data, eb->nbytes);
    const int moment = !strncmp(ea->name, "adam.", 5);
    snprintf(what, sizeof what, "%s state %s", name, ea->name);
    const double e = nmse(va, vb, cnt), thr = moment ? cmp->moment_nmse : cmp->param_nmse;
    const int zk = e <= thr ? -1 : zero_grad_kind(f[1], ea->name);
    if (!moment && cmp->param_lr > 0) {
      expect_floor(what, va, vb, cnt, cmp->param_lr * iterations * o.lr, "Adam steps");
    } else if (zk >= 0) { /* noise on both sides: a floor, not NMSE (see zero_grad_kind) */
      const double floor = zk == 0   ? iterations * 2.5 * o.lr /* Adam steps of ~lr (<= 1.06 lr) */
                           : zk == 1 ? 1e-4 * g_moment_scale[0]
                                     : 1e-8 * g_moment_scale[1];
      expect_floor(what, va, vb, cnt, floor, "true value ~0");
    } else {
      if (moment && e > worst_moment) worst_moment = e;
      if (!moment && e > worst_param) worst_param = e;
      if (!(e <= thr)) expect_nmse(what, va, vb, cnt, thr);
    }
    free(va), free(vb);
  }
  if (cmp->param_lr > 0)
    printf("  %-60s worst nmse: moments %.3g (max %.0g)\n", name, worst_moment, cmp->moment_nmse);
  else
    printf("  %-60s worst nmse: parameters %.3g (max %.0g), moments %.3g (max %.0g)\n", name,
           worst_param, cmp->param_nmse, worst_moment, cmp->moment_nmse);
  if (tf32[0] != tf32[1]) { /* TF32 changed something, or it did not run (ngc_test.h) */
    printf("  %-60s %s\n", name, differ ? "(tf32 ran)" : "(identical: no TF32 algorithm chosen)");
    ck_assert_msg(differ || !NGC_TEST_TF32_ALWAYS,
                  "%s: TF32 training gave the fp32 losses bit for bit", name);
  }
  /* the same random draws were used: the counters agree */
  for (int64_t i = 0; i < ngc_st_metadata_count(f[0]); i++) {
    const char *k = NULL, *v = NULL;
    OK(g_cpu, ngc_st_metadata_at(f[0], i, &k, &v));
    const char *w = ngc_st_metadata(f[1], k);
    ck_assert_msg(w && !strcmp(v, w), "%s: state metadata %s: %s %s, %s %s", name, k,
                  cmp->side[0], v, cmp->side[1], w ? w : "(none)");
  }
  for (int k = 0; k < 2; k++) {
    ngc_st_close(f[k]);
    negcut_trainer_free(t[k]);
  }
  ngc_test_rmtree(dir);
  free(a), free(b);
}

/* Every state entry (parameters, moments) and metadata value (counters,
 * random streams) of t[0] and t[1], bit for bit. */
static void expect_same_states(const char *name, negcut_trainer *const t[2], const char *side0,
                               const char *side1) {
  char dir[64], path[2][96];
  ngc_test_mkdtemp(dir, sizeof dir, "ngc_cuda_same_states");
  ngc_st_file *f[2];
  for (int k = 0; k < 2; k++) {
    snprintf(path[k], sizeof path[k], "%s/state%d.safetensors", dir, k);
    OK(g_cu, negcut_trainer_save_state(t[k], path[k]));
    OK(g_cpu, ngc_st_open(g_cpu, path[k], &f[k]));
  }
  ck_assert_int_eq(ngc_st_count(f[0]), ngc_st_count(f[1]));
  int64_t differ = 0;
  for (int64_t i = 0; i < ngc_st_count(f[0]); i++) {
    const ngc_st_entry *ea = ngc_st_entry_at(f[0], i), *eb = ngc_st_find(f[1], ea->name);
    ck_assert_ptr_nonnull(eb);
    ck_assert_int_eq(ea->nbytes, eb->nbytes);
    if (memcmp(ea->data, eb->data, ea->nbytes)) {
      printf("  %s state %s differs\n", name, ea->name);
      differ++;
    }
  }
  for (int64_t i = 0; i < ngc_st_metadata_count(f[0]); i++) {
    const char *k = NULL, *v = NULL;
    OK(g_cpu, ngc_st_metadata_at(f[0], i, &k, &v));
    const char *w = ngc_st_metadata(f[1], k);
    ck_assert_msg(w && !strcmp(v, w), "%s: state metadata %s: %s %s, %s %s", name, k, side0, v,
                  side1, w ? w : "(none)");
  }
  printf("  %-60s %lld of %lld state entries differ (want 0)\n", name, (long long)differ,
         (long long)ngc_st_count(f[0]));
  ck_assert_int_eq(differ, 0);
  for (int k = 0; k < 2; k++) ngc_st_close(f[k]);
  ngc_test_rmtree(dir);
}

/* The steady state of training (docs/CUDA.md, "Design"): after its first
 * steps (with graphs, up to the step that recorded and launched: the next
 * is the first replay, whose scratch is the graph's own) a trainer takes no
 * memory from the driver, and each step makes the host wait for the device
 * want_waits times. */
static void steady_case(negcut_train_mode mode, const char *name, int eager, uint64_t want_waits) {
  enum { WARM = 3, STEADY = 4 };
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  negcut_train_progress p;
  const uint32_t px = 32;
  ngc_backend *be = g_cu->be;
  ngc_test_tiny_trainer(&o, mode, 32);
  o.eager = eager;
  OK(g_cu, negcut_trainer_create(&t, g_cu, &o));
  float *a = frand(3 * px * px, -1, 1), *b = frand(3 * px * px, -1, 1);
  int warm = 0;
  while (warm < WARM || (!eager && t->t.graphs.n_replayed < 1 && warm < 2 * WARM)) {
    OK(g_cu, negcut_trainer_step_batch(t, a, b, px, px));
    OK(g_cu, negcut_trainer_progress(t, &p));
    warm++;
  }
  ck_assert_uint_eq(t->t.graphs.n_replayed, eager ? 0 : 1);
  const uint64_t allocs = be->n_driver_allocs, waits = be->n_host_waits,
                 launched = t->t.graphs.n_replayed;
  for (int it = 0; it < STEADY; it++) {
    OK(g_cu, negcut_trainer_step_batch(t, a, b, px, px));
    OK(g_cu, negcut_trainer_progress(t, &p));
  }
  printf("  %-60s after %d steps: %llu driver allocations, %.2f host waits per step, %llu launched\n",
         name, warm, (unsigned long long)(be->n_driver_allocs - allocs),
         (double)(be->n_host_waits - waits) / STEADY,
         (unsigned long long)(t->t.graphs.n_replayed - launched));
  ck_assert_uint_eq(be->n_driver_allocs - allocs, 0);
  ck_assert_uint_eq(be->n_host_waits - waits, STEADY * want_waits);
  ck_assert_uint_eq(t->t.graphs.n_replayed - launched, (eager ? 0 : STEADY));
  negcut_trainer_free(t);
  free(a), free(b);
}

/* CUDA graphs of the training step: a trainer that records and replays
 * against one that never does (eager), same seed, same batches: every
 * iteration's losses and, at the end, every parameter, moment and counter
 * must be bit-identical (the same kernels on the same data). The learning
 * rate changes half-way (a new epoch in the decay: Adam's scalars are fed
 * to the replays), two image sizes alternate, FastCUT's random flips give
 * one recording per flip state. fault_at > 0 (one size only) refuses the
 * first replay from that iteration on (as if its calls had differed): that
 * step must then run unrecorded from the same host state, with the same
 * results, and the trainer stays unrecorded. tf32: both train with TF32. */
static void graph_train_case(negcut_train_mode mode, const char *name, int iterations,
                             int fault_at, int tf32) {
  negcut_trainer_options o;
  negcut_trainer *t[2] = {NULL, NULL}; /* 0: graphs, 1: eager */
  const uint32_t side_px = 32;
  char what[160];
  ngc_test_tiny_trainer(&o, mode, 32);
  o.tf32 = tf32;
  for (int k = 0; k < 2; k++) {
    o.eager = k;
    OK(g_cu, negcut_trainer_create(&t[k], g_cu, &o));
  }
  for (int it = 1; it <= iterations; it++) {
    const int other = !fault_at && it > iterations / 2 && it <= iterations / 2 + 3;
    const uint32_t px = other ? side_px + 8 : side_px;
    float *a = frand(3 * px * px, -1, 1), *b = frand(3 * px * px, -1, 1);
    negcut_train_progress p[2];
    if (it == iterations / 2)
      for (int k = 0; k < 2; k++) OK(g_cu, negcut_trainer_set_epoch(t[k], o.n_epochs + 3));
    if (it == fault_at) t[0]->t.graphs.fault = 1;
    for (int k = 0; k < 2; k++) {
      OK(g_cu, negcut_trainer_step_batch(t[k], a, b, px, px));
      OK(g_cu, negcut_trainer_progress(t[k], &p[k]));
    }
    if (!fault_at)
      ck_assert_msg(!t[0]->t.graphs.off, "%s: graphs turned off: %s", name, t[0]->t.graphs.why);
    const float l[2][5] = {{p[0].d_real, p[0].d_fake, p[0].g_total, p[0].n_total, p[0].diversity},
                           {p[1].d_real, p[1].d_fake, p[1].g_total, p[1].n_total, p[1].diversity}};
    snprintf(what, sizeof what, "%s iteration %d losses: graphs vs eager", name, it);
    expect_same(what, l[0], l[1], 5);
    free(a), free(b);
  }
  printf("  %-60s %llu recorded, %llu launched\n", name,
         (unsigned long long)t[0]->t.graphs.n_recorded, (unsigned long long)t[0]->t.graphs.n_replayed);
  ck_assert_uint_ge(t[0]->t.graphs.n_recorded, 1);
  if (fault_at) {
    printf("  %-60s graphs off: %s\n", name, t[0]->t.graphs.why);
    ck_assert_msg(t[0]->t.graphs.off && strstr(t[0]->t.graphs.why, "fault"),
                  "%s: no replay was refused (%s)", name, t[0]->t.graphs.why);
  } else {
    ck_assert_uint_ge(t[0]->t.graphs.n_replayed, 2);
  }
  ck_assert_uint_eq(t[1]->t.graphs.n_recorded, 0);
  expect_same_states(name, t, "graphs", "eager");
  for (int k = 0; k < 2; k++) negcut_trainer_free(t[k]);
}

/* Training as the CUDA backend does it, with its own slots where they fit
 * (inorm_bias_fwd: a convolution leaves its bias to the norm after it) and
 * every activation kept (keep_activations), and with that slot but the
 * cheap activations recomputed in backward (whose recomputed norms then
 * add the bias), each against the plain slots recomputing (as the CPU
 * does): same seed and batches, all eager, the same bits, every loss and
 * state entry. */
static void train_fusion_case(negcut_train_mode mode, const char *name, int iterations) {
  enum { WAYS = 3 };
  static const char *way[WAYS] = {"cuda's way", "bias to norm, recomputing", "plain"};
  static const int slot[WAYS] = {1, 1, 0}, keep[WAYS] = {1, 0, 0};
  negcut_trainer_options o;
  negcut_trainer *t[WAYS] = {NULL, NULL, NULL};
  const uint32_t px = 32;
  char what[160];
  int calls[WAYS] = {0, 0, 0};
  ngc_backend_ops *ops = &g_cu->be->ops;
  const ngc_backend_ops saved = *ops;
  g_inorm_bias = saved.inorm_bias_fwd;
  ck_assert_ptr_nonnull(g_inorm_bias);
  ck_assert_int_eq(g_cu->be->keep_activations, 1);
  ngc_test_tiny_trainer(&o, mode, 32);
  o.eager = 1;
  for (int k = 0; k < WAYS; k++) OK(g_cu, negcut_trainer_create(&t[k], g_cu, &o));
  for (int it = 1; it <= iterations; it++) {
    float *a = frand(3 * px * px, -1, 1), *b = frand(3 * px * px, -1, 1);
    float l[WAYS][5];
    for (int k = 0; k < WAYS; k++) {
      negcut_train_progress p;
      ops->inorm_bias_fwd = slot[k] ? counting_inorm_bias : NULL;
      g_cu->be->keep_activations = keep[k];
      g_bias_calls = 0;
      const negcut_status st = negcut_trainer_step_batch(t[k], a, b, px, px);
      calls[k] += g_bias_calls;
      *ops = saved;
      g_cu->be->keep_activations = 1;
      OK(g_cu, st);
      OK(g_cu, negcut_trainer_progress(t[k], &p));
      const float v[5] = {p.d_real, p.d_fake, p.g_total, p.n_total, p.diversity};
      memcpy(l[k], v, sizeof v);
    }
    for (int k = 0; k < WAYS - 1; k++) {
      snprintf(what, sizeof what, "%s iteration %d losses: %s vs plain", name, it, way[k]);
      expect_same(what, l[k], l[WAYS - 1], 5);
    }
    free(a), free(b);
  }
  for (int k = 0; k < WAYS - 1; k++) {
    snprintf(what, sizeof what, "%s: %s vs plain", name, way[k]);
    printf("  %-60s %d norms took a bias\n", what, calls[k]);
    ck_assert_int_gt(calls[k], 0);
    expect_same_states(what, (negcut_trainer *[2]){t[k], t[WAYS - 1]}, way[k], "plain");
  }
  /* recomputing, the norms took the bias again in backward */
  ck_assert_int_gt(calls[1], calls[0]);
  for (int k = 0; k < WAYS; k++) negcut_trainer_free(t[k]);
}

START_TEST(test_train_fusions) {
  train_fusion_case(NEGCUT_MODE_CUT, "CUT", 3);
  train_fusion_case(NEGCUT_MODE_NEGCUT, "NEGCUT", 2);
}
END_TEST

START_TEST(test_train_graphs) {
  graph_train_case(NEGCUT_MODE_CUT, "CUT graphs", 12, 0, 0);
  graph_train_case(NEGCUT_MODE_NEGCUT, "NEGCUT graphs", 12, 0, 0);
  graph_train_case(NEGCUT_MODE_FASTCUT, "FastCUT graphs", 16, 0, 0);
  graph_train_case(NEGCUT_MODE_CUT, "CUT graphs, one replay refused", 8, 4, 0);
  graph_train_case(NEGCUT_MODE_CUT, "CUT graphs, tf32", 8, 0, 1);
}
END_TEST

START_TEST(test_train_steady) {
  /* one wait: the losses' download at the end of the step */
  steady_case(NEGCUT_MODE_CUT, "CUT steady state, graphs", 0, 1);
  steady_case(NEGCUT_MODE_NEGCUT, "NEGCUT steady state, graphs", 0, 1);
  steady_case(NEGCUT_MODE_CUT, "CUT steady state, eager", 1, 1);
  /* unrecorded, NEGCUT sends about 130 small uploads a step (patch ids for
   * each gather and scatter, the negatives' noise): all staged, none waits */
  steady_case(NEGCUT_MODE_NEGCUT, "NEGCUT steady state, eager", 1, 1);
}
END_TEST

static const int k_fp32[2] = {0, 0};

START_TEST(test_train_cut) {
  negcut_ctx *const ctx[2] = {g_cu, g_cpu};
  train_case(NEGCUT_MODE_CUT, "CUT", 2, ctx, k_fp32, &k_cuda_vs_cpu);
}
END_TEST

START_TEST(test_train_negcut) {
  negcut_ctx *const ctx[2] = {g_cu, g_cpu};
  /* One iteration, and parameters held within 2.2 lr of each other rather
   * than to an NMSE: NEGCUT's two sides drift apart. A first Adam step
   * moves each parameter by about lr times its gradient's sign, so a
   * near-zero gradient whose sign the summation orders decide puts a
   * parameter of N 2 lr apart; N's negatives then differ, PatchNCE's 1/0.07
   * logits amplify that, G's gradients follow, and the adversarial loop
   * feeds it back. For one draw of the images the emulator gave 3.9e-5
   * relative on iteration 1's G losses (after N's step) and an NMSE of
   * 1.8e-5 on one of G's weights after it; a second iteration gave 3.3e-3
   * on the losses. */
  train_case(NEGCUT_MODE_NEGCUT, "NEGCUT", 1, ctx, k_fp32, &k_negcut_cuda_vs_cpu);
}
END_TEST

/* Training with TF32 convolutions (negcut_trainer_options.tf32) against
 * exact fp32, both on the GPU: close, and not the same. */
START_TEST(test_train_tf32) {
  negcut_ctx *const both[2] = {g_cu, g_cu};
  static const int tf32[2] = {1, 0};
  train_case(NEGCUT_MODE_CUT, "CUT tf32 vs fp32", 1, both, tf32, &k_tf32_vs_fp32);
  train_case(NEGCUT_MODE_NEGCUT, "NEGCUT tf32 vs fp32", 1, both, tf32, &k_tf32_vs_fp32);
}
END_TEST

int main(void) {
  negcut_ctx_options o;
  negcut_ctx_options_init(&o);
  o.seed = SEED;
  const int opened = ngc_test_open_cuda(&g_cu, &o, "check_cuda_nets");
  if (opened) return opened;
  o.backend = NEGCUT_BACKEND_CPU;
  o.threads = 0; /* all cores: the GPU machines have many */
  if (negcut_ctx_create(&g_cpu, &o) != NEGCUT_OK) {
    fprintf(stderr, "check_cuda_nets: %s\n", negcut_ctx_last_error(NULL));
    return EXIT_FAILURE;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  Suite *s = suite_create("cuda_nets");
  /* CK_RUN_CASE=nets|train|tf32|graphs runs one group */
  static const char *cases[] = {"nets", "train", "tf32", "graphs"};
  TCase *tc[4];
  for (int i = 0; i < 4; i++) {
    tc[i] = tcase_create(cases[i]);
    tcase_set_timeout(tc[i], 600); /* not enforced without fork; CTest's TIMEOUT is */
    suite_add_tcase(s, tc[i]);
  }
  tcase_add_test(tc[0], test_generator);
  tcase_add_test(tc[0], test_translator);
  tcase_add_test(tc[0], test_translator_fusions);
  tcase_add_test(tc[0], test_translator_threads);
  tcase_add_test(tc[3], test_translator_graphs);
  tcase_add_test(tc[1], test_train_cut);
  tcase_add_test(tc[1], test_train_negcut);
  tcase_add_test(tc[1], test_train_fusions);
  tcase_add_test(tc[1], test_train_steady);
  tcase_add_test(tc[2], test_train_tf32);
  tcase_add_test(tc[3], test_train_graphs);
  int rc = ngc_test_run_nofork(s);
  negcut_ctx_free(g_cpu);
  negcut_ctx_free(g_cu);
  return rc;
}
