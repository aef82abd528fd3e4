/* PyTorch parity of the networks (STYLE.md 17). tools/net_parity.py builds
 * the reference networks of tools/negcut_ref.py with random weights and dumps
 * weights (state_dict names), inputs, random upstream gradients, outputs and
 * every gradient; each test here loads the weights into our network, runs it
 * forward and backward and compares every tensor with the stated tolerance:
 *
 * - the default generator (ngf 64, 9 blocks) through the public API
 *   (negcut_model_load on the .pth converted by tools/pth2safetensors.py,
 *   negcut_translate_f32) and the internal executor: 256x256, 250x333 raw
 *   (252x336 out, the reference's size change) and 250x333 padded/cropped;
 * - small generators (antialiased, no_antialias + no_antialias_up,
 *   no_antialias_up), forward and backward, and the encoder pass with taps;
 * - the discriminator, the projector (sampled ids and all positions) and the
 *   negative generator, forward and backward;
 * - the checkpoint loader's error paths on files derived from a good one;
 * - the reverse direction: a generator initialised here is saved with its
 *   metadata (nets/ours_G.safetensors) with its input and output
 *   (nets/ours_io.safetensors); `net_parity.py --verify` loads it into
 *   PyTorch with strict=True and compares (CTest test parity_nets_verify).
 *
 * Small cases run on the ref and cpu backends, the default generator on cpu.
 * Every comparison prints its largest error to stdout.
 *
 * Usage: check_parity_nets [dir]   (default NGC_TEST_DATA_DIR/nets) */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "infer/infer.h"
#include "io/safetensors.h"
#include "models/checkpoint.h"
#include "models/net.h"
#include "negcut/translate.h"
#include "ngc_test.h"

/* |got - want| <= atol + scale * max|want| + rtol * |want|. The `scale` term
 * is for gradients: float32 sums of many terms err in proportion to the
 * tensor's magnitude, so an element that happens to be near zero may carry
 * an absolute error of ~1e-6 of the largest one. */
typedef struct tol {
  double atol, rtol, scale;
} tol;

/* The default generator: 30 layers on 65k positions; an absolute bound on
 * the [-1, 1] outputs a user sees (measured: 4.3e-6 on cpu). */
static const tol T_FULL = {1e-4, 0.0, 0.0};
/* Small nets' outputs (measured: <= 2.8e-6 of max |y|). */
static const tol T_FWD = {1e-5, 1e-4, 0.0};
/* Activation and parameter gradients (measured: <= 3.8e-6 of the tensor's
 * largest element on ref and cpu). */
static const tol T_GRAD = {1e-6, 1e-4, 1e-5};

static const char *g_dir;
static const char *g_backend;
static negcut_ctx *g_ctx;
static ngc_tape g_tape;
static int g_tape_ok;
#define MAX_NETS 2
static ngc_net g_net[MAX_NETS];
#define MAX_FILES 4
static ngc_st_file *g_file[MAX_FILES];
static negcut_model *g_model;
static negcut_translator *g_tr;
static int g_bad; /* tensors of the current test that differ */

static const negcut_backend_kind backends[] = {NEGCUT_BACKEND_REF, NEGCUT_BACKEND_CPU};
#define N_BACKENDS 2

/* ------------------------------------------------------------ helpers */

#define OK(call)                                                                       \
  do {                                                                                 \
    negcut_status st_ = (call);                                                        \
    ck_assert_msg(st_ == NEGCUT_OK, "%s [%s]: %s: %s", #call, g_backend,               \
                  negcut_status_str(st_), negcut_ctx_last_error(g_ctx));              \
  } while (0)

static void setup_ctx(negcut_backend_kind kind) {
  negcut_ctx_options o;
  negcut_ctx_options_init(&o);
  o.backend = kind;
  o.threads = 2;
  o.seed = 20240607;
  ck_assert_msg(negcut_ctx_create(&g_ctx, &o) == NEGCUT_OK, "%s", negcut_ctx_last_error(NULL));
  g_backend = negcut_backend_name(kind);
  ngc_tape_init(&g_tape, g_ctx);
  g_tape_ok = 1;
  g_bad = 0;
}

static void teardown(void) {
  negcut_translator_free(g_tr);
  g_tr = NULL;
  negcut_model_free(g_model);
  g_model = NULL;
  for (int i = 0; i < MAX_NETS; i++) ngc_net_release(&g_net[i]);
  for (int i = 0; i < MAX_FILES; i++) {
    ngc_st_close(g_file[i]);
    g_file[i] = NULL;
  }
  if (g_tape_ok) ngc_tape_free(&g_tape);
  g_tape_ok = 0;
  negcut_ctx_free(g_ctx);
  g_ctx = NULL;
}

static void path_of(char *buf, size_t cap, const char *name) {
  ck_assert_int_lt(snprintf(buf, cap, "%s/%s", g_dir, name), (int)cap);
}

