/* PyTorch parity of every backend op (STYLE.md 17), on the ref and cpu
 * backends. tools/op_parity.py dumps, for each case "<op>.<variant>", the
 * inputs, a random upstream gradient dy, PyTorch's output y and gradients
 * d<input>, with the op parameters in the metadata "<case>.<param>". Each case
 * runs here forward and backward through the backend slots and every result
 * is compared with the tolerance stated in the case table.
 *
 * A slot that is NULL on the cpu backend falls back to ref (backend.h); a
 * slot NULL on both fails the case with "slot X not implemented".
 *
 * Usage: check_parity_ops [file]   (default NGC_TEST_DATA_DIR/op_parity.safetensors) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "ngc_test.h"

typedef struct tol {
  double atol, rtol;
} tol;

typedef struct pcase {
  const char *name;
  void (*run)(void);
  tol fwd, bwd; /* outputs; gradients (Adam and EMA use fwd for all) */
} pcase;

static ngc_st_file *g_file;
static const pcase *g_case;
static negcut_ctx *g_ctx;
static const char *g_backend;
static int g_bad; /* tensors of the current case that differ */
#define MAX_TENSORS 64
static ngc_tensor g_t[MAX_TENSORS];
static int g_nt;

/* ------------------------------------------------------------ helpers */

/* Calls slot `name` on the context's backend, or on ref where it is NULL. */
#define CALL(slot, ...)                                                             \
  do {                                                                              \
    ngc_backend *be_ = g_ctx->be->ops.slot ? g_ctx->be                              \
                       : g_ctx->ref->ops.slot ? g_ctx->ref                          \
                                              : NULL;                               \
    ck_assert_msg(be_ != NULL, "%s [%s]: slot %s not implemented (NULL on %s%s)",  \
                  g_case->name, g_backend, #slot, g_backend,                        \
                  g_ctx->be == g_ctx->ref ? "" : " and on ref");                    \
    negcut_status st_ = be_->ops.slot(be_, __VA_ARGS__);                            \
    ck_assert_msg(st_ == NEGCUT_OK, "%s [%s]: %s returned %s: %s", g_case->name,    \
                  g_backend, #slot, negcut_status_str(st_),                         \
                  negcut_ctx_last_error(g_ctx));                                    \
  } while (0)

static const ngc_st_entry *entry(const char *suffix) {
  char name[160];
  snprintf(name, sizeof name, "%s.%s", g_case->name, suffix);
  const ngc_st_entry *e = ngc_st_find(g_file, name);
  ck_assert_msg(e != NULL, "tensor %s missing from the parity file", name);
  return e;
}

static int has(const char *suffix) {
  char name[160];
  snprintf(name, sizeof name, "%s.%s", g_case->name, suffix);
  return ngc_st_find(g_file, name) != NULL;
}

static const char *param_str(const char *key) {
  char name[160];
  snprintf(name, sizeof name, "%s.%s", g_case->name, key);
  const char *v = ngc_st_metadata(g_file, name);
  ck_assert_msg(v != NULL, "metadata %s missing from the parity file", name);
  return v;
}

static double param(const char *key) { return strtod(param_str(key), NULL); }

/* A tensor of the given shape on the backend, every element init. */
static ngc_tensor *tensor(int32_t ndim, const int64_t *dim, float init) {
  ngc_tensor *t;
  float *host;
  int64_t n;
  ck_assert_int_lt(g_nt, MAX_TENSORS);
  t = &g_t[g_nt];
  ck_assert_msg(ngc_tensor_alloc(g_ctx, g_ctx->be, t, ndim, dim) == NEGCUT_OK, "%s",
                negcut_ctx_last_error(g_ctx));
  g_nt++;
  n = ngc_numel(t);
  host = malloc((size_t)(n ? n : 1) * sizeof *host);
  for (int64_t i = 0; i < n; i++) host[i] = init;
  ck_assert_int_eq(g_ctx->be->ops.upload(g_ctx->be, t->data, host, (size_t)n * sizeof *host),
                   NEGCUT_OK);
  free(host);
  return t;
}

