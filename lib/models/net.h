/*
 * Networks: parameters with the reference's state_dict names, a sequential
 * executor for the generator and the discriminator, and the two-layer MLP
 * heads of the projector (PatchSampleF) and the negative generator.
 *
 * Forward and backward run on the tape's context (its backend and its error
 * slot), not the context the net was made with, so several threads may run
 * one net read-only, each with its own context and tape.
 *
 * Every forward that may be backpropagated writes a record into a tape (its
 * activations live in the tape's device arena, its bookkeeping in the tape's
 * host arena), so one network can run several times in a step and each run
 * can be backpropagated (DESIGN.md "Backward"). Backward ASSIGNS activation
 * gradients and ACCUMULATES parameter gradients, and skips the parameter
 * gradients of a network whose requires_grad is 0.
 */
#ifndef NGC_NET_H
#define NGC_NET_H

#include "backend/backend.h"
#include "core/arena.h"
#include "ops/ops.h"

#define NGC_NAME_MAX 64
#define NGC_MAX_NCE_LAYERS 8

typedef enum ngc_net_kind {
  NGC_NET_GENERATOR = 1,
  NGC_NET_DISCRIMINATOR = 2,
  NGC_NET_PROJECTOR = 3,
  NGC_NET_NEGGEN = 4
} ngc_net_kind;

typedef struct ngc_param {
  char name[NGC_NAME_MAX]; /* "model.12.conv_block.1.weight", "mlp_0.2.bias" */
  ngc_tensor value;        /* on ctx->be */
  ngc_tensor grad;         /* same shape; no data for buffers */
  int32_t buffer;          /* a fixed buffer (blur `filt`): no gradient */
  int64_t offset;          /* floats from the start of the net's value slab */
} ngc_param;

typedef enum ngc_layer_kind {
  NGC_L_PAD,
  NGC_L_CONV,
  NGC_L_CONVT,
  NGC_L_INORM,
  NGC_L_ACT,
  NGC_L_DOWN,
  NGC_L_UP,
  NGC_L_ADD /* out = in + acts[skip] (the ResNet block's shortcut) */
} ngc_layer_kind;

/* One step of a sequential net. Activation 0 is the input; layer i reads
 * activation i and writes activation i + 1. */
typedef struct ngc_layer {
  ngc_layer_kind kind;
  int32_t module; /* index in `model` whose output this is, or -1 */
  ngc_pad_mode pad_mode;
  int32_t pad;
  ngc_conv_params cp;
  int32_t w, b; /* parameter indices, -1 for none */
  ngc_act act;
  float alpha;
  int32_t skip; /* NGC_L_ADD: activation index of the shortcut */
  int32_t c_out;
} ngc_layer;

typedef struct ngc_net {
  negcut_ctx *ctx;
  ngc_net_kind kind;
  ngc_param *params;
  int32_t n_params, cap_params;
  int32_t requires_grad;
  /* sequential nets (generator, discriminator) */
  ngc_layer *layers;
  int32_t n_layers, cap_layers;
  int32_t n_modules;
  int32_t in_nc;
  /* MLP heads (projector, negative generator): one per NCE layer */
  int32_t n_mlp;
  int32_t mlp_in[NGC_MAX_NCE_LAYERS]; /* input width of mlp_<l>.0 */
  int32_t mlp_w0[NGC_MAX_NCE_LAYERS]; /* parameter index of mlp_<l>.0.weight */
  int32_t nc, z_dim;
  /* Parameter storage (ngc_net_alloc_params): one slab of values, trainable
   * parameters first, then buffers, and one slab of gradients; every
   * parameter views its place, at an offset rounded up to NGC_PARAM_ALIGN
   * floats. The gaps are zero and stay zero under the EMA and under Adam
   * with eps > 0 (with eps 0 a zero gradient gives 0/0, in a gap as in a
   * parameter), so an optimiser updates a whole net with one op over
   * `trained` / `grads`. A net frozen before the allocation has no `grads`. */
  ngc_tensor slab;         /* owns the values */
  ngc_tensor trained;      /* 1-D view of the trainable span of slab */
  ngc_tensor grads;        /* 1-D, owns the gradients; same length as trained */
} ngc_net;

