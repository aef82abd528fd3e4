/* The CPU backend's own loops (cpu_loops.c and its theme files): every slot
 * against a plain double-precision implementation written here, and against
 * the reference backend's slot where it has one. Odd shapes, batch 1 and 2,
 * sizes on both sides of the parallel threshold, accumulation into
 * parameter gradients, NULL gradients, and bit-identical repeats. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "core/core.h"
#include "core/tensor.h"
#include "ngc_test.h"

/* ------------------------------------------------------------ helpers */

typedef struct env {
  negcut_ctx *cpu, *ref;
  ngc_backend *be; /* the CPU backend under test */
  ngc_backend *rb; /* the reference backend (its slots may still be NULL) */
} env;

static env env_open(int32_t threads) {
  env e;
  negcut_ctx_options o;
  memset(&e, 0, sizeof e);
  ck_assert_int_eq(negcut_ctx_options_init(&o), NEGCUT_OK);
  o.backend = NEGCUT_BACKEND_CPU;
  o.threads = threads;
  ck_assert_int_eq(negcut_ctx_create(&e.cpu, &o), NEGCUT_OK);
  o.backend = NEGCUT_BACKEND_REF;
  o.threads = 1;
  ck_assert_int_eq(negcut_ctx_create(&e.ref, &o), NEGCUT_OK);
  e.be = e.cpu->be;
  e.rb = e.ref->be;
  ck_assert_str_eq(e.be->name, "cpu");
  return e;
}

static void env_close(env *e) {
  negcut_ctx_free(e->cpu);
  negcut_ctx_free(e->ref);
}

/* A header over test memory; trailing dims beyond nd are ignored. */
static ngc_tensor tv(ngc_backend *be, float *p, int32_t nd, int64_t d0, int64_t d1,
                     int64_t d2, int64_t d3) {
  int64_t d[4] = {d0, d1, d2, d3};
  return ngc_tensor_view(be, p, nd, d);
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static float urand(float lo, float hi) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}

static float *fbuf(int64_t n) {
  float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
  ck_assert_ptr_nonnull(p);
  return p;
}

static float *frand(int64_t n, float lo, float hi) {
  float *p = fbuf(n);
  for (int64_t i = 0; i < n; i++) p[i] = urand(lo, hi);
  return p;
}

static float *fdup(const float *s, int64_t n) {
  float *p = fbuf(n);
  memcpy(p, s, (size_t)n * sizeof *p);
  return p;
}

/* Filled with NaN: a slot that must assign must overwrite every element. */
static float *fnan(int64_t n) {
  float *p = fbuf(n);
  for (int64_t i = 0; i < n; i++) p[i] = NAN;
  return p;
}

static void expect_close(const char *what, const float *got, const float *want, int64_t n,
                         double atol, double rtol) {
  ck_assert_msg(ngc_test_compare(what, got, want, n, atol, rtol) == 0, "%s: mismatch", what);
}

static void expect_same_bits(const char *what, const float *a, const float *b, int64_t n) {
  ck_assert_msg(memcmp(a, b, (size_t)n * sizeof *a) == 0, "%s: repeat differs", what);
}

#define HAS_REF(e, slot) ((e).rb->ops.slot != NULL)

/* --------------------------------------------------------- element-wise */

static const int64_t k_sizes[] = {1, 63, 100003};

START_TEST(test_fill_axpby_add) {
  env e = env_open(2);
  for (size_t si = 0; si < sizeof k_sizes / sizeof *k_sizes; si++) {
    const int64_t n = k_sizes[si];
    float *x = frand(n, -2, 2), *y0 = frand(n, -2, 2), *y = fnan(n), *want = fbuf(n);
    ngc_tensor tx = tv(e.be, x, 1, n, 0, 0, 0), ty = tv(e.be, y, 1, n, 0, 0, 0);

    ck_assert_int_eq(e.be->ops.fill(e.be, &ty, 0.25f), NEGCUT_OK);
    for (int64_t i = 0; i < n; i++) want[i] = 0.25f;
    expect_close("fill", y, want, n, 0, 0);

    /* beta 0 must not read y: NaN stays out */
    for (int64_t i = 0; i < n; i++) y[i] = NAN;
    ck_assert_int_eq(e.be->ops.axpby(e.be, -1.5f, &tx, 0.0f, &ty), NEGCUT_OK);
    for (int64_t i = 0; i < n; i++) want[i] = (float)(-1.5 * x[i]);
    expect_close("axpby beta 0", y, want, n, 0, 1e-7);

    memcpy(y, y0, (size_t)n * sizeof *y);
    ck_assert_int_eq(e.be->ops.axpby(e.be, 0.7f, &tx, -0.3f, &ty), NEGCUT_OK);
    for (int64_t i = 0; i < n; i++) want[i] = (float)((double)0.7f * x[i] + (double)-0.3f * y0[i]);
    expect_close("axpby", y, want, n, 1e-7, 1e-6);
    if (HAS_REF(e, axpby)) {
      float *r = fdup(y0, n);
      ngc_tensor tr = tv(e.rb, r, 1, n, 0, 0, 0), trx = tv(e.rb, x, 1, n, 0, 0, 0);
      ck_assert_int_eq(e.rb->ops.axpby(e.rb, 0.7f, &trx, -0.3f, &tr), NEGCUT_OK);
      expect_close("axpby vs ref", y, r, n, 1e-7, 1e-6);
      free(r);
    }

    /* in place: y = x + y */
    memcpy(y, y0, (size_t)n * sizeof *y);
    ck_assert_int_eq(e.be->ops.add(e.be, &tx, &ty, &ty), NEGCUT_OK);
    for (int64_t i = 0; i < n; i++) want[i] = x[i] + y0[i];
    expect_close("add", y, want, n, 0, 0);
    free(x), free(y0), free(y), free(want);
  }
  env_close(&e);
}
END_TEST

START_TEST(test_act) {
  env e = env_open(2);
  const ngc_act acts[] = {NGC_ACT_RELU, NGC_ACT_LRELU, NGC_ACT_TANH};
  const char *names[] = {"relu", "lrelu", "tanh"};
  for (size_t si = 0; si < sizeof k_sizes / sizeof *k_sizes; si++) {
    const int64_t n = k_sizes[si];
    float *x = frand(n, -3, 3), *dy = frand(n, -1, 1);
    float *y = fnan(n), *dx = fnan(n), *want = fbuf(n);
    x[0] = 0.0f; /* relu'(0) = 0, as PyTorch */
    for (int a = 0; a < 3; a++) {
      const float alpha = 0.2f;
      char what[64];
      ngc_tensor tx = tv(e.be, x, 1, n, 0, 0, 0), ty = tv(e.be, y, 1, n, 0, 0, 0);
      ngc_tensor tdy = tv(e.be, dy, 1, n, 0, 0, 0), tdx = tv(e.be, dx, 1, n, 0, 0, 0);
      ck_assert_int_eq(e.be->ops.act_fwd(e.be, acts[a], alpha, &tx, &ty), NEGCUT_OK);
      for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        want[i] = (float)(a == 0 ? (v > 0 ? v : 0) : a == 1 ? (v > 0 ? v : (double)alpha * v)
                                                            : tanh(v));
      }
      snprintf(what, sizeof what, "%s fwd n=%lld", names[a], (long long)n);
      expect_close(what, y, want, n, 1e-7, 1e-6);
      ck_assert_int_eq(e.be->ops.act_bwd(e.be, acts[a], alpha, &tx, &ty, &tdy, &tdx),
                       NEGCUT_OK);
      for (int64_t i = 0; i < n; i++) {
        double g = dy[i];
        want[i] = (float)(a == 0 ? (x[i] > 0 ? g : 0)
                          : a == 1 ? (x[i] > 0 ? g : (double)alpha * g)
                                   : g * (1.0 - (double)y[i] * y[i]));
      }
      snprintf(what, sizeof what, "%s bwd n=%lld", names[a], (long long)n);
      expect_close(what, dx, want, n, 1e-7, 1e-6);
      if (HAS_REF(e, act_fwd) && HAS_REF(e, act_bwd)) {
        float *ry = fnan(n), *rdx = fnan(n);
        ngc_tensor rx = tv(e.rb, x, 1, n, 0, 0, 0), rty = tv(e.rb, ry, 1, n, 0, 0, 0);
        ngc_tensor rdy = tv(e.rb, dy, 1, n, 0, 0, 0), rtdx = tv(e.rb, rdx, 1, n, 0, 0, 0);
        ngc_tensor rour = tv(e.rb, y, 1, n, 0, 0, 0); /* tanh's backward reads y: ours */
        ck_assert_int_eq(e.rb->ops.act_fwd(e.rb, acts[a], alpha, &rx, &rty), NEGCUT_OK);
        ck_assert_int_eq(e.rb->ops.act_bwd(e.rb, acts[a], alpha, &rx, &rour, &rdy, &rtdx),
                         NEGCUT_OK);
        snprintf(what, sizeof what, "%s vs ref", names[a]);
        /* tanh: oneDNN's against glibc's, each within about 2 ulp */
        expect_close(what, y, ry, n, 0, a == 2 ? 4.8e-7 : 0);
        expect_close(what, dx, rdx, n, 1e-7, 1e-6);
        free(ry), free(rdx);
      }
    }
    free(x), free(dy), free(y), free(dx), free(want);
  }
  env_close(&e);
}
END_TEST

/* tanh (oneDNN's eltwise primitive) over floats spread evenly in their bit
 * patterns from 1e-30 to 20, both signs, and what PyTorch gives at the
 * edges: within 2 ulp of the true tanh (measured at most 1.2 over every
 * float in [1e-8, 12]), odd, +-1 at +-inf, NaN at NaN. Each length runs
 * its own primitive (a few kept, the others replaced, and remade when
 * their length comes again). */
