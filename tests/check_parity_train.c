/* PyTorch parity of the training iteration (STYLE.md 17). tools/train_parity.py
 * trains tiny CUT, FastCUT and NEGCUT configurations (ngf 8, ndf 8, 2 ResNet
 * blocks, NCE layers 0,4,8,12,13, 16 patches, netF_nc 32, z_dim 8; 32x32
 * batch 1 and 64x48 batch 2; FastCUT's flip on in one of them) for five
 * iterations in PyTorch, written from REFERENCE.md 4-7, and dumps the initial
 * weights, the inputs, the injected randomness (flip bit, patch ids, noise, in
 * the order lib/train/step.c consumes them), and after every iteration the
 * losses, every network's gradients, parameters and Adam moments. Each test
 * here builds the trainer of the same configuration (ngc_train_cfg_defaults
 * of the mode, shrunk), loads the weights, injects the randomness through
 * t->rand, runs ngc_train_step at lr 2e-4 five times, and after each
 * iteration compares, then sets every parameter and Adam moment to
 * PyTorch's. So each iteration starts from the reference's state and is a
 * one-step comparison: errors do not compound along the trajectory, which
 * GAN training amplifies (free-running, one weight of cut_64x48_b2's
 * generator with a gradient of -5e-7 of its tensor's largest, stepped the
 * other way, moved the fifth iteration's losses by 2.5e-3; oneDNN's AVX2
 * kernels instead of its AVX-512 ones, 2.7e-3). Asserted in every iteration:
 *
 * - the nine loss values (T_LOSS);
 * - the gradients of G, D, F and N: element by element (T_GRAD) in
 *   iteration 1; in iterations 2 to 5 each network's relative L2 error
 *   (T_NORM), with the elements outside T_GRAD reported. There a ReLU or
 *   LeakyReLU input within float32 rounding of 0 takes the other side in one
 *   implementation, and the sums of a convolution's weight gradient before
 *   an instance norm mostly cancel, so such an element moves the gradients by
 *   up to ~2e-3 of their scale (PyTorch float32 against PyTorch float64 on
 *   the same state differs as much, e.g. negcut_64x48_b2's G gradients by
 *   2.2e-3 in iteration 1 already, where cpu matches float32 and ref
 *   float64);
 * - the parameters of G, D, F, N and F_ after the update (T_PARAM, plus
 *   T_GRAD's error carried through Adam's step, check_params), except those
 *   whose gradient lies outside T_GRAD.
 *
 * Every configuration runs on the cpu backend three times, by the passes
 * whose convolutions may use Winograd (ngc_tape.winograd): none (direct
 * sums, PyTorch's own CPU arithmetic: oneDNN 2.6's direct kernels, so it
 * matches closest), the backward passes only, and every pass. All three meet
 * the same tolerances. The largest relative L2 errors of the gradients in
 * iterations 2 to 5 were 1.6e-3 direct and 1.9e-3 with Winograd forward
 * passes (cut_64x48_b2), which in its iteration 2 leaves G's at 2.6e-4
 * where direct leaves 4e-6. The 32x32 batch-1 configurations also run on
 * ref. The largest errors of each class are printed.
 *
 * Usage: check_parity_train [dir]   (default NGC_TEST_DATA_DIR/train) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_conv.h"
#include "io/safetensors.h"
#include "models/net.h"
#include "ngc_test.h"
#include "train/train.h"

/* |got - want| <= atol + scale * max|want| + rtol * |want|, where max|want|
 * is taken over the whole network's gradients (grads) or the tensor (other
 * classes). The scale term covers elements whose true value is ~0 (the bias
 * of a conv followed by instance norm has an exactly zero gradient in exact
 * arithmetic, so both sides hold float32 rounding noise of the net's scale). */
typedef struct tol {
  double atol, rtol, scale;
} tol;

static const tol T_LOSS = {1e-6, 1e-4, 0.0};
static const tol T_GRAD = {0.0, 1e-4, 1e-5};
/* Parameters after the update: plus an allowance per element carried from
 * T_GRAD through Adam's step (check_params) */
static const tol T_PARAM = {1e-6, 1e-5, 0.0};
/* Iterations 2 to 5: the largest relative L2 error of a network's gradients
 * (see the top) */
#define T_NORM 1e-2
#define LR 2e-4

