/* One image through the reference's training transform (data.h): gray,
 * resize, crop, round to multiples of 4, flip, scale to [-1, 1]. */
#include <stdlib.h>
#include <string.h>

#include "core/pixel.h"
#include "train/data.h"

/* Larger intermediate images are refused rather than allocated. */
#define DATA_MAX_PIXELS ((int64_t)1 << 28)

negcut_status ngc_data_geometry(negcut_ctx *ctx, ngc_preprocess mode, int64_t load,
                                int64_t crop, int64_t w, int64_t h, const char *name,
                                ngc_data_geom *g) {
  const char *nm = name ? name : "image";
  int crops = mode == NGC_PRE_RESIZE_AND_CROP || mode == NGC_PRE_CROP ||
              mode == NGC_PRE_SCALE_WIDTH_AND_CROP;
  g->rw = w;
  g->rh = h;
  switch (mode) {
  case NGC_PRE_RESIZE_AND_CROP:
    g->rw = g->rh = load;
    break;
  case NGC_PRE_SCALE_WIDTH:
  case NGC_PRE_SCALE_WIDTH_AND_CROP:
    /* The reference's __scale_width: kept when the width is right and the
     * height can hold a crop; else h = int(max(load * h / w, crop)). */
    if (!(w == load && h >= crop)) {
      double sh = (double)(load * h) / (double)w;
      if (sh < (double)crop) sh = (double)crop;
      if (sh > (double)DATA_MAX_PIXELS)
        return ngc_error(ctx, NEGCUT_ERR_LIMIT, "'%s' (%lldx%lld) scales to an absurd height",
                         nm, (long long)w, (long long)h);
      g->rw = load;
      g->rh = (int64_t)sh;
    }
    break;
  case NGC_PRE_CROP:
  case NGC_PRE_NONE:
    break;
  default:
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "unknown preprocess mode %d", (int)mode);
  }
  if (g->rw * g->rh > DATA_MAX_PIXELS)
    return ngc_error(ctx, NEGCUT_ERR_LIMIT, "'%s' resizes to %lldx%lld pixels, too many", nm,
                     (long long)g->rw, (long long)g->rh);
  g->cw = g->rw;
  g->ch = g->rh;
  if (crops) {
    if (g->rw < crop || g->rh < crop)
      return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                       "'%s' is %lldx%lld pixels, smaller than the crop size %lld", nm,
                       (long long)g->rw, (long long)g->rh, (long long)crop);
    g->cw = g->ch = crop;
  }
  g->ow = ngc_round_to_4(g->cw);
  g->oh = ngc_round_to_4(g->ch);
  if (g->ow == 0 || g->oh == 0)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "'%s' is %lldx%lld pixels: too small, a side rounds to 0 "
                     "(sides are rounded to multiples of 4)",
                     nm, (long long)g->cw, (long long)g->ch);
  return NEGCUT_OK;
}

negcut_status ngc_data_transform(negcut_ctx *ctx, const uint8_t *rgb, int64_t w, int64_t h,
                                 int32_t channels, const ngc_data_geom *g,
                                 const ngc_data_draw *draw, float *out) {
  negcut_status st = NEGCUT_OK;
  int64_t c = channels;
  uint8_t *gray = NULL, *rs = NULL, *cr = NULL, *r4 = NULL;
  if ((channels != 1 && channels != 3) || draw->crop_x < 0 || draw->crop_y < 0 ||
      draw->crop_x + g->cw > g->rw || draw->crop_y + g->ch > g->rh)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "data transform: bad channels %d or crop (%lld, %lld) of %lldx%lld in "
                     "%lldx%lld",
                     (int)channels, (long long)draw->crop_x, (long long)draw->crop_y,
                     (long long)g->cw, (long long)g->ch, (long long)g->rw, (long long)g->rh);
  const uint8_t *cur = rgb; /* (h, w, c), rows packed */
  if (c == 1) {
    if (!(gray = malloc((size_t)(w * h)))) goto oom;
    ngc_rgb_to_gray(rgb, w * h, gray);
    cur = gray;
  }
  if (g->rw != w || g->rh != h) { /* (rh, rw, c) */
    if (!(rs = malloc((size_t)(g->rw * g->rh * c)))) goto oom;
    if ((st = ngc_resize_bicubic(ctx, cur, w, h, c, rs, g->rw, g->rh)) != NEGCUT_OK) goto done;
    cur = rs;
  }
  if (g->cw != g->rw || g->ch != g->rh) { /* (ch, cw, c) */
    if (!(cr = malloc((size_t)(g->cw * g->ch * c)))) goto oom;
    for (int64_t y = 0; y < g->ch; y++)
      memcpy(cr + y * g->cw * c, cur + ((y + draw->crop_y) * g->rw + draw->crop_x) * c,
             (size_t)(g->cw * c));
    cur = cr;
  }
  if (g->ow != g->cw || g->oh != g->ch) { /* (oh, ow, c) */
    if (!(r4 = malloc((size_t)(g->ow * g->oh * c)))) goto oom;
    if ((st = ngc_resize_bicubic(ctx, cur, g->cw, g->ch, c, r4, g->ow, g->oh)) != NEGCUT_OK)
      goto done;
    cur = r4;
  }
  /* ToTensor then Normalize(0.5, 0.5), in float32 as torchvision does. */
  float lut[256];
  for (int i = 0; i < 256; i++) lut[i] = ngc_pixel_to_unit((uint8_t)i);
  int64_t ow = g->ow, oh = g->oh;
  for (int64_t ch = 0; ch < c; ch++)
    for (int64_t y = 0; y < oh; y++) {
      float *o = out + (ch * oh + y) * ow; /* (C, oh, ow) */
      const uint8_t *s = cur + y * ow * c + ch;
      if (draw->flip)
        for (int64_t x = 0; x < ow; x++) o[ow - 1 - x] = lut[s[x * c]];
      else
        for (int64_t x = 0; x < ow; x++) o[x] = lut[s[x * c]];
    }
  goto done;
oom:
  st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "data transform: out of memory");
done: /* success and failure alike */
  free(gray);
  free(rs);
  free(cr);
  free(r4);
  return st;
}