static ngc_st_file *open_file(int slot, const char *name) {
  char path[1024];
  path_of(path, sizeof path, name);
  ck_assert_msg(ngc_st_open(g_ctx, path, &g_file[slot]) == NEGCUT_OK, "%s",
                negcut_ctx_last_error(g_ctx));
  return g_file[slot];
}

static const ngc_st_entry *need(const ngc_st_file *f, const char *name) {
  const ngc_st_entry *e = ngc_st_find(f, name);
  ck_assert_msg(e != NULL, "tensor %s missing from the parity data", name);
  return e;
}

/* The F32 entry's values, aligned (free() them). */
static float *host_of(const ngc_st_entry *e) {
  ck_assert_msg(e->dtype == NGC_ST_F32, "%s is %s, want F32", e->name,
                ngc_st_dtype_name(e->dtype));
  float *h = malloc(e->nbytes ? e->nbytes : 1);
  ck_assert_ptr_nonnull(h);
  memcpy(h, e->data, e->nbytes);
  return h;
}

/* A tape tensor shaped like the entry, filled with v (NaN: must be written). */
static ngc_tensor like(const ngc_st_entry *e, float v) {
  ngc_tensor t;
  ck_assert_int_le(e->ndim, NGC_MAX_DIMS);
  OK(ngc_tape_tensor(&g_tape, &t, e->ndim, e->shape));
  OK(ngc_fill(g_ctx, &t, v));
  return t;
}

/* The entry uploaded into a tape tensor. */
static ngc_tensor load_t(const ngc_st_file *f, const char *name) {
  const ngc_st_entry *e = need(f, name);
  ngc_tensor t = like(e, 0.0f);
  float *h = host_of(e);
  OK(g_ctx->be->ops.upload(g_ctx->be, t.data, h, e->nbytes));
  free(h);
  return t;
}

/* Compares n floats with the dumped tensor and prints the largest error. */
static void compare_host(const char *what, const float *got, const ngc_st_entry *e, tol tl) {
  int64_t n = (int64_t)(e->nbytes / sizeof(float));
  float *want = host_of(e);
  double big = 0.0, worst = 0.0;
  char label[256];
  for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(want[i]));
  for (int64_t i = 0; i < n; i++) {
    double err = fabs((double)got[i] - want[i]);
    if (err > worst || isnan(err)) worst = err;
  }
  snprintf(label, sizeof label, "%s [%s]", what, g_backend);
  printf("%-44s max abs err %.3g (max |want| %.3g)\n", label, worst, big);
  if (ngc_test_compare(label, got, want, n, tl.atol + tl.scale * big, tl.rtol)) g_bad++;
  free(want);
}

static void compare(const char *what, const ngc_tensor *t, const ngc_st_entry *e, tol tl) {
  int64_t n = ngc_numel(t);
  ck_assert_msg(t->ndim == e->ndim, "%s: %d dims, want %d", what, (int)t->ndim, (int)e->ndim);
  for (int32_t d = 0; d < t->ndim; d++)
    ck_assert_msg(t->dim[d] == e->shape[d], "%s: dim %d is %lld, want %lld", what, (int)d,
                  (long long)t->dim[d], (long long)e->shape[d]);
  float *got = malloc((size_t)(n ? n : 1) * sizeof *got);
  ck_assert_ptr_nonnull(got);
  OK(g_ctx->be->ops.download(g_ctx->be, got, t->data, (size_t)n * sizeof *got));
  compare_host(what, got, e, tl);
  free(got);
}

static double max_abs(const ngc_st_entry *e) {
  float *h = host_of(e);
  double big = 0.0;
  for (size_t j = 0; j < e->nbytes / sizeof(float); j++) big = fmax(big, fabs(h[j]));
  free(h);
  return big;
}

/* The layer whose bias is parameter i, when that bias has an analytically
 * zero gradient: its conv feeds an instance norm (which removes any
 * per-channel constant) and its output is not a tap. Such a gradient is
 * float32 cancellation noise in PyTorch and here (~1e-6 of the layer's
 * weight gradient), so it is checked against that noise floor instead:
 * |got - want| <= 1e-5 * max|grad weight|. -1 otherwise. */
static int32_t zero_grad_bias_layer(const ngc_net *net, int32_t i, const int32_t *taps,
                                    int32_t n_taps) {
  for (int32_t li = 0; li + 1 < net->n_layers; li++) {
    const ngc_layer *l = &net->layers[li];
    if (l->b != i || (l->kind != NGC_L_CONV && l->kind != NGC_L_CONVT)) continue;
    if (net->layers[li + 1].kind != NGC_L_INORM) return -1;
    for (int32_t t = 0; t < n_taps; t++)
      if (l->module >= 0 && taps[t] == l->module) return -1;
    return li;
  }
  return -1;
}

