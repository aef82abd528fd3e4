/* Image loading and saving: the API contract, PNG and JPEG round trips,
 * every PNG colour type, EXIF orientation, CMYK, limits, hostile input and
 * atomic saves. Test images are made here with libpng and TurboJPEG. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include <negcut.h>

#include "io/atomic_file.h"
#include "ngc_test.h"

/* ------------------------------------------------------------ helpers */

static char tmp_dir[256];

static void make_tmp_dir(void) { ngc_test_mkdtemp(tmp_dir, sizeof tmp_dir, "ngc_image"); }

static void remove_tmp_dir(void) { ngc_test_rmtree(tmp_dir); }

static char *tmp_path(const char *name) {
  static char buf[4][512];
  static int i;
  char *b = buf[i++ & 3];
  snprintf(b, sizeof buf[0], "%s/%s", tmp_dir, name);
  return b;
}

/* Number of entries in a directory, "." and ".." excluded. */
static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static uint8_t *read_bytes(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)n + 1);
  ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *size = (size_t)n;
  return b;
}

static void write_bytes(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, size, f), size);
  ck_assert_int_eq(fclose(f), 0);
}

/* A smooth, asymmetric RGB pattern: JPEG-friendly, and no two corners alike. */
static negcut_image *pattern(uint32_t w, uint32_t h) {
  negcut_image *img = NULL;
  ck_assert_int_eq(negcut_image_create(&img, NULL, w, h), NEGCUT_OK);
  for (uint32_t y = 0; y < h; y++)
    for (uint32_t x = 0; x < w; x++) {
      uint8_t *p = img->pixels + y * img->stride_bytes + x * 3;
      p[0] = (uint8_t)(20 + 200 * x / w);
      p[1] = (uint8_t)(30 + 180 * y / h);
      p[2] = (uint8_t)(128 + 100 * sin(0.3 * x + 0.2 * y));
    }
  return img;
}

static int same_pixels(const negcut_image *a, const negcut_image *b) {
  if (a->width != b->width || a->height != b->height || a->channels != b->channels) return 0;
  for (uint32_t y = 0; y < a->height; y++)
    if (memcmp(a->pixels + y * a->stride_bytes, b->pixels + y * b->stride_bytes,
               (size_t)a->width * a->channels))
      return 0;
  return 1;
}

static double psnr(const negcut_image *a, const negcut_image *b) {
  double se = 0;
  for (uint32_t y = 0; y < a->height; y++)
    for (uint32_t i = 0; i < a->width * 3; i++) {
      double d = (double)a->pixels[y * a->stride_bytes + i] - b->pixels[y * b->stride_bytes + i];
      se += d * d;
    }
  double mse = se / ((double)a->width * a->height * 3);
  return mse == 0 ? 99.0 : 10 * log10(255.0 * 255.0 / mse);
}

static const uint8_t *px(const negcut_image *img, uint32_t x, uint32_t y) {
  return img->pixels + y * img->stride_bytes + x * 3;
}

static void assert_px(const negcut_image *img, uint32_t x, uint32_t y, int r, int g, int b,
                      int tol) {
  const uint8_t *p = px(img, x, y);
  ck_assert_msg(abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol,
                "pixel (%u, %u) is (%d, %d, %d), want (%d, %d, %d) +- %d", x, y, p[0], p[1],
                p[2], r, g, b, tol);
}

/* PNG bytes from libpng's simplified writer. */
static uint8_t *png_bytes(png_image *pi, const void *buf, int32_t stride, const void *cmap,
                          size_t *size) {
  png_alloc_size_t n = 0;
  ck_assert(png_image_write_to_memory(pi, NULL, &n, 0, buf, stride, cmap));
  uint8_t *out = malloc(n);
  ck_assert(png_image_write_to_memory(pi, out, &n, 0, buf, stride, cmap));
  *size = n;
  return out;
}

/* JPEG bytes from TurboJPEG; free with tjFree. */
static uint8_t *jpeg_bytes(const uint8_t *buf, int w, int h, int pf, int samp, int q,
                           size_t *size) {
  tjhandle tj = tjInitCompress();
  unsigned char *out = NULL;
  unsigned long n = 0;
  ck_assert_int_eq(tjCompress2(tj, buf, w, 0, h, pf, &out, &n, samp, q, 0), 0);
  tjDestroy(tj);
  *size = n;
  return out;
}

static uint8_t *image_jpeg(const negcut_image *img, int q, size_t *size) {
  return jpeg_bytes(img->pixels, (int)img->width, (int)img->height, TJPF_RGB, TJSAMP_444, q,
                    size);
}

static uint8_t *image_png(const negcut_image *img, size_t *size) {
  png_image pi;
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  pi.width = img->width;
  pi.height = img->height;
  pi.format = PNG_FORMAT_RGB;
  return png_bytes(&pi, img->pixels, (int32_t)img->stride_bytes, NULL, size);
}

static uint64_t lcg_state;
static uint32_t lcg(void) {
  lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(lcg_state >> 33);
}

/* ------------------------------------------------------------ contract */

