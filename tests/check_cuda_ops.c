/* The CUDA backend slot by slot against the reference backend: the same
 * inputs on the GPU and on the host, forward and backward, odd sizes and
 * batch 2, accumulation into parameter gradients, NULL gradients, aliasing
 * where the slot allows it, bit-identical repeats; plus the memory slots
 * and bf16 convolution against fp32. Skips (77) without a GPU.
 *
 * Errors are measured as NMSE = sum (got - want)^2 / sum want^2 and each
 * line of output gives the measured value beside the threshold:
 *   0       copies and element-wise ops with the reference's rounding;
 *   1e-12   the reference's double sums in another order, and the few
 *           float expressions a host compiler may fuse differently;
 *   1e-9    cuBLAS sgemm (fp32 FMA, no TF32) against double sums;
 *   1e-7    cuDNN convolutions (fp32 FMA math, no TF32; Winograd and FFT
 *           algorithms lose a few more bits than direct sums);
 *   1e-3    a bf16 convolution against the fp32 one (8-bit mantissas).
 * Check's fork mode is off: a CUDA context does not survive fork(). */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/core.h"
#include "core/tensor.h"
#include "ngc_test.h"

#define EXACT 0.0
#define NEAR 1e-12
#define GEMM 1e-9
#define CONV 1e-7
#define BF16 1e-3
#define TF32 1e-5 /* TF32 against fp32: products keep 10 mantissa bits */

static negcut_ctx *g_cu, *g_ref; /* opened once in main */
static ngc_backend *g_be, *g_rb;

#define OK(call) ck_assert_msg((call) == NEGCUT_OK, "%s: %s", #call, negcut_ctx_last_error(g_cu))
#define ROK(call) ck_assert_msg((call) == NEGCUT_OK, "%s: %s", #call, negcut_ctx_last_error(g_ref))

/* ------------------------------------------------------------ helpers */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static float urand(float lo, float hi) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}

/* One tensor twice: on the GPU (d) and on the host for the reference (h). */
typedef struct pair {
  ngc_tensor d, h;
} pair;

static pair make(int32_t nd, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  const int64_t dim[4] = {d0, d1, d2, d3};
  pair p;
  OK(ngc_tensor_alloc(g_cu, g_be, &p.d, nd, dim));
  ROK(ngc_tensor_alloc(g_ref, g_rb, &p.h, nd, dim));
  return p;
}

static void push(pair *p) {
  OK(g_be->ops.upload(g_be, p->d.data, p->h.data, (size_t)ngc_numel(&p->h) * sizeof(float)));
}

/* Uniform in [lo, hi) on both sides. */
static pair rnd(int32_t nd, int64_t d0, int64_t d1, int64_t d2, int64_t d3, float lo, float hi) {
  pair p = make(nd, d0, d1, d2, d3);
  for (int64_t i = 0; i < ngc_numel(&p.h); i++) p.h.data[i] = urand(lo, hi);
  push(&p);
  return p;
}

/* A constant on both sides: NaN for outputs a slot must assign in full. */
static pair cst(int32_t nd, int64_t d0, int64_t d1, int64_t d2, int64_t d3, float v) {
  pair p = make(nd, d0, d1, d2, d3);
  for (int64_t i = 0; i < ngc_numel(&p.h); i++) p.h.data[i] = v;
  push(&p);
  return p;
}

static void drop(pair *p) {
  ngc_tensor_release(&p->d);
  ngc_tensor_release(&p->h);
}

static float *fetch(const ngc_tensor *d) {
  const int64_t n = ngc_numel(d);
  float *h = malloc((size_t)(n ? n : 1) * sizeof *h);
  ck_assert_ptr_nonnull(h);
  OK(g_be->ops.download(g_be, h, d->data, (size_t)n * sizeof *h));
  return h;
}

/* Infinity when got has a NaN that want has not. */
static double nmse(const float *got, const float *want, int64_t n) {
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < n; i++) {
    if (isnan(got[i]) && !isnan(want[i])) return INFINITY;
    if (isnan(want[i])) continue;
    const double e = (double)got[i] - want[i];
    num += e * e;
    den += (double)want[i] * want[i];
  }
  return num == 0.0 ? 0.0 : num / (den > 1e-300 ? den : 1e-300);
}

/* The GPU side of p against its host side. */
static void expect(const char *what, const pair *p, double thr) {
  const int64_t n = ngc_numel(&p->h);
  float *got = fetch(&p->d);
  const double e = nmse(got, p->h.data, n);
  printf("  %-64s nmse %-9.3g (max %.0g)\n", what, e, thr);
  if (!(e <= thr)) ngc_test_compare(what, got, p->h.data, n, 0.0, 0.0);
  free(got);
  ck_assert_msg(e <= thr, "%s: nmse %g above %g", what, e, thr);
}

/* The GPU side of p is bit for bit the same as bits. */
static void expect_bits(const char *what, const pair *p, const float *bits) {
  float *got = fetch(&p->d);
  const int same = !memcmp(got, bits, (size_t)ngc_numel(&p->d) * sizeof *got);
  printf("  %-64s %s\n", what, same ? "same bits" : "DIFFERENT BITS");
  free(got);
  ck_assert_msg(same, "%s: a repeat gave other bits", what);
}

static const char *shape4(char *buf, size_t cap, int64_t a, int64_t b, int64_t c, int64_t d) {
  snprintf(buf, cap, "(%lld, %lld, %lld, %lld)", (long long)a, (long long)b, (long long)c,
           (long long)d);
  return buf;
}

/* ------------------------------------------------------- slots, memory */

START_TEST(test_every_slot_filled) {
  /* The vtable is function pointers only; a NULL one would fall back to the
   * reference, which cannot read device memory. */
  typedef void (*fn)(void);
  fn slots[sizeof(ngc_backend_ops) / sizeof(fn)];
  /* optional slots, which lib/ops composes from others when NULL */
  const size_t optional = offsetof(ngc_backend_ops, inorm_act_fwd) / sizeof(fn);
  memcpy(slots, &g_be->ops, sizeof slots);
  for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
    ck_assert_msg(slots[i] != NULL || i == optional, "slot %zu of ngc_backend_ops is NULL", i);
  ck_assert_str_eq(g_be->name, "cuda");
  ck_assert_int_eq(g_be->host_memory, 0);
}
END_TEST

/* ROUND uploads of PIECE bytes into dev, upload k filled with the byte
 * value + k (a training step's worth of them, 3 MiB). */
enum { ROUND = 48, PIECE = 64 << 10 };
static void upload_round(unsigned char *dev, unsigned char *piece, int value) {
  for (int k = 0; k < ROUND; k++) {
    memset(piece, value + k, PIECE);
    OK(g_be->ops.upload(g_be, dev + (size_t)k * PIECE, piece, PIECE));
  }
}