/* Every parameter gradient of net against <prefix>grad.<name>, and every
 * <prefix>grad.* in the file belongs to a parameter (nothing unchecked). */
static void compare_grads(const ngc_net *net, const ngc_st_file *f, const char *prefix,
                          const int32_t *taps, int32_t n_taps) {
  char name[256], what[300];
  int64_t in_file = 0, n_grads = 0;
  double biggest = 0.0;
  size_t pl = strlen(prefix);
  for (int32_t i = 0; i < net->n_params; i++) {
    const ngc_param *p = &net->params[i];
    if (p->buffer) continue;
    snprintf(name, sizeof name, "%sgrad.%s", prefix, p->name);
    const ngc_st_entry *e = need(f, name);
    int32_t li = zero_grad_bias_layer(net, i, taps, n_taps);
    if (li >= 0) {
      char wn[256];
      snprintf(wn, sizeof wn, "%sgrad.%s", prefix, net->params[net->layers[li].w].name);
      tol floor = {1e-5 * max_abs(need(f, wn)), 0.0, 0.0};
      snprintf(what, sizeof what, "%s (analytically 0)", name);
      compare(what, &p->grad, e, floor);
    } else {
      compare(name, &p->grad, e, T_GRAD);
    }
    biggest = fmax(biggest, max_abs(e));
    n_grads++;
  }
  for (int64_t i = 0; i < ngc_st_count(f); i++) {
    const char *en = ngc_st_entry_at(f, i)->name;
    in_file += strncmp(en, prefix, pl) == 0 && strncmp(en + pl, "grad.", 5) == 0;
  }
  ck_assert_int_eq(in_file, n_grads);
  ck_assert_msg(biggest > 1e-3, "%sgrad.*: PyTorch's gradients are all ~0", prefix);
}

static void load_weights(ngc_net *net, int slot, const char *file) {
  ngc_st_file *w = open_file(slot, file);
  OK(ngc_net_load(g_ctx, net, w, file));
}

static int32_t meta_int(const ngc_st_file *f, const char *key) {
  const char *v = ngc_st_metadata(f, key);
  ck_assert_msg(v != NULL, "metadata %s missing from the parity data", key);
  return (int32_t)strtol(v, NULL, 10);
}

static void i64_of(const ngc_st_entry *e, int64_t *out, int64_t cap) {
  ck_assert_int_eq(e->dtype, NGC_ST_I64);
  ck_assert_uint_le(e->nbytes, (size_t)cap * sizeof *out);
  memcpy(out, e->data, e->nbytes);
}

static void expect_clean(const char *what) {
  ck_assert_msg(g_bad == 0, "%s [%s]: %d tensor(s) differ from PyTorch (details on stderr)", what,
                g_backend, g_bad);
}

/* ----------------------------------------- default generator (cpu only) */

static void load_full_model(void) {
  char path[1024];
  path_of(path, sizeof path, "ref_G.safetensors");
  OK(negcut_model_load(&g_model, g_ctx, path));
  ck_assert_int_eq(g_model->cfg.ngf, 64);
  ck_assert_int_eq(g_model->cfg.n_blocks, 9);
  ck_assert_int_eq(g_model->cfg.no_antialias + g_model->cfg.no_antialias_up, 0);
  OK(negcut_translator_create(&g_tr, g_ctx, g_model, NULL));
}

/* negcut_translate_f32 on the dumped input `x`, compared with `y`. */
static void translate_vs(const ngc_st_file *io, const char *x, const char *y) {
  const ngc_st_entry *ex = need(io, x), *ey = need(io, y);
  float *in = host_of(ex), *out = malloc(ey->nbytes);
  char what[64];
  ck_assert_ptr_nonnull(out);
  ck_assert_int_eq(ex->ndim, 4);
  OK(negcut_translate_f32(g_tr, in, (uint32_t)ex->shape[0], (uint32_t)ex->shape[2],
                          (uint32_t)ex->shape[3], out));
  snprintf(what, sizeof what, "G64 translate_f32(%s) vs %s", x, y);
  compare_host(what, out, ey, T_FULL);
  free(in);
  free(out);
}

START_TEST(test_full_generator_256) {
  setup_ctx(NEGCUT_BACKEND_CPU);
  load_full_model();
  translate_vs(open_file(0, "gen_io.safetensors"), "x256", "y256");
  expect_clean("default generator 256x256");
}
END_TEST

START_TEST(test_full_generator_250x333) {
  setup_ctx(NEGCUT_BACKEND_CPU);
  load_full_model();
  const ngc_st_file *io = open_file(0, "gen_io.safetensors");
  /* (i) the executor on the raw input: the reference's 252x336 output */
  ngc_tensor x = load_t(io, "x250"), y = like(need(io, "y250"), NAN);
  OK(ngc_seq_forward(&g_model->net, &g_tape, &x, -1, NULL, &y));
  compare("G64 seq_forward(x250) vs y250", &y, need(io, "y250"), T_FULL);
  /* (ii) the translator pads internally and crops back */
  translate_vs(io, "x250", "y250crop");
  expect_clean("default generator 250x333");
}
END_TEST

