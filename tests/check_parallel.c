/* Data-parallel training (negcut_trainer_set_data_parallel):
 * two trainers of batch 1, ranks 0 and 1 stepped on two threads, whose
 * allreduce function sums through shared memory, against one trainer of
 * batch 2 given both ranks' images, all on one backend: the CPU's, or with
 * the argument "cuda" the CUDA backend's (skipped, 77, without a GPU). On
 * the CPU the allreduce function is given the gradients in place, and with
 * NEGCUT_ALLREDUCE_HOST (which changes nothing there); on CUDA it is given
 * the trainer's host copies (NEGCUT_ALLREDUCE_HOST), which it reads and
 * writes as host memory. The oracle is that single trainer: the
 * same step up to float rounding (its convolutions sum both images' weight
 * gradients in one pass; the ranks each their own, added by the allreduce).
 *
 * For CUT, FastCUT and NEGCUT (whose noise each rank draws as its share of
 * the single trainer's draw), three iterations, teacher-forced: before each
 * one after the first, both ranks get the single trainer's parameters and
 * Adam moments (Adam's first steps move every parameter by about lr
 * whatever the size of its gradient, so gradients near zero that differ in
 * the last bits would make free-running runs part). At every iteration:
 *  - every network's gradient (the mean over the ranks) within 1e-4 in
 *    relative L2 of the single trainer's;
 *  - the two ranks' gradients and parameters bit-identical;
 *  - the mean of the ranks' losses within 1e-4 (relative) of the single
 *    trainer's (each rank reports its own image's);
 * and one allreduce per network and iteration. Then the contract: bad rank
 * or world, a failing allreduce, calls after the first step, and states
 * that record world. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NEGCUT_EXPERIMENTAL
#include "negcut/experimental.h"
#include "negcut/image.h"
#include "negcut/train.h"
#include "ngc_test.h"
#include "train/trainer.h" /* the networks' gradient and parameter slabs */

#define PX 32
#define STEPS 3
#define SEED 7

static negcut_backend_kind g_backend = NEGCUT_BACKEND_CPU;

static negcut_ctx *new_ctx(void) {
  negcut_ctx_options co = NEGCUT_CTX_OPTIONS_INIT;
  negcut_ctx *ctx = NULL;
  co.backend = g_backend;
  co.threads = 1;
  co.seed = SEED;
  ck_assert_msg(negcut_ctx_create(&ctx, &co) == NEGCUT_OK, "%s", negcut_ctx_last_error(NULL));
  return ctx;
}

/* A host copy of a trainer's tensor (backend memory), to free. */
static float *host_copy(const negcut_trainer *t, const ngc_tensor *x) {
  const size_t bytes = (size_t)ngc_numel(x) * sizeof(float);
  float *h = malloc(bytes ? bytes : 1);
  ck_assert_ptr_nonnull(h);
  ngc_backend *be = t->ctx->be;
  ck_assert_msg(be->ops.download(be, h, x->data, bytes) == NEGCUT_OK, "%s",
                negcut_ctx_last_error(t->ctx));
  return h;
}

/* ----------------------------------------------- a two-rank "communicator" */

typedef struct comm {
  pthread_barrier_t bar;
  float *data[2];
  size_t count[2];
  float *sum;
  int calls, mismatch;
  /* calls given a buffer other than the trainer's page-locked host copy
   * where the trainer makes one (NEGCUT_ALLREDUCE_HOST on CUDA) */
  int not_pinned[2];
} comm;

typedef struct rank_ctx {
  comm *c;
  int rank;
  const float *a, *b; /* this rank's images (1, 3, PX, PX), or NULL: its data folders' */
  negcut_trainer *t;
  negcut_train_progress last; /* after its last iteration */
  negcut_status st;
} rank_ctx;