/* Offsets of parameters in the slabs are multiples of this many floats
 * (256 bytes, cudaMalloc's alignment). */
#define NGC_PARAM_ALIGN 64

/* Per-step scratch: device arena for activations, host arena for records. */
#define NGC_WINOGRAD_FWD 1u /* forward passes */
#define NGC_WINOGRAD_BWD 2u /* backward-data and backward-weights passes */
/* Forward passes may take the larger scratch bound of
 * NGC_CONV_TRANSFORM_ROOMY: a translator, which holds little else. */
#define NGC_WINOGRAD_ROOMY 4u

typedef struct ngc_tape {
  negcut_ctx *ctx;
  int32_t bf16; /* inference convolutions may run in bfloat16 */
  int32_t tf32; /* convolutions (forward and backward) may round fp32 products to TF32 */
  uint32_t winograd; /* NGC_WINOGRAD_* bits: the passes whose convolutions may use a
                        transform algorithm (ngc_conv_params.winograd); 0: none */
  ngc_arena dev;
  ngc_arena host;
  /* Scratch for one forward or backward call at a time (rotating buffers),
   * reused by the next call; grows, then stays. */
  void *scratch;
  size_t scratch_bytes;
  /* Scalars (loss values) are handed out side by side from one block of
   * the arena, so that a step reads them with one download. */
  float *scalars;
  int32_t n_scalars;
  /* Optional: a bfloat16 copy of w_bf16_net's value slab (same offsets),
   * which bf16 convolutions of that net read instead of rounding their
   * weights at every call. Owned by whoever sets it (the translator). */
  const uint16_t *w_bf16;
  const ngc_net *w_bf16_net;
  /* Optional: where the convolutions of w_store_net's forward passes may
   * keep their weights prepared (ngc_conv_params.w_store), for a net whose
   * weights do not change while it is set. Owned by whoever sets it (the
   * translator). */
  ngc_wstore *w_store;
  const ngc_net *w_store_net;
} ngc_tape;

#define NGC_TAPE_SCALARS 64

negcut_status ngc_tape_init(ngc_tape *tape, negcut_ctx *ctx);
negcut_status ngc_tape_reset(ngc_tape *tape);
void ngc_tape_free(ngc_tape *tape);
/* Frees the tape's memory (arenas and scratch) and leaves it ready to use
 * again, with its settings; what it handed out becomes invalid. */
void ngc_tape_release(ngc_tape *tape);
/* The backend and host memory the tape holds now. */
size_t ngc_tape_held_bytes(const ngc_tape *tape);
/* A device tensor from the tape. */
negcut_status ngc_tape_tensor(ngc_tape *tape, ngc_tensor *t, int32_t ndim,
                              const int64_t *dim);
/* A (1) device tensor from the tape's block of scalars. */
negcut_status ngc_tape_scalar(ngc_tape *tape, ngc_tensor *t);
/* *dst[i] = the value of the (1) tensor src[i], for i < n: one download
 * for those in the current block of scalars, one each for any other. */
negcut_status ngc_tape_read_scalars(ngc_tape *tape, int32_t n, const ngc_tensor *src,
                                    float *const *dst);
/* A device tensor from the tape with like's dims and layout. */
negcut_status ngc_tape_tensor_like(ngc_tape *tape, ngc_tensor *t, const ngc_tensor *like);
/* The tape's scratch, at least bytes long; its content is not kept from
 * one call to the next. NULL when out of memory. */
void *ngc_tape_scratch(ngc_tape *tape, size_t bytes);
/* Host memory from the tape (zeroed). */
void *ngc_tape_host(ngc_tape *tape, size_t bytes);