typedef struct tconfig {
  const char *name;
  ngc_mode mode;
  int with_ref; /* also run on the ref backend */
} tconfig;

static const tconfig configs[] = {
    {"cut_32_b1", NGC_MODE_CUT, 1},         {"fastcut_32_b1", NGC_MODE_FASTCUT, 1},
    {"negcut_32_b1", NGC_MODE_NEGCUT, 1},   {"cut_64x48_b2", NGC_MODE_CUT, 0},
    {"fastcut_64x48_b2", NGC_MODE_FASTCUT, 0}, {"negcut_64x48_b2", NGC_MODE_NEGCUT, 0},
};
#define N_CONFIGS ((int)(sizeof configs / sizeof configs[0]))

/* Test index -> (config, backend): every config on cpu, then the ref ones. */
typedef struct run_id {
  const tconfig *cfg;
  negcut_backend_kind backend;
  uint32_t winograd; /* ngc_tape.winograd of the trainer */
} run_id;
static run_id g_runs[4 * N_CONFIGS];
static int g_n_runs;

static const char *g_dir;
static negcut_ctx *g_ctx;
static const char *g_backend;
static ngc_st_file *g_file;
static ngc_trainer g_t;
static int g_t_ok;
static int g_bad;
static int g_quiet; /* compare() counts without printing (gradients, iterations 2-5) */

/* Largest errors of a class: abs error / max|want| of the tensor, and the
 * largest element relative error among elements with |want| >= 1e-3 of it. */
typedef struct err_stat {
  double scaled, rel;
  char where[192];
} err_stat;

#define OK(call)                                                                       \
  do {                                                                                 \
    negcut_status st_ = (call);                                                        \
    ck_assert_msg(st_ == NEGCUT_OK, "%s [%s]: %s: %s", #call, g_backend,               \
                  negcut_status_str(st_), negcut_ctx_last_error(g_ctx));              \
  } while (0)

/* ------------------------------------------------------------ helpers */

static const ngc_st_entry *need(const char *name) {
  const ngc_st_entry *e = ngc_st_find(g_file, name);
  ck_assert_msg(e != NULL, "tensor %s missing from the parity data", name);
  return e;
}

/* The entry's values, aligned (free() them). */
static void *host_of(const ngc_st_entry *e, ngc_st_dtype want) {
  ck_assert_msg(e->dtype == want, "%s is %s, want %s", e->name, ngc_st_dtype_name(e->dtype),
                ngc_st_dtype_name(want));
  void *h = malloc(e->nbytes ? e->nbytes : 1);
  ck_assert_ptr_nonnull(h);
  memcpy(h, e->data, e->nbytes);
  return h;
}

static int64_t numel_of(const ngc_st_entry *e) {
  int64_t n = 1;
  for (int32_t d = 0; d < e->ndim; d++) n *= e->shape[d];
  return n;
}

static void stat_update(err_stat *s, const char *what, const float *got, const float *want,
                        int64_t n, double scale, const unsigned char *skip) {
  double mx = scale, worst = 0.0, rel = 0.0;
  if (mx <= 0)
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
  for (int64_t i = 0; i < n; i++) {
    if (skip && skip[i]) continue;
    double e = fabs((double)got[i] - want[i]);
    worst = fmax(worst, e);
    if (fabs(want[i]) >= 1e-3 * mx && mx > 0) rel = fmax(rel, e / fabs(want[i]));
  }
  if (mx > 0 && worst / mx > s->scaled) {
    s->scaled = worst / mx;
    snprintf(s->where, sizeof s->where, "%s", what);
  }
  s->rel = fmax(s->rel, rel);
}

/* Compares with tolerance t, `scale` relative to scale_ref (0: the tensor's
 * own max |want|); `extra` (may be NULL) allows element i an extra absolute
 * error of extra[i], or skips it where extra[i] is infinite. Returns the
 * mismatches. */
