/* The CPU backend's convolution and blur slots against double-precision
 * references written here as the defining sums (and, when the reference
 * backend has these slots, against it too): forward, dx (assigned), dw and
 * db (accumulated into pre-filled tensors).
 *
 * Tolerance: a float sum of K terms of size s is off from the exact sum by
 * about eps * sqrt(K) * s, so each output is compared with
 *   atol = 1e-5 * sqrt(K) * max|want|,  rtol = 1e-4,
 * K the number of terms per output (Ci*k*k for y, Co*k*k for dx,
 * N*Ho*Wo for dw and db). The blurs sum at most 16 terms: atol 1e-5. */
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_conv.h"
#include "backend/cpu/cpu_loops.h" /* NGC_CPU_HAS_CLONES */
#include "core/core.h"
#include "core/tensor.h"
#include "ngc_test.h"

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float urand(void) { /* uniform in [-1, 1), xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  uint64_t r = rng_state * 0x2545f4914f6cdd1dull;
  return (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

typedef struct buf {
  ngc_tensor t;
  double *want; /* the reference's answer, same numel */
} buf;

static negcut_ctx *open_cpu(void) {
  negcut_ctx_options o;
  negcut_ctx *ctx = NULL;
  ck_assert_int_eq(negcut_ctx_options_init(&o), NEGCUT_OK);
  o.backend = NEGCUT_BACKEND_CPU;
  o.threads = 2;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_OK);
  return ctx;
}

/* A tensor on be filled with uniform noise (fill == NAN) or a constant. */
static buf make(negcut_ctx *ctx, ngc_backend *be, int32_t ndim, int64_t d0, int64_t d1,
                int64_t d2, int64_t d3, float fill) {
  const int64_t dim[4] = {d0, d1, d2, d3};
  buf b;
  ck_assert_int_eq(ngc_tensor_alloc(ctx, be, &b.t, ndim, dim), NEGCUT_OK);
  int64_t n = ngc_numel(&b.t);
  for (int64_t i = 0; i < n; i++) b.t.data[i] = isnan(fill) ? urand() : fill;
  b.want = calloc((size_t)n, sizeof(double));
  ck_assert_ptr_nonnull(b.want);
  return b;
}

static void drop(buf *b) {
  ngc_tensor_release(&b->t);
  free(b->want);
}

/* Compares t with want (double) under the tolerance above; k_terms = K. */
static void expect(const char *what, const ngc_tensor *t, const double *want, double k_terms,
                   double atol_floor) {
  const int64_t n = ngc_numel(t);
  float *w = malloc((size_t)n * sizeof(float));
  double amax = 0.0;
  ck_assert_ptr_nonnull(w);
  for (int64_t i = 0; i < n; i++) {
    w[i] = (float)want[i];
    if (fabs(want[i]) > amax) amax = fabs(want[i]);
  }
  double atol = 1e-5 * sqrt(k_terms) * amax;
  if (atol < atol_floor) atol = atol_floor;
  int64_t bad = ngc_test_compare(what, t->data, w, n, atol, 1e-4);
  free(w);
  ck_assert_msg(bad == 0, "%s: %lld mismatches", what, (long long)bad);
}

/* Compares two float tensors (ours against the reference backend's). */
static void expect_same(const char *what, const ngc_tensor *got, const ngc_tensor *ref,
                        double k_terms) {
  const int64_t n = ngc_numel(ref);
  double *w = malloc((size_t)n * sizeof(double));
  ck_assert_ptr_nonnull(w);
  for (int64_t i = 0; i < n; i++) w[i] = ref->data[i];
  expect(what, got, w, 2.0 * k_terms, 1e-6);
  free(w);
}

#define AT4(d1, d2, d3, a, b, c, e) ((((int64_t)(a) * (d1) + (b)) * (d2) + (c)) * (d3) + (e))

/* ------------------------------------------------------------ conv2d */

typedef struct conv_case {
  int64_t n, ci, co, h, w, k;
  int32_t stride, pad, out_pad, bias;
} conv_case;

/* The defining sum of conv2d and its adjoints, in double:
 *   y[n,o,oh,ow] = b[o] + sum x[n,i,oh*s-p+kh, ow*s-p+kw] w[o,i,kh,kw]
 * and, for a ConvTranspose2d (transposed), with w (Ci, Co, k, k):
 *   y[n,o,ih*s-p+kh, iw*s-p+kw] += x[n,i,ih,iw] w[i,o,kh,kw].
 * One loop nest walks every (input, output, tap) triple once and adds to
 * y, dx, dw as asked. */
static void ref_conv(const conv_case *c, int transposed, int64_t Ho, int64_t Wo,
                     const float *x, const float *w, const float *b, const float *dy,
                     double *y, double *dx, double *dw, double *db) {
  const int64_t N = c->n, Ci = c->ci, Co = c->co, H = c->h, W = c->w, K = c->k;
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < Co; o++) {
      /* the small side (conv: output; transposed: input) indexes the loop */
      const int64_t SH = transposed ? H : Ho, SW = transposed ? W : Wo;
      const int64_t BH = transposed ? Ho : H, BW = transposed ? Wo : W;
      for (int64_t sh = 0; sh < SH; sh++)
        for (int64_t sw = 0; sw < SW; sw++)
          for (int64_t i = 0; i < Ci; i++)
            for (int64_t kh = 0; kh < K; kh++)
              for (int64_t kw = 0; kw < K; kw++) {
                const int64_t bh = sh * c->stride - c->pad + kh, bw = sw * c->stride - c->pad + kw;
                if (bh < 0 || bh >= BH || bw < 0 || bw >= BW) continue;
                int64_t xi, yi, wi;
                if (!transposed) {
                  xi = AT4(Ci, H, W, n, i, bh, bw);
                  yi = AT4(Co, Ho, Wo, n, o, sh, sw);
                  wi = AT4(Ci, K, K, o, i, kh, kw);
                } else {
                  xi = AT4(Ci, H, W, n, i, sh, sw);
                  yi = AT4(Co, Ho, Wo, n, o, bh, bw);
                  wi = AT4(Co, K, K, i, o, kh, kw);
                }
                if (y) y[yi] += (double)x[xi] * w[wi];
                if (dx) dx[xi] += (double)dy[yi] * w[wi];
                if (dw) dw[wi] += (double)dy[yi] * x[xi];
              }
    }
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < Co; o++)
      for (int64_t j = 0; j < Ho * Wo; j++) {
        const int64_t yi = (n * Co + o) * Ho * Wo + j;
        if (y && b) y[yi] += b[o];
        if (db) db[o] += dy[yi];
      }
}

