/*
 * Training (DESIGN.md level 2): a trainer made from options with the
 * reference defaults (REFERENCE.md 6, 7), stepped by the caller or run to
 * the end with a progress callback, with checkpoints and exact resume.
 *
 *   negcut_trainer_options o;
 *   negcut_trainer_options_init_v2(&o, NEGCUT_TRAINER_OPTIONS_VERSION, NEGCUT_MODE_CUT);
 *   o.dataroot = "datasets/horse2zebra";          // trainA/ and trainB/
 *   negcut_trainer_create(&t, ctx, &o);
 *   negcut_trainer_run(t, 0, progress, user);     // to the end of the schedule
 *   negcut_trainer_save_network(t, NEGCUT_NET_G, "latest_net_G.safetensors");
 *
 * Resume: negcut_trainer_save_state writes every network, the optimiser
 * moments, the schedule position, the data position and the random
 * generators' counters to one file, atomically; negcut_trainer_load_state on
 * a trainer made with the same options continues exactly: on the CPU backend
 * with the same thread count the parameters are bit-identical to an
 * uninterrupted run.
 *
 * Threads: a trainer is used by one thread at a time (data decoding runs in
 * a background thread of its own).
 */
#ifndef NEGCUT_TRAIN_H
#define NEGCUT_TRAIN_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t negcut_train_mode;
#define NEGCUT_MODE_CUT 0
#define NEGCUT_MODE_FASTCUT 1
#define NEGCUT_MODE_NEGCUT 2
#define NEGCUT_MODE_FASTNEGCUT 3

/* The reference's --preprocess. SCALE_WIDTH and NONE keep each image's
 * aspect (NONE its size, rounded to multiples of 4): an A image must then
 * come out the size of the B image drawn with it, since a step takes A and
 * B at one size; a pair that does not fails its step with
 * NEGCUT_ERR_UNSUPPORTED, naming both sizes. (The reference's Fast modes,
 * which never batch A with B, take such pairs; its CUT does not.) */
typedef int32_t negcut_preprocess;
#define NEGCUT_PREPROCESS_RESIZE_AND_CROP 0
#define NEGCUT_PREPROCESS_CROP 1
#define NEGCUT_PREPROCESS_SCALE_WIDTH 2
#define NEGCUT_PREPROCESS_SCALE_WIDTH_AND_CROP 3
#define NEGCUT_PREPROCESS_NONE 4

/* Data-parallel training (DESIGN.md "Beyond one machine"; docs/PARALLEL.md):
 * replaces count floats at data, in place, with their element-wise sum over
 * all ranks, and returns 0 (nonzero fails the step). data is in the
 * trainer's backend memory (device memory on the CUDA backend) and ready
 * when fn is called; the trainer reads it when fn returns, so the sum must be
 * complete by then. With MPI:
 *   MPI_Allreduce(MPI_IN_PLACE, data, (int)count, MPI_FLOAT, MPI_SUM, comm);
 * with NCCL: ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm, s)
 * followed by cudaStreamSynchronize(s). */
typedef int (*negcut_allreduce_fn)(float *data, size_t count, void *user);

/* Version 2 added eager, version 3 tf32, version 4 conv_algo; older structs
 * (without them) are still accepted and mean 0 for each. */
