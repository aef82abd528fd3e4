/*
 * Build your own (DESIGN.md, level 3): the networks as opaque handles with
 * forward, backward and parameter access, device tensors, and tapes that
 * record forward calls for backward. With the losses and the optimisers
 * (both in negcut/losses.h) a caller can write a training loop of their
 * own; examples/custom_loop.c writes one CUT iteration this way.
 *
 * Tensors: float32, row-major, NCHW for images and features, (rows, cols)
 * for projected patches. They live on the context's backend; move data with
 * negcut_tensor_write / _read.
 *
 * Tapes: a forward given a tape keeps what its backward needs in the tape
 * and hands back a record (and, for feature outputs, tensors) owned by the
 * tape; they stay valid until negcut_tape_reset, which starts the next step
 * and reuses the memory. A record or tape tensor used after that reset, in
 * the step it starts, is refused with NEGCUT_ERR_STATE; one kept for two
 * resets or more may name a newer handle of the tape (and after
 * negcut_tape_free, like any freed handle, it must not be used at all). A forward without a tape (NULL) is
 * inference: no record, less memory.
 *
 * Backward ASSIGNS activation gradients (dx) and ADDS into the network's
 * parameter gradients, unless negcut_net_set_requires_grad(net, 0) froze it.
 * One network may run several times in a step, each run with its own record.
 *
 * Parameters are named as in the reference PyTorch state_dicts
 * ("model.1.weight", "mlp_0.2.bias"); the blur filters ("model.7.filt") are
 * fixed buffers and have no gradient.
 *
 * Threads: a context, and everything made from it, is used by one thread at
 * a time.
 */
#ifndef NEGCUT_NETS_H
#define NEGCUT_NETS_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- tensors */
typedef struct negcut_tensor negcut_tensor;

NEGCUT_API negcut_status negcut_tensor_create(negcut_tensor **out, negcut_ctx *ctx, int32_t ndim,
                                              const int64_t *shape);
NEGCUT_API void negcut_tensor_free(negcut_tensor *t);
NEGCUT_API int32_t negcut_tensor_ndim(const negcut_tensor *t);
NEGCUT_API int64_t negcut_tensor_dim(const negcut_tensor *t, int32_t i);
NEGCUT_API int64_t negcut_tensor_numel(const negcut_tensor *t);
/* count must equal the tensor's element count. */
NEGCUT_API negcut_status negcut_tensor_write(negcut_tensor *t, const float *src, size_t count);
NEGCUT_API negcut_status negcut_tensor_read(const negcut_tensor *t, float *dst, size_t count);
NEGCUT_API negcut_status negcut_tensor_fill(negcut_tensor *t, float value);
/* y = alpha * x + beta * y (beta 0: y's old content is ignored), one shape:
 * how gradients from two uses of a tensor are added. */
NEGCUT_API negcut_status negcut_tensor_axpby(float alpha, const negcut_tensor *x, float beta,
                                             negcut_tensor *y);

/* ------------------------------------------------------------------ tapes */
typedef struct negcut_tape negcut_tape;
typedef struct negcut_record negcut_record; /* owned by its tape */

NEGCUT_API negcut_status negcut_tape_create(negcut_tape **out, negcut_ctx *ctx);
/* Forgets every record and tensor the tape handed out; keeps the memory. */
NEGCUT_API negcut_status negcut_tape_reset(negcut_tape *tape);
NEGCUT_API void negcut_tape_free(negcut_tape *tape);
/* A tensor owned by the tape (valid until negcut_tape_reset; not to be
 * passed to negcut_tensor_free); its content is undefined until written. */
NEGCUT_API negcut_status negcut_tape_tensor(negcut_tensor **out, negcut_tape *tape, int32_t ndim,
                                            const int64_t *shape);
/* Items [first, first + count) of t along dim 0 (images of a batch), sharing
 * t's memory: a tape-owned view, valid while both the tape (until reset) and
 * t live. */
NEGCUT_API negcut_status negcut_tensor_slice(negcut_tensor **out, negcut_tape *tape,
                                             const negcut_tensor *t, int64_t first, int64_t count);

/* --------------------------------------------------------------- networks */
typedef struct negcut_net negcut_net;