/* Sums the two ranks' buffers in one order, so both get the same bits. */
static int sum_two(float *data, size_t count, void *user) {
  rank_ctx *r = user;
  comm *c = r->c;
  const ngc_trainer *t = &r->t->t;
  if (t->cfg.allreduce_host && (data != t->reduce_buf.data || !t->reduce_buf.pinned))
    c->not_pinned[r->rank]++;
  c->data[r->rank] = data;
  c->count[r->rank] = count;
  pthread_barrier_wait(&c->bar);
  if (r->rank == 0) {
    c->calls++;
    if (c->count[0] != c->count[1]) c->mismatch = 1;
    c->sum = malloc(count * sizeof *c->sum);
    if (c->sum && !c->mismatch)
      for (size_t i = 0; i < count; i++) c->sum[i] = c->data[0][i] + c->data[1][i];
  }
  pthread_barrier_wait(&c->bar);
  int ok = c->sum && !c->mismatch;
  if (ok) memcpy(data, c->sum, count * sizeof *data);
  pthread_barrier_wait(&c->bar);
  if (r->rank == 0) {
    free(c->sum);
    c->sum = NULL;
  }
  return ok ? 0 : 1;
}

/* ------------------------------------------------------------- helpers */

static const ngc_net *net_of(const negcut_trainer *t, int i) {
  const ngc_trainer *n = &t->t;
  return i == 0 ? &n->G : i == 1 ? &n->D : i == 2 ? &n->F : &n->N;
}
static const char *const net_name[4] = {"G", "D", "F", "N"};

static int n_nets(negcut_train_mode mode) {
  return mode == NEGCUT_MODE_NEGCUT || mode == NEGCUT_MODE_FASTNEGCUT ? 4 : 3;
}

/* ||a - b|| / ||b|| */
static double rel_l2(const float *a, const float *b, int64_t n) {
  double d = 0.0, r = 0.0;
  for (int64_t i = 0; i < n; i++) {
    d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    r += (double)b[i] * b[i];
  }
  return r > 0.0 ? sqrt(d / r) : sqrt(d);
}

/* root: data folders (trainA/, trainB/), or NULL for step_batch */
static void options(negcut_trainer_options *o, negcut_train_mode mode, const char *root) {
  ngc_test_tiny_trainer(o, mode, PX);
  o->dataroot = root;
  o->load_size = PX + 4;
}

static void smooth_images(float *x, int n, uint64_t seed) {
  for (int i = 0; i < n; i++)
    for (int c = 0; c < 3; c++) {
      const float fx = 0.1f + 0.05f * (float)((seed + 3 * i + c) % 7);
      const float fy = 0.07f + 0.04f * (float)((seed + 5 * i + 2 * c) % 5);
      for (int y = 0; y < PX; y++)
        for (int xx = 0; xx < PX; xx++)
          x[((i * 3 + c) * PX + y) * PX + xx] = 0.9f * sinf(fx * (float)xx + fy * (float)y + (float)c);
    }
}

/* --------------------------------------------------------------- ranks */

static void *rank_step(void *arg) {
  rank_ctx *r = arg;
  r->st = r->a ? negcut_trainer_step_batch(r->t, r->a, r->b, PX, PX) : negcut_trainer_step(r->t);
  if (r->st == NEGCUT_OK) negcut_trainer_progress(r->t, &r->last);
  return NULL;
}

static ngc_adam *adam_of(negcut_trainer *t, int i) {
  ngc_trainer *n = &t->t;
  return i == 0 ? &n->opt_g : i == 1 ? &n->opt_d : i == 2 ? &n->opt_f : &n->opt_n;
}

/* dst (trainer td's) := src (trainer ts's), through the host. */
static void copy_tensor(negcut_trainer *td, ngc_tensor *dst, const negcut_trainer *ts,
                        const ngc_tensor *src) {
  ck_assert_int_eq(ngc_numel(dst), ngc_numel(src));
  float *h = host_copy(ts, src);
  ngc_backend *be = td->ctx->be;
  ck_assert_msg(be->ops.upload(be, dst->data, h, (size_t)ngc_numel(src) * sizeof(float)) ==
                    NEGCUT_OK,
                "%s", negcut_ctx_last_error(td->ctx));
  free(h);
}

/* Teacher forcing: dst's parameters (with F_'s) and Adam moments := src's. */
static void force(negcut_trainer *dst, negcut_trainer *src, negcut_train_mode mode) {
  for (int i = 0; i < n_nets(mode); i++) {
    copy_tensor(dst, &((ngc_net *)net_of(dst, i))->slab, src, &net_of(src, i)->slab);
    copy_tensor(dst, &adam_of(dst, i)->m_all, src, &adam_of(src, i)->m_all);
    copy_tensor(dst, &adam_of(dst, i)->v_all, src, &adam_of(src, i)->v_all);
  }
  if (n_nets(mode) == 4) copy_tensor(dst, &dst->t.F_ema.slab, src, &src->t.F_ema.slab);
}

