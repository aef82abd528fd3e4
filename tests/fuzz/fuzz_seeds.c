/* Writes the seed corpora of the fuzz targets, small valid inputs, under
 * <out>/<target>/: images made with libpng and TurboJPEG (every colour type
 * and JPEG kind the loader takes, EXIF orientations spliced into JPEGs),
 * safetensors files made with the library's writer, and models, networks
 * and a trainer state saved by the library itself, with the tiny shapes of
 * fuzz_common.h. Run by the fuzz_seeds CTest fixture.
 *
 *   fuzz_seeds <out>          exit status 0 when every seed was written */
#include <png.h>
#include <turbojpeg.h>

#include "fuzz_common.h"
#include "io/safetensors.h"

static char out_dir[512];
static int failures;

static void fail(const char *what, const char *why) {
  fprintf(stderr, "fuzz_seeds: %s: %s\n", what, why);
  failures++;
}

static void put(const char *target, const char *name, const uint8_t *prefix, size_t np,
                const void *data, size_t size) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", out_dir, target);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(prefix, 1, np, f) != np || (size && fwrite(data, 1, size, f) != size) ||
      fclose(f) != 0)
    fail(path, "cannot write");
}

static uint8_t *slurp(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  long n;
  if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
    *size = (size_t)n;
  } else {
    free(buf);
    buf = NULL;
    fail(path, "cannot read");
  }
  if (f) fclose(f);
  return buf;
}

/* ------------------------------------------------------------------ images */

/* An image seed: the two option bytes of fuzz_image.c, then the file. */
static void put_image(const char *name, uint8_t opt, uint8_t tr, const void *data, size_t size) {
  const uint8_t prefix[2] = {opt, tr};
  put("image", name, prefix, 2, data, size);
}

static void pattern(uint8_t *p, size_t n, unsigned salt) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 29u + salt * 71u + (i >> 3) * 5u);
}

static void png_seed(const char *name, uint32_t format, int w, int h, uint8_t opt, uint8_t tr) {
  png_image pi;
  uint8_t pixels[16 * 16 * 8], colormap[256 * 4], buf[8192];
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  pi.width = (png_uint_32)w;
  pi.height = (png_uint_32)h;
  pi.format = format;
  pattern(pixels, sizeof pixels, 1);
  const void *cmap = NULL;
  if (format & PNG_FORMAT_FLAG_COLORMAP) {
    pi.colormap_entries = 16;
    for (int i = 0; i < (int)sizeof pixels; i++) pixels[i] &= 15;
    pattern(colormap, sizeof colormap, 2);
    cmap = colormap;
  }
  png_alloc_size_t size = sizeof buf;
  if (!png_image_write_to_memory(&pi, buf, &size, 0, pixels, 0, cmap)) {
    fail(name, pi.message);
    return;
  }
  put_image(name, opt, tr, buf, (size_t)size);
}

/* A JPEG of w x h from pixel format pf, subsampling ss, TurboJPEG flags;
 * with an EXIF APP1 segment (orientation, byte order "II" or "MM") spliced
 * in after SOI when orientation > 0. */
