/*
 * The unpaired training data pipeline (REFERENCE.md 6, "Epoch and batch",
 * "Data pairing", "Train preprocessing", "Fine-tune phase"): two folders of
 * PNG / JPEG images, A and B, read as the reference's UnalignedDataset reads
 * them, decoded and preprocessed ahead of use by a background thread.
 *
 *   ngc_data_cfg cfg = NGC_DATA_CFG_INIT;   // resize_and_crop 286 -> 256
 *   cfg.dir_a = "trainA"; cfg.dir_b = "trainB"; cfg.seed = 42;
 *   ngc_data *d = NULL;
 *   if (ngc_data_open(ctx, &cfg, &d) != NEGCUT_OK) ...
 *   float a[1 * 3 * 256 * 256], b[1 * 3 * 256 * 256];  // (N, C, H, W)
 *   int64_t h, w, epoch;
 *   ngc_data_next(d, a, b, 3 * 256 * 256, &h, &w, &epoch);
 *   ngc_data_close(d);
 *
 * Listing. Each folder is walked recursively (symbolic links followed, a
 * link back to a folder being walked is skipped); files ending in .png,
 * .jpg or .jpeg, any case, are taken, every other file is ignored. The
 * paths ("<dir>/<sub>/<name>", the folder as given without trailing '/')
 * are sorted bytewise, which is the reference's sorted(make_dataset(dir))
 * order. A folder that is missing, cannot be read or holds no image is
 * refused at open with a message naming it.
 *
 * Epochs. An epoch is size = max(|A|, |B|) items in floor(size / batch)
 * batches (drop_last); with data parallelism (cfg.world > 1), in
 * floor(size / (batch * world)) global batches, of which each rank reads its
 * share, so that the ranks together read what one instance with batch
 * batch * world would. Item p of epoch e reads A[perm_e[p] % |A|], perm_e a
 * random permutation of 0..size-1, and B[below(|B|)], B drawn at random for
 * each item; A and B each get their own crop position and flip.
 *
 * Preprocessing of one image (the reference's get_transform, in its order):
 *   gray (channels 1): RGB -> L as PIL converts, before anything else.
 *   resize_and_crop       bicubic resize to L x L (aspect ignored), crop C
 *   crop                  crop C from the image as it is
 *   scale_width           width -> L, height -> int(max(L * h / w, C))
 *                         (unchanged when the width is L and height >= C)
 *   scale_width_and_crop  that, then crop C
 *   none                  nothing
 *   then every mode: both sides to round(side / 4) * 4 (Python's round,
 *   half to even) with bicubic when that changes them; horizontal flip with
 *   p = 0.5 unless no_flip; x / 255, then (x - 0.5) / 0.5, in float32.
 * L is load_size, or crop_size in the fine-tune phase; C is crop_size; crops
 * are uniform over all positions. Bicubic is PIL's Image.resize(BICUBIC)
 * (ngc_resize_bicubic below), bit for bit. An image smaller than C in a
 * cropping mode, or one that would round to 0 pixels, is refused when it is
 * read, naming the file.
 *
 * Randomness: every draw is a pure function of (seed, epoch, item), so a
 * batch does not depend on prefetching, timing or where a run was resumed.
 * Stream NGC_STREAM_DATA, in blocks (core/philox.h):
 *   epoch e's permutation  ngc_philox_randperm from block e << 40
 *   item p of epoch e      base = (e << 40) | (1 << 39) | (p << 5); draw k
 *                          (0 B index, 1 A crop x, 2 A crop y, 3 A flip,
 *                          4 B crop x, 5 B crop y, 6 B flip) starts at
 *                          block base + 4k: ngc_philox_below for indices
 *                          and crops, uniform word 0 < 0.5 for a flip.
 * Hence epoch < 2^24 and size < 2^32.
 *
 * Threads. ngc_data_open starts one worker thread, which keeps up to
 * `prefetch` batches decoded ahead; ngc_data_close stops and joins it. An
 * ngc_data is used by one thread at a time (the worker is internal). Errors
 * the worker meets (a corrupt image, an image too small) come back from the
 * ngc_data_next that would have returned that batch, with the file's name,
 * and again from every later call until ngc_data_set_state or
 * ngc_data_set_finetune repositions.
 */