START_TEST(test_memory) {
  /* The cache hands a freed block back for the same size class. */
  void *a = g_be->ops.alloc(g_be, 1000);
  ck_assert_ptr_nonnull(a);
  g_be->ops.free(g_be, a);
  void *b = g_be->ops.alloc(g_be, 1000);
  ck_assert_ptr_eq(a, b);
  void *z = g_be->ops.alloc(g_be, 0);
  ck_assert_ptr_nonnull(z);
  ck_assert_ptr_ne(z, b);
  g_be->ops.free(g_be, z);
  g_be->ops.free(g_be, b);
  g_be->ops.free(g_be, NULL);

  /* Out of device memory (16 TiB): NULL, after the cache gave its blocks
   * back and the retry failed too; the backend goes on working. */
  void *keep = g_be->ops.alloc(g_be, 4096);
  ck_assert_ptr_nonnull(keep);
  ck_assert_ptr_null(g_be->ops.alloc(g_be, (size_t)1 << 44));
  const float four[4] = {1, 2, 3, 4};
  float back[4] = {0};
  OK(g_be->ops.upload(g_be, keep, four, sizeof four));
  OK(g_be->ops.download(g_be, back, keep, sizeof back));
  ck_assert_msg(!memcmp(four, back, sizeof four), "round trip after a failed allocation");
  g_be->ops.free(g_be, keep);

  /* Round trips: odd sizes and offsets, more uploads than may be in flight,
   * one larger than the staging ring takes (synchronous). */
  const size_t big = ((size_t)9 << 20) + 12;
  unsigned char *src = malloc(big), *dst = malloc(big);
  ck_assert_ptr_nonnull(src);
  ck_assert_ptr_nonnull(dst);
  for (size_t i = 0; i < big; i++) src[i] = (unsigned char)(i * 7 + (i >> 9));
  unsigned char *dev = g_be->ops.alloc(g_be, big);
  ck_assert_ptr_nonnull(dev);
  OK(g_be->ops.upload(g_be, dev, src, big));
  memset(dst, 0, big);
  OK(g_be->ops.download(g_be, dst, dev, big));
  ck_assert_msg(!memcmp(src, dst, big), "9 MiB round trip differs");
  /* 400 uploads of 1003 bytes at offsets 4 + 1003 k, more than the 256
   * staged copies that may be in flight: the host waits only for the
   * oldest, and only once 256 are. */
  const uint64_t waits = g_be->n_host_waits;
  for (int k = 0; k < 400; k++) {
    unsigned char chunk[1003];
    for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (unsigned char)(k + 3 * i);
    OK(g_be->ops.upload(g_be, dev + 4 + 1003 * k, chunk, sizeof chunk));
    if (k < 256) ck_assert_uint_eq(g_be->n_host_waits, waits);
  }
  ck_assert_uint_eq(g_be->n_host_waits, waits + 400 - 256);
  OK(g_be->ops.sync(g_be));
  OK(g_be->ops.download(g_be, dst, dev + 4, 400 * 1003));
  for (int k = 0; k < 400; k++)
    for (size_t i = 0; i < 1003; i++)
      ck_assert_msg(dst[1003 * k + i] == (unsigned char)(k + 3 * i), "staged upload %d byte %zu", k,
                    i);
  OK(g_be->ops.upload(g_be, dev, src, 0));
  OK(g_be->ops.download(g_be, dst, dev, 0));
  g_be->ops.free(g_be, dev);
  free(src);
  free(dst);

  /* Rounds of 48 uploads of 64 KiB (3 MiB) and a sync, as a training step
   * sends them: the staging ring grows over the first rounds (a growth
   * forgets the copies before it, so a round may end with a ring that holds
   * only its rest) until it holds a whole round; from then on only the sync
   * waits (for the stream and for the newest copy). */
  enum { ROUNDS = 6 };
  int settled = -1;
  unsigned char *piece = malloc(PIECE), *pdev = g_be->ops.alloc(g_be, (size_t)ROUND * PIECE);
  ck_assert_ptr_nonnull(piece);
  ck_assert_ptr_nonnull(pdev);
  for (int r = 0; r < ROUNDS; r++) {
    const uint64_t before = g_be->n_host_waits;
    upload_round(pdev, piece, r * ROUND);
    OK(g_be->ops.sync(g_be));
    const uint64_t waits_r = g_be->n_host_waits - before;
    if (settled < 0 && waits_r == 2) settled = r;
    if (settled >= 0)
      ck_assert_msg(waits_r == 2, "round %d: %llu waits", r, (unsigned long long)waits_r);
    for (int k = 0; k < ROUND; k++) {
      OK(g_be->ops.download(g_be, piece, pdev + (size_t)k * PIECE, PIECE));
      ck_assert_msg(piece[0] == (unsigned char)(r * ROUND + k) &&
                        piece[PIECE - 1] == (unsigned char)(r * ROUND + k),
                    "round %d upload %d", r, k);
    }
  }
  ck_assert_msg(settled >= 0 && settled <= 3, "the ring settled at round %d", settled);
  /* Copies the device has finished are dropped after a query, not waited
   * for: when a failed allocation has synchronised the device (a wait the
   * staging ring is not told of), uploads that go round the ring onto those
   * copies neither wait nor grow it. Six rounds (18 MiB) go round it. */
  const uint64_t before_rounds = g_be->n_host_waits;
  for (int r = 0; r < ROUNDS; r++) {
    upload_round(pdev, piece, r);
    ck_assert_ptr_null(g_be->ops.alloc(g_be, (size_t)1 << 44)); /* one wait */
  }
  ck_assert_uint_eq(g_be->n_host_waits - before_rounds, ROUNDS);
  OK(g_be->ops.download(g_be, piece, pdev + (size_t)(ROUND - 1) * PIECE, PIECE));
  ck_assert_int_eq(piece[PIECE / 2], (unsigned char)(ROUNDS - 1 + ROUND - 1));
  g_be->ops.free(g_be, pdev);
  free(piece);

  /* Sixteen uploads of 8 MiB, the largest staged, with no sync: the ring
   * grows to its largest (64 MiB, by the 7th upload at the latest), fills
   * and goes round, each later upload waiting for the copy that read its
   * bytes before, never writing under a copy still queued (the emulator
   * runs copies late, when the host waits: an early overwrite would arrive
   * instead of the bytes of its upload). */
  enum { PARTS = 16 };
  const size_t part = (size_t)8 << 20, whole = PARTS * part;
  src = malloc(whole);
  dst = malloc(whole);
  dev = g_be->ops.alloc(g_be, whole);
  ck_assert_ptr_nonnull(src);
  ck_assert_ptr_nonnull(dst);
  ck_assert_ptr_nonnull(dev);
  for (size_t i = 0; i < whole; i++) src[i] = (unsigned char)(i / part * 101 + i % 251);
  for (int k = 0; k < PARTS; k++)
    OK(g_be->ops.upload(g_be, dev + (size_t)k * part, src + (size_t)k * part, part));
  memset(dst, 0, whole);
  OK(g_be->ops.download(g_be, dst, dev, whole));
  ck_assert_msg(!memcmp(src, dst, whole), "uploads round the staging ring differ");
  g_be->ops.free(g_be, dev);
  free(src);
  free(dst);
  printf("  memory: cache reuse, round trips, staging ring: ok\n");
}
END_TEST

/* A replay is lent its graph's scratch (cuda_alloc.c): a tensor the
 * recording allocated and freed comes back to each replay at the same
 * address, without the driver, and the launch computes from the replay's
 * fresh upload. A replay that keeps a lent block is refused, and so is
 * every later launch of that graph. */
START_TEST(test_graph_lend) {
  enum { N = 1000 };
  const int64_t dim[1] = {N};
  ngc_tensor out, s;
  float in[N], back[N];
  void *g = NULL, *recorded = NULL;
  OK(ngc_tensor_alloc(g_cu, g_be, &out, 1, dim));
  for (int r = 0; r <= 3; r++) {
    for (int i = 0; i < N; i++) in[i] = (float)(i * (r + 1));
    const uint64_t allocs = g_be->n_driver_allocs;
    if (r == 0) OK(g_be->ops.graph_begin(g_be, 1));
    else OK(g_be->ops.graph_replay_begin(g_be, g));
    OK(ngc_tensor_alloc(g_cu, g_be, &s, 1, dim));
    if (r == 0) recorded = s.data;
    else ck_assert_ptr_eq(s.data, recorded);
    OK(g_be->ops.upload(g_be, s.data, in, sizeof in));
    OK(g_be->ops.axpby(g_be, 2.0f, &s, 0.0f, &out));
    if (r == 3) { /* kept past the replay */
      ck_assert_int_eq(g_be->ops.graph_replay_end(g_be, 1), NEGCUT_ERR_INTERNAL);
      ck_assert_int_eq(g_be->ops.graph_launch(g_be, g), NEGCUT_ERR_STATE);
      ngc_tensor_release(&s);
      ck_assert_int_eq(g_be->ops.graph_launch(g_be, g), NEGCUT_ERR_STATE);
      break;
    }
    ngc_tensor_release(&s);
    if (r == 0) OK(g_be->ops.graph_end(g_be, 1, &g));
    else OK(g_be->ops.graph_replay_end(g_be, 1));
    if (r > 0) ck_assert_uint_eq(g_be->n_driver_allocs, allocs);
    OK(g_be->ops.graph_launch(g_be, g));
    OK(g_be->ops.download(g_be, back, out.data, sizeof back));
    for (int i = 0; i < N; i++) ck_assert_float_eq(back[i], 2.0f * in[i]);
  }
  g_be->ops.graph_free(g_be, g);
  ngc_tensor_release(&out);
  printf("  graphs: a replay's scratch is its graph's own: ok\n");
}
END_TEST

/* -------------------------------------------------------- element-wise */

static const int64_t k_sizes[] = {1, 63, 100003};

