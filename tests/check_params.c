/* Parameter storage (lib/models/net.c ngc_net_alloc_params): every network's
 * parameters live in one value slab and one gradient slab, so that zeroing
 * the gradients, an Adam update and the EMA are one op per network. The
 * whole-net ops are checked against the per-parameter ops they replace
 * (themselves checked against PyTorch's formulas in check_cpu_loops), bit
 * for bit, and the alignment gaps must stay zero. Also the tape's block of
 * scalars, from which a training step reads its losses with one download. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include <negcut.h>

#include "core/core.h"
#include "models/net.h"
#include "ngc_test.h"
#include "optim/optim.h"

static negcut_ctx *g_ctx;
static int g_downloads; /* counted by counting_download */
static negcut_status (*g_download)(ngc_backend *, void *, const void *, size_t);

static negcut_status counting_download(ngc_backend *be, void *host, const void *src, size_t bytes) {
  g_downloads++;
  return g_download(be, host, src, bytes);
}

static void setup(negcut_backend_kind kind) {
  negcut_ctx_options o = NEGCUT_CTX_OPTIONS_INIT;
  o.backend = kind;
  o.threads = 1;
  o.seed = 5;
  ck_assert_int_eq(negcut_ctx_create(&g_ctx, &o), NEGCUT_OK);
  g_download = g_ctx->be->ops.download;
  g_ctx->be->ops.download = counting_download;
}
static void setup_cpu(void) { setup(NEGCUT_BACKEND_CPU); }
static void setup_ref(void) { setup(NEGCUT_BACKEND_REF); }
static void setup_cuda(void) { setup(NEGCUT_BACKEND_CUDA); }
static void teardown(void) {
  negcut_ctx_free(g_ctx);
  g_ctx = NULL;
}