/* ------------------------------------------------- small generators */

static const char *const gen_cases[] = {"gen_small", "gen_na", "gen_naup"};
#define N_GEN 3

START_TEST(test_small_generator) {
  const char *name = gen_cases[_i / N_BACKENDS];
  char file[128], what[128];
  setup_ctx(backends[_i % N_BACKENDS]);
  snprintf(file, sizeof file, "%s_io.safetensors", name);
  const ngc_st_file *io = open_file(0, file);
  ngc_generator_cfg cfg = {3, 3, meta_int(io, "ngf"), meta_int(io, "n_blocks"),
                           meta_int(io, "no_antialias"), meta_int(io, "no_antialias_up")}, got;
  ngc_net *net = &g_net[0];
  snprintf(file, sizeof file, "%s_weights.safetensors", name);
  OK(ngc_generator_build(net, g_ctx, &cfg));
  load_weights(net, 1, file);
  /* The architecture read off a plain state_dict (no metadata). */
  OK(ngc_generator_cfg_of(g_ctx, g_file[1], file, &got));
  ck_assert_mem_eq(&got, &cfg, sizeof cfg);

  /* Forward and backward of the whole net. */
  ngc_seq_rec rec;
  ngc_tensor x = load_t(io, "x"), y = like(need(io, "y"), NAN), dy = load_t(io, "dy");
  ngc_tensor dx = like(need(io, "dx"), NAN);
  OK(ngc_seq_forward(net, &g_tape, &x, -1, &rec, &y));
  OK(ngc_net_zero_grad(net));
  OK(ngc_seq_backward(net, &g_tape, &rec, &dy, 0, NULL, NULL, &dx));
  snprintf(what, sizeof what, "%s y", name);
  compare(what, &y, need(io, "y"), T_FWD);
  snprintf(what, sizeof what, "%s dx", name);
  compare(what, &dx, need(io, "dx"), T_GRAD);
  compare_grads(net, io, "", NULL, 0);

  /* The encoder pass: features at the taps, gradients injected there. */
  int64_t taps64[NGC_MAX_NCE_LAYERS];
  int32_t taps[NGC_MAX_NCE_LAYERS];
  ngc_tensor dtaps[NGC_MAX_NCE_LAYERS];
  const ngc_st_entry *et = need(io, "enc.taps");
  int32_t n_taps = (int32_t)et->shape[0];
  i64_of(et, taps64, NGC_MAX_NCE_LAYERS);
  for (int32_t t = 0; t < n_taps; t++) taps[t] = (int32_t)taps64[t];
  ngc_seq_rec erec;
  ngc_tensor edx = like(need(io, "enc.dx"), NAN);
  OK(ngc_seq_forward(net, &g_tape, &x, taps[n_taps - 1], &erec, NULL));
  for (int32_t t = 0; t < n_taps; t++) {
    char fn[64];
    const ngc_tensor *feat = ngc_seq_module_act(net, &erec, taps[t]);
    ck_assert_msg(feat != NULL, "%s: no activation for module %d", name, (int)taps[t]);
    snprintf(fn, sizeof fn, "enc.feat%d", (int)t);
    snprintf(what, sizeof what, "%s enc.feat%d (module %d)", name, (int)t, (int)taps[t]);
    /* Features stay in the backend's layout (blocked on cpu); the plain
     * gradients injected below are converted by the backward. */
    ngc_tensor plain = like(need(io, fn), NAN);
    OK(ngc_relayout(g_ctx, feat, &plain));
    compare(what, &plain, need(io, fn), T_FWD);
    snprintf(fn, sizeof fn, "enc.dfeat%d", (int)t);
    dtaps[t] = load_t(io, fn);
  }
  OK(ngc_net_zero_grad(net));
  OK(ngc_seq_backward(net, &g_tape, &erec, NULL, n_taps, taps, dtaps, &edx));
  snprintf(what, sizeof what, "%s enc.dx", name);
  compare(what, &edx, need(io, "enc.dx"), T_GRAD);
  compare_grads(net, io, "enc.", taps, n_taps);
  expect_clean(name);
}
END_TEST

/* ------------------------------------------------------ discriminator */