START_TEST(test_eltwise) {
  char what[96];
  for (size_t si = 0; si < sizeof k_sizes / sizeof *k_sizes; si++) {
    const int64_t n = k_sizes[si];
    pair x = rnd(1, n, 0, 0, 0, -2, 2), y = cst(1, n, 0, 0, 0, NAN);

    OK(g_be->ops.fill(g_be, &y.d, 0.25f));
    ROK(g_rb->ops.fill(g_rb, &y.h, 0.25f));
    snprintf(what, sizeof what, "fill n=%lld", (long long)n);
    expect(what, &y, EXACT);

    pair yn = cst(1, n, 0, 0, 0, NAN); /* beta 0 never reads y */
    OK(g_be->ops.axpby(g_be, -1.5f, &x.d, 0.0f, &yn.d));
    ROK(g_rb->ops.axpby(g_rb, -1.5f, &x.h, 0.0f, &yn.h));
    snprintf(what, sizeof what, "axpby beta 0 onto NaN n=%lld", (long long)n);
    expect(what, &yn, EXACT);

    pair y0 = rnd(1, n, 0, 0, 0, -2, 2);
    OK(g_be->ops.axpby(g_be, 0.7f, &x.d, -0.3f, &y0.d));
    ROK(g_rb->ops.axpby(g_rb, 0.7f, &x.h, -0.3f, &y0.h));
    snprintf(what, sizeof what, "axpby n=%lld", (long long)n);
    expect(what, &y0, NEAR);

    pair yr = cst(1, n, 0, 0, 0, NAN); /* plain to plain: a copy */
    OK(g_be->ops.relayout(g_be, &x.d, &yr.d));
    snprintf(what, sizeof what, "relayout n=%lld", (long long)n);
    expect_bits(what, &yr, x.h.data);
    drop(&yr);

    OK(g_be->ops.add(g_be, &x.d, &y0.d, &y0.d)); /* in place */
    ROK(g_rb->ops.add(g_rb, &x.h, &y0.h, &y0.h));
    snprintf(what, sizeof what, "add in place n=%lld", (long long)n);
    expect(what, &y0, NEAR);

    static const char *names[] = {"relu", "lrelu", "tanh"};
    pair xa = rnd(1, n, 0, 0, 0, -3, 3), dy = rnd(1, n, 0, 0, 0, -1, 1);
    xa.h.data[0] = 0.0f; /* relu'(0) = 0 */
    push(&xa);
    for (int a = 0; a < 3; a++) {
      pair ya = cst(1, n, 0, 0, 0, NAN), dx = cst(1, n, 0, 0, 0, NAN);
      OK(g_be->ops.act_fwd(g_be, (ngc_act)a, 0.2f, &xa.d, &ya.d));
      ROK(g_rb->ops.act_fwd(g_rb, (ngc_act)a, 0.2f, &xa.h, &ya.h));
      snprintf(what, sizeof what, "%s fwd n=%lld", names[a], (long long)n);
      expect(what, &ya, a == NGC_ACT_TANH ? NEAR : EXACT);
      /* only the tensor the function needs: the other is NULL */
      const int tanh_ = a == NGC_ACT_TANH;
      OK(g_be->ops.act_bwd(g_be, (ngc_act)a, 0.2f, tanh_ ? NULL : &xa.d, tanh_ ? &ya.d : NULL,
                           &dy.d, &dx.d));
      ROK(g_rb->ops.act_bwd(g_rb, (ngc_act)a, 0.2f, tanh_ ? NULL : &xa.h, tanh_ ? &ya.h : NULL,
                            &dy.h, &dx.h));
      snprintf(what, sizeof what, "%s bwd n=%lld", names[a], (long long)n);
      expect(what, &dx, a == NGC_ACT_TANH ? NEAR : EXACT);
      drop(&ya), drop(&dx);
    }
    drop(&x), drop(&y), drop(&yn), drop(&y0), drop(&xa), drop(&dy);
  }
}
END_TEST

START_TEST(test_hflip_concat) {
  static const int64_t shapes[][4] = {{1, 1, 5, 3}, {2, 3, 7, 9}, {1, 2, 3, 1}, {2, 16, 40, 41}};
  char what[128], s[64];
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
    const int64_t N = shapes[k][0], C = shapes[k][1], H = shapes[k][2], W = shapes[k][3];
    shape4(s, sizeof s, N, C, H, W);
    pair x = rnd(4, N, C, H, W, -1, 1), y = cst(4, N, C, H, W, NAN);
    OK(g_be->ops.hflip(g_be, &x.d, &y.d));
    ROK(g_rb->ops.hflip(g_rb, &x.h, &y.h));
    snprintf(what, sizeof what, "hflip %s", s);
    expect(what, &y, EXACT);
    OK(g_be->ops.hflip(g_be, &y.d, &y.d)); /* in place: back to x */
    snprintf(what, sizeof what, "hflip twice in place %s", s);
    expect_bits(what, &y, x.h.data);

    const int64_t Cb = C + 2;
    pair b = rnd(4, N, Cb, H, W, -1, 1), cy = cst(4, N, C + Cb, H, W, NAN);
    pair da = cst(4, N, C, H, W, NAN), db = cst(4, N, Cb, H, W, NAN);
    OK(g_be->ops.concat_fwd(g_be, &x.d, &b.d, &cy.d));
    ROK(g_rb->ops.concat_fwd(g_rb, &x.h, &b.h, &cy.h));
    snprintf(what, sizeof what, "concat_fwd %s + %lld channels", s, (long long)Cb);
    expect(what, &cy, EXACT);
    OK(g_be->ops.concat_bwd(g_be, &cy.d, &da.d, NULL));
    snprintf(what, sizeof what, "concat_bwd da only %s", s);
    expect_bits(what, &da, x.h.data);
    OK(g_be->ops.concat_bwd(g_be, &cy.d, NULL, &db.d));
    snprintf(what, sizeof what, "concat_bwd db only %s", s);
    expect_bits(what, &db, b.h.data);
    pair da2 = cst(4, N, C, H, W, NAN), db2 = cst(4, N, Cb, H, W, NAN);
    OK(g_be->ops.concat_bwd(g_be, &cy.d, &da2.d, &db2.d));
    OK(g_be->ops.concat_bwd(g_be, &cy.d, NULL, NULL));
    snprintf(what, sizeof what, "concat_bwd both %s", s);
    expect_bits(what, &da2, x.h.data);
    expect_bits(what, &db2, b.h.data);
    drop(&x), drop(&y), drop(&b), drop(&cy), drop(&da), drop(&db), drop(&da2), drop(&db2);
  }
  /* 2-D, as the negative generator's [feature, z] */
  pair a2 = rnd(2, 3, 2, 0, 0, -1, 1), b2 = rnd(2, 3, 3, 0, 0, -1, 1), y2 = cst(2, 3, 5, 0, 0, NAN);
  OK(g_be->ops.concat_fwd(g_be, &a2.d, &b2.d, &y2.d));
  ROK(g_rb->ops.concat_fwd(g_rb, &a2.h, &b2.h, &y2.h));
  expect("concat_fwd 2-D (3, 2) + (3, 3)", &y2, EXACT);
  drop(&a2), drop(&b2), drop(&y2);
}
END_TEST

/* ---------------------------------------------------------- spatial */

START_TEST(test_pad) {
  /* N, C, H, W, pad */
  static const int64_t shapes[][5] = {{1, 1, 5, 3, 1}, {1, 1, 5, 3, 2}, {2, 3, 7, 9, 1},
                                      {2, 3, 7, 9, 3}, {1, 2, 4, 4, 3}, {1, 8, 64, 64, 1},
                                      {2, 1, 1, 1, 0}, {1, 2, 1, 1, 3}};
  static const char *modes[] = {"zero", "reflect", "replicate"};
  char what[128], s[64];
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
    const int64_t N = shapes[k][0], C = shapes[k][1], H = shapes[k][2], W = shapes[k][3];
    const int32_t p = (int32_t)shapes[k][4];
    shape4(s, sizeof s, N, C, H, W);
    for (int m = 0; m < 3; m++) {
      if (m == NGC_PAD_REFLECT && (p >= H || p >= W)) continue;
      pair x = rnd(4, N, C, H, W, -1, 1), y = cst(4, N, C, H + 2 * p, W + 2 * p, NAN);
      pair dy = rnd(4, N, C, H + 2 * p, W + 2 * p, -1, 1), dx = cst(4, N, C, H, W, NAN);
      OK(g_be->ops.pad_fwd(g_be, (ngc_pad_mode)m, p, &x.d, &y.d));
      ROK(g_rb->ops.pad_fwd(g_rb, (ngc_pad_mode)m, p, &x.h, &y.h));
      OK(g_be->ops.pad_bwd(g_be, (ngc_pad_mode)m, p, &dy.d, &dx.d));
      ROK(g_rb->ops.pad_bwd(g_rb, (ngc_pad_mode)m, p, &dy.h, &dx.h));
      snprintf(what, sizeof what, "pad %s %d %s fwd", modes[m], (int)p, s);
      expect(what, &y, EXACT);
      snprintf(what, sizeof what, "pad %s %d %s bwd", modes[m], (int)p, s);
      expect(what, &dx, NEAR);
      drop(&x), drop(&y), drop(&dy), drop(&dx);
    }
  }
}
END_TEST

