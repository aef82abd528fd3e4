/* make_demo_data: the demo's unpaired data set, whose translation is known,
 * and the score of a translation against it.
 *
 *   make_demo_data OUT [--count N] [--test N] [--size PX] [--seed N]
 *   make_demo_data --psnr TRANSLATED TRUTH INPUT
 *
 * The first form writes OUT/trainA, OUT/trainB, OUT/testA and OUT/testA_true.
 * Every image is a smooth background with a few soft-edged blobs; colours
 * are drawn per channel from unequal ranges (red high, blue low), so that the
 * colour distribution pins down which channel is which. Domain B is made of
 * OTHER scenes of the same kind passed through one fixed colour transform
 *   T(x) = 0.8 * (x.g, x.b, x.r) + 0.2 * (0.10, 0.60, 0.90)
 * (a channel permutation plus a blue tint), so A and B are unpaired but the
 * right answer for a test image is known: testA_true/ holds T(testA).
 *
 * The second form prints the mean PSNR of TRANSLATED/<f> against TRUTH/<f>
 * over the files of TRUTH, and that of INPUT/<f> (the identity, doing
 * nothing) as the baseline. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <negcut.h>

static uint64_t rng_state;

static double uniform(void) { /* splitmix64, [0, 1) */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static double between(double lo, double hi) { return lo + (hi - lo) * uniform(); }

/* A colour of domain A: each channel from its own range. */
static void colour(double c[3]) {
  c[0] = between(0.50, 1.00);
  c[1] = between(0.15, 0.85);
  c[2] = between(0.00, 0.45);
}

/* One scene as float RGB in [0, 1]: (size, size, 3). */
static void scene(float *px, int size) {
  double c0[3], c1[3], angle = between(0.0, 6.283185307179586);
  double dx = cos(angle), dy = sin(angle);
  colour(c0);
  colour(c1);
  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++) {
      double u = ((x - size / 2.0) * dx + (y - size / 2.0) * dy) / size + 0.5;
      u = u < 0 ? 0 : u > 1 ? 1 : u;
      for (int k = 0; k < 3; k++) px[(y * size + x) * 3 + k] = (float)(c0[k] + (c1[k] - c0[k]) * u);
    }
  int blobs = 2 + (int)(uniform() * 4);
  for (int b = 0; b < blobs; b++) {
    double c[3], cx = between(0, size), cy = between(0, size);
    double rx = between(0.08, 0.28) * size, ry = between(0.08, 0.28) * size;
    double rot = between(0.0, 3.141592653589793), cr = cos(rot), sr = sin(rot);
    colour(c);
    for (int y = 0; y < size; y++)
      for (int x = 0; x < size; x++) {
        double ex = ((x - cx) * cr + (y - cy) * sr) / rx, ey = (-(x - cx) * sr + (y - cy) * cr) / ry;
        double d = sqrt(ex * ex + ey * ey), a = (1.15 - d) / 0.3; /* soft edge */
        a = a < 0 ? 0 : a > 1 ? 1 : a;
        for (int k = 0; k < 3; k++) {
          float *p = &px[(y * size + x) * 3 + k];
          *p = (float)(*p * (1 - a) + c[k] * a);
        }
      }
  }
}

static void transform(float *px, int size) {
  static const double tint[3] = {0.10, 0.60, 0.90};
  for (int i = 0; i < size * size; i++) {
    float r = px[3 * i], g = px[3 * i + 1], b = px[3 * i + 2];
    px[3 * i] = (float)(0.8 * g + 0.2 * tint[0]);
    px[3 * i + 1] = (float)(0.8 * b + 0.2 * tint[1]);
    px[3 * i + 2] = (float)(0.8 * r + 0.2 * tint[2]);
  }
}

static int save(negcut_image *img, const float *px, const char *dir, int i) {
  char path[4096];
  size_t n = (size_t)img->width * img->height * 3;
  for (size_t k = 0; k < n; k++) img->pixels[k] = (uint8_t)lrint(px[k] * 255.0);
  snprintf(path, sizeof path, "%s/%04d.png", dir, i);
  if (negcut_image_save(NULL, img, path, NULL) != NEGCUT_OK) {
    fprintf(stderr, "make_demo_data: %s\n", negcut_ctx_last_error(NULL));
    return -1;
  }
  return 0;
}

static int make_dir(const char *path) { /* mkdir -p */
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(buf, 0777) != 0 && errno != EEXIST) break;
      *p = '/';
    }
  if (mkdir(path, 0777) == 0 || errno == EEXIST) return 0;
  fprintf(stderr, "make_demo_data: cannot create %s: %s\n", path, strerror(errno));
  return -1;
}