/* winograd: ngc_conv_params.winograd (the backend may use Winograd). */
static void run_conv_case(negcut_ctx *ctx, const conv_case *c, int transposed, int winograd) {
  ngc_backend *be = ctx->be, *rb = ctx->ref;
  const int64_t K = c->k;
  const int64_t Ho = transposed ? (c->h - 1) * c->stride - 2 * c->pad + K + c->out_pad
                                : (c->h + 2 * c->pad - K) / c->stride + 1;
  const int64_t Wo = transposed ? (c->w - 1) * c->stride - 2 * c->pad + K + c->out_pad
                                : (c->w + 2 * c->pad - K) / c->stride + 1;
  const ngc_conv_params p = {
      .stride = c->stride, .pad = c->pad, .out_pad = c->out_pad, .winograd = winograd};
  char what[160];
  const float nan = NAN;

  buf x = make(ctx, be, 4, c->n, c->ci, c->h, c->w, nan);
  buf w = transposed ? make(ctx, be, 4, c->ci, c->co, K, K, nan)
                     : make(ctx, be, 4, c->co, c->ci, K, K, nan);
  buf b = make(ctx, be, 1, c->co, 1, 1, 1, nan);
  buf y = make(ctx, be, 4, c->n, c->co, Ho, Wo, 777.0f);
  buf dy = make(ctx, be, 4, c->n, c->co, Ho, Wo, nan);
  buf dx = make(ctx, be, 4, c->n, c->ci, c->h, c->w, 777.0f); /* must be overwritten */
  buf dw = make(ctx, be, 4, w.t.dim[0], w.t.dim[1], K, K, nan); /* += onto noise */
  buf db = make(ctx, be, 1, c->co, 1, 1, 1, nan);
  for (int64_t i = 0; i < ngc_numel(&dw.t); i++) dw.want[i] = dw.t.data[i];
  for (int64_t i = 0; i < c->co; i++) db.want[i] = db.t.data[i];
  ref_conv(c, transposed, Ho, Wo, x.t.data, w.t.data, c->bias ? b.t.data : NULL, dy.t.data,
           y.want, dx.want, dw.want, c->bias ? db.want : NULL);

  const ngc_tensor *bias = c->bias ? &b.t : NULL;
  const char *name = transposed ? "convt2d" : "conv2d";
  snprintf(what, sizeof what, "%s%s n%lld ci%lld co%lld %lldx%lld k%lld s%d p%d op%d b%d", name,
           winograd ? " (winograd)" : "", (long long)c->n, (long long)c->ci, (long long)c->co, (long long)c->h,
           (long long)c->w, (long long)K, c->stride, c->pad, c->out_pad, c->bias);
  /* which of our few-channel loops (cpu_conv_few.c) should run: the
   * forward to few channels, the data gradient from few */
  const int few_ok = !transposed && c->stride == 1 && c->pad <= K - 1 && ngc_cpu_avx512();
  const int64_t few_fwd = few_ok && c->co <= NGC_FEW_CHANNELS && c->ci >= 16;
  const int64_t few_dx = few_ok && c->ci <= NGC_FEW_CHANNELS && c->co >= 16;
  const int64_t few0 = ngc_cpu_of(be)->few_runs;
  negcut_status st = transposed ? be->ops.convt2d_fwd(be, &p, &x.t, &w.t, bias, &y.t)
                                : be->ops.conv2d_fwd(be, &p, &x.t, &w.t, bias, &y.t);
  ck_assert_msg(st == NEGCUT_OK, "%s fwd: %s", what, negcut_ctx_last_error(ctx));
  ck_assert_int_eq(ngc_cpu_of(be)->few_runs - few0, few_fwd);
  /* per output: conv Ci*k*k terms; transposed about Ci*k*k/s^2, bounded by Ci*k*k */
  expect(what, &y.t, y.want, (double)(c->ci * K * K), 1e-6);

  ngc_tensor *dbp = c->bias ? &db.t : NULL;
  st = transposed ? be->ops.convt2d_bwd(be, &p, &x.t, &w.t, &dy.t, &dx.t, &dw.t, dbp)
                  : be->ops.conv2d_bwd(be, &p, &x.t, &w.t, &dy.t, &dx.t, &dw.t, dbp);
  ck_assert_msg(st == NEGCUT_OK, "%s bwd: %s", what, negcut_ctx_last_error(ctx));
  ck_assert_int_eq(ngc_cpu_of(be)->few_runs - few0, few_fwd + few_dx);
  expect("dx", &dx.t, dx.want, (double)(c->co * K * K), 1e-6);
  expect("dw (accumulated)", &dw.t, dw.want, (double)(c->n * Ho * Wo), 1e-5);
  if (c->bias) expect("db (accumulated)", &db.t, db.want, (double)(c->n * Ho * Wo), 1e-5);
  else
    for (int64_t i = 0; i < c->co; i++) ck_assert(db.t.data[i] == (float)db.want[i]);

  /* dx only, then db only (no weight pass): the NULL-skipping paths. */
  for (int64_t i = 0; i < ngc_numel(&dx.t); i++) dx.t.data[i] = 777.0f;
  st = transposed ? be->ops.convt2d_bwd(be, &p, &x.t, &w.t, &dy.t, &dx.t, NULL, NULL)
                  : be->ops.conv2d_bwd(be, &p, &x.t, &w.t, &dy.t, &dx.t, NULL, NULL);
  ck_assert_int_eq(st, NEGCUT_OK);
  expect("dx alone", &dx.t, dx.want, (double)(c->co * K * K), 1e-6);
  if (c->bias) {
    /* db now holds prefill + grad; a db-only pass adds the grad again */
    double *grad = calloc((size_t)c->co, sizeof(double));
    ck_assert_ptr_nonnull(grad);
    ref_conv(c, transposed, Ho, Wo, x.t.data, w.t.data, NULL, dy.t.data, NULL, NULL, NULL, grad);
    for (int64_t i = 0; i < c->co; i++) db.want[i] = (double)db.t.data[i] + grad[i];
    free(grad);
    st = transposed ? be->ops.convt2d_bwd(be, &p, &x.t, &w.t, &dy.t, NULL, NULL, &db.t)
                    : be->ops.conv2d_bwd(be, &p, &x.t, &w.t, &dy.t, NULL, NULL, &db.t);
    ck_assert_int_eq(st, NEGCUT_OK);
    expect("db alone (accumulated)", &db.t, db.want, (double)(c->n * Ho * Wo), 1e-5);
  }

  /* Against the reference backend, when its slots exist. */
  negcut_status (*rf)(ngc_backend *, const ngc_conv_params *, const ngc_tensor *,
                      const ngc_tensor *, const ngc_tensor *, ngc_tensor *) =
      transposed ? rb->ops.convt2d_fwd : rb->ops.conv2d_fwd;
  if (rf && rb != be) {
    buf ry = make(ctx, rb, 4, c->n, c->co, Ho, Wo, 0.0f);
    buf rdx = make(ctx, rb, 4, c->n, c->ci, c->h, c->w, 0.0f);
    buf rdw = make(ctx, rb, 4, w.t.dim[0], w.t.dim[1], K, K, 0.0f);
    buf odw = make(ctx, be, 4, w.t.dim[0], w.t.dim[1], K, K, 0.0f);
    ck_assert_int_eq(rf(rb, &p, &x.t, &w.t, bias, &ry.t), NEGCUT_OK);
    ck_assert_int_eq(transposed
                         ? rb->ops.convt2d_bwd(rb, &p, &x.t, &w.t, &dy.t, &rdx.t, &rdw.t, NULL)
                         : rb->ops.conv2d_bwd(rb, &p, &x.t, &w.t, &dy.t, &rdx.t, &rdw.t, NULL),
                     NEGCUT_OK);
    ck_assert_int_eq(transposed
                         ? be->ops.convt2d_bwd(be, &p, &x.t, &w.t, &dy.t, NULL, &odw.t, NULL)
                         : be->ops.conv2d_bwd(be, &p, &x.t, &w.t, &dy.t, NULL, &odw.t, NULL),
                     NEGCUT_OK);
    expect_same("y vs ref backend", &y.t, &ry.t, (double)(c->ci * K * K));
    expect_same("dx vs ref backend", &dx.t, &rdx.t, (double)(c->co * K * K));
    expect_same("dw vs ref backend", &odw.t, &rdw.t, (double)(c->n * Ho * Wo));
    drop(&ry), drop(&rdx), drop(&rdw), drop(&odw);
  }
  drop(&x), drop(&w), drop(&b), drop(&y), drop(&dy), drop(&dx), drop(&dw), drop(&db);
}