START_TEST(test_inorm) {
  /* N, C, H, W, offset of the data (a large mean tests the statistics) */
  static const int64_t shapes[][5] = {{1, 3, 7, 9, 0},    {2, 4, 5, 3, 1},   {1, 1, 1, 1, 0},
                                      {2, 64, 16, 16, 0}, {1, 4, 128, 128, 40}, {1, 3, 262, 262, 0},
                                      {2, 3, 65, 64, 5} /* 2 chunks, the second of 64 */};
  char what[128], s[64];
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
    const int64_t N = shapes[k][0], C = shapes[k][1], H = shapes[k][2], W = shapes[k][3];
    const float off = (float)shapes[k][4];
    shape4(s, sizeof s, N, C, H, W);
    pair x = rnd(4, N, C, H, W, off - 2, off + 2), y = cst(4, N, C, H, W, NAN);
    pair mean = cst(2, N, C, 0, 0, NAN), rstd = cst(2, N, C, 0, 0, NAN);
    pair dy = rnd(4, N, C, H, W, -1, 1), dx = cst(4, N, C, H, W, NAN);
    OK(g_be->ops.inorm_fwd(g_be, 1e-5f, &x.d, &y.d, &mean.d, &rstd.d));
    ROK(g_rb->ops.inorm_fwd(g_rb, 1e-5f, &x.h, &y.h, &mean.h, &rstd.h));
    snprintf(what, sizeof what, "inorm_fwd %s y", s);
    expect(what, &y, NEAR);
    snprintf(what, sizeof what, "inorm_fwd %s mean", s);
    expect(what, &mean, NEAR);
    snprintf(what, sizeof what, "inorm_fwd %s rstd", s);
    expect(what, &rstd, NEAR);
    /* the fused norm + activation: the bits of the two slots in a row */
    for (int a = 0; a < 2; a++) {
      const ngc_act act = a ? NGC_ACT_LRELU : NGC_ACT_RELU;
      pair z = cst(4, N, C, H, W, NAN), m2 = cst(2, N, C, 0, 0, NAN), r2 = cst(2, N, C, 0, 0, NAN);
      OK(g_be->ops.inorm_fwd(g_be, 1e-5f, &x.d, &z.d, &m2.d, &r2.d));
      OK(g_be->ops.act_fwd(g_be, act, 0.2f, &z.d, &z.d));
      float *two = fetch(&z.d), *stats = fetch(&r2.d);
      OK(g_be->ops.inorm_act_fwd(g_be, 1e-5f, act, 0.2f, &x.d, &z.d, &m2.d, &r2.d));
      snprintf(what, sizeof what, "inorm_act_fwd %s %s vs the two slots", a ? "lrelu" : "relu", s);
      expect_bits(what, &z, two);
      snprintf(what, sizeof what, "inorm_act_fwd %s %s rstd", a ? "lrelu" : "relu", s);
      expect_bits(what, &r2, stats);
      free(two), free(stats);
      drop(&z), drop(&m2), drop(&r2);
    }
    /* the norm of x + b: the bits of a bias add, then the norm (and act) */
    for (int a = -1; a < 2; a++) {
      pair b = rnd(1, C, 0, 0, 0, -3, 3), xb = make(4, N, C, H, W);
      pair z = cst(4, N, C, H, W, NAN), m2 = cst(2, N, C, 0, 0, NAN), r2 = cst(2, N, C, 0, 0, NAN);
      for (int64_t i = 0; i < ngc_numel(&xb.h); i++) xb.h.data[i] = x.h.data[i] + b.h.data[(i / (H * W)) % C];
      push(&xb);
      if (a < 0) OK(g_be->ops.inorm_fwd(g_be, 1e-5f, &xb.d, &z.d, &m2.d, &r2.d));
      else OK(g_be->ops.inorm_act_fwd(g_be, 1e-5f, (ngc_act)a, 0.2f, &xb.d, &z.d, &m2.d, &r2.d));
      float *two = fetch(&z.d), *stats = fetch(&r2.d), *means = fetch(&m2.d);
      OK(g_be->ops.fill(g_be, &z.d, NAN));
      OK(g_be->ops.fill(g_be, &m2.d, NAN));
      OK(g_be->ops.fill(g_be, &r2.d, NAN));
      OK(g_be->ops.inorm_bias_fwd(g_be, 1e-5f, a, 0.2f, &x.d, &b.d, &z.d, &m2.d, &r2.d));
      const char *an = a < 0 ? "no act" : a ? "lrelu" : "relu";
      snprintf(what, sizeof what, "inorm_bias_fwd %s %s vs bias add, norm", an, s);
      expect_bits(what, &z, two);
      snprintf(what, sizeof what, "inorm_bias_fwd %s %s mean", an, s);
      expect_bits(what, &m2, means);
      snprintf(what, sizeof what, "inorm_bias_fwd %s %s rstd", an, s);
      expect_bits(what, &r2, stats);
      free(two), free(stats), free(means);
      drop(&b), drop(&xb), drop(&z), drop(&m2), drop(&r2);
    }
    /* backward from the reference's y and rstd, so only the slot differs */
    push(&y), push(&rstd);
    OK(g_be->ops.inorm_bwd(g_be, &y.d, &rstd.d, &dy.d, &dx.d));
    ROK(g_rb->ops.inorm_bwd(g_rb, &y.h, &rstd.h, &dy.h, &dx.h));
    snprintf(what, sizeof what, "inorm_bwd %s", s);
    expect(what, &dx, NEAR);
    float *first = fetch(&dx.d);
    OK(g_be->ops.inorm_bwd(g_be, &y.d, &rstd.d, &dy.d, &dx.d));
    snprintf(what, sizeof what, "inorm_bwd %s repeat", s);
    expect_bits(what, &dx, first);
    free(first);
    drop(&x), drop(&y), drop(&mean), drop(&rstd), drop(&dy), drop(&dx);
  }
}
END_TEST

START_TEST(test_blur) {
  static const int64_t shapes[][4] = {{2, 3, 7, 9}, {1, 4, 8, 8},   {1, 2, 5, 6},  {1, 1, 2, 3},
                                      {1, 3, 3, 2}, {1, 1, 1, 1},   {1, 32, 17, 16}, {2, 5, 2, 2},
                                      {1, 8, 64, 64}};
  char what[128], s[64];
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
    const int64_t N = shapes[k][0], C = shapes[k][1], H = shapes[k][2], W = shapes[k][3];
    shape4(s, sizeof s, N, C, H, W);
    for (int up = 0; up <= 1; up++) {
      if (!up && (H < 2 || W < 2)) continue; /* reflect pad 1 needs 2 px */
      const int64_t Ho = up ? 2 * H : (H + 1) / 2, Wo = up ? 2 * W : (W + 1) / 2;
      pair x = rnd(4, N, C, H, W, -1, 1), y = cst(4, N, C, Ho, Wo, NAN);
      pair dy = rnd(4, N, C, Ho, Wo, -1, 1), dx = cst(4, N, C, H, W, NAN);
      if (up) {
        OK(g_be->ops.blur_up_fwd(g_be, &x.d, &y.d));
        ROK(g_rb->ops.blur_up_fwd(g_rb, &x.h, &y.h));
        OK(g_be->ops.blur_up_bwd(g_be, &dy.d, &dx.d));
        ROK(g_rb->ops.blur_up_bwd(g_rb, &dy.h, &dx.h));
      } else {
        OK(g_be->ops.blur_down_fwd(g_be, &x.d, &y.d));
        ROK(g_rb->ops.blur_down_fwd(g_rb, &x.h, &y.h));
        OK(g_be->ops.blur_down_bwd(g_be, &dy.d, &dx.d));
        ROK(g_rb->ops.blur_down_bwd(g_rb, &dy.h, &dx.h));
      }
      snprintf(what, sizeof what, "blur_%s_fwd %s", up ? "up" : "down", s);
      expect(what, &y, NEAR);
      snprintf(what, sizeof what, "blur_%s_bwd %s", up ? "up" : "down", s);
      expect(what, &dx, NEAR);
      drop(&x), drop(&y), drop(&dy), drop(&dx);
    }
  }
}
END_TEST

/* ------------------------------------------------------- convolutions */

typedef struct conv_case {
  int64_t n, ci, co, h, w, k;
  int32_t stride, pad, out_pad, bias;
} conv_case;

/* The output height or width of case c for input size in. */
static int64_t out_size(const conv_case *c, int transposed, int64_t in) {
  return transposed ? (in - 1) * c->stride - 2 * c->pad + c->k + c->out_pad
                    : (in + 2 * c->pad - c->k) / c->stride + 1;
}