START_TEST(test_tanh_accuracy) {
  env e = env_open(2);
  const int64_t n = 1 << 20;
  float *x = fbuf(n + 4), *y = fnan(n + 4);
  uint32_t lo, hi;
  const float flo = 1e-30f, fhi = 20.0f;
  memcpy(&lo, &flo, 4);
  memcpy(&hi, &fhi, 4);
  for (int64_t i = 0; i < n; i++) {
    const uint32_t u = lo + (uint32_t)((uint64_t)(hi - lo) * (uint64_t)(i / 2) / (uint64_t)(n / 2));
    memcpy(&x[i], &u, 4);
    if (i % 2) x[i] = -x[i];
  }
  x[n] = INFINITY, x[n + 1] = -INFINITY, x[n + 2] = NAN, x[n + 3] = 0.0f;
  for (int len = 5; len >= -1; len--) { /* 6 lengths, 4 primitives kept; the
                                           full length again last, after its eviction */
    const int64_t m = len > 0 ? n + 4 - len : n + 4;
    ngc_tensor tx = tv(e.be, x, 1, m, 0, 0, 0), ty = tv(e.be, y, 1, m, 0, 0, 0);
    ck_assert_int_eq(e.be->ops.act_fwd(e.be, NGC_ACT_TANH, 0.0f, &tx, &ty), NEGCUT_OK);
  }
  double worst = 0.0;
  int64_t at = 0;
  for (int64_t i = 0; i < n; i++) {
    const double t = tanh((double)x[i]);
    const float tf = (float)t;
    const double ulp = (double)nextafterf(fabsf(tf), 2.0f) - (double)fabsf(tf);
    const double err = fabs((double)y[i] - t) / ulp;
    if (err > worst) worst = err, at = i;
    if (i % 2) ck_assert_msg(y[i] == -y[i - 1], "tanh not odd at %g", (double)x[i - 1]);
  }
  ck_assert_msg(worst <= 2.0, "tanh: %.2f ulp at %.9g", worst, (double)x[at]);
  ck_assert(y[n] == 1.0f && y[n + 1] == -1.0f && isnan(y[n + 2]) && y[n + 3] == 0.0f);
  free(x), free(y);
  env_close(&e);
}
END_TEST

/* ------------------------------------------------------------- spatial */

/* PyTorch's padding index: valid for pad < n (reflect). */
static int64_t ref_pad_src(ngc_pad_mode m, int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  if (m == NGC_PAD_ZERO) return -1;
  if (m == NGC_PAD_REPLICATE) return i < 0 ? 0 : n - 1;
  return i < 0 ? -i : 2 * (n - 1) - i;
}

START_TEST(test_pad) {
  env e = env_open(2);
  /* N, C, H, W, pad */
  const int64_t shapes[][5] = {{1, 1, 5, 3, 1}, {1, 1, 5, 3, 2}, {2, 3, 7, 9, 1},
                               {2, 3, 7, 9, 3}, {1, 2, 4, 4, 3}, {1, 8, 64, 64, 1},
                               {2, 1, 1, 1, 0}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t N = shapes[s][0], C = shapes[s][1], H = shapes[s][2], W = shapes[s][3];
    const int32_t p = (int32_t)shapes[s][4];
    const int64_t Ho = H + 2 * p, Wo = W + 2 * p, nx = N * C * H * W, ny = N * C * Ho * Wo;
    for (int m = 0; m < 3; m++) {
      const ngc_pad_mode mode = (ngc_pad_mode)m;
      char what[96];
      float *x = frand(nx, -1, 1), *y = fnan(ny), *dy = frand(ny, -1, 1), *dx = fnan(nx);
      float *want_y = fbuf(ny), *want_dx = fbuf(nx);
      double *acc = calloc((size_t)nx, sizeof *acc);
      ngc_tensor tx = tv(e.be, x, 4, N, C, H, W), ty = tv(e.be, y, 4, N, C, Ho, Wo);
      ngc_tensor tdy = tv(e.be, dy, 4, N, C, Ho, Wo), tdx = tv(e.be, dx, 4, N, C, H, W);
      if (mode == NGC_PAD_REFLECT && (p >= H || p >= W)) goto next;
      for (int64_t pl = 0; pl < N * C; pl++)
        for (int64_t oh = 0; oh < Ho; oh++)
          for (int64_t ow = 0; ow < Wo; ow++) {
            int64_t sh = ref_pad_src(mode, oh - p, H), sw = ref_pad_src(mode, ow - p, W);
            int64_t o = (pl * Ho + oh) * Wo + ow;
            want_y[o] = sh < 0 || sw < 0 ? 0.0f : x[(pl * H + sh) * W + sw];
            if (sh >= 0 && sw >= 0) acc[(pl * H + sh) * W + sw] += dy[o];
          }
      for (int64_t i = 0; i < nx; i++) want_dx[i] = (float)acc[i];
      ck_assert_int_eq(e.be->ops.pad_fwd(e.be, mode, p, &tx, &ty), NEGCUT_OK);
      ck_assert_int_eq(e.be->ops.pad_bwd(e.be, mode, p, &tdy, &tdx), NEGCUT_OK);
      snprintf(what, sizeof what, "pad mode %d (%lld,%lld,%lld,%lld) p%d fwd", m, (long long)N,
               (long long)C, (long long)H, (long long)W, (int)p);
      expect_close(what, y, want_y, ny, 0, 0);
      snprintf(what, sizeof what, "pad mode %d (%lld,%lld,%lld,%lld) p%d bwd", m, (long long)N,
               (long long)C, (long long)H, (long long)W, (int)p);
      expect_close(what, dx, want_dx, nx, 1e-6, 1e-6);
      {
        float *dx2 = fnan(nx);
        ngc_tensor tdx2 = tv(e.be, dx2, 4, N, C, H, W);
        ck_assert_int_eq(e.be->ops.pad_bwd(e.be, mode, p, &tdy, &tdx2), NEGCUT_OK);
        expect_same_bits(what, dx, dx2, nx);
        free(dx2);
      }
      if (HAS_REF(e, pad_fwd) && HAS_REF(e, pad_bwd)) {
        float *ry = fnan(ny), *rdx = fnan(nx);
        ngc_tensor rx = tv(e.rb, x, 4, N, C, H, W), rty = tv(e.rb, ry, 4, N, C, Ho, Wo);
        ngc_tensor rdy = tv(e.rb, dy, 4, N, C, Ho, Wo), rtdx = tv(e.rb, rdx, 4, N, C, H, W);
        ck_assert_int_eq(e.rb->ops.pad_fwd(e.rb, mode, p, &rx, &rty), NEGCUT_OK);
        ck_assert_int_eq(e.rb->ops.pad_bwd(e.rb, mode, p, &rdy, &rtdx), NEGCUT_OK);
        expect_close("pad fwd vs ref", y, ry, ny, 0, 0);
        expect_close("pad bwd vs ref", dx, rdx, nx, 1e-6, 1e-6);
        free(ry), free(rdx);
      }
    next:
      free(x), free(y), free(dy), free(dx), free(want_y), free(want_dx), free(acc);
    }
  }
  env_close(&e);
}
END_TEST

START_TEST(test_hflip_concat) {
  env e = env_open(2);
  const int64_t shapes[][4] = {{1, 1, 5, 3}, {2, 3, 7, 9}, {1, 2, 3, 1}, {2, 16, 40, 40}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t N = shapes[s][0], C = shapes[s][1], H = shapes[s][2], W = shapes[s][3];
    const int64_t n = N * C * H * W, Cb = C + 2, nb = N * Cb * H * W, ny = n + nb;
    float *x = frand(n, -1, 1), *y = fnan(n), *want = fbuf(ny), *b = frand(nb, -1, 1);
    float *cy = fnan(ny), *da = fnan(n), *db = fnan(nb);
    ngc_tensor tx = tv(e.be, x, 4, N, C, H, W), ty = tv(e.be, y, 4, N, C, H, W);
    ngc_tensor tb = tv(e.be, b, 4, N, Cb, H, W), tcy = tv(e.be, cy, 4, N, C + Cb, H, W);
    ngc_tensor tda = tv(e.be, da, 4, N, C, H, W), tdb = tv(e.be, db, 4, N, Cb, H, W);

    for (int64_t r = 0; r < N * C * H; r++)
      for (int64_t w = 0; w < W; w++) want[r * W + w] = x[r * W + W - 1 - w];
    ck_assert_int_eq(e.be->ops.hflip(e.be, &tx, &ty), NEGCUT_OK);
    expect_close("hflip", y, want, n, 0, 0);
    ck_assert_int_eq(e.be->ops.hflip(e.be, &ty, &ty), NEGCUT_OK); /* in place, inverse */
    expect_close("hflip twice in place", y, x, n, 0, 0);

    for (int64_t i = 0; i < N; i++) {
      memcpy(want + i * (C + Cb) * H * W, x + i * C * H * W, (size_t)(C * H * W) * sizeof(float));
      memcpy(want + i * (C + Cb) * H * W + C * H * W, b + i * Cb * H * W,
             (size_t)(Cb * H * W) * sizeof(float));
    }
    ck_assert_int_eq(e.be->ops.concat_fwd(e.be, &tx, &tb, &tcy), NEGCUT_OK);
    expect_close("concat fwd", cy, want, ny, 0, 0);
    ck_assert_int_eq(e.be->ops.concat_bwd(e.be, &tcy, &tda, &tdb), NEGCUT_OK);
    expect_close("concat bwd a", da, x, n, 0, 0);
    expect_close("concat bwd b", db, b, nb, 0, 0);
    for (int64_t i = 0; i < n; i++) da[i] = NAN;
    ck_assert_int_eq(e.be->ops.concat_bwd(e.be, &tcy, NULL, &tdb), NEGCUT_OK);
    ck_assert(isnan(da[0]));
    ck_assert_int_eq(e.be->ops.concat_bwd(e.be, &tcy, &tda, NULL), NEGCUT_OK);
    expect_close("concat bwd a only", da, x, n, 0, 0);
    ck_assert_int_eq(e.be->ops.concat_bwd(e.be, &tcy, NULL, NULL), NEGCUT_OK);
    free(x), free(y), free(want), free(b), free(cy), free(da), free(db);
  }
  { /* 2-D: (N, Ca) and (N, Cb), as the negative generator's [feature, z] */
    float a2[6] = {1, 2, 3, 4, 5, 6}, b2[9] = {7, 8, 9, 10, 11, 12, 13, 14, 15}, y2[15];
    float want2[15] = {1, 2, 7, 8, 9, 3, 4, 10, 11, 12, 5, 6, 13, 14, 15}, da2[6], db2[9];
    ngc_tensor ta = tv(e.be, a2, 2, 3, 2, 0, 0), tb = tv(e.be, b2, 2, 3, 3, 0, 0);
    ngc_tensor ty = tv(e.be, y2, 2, 3, 5, 0, 0), tda = tv(e.be, da2, 2, 3, 2, 0, 0);
    ngc_tensor tdb = tv(e.be, db2, 2, 3, 3, 0, 0);
    ck_assert_int_eq(e.be->ops.concat_fwd(e.be, &ta, &tb, &ty), NEGCUT_OK);
    expect_close("concat 2-D fwd", y2, want2, 15, 0, 0);
    ck_assert_int_eq(e.be->ops.concat_bwd(e.be, &ty, &tda, &tdb), NEGCUT_OK);
    expect_close("concat 2-D bwd a", da2, a2, 6, 0, 0);
    expect_close("concat 2-D bwd b", db2, b2, 9, 0, 0);
  }
  env_close(&e);
}
END_TEST

