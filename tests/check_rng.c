/* Philox4x32-10: known answers, the documented layout, determinism,
 * chunking independence, and the statistics of uniforms, normals, bounded
 * integers and permutations. Seeds are fixed, so every statistical check is
 * deterministic; tolerances are about 5 standard errors of a correct
 * generator, far below what the bugs they guard against produce. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "ngc_test.h"

/* Random123's kat_vectors for philox4x32 with 10 rounds. */
START_TEST(test_known_answers) {
  static const uint32_t kat[3][10] = {
      {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
       0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
       0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
       0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
  };
  for (int v = 0; v < 3; v++) {
    uint32_t out[4];
    ngc_philox4x32_10(&kat[v][0], &kat[v][4], out);
    for (int k = 0; k < 4; k++)
      ck_assert_msg(out[k] == kat[v][6 + k], "vector %d word %d: got %08x want %08x", v,
                    k, out[k], kat[v][6 + k]);
    /* out may alias ctr */
    uint32_t io[4] = {kat[v][0], kat[v][1], kat[v][2], kat[v][3]};
    ngc_philox4x32_10(io, &kat[v][4], io);
    ck_assert_mem_eq(io, out, sizeof out);
  }
}
END_TEST

/* The layout of philox.h, re-derived here from the bare block function. */
START_TEST(test_layout) {
  const uint64_t seed = 0x0123456789abcdefull;
  const uint32_t stream = NGC_STREAM_NOISE;
  const uint64_t blocks[3] = {0, 5, 0x100000002ull};
  for (int b = 0; b < 3; b++) {
    uint32_t ctr[4] = {(uint32_t)blocks[b], (uint32_t)(blocks[b] >> 32), stream, 0};
    uint32_t key[2] = {0x89abcdefu, 0x01234567u};
    uint32_t want[4], got[4];
    ngc_philox4x32_10(ctr, key, want);
    ngc_philox_block(seed, stream, blocks[b], got);
    ck_assert_mem_eq(got, want, sizeof want);

    uint64_t base = blocks[b] * 4;
    float u[4], z[4];
    ngc_philox_uniform_at(seed, stream, base, 4, u);
    ngc_philox_normal_at(seed, stream, base, 4, z);
    for (int k = 0; k < 4; k++) {
      ck_assert(u[k] == (float)((double)(want[k] >> 8) / 16777216.0));
      ck_assert(u[k] == ngc_philox_uniform_one(seed, stream, base + (uint64_t)k));
      ck_assert(z[k] == ngc_philox_normal_one(seed, stream, base + (uint64_t)k));
      int p = k / 2;
      double u1 = ((double)want[2 * p] + 1.0) / 4294967296.0;
      double u2 = (double)want[2 * p + 1] / 4294967296.0;
      double r = sqrt(-2.0 * log(u1)), t = 2.0 * 3.14159265358979323846 * u2;
      float zz = (float)(k % 2 ? r * sin(t) : r * cos(t));
      ck_assert_msg(z[k] == zz, "normal %d: got %.9g want %.9g", k, z[k], zz);
    }
  }
  /* The extreme words: u1 = 1 gives 0, u1 = 2^-32 the largest magnitude. */
  float z0, z1;
  ngc_philox_to_normal2(0xffffffffu, 0, &z0, &z1);
  ck_assert(z0 == 0.0f && z1 == 0.0f);
  ngc_philox_to_normal2(0, 0, &z0, &z1);
  ck_assert(fabsf(z0 - 6.6604f) < 1e-3f && z1 == 0.0f);
  ck_assert(ngc_philox_to_uniform(0xffffffffu) < 1.0f);
  ck_assert(ngc_philox_to_uniform(0xffffffffu) == 1.0f - 1.0f / 16777216.0f);
  ck_assert(ngc_philox_to_uniform(0xffu) == 0.0f);
}
END_TEST

START_TEST(test_determinism) {
  ngc_philox a, b, c, d;
  ngc_philox_init(&a, 1234, NGC_STREAM_INIT);
  ngc_philox_init(&b, 1234, NGC_STREAM_INIT);
  ngc_philox_init(&c, 1234, NGC_STREAM_DATA);
  ngc_philox_init(&d, 1235, NGC_STREAM_INIT);
  float fa[64], fb[64], fc[64], fd[64];
  ngc_philox_uniform(&a, fa, 64);
  ngc_philox_uniform(&b, fb, 64);
  ngc_philox_uniform(&c, fc, 64);
  ngc_philox_uniform(&d, fd, 64);
  ck_assert_mem_eq(fa, fb, sizeof fa);
  int same_c = 0, same_d = 0;
  for (int i = 0; i < 64; i++) {
    same_c += fa[i] == fc[i];
    same_d += fa[i] == fd[i];
  }
  ck_assert_int_le(same_c, 1); /* equal floats by chance: ~64 * 2^-24 */
  ck_assert_int_le(same_d, 1);
  /* Each stream goes on where it was, and counts blocks. */
  ck_assert_uint_eq(a.counter, 16);
  uint32_t w1[4], w2[4];
  ngc_philox_u32x4(&a, w1);
  ngc_philox_block(1234, NGC_STREAM_INIT, 16, w2);
  ck_assert_mem_eq(w1, w2, sizeof w1);
  ck_assert_uint_eq(a.counter, 17);
  /* A copied state (a checkpoint) continues identically. */
  ngc_philox saved = a, resumed;
  ngc_philox_normal(&a, fa, 33);
  resumed = saved;
  ngc_philox_normal(&resumed, fb, 33);
  ck_assert_mem_eq(fa, fb, 33 * sizeof(float));
  ck_assert_uint_eq(a.counter, 17 + 9);
}
END_TEST

/* Stateful calls start on a block boundary and equal the _at functions. */
START_TEST(test_stateful_matches_at) {
  ngc_philox g;
  float s[17], w[17];
  ngc_philox_init(&g, 99, NGC_STREAM_PATCH);
  ngc_philox_uniform(&g, s, 10);
  ck_assert_uint_eq(g.counter, 3);
  ngc_philox_uniform(&g, s + 10, 7);
  ck_assert_uint_eq(g.counter, 5);
  ngc_philox_uniform_at(99, NGC_STREAM_PATCH, 0, 10, w);
  ngc_philox_uniform_at(99, NGC_STREAM_PATCH, 12, 7, w + 10);
  ck_assert_mem_eq(s, w, sizeof s);
  ngc_philox_normal(&g, s, 5);
  ck_assert_uint_eq(g.counter, 7);
  ngc_philox_normal_at(99, NGC_STREAM_PATCH, 20, 5, w);
  ck_assert_mem_eq(s, w, 5 * sizeof(float));
  ngc_philox_uniform(&g, s, 0); /* nothing drawn */
  ck_assert_uint_eq(g.counter, 7);
}
END_TEST

/* The threaded draw gives ngc_philox_normal's values and counter, for
 * sizes below and above the threading threshold, whole blocks or not, from
 * a counter that is not 0, on 1 to 5 threads (more than the blocks too). */
START_TEST(test_normal_mt) {
  static const size_t sizes[] = {0, 1, 7, 16384, 16385, 40003, 65536};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
    for (int32_t threads = 1; threads <= 5; threads++) {
      const size_t n = sizes[s];
      float *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
      ck_assert(a && b);
      ngc_philox ga, gb;
      ngc_philox_init(&ga, 0x9e3779b97f4a7c15ull, NGC_STREAM_NOISE);
      float skip[3];
      ngc_philox_normal(&ga, skip, 3); /* counter 1: the draw starts past 0 */
      gb = ga;
      a[n] = b[n] = -7.0f; /* past the end: untouched */
      ngc_philox_normal(&ga, a, n);
      ngc_philox_normal_mt(&gb, b, n, threads);
      ck_assert_msg(!memcmp(a, b, (n + 1) * sizeof *a), "%zu normals on %d threads differ", n,
                    (int)threads);
      ck_assert_uint_eq(ga.counter, gb.counter);
      /* from any offset, as a rank's share of a data-parallel draw starts */
      for (uint64_t off = 1; off <= 6; off += 5) {
        ngc_philox_normal_at(7, NGC_STREAM_NOISE, off, n, a);
        ngc_philox_normal_at_mt(7, NGC_STREAM_NOISE, off, n, b, threads);
        ck_assert_msg(!memcmp(a, b, (n + 1) * sizeof *a),
                      "%zu normals from offset %d on %d threads differ", n, (int)off,
                      (int)threads);
      }
      free(a), free(b);
    }
}
END_TEST

/* Value i of a stream does not depend on how a range is split. */
START_TEST(test_chunking) {
  const uint64_t seed = 7, off = 3; /* start mid-block on purpose */
  float whole[40], parts[40], zwhole[40], zparts[40];
  ngc_philox_uniform_at(seed, 0, off, 17, whole);
  ngc_philox_uniform_at(seed, 0, off, 10, parts);
  ngc_philox_uniform_at(seed, 0, off + 10, 7, parts + 10);
  ck_assert_mem_eq(whole, parts, 17 * sizeof(float));

  static const size_t cuts[] = {0, 1, 2, 5, 6, 13, 14, 27, 40};
  ngc_philox_uniform_at(seed, 0, off, 40, whole);
  ngc_philox_normal_at(seed, 0, off, 40, zwhole);
  for (size_t c = 0; c + 1 < sizeof cuts / sizeof cuts[0]; c++) {
    size_t a = cuts[c], n = cuts[c + 1] - cuts[c];
    ngc_philox_uniform_at(seed, 0, off + a, n, parts + a);
    ngc_philox_normal_at(seed, 0, off + a, n, zparts + a);
  }
  ck_assert_mem_eq(whole, parts, sizeof whole);
  ck_assert_mem_eq(zwhole, zparts, sizeof zwhole);
  for (size_t i = 0; i < 40; i++) {
    ck_assert(whole[i] == ngc_philox_uniform_one(seed, 0, off + i));
    ck_assert(zwhole[i] == ngc_philox_normal_one(seed, 0, off + i));
  }
}
END_TEST

#define N_STAT 100000

/* Mean of U[0,1) is 1/2 with standard error sqrt(1/12/N) = 9.1e-4; the
 * variance 1/12 with standard error sqrt((1/80 - 1/144)/N) = 2.4e-4. */
START_TEST(test_uniform_stats) {
  float *u = malloc(N_STAT * sizeof *u);
  ck_assert_ptr_nonnull(u);
  ngc_philox g;
  ngc_philox_init(&g, 2024, NGC_STREAM_DATA);
  ngc_philox_uniform(&g, u, N_STAT);
  double sum = 0, sq = 0;
  int64_t low = 0;
  for (int i = 0; i < N_STAT; i++) {
    ck_assert(u[i] >= 0.0f && u[i] < 1.0f);
    sum += u[i];
    low += u[i] < 0.1f;
  }
  double mean = sum / N_STAT;
  for (int i = 0; i < N_STAT; i++) sq += (u[i] - mean) * (u[i] - mean);
  double var = sq / N_STAT;
  ck_assert_msg(fabs(mean - 0.5) < 0.005, "uniform mean %.5f", mean);
  ck_assert_msg(fabs(var - 1.0 / 12) < 0.0012, "uniform variance %.5f", var);
  /* P(u < 0.1) = 0.1, standard error 9.5e-4 */
  ck_assert_msg(fabs((double)low / N_STAT - 0.1) < 0.005, "P(u<0.1) %.5f",
                (double)low / N_STAT);
  free(u);
}
END_TEST

/* N(0,1): mean standard error 1/sqrt(N) = 3.2e-3, variance sqrt(2/N) =
 * 4.5e-3; P(|z|>2) = 0.0455 (s.e. 6.6e-4), P(|z|>3) = 0.0027 (s.e. 1.6e-4). */
START_TEST(test_normal_stats) {
  float *z = malloc(N_STAT * sizeof *z);
  ck_assert_ptr_nonnull(z);
  ngc_philox g;
  ngc_philox_init(&g, 31337, NGC_STREAM_NOISE);
  ngc_philox_normal(&g, z, N_STAT);
  double sum = 0, sq = 0;
  int64_t t2 = 0, t3 = 0, pos = 0;
  for (int i = 0; i < N_STAT; i++) {
    ck_assert(isfinite(z[i]) && fabsf(z[i]) < 6.67f);
    sum += z[i];
    sq += (double)z[i] * z[i];
    t2 += fabsf(z[i]) > 2.0f;
    t3 += fabsf(z[i]) > 3.0f;
    pos += z[i] > 0.0f;
  }
  double mean = sum / N_STAT, var = sq / N_STAT - mean * mean;
  ck_assert_msg(fabs(mean) < 0.016, "normal mean %.5f", mean);
  ck_assert_msg(fabs(var - 1.0) < 0.022, "normal variance %.5f", var);
  ck_assert_msg(fabs((double)t2 / N_STAT - 0.0455) < 0.0033, "P(|z|>2) %.5f",
                (double)t2 / N_STAT);
  ck_assert_msg(fabs((double)t3 / N_STAT - 0.0027) < 0.0008, "P(|z|>3) %.5f",
                (double)t3 / N_STAT);
  ck_assert_msg(fabs((double)pos / N_STAT - 0.5) < 0.008, "P(z>0) %.5f",
                (double)pos / N_STAT);
  /* cos and sin halves of each pair are uncorrelated: s.e. 1/sqrt(N/2). */
  double cross = 0;
  for (int i = 0; i < N_STAT; i += 2) cross += (double)z[i] * z[i + 1];
  cross /= N_STAT / 2;
  ck_assert_msg(fabs(cross) < 0.023, "pair correlation %.5f", cross);
  free(z);
}
END_TEST

START_TEST(test_below) {
  static const uint32_t bounds[] = {1, 2, 3, 7, 1000, 0x80000001u, 0xC0000000u,
                                    0xFFFFFFFFu};
  ngc_philox g;
  ngc_philox_init(&g, 5, 0);
  for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
    uint32_t hi = 0;
    for (int i = 0; i < 20000; i++) {
      uint32_t v = ngc_philox_below(&g, bounds[b]);
      ck_assert_msg(v < bounds[b], "below(%u) gave %u", bounds[b], v);
      if (v > hi) hi = v;
    }
    /* and the top of the range is reached where it is likely */
    if (bounds[b] <= 1000) ck_assert_uint_eq(hi, bounds[b] - 1);
  }
  uint64_t before = g.counter;
  ck_assert_uint_eq(ngc_philox_below(&g, 0), 0);
  ck_assert_uint_eq(g.counter, before);

  /* bound = 3 * 2^30 is where shortcuts show: x % bound puts half of the
   * results below 2^30 (want 1/3), and multiply-shift without rejection
   * makes results divisible by 3 half of all (want 1/3). s.e. 1.5e-3. */
  int64_t small = 0, div3 = 0;
  const int n = 100000;
  for (int i = 0; i < n; i++) {
    uint32_t v = ngc_philox_below(&g, 0xC0000000u);
    small += v < 0x40000000u;
    div3 += v % 3 == 0;
  }
  ck_assert_msg(fabs((double)small / n - 1.0 / 3) < 0.0075, "P(v < 2^30) %.5f",
                (double)small / n);
  ck_assert_msg(fabs((double)div3 / n - 1.0 / 3) < 0.0075, "P(v %% 3 == 0) %.5f",
                (double)div3 / n);
}
END_TEST