static void run_conv(const conv_case *c, int transposed) {
  const int64_t K = c->k;
  const int64_t Ho = out_size(c, transposed, c->h), Wo = out_size(c, transposed, c->w);
  const ngc_conv_params p = {.stride = c->stride, .pad = c->pad, .out_pad = c->out_pad};
  const int64_t w0 = transposed ? c->ci : c->co, w1 = transposed ? c->co : c->ci;
  char name[160], what[200];
  snprintf(name, sizeof name, "%s n%lld ci%lld co%lld %lldx%lld k%lld s%d p%d op%d b%d",
           transposed ? "convt2d" : "conv2d", (long long)c->n, (long long)c->ci,
           (long long)c->co, (long long)c->h, (long long)c->w, (long long)K, c->stride, c->pad,
           c->out_pad, c->bias);
  pair x = rnd(4, c->n, c->ci, c->h, c->w, -1, 1), w = rnd(4, w0, w1, K, K, -0.5f, 0.5f);
  pair b = rnd(1, c->co, 0, 0, 0, -1, 1), y = cst(4, c->n, c->co, Ho, Wo, NAN);
  pair dy = rnd(4, c->n, c->co, Ho, Wo, -1, 1), dx = cst(4, c->n, c->ci, c->h, c->w, NAN);
  pair dw = rnd(4, w0, w1, K, K, -1, 1), db = rnd(1, c->co, 0, 0, 0, -1, 1); /* += onto noise */
  const ngc_tensor *bd = c->bias ? &b.d : NULL, *bh = c->bias ? &b.h : NULL;

  if (transposed) {
    OK(g_be->ops.convt2d_fwd(g_be, &p, &x.d, &w.d, bd, &y.d));
    ROK(g_rb->ops.convt2d_fwd(g_rb, &p, &x.h, &w.h, bh, &y.h));
  } else {
    OK(g_be->ops.conv2d_fwd(g_be, &p, &x.d, &w.d, bd, &y.d));
    ROK(g_rb->ops.conv2d_fwd(g_rb, &p, &x.h, &w.h, bh, &y.h));
  }
  snprintf(what, sizeof what, "%s fwd", name);
  expect(what, &y, CONV);

  /* all three gradients; dw and db accumulate */
  negcut_status (*bwd)(ngc_backend *, const ngc_conv_params *, const ngc_tensor *,
                       const ngc_tensor *, const ngc_tensor *, ngc_tensor *, ngc_tensor *,
                       ngc_tensor *) = transposed ? g_be->ops.convt2d_bwd : g_be->ops.conv2d_bwd;
  negcut_status (*rbwd)(ngc_backend *, const ngc_conv_params *, const ngc_tensor *,
                        const ngc_tensor *, const ngc_tensor *, ngc_tensor *, ngc_tensor *,
                        ngc_tensor *) = transposed ? g_rb->ops.convt2d_bwd : g_rb->ops.conv2d_bwd;
  OK(bwd(g_be, &p, &x.d, &w.d, &dy.d, &dx.d, &dw.d, &db.d));
  ROK(rbwd(g_rb, &p, &x.h, &w.h, &dy.h, &dx.h, &dw.h, &db.h));
  snprintf(what, sizeof what, "%s dx", name);
  expect(what, &dx, CONV);
  snprintf(what, sizeof what, "%s dw (accumulated)", name);
  expect(what, &dw, CONV);
  snprintf(what, sizeof what, "%s db (accumulated)", name);
  expect(what, &db, NEAR);

  /* one gradient at a time: the NULL-skipping paths, and the same bits again */
  pair dx2 = cst(4, c->n, c->ci, c->h, c->w, NAN);
  float *dx_bits = fetch(&dx.d), *dw_bits = fetch(&dw.d);
  OK(bwd(g_be, &p, &x.d, &w.d, &dy.d, &dx2.d, NULL, NULL));
  snprintf(what, sizeof what, "%s dx alone, repeat", name);
  expect_bits(what, &dx2, dx_bits);
  OK(bwd(g_be, &p, &x.d, &w.d, &dy.d, NULL, NULL, &db.d));
  ROK(rbwd(g_rb, &p, &x.h, &w.h, &dy.h, NULL, NULL, &db.h));
  snprintf(what, sizeof what, "%s db alone (accumulated twice)", name);
  expect(what, &db, NEAR);
  /* dw alone from the same start: same bits (deterministic algorithms) */
  pair dw2 = rnd(4, w0, w1, K, K, -1, 1);
  float *start = fetch(&dw2.d);
  OK(g_be->ops.upload(g_be, dw2.d.data, start, (size_t)ngc_numel(&dw2.d) * sizeof(float)));
  OK(bwd(g_be, &p, &x.d, &w.d, &dy.d, NULL, &dw2.d, NULL));
  float *once = fetch(&dw2.d);
  OK(g_be->ops.upload(g_be, dw2.d.data, start, (size_t)ngc_numel(&dw2.d) * sizeof(float)));
  OK(bwd(g_be, &p, &x.d, &w.d, &dy.d, NULL, &dw2.d, NULL));
  snprintf(what, sizeof what, "%s dw alone, repeat", name);
  expect_bits(what, &dw2, once);
  free(dx_bits), free(dw_bits), free(start), free(once);
  drop(&x), drop(&w), drop(&b), drop(&y), drop(&dy), drop(&dx), drop(&dw), drop(&db);
  drop(&dx2), drop(&dw2);
}

