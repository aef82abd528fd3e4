/* Internal image codecs behind include/negcut/image.h: PNG (libpng's
 * simplified API), JPEG (TurboJPEG), EXIF orientation. libpng's and
 * TurboJPEG's headers stay in the .c files that use them. */
#ifndef NGC_IO_IMAGE_CODEC_H
#define NGC_IO_IMAGE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "negcut/image.h"

/* Load options with defaults filled in (never 0 limits). */
typedef struct ngc_image_limits {
  uint32_t flags; /* NEGCUT_IMAGE_LOAD_* */
  uint64_t max_pixels;
} ngc_image_limits;

/* A new packed RGB8 image of zeroes, refused with NEGCUT_ERR_LIMIT when
 * width * height exceeds max_pixels (checked before anything is allocated).
 * `what` names the source in messages. */
negcut_status ngc_image_alloc(negcut_ctx *ctx, const char *what, uint32_t width,
                              uint32_t height, uint64_t max_pixels, negcut_image **out);

/* Whether size bytes at data start like a PNG / a JPEG. */
int ngc_image_is_png(const uint8_t *data, size_t size);
int ngc_image_is_jpeg(const uint8_t *data, size_t size);

/* Decoders: size bytes at data to a new RGB8 image. */
negcut_status ngc_image_png_decode(negcut_ctx *ctx, const char *what, const uint8_t *data,
                                   size_t size, const ngc_image_limits *lim,
                                   negcut_image **out);
negcut_status ngc_image_jpeg_decode(negcut_ctx *ctx, const char *what, const uint8_t *data,
                                    size_t size, const ngc_image_limits *lim,
                                    negcut_image **out);

/* Encoders: img (already validated: 1, 3 or 4 channels, width and height >=
 * 1, stride_bytes >= width * channels) to the file at path, atomically. */
negcut_status ngc_image_png_save(negcut_ctx *ctx, const negcut_image *img, const char *path);
negcut_status ngc_image_jpeg_save(negcut_ctx *ctx, const negcut_image *img, const char *path,
                                  int quality);

/* The EXIF orientation (1..8) of a JPEG stream: tag 0x0112 of IFD0 in the
 * first APP1 "Exif" segment before the first scan. 1 when absent, malformed
 * or out of range: a broken EXIF block never refuses an image. */
int ngc_image_exif_orientation(const uint8_t *jpeg, size_t size);

/* Replaces *img with its version turned upright for EXIF orientation
 * 1..8 (1: unchanged). A new buffer is made for the turned pixels; on
 * failure *img is unchanged. */
negcut_status ngc_image_apply_orientation(negcut_ctx *ctx, negcut_image **img,
                                          int orientation);

#endif
