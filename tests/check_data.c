/* The training data pipeline (lib/train/data.h): bicubic resizing and the
 * whole transform against PIL (tools/resize_ref.py), listing, epochs and
 * pairing, crops and flips, determinism, resume, the fine-tune phase, gray
 * mode and errors. Test images are written here with negcut_image_save;
 * their pixels say where they came from: R = x, G = y, B = 10 * image id,
 * so a crop without resizing tells its position, image and flip. */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <negcut.h>
#include <negcut/image.h>

#include "ngc_test.h"
#include "train/data.h"

/* ------------------------------------------------------------ helpers */

static char tmp_dir[256];

static void make_tmp_dir(void) { ngc_test_mkdtemp(tmp_dir, sizeof tmp_dir, "ngc_data"); }

static void remove_tmp_dir(void) { ngc_test_rmtree(tmp_dir); }

static char *tpath(const char *name) {
  static char buf[8][512];
  static int i;
  char *b = buf[i++ & 7];
  snprintf(b, sizeof buf[0], "%s/%s", tmp_dir, name);
  return b;
}

/* mkdir -p for the folders of tmp_dir/rel. */
static void make_parents(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", tmp_dir, rel);
  for (char *s = p + strlen(tmp_dir) + 1; *s; s++)
    if (*s == '/') {
      *s = '\0';
      if (mkdir(p, 0777) != 0) ck_assert_int_eq(errno, EEXIST);
      *s = '/';
    }
}

/* An identifiable image at tmp_dir/rel: R = x, G = y, B = 10 * id. */
static void write_image(const char *rel, uint32_t w, uint32_t h, int id) {
  make_parents(rel);
  negcut_image *img = NULL;
  ck_assert_int_eq(negcut_image_create(&img, NULL, w, h), NEGCUT_OK);
  for (uint32_t y = 0; y < h; y++)
    for (uint32_t x = 0; x < w; x++) {
      uint8_t *p = img->pixels + y * img->stride_bytes + x * 3;
      p[0] = (uint8_t)x;
      p[1] = (uint8_t)y;
      p[2] = (uint8_t)(10 * id);
    }
  negcut_image_save_options o = NEGCUT_IMAGE_SAVE_OPTIONS_INIT;
  o.jpeg_quality = 100;
  ck_assert_int_eq(negcut_image_save(NULL, img, tpath(rel), &o), NEGCUT_OK);
  negcut_image_free(img);
}

/* n identifiable 16x12 images <dir>/00.png, 01.png, ... with ids id0, id0 + 1, ... */
static void write_images(const char *dir, int n, int id0) {
  char name[64];
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "%s/%02d.png", dir, i);
    write_image(name, 16, 12, id0 + i);
  }
}