static int64_t compare(const char *what, const float *got, const float *want, int64_t n,
                       const tol *t, double scale_ref, const double *extra) {
  double mx = scale_ref;
  int64_t bad = 0;
  if (mx <= 0)
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
  double atol = t->atol + t->scale * mx;
  if (!extra && !g_quiet) return ngc_test_compare(what, got, want, n, atol, t->rtol);
  for (int64_t i = 0; i < n; i++) {
    if (extra && isinf(extra[i])) continue;
    double lim = atol + (extra ? extra[i] : 0.0);
    double err = fabs((double)got[i] - want[i]);
    if (!(err <= lim + t->rtol * fabs(want[i]))) {
      if (bad < 5 && !g_quiet)
        fprintf(stderr, "%s: [%lld] got %.8g want %.8g (err %.3g, allowed %.3g)\n", what,
                (long long)i, got[i], want[i], err, lim + t->rtol * fabs(want[i]));
      bad++;
    }
  }
  if (bad && !g_quiet)
    fprintf(stderr, "%s: %lld of %lld mismatch (atol %.2g, rtol %.1g, plus the allowance)\n",
            what, (long long)bad, (long long)n, atol, t->rtol);
  return bad;
}

/* ------------------------------------------------------ injected draws */

typedef struct injected {
  int64_t *shape; /* (n_draws, 2): hw, n */
  int64_t n_draws, draw;
  int64_t *ids;
  int64_t n_ids, id_pos;
  float *noise;
  int64_t n_noise, noise_pos;
  int flip, flips_asked;
} injected;

static negcut_status inj_ids(void *user, int32_t layer, int64_t hw, int64_t n, int64_t *out) {
  injected *in = user;
  if (in->draw >= in->n_draws || in->shape[2 * in->draw] != hw ||
      in->shape[2 * in->draw + 1] != n || in->id_pos + n > in->n_ids)
    return ngc_error(g_ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "injected ids: draw %lld (layer %d) asks hw %lld n %lld, the dump has %s",
                     (long long)in->draw, (int)layer, (long long)hw, (long long)n,
                     in->draw < in->n_draws ? "another shape" : "no more draws");
  memcpy(out, in->ids + in->id_pos, (size_t)n * sizeof *out);
  in->id_pos += n;
  in->draw++;
  return NEGCUT_OK;
}

static negcut_status inj_noise(void *user, int32_t layer, int64_t n, float *out) {
  injected *in = user;
  if (in->noise_pos + n > in->n_noise)
    return ngc_error(g_ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "injected noise: layer %d asks %lld values, %lld left", (int)layer,
                     (long long)n, (long long)(in->n_noise - in->noise_pos));
  memcpy(out, in->noise + in->noise_pos, (size_t)n * sizeof *out);
  in->noise_pos += n;
  return NEGCUT_OK;
}

static int inj_flip(void *user) {
  injected *in = user;
  in->flips_asked++;
  return in->flip;
}

static void inj_load(injected *in, int it) {
  char name[64];
  const ngc_st_entry *e;
  memset(in, 0, sizeof *in);
  snprintf(name, sizeof name, "it%d.id_shape", it);
  e = need(name);
  in->shape = host_of(e, NGC_ST_I64);
  in->n_draws = e->shape[0];
  snprintf(name, sizeof name, "it%d.ids", it);
  e = need(name);
  in->ids = host_of(e, NGC_ST_I64);
  in->n_ids = numel_of(e);
  snprintf(name, sizeof name, "it%d.noise", it);
  e = ngc_st_find(g_file, name);
  if (e) {
    in->noise = host_of(e, NGC_ST_F32);
    in->n_noise = numel_of(e);
  }
  snprintf(name, sizeof name, "it%d.flip", it);
  e = ngc_st_find(g_file, name);
  in->flip = -1;
  if (e) {
    int64_t *f = host_of(e, NGC_ST_I64);
    in->flip = (int)f[0];
    free(f);
  }
}

static void inj_check_used(const injected *in, int it) {
  ck_assert_msg(in->draw == in->n_draws && in->id_pos == in->n_ids &&
                    in->noise_pos == in->n_noise && (in->flip < 0) == (in->flips_asked == 0),
                "iteration %d: the trainer used %lld of %lld id draws, %lld of %lld noise "
                "values, %d flips (dump has %s)",
                it + 1, (long long)in->draw, (long long)in->n_draws, (long long)in->noise_pos,
                (long long)in->n_noise, in->flips_asked, in->flip < 0 ? "none" : "one");
}

static void inj_free(injected *in) {
  free(in->shape);
  free(in->ids);
  free(in->noise);
  memset(in, 0, sizeof *in);
}

/* ------------------------------------------------------------ fixture */

static void teardown(void) {
  if (g_t_ok) ngc_trainer_release(&g_t);
  g_t_ok = 0;
  ngc_st_close(g_file);
  g_file = NULL;
  negcut_ctx_free(g_ctx);
  g_ctx = NULL;
}

