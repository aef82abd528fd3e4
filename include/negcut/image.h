/*
 * libnegcut images: load PNG and JPEG files as interleaved RGB8, save RGB8
 * (or gray, or RGBA) pixels as PNG or JPEG.
 *
 *   negcut_image *img = NULL;
 *   if (negcut_image_load(&img, ctx, "in.jpg", NULL) != NEGCUT_OK)
 *     fprintf(stderr, "%s\n", negcut_ctx_last_error(ctx));
 *   ... img->pixels[y * img->stride_bytes + x * 3 + c] ...
 *   negcut_image_save(ctx, img, "out.png", NULL);
 *   negcut_image_free(img);
 *
 * Loading. The format is found from the file's first bytes, never from its
 * name. Whatever the file holds (gray, palette, gray+alpha, RGB, RGBA, 16-bit
 * PNG; gray, YCbCr, CMYK or YCCK JPEG, baseline or progressive), the loaded
 * image is RGB8: channels 3, stride_bytes width * 3, rows top to bottom.
 *  - PNG alpha is composited onto black (a transparent pixel reads 0, 0, 0),
 *    in linear light as libpng's simplified API does. 16-bit samples without
 *    a gAMA or sRGB chunk are taken as sRGB-encoded (what most programs
 *    write), not as linear; a file that states its gamma is honoured.
 *  - JPEG EXIF orientation (tag 0x0112 in IFD0 of the APP1 Exif segment) is
 *    applied, so the image is upright as a viewer shows it, unless
 *    NEGCUT_IMAGE_LOAD_KEEP_ORIENTATION is set.
 *  - A JPEG that libjpeg can only decode with a warning (truncated file,
 *    corrupt entropy data) is refused with NEGCUT_ERR_BAD_FORMAT, because the
 *    missing part would be filled with gray and silently poison training
 *    data; NEGCUT_IMAGE_LOAD_ACCEPT_DAMAGED accepts it as decoded. A PNG is
 *    refused when its image data is short or corrupt (CRC, zlib); one whose
 *    data is whole loads even if the end chunk is missing. Warnings from
 *    libpng (an odd ICC profile, for example) do not refuse a PNG.
 *  - Hostile input is refused before memory is committed to it: width x
 *    height above max_pixels gives NEGCUT_ERR_LIMIT before any pixel buffer
 *    exists, and a file larger than max_file_bytes is not read.
 *
 * Saving. The format comes from the extension of path, case-insensitive:
 * .png, .jpg or .jpeg; another gives NEGCUT_ERR_UNSUPPORTED. The file is
 * written atomically: to a temporary file in the same directory, flushed,
 * fsynced and renamed over path, so path holds either the old file or the
 * whole new one, never a part (the new file gets mode 0666 less the umask).
 * An image with channels 1, 3 or 4 can be saved; JPEG drops alpha.
 *
 * Ownership: an image that negcut_image_load, _load_memory or _create hands
 * out through *out is the caller's, pixels included, and is released with
 * negcut_image_free, which accepts NULL. Do not replace its pixels pointer.
 * negcut_image_save only reads the image, and also accepts a negcut_image the
 * caller filled in with its own pixel buffer (never pass such a one to
 * negcut_image_free).
 *
 * Threads: every function here may run in several threads at once, each
 * with its own context (or ctx NULL, whose error is thread-local). One image
 * may be saved or read by several threads at once while none modifies it.
 */
#ifndef NEGCUT_IMAGE_H
#define NEGCUT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Interleaved 8-bit pixels: sample c of pixel (x, y) is at
 * pixels[y * stride_bytes + x * channels + c]. */
typedef struct negcut_image {
  uint32_t width;
  uint32_t height;
  uint32_t channels;   /* 1 gray, 3 RGB, 4 RGBA; loaders always give 3 */
  size_t stride_bytes; /* bytes from one row to the next, >= width * channels */
  uint8_t *pixels;     /* (height, stride_bytes) */
} negcut_image;

/* 16384 x 16384 pixels. */
#define NEGCUT_IMAGE_DEFAULT_MAX_PIXELS ((uint64_t)1 << 28)
/* 1 GiB. */
#define NEGCUT_IMAGE_DEFAULT_MAX_FILE_BYTES ((uint64_t)1 << 30)