/* ------------------------------------------------------- instance norm */

START_TEST(test_inorm) {
  env e = env_open(2);
  /* N, C, H, W, offset of the data (a large mean tests the statistics) */
  const int64_t shapes[][5] = {{1, 3, 7, 9, 0}, {2, 4, 5, 3, 1}, {1, 1, 1, 1, 0},
                               {2, 64, 16, 16, 0}, {1, 4, 128, 128, 40}};
  const float eps = 1e-5f;
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t N = shapes[s][0], C = shapes[s][1], H = shapes[s][2], W = shapes[s][3];
    const int64_t hw = H * W, n = N * C * hw, nc = N * C;
    const float off = (float)shapes[s][4];
    float *x = frand(n, off - 2, off + 2), *dy = frand(n, -1, 1);
    float *y = fnan(n), *mean = fnan(nc), *rstd = fnan(nc), *dx = fnan(n);
    float *wy = fbuf(n), *wm = fbuf(nc), *wr = fbuf(nc), *wdx = fbuf(n);
    ngc_tensor tx = tv(e.be, x, 4, N, C, H, W), ty = tv(e.be, y, 4, N, C, H, W);
    ngc_tensor tm = tv(e.be, mean, 2, N, C, 0, 0), tr = tv(e.be, rstd, 2, N, C, 0, 0);
    ngc_tensor tdy = tv(e.be, dy, 4, N, C, H, W), tdx = tv(e.be, dx, 4, N, C, H, W);
    char what[96];
    for (int64_t pl = 0; pl < nc; pl++) {
      const float *xp = x + pl * hw;
      double m = 0, v = 0;
      for (int64_t i = 0; i < hw; i++) m += xp[i];
      m /= (double)hw;
      for (int64_t i = 0; i < hw; i++) v += (xp[i] - m) * (xp[i] - m);
      v /= (double)hw;
      const double r = 1.0 / sqrt(v + eps);
      wm[pl] = (float)m;
      wr[pl] = (float)r;
      for (int64_t i = 0; i < hw; i++) wy[pl * hw + i] = (float)((xp[i] - m) * r);
    }
    ck_assert_int_eq(e.be->ops.inorm_fwd(e.be, eps, &tx, &ty, &tm, &tr), NEGCUT_OK);
    snprintf(what, sizeof what, "inorm (%lld,%lld,%lld,%lld)", (long long)N, (long long)C,
             (long long)H, (long long)W);
    /* y: the float mean and rstd carry ~1 ulp each; (x - m) loses the
     * offset's bits: 2 ulp of 40 is ~1e-5 relative to a unit y. */
    expect_close("inorm mean", mean, wm, nc, 1e-7, 2e-7);
    expect_close("inorm rstd", rstd, wr, nc, 0, 1e-6);
    expect_close(what, y, wy, n, off > 0 ? 2e-5 : 1e-6, 1e-6);

    /* backward from the slot's own y and rstd */
    for (int64_t pl = 0; pl < nc; pl++) {
      const float *yp = y + pl * hw, *gp = dy + pl * hw;
      double sg = 0, sgy = 0;
      for (int64_t i = 0; i < hw; i++) sg += gp[i], sgy += (double)gp[i] * yp[i];
      sg /= (double)hw;
      sgy /= (double)hw;
      for (int64_t i = 0; i < hw; i++)
        wdx[pl * hw + i] = (float)(rstd[pl] * (gp[i] - sg - yp[i] * sgy));
    }
    ck_assert_int_eq(e.be->ops.inorm_bwd(e.be, &ty, &tr, &tdy, &tdx), NEGCUT_OK);
    expect_close("inorm bwd", dx, wdx, n, 1e-6 * wr[0] + 1e-7, 1e-5);
    {
      float *y2 = fnan(n), *dx2 = fnan(n);
      ngc_tensor ty2 = tv(e.be, y2, 4, N, C, H, W), tdx2 = tv(e.be, dx2, 4, N, C, H, W);
      ck_assert_int_eq(e.be->ops.inorm_fwd(e.be, eps, &tx, &ty2, &tm, &tr), NEGCUT_OK);
      ck_assert_int_eq(e.be->ops.inorm_bwd(e.be, &ty, &tr, &tdy, &tdx2), NEGCUT_OK);
      expect_same_bits("inorm fwd repeat", y, y2, n);
      expect_same_bits("inorm bwd repeat", dx, dx2, n);
      free(y2), free(dx2);
    }
    if (HAS_REF(e, inorm_fwd) && HAS_REF(e, inorm_bwd)) {
      float *ry = fnan(n), *rm = fnan(nc), *rr = fnan(nc), *rdx = fnan(n);
      ngc_tensor rx = tv(e.rb, x, 4, N, C, H, W), rty = tv(e.rb, ry, 4, N, C, H, W);
      ngc_tensor rtm = tv(e.rb, rm, 2, N, C, 0, 0), rtr = tv(e.rb, rr, 2, N, C, 0, 0);
      ngc_tensor rdy = tv(e.rb, dy, 4, N, C, H, W), rtdx = tv(e.rb, rdx, 4, N, C, H, W);
      ngc_tensor my = tv(e.rb, y, 4, N, C, H, W), mr = tv(e.rb, rstd, 2, N, C, 0, 0);
      ck_assert_int_eq(e.rb->ops.inorm_fwd(e.rb, eps, &rx, &rty, &rtm, &rtr), NEGCUT_OK);
      expect_close("inorm mean vs ref", mean, rm, nc, 1e-7, 2e-7);
      expect_close("inorm rstd vs ref", rstd, rr, nc, 0, 1e-6);
      expect_close("inorm y vs ref", y, ry, n, off > 0 ? 2e-5 : 1e-6, 1e-6);
      ck_assert_int_eq(e.rb->ops.inorm_bwd(e.rb, &my, &mr, &rdy, &rtdx), NEGCUT_OK);
      expect_close("inorm bwd vs ref", dx, rdx, n, 1e-6 * wr[0] + 1e-7, 1e-5);
      free(ry), free(rm), free(rr), free(rdx);
    }
    free(x), free(dy), free(y), free(mean), free(rstd), free(dx);
    free(wy), free(wm), free(wr), free(wdx);
  }
  env_close(&e);
}
END_TEST

/* ------------------------------------------------------------ matrices */

/* |error| of a float dot product of length k with unit-size terms. */
static double gemm_atol(int64_t k) { return 1e-6 + 2e-7 * (double)k; }

