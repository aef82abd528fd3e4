/* JPEG through TurboJPEG: any JPEG libjpeg-turbo reads (gray, YCbCr, CMYK,
 * YCCK; baseline or progressive) in, RGB8 out with EXIF orientation
 * applied; RGB, gray or RGBA (alpha dropped) written. TurboJPEG replaces
 * libjpeg's error_exit with its own setjmp and keeps messages in the handle,
 * so nothing here prints or longjmps. */
#include <limits.h>
#include <stdlib.h>
#include <turbojpeg.h>

#include "atomic_file.h"
#include "image_codec.h"

/* TurboJPEG's CMYK is Adobe's inverted convention (255 = no ink), the one
 * Photoshop writes and tjexample converts: R = C * K / 255. */
static void cmyk_to_rgb(const uint8_t *cmyk, uint8_t *rgb, size_t n_px) {
  for (size_t i = 0; i < n_px; i++, cmyk += 4, rgb += 3) {
    unsigned k = cmyk[3];
    rgb[0] = (uint8_t)((cmyk[0] * k + 127) / 255);
    rgb[1] = (uint8_t)((cmyk[1] * k + 127) / 255);
    rgb[2] = (uint8_t)((cmyk[2] * k + 127) / 255);
  }
}

negcut_status ngc_image_jpeg_decode(negcut_ctx *ctx, const char *what, const uint8_t *data,
                                    size_t size, const ngc_image_limits *lim,
                                    negcut_image **out) {
  negcut_status st;
  negcut_image *img = NULL;
  uint8_t *cmyk = NULL;
  tjhandle tj = NULL;
  *out = NULL;
  if ((unsigned long long)size > ULONG_MAX) /* TurboJPEG takes an unsigned long */
    return ngc_error(ctx, NEGCUT_ERR_LIMIT, "%s: JPEG of %zu bytes is too large", what, size);
  tj = tjInitDecompress();
  if (!tj)
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: TurboJPEG: %s", what,
                     tjGetErrorStr2(NULL));
  int w = 0, h = 0, subsamp = 0, cs = 0;
  if (tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &subsamp, &cs) != 0) {
    st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: bad JPEG: %s", what, tjGetErrorStr2(tj));
    goto fail;
  }
  if (w <= 0 || h <= 0) {
    st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: bad JPEG: size %dx%d", what, w, h);
    goto fail;
  }
  /* The budget is checked on the header's size, before libjpeg allocates
   * its buffers (a progressive image keeps all coefficients) or we do. */
  st = ngc_image_alloc(ctx, what, (uint32_t)w, (uint32_t)h, lim->max_pixels, &img);
  if (st != NEGCUT_OK) goto fail;

  /* A hostile progressive file can hold thousands of tiny scans that each
   * cost a pass over the image; LIMITSCANS stops at 500. A warning (a
   * truncated file, corrupt entropy data) stops decoding unless damaged
   * images were asked for: see image.h for why. */
  int accept_damaged = (lim->flags & NEGCUT_IMAGE_LOAD_ACCEPT_DAMAGED) != 0;
  int flags = TJFLAG_LIMITSCANS | (accept_damaged ? 0 : TJFLAG_STOPONWARNING);
  int is_cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
  uint8_t *dst = img->pixels;
  int pitch = w * 3; /* JPEG dimensions are at most 65535: no overflow */
  if (is_cmyk) {
    /* TurboJPEG will not convert CMYK to RGB itself. */
    size_t bytes = (size_t)w * (size_t)h * 4;
    cmyk = malloc(bytes);
    if (!cmyk) {
      st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes", what,
                     bytes);
      goto fail;
    }
    dst = cmyk;
    pitch = w * 4;
  }
  if (tjDecompress2(tj, data, (unsigned long)size, dst, w, pitch, h,
                    is_cmyk ? TJPF_CMYK : TJPF_RGB, flags) != 0) {
    int is_warning = tjGetErrorCode(tj) == TJERR_WARNING;
    if (!(is_warning && accept_damaged)) {
      st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: %s JPEG: %s%s", what,
                     is_warning ? "damaged" : "bad", tjGetErrorStr2(tj),
                     is_warning ? " (NEGCUT_IMAGE_LOAD_ACCEPT_DAMAGED would keep it)" : "");
      goto fail;
    }
  }
  if (is_cmyk) cmyk_to_rgb(cmyk, img->pixels, (size_t)w * (size_t)h);
  free(cmyk);
  cmyk = NULL;
  tjDestroy(tj);
  tj = NULL;

  if (!(lim->flags & NEGCUT_IMAGE_LOAD_KEEP_ORIENTATION)) {
    st = ngc_image_apply_orientation(ctx, &img, ngc_image_exif_orientation(data, size));
    if (st != NEGCUT_OK) goto fail;
  }
  *out = img;
  return NEGCUT_OK;

fail:
  free(cmyk);
  if (tj) tjDestroy(tj);
  negcut_image_free(img);
  return st;
}

negcut_status ngc_image_jpeg_save(negcut_ctx *ctx, const negcut_image *img, const char *path,
                                  int quality) {
  negcut_status st;
  unsigned char *jpeg = NULL;
  unsigned long jpeg_size = 0;
  /* JPEG stores 16-bit dimensions, and libjpeg stops at 65500. */
  if (img->width > 65500 || img->height > 65500)
    return ngc_error(ctx, NEGCUT_ERR_LIMIT,
                     "%s: %ux%u is larger than JPEG allows (65500 per side)", path,
                     (unsigned)img->width, (unsigned)img->height);
  if (img->stride_bytes > INT_MAX)
    return ngc_error(ctx, NEGCUT_ERR_LIMIT, "%s: rows of %zu bytes are too long", path,
                     img->stride_bytes);
  int pf = img->channels == 1 ? TJPF_GRAY : img->channels == 4 ? TJPF_RGBA : TJPF_RGB;
  /* Chroma subsampling is visible at high quality settings; below 90 the
   * caller has chosen size over fidelity, and 4:2:0 is the usual trade. */
  int subsamp = img->channels == 1 ? TJSAMP_GRAY : quality >= 90 ? TJSAMP_444 : TJSAMP_420;
  tjhandle tj = tjInitCompress();
  if (!tj)
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: TurboJPEG: %s", path,
                     tjGetErrorStr2(NULL));
  if (tjCompress2(tj, img->pixels, (int)img->width, (int)img->stride_bytes, (int)img->height,
                  pf, &jpeg, &jpeg_size, subsamp, quality, TJFLAG_ACCURATEDCT) != 0) {
    /* The image was validated, so this is libjpeg running out of memory or
     * a bug, not the caller's doing. */
    st = ngc_error(ctx, NEGCUT_ERR_INTERNAL, "%s: cannot encode JPEG: %s", path,
                   tjGetErrorStr2(tj));
    goto done;
  }
  st = ngc_write_file_atomic(ctx, path, jpeg, (size_t)jpeg_size);

done:
  tjFree(jpeg);
  tjDestroy(tj);
  return st;
}