START_TEST(test_discriminator) {
  setup_ctx(backends[_i]);
  const ngc_st_file *io = open_file(0, "disc_io.safetensors");
  ngc_discriminator_cfg cfg = {3, 8, 3, 0};
  ngc_net *net = &g_net[0];
  OK(ngc_discriminator_build(net, g_ctx, &cfg));
  load_weights(net, 1, "disc_weights.safetensors");
  ngc_seq_rec rec;
  ngc_tensor x = load_t(io, "x"), y = like(need(io, "y"), NAN), dy = load_t(io, "dy");
  ngc_tensor dx = like(need(io, "dx"), NAN);
  OK(ngc_seq_forward(net, &g_tape, &x, -1, &rec, &y));
  OK(ngc_net_zero_grad(net));
  OK(ngc_seq_backward(net, &g_tape, &rec, &dy, 0, NULL, NULL, &dx));
  compare("disc y", &y, need(io, "y"), T_FWD);
  compare("disc dx", &dx, need(io, "dx"), T_GRAD);
  compare_grads(net, io, "", NULL, 0);
  expect_clean("discriminator");
}
END_TEST

/* ---------------------------------------------------------- projector */

/* The gradients of mlp_<l> against <prefix>grad.mlp_<l>.*; the other
 * layers' gradients stay zero. */
static void compare_mlp_grads(const ngc_net *net, int32_t l, const ngc_st_file *f,
                              const char *prefix) {
  char name[256], own[32];
  snprintf(own, sizeof own, "mlp_%d.", (int)l);
  for (int32_t i = 0; i < net->n_params; i++) {
    const ngc_param *p = &net->params[i];
    if (strncmp(p->name, own, strlen(own)) == 0) {
      snprintf(name, sizeof name, "%sgrad.%s", prefix, p->name);
      compare(name, &p->grad, need(f, name), T_GRAD);
    } else {
      int64_t n = ngc_numel(&p->grad);
      float *h = malloc((size_t)n * sizeof *h);
      ck_assert_ptr_nonnull(h);
      OK(ngc_param_download(net, i, h, 1));
      for (int64_t j = 0; j < n; j++)
        ck_assert_msg(h[j] == 0.0f, "%s: gradient of another layer touched", p->name);
      free(h);
    }
  }
}

START_TEST(test_projector) {
  static const int32_t channels[5] = {3, 16, 32, 32, 32};
  setup_ctx(backends[_i]);
  const ngc_st_file *io = open_file(0, "proj_io.safetensors");
  ngc_net *net = &g_net[0];
  OK(ngc_projector_build(net, g_ctx, 5, channels, 256));
  load_weights(net, 1, "proj_weights.safetensors");
  for (int32_t l = 0; l < 5; l++) {
    char n[64], what[96];
    int64_t ids[64];
    snprintf(n, sizeof n, "l%d.feat", (int)l);
    ngc_tensor feat = load_t(io, n);
    const ngc_st_entry *eid;
    snprintf(n, sizeof n, "l%d.ids", (int)l);
    eid = need(io, n);
    i64_of(eid, ids, 64);
    for (int mode = 0; mode < 2; mode++) {
      const char *m = mode ? "a" : "s";
      ngc_proj_rec rec;
      OK(ngc_projector_forward(net, l, &g_tape, &feat, mode ? NULL : ids,
                               mode ? 0 : eid->shape[0], &rec));
      snprintf(n, sizeof n, "l%d.%s.y", (int)l, m);
      snprintf(what, sizeof what, "proj %s", n);
      compare(what, &rec.mlp.y, need(io, n), T_FWD);
      snprintf(n, sizeof n, "l%d.%s.dfeat", (int)l, m);
      ngc_tensor dfeat = like(need(io, n), NAN);
      snprintf(n, sizeof n, "l%d.%s.dy", (int)l, m);
      ngc_tensor dy = load_t(io, n);
      OK(ngc_net_zero_grad(net));
      OK(ngc_projector_backward(net, l, &g_tape, &rec, &dy, &dfeat));
      snprintf(n, sizeof n, "l%d.%s.dfeat", (int)l, m);
      snprintf(what, sizeof what, "proj %s", n);
      compare(what, &dfeat, need(io, n), T_GRAD);
      snprintf(n, sizeof n, "l%d.%s.", (int)l, m);
      compare_mlp_grads(net, l, io, n);
    }
  }
  expect_clean("projector");
}
END_TEST

/* ------------------------------------------------- negative generator */

START_TEST(test_neggen) {
  setup_ctx(backends[_i]);
  const ngc_st_file *io = open_file(0, "neg_io.safetensors");
  int64_t batch = meta_int(io, "batch");
  ngc_net *net = &g_net[0];
  OK(ngc_neggen_build(net, g_ctx, 2, 256, 64));
  load_weights(net, 1, "neg_weights.safetensors");
  for (int32_t l = 0; l < 2; l++) {
    char n[64], what[96];
    ngc_neg_rec rec;
    snprintf(n, sizeof n, "l%d.h_all", (int)l);
    ngc_tensor h = load_t(io, n);
    snprintf(n, sizeof n, "l%d.z", (int)l);
    ngc_tensor z = load_t(io, n);
    OK(ngc_neggen_forward(net, l, &g_tape, &h, batch, &z, &rec));
    snprintf(n, sizeof n, "l%d.y", (int)l);
    snprintf(what, sizeof what, "neg %s", n);
    compare(what, &rec.mlp.y, need(io, n), T_FWD);
    snprintf(n, sizeof n, "l%d.dy", (int)l);
    ngc_tensor dy = load_t(io, n);
    snprintf(n, sizeof n, "l%d.dh_all", (int)l);
    ngc_tensor dh = like(need(io, n), NAN);
    OK(ngc_net_zero_grad(net));
    OK(ngc_neggen_backward(net, l, &g_tape, &rec, &dy, &dh));
    snprintf(what, sizeof what, "neg %s", n);
    compare(what, &dh, need(io, n), T_GRAD);
    snprintf(n, sizeof n, "l%d.", (int)l);
    compare_mlp_grads(net, l, io, n);
  }
  expect_clean("negative generator");
}
END_TEST