static int generate(const char *out, int count, int test, int size, uint64_t seed) {
  static const char *sub[4] = {"trainA", "trainB", "testA", "testA_true"};
  char dirs[4][4096];
  negcut_image *img = NULL;
  float *px = malloc((size_t)size * size * 3 * sizeof *px);
  int rc = 0;
  if (!px || negcut_image_create(&img, NULL, (uint32_t)size, (uint32_t)size) != NEGCUT_OK) {
    fprintf(stderr, "make_demo_data: out of memory\n");
    free(px);
    return 1;
  }
  if (make_dir(out) < 0) rc = 1;
  for (int d = 0; d < 4 && !rc; d++) {
    snprintf(dirs[d], sizeof dirs[d], "%s/%s", out, sub[d]);
    if (make_dir(dirs[d]) < 0) rc = 1;
  }
  rng_state = seed;
  for (int i = 0; i < count && !rc; i++) { /* A and B: different scenes */
    scene(px, size);
    rc = save(img, px, dirs[0], i) < 0;
    scene(px, size);
    transform(px, size);
    if (!rc) rc = save(img, px, dirs[1], i) < 0;
  }
  for (int i = 0; i < test && !rc; i++) { /* held out: the scene and its answer */
    scene(px, size);
    rc = save(img, px, dirs[2], i) < 0;
    transform(px, size);
    if (!rc) rc = save(img, px, dirs[3], i) < 0;
  }
  if (!rc)
    printf("make_demo_data: %d + %d training images and %d test images of %dx%d in %s\n", count,
           count, test, size, size, out);
  negcut_image_free(img);
  free(px);
  return rc;
}

/* PSNR of a against b in dB; -1 when they cannot be compared. */
static double psnr(const char *pa, const char *pb) {
  negcut_image *a = NULL, *b = NULL;
  double se = 0, result = -1;
  const int loaded = negcut_image_load(&a, NULL, pa, NULL) == NEGCUT_OK &&
                     negcut_image_load(&b, NULL, pb, NULL) == NEGCUT_OK;
  if (loaded && (a->width != b->width || a->height != b->height)) {
    fprintf(stderr, "make_demo_data: cannot compare %s (%ux%u) with %s (%ux%u): sizes differ\n", pa,
            (unsigned)a->width, (unsigned)a->height, pb, (unsigned)b->width, (unsigned)b->height);
  } else if (loaded) {
    for (uint32_t y = 0; y < a->height; y++)
      for (uint32_t x = 0; x < a->width * 3; x++) {
        double d = (double)a->pixels[y * a->stride_bytes + x] - b->pixels[y * b->stride_bytes + x];
        se += d * d;
      }
    double mse = se / ((double)a->width * a->height * 3);
    result = mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : 99.0;
  } else {
    fprintf(stderr, "make_demo_data: cannot compare %s with %s: %s\n", pa, pb,
            negcut_ctx_last_error(NULL));
  }
  negcut_image_free(a);
  negcut_image_free(b);
  return result;
}

static int score(const char *translated, const char *truth, const char *input) {
  DIR *d = opendir(truth);
  struct dirent *e;
  double sum_t = 0, sum_i = 0;
  int n = 0;
  char pt[4096], pg[4096], pi[4096];
  if (!d) {
    fprintf(stderr, "make_demo_data: %s: %s\n", truth, strerror(errno));
    return 1;
  }
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".png") != 0) continue;
    snprintf(pt, sizeof pt, "%s/%s", translated, e->d_name);
    snprintf(pg, sizeof pg, "%s/%s", truth, e->d_name);
    snprintf(pi, sizeof pi, "%s/%s", input, e->d_name);
    double t = psnr(pt, pg), i = psnr(pi, pg);
    if (t < 0 || i < 0) {
      closedir(d);
      return 1;
    }
    sum_t += t;
    sum_i += i;
    n++;
  }
  closedir(d);
  if (!n) {
    fprintf(stderr, "make_demo_data: no PNG files in %s\n", truth);
    return 1;
  }
  printf("PSNR against the true translation, mean of %d test images:\n"
         "  translated by the trained model  %5.2f dB\n"
         "  input unchanged (baseline)       %5.2f dB\n",
         n, sum_t / n, sum_i / n);
  return 0;
}

static int number(const char *opt, const char *v, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  *out = v ? strtol(v, &end, 10) : 0;
  if (!v || errno || *end || *out < lo || *out > hi) {
    fprintf(stderr, "make_demo_data: %s needs an integer in [%ld, %ld]\n", opt, lo, hi);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  long count = 200, test = 16, size = 64, seed = 1;
  const char *out = NULL;
  if (argc == 5 && !strcmp(argv[1], "--psnr")) return score(argv[2], argv[3], argv[4]);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int bad = 0;
    if (!strcmp(a, "--count")) bad = number(a, v, 1, 100000, &count), i++;
    else if (!strcmp(a, "--test")) bad = number(a, v, 1, 100000, &test), i++;
    else if (!strcmp(a, "--size")) bad = number(a, v, 8, 4096, &size), i++;
    else if (!strcmp(a, "--seed")) bad = number(a, v, 0, 2147483647, &seed), i++;
    else if (a[0] != '-' && !out) out = a;
    else bad = -1;
    if (bad) {
      fprintf(stderr, "usage: make_demo_data OUT [--count N] [--test N] [--size PX] [--seed N]\n"
                      "       make_demo_data --psnr TRANSLATED TRUTH INPUT\n");
      return 2;
    }
  }
  if (!out) {
    fprintf(stderr, "usage: make_demo_data OUT [--count N] [--test N] [--size PX] [--seed N]\n");
    return 2;
  }
  return generate(out, (int)count, (int)test, (int)size, (uint64_t)seed);
}