START_TEST(test_conv2d) {
  static const conv_case cases[] = {
      /* n ci co  h  w  k  s  p op bias */
      {2, 3, 5, 7, 9, 3, 1, 1, 0, 1},    /* odd sizes, batch 2 */
      {1, 4, 6, 8, 8, 3, 2, 1, 0, 0},    /* stride 2, no bias */
      {1, 4, 6, 7, 9, 3, 2, 1, 0, 1},    /* stride 2 on odd sizes */
      {2, 5, 3, 7, 9, 1, 1, 0, 0, 1},    /* 1x1 */
      {1, 3, 4, 9, 7, 4, 1, 1, 0, 1},    /* the discriminator's 4x4 p1 */
      {1, 8, 16, 9, 9, 4, 2, 1, 0, 1},   /* 4x4 stride 2 */
      {1, 3, 8, 13, 12, 7, 1, 0, 0, 1},  /* the generator's first 7x7 */
      {1, 16, 3, 12, 11, 7, 1, 0, 0, 1}, /* ... and last */
      {2, 32, 48, 10, 10, 3, 1, 0, 0, 1}, /* blocked layouts, pad 0 */
      {1, 64, 32, 9, 7, 3, 1, 1, 0, 1},  /* blocked layouts, pad 1 */
      /* to and from few channels (cpu_conv_few.c and its adjoints): zero
       * padding, 1 to 4 outputs, rows wider than one segment (128 plain
       * positions) with ragged ends */
      {2, 16, 3, 9, 11, 7, 1, 3, 0, 1},
      {1, 32, 1, 6, 150, 3, 1, 1, 0, 0},
      {1, 16, 4, 5, 140, 5, 1, 2, 0, 1},
      {1, 48, 2, 7, 9, 3, 1, 0, 0, 1},
      {2, 3, 16, 9, 11, 7, 1, 3, 0, 1},
      {1, 3, 16, 12, 11, 7, 1, 0, 0, 1}, /* the generator's first: dx with padding k - 1 */
      {1, 2, 32, 5, 150, 3, 1, 1, 0, 1},
      {1, 32, 3, 4, 300, 7, 1, 3, 0, 1}, /* plain rows long enough for unchecked segments */
      {1, 32, 2, 4, 200, 3, 1, 0, 0, 1},
      {1, 16, 4, 3, 230, 3, 1, 1, 0, 0},
      {1, 32, 1, 9, 8, 4, 1, 1, 0, 1}, /* the discriminator's last */
  };
  negcut_ctx *ctx = open_cpu();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv_case(ctx, &cases[i], 0, 0);
  /* Second round: every primitive now comes from the cache. */
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv_case(ctx, &cases[i], 0, 0);
  negcut_ctx_free(ctx);
}
END_TEST