/* ----------------------------------------------- checkpoint error paths */

typedef enum damage {
  D_NONE,
  D_MISSING,
  D_EXTRA,
  D_SHAPE,
  D_F64,
  D_FILT,
  D_PREFIX,
  D_TRUNCATE,
  D_TWICE
} damage;

#define VICTIM_MISSING "model.12.conv_block.5.bias"
#define VICTIM_SHAPE "model.4.weight"
#define VICTIM_F64 "model.1.bias"
#define VICTIM_FILT "model.7.filt"
#define EXTRA_NAME "model.99.weight"

/* The good gen_small weights rewritten with one kind of damage, in memory
 * (free() it). */
static void *damaged(const ngc_st_file *good, damage d, size_t *len) {
  ngc_st_writer *w;
  void *buf = NULL, *keep[4] = {0};
  int nk = 0;
  OK(ngc_st_writer_create(g_ctx, &w));
  for (int64_t i = 0; i < ngc_st_count(good); i++) {
    const ngc_st_entry *e = ngc_st_entry_at(good, i);
    char name[128];
    int64_t shape[NGC_ST_MAX_DIMS];
    ngc_st_dtype dtype = e->dtype;
    const void *data = e->data;
    memcpy(shape, e->shape, sizeof shape);
    snprintf(name, sizeof name, "%s%s", d == D_PREFIX ? "module." : "", e->name);
    if (d == D_MISSING && strcmp(e->name, VICTIM_MISSING) == 0) continue;
    if (d == D_SHAPE && strcmp(e->name, VICTIM_SHAPE) == 0) {
      shape[0] = e->shape[1]; /* (16, 8, 3, 3) -> (8, 16, 3, 3): same bytes */
      shape[1] = e->shape[0];
    }
    if (d == D_F64 && strcmp(e->name, VICTIM_F64) == 0) {
      float *f = host_of(e);
      size_t n = e->nbytes / sizeof(float);
      double *g = malloc(n * sizeof *g);
      ck_assert_ptr_nonnull(g);
      for (size_t j = 0; j < n; j++) g[j] = f[j];
      free(f);
      keep[nk++] = g;
      dtype = NGC_ST_F64;
      data = g;
    }
    if (d == D_FILT && strcmp(e->name, VICTIM_FILT) == 0) {
      float *f = host_of(e);
      f[4] += 0.01f; /* the centre tap of channel 0: 0.25 -> 0.26 */
      keep[nk++] = f;
      data = f;
    }
    OK(ngc_st_writer_add(w, name, dtype, e->ndim, shape, data));
    if (d == D_TWICE && strcmp(e->name, VICTIM_MISSING) == 0) { /* also DataParallel's name */
      snprintf(name, sizeof name, "module.%s", e->name);
      OK(ngc_st_writer_add(w, name, dtype, e->ndim, shape, data));
    }
  }
  if (d == D_EXTRA) {
    static const float extra[6] = {1, 2, 3, 4, 5, 6};
    OK(ngc_st_writer_add(w, EXTRA_NAME, NGC_ST_F32, 2, (int64_t[2]){2, 3}, extra));
  }
  OK(ngc_st_write_memory(g_ctx, w, &buf, len));
  ngc_st_writer_free(w);
  for (int i = 0; i < nk; i++) free(keep[i]);
  if (d == D_TRUNCATE) *len -= 6; /* the last tensor loses its tail */
  return buf;
}

static const struct {
  damage d;
  negcut_status want;
  const char *names; /* what the message must name */
} damages[] = {
    {D_NONE, NEGCUT_OK, NULL},
    {D_MISSING, NEGCUT_ERR_BAD_FORMAT, VICTIM_MISSING},
    {D_EXTRA, NEGCUT_ERR_BAD_FORMAT, EXTRA_NAME},
    {D_SHAPE, NEGCUT_ERR_SHAPE, VICTIM_SHAPE},
    {D_F64, NEGCUT_ERR_BAD_FORMAT, VICTIM_F64},
    {D_FILT, NEGCUT_ERR_BAD_FORMAT, VICTIM_FILT},
    {D_PREFIX, NEGCUT_OK, NULL},
    {D_TRUNCATE, NEGCUT_ERR_BAD_FORMAT, NULL /* the last tensor: set below */},
    {D_TWICE, NEGCUT_ERR_BAD_FORMAT, "module." VICTIM_MISSING},
};
#define N_DAMAGES ((int)(sizeof damages / sizeof damages[0]))