#define NEGCUT_GENERATOR_OPTIONS_VERSION 1
typedef struct negcut_generator_options {
  uint32_t version;
  int32_t input_nc, output_nc; /* 3, 3 */
  int32_t ngf;                 /* 64 */
  int32_t n_blocks;            /* 9 (resnet_9blocks) or 6 */
  int32_t no_antialias;        /* 0: blur-pool downsampling */
  int32_t no_antialias_up;     /* 0: blur upsampling */
  uint32_t init_id;            /* distinguishes the weight draws of nets; 0: 1 */
  float init_gain;             /* xavier-normal gain; 0: 0.02; else finite, above 0 */
} negcut_generator_options;
#define NEGCUT_GENERATOR_OPTIONS_INIT { NEGCUT_GENERATOR_OPTIONS_VERSION, 3, 3, 64, 9, 0, 0, 0, 0.0f }

#define NEGCUT_DISCRIMINATOR_OPTIONS_VERSION 1
typedef struct negcut_discriminator_options {
  uint32_t version;
  int32_t input_nc; /* 3 */
  int32_t ndf;      /* 64 */
  int32_t n_layers; /* 3 (PatchGAN) */
  int32_t no_antialias;
  uint32_t init_id; /* 0: 2 */
  float init_gain;  /* 0: 0.02; else finite, above 0 */
} negcut_discriminator_options;
#define NEGCUT_DISCRIMINATOR_OPTIONS_INIT { NEGCUT_DISCRIMINATOR_OPTIONS_VERSION, 3, 64, 3, 0, 0, 0.0f }

#define NEGCUT_MAX_NCE_LAYERS 8
#define NEGCUT_HEAD_OPTIONS_VERSION 1
/* The projector (PatchSampleF) and the negative generator: one MLP per NCE
 * layer. The projector's layer l takes channels[l] inputs; the negative
 * generator's takes nc + z_dim. */
typedef struct negcut_head_options {
  uint32_t version;
  int32_t n_layers;                         /* 5 */
  int32_t channels[NEGCUT_MAX_NCE_LAYERS]; /* projector: 3, 128, 256, 256, 256 */
  int32_t nc;                               /* 256 */
  int32_t z_dim;                            /* negative generator: 64 */
  uint32_t init_id;                         /* 0: 3 (projector), 4 (negative generator) */
  float init_gain;                          /* 0: 0.02; else finite, above 0 */
} negcut_head_options;
#define NEGCUT_HEAD_OPTIONS_INIT \
  { NEGCUT_HEAD_OPTIONS_VERSION, 5, {3, 128, 256, 256, 256, 0, 0, 0}, 256, 64, 0, 0.0f }

NEGCUT_API negcut_status negcut_generator_options_init(negcut_generator_options *o);
NEGCUT_API negcut_status negcut_discriminator_options_init(negcut_discriminator_options *o);
NEGCUT_API negcut_status negcut_head_options_init(negcut_head_options *o);
/* The same for the struct of `version` (core.h, "Options structs"). */
NEGCUT_API negcut_status negcut_generator_options_init_v2(negcut_generator_options *o,
                                                          uint32_t version);
NEGCUT_API negcut_status negcut_discriminator_options_init_v2(negcut_discriminator_options *o,
                                                              uint32_t version);
NEGCUT_API negcut_status negcut_head_options_init_v2(negcut_head_options *o, uint32_t version);

/* Networks are initialised from the context's seed (xavier-normal, zero
 * biases), as the reference initialises them. opts may be NULL. */
NEGCUT_API negcut_status negcut_net_create_generator(negcut_net **out, negcut_ctx *ctx,
                                                     const negcut_generator_options *opts);
NEGCUT_API negcut_status negcut_net_create_discriminator(negcut_net **out, negcut_ctx *ctx,
                                                         const negcut_discriminator_options *opts);
NEGCUT_API negcut_status negcut_net_create_projector(negcut_net **out, negcut_ctx *ctx,
                                                     const negcut_head_options *opts);
NEGCUT_API negcut_status negcut_net_create_neggen(negcut_net **out, negcut_ctx *ctx,
                                                  const negcut_head_options *opts);
NEGCUT_API void negcut_net_free(negcut_net *net);

/* Parameters (buffers included), in state_dict order. */
NEGCUT_API int32_t negcut_net_param_count(const negcut_net *net);
NEGCUT_API const char *negcut_net_param_name(const negcut_net *net, int32_t i);
/* Writes up to 4 dims into shape and returns ndim (0 for a bad index). */
NEGCUT_API int32_t negcut_net_param_shape(const negcut_net *net, int32_t i, int64_t shape[4]);
/* 1 for a fixed buffer (no gradient, not trained). */
NEGCUT_API int32_t negcut_net_param_is_buffer(const negcut_net *net, int32_t i);
NEGCUT_API negcut_status negcut_net_param_read(const negcut_net *net, int32_t i, float *dst,
                                               size_t count);