static uint64_t lcg(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

/* n values in [-1, 1) from s. */
static void randoms(uint64_t *s, float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = (float)lcg(s) / 2147483648.0f - 1.0f;
}

static float *download(const ngc_tensor *t) {
  int64_t n = ngc_numel(t);
  float *h = malloc((size_t)(n ? n : 1) * sizeof *h);
  ck_assert_ptr_nonnull(h);
  ck_assert_int_eq(t->be->ops.download(t->be, h, t->data, (size_t)n * sizeof *h), NEGCUT_OK);
  return h;
}

static void upload(ngc_tensor *t, const float *h) {
  ck_assert_int_eq(t->be->ops.upload(t->be, t->data, h, (size_t)ngc_numel(t) * sizeof *h),
                   NEGCUT_OK);
}

/* A copy of t in a fresh tensor of its own. */
static void clone(const ngc_tensor *t, ngc_tensor *out) {
  float *h = download(t);
  ck_assert_int_eq(ngc_tensor_alloc(g_ctx, g_ctx->be, out, t->ndim, t->dim), NEGCUT_OK);
  upload(out, h);
  free(h);
}

static void expect_same(const char *what, const char *name, const ngc_tensor *a,
                        const ngc_tensor *b) {
  float *x = download(a), *y = download(b);
  ck_assert_msg(ngc_same_shape(a, b), "%s %s: shapes differ", what, name);
  ck_assert_msg(memcmp(x, y, (size_t)ngc_numel(a) * sizeof *x) == 0, "%s %s: not the same bits",
                what, name);
  free(x);
  free(y);
}

/* Floats of the slab s that no parameter owns are all zero. */
static void expect_gaps_zero(const ngc_net *net, const ngc_tensor *s, int buffers_too,
                             const char *what) {
  float *h = download(s);
  int64_t n = ngc_numel(s);
  char *owned = calloc((size_t)n, 1);
  ck_assert_ptr_nonnull(owned);
  for (int32_t i = 0; i < net->n_params; i++) {
    const ngc_param *p = &net->params[i];
    if (p->buffer && !buffers_too) continue;
    memset(owned + p->offset, 1, (size_t)ngc_numel(&p->value));
  }
  for (int64_t j = 0; j < n; j++)
    ck_assert_msg(owned[j] || h[j] == 0.0f, "%s: gap float %lld is %g", what, (long long)j,
                  (double)h[j]);
  free(owned);
  free(h);
}

static void build_generator(ngc_net *g) {
  const ngc_generator_cfg cfg = {3, 3, 4, 2, 0, 0};
  ck_assert_int_eq(ngc_generator_build(g, g_ctx, &cfg), NEGCUT_OK);
  ck_assert_int_eq(ngc_net_init_weights(g, 1, 0.02f), NEGCUT_OK);
}

static void build_projector(ngc_net *f, uint32_t init_id) {
  const int32_t channels[3] = {3, 5, 17};
  ck_assert_int_eq(ngc_projector_build(f, g_ctx, 3, channels, 7), NEGCUT_OK);
  ck_assert_int_eq(ngc_net_init_weights(f, init_id, 0.02f), NEGCUT_OK);
}

START_TEST(test_layout) {
  ngc_net g;
  int64_t end_trained = 0, n_buffers = 0;
  build_generator(&g);
  ck_assert_int_eq(ngc_numel(&g.trained), ngc_numel(&g.grads));
  ck_assert_ptr_eq(g.trained.data, g.slab.data);
  for (int32_t i = 0; i < g.n_params; i++) {
    const ngc_param *p = &g.params[i];
    int64_t n = ngc_numel(&p->value);
    ck_assert_int_eq(p->offset % NGC_PARAM_ALIGN, 0);
    ck_assert_ptr_eq(p->value.data, g.slab.data + p->offset);
    ck_assert_int_eq(p->value.owns, 0);
    /* neighbours never overlap: the next offset is past this one's end */
    for (int32_t j = 0; j < g.n_params; j++)
      if (j != i && g.params[j].offset >= p->offset)
        ck_assert_int_ge(g.params[j].offset, p->offset + n);
    if (p->buffer) {
      n_buffers++;
      ck_assert_int_ge(p->offset, ngc_numel(&g.trained)); /* buffers after the span */
      ck_assert_ptr_null(p->grad.data);
      ck_assert_int_le(p->offset + n, ngc_numel(&g.slab));
    } else {
      ck_assert_ptr_eq(p->grad.data, g.grads.data + p->offset);
      ck_assert(ngc_same_shape(&p->grad, &p->value));
      if (p->offset + n > end_trained) end_trained = p->offset + n;
    }
  }
  ck_assert_int_gt(n_buffers, 0); /* the blur filters */
  ck_assert_int_le(end_trained, ngc_numel(&g.trained));
  ck_assert_int_gt(end_trained, ngc_numel(&g.trained) - NGC_PARAM_ALIGN);
  expect_gaps_zero(&g, &g.slab, 1, "values after init");
  expect_gaps_zero(&g, &g.grads, 0, "gradients after allocation");
  /* The storage is fixed once allocated. */
  ck_assert_int_lt(ngc_net_add_param(&g, "late", 1, (int64_t[1]){4}, 0), 0);
  ck_assert_int_eq(ngc_net_alloc_params(&g), NEGCUT_ERR_INTERNAL);
  ngc_net_release(&g);
}
END_TEST

START_TEST(test_zero_grad) {
  ngc_net g;
  uint64_t s = 3;
  build_generator(&g);
  float *h = malloc((size_t)ngc_numel(&g.grads) * sizeof *h);
  ck_assert_ptr_nonnull(h);
  randoms(&s, h, ngc_numel(&g.grads));
  upload(&g.grads, h);
  ck_assert_int_eq(ngc_net_zero_grad(&g), NEGCUT_OK);
  float *z = download(&g.grads);
  for (int64_t i = 0; i < ngc_numel(&g.grads); i++) ck_assert_float_eq(z[i], 0.0f);
  free(z);
  free(h);
  ngc_net_release(&g);
}
END_TEST

/* Random gradients in every parameter's place (not in the gaps). */
static void random_grads(ngc_net *net, uint64_t *s) {
  for (int32_t i = 0; i < net->n_params; i++) {
    ngc_param *p = &net->params[i];
    if (p->buffer) continue;
    float *h = malloc((size_t)ngc_numel(&p->grad) * sizeof *h);
    ck_assert_ptr_nonnull(h);
    randoms(s, h, ngc_numel(&p->grad));
    upload(&p->grad, h);
    free(h);
  }
}

/* Two whole-net Adam updates of the generator against ngc_adam_step on
 * copies of each parameter and its moments. */
static void adam_case(double weight_decay) {
  ngc_net g;
  ngc_adam a;
  uint64_t s = 17;
  build_generator(&g);
  ck_assert_int_eq(ngc_adam_init(&a, g_ctx, &g, 2e-4, 0.5, 0.999, 1e-8, weight_decay),
                   NEGCUT_OK);
  ngc_tensor *ref = calloc((size_t)g.n_params * 3, sizeof *ref);
  ck_assert_ptr_nonnull(ref);
  for (int32_t i = 0; i < g.n_params; i++) {
    clone(&g.params[i].value, &ref[3 * i]);
    if (g.params[i].buffer) continue;
    clone(&a.m[i], &ref[3 * i + 1]);
    clone(&a.v[i], &ref[3 * i + 2]);
  }
  for (int step = 1; step <= 2; step++) {
    const double lr = 2e-4 / step;
    const ngc_adam_params ap = {lr, 0.5, 0.999, 1e-8, weight_decay, step};
    random_grads(&g, &s);
    for (int32_t i = 0; i < g.n_params; i++)
      if (!g.params[i].buffer)
        ck_assert_int_eq(ngc_adam_step(g_ctx, &ap, &ref[3 * i], &g.params[i].grad, &ref[3 * i + 1],
                                       &ref[3 * i + 2]),
                         NEGCUT_OK);
    ck_assert_int_eq(ngc_adam_update(g_ctx, &a, lr), NEGCUT_OK);
    ck_assert_int_eq(a.step, step);
  }
  for (int32_t i = 0; i < g.n_params; i++) {
    expect_same("adam value", g.params[i].name, &g.params[i].value, &ref[3 * i]);
    if (g.params[i].buffer) {
      ngc_tensor_release(&ref[3 * i]);
      continue;
    }
    expect_same("adam m", g.params[i].name, &a.m[i], &ref[3 * i + 1]);
    expect_same("adam v", g.params[i].name, &a.v[i], &ref[3 * i + 2]);
    for (int k = 0; k < 3; k++) ngc_tensor_release(&ref[3 * i + k]);
  }
  /* The update moved the parameters (buffers: compared above) and left
   * the gaps alone. */
  float *m = download(&a.m_all);
  int moved = 0;
  for (int64_t j = 0; j < ngc_numel(&a.m_all); j++) moved += m[j] != 0.0f;
  ck_assert_int_gt(moved, ngc_net_param_numel(&g) / 2);
  free(m);
  expect_gaps_zero(&g, &g.slab, 1, "values after Adam");
  expect_gaps_zero(&g, &a.m_all, 0, "first moments");
  expect_gaps_zero(&g, &a.v_all, 0, "second moments");
  free(ref);
  ngc_adam_release(&a);
  ngc_net_release(&g);
}

START_TEST(test_adam) { adam_case(0.0); }
END_TEST
START_TEST(test_adam_weight_decay) { adam_case(0.01); }
END_TEST

START_TEST(test_ema) {
  ngc_net f, t, other;
  ngc_tensor *ref;
  build_projector(&f, 3);
  build_projector(&t, 5);
  ref = calloc((size_t)t.n_params, sizeof *ref);
  ck_assert_ptr_nonnull(ref);
  for (int32_t i = 0; i < t.n_params; i++) {
    clone(&t.params[i].value, &ref[i]);
    ck_assert_int_eq(ngc_ema_update(g_ctx, 0.9f, &ref[i], &f.params[i].value), NEGCUT_OK);
  }
  ck_assert_int_eq(ngc_ema_nets(g_ctx, &t, &f, 0.9f), NEGCUT_OK);
  for (int32_t i = 0; i < t.n_params; i++) {
    expect_same("ema", t.params[i].name, &t.params[i].value, &ref[i]);
    ngc_tensor_release(&ref[i]);
  }
  expect_gaps_zero(&t, &t.slab, 1, "values after the EMA");
  free(ref);
  /* Networks of other shapes are refused. */
  const int32_t channels[3] = {3, 5, 16};
  ck_assert_int_eq(ngc_projector_build(&other, g_ctx, 3, channels, 7), NEGCUT_OK);
  ck_assert_int_eq(ngc_ema_nets(g_ctx, &other, &f, 0.9f), NEGCUT_ERR_SHAPE);
  ngc_net_release(&other);
  ngc_net_release(&t);
  ngc_net_release(&f);
}
END_TEST

/* A net of buffers only, and one of nothing: empty spans, and every
 * whole-net op still works. */
START_TEST(test_empty_nets) {
  for (int buffers = 0; buffers < 2; buffers++) {
    ngc_net a, b;
    ngc_adam opt;
    ngc_net *nets[2] = {&a, &b};
    for (int k = 0; k < 2; k++) {
      ck_assert_int_eq(ngc_net_init(nets[k], g_ctx, NGC_NET_PROJECTOR), NEGCUT_OK);
      if (buffers) ck_assert_int_eq(ngc_net_add_param(nets[k], "filt", 4, (int64_t[4]){3, 1, 3, 3}, 1), 0);
      ck_assert_int_eq(ngc_net_alloc_params(nets[k]), NEGCUT_OK);
      ck_assert_int_eq(ngc_numel(&nets[k]->trained), 0);
      ck_assert_int_eq(ngc_numel(&nets[k]->grads), 0);
      ck_assert_int_eq(ngc_numel(&nets[k]->slab), buffers ? NGC_PARAM_ALIGN : 0);
    }
    ck_assert_int_eq(ngc_net_zero_grad(&a), NEGCUT_OK);
    ck_assert_int_eq(ngc_adam_init(&opt, g_ctx, &a, 2e-4, 0.5, 0.999, 1e-8, 0.0), NEGCUT_OK);
    ck_assert_int_eq(ngc_adam_update(g_ctx, &opt, 2e-4), NEGCUT_OK);
    ck_assert_int_eq(opt.step, 1);
    ck_assert_int_eq(ngc_ema_nets(g_ctx, &a, &b, 0.9f), NEGCUT_OK);
    ngc_adam_release(&opt);
    ngc_net_release(&b);
    ngc_net_release(&a);
  }
}
END_TEST

/* Parameters declared with impossible shapes are refused. */
START_TEST(test_bad_declarations) {
  ngc_net n;
  ck_assert_int_eq(ngc_net_init(&n, g_ctx, NGC_NET_PROJECTOR), NEGCUT_OK);
  ck_assert_int_lt(ngc_net_add_param(&n, "w", 0, (int64_t[1]){4}, 0), 0);
  ck_assert_int_lt(ngc_net_add_param(&n, "w", 5, (int64_t[5]){1, 1, 1, 1, 1}, 0), 0);
  ck_assert_int_lt(ngc_net_add_param(&n, "w", 2, (int64_t[2]){4, 0}, 0), 0);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(g_ctx), "size 0 in dim 1"));
  ck_assert_int_eq(n.n_params, 0);
  ngc_net_release(&n);
}
END_TEST