START_TEST(test_convt2d) {
  static const conv_case cases[] = {
      /* n ci co  h  w  k  s  p op bias */
      {2, 6, 4, 5, 7, 3, 2, 1, 1, 1},   /* the no_antialias_up layer */
      {1, 4, 5, 4, 4, 4, 2, 1, 0, 1},
      {1, 3, 2, 6, 5, 3, 1, 1, 0, 0},
      {1, 32, 16, 6, 7, 3, 2, 1, 1, 1}, /* blocked layouts */
  };
  negcut_ctx *ctx = open_cpu();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv_case(ctx, &cases[i], 1, 0);
  negcut_ctx_free(ctx);
}
END_TEST

/* ------------------------------------------------------------ blurs */

/* The blurs as the reference network defines them, in double, as a list of
 * taps out[o] += f * in[i]; forward applies it, backward its transpose. */
static void ref_blur(int up, int adjoint, int64_t planes, int64_t H, int64_t W,
                     const float *in, double *out) {
  static const double f3[3] = {1, 2, 1}, f4[4] = {1, 3, 3, 1};
  const int64_t Ho = up ? 2 * H : (H + 1) / 2, Wo = up ? 2 * W : (W + 1) / 2;
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *x = in + pl * (adjoint ? Ho * Wo : H * W);
    double *y = out + pl * (adjoint ? H * W : Ho * Wo);
    if (!up) {
      /* reflect pad 1, 3x3 [1,2,1]^2/16, stride 2 */
      for (int64_t oh = 0; oh < Ho; oh++)
        for (int64_t ow = 0; ow < Wo; ow++)
          for (int64_t a = 0; a < 3; a++)
            for (int64_t b = 0; b < 3; b++) {
              int64_t ih = 2 * oh - 1 + a, iw = 2 * ow - 1 + b;
              ih = ih < 0 ? -ih : (ih >= H ? 2 * H - 2 - ih : ih);
              iw = iw < 0 ? -iw : (iw >= W ? 2 * W - 2 - iw : iw);
              const double f = f3[a] * f3[b] / 16.0;
              if (!adjoint) y[oh * Wo + ow] += f * x[ih * W + iw];
              else y[ih * W + iw] += f * x[oh * Wo + ow];
            }
    } else {
      /* replicate pad 1 to (H+2, W+2); transposed 4x4 [1,3,3,1]^2/16,
       * stride 2, padding 2: (2H+2, 2W+2); crop one row/col each end. */
      for (int64_t ph = 0; ph < H + 2; ph++)
        for (int64_t pw = 0; pw < W + 2; pw++)
          for (int64_t a = 0; a < 4; a++)
            for (int64_t b = 0; b < 4; b++) {
              const int64_t th = 2 * ph - 2 + a - 1, tw = 2 * pw - 2 + b - 1; /* after crop */
              if (th < 0 || th >= Ho || tw < 0 || tw >= Wo) continue;
              int64_t ih = ph - 1, iw = pw - 1;
              ih = ih < 0 ? 0 : (ih >= H ? H - 1 : ih);
              iw = iw < 0 ? 0 : (iw >= W ? W - 1 : iw);
              const double f = f4[a] * f4[b] / 16.0;
              if (!adjoint) y[th * Wo + tw] += f * x[ih * W + iw];
              else y[ih * W + iw] += f * x[th * Wo + tw];
            }
    }
  }
}