static void jpeg_seed(const char *name, int pf, int ss, int flags, int w, int h, int quality,
                      int orientation, int big_endian, uint8_t opt, uint8_t tr) {
  uint8_t pixels[16 * 16 * 4], *jpeg = NULL, out[16384];
  unsigned long jsize = 0;
  pattern(pixels, sizeof pixels, 3);
  tjhandle tj = tjInitCompress();
  if (!tj || tjCompress2(tj, pixels, w, 0, h, pf, &jpeg, &jsize, ss, quality, flags) != 0) {
    fail(name, tjGetErrorStr2(tj));
    if (tj) tjDestroy(tj);
    return;
  }
  tjDestroy(tj);
  size_t n = 0;
  memcpy(out, jpeg, 2); /* SOI */
  n = 2;
  if (orientation > 0) {
    /* APP1: "Exif\0\0", TIFF header, IFD0 with one entry (0x0112 SHORT 1). */
    uint8_t t[26];
    int le = !big_endian;
#define W16(o, v) (le ? (t[o] = (uint8_t)(v), t[(o) + 1] = (uint8_t)((v) >> 8)) \
                      : (t[o] = (uint8_t)((v) >> 8), t[(o) + 1] = (uint8_t)(v)))
#define W32(o, v) (le ? (W16(o, (v) & 0xFFFF), W16((o) + 2, (v) >> 16)) \
                      : (W16(o, (v) >> 16), W16((o) + 2, (v) & 0xFFFF)))
    memset(t, 0, sizeof t);
    t[0] = t[1] = le ? 'I' : 'M';
    W16(2, 42);
    W32(4, 8);
    W16(8, 1);                      /* one entry */
    W16(10, 0x0112);                /* orientation */
    W16(12, 3);                     /* SHORT */
    W32(14, 1);                     /* count */
    W16(18, (unsigned)orientation); /* value, left-justified */
    W32(22, 0);                     /* no next IFD */
#undef W16
#undef W32
    size_t len = 2 + 6 + sizeof t;
    out[n++] = 0xFF;
    out[n++] = 0xE1;
    out[n++] = (uint8_t)(len >> 8);
    out[n++] = (uint8_t)len;
    memcpy(out + n, "Exif\0\0", 6);
    n += 6;
    memcpy(out + n, t, sizeof t);
    n += sizeof t;
  }
  if (n + jsize - 2 > sizeof out) {
    fail(name, "too large");
  } else {
    memcpy(out + n, jpeg + 2, jsize - 2);
    n += jsize - 2;
    put_image(name, opt, tr, out, n);
  }
  tjFree(jpeg);
}

static void image_seeds(void) {
  /* 0x40: CRCs fixed up by the harness (fuzz_image.c) */
  png_seed("rgb8.png", PNG_FORMAT_RGB, 8, 8, 0x40, 0x04);
  png_seed("gray.png", PNG_FORMAT_GRAY, 8, 5, 0x44, 0x09);
  png_seed("rgba.png", PNG_FORMAT_RGBA, 6, 8, 0x48, 0x00);
  png_seed("gray_alpha.png", PNG_FORMAT_GA, 7, 3, 0x4c, 0x0b);
  png_seed("rgb16.png", PNG_FORMAT_LINEAR_RGB, 5, 9, 0x40, 0x22);
  png_seed("rgba16.png", PNG_FORMAT_LINEAR_RGB_ALPHA, 4, 4, 0x00, 0x42);
  png_seed("palette.png", PNG_FORMAT_RGB_COLORMAP, 9, 7, 0x40, 0x61);
  png_seed("limit.png", PNG_FORMAT_RGB, 16, 16, 0x30, 0x00);
  jpeg_seed("rgb444.jpg", TJPF_RGB, TJSAMP_444, 0, 8, 8, 90, 0, 0, 0x00, 0x00);
  jpeg_seed("rgb420.jpg", TJPF_RGB, TJSAMP_420, 0, 16, 16, 75, 0, 0, 0x04, 0x23);
  jpeg_seed("gray.jpg", TJPF_GRAY, TJSAMP_GRAY, 0, 8, 16, 80, 0, 0, 0x00, 0x8a);
  jpeg_seed("progressive.jpg", TJPF_RGB, TJSAMP_422, TJFLAG_PROGRESSIVE, 16, 8, 85, 0, 0, 0x02,
            0x01);
  jpeg_seed("cmyk.jpg", TJPF_CMYK, TJSAMP_444, 0, 8, 8, 90, 0, 0, 0x00, 0x04);
  jpeg_seed("exif6_ii.jpg", TJPF_RGB, TJSAMP_444, 0, 16, 8, 90, 6, 0, 0x00, 0x02);
  jpeg_seed("exif3_mm.jpg", TJPF_RGB, TJSAMP_420, 0, 8, 16, 90, 3, 1, 0x00, 0x12);
  jpeg_seed("exif8_keep.jpg", TJPF_RGB, TJSAMP_444, 0, 8, 8, 90, 8, 0, 0x01, 0x05);
  jpeg_seed("exif5_damaged.jpg", TJPF_GRAY, TJSAMP_GRAY, 0, 16, 16, 90, 5, 1, 0x02, 0x2c);
}

