/* The bookkeeping around CUDA graphs, on the CPU: which runs the translator
 * and the trainer record, replay or run unrecorded, the recordings' cache
 * (lib/models/graph_cache.c), and the fallbacks. A CPU context is given fake
 * graph slots: "recording" and "replaying" let every op run as usual (the
 * CPU cannot defer work), a "launch" does nothing. So a replayed training
 * step still computes on the host pass and must give bit for bit what an
 * eager trainer gives; anything the graph paths did to the host state (the
 * random streams, Adam's step counters, an extra run) would show. The real
 * slots are checked on a GPU by check_cuda_nets, which also covers what
 * this fake cannot: a refused replay's rewind and unrecorded rerun (here
 * the refused replay would already have run the step once on the host). */
#define NEGCUT_EXPERIMENTAL /* train/trainer.h */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <negcut.h>

#include "core/core.h"
#include "infer/infer.h"
#include "models/net.h"
#include "ngc_test.h"
#include "train/trainer.h"

/* ------------------------------------------------------- fake graph slots */

static struct {
  int begun, ended, launched, freed, replays, live;
  int refuse_end; /* graph_end(keep 1) fails */
} g_fake;

static negcut_status fake_begin(ngc_backend *be, int feeds) {
  (void)be;
  (void)feeds;
  g_fake.begun++;
  return NEGCUT_OK;
}

static negcut_status fake_end(ngc_backend *be, int keep, void **graph) {
  g_fake.ended++;
  *graph = NULL;
  if (!keep) return NEGCUT_OK;
  if (g_fake.refuse_end) return ngc_error(be->ctx, NEGCUT_ERR_UNSUPPORTED, "fake graph: refused");
  *graph = malloc(1);
  g_fake.live++;
  return *graph ? NEGCUT_OK : NEGCUT_ERR_OUT_OF_MEMORY;
}

static negcut_status fake_launch(ngc_backend *be, void *graph) {
  (void)be;
  ck_assert_ptr_nonnull(graph);
  g_fake.launched++;
  return NEGCUT_OK;
}

static void fake_free(ngc_backend *be, void *graph) {
  (void)be;
  if (!graph) return;
  g_fake.freed++;
  g_fake.live--;
  free(graph);
}

static negcut_status fake_replay_begin(ngc_backend *be, void *graph) {
  (void)be;
  ck_assert_ptr_nonnull(graph);
  g_fake.replays++;
  return NEGCUT_OK;
}

static negcut_status fake_replay_end(ngc_backend *be, int ok) {
  (void)be;
  (void)ok;
  return NEGCUT_OK;
}

static negcut_ctx *fake_ctx(void) {
  negcut_ctx_options o;
  negcut_ctx *c = NULL;
  negcut_ctx_options_init(&o);
  o.backend = NEGCUT_BACKEND_CPU;
  o.threads = 1;
  o.seed = 11;
  ck_assert_int_eq(negcut_ctx_create(&c, &o), NEGCUT_OK);
  ngc_backend_ops *ops = &c->be->ops;
  ops->graph_begin = fake_begin;
  ops->graph_end = fake_end;
  ops->graph_launch = fake_launch;
  ops->graph_free = fake_free;
  ops->graph_replay_begin = fake_replay_begin;
  ops->graph_replay_end = fake_replay_end;
  memset(&g_fake, 0, sizeof g_fake);
  return c;
}

/* ----------------------------------------------------------- translator */

static negcut_model *load_model(negcut_ctx *ctx, char *path, size_t cap) {
  negcut_generator_options go;
  negcut_net *g = NULL;
  negcut_model *m = NULL;
  ngc_test_mkdtemp(path, cap, "ngc_graph_flow");
  strncat(path, "/G.safetensors", cap - strlen(path) - 1);
  negcut_generator_options_init(&go);
  go.ngf = 8;
  go.n_blocks = 2;
  ck_assert_int_eq(negcut_net_create_generator(&g, ctx, &go), NEGCUT_OK);
  ck_assert_int_eq(negcut_net_save(g, path), NEGCUT_OK);
  negcut_net_free(g);
  ck_assert_int_eq(negcut_model_load(&m, ctx, path), NEGCUT_OK);
  return m;
}