NEGCUT_API negcut_status negcut_net_param_write(negcut_net *net, int32_t i, const float *src,
                                                size_t count);
NEGCUT_API negcut_status negcut_net_grad_read(const negcut_net *net, int32_t i, float *dst,
                                              size_t count);
NEGCUT_API negcut_status negcut_net_zero_grad(negcut_net *net);
/* 0 freezes the parameters: backward still gives input gradients. */
NEGCUT_API negcut_status negcut_net_set_requires_grad(negcut_net *net, int32_t on);
/* Checkpoints: safetensors with the reference's names (see translate.h). A
 * file with a tensor missing, extra, of another shape, or holding a NaN or
 * infinite value is refused before anything is loaded. */
NEGCUT_API negcut_status negcut_net_save(const negcut_net *net, const char *path);
NEGCUT_API negcut_status negcut_net_load(negcut_net *net, const char *path);

/* Generator and discriminator: y = net(x). x (N, C, H, W); y must have the
 * output shape (negcut_net_output_shape). */
NEGCUT_API negcut_status negcut_net_output_shape(const negcut_net *net, const int64_t in[4],
                                                 int64_t out[4]);
/* The shape of module `module`'s output (an encoder feature) for input in:
 * the projector's input widths and the range of its patch ids. */
NEGCUT_API negcut_status negcut_net_feature_shape(const negcut_net *net, const int64_t in[4],
                                                  int32_t module, int64_t out[4]);
NEGCUT_API negcut_status negcut_net_forward(negcut_net *net, negcut_tape *tape,
                                            const negcut_tensor *x, negcut_tensor *y,
                                            negcut_record **rec);
/* The generator's encoder pass (REFERENCE.md 1): runs up to the last of
 * layers (module indices in increasing order, e.g. 0, 4, 8, 12, 16) and
 * returns those modules' outputs in feats[0..n) (tensors owned by the tape). */
NEGCUT_API negcut_status negcut_net_encode(negcut_net *net, negcut_tape *tape,
                                           const negcut_tensor *x, int32_t n,
                                           const int32_t *layers, negcut_tensor **feats,
                                           negcut_record **rec);
/* Backward of a forward or encode record: dy at the output (NULL for an
 * encode), dfeats[i] at the encode's features (n = 0 / NULL for a forward;
 * an entry may be NULL), dx at the input (NULL if not wanted). */
NEGCUT_API negcut_status negcut_net_backward(negcut_net *net, const negcut_record *rec,
                                             const negcut_tensor *dy, int32_t n,
                                             const negcut_tensor *const *dfeats,
                                             negcut_tensor *dx);

/* Projector layer l on a feature (B, C, H, W): the rows at positions ids
 * (h * W + w, n_ids of them, 1 to H * W, the same for every image), or every position
 * when ids is NULL, through mlp_<l> and L2 normalisation: *out (B * n, nc),
 * owned by the tape. */
NEGCUT_API negcut_status negcut_projector_forward(negcut_net *net, negcut_tape *tape, int32_t l,
                                                  const negcut_tensor *feat, const int64_t *ids,
                                                  int64_t n_ids, negcut_tensor **out,
                                                  negcut_record **rec);
/* dfeat (the feature's shape) is assigned; may be NULL. */
NEGCUT_API negcut_status negcut_projector_backward(negcut_net *net, const negcut_record *rec,
                                                   const negcut_tensor *dy, negcut_tensor *dfeat);
/* Negative generator layer l: h_all (B * P, nc) all-position projections of
 * B images, z (B * S, z_dim) noise: *out (B * S, nc) negatives. */
NEGCUT_API negcut_status negcut_neggen_forward(negcut_net *net, negcut_tape *tape, int32_t l,
                                               const negcut_tensor *h_all, int64_t batch,
                                               const negcut_tensor *z, negcut_tensor **out,
                                               negcut_record **rec);
NEGCUT_API negcut_status negcut_neggen_backward(negcut_net *net, const negcut_record *rec,
                                                const negcut_tensor *dy, negcut_tensor *dh_all);

#ifdef __cplusplus
}
#endif
#endif