/* flags: negcut_trainer_set_data_parallel_v2's */
static void run_mode(negcut_train_mode mode, const char *root, uint32_t flags) {
  float a[2 * 3 * PX * PX], b[2 * 3 * PX * PX];
  const size_t img = 3 * PX * PX;
  smooth_images(a, 2, 1);
  smooth_images(b, 2, 2);

  /* the oracle: one trainer, batch 2 */
  negcut_ctx *ctx = new_ctx();
  negcut_trainer_options o;
  negcut_trainer *one = NULL;
  negcut_train_progress p1;
  options(&o, mode, root);
  o.batch_size = 2;
  ck_assert_int_eq(negcut_trainer_create(&one, ctx, &o), NEGCUT_OK);

  /* the ranks */
  comm c;
  memset(&c, 0, sizeof c);
  ck_assert_int_eq(pthread_barrier_init(&c.bar, NULL, 2), 0);
  rank_ctx r[2];
  for (int k = 0; k < 2; k++) {
    r[k] = (rank_ctx){.c = &c, .rank = k};
    if (!root) r[k].a = a + k * img, r[k].b = b + k * img;
    options(&o, mode, root);
    ck_assert_int_eq(negcut_trainer_create(&r[k].t, new_ctx(), &o), NEGCUT_OK);
    ck_assert_int_eq(negcut_trainer_set_data_parallel_v2(r[k].t, k, 2, sum_two, &r[k], flags),
                     NEGCUT_OK);
  }

  for (int s = 0; s < STEPS; s++) {
    if (s > 0) force(r[0].t, one, mode), force(r[1].t, one, mode);
    ck_assert_int_eq(root ? negcut_trainer_step(one) : negcut_trainer_step_batch(one, a, b, PX, PX),
                     NEGCUT_OK);
    ck_assert_int_eq(negcut_trainer_progress(one, &p1), NEGCUT_OK);
    pthread_t th[2];
    for (int k = 0; k < 2; k++) ck_assert_int_eq(pthread_create(&th[k], NULL, rank_step, &r[k]), 0);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    for (int k = 0; k < 2; k++)
      ck_assert_msg(r[k].st == NEGCUT_OK, "rank %d: %s", k, negcut_ctx_last_error(r[k].t->ctx));
    ck_assert_int_eq(c.mismatch, 0);

    for (int i = 0; i < n_nets(mode); i++) {
      const int64_t n = ngc_numel(&net_of(r[0].t, i)->grads);
      ck_assert_int_eq(n, ngc_numel(&net_of(one, i)->grads));
      float *g0 = host_copy(r[0].t, &net_of(r[0].t, i)->grads);
      float *g1 = host_copy(r[1].t, &net_of(r[1].t, i)->grads);
      float *p0 = host_copy(r[0].t, &net_of(r[0].t, i)->trained);
      float *q = host_copy(r[1].t, &net_of(r[1].t, i)->trained);
      float *g = host_copy(one, &net_of(one, i)->grads);
      ck_assert_int_eq(memcmp(g0, g1, (size_t)n * sizeof(float)), 0);
      ck_assert_int_eq(memcmp(p0, q, (size_t)n * sizeof(float)), 0);
      const double e = rel_l2(g0, g, n);
      printf("%s mode %d%s%s step %d %s: gradient rel L2 %.2e (rank mean vs batch 2)\n",
             negcut_backend_name(g_backend), (int)mode, root ? " (folders)" : "",
             flags ? " (host copies)" : "", s + 1, net_name[i], e);
      ck_assert_msg(e <= 1e-4, "mode %d step %d %s gradients: rel L2 %g", (int)mode, s + 1,
                    net_name[i], e);
      free(g0), free(g1), free(p0), free(q), free(g);
    }
    const negcut_train_progress *q0 = &r[0].last, *q1 = &r[1].last;
    const float l0[] = {q0->d_real, q0->d_fake, q0->g_gan, q0->nce_x, q0->g_total, q0->n_total};
    const float l1[] = {q1->d_real, q1->d_fake, q1->g_gan, q1->nce_x, q1->g_total, q1->n_total};
    const float ls[] = {p1.d_real, p1.d_fake, p1.g_gan, p1.nce_x, p1.g_total, p1.n_total};
    if (root) { /* both read the same global batch of the folders */
      negcut_train_progress pr;
      negcut_trainer_progress(r[1].t, &pr);
      ck_assert_int_eq(pr.iterations_per_epoch, p1.iterations_per_epoch);
      ck_assert_int_eq(pr.epoch, p1.epoch);
    }
    for (size_t k = 0; k < sizeof ls / sizeof ls[0]; k++) {
      const double mean = 0.5 * ((double)l0[k] + l1[k]);
      ck_assert_msg(fabs(mean - ls[k]) <= 1e-4 * fabs(ls[k]) + 1e-7,
                    "mode %d step %d loss %zu: ranks' mean %g, batch 2 %g", (int)mode, s + 1, k,
                    mean, ls[k]);
    }
  }
  /* one allreduce per network and iteration (G, D, F; NEGCUT also N) */
  ck_assert_int_eq(c.calls, STEPS * n_nets(mode));
  /* on CUDA, host copies (in page-locked memory) exactly when asked for */
  const int host = g_backend == NEGCUT_BACKEND_CUDA && (flags & NEGCUT_ALLREDUCE_HOST);
  for (int k = 0; k < 2; k++) {
    ck_assert_int_eq(r[k].t->t.cfg.allreduce_host, host);
    ck_assert_int_eq(c.not_pinned[k], 0);
  }

  for (int k = 0; k < 2; k++) {
    negcut_ctx *rc = r[k].t->ctx;
    negcut_trainer_free(r[k].t);
    negcut_ctx_free(rc);
  }
  pthread_barrier_destroy(&c.bar);
  negcut_trainer_free(one);
  negcut_ctx_free(ctx);
}