START_TEST(test_api_contract) {
  negcut_image *img = (negcut_image *)&lcg_state; /* must come back NULL */
  negcut_image_load_options lo;
  negcut_image_save_options so;
  ck_assert_int_eq(negcut_image_load_options_init(NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_image_save_options_init(NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_image_load_options_init(&lo), NEGCUT_OK);
  ck_assert_uint_eq(lo.version, NEGCUT_IMAGE_LOAD_OPTIONS_VERSION);
  ck_assert_uint_eq(lo.max_pixels, 0);
  ck_assert_int_eq(negcut_image_save_options_init(&so), NEGCUT_OK);
  ck_assert_int_eq(so.jpeg_quality, 95);

  ck_assert_int_eq(negcut_image_load(NULL, NULL, "x.png", NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_image_load(&img, NULL, NULL, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(img);
  ck_assert_int_eq(negcut_image_load(&img, NULL, "", NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_image_load_memory(NULL, NULL, "x", 1, NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_image_load_memory(&img, NULL, NULL, 10, NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_image_create(NULL, NULL, 2, 2), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_image_create(&img, NULL, 0, 2), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_image_create(&img, NULL, 2, 0), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(img);

  lo.version = 7;
  ck_assert_int_eq(negcut_image_load(&img, NULL, "x.png", &lo), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "version"));
  negcut_image_load_options_init(&lo);
  lo.flags = 0x80;
  ck_assert_int_eq(negcut_image_load_memory(&img, NULL, "x", 1, &lo),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "flags"));

  negcut_image *ok = NULL;
  ck_assert_int_eq(negcut_image_create(&ok, NULL, 4, 3), NEGCUT_OK);
  ck_assert_int_eq(negcut_image_save(NULL, NULL, "/tmp/x.png", NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_image_save(NULL, ok, NULL, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  so.version = 0;
  ck_assert_int_eq(negcut_image_save(NULL, ok, "/tmp/x.png", &so), NEGCUT_ERR_INVALID_ARGUMENT);
  negcut_image_save_options_init(&so);
  so.jpeg_quality = 101;
  ck_assert_int_eq(negcut_image_save(NULL, ok, "/tmp/x.jpg", &so), NEGCUT_ERR_INVALID_ARGUMENT);
  so.jpeg_quality = -1;
  ck_assert_int_eq(negcut_image_save(NULL, ok, "/tmp/x.jpg", &so), NEGCUT_ERR_INVALID_ARGUMENT);
  negcut_image bad = *ok;
  bad.channels = 2;
  ck_assert_int_eq(negcut_image_save(NULL, &bad, "/tmp/x.png", NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  bad = *ok;
  bad.stride_bytes = 11;
  ck_assert_int_eq(negcut_image_save(NULL, &bad, "/tmp/x.png", NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  bad = *ok;
  bad.pixels = NULL;
  ck_assert_int_eq(negcut_image_save(NULL, &bad, "/tmp/x.png", NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  negcut_image_free(ok);
  negcut_image_free(NULL);

  /* Errors land on the context when there is one. */
  negcut_ctx *ctx = NULL;
  ck_assert_int_eq(negcut_ctx_create(&ctx, NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_image_load_memory(&img, ctx, "nonsense", 8, NULL),
                   NEGCUT_ERR_BAD_FORMAT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "not a PNG or JPEG"));
  negcut_ctx_free(ctx);
}
END_TEST

START_TEST(test_create) {
  negcut_image *img = NULL;
  ck_assert_int_eq(negcut_image_create(&img, NULL, 5, 4), NEGCUT_OK);
  ck_assert_uint_eq(img->width, 5);
  ck_assert_uint_eq(img->height, 4);
  ck_assert_uint_eq(img->channels, 3);
  ck_assert_uint_eq(img->stride_bytes, 15);
  for (int i = 0; i < 60; i++) ck_assert_uint_eq(img->pixels[i], 0);
  negcut_image_free(img);
}
END_TEST

/* ---------------------------------------------------------- round trips */

START_TEST(test_png_roundtrip) {
  make_tmp_dir();
  negcut_image *img = pattern(37, 23), *back = NULL;
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("a.png"), NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("a.png"), NULL), NEGCUT_OK);
  ck_assert(same_pixels(img, back));
  negcut_image_free(back);
  /* Extension case does not matter; the loader ignores the name. */
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("B.PnG"), NULL), NEGCUT_OK);
  ck_assert_int_eq(rename(tmp_path("B.PnG"), tmp_path("b.jpg")), 0);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("b.jpg"), NULL), NEGCUT_OK);
  ck_assert(same_pixels(img, back));
  negcut_image_free(back);
  /* Saving over an existing file replaces it, and leaves no temporary. */
  negcut_image *other = pattern(8, 9);
  ck_assert_int_eq(negcut_image_save(NULL, other, tmp_path("a.png"), NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("a.png"), NULL), NEGCUT_OK);
  ck_assert(same_pixels(other, back));
  ck_assert_int_eq(count_entries(tmp_dir), 2);
  negcut_image_free(back);
  negcut_image_free(other);

  /* Gray and RGBA images from the caller's own buffer, with padded rows. */
  uint8_t buf[6 * 16];
  for (int i = 0; i < (int)sizeof buf; i++) buf[i] = (uint8_t)(i * 7);
  negcut_image gray = {5, 6, 1, 16, buf};
  ck_assert_int_eq(negcut_image_save(NULL, &gray, tmp_path("g.png"), NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("g.png"), NULL), NEGCUT_OK);
  ck_assert_uint_eq(back->width, 5);
  ck_assert_uint_eq(back->channels, 3);
  for (uint32_t y = 0; y < 6; y++)
    for (uint32_t x = 0; x < 5; x++) {
      int v = buf[y * 16 + x];
      assert_px(back, x, y, v, v, v, 0);
    }
  negcut_image_free(back);
  negcut_image rgba = {3, 6, 4, 16, buf};
  for (int y = 0; y < 6; y++)
    for (int x = 0; x < 3; x++) buf[y * 16 + x * 4 + 3] = 255; /* opaque */
  ck_assert_int_eq(negcut_image_save(NULL, &rgba, tmp_path("c.png"), NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("c.png"), NULL), NEGCUT_OK);
  for (uint32_t y = 0; y < 6; y++)
    for (uint32_t x = 0; x < 3; x++) {
      const uint8_t *s = buf + y * 16 + x * 4;
      assert_px(back, x, y, s[0], s[1], s[2], 0);
    }
  negcut_image_free(back);
  negcut_image_free(img);
  remove_tmp_dir();
}
END_TEST

START_TEST(test_jpeg_roundtrip) {
  make_tmp_dir();
  negcut_image *img = pattern(64, 48), *back = NULL;
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("a.jpg"), NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("a.jpg"), NULL), NEGCUT_OK);
  ck_assert_uint_eq(back->width, 64);
  ck_assert_uint_eq(back->height, 48);
  double p95 = psnr(img, back);
  ck_assert_msg(p95 > 35.0, "PSNR at q95 %.2f dB", p95);
  negcut_image_free(back);

  negcut_image_save_options so = NEGCUT_IMAGE_SAVE_OPTIONS_INIT;
  so.jpeg_quality = 50; /* 4:2:0 */
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("b.JPEG"), &so), NEGCUT_OK);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("b.JPEG"), NULL), NEGCUT_OK);
  double p50 = psnr(img, back);
  ck_assert_msg(p50 > 25.0 && p50 < p95, "PSNR at q50 %.2f dB (q95 %.2f)", p50, p95);
  negcut_image_free(back);

  /* Gray JPEG: loads as RGB with equal channels. */
  uint8_t g[16 * 16];
  for (int i = 0; i < 256; i++) g[i] = (uint8_t)(40 + (i % 16) * 8);
  negcut_image gray = {16, 16, 1, 16, g};
  ck_assert_int_eq(negcut_image_save(NULL, &gray, tmp_path("g.jpg"), NULL), NEGCUT_OK);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("g.jpg"), NULL), NEGCUT_OK);
  for (uint32_t y = 0; y < 16; y++)
    for (uint32_t x = 0; x < 16; x++) {
      const uint8_t *p = px(back, x, y);
      ck_assert(p[0] == p[1] && p[1] == p[2]);
      ck_assert_int_le(abs(p[0] - g[y * 16 + x]), 3);
    }
  negcut_image_free(back);

  /* Progressive JPEG. */
  tjhandle tj = tjInitCompress();
  unsigned char *jp = NULL;
  unsigned long jn = 0;
  ck_assert_int_eq(tjCompress2(tj, img->pixels, 64, 0, 48, TJPF_RGB, &jp, &jn, TJSAMP_444, 95,
                               TJFLAG_PROGRESSIVE),
                   0);
  tjDestroy(tj);
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, jp, jn, NULL), NEGCUT_OK);
  ck_assert_msg(psnr(img, back) > 35.0, "progressive PSNR %.2f", psnr(img, back));
  negcut_image_free(back);
  tjFree(jp);
  negcut_image_free(img);
  remove_tmp_dir();
}
END_TEST