START_TEST(test_checkpoint_errors) {
  setup_ctx(NEGCUT_BACKEND_REF);
  const ngc_st_file *good = open_file(0, "gen_small_weights.safetensors");
  ngc_generator_cfg cfg = {3, 3, 8, 2, 0, 0};
  size_t len;
  void *buf = damaged(good, damages[_i].d, &len);
  ngc_st_file *f = NULL;
  const char *names = damages[_i].names;
  negcut_status st = ngc_st_open_memory(g_ctx, buf, len, &f);
  if (st == NEGCUT_OK) {
    OK(ngc_generator_build(&g_net[0], g_ctx, &cfg));
    st = ngc_net_load(g_ctx, &g_net[0], f, "damaged.safetensors");
  }
  if (damages[_i].d == D_TRUNCATE) names = ngc_st_entry_at(good, ngc_st_count(good) - 1)->name;
  printf("checkpoint damage %d: %s: %s\n", (int)damages[_i].d, negcut_status_str(st),
         st ? negcut_ctx_last_error(g_ctx) : "loaded");
  ck_assert_msg(st == damages[_i].want, "damage %d: got %s (%s), want %s", (int)damages[_i].d,
                negcut_status_str(st), negcut_ctx_last_error(g_ctx),
                negcut_status_str(damages[_i].want));
  if (names)
    ck_assert_msg(strstr(negcut_ctx_last_error(g_ctx), names) != NULL,
                  "damage %d: the message \"%s\" does not name %s", (int)damages[_i].d,
                  negcut_ctx_last_error(g_ctx), names);
  if (st == NEGCUT_OK) {
    /* The loaded values are the file's (under the prefix too). */
    for (int32_t i = 0; i < g_net[0].n_params; i++) {
      const ngc_st_entry *e = need(good, g_net[0].params[i].name);
      float *want = host_of(e), *got = malloc(e->nbytes);
      ck_assert_ptr_nonnull(got);
      OK(ngc_param_download(&g_net[0], i, got, 0));
      ck_assert_msg(memcmp(got, want, e->nbytes) == 0, "%s differs after loading", e->name);
      free(want);
      free(got);
    }
    /* The public API loads it too (architecture inferred from the names). */
    OK(negcut_model_load_memory(&g_model, g_ctx, buf, len));
    ck_assert_int_eq(g_model->cfg.ngf, 8);
    ck_assert_int_eq(g_model->cfg.n_blocks, 2);
  } else {
    /* ... and fails the same way. */
    ck_assert_int_eq(negcut_model_load_memory(&g_model, g_ctx, buf, len), damages[_i].want);
    ck_assert_ptr_null(g_model);
    if (names) ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(g_ctx), names));
  }
  ngc_st_close(f);
  free(buf);
}
END_TEST

/* --------------------------------------------------- reverse direction */

/* A generator initialised here, saved with its metadata, and its output on
 * a fixed input: net_parity.py --verify runs it in PyTorch. */
