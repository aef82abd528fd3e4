/*
 * Translating images with a trained generator: the API most users need.
 *
 *   negcut_model *model;       negcut_model_load(&model, ctx, "latest_net_G.safetensors");
 *   negcut_translator *tr;     negcut_translator_create(&tr, ctx, model, NULL);
 *   negcut_translate_rgb8(tr, src, width, height, src_stride, dst, dst_stride);
 *   negcut_translator_free(tr); negcut_model_free(model);
 *
 * Images of any size come back at their own size: the input is padded by
 * reflection to a multiple of 4 and the output cropped back (the reference
 * code silently changes the size instead). Large images are processed in
 * overlapping tiles that are blended, so that the working memory stays under
 * max_memory_bytes; because the generator's instance norms see one tile at a
 * time, tiled output differs slightly from whole-image output (docs/TRANSLATE.md
 * gives the measured seam error).
 *
 * Ownership and threads: a negcut_model is read-only once loaded and may be
 * shared by any number of translators in different threads, provided each
 * translator was made with its own context (a context and a translator are
 * used by one thread at a time). The model must outlive its translators, the
 * context it was loaded with must outlive the model (negcut_ctx_free), and
 * every translator's context must use the same backend kind as the model's.
 */
#ifndef NEGCUT_TRANSLATE_H
#define NEGCUT_TRANSLATE_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct negcut_model negcut_model;
typedef struct negcut_translator negcut_translator;

/* Loads a generator from a safetensors checkpoint (ours, or a reference
 * .pth converted by tools/pth2safetensors.py). NEGCUT_ERR_BAD_FORMAT for a
 * file that does not hold a whole generator, or holds a NaN or infinite
 * weight; NEGCUT_ERR_LIMIT for one larger than the limits of
 * negcut_net_create_generator. Nothing is allocated for a file refused. */
NEGCUT_API negcut_status negcut_model_load(negcut_model **out, negcut_ctx *ctx,
                                           const char *path);
/* The same from memory (the bytes are copied as needed, not kept). */
NEGCUT_API negcut_status negcut_model_load_memory(negcut_model **out, negcut_ctx *ctx,
                                                  const void *data, size_t size);
NEGCUT_API void negcut_model_free(negcut_model *model);
/* Input and output channel counts of the generator. */
NEGCUT_API int32_t negcut_model_input_channels(const negcut_model *model);
NEGCUT_API int32_t negcut_model_output_channels(const negcut_model *model);

/* Version 2 added tf32 and eager, version 3 conv_algo, version 4
 * exact_tiles; older structs (without them) are still accepted and mean 0
 * for each. */
#define NEGCUT_TRANSLATOR_OPTIONS_VERSION 4
typedef struct negcut_translator_options {
  uint32_t version;          /* NEGCUT_TRANSLATOR_OPTIONS_VERSION */
  uint64_t max_memory_bytes; /* working memory per translator; 0: 2 GiB */
  int32_t tile_px;           /* tile side, 16 to 2^20; 0: largest that fits the memory limit */
  int32_t overlap_px;        /* blended border between tiles, up to 2^20; 0: 32 (see
                                exact_tiles) */
  int32_t bf16;              /* 1: convolutions may run in bfloat16 where that is faster:
                                on CPUs with AVX512-BF16 those that run no Winograd
                                kernel and do not go to 3 channels (all others with
                                NEGCUT_CONV_DIRECT), on NVIDIA GPUs from sm_80 all;
                                elsewhere float32. docs/TRANSLATE.md gives the accuracy */
  int32_t tf32;              /* 1: on a GPU, fp32 convolutions may round their inputs to
                                TF32 on tensor cores (what PyTorch does by default on
                                NVIDIA GPUs since Ampere): faster, about 1e-3 relative
                                error per product; ignored on CPUs */
  int32_t eager;             /* 1: never replay a recorded CUDA graph (a translator
                                otherwise records the generator on the second call with
                                a given image size and replays it from the third) */
  negcut_conv_algo conv_algo; /* NEGCUT_CONV_AUTO (Winograd where the backend has it,
                                about 2x faster on CPUs with AVX-512; NEGCUT_CONV_WINOGRAD
                                means the same here) or NEGCUT_CONV_DIRECT; Winograd
                                convolutions stay float32 under bf16 */
  int32_t exact_tiles;        /* 1: an image translated in tiles gets the whole image's
                                result (to about 1e-5): every instance norm normalises
                                with the whole image's statistics, gathered tile by tile
                                (one partial pass over the tiles per norm, each resuming
                                where the last stopped where max_memory_bytes leaves room),
                                and an overlap_px of 0 means 32 + 8 per residual block;
                                about 2 to 6 times the time of plain tiles for a 9-block
                                generator. 0: each tile normalises with its own
                                (docs/TRANSLATE.md, "Tiling and memory") */
} negcut_translator_options;

#define NEGCUT_TRANSLATOR_OPTIONS_INIT { NEGCUT_TRANSLATOR_OPTIONS_VERSION, 0, 0, 0, 0, 0, 0, 0, 0 }

/* The defaults in a version 3 struct; _v2 in the struct of `version`
 * (core.h, "Options structs"). */
NEGCUT_API negcut_status negcut_translator_options_init(negcut_translator_options *opts);
NEGCUT_API negcut_status negcut_translator_options_init_v2(negcut_translator_options *opts,
                                                           uint32_t version);
/* ctx: the context this translator runs on (one per thread). */
NEGCUT_API negcut_status negcut_translator_create(negcut_translator **out, negcut_ctx *ctx,
                                                  const negcut_model *model,
                                                  const negcut_translator_options *opts);
NEGCUT_API void negcut_translator_free(negcut_translator *tr);

/* Interleaved 8-bit images (RGB for a 3-channel model, gray for 1), rows
 * stride bytes apart. src and dst may not overlap. */
NEGCUT_API negcut_status negcut_translate_rgb8(negcut_translator *tr, const uint8_t *src,
                                               uint32_t width, uint32_t height,
                                               size_t src_stride, uint8_t *dst,
                                               size_t dst_stride);
/* count images of one size at once: src[i] -> dst[i]. */
NEGCUT_API negcut_status negcut_translate_rgb8_batch(negcut_translator *tr, uint32_t count,
                                                     const uint8_t *const *src,
                                                     uint32_t width, uint32_t height,
                                                     size_t src_stride, uint8_t *const *dst,
                                                     size_t dst_stride);
/* Float NCHW in [-1, 1]: src (n, in_channels, height, width) -> dst (n,
 * out_channels, height, width), values in [-1, 1] (the generator's tanh). */
NEGCUT_API negcut_status negcut_translate_f32(negcut_translator *tr, const float *src,
                                              uint32_t n, uint32_t height, uint32_t width,
                                              float *dst);

#ifdef __cplusplus
}
#endif
#endif