/* --------------------------------------------------------- PNG variants */

START_TEST(test_png_variants) {
  negcut_image *back = NULL;
  png_image pi;
  size_t n;
  uint8_t *file;

  /* 8-bit gray. */
  uint8_t gray[4] = {0, 77, 200, 255};
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  pi.width = 2, pi.height = 2, pi.format = PNG_FORMAT_GRAY;
  file = png_bytes(&pi, gray, 2, NULL, &n);
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, file, n, NULL), NEGCUT_OK);
  ck_assert_uint_eq(back->channels, 3);
  for (int i = 0; i < 4; i++) assert_px(back, i % 2, i / 2, gray[i], gray[i], gray[i], 0);
  negcut_image_free(back);
  free(file);

  /* Palette, with a transparent entry that must come out black. */
  uint8_t cmap[4 * 4] = {255, 0, 0, 255, 0, 255, 0, 255, 10, 20, 250, 255, 90, 90, 90, 0};
  uint8_t idx[6] = {0, 1, 2, 3, 2, 1};
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  pi.width = 3, pi.height = 2, pi.format = PNG_FORMAT_RGBA_COLORMAP;
  pi.colormap_entries = 4;
  file = png_bytes(&pi, idx, 3, cmap, &n);
  ck_assert_uint_eq(file[25], 3); /* IHDR colour type: really a palette file */
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, file, n, NULL), NEGCUT_OK);
  for (int i = 0; i < 6; i++) {
    const uint8_t *c = cmap + idx[i] * 4;
    if (c[3] == 255)
      assert_px(back, i % 3, i / 3, c[0], c[1], c[2], 0);
    else
      assert_px(back, i % 3, i / 3, 0, 0, 0, 0);
  }
  negcut_image_free(back);
  free(file);

  /* RGBA: opaque exact, transparent black, half alpha darker in between. */
  uint8_t rgba[3 * 4] = {10, 200, 30, 255, 250, 250, 250, 0, 200, 100, 50, 128};
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  pi.width = 3, pi.height = 1, pi.format = PNG_FORMAT_RGBA;
  file = png_bytes(&pi, rgba, 12, NULL, &n);
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, file, n, NULL), NEGCUT_OK);
  assert_px(back, 0, 0, 10, 200, 30, 0);
  assert_px(back, 1, 0, 0, 0, 0, 0);
  const uint8_t *h = px(back, 2, 0);
  ck_assert(h[0] > 0 && h[0] < 200 && h[1] > 0 && h[1] < 100 && h[2] < 50);
  ck_assert(h[0] > h[1] && h[1] > h[2]);
  negcut_image_free(back);
  free(file);

  /* 16-bit written by the simplified API is linear and says so (gAMA 1.0):
   * 0 and 65535 stay black and white, linear 0.5 is encoded as libpng's
   * sRGB approximation (a 2.2 power) does: 0.5^(1/2.2) * 255 = 186. */
  uint16_t lin[3 * 2] = {0, 65535, 32768, 65535, 0, 0};
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  pi.width = 2, pi.height = 1, pi.format = PNG_FORMAT_LINEAR_RGB;
  file = png_bytes(&pi, lin, 6, NULL, &n);
  ck_assert_uint_eq(file[24], 16); /* IHDR bit depth */
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, file, n, NULL), NEGCUT_OK);
  assert_px(back, 0, 0, 0, 255, 186, 1);
  assert_px(back, 1, 0, 255, 0, 0, 0);
  negcut_image_free(back);
  free(file);
}
END_TEST