/* Scalars share one block and are read with one download; a block that
 * fills opens another, and values outside the current block are read
 * one by one. */
START_TEST(test_scalars) {
  enum { N = NGC_TAPE_SCALARS + 6 };
  ngc_tape tape;
  ngc_tensor sc[N + 1];
  float got[N + 1], *dst[N + 1], *first[2] = {NULL, NULL};
  ck_assert_int_eq(ngc_tape_init(&tape, g_ctx), NEGCUT_OK);
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < N; i++) {
      ck_assert_int_eq(ngc_tape_scalar(&tape, &sc[i]), NEGCUT_OK);
      ck_assert_int_eq(ngc_numel(&sc[i]), 1);
      ck_assert_int_eq(ngc_fill(g_ctx, &sc[i], (float)(i * 3 + round)), NEGCUT_OK);
      dst[i] = &got[i];
    }
    ck_assert_int_eq(ngc_tape_tensor(&tape, &sc[N], 1, (int64_t[1]){1}), NEGCUT_OK);
    ck_assert_int_eq(ngc_fill(g_ctx, &sc[N], -1.5f), NEGCUT_OK);
    dst[N] = &got[N];
    /* the second block holds the last 6, side by side */
    for (int i = NGC_TAPE_SCALARS + 1; i < N; i++)
      ck_assert_ptr_eq(sc[i].data, sc[i - 1].data + 1);
    g_downloads = 0;
    /* only the current block's: one download */
    ck_assert_int_eq(ngc_tape_read_scalars(&tape, 6, sc + NGC_TAPE_SCALARS, dst + NGC_TAPE_SCALARS),
                     NEGCUT_OK);
    ck_assert_int_eq(g_downloads, 1);
    /* all: the first block's one by one, then the current block once */
    g_downloads = 0;
    ck_assert_int_eq(ngc_tape_read_scalars(&tape, N + 1, sc, dst), NEGCUT_OK);
    ck_assert_int_eq(g_downloads, NGC_TAPE_SCALARS + 1 + 1);
    for (int i = 0; i < N; i++) ck_assert_float_eq(got[i], (float)(i * 3 + round));
    ck_assert_float_eq(got[N], -1.5f);
    /* After a reset the same calls get the same addresses: what a CUDA
     * graph recorded on one step still finds the next step's losses. */
    if (round == 0) {
      first[0] = sc[0].data;
      first[1] = sc[NGC_TAPE_SCALARS].data;
    } else {
      ck_assert_ptr_eq(sc[0].data, first[0]);
      ck_assert_ptr_eq(sc[NGC_TAPE_SCALARS].data, first[1]);
    }
    ck_assert_int_eq(ngc_tape_reset(&tape), NEGCUT_OK);
  }
  ngc_tape_free(&tape);
}
END_TEST