/* ------------------------------------------------------------- safetensors */

static void st_seed(const char *name, ngc_st_writer *w) {
  void *buf = NULL;
  size_t len = 0;
  if (ngc_st_write_memory(NULL, w, &buf, &len) != NEGCUT_OK) {
    fail(name, negcut_ctx_last_error(NULL));
  } else {
    put("safetensors", name, NULL, 0, buf, len);
  }
  free(buf);
  ngc_st_writer_free(w);
}

static void safetensors_seeds(void) {
  static const float f[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
  static const uint8_t b[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  ngc_st_writer *w = NULL;
  ngc_st_writer_create(NULL, &w);
  st_seed("empty.safetensors", w);

  ngc_st_writer_create(NULL, &w);
  ngc_st_writer_set_metadata(w, "format", "pt");
  ngc_st_writer_set_metadata(w, "note", "metadata only");
  st_seed("metadata.safetensors", w);

  ngc_st_writer_create(NULL, &w);
  ngc_st_writer_add(w, "a.weight", NGC_ST_F32, 2, (const int64_t[]){2, 3}, f);
  ngc_st_writer_add(w, "a.bias", NGC_ST_F16, 1, (const int64_t[]){4}, b);
  ngc_st_writer_add(w, "scalar", NGC_ST_I64, 0, NULL, b);
  ngc_st_writer_add(w, "empty", NGC_ST_U8, 3, (const int64_t[]){2, 0, 5}, NULL);
  ngc_st_writer_add(w, "flags", NGC_ST_BOOL, 1, (const int64_t[]){3}, b);
  ngc_st_writer_add(w, "x", NGC_ST_BF16, 4, (const int64_t[]){1, 1, 1, 2}, b);
  ngc_st_writer_set_metadata(w, "format", "pt");
  st_seed("mixed.safetensors", w);
}

/* ---------------------------------------------- models, nets, trainer state */

static void file_seed(const char *target, const char *name, const char *path) {
  size_t n = 0;
  uint8_t *buf = slurp(path, &n);
  if (buf) put(target, name, NULL, 0, buf, n);
  free(buf);
}

/* The file at path again without its metadata: a converted reference
 * checkpoint, whose generator configuration is read off names and shapes. */
static void strip_metadata(const char *target, const char *name, const char *path) {
  ngc_st_file *f = NULL;
  ngc_st_writer *w = NULL;
  if (ngc_st_open(NULL, path, &f) != NEGCUT_OK) {
    fail(path, negcut_ctx_last_error(NULL));
    return;
  }
  ngc_st_writer_create(NULL, &w);
  for (int64_t i = 0; i < ngc_st_count(f); i++) {
    const ngc_st_entry *e = ngc_st_entry_at(f, i);
    ngc_st_writer_add(w, e->name, e->dtype, e->ndim, e->shape, e->data);
  }
  void *buf = NULL;
  size_t len = 0;
  if (ngc_st_write_memory(NULL, w, &buf, &len) == NEGCUT_OK)
    put(target, name, NULL, 0, buf, len);
  else
    fail(name, negcut_ctx_last_error(NULL));
  free(buf);
  ngc_st_writer_free(w);
  ngc_st_close(f);
}

static void save_net(negcut_net *net, const char *path, const char *what) {
  if (!net || negcut_net_save(net, path) != NEGCUT_OK)
    fail(what, negcut_ctx_last_error(fuzz_ctx()));
  negcut_net_free(net);
}

static void model_and_net_seeds(const char *tmp) {
  negcut_ctx *ctx = fuzz_ctx();
  char path[700];
  negcut_net *net = NULL;
  negcut_generator_options g;
  negcut_discriminator_options d;
  negcut_head_options h;

  fuzz_generator_options(&g);
  snprintf(path, sizeof path, "%s/g.safetensors", tmp);
  negcut_net_create_generator(&net, ctx, &g);
  save_net(net, path, "generator");
  file_seed("model", "generator.safetensors", path);
  file_seed("net", "generator.safetensors", path);
  file_seed("safetensors", "generator.safetensors", path);
  strip_metadata("model", "generator_no_metadata.safetensors", path);

  g.no_antialias = g.no_antialias_up = 1;
  g.n_blocks = 0;
  snprintf(path, sizeof path, "%s/g2.safetensors", tmp);
  negcut_net_create_generator(&net, ctx, &g);
  save_net(net, path, "generator (no antialias)");
  file_seed("model", "generator_no_antialias.safetensors", path);
  strip_metadata("model", "generator_no_antialias_no_metadata.safetensors", path);

  fuzz_generator_options(&g);
  g.input_nc = 1;
  g.output_nc = 2;
  g.n_blocks = 0;
  snprintf(path, sizeof path, "%s/g3.safetensors", tmp);
  negcut_net_create_generator(&net, ctx, &g);
  save_net(net, path, "generator (1 -> 2 channels)");
  file_seed("model", "generator_1to2.safetensors", path);

  fuzz_discriminator_options(&d);
  snprintf(path, sizeof path, "%s/d.safetensors", tmp);
  negcut_net_create_discriminator(&net, ctx, &d);
  save_net(net, path, "discriminator");
  file_seed("net", "discriminator.safetensors", path);

  fuzz_head_options(&h);
  snprintf(path, sizeof path, "%s/f.safetensors", tmp);
  negcut_net_create_projector(&net, ctx, &h);
  save_net(net, path, "projector");
  file_seed("net", "projector.safetensors", path);
  snprintf(path, sizeof path, "%s/n.safetensors", tmp);
  negcut_net_create_neggen(&net, ctx, &h);
  save_net(net, path, "negative generator");
  file_seed("net", "neggen.safetensors", path);
}

static void state_seeds(const char *tmp) {
  negcut_ctx *ctx = fuzz_ctx();
  negcut_trainer_options o;
  negcut_trainer *t = NULL;
  char root[700], path[700];
  snprintf(root, sizeof root, "%s/data", tmp);
  mkdir(root, 0700);
  fuzz_make_train_data(root);
  fuzz_trainer_options(&o, root);
  if (negcut_trainer_create(&t, ctx, &o) != NEGCUT_OK) {
    fail("trainer", negcut_ctx_last_error(ctx));
    return;
  }
  snprintf(path, sizeof path, "%s/state0.safetensors", tmp);
  if (negcut_trainer_save_state(t, path) != NEGCUT_OK) fail("state 0", negcut_ctx_last_error(ctx));
  file_seed("trainer_state", "state_start.safetensors", path);
  /* Three iterations: past the first epoch (two batches), Adam moments set. */
  for (int i = 0; i < 3; i++)
    if (negcut_trainer_step(t) != NEGCUT_OK) fail("step", negcut_ctx_last_error(ctx));
  snprintf(path, sizeof path, "%s/state3.safetensors", tmp);
  if (negcut_trainer_save_state(t, path) != NEGCUT_OK) fail("state 3", negcut_ctx_last_error(ctx));
  file_seed("trainer_state", "state_step3.safetensors", path);
  negcut_trainer_free(t);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_seeds <out>\n");
    return 2;
  }
  snprintf(out_dir, sizeof out_dir, "%s", argv[1]);
  mkdir(out_dir, 0755);
  const char *tmp = fuzz_scratch();
  image_seeds();
  safetensors_seeds();
  model_and_net_seeds(tmp);
  state_seeds(tmp);
  negcut_ctx_free(fuzz_ctx());
  if (failures) fprintf(stderr, "fuzz_seeds: %d seeds failed\n", failures);
  return failures ? 1 : 0;
}
