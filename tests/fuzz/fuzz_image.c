/* negcut_image_load_memory (PNG through libpng, JPEG through TurboJPEG, the
 * hand-written EXIF orientation parser), then the training pipeline's
 * geometry and transform (lib/train/data_transform.c) on what loaded.
 *
 * Input: byte 0 picks the load options, byte 1 the transform, the rest is
 * the file.
 *   byte 0: bit 0 KEEP_ORIENTATION, bit 1 ACCEPT_DAMAGED, bits 2-3
 *           max_pixels 2^12, 2^16, 2^20 or 2^22 (the default 2^28 is a
 *           legitimate 768 MB), bits 4-5 == 3: max_file_bytes below the size,
 *           bit 6: a PNG's chunk CRCs are recomputed first (libpng refuses a
 *           critical chunk whose CRC is wrong, so without this the fuzzer
 *           can hardly change a PNG's size, colour type or palette)
 *   byte 1: bits 0-2 preprocess mode (5..7: none run), bit 3 gray, bit 4
 *           flip, bits 5-7 the load size (crop: about half of it) */
#include "fuzz_common.h"
#include "train/data.h"

static uint32_t crc32_png(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

/* Rewrites the CRC of every whole chunk of the PNG in p (after the
 * signature): length, type, data, CRC over type and data. */
static void fix_png_crcs(uint8_t *p, size_t n) {
  size_t pos = 8;
  while (pos + 12 <= n) {
    uint32_t len = (uint32_t)p[pos] << 24 | (uint32_t)p[pos + 1] << 16 | (uint32_t)p[pos + 2] << 8 |
                   p[pos + 3];
    if (len > n - pos - 12) break;
    uint32_t crc = crc32_png(p + pos + 4, 4 + (size_t)len);
    uint8_t *c = p + pos + 8 + len;
    c[0] = (uint8_t)(crc >> 24), c[1] = (uint8_t)(crc >> 16), c[2] = (uint8_t)(crc >> 8),
    c[3] = (uint8_t)crc;
    pos += 12 + (size_t)len;
  }
}

static const uint64_t max_pixels_of[4] = {1u << 12, 1u << 16, 1u << 20, 1u << 22};
static const int64_t load_of[8] = {8, 12, 16, 31, 64, 3, 1, 256};

static void transform(negcut_ctx *ctx, const negcut_image *img, uint8_t sel) {
  int mode = sel & 7;
  if (mode > NGC_PRE_NONE) return;
  int64_t load = load_of[sel >> 5], crop = (load + 1) / 2;
  int64_t w = img->width, h = img->height;
  ngc_data_geom g;
  negcut_status st = ngc_data_geometry(ctx, (ngc_preprocess)mode, load, crop, w, h, "fuzz", &g);
  if (st != NEGCUT_OK) {
    FUZZ_CHECK_FAILED(ctx, st);
    return;
  }
  FUZZ_CHECK(g.cw <= g.rw && g.ch <= g.rh && g.ow >= 1 && g.oh >= 1 && g.ow % 4 == 0 &&
                 g.oh % 4 == 0,
             "geometry %lldx%lld -> r %lldx%lld c %lldx%lld o %lldx%lld", (long long)w,
             (long long)h, (long long)g.rw, (long long)g.rh, (long long)g.cw, (long long)g.ch,
             (long long)g.ow, (long long)g.oh);
  /* Sizes the pipeline allows but that are slow to fuzz (up to 2^28 px). */
  if (g.rw * g.rh > ((int64_t)1 << 22) || g.ow * g.oh > ((int64_t)1 << 22)) return;
  int32_t channels = (sel & 8) ? 1 : 3;
  ngc_data_draw dr = {(g.rw - g.cw) / 2, (g.rh - g.ch) / 2, (sel & 16) != 0};
  size_t n = (size_t)(channels * g.ow * g.oh);
  float *out = malloc(n * sizeof *out);
  FUZZ_CHECK(out, "malloc %zu floats", n);
  st = ngc_data_transform(ctx, img->pixels, w, h, channels, &g, &dr, out);
  if (st == NEGCUT_OK) {
    for (size_t i = 0; i < n; i++)
      FUZZ_CHECK(out[i] >= -1.0f && out[i] <= 1.0f, "transformed value %g at %zu", out[i], i);
  } else {
    FUZZ_CHECK_FAILED(ctx, st);
  }
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  negcut_ctx *ctx = fuzz_ctx();
  if (size < 2) return 0;
  const uint8_t sel = data[0], tsel = data[1];
  data += 2;
  size -= 2;
  negcut_image_load_options o;
  negcut_image_load_options_init(&o);
  o.flags = sel & 3;
  o.max_pixels = max_pixels_of[(sel >> 2) & 3];
  if (((sel >> 4) & 3) == 3) o.max_file_bytes = size > 1 ? size - 1 : 1;
  uint8_t *copy = NULL;
  if ((sel & 64) && size >= 8 && memcmp(data, "\x89PNG", 4) == 0) {
    copy = malloc(size);
    FUZZ_CHECK(copy, "malloc");
    memcpy(copy, data, size);
    fix_png_crcs(copy, size);
    data = copy;
  }
  negcut_image *img = NULL;
  negcut_status st = negcut_image_load_memory(&img, ctx, size ? data : NULL, size, &o);
  free(copy); /* only read during the call */
  if (st != NEGCUT_OK) {
    FUZZ_CHECK_FAILED(ctx, st);
    FUZZ_CHECK(img == NULL, "failed load left an image");
    return 0;
  }
  FUZZ_CHECK(img && img->pixels && img->channels == 3 && img->width >= 1 && img->height >= 1 &&
                 (uint64_t)img->width * img->height <= o.max_pixels &&
                 img->stride_bytes == (size_t)img->width * 3,
             "loaded %ux%u, %u channels, stride %zu", img ? img->width : 0,
             img ? img->height : 0, img ? img->channels : 0, img ? img->stride_bytes : 0);
  FUZZ_CHECK(!o.max_file_bytes || size <= o.max_file_bytes, "a file above the limit loaded");
  /* Every pixel is read, so that the sanitizers see the whole buffer. */
  unsigned sum = 0;
  for (size_t i = 0; i < img->stride_bytes * img->height; i++) sum += img->pixels[i];
  if (sum == 0xFFFFFFFFu) fputc(0, stderr); /* keep the loop */
  transform(ctx, img, tsel);
  negcut_image_free(img);
  return 0;
}