START_TEST(test_conv2d) {
  static const conv_case cases[] = {
      /* n ci co  h  w  k  s  p op bias */
      {2, 3, 5, 7, 9, 3, 1, 1, 0, 1},      /* odd sizes, batch 2 */
      {1, 4, 6, 8, 8, 3, 2, 1, 0, 0},      /* stride 2, no bias */
      {1, 4, 6, 7, 9, 3, 2, 1, 0, 1},      /* stride 2 on odd sizes */
      {2, 5, 3, 7, 9, 1, 1, 0, 0, 1},      /* 1x1 */
      {1, 3, 4, 9, 7, 4, 1, 1, 0, 1},      /* the discriminator's 4x4 p1 */
      {1, 8, 16, 9, 9, 4, 2, 1, 0, 1},     /* 4x4 stride 2 */
      {1, 3, 8, 13, 12, 7, 1, 0, 0, 1},    /* the generator's first 7x7 */
      {1, 16, 3, 12, 11, 7, 1, 0, 0, 1},   /* ... and last */
      {2, 64, 64, 18, 18, 3, 1, 0, 0, 1},  /* a ResBlock conv on a padded input */
      {1, 32, 64, 33, 31, 3, 1, 1, 0, 1},  /* zero pad 1, odd */
      {1, 2, 3, 70, 66, 3, 1, 1, 0, 1},    /* db over 2 chunks of a plane */
      {2, 2, 3, 66, 64, 3, 1, 1, 0, 1},    /* ... of each of 2 samples' planes */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv(&cases[i], 0);
  /* second round: every plan comes from the cache */
  for (size_t i = 0; i < 2; i++) run_conv(&cases[i], 0);
}
END_TEST

START_TEST(test_convt2d) {
  static const conv_case cases[] = {
      /* n ci co  h  w  k  s  p op bias */
      {2, 6, 4, 5, 7, 3, 2, 1, 1, 1}, /* the no_antialias_up layer */
      {1, 4, 5, 4, 4, 4, 2, 1, 0, 1},
      {1, 3, 2, 6, 5, 3, 1, 1, 0, 0},
      {1, 32, 16, 6, 7, 3, 2, 1, 1, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv(&cases[i], 1);
}
END_TEST

/* bf16 forward (inference) against fp32 on the GPU. */
START_TEST(test_conv_bf16) {
  static const conv_case cases[] = {
      {2, 64, 64, 18, 18, 3, 1, 0, 0, 1},
      {1, 3, 16, 38, 38, 7, 1, 0, 0, 1},
      {1, 16, 32, 33, 31, 3, 1, 1, 0, 1},
      {1, 16, 16, 20, 20, 3, 1, 1, 0, 0},
  };
  /* The bias is added as y comes back to fp32: with and without one. */
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const conv_case *c = &cases[i];
    const int64_t Ho = out_size(c, 0, c->h), Wo = out_size(c, 0, c->w);
    ngc_conv_params p = {.stride = c->stride, .pad = c->pad};
    pair x = rnd(4, c->n, c->ci, c->h, c->w, -1, 1), w = rnd(4, c->co, c->ci, c->k, c->k, -0.5f, 0.5f);
    pair b = rnd(1, c->co, 0, 0, 0, -1, 1), y = cst(4, c->n, c->co, Ho, Wo, NAN);
    const ngc_tensor *bias = c->bias ? &b.d : NULL;
    OK(g_be->ops.conv2d_fwd(g_be, &p, &x.d, &w.d, bias, &y.d));
    float *f32 = fetch(&y.d);
    memcpy(y.h.data, f32, (size_t)ngc_numel(&y.h) * sizeof(float));
    OK(g_be->ops.fill(g_be, &y.d, NAN));
    p.bf16 = 1;
    OK(g_be->ops.conv2d_fwd(g_be, &p, &x.d, &w.d, bias, &y.d));
    float *bf = fetch(&y.d);
    /* Weights rounded beforehand (w_bf16, as the translator passes them):
     * the same bits. */
    void *wb = g_be->ops.alloc(g_be, (size_t)ngc_numel(&w.d) * 2);
    ck_assert_ptr_nonnull(wb);
    OK(g_be->ops.to_bf16(g_be, &w.d, wb));
    OK(g_be->ops.fill(g_be, &y.d, NAN));
    p.w_bf16 = wb;
    OK(g_be->ops.conv2d_fwd(g_be, &p, &x.d, &w.d, bias, &y.d));
    float *pre = fetch(&y.d);
    ck_assert_msg(!memcmp(pre, bf, (size_t)ngc_numel(&y.h) * sizeof(float)),
                  "bf16 convolution with pre-rounded weights differs");
    free(pre);
    g_be->ops.free(g_be, wb);
    const double e = nmse(bf, f32, ngc_numel(&y.h));
    char what[160];
    snprintf(what, sizeof what, "conv2d bf16 vs fp32 n%lld ci%lld co%lld %lldx%lld k%lld%s%s",
             (long long)c->n, (long long)c->ci, (long long)c->co, (long long)c->h,
             (long long)c->w, (long long)c->k, c->bias ? "" : " no bias",
             e == 0.0 ? " (ran fp32: no bf16 algorithm)" : "");
    expect(what, &y, BF16);
    free(f32), free(bf);
    drop(&x), drop(&w), drop(&b), drop(&y);
  }
}
END_TEST

/* TF32 (ngc_conv_params.tf32) against fp32 on the GPU in every direction of
 * both convolutions (forward, dx, dw): close, and different where TF32 ran
 * (always on the emulator; a GPU may still pick FMA kernels for a shape). */
START_TEST(test_conv_tf32) {
  static const conv_case cases[2] = {
      /* n ci co  h  w  k  s  p op bias */
      {2, 32, 32, 18, 18, 3, 1, 0, 0, 0}, /* conv2d */
      {1, 32, 16, 9, 9, 3, 2, 1, 1, 0},   /* convt2d */
  };
  static const char *outs[3] = {"fwd", "dx", "dw"};
  for (int tr = 0; tr < 2; tr++) {
    const conv_case *c = &cases[tr];
    const int64_t K = c->k;
    const int64_t Ho = out_size(c, tr, c->h), Wo = out_size(c, tr, c->w);
    const int64_t w0 = tr ? c->ci : c->co, w1 = tr ? c->co : c->ci;
    ngc_conv_params p = {.stride = c->stride, .pad = c->pad, .out_pad = c->out_pad};
    pair x = rnd(4, c->n, c->ci, c->h, c->w, -1, 1), w = rnd(4, w0, w1, K, K, -0.5f, 0.5f);
    pair dy = rnd(4, c->n, c->co, Ho, Wo, -1, 1);
    pair o[3] = {cst(4, c->n, c->co, Ho, Wo, NAN), cst(4, c->n, c->ci, c->h, c->w, NAN),
                 cst(4, w0, w1, K, K, 0.0f)};
    float *res[2][3];
    for (int t = 0; t < 2; t++) {
      p.tf32 = t;
      OK(g_be->ops.fill(g_be, &o[2].d, 0.0f)); /* dw accumulates */
      OK((tr ? g_be->ops.convt2d_fwd : g_be->ops.conv2d_fwd)(g_be, &p, &x.d, &w.d, NULL, &o[0].d));
      OK((tr ? g_be->ops.convt2d_bwd : g_be->ops.conv2d_bwd)(g_be, &p, &x.d, &w.d, &dy.d,
                                                             &o[1].d, &o[2].d, NULL));
      for (int k = 0; k < 3; k++) res[t][k] = fetch(&o[k].d);
    }
    for (int k = 0; k < 3; k++) { /* the fp32 result is the reference */
      const int64_t n = ngc_numel(&o[k].h);
      memcpy(o[k].h.data, res[0][k], (size_t)n * sizeof(float));
      const int same = !memcmp(res[0][k], res[1][k], (size_t)n * sizeof(float));
      char what[160];
      snprintf(what, sizeof what, "%s %s tf32 vs fp32%s", tr ? "convt2d" : "conv2d", outs[k],
               same ? " (identical: no TF32 algorithm)" : "");
      expect(what, &o[k], TF32);
      ck_assert_msg(!(NGC_TEST_TF32_ALWAYS && same), "%s: TF32 did not run", what);
      free(res[0][k]), free(res[1][k]);
    }
    drop(&x), drop(&w), drop(&dy), drop(&o[0]), drop(&o[1]), drop(&o[2]);
  }
}
END_TEST

/* ---------------------------------------------------- matrices, rows */

START_TEST(test_linear_bmm) {
  /* M, K, N, bias */
  static const int64_t lin[][4] = {{1, 1, 1, 1}, {7, 5, 3, 1}, {512, 256, 256, 1},
                                   {300, 3, 256, 0}, {2, 320, 256, 1}};
  char what[128];
  for (size_t i = 0; i < sizeof lin / sizeof *lin; i++) {
    const int64_t M = lin[i][0], K = lin[i][1], N = lin[i][2];
    snprintf(what, sizeof what, "linear M%lld K%lld N%lld b%d", (long long)M, (long long)K,
             (long long)N, (int)lin[i][3]);
    pair x = rnd(2, M, K, 0, 0, -1, 1), w = rnd(2, N, K, 0, 0, -0.5f, 0.5f);
    pair b = rnd(1, N, 0, 0, 0, -1, 1), y = cst(2, M, N, 0, 0, NAN);
    pair dy = rnd(2, M, N, 0, 0, -1, 1), dx = cst(2, M, K, 0, 0, NAN);
    pair dw = rnd(2, N, K, 0, 0, -1, 1), db = rnd(1, N, 0, 0, 0, -1, 1);
    const int bias = (int)lin[i][3];
    OK(g_be->ops.linear_fwd(g_be, &x.d, &w.d, bias ? &b.d : NULL, &y.d));
    ROK(g_rb->ops.linear_fwd(g_rb, &x.h, &w.h, bias ? &b.h : NULL, &y.h));
    char w2[160];
    snprintf(w2, sizeof w2, "%s fwd", what);
    expect(w2, &y, GEMM);
    OK(g_be->ops.linear_bwd(g_be, &x.d, &w.d, &dy.d, &dx.d, &dw.d, &db.d));
    ROK(g_rb->ops.linear_bwd(g_rb, &x.h, &w.h, &dy.h, &dx.h, &dw.h, &db.h));
    snprintf(w2, sizeof w2, "%s dx", what);
    expect(w2, &dx, GEMM);
    snprintf(w2, sizeof w2, "%s dw (accumulated)", what);
    expect(w2, &dw, GEMM);
    snprintf(w2, sizeof w2, "%s db (accumulated)", what);
    expect(w2, &db, NEAR);
    OK(g_be->ops.linear_bwd(g_be, &x.d, &w.d, &dy.d, NULL, NULL, &db.d));
    ROK(g_rb->ops.linear_bwd(g_rb, &x.h, &w.h, &dy.h, NULL, NULL, &db.h));
    snprintf(w2, sizeof w2, "%s db alone (accumulated twice)", what);
    expect(w2, &db, NEAR);
    drop(&x), drop(&w), drop(&b), drop(&y), drop(&dy), drop(&dx), drop(&dw), drop(&db);
  }
  /* B, M, K, N */
  static const int64_t bm[][4] = {{1, 16, 32, 17}, {2, 256, 256, 256}, {2, 5, 1, 3}, {3, 7, 9, 1}};
  for (size_t i = 0; i < sizeof bm / sizeof *bm; i++) {
    const int64_t B = bm[i][0], M = bm[i][1], K = bm[i][2], N = bm[i][3];
    snprintf(what, sizeof what, "bmm B%lld M%lld K%lld N%lld", (long long)B, (long long)M,
             (long long)K, (long long)N);
    pair a = rnd(3, B, M, K, 0, -1, 1), b = rnd(3, B, N, K, 0, -1, 1), c = cst(3, B, M, N, 0, NAN);
    pair dc = rnd(3, B, M, N, 0, -1, 1), da = cst(3, B, M, K, 0, NAN), db = cst(3, B, N, K, 0, NAN);
    char w2[160];
    OK(g_be->ops.bmm_fwd(g_be, &a.d, &b.d, &c.d));
    ROK(g_rb->ops.bmm_fwd(g_rb, &a.h, &b.h, &c.h));
    snprintf(w2, sizeof w2, "%s fwd", what);
    expect(w2, &c, GEMM);
    OK(g_be->ops.bmm_bwd(g_be, &a.d, &b.d, &dc.d, &da.d, NULL));
    OK(g_be->ops.bmm_bwd(g_be, &a.d, &b.d, &dc.d, NULL, &db.d));
    ROK(g_rb->ops.bmm_bwd(g_rb, &a.h, &b.h, &dc.h, &da.h, &db.h));
    snprintf(w2, sizeof w2, "%s da", what);
    expect(w2, &da, GEMM);
    snprintf(w2, sizeof w2, "%s db", what);
    expect(w2, &db, GEMM);
    drop(&a), drop(&b), drop(&c), drop(&dc), drop(&da), drop(&db);
  }
}
END_TEST

START_TEST(test_l2norm_rowdot) {
  static const int64_t shapes[][2] = {{1, 1}, {7, 33}, {512, 256}, {4096, 3}};
  char what[128];
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
    const int64_t M = shapes[i][0], C = shapes[i][1];
    pair x = rnd(2, M, C, 0, 0, -1, 1), y = cst(2, M, C, 0, 0, NAN), nrm = cst(1, M, 0, 0, 0, NAN);
    pair dy = rnd(2, M, C, 0, 0, -1, 1), dx = cst(2, M, C, 0, 0, NAN);
    if (M > 1) { /* a zero row: the norm-0 path */
      for (int64_t c = 0; c < C; c++) x.h.data[C + c] = 0.0f;
      push(&x);
    }
    OK(g_be->ops.l2norm_fwd(g_be, 1e-7f, &x.d, &y.d, &nrm.d));
    ROK(g_rb->ops.l2norm_fwd(g_rb, 1e-7f, &x.h, &y.h, &nrm.h));
    snprintf(what, sizeof what, "l2norm_fwd (%lld, %lld) y", (long long)M, (long long)C);
    expect(what, &y, NEAR);
    snprintf(what, sizeof what, "l2norm_fwd (%lld, %lld) norm", (long long)M, (long long)C);
    expect(what, &nrm, NEAR);
    push(&nrm); /* backward from the reference's norm */
    OK(g_be->ops.l2norm_bwd(g_be, 1e-7f, &x.d, &nrm.d, &dy.d, &dx.d));
    ROK(g_rb->ops.l2norm_bwd(g_rb, 1e-7f, &x.h, &nrm.h, &dy.h, &dx.h));
    snprintf(what, sizeof what, "l2norm_bwd (%lld, %lld)", (long long)M, (long long)C);
    expect(what, &dx, NEAR);

    pair b = rnd(2, M, C, 0, 0, -1, 1), r = cst(1, M, 0, 0, 0, NAN), g = rnd(1, M, 0, 0, 0, -1, 1);
    pair da = cst(2, M, C, 0, 0, NAN), db = cst(2, M, C, 0, 0, NAN);
    OK(g_be->ops.rowdot_fwd(g_be, &x.d, &b.d, &r.d));
    ROK(g_rb->ops.rowdot_fwd(g_rb, &x.h, &b.h, &r.h));
    snprintf(what, sizeof what, "rowdot_fwd (%lld, %lld)", (long long)M, (long long)C);
    expect(what, &r, NEAR);
    OK(g_be->ops.rowdot_bwd(g_be, &x.d, &b.d, &g.d, &da.d, NULL));
    OK(g_be->ops.rowdot_bwd(g_be, &x.d, &b.d, &g.d, NULL, &db.d));
    ROK(g_rb->ops.rowdot_bwd(g_rb, &x.h, &b.h, &g.h, &da.h, &db.h));
    snprintf(what, sizeof what, "rowdot_bwd (%lld, %lld) da", (long long)M, (long long)C);
    expect(what, &da, EXACT);
    snprintf(what, sizeof what, "rowdot_bwd (%lld, %lld) db", (long long)M, (long long)C);
    expect(what, &db, EXACT);
    drop(&x), drop(&y), drop(&nrm), drop(&dy), drop(&dx), drop(&b), drop(&r), drop(&g);
    drop(&da), drop(&db);
  }
}
END_TEST

static void run_gather(int64_t B, int64_t C, int64_t H, int64_t W, const int64_t *ids,
                       int64_t n_ids, const char *label) {
  char what[160];
  pair x = rnd(4, B, C, H, W, -1, 1), y = cst(2, B * n_ids, C, 0, 0, NAN);
  pair dy = rnd(2, B * n_ids, C, 0, 0, -1, 1), dx = cst(4, B, C, H, W, NAN);
  OK(g_be->ops.gather_fwd(g_be, &x.d, ids, n_ids, &y.d));
  ROK(g_rb->ops.gather_fwd(g_rb, &x.h, ids, n_ids, &y.h));
  snprintf(what, sizeof what, "gather_fwd (%lld, %lld, %lld, %lld) %s", (long long)B,
           (long long)C, (long long)H, (long long)W, label);
  expect(what, &y, EXACT);
  OK(g_be->ops.gather_bwd(g_be, &dy.d, ids, n_ids, &dx.d));
  ROK(g_rb->ops.gather_bwd(g_rb, &dy.h, ids, n_ids, &dx.h));
  snprintf(what, sizeof what, "gather_bwd (%lld, %lld, %lld, %lld) %s", (long long)B,
           (long long)C, (long long)H, (long long)W, label);
  expect(what, &dx, EXACT);
  drop(&x), drop(&y), drop(&dy), drop(&dx);
}

START_TEST(test_gather_mean_diag) {
  static const int64_t distinct[] = {0, 62, 5, 17, 33, 61, 40, 1};
  static const int64_t repeats[] = {3, 3, 10, 3, 62, 0, 10};
  run_gather(2, 5, 7, 9, distinct, 8, "8 distinct ids");
  run_gather(2, 5, 7, 9, repeats, 7, "7 ids with repeats");
  run_gather(1, 3, 4, 4, distinct, 0, "no ids");
  int64_t *all = malloc(4096 * sizeof *all); /* F_'s every position */
  ck_assert_ptr_nonnull(all);
  for (int64_t i = 0; i < 4096; i++) all[i] = (i * 1031) % 4096; /* a permutation */
  run_gather(2, 256, 64, 64, all, 4096, "4096 ids, every position");
  for (int64_t i = 0; i < 256; i++) all[i] = (i * 37) % 250; /* repeats, many of them */
  run_gather(2, 16, 25, 10, all, 256, "256 ids with repeats");
  free(all);

  /* B, P, C */
  static const int64_t ms[][3] = {{2, 5, 3}, {1, 4096, 256}, {2, 70001, 7}, {3, 1, 9}};
  char what[128];
  for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
    const int64_t B = ms[i][0], P = ms[i][1], C = ms[i][2];
    pair x = rnd(3, B, P, C, 0, -1, 1), y = cst(2, B, C, 0, 0, NAN);
    pair dy = rnd(2, B, C, 0, 0, -1, 1), dx = cst(3, B, P, C, 0, NAN);
    OK(g_be->ops.mean_fwd(g_be, &x.d, &y.d));
    ROK(g_rb->ops.mean_fwd(g_rb, &x.h, &y.h));
    snprintf(what, sizeof what, "mean_fwd (%lld, %lld, %lld)", (long long)B, (long long)P,
             (long long)C);
    expect(what, &y, NEAR);
    OK(g_be->ops.mean_bwd(g_be, &dy.d, &dx.d));
    ROK(g_rb->ops.mean_bwd(g_rb, &dy.h, &dx.h));
    snprintf(what, sizeof what, "mean_bwd (%lld, %lld, %lld)", (long long)B, (long long)P,
             (long long)C);
    expect(what, &dx, EXACT);
    drop(&x), drop(&y), drop(&dy), drop(&dx);
  }

  /* B, M, N */
  static const int64_t fd[][3] = {{2, 5, 7}, {1, 7, 5}, {3, 4, 4}, {2, 256, 256}};
  for (size_t i = 0; i < sizeof fd / sizeof *fd; i++) {
    const int64_t B = fd[i][0], M = fd[i][1], N = fd[i][2];
    pair x = rnd(3, B, M, N, 0, -1, 1), y = cst(3, B, M, N, 0, NAN), dx = cst(3, B, M, N, 0, NAN);
    OK(g_be->ops.fill_diag_fwd(g_be, -10.0f, &x.d, &y.d));
    ROK(g_rb->ops.fill_diag_fwd(g_rb, -10.0f, &x.h, &y.h));
    snprintf(what, sizeof what, "fill_diag_fwd (%lld, %lld, %lld)", (long long)B, (long long)M,
             (long long)N);
    expect(what, &y, EXACT);
    OK(g_be->ops.fill_diag_bwd(g_be, &x.d, &dx.d));
    ROK(g_rb->ops.fill_diag_bwd(g_rb, &x.h, &dx.h));
    snprintf(what, sizeof what, "fill_diag_bwd (%lld, %lld, %lld)", (long long)B, (long long)M,
             (long long)N);
    expect(what, &dx, EXACT);
    OK(g_be->ops.fill_diag_fwd(g_be, 3.0f, &x.d, &x.d)); /* in place */
    ROK(g_rb->ops.fill_diag_fwd(g_rb, 3.0f, &x.h, &x.h));
    snprintf(what, sizeof what, "fill_diag_fwd in place (%lld, %lld, %lld)", (long long)B,
             (long long)M, (long long)N);
    expect(what, &x, EXACT);
    drop(&x), drop(&y), drop(&dx);
  }
}
END_TEST