/* A 16-bit PNG with no gamma chunk, written with libpng's full API; setjmp
 * is fine in a test. */
typedef struct membuf {
  uint8_t *p;
  size_t n, cap;
} membuf;

static void mem_write(png_structp png, png_bytep data, size_t len) {
  membuf *m = png_get_io_ptr(png);
  if (m->n + len > m->cap) {
    m->cap = (m->n + len) * 2;
    m->p = realloc(m->p, m->cap);
  }
  memcpy(m->p + m->n, data, len);
  m->n += len;
}
static void mem_flush(png_structp png) { (void)png; }

START_TEST(test_png_16bit_no_gamma) {
  membuf m = {0};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  ck_assert(!setjmp(png_jmpbuf(png)));
  png_set_write_fn(png, &m, mem_write, mem_flush);
  png_set_IHDR(png, info, 2, 1, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  /* big-endian samples: 0x8080 0x0000 0xFFFF | 0x1010 0xC0C0 0x4040 */
  uint8_t row[12] = {0x80, 0x80, 0, 0, 0xFF, 0xFF, 0x10, 0x10, 0xC0, 0xC0, 0x40, 0x40};
  png_write_row(png, row);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  negcut_image *back = NULL;
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, m.p, m.n, NULL), NEGCUT_OK);
  /* Taken as sRGB-encoded: the high byte, give or take rounding. */
  assert_px(back, 0, 0, 0x80, 0, 0xFF, 1);
  assert_px(back, 1, 0, 0x10, 0xC0, 0x40, 1);
  negcut_image_free(back);
  free(m.p);
}
END_TEST

/* ---------------------------------------------------------------- EXIF */

static void put16(uint8_t *p, unsigned v, int le) {
  p[le ? 0 : 1] = (uint8_t)v;
  p[le ? 1 : 0] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v, int le) {
  for (int i = 0; i < 4; i++) p[le ? i : 3 - i] = (uint8_t)(v >> (8 * i));
}

/* jpeg with an APP1 Exif segment spliced in after SOI: IFD0 holds a Make
 * entry (pointing past the IFD) and then Orientation. ifd_off and
 * entry_count let a test lie about the structure. */
static uint8_t *splice_exif(const uint8_t *jpeg, size_t n, int orientation, int le,
                            uint32_t ifd_off, unsigned entry_count, unsigned tag,
                            size_t *out_n) {
  uint8_t tiff[8 + 2 + 2 * 12 + 4 + 8];
  memset(tiff, 0, sizeof tiff);
  tiff[0] = tiff[1] = le ? 'I' : 'M';
  put16(tiff + 2, 42, le);
  put32(tiff + 4, ifd_off, le);
  put16(tiff + 8, entry_count, le);
  uint8_t *e = tiff + 10;
  put16(e, 0x010F, le), put16(e + 2, 2, le), put32(e + 4, 6, le), put32(e + 8, 38, le);
  e += 12;
  put16(e, tag, le), put16(e + 2, 3, le), put32(e + 4, 1, le), put16(e + 8, orientation, le);
  memcpy(tiff + 38, "Maker", 6);
  size_t seg = 2 + 6 + sizeof tiff;
  uint8_t *out = malloc(n + 2 + seg);
  memcpy(out, jpeg, 2);
  out[2] = 0xFF, out[3] = 0xE1, out[4] = (uint8_t)(seg >> 8), out[5] = (uint8_t)seg;
  memcpy(out + 6, "Exif\0\0", 6);
  memcpy(out + 12, tiff, sizeof tiff);
  memcpy(out + 2 + 2 + seg, jpeg + 2, n - 2);
  *out_n = n + 2 + seg;
  return out;
}

/* The upright image for a stored one, written as where each stored pixel
 * goes (the library computes where each shown pixel comes from). */
static negcut_image *oriented(const negcut_image *s, int o) {
  uint32_t w = s->width, h = s->height;
  negcut_image *d = NULL;
  ck_assert_int_eq(negcut_image_create(&d, NULL, o >= 5 ? h : w, o >= 5 ? w : h), NEGCUT_OK);
  for (uint32_t sy = 0; sy < h; sy++)
    for (uint32_t sx = 0; sx < w; sx++) {
      uint32_t x, y;
      switch (o) {
      case 1: x = sx, y = sy; break;
      case 2: x = w - 1 - sx, y = sy; break;
      case 3: x = w - 1 - sx, y = h - 1 - sy; break;
      case 4: x = sx, y = h - 1 - sy; break;
      case 5: x = sy, y = sx; break;
      case 6: x = h - 1 - sy, y = sx; break; /* turned clockwise */
      case 7: x = h - 1 - sy, y = w - 1 - sx; break;
      default: x = sy, y = w - 1 - sx; break; /* 8: counter-clockwise */
      }
      memcpy(d->pixels + y * d->stride_bytes + x * 3, px(s, sx, sy), 3);
    }
  return d;
}