/* ------------------------------------------------ graphs of tape runs
 * On a backend that records graphs (CUDA), a run of ops on a tape (the
 * translator's generator, a training step) can be recorded and replayed
 * with one launch: valid as long as every address the run touches is the
 * same, which on a tape is the case when the caller's inputs have the same
 * shape and the tape has not grown (its arena made no new block and its
 * scratch did not move). graph_cache.c; used by lib/infer and lib/train. */
typedef struct ngc_graph_key {
  int64_t shape[4];      /* what else the caller's run depends on */
  const void *scratch;   /* the tape's state */
  size_t scratch_bytes;
  uint64_t arena_blocks;
} ngc_graph_key;

/* Enough for every tile shape of a tiled translation (first, middle and
 * last row and column: 9) with room to spare; a recording holds little
 * besides its cuDNN workspace, sized to its own plans. */
#define NGC_GRAPH_SLOTS 12

typedef struct ngc_graph_cache {
  struct {
    ngc_graph_key key;
    void *graph;   /* NULL: seen once, recorded when seen again */
    uint64_t used; /* the run that used it last (the oldest is evicted) */
  } slot[NGC_GRAPH_SLOTS];
  uint64_t runs;
  int32_t off;                     /* a recording or replay failed: no more graphs */
  int32_t fault;                   /* tests: refuse the next replay, as if it differed */
  char why[256];                   /* why (for tests and benchmarks) */
  uint64_t n_recorded, n_replayed; /* statistics, for tests and benchmarks */
} ngc_graph_cache;

/* The key of a run described by shape on tape (compared with memcmp). */
void ngc_graph_key_of(const ngc_tape *tape, const int64_t shape[4], ngc_graph_key *k);
/* What to do with the run of key: NGC_GRAPH_RUN (unrecorded: graphs are off,
 * or the key is new), NGC_GRAPH_RECORD (seen before) or NGC_GRAPH_REPLAY
 * (*graph is its recording). */
typedef enum ngc_graph_plan { NGC_GRAPH_RUN, NGC_GRAPH_RECORD, NGC_GRAPH_REPLAY } ngc_graph_plan;
ngc_graph_plan ngc_graph_lookup(ngc_graph_cache *gc, ngc_backend *be, const ngc_graph_key *k,
                                void **graph);
/* After an unrecorded run: remembers the key the tape has now (after: a
 * first run grows the tape), which the next run of the same shape finds. */
void ngc_graph_ran(ngc_graph_cache *gc, ngc_backend *be, const ngc_graph_key *after);
/* Records run(arg), a run of key k on tape, and keeps the recording:
 * NEGCUT_OK and *graph (to launch: the run itself only recorded work), or
 * the failure (a slot's, the recording's, or the run moved the tape), with
 * nothing kept. feeds: whether the run may hand host data to the device
 * (graph_begin): only if every launch follows a replay pass. */
negcut_status ngc_graph_record(ngc_graph_cache *gc, ngc_backend *be, const ngc_tape *tape,
                               const ngc_graph_key *k, int feeds,
                               negcut_status (*run)(const void *arg), const void *arg,
                               void **graph);
/* After a failed recording or replay: turns graphs off for good, frees the
 * recordings and moves the context's error message to gc->why. */
void ngc_graph_off(ngc_graph_cache *gc, negcut_ctx *ctx);
/* Frees the recordings and forgets their keys, for a tape about to be
 * released (ngc_tape_release: its next arena could repeat a key at other
 * addresses); graphs stay on or off, the statistics stay. */
void ngc_graph_forget(ngc_graph_cache *gc, ngc_backend *be);
void ngc_graph_cache_free(ngc_graph_cache *gc, ngc_backend *be);

/* ----------------------------------------------------------- net basics */
negcut_status ngc_net_init(ngc_net *net, negcut_ctx *ctx, ngc_net_kind kind);
void ngc_net_release(ngc_net *net);
/* Declares a parameter (buffer: fixed, no gradient); returns its index, or
 * < 0 with the reason on net->ctx. Its memory comes with
 * ngc_net_alloc_params. */