/* ------------------------------------------------------------ losses */

START_TEST(test_losses) {
  /* M, K: a single logit, odd, and PatchNCE's 257 with its -10/0.07 entries */
  static const int64_t xs[][2] = {{1, 1}, {7, 13}, {512, 257}};
  char what[128];
  for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
    const int64_t M = xs[i][0], K = xs[i][1];
    pair x = rnd(2, M, K, 0, 0, -14, 14), loss = cst(1, M, 0, 0, 0, NAN);
    pair dl = rnd(1, M, 0, 0, 0, 0, 1), dx = cst(2, M, K, 0, 0, NAN);
    for (int64_t m = 0; m < M && K > 2; m++) x.h.data[m * K + 1 + m % (K - 1)] = -142.857f;
    push(&x);
    OK(g_be->ops.xent0_fwd(g_be, &x.d, &loss.d));
    ROK(g_rb->ops.xent0_fwd(g_rb, &x.h, &loss.h));
    snprintf(what, sizeof what, "xent0_fwd (%lld, %lld)", (long long)M, (long long)K);
    expect(what, &loss, NEAR);
    OK(g_be->ops.xent0_bwd(g_be, &x.d, &dl.d, &dx.d));
    ROK(g_rb->ops.xent0_bwd(g_rb, &x.h, &dl.h, &dx.h));
    snprintf(what, sizeof what, "xent0_bwd (%lld, %lld)", (long long)M, (long long)K);
    expect(what, &dx, NEAR);
    drop(&x), drop(&loss), drop(&dl), drop(&dx);
  }
  static const int64_t ns[] = {1, 1000, (1 << 20) + 7};
  for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
    const int64_t n = ns[i];
    pair x = rnd(1, n, 0, 0, 0, -3, 3), t = rnd(1, n, 0, 0, 0, -3, 3), out = cst(1, 1, 0, 0, 0, NAN);
    pair dx = cst(1, n, 0, 0, 0, NAN), dt = cst(1, n, 0, 0, 0, NAN);
    x.h.data[0] = t.h.data[0]; /* sign(0) = 0 in mad */
    push(&x);
    for (int which = 0; which < 4; which++) {
      static const char *names[] = {"mse_const", "bce_const", "mad", "mean_all"};
      switch (which) {
      case 0:
        OK(g_be->ops.mse_const_fwd(g_be, &x.d, 1.0f, &out.d));
        ROK(g_rb->ops.mse_const_fwd(g_rb, &x.h, 1.0f, &out.h));
        break;
      case 1:
        OK(g_be->ops.bce_const_fwd(g_be, &x.d, 0.0f, &out.d));
        ROK(g_rb->ops.bce_const_fwd(g_rb, &x.h, 0.0f, &out.h));
        break;
      case 2:
        OK(g_be->ops.mad_fwd(g_be, &x.d, &t.d, &out.d));
        ROK(g_rb->ops.mad_fwd(g_rb, &x.h, &t.h, &out.h));
        break;
      default:
        OK(g_be->ops.mean_all(g_be, &x.d, &out.d));
        ROK(g_rb->ops.mean_all(g_rb, &x.h, &out.h));
      }
      snprintf(what, sizeof what, "%s fwd n=%lld", names[which], (long long)n);
      expect(what, &out, NEAR);
      if (which == 3) continue;
      switch (which) {
      case 0:
        OK(g_be->ops.mse_const_bwd(g_be, &x.d, 1.0f, 0.5f, &dx.d));
        ROK(g_rb->ops.mse_const_bwd(g_rb, &x.h, 1.0f, 0.5f, &dx.h));
        break;
      case 1:
        OK(g_be->ops.bce_const_bwd(g_be, &x.d, 1.0f, 0.5f, &dx.d));
        ROK(g_rb->ops.bce_const_bwd(g_rb, &x.h, 1.0f, 0.5f, &dx.h));
        break;
      default:
        OK(g_be->ops.mad_bwd(g_be, &x.d, &t.d, -0.5f, &dx.d, NULL));
        OK(g_be->ops.mad_bwd(g_be, &x.d, &t.d, -0.5f, NULL, &dt.d));
        ROK(g_rb->ops.mad_bwd(g_rb, &x.h, &t.h, -0.5f, &dx.h, &dt.h));
      }
      snprintf(what, sizeof what, "%s bwd n=%lld", names[which], (long long)n);
      expect(what, &dx, NEAR);
      if (which == 2) expect("mad bwd db", &dt, NEAR);
    }
    drop(&x), drop(&t), drop(&out), drop(&dx), drop(&dt);
  }
}
END_TEST