/* Each way this backend's allreduce function can be given the gradients:
 * in place and as host copies on the CPU, host copies on CUDA (in place,
 * sum_two would read device memory). */
static void run_ways(negcut_train_mode mode, const char *root) {
  if (g_backend != NEGCUT_BACKEND_CUDA) run_mode(mode, root, 0);
  run_mode(mode, root, NEGCUT_ALLREDUCE_HOST);
}

START_TEST(test_cut) { run_ways(NEGCUT_MODE_CUT, NULL); }
END_TEST
START_TEST(test_fastcut) { run_ways(NEGCUT_MODE_FASTCUT, NULL); }
END_TEST
START_TEST(test_negcut) { run_ways(NEGCUT_MODE_NEGCUT, NULL); }
END_TEST

/* The same from data folders (negcut_trainer_step): the ranks read their
 * shares of the single trainer's batches, crops and flips included. */
START_TEST(test_folders) {
  char root[64], dir[96];
  negcut_ctx *ctx = new_ctx();
  ngc_test_mkdtemp(root, sizeof root, "ngc_parallel");
  for (int d = 0; d < 2; d++) {
    snprintf(dir, sizeof dir, "%s/train%c", root, d ? 'B' : 'A');
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    for (int i = 0; i < 5; i++) { /* 5: two global batches of 2 an epoch, the last item dropped */
      negcut_image *im = NULL;
      char path[128];
      ck_assert_int_eq(negcut_image_create(&im, ctx, PX + 4, PX + 4), NEGCUT_OK);
      for (uint32_t y = 0; y < PX + 4; y++)
        for (uint32_t x = 0; x < 3 * (PX + 4); x++)
          im->pixels[y * im->stride_bytes + x] = (uint8_t)(37 * i + 11 * d + 3 * x + 5 * y);
      snprintf(path, sizeof path, "%s/%d.png", dir, i);
      ck_assert_int_eq(negcut_image_save(ctx, im, path, NULL), NEGCUT_OK);
      negcut_image_free(im);
    }
  }
  run_ways(NEGCUT_MODE_CUT, root);
  run_ways(NEGCUT_MODE_NEGCUT, root);
  ngc_test_rmtree(root);
  negcut_ctx_free(ctx);
}
END_TEST

/* ------------------------------------------------------------ contract */

static int refuse(float *data, size_t count, void *user) {
  (void)data, (void)count;
  ++*(int *)user;
  return 1;
}

