/*
 * Philox4x32-10 counter-based random numbers (Salmon, Moraes, Dror, Shaw,
 * "Parallel random numbers: as easy as 1, 2, 3", SC'11; the generator of
 * Random123, curand and PyTorch). One generator drives every random choice
 * in libnegcut: a number is a pure function of (seed, stream, index), so a
 * seed gives the same numbers on every backend and thread count, and a
 * resumed run continues exactly where the uninterrupted one was.
 *
 * LAYOUT (the CUDA backend and any PyTorch-side script must reproduce this
 * exactly; changing it changes every trained model's initialisation):
 *
 *   key     = { (uint32)seed, (uint32)(seed >> 32) }
 *   counter = { (uint32)block, (uint32)(block >> 32), stream, 0 }
 *   block b yields x[0..3] = Philox4x32-10(counter, key).
 *
 *   The last counter word is reserved (always 0), free for a future use such
 *   as a data-parallel rank. Value index i (a uint64) of a stream is x[i % 4]
 *   of block i / 4: uint32 i is that word, uniform i and normal i are made
 *   from block i / 4 as below. Indices wrap modulo 2^64 words, i.e. blocks
 *   count modulo 2^62, which no run reaches.
 *
 *   uniform i = (float)(x[i % 4] >> 8) * 2^-24, in [0, 1 - 2^-24]; exact,
 *               so every backend gives the same bits.
 *   normal i  = Box-Muller on the pair p = (i % 4) / 2 of block i / 4, in
 *               double precision, rounded to float once at the end:
 *                 u1 = (x[2p] + 1) * 2^-32          in (0, 1], so log(u1) is finite
 *                 u2 =  x[2p + 1]  * 2^-32          in [0, 1)
 *                 r  = sqrt(-2 log u1), t = 2 pi u2
 *                 normal i = (float)(r * cos t)  when i is even,
 *                            (float)(r * sin t)  when i is odd.
 *               |normal| <= sqrt(64 ln 2) ~ 6.66. Because log/cos/sin are
 *               not correctly rounded on every platform, a device may in
 *               rare cases differ from the host in the last bit of a float;
 *               generate on the host where bits must match across backends
 *               (parity tests inject noise instead).
 *
 * The stateful generator (ngc_philox) holds the next block to use. Each
 * stateful call starts on a block boundary and consumes whole blocks:
 * ngc_philox_u32x4 one block, ngc_philox_uniform / _normal for n values
 * ceil(n / 4) blocks (the same numbers as the _at functions at offset
 * 4 * counter). So two stateful calls of 10 and 7 values do not equal one of
 * 17; the _at functions, indexed by value, are chunking-independent and are
 * what a parallel loop or a GPU kernel uses. ngc_philox_below and
 * ngc_philox_randperm read words in order from successive blocks and
 * consume a data-dependent number of blocks (rejection sampling); they run
 * on the host.
 *
 * Ownership and threads: no globals, no allocation. An ngc_philox is a plain
 * value (save its three fields to checkpoint it); one thread uses it at a
 * time. The _at functions and the static inline block functions are pure
 * and thread-safe.
 */
#ifndef NGC_PHILOX_H
#define NGC_PHILOX_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "negcut/core.h"

/* The block function is shared verbatim with CUDA kernels. */
#if defined(__CUDACC__)
#define NGC_PHILOX_FN static inline __host__ __device__
#else
#define NGC_PHILOX_FN static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Stream ids: one per kind of random choice, so that adding draws of one
 * kind never shifts the numbers of another. Values never change; 0 is not
 * used by the library (tests may use it). */
typedef enum ngc_stream {
  NGC_STREAM_INIT = 1,  /* weight initialisation */
  NGC_STREAM_DATA = 2,  /* crops, flips of the data, pairing of A and B */
  NGC_STREAM_PATCH = 3, /* PatchNCE patch ids */
  NGC_STREAM_NOISE = 4, /* NEGCUT noise */
  NGC_STREAM_FLIP = 5   /* flip equivariance (FastCUT) */
} ngc_stream;

#define NGC_PHILOX_M0 0xD2511F53u
#define NGC_PHILOX_M1 0xCD9E8D57u
#define NGC_PHILOX_W0 0x9E3779B9u /* golden ratio */
#define NGC_PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

/* The bare permutation: out = Philox4x32-10(ctr, key). out may alias ctr. */
NGC_PHILOX_FN void ngc_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                                     uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    if (r > 0) {
      k0 += NGC_PHILOX_W0;
      k1 += NGC_PHILOX_W1;
    }
    uint64_t p0 = (uint64_t)NGC_PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)NGC_PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/* Block `block` of (seed, stream), per the layout above. */