START_TEST(test_linear) {
  env e = env_open(2);
  /* M, K, N: tiny, odd, rows split, column split (M < threads * 16) */
  const int64_t shapes[][3] = {{5, 3, 7}, {1, 9, 4}, {37, 19, 23}, {300, 64, 48}, {3, 512, 640}};
  for (size_t t = 0; t < 2 * (sizeof shapes / sizeof *shapes); t++) {
    const size_t s = t >> 1; /* each shape through both sgemms */
    ngc_cpu_of(e.be)->gemm = (int32_t)(t & 1);
    const int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
    float *x = frand(M * K, -1, 1), *w = frand(N * K, -1, 1), *b = frand(N, -1, 1);
    float *dy = frand(M * N, -1, 1), *dw0 = frand(N * K, -1, 1), *db0 = frand(N, -1, 1);
    float *y = fnan(M * N), *dx = fnan(M * K), *dw = fdup(dw0, N * K), *db = fdup(db0, N);
    float *wy = fbuf(M * N), *wdx = fbuf(M * K), *wdw = fbuf(N * K), *wdb = fbuf(N);
    ngc_tensor tx = tv(e.be, x, 2, M, K, 0, 0), tw = tv(e.be, w, 2, N, K, 0, 0);
    ngc_tensor tb = tv(e.be, b, 1, N, 0, 0, 0), ty = tv(e.be, y, 2, M, N, 0, 0);
    ngc_tensor tdy = tv(e.be, dy, 2, M, N, 0, 0), tdx = tv(e.be, dx, 2, M, K, 0, 0);
    ngc_tensor tdw = tv(e.be, dw, 2, N, K, 0, 0), tdb = tv(e.be, db, 1, N, 0, 0, 0);
    char what[64];
    snprintf(what, sizeof what, "linear %lldx%lld->%lld (%s)", (long long)M, (long long)K,
             (long long)N, ngc_cpu_gemm_name((ngc_cpu_gemm)(t & 1)));
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double a = b[j];
        for (int64_t k = 0; k < K; k++) a += (double)x[i * K + k] * w[j * K + k];
        wy[i * N + j] = (float)a;
      }
    for (int64_t i = 0; i < M; i++)
      for (int64_t k = 0; k < K; k++) {
        double a = 0;
        for (int64_t j = 0; j < N; j++) a += (double)dy[i * N + j] * w[j * K + k];
        wdx[i * K + k] = (float)a;
      }
    for (int64_t j = 0; j < N; j++) {
      double sb = db0[j];
      for (int64_t i = 0; i < M; i++) sb += dy[i * N + j];
      wdb[j] = (float)sb;
      for (int64_t k = 0; k < K; k++) {
        double a = dw0[j * K + k];
        for (int64_t i = 0; i < M; i++) a += (double)dy[i * N + j] * x[i * K + k];
        wdw[j * K + k] = (float)a;
      }
    }
    ck_assert_int_eq(e.be->ops.linear_fwd(e.be, &tx, &tw, &tb, &ty), NEGCUT_OK);
    expect_close(what, y, wy, M * N, gemm_atol(K), 1e-5);
    ck_assert_int_eq(e.be->ops.linear_bwd(e.be, &tx, &tw, &tdy, &tdx, &tdw, &tdb), NEGCUT_OK);
    expect_close("linear dx", dx, wdx, M * K, gemm_atol(N), 1e-5);
    expect_close("linear dw (accumulated)", dw, wdw, N * K, gemm_atol(M), 1e-5);
    expect_close("linear db (accumulated)", db, wdb, N, gemm_atol(M), 1e-5);

    /* no bias; repeat gives the same bits */
    {
      float *y2 = fnan(M * N), *y3 = fnan(M * N);
      ngc_tensor ty2 = tv(e.be, y2, 2, M, N, 0, 0), ty3 = tv(e.be, y3, 2, M, N, 0, 0);
      ck_assert_int_eq(e.be->ops.linear_fwd(e.be, &tx, &tw, NULL, &ty2), NEGCUT_OK);
      ck_assert_int_eq(e.be->ops.linear_fwd(e.be, &tx, &tw, NULL, &ty3), NEGCUT_OK);
      expect_same_bits("linear repeat", y2, y3, M * N);
      for (int64_t i = 0; i < M * N; i++) wy[i] -= b[i % N];
      expect_close("linear no bias", y2, wy, M * N, gemm_atol(K) + 1e-6, 1e-5);
      free(y2), free(y3);
    }
    /* NULL grads: dx alone, then dw and db alone, then nothing */
    {
      float *dx2 = fnan(M * K), *dw2 = fdup(dw0, N * K), *db2 = fdup(db0, N);
      ngc_tensor tdx2 = tv(e.be, dx2, 2, M, K, 0, 0), tdw2 = tv(e.be, dw2, 2, N, K, 0, 0);
      ngc_tensor tdb2 = tv(e.be, db2, 1, N, 0, 0, 0);
      ck_assert_int_eq(e.be->ops.linear_bwd(e.be, &tx, &tw, &tdy, &tdx2, NULL, NULL),
                       NEGCUT_OK);
      expect_same_bits("linear dx alone", dx, dx2, M * K);
      ck_assert_int_eq(e.be->ops.linear_bwd(e.be, &tx, &tw, &tdy, NULL, &tdw2, &tdb2),
                       NEGCUT_OK);
      expect_same_bits("linear dw alone", dw, dw2, N * K);
      expect_same_bits("linear db alone", db, db2, N);
      ck_assert_int_eq(e.be->ops.linear_bwd(e.be, &tx, &tw, &tdy, NULL, NULL, NULL),
                       NEGCUT_OK);
      expect_same_bits("linear nothing", dw, dw2, N * K);
      free(dx2), free(dw2), free(db2);
    }
    if (HAS_REF(e, linear_fwd) && HAS_REF(e, linear_bwd)) {
      float *ry = fnan(M * N), *rdx = fnan(M * K), *rdw = fdup(dw0, N * K), *rdb = fdup(db0, N);
      ngc_tensor rx = tv(e.rb, x, 2, M, K, 0, 0), rw = tv(e.rb, w, 2, N, K, 0, 0);
      ngc_tensor rb = tv(e.rb, b, 1, N, 0, 0, 0), rty = tv(e.rb, ry, 2, M, N, 0, 0);
      ngc_tensor rdy = tv(e.rb, dy, 2, M, N, 0, 0), rtdx = tv(e.rb, rdx, 2, M, K, 0, 0);
      ngc_tensor rtdw = tv(e.rb, rdw, 2, N, K, 0, 0), rtdb = tv(e.rb, rdb, 1, N, 0, 0, 0);
      ck_assert_int_eq(e.rb->ops.linear_fwd(e.rb, &rx, &rw, &rb, &rty), NEGCUT_OK);
      ck_assert_int_eq(e.rb->ops.linear_bwd(e.rb, &rx, &rw, &rdy, &rtdx, &rtdw, &rtdb),
                       NEGCUT_OK);
      expect_close("linear y vs ref", y, ry, M * N, gemm_atol(K), 1e-5);
      expect_close("linear dx vs ref", dx, rdx, M * K, gemm_atol(N), 1e-5);
      expect_close("linear dw vs ref", dw, rdw, N * K, gemm_atol(M), 1e-5);
      expect_close("linear db vs ref", db, rdb, N, gemm_atol(M), 1e-5);
      free(ry), free(rdx), free(rdw), free(rdb);
    }
    free(x), free(w), free(b), free(dy), free(dw0), free(db0), free(y), free(dx), free(dw);
    free(db), free(wy), free(wdx), free(wdw), free(wdb);
  }
  env_close(&e);
}
END_TEST

/* K = 0: no products, and empty operands may have no memory (NULL), which
 * an sgemm may refuse. y = bias or 0, dw unchanged, c = 0, for each sgemm. */
START_TEST(test_gemm_empty_k) {
  env e = env_open(2);
  const int64_t M = 40, N = 24; /* over GEMM_PAR_MIN_FLOP only with K > 0 */
  for (int32_t engine = 0; engine < 2; engine++) {
    ngc_cpu_of(e.be)->gemm = engine;
    float *y = fnan(M * N), *b = frand(N, -1, 1), *dy = frand(M * N, -1, 1);
    float *db = fbuf(N), *c = fnan(2 * M * N);
    ngc_tensor tx = tv(e.be, NULL, 2, M, 0, 0, 0), tw = tv(e.be, NULL, 2, N, 0, 0, 0);
    ngc_tensor ty = tv(e.be, y, 2, M, N, 0, 0), tb = tv(e.be, b, 1, N, 0, 0, 0);
    ngc_tensor tdy = tv(e.be, dy, 2, M, N, 0, 0), tdx = tv(e.be, NULL, 2, M, 0, 0, 0);
    ngc_tensor tdw = tv(e.be, NULL, 2, N, 0, 0, 0), tdb = tv(e.be, db, 1, N, 0, 0, 0);
    ngc_tensor ta = tv(e.be, NULL, 3, 2, M, 0, 0), tbb = tv(e.be, NULL, 3, 2, N, 0, 0);
    ngc_tensor tc = tv(e.be, c, 3, 2, M, N, 0);
    ck_assert_int_eq(e.be->ops.linear_fwd(e.be, &tx, &tw, NULL, &ty), NEGCUT_OK);
    for (int64_t i = 0; i < M * N; i++) ck_assert_msg(y[i] == 0.0f, "%s: y[%lld] = %g",
                                                      ngc_cpu_gemm_name(engine), (long long)i, y[i]);
    ck_assert_int_eq(e.be->ops.linear_fwd(e.be, &tx, &tw, &tb, &ty), NEGCUT_OK);
    for (int64_t i = 0; i < M * N; i++) ck_assert(y[i] == b[i % N]);
    memset(db, 0, (size_t)N * sizeof *db);
    ck_assert_int_eq(e.be->ops.linear_bwd(e.be, &tx, &tw, &tdy, &tdx, &tdw, &tdb), NEGCUT_OK);
    for (int64_t j = 0; j < N; j++) {
      double sum = 0.0;
      for (int64_t i = 0; i < M; i++) sum += dy[i * N + j];
      ck_assert(fabs(db[j] - sum) <= 1e-5);
    }
    ck_assert_int_eq(e.be->ops.bmm_fwd(e.be, &ta, &tbb, &tc), NEGCUT_OK);
    for (int64_t i = 0; i < 2 * M * N; i++) ck_assert(c[i] == 0.0f);
    free(y), free(b), free(dy), free(db), free(c);
  }
  env_close(&e);
}
END_TEST