START_TEST(test_contract) {
  negcut_ctx *ctx = new_ctx();
  negcut_trainer_options o;
  negcut_trainer *t = NULL, *u = NULL;
  int calls = 0;
  options(&o, NEGCUT_MODE_CUT, NULL);
  ck_assert_int_eq(negcut_trainer_create(&t, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_set_data_parallel(NULL, 0, 2, refuse, NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  static const int32_t ranks[5] = {0, 2, -1, 0, 1}, worlds[5] = {2, 2, 2, 0, 1};
  for (int k = 0; k < 5; k++) { /* no function for 2; rank out of range; world 0 */
    ck_assert_msg(negcut_trainer_set_data_parallel(t, ranks[k], worlds[k], k ? refuse : NULL,
                                                   NULL) == NEGCUT_ERR_INVALID_ARGUMENT,
                  "case %d", k);
    ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "rank"));
  }
  ck_assert_int_eq(negcut_trainer_set_data_parallel(t, 0, 1, NULL, NULL), NEGCUT_OK); /* alone */
  /* flags: NEGCUT_ALLREDUCE_HOST only */
  ck_assert_int_eq(negcut_trainer_set_data_parallel_v2(t, 1, 2, refuse, NULL, 2u),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "_v2: unknown flags 0x2"));
  ck_assert_int_eq(negcut_trainer_set_data_parallel_v2(NULL, 0, 2, refuse, NULL, 0),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  /* a failing allreduce fails the step, named (given host copies: refuse
   * reads nothing, but CUDA then downloads before it) */
  ck_assert_int_eq(
      negcut_trainer_set_data_parallel_v2(t, 1, 2, refuse, &calls, NEGCUT_ALLREDUCE_HOST),
      NEGCUT_OK);
  float a[3 * PX * PX], b[3 * PX * PX];
  smooth_images(a, 1, 3);
  smooth_images(b, 1, 4);
  ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, PX, PX), NEGCUT_ERR_IO);
  ck_assert_int_eq(calls, 1);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "allreduce"));
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "rank 1 of 2"));
  /* a state records world: it loads into a trainer of the same world only */
  char dir[64], path[96];
  ngc_test_mkdtemp(dir, sizeof dir, "ngc_parallel_state");
  snprintf(path, sizeof path, "%s/state.safetensors", dir);
  ck_assert_int_eq(negcut_trainer_set_data_parallel(t, 0, 1, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_step_batch(t, a, b, PX, PX), NEGCUT_OK);
  /* after the first step: refused */
  ck_assert_int_eq(negcut_trainer_set_data_parallel(t, 0, 2, refuse, NULL), NEGCUT_ERR_STATE);
  ck_assert_int_eq(negcut_trainer_save_state(t, path), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_create(&u, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_set_data_parallel(u, 1, 2, refuse, NULL), NEGCUT_OK);
  ck_assert_int_ne(negcut_trainer_load_state(u, path), NEGCUT_OK);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "world=2"));
  negcut_trainer_free(u);
  u = NULL;
  ck_assert_int_eq(negcut_trainer_create(&u, ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_trainer_load_state(u, path), NEGCUT_OK); /* world 1 both */
  ck_assert_int_eq(negcut_trainer_set_data_parallel(u, 0, 2, refuse, NULL), NEGCUT_ERR_STATE);
  negcut_trainer_free(u);
  ngc_test_rmtree(dir);
  negcut_trainer_free(t);
  negcut_ctx_free(ctx);
}
END_TEST

/* check_parallel: on the CPU backend; check_parallel cuda: on the CUDA
 * backend, or skipped (77) without a GPU. */
int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "cuda")) {
    negcut_ctx_options o = NEGCUT_CTX_OPTIONS_INIT;
    negcut_ctx *probe = NULL;
    const int rc = ngc_test_open_cuda(&probe, &o, "check_parallel");
    if (rc) return rc;
    negcut_ctx_free(probe);
    g_backend = NEGCUT_BACKEND_CUDA;
  }
  Suite *s = suite_create("data parallel");
  TCase *tc = tcase_create("two ranks against batch 2");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_cut);
  tcase_add_test(tc, test_fastcut);
  tcase_add_test(tc, test_negcut);
  tcase_add_test(tc, test_folders);
  tcase_add_test(tc, test_contract);
  suite_add_tcase(s, tc);
  /* the probe opened CUDA in this process: no fork after it */
  return g_backend == NEGCUT_BACKEND_CUDA ? ngc_test_run_nofork(s) : ngc_test_run(s);
}