#ifndef NGC_TRAIN_DATA_H
#define NGC_TRAIN_DATA_H

#include <stdint.h>

#include "core/core.h"

typedef enum ngc_preprocess {
  NGC_PRE_RESIZE_AND_CROP = 0,
  NGC_PRE_CROP = 1,
  NGC_PRE_SCALE_WIDTH = 2,
  NGC_PRE_SCALE_WIDTH_AND_CROP = 3,
  NGC_PRE_NONE = 4
} ngc_preprocess;

typedef struct ngc_data_cfg {
  const char *dir_a, *dir_b; /* copied at open */
  int32_t batch;             /* >= 1; 1 only for none and scale_width */
  int32_t load_size, crop_size;
  ngc_preprocess preprocess;
  int32_t no_flip;
  int32_t channels; /* 3, or 1: gray */
  uint64_t seed;
  int32_t prefetch; /* batches decoded ahead, >= 1; 0: 2 */
  /* Data parallelism: this instance is rank `rank` of `world` (>= 1), each
   * reading `batch` items of every global batch of batch * world items:
   * items [index + rank * batch, index + (rank + 1) * batch) of its epoch. */
  int32_t rank, world;
} ngc_data_cfg;

/* The reference's defaults: batch 1, 286 -> 256, resize_and_crop, flips. */
#define NGC_DATA_CFG_INIT                                                      \
  { NULL, NULL, 1, 286, 256, NGC_PRE_RESIZE_AND_CROP, 0, 3, 0u, 2, 0, 1 }

typedef struct ngc_data ngc_data;

/* Lists both folders and starts the worker. Errors: NEGCUT_ERR_INVALID_ARGUMENT
 * (bad option, empty folder, fewer items than a batch), NEGCUT_ERR_IO
 * (missing or unreadable folder), NEGCUT_ERR_OUT_OF_MEMORY, NEGCUT_ERR_LIMIT
 * (2^32 images or more). */
negcut_status ngc_data_open(negcut_ctx *ctx, const ngc_data_cfg *cfg, ngc_data **out);
/* Stops the worker and frees everything; accepts NULL. */
void ngc_data_close(ngc_data *d);

/* max(|A|, |B|): items per epoch. */
int64_t ngc_data_size(const ngc_data *d);
/* floor(size / (batch * world)): batches per epoch (drop_last). */
int64_t ngc_data_batches_per_epoch(const ngc_data *d);
/* The sorted file lists (i in [0, count)); NULL out of range. */
int64_t ngc_data_count(const ngc_data *d, int domain_b);
const char *ngc_data_path(const ngc_data *d, int domain_b, int64_t i);
/* Output side lengths of the fixed-size modes (the crop size rounded to a
 * multiple of 4); 0 for none and scale_width, whose sizes vary per image. */
int64_t ngc_data_fixed_size(const ngc_data *d);

/* The next batch. a and b, each cap_floats floats, receive (batch, channels,
 * h, w) values in [-1, 1]. *h, *w: A's size; B's is the same except in the
 * modes none and scale_width (batch 1), where ngc_data_b_size gives it.
 * *epoch: the 1-based epoch the batch belongs to. A buffer too small gives
 * NEGCUT_ERR_INVALID_ARGUMENT and the batch stays next. Any of h, w, epoch
 * may be NULL. */
negcut_status ngc_data_next(ngc_data *d, float *a, float *b, int64_t cap_floats, int64_t *h,
                            int64_t *w, int64_t *epoch);
/* B's size in the batch the last ngc_data_next returned (0, 0 before any). */
void ngc_data_b_size(const ngc_data *d, int64_t *h, int64_t *w);

/* Data parallelism (ngc_data_cfg.rank, world) set on an open instance that
 * has returned no batch yet; the batches decoded ahead are discarded.
 * NEGCUT_ERR_INVALID_ARGUMENT for a bad rank or world, too few items for a
 * global batch, or variable image sizes with a global batch above 1;
 * NEGCUT_ERR_STATE after the first batch. */