#define NEGCUT_TRAINER_OPTIONS_VERSION 4
typedef struct negcut_trainer_options {
  uint32_t version;
  negcut_train_mode mode;
  /* data: trainA/ and trainB/ under dataroot, or two folders (recursive,
   * PNG and JPEG); all NULL for a caller-supplied batch (step_batch) */
  const char *dataroot, *dir_a, *dir_b;
  /* architecture (reference defaults) */
  int32_t input_nc, output_nc; /* 3, 3; equal (the NCE loss encodes translations) */
  int32_t ngf, ndf;            /* 64, 64 */
  int32_t n_blocks;            /* 9 */
  int32_t n_layers_d;          /* 3 */
  int32_t no_antialias, no_antialias_up;
  int32_t n_nce_layers;        /* 5 */
  int32_t nce_layers[8];       /* 0, 4, 8, 12, 16 */
  int32_t num_patches;         /* 256 */
  int32_t netf_nc;             /* 256 */
  int32_t z_dim;               /* NEGCUT noise: 64 */
  /* losses */
  float nce_t;                 /* 0.07 */
  float lambda_gan;            /* 1 */
  float lambda_nce;            /* 1 (CUT, NEGCUT), 10 (Fast modes) */
  float lambda_ms_neg;         /* NEGCUT diversity: 1 */
  int32_t nce_idt;             /* 1 (CUT, NEGCUT), 0 (Fast modes) */
  int32_t flip_equivariance;   /* 0, 1 (Fast modes) */
  int32_t gan_vanilla;         /* 0: LSGAN; 1: vanilla (BCE) */
  /* optimisation */
  double lr, beta1, beta2;     /* 2e-4, 0.5, 0.999 */
  int32_t n_epochs, n_epochs_decay; /* 200 + 200, (150 + 50 Fast modes) */
  int32_t batch_size;          /* 1 */
  /* preprocessing */
  int32_t load_size, crop_size; /* 286, 256 */
  negcut_preprocess preprocess;
  int32_t no_flip;
  int32_t prefetch;            /* batches decoded ahead; 0: 2 */
  /* The reference's quirks (REFERENCE.md 7) are the default; 1 turns each off. */
  int32_t detach_negatives;    /* detach NEGCUT's negatives in G's loss */
  int32_t ema_from_f;          /* start F_ as a copy of F */
  int32_t diversity_all_calls; /* diversity over every NCE call, not the last */
  /* execution */
  int32_t eager;               /* 1: never replay a recorded CUDA graph of the step (on a
                                  GPU a step is otherwise recorded once per image size and
                                  flip state, and replayed from then on: the same results) */
  int32_t tf32;                /* 1: on a GPU, the convolutions (forward and backward, every
                                  network) may round their fp32 inputs to TF32 on tensor
                                  cores, as PyTorch does by default since Ampere; products
                                  keep about 10 mantissa bits. 0 (default): exact fp32.
                                  Matrix products stay fp32 (PyTorch's default too). The
                                  CPU backends ignore it. */
  negcut_conv_algo conv_algo;  /* NEGCUT_CONV_AUTO (default) or NEGCUT_CONV_WINOGRAD:
                                  Winograd in every pass where it gains (a step's
                                  gradients within 2e-3 of PyTorch's in L2, as direct);
                                  on CUDA AUTO keeps cuDNN's transform algorithms out of
                                  the forward passes until measured on a GPU.
                                  NEGCUT_CONV_DIRECT: none, PyTorch's CPU arithmetic.
                                  docs/SPEED.md has the numbers. */
} negcut_trainer_options;

/* The reference defaults of mode (CUT, FastCUT, NEGCUT, FastNEGCUT), in a
 * version 4 struct; _v2 in the struct of `version` (core.h, "Options
 * structs"). */
NEGCUT_API negcut_status negcut_trainer_options_init(negcut_trainer_options *o,
                                                     negcut_train_mode mode);
NEGCUT_API negcut_status negcut_trainer_options_init_v2(negcut_trainer_options *o,
                                                        uint32_t version,
                                                        negcut_train_mode mode);

typedef struct negcut_trainer negcut_trainer;

NEGCUT_API negcut_status negcut_trainer_create(negcut_trainer **out, negcut_ctx *ctx,
                                               const negcut_trainer_options *opts);
NEGCUT_API void negcut_trainer_free(negcut_trainer *t);

/* Data parallelism: makes t rank `rank` (0..world-1) of `world` trainers
 * (world 1: alone), made with the same options and context seed, each in
 * its own process or on its own device, which then train together as one
 * trainer with batch_size * world would: each reads its share of every batch
 * from the data folders (or is given it, with step_batch), draws its share
 * of NEGCUT's noise and the same patch ids, and before every optimiser
 * update hands each network's gradients to allreduce (not NULL when world >
 * 1), then divides the sums by world. The ranks' parameters stay identical
 * as long as allreduce gives every rank the same bits. The losses and
 * images_per_second a trainer reports are its own share's. CUDA graphs are
 * not recorded (allreduce runs on the host between the passes).
 * A failed step leaves the other ranks waiting in allreduce, and the
 * trainer partly updated: stop every rank (MPI_Abort), or reload a saved
 * state on every rank. Call after negcut_trainer_create, before the first
 * step and before negcut_trainer_load_state (a state records world); later
 * calls give NEGCUT_ERR_STATE. */
NEGCUT_API negcut_status negcut_trainer_set_data_parallel(negcut_trainer *t, int32_t rank,
                                                          int32_t world,
                                                          negcut_allreduce_fn allreduce,
                                                          void *user);