/* Shape of an F32 entry as a tensor shape (0-dim reads as (1)). */
static int32_t entry_shape(const ngc_st_entry *e, int64_t *dim) {
  ck_assert_msg(e->dtype == NGC_ST_F32, "%s: dtype %s, want F32", e->name,
                ngc_st_dtype_name(e->dtype));
  ck_assert_msg(e->ndim <= NGC_MAX_DIMS, "%s: %d dims", e->name, (int)e->ndim);
  if (e->ndim == 0) {
    dim[0] = 1;
    return 1;
  }
  for (int32_t i = 0; i < e->ndim; i++) dim[i] = e->shape[i];
  return e->ndim;
}

/* An input: the dumped tensor, uploaded. */
static ngc_tensor *in(const char *suffix) {
  const ngc_st_entry *e = entry(suffix);
  int64_t dim[NGC_MAX_DIMS];
  int32_t nd = entry_shape(e, dim);
  ngc_tensor *t = tensor(nd, dim, 0.0f);
  ck_assert_int_eq(g_ctx->be->ops.upload(g_ctx->be, t->data, e->data, e->nbytes), NEGCUT_OK);
  return t;
}

/* An output shaped like the dumped `suffix`, every element init: NaN for
 * what the slot must assign, 0 or another value for what it accumulates. */
static ngc_tensor *out_like(const char *suffix, float init) {
  int64_t dim[NGC_MAX_DIMS];
  int32_t nd = entry_shape(entry(suffix), dim);
  return tensor(nd, dim, init);
}

/* Compares t with the dumped `suffix` plus `offset` (what was in an
 * accumulated gradient before the call). */
static void check_plus(const char *suffix, const ngc_tensor *t, double offset, tol tl) {
  const ngc_st_entry *e = entry(suffix);
  int64_t n = ngc_numel(t);
  char what[200];
  ck_assert_msg((size_t)n * sizeof(float) == e->nbytes, "%s: %lld elements, want %zu", e->name,
                (long long)n, e->nbytes / sizeof(float));
  float *got = malloc((size_t)(n ? n : 1) * sizeof *got);
  float *want = malloc((size_t)(n ? n : 1) * sizeof *want);
  ck_assert_int_eq(g_ctx->be->ops.download(g_ctx->be, got, t->data, (size_t)n * sizeof *got),
                   NEGCUT_OK);
  memcpy(want, e->data, e->nbytes);
  for (int64_t i = 0; i < n; i++) want[i] = (float)(want[i] + offset);
  snprintf(what, sizeof what, "%s [%s]%s", e->name, g_backend, offset != 0.0 ? " (+=)" : "");
  if (ngc_test_compare(what, got, want, n, tl.atol, tl.rtol)) g_bad++;
  free(got);
  free(want);
}

static void check(const char *suffix, const ngc_tensor *t, tol tl) {
  check_plus(suffix, t, 0.0, tl);
}

static float scalar(const char *suffix) {
  const ngc_st_entry *e = entry(suffix);
  float v;
  ck_assert_uint_eq(e->nbytes, sizeof v);
  memcpy(&v, e->data, sizeof v);
  return v;
}

/* --------------------------------------------------------------- ops */

/* Shared by conv2d and convt2d: forward, backward, then a second backward
 * with dx and db NULL and dw holding 0.5, which must skip dx/db and add. */
static void run_conv_any(int transposed) {
  ngc_conv_params p = {.stride = (int32_t)param("stride"), .pad = (int32_t)param("pad"),
                       .out_pad = transposed ? (int32_t)param("out_pad") : 0};
  int bias = has("b");
  ngc_tensor *x = in("x"), *w = in("w"), *b = bias ? in("b") : NULL;
  ngc_tensor *y = out_like("y", NAN), *dy = in("dy");
  ngc_tensor *dx = out_like("dx", NAN), *dw = out_like("dw", 0.0f);
  ngc_tensor *db = bias ? out_like("db", 0.0f) : NULL, *dw2 = out_like("dw", 0.5f);
  if (transposed) {
    CALL(convt2d_fwd, &p, x, w, b, y);
    CALL(convt2d_bwd, &p, x, w, dy, dx, dw, db);
    CALL(convt2d_bwd, &p, x, w, dy, NULL, dw2, NULL);
  } else {
    CALL(conv2d_fwd, &p, x, w, b, y);
    CALL(conv2d_bwd, &p, x, w, dy, dx, dw, db);
    CALL(conv2d_bwd, &p, x, w, dy, NULL, dw2, NULL);
  }
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
  check("dw", dw, g_case->bwd);
  if (bias) check("db", db, g_case->bwd);
  check_plus("dw", dw2, 0.5, g_case->bwd);
}

