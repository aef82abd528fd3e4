/* Convolution primitive cache of the CPU backend (cpu_conv_cache.c), shared
 * by the convolution slots (cpu_conv.c) and the blurs (cpu_blur.c).
 *
 * Every convolution, transposed ones included, is one of three oneDNN
 * convolution primitives: forward, backward-data, backward-weights (a
 * ConvTranspose2d forward is a convolution's backward-data with the same
 * weight array, and so on). Each is built once per key with format_tag any,
 * so oneDNN picks its preferred (blocked) layouts. User activations are
 * plain NCHW or the backend's blocked layout (nChw16c / nChw8c, see
 * act_block); whatever differs from the primitive's choice goes through a
 * cached reorder primitive on the way in and out. */
#ifndef NGC_CPU_CONV_H
#define NGC_CPU_CONV_H

#include "cpu.h"

typedef enum ngc_conv_op {
  NGC_CONV_FWD = 0,          /* args: src, weights, bias (or NULL), dst = */
  NGC_CONV_BWD_DATA = 1,     /* args: diff_dst, weights, diff_src = */
  NGC_CONV_BWD_WEIGHTS = 2   /* args: src, diff_dst, diff_weights +=, diff_bias += (or NULL) */
} ngc_conv_op;

#define NGC_CONV_MAX_ARGS 4

/* Everything that decides a primitive; compared with memcmp, so built with
 * memset first. The convolution is src (n, ci, h, w) -> dst (n, co, ho, wo)
 * with weights (co, ci, k, k), symmetric zero padding `pad`. */
typedef struct ngc_conv_key {
  int32_t op; /* ngc_conv_op */
  int32_t threads;
  int32_t bias; /* fwd: bias input; bwd-weights: diff_bias output */
  int32_t bf16; /* fwd: may take bfloat16 source and weights (f32 accumulation and output)
                   where no Winograd primitive runs and the CPU has bf16 dot products */
  int32_t src_blk, dst_blk; /* channel block of the user's src / dst memory; 1: plain */
  int32_t winograd; /* NGC_CONV_TRANSFORM_*, for 3x3 stride 1 (else NONE): Winograd where it
                       gains, within the scratch bound of that class (cpu_conv_cache.c) */
  int32_t n, ci, h, w, co, ho, wo, k, stride, pad;
} ngc_conv_key;

/* Below these, oneDNN 2.6's Winograd ran slower than its direct kernels on
 * this project's 2-core AVX-512 machine (forward, ms a call, direct ->
 * Winograd): 16x16 outputs 0.050 -> 0.072 (64 channels) and 0.69 -> 0.92
 * (256); 16 input channels 0.099 -> 0.125 (64x64) and 1.59 -> 3.31
 * (256x256). From 32x32 and 32 channels on it wins: 0.183 -> 0.119 (64
 * channels), 2.54 -> 1.76 (256), 5.04 -> 2.10 (256 -> 128 at 64x64). */
#define NGC_WINOGRAD_MIN_CHANNELS 32
#define NGC_WINOGRAD_MIN_PIXELS (32 * 32)
/* Scratchpad bounds of Winograd primitives: NGC_CONV_TRANSFORM_ROOMY
 * (inference), NGC_CONV_TRANSFORM (training) (measurements at
 * winograd_max_scratch). */
#define NGC_WINOGRAD_MAX_SCRATCH ((size_t)160 << 20)
#define NGC_WINOGRAD_MAX_SCRATCH_TRAINING ((size_t)80 << 20)

/* Runs the primitive of `key` (built on first use) on plain row-major
 * buffers, in the argument order of ngc_conv_op. Outputs marked += above
 * are accumulated into; the others are assigned. keep: where the weights
 * of a forward or backward-data pass may stay in the primitive's layout
 * (ngc_conv_params.w_store), or NULL. */
negcut_status ngc_cpu_conv_run(ngc_backend *be, const ngc_conv_key *key,
                               float *const args[NGC_CONV_MAX_ARGS], ngc_wstore *keep);

/* What a kept copy of weights is (cpu_keep.c): the array w in oneDNN's
 * layout md (pack NONE), packed by ngc_cpu_conv_few for pack_dims (source
 * block, kernel size, outputs, taps reversed), or transformed by
 * ngc_cpu_wino_weights for pack_dims (inputs, outputs). */
typedef enum ngc_cpu_pack {
  NGC_CPU_PACK_NONE = 0,
  NGC_CPU_PACK_FEW = 1,
  NGC_CPU_PACK_WINOGRAD = 2
} ngc_cpu_pack;