/* A translator that records (tr) and one that never does (eager). */
static void two_translators(negcut_ctx *ctx, negcut_model *m, negcut_translator **tr,
                            negcut_translator **eager) {
  negcut_translator_options o;
  negcut_translator_options_init(&o);
  ck_assert_int_eq(negcut_translator_create(tr, ctx, m, &o), NEGCUT_OK);
  o.eager = 1;
  ck_assert_int_eq(negcut_translator_create(eager, ctx, m, &o), NEGCUT_OK);
}

static void drop_model(negcut_ctx *ctx, negcut_model *m, const char *path) {
  negcut_model_free(m);
  unlink(path);
  negcut_ctx_free(ctx);
}

static float *image(uint32_t h, uint32_t w, int seed) {
  float *x = malloc(3 * (size_t)h * w * sizeof *x);
  ck_assert_ptr_nonnull(x);
  for (size_t i = 0; i < 3 * (size_t)h * w; i++) x[i] = 0.9f * sinf(0.37f * (float)i + (float)seed);
  return x;
}

/* First run of a size unrecorded, second recorded (and launched), later ones
 * launched; sizes come back to their recording; eager never records. */
START_TEST(test_translator_plans) {
  static const uint32_t sizes[][2] = {{64, 64}, {64, 64}, {64, 64}, {48, 80}, {48, 80},
                                      {48, 80}, {64, 64}, {64, 64}};
  char path[256];
  negcut_ctx *ctx = fake_ctx();
  negcut_model *m = load_model(ctx, path, sizeof path);
  negcut_translator *tr = NULL, *eager = NULL;
  two_translators(ctx, m, &tr, &eager);
  for (size_t r = 0; r < sizeof sizes / sizeof sizes[0]; r++) {
    const uint32_t h = sizes[r][0], w = sizes[r][1];
    float *x = image(h, w, 1), *y = malloc(3 * (size_t)h * w * sizeof *y);
    ck_assert_int_eq(negcut_translate_f32(tr, x, 1, h, w, y), NEGCUT_OK);
    ck_assert_int_eq(negcut_translate_f32(eager, x, 1, h, w, y), NEGCUT_OK);
    free(x);
    free(y);
  }
  ck_assert_msg(!tr->graphs.off, "graphs off: %s", tr->graphs.why);
  ck_assert_int_eq(g_fake.begun, 2);
  ck_assert_uint_eq(tr->graphs.n_recorded, 2);
  ck_assert_uint_eq(tr->graphs.n_replayed, 6);
  ck_assert_int_eq(g_fake.launched, 6);
  ck_assert_uint_eq(eager->graphs.n_recorded, 0);
  ck_assert_int_eq(g_fake.live, 2);
  negcut_translator_free(tr);
  ck_assert_int_eq(g_fake.live, 0);
  negcut_translator_free(eager);
  drop_model(ctx, m, path);
}
END_TEST

/* More sizes than the cache holds: the least recently used recording is
 * freed, and a size that comes back is sized and recorded again. */
START_TEST(test_translator_eviction) {
  char path[256];
  negcut_ctx *ctx = fake_ctx();
  negcut_model *m = load_model(ctx, path, sizeof path);
  negcut_translator *tr = NULL;
  ck_assert_int_eq(negcut_translator_create(&tr, ctx, m, NULL), NEGCUT_OK);
  /* largest first, so that the tape never grows afterwards */
  for (int round = 0; round < 2; round++)
    for (uint32_t s = 0; s < NGC_GRAPH_SLOTS + 1; s++)
      for (int k = 0; k < 2; k++) {
        const uint32_t h = 16 + 4 * (NGC_GRAPH_SLOTS - s);
        float *x = image(h, h, 2), *y = malloc(3 * (size_t)h * h * sizeof *y);
        ck_assert_int_eq(negcut_translate_f32(tr, x, 1, h, h, y), NEGCUT_OK);
        free(x);
        free(y);
      }
  /* each size: unrecorded, then recorded; in round 2 each was evicted in
   * between (one size more than the slots), so the same again */
  ck_assert_int_eq(g_fake.begun, 2 * (NGC_GRAPH_SLOTS + 1));
  ck_assert_int_le(g_fake.live, NGC_GRAPH_SLOTS);
  ck_assert_int_eq(g_fake.freed + g_fake.live, g_fake.begun);
  negcut_translator_free(tr);
  ck_assert_int_eq(g_fake.live, 0);
  drop_model(ctx, m, path);
}
END_TEST

/* A recording that fails turns graphs off for good; the run that failed
 * is done again unrecorded: the same output as an eager translator. */
