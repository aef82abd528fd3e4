/* The host side of the Philox generator: stateful streams, ranges of
 * uniforms and normals by index, bounded integers and permutations. The
 * numbers themselves come from the inline block function in philox.h. */
#include "philox.h"

void ngc_philox_init(ngc_philox *g, uint64_t seed, uint32_t stream) {
  g->seed = seed;
  g->stream = stream;
  g->counter = 0;
}

void ngc_philox_u32x4(ngc_philox *g, uint32_t out[4]) {
  ngc_philox_block(g->seed, g->stream, g->counter, out);
  g->counter++;
}

/* Blocks touched by n values starting on a block boundary. */
static uint64_t blocks_for(size_t n) { return ((uint64_t)n + 3) / 4; }

void ngc_philox_uniform_at(uint64_t seed, uint32_t stream, uint64_t offset, size_t n,
                           float *out) {
  uint32_t x[4];
  size_t i = 0;
  /* One block serves up to four consecutive values; a range that starts
   * mid-block takes the tail of that block first. */
  while (i < n) {
    uint64_t idx = offset + i;
    ngc_philox_block(seed, stream, idx >> 2, x);
    for (uint32_t k = (uint32_t)(idx & 3); k < 4 && i < n; k++, i++)
      out[i] = ngc_philox_to_uniform(x[k]);
  }
}

void ngc_philox_normal_at(uint64_t seed, uint32_t stream, uint64_t offset, size_t n,
                          float *out) {
  uint32_t x[4];
  float z[4];
  size_t i = 0;
  while (i < n) {
    uint64_t idx = offset + i;
    ngc_philox_block(seed, stream, idx >> 2, x);
    ngc_philox_to_normal2(x[0], x[1], &z[0], &z[1]);
    ngc_philox_to_normal2(x[2], x[3], &z[2], &z[3]);
    for (uint32_t k = (uint32_t)(idx & 3); k < 4 && i < n; k++, i++) out[i] = z[k];
  }
}

void ngc_philox_uniform(ngc_philox *g, float *out, size_t n) {
  ngc_philox_uniform_at(g->seed, g->stream, g->counter << 2, n, out);
  g->counter += blocks_for(n);
}

void ngc_philox_normal(ngc_philox *g, float *out, size_t n) {
  ngc_philox_normal_at(g->seed, g->stream, g->counter << 2, n, out);
  g->counter += blocks_for(n);
}

/* Below this many values a draw stays on the calling thread. */
#define NORMAL_MT_MIN 16384

/* Where thread k of nt starts in [offset, offset + n): at a block boundary
 * (a multiple of 4 values), so that no block is computed twice. */
static uint64_t part_start(uint64_t offset, size_t n, int64_t k, int64_t nt) {
  if (k == 0) return offset;
  if (k == nt) return offset + n;
  const uint64_t at = (offset + (uint64_t)n * (uint64_t)k / (uint64_t)nt) & ~(uint64_t)3;
  return at < offset ? offset : at;
}

void ngc_philox_normal_at_mt(uint64_t seed, uint32_t stream, uint64_t offset, size_t n,
                             float *out, int32_t threads) {
  const int64_t nt = n < NORMAL_MT_MIN || threads < 2 ? 1 : threads;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t k = 0; k < nt; k++) {
    const uint64_t a = part_start(offset, n, k, nt), b = part_start(offset, n, k + 1, nt);
    if (b > a) ngc_philox_normal_at(seed, stream, a, (size_t)(b - a), out + (a - offset));
  }
}

void ngc_philox_normal_mt(ngc_philox *g, float *out, size_t n, int32_t threads) {
  ngc_philox_normal_at_mt(g->seed, g->stream, g->counter << 2, n, out, threads);
  g->counter += blocks_for(n);
}

/* Words in order across blocks, for draws that need a variable number of
 * them. The unread rest of the last block is dropped when the reader goes
 * out of scope, so the generator state stays a single block counter. */
typedef struct word_reader {
  ngc_philox *g;
  uint32_t x[4];
  uint32_t next; /* 4: empty */
} word_reader;

static uint32_t read_word(word_reader *r) {
  if (r->next == 4) {
    ngc_philox_u32x4(r->g, r->x);
    r->next = 0;
  }
  return r->x[r->next++];
}

/* Lemire, "Fast random integer generation in an interval" (2019): the high
 * word of x * bound is in [0, bound); rejecting the low words below
 * 2^32 mod bound leaves every result exactly as likely. */
static uint32_t below(word_reader *r, uint32_t bound) {
  uint64_t m = (uint64_t)read_word(r) * bound;
  uint32_t low = (uint32_t)m;
  if (low < bound) {
    uint32_t threshold = (uint32_t)(-bound) % bound; /* 2^32 mod bound */
    while (low < threshold) {
      m = (uint64_t)read_word(r) * bound;
      low = (uint32_t)m;
    }
  }
  return (uint32_t)(m >> 32);
}

uint32_t ngc_philox_below(ngc_philox *g, uint32_t bound) {
  if (bound == 0) return 0;
  word_reader r = {g, {0, 0, 0, 0}, 4};
  return below(&r, bound);
}

negcut_status ngc_philox_randperm(ngc_philox *g, int64_t *out, int64_t n) {
  if (n < 0 || n > (int64_t)UINT32_MAX || (n > 0 && !out))
    return NEGCUT_ERR_INVALID_ARGUMENT;
  word_reader r = {g, {0, 0, 0, 0}, 4};
  for (int64_t i = 0; i < n; i++) out[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = below(&r, (uint32_t)(i + 1));
    int64_t t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return NEGCUT_OK;
}