START_TEST(test_blur) {
  static const int64_t shapes[][4] = {
      {2, 3, 7, 9}, {1, 4, 8, 8}, {1, 2, 5, 6}, {1, 1, 2, 3}, {1, 3, 3, 2},
      {1, 1, 1, 1}, {1, 32, 17, 16}, {2, 5, 2, 2},
  };
  negcut_ctx *ctx = open_cpu();
  ngc_backend *be = ctx->be, *rb = ctx->ref;
  char what[96];
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int64_t N = shapes[s][0], C = shapes[s][1], H = shapes[s][2], W = shapes[s][3];
    for (int up = 0; up <= 1; up++) {
      /* reflect pad 1 needs 2 px; the 1x1 case is for blur_up only */
      if (!up && (H < 2 || W < 2)) continue;
      const int64_t Ho = up ? 2 * H : (H + 1) / 2, Wo = up ? 2 * W : (W + 1) / 2;
      buf x = make(ctx, be, 4, N, C, H, W, NAN);
      buf y = make(ctx, be, 4, N, C, Ho, Wo, 777.0f);
      buf dy = make(ctx, be, 4, N, C, Ho, Wo, NAN);
      buf dx = make(ctx, be, 4, N, C, H, W, 777.0f);
      ref_blur(up, 0, N * C, H, W, x.t.data, y.want);
      ref_blur(up, 1, N * C, H, W, dy.t.data, dx.want);
      snprintf(what, sizeof what, "blur_%s (%lld, %lld, %lld, %lld)", up ? "up" : "down",
               (long long)N, (long long)C, (long long)H, (long long)W);
      ck_assert_int_eq(up ? be->ops.blur_up_fwd(be, &x.t, &y.t)
                          : be->ops.blur_down_fwd(be, &x.t, &y.t),
                       NEGCUT_OK);
      expect(what, &y.t, y.want, 1.0, 1e-5);
      ck_assert_int_eq(up ? be->ops.blur_up_bwd(be, &dy.t, &dx.t)
                          : be->ops.blur_down_bwd(be, &dy.t, &dx.t),
                       NEGCUT_OK);
      expect("blur dx", &dx.t, dx.want, 1.0, 1e-5);
      negcut_status (*rf)(ngc_backend *, const ngc_tensor *, ngc_tensor *) =
          up ? rb->ops.blur_up_fwd : rb->ops.blur_down_fwd;
      if (rf && rb != be && rf != (up ? be->ops.blur_up_fwd : be->ops.blur_down_fwd)) {
        buf ry = make(ctx, rb, 4, N, C, Ho, Wo, 0.0f);
        buf rdx = make(ctx, rb, 4, N, C, H, W, 0.0f);
        ck_assert_int_eq(rf(rb, &x.t, &ry.t), NEGCUT_OK);
        ck_assert_int_eq(up ? rb->ops.blur_up_bwd(rb, &dy.t, &rdx.t)
                            : rb->ops.blur_down_bwd(rb, &dy.t, &rdx.t),
                         NEGCUT_OK);
        expect_same("blur y vs ref backend", &y.t, &ry.t, 16.0);
        expect_same("blur dx vs ref backend", &dx.t, &rdx.t, 16.0);
        drop(&ry), drop(&rdx);
      }
      drop(&x), drop(&y), drop(&dy), drop(&dx);
    }
  }
  negcut_ctx_free(ctx);
}
END_TEST

/* Winograd allowed (ngc_conv_params.winograd): the same oracle and
 * tolerances, on small shapes with the size bounds (NGC_WINOGRAD_MIN_*)
 * lowered to reach the Winograd kernels. Where oneDNN has avx512_core, the
 * 3x3 stride-1 convolutions here must then run its Winograd kernels in all
 * three passes, and the others (and Winograd not allowed) the direct ones.
 * With the default bounds a 16x16 output or 16 channels run direct, 32x32
 * with 32 channels Winograd; a convolution whose Winograd scratchpad would
 * pass its bound by pass runs direct too (below). */
static int is_wino(ngc_backend *be) {
  const char *impl = ngc_cpu_conv_last_impl(be);
  ck_assert_ptr_nonnull(impl);
  return strstr(impl, "wino") != NULL;
}