/* -------------------------------------------------------- optimisers */

START_TEST(test_adam_ema) {
  static const int64_t sizes[] = {7, 100003};
  static const double wds[] = {0.0, 0.01};
  static const int64_t steps[] = {1, 10};
  char what[128];
  for (size_t si = 0; si < 2; si++)
    for (int wi = 0; wi < 2; wi++)
      for (int k = 0; k < 2; k++) {
        const int64_t n = sizes[si];
        const ngc_adam_params ap = {2e-4, 0.5, 0.999, 1e-8, wds[wi], steps[k]};
        pair p = rnd(1, n, 0, 0, 0, -1, 1), g = rnd(1, n, 0, 0, 0, -1e-3f, 1e-3f);
        pair m = rnd(1, n, 0, 0, 0, -1e-3f, 1e-3f), v = rnd(1, n, 0, 0, 0, 0, 1e-6f);
        g.h.data[0] = m.h.data[0] = v.h.data[0] = 0.0f; /* denom = eps */
        push(&g), push(&m), push(&v);
        float *p0 = fetch(&p.d);
        OK(g_be->ops.adam(g_be, &ap, &p.d, &g.d, &m.d, &v.d));
        ROK(g_rb->ops.adam(g_rb, &ap, &p.h, &g.h, &m.h, &v.h));
        /* the update is lr-sized: compare it, not the parameter */
        pair dp = make(1, n, 0, 0, 0);
        float *pd = fetch(&p.d);
        for (int64_t i = 0; i < n; i++) {
          pd[i] -= p0[i];
          dp.h.data[i] = p.h.data[i] - p0[i];
        }
        OK(g_be->ops.upload(g_be, dp.d.data, pd, (size_t)n * sizeof(float)));
        snprintf(what, sizeof what, "adam n=%lld wd=%g step %lld: update", (long long)n, wds[wi],
                 (long long)steps[k]);
        expect(what, &dp, NEAR);
        snprintf(what, sizeof what, "adam n=%lld wd=%g step %lld: m", (long long)n, wds[wi],
                 (long long)steps[k]);
        expect(what, &m, NEAR);
        snprintf(what, sizeof what, "adam n=%lld wd=%g step %lld: v", (long long)n, wds[wi],
                 (long long)steps[k]);
        expect(what, &v, NEAR);
        free(p0), free(pd);
        drop(&p), drop(&g), drop(&m), drop(&v), drop(&dp);
      }
  for (size_t si = 0; si < 2; si++) {
    const int64_t n = sizes[si];
    pair t = rnd(1, n, 0, 0, 0, -1, 1), s = rnd(1, n, 0, 0, 0, -1, 1);
    OK(g_be->ops.ema(g_be, 0.9f, &t.d, &s.d));
    ROK(g_rb->ops.ema(g_rb, 0.9f, &t.h, &s.h));
    snprintf(what, sizeof what, "ema n=%lld", (long long)n);
    expect(what, &t, NEAR);
    drop(&t), drop(&s);
  }
}
END_TEST

int main(void) {
  negcut_ctx_options o;
  negcut_ctx_options_init(&o);
  const int opened = ngc_test_open_cuda(&g_cu, &o, "check_cuda_ops");
  if (opened) return opened;
  o.backend = NEGCUT_BACKEND_REF;
  o.threads = 1;
  if (negcut_ctx_create(&g_ref, &o) != NEGCUT_OK) {
    fprintf(stderr, "check_cuda_ops: %s\n", negcut_ctx_last_error(NULL));
    return EXIT_FAILURE;
  }
  g_be = g_cu->be;
  g_rb = g_ref->be;
  setvbuf(stdout, NULL, _IOLBF, 0);

  Suite *s = suite_create("cuda_ops");
  TCase *tc = tcase_create("slots");
  tcase_set_timeout(tc, 600); /* not enforced without fork; CTest's TIMEOUT is */
  tcase_add_test(tc, test_every_slot_filled);
  tcase_add_test(tc, test_memory);
  tcase_add_test(tc, test_eltwise);
  tcase_add_test(tc, test_hflip_concat);
  tcase_add_test(tc, test_pad);
  tcase_add_test(tc, test_inorm);
  tcase_add_test(tc, test_blur);
  tcase_add_test(tc, test_conv2d);
  tcase_add_test(tc, test_convt2d);
  tcase_add_test(tc, test_conv_bf16);
  tcase_add_test(tc, test_conv_tf32);
  tcase_add_test(tc, test_linear_bmm);
  tcase_add_test(tc, test_l2norm_rowdot);
  tcase_add_test(tc, test_gather_mean_diag);
  tcase_add_test(tc, test_losses);
  tcase_add_test(tc, test_adam_ema);
  tcase_add_test(tc, test_graph_lend); /* last: a failure leaves a replay open */
  suite_add_tcase(s, tc);
  int rc = ngc_test_run_nofork(s);
  negcut_ctx_free(g_ref);
  negcut_ctx_free(g_cu);
  return rc;
}