typedef struct net_ref {
  const char *prefix;
  ngc_net *net;
  ngc_adam *opt; /* NULL for F_ */
} net_ref;

/* Loads "<prefix>.<param>" into every parameter (and buffer) of the net; the
 * dump must hold exactly the net's tensors under that prefix. */
static void load_net(const net_ref *nr) {
  char name[160];
  size_t plen = strlen(nr->prefix);
  int64_t in_file = 0;
  for (int64_t i = 0; i < ngc_st_count(g_file); i++) {
    const char *n = ngc_st_entry_at(g_file, i)->name;
    if (!strncmp(n, nr->prefix, plen) && n[plen] == '.') in_file++;
  }
  ck_assert_msg(in_file == nr->net->n_params, "%s: dump has %lld tensors, the net %d",
                nr->prefix, (long long)in_file, (int)nr->net->n_params);
  for (int32_t i = 0; i < nr->net->n_params; i++) {
    const ngc_param *p = &nr->net->params[i];
    snprintf(name, sizeof name, "%s.%s", nr->prefix, p->name);
    const ngc_st_entry *e = need(name);
    ck_assert_msg(e->ndim == p->value.ndim, "%s: rank %d, want %d", name, (int)e->ndim,
                  (int)p->value.ndim);
    for (int32_t d = 0; d < e->ndim; d++)
      ck_assert_msg(e->shape[d] == p->value.dim[d], "%s: dim %d is %lld, want %lld", name,
                    (int)d, (long long)e->shape[d], (long long)p->value.dim[d]);
    float *h = host_of(e, NGC_ST_F32);
    OK(ngc_param_upload(nr->net, i, h));
    free(h);
  }
}

static void losses_of(const ngc_train_losses *l, float out[9]) {
  const float v[9] = {l->d_real, l->d_fake, l->d, l->g_gan, l->nce_x, l->nce_y, l->g, l->n, l->div};
  memcpy(out, v, sizeof v);
}

static const char *loss_names[9] = {"d_real", "d_fake", "d",  "g_gan", "nce_x",
                                    "nce_y",  "g",      "n", "div"};

static int64_t check_losses(int it, const tol *t, err_stat *s) {
  char name[64], what[96];
  float got[9];
  int64_t bad = 0;
  snprintf(name, sizeof name, "it%d.losses", it);
  const ngc_st_entry *e = need(name);
  ck_assert_int_eq(numel_of(e), 9);
  float *want = host_of(e, NGC_ST_F32);
  losses_of(&g_t.losses, got);
  for (int i = 0; i < 9; i++) {
    snprintf(what, sizeof what, "[%s] iteration %d loss %s", g_backend, it + 1,
             loss_names[i]);
    bad += compare(what, &got[i], &want[i], 1, t, 0.0, NULL);
    double err = fabs((double)got[i] - want[i]);
    if (fabs(want[i]) > 0) {
      double rel = err / fabs(want[i]);
      if (rel > s->rel) {
        s->rel = rel;
        snprintf(s->where, sizeof s->where, "it%d %s", it + 1, loss_names[i]);
      }
    }
    s->scaled = fmax(s->scaled, err);
  }
  free(want);
  return bad;
}

/* The reference name of a per-iteration tensor: "grad.G.x" after iteration
 * 1, "it<k>.grad.G.x" after iteration k + 1. */
static void ref_name(char *buf, size_t cap, int it, const char *kind, const char *prefix,
                     const char *param) {
  if (it == 0)
    ck_assert_int_lt(snprintf(buf, cap, "%s.%s.%s", kind, prefix, param), (int)cap);
  else
    ck_assert_int_lt(snprintf(buf, cap, "it%d.%s.%s.%s", it, kind, prefix, param), (int)cap);
}

/* Sets the net's Adam moments to PyTorch's after iteration it + 1. */
static void load_adam(int it, const net_ref *nr) {
  char name[192];
  ngc_backend *be = g_ctx->be;
  for (int32_t i = 0; i < nr->net->n_params; i++) {
    if (nr->net->params[i].buffer) continue;
    for (int k = 0; k < 2; k++) {
      ngc_tensor *dst = k ? &nr->opt->v[i] : &nr->opt->m[i];
      ref_name(name, sizeof name, it, k ? "adam_v" : "adam_m", nr->prefix, nr->net->params[i].name);
      const ngc_st_entry *e = need(name);
      ck_assert_int_eq(numel_of(e), ngc_numel(dst));
      float *h = host_of(e, NGC_ST_F32);
      OK(be->ops.upload(be, dst->data, h, e->nbytes));
      free(h);
    }
  }
}