START_TEST(test_reverse_export) {
  char path[1024];
  ngc_generator_cfg cfg = {3, 3, 8, 2, 0, 0};
  ngc_cfg_meta meta;
  ngc_net *net = &g_net[0];
  int64_t xd[4] = {1, 3, 36, 44}, n = 3 * 36 * 44;
  ngc_tensor x, y;
  float *hx = malloc((size_t)n * sizeof *hx), *hy = malloc((size_t)n * sizeof *hy);
  ngc_st_writer *w;
  ck_assert_ptr_nonnull(hx);
  ck_assert_ptr_nonnull(hy);
  setup_ctx(NEGCUT_BACKEND_CPU);
  if (mkdir(g_dir, 0777) != 0) ck_assert_int_eq(errno, EEXIST);
  OK(ngc_generator_build(net, g_ctx, &cfg));
  OK(ngc_net_init_weights(net, 1, 1.0f));
  /* Non-zero biases, and a final conv that keeps tanh out of saturation. */
  const int32_t last_w = net->layers[net->n_layers - 2].w; /* the 7x7 conv before tanh */
  ck_assert_int_ge(last_w, 0);
  for (int32_t i = 0; i < net->n_params; i++) {
    ngc_param *p = &net->params[i];
    int64_t k = ngc_numel(&p->value);
    int last = i == last_w;
    if (p->buffer || (p->value.ndim != 1 && !last)) continue;
    float *h = malloc((size_t)k * sizeof *h);
    ck_assert_ptr_nonnull(h);
    OK(ngc_param_download(net, i, h, 0));
    for (int64_t j = 0; j < k; j++) h[j] = last ? 0.5f * h[j] : 0.1f * sinf(0.7f * (float)(j + i));
    OK(ngc_param_upload(net, i, h));
    free(h);
  }
  for (int64_t j = 0; j < n; j++) hx[j] = sinf(0.37f * (float)j) * cosf(0.011f * (float)j);
  OK(ngc_tape_tensor(&g_tape, &x, 4, xd));
  OK(ngc_tape_tensor(&g_tape, &y, 4, xd));
  OK(g_ctx->be->ops.upload(g_ctx->be, x.data, hx, (size_t)n * sizeof *hx));
  OK(ngc_seq_forward(net, &g_tape, &x, -1, NULL, &y));
  OK(g_ctx->be->ops.download(g_ctx->be, hy, y.data, (size_t)n * sizeof *hy));
  float big = 0.0f;
  for (int64_t j = 0; j < n; j++) big = fmaxf(big, fabsf(hy[j]));
  ck_assert_msg(big > 0.3f && big < 0.999f, "output max |y| %g: trivial or saturated", big);

  ngc_generator_cfg_meta(&cfg, &meta);
  path_of(path, sizeof path, "ours_G.safetensors");
  OK(ngc_net_save(g_ctx, net, path, meta.n, meta.keys, meta.values));
  OK(ngc_st_writer_create(g_ctx, &w));
  OK(ngc_st_writer_add(w, "x", NGC_ST_F32, 4, xd, hx));
  OK(ngc_st_writer_add(w, "y", NGC_ST_F32, 4, xd, hy));
  path_of(path, sizeof path, "ours_io.safetensors");
  negcut_status st = ngc_st_write(g_ctx, w, path);
  ngc_st_writer_free(w);
  OK(st);

  /* Round trip through the public API: the same output (with the direct
   * convolutions g_tape ran). */
  path_of(path, sizeof path, "ours_G.safetensors");
  OK(negcut_model_load(&g_model, g_ctx, path));
  ck_assert_mem_eq(&g_model->cfg, &cfg, sizeof cfg);
  negcut_translator_options to;
  negcut_translator_options_init(&to);
  to.conv_algo = NEGCUT_CONV_DIRECT;
  OK(negcut_translator_create(&g_tr, g_ctx, g_model, &to));
  float *again = malloc((size_t)n * sizeof *again);
  ck_assert_ptr_nonnull(again);
  OK(negcut_translate_f32(g_tr, hx, 1, 36, 44, again));
  ck_assert_msg(memcmp(again, hy, (size_t)n * sizeof *hy) == 0,
                "the reloaded model gives another output");
  printf("reverse: wrote ours_G.safetensors, max |y| %.3f\n", big);
  free(again);
  free(hx);
  free(hy);
}
END_TEST

int main(int argc, char **argv) {
  Suite *s = suite_create("parity_nets");
  TCase *big = tcase_create("default_generator"), *small = tcase_create("small_nets");
  TCase *ckpt = tcase_create("checkpoint");
  g_dir = argc > 1 ? argv[1] : NGC_TEST_DATA_DIR "/nets";
  setvbuf(stdout, NULL, _IOLBF, 0); /* a failing forked test still shows its lines */
  {
    char path[1024];
    FILE *probe;
    snprintf(path, sizeof path, "%s/gen_io.safetensors", g_dir);
    probe = fopen(path, "rb");
    if (!probe) {
      fprintf(stderr, "check_parity_nets: cannot open %s\n(make it with tools/net_parity.py "
                      "%s; ctest runs parity_nets_dump first)\n", path, g_dir);
      return EXIT_FAILURE;
    }
    fclose(probe);
  }
  tcase_add_checked_fixture(big, NULL, teardown);
  tcase_add_checked_fixture(small, NULL, teardown);
  tcase_add_checked_fixture(ckpt, NULL, teardown);
  tcase_set_timeout(big, 120);
  tcase_set_timeout(small, 60);
  tcase_set_timeout(ckpt, 30);
  tcase_add_test(big, test_full_generator_256);
  tcase_add_test(big, test_full_generator_250x333);
  tcase_add_loop_test(small, test_small_generator, 0, N_GEN * N_BACKENDS);
  tcase_add_loop_test(small, test_discriminator, 0, N_BACKENDS);
  tcase_add_loop_test(small, test_projector, 0, N_BACKENDS);
  tcase_add_loop_test(small, test_neggen, 0, N_BACKENDS);
  tcase_add_loop_test(ckpt, test_checkpoint_errors, 0, N_DAMAGES);
  tcase_add_test(ckpt, test_reverse_export);
  suite_add_tcase(s, big);
  suite_add_tcase(s, small);
  suite_add_tcase(s, ckpt);
  return ngc_test_run(s);
}