START_TEST(test_conv2d_winograd) {
  static const conv_case cases[] = {
      /* n ci co  h  w  k  s  p op bias */
      {1, 64, 64, 18, 18, 3, 1, 0, 0, 1}, /* a residual block's, pad 0 */
      {2, 32, 48, 10, 10, 3, 1, 0, 0, 1}, /* batch 2 */
      {1, 16, 32, 13, 11, 3, 1, 1, 0, 0}, /* odd sizes, pad 1, no bias */
      {1, 3, 16, 9, 9, 3, 1, 1, 0, 1},    /* 3 channels */
      {1, 16, 16, 9, 9, 3, 2, 1, 0, 1},   /* stride 2: never Winograd */
  };
  negcut_ctx *ctx = open_cpu();
  ngc_backend *be = ctx->be;
  ngc_cpu_of(be)->wino_min_channels = ngc_cpu_of(be)->wino_min_pixels = 0;
  const int avx512 = ngc_cpu_avx512();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv_case(ctx, &cases[i], 0, 1);
  if (!avx512) {
    printf("test_conv2d_winograd: oneDNN has no avx512_core here, so no Winograd kernels; "
           "the choice of kernel is not checked\n");
    negcut_ctx_free(ctx);
    return;
  }
  const conv_case *c = &cases[0];
  buf x = make(ctx, be, 4, c->n, c->ci, c->h, c->w, NAN);
  buf w = make(ctx, be, 4, c->co, c->ci, 3, 3, NAN);
  buf y = make(ctx, be, 4, c->n, c->co, c->h - 2, c->w - 2, 0.0f);
  buf dx = make(ctx, be, 4, c->n, c->ci, c->h, c->w, 0.0f);
  buf dw = make(ctx, be, 4, c->co, c->ci, 3, 3, 0.0f);
  buf db = make(ctx, be, 1, c->co, 1, 1, 1, 0.0f);
  for (int wino = 0; wino <= 1; wino++) {
    const ngc_conv_params p = {.stride = 1, .winograd = wino};
    ck_assert_int_eq(be->ops.conv2d_fwd(be, &p, &x.t, &w.t, NULL, &y.t), NEGCUT_OK);
    ck_assert_int_eq(is_wino(be), wino);
    ck_assert_int_eq(be->ops.conv2d_bwd(be, &p, &x.t, &w.t, &y.t, &dx.t, NULL, NULL), NEGCUT_OK);
    ck_assert_int_eq(is_wino(be), wino);
    ck_assert_int_eq(be->ops.conv2d_bwd(be, &p, &x.t, &w.t, &y.t, NULL, &dw.t, NULL), NEGCUT_OK);
    ck_assert_int_eq(is_wino(be), wino);
    ck_assert_int_eq(be->ops.conv2d_bwd(be, &p, &x.t, &w.t, &y.t, NULL, &dw.t, &db.t), NEGCUT_OK);
    ck_assert_int_eq(is_wino(be), wino); /* the weight pass with the bias gradient */
  }
  drop(&x), drop(&w), drop(&y), drop(&dx), drop(&dw), drop(&db);
  /* stride 2 */
  x = make(ctx, be, 4, 1, 16, 9, 9, NAN);
  w = make(ctx, be, 4, 16, 16, 3, 3, NAN);
  y = make(ctx, be, 4, 1, 16, 5, 5, 0.0f);
  const ngc_conv_params p2 = {.stride = 2, .pad = 1, .winograd = 1};
  ck_assert_int_eq(be->ops.conv2d_fwd(be, &p2, &x.t, &w.t, NULL, &y.t), NEGCUT_OK);
  ck_assert(!is_wino(be));
  drop(&x), drop(&w), drop(&y);
  negcut_ctx_free(ctx);

  /* the default bounds, in a new context (the cache keeps what it built) */
  ctx = open_cpu();
  be = ctx->be;
  static const struct {
    int64_t ci, co, h;
    int wino;
  } sizes[] = {{64, 64, 18, 0}, {16, 32, 34, 0}, {32, 16, 34, 0}, {32, 32, 34, 1}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    const int64_t h = sizes[i].h;
    x = make(ctx, be, 4, 1, sizes[i].ci, h, h, NAN);
    w = make(ctx, be, 4, sizes[i].co, sizes[i].ci, 3, 3, NAN);
    y = make(ctx, be, 4, 1, sizes[i].co, h - 2, h - 2, 0.0f);
    const ngc_conv_params p = {.stride = 1, .winograd = 1};
    ck_assert_int_eq(be->ops.conv2d_fwd(be, &p, &x.t, &w.t, NULL, &y.t), NEGCUT_OK);
    ck_assert_msg(is_wino(be) == sizes[i].wino, "%lld -> %lld at %lldx%lld: %s", (long long)sizes[i].ci,
                  (long long)sizes[i].co, (long long)h - 2, (long long)h - 2,
                  ngc_cpu_conv_last_impl(be));
    drop(&x), drop(&w), drop(&y);
  }
  /* The scratchpad bounds by class: (2, 128, 128, 128) -> 256 asks for 124
   * MB forward, 124 MB in the backward-data and 136 MB in the weight pass,
   * on 2 threads: under NGC_WINOGRAD_MAX_SCRATCH (ROOMY, the forward of
   * inference): Winograd; over NGC_WINOGRAD_MAX_SCRATCH_TRAINING: direct */
  x = make(ctx, be, 4, 2, 128, 128, 128, NAN);
  w = make(ctx, be, 4, 256, 128, 3, 3, NAN);
  dw = make(ctx, be, 4, 256, 128, 3, 3, 0.0f);
  buf dy = make(ctx, be, 4, 2, 256, 128, 128, NAN);
  const ngc_conv_params p1 = {.stride = 1, .pad = 1, .winograd = NGC_CONV_TRANSFORM};
  const ngc_conv_params proomy = {.stride = 1, .pad = 1, .winograd = NGC_CONV_TRANSFORM_ROOMY};
  ck_assert_int_eq(be->ops.conv2d_fwd(be, &proomy, &x.t, &w.t, NULL, &dy.t), NEGCUT_OK);
  ck_assert_msg(is_wino(be), "forward, 124 MB, roomy: %s", ngc_cpu_conv_last_impl(be));
  ck_assert_int_eq(be->ops.conv2d_fwd(be, &p1, &x.t, &w.t, NULL, &dy.t), NEGCUT_OK);
  ck_assert_msg(!is_wino(be), "forward, 124 MB: %s", ngc_cpu_conv_last_impl(be));
  ck_assert_int_eq(be->ops.conv2d_bwd(be, &p1, &x.t, &w.t, &dy.t, &x.t, NULL, NULL), NEGCUT_OK);
  ck_assert_msg(!is_wino(be), "backward-data, 124 MB: %s", ngc_cpu_conv_last_impl(be));
  ck_assert_int_eq(be->ops.conv2d_bwd(be, &p1, &x.t, &w.t, &dy.t, NULL, &dw.t, NULL), NEGCUT_OK);
  ck_assert_msg(!is_wino(be), "weights, 136 MB: %s", ngc_cpu_conv_last_impl(be));
  drop(&x), drop(&w), drop(&dw), drop(&dy);
  negcut_ctx_free(ctx);
}
END_TEST

/* Weights kept prepared (ngc_conv_params.w_store): for a direct, a
 * Winograd, a bf16 (where the CPU has bf16 dot products), a few-channel and
 * a transposed convolution, the forward with a store gives the same bits as
 * without, the first call fills the store and the second reads it (weights
 * changed after the first call still give the first output: the kept copy
 * is what runs), a store without room keeps nothing and changes nothing,
 * and clearing it empties it. */