static void write_text(const char *rel, const char *text) {
  make_parents(rel);
  FILE *f = fopen(tpath(rel), "wb");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

/* A value in [-1, 1] back to its 8-bit level. */
static int level(float v) { return (int)lrintf((v + 1.0f) * 127.5f); }

static float norm(int p) { return ((float)p / 255.0f - 0.5f) / 0.5f; }

static ngc_data_cfg cfg_for(const char *a, const char *b, ngc_preprocess pre, int load,
                            int crop) {
  ngc_data_cfg c = NGC_DATA_CFG_INIT;
  c.dir_a = a;
  c.dir_b = b;
  c.preprocess = pre;
  c.load_size = load;
  c.crop_size = crop;
  c.seed = 1234;
  return c;
}

static ngc_data *open_ok(negcut_ctx *ctx, const ngc_data_cfg *c) {
  ngc_data *d = NULL;
  negcut_status st = ngc_data_open(ctx, c, &d);
  ck_assert_msg(st == NEGCUT_OK, "open: %s", negcut_ctx_last_error(ctx));
  ck_assert_ptr_nonnull(d);
  return d;
}

static negcut_ctx *new_ctx(void) {
  negcut_ctx *ctx = NULL;
  ck_assert_int_eq(negcut_ctx_create(&ctx, NULL), NEGCUT_OK);
  return ctx;
}

/* One decoded image of a crop-mode batch: its id, crop position, flip. */
typedef struct seen {
  int id, x, y, flip;
} seen;

static seen decode(const float *img, int64_t h, int64_t w) {
  const float *r = img, *g = img + h * w, *b = img + 2 * h * w;
  seen s;
  int r0 = level(r[0]), r1 = level(r[w - 1]);
  s.flip = r0 > r1;
  s.x = s.flip ? r1 : r0;
  s.y = level(g[0]);
  s.id = level(b[0]) / 10;
  /* The whole crop must be consistent with that reading. */
  for (int64_t yy = 0; yy < h; yy++)
    for (int64_t xx = 0; xx < w; xx++) {
      int64_t sx = s.flip ? w - 1 - xx : xx;
      ck_assert_int_eq(level(r[yy * w + xx]), s.x + sx);
      ck_assert_int_eq(level(g[yy * w + xx]), s.y + yy);
      ck_assert_int_eq(level(b[yy * w + xx]), 10 * s.id);
    }
  return s;
}

/* ---------------------------------------------------- against PIL */

typedef struct u8img {
  int64_t w, h, c;
  uint8_t *p; /* (h, w, c) packed */
} u8img;

/* Loads a PNG (as RGB8) and keeps 1 or 3 channels. */
static u8img load_u8(const char *path, int channels) {
  negcut_image *img = NULL;
  negcut_status st = negcut_image_load(&img, NULL, path, NULL);
  ck_assert_msg(st == NEGCUT_OK, "%s: %s", path, negcut_ctx_last_error(NULL));
  u8img u = {img->width, img->height, channels, malloc((size_t)img->width * img->height * channels)};
  for (int64_t y = 0; y < u.h; y++)
    for (int64_t x = 0; x < u.w; x++)
      for (int64_t c = 0; c < channels; c++)
        u.p[(y * u.w + x) * channels + c] = img->pixels[y * img->stride_bytes + x * 3 + c];
  negcut_image_free(img);
  return u;
}

START_TEST(test_resize_vs_pil) {
  char dir[512], path[600], line[256];
  snprintf(dir, sizeof dir, "%s/resize", NGC_TEST_DATA_DIR);
  snprintf(path, sizeof path, "%s/manifest.txt", dir);
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "%s missing: run ctest (fixture data_resize: tools/resize_ref.py)",
                path);
  int n_resize = 0, n_pipe = 0;
  double worst_mean = 0.0;
  while (fgets(line, sizeof line, f)) {
    char kind[16], name[64], mode[8], pre[32];
    int a1, a2, a3, a4, a5;
    int got = sscanf(line, "%15s %63s %7s", kind, name, mode);
    ck_assert_int_eq(got, 3);
    int ch = !strcmp(mode, "L") ? 1 : 3;
    snprintf(path, sizeof path, "%s/%s_src.png", dir, name);
    u8img src = load_u8(path, !strcmp(kind, "resize") ? ch : 3);
    snprintf(path, sizeof path, "%s/%s_pil.png", dir, name);
    u8img pil = load_u8(path, ch);
    int64_t n = pil.w * pil.h * ch, maxd = 0;
    double sum = 0.0;
    if (!strcmp(kind, "resize")) {
      ck_assert_int_eq(sscanf(line, "%*s %*s %*s %d %d %d %d", &a1, &a2, &a3, &a4), 4);
      ck_assert_int_eq(src.w, a1);
      ck_assert_int_eq(src.h, a2);
      ck_assert_int_eq(pil.w, a3);
      ck_assert_int_eq(pil.h, a4);
      uint8_t *ours = malloc((size_t)n);
      ck_assert_int_eq(ngc_resize_bicubic(NULL, src.p, src.w, src.h, ch, ours, pil.w, pil.h),
                       NEGCUT_OK);
      for (int64_t i = 0; i < n; i++) {
        int64_t dd = labs((long)ours[i] - (long)pil.p[i]);
        sum += (double)dd;
        if (dd > maxd) maxd = dd;
      }
      free(ours);
      n_resize++;
    } else {
      ck_assert_int_eq(
          sscanf(line, "%*s %*s %*s %31s %d %d %d %d %d", pre, &a1, &a2, &a3, &a4, &a5), 6);
      ngc_preprocess m = !strcmp(pre, "resize_and_crop")        ? NGC_PRE_RESIZE_AND_CROP
                         : !strcmp(pre, "crop")                 ? NGC_PRE_CROP
                         : !strcmp(pre, "scale_width")          ? NGC_PRE_SCALE_WIDTH
                         : !strcmp(pre, "scale_width_and_crop") ? NGC_PRE_SCALE_WIDTH_AND_CROP
                                                                : NGC_PRE_NONE;
      ngc_data_geom g;
      ck_assert_int_eq(ngc_data_geometry(NULL, m, a1, a2, src.w, src.h, name, &g), NEGCUT_OK);
      ck_assert_msg(g.ow == pil.w && g.oh == pil.h, "%s: size %lldx%lld, PIL %lldx%lld", name,
                    (long long)g.ow, (long long)g.oh, (long long)pil.w, (long long)pil.h);
      ngc_data_draw dr = {a3, a4, a5};
      float *out = malloc((size_t)n * sizeof *out); /* (C, H, W) */
      negcut_status st = ngc_data_transform(NULL, src.p, src.w, src.h, ch, &g, &dr, out);
      ck_assert_msg(st == NEGCUT_OK, "%s: %s", name, negcut_ctx_last_error(NULL));
      for (int64_t c = 0; c < ch; c++)
        for (int64_t i = 0; i < pil.w * pil.h; i++) {
          float want = norm(pil.p[i * ch + c]);
          float v = out[c * pil.w * pil.h + i];
          int64_t dd = labs((long)level(v) - (long)pil.p[i * ch + c]);
          /* The float itself is torchvision's ToTensor + Normalize. */
          if (dd == 0) ck_assert_msg(v == want, "%s: %.9g != %.9g", name, v, want);
          sum += (double)dd;
          if (dd > maxd) maxd = dd;
        }
      free(out);
      n_pipe++;
    }
    double mean = sum / (double)n;
    printf("data: %-6s %-12s %-4s %4lldx%-4lld -> %4lldx%-4lld mean |ours - PIL| %.4f, "
           "max %lld (levels)\n",
           kind, name, mode, (long long)src.w, (long long)src.h, (long long)pil.w,
           (long long)pil.h, mean, (long long)maxd);
    ck_assert_msg(mean < 1.0, "%s: mean difference %.3f levels (>= 1)", name, mean);
    /* Beyond the 1-level requirement: the algorithm is PIL's, so all but
     * stray pixels must agree; a rounding slip shows up here. */
    ck_assert_msg(mean < 0.01 && maxd <= 1, "%s: mean %.4f max %lld levels: not PIL's arithmetic",
                  name, mean, (long long)maxd);
    if (mean > worst_mean) worst_mean = mean;
    free(src.p);
    free(pil.p);
  }
  fclose(f);
  printf("data: %d resize and %d pipeline cases, worst mean %.4f levels\n", n_resize, n_pipe,
         worst_mean);
  ck_assert_int_ge(n_resize, 10);
  ck_assert_int_ge(n_pipe, 5);
}
END_TEST

