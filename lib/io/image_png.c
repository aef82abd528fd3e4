/* PNG through libpng's simplified API: every PNG colour type and depth in,
 * RGB8 out; gray, RGB or RGBA 8-bit written. The simplified API catches
 * libpng's longjmp errors itself and reports them in png_image.message, so
 * no setjmp lives here. */
#include <png.h>
#include <stdint.h>
#include <string.h>

#include "atomic_file.h"
#include "image_codec.h"

negcut_status ngc_image_png_decode(negcut_ctx *ctx, const char *what, const uint8_t *data,
                                   size_t size, const ngc_image_limits *lim,
                                   negcut_image **out) {
  negcut_status st;
  negcut_image *img = NULL;
  png_image pi;
  *out = NULL;
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  /* Reads the header only: the size is known before any pixel memory. */
  if (!png_image_begin_read_from_memory(&pi, data, size)) {
    st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: bad PNG: %s", what, pi.message);
    goto fail;
  }
  st = ngc_image_alloc(ctx, what, pi.width, pi.height, lim->max_pixels, &img);
  if (st != NEGCUT_OK) goto fail;
  if (img->stride_bytes > INT32_MAX) {
    st = ngc_error(ctx, NEGCUT_ERR_LIMIT, "%s: PNG rows of %zu bytes are too long", what,
                   img->stride_bytes);
    goto fail;
  }
  pi.format = PNG_FORMAT_RGB;
  /* libpng takes 16-bit samples without gamma information as linear and
   * would brighten them on the way to 8-bit sRGB; nearly every program that
   * writes such files means sRGB. A file with gAMA or sRGB is unaffected. */
  pi.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
  /* Alpha is removed by compositing onto a black background, so that a
   * transparent pixel reads (0, 0, 0) whatever colour the file stored. */
  const png_color black = {0, 0, 0};
  if (!png_image_finish_read(&pi, &black, img->pixels, (png_int_32)img->stride_bytes, NULL)) {
    st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: bad PNG: %s", what, pi.message);
    goto fail;
  }
  png_image_free(&pi);
  *out = img;
  return NEGCUT_OK;

fail:
  png_image_free(&pi); /* safe after finish_read, which frees, and when nothing began */
  negcut_image_free(img);
  return st;
}

negcut_status ngc_image_png_save(negcut_ctx *ctx, const negcut_image *img, const char *path) {
  negcut_status st;
  ngc_atomic_file *f = NULL;
  png_image pi;
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  pi.width = img->width;
  pi.height = img->height;
  pi.format = img->channels == 1 ? PNG_FORMAT_GRAY
              : img->channels == 4 ? PNG_FORMAT_RGBA
                                   : PNG_FORMAT_RGB;
  if (img->stride_bytes > INT32_MAX)
    return ngc_error(ctx, NEGCUT_ERR_LIMIT, "%s: PNG rows of %zu bytes are too long", path,
                     img->stride_bytes);
  st = ngc_atomic_file_open(ctx, path, &f);
  if (st != NEGCUT_OK) return st;
  if (!png_image_write_to_stdio(&pi, ngc_atomic_file_stream(f), 0, img->pixels,
                                (png_int_32)img->stride_bytes, NULL)) {
    st = ngc_error(ctx, NEGCUT_ERR_IO, "cannot write PNG %s: %s", path, pi.message);
    png_image_free(&pi);
    goto fail;
  }
  png_image_free(&pi);
  return ngc_atomic_file_commit(f);

fail:
  ngc_atomic_file_abort(f);
  return st;
}