START_TEST(test_exif_orientation) {
  /* 24x16, four flat quadrants: red, green / blue, white. */
  negcut_image *src = NULL, *base = NULL, *got = NULL;
  ck_assert_int_eq(negcut_image_create(&src, NULL, 24, 16), NEGCUT_OK);
  static const uint8_t q[4][3] = {{220, 20, 20}, {20, 220, 20}, {20, 20, 220}, {240, 240, 240}};
  for (uint32_t y = 0; y < 16; y++)
    for (uint32_t x = 0; x < 24; x++)
      memcpy(src->pixels + y * src->stride_bytes + x * 3, q[(y >= 8) * 2 + (x >= 16)], 3);
  size_t n, sn;
  uint8_t *jpeg = image_jpeg(src, 100, &n);
  ck_assert_int_eq(negcut_image_load_memory(&base, NULL, jpeg, n, NULL), NEGCUT_OK);
  ck_assert_msg(psnr(src, base) > 30, "base PSNR %.1f", psnr(src, base));

  for (int le = 0; le <= 1; le++)
    for (int o = 1; o <= 8; o++) {
      uint8_t *ex = splice_exif(jpeg, n, o, le, 8, 2, 0x0112, &sn);
      ck_assert_int_eq(negcut_image_load_memory(&got, NULL, ex, sn, NULL), NEGCUT_OK);
      negcut_image *want = oriented(base, o);
      ck_assert_msg(same_pixels(got, want), "orientation %d (%s) differs", o, le ? "II" : "MM");
      negcut_image_free(want);
      negcut_image_free(got);
      /* KEEP_ORIENTATION: the stored layout. */
      negcut_image_load_options lo = NEGCUT_IMAGE_LOAD_OPTIONS_INIT;
      lo.flags = NEGCUT_IMAGE_LOAD_KEEP_ORIENTATION;
      ck_assert_int_eq(negcut_image_load_memory(&got, NULL, ex, sn, &lo), NEGCUT_OK);
      ck_assert(same_pixels(got, base));
      negcut_image_free(got);
      free(ex);
    }

  /* What a viewer shows, independently of the table above: orientation 6
   * (turn clockwise) puts the stored top-left (red) at the top right and
   * the stored top-right (green) at the bottom right. */
  uint8_t *ex = splice_exif(jpeg, n, 6, 1, 8, 2, 0x0112, &sn);
  ck_assert_int_eq(negcut_image_load_memory(&got, NULL, ex, sn, NULL), NEGCUT_OK);
  ck_assert_uint_eq(got->width, 16);
  ck_assert_uint_eq(got->height, 24);
  assert_px(got, 15, 0, 220, 20, 20, 12);
  assert_px(got, 15, 23, 20, 220, 20, 12);
  assert_px(got, 0, 0, 20, 20, 220, 12);
  assert_px(got, 0, 23, 240, 240, 240, 12);
  negcut_image_free(got);
  free(ex);
  /* Orientation 8 (counter-clockwise): red at the bottom left. */
  ex = splice_exif(jpeg, n, 8, 0, 8, 2, 0x0112, &sn);
  ck_assert_int_eq(negcut_image_load_memory(&got, NULL, ex, sn, NULL), NEGCUT_OK);
  assert_px(got, 0, 23, 220, 20, 20, 12);
  assert_px(got, 15, 0, 240, 240, 240, 12);
  negcut_image_free(got);
  free(ex);

  /* Lies in the EXIF block are ignored, never trusted: orientation 1. */
  const struct { uint32_t ifd; unsigned count; int o; unsigned tag; } lies[] = {
      {0xFFFFFFF0u, 2, 6, 0x0112}, /* IFD beyond the segment */
      {8, 0xFFFF, 6, 0x0113},      /* more entries than fit, none the tag */
      {42, 2, 6, 0x0112},          /* IFD whose entries run off the end */
      {8, 2, 9, 0x0112},           /* orientations out of range */
      {8, 2, 0, 0x0112},
      {8, 1, 6, 0x0112}};          /* the tag beyond the stated count */
  for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
    ex = splice_exif(jpeg, n, lies[i].o, (int)i & 1, lies[i].ifd, lies[i].count, lies[i].tag,
                     &sn);
    ck_assert_int_eq(negcut_image_load_memory(&got, NULL, ex, sn, NULL), NEGCUT_OK);
    ck_assert_msg(same_pixels(got, base), "lie %zu was believed", i);
    negcut_image_free(got);
    free(ex);
  }
  /* A segment length running past the end of the file. */
  ex = splice_exif(jpeg, n, 6, 1, 8, 2, 0x0112, &sn);
  ex[4] = 0xFF, ex[5] = 0xF0;
  ck_assert_int_ne(negcut_image_load_memory(&got, NULL, ex, sn, NULL), NEGCUT_OK);
  ck_assert_ptr_null(got);
  free(ex);

  tjFree(jpeg);
  negcut_image_free(base);
  negcut_image_free(src);
}
END_TEST

/* ---------------------------------------------------------------- CMYK */

/* libjpeg-turbo's own RGB to (inverted, Adobe) CMYK, as in its rdppm.c. */
static void rgb_to_cmyk(const uint8_t *rgb, uint8_t *cmyk) {
  double c = 1.0 - rgb[0] / 255.0, m = 1.0 - rgb[1] / 255.0, y = 1.0 - rgb[2] / 255.0;
  double k = fmin(fmin(c, m), y);
  if (k == 1.0)
    c = m = y = 0.0;
  else
    c = (c - k) / (1.0 - k), m = (m - k) / (1.0 - k), y = (y - k) / (1.0 - k);
  cmyk[0] = (uint8_t)(255.0 - c * 255.0 + 0.5);
  cmyk[1] = (uint8_t)(255.0 - m * 255.0 + 0.5);
  cmyk[2] = (uint8_t)(255.0 - y * 255.0 + 0.5);
  cmyk[3] = (uint8_t)(255.0 - k * 255.0 + 0.5);
}