static void kept_case(negcut_ctx *ctx, int64_t ci, int64_t co, int64_t h, int64_t k,
                      int32_t stride, int32_t pad, int transposed, int32_t winograd, int bf16) {
  ngc_backend *be = ctx->be;
  const int64_t ho = transposed ? (h - 1) * stride - 2 * pad + k + 1 : (h + 2 * pad - k) / stride + 1;
  buf x = make(ctx, be, 4, 1, ci, h, h, NAN);
  buf w = transposed ? make(ctx, be, 4, ci, co, k, k, NAN) : make(ctx, be, 4, co, ci, k, k, NAN);
  buf b = make(ctx, be, 1, co, 1, 1, 1, NAN);
  buf y[6];
  for (int i = 0; i < 6; i++) y[i] = make(ctx, be, 4, 1, co, ho, ho, NAN);
  const size_t ny = (size_t)ngc_numel(&y[0].t) * sizeof(float);
  const size_t nw = (size_t)ngc_numel(&w.t) * sizeof(float);
  ngc_wstore store = {.cap = (size_t)1 << 24}, tiny = {.cap = 64};
  ngc_conv_params p = {.stride = stride, .pad = pad, .out_pad = transposed, .bf16 = bf16,
                       .winograd = winograd};
  negcut_status (*fwd)(ngc_backend *, const ngc_conv_params *, const ngc_tensor *,
                       const ngc_tensor *, const ngc_tensor *, ngc_tensor *) =
      transposed ? be->ops.convt2d_fwd : be->ops.conv2d_fwd;
  char what[96];
  snprintf(what, sizeof what, "%s %lld -> %lld, %lldx%lld, k %lld, wino %d, bf16 %d",
           transposed ? "convt" : "conv", (long long)ci, (long long)co, (long long)h,
           (long long)h, (long long)k, (int)winograd, bf16);
  ck_assert_int_eq(fwd(be, &p, &x.t, &w.t, &b.t, &y[0].t), NEGCUT_OK);
  p.w_store = &store;
  ck_assert_int_eq(fwd(be, &p, &x.t, &w.t, &b.t, &y[1].t), NEGCUT_OK);
  const size_t used = store.used;
  ck_assert_msg(used > 0 && store.impl && store.free_impl, "%s: nothing kept", what);
  ck_assert_int_eq(fwd(be, &p, &x.t, &w.t, &b.t, &y[2].t), NEGCUT_OK);
  ck_assert_msg(store.used == used, "%s: kept again (%zu -> %zu bytes)", what, used, store.used);
  float *w0 = malloc(nw);
  memcpy(w0, w.t.data, nw);
  for (int64_t i = 0; i < ngc_numel(&w.t); i++) w.t.data[i] *= 0.5f;
  ck_assert_int_eq(fwd(be, &p, &x.t, &w.t, &b.t, &y[3].t), NEGCUT_OK); /* the kept copy */
  p.w_store = NULL;
  ck_assert_int_eq(fwd(be, &p, &x.t, &w.t, &b.t, &y[4].t), NEGCUT_OK); /* the new weights */
  memcpy(w.t.data, w0, nw);
  free(w0);
  p.w_store = &tiny;
  ck_assert_int_eq(fwd(be, &p, &x.t, &w.t, &b.t, &y[5].t), NEGCUT_OK);
  ck_assert_msg(tiny.used == 0 && !tiny.impl, "%s: kept beyond the cap", what);
  for (int i = 1; i < 6; i++)
    ck_assert_msg((memcmp(y[i].t.data, y[0].t.data, ny) == 0) == (i != 4),
                  "%s: output %d %s the store-less one", what, i, i == 4 ? "equals" : "differs from");
  ngc_wstore_clear(&store);
  ck_assert(store.used == 0 && !store.impl && !store.free_impl);
  drop(&x), drop(&w), drop(&b);
  for (int i = 0; i < 6; i++) drop(&y[i]);
}

START_TEST(test_kept_weights) {
  negcut_ctx *ctx = open_cpu();
  const int64_t few0 = ngc_cpu_of(ctx->be)->few_runs;
  kept_case(ctx, 64, 64, 18, 3, 1, 0, 0, NGC_CONV_TRANSFORM_NONE, 0);  /* direct */
  kept_case(ctx, 32, 32, 34, 3, 1, 0, 0, NGC_CONV_TRANSFORM_ROOMY, 0); /* Winograd (AVX-512) */
  kept_case(ctx, 64, 64, 18, 7, 1, 3, 0, NGC_CONV_TRANSFORM_NONE, 1);  /* bf16 where there */
  kept_case(ctx, 16, 3, 20, 7, 1, 3, 0, NGC_CONV_TRANSFORM_NONE, 0);   /* to few channels */
  kept_case(ctx, 16, 8, 9, 3, 2, 1, 1, NGC_CONV_TRANSFORM_NONE, 0);    /* transposed */
  if (ngc_cpu_avx512() && NGC_CPU_HAS_CLONES)
    ck_assert_int_eq(ngc_cpu_of(ctx->be)->few_runs - few0, 6); /* our loops ran each call */
  negcut_ctx_free(ctx);
}
END_TEST

/* Our own Winograd F(4x4, 3x3) (cpu_conv_wino.c): the forward of inference
 * between 16-channel blocked activations, with the transformed weights kept
 * in a store. Against the defining sums, under the tolerance above: ragged
 * last tiles, zero padding 0 to 2, batch 2, output counts that leave 1 to 3
 * vectors for the last register block, tile counts that leave 1 to 5 tiles
 * for the last one. Without a store, or in a training pass (transform class
 * NGC_CONV_TRANSFORM), oneDNN's kernels run instead, to the same sums. */