#define MAX_PARAMS 512
/* A net's reference gradients of one iteration, and the absolute gradient
 * tolerance derived from their scale. */
typedef struct net_grads {
  float *g[MAX_PARAMS];           /* the reference's */
  unsigned char *off[MAX_PARAMS]; /* ours outside T_GRAD (iterations 2-5) */
  double tol;
} net_grads;

/* A whole network's relative L2 error |got - want| / |want| of the gradients. */
typedef struct net_norms {
  double d2, r2; /* sums of squares: error, reference */
} net_norms;

static double norm_rel(const net_norms *n) {
  return n->r2 > 0 ? sqrt(n->d2 / n->r2) : n->d2 > 0 ? INFINITY : 0.0;
}

static void net_grads_free(net_grads *ng) {
  for (int i = 0; i < MAX_PARAMS; i++) {
    free(ng->g[i]);
    free(ng->off[i]);
  }
  memset(ng, 0, sizeof *ng);
}

/* Compares every gradient of the net after iteration it + 1 and keeps the
 * reference gradients in ng for the parameter check. */
static int64_t check_grads(int it, const net_ref *nr, net_grads *ng, err_stat *s,
                           net_norms *nn) {
  ngc_net *net = nr->net;
  char name[192];
  double mx = 0.0;
  int64_t bad = 0;
  ck_assert_int_le(net->n_params, MAX_PARAMS);
  for (int32_t i = 0; i < net->n_params; i++) {
    if (net->params[i].buffer) continue;
    ref_name(name, sizeof name, it, "grad", nr->prefix, net->params[i].name);
    const ngc_st_entry *e = need(name);
    ck_assert_int_eq(numel_of(e), ngc_numel(&net->params[i].value));
    ng->g[i] = host_of(e, NGC_ST_F32);
    for (int64_t j = 0; j < numel_of(e); j++) mx = fmax(mx, fabs(ng->g[i][j]));
  }
  ng->tol = T_GRAD.atol + T_GRAD.scale * mx;
  for (int32_t i = 0; i < net->n_params; i++) {
    if (net->params[i].buffer) continue;
    int64_t n = ngc_numel(&net->params[i].value);
    float *got = malloc((size_t)n * sizeof *got);
    ck_assert_ptr_nonnull(got);
    OK(ngc_param_download(net, i, got, 1));
    snprintf(name, sizeof name, "[%s] iteration %d grad.%s.%s", g_backend, it + 1, nr->prefix,
             net->params[i].name);
    bad += compare(name, got, ng->g[i], n, &T_GRAD, mx, NULL);
    stat_update(s, name, got, ng->g[i], n, mx, NULL);
    for (int64_t j = 0; j < n; j++) {
      nn->d2 += ((double)got[j] - ng->g[i][j]) * ((double)got[j] - ng->g[i][j]);
      nn->r2 += (double)ng->g[i][j] * ng->g[i][j];
    }
    if (it > 0) {
      ng->off[i] = calloc((size_t)n, 1);
      ck_assert_ptr_nonnull(ng->off[i]);
      for (int64_t j = 0; j < n; j++)
        ng->off[i][j] = !(fabs((double)got[j] - ng->g[i][j]) <=
                          ng->tol + T_GRAD.rtol * fabs(ng->g[i][j]));
    }
    free(got);
  }
  return bad;
}

/* Compares every parameter after iteration it + 1, then sets it to the
 * reference value. The update is Adam's step from the reference's state
 * (every iteration starts from PyTorch's parameters and moments), so an
 * element's error comes from its gradient's, which T_GRAD bounds by dg: Adam
 * moves the parameter by lr / b1 * m / (sqrt(v / b2) + eps), b1 = 1 - beta1^t,
 * b2 = 1 - beta2^t, m by (1 - beta1) g, so the parameter may differ by about
 * lr / b1 * (1 - beta1) * dg / (sqrt(v / b2) + eps) (v PyTorch's, after the
 * step); twice that is allowed, which also covers a gradient within dg of 0
 * whose sign (so that of a first step, +-lr) is float noise; at most
 * their step plus the longest Adam can take. Elements whose
 * gradient lies outside T_GRAD (iterations 2-5) are not compared. F_, the
 * EMA of F (share 0.1), gets that share of F's allowance. */