START_TEST(test_resize_basics) {
  /* Same size copies; bad arguments are refused; constant stays constant
   * (the coefficients of every output pixel sum to 1). */
  uint8_t src[6 * 4 * 3], dst[13 * 9 * 3];
  for (int i = 0; i < (int)sizeof src; i++) src[i] = (uint8_t)(i * 7);
  uint8_t same[sizeof src];
  ck_assert_int_eq(ngc_resize_bicubic(NULL, src, 6, 4, 3, same, 6, 4), NEGCUT_OK);
  ck_assert_int_eq(memcmp(src, same, sizeof src), 0);
  ck_assert_int_eq(ngc_resize_bicubic(NULL, src, 0, 4, 3, dst, 6, 4), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_resize_bicubic(NULL, src, 6, 4, 5, dst, 6, 4), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_resize_bicubic(NULL, NULL, 6, 4, 3, dst, 6, 4), NEGCUT_ERR_INVALID_ARGUMENT);
  memset(src, 77, sizeof src);
  ck_assert_int_eq(ngc_resize_bicubic(NULL, src, 6, 4, 3, dst, 13, 9), NEGCUT_OK);
  for (int i = 0; i < 13 * 9 * 3; i++) ck_assert_int_eq(dst[i], 77);
  ck_assert_int_eq(ngc_resize_bicubic(NULL, dst, 13, 9, 3, src, 6, 4), NEGCUT_OK);
  for (int i = 0; i < 6 * 4 * 3; i++) ck_assert_int_eq(src[i], 77);
  /* Python's round: half to even. */
  const int64_t sides[][2] = {{1, 0}, {2, 0}, {3, 4}, {6, 8}, {10, 8}, {14, 16}, {256, 256},
                              {258, 256}, {259, 260}, {286, 288}, {290, 288}};
  for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++)
    ck_assert_int_eq(ngc_round_to_4(sides[i][0]), sides[i][1]);
  /* PIL's L. */
  uint8_t rgb[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 10, 200, 31}, gray[5];
  ngc_rgb_to_gray(rgb, 5, gray);
  ck_assert_int_eq(gray[0], 76);
  ck_assert_int_eq(gray[1], 150);
  ck_assert_int_eq(gray[2], 29);
  ck_assert_int_eq(gray[3], 255);
  ck_assert_int_eq(gray[4], (10 * 19595 + 200 * 38470 + 31 * 7471 + 0x8000) >> 16);
}
END_TEST

/* ------------------------------------------------------------- listing */

START_TEST(test_listing) {
  make_tmp_dir();
  write_image("A/b/2.png", 16, 12, 0);
  write_image("A/a.PNG", 16, 12, 1);
  write_image("A/c/d/x.JPG", 16, 12, 2);
  write_image("A/c/y.jpeg", 16, 12, 3);
  write_image("A/c-1.png", 16, 12, 4);
  write_image("A/sub.png/inner.png", 16, 12, 5); /* a folder named like an image */
  write_text("A/notes.txt", "not an image");
  write_text("A/c/picture.gif", "GIF89a");
  write_text("A/c/png", "no extension");
  write_image("B/only.png", 16, 12, 6);
  ck_assert_int_eq(mkfifo(tpath("A/pipe.png"), 0600), 0); /* reading it would block */
  const char *want[] = {"A/a.PNG", "A/b/2.png", "A/c-1.png", "A/c/d/x.JPG", "A/c/y.jpeg",
                        "A/sub.png/inner.png"};
  char **paths = NULL;
  int64_t n = 0;
  char dir_slash[512];
  snprintf(dir_slash, sizeof dir_slash, "%s/A/", tmp_dir); /* trailing '/' dropped */
  ck_assert_int_eq(ngc_data_list(NULL, dir_slash, &paths, &n), NEGCUT_OK);
  ck_assert_int_eq(n, 6);
  for (int i = 0; i < 6; i++) ck_assert_str_eq(paths[i], tpath(want[i]));
  ngc_data_free_list(paths, n);

  negcut_ctx *ctx = new_ctx();
  ngc_data_cfg c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_CROP, 16, 8);
  c.no_flip = 1;
  ngc_data *d = open_ok(ctx, &c);
  ck_assert_int_eq(ngc_data_count(d, 0), 6);
  ck_assert_int_eq(ngc_data_count(d, 1), 1);
  ck_assert_str_eq(ngc_data_path(d, 0, 3), tpath("A/c/d/x.JPG"));
  ck_assert_ptr_null(ngc_data_path(d, 0, 6));
  ck_assert_ptr_null(ngc_data_path(d, 1, -1));
  ck_assert_int_eq(ngc_data_size(d), 6);
  ck_assert_int_eq(ngc_data_batches_per_epoch(d), 6);
  /* One epoch reads every A image once (the JPEGs too), B every time. */
  int count[8] = {0};
  float a[3 * 8 * 8], b[3 * 8 * 8];
  for (int i = 0; i < 6; i++) {
    int64_t h, w, ep;
    ck_assert_int_eq(ngc_data_next(d, a, b, 3 * 8 * 8, &h, &w, &ep), NEGCUT_OK);
    ck_assert_int_eq(ep, 1);
    ck_assert_int_eq(h, 8);
    ck_assert_int_eq(w, 8);
    /* JPEG is lossy: read the id from B, which quality 100 keeps near. */
    int id = (level(a[2 * 64]) + 5) / 10;
    ck_assert_int_le(id, 5);
    count[id]++;
    ck_assert_int_eq(decode(b, 8, 8).id, 6);
  }
  for (int i = 0; i < 6; i++) ck_assert_int_eq(count[i], 1);
  ngc_data_close(d);
  ngc_data_close(NULL);
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}
END_TEST

/* ------------------------------------------------------ epochs, pairing */