START_TEST(test_bmm) {
  env e = env_open(2);
  /* B, M, N, K: tiny, odd, single-thread, row split across batches,
   * column split */
  const int64_t shapes[][4] = {{1, 5, 3, 7}, {2, 7, 9, 5}, {2, 64, 40, 33},
                               {3, 100, 96, 64}, {1, 4, 700, 300}};
  for (size_t t = 0; t < 2 * (sizeof shapes / sizeof *shapes); t++) {
    const size_t s = t >> 1; /* each shape through both sgemms */
    ngc_cpu_of(e.be)->gemm = (int32_t)(t & 1);
    const int64_t B = shapes[s][0], M = shapes[s][1], N = shapes[s][2], K = shapes[s][3];
    const int64_t na = B * M * K, nb = B * N * K, nc = B * M * N;
    float *a = frand(na, -1, 1), *b = frand(nb, -1, 1), *dc = frand(nc, -1, 1);
    float *c = fnan(nc), *da = fnan(na), *db = fnan(nb);
    float *wc = fbuf(nc), *wda = fbuf(na), *wdb = fbuf(nb);
    ngc_tensor ta = tv(e.be, a, 3, B, M, K, 0), tb = tv(e.be, b, 3, B, N, K, 0);
    ngc_tensor tc = tv(e.be, c, 3, B, M, N, 0), tdc = tv(e.be, dc, 3, B, M, N, 0);
    ngc_tensor tda = tv(e.be, da, 3, B, M, K, 0), tdb = tv(e.be, db, 3, B, N, K, 0);
    for (int64_t bi = 0; bi < B; bi++) {
      const float *ab = a + bi * M * K, *bb = b + bi * N * K, *gb = dc + bi * M * N;
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
          double acc = 0;
          for (int64_t k = 0; k < K; k++) acc += (double)ab[i * K + k] * bb[j * K + k];
          wc[bi * M * N + i * N + j] = (float)acc;
        }
      for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) {
          double acc = 0;
          for (int64_t j = 0; j < N; j++) acc += (double)gb[i * N + j] * bb[j * K + k];
          wda[bi * M * K + i * K + k] = (float)acc;
        }
      for (int64_t j = 0; j < N; j++)
        for (int64_t k = 0; k < K; k++) {
          double acc = 0;
          for (int64_t i = 0; i < M; i++) acc += (double)gb[i * N + j] * ab[i * K + k];
          wdb[bi * N * K + j * K + k] = (float)acc;
        }
    }
    ck_assert_int_eq(e.be->ops.bmm_fwd(e.be, &ta, &tb, &tc), NEGCUT_OK);
    char what[64];
    snprintf(what, sizeof what, "bmm %lldx%lldx%lldx%lld c (%s)", (long long)B, (long long)M,
             (long long)N, (long long)K, ngc_cpu_gemm_name((ngc_cpu_gemm)(t & 1)));
    expect_close(what, c, wc, nc, gemm_atol(K), 1e-5);
    ck_assert_int_eq(e.be->ops.bmm_bwd(e.be, &ta, &tb, &tdc, &tda, &tdb), NEGCUT_OK);
    expect_close("bmm da", da, wda, na, gemm_atol(N), 1e-5);
    expect_close("bmm db", db, wdb, nb, gemm_atol(M), 1e-5);
    {
      float *c2 = fnan(nc), *db2 = fnan(nb);
      ngc_tensor tc2 = tv(e.be, c2, 3, B, M, N, 0), tdb2 = tv(e.be, db2, 3, B, N, K, 0);
      ck_assert_int_eq(e.be->ops.bmm_fwd(e.be, &ta, &tb, &tc2), NEGCUT_OK);
      expect_same_bits("bmm repeat", c, c2, nc);
      ck_assert_int_eq(e.be->ops.bmm_bwd(e.be, &ta, &tb, &tdc, NULL, &tdb2), NEGCUT_OK);
      expect_same_bits("bmm db alone", db, db2, nb);
      free(c2), free(db2);
    }
    if (HAS_REF(e, bmm_fwd) && HAS_REF(e, bmm_bwd)) {
      float *rc = fnan(nc), *rda = fnan(na), *rdb = fnan(nb);
      ngc_tensor ra = tv(e.rb, a, 3, B, M, K, 0), rb = tv(e.rb, b, 3, B, N, K, 0);
      ngc_tensor rtc = tv(e.rb, rc, 3, B, M, N, 0), rdc = tv(e.rb, dc, 3, B, M, N, 0);
      ngc_tensor rtda = tv(e.rb, rda, 3, B, M, K, 0), rtdb = tv(e.rb, rdb, 3, B, N, K, 0);
      ck_assert_int_eq(e.rb->ops.bmm_fwd(e.rb, &ra, &rb, &rtc), NEGCUT_OK);
      ck_assert_int_eq(e.rb->ops.bmm_bwd(e.rb, &ra, &rb, &rdc, &rtda, &rtdb), NEGCUT_OK);
      expect_close("bmm c vs ref", c, rc, nc, gemm_atol(K), 1e-5);
      expect_close("bmm da vs ref", da, rda, na, gemm_atol(N), 1e-5);
      expect_close("bmm db vs ref", db, rdb, nb, gemm_atol(M), 1e-5);
      free(rc), free(rda), free(rdb);
    }
    free(a), free(b), free(dc), free(c), free(da), free(db), free(wc), free(wda), free(wdb);
  }
  env_close(&e);
}
END_TEST

/* ---------------------------------------------------------------- rows */

START_TEST(test_l2norm) {
  env e = env_open(2);
  const int64_t shapes[][2] = {{5, 3}, {7, 9}, {513, 256}};
  const float eps = 1e-7f;
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t M = shapes[s][0], C = shapes[s][1], n = M * C;
    float *x = frand(n, -1, 1), *dy = frand(n, -1, 1), *y = fnan(n), *nrm = fnan(M);
    float *dx = fnan(n), *wy = fbuf(n), *wn = fbuf(M), *wdx = fbuf(n);
    ngc_tensor tx = tv(e.be, x, 2, M, C, 0, 0), ty = tv(e.be, y, 2, M, C, 0, 0);
    ngc_tensor tn = tv(e.be, nrm, 1, M, 0, 0, 0), tdy = tv(e.be, dy, 2, M, C, 0, 0);
    ngc_tensor tdx = tv(e.be, dx, 2, M, C, 0, 0);
    for (int64_t j = 0; j < C; j++) x[(M - 1) * C + j] = 0.0f; /* a zero row */
    for (int64_t i = 0; i < M; i++) {
      double ss = 0, dot = 0;
      for (int64_t j = 0; j < C; j++) ss += (double)x[i * C + j] * x[i * C + j];
      const double r = sqrt(ss), d = r + eps;
      wn[i] = (float)r;
      for (int64_t j = 0; j < C; j++) wy[i * C + j] = (float)(x[i * C + j] / d);
      for (int64_t j = 0; j < C; j++) dot += (double)x[i * C + j] * dy[i * C + j];
      for (int64_t j = 0; j < C; j++)
        wdx[i * C + j] =
            (float)(dy[i * C + j] / d - (r > 0 ? x[i * C + j] * dot / (r * d * d) : 0.0));
    }
    ck_assert_int_eq(e.be->ops.l2norm_fwd(e.be, eps, &tx, &ty, &tn), NEGCUT_OK);
    expect_close("l2norm norm", nrm, wn, M, 1e-7, 1e-6);
    expect_close("l2norm y", y, wy, n, 1e-7, 1e-6);
    ck_assert_int_eq(e.be->ops.l2norm_bwd(e.be, eps, &tx, &tn, &tdy, &tdx), NEGCUT_OK);
    /* the zero row's gradient is dy / eps: compare relative */
    expect_close("l2norm dx", dx, wdx, n, 1e-6, 1e-5);
    if (HAS_REF(e, l2norm_fwd) && HAS_REF(e, l2norm_bwd)) {
      float *ry = fnan(n), *rn = fnan(M), *rdx = fnan(n);
      ngc_tensor rx = tv(e.rb, x, 2, M, C, 0, 0), rty = tv(e.rb, ry, 2, M, C, 0, 0);
      ngc_tensor rtn = tv(e.rb, rn, 1, M, 0, 0, 0), rdy = tv(e.rb, dy, 2, M, C, 0, 0);
      ngc_tensor rtdx = tv(e.rb, rdx, 2, M, C, 0, 0);
      ck_assert_int_eq(e.rb->ops.l2norm_fwd(e.rb, eps, &rx, &rty, &rtn), NEGCUT_OK);
      ck_assert_int_eq(e.rb->ops.l2norm_bwd(e.rb, eps, &rx, &rtn, &rdy, &rtdx), NEGCUT_OK);
      expect_close("l2norm norm vs ref", nrm, rn, M, 1e-7, 1e-6);
      expect_close("l2norm y vs ref", y, ry, n, 1e-7, 1e-6);
      expect_close("l2norm dx vs ref", dx, rdx, n, 1e-6, 1e-5);
      free(ry), free(rn), free(rdx);
    }
    free(x), free(dy), free(y), free(nrm), free(dx), free(wy), free(wn), free(wdx);
  }
  env_close(&e);
}
END_TEST

START_TEST(test_gather) {
  env e = env_open(2);
  /* B, C, H, W, n_ids */
  const int64_t shapes[][5] = {{1, 3, 5, 7, 9}, {2, 3, 5, 7, 40}, {2, 256, 16, 16, 64}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t B = shapes[s][0], C = shapes[s][1], H = shapes[s][2], W = shapes[s][3];
    const int64_t S = shapes[s][4], hw = H * W, nx = B * C * hw, ny = B * S * C;
    int64_t *ids = malloc((size_t)S * sizeof *ids);
    float *x = frand(nx, -1, 1), *dy = frand(ny, -1, 1), *y = fnan(ny), *dx = fnan(nx);
    float *wy = fbuf(ny);
    double *acc = calloc((size_t)nx, sizeof *acc);
    float *wdx = fbuf(nx);
    /* repeated ids (40 > 35 positions) must add up in backward */
    for (int64_t i = 0; i < S; i++) ids[i] = (i * 7 + 3) % hw;
    ngc_tensor tx = tv(e.be, x, 4, B, C, H, W), ty = tv(e.be, y, 2, B * S, C, 0, 0);
    ngc_tensor tdy = tv(e.be, dy, 2, B * S, C, 0, 0), tdx = tv(e.be, dx, 4, B, C, H, W);
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i < S; i++)
        for (int64_t c = 0; c < C; c++) {
          wy[(b * S + i) * C + c] = x[(b * C + c) * hw + ids[i]];
          acc[(b * C + c) * hw + ids[i]] += dy[(b * S + i) * C + c];
        }
    for (int64_t i = 0; i < nx; i++) wdx[i] = (float)acc[i];
    ck_assert_int_eq(e.be->ops.gather_fwd(e.be, &tx, ids, S, &ty), NEGCUT_OK);
    expect_close("gather fwd", y, wy, ny, 0, 0);
    ck_assert_int_eq(e.be->ops.gather_bwd(e.be, &tdy, ids, S, &tdx), NEGCUT_OK);
    expect_close("gather bwd", dx, wdx, nx, 1e-6, 1e-6);
    if (HAS_REF(e, gather_fwd) && HAS_REF(e, gather_bwd)) {
      float *ry = fnan(ny), *rdx = fnan(nx);
      ngc_tensor rx = tv(e.rb, x, 4, B, C, H, W), rty = tv(e.rb, ry, 2, B * S, C, 0, 0);
      ngc_tensor rdy = tv(e.rb, dy, 2, B * S, C, 0, 0), rtdx = tv(e.rb, rdx, 4, B, C, H, W);
      ck_assert_int_eq(e.rb->ops.gather_fwd(e.rb, &rx, ids, S, &rty), NEGCUT_OK);
      ck_assert_int_eq(e.rb->ops.gather_bwd(e.rb, &rdy, ids, S, &rtdx), NEGCUT_OK);
      expect_close("gather fwd vs ref", y, ry, ny, 0, 0);
      expect_close("gather bwd vs ref", dx, rdx, nx, 1e-6, 1e-6);
      free(ry), free(rdx);
    }
    free(ids), free(x), free(dy), free(y), free(dx), free(wy), free(acc), free(wdx);
  }
  env_close(&e);
}
END_TEST