START_TEST(test_cmyk_jpeg) {
  static const uint8_t colours[4][3] = {{200, 40, 40}, {30, 160, 90}, {60, 70, 210}, {250, 240, 120}};
  enum { W = 32, H = 16 };
  uint8_t rgb[W * H * 3], cmyk[W * H * 4];
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      memcpy(rgb + (y * W + x) * 3, colours[x / 8], 3);
      rgb_to_cmyk(rgb + (y * W + x) * 3, cmyk + (y * W + x) * 4);
    }
  size_t n;
  uint8_t *jpeg = jpeg_bytes(cmyk, W, H, TJPF_CMYK, TJSAMP_444, 98, &n);
  tjhandle tj = tjInitDecompress();
  int w, h, ss, cs;
  ck_assert_int_eq(tjDecompressHeader3(tj, jpeg, n, &w, &h, &ss, &cs), 0);
  ck_assert(cs == TJCS_YCCK || cs == TJCS_CMYK);
  tjDestroy(tj);
  negcut_image *back = NULL;
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, jpeg, n, NULL), NEGCUT_OK);
  ck_assert_uint_eq(back->width, W);
  ck_assert_uint_eq(back->height, H);
  for (int b = 0; b < 4; b++) /* block centres, away from the edges' ringing */
    assert_px(back, (uint32_t)(b * 8 + 4), 8, colours[b][0], colours[b][1], colours[b][2], 6);
  negcut_image_free(back);
  tjFree(jpeg);
}
END_TEST

/* ------------------------------------------------------------- limits */

START_TEST(test_limits) {
  make_tmp_dir();
  negcut_image *img = pattern(20, 20), *back = NULL;
  size_t pn, jn;
  uint8_t *png = image_png(img, &pn), *jpeg = image_jpeg(img, 90, &jn);
  negcut_image_load_options lo = NEGCUT_IMAGE_LOAD_OPTIONS_INIT;
  lo.max_pixels = 100;
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, png, pn, &lo), NEGCUT_ERR_LIMIT);
  ck_assert_ptr_null(back);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "max_pixels"));
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, jpeg, jn, &lo), NEGCUT_ERR_LIMIT);
  write_bytes(tmp_path("a.jpg"), jpeg, jn);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("a.jpg"), &lo), NEGCUT_ERR_LIMIT);
  lo.max_pixels = 400; /* exactly enough */
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, png, pn, &lo), NEGCUT_OK);
  negcut_image_free(back);
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, jpeg, jn, &lo), NEGCUT_OK);
  negcut_image_free(back);
  lo.max_pixels = 0;
  lo.max_file_bytes = jn - 1;
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("a.jpg"), &lo), NEGCUT_ERR_LIMIT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "max_file_bytes"));
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, jpeg, jn, &lo), NEGCUT_ERR_LIMIT);
  lo.max_file_bytes = jn;
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("a.jpg"), &lo), NEGCUT_OK);
  negcut_image_free(back);

  /* A header claiming 60000 x 60000 is refused from its header alone. */
  uint8_t *big = malloc(jn);
  memcpy(big, jpeg, jn);
  for (size_t i = 2; i + 8 < jn; i++)
    if (big[i] == 0xFF && big[i + 1] == 0xC0) { /* SOF0: FF C0 len(2) P(1) H(2) W(2) */
      big[i + 5] = 0xEA, big[i + 6] = 0x60, big[i + 7] = 0xEA, big[i + 8] = 0x60;
      break;
    }
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, big, jn, NULL), NEGCUT_ERR_LIMIT);
  free(big);
  free(png);
  tjFree(jpeg);
  negcut_image_free(img);
  remove_tmp_dir();
}
END_TEST

/* ------------------------------------------------------- hostile input */

/* Every prefix, with and without ACCEPT_DAMAGED: a status, never a crash,
 * and any image that comes back has the right size. Returns how many
 * proper prefixes loaded. */
static int load_prefixes(const uint8_t *file, size_t n, uint32_t flags,
                         const negcut_image *exact) {
  negcut_image_load_options lo = NEGCUT_IMAGE_LOAD_OPTIONS_INIT;
  lo.flags = flags;
  int loaded = 0;
  for (size_t len = 0; len <= n; len++) {
    negcut_image *img = NULL;
    uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees overreads */
    memcpy(copy, file, len);
    negcut_status st = negcut_image_load_memory(&img, NULL, copy, len, &lo);
    if (st == NEGCUT_OK) {
      ck_assert_uint_eq(img->width, 16);
      ck_assert_uint_eq(img->height, 12);
      ck_assert_uint_eq(img->channels, 3);
      if (len < n) loaded++;
      if (exact) ck_assert_msg(same_pixels(img, exact), "prefix %zu loaded wrong pixels", len);
    } else {
      ck_assert_ptr_null(img);
      ck_assert_msg(st == NEGCUT_ERR_BAD_FORMAT || st == NEGCUT_ERR_UNSUPPORTED,
                    "prefix %zu: %s", len, negcut_status_str(st));
      ck_assert_str_ne(negcut_ctx_last_error(NULL), "");
    }
    if (len == n) ck_assert_int_eq(st, NEGCUT_OK);
    negcut_image_free(img);
    free(copy);
  }
  return loaded;
}