/* A flag of negcut_trainer_set_data_parallel_v2: allreduce is given host
 * memory on every backend. On the CUDA backend the trainer copies each
 * network's gradients to a host buffer of its own before allreduce and back
 * after it, for an allreduce that cannot read device memory (an MPI that is
 * not CUDA-aware). It costs two copies of the gradients (G's are 45 MB at
 * ngf 64) per iteration over PCIe, and a host buffer as large as the
 * largest network's gradients. On the host backends (ref, cpu) it changes
 * nothing. */
#define NEGCUT_ALLREDUCE_HOST 1u

/* negcut_trainer_set_data_parallel with flags (0, or NEGCUT_ALLREDUCE_HOST);
 * flags 0 is negcut_trainer_set_data_parallel. Unknown flags give
 * NEGCUT_ERR_INVALID_ARGUMENT. */
NEGCUT_API negcut_status negcut_trainer_set_data_parallel_v2(negcut_trainer *t, int32_t rank,
                                                             int32_t world,
                                                             negcut_allreduce_fn allreduce,
                                                             void *user, uint32_t flags);

/* One iteration on the next batch of the data folders. */
NEGCUT_API negcut_status negcut_trainer_step(negcut_trainer *t);
/* One iteration on a caller's batch: real_a, real_b (batch_size, input_nc,
 * height, width) floats in [-1, 1] (a value beyond, by more than 1e-3 of
 * rounding, or NaN is refused: NEGCUT_ERR_INVALID_ARGUMENT), height and
 * width multiples of 4, at most 65536. The epoch does not advance. */
NEGCUT_API negcut_status negcut_trainer_step_batch(negcut_trainer *t, const float *real_a,
                                                   const float *real_b, uint32_t height,
                                                   uint32_t width);

/* For caller-supplied batches (step_batch): the 1-based epoch whose
 * learning rate the next iterations use (the `linear` policy), at most
 * n_epochs + n_epochs_decay; with data folders the epoch follows the data. */
NEGCUT_API negcut_status negcut_trainer_set_epoch(negcut_trainer *t, int64_t epoch);

typedef struct negcut_train_progress {
  int64_t iteration;        /* iterations done */
  int64_t total_iterations; /* of the whole schedule; 0 without data folders */
  int64_t epoch;            /* 1-based epoch of the NEXT iteration */
  int64_t iterations_per_epoch;
  double lr;                /* the learning rate of the next iteration */
  double images_per_second; /* over the last run call */
  /* losses of the last iteration */
  float d_real, d_fake, g_gan, nce_x, nce_y, g_total, n_total, diversity;
} negcut_train_progress;

NEGCUT_API negcut_status negcut_trainer_progress(const negcut_trainer *t,
                                                 negcut_train_progress *p);

/* Called after every iteration; a non-zero return stops the run, which then
 * returns NEGCUT_ERR_CANCELLED. */
typedef int (*negcut_progress_fn)(const negcut_train_progress *p, void *user);

/* Runs iterations more iterations (0: to the end of the schedule). */
NEGCUT_API negcut_status negcut_trainer_run(negcut_trainer *t, int64_t iterations,
                                            negcut_progress_fn progress, void *user);

typedef int32_t negcut_net_id;
#define NEGCUT_NET_G 0
#define NEGCUT_NET_D 1
#define NEGCUT_NET_F 2
#define NEGCUT_NET_N 3  /* NEGCUT only */
#define NEGCUT_NET_F_ 4 /* NEGCUT only: the EMA projector */

/* One network as a checkpoint with the reference's names (for G, the file
 * negcut-translate and negcut_model_load read). Atomic. */
NEGCUT_API negcut_status negcut_trainer_save_network(const negcut_trainer *t, negcut_net_id id,
                                                     const char *path);
/* The complete training state, atomically; and back. A file that does not
 * fit this trainer (other options, a tensor missing or of another size, a
 * counter or data position out of range) is refused before anything is
 * loaded, leaving the trainer as it was. */
NEGCUT_API negcut_status negcut_trainer_save_state(const negcut_trainer *t, const char *path);
NEGCUT_API negcut_status negcut_trainer_load_state(negcut_trainer *t, const char *path);

/* The last iteration's first image of real_A, fake_B, real_B and idt_B
 * (zeros without identity) as RGB8 (width * height * channels bytes each,
 * rows packed); *width, *height receive the size. Any buffer may be NULL to
 * ask for the size only. */
NEGCUT_API negcut_status negcut_trainer_visuals(const negcut_trainer *t, uint32_t *width,
                                                uint32_t *height, uint8_t *real_a,
                                                uint8_t *fake_b, uint8_t *real_b,
                                                uint8_t *idt_b);

#ifdef __cplusplus
}
#endif
#endif