static int64_t check_params(int it, const net_ref *nr, const net_grads *ng, const net_ref *by,
                            double share, err_stat *s) {
  ngc_net *net = nr->net;
  const ngc_adam *opt = by->opt; /* the optimiser that moved it: F's for F_ */
  char name[192];
  int64_t bad = 0;
  const double b1 = 1.0 - pow(opt->beta1, it + 1), b2 = 1.0 - pow(opt->beta2, it + 1);
  /* The longest step Adam takes at step t = it + 1: by Cauchy-Schwarz
   * |m| <= (1 - beta1) sqrt(sum_k<t (beta1^2 / beta2)^k) sqrt(v / (1 - beta2)),
   * so lr |m / b1| / sqrt(v / b2) <= lr times this (1 at t = 1). */
  double geo = 0.0;
  for (int k = 0; k <= it; k++) geo += pow(opt->beta1 * opt->beta1 / opt->beta2, k);
  const double longest =
      LR * (1.0 - opt->beta1) / sqrt(1.0 - opt->beta2) * sqrt(geo) * sqrt(b2) / b1;
  for (int32_t i = 0; i < net->n_params; i++) {
    if (net->params[i].buffer) continue;
    ref_name(name, sizeof name, it, "after", nr->prefix, net->params[i].name);
    const ngc_st_entry *e = need(name);
    int64_t n = numel_of(e);
    ck_assert_int_eq(n, ngc_numel(&net->params[i].value));
    float *want = host_of(e, NGC_ST_F32);
    float *got = malloc((size_t)n * sizeof *got);
    double *allow = calloc((size_t)n, sizeof *allow);
    unsigned char *skip = calloc((size_t)n, 1);
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_nonnull(allow);
    ck_assert_ptr_nonnull(skip);
    OK(ngc_param_download(net, i, got, 0));
    ref_name(name, sizeof name, it, "adam_v", by->prefix, net->params[i].name);
    const ngc_st_entry *ev = need(name);
    ck_assert_int_eq(numel_of(ev), n);
    float *v = host_of(ev, NGC_ST_F32);
    /* the optimised net's reference step, after - before */
    ref_name(name, sizeof name, it, "after", by->prefix, net->params[i].name);
    float *by_after = host_of(need(name), NGC_ST_F32);
    if (it == 0)
      ck_assert_int_lt(snprintf(name, sizeof name, "%s.%s", by->prefix, net->params[i].name),
                       (int)sizeof name);
    else
      ref_name(name, sizeof name, it - 1, "after", by->prefix, net->params[i].name);
    float *by_before = host_of(need(name), NGC_ST_F32);
    for (int64_t j = 0; j < n; j++) {
      const double dg = ng->tol + T_GRAD.rtol * fabs(ng->g[i][j]);
      const double step = fabs((double)by_after[j] - by_before[j]);
      /* where v is tiny the formula above is not a bound: no more than
       * their step and the longest Adam takes */
      const double most = share * (step + longest * 1.001);
      allow[j] = ng->off[i] && ng->off[i][j]
                     ? INFINITY
                     : fmin(most, share * 2.0 * LR / b1 * (1.0 - opt->beta1) * dg /
                                      (sqrt(v[j] / b2) + opt->eps));
      skip[j] = allow[j] > T_PARAM.atol; /* out of the statistics */
    }
    free(v);
    free(by_after);
    free(by_before);
    snprintf(name, sizeof name, "[%s] iteration %d after.%s.%s", g_backend, it + 1, nr->prefix,
             net->params[i].name);
    bad += compare(name, got, want, n, &T_PARAM, 0.0, allow);
    stat_update(s, name, got, want, n, 0.0, skip);
    OK(ngc_param_upload(net, i, want));
    free(skip);
    free(allow);
    free(got);
    free(want);
  }
  return bad;
}

static void print_stat(const char *cls, const err_stat *s) {
  printf("  %-10s max err / scale %.3g (%s), max rel err %.3g\n", cls, s->scaled, s->where,
         s->rel);
}