static void epoch_run(int na, int nb, int batch) {
  make_tmp_dir();
  write_images("A", na, 0);
  write_images("B", nb, 0);
  negcut_ctx *ctx = new_ctx();
  ngc_data_cfg c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_CROP, 16, 8);
  c.batch = batch;
  ngc_data *d = open_ok(ctx, &c);
  int64_t size = na > nb ? na : nb;
  ck_assert_int_eq(ngc_data_size(d), size);
  ck_assert_int_eq(ngc_data_batches_per_epoch(d), size / batch);
  int64_t per = 3 * 8 * 8;
  float *a = malloc((size_t)(batch * per) * sizeof *a), *b = malloc((size_t)(batch * per) * sizeof *b);
  int b_seen[32] = {0};
  for (int e = 1; e <= 4; e++) {
    int acount[32] = {0};
    for (int64_t k = 0; k < size / batch; k++) {
      ngc_data_state s;
      ngc_data_get_state(d, &s);
      ck_assert_int_eq(s.epoch, e);
      ck_assert_int_eq(s.index, k * batch);
      int64_t ep = 0;
      ck_assert_int_eq(ngc_data_next(d, a, b, batch * per, NULL, NULL, &ep), NEGCUT_OK);
      ck_assert_int_eq(ep, e);
      for (int i = 0; i < batch; i++) {
        acount[decode(a + i * per, 8, 8).id]++;
        int bid = decode(b + i * per, 8, 8).id;
        ck_assert_int_lt(bid, nb);
        b_seen[bid]++;
      }
    }
    /* A is read by index % |A| over a permutation of the epoch. */
    int64_t total = 0;
    for (int i = 0; i < na; i++) {
      total += acount[i];
      if (size / batch * batch == size) { /* whole epoch: exact counts */
        int64_t lo = size / na, hi = (size + na - 1) / na;
        ck_assert_msg(acount[i] >= lo && acount[i] <= hi, "epoch %d: A %d read %d times", e, i,
                      acount[i]);
      } else {
        ck_assert_int_le(acount[i], (size + na - 1) / na);
      }
    }
    ck_assert_int_eq(total, size / batch * batch);
  }
  /* B drawn at random: every B image shows up over 4 epochs. */
  if (nb <= size)
    for (int i = 0; i < nb; i++) ck_assert_msg(b_seen[i] > 0, "B %d never drawn", i);
  free(a);
  free(b);
  ngc_data_close(d);
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}

START_TEST(test_epochs_more_a) { epoch_run(7, 3, 1); }
END_TEST
START_TEST(test_epochs_more_b) { epoch_run(3, 8, 1); }
END_TEST
START_TEST(test_epochs_drop_last) { epoch_run(7, 4, 3); }
END_TEST

/* Data parallelism: ranks 0..2 of world 3, batch 2 each, read together
 * exactly what one instance of batch 6 reads (images, crops, flips, B
 * draws), batch for batch across two epochs (7 items: one global batch of
 * 6 per epoch, the last item dropped), with the same positions and epochs;
 * a state of one rank restores on another; bad rank / world refused. */
START_TEST(test_ranks_share_batches) {
  make_tmp_dir();
  write_images("A", 7, 0);
  write_images("B", 5, 10);
  negcut_ctx *ctx = new_ctx();
  ngc_data_cfg c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_CROP, 16, 8);
  enum { PER = 3 * 8 * 8 };
  c.batch = 6;
  ngc_data *all = open_ok(ctx, &c), *rank[3];
  c.batch = 2;
  c.world = 3;
  for (int r = 0; r < 3; r++) {
    c.rank = r;
    rank[r] = open_ok(ctx, &c);
    ck_assert_int_eq(ngc_data_batches_per_epoch(rank[r]), 1);
  }
  ck_assert_int_eq(ngc_data_batches_per_epoch(all), 1);
  float a6[6 * PER], b6[6 * PER], a2[2 * PER], b2[2 * PER];
  for (int k = 0; k < 2; k++) {
    int64_t e6, e2;
    ngc_data_state s6, s2;
    ngc_data_get_state(all, &s6);
    ck_assert_int_eq(ngc_data_next(all, a6, b6, 6 * PER, NULL, NULL, &e6), NEGCUT_OK);
    for (int r = 0; r < 3; r++) {
      ngc_data_get_state(rank[r], &s2);
      ck_assert_int_eq(s2.epoch, s6.epoch);
      ck_assert_int_eq(s2.index, s6.index);
      ck_assert_int_eq(ngc_data_next(rank[r], a2, b2, 2 * PER, NULL, NULL, &e2), NEGCUT_OK);
      ck_assert_int_eq(e2, e6);
      ck_assert_int_eq(memcmp(a2, a6 + r * 2 * PER, sizeof a2), 0);
      ck_assert_int_eq(memcmp(b2, b6 + r * 2 * PER, sizeof b2), 0);
    }
  }
  /* positions are global: rank 0's state is rank 2's */
  ngc_data_state s;
  ngc_data_get_state(rank[0], &s);
  ck_assert_int_eq(ngc_data_set_state(rank[2], &s), NEGCUT_OK);
  s.index = 2; /* not a multiple of the global batch */
  ck_assert_int_eq(ngc_data_check_state(rank[0], &s), NEGCUT_ERR_INVALID_ARGUMENT);
  /* bad rank or world; too few items for the global batch */
  ngc_data *bad = NULL;
  const int32_t ranks[3] = {3, -1, 0}, worlds[3] = {3, 3, 0};
  for (int k = 0; k < 3; k++) {
    c.rank = ranks[k];
    c.world = worlds[k];
    ck_assert_int_eq(ngc_data_open(ctx, &c, &bad), NEGCUT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "rank"));
  }
  c.rank = 0;
  c.world = 4; /* 8 items a global batch, 7 in the epoch */
  ck_assert_int_eq(ngc_data_open(ctx, &c, &bad), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "no batch of 8"));
  ngc_data_close(all);
  for (int r = 0; r < 3; r++) ngc_data_close(rank[r]);
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}
END_TEST