NGC_PHILOX_FN void ngc_philox_block(uint64_t seed, uint32_t stream, uint64_t block,
                                    uint32_t out[4]) {
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), stream, 0u};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  ngc_philox4x32_10(ctr, key, out);
}

/* A word to a float in [0, 1): the top 24 bits, exactly representable. */
NGC_PHILOX_FN float ngc_philox_to_uniform(uint32_t x) {
  return (float)(x >> 8) * (1.0f / 16777216.0f);
}

/* Box-Muller on one pair of words, per the layout above. */
NGC_PHILOX_FN void ngc_philox_to_normal2(uint32_t a, uint32_t b, float *z0, float *z1) {
  const double two_pi = 6.283185307179586476925286766559;
  const double inv_2_32 = 1.0 / 4294967296.0;
  double u1 = ((double)a + 1.0) * inv_2_32;
  double u2 = (double)b * inv_2_32;
  double r = sqrt(-2.0 * log(u1));
  double t = two_pi * u2;
  *z0 = (float)(r * cos(t));
  *z1 = (float)(r * sin(t));
}

/* Value `index` of a stream as a uniform / normal, for a kernel thread that
 * makes one value; the same numbers as the _at functions below. */
NGC_PHILOX_FN float ngc_philox_uniform_one(uint64_t seed, uint32_t stream,
                                           uint64_t index) {
  uint32_t x[4];
  ngc_philox_block(seed, stream, index >> 2, x);
  return ngc_philox_to_uniform(x[index & 3]);
}

NGC_PHILOX_FN float ngc_philox_normal_one(uint64_t seed, uint32_t stream,
                                          uint64_t index) {
  uint32_t x[4];
  float z[2];
  ngc_philox_block(seed, stream, index >> 2, x);
  uint32_t p = (uint32_t)(index & 3) >> 1;
  ngc_philox_to_normal2(x[2 * p], x[2 * p + 1], &z[0], &z[1]);
  return z[index & 1];
}

/* ------------------------------------------------------------ host API */

/* A stream of one seed. counter is the next block to use. */
typedef struct ngc_philox {
  uint64_t seed;
  uint32_t stream;
  uint64_t counter;
} ngc_philox;

/* Starts (seed, stream) at block 0. */
void ngc_philox_init(ngc_philox *g, uint64_t seed, uint32_t stream);
/* One block: four words. */
void ngc_philox_u32x4(ngc_philox *g, uint32_t out[4]);
/* n uniforms in [0, 1) / n standard normals; ceil(n / 4) blocks. */
void ngc_philox_uniform(ngc_philox *g, float *out, size_t n);
void ngc_philox_normal(ngc_philox *g, float *out, size_t n);
/* ngc_philox_normal on up to `threads` threads (OpenMP), with the same
 * numbers: each thread draws whole blocks of the range. For the noise a
 * NEGCUT step draws on the host (about 160k normals at 15 ns each). */
void ngc_philox_normal_mt(ngc_philox *g, float *out, size_t n, int32_t threads);
/* ngc_philox_normal_at on up to `threads` threads, with the same numbers
 * (each value depends on its index only). */
void ngc_philox_normal_at_mt(uint64_t seed, uint32_t stream, uint64_t offset, size_t n,
                             float *out, int32_t threads);
/* Values offset .. offset + n - 1 of (seed, stream), by value index: any
 * split of a range into calls gives the same numbers. */
void ngc_philox_uniform_at(uint64_t seed, uint32_t stream, uint64_t offset, size_t n,
                           float *out);
void ngc_philox_normal_at(uint64_t seed, uint32_t stream, uint64_t offset, size_t n,
                          float *out);
/* An unbiased integer in [0, bound) (Lemire's multiply-shift with
 * rejection). bound 0 returns 0 and draws nothing. */
uint32_t ngc_philox_below(ngc_philox *g, uint32_t bound);
/* out[0..n) = a uniformly random permutation of 0..n-1 (Fisher-Yates from
 * the top: for i = n-1 down to 1, swap out[i] with out[below(i + 1)], all
 * bounded draws reading consecutive words). n in [0, 2^32 - 1]; otherwise
 * NEGCUT_ERR_INVALID_ARGUMENT and nothing is drawn. */
negcut_status ngc_philox_randperm(ngc_philox *g, int64_t *out, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