START_TEST(test_mean_rows) {
  env e = env_open(2);
  const int64_t shapes[][3] = {{1, 5, 3}, {2, 7, 9}, {2, 4096, 256}, {1, 65, 1}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t B = shapes[s][0], P = shapes[s][1], C = shapes[s][2], nx = B * P * C;
    float *x = frand(nx, 0.5f, 1.5f), *dy = frand(B * C, -1, 1), *y = fnan(B * C);
    float *dx = fnan(nx), *wy = fbuf(B * C), *wdx = fbuf(nx), *y2 = fnan(B * C);
    ngc_tensor tx = tv(e.be, x, 3, B, P, C, 0), ty = tv(e.be, y, 2, B, C, 0, 0);
    ngc_tensor tdy = tv(e.be, dy, 2, B, C, 0, 0), tdx = tv(e.be, dx, 3, B, P, C, 0);
    ngc_tensor ty2 = tv(e.be, y2, 2, B, C, 0, 0);
    for (int64_t b = 0; b < B; b++)
      for (int64_t c = 0; c < C; c++) {
        double a = 0;
        for (int64_t p = 0; p < P; p++) a += x[(b * P + p) * C + c];
        wy[b * C + c] = (float)(a / (double)P);
        for (int64_t p = 0; p < P; p++) wdx[(b * P + p) * C + c] = (float)(dy[b * C + c] / (double)P);
      }
    ck_assert_int_eq(e.be->ops.mean_fwd(e.be, &tx, &ty), NEGCUT_OK);
    expect_close("mean fwd", y, wy, B * C, 1e-7, 1e-6);
    ck_assert_int_eq(e.be->ops.mean_fwd(e.be, &tx, &ty2), NEGCUT_OK);
    expect_same_bits("mean fwd repeat", y, y2, B * C);
    ck_assert_int_eq(e.be->ops.mean_bwd(e.be, &tdy, &tdx), NEGCUT_OK);
    expect_close("mean bwd", dx, wdx, nx, 0, 1e-7);
    if (HAS_REF(e, mean_fwd) && HAS_REF(e, mean_bwd)) {
      float *ry = fnan(B * C), *rdx = fnan(nx);
      ngc_tensor rx = tv(e.rb, x, 3, B, P, C, 0), rty = tv(e.rb, ry, 2, B, C, 0, 0);
      ngc_tensor rdy = tv(e.rb, dy, 2, B, C, 0, 0), rtdx = tv(e.rb, rdx, 3, B, P, C, 0);
      ck_assert_int_eq(e.rb->ops.mean_fwd(e.rb, &rx, &rty), NEGCUT_OK);
      ck_assert_int_eq(e.rb->ops.mean_bwd(e.rb, &rdy, &rtdx), NEGCUT_OK);
      expect_close("mean fwd vs ref", y, ry, B * C, 1e-7, 1e-6);
      expect_close("mean bwd vs ref", dx, rdx, nx, 0, 1e-7);
      free(ry), free(rdx);
    }
    free(x), free(dy), free(y), free(dx), free(wy), free(wdx), free(y2);
  }
  env_close(&e);
}
END_TEST

START_TEST(test_fill_diag) {
  env e = env_open(2);
  /* B, M, N: square, and both ways non-square (diagonal up to min(M, N)) */
  const int64_t shapes[][3] = {{1, 5, 5}, {2, 9, 9}, {2, 256, 256}, {2, 3, 7}, {1, 7, 3}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t B = shapes[s][0], M = shapes[s][1], N = shapes[s][2], n = B * M * N;
    float *x = frand(n, -1, 1), *y = fnan(n), *dx = fnan(n), *w = fdup(x, n), *wd = fdup(x, n);
    ngc_tensor tx = tv(e.be, x, 3, B, M, N, 0), ty = tv(e.be, y, 3, B, M, N, 0);
    ngc_tensor tdx = tv(e.be, dx, 3, B, M, N, 0);
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i < M && i < N; i++) {
        w[(b * M + i) * N + i] = -10.0f;
        wd[(b * M + i) * N + i] = 0.0f;
      }
    ck_assert_int_eq(e.be->ops.fill_diag_fwd(e.be, -10.0f, &tx, &ty), NEGCUT_OK);
    expect_close("fill_diag fwd", y, w, n, 0, 0);
    ck_assert_int_eq(e.be->ops.fill_diag_bwd(e.be, &tx, &tdx), NEGCUT_OK);
    expect_close("fill_diag bwd", dx, wd, n, 0, 0);
    if (HAS_REF(e, fill_diag_fwd) && HAS_REF(e, fill_diag_bwd)) {
      float *ry = fnan(n), *rdx = fnan(n);
      ngc_tensor rx = tv(e.rb, x, 3, B, M, N, 0), rty = tv(e.rb, ry, 3, B, M, N, 0);
      ngc_tensor rtdx = tv(e.rb, rdx, 3, B, M, N, 0);
      ck_assert_int_eq(e.rb->ops.fill_diag_fwd(e.rb, -10.0f, &rx, &rty), NEGCUT_OK);
      ck_assert_int_eq(e.rb->ops.fill_diag_bwd(e.rb, &rx, &rtdx), NEGCUT_OK);
      expect_close("fill_diag fwd vs ref", y, ry, n, 0, 0);
      expect_close("fill_diag bwd vs ref", dx, rdx, n, 0, 0);
      free(ry), free(rdx);
    }
    ck_assert_int_eq(e.be->ops.fill_diag_fwd(e.be, -10.0f, &tx, &tx), NEGCUT_OK);
    expect_close("fill_diag in place", x, w, n, 0, 0);
    free(x), free(y), free(dx), free(w), free(wd);
  }
  env_close(&e);
}
END_TEST

START_TEST(test_rowdot) {
  env e = env_open(2);
  const int64_t shapes[][2] = {{5, 3}, {7, 9}, {512, 256}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t M = shapes[s][0], C = shapes[s][1], n = M * C;
    float *a = frand(n, -1, 1), *b = frand(n, -1, 1), *dy = frand(M, -1, 1), *y = fnan(M);
    float *da = fnan(n), *db = fnan(n), *wy = fbuf(M), *wda = fbuf(n), *wdb = fbuf(n);
    ngc_tensor ta = tv(e.be, a, 2, M, C, 0, 0), tb = tv(e.be, b, 2, M, C, 0, 0);
    ngc_tensor tdy = tv(e.be, dy, 1, M, 0, 0, 0), ty = tv(e.be, y, 1, M, 0, 0, 0);
    ngc_tensor tda = tv(e.be, da, 2, M, C, 0, 0), tdb = tv(e.be, db, 2, M, C, 0, 0);
    for (int64_t i = 0; i < M; i++) {
      double acc = 0;
      for (int64_t j = 0; j < C; j++) {
        acc += (double)a[i * C + j] * b[i * C + j];
        wda[i * C + j] = (float)((double)dy[i] * b[i * C + j]);
        wdb[i * C + j] = (float)((double)dy[i] * a[i * C + j]);
      }
      wy[i] = (float)acc;
    }
    ck_assert_int_eq(e.be->ops.rowdot_fwd(e.be, &ta, &tb, &ty), NEGCUT_OK);
    expect_close("rowdot fwd", y, wy, M, gemm_atol(C), 1e-6);
    ck_assert_int_eq(e.be->ops.rowdot_bwd(e.be, &ta, &tb, &tdy, &tda, &tdb), NEGCUT_OK);
    expect_close("rowdot da", da, wda, n, 0, 1e-7);
    expect_close("rowdot db", db, wdb, n, 0, 1e-7);
    for (int64_t i = 0; i < n; i++) da[i] = NAN;
    ck_assert_int_eq(e.be->ops.rowdot_bwd(e.be, &ta, &tb, &tdy, NULL, &tdb), NEGCUT_OK);
    ck_assert(isnan(da[0]));
    ck_assert_int_eq(e.be->ops.rowdot_bwd(e.be, &ta, &tb, &tdy, &tda, NULL), NEGCUT_OK);
    expect_close("rowdot da alone", da, wda, n, 0, 1e-7);
    if (HAS_REF(e, rowdot_fwd)) {
      float *ry = fnan(M);
      ngc_tensor ra = tv(e.rb, a, 2, M, C, 0, 0), rb = tv(e.rb, b, 2, M, C, 0, 0);
      ngc_tensor rty = tv(e.rb, ry, 1, M, 0, 0, 0);
      ck_assert_int_eq(e.rb->ops.rowdot_fwd(e.rb, &ra, &rb, &rty), NEGCUT_OK);
      expect_close("rowdot fwd vs ref", y, ry, M, gemm_atol(C), 1e-6);
      free(ry);
    }
    free(a), free(b), free(dy), free(y), free(da), free(db), free(wy), free(wda), free(wdb);
  }
  env_close(&e);
}
END_TEST

/* -------------------------------------------------------------- losses */