/* The A order differs between epochs (shuffle on). */
START_TEST(test_shuffle_varies) {
  make_tmp_dir();
  write_images("A", 8, 0);
  write_image("B/0.png", 16, 12, 0);
  negcut_ctx *ctx = new_ctx();
  ngc_data_cfg c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_CROP, 16, 8);
  ngc_data *d = open_ok(ctx, &c);
  float a[192], b[192];
  int order[3][8];
  for (int e = 0; e < 3; e++)
    for (int k = 0; k < 8; k++) {
      ck_assert_int_eq(ngc_data_next(d, a, b, 192, NULL, NULL, NULL), NEGCUT_OK);
      order[e][k] = decode(a, 8, 8).id;
    }
  int diff01 = memcmp(order[0], order[1], sizeof order[0]) != 0;
  int diff12 = memcmp(order[1], order[2], sizeof order[0]) != 0;
  ck_assert_msg(diff01 && diff12, "the epoch order repeats");
  int sorted = 1;
  for (int k = 0; k < 8; k++) sorted &= order[0][k] == k;
  ck_assert_msg(!sorted, "epoch 1 is not shuffled");
  ngc_data_close(d);
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}
END_TEST

/* ------------------------------------------------ values, crops, flips */

START_TEST(test_identity) {
  /* no_flip, crop = load = image size: the image itself, exactly. */
  make_tmp_dir();
  write_image("A/a.png", 12, 12, 3);
  write_image("B/b.png", 12, 12, 5);
  negcut_ctx *ctx = new_ctx();
  for (int mode = 0; mode < 2; mode++) {
    ngc_data_cfg c = cfg_for(tpath("A"), tpath("B"),
                             mode ? NGC_PRE_CROP : NGC_PRE_RESIZE_AND_CROP, 12, 12);
    c.no_flip = 1;
    ngc_data *d = open_ok(ctx, &c);
    ck_assert_int_eq(ngc_data_fixed_size(d), 12);
    float a[3 * 144], b[3 * 144];
    for (int k = 0; k < 5; k++) {
      int64_t h = 0, w = 0;
      ck_assert_int_eq(ngc_data_next(d, a, b, 3 * 144, &h, &w, NULL), NEGCUT_OK);
      ck_assert_int_eq(h, 12);
      ck_assert_int_eq(w, 12);
      for (int y = 0; y < 12; y++)
        for (int x = 0; x < 12; x++) {
          ck_assert_float_eq(a[0 * 144 + y * 12 + x], norm(x));
          ck_assert_float_eq(a[1 * 144 + y * 12 + x], norm(y));
          ck_assert_float_eq(a[2 * 144 + y * 12 + x], norm(30));
          ck_assert_float_eq(b[2 * 144 + y * 12 + x], norm(50));
        }
      ck_assert_float_eq(a[0], -1.0f);           /* level 0 */
      ck_assert_float_eq(norm(255), 1.0f);       /* and 255: the ends of [-1, 1] */
    }
    ngc_data_close(d);
  }
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}
END_TEST

START_TEST(test_values_in_range) {
  make_tmp_dir();
  write_image("A/a.png", 40, 30, 25);
  write_image("B/b.jpg", 23, 50, 20);
  negcut_ctx *ctx = new_ctx();
  ngc_data_cfg c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_RESIZE_AND_CROP, 37, 30);
  c.batch = 2;
  /* One A image, one B: the epoch has 1 item, no batch of 2. */
  ngc_data *d = NULL;
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(d);
  write_image("A/c.png", 33, 41, 1);
  d = open_ok(ctx, &c);
  ck_assert_int_eq(ngc_data_fixed_size(d), 32); /* round(30 / 4) * 4 */
  int64_t n = 2 * 3 * 32 * 32;
  float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
  for (int k = 0; k < 6; k++) {
    int64_t h, w;
    ck_assert_int_eq(ngc_data_next(d, a, b, n, &h, &w, NULL), NEGCUT_OK);
    ck_assert_int_eq(h, 32);
    ck_assert_int_eq(w, 32);
    float lo = 2, hi = -2;
    for (int64_t i = 0; i < n; i++) {
      lo = fminf(lo, fminf(a[i], b[i]));
      hi = fmaxf(hi, fmaxf(a[i], b[i]));
    }
    ck_assert_float_ge(lo, -1.0f);
    ck_assert_float_le(hi, 1.0f);
    ck_assert_float_lt(lo, hi);
  }
  ngc_data_close(d);
  free(a);
  free(b);
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}
END_TEST