static void add_tests(TCase *tc) {
  tcase_add_test(tc, test_layout);
  tcase_add_test(tc, test_zero_grad);
  tcase_add_test(tc, test_adam);
  tcase_add_test(tc, test_adam_weight_decay);
  tcase_add_test(tc, test_ema);
  tcase_add_test(tc, test_empty_nets);
  tcase_add_test(tc, test_bad_declarations);
  tcase_add_test(tc, test_scalars);
}

/* check_params: on the cpu and ref backends. check_params cuda: on the CUDA
 * backend (skips, 77, without a GPU). */
int main(int argc, char **argv) {
  Suite *s = suite_create("params");
  if (argc > 1 && !strcmp(argv[1], "cuda")) {
    negcut_ctx_options o = NEGCUT_CTX_OPTIONS_INIT;
    negcut_ctx *probe = NULL;
    int rc = ngc_test_open_cuda(&probe, &o, "check_params");
    if (rc) return rc;
    negcut_ctx_free(probe);
    TCase *tc = tcase_create("cuda");
    tcase_add_checked_fixture(tc, setup_cuda, teardown);
    add_tests(tc);
    suite_add_tcase(s, tc);
    return ngc_test_run_nofork(s);
  }
  TCase *tc[2] = {tcase_create("cpu"), tcase_create("ref")};
  void (*setups[2])(void) = {setup_cpu, setup_ref};
  for (int k = 0; k < 2; k++) {
    tcase_add_checked_fixture(tc[k], setups[k], teardown);
    add_tests(tc[k]);
    suite_add_tcase(s, tc[k]);
  }
  return ngc_test_run(s);
}