int32_t ngc_net_add_param(ngc_net *net, const char *name, int32_t ndim,
                          const int64_t *dim, int32_t buffer);
/* Once every parameter is declared: allocates the slabs, zeroed, and points
 * each parameter's value and gradient into them. A builder's last step.
 * A network whose requires_grad is already 0 gets no gradient slab (its
 * params' grad tensors stay empty) and cannot be unfrozen. */
negcut_status ngc_net_alloc_params(ngc_net *net);
int32_t ngc_net_find_param(const ngc_net *net, const char *name);
/* xavier_normal(gain) on every weight, zero biases, keyed by
 * (ctx seed, NGC_STREAM_INIT, init_id): REFERENCE.md 1 "Init". */
negcut_status ngc_net_init_weights(ngc_net *net, uint32_t init_id, float gain);
negcut_status ngc_net_zero_grad(ngc_net *net);
int64_t ngc_net_param_numel(const ngc_net *net);
/* Writes host values into parameter i / reads them back. */
negcut_status ngc_param_upload(ngc_net *net, int32_t i, const float *src);
negcut_status ngc_param_download(const ngc_net *net, int32_t i, float *dst, int grad);

/* ------------------------------------------------------ sequential nets */
typedef struct ngc_seq_rec {
  int32_t n_run;     /* layers executed */
  ngc_tensor *acts;  /* n_run + 1 activations; acts[0] views the input; the
                        ones not kept (data NULL) are recomputed by backward */
  ngc_tensor *mean;  /* per layer, set for NGC_L_INORM */
  ngc_tensor *rstd;
  /* per layer: for a norm, the bias of the convolution before it, which
   * that convolution left to the norm to add as it reads (its kept output
   * lacks it), else NULL */
  const ngc_tensor **norm_bias;
} ngc_seq_rec;

/* Index of the layer whose output is module m, or -1. */
int32_t ngc_seq_layer_of_module(const ngc_net *net, int32_t m);
/* Output shape of running the net on an (N, C, H, W) input up to module
 * last (-1: to the end). NEGCUT_ERR_SHAPE when a size becomes invalid. */
negcut_status ngc_seq_shape(negcut_ctx *ctx, const ngc_net *net, const int64_t in[4], int32_t last,
                            int64_t out[4]);
/* Elements of the largest activation when running on in (to the end). */
int64_t ngc_seq_peak_numel(const ngc_net *net, const int64_t in[4]);
/* Runs the net on x. With rec, every activation is kept in the tape for
 * backward; with rec NULL (inference) three rotating buffers are reused and
 * the convolutions may run in bfloat16 when tape->bf16 is set. Either way
 * they may round to TF32 when tape->tf32 is set.
 * last = -1 runs to the end and writes y (its shape must match); last >= 0
 * stops after that module (the encoder pass, REFERENCE.md 1), y may be
 * NULL, and the features are ngc_seq_module_act(net, rec, m). */
negcut_status ngc_seq_forward(ngc_net *net, ngc_tape *tape, const ngc_tensor *x,
                              int32_t last, ngc_seq_rec *rec, ngc_tensor *y);

/* Inference with the instance norms under the caller's control (the
 * translator's exact tiles, docs/TRANSLATE.md). Norm k (in the order they
 * run) for k < n_frozen normalises with given statistics: the per-channel
 * affine map x r_k + b_k, run as a 1x1 convolution with diagonal weights
 * w_k (C, C, 1, 1) and bias b_k (C) (backend memory), so every backend runs
 * it; its activation follows. Where measure is set, norm n_frozen does not
 * run: the mean and the sum of squared deviations of each channel of its
 * input over win (y0, y1, x0, x1 at the network input's resolution, each a
 * multiple of the norm's downscaling) go to mean and m2 (C each), count to
 * count, and the pass stops there (y untouched, may be NULL). Batch 1.
 *
 * With state, a pass resumes where an earlier one on the same input shape
 * stopped (state->layer >= 0; the input's data is then not read), and a
 * measuring pass keeps its own stopping point there when it fits in
 * state->cap floats, or else, inside a ResNet block, where the block began
 * (its input alone: the block's layers run again), when that fits and is
 * later than the point kept before (otherwise the earlier one stays): each
 * pass then runs only the layers between two norms (or since the block
 * began) instead of all before its norm. */