static void own_wino_case(negcut_ctx *ctx, int64_t n, int64_t ci, int64_t co, int64_t h,
                          int64_t w, int32_t pad, int bias) {
  ngc_backend *be = ctx->be;
  const conv_case c = {n, ci, co, h, w, 3, 1, pad, 0, bias};
  const int64_t ho = h + 2 * pad - 2, wo = w + 2 * pad - 2;
  buf x = make(ctx, be, 4, n, ci, h, w, NAN);
  buf wt = make(ctx, be, 4, co, ci, 3, 3, NAN);
  buf b = make(ctx, be, 1, co, 1, 1, 1, NAN);
  buf y = make(ctx, be, 4, n, co, ho, wo, 0.0f);
  ref_conv(&c, 0, ho, wo, x.t.data, wt.t.data, bias ? b.t.data : NULL, NULL, y.want, NULL,
           NULL, NULL);
  ngc_tensor xb, yb;
  ck_assert_int_eq(ngc_tensor_alloc(ctx, be, &xb, 4, x.t.dim), NEGCUT_OK);
  ck_assert_int_eq(ngc_tensor_alloc(ctx, be, &yb, 4, y.t.dim), NEGCUT_OK);
  xb.layout = yb.layout = NGC_LAYOUT_BLOCKED;
  ck_assert_int_eq(be->ops.relayout(be, &x.t, &xb), NEGCUT_OK);
  ngc_wstore store = {.cap = (size_t)1 << 24};
  const int own = ngc_cpu_avx512() && NGC_CPU_HAS_CLONES;
  char what[128];
  for (int run = 0; run < 4; run++) {
    /* 0, 1: with the store (made, then kept); 2: without; 3: a training pass */
    const ngc_conv_params p = {.stride = 1, .pad = pad,
                               .winograd = run == 3 ? NGC_CONV_TRANSFORM : NGC_CONV_TRANSFORM_ROOMY,
                               .w_store = run >= 2 ? NULL : &store};
    for (int64_t i = 0; i < ngc_numel(&yb); i++) yb.data[i] = 777.0f; /* all overwritten */
    const int64_t runs0 = ngc_cpu_of(be)->own_wino_runs;
    ck_assert_int_eq(be->ops.conv2d_fwd(be, &p, &xb, &wt.t, bias ? &b.t : NULL, &yb), NEGCUT_OK);
    snprintf(what, sizeof what, "own winograd n%lld %lld -> %lld %lldx%lld p%d b%d, run %d",
             (long long)n, (long long)ci, (long long)co, (long long)h, (long long)w, pad, bias,
             run);
    ck_assert_msg(ngc_cpu_of(be)->own_wino_runs - runs0 == (own && run < 2), "%s: ran %s", what,
                  own && run < 2 ? "oneDNN's" : "ours");
    ck_assert_int_eq(be->ops.relayout(be, &yb, &y.t), NEGCUT_OK);
    expect(what, &y.t, y.want, (double)(ci * 9), 1e-6);
  }
  if (own) /* kept once: 36 floats per channel pair */
    ck_assert_uint_eq(store.used, ((size_t)(36 * ci * co) * sizeof(float) + 63) & ~(size_t)63);
  ngc_wstore_clear(&store);
  ngc_tensor_release(&xb);
  ngc_tensor_release(&yb);
  drop(&x), drop(&wt), drop(&b), drop(&y);
}

START_TEST(test_own_winograd) {
  negcut_ctx *ctx = open_cpu();
  if (ctx->be->act_block != 16) {
    printf("test_own_winograd: activations are not in 16-channel blocks here (act_block %d); "
           "our Winograd convolutions do not run\n", (int)ctx->be->act_block);
    negcut_ctx_free(ctx);
    return;
  }
  /*            n  ci  co   h   w pad bias */
  own_wino_case(ctx, 1, 64, 64, 18, 18, 0, 1); /* a small generator's residual block: 16 tiles */
  own_wino_case(ctx, 2, 32, 48, 13, 11, 1, 0); /* ragged tiles, 3 output vectors, 2x4x3 tiles */
  own_wino_case(ctx, 1, 16, 80, 9, 10, 2, 1);  /* pad 2, 4 + 1 output vectors, 9 tiles */
  own_wino_case(ctx, 1, 16, 32, 5, 6, 1, 1);   /* one row of tiles, 2 output vectors */
  own_wino_case(ctx, 1, 32, 16, 64, 64, 1, 1); /* 256 tiles, 1 output vector */
  negcut_ctx_free(ctx);
}
END_TEST

/* One thread, and more threads than cores; the cache is rebuilt per context. */
START_TEST(test_threads_and_lifetime) {
  negcut_ctx_options o;
  negcut_ctx *ctx = NULL;
  ck_assert_int_eq(negcut_ctx_options_init(&o), NEGCUT_OK);
  o.backend = NEGCUT_BACKEND_CPU;
  o.threads = 1;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_OK);
  conv_case c = {1, 16, 16, 12, 12, 3, 1, 1, 0, 1};
  run_conv_case(ctx, &c, 0, 0);
  negcut_ctx_free(ctx);
  o.threads = 3; /* more threads than cores */
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_OK);
  run_conv_case(ctx, &c, 0, 0);
  run_conv_case(ctx, &c, 1, 0);
  negcut_ctx_free(ctx);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("cpu_conv");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_conv2d);
  tcase_add_test(tc, test_conv2d_winograd);
  tcase_add_test(tc, test_convt2d);
  tcase_add_test(tc, test_blur);
  tcase_add_test(tc, test_threads_and_lifetime);
  tcase_add_test(tc, test_kept_weights);
  tcase_add_test(tc, test_own_winograd);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ngc_test_run(suite()); }