START_TEST(test_truncation) {
  negcut_image *img = pattern(16, 12);
  size_t pn, jn;
  uint8_t *png = image_png(img, &pn), *jpeg = image_jpeg(img, 90, &jn);
  /* libpng stops reading once the image data is complete, so only prefixes
   * that lack (part of) the 12-byte IEND trailer load, and they are whole. */
  ck_assert_int_le(load_prefixes(png, pn, 0, img), 12);
  ck_assert_int_le(load_prefixes(png, pn, NEGCUT_IMAGE_LOAD_ACCEPT_DAMAGED, img), 12);
  /* Strict by default: no truncated JPEG gets through. */
  ck_assert_int_eq(load_prefixes(jpeg, jn, 0, NULL), 0);
  /* Accepting damage: prefixes that reach the scan decode, gray-filled. */
  ck_assert_int_gt(load_prefixes(jpeg, jn, NEGCUT_IMAGE_LOAD_ACCEPT_DAMAGED, NULL), 0);
  /* The refusal says why. */
  negcut_image *back = NULL;
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, jpeg, jn - 40, NULL),
                   NEGCUT_ERR_BAD_FORMAT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "damaged"));

  /* A progressive JPEG too. */
  tjhandle tj = tjInitCompress();
  unsigned char *pj = NULL;
  unsigned long pjn = 0;
  ck_assert_int_eq(tjCompress2(tj, img->pixels, 16, 0, 12, TJPF_RGB, &pj, &pjn, TJSAMP_420, 80,
                               TJFLAG_PROGRESSIVE),
                   0);
  tjDestroy(tj);
  ck_assert_int_eq(load_prefixes(pj, pjn, 0, NULL), 0);
  load_prefixes(pj, pjn, NEGCUT_IMAGE_LOAD_ACCEPT_DAMAGED, NULL);
  tjFree(pj);
  free(png);
  tjFree(jpeg);
  negcut_image_free(img);
}
END_TEST

START_TEST(test_garbage) {
  negcut_image *img = pattern(16, 12), *back = NULL;
  size_t pn, jn;
  uint8_t *png = image_png(img, &pn), *jpeg = image_jpeg(img, 90, &jn);
  uint8_t buf[4096];
  lcg_state = 12345;
  /* Random bytes, bare and behind each signature. */
  for (int t = 0; t < 300; t++) {
    size_t len = 1 + lcg() % sizeof buf;
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)lcg();
    if (t % 3 == 1 && len >= 8) memcpy(buf, png, 8);
    if (t % 3 == 2 && len >= 3) memcpy(buf, jpeg, 3);
    negcut_status st = negcut_image_load_memory(&back, NULL, buf, len, NULL);
    ck_assert_int_ne(st, NEGCUT_OK);
    ck_assert_ptr_null(back);
  }
  /* Valid files with a few bytes flipped: any status, sane images. */
  for (int t = 0; t < 600; t++) {
    const uint8_t *src = t & 1 ? jpeg : png;
    size_t len = t & 1 ? jn : pn;
    uint8_t *m = malloc(len);
    memcpy(m, src, len);
    for (int k = 0; k < 1 + t % 4; k++) m[lcg() % len] = (uint8_t)lcg();
    negcut_image_load_options lo = NEGCUT_IMAGE_LOAD_OPTIONS_INIT;
    lo.flags = t % 4 >= 2 ? NEGCUT_IMAGE_LOAD_ACCEPT_DAMAGED : 0;
    lo.max_pixels = 1u << 20; /* a flipped size byte may claim a huge image */
    negcut_status st = negcut_image_load_memory(&back, NULL, m, len, &lo);
    if (st == NEGCUT_OK) {
      ck_assert_uint_eq(back->channels, 3);
      ck_assert_uint_le((uint64_t)back->width * back->height, 1u << 20);
      ck_assert_uint_eq(back->stride_bytes, back->width * 3u);
    } else {
      ck_assert_ptr_null(back);
    }
    negcut_image_free(back);
    back = NULL;
    free(m);
  }
  /* A recognisable other format gets UNSUPPORTED with its name. */
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, "GIF89a\1\0\1\0", 10, NULL),
                   NEGCUT_ERR_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "GIF"));
  ck_assert_int_eq(negcut_image_load_memory(&back, NULL, "", 0, NULL), NEGCUT_ERR_BAD_FORMAT);
  free(png);
  tjFree(jpeg);
  negcut_image_free(img);
}
END_TEST

START_TEST(test_files) {
  make_tmp_dir();
  negcut_image *back = NULL;
  write_bytes(tmp_path("empty.png"), "", 0);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("empty.png"), NULL),
                   NEGCUT_ERR_BAD_FORMAT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "empty"));
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("missing.png"), NULL),
                   NEGCUT_ERR_IO);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "missing.png"));
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), strerror(ENOENT)));
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_dir, NULL), NEGCUT_ERR_IO);
  ck_assert_ptr_null(back);
  /* A truncated file on disk, through the file path. */
  negcut_image *img = pattern(16, 12);
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("t.jpg"), NULL), NEGCUT_OK);
  size_t n;
  uint8_t *b = read_bytes(tmp_path("t.jpg"), &n);
  write_bytes(tmp_path("t.jpg"), b, n / 2);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("t.jpg"), NULL),
                   NEGCUT_ERR_BAD_FORMAT);
  free(b);
  negcut_image_free(img);
  remove_tmp_dir();
}
END_TEST

/* --------------------------------------------------------------- saving */