START_TEST(test_translator_refused) {
  char path[256];
  negcut_ctx *ctx = fake_ctx();
  negcut_model *m = load_model(ctx, path, sizeof path);
  negcut_translator *tr = NULL, *eager = NULL;
  two_translators(ctx, m, &tr, &eager);
  g_fake.refuse_end = 1;
  const uint32_t h = 40, w = 56;
  float *y0 = malloc(3 * h * w * sizeof *y0), *y1 = malloc(3 * h * w * sizeof *y1);
  for (int r = 0; r < 4; r++) {
    float *x = image(h, w, 3 + r);
    ck_assert_int_eq(negcut_translate_f32(tr, x, 1, h, w, y0), NEGCUT_OK);
    ck_assert_int_eq(negcut_translate_f32(eager, x, 1, h, w, y1), NEGCUT_OK);
    ck_assert_mem_eq(y0, y1, 3 * h * w * sizeof *y0);
    free(x);
  }
  ck_assert(tr->graphs.off);
  ck_assert_ptr_nonnull(strstr(tr->graphs.why, "fake graph: refused"));
  ck_assert_int_eq(g_fake.begun, 1);
  ck_assert_int_eq(g_fake.launched, 0);
  ck_assert_str_eq(negcut_ctx_last_error(ctx), ""); /* the failure was not the caller's */
  negcut_translator_free(tr);
  negcut_translator_free(eager);
  free(y0);
  free(y1);
  drop_model(ctx, m, path);
}
END_TEST

/* ---------------------------------------------------------------- trainer */

/* Smaller still than ngc_test_tiny_trainer's (the images are 32 and 40 px,
 * given per step). */
static void tiny_options(negcut_trainer_options *o, negcut_train_mode mode) {
  ngc_test_tiny_trainer(o, mode, 32);
  o->ngf = o->ndf = 4;
  o->num_patches = 8;
  o->netf_nc = 16;
  o->z_dim = 8;
}

/* Steps through the graph paths against eager steps: every loss of every
 * iteration and the whole state at the end bit-identical; the step is
 * recorded once per size and flip state and replayed after. */