negcut_status ngc_data_set_ranks(ngc_data *d, int32_t rank, int32_t world);

/* Fine-tune phase: from the next batch on, load_size = crop_size (no resize
 * jitter; flips and crops stay). The reference turns it on for epochs after
 * n_epochs: call it when ngc_data_get_state's epoch first exceeds n_epochs.
 * A change discards the batches decoded ahead. */
void ngc_data_set_finetune(ngc_data *d, int on);

/* Position of the next batch: epoch (1-based), index (items of that epoch
 * already returned, a multiple of batch), counter (the Philox block of that
 * item's draws, derived from epoch and index: a check that a saved state
 * belongs to this layout) and the fine-tune flag. Setting a state taken from
 * an instance with the same folders and cfg gives exactly the batches that
 * instance would have given next. */
typedef struct ngc_data_state {
  int64_t epoch, index;
  uint64_t counter;
  int32_t finetune;
} ngc_data_state;

void ngc_data_get_state(const ngc_data *d, ngc_data_state *s);
/* NEGCUT_ERR_INVALID_ARGUMENT (and no change) for an epoch < 1 or >= 2^24,
 * an index outside the epoch or not a multiple of batch, or a counter that
 * does not match epoch and index. */
negcut_status ngc_data_set_state(ngc_data *d, const ngc_data_state *s);
/* ngc_data_set_state's checks alone: what it would return, changing nothing. */
negcut_status ngc_data_check_state(const ngc_data *d, const ngc_data_state *s);

/* ------------------------------------------------ pieces, for the tests */

/* PIL's Image.resize((dw, dh), Image.BICUBIC) of 8-bit interleaved pixels
 * (rows packed): separable, horizontal pass then vertical, each output
 * pixel a normalised cubic (a = -0.5) kernel whose support widens by the
 * downscale factor, coefficients and sums in 22-bit fixed point, clamped to
 * 0..255 after each pass. A dimension that does not change is not filtered.
 * NEGCUT_ERR_INVALID_ARGUMENT for sizes < 1 or channels outside 1..4,
 * NEGCUT_ERR_OUT_OF_MEMORY. ctx may be NULL (the thread's error slot). */
negcut_status ngc_resize_bicubic(negcut_ctx *ctx, const uint8_t *src, int64_t sw, int64_t sh,
                                 int64_t channels, uint8_t *dst, int64_t dw, int64_t dh);

/* PIL's convert("L"): (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16. */
void ngc_rgb_to_gray(const uint8_t *rgb, int64_t npix, uint8_t *gray);

/* Python's int(round(side / 4) * 4), round half to even. */
int64_t ngc_round_to_4(int64_t side);

/* The random choices of one image. */
typedef struct ngc_data_draw {
  int64_t crop_x, crop_y; /* left, top */
  int32_t flip;
} ngc_data_draw;

/* The geometry of one image through a mode: the size after the resize step
 * (rw, rh), the size after the crop step, and the output size (rounded to
 * multiples of 4). load is load_size, or crop_size when fine-tuning.
 * NEGCUT_ERR_INVALID_ARGUMENT with a message naming `name` when the image
 * is too small for the mode. */
typedef struct ngc_data_geom {
  int64_t rw, rh, cw, ch, ow, oh;
} ngc_data_geom;
negcut_status ngc_data_geometry(negcut_ctx *ctx, ngc_preprocess mode, int64_t load,
                                int64_t crop, int64_t w, int64_t h, const char *name,
                                ngc_data_geom *g);

/* One image through the whole preprocessing: img is RGB8 (w, h; rows
 * packed); out receives (channels, oh, ow) floats. */
negcut_status ngc_data_transform(negcut_ctx *ctx, const uint8_t *rgb, int64_t w, int64_t h,
                                 int32_t channels, const ngc_data_geom *g,
                                 const ngc_data_draw *draw, float *out);

/* Lists the images under dir (see Listing above). *paths (count *n) is the
 * caller's, freed with ngc_data_free_list. */
negcut_status ngc_data_list(negcut_ctx *ctx, const char *dir, char ***paths, int64_t *n);
void ngc_data_free_list(char **paths, int64_t n);

#endif