static void run_conv2d(void) { run_conv_any(0); }
static void run_convt2d(void) { run_conv_any(1); }

static void run_pad(void) {
  const char *m = param_str("mode");
  ngc_pad_mode mode = strcmp(m, "reflect") == 0     ? NGC_PAD_REFLECT
                      : strcmp(m, "replicate") == 0 ? NGC_PAD_REPLICATE
                                                    : NGC_PAD_ZERO;
  int32_t pad = (int32_t)param("pad");
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *dy = in("dy"), *dx = out_like("dx", NAN);
  CALL(pad_fwd, mode, pad, x, y);
  CALL(pad_bwd, mode, pad, dy, dx);
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

static void run_inorm(void) {
  float eps = (float)param("eps");
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *mean = out_like("mean", NAN);
  ngc_tensor *rstd = out_like("rstd", NAN), *dy = in("dy"), *dx = out_like("dx", NAN);
  CALL(inorm_fwd, eps, x, y, mean, rstd);
  CALL(inorm_bwd, y, rstd, dy, dx);
  check("y", y, g_case->fwd);
  check("mean", mean, g_case->fwd);
  check("rstd", rstd, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

static void run_act(void) {
  const char *a = param_str("act");
  ngc_act act = strcmp(a, "relu") == 0 ? NGC_ACT_RELU
                : strcmp(a, "lrelu") == 0 ? NGC_ACT_LRELU
                                          : NGC_ACT_TANH;
  float alpha = (float)param("alpha");
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *dy = in("dy"), *dx = out_like("dx", NAN);
  CALL(act_fwd, act, alpha, x, y);
  CALL(act_bwd, act, alpha, x, y, dy, dx);
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

static void run_blur_down(void) {
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *dy = in("dy"), *dx = out_like("dx", NAN);
  CALL(blur_down_fwd, x, y);
  CALL(blur_down_bwd, dy, dx);
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

static void run_blur_up(void) {
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *dy = in("dy"), *dx = out_like("dx", NAN);
  CALL(blur_up_fwd, x, y);
  CALL(blur_up_bwd, dy, dx);
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

static void run_add(void) {
  ngc_tensor *a = in("a"), *b = in("b"), *y = out_like("y", NAN);
  CALL(add, a, b, y);
  check("y", y, g_case->fwd);
}

/* With beta 0 the old y is NaN: the slot must not read it. */
static void run_axpby(void) {
  float alpha = (float)param("alpha"), beta = (float)param("beta");
  ngc_tensor *x = in("x"), *y = beta != 0.0f ? in("y0") : out_like("y0", NAN);
  CALL(axpby, alpha, x, beta, y);
  check("y", y, g_case->fwd);
}

static void run_fill(void) {
  ngc_tensor *y = out_like("y", NAN);
  CALL(fill, y, (float)param("v"));
  check("y", y, g_case->fwd);
}

/* The flip is its own inverse: backward is the same slot on dy. */
static void run_hflip(void) {
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *dy = in("dy"), *dx = out_like("dx", NAN);
  CALL(hflip, x, y);
  CALL(hflip, dy, dx);
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

static void run_concat(void) {
  ngc_tensor *a = in("a"), *b = in("b"), *y = out_like("y", NAN), *dy = in("dy");
  ngc_tensor *da = out_like("da", NAN), *db = out_like("db", NAN);
  CALL(concat_fwd, a, b, y);
  CALL(concat_bwd, dy, da, db);
  check("y", y, g_case->fwd);
  check("da", da, g_case->bwd);
  check("db", db, g_case->bwd);
}

static void run_linear(void) {
  ngc_tensor *x = in("x"), *w = in("w"), *b = in("b"), *y = out_like("y", NAN), *dy = in("dy");
  ngc_tensor *dx = out_like("dx", NAN), *dw = out_like("dw", 0.0f), *db = out_like("db", 0.0f);
  ngc_tensor *dw2 = out_like("dw", 0.5f), *db2 = out_like("db", 0.5f);
  CALL(linear_fwd, x, w, b, y);
  CALL(linear_bwd, x, w, dy, dx, dw, db);
  CALL(linear_bwd, x, w, dy, NULL, dw2, db2);
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
  check("dw", dw, g_case->bwd);
  check("db", db, g_case->bwd);
  check_plus("dw", dw2, 0.5, g_case->bwd);
  check_plus("db", db2, 0.5, g_case->bwd);
}

/* Both bmm gradients are activation gradients: assigned. */
static void run_bmm(void) {
  ngc_tensor *a = in("a"), *b = in("b"), *y = out_like("y", NAN), *dy = in("dy");
  ngc_tensor *da = out_like("da", NAN), *db = out_like("db", NAN);
  CALL(bmm_fwd, a, b, y);
  CALL(bmm_bwd, a, b, dy, da, db);
  check("y", y, g_case->fwd);
  check("da", da, g_case->bwd);
  check("db", db, g_case->bwd);
}

static void run_l2norm(void) {
  float eps = (float)param("eps");
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *norm = out_like("norm", NAN);
  ngc_tensor *dy = in("dy"), *dx = out_like("dx", NAN);
  CALL(l2norm_fwd, eps, x, y, norm);
  CALL(l2norm_bwd, eps, x, norm, dy, dx);
  check("y", y, g_case->fwd);
  check("norm", norm, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

/* dx starts as NaN: positions never gathered must be set to 0. */
static void run_gather(void) {
  const ngc_st_entry *e = entry("ids");
  int64_t n_ids = (int64_t)(e->nbytes / sizeof(int64_t));
  int64_t *ids = malloc(e->nbytes ? e->nbytes : 1);
  ck_assert_int_eq(e->dtype, NGC_ST_I64);
  memcpy(ids, e->data, e->nbytes);
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *dy = in("dy"), *dx = out_like("dx", NAN);
  CALL(gather_fwd, x, ids, n_ids, y);
  CALL(gather_bwd, dy, ids, n_ids, dx);
  free(ids);
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

static void run_mean(void) {
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *dy = in("dy"), *dx = out_like("dx", NAN);
  CALL(mean_fwd, x, y);
  CALL(mean_bwd, dy, dx);
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

static void run_fill_diag(void) {
  float v = (float)param("v");
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *dy = in("dy"), *dx = out_like("dx", NAN);
  CALL(fill_diag_fwd, v, x, y);
  CALL(fill_diag_bwd, dy, dx);
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

static void run_xent0(void) {
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *dy = in("dy"), *dx = out_like("dx", NAN);
  CALL(xent0_fwd, x, y);
  CALL(xent0_bwd, x, dy, dx);
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

static void run_mse_const(void) {
  float t = (float)param("t");
  ngc_tensor *x = in("x"), *y = out_like("y", NAN), *dx = out_like("dx", NAN);
  CALL(mse_const_fwd, x, t, y);
  CALL(mse_const_bwd, x, t, scalar("dy"), dx);
  check("y", y, g_case->fwd);
  check("dx", dx, g_case->bwd);
}

static void run_mad(void) {
  ngc_tensor *a = in("a"), *b = in("b"), *y = out_like("y", NAN);
  ngc_tensor *da = out_like("da", NAN), *db = out_like("db", NAN);
  CALL(mad_fwd, a, b, y);
  CALL(mad_bwd, a, b, scalar("dy"), da, db);
  check("y", y, g_case->fwd);
  check("da", da, g_case->bwd);
  check("db", db, g_case->bwd);
}

static void run_mean_all(void) {
  ngc_tensor *x = in("x"), *y = out_like("y", NAN);
  CALL(mean_all, x, y);
  check("y", y, g_case->fwd);
}

/* Three steps of torch.optim.Adam; parameters and both moments after each. */
static void run_adam(void) {
  ngc_adam_params ap = {(float)param("lr"), (float)param("beta1"), (float)param("beta2"),
                        (float)param("eps"), (float)param("weight_decay"), 0};
  int steps = (int)param("steps");
  ngc_tensor *p = in("p0"), *m = out_like("p0", 0.0f), *v = out_like("p0", 0.0f);
  char name[32];
  for (int s = 1; s <= steps; s++) {
    snprintf(name, sizeof name, "g%d", s);
    ngc_tensor *g = in(name);
    ap.step = s;
    CALL(adam, &ap, p, g, m, v);
    snprintf(name, sizeof name, "p%d", s);
    check(name, p, g_case->fwd);
    snprintf(name, sizeof name, "m%d", s);
    check(name, m, g_case->fwd);
    snprintf(name, sizeof name, "v%d", s);
    check(name, v, g_case->fwd);
  }
}

static void run_ema(void) {
  ngc_tensor *target = in("target"), *src = in("src");
  CALL(ema, (float)param("decay"), target, src);
  check("y", target, g_case->fwd);
}

/* -------------------------------------------------------------- cases */

/* Tolerances: |got - want| <= atol + rtol * |want|, float32 against
 * PyTorch's float32. Sums of k terms of size ~1 carry ~k * 6e-8 error. */
#define T_EXACT {0.0, 0.0}           /* copies, pads, flips: bit-exact */
#define T_ELEM {1e-6, 1e-6}          /* one rounding or so */
#define T_SUM {1e-5, 1e-5}           /* short sums */
#define T_CONV {2e-5, 1e-4}          /* conv / matmul outputs */
#define T_GRADW {1e-4, 1e-4}         /* weight gradients: sums over N*H*W */
#define T_OPT {1e-10, 2e-6}          /* Adam: a few roundings, tiny moments */
#define T_EMA {2.5e-7, 1e-6}         /* d*t + (1-d)*s cancels: 2 ulps of |t|, |s| ~ 1 */

static const pcase cases[] = {
    {"conv2d.k3s1p1", run_conv2d, T_CONV, T_GRADW},
    {"conv2d.k3s2p1", run_conv2d, T_CONV, T_GRADW},
    {"conv2d.k3s2p1nb", run_conv2d, T_CONV, T_GRADW},
    {"conv2d.k7s1p0", run_conv2d, T_CONV, T_GRADW},
    {"conv2d.k4s1p1", run_conv2d, T_CONV, T_GRADW},
    {"conv2d.k4s2p1", run_conv2d, T_CONV, T_GRADW},
    {"convt2d.k3s2p1op1", run_convt2d, T_CONV, T_GRADW},
    {"convt2d.k4s2p1op0", run_convt2d, T_CONV, T_GRADW},
    {"pad.reflect1", run_pad, T_EXACT, T_ELEM},
    {"pad.reflect3", run_pad, T_EXACT, T_ELEM},
    {"pad.replicate1", run_pad, T_EXACT, T_ELEM},
    {"pad.zero1", run_pad, T_EXACT, T_EXACT},
    {"pad.zero3", run_pad, T_EXACT, T_EXACT},
    {"inorm.3x7x9", run_inorm, T_SUM, T_SUM},
    {"inorm.4x5x6", run_inorm, {1e-5, 1e-4}, {1e-5, 1e-4}},
    {"act.relu", run_act, T_EXACT, T_EXACT},
    {"act.lrelu", run_act, T_ELEM, T_ELEM},
    {"act.tanh", run_act, T_ELEM, T_ELEM},
    {"blur_down.3x7x9", run_blur_down, T_ELEM, T_ELEM},
    {"blur_down.3x8x10", run_blur_down, T_ELEM, T_ELEM},
    {"blur_down.2x5x4", run_blur_down, T_ELEM, T_ELEM},
    {"blur_up.3x4x5", run_blur_up, T_ELEM, T_ELEM},
    {"blur_up.2x3x7", run_blur_up, T_ELEM, T_ELEM},
    {"add", run_add, T_ELEM, T_ELEM},
    {"axpby.a2b05", run_axpby, T_ELEM, T_ELEM},
    {"axpby.beta0", run_axpby, T_ELEM, T_ELEM},
    {"fill", run_fill, T_EXACT, T_EXACT},
    {"hflip.2x3x5x7", run_hflip, T_EXACT, T_EXACT},
    {"concat.3p2", run_concat, T_EXACT, T_EXACT},
    {"linear.10x7x5", run_linear, T_CONV, T_GRADW},
    {"linear.6x320x16", run_linear, T_CONV, T_GRADW},
    {"bmm.2x5x6x8", run_bmm, T_CONV, T_CONV},
    {"l2norm.10x16", run_l2norm, T_ELEM, T_ELEM},
    /* |x| ~ 2e-3: dx reaches ~400 and cancels; 1e-4 is 2.5e-7 of that scale. */
    {"l2norm.small", run_l2norm, {1e-6, 1e-5}, {1e-4, 1e-5}},
    {"gather.5x7x9.s12", run_gather, T_EXACT, T_EXACT},
    {"gather.3x4x5.s20", run_gather, T_EXACT, T_EXACT},
    {"mean.2x11x6", run_mean, T_ELEM, T_ELEM},
    {"fill_diag.2x6x6", run_fill_diag, T_EXACT, T_EXACT},
    {"xent0.12x9", run_xent0, T_SUM, T_ELEM},
    {"xent0.nce8", run_xent0, {1e-5, 1e-5}, T_ELEM},
    {"mse_const.t1", run_mse_const, T_SUM, T_ELEM},
    {"mse_const.t0", run_mse_const, T_SUM, T_ELEM},
    {"mad.2x4x8", run_mad, T_SUM, T_ELEM},
    {"mean_all", run_mean_all, T_SUM, T_SUM},
    {"adam.cut", run_adam, T_OPT, T_OPT},
    {"adam.wd", run_adam, T_OPT, T_OPT},
    {"ema.0.9", run_ema, T_EMA, T_EMA},
    {"ema.0.999", run_ema, T_EMA, T_EMA},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static const negcut_backend_kind backends[] = {NEGCUT_BACKEND_REF, NEGCUT_BACKEND_CPU};
#define N_BACKENDS 2

static void teardown(void) {
  for (int i = 0; i < g_nt; i++) ngc_tensor_release(&g_t[i]);
  g_nt = 0;
  negcut_ctx_free(g_ctx);
  g_ctx = NULL;
}

/* Loop index i: case i / N_BACKENDS on backend i % N_BACKENDS. */
START_TEST(test_case) {
  negcut_ctx_options o;
  g_case = &cases[_i / N_BACKENDS];
  negcut_ctx_options_init(&o);
  o.backend = backends[_i % N_BACKENDS];
  o.threads = 2;
  ck_assert_msg(negcut_ctx_create(&g_ctx, &o) == NEGCUT_OK, "%s",
                negcut_ctx_last_error(NULL));
  g_backend = negcut_backend_name(o.backend);
  g_bad = 0;
  g_case->run();
  ck_assert_msg(g_bad == 0, "%s [%s]: %d tensor(s) differ from PyTorch (details on stderr)",
                g_case->name, g_backend, g_bad);
}
END_TEST

/* Every case in the file has a runner here: a new op in op_parity.py
 * cannot go unchecked. */
START_TEST(test_file_covered) {
  int64_t n = ngc_st_count(g_file);
  for (int64_t i = 0; i < n; i++) {
    const char *name = ngc_st_entry_at(g_file, i)->name, *dot = strrchr(name, '.');
    int found = 0;
    ck_assert_ptr_nonnull(dot);
    for (int c = 0; c < N_CASES && !found; c++)
      found = strlen(cases[c].name) == (size_t)(dot - name) &&
              strncmp(cases[c].name, name, (size_t)(dot - name)) == 0;
    ck_assert_msg(found, "tensor %s belongs to no case of check_parity_ops.c", name);
  }
}
END_TEST

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : NGC_TEST_DATA_DIR "/op_parity.safetensors";
  Suite *s;
  TCase *tc;
  int rc;
  if (ngc_st_open(NULL, path, &g_file) != NEGCUT_OK) {
    fprintf(stderr, "check_parity_ops: %s\n(make it with tools/op_parity.py; ctest runs "
                    "parity_ops_dump first)\n",
            negcut_ctx_last_error(NULL));
    return EXIT_FAILURE;
  }
  s = suite_create("parity_ops");
  tc = tcase_create("ops");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_file_covered);
  tcase_add_loop_test(tc, test_case, 0, N_CASES * N_BACKENDS);
  suite_add_tcase(s, tc);
  rc = ngc_test_run(s);
  ngc_st_close(g_file);
  return rc;
}