static void trainer_case(negcut_train_mode mode, int iterations) {
  negcut_ctx *ctx = fake_ctx();
  negcut_trainer_options o;
  negcut_trainer *t[2] = {NULL, NULL}; /* 0: graphs, 1: eager */
  tiny_options(&o, mode);
  for (int k = 0; k < 2; k++) {
    o.eager = k;
    ck_assert_int_eq(negcut_trainer_create(&t[k], ctx, &o), NEGCUT_OK);
  }
  for (int it = 1; it <= iterations; it++) {
    const uint32_t px = it > iterations / 2 && it <= iterations / 2 + 3 ? 40 : 32;
    float *a = image(px, px, it), *b = image(px, px, 100 + it);
    negcut_train_progress p[2];
    if (it == iterations / 2)
      for (int k = 0; k < 2; k++) ck_assert_int_eq(negcut_trainer_set_epoch(t[k], o.n_epochs + 5), NEGCUT_OK);
    for (int k = 0; k < 2; k++) {
      ck_assert_int_eq(negcut_trainer_step_batch(t[k], a, b, px, px), NEGCUT_OK);
      ck_assert_int_eq(negcut_trainer_progress(t[k], &p[k]), NEGCUT_OK);
    }
    const float l[2][8] = {{p[0].d_real, p[0].d_fake, p[0].g_gan, p[0].nce_x, p[0].nce_y,
                            p[0].g_total, p[0].n_total, p[0].diversity},
                           {p[1].d_real, p[1].d_fake, p[1].g_gan, p[1].nce_x, p[1].nce_y,
                            p[1].g_total, p[1].n_total, p[1].diversity}};
    ck_assert_msg(!memcmp(l[0], l[1], sizeof l[0]), "iteration %d: losses differ", it);
    ck_assert_int_eq(p[0].iteration, p[1].iteration);
    ck_assert_double_eq(p[0].lr, p[1].lr);
    free(a);
    free(b);
  }
  printf("mode %d, %d iterations: %llu recorded, %llu launched, %d replays\n", (int)mode, iterations,
         (unsigned long long)t[0]->t.graphs.n_recorded, (unsigned long long)t[0]->t.graphs.n_replayed,
         g_fake.replays);
  ck_assert_msg(!t[0]->t.graphs.off, "graphs off: %s", t[0]->t.graphs.why);
  ck_assert_uint_ge(t[0]->t.graphs.n_recorded, 2); /* both sizes (and flip states) */
  ck_assert_uint_ge(t[0]->t.graphs.n_replayed, t[0]->t.graphs.n_recorded + 2);
  ck_assert_int_eq(g_fake.replays + g_fake.begun, (int)t[0]->t.graphs.n_replayed);
  ck_assert_uint_eq(t[1]->t.graphs.n_recorded, 0);
  /* the whole state: parameters, moments, counters */
  char dir[64], path[2][96];
  ngc_test_mkdtemp(dir, sizeof dir, "ngc_graph_flow_state");
  void *bytes[2];
  size_t len[2];
  for (int k = 0; k < 2; k++) {
    snprintf(path[k], sizeof path[k], "%s/s%d.safetensors", dir, k);
    ck_assert_int_eq(negcut_trainer_save_state(t[k], path[k]), NEGCUT_OK);
    FILE *f = fopen(path[k], "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    len[k] = (size_t)ftell(f);
    rewind(f);
    bytes[k] = malloc(len[k]);
    ck_assert_uint_eq(fread(bytes[k], 1, len[k], f), len[k]);
    fclose(f);
  }
  ck_assert_uint_eq(len[0], len[1]);
  ck_assert_msg(!memcmp(bytes[0], bytes[1], len[0]), "the state files differ");
  for (int k = 0; k < 2; k++) {
    free(bytes[k]);
    negcut_trainer_free(t[k]);
  }
  ck_assert_int_eq(g_fake.live, 0);
  ngc_test_rmtree(dir);
  negcut_ctx_free(ctx);
}

START_TEST(test_trainer_cut) { trainer_case(NEGCUT_MODE_CUT, 12); }
END_TEST

START_TEST(test_trainer_negcut) { trainer_case(NEGCUT_MODE_NEGCUT, 12); }
END_TEST

START_TEST(test_trainer_fastcut) { trainer_case(NEGCUT_MODE_FASTCUT, 16); }
END_TEST

/* A caller's random source cannot be rewound: no graphs with one. */
static negcut_status ids_in_order(int32_t layer, int64_t hw, int64_t n, int64_t *out, void *user) {
  (void)layer;
  (void)user;
  for (int64_t i = 0; i < n; i++) out[i] = i % hw;
  return NEGCUT_OK;
}
static negcut_status zero_noise(int32_t layer, int64_t n, float *out, void *user) {
  (void)layer;
  (void)user;
  memset(out, 0, (size_t)n * sizeof *out);
  return NEGCUT_OK;
}
static int32_t no_flip(void *user) {
  (void)user;
  return 0;
}

START_TEST(test_trainer_caller_random) {
  negcut_ctx *ctx = fake_ctx();
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  const negcut_random_source src = {NEGCUT_RANDOM_SOURCE_VERSION, ids_in_order, zero_noise, no_flip,
                                    NULL};
  tiny_options(&o, NEGCUT_MODE_CUT);
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_set_random_source(t, &src), NEGCUT_OK);
  float *a = image(32, 32, 1), *b = image(32, 32, 2);
  for (int it = 0; it < 5; it++) ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, 32, 32), NEGCUT_OK);
  ck_assert_int_eq(g_fake.begun + g_fake.replays, 0);
  /* back to its own streams: recorded again */
  ck_assert_int_eq(negcut_trainer_set_random_source(t, NULL), NEGCUT_OK);
  for (int it = 0; it < 5; it++) ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, 32, 32), NEGCUT_OK);
  ck_assert_int_ge(g_fake.begun, 1);
  ck_assert_int_ge(g_fake.replays, 1);
  free(a);
  free(b);
  negcut_trainer_free(t);
  negcut_ctx_free(ctx);
}
END_TEST

int main(void) {
  Suite *s = suite_create("graph_flow");
  TCase *tc = tcase_create("flow");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_translator_plans);
  tcase_add_test(tc, test_translator_eviction);
  tcase_add_test(tc, test_translator_refused);
  tcase_add_test(tc, test_trainer_cut);
  tcase_add_test(tc, test_trainer_negcut);
  tcase_add_test(tc, test_trainer_fastcut);
  tcase_add_test(tc, test_trainer_caller_random);
  suite_add_tcase(s, tc);
  return ngc_test_run(s);
}