START_TEST(test_flips_and_crops) {
  make_tmp_dir();
  write_image("A/a.png", 16, 12, 1);
  write_image("B/b.png", 16, 12, 2);
  negcut_ctx *ctx = new_ctx();
  ngc_data_cfg c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_CROP, 16, 8);
  ngc_data *d = open_ok(ctx, &c);
  const int N = 400;
  int flips_a = 0, flips_b = 0, disagree = 0, same_pos = 0;
  int xs[9] = {0}, ys[5] = {0}, pairs[9][5] = {{0}};
  float a[192], b[192];
  for (int k = 0; k < N; k++) {
    ck_assert_int_eq(ngc_data_next(d, a, b, 192, NULL, NULL, NULL), NEGCUT_OK);
    seen sa = decode(a, 8, 8), sb = decode(b, 8, 8);
    ck_assert_int_eq(sa.id, 1);
    ck_assert_int_eq(sb.id, 2);
    flips_a += sa.flip;
    flips_b += sb.flip;
    disagree += sa.flip != sb.flip;
    same_pos += sa.x == sb.x && sa.y == sb.y;
    ck_assert_int_le(sa.x, 8);
    ck_assert_int_le(sa.y, 4);
    xs[sa.x]++;
    ys[sa.y]++;
    pairs[sa.x][sa.y]++;
  }
  int npairs = 0;
  for (int i = 0; i < 9; i++)
    for (int j = 0; j < 5; j++) npairs += pairs[i][j] > 0;
  ck_assert_msg(npairs >= 40, "only %d of 45 crop positions seen: x and y not independent",
                npairs);
  printf("data: flips A %d, B %d of %d; A and B disagree %d times\n", flips_a, flips_b, N,
         disagree);
  /* p = 0.5: 200 +- 10 sigma. */
  ck_assert_int_gt(flips_a, 150);
  ck_assert_int_lt(flips_a, 250);
  ck_assert_int_gt(flips_b, 150);
  ck_assert_int_lt(flips_b, 250);
  ck_assert_int_gt(disagree, 150); /* A and B draw on their own */
  ck_assert_int_lt(same_pos, N / 4);
  for (int i = 0; i < 9; i++) ck_assert_msg(xs[i] > 10, "crop x %d seen %d times", i, xs[i]);
  for (int i = 0; i < 5; i++) ck_assert_msg(ys[i] > 20, "crop y %d seen %d times", i, ys[i]);
  ngc_data_close(d);
  /* no_flip: never flipped. */
  c.no_flip = 1;
  d = open_ok(ctx, &c);
  for (int k = 0; k < 50; k++) {
    ck_assert_int_eq(ngc_data_next(d, a, b, 192, NULL, NULL, NULL), NEGCUT_OK);
    ck_assert_int_eq(decode(a, 8, 8).flip, 0);
    ck_assert_int_eq(decode(b, 8, 8).flip, 0);
  }
  ngc_data_close(d);
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}
END_TEST

/* ------------------------------------------------ determinism, resume */

static void make_mixed_set(void) {
  char name[64];
  for (int i = 0; i < 5; i++) {
    snprintf(name, sizeof name, "A/s%d/%d.png", i % 2, i);
    write_image(name, (uint32_t)(30 + 3 * i), (uint32_t)(40 - 2 * i), i);
  }
  for (int i = 0; i < 3; i++) {
    snprintf(name, sizeof name, "B/%d.jpg", i);
    write_image(name, (uint32_t)(50 - 4 * i), (uint32_t)(28 + i), i + 10);
  }
}

/* k batches of 2 x (3, 24, 24) from d into out (k, 2, 2 * 3 * 24 * 24). */
#define MIX_N (2 * 3 * 24 * 24)
static void take(ngc_data *d, int k, float *out, int64_t *epochs) {
  for (int i = 0; i < k; i++) {
    int64_t ep;
    ck_assert_int_eq(ngc_data_next(d, out + (2 * i) * MIX_N, out + (2 * i + 1) * MIX_N, MIX_N,
                                   NULL, NULL, &ep),
                     NEGCUT_OK);
    if (epochs) epochs[i] = ep;
  }
}

START_TEST(test_determinism_and_resume) {
  make_tmp_dir();
  make_mixed_set();
  negcut_ctx *ctx = new_ctx();
  ngc_data_cfg c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_RESIZE_AND_CROP, 30, 24);
  c.batch = 2; /* 5 items: 2 batches per epoch */
  c.prefetch = 3;
  const int K = 9;
  size_t bytes = (size_t)(2 * K) * MIX_N * sizeof(float);
  float *r1 = malloc(bytes), *r2 = malloc(bytes), *r3 = malloc(bytes);
  int64_t ep[16];
  ngc_data *d1 = open_ok(ctx, &c);
  take(d1, K, r1, ep);
  for (int i = 0; i < K; i++) ck_assert_int_eq(ep[i], 1 + i / 2);
  ngc_data_close(d1);

  /* Same seed, other prefetch depth: the same bits. */
  c.prefetch = 1;
  ngc_data *d2 = open_ok(ctx, &c);
  take(d2, K, r2, NULL);
  ck_assert_int_eq(memcmp(r1, r2, bytes), 0);
  ngc_data_close(d2);

  /* Another seed: other batches. */
  c.seed = 99;
  ngc_data *d3 = open_ok(ctx, &c);
  take(d3, K, r3, NULL);
  ck_assert_int_ne(memcmp(r1, r3, bytes), 0);
  ngc_data_close(d3);
  c.seed = 1234;

  /* Resume after k batches, mid-epoch and at an epoch start. */
  const int ks[] = {3, 4};
  for (int t = 0; t < 2; t++) {
    int k = ks[t];
    c.prefetch = 2;
    ngc_data *da = open_ok(ctx, &c);
    take(da, k, r2, NULL);
    ngc_data_state s;
    ngc_data_get_state(da, &s);
    ck_assert_int_eq(s.epoch, 1 + k / 2);
    ck_assert_int_eq(s.index, (k % 2) * 2);
    ngc_data_close(da);
    ngc_data *db = open_ok(ctx, &c);
    take(db, 1, r3, NULL); /* move it elsewhere first, with batches queued */
    ck_assert_int_eq(ngc_data_set_state(db, &s), NEGCUT_OK);
    take(db, K - k, r3, NULL);
    ck_assert_int_eq(memcmp(r1 + (size_t)(2 * k) * MIX_N, r3, (size_t)(2 * (K - k)) * MIX_N * sizeof(float)),
                     0);
    /* Bad states change nothing. */
    ngc_data_state bad = s;
    bad.counter++;
    ck_assert_int_eq(ngc_data_set_state(db, &bad), NEGCUT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "counter"));
    bad = s;
    bad.index = 1; /* not a multiple of the batch */
    bad.counter = 0;
    ck_assert_int_eq(ngc_data_set_state(db, &bad), NEGCUT_ERR_INVALID_ARGUMENT);
    bad.index = 4; /* beyond the last whole batch */
    ck_assert_int_eq(ngc_data_set_state(db, &bad), NEGCUT_ERR_INVALID_ARGUMENT);
    bad.index = 0;
    bad.epoch = 0;
    ck_assert_int_eq(ngc_data_set_state(db, &bad), NEGCUT_ERR_INVALID_ARGUMENT);
    ngc_data_close(db);
  }
  free(r1);
  free(r2);
  free(r3);
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}
END_TEST