typedef struct ngc_norm_state {
  int32_t layer;          /* the layer to resume at; < 0: nothing kept, run from the input */
  int32_t norms;          /* norms before it */
  int32_t n_acts;         /* its input, and the open ResNet block's input (the shortcut's) */
  int32_t block_layer;    /* with 2 acts: that block's first layer and the norms before it */
  int32_t block_norms;
  int64_t input[4];       /* the pass's input it was kept from (a resumed pass checks) */
  int64_t dim[2][4];
  ngc_layout layout[2];
  float *data;            /* host memory (malloc): the activations, as the backend holds them */
  size_t cap, held;       /* the most floats it may hold; floats allocated */
} ngc_norm_state;
void ngc_norm_state_clear(ngc_norm_state *s); /* frees data; nothing kept */

typedef struct ngc_norm_ctl {
  int32_t n_frozen;
  const ngc_tensor *w, *b; /* n_frozen each */
  int32_t measure;
  int64_t win[4];
  double *mean, *m2;
  int64_t count;
  ngc_norm_state *state;  /* NULL: every pass from the input */
  int64_t kept[2], resumed; /* counts, added to: stopping points kept whole and as a
                               block's input; passes resumed */
} ngc_norm_ctl;
negcut_status ngc_seq_forward_ctl(ngc_net *net, ngc_tape *tape, const ngc_tensor *x,
                                  ngc_tensor *y, ngc_norm_ctl *ctl);
/* The instance norms of net in the order they run: their count, and the
 * channels of the first cap of them in channels. */
int32_t ngc_seq_norm_channels(const ngc_net *net, int64_t *channels, int32_t cap);
/* For planning exact tiles, an inference pass on an input of shape in:
 * the multiply-adds of the whole pass (0 when in is too small), and for
 * each of the first cap norms the floats an ngc_norm_state keeps there and
 * the multiply-adds before it (convolutions; every other layer counts one
 * per output value), and the same for the start of the ResNet block it is
 * in (block_numel 0: none). */
typedef struct ngc_norm_plan {
  int64_t state_numel, block_numel;
  double work_before, block_work;
} ngc_norm_plan;
double ngc_seq_norm_plan(const ngc_net *net, const int64_t in[4], ngc_norm_plan *plan, int32_t cap);
const ngc_tensor *ngc_seq_module_act(const ngc_net *net, const ngc_seq_rec *rec,
                                     int32_t m);
/* The encoder pass for taps[0..n_taps) (increasing module indices): runs
 * to the last tap, recording for backward; the features are
 * ngc_seq_module_act(net, rec, taps[i]). */
negcut_status ngc_seq_encode(ngc_net *net, ngc_tape *tape, const ngc_tensor *x, int32_t n_taps,
                             const int32_t *taps, ngc_seq_rec *rec);
/* The outputs of modules taps[0..n_taps) (increasing) without a record:
 * an inference pass up to the last tap that copies each tapped output into
 * feats[i] (tape tensors). For encoder passes nothing backpropagates into.
 * With ids (NULL: whole outputs), feats[i] holds only the rows at positions
 * ids[i][0..n_ids[i]) of each image, (B * n_ids[i], C), as a gather makes
 * them. */
negcut_status ngc_seq_features(ngc_net *net, ngc_tape *tape, const ngc_tensor *x, int32_t n_taps,
                               const int32_t *taps, const int64_t *const *ids,
                               const int64_t *n_ids, ngc_tensor *feats);
/* Backpropagates rec: dy at the output (NULL: none) plus dtaps[i] at the
 * outputs of modules taps[i]; writes dx (NULL: not wanted). */