/* Load flags, or'ed into negcut_image_load_options.flags. */
#define NEGCUT_IMAGE_LOAD_KEEP_ORIENTATION 1u /* ignore EXIF orientation */
#define NEGCUT_IMAGE_LOAD_ACCEPT_DAMAGED 2u   /* keep a JPEG decoded with warnings */

#define NEGCUT_IMAGE_LOAD_OPTIONS_VERSION 1
typedef struct negcut_image_load_options {
  uint32_t version;        /* NEGCUT_IMAGE_LOAD_OPTIONS_VERSION */
  uint32_t flags;          /* NEGCUT_IMAGE_LOAD_* bits; 0 by default */
  uint64_t max_pixels;     /* width * height limit; 0: the default above */
  uint64_t max_file_bytes; /* input size limit; 0: the default above */
} negcut_image_load_options;

#define NEGCUT_IMAGE_LOAD_OPTIONS_INIT                                         \
  { NEGCUT_IMAGE_LOAD_OPTIONS_VERSION, 0u, 0u, 0u }

/* Fills *opts with the defaults above; _v2 the struct of `version` (core.h,
 * "Options structs"). */
NEGCUT_API negcut_status negcut_image_load_options_init(negcut_image_load_options *opts);
NEGCUT_API negcut_status negcut_image_load_options_init_v2(negcut_image_load_options *opts,
                                                           uint32_t version);

/* Loads the PNG or JPEG file at path (UTF-8) as RGB8; opts may be NULL for
 * the defaults. On failure *out is NULL: NEGCUT_ERR_IO (cannot open or read,
 * with the system's reason and the path), NEGCUT_ERR_BAD_FORMAT (not PNG or
 * JPEG, corrupt, truncated), NEGCUT_ERR_LIMIT (too many pixels, file too
 * large), NEGCUT_ERR_OUT_OF_MEMORY. */
NEGCUT_API negcut_status negcut_image_load(negcut_image **out, negcut_ctx *ctx, const char *path,
                                           const negcut_image_load_options *opts);

/* The same from size bytes at data, which are only read during the call. */
NEGCUT_API negcut_status negcut_image_load_memory(negcut_image **out, negcut_ctx *ctx,
                                                  const void *data, size_t size,
                                                  const negcut_image_load_options *opts);

/* A new RGB8 image of width x height black pixels (both at least 1), rows
 * packed (stride_bytes = width * 3). */
NEGCUT_API negcut_status negcut_image_create(negcut_image **out, negcut_ctx *ctx, uint32_t width,
                                             uint32_t height);

/* Releases an image from this library, pixels included; accepts NULL. */
NEGCUT_API void negcut_image_free(negcut_image *img);

#define NEGCUT_IMAGE_SAVE_OPTIONS_VERSION 1
typedef struct negcut_image_save_options {
  uint32_t version;     /* NEGCUT_IMAGE_SAVE_OPTIONS_VERSION */
  int32_t jpeg_quality; /* 1..100; 0: 95. At 90 and above chroma is kept
                           whole (4:4:4), below it is halved (4:2:0). */
} negcut_image_save_options;

#define NEGCUT_IMAGE_SAVE_OPTIONS_INIT { NEGCUT_IMAGE_SAVE_OPTIONS_VERSION, 95 }

/* Fills *opts with the defaults above; _v2 the struct of `version` (core.h,
 * "Options structs"). */
NEGCUT_API negcut_status negcut_image_save_options_init(negcut_image_save_options *opts);
NEGCUT_API negcut_status negcut_image_save_options_init_v2(negcut_image_save_options *opts,
                                                           uint32_t version);

/* Writes img to path (UTF-8) as PNG (lossless) or JPEG, chosen by the
 * extension, atomically (see above); opts may be NULL for the defaults. On
 * failure nothing is left at path that was not there before. */
NEGCUT_API negcut_status negcut_image_save(negcut_ctx *ctx, const negcut_image *img,
                                           const char *path,
                                           const negcut_image_save_options *opts);

#ifdef __cplusplus
}
#endif
#endif