START_TEST(test_randperm_contract) {
  int64_t p[1000], q[1000];
  char seen[1000];
  ngc_philox g, h;
  ngc_philox_init(&g, 77, NGC_STREAM_PATCH);
  ck_assert_int_eq(ngc_philox_randperm(&g, p, 1000), NEGCUT_OK);
  memset(seen, 0, sizeof seen);
  for (int i = 0; i < 1000; i++) {
    ck_assert(p[i] >= 0 && p[i] < 1000);
    ck_assert_msg(!seen[p[i]], "%lld twice", (long long)p[i]);
    seen[p[i]] = 1;
  }
  int fixed = 0;
  for (int i = 0; i < 1000; i++) fixed += p[i] == i;
  ck_assert_int_lt(fixed, 10); /* expected 1; a no-op shuffle gives 1000 */

  ngc_philox_init(&h, 77, NGC_STREAM_PATCH);
  ck_assert_int_eq(ngc_philox_randperm(&h, q, 1000), NEGCUT_OK);
  ck_assert_mem_eq(p, q, sizeof p);
  ck_assert_uint_eq(g.counter, h.counter);
  ngc_philox_init(&h, 78, NGC_STREAM_PATCH);
  ck_assert_int_eq(ngc_philox_randperm(&h, q, 1000), NEGCUT_OK);
  ck_assert(memcmp(p, q, sizeof p) != 0);
  /* The next permutation of a stream differs from the first. */
  ck_assert_int_eq(ngc_philox_randperm(&g, q, 1000), NEGCUT_OK);
  ck_assert(memcmp(p, q, sizeof p) != 0);

  uint64_t before = g.counter;
  ck_assert_int_eq(ngc_philox_randperm(&g, p, 0), NEGCUT_OK);
  ck_assert_int_eq(ngc_philox_randperm(&g, NULL, 0), NEGCUT_OK);
  ck_assert_int_eq(ngc_philox_randperm(&g, p, 1), NEGCUT_OK);
  ck_assert_int_eq(p[0], 0);
  ck_assert_uint_eq(g.counter, before);
  ck_assert_int_eq(ngc_philox_randperm(&g, p, -1), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_philox_randperm(&g, p, (int64_t)1 << 32),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_philox_randperm(&g, NULL, 5), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_uint_eq(g.counter, before);
}
END_TEST

/* Over many seeds each value lands in each position equally often. The first
 * position alone is multinomial: chi-square with 7 degrees of freedom, 99.9th
 * percentile 24.32. The whole 8 x 8 (position, value) table has both margins
 * fixed and the cells of a random permutation matrix are slightly positively
 * correlated across rows, so Pearson's statistic is N/(N-1) times a
 * chi-square with (N-1)^2 = 49 degrees of freedom: (N-1)/N * stat against
 * the 99.9th percentile 85.35. */
START_TEST(test_randperm_uniform) {
  enum { N = 8, SEEDS = 40000 };
  static int64_t count[N][N];
  memset(count, 0, sizeof count);
  for (uint64_t s = 0; s < SEEDS; s++) {
    ngc_philox g;
    int64_t p[N];
    ngc_philox_init(&g, s, NGC_STREAM_PATCH);
    ck_assert_int_eq(ngc_philox_randperm(&g, p, N), NEGCUT_OK);
    for (int i = 0; i < N; i++) count[i][p[i]]++;
  }
  double expect = (double)SEEDS / N, chi_all = 0, chi_first = 0;
  for (int i = 0; i < N; i++)
    for (int v = 0; v < N; v++) {
      double d = (double)count[i][v] - expect;
      chi_all += d * d / expect;
      if (i == 0) chi_first += d * d / expect;
    }
  ck_assert_msg(chi_first < 24.3, "first position chi-square %.2f", chi_first);
  chi_all *= (double)(N - 1) / N;
  ck_assert_msg(chi_all < 85.35, "position x value chi-square %.2f", chi_all);
}
END_TEST

int main(void) {
  Suite *s = suite_create("rng");
  TCase *tc = tcase_create("philox");
  tcase_add_test(tc, test_known_answers);
  tcase_add_test(tc, test_layout);
  tcase_add_test(tc, test_determinism);
  tcase_add_test(tc, test_stateful_matches_at);
  tcase_add_test(tc, test_chunking);
  tcase_add_test(tc, test_uniform_stats);
  tcase_add_test(tc, test_normal_stats);
  tcase_add_test(tc, test_normal_mt);
  tcase_add_test(tc, test_below);
  tcase_add_test(tc, test_randperm_contract);
  tcase_add_test(tc, test_randperm_uniform);
  suite_add_tcase(s, tc);
  return ngc_test_run(s);
}