negcut_status ngc_seq_backward(ngc_net *net, ngc_tape *tape, const ngc_seq_rec *rec,
                               const ngc_tensor *dy, int32_t n_taps,
                               const int32_t *taps, const ngc_tensor *dtaps,
                               ngc_tensor *dx);
/* A gradient at a tapped output (B, C, H, W): dense, or nonzero only at
 * positions ids[0..n_ids) (h * W + w) of every image, given as the rows
 * (B * n_ids, C) a gather at those ids produced (the PatchNCE queries): the
 * backward scatters them straight into its own buffer, and no dense
 * gradient of the feature is ever made. */
typedef struct ngc_tap_grad {
  const ngc_tensor *dense; /* or NULL, then: */
  const ngc_tensor *rows;
  const int64_t *ids;
  int64_t n_ids;
} ngc_tap_grad;
negcut_status ngc_seq_backward_taps(ngc_net *net, ngc_tape *tape, const ngc_seq_rec *rec,
                                    const ngc_tensor *dy, int32_t n_taps, const int32_t *taps,
                                    const ngc_tap_grad *g, ngc_tensor *dx);

/* ------------------------------------------------------------ builders */
typedef struct ngc_generator_cfg {
  int32_t input_nc, output_nc, ngf, n_blocks, no_antialias, no_antialias_up;
} ngc_generator_cfg;
typedef struct ngc_discriminator_cfg {
  int32_t input_nc, ndf, n_layers, no_antialias;
} ngc_discriminator_cfg;

/* The largest generator made from options or loaded from a file. */
#define NGC_GEN_MAX_NC 64
#define NGC_GEN_MAX_NGF 4096
#define NGC_GEN_MAX_BLOCKS 64
/* ... discriminator (its input_nc at most NGC_GEN_MAX_NC), and the heads'
 * widths (projector nc, the negative generator's z_dim). */
#define NGC_DISC_MAX_NDF 4096
#define NGC_DISC_MAX_LAYERS 8
#define NGC_HEAD_MAX_NC 65536

negcut_status ngc_generator_build(ngc_net *net, negcut_ctx *ctx,
                                  const ngc_generator_cfg *cfg);
/* ngc_generator_build in two steps, so that a loader can weigh a network
 * before committing memory to it: the layers and the parameters' names and
 * shapes (nothing is allocated for their values yet), then the parameters'
 * memory, with the blur filters filled in. */
negcut_status ngc_generator_layout(ngc_net *net, negcut_ctx *ctx,
                                   const ngc_generator_cfg *cfg);
negcut_status ngc_generator_alloc(ngc_net *net);
negcut_status ngc_discriminator_build(ngc_net *net, negcut_ctx *ctx,
                                      const ngc_discriminator_cfg *cfg);

/* ------------------------------------------------------------ MLP heads */
/* Linear(in, nc) - ReLU - Linear(nc, nc) - L2 normalise (eps 1e-7). */
typedef struct ngc_mlp_rec {
  ngc_tensor x, h, r, o, norm, y; /* (M, in), (M, nc) x4, (M) */
} ngc_mlp_rec;

/* Projector: mlp_<l> for each channel count. */
negcut_status ngc_projector_build(ngc_net *net, negcut_ctx *ctx, int32_t n_layers,
                                  const int32_t *channels, int32_t nc);
/* Negative generator: mlp_<l> of width nc + z_dim. */
negcut_status ngc_neggen_build(ngc_net *net, negcut_ctx *ctx, int32_t n_layers,
                               int32_t nc, int32_t z_dim);
negcut_status ngc_mlp_forward(ngc_net *net, int32_t l, ngc_tape *tape,
                              const ngc_tensor *x, ngc_mlp_rec *rec);
negcut_status ngc_mlp_backward(ngc_net *net, int32_t l, ngc_tape *tape,
                               const ngc_mlp_rec *rec, const ngc_tensor *dy,
                               ngc_tensor *dx);