START_TEST(test_train_parity) {
  const run_id *r = &g_runs[_i];
  const tconfig *c = r->cfg;
  char path[1024];
  negcut_ctx_options o;
  ngc_train_cfg cfg;
  err_stat s_loss = {0, 0, ""}, s_grad = {0, 0, ""}, s_param = {0, 0, ""};
  err_stat s_loss5 = {0, 0, ""}, s_grad5 = {0, 0, ""}, s_param5 = {0, 0, ""};

  negcut_ctx_options_init(&o);
  o.backend = r->backend;
  o.threads = 2;
  o.seed = 7;
  ck_assert_msg(negcut_ctx_create(&g_ctx, &o) == NEGCUT_OK, "%s", negcut_ctx_last_error(NULL));
  /* "cpu" (direct), "cpu/wino-bwd", "cpu/wino": the label of every line */
  static const char *const labels[] = {"", "/wino-fwd", "/wino-bwd", "/wino"};
  static char label[32];
  snprintf(label, sizeof label, "%s%s", negcut_backend_name(r->backend), labels[r->winograd & 3]);
  g_backend = label;
  g_bad = 0;
  printf("%s [%s]:\n", c->name, g_backend);
  snprintf(path, sizeof path, "%s/%s.safetensors", g_dir, c->name);
  OK(ngc_st_open(g_ctx, path, &g_file));
  const char *m_h = ngc_st_metadata(g_file, "h"), *m_w = ngc_st_metadata(g_file, "w");
  const char *m_b = ngc_st_metadata(g_file, "batch"), *m_it = ngc_st_metadata(g_file, "iters");
  ck_assert_msg(m_h && m_w && m_b && m_it, "%s: metadata h, w, batch, iters missing", path);
  int64_t h = atoll(m_h), w = atoll(m_w);
  int iters = atoi(m_it);

  /* the reference defaults of the mode, shrunk to the tiny configuration */
  ngc_train_cfg_defaults(&cfg, c->mode);
  cfg.g.ngf = 8;
  cfg.g.n_blocks = 2;
  cfg.d.ndf = 8;
  cfg.d.n_layers = 3;
  cfg.n_nce = 5;
  memcpy(cfg.nce_layers, (int32_t[5]){0, 4, 8, 12, 13}, 5 * sizeof(int32_t));
  cfg.num_patches = 16;
  cfg.netf_nc = 32;
  cfg.z_dim = 8;
  cfg.batch = atoi(m_b);
  /* the tiny networks' convolutions are all below the default Winograd
   * bounds (NGC_WINOGRAD_MIN_*): lowered, so that the Winograd runs run it */
  if (r->backend == NEGCUT_BACKEND_CPU)
    ngc_cpu_of(g_ctx->be)->wino_min_channels = ngc_cpu_of(g_ctx->be)->wino_min_pixels = 0;
  OK(ngc_trainer_init(&g_t, g_ctx, &cfg));
  g_t_ok = 1;
  g_t.tape.winograd = r->winograd;

  net_ref nets[5] = {{"G", &g_t.G, &g_t.opt_g}, {"D", &g_t.D, &g_t.opt_d},
                     {"F", &g_t.F, &g_t.opt_f}, {"N", &g_t.N, &g_t.opt_n},
                     {"F_", &g_t.F_ema, NULL}};
  int n_nets = c->mode == NGC_MODE_NEGCUT ? 5 : 3;
  for (int i = 0; i < n_nets; i++) load_net(&nets[i]);

  for (int it = 0; it < iters; it++) {
    char name[64];
    injected in;
    static net_grads ng[4];
    inj_load(&in, it);
    g_t.rand = (ngc_rand_source){inj_ids, inj_noise, inj_flip, &in};
    snprintf(name, sizeof name, "it%d.real_A", it);
    float *a = host_of(need(name), NGC_ST_F32);
    snprintf(name, sizeof name, "it%d.real_B", it);
    const ngc_st_entry *eb = need(name);
    float *b = host_of(eb, NGC_ST_F32);
    ck_assert_int_eq(eb->shape[0], cfg.batch);
    ck_assert_int_eq(eb->shape[2], h);
    ck_assert_int_eq(eb->shape[3], w);
    OK(ngc_train_step(&g_t, a, b, h, w, LR));
    free(a);
    free(b);
    inj_check_used(&in, it);
    inj_free(&in);
    /* Every iteration starts from PyTorch's parameters (check_params sets
     * them), so each is held to the same tolerances, but for gradient
     * elements after the first (see the top) */
    int64_t bad = check_losses(it, &T_LOSS, it ? &s_loss5 : &s_loss), bad_grad = 0;
    net_norms gn[4];
    memset(gn, 0, sizeof gn);
    /* G, D, F, N gradients; F_ (no gradient of its own) follows F by EMA,
     * so F's gradients and moments bound its error */
    g_quiet = it > 0;
    for (int i = 0; i < n_nets && i < 4; i++)
      bad_grad += check_grads(it, &nets[i], &ng[i], it ? &s_grad5 : &s_grad, &gn[i]);
    g_quiet = 0;
    for (int i = 0; i < n_nets; i++)
      bad += check_params(it, &nets[i], &ng[i == 4 ? 2 : i], &nets[i == 4 ? 2 : i],
                          i == 4 ? 0.1 : 1.0, it ? &s_param5 : &s_param);
    for (int i = 0; i < n_nets; i++)
      if (nets[i].opt) load_adam(it, &nets[i]);
    printf("  iteration %d: relative L2 error of the gradients:", it + 1);
    for (int i = 0; i < n_nets && i < 4; i++) {
      double rg = norm_rel(&gn[i]);
      printf(" %s %.2g", nets[i].prefix, rg);
      if (!(rg <= T_NORM)) {
        fprintf(stderr, "[%s] iteration %d: %s's gradients' relative L2 error %.3g > %g\n",
                g_backend, it + 1, nets[i].prefix, rg, T_NORM);
        bad++;
      }
    }
    printf("\n");
    if (it == 0) bad += bad_grad;
    else if (bad_grad) printf("  iteration %d: %lld gradient elements outside T_GRAD (reported; "
                              "their parameters not compared)\n", it + 1, (long long)bad_grad);
    g_bad += (int)bad;
    for (int i = 0; i < 4; i++) net_grads_free(&ng[i]);
  }
  if (r->backend == NEGCUT_BACKEND_CPU) {
    /* the passes the bits allow ran Winograd kernels, the others none
     * (where oneDNN has them: avx512_core) */
    const int have = ngc_cpu_avx512();
    const uint32_t bit[3] = {NGC_WINOGRAD_FWD, NGC_WINOGRAD_BWD, NGC_WINOGRAD_BWD};
    for (int op = 0; op < 3; op++) {
      int64_t runs = ngc_cpu_conv_winograd_runs(g_ctx->be, op);
      printf("  Winograd runs of pass %d: %lld\n", op, (long long)runs);
      if (have) ck_assert_msg((runs > 0) == ((r->winograd & bit[op]) != 0),
                              "%s [%s]: %lld Winograd runs of pass %d", c->name, g_backend,
                              (long long)runs, op);
    }
  }
  print_stat("losses 1", &s_loss);
  print_stat("grads 1", &s_grad);
  print_stat("params 1", &s_param);
  print_stat("losses 2-5", &s_loss5);
  print_stat("grads 2-5", &s_grad5);
  print_stat("params 2-5", &s_param5);
  ck_assert_msg(g_bad == 0, "%s [%s]: %d mismatches (see above)", c->name, g_backend, g_bad);
}
END_TEST

int main(int argc, char **argv) {
  Suite *s = suite_create("parity_train");
  TCase *tc = tcase_create("train");
  g_dir = argc > 1 ? argv[1] : NGC_TEST_DATA_DIR "/train";
  setvbuf(stdout, NULL, _IOLBF, 0);
  {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", g_dir, configs[0].name);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
      fprintf(stderr, "check_parity_train: cannot open %s\n(make it with tools/train_parity.py "
                      "%s; ctest runs parity_train_dump first)\n", path, g_dir);
      return EXIT_FAILURE;
    }
    fclose(probe);
  }
  static const uint32_t wino[] = {0, NGC_WINOGRAD_BWD, NGC_WINOGRAD_FWD | NGC_WINOGRAD_BWD};
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < N_CONFIGS; i++)
      g_runs[g_n_runs++] = (run_id){&configs[i], NEGCUT_BACKEND_CPU, wino[k]};
  for (int i = 0; i < N_CONFIGS; i++)
    if (configs[i].with_ref) g_runs[g_n_runs++] = (run_id){&configs[i], NEGCUT_BACKEND_REF, 0};
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_train_parity, 0, g_n_runs);
  suite_add_tcase(s, tc);
  return ngc_test_run(s);
}