START_TEST(test_save_failures) {
  make_tmp_dir();
  negcut_image *img = pattern(8, 8), *back = NULL;
  /* Unknown or missing extension: refused before anything is written. */
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("a.bmp"), NULL),
                   NEGCUT_ERR_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "extension"));
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("png"), NULL), NEGCUT_ERR_UNSUPPORTED);
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path(".png"), NULL),
                   NEGCUT_ERR_UNSUPPORTED);
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("x.png/b"), NULL),
                   NEGCUT_ERR_UNSUPPORTED);
  ck_assert_int_eq(count_entries(tmp_dir), 0);
  /* A missing directory: IO, nothing created anywhere. */
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("no/such/dir/a.png"), NULL),
                   NEGCUT_ERR_IO);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "no/such/dir/a.png"));
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("no/a.jpg"), NULL), NEGCUT_ERR_IO);
  ck_assert_int_eq(count_entries(tmp_dir), 0);

  /* Failed saves over an existing file keep its bytes. */
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("old.png"), NULL), NEGCUT_OK);
  size_t n0, n1;
  uint8_t *before = read_bytes(tmp_path("old.png"), &n0);
  negcut_image empty = *img;
  empty.width = 0;
  ck_assert_int_eq(negcut_image_save(NULL, &empty, tmp_path("old.png"), NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  /* old.png used as a directory: ENOTDIR. */
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("old.png/new.png"), NULL),
                   NEGCUT_ERR_IO);
  uint8_t *after = read_bytes(tmp_path("old.png"), &n1);
  ck_assert_uint_eq(n0, n1);
  ck_assert_int_eq(memcmp(before, after, n0), 0);
  free(after);
  ck_assert_int_eq(count_entries(tmp_dir), 1);

  /* A failure at the last step (rename over a non-empty directory): the
   * temporary file was fully written and must still be removed. */
  ck_assert_int_eq(mkdir(tmp_path("d.png"), 0755), 0);
  write_bytes(tmp_path("d.png/keep"), "x", 1);
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("d.png"), NULL), NEGCUT_ERR_IO);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "rename"));
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("d.png"), NULL), NEGCUT_ERR_IO);
  ck_assert_int_eq(count_entries(tmp_dir), 2);
  ck_assert_int_eq(count_entries(tmp_path("d.png")), 1);

  /* New files get 0666 less the umask, like any other. */
  mode_t old_mask = umask(027);
  ck_assert_int_eq(negcut_image_save(NULL, img, tmp_path("m.jpg"), NULL), NEGCUT_OK);
  umask(old_mask);
  struct stat sb;
  ck_assert_int_eq(stat(tmp_path("m.jpg"), &sb), 0);
  ck_assert_uint_eq(sb.st_mode & 0777, 0640);
  ck_assert_int_eq(negcut_image_load(&back, NULL, tmp_path("m.jpg"), NULL), NEGCUT_OK);
  negcut_image_free(back);
  free(before);
  negcut_image_free(img);
  remove_tmp_dir();
}
END_TEST

START_TEST(test_atomic_file) {
  make_tmp_dir();
  const char *p = tmp_path("f.bin");
  size_t n;
  ck_assert_int_eq(ngc_write_file_atomic(NULL, p, "hello", 5), NEGCUT_OK);
  ck_assert_int_eq(ngc_write_file_atomic(NULL, p, "bye", 3), NEGCUT_OK);
  uint8_t *b = read_bytes(p, &n);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(memcmp(b, "bye", 3), 0);
  free(b);
  ck_assert_int_eq(ngc_write_file_atomic(NULL, p, NULL, 0), NEGCUT_OK); /* empty file */
  b = read_bytes(p, &n);
  ck_assert_uint_eq(n, 0);
  free(b);
  ck_assert_int_eq(ngc_write_file_atomic(NULL, p, NULL, 4), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_write_file_atomic(NULL, NULL, "x", 1), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_write_file_atomic(NULL, "", "x", 1), NEGCUT_ERR_INVALID_ARGUMENT);

  /* Streaming, then abort: the old file stays, no temporary remains. */
  ck_assert_int_eq(ngc_write_file_atomic(NULL, p, "keep", 4), NEGCUT_OK);
  ngc_atomic_file *f = NULL;
  ck_assert_int_eq(ngc_atomic_file_open(NULL, p, &f), NEGCUT_OK);
  fputs("half a fil", ngc_atomic_file_stream(f));
  ck_assert_int_eq(count_entries(tmp_dir), 2);
  ngc_atomic_file_abort(f);
  ngc_atomic_file_abort(NULL);
  ck_assert_int_eq(count_entries(tmp_dir), 1);
  b = read_bytes(p, &n);
  ck_assert_uint_eq(n, 4);
  ck_assert_int_eq(memcmp(b, "keep", 4), 0);
  free(b);
  /* Streaming, then commit. */
  ck_assert_int_eq(ngc_atomic_file_open(NULL, p, &f), NEGCUT_OK);
  fputs("streamed", ngc_atomic_file_stream(f));
  ck_assert_int_eq(ngc_atomic_file_commit(f), NEGCUT_OK);
  b = read_bytes(p, &n);
  ck_assert_uint_eq(n, 8);
  ck_assert_int_eq(memcmp(b, "streamed", 8), 0);
  free(b);
  ck_assert_int_eq(count_entries(tmp_dir), 1);
  /* A path without a directory part lands in the working directory. */
  char cwd[512];
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  ck_assert_int_eq(chdir(tmp_dir), 0);
  ck_assert_int_eq(ngc_write_file_atomic(NULL, "rel.bin", "r", 1), NEGCUT_OK);
  ck_assert_int_eq(chdir(cwd), 0);
  ck_assert_int_eq(count_entries(tmp_dir), 2);
  remove_tmp_dir();
}
END_TEST

int main(void) {
  Suite *s = suite_create("image");
  TCase *api = tcase_create("api");
  tcase_add_test(api, test_api_contract);
  tcase_add_test(api, test_create);
  suite_add_tcase(s, api);
  TCase *codec = tcase_create("codec");
  tcase_add_test(codec, test_png_roundtrip);
  tcase_add_test(codec, test_jpeg_roundtrip);
  tcase_add_test(codec, test_png_variants);
  tcase_add_test(codec, test_png_16bit_no_gamma);
  tcase_add_test(codec, test_exif_orientation);
  tcase_add_test(codec, test_cmyk_jpeg);
  suite_add_tcase(s, codec);
  TCase *hostile = tcase_create("hostile");
  tcase_set_timeout(hostile, 60);
  tcase_add_test(hostile, test_limits);
  tcase_add_test(hostile, test_truncation);
  tcase_add_test(hostile, test_garbage);
  tcase_add_test(hostile, test_files);
  suite_add_tcase(s, hostile);
  TCase *save = tcase_create("save");
  tcase_add_test(save, test_save_failures);
  tcase_add_test(save, test_atomic_file);
  suite_add_tcase(s, save);
  return ngc_test_run(s);
}