START_TEST(test_finetune) {
  make_tmp_dir();
  write_image("A/a.png", 16, 16, 1);
  write_image("B/b.png", 16, 16, 2);
  negcut_ctx *ctx = new_ctx();
  ngc_data_cfg c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_RESIZE_AND_CROP, 40, 16);
  c.no_flip = 1;
  ngc_data *d = open_ok(ctx, &c);
  float a[3 * 256], b[3 * 256];
  /* Before: a 16 crop of the image blown up to 40: never the image. */
  int identity = 0;
  for (int k = 0; k < 10; k++) {
    ck_assert_int_eq(ngc_data_next(d, a, b, 3 * 256, NULL, NULL, NULL), NEGCUT_OK);
    identity += a[0 * 256 + 1] == norm(1) && a[0 * 256 + 15] == norm(15) &&
                a[1 * 256 + 15 * 16] == norm(15);
  }
  ck_assert_int_eq(identity, 0);
  ngc_data_state s;
  ngc_data_get_state(d, &s);
  ck_assert_int_eq(s.finetune, 0);
  ngc_data_set_finetune(d, 1);
  ngc_data_get_state(d, &s);
  ck_assert_int_eq(s.finetune, 1);
  ck_assert_int_eq(s.epoch, 11);
  /* After: load_size = crop_size, so the crop is the whole image. */
  for (int k = 0; k < 5; k++) {
    ck_assert_int_eq(ngc_data_next(d, a, b, 3 * 256, NULL, NULL, NULL), NEGCUT_OK);
    seen sa = decode(a, 16, 16), sb = decode(b, 16, 16);
    ck_assert_int_eq(sa.x, 0);
    ck_assert_int_eq(sa.y, 0);
    ck_assert_int_eq(sa.id, 1);
    ck_assert_int_eq(sb.id, 2);
  }
  /* A resumed instance keeps the phase. */
  ngc_data_get_state(d, &s);
  ngc_data *d2 = open_ok(ctx, &c);
  ck_assert_int_eq(ngc_data_set_state(d2, &s), NEGCUT_OK);
  ck_assert_int_eq(ngc_data_next(d2, a, b, 3 * 256, NULL, NULL, NULL), NEGCUT_OK);
  ck_assert_int_eq(decode(a, 16, 16).x, 0);
  ngc_data_set_finetune(d2, 0);
  ck_assert_int_eq(ngc_data_next(d2, a, b, 3 * 256, NULL, NULL, NULL), NEGCUT_OK);
  ngc_data_close(d2);
  ngc_data_close(d);
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}
END_TEST

/* --------------------------------------------------------- gray, none */

START_TEST(test_gray) {
  make_tmp_dir();
  write_image("A/a.png", 12, 12, 7);
  write_image("B/b.png", 12, 12, 3);
  negcut_ctx *ctx = new_ctx();
  ngc_data_cfg c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_CROP, 12, 12);
  c.no_flip = 1;
  c.channels = 1;
  ngc_data *d = open_ok(ctx, &c);
  float a[144], b[144];
  ck_assert_int_eq(ngc_data_next(d, a, b, 144, NULL, NULL, NULL), NEGCUT_OK);
  for (int y = 0; y < 12; y++)
    for (int x = 0; x < 12; x++) {
      int l = (x * 19595 + y * 38470 + 70 * 7471 + 0x8000) >> 16;
      ck_assert_float_eq(a[y * 12 + x], norm(l));
      l = (x * 19595 + y * 38470 + 30 * 7471 + 0x8000) >> 16;
      ck_assert_float_eq(b[y * 12 + x], norm(l));
    }
  /* Three channels do not fit in a gray-sized buffer, and vice versa the
   * gray batch takes exactly 144 floats. */
  ngc_data_close(d);
  c.channels = 3;
  d = open_ok(ctx, &c);
  ck_assert_int_eq(ngc_data_next(d, a, b, 144, NULL, NULL, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ngc_data_close(d);
  c.channels = 2;
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_INVALID_ARGUMENT);
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}
END_TEST