START_TEST(test_xent0) {
  env e = env_open(2);
  const int64_t shapes[][2] = {{5, 3}, {7, 9}, {512, 257}, {3, 1}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int64_t M = shapes[s][0], K = shapes[s][1], n = M * K;
    /* NCE-like logits: cosines / 0.07, with masked diagonals at -10 / 0.07 */
    float *x = frand(n, -14.3f, 14.3f), *g = frand(M, -1, 1), *loss = fnan(M), *dx = fnan(n);
    float *wl = fbuf(M), *wdx = fbuf(n);
    ngc_tensor tx = tv(e.be, x, 2, M, K, 0, 0), tl = tv(e.be, loss, 1, M, 0, 0, 0);
    ngc_tensor tg = tv(e.be, g, 1, M, 0, 0, 0), tdx = tv(e.be, dx, 2, M, K, 0, 0);
    for (int64_t i = 0; i < M; i++) {
      if (K > 2) x[i * K + 1 + i % (K - 1)] = -142.857f;
      double mx = x[i * K], se = 0;
      for (int64_t j = 0; j < K; j++) mx = fmax(mx, x[i * K + j]);
      for (int64_t j = 0; j < K; j++) se += exp(x[i * K + j] - mx);
      wl[i] = (float)(-x[i * K] + mx + log(se));
      for (int64_t j = 0; j < K; j++)
        wdx[i * K + j] = (float)(g[i] * (exp(x[i * K + j] - mx) / se - (j == 0)));
    }
    ck_assert_int_eq(e.be->ops.xent0_fwd(e.be, &tx, &tl), NEGCUT_OK);
    expect_close("xent0 loss", loss, wl, M, 1e-6, 1e-6);
    ck_assert_int_eq(e.be->ops.xent0_bwd(e.be, &tx, &tg, &tdx), NEGCUT_OK);
    expect_close("xent0 dx", dx, wdx, n, 1e-7, 1e-5);
    if (HAS_REF(e, xent0_fwd) && HAS_REF(e, xent0_bwd)) {
      float *rl = fnan(M), *rdx = fnan(n);
      ngc_tensor rx = tv(e.rb, x, 2, M, K, 0, 0), rtl = tv(e.rb, rl, 1, M, 0, 0, 0);
      ngc_tensor rg = tv(e.rb, g, 1, M, 0, 0, 0), rtdx = tv(e.rb, rdx, 2, M, K, 0, 0);
      ck_assert_int_eq(e.rb->ops.xent0_fwd(e.rb, &rx, &rtl), NEGCUT_OK);
      ck_assert_int_eq(e.rb->ops.xent0_bwd(e.rb, &rx, &rg, &rtdx), NEGCUT_OK);
      expect_close("xent0 loss vs ref", loss, rl, M, 1e-6, 1e-6);
      expect_close("xent0 dx vs ref", dx, rdx, n, 1e-7, 1e-5);
      free(rl), free(rdx);
    }
    free(x), free(g), free(loss), free(dx), free(wl), free(wdx);
  }
  env_close(&e);
}
END_TEST

START_TEST(test_scalar_losses) {
  env e = env_open(2);
  const int64_t sizes[] = {1, 900, 100003, 4000037};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    const int64_t n = sizes[si];
    float *x = frand(n, -1, 2), *b = frand(n, -1, 2), *dx = fnan(n), *da = fnan(n),
          *db = fnan(n), *want = fbuf(n), *want2 = fbuf(n);
    float out = NAN, out2 = NAN, ref_out = NAN;
    ngc_tensor tx = tv(e.be, x, 1, n, 0, 0, 0), tb = tv(e.be, b, 1, n, 0, 0, 0);
    ngc_tensor tdx = tv(e.be, dx, 1, n, 0, 0, 0), tda = tv(e.be, da, 1, n, 0, 0, 0);
    ngc_tensor tdb = tv(e.be, db, 1, n, 0, 0, 0), to = tv(e.be, &out, 1, 1, 0, 0, 0);
    ngc_tensor to2 = tv(e.be, &out2, 1, 1, 0, 0, 0), tro = tv(e.rb, &ref_out, 1, 1, 0, 0, 0);
    ngc_tensor rx = tv(e.rb, x, 1, n, 0, 0, 0), rb = tv(e.rb, b, 1, n, 0, 0, 0);
    double sm = 0, sa = 0, sx = 0;
    float w;
    b[0] = x[0]; /* sign(0) = 0 */
    for (int64_t i = 0; i < n; i++) {
      sm += ((double)x[i] - 1.0) * ((double)x[i] - 1.0);
      sa += fabs((double)x[i] - b[i]);
      sx += x[i];
    }

    ck_assert_int_eq(e.be->ops.mse_const_fwd(e.be, &tx, 1.0f, &to), NEGCUT_OK);
    w = (float)(sm / (double)n);
    expect_close("mse fwd", &out, &w, 1, 0, 1e-6);
    ck_assert_int_eq(e.be->ops.mse_const_fwd(e.be, &tx, 1.0f, &to2), NEGCUT_OK);
    expect_same_bits("mse repeat", &out, &out2, 1);
    if (HAS_REF(e, mse_const_fwd)) {
      ck_assert_int_eq(e.rb->ops.mse_const_fwd(e.rb, &rx, 1.0f, &tro), NEGCUT_OK);
      expect_close("mse fwd vs ref", &out, &ref_out, 1, 0, 1e-6);
    }
    ck_assert_int_eq(e.be->ops.mse_const_bwd(e.be, &tx, 1.0f, 0.5f, &tdx), NEGCUT_OK);
    for (int64_t i = 0; i < n; i++) want[i] = (float)(((double)x[i] - 1.0) * 2.0 / (double)n * 0.5);
    expect_close("mse bwd", dx, want, n, 1e-12, 1e-6);

    ck_assert_int_eq(e.be->ops.mad_fwd(e.be, &tx, &tb, &to), NEGCUT_OK);
    w = (float)(sa / (double)n);
    expect_close("mad fwd", &out, &w, 1, 0, 1e-6);
    ck_assert_int_eq(e.be->ops.mad_fwd(e.be, &tx, &tb, &to2), NEGCUT_OK);
    expect_same_bits("mad repeat", &out, &out2, 1);
    if (HAS_REF(e, mad_fwd)) {
      ck_assert_int_eq(e.rb->ops.mad_fwd(e.rb, &rx, &rb, &tro), NEGCUT_OK);
      expect_close("mad fwd vs ref", &out, &ref_out, 1, 0, 1e-6);
    }
    ck_assert_int_eq(e.be->ops.mad_bwd(e.be, &tx, &tb, -2.0f, &tda, &tdb), NEGCUT_OK);
    for (int64_t i = 0; i < n; i++) {
      double d = (double)x[i] - b[i], sg = d > 0 ? 1 : d < 0 ? -1 : 0;
      want[i] = (float)(sg * -2.0 / (double)n);
      want2[i] = -want[i];
    }
    ck_assert(da[0] == 0.0f && db[0] == 0.0f);
    expect_close("mad bwd da", da, want, n, 0, 1e-7);
    expect_close("mad bwd db", db, want2, n, 0, 1e-7);
    for (int64_t i = 0; i < n; i++) da[i] = NAN;
    ck_assert_int_eq(e.be->ops.mad_bwd(e.be, &tx, &tb, -2.0f, NULL, &tdb), NEGCUT_OK);
    ck_assert(isnan(da[n - 1]));
    expect_close("mad bwd db alone", db, want2, n, 0, 1e-7);
    ck_assert_int_eq(e.be->ops.mad_bwd(e.be, &tx, &tb, -2.0f, &tda, NULL), NEGCUT_OK);
    expect_close("mad bwd da alone", da, want, n, 0, 1e-7);

    ck_assert_int_eq(e.be->ops.mean_all(e.be, &tx, &to), NEGCUT_OK);
    w = (float)(sx / (double)n);
    expect_close("mean_all", &out, &w, 1, 1e-8, 1e-6);
    if (HAS_REF(e, mean_all)) {
      ck_assert_int_eq(e.rb->ops.mean_all(e.rb, &rx, &tro), NEGCUT_OK);
      expect_close("mean_all vs ref", &out, &ref_out, 1, 1e-8, 1e-6);
    }
    for (int t = 0; t < 2; t++) { /* BCE with logits against 0 and 1 */
      double sb = 0;
      for (int64_t i = 0; i < n; i++) {
        double v = 8.0 * x[i]; /* logits up to +-16 */
        sb += (v > 0 ? v : 0) - v * t + log1p(exp(-fabs(v)));
      }
      for (int64_t i = 0; i < n; i++) b[i] = 8.0f * x[i];
      ck_assert_int_eq(e.be->ops.bce_const_fwd(e.be, &tb, (float)t, &to), NEGCUT_OK);
      w = (float)(sb / (double)n);
      expect_close("bce fwd", &out, &w, 1, 1e-7, 1e-6);
      if (HAS_REF(e, bce_const_fwd)) {
        ck_assert_int_eq(e.rb->ops.bce_const_fwd(e.rb, &rb, (float)t, &tro), NEGCUT_OK);
        expect_close("bce fwd vs ref", &out, &ref_out, 1, 1e-7, 1e-6);
      }
      ck_assert_int_eq(e.be->ops.bce_const_bwd(e.be, &tb, (float)t, 0.5f, &tdx), NEGCUT_OK);
      for (int64_t i = 0; i < n; i++)
        want[i] = (float)((1.0 / (1.0 + exp(-(double)b[i])) - t) * 0.5 / (double)n);
      expect_close("bce bwd", dx, want, n, 1e-12, 1e-6);
    }
    free(x), free(b), free(dx), free(da), free(db), free(want), free(want2);
  }
  env_close(&e);
}
END_TEST

/* Reductions promise the same bits for any thread count, not only for a
 * repeat: check 1 against 2 threads. */