/* Projector on one feature (B, C, H, W): rows at ids (n_ids of them), or
 * every position when ids is NULL (NEGCUT's netF_), through mlp_<l>; y is
 * (B * n, nc). */
typedef struct ngc_proj_rec {
  const ngc_tensor *feat;
  const int64_t *ids; /* the tape's copy */
  int64_t n_ids;
  ngc_mlp_rec mlp;
} ngc_proj_rec;
negcut_status ngc_projector_forward(ngc_net *net, int32_t l, ngc_tape *tape,
                                    const ngc_tensor *feat, const int64_t *ids,
                                    int64_t n_ids, ngc_proj_rec *rec);
negcut_status ngc_projector_backward(ngc_net *net, int32_t l, ngc_tape *tape,
                                     const ngc_proj_rec *rec, const ngc_tensor *dy,
                                     ngc_tensor *dfeat);
/* The projector on rows already gathered at ids (B * n_ids, C): what
 * ngc_projector_forward does after its gather. rec->feat is NULL. */
negcut_status ngc_projector_forward_rows(ngc_net *net, int32_t l, ngc_tape *tape,
                                         const ngc_tensor *rows, const int64_t *ids,
                                         int64_t n_ids, ngc_proj_rec *rec);
/* The same without the scatter: drows (B * n_ids, C), a tape tensor made
 * here, is the gradient at the gathered rows (positions rec->ids). */
negcut_status ngc_projector_backward_rows(ngc_net *net, int32_t l, ngc_tape *tape,
                                          const ngc_proj_rec *rec, const ngc_tensor *dy,
                                          ngc_tensor *drows);

/* Negative generator on one layer: h_all (B * P, nc) is the all-position
 * projector output of B images; z (B * S, z_dim) the noise. The mean over P
 * (not re-normalised) is repeated S times, concatenated with z, and goes
 * through mlp_<l>: y (B * S, nc). */
typedef struct ngc_neg_rec {
  int64_t batch, positions, count;
  ngc_tensor mean;  /* (B, nc, 1, 1), a view of the caller's mean */
  ngc_tensor cat;   /* (B * S, nc + z_dim) */
  const int64_t *zeros;
  ngc_mlp_rec mlp;
} ngc_neg_rec;
negcut_status ngc_neggen_forward(ngc_net *net, int32_t l, ngc_tape *tape,
                                 const ngc_tensor *h_all, int64_t batch,
                                 const ngc_tensor *z, ngc_neg_rec *rec);
negcut_status ngc_neggen_backward(ngc_net *net, int32_t l, ngc_tape *tape,
                                  const ngc_neg_rec *rec, const ngc_tensor *dy,
                                  ngc_tensor *dh_all);
/* The same from the per-image mean (B, nc) of the all-position projection;
 * backward gives dmean (B, nc) (NULL: parameter gradients only). */
negcut_status ngc_neggen_forward_mean(ngc_net *net, int32_t l, ngc_tape *tape,
                                      const ngc_tensor *mean, const ngc_tensor *z,
                                      ngc_neg_rec *rec);
negcut_status ngc_neggen_backward_mean(ngc_net *net, int32_t l, ngc_tape *tape,
                                       const ngc_neg_rec *rec, const ngc_tensor *dy,
                                       ngc_tensor *dmean);

/* NEGCUT's F_ path without keeping its rows: the mean over every position
 * of projector layer l's L2-normalised output, per image: feat (B, C, H, W)
 * -> mean (B, nc). Each image's rows live in the tape's scratch only; the
 * backward recomputes them and takes dmean (B, nc) to dfeat (assigned), and
 * to the parameters' gradients unless the net is frozen. */
negcut_status ngc_projector_mean_forward(ngc_net *net, int32_t l, ngc_tape *tape,
                                         const ngc_tensor *feat, ngc_tensor *mean);
negcut_status ngc_projector_mean_backward(ngc_net *net, int32_t l, ngc_tape *tape,
                                          const ngc_tensor *feat, const ngc_tensor *dmean,
                                          ngc_tensor *dfeat);

#endif