START_TEST(test_none_sizes) {
  make_tmp_dir();
  write_image("A/a.png", 14, 10, 1);  /* -> 16 x 8 (3.5 -> 4, 2.5 -> 2) */
  write_image("B/b.png", 13, 9, 2);   /* -> 12 x 8 */
  negcut_ctx *ctx = new_ctx();
  ngc_data_cfg c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_NONE, 286, 256);
  ngc_data *d = open_ok(ctx, &c);
  ck_assert_int_eq(ngc_data_fixed_size(d), 0);
  float a[3 * 16 * 8], b[3 * 16 * 8];
  int64_t h, w, hb, wb;
  ngc_data_b_size(d, &hb, &wb);
  ck_assert_int_eq(hb, 0);
  ck_assert_int_eq(ngc_data_next(d, a, b, 3 * 16 * 8, &h, &w, NULL), NEGCUT_OK);
  ngc_data_b_size(d, &hb, &wb);
  ck_assert_int_eq(w, 16);
  ck_assert_int_eq(h, 8);
  ck_assert_int_eq(wb, 12);
  ck_assert_int_eq(hb, 8);
  ck_assert_int_eq(ngc_data_next(d, a, b, 3 * 16 * 8 - 1, &h, &w, NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ngc_data_close(d);
  /* Variable sizes need batch 1. */
  c.batch = 2;
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "none"));
  c.preprocess = NGC_PRE_SCALE_WIDTH;
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_INVALID_ARGUMENT);
  /* scale_width: width 20, height max(20 * 10 / 14, 12) = 14.28 -> 14 ->
   * rounded 16 (3.5 -> 4). */
  c.batch = 1;
  c.load_size = 20;
  c.crop_size = 12;
  d = open_ok(ctx, &c);
  float a2[3 * 20 * 16], b2[3 * 20 * 16];
  ck_assert_int_eq(ngc_data_next(d, a2, b2, 3 * 20 * 16, &h, &w, NULL), NEGCUT_OK);
  ck_assert_int_eq(w, 20);
  ck_assert_int_eq(h, 16);
  ngc_data_close(d);
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(test_errors) {
  make_tmp_dir();
  write_image("A/a.png", 16, 12, 1);
  write_image("B/b.png", 16, 12, 2);
  write_text("E/readme.txt", "no images here");
  negcut_ctx *ctx = new_ctx();
  ngc_data *d = NULL;
  float a[3 * 64 * 64], b[3 * 64 * 64];

  ngc_data_cfg c = cfg_for(tpath("missing"), tpath("B"), NGC_PRE_CROP, 16, 8);
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_IO);
  ck_assert_ptr_null(d);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), tpath("missing")));

  c = cfg_for(tpath("A"), tpath("E"), NGC_PRE_CROP, 16, 8);
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), tpath("E")));
  mkdir(tpath("Empty"), 0777);
  c.dir_b = tpath("Empty");
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), tpath("Empty")));
  c.dir_b = tpath("A/a.png"); /* a file, not a folder */
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_IO);

  /* Bad options. */
  c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_RESIZE_AND_CROP, 16, 32);
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_INVALID_ARGUMENT); /* load < crop */
  c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_CROP, 16, 8);
  c.batch = 0;
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_INVALID_ARGUMENT);
  c.batch = 1;
  c.preprocess = (ngc_preprocess)9;
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_INVALID_ARGUMENT);
  c.preprocess = NGC_PRE_CROP;
  c.prefetch = -1;
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_INVALID_ARGUMENT);
  c.prefetch = 2;
  c.dir_a = NULL;
  ck_assert_int_eq(ngc_data_open(ctx, &c, &d), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_data_open(ctx, NULL, &d), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(d);

  /* An image smaller than the crop: refused when read, naming the file. */
  c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_CROP, 64, 13);
  d = open_ok(ctx, &c);
  ck_assert_int_eq(ngc_data_next(d, a, b, 3 * 64 * 64, NULL, NULL, NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_msg(strstr(negcut_ctx_last_error(ctx), tpath("A/a.png")) != NULL, "message: %s",
                negcut_ctx_last_error(ctx));
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "smaller"));
  /* ... and again: the pipeline does not skip it. */
  ck_assert_int_eq(ngc_data_next(d, a, b, 3 * 64 * 64, NULL, NULL, NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ngc_data_close(d);

  /* A corrupt file, found when read. */
  write_text("B/broken.png", "\x89PNG\r\n\x1a\n this is not really a PNG");
  write_text("B/c.jpg", "\xff\xd8\xff garbage");
  c = cfg_for(tpath("A"), tpath("B"), NGC_PRE_CROP, 16, 8);
  d = open_ok(ctx, &c);
  int bad = 0;
  for (int k = 0; k < 40 && !bad; k++) {
    negcut_status st = ngc_data_next(d, a, b, 3 * 64 * 64, NULL, NULL, NULL);
    if (st != NEGCUT_OK) {
      bad = 1;
      ck_assert_int_eq(st, NEGCUT_ERR_BAD_FORMAT);
      const char *m = negcut_ctx_last_error(ctx);
      ck_assert_msg(strstr(m, tpath("B/broken.png")) || strstr(m, tpath("B/c.jpg")),
                    "message: %s", m);
    }
  }
  ck_assert_msg(bad, "40 batches from a folder of 3 with 2 corrupt gave no error");
  ngc_data_close(d);

  /* Close with the worker busy: no hang, no leak. */
  write_image("A/big.png", 600, 500, 1);
  c = cfg_for(tpath("A"), tpath("A"), NGC_PRE_RESIZE_AND_CROP, 300, 256);
  c.prefetch = 4;
  d = open_ok(ctx, &c);
  ngc_data_close(d);
  negcut_ctx_free(ctx);
  remove_tmp_dir();
}
END_TEST

int main(void) {
  Suite *s = suite_create("data");
  TCase *pil = tcase_create("pil");
  tcase_add_test(pil, test_resize_vs_pil);
  tcase_add_test(pil, test_resize_basics);
  tcase_set_timeout(pil, 120);
  suite_add_tcase(s, pil);
  TCase *pipe = tcase_create("pipeline");
  tcase_add_test(pipe, test_listing);
  tcase_add_test(pipe, test_epochs_more_a);
  tcase_add_test(pipe, test_epochs_more_b);
  tcase_add_test(pipe, test_epochs_drop_last);
  tcase_add_test(pipe, test_ranks_share_batches);
  tcase_add_test(pipe, test_shuffle_varies);
  tcase_add_test(pipe, test_identity);
  tcase_add_test(pipe, test_values_in_range);
  tcase_add_test(pipe, test_flips_and_crops);
  tcase_add_test(pipe, test_determinism_and_resume);
  tcase_add_test(pipe, test_finetune);
  tcase_add_test(pipe, test_gray);
  tcase_add_test(pipe, test_none_sizes);
  tcase_add_test(pipe, test_errors);
  tcase_set_timeout(pipe, 120);
  suite_add_tcase(s, pipe);
  return ngc_test_run(s);
}