START_TEST(test_reductions_thread_independent) {
  env e1 = env_open(1), e2 = env_open(2);
  const int64_t n = 3000017, N = 1, C = 3, H = 96, W = 96;
  float *x = frand(n, -1, 3), *b = frand(n, -1, 3), o1[3], o2[3];
  float *y1 = fnan(N * C * H * W), *y2 = fnan(N * C * H * W), m1[3], m2[3], r1[3], r2[3];
  ngc_tensor tx1 = tv(e1.be, x, 1, n, 0, 0, 0), tb1 = tv(e1.be, b, 1, n, 0, 0, 0);
  ngc_tensor tx2 = tv(e2.be, x, 1, n, 0, 0, 0), tb2 = tv(e2.be, b, 1, n, 0, 0, 0);
  for (int i = 0; i < 3; i++) {
    ngc_tensor t1 = tv(e1.be, o1 + i, 1, 1, 0, 0, 0), t2 = tv(e2.be, o2 + i, 1, 1, 0, 0, 0);
    if (i == 0) {
      ck_assert_int_eq(e1.be->ops.mean_all(e1.be, &tx1, &t1), NEGCUT_OK);
      ck_assert_int_eq(e2.be->ops.mean_all(e2.be, &tx2, &t2), NEGCUT_OK);
    } else if (i == 1) {
      ck_assert_int_eq(e1.be->ops.mse_const_fwd(e1.be, &tx1, 0.0f, &t1), NEGCUT_OK);
      ck_assert_int_eq(e2.be->ops.mse_const_fwd(e2.be, &tx2, 0.0f, &t2), NEGCUT_OK);
    } else {
      ck_assert_int_eq(e1.be->ops.mad_fwd(e1.be, &tx1, &tb1, &t1), NEGCUT_OK);
      ck_assert_int_eq(e2.be->ops.mad_fwd(e2.be, &tx2, &tb2, &t2), NEGCUT_OK);
    }
  }
  expect_same_bits("reductions 1 vs 2 threads", o1, o2, 3);
  {
    ngc_tensor a1 = tv(e1.be, x, 4, N, C, H, W), ay1 = tv(e1.be, y1, 4, N, C, H, W);
    ngc_tensor a2 = tv(e2.be, x, 4, N, C, H, W), ay2 = tv(e2.be, y2, 4, N, C, H, W);
    ngc_tensor tm1 = tv(e1.be, m1, 2, N, C, 0, 0), tr1 = tv(e1.be, r1, 2, N, C, 0, 0);
    ngc_tensor tm2 = tv(e2.be, m2, 2, N, C, 0, 0), tr2 = tv(e2.be, r2, 2, N, C, 0, 0);
    ck_assert_int_eq(e1.be->ops.inorm_fwd(e1.be, 1e-5f, &a1, &ay1, &tm1, &tr1), NEGCUT_OK);
    ck_assert_int_eq(e2.be->ops.inorm_fwd(e2.be, 1e-5f, &a2, &ay2, &tm2, &tr2), NEGCUT_OK);
    expect_same_bits("inorm 1 vs 2 threads", y1, y2, N * C * H * W);
    expect_same_bits("inorm rstd 1 vs 2 threads", r1, r2, C);
  }
  free(x), free(b), free(y1), free(y2);
  env_close(&e1);
  env_close(&e2);
}
END_TEST

/* ---------------------------------------------------------- optimisers */

/* One element of torch.optim.Adam in float, in its operation order. Kept
 * out of line: inlined next to the double reference, GCC reused the exact
 * double products and rounded once instead of twice. */
__attribute__((noinline)) static float adam_float_order(const ngc_adam_params *ap, float p,
                                                        float g, float m, float v) {
  const double bc1 = 1 - pow(ap->beta1, (double)ap->step);
  const double bc2 = 1 - pow(ap->beta2, (double)ap->step);
  /* each Python-double scalar meets a float tensor as a float */
  if (ap->weight_decay != 0.0) g = g + (float)ap->weight_decay * p;
  m = m * (float)ap->beta1 + (float)(1.0 - ap->beta1) * g;
  v = v * (float)ap->beta2 + ((float)(1.0 - ap->beta2) * g) * g;
  return p + ((float)(-ap->lr / bc1) * m) / (sqrtf(v) / (float)sqrt(bc2) + (float)ap->eps);
}

START_TEST(test_adam_ema) {
  env e = env_open(2);
  const int64_t sizes[] = {7, 100003};
  const double wds[] = {0.0, 0.01};
  const int64_t steps[] = {1, 10};
  for (size_t si = 0; si < 2; si++)
    for (int wi = 0; wi < 2; wi++)
      for (int st = 0; st < 2; st++) {
        const int64_t n = sizes[si];
        const ngc_adam_params ap = {2e-4, 0.5, 0.999, 1e-8, wds[wi], steps[st]};
        float *p = frand(n, -1, 1), *g = frand(n, -1e-3f, 1e-3f), *m = frand(n, -1e-3f, 1e-3f);
        float *v = frand(n, 0, 1e-6f), *p0 = fdup(p, n), *m0 = fdup(m, n), *v0 = fdup(v, n);
        float *wp = fbuf(n), *wm = fbuf(n), *wv = fbuf(n), *fp = fbuf(n);
        ngc_tensor tp = tv(e.be, p, 1, n, 0, 0, 0), tg = tv(e.be, g, 1, n, 0, 0, 0);
        ngc_tensor tm = tv(e.be, m, 1, n, 0, 0, 0), tvv = tv(e.be, v, 1, n, 0, 0, 0);
        const double b1 = ap.beta1, b2 = ap.beta2;
        const double bc1 = 1 - pow(b1, (double)ap.step), bc2 = 1 - pow(b2, (double)ap.step);
        g[0] = 0.0f, m[0] = 0.0f, v[0] = 0.0f, m0[0] = 0.0f, v0[0] = 0.0f; /* denom = eps */
        for (int64_t i = 0; i < n; i++) {
          /* double, in the textbook form */
          double gi = (double)g[i] + ap.weight_decay * p0[i];
          double mi = b1 * m0[i] + (1 - b1) * gi, vi = b2 * v0[i] + (1 - b2) * gi * gi;
          wm[i] = (float)mi;
          wv[i] = (float)vi;
          wp[i] = (float)(p0[i] - (ap.lr / bc1) * mi / (sqrt(vi) / sqrt(bc2) + ap.eps));
          fp[i] = adam_float_order(&ap, p0[i], g[i], m0[i], v0[i]);
        }
        ck_assert_int_eq(e.be->ops.adam(e.be, &ap, &tp, &tg, &tm, &tvv), NEGCUT_OK);
        /* m, v: float rounding of g + wd p (up to 1e-2) and of g^2 */
        expect_close("adam m", m, wm, n, 2e-9, 1e-6);
        expect_close("adam v", v, wv, n, 1e-13, 1e-6);
        /* the update is lr-sized: compare it, not the parameter */
        for (int64_t i = 0; i < n; i++) wp[i] -= p0[i], fp[i] -= p0[i], p[i] -= p0[i];
        expect_close("adam update", p, wp, n, 1.2e-7, 1e-3); /* ulp of p */
        expect_close("adam update, float order", p, fp, n, 1e-12, 1e-6);
        if (HAS_REF(e, adam)) {
          float *rp = fdup(p0, n), *rm = fdup(m0, n), *rv = fdup(v0, n);
          ngc_tensor rtp = tv(e.rb, rp, 1, n, 0, 0, 0), rg = tv(e.rb, g, 1, n, 0, 0, 0);
          ngc_tensor rtm = tv(e.rb, rm, 1, n, 0, 0, 0), rtv = tv(e.rb, rv, 1, n, 0, 0, 0);
          ck_assert_int_eq(e.rb->ops.adam(e.rb, &ap, &rtp, &rg, &rtm, &rtv), NEGCUT_OK);
          for (int64_t i = 0; i < n; i++) rp[i] -= p0[i];
          expect_close("adam update vs ref", p, rp, n, 1e-12, 1e-5);
          expect_close("adam m vs ref", m, rm, n, 1e-12, 1e-6);
          expect_close("adam v vs ref", v, rv, n, 1e-15, 1e-6);
          free(rp), free(rm), free(rv);
        }
        free(p), free(g), free(m), free(v), free(p0), free(m0), free(v0);
        free(wp), free(wm), free(wv), free(fp);
      }
  for (size_t si = 0; si < 2; si++) {
    const int64_t n = sizes[si];
    float *t = frand(n, -1, 1), *src = frand(n, -1, 1), *t0 = fdup(t, n), *w = fbuf(n);
    ngc_tensor tt = tv(e.be, t, 1, n, 0, 0, 0), ts = tv(e.be, src, 1, n, 0, 0, 0);
    for (int64_t i = 0; i < n; i++) w[i] = (float)(0.9 * t0[i] + 0.1 * src[i]);
    ck_assert_int_eq(e.be->ops.ema(e.be, 0.9f, &tt, &ts), NEGCUT_OK);
    expect_close("ema", t, w, n, 1e-7, 1e-6);
    if (HAS_REF(e, ema)) {
      ngc_tensor rt = tv(e.rb, t0, 1, n, 0, 0, 0), rs = tv(e.rb, src, 1, n, 0, 0, 0);
      ck_assert_int_eq(e.rb->ops.ema(e.rb, 0.9f, &rt, &rs), NEGCUT_OK);
      expect_close("ema vs ref", t, t0, n, 1e-7, 1e-6);
    }
    free(t), free(src), free(t0), free(w);
  }
  env_close(&e);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cpu_loops");
  TCase *tc = tcase_create("slots");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fill_axpby_add);
  tcase_add_test(tc, test_act);
  tcase_add_test(tc, test_tanh_accuracy);
  tcase_add_test(tc, test_pad);
  tcase_add_test(tc, test_hflip_concat);
  tcase_add_test(tc, test_inorm);
  tcase_add_test(tc, test_linear);
  tcase_add_test(tc, test_bmm);
  tcase_add_test(tc, test_gemm_empty_k);
  tcase_add_test(tc, test_l2norm);
  tcase_add_test(tc, test_gather);
  tcase_add_test(tc, test_mean_rows);
  tcase_add_test(tc, test_fill_diag);
  tcase_add_test(tc, test_rowdot);
  tcase_add_test(tc, test_xent0);
  tcase_add_test(tc, test_scalar_losses);
  tcase_add_test(tc, test_reductions_thread_independent);
  tcase_add_test(tc, test_adam_ema);
  suite_add_tcase(s, tc);
  return ngc_test_run(s);
}