typedef struct ngc_cpu_wkey {
  const float *w;
  int32_t pack; /* ngc_cpu_pack */
  int64_t pack_dims[4];
  dnnl_memory_desc_t md;
} ngc_cpu_wkey;

/* The copy of key->w kept in s as key says, bytes long: one made before
 * (*fresh 0), or new room for it now held by s, which the caller fills
 * (*fresh 1); NULL where s has no room left (or no memory): the caller then
 * prepares the weights as it does without a store. */
void *ngc_cpu_kept(ngc_wstore *s, const ngc_cpu_wkey *key, size_t bytes, int *fresh);

/* oneDNN's name of the implementation the last ngc_cpu_conv_run ran (say
 * "jit_wino_4x3:avx512_core"), NULL before any; for tests. */
const char *ngc_cpu_conv_last_impl(ngc_backend *be);
/* How many convolutions of pass op (ngc_conv_op) ran a Winograd primitive
 * on be so far; for tests. */
int64_t ngc_cpu_conv_winograd_runs(ngc_backend *be, int32_t op);
/* How many forward convolutions ran a bf16 primitive on be so far; for tests. */
int64_t ngc_cpu_conv_bf16_runs(ngc_backend *be);

/* Where oneDNN runs AVX-512 kernels, convolutions to at most this many
 * channels run our own loops (cpu_conv_few.c), and their backward passes
 * oneDNN's convolutions from few channels (cpu_conv.c). */
#define NGC_FEW_CHANNELS 4

/* y (N, Co, Ho, Wo), plain, = b + the stride-1 convolution of x (N, Ci, H,
 * W; plain or the backend's blocked layout) with zero padding pad and
 * weights w (Co, Ci, k, k), or with flip w (Ci, Co, k, k) with its taps
 * reversed; b (Co) or NULL. Co <= NGC_FEW_CHANNELS; k follows from the
 * shapes. keep: where the packed weights may stay (ngc_conv_params.w_store),
 * or NULL. */
negcut_status ngc_cpu_conv_few(ngc_backend *be, int32_t pad, int flip, const ngc_tensor *x,
                               const float *w, const float *b, ngc_tensor *y,
                               ngc_wstore *keep);

/* Our own Winograd F(4x4, 3x3) (cpu_conv_wino.c) runs the forward 3x3
 * stride-1 convolutions of inference (ngc_conv_params.winograd
 * NGC_CONV_TRANSFORM_ROOMY) between 16-channel blocked activations whose
 * weights a store keeps transformed (ngc_conv_params.w_store: transforming
 * them costs more than the convolution), where oneDNN runs AVX-512 kernels
 * and the transformed tiles take at most this many bytes (measured at
 * ngc_cpu_wino_shape). */
#define NGC_OWN_WINOGRAD_MAX_SCRATCH ((size_t)4 << 20)

/* Whether ngc_cpu_conv_wino may compute the forward convolution x -> y with
 * weights w under p (given transformed weights). */
int ngc_cpu_wino_shape(ngc_backend *be, const ngc_conv_params *p, const ngc_tensor *x,
                       const ngc_tensor *w, const ngc_tensor *y);
/* The weights w (co, ci, 3, 3) transformed for ngc_cpu_conv_wino, kept in
 * keep (made on the first call for w); NULL where keep is NULL or has no
 * room left (the caller then runs oneDNN's convolution). */
const float *ngc_cpu_wino_weights(ngc_backend *be, const float *w, int64_t ci, int64_t co,
                                  ngc_wstore *keep);
/* y (N, Co, Ho, Wo) = b + the 3x3 stride-1 convolution of x (N, Ci, H, W)
 * with zero padding pad, both in 16-channel blocks; u: the weights from
 * ngc_cpu_wino_weights; b (Co) or NULL. */
negcut_status ngc_cpu_conv_wino(ngc_backend *be, int32_t pad, const ngc_tensor *x,
                                const float *u, const float *b, ngc_tensor *y);

/* The channel block of the activation layout oneDNN's convolutions prefer on
 * this machine (16 for nChw16c, 8 for nChw8c), 0 when it prefers none of
 * those: the backend's act_block. */
int32_t ngc_cpu_pick_block(ngc_backend *be);

/* Blur slots (cpu_blur.c). */
void ngc_cpu_fill_blur_ops(ngc_backend_ops *ops);

#endif
