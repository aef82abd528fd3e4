/* negcut-translate: translate image files or folders with a generator.
 *
 *   negcut-translate --model M [--output OUT] [--tile N] [--exact-tiles] [--threads N]
 *                    [--backend cpu|cuda|ref] [--device N] [--bf16] [--tf32] [--direct] INPUT...
 *
 * INPUT is a file, a folder (its PNG and JPEG files) or - (standard input).
 * With one input file and an OUT that is not a folder, OUT is the output
 * file; otherwise OUT (default ./translated) is a folder and each result
 * keeps its input's base name. Every output has its input's size. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <negcut.h>

typedef struct job {
  char **inputs; /* paths, "-" for stdin */
  int n, cap;
} job;

static void usage(FILE *f) {
  fprintf(f, "usage: negcut-translate --model M [--output OUT] [--tile N] [--exact-tiles] [--threads N]\n"
             "                        [--backend cpu|cuda|ref] [--device N] [--bf16] [--tf32] [--direct]\n"
             "                        INPUT...\n"
             "--device N: the GPU (0);\n"
             "--tile N: translate in tiles of N px (0: only where an image exceeds the memory limit);\n"
             "--exact-tiles: tiles then give the whole-image result (the norms' statistics gathered\n"
             "  tile by tile first: about 2 to 6 times slower than plain tiles for a 9-block generator);\n"
             "--bf16: bfloat16 convolutions where faster (AVX512-BF16 CPUs, GPUs; else fp32);\n"
             "--tf32: TF32 ones on a GPU;\n"
             "--direct: direct convolutions only, no Winograd (slower; PyTorch's CPU arithmetic).\n"
             "INPUT: an image file (PNG, JPEG), a folder of them, or - for standard input.\n");
}

static int is_dir(const char *p) {
  struct stat s;
  return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int is_file(const char *p) {
  struct stat s;
  return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static int has_image_ext(const char *name) {
  const char *dot = strrchr(name, '.');
  return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int push(job *j, const char *path) {
  if (j->n == j->cap) {
    int cap = j->cap ? 2 * j->cap : 16;
    char **ni = realloc(j->inputs, (size_t)cap * sizeof *ni);
    if (!ni) return -1;
    j->inputs = ni;
    j->cap = cap;
  }
  j->inputs[j->n] = strdup(path);
  return j->inputs[j->n++] ? 0 : -1;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the images of a folder, sorted by name. */
static int add_folder(job *j, const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int first = j->n;
  char path[4096];
  if (!d) {
    fprintf(stderr, "negcut-translate: %s: %s\n", dir, strerror(errno));
    return -1;
  }
  while ((e = readdir(d)))
    if (e->d_name[0] != '.' && has_image_ext(e->d_name)) {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      if (is_file(path) && push(j, path) < 0) break; /* not folders, FIFOs, devices */
    }
  closedir(d);
  if (j->n == first)
    fprintf(stderr, "negcut-translate: %s has no PNG or JPEG images (its subfolders are not "
                    "searched)\n", dir);
  qsort(j->inputs + first, (size_t)(j->n - first), sizeof *j->inputs, cmp_str);
  return 0;
}

static unsigned char *read_stdin(size_t *size) {
  size_t cap = 1 << 20, n = 0;
  unsigned char *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, stdin);
    n += got;
    if (got == 0) break;
    if (n == cap) {
      unsigned char *nb = cap < ((size_t)1 << 30) ? realloc(buf, cap *= 2) : NULL;
      if (!nb) {
        free(buf);
        return NULL;
      }
      buf = nb;
    }
  }
  *size = n;
  return buf;
}

/* Translates one image; returns 0 on success. The result has the model's
 * output channels (1 gray, 3 RGB, 4 RGBA: main checks). */
static int translate_one(negcut_ctx *ctx, negcut_translator *tr, const negcut_model *model,
                         const char *in, const char *out) {
  negcut_image *img = NULL, res = {0};
  negcut_status st;
  int32_t ci = negcut_model_input_channels(model), co = negcut_model_output_channels(model);
  if (strcmp(in, "-") == 0) {
    size_t size = 0;
    unsigned char *data = read_stdin(&size);
    st = data ? negcut_image_load_memory(&img, ctx, data, size, NULL) : NEGCUT_ERR_OUT_OF_MEMORY;
    free(data);
  } else {
    st = negcut_image_load(&img, ctx, in, NULL);
  }
  if (st == NEGCUT_OK && ci == 1) { /* gray model: BT.601 luma in place */
    for (uint32_t y = 0; y < img->height; y++) {
      uint8_t *row = img->pixels + (size_t)y * img->stride_bytes;
      for (uint32_t x = 0; x < img->width; x++)
        row[x] = (uint8_t)(0.299f * row[3 * x] + 0.587f * row[3 * x + 1] + 0.114f * row[3 * x + 2] + 0.5f);
    }
  }
  if (st == NEGCUT_OK) {
    res = (negcut_image){img->width, img->height, (uint32_t)co, (size_t)img->width * (size_t)co, NULL};
    res.pixels = malloc(res.stride_bytes * img->height); /* the loader bounds the size */
    if (!res.pixels) {
      fprintf(stderr, "\nnegcut-translate: %s: out of memory\n", in);
      negcut_image_free(img);
      return 1;
    }
    st = negcut_translate_rgb8(tr, img->pixels, img->width, img->height, img->stride_bytes,
                               res.pixels, res.stride_bytes);
  }
  if (st == NEGCUT_OK) st = negcut_image_save(ctx, &res, out, NULL);
  if (st != NEGCUT_OK)
    fprintf(stderr, "\nnegcut-translate: %s: %s (%s)\n", in, negcut_ctx_last_error(ctx),
            negcut_status_str(st));
  negcut_image_free(img);
  free(res.pixels);
  return st == NEGCUT_OK ? 0 : 1;
}

/* A whole decimal int in [lo, hi] from v, or -1 with a message. */
static int parse_int(const char *opt, const char *v, long lo, long hi, int32_t *out) {
  char *end = NULL;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi) {
    fprintf(stderr, "negcut-translate: %s needs a whole number in [%ld, %ld], got '%s'\n", opt, lo,
            hi, v);
    return -1;
  }
  *out = (int32_t)x;
  return 0;
}

/* The output file name of input i in folder mode. */
static const char *base_name(const char *in) {
  if (!strcmp(in, "-")) return "stdin.png";
  const char *slash = strrchr(in, '/');
  return slash ? slash + 1 : in;
}

/* Where in's result goes: OUT itself for a single input, else OUT/<in's base name>. */
static void result_path(char *buf, size_t cap, int single, const char *output, const char *in) {
  if (single)
    snprintf(buf, cap, "%s", output);
  else
    snprintf(buf, cap, "%s/%s", output, base_name(in));
}

static int cmp_base(const void *a, const void *b) {
  return strcmp(base_name(*(char *const *)a), base_name(*(char *const *)b));
}

/* -1 with a message when two inputs have the same base name. */
static int same_base_names(const job *j) {
  char **by = malloc((size_t)j->n * sizeof *by);
  int bad = -1;
  if (!by) {
    fprintf(stderr, "negcut-translate: out of memory\n");
    return -1;
  }
  memcpy(by, j->inputs, (size_t)j->n * sizeof *by);
  qsort(by, (size_t)j->n, sizeof *by, cmp_base);
  for (int i = 0; i + 1 < j->n && bad < 0; i++)
    if (!strcmp(base_name(by[i]), base_name(by[i + 1]))) bad = i;
  if (bad >= 0)
    fprintf(stderr, "negcut-translate: %s and %s would both be written as %s; translate them in "
                    "separate runs or rename one\n", by[bad], by[bad + 1], base_name(by[bad]));
  free(by);
  return bad >= 0 ? -1 : 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  const char *model_path = NULL, *output = NULL;
  negcut_ctx_options co;
  negcut_translator_options to;
  negcut_ctx *ctx = NULL;
  negcut_model *model = NULL;
  negcut_translator *tr = NULL;
  job j = {0};
  int failures = 0, tty = isatty(2), any_folder = 0;
  char out_path[4096];

  negcut_ctx_options_init_v2(&co, NEGCUT_CTX_OPTIONS_VERSION);
  negcut_translator_options_init_v2(&to, NEGCUT_TRANSLATOR_OPTIONS_VERSION);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--model") && v) {
      model_path = v, i++;
    } else if (!strcmp(a, "--output") && v) {
      output = v, i++;
    } else if (!strcmp(a, "--tile") && v) {
      if (parse_int(a, v, 0, 1 << 20, &to.tile_px) < 0) return 2;
      if (to.tile_px > 0 && to.tile_px < 16) { /* the translator's smallest tile */
        fprintf(stderr, "negcut-translate: --tile is 0 (whole images) or at least 16, got %s\n", v);
        return 2;
      }
      i++;
    } else if (!strcmp(a, "--threads") && v) {
      if (parse_int(a, v, 0, 4096, &co.threads) < 0) return 2;
      i++;
    } else if (!strcmp(a, "--device") && v) {
      if (parse_int(a, v, 0, 4096, &co.device) < 0) return 2;
      i++;
    } else if (!strcmp(a, "--backend") && v) {
      co.backend = !strcmp(v, "cpu") ? NEGCUT_BACKEND_CPU : !strcmp(v, "cuda") ? NEGCUT_BACKEND_CUDA
                 : !strcmp(v, "ref") ? NEGCUT_BACKEND_REF : -1;
      if (co.backend < 0) {
        fprintf(stderr, "negcut-translate: unknown backend '%s'\n", v);
        return 2;
      }
      i++;
    } else if (!strcmp(a, "--bf16")) {
      to.bf16 = 1;
    } else if (!strcmp(a, "--tf32")) {
      to.tf32 = 1;
    } else if (!strcmp(a, "--direct")) {
      to.conv_algo = NEGCUT_CONV_DIRECT;
    } else if (!strcmp(a, "--exact-tiles")) {
      to.exact_tiles = 1;
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "negcut-translate: unknown or incomplete option '%s'\n", a);
      usage(stderr);
      return 2;
    } else if (strcmp(a, "-") != 0 && is_dir(a)) {
      any_folder = 1;
      if (add_folder(&j, a) < 0) return 1;
    } else if (push(&j, a) < 0) {
      fprintf(stderr, "negcut-translate: out of memory\n");
      return 1;
    }
  }
  if (!model_path || j.n == 0) {
    usage(stderr);
    return 2;
  }
  /* one input file (not a folder's one image) and an OUT that is no folder */
  int single = j.n == 1 && !any_folder && output && !is_dir(output);
  if (!single) {
    /* results keep their inputs' base names: two alike would overwrite */
    if (same_base_names(&j) < 0) return 2;
    if (!output) output = "translated";
    if (!is_dir(output) && mkdir(output, 0777) != 0) {
      fprintf(stderr, "negcut-translate: cannot create folder %s: %s\n", output, strerror(errno));
      return 1;
    }
  }
  /* a result must never replace its own input (--output IN IN, or a folder
   * given as its own output): refused before anything is written */
  for (int i = 0; i < j.n; i++) {
    struct stat si, so;
    result_path(out_path, sizeof out_path, single, output, j.inputs[i]);
    if (strcmp(j.inputs[i], "-") != 0 && stat(j.inputs[i], &si) == 0 && stat(out_path, &so) == 0 &&
        si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
      fprintf(stderr, "negcut-translate: the result of %s would be written over it (%s); give "
                      "another --output\n", j.inputs[i], out_path);
      return 2;
    }
  }
  if (negcut_ctx_create(&ctx, &co) != NEGCUT_OK) {
    fprintf(stderr, "negcut-translate: %s\n", negcut_ctx_last_error(NULL));
    return 1;
  }
  if (negcut_model_load(&model, ctx, model_path) != NEGCUT_OK ||
      negcut_translator_create(&tr, ctx, model, &to) != NEGCUT_OK) {
    fprintf(stderr, "negcut-translate: %s\n", negcut_ctx_last_error(ctx));
    negcut_model_free(model);
    negcut_ctx_free(ctx);
    return 1;
  }
  const int32_t mci = negcut_model_input_channels(model), mco = negcut_model_output_channels(model);
  if ((mci != 1 && mci != 3) || (mco != 1 && mco != 3 && mco != 4)) {
    fprintf(stderr, "negcut-translate: %s takes %d and gives %d channels; image files need 1 or 3 "
                    "in and 1, 3 or 4 out\n", model_path, (int)mci, (int)mco);
    negcut_translator_free(tr);
    negcut_model_free(model);
    negcut_ctx_free(ctx);
    return 2;
  }
  double t0 = now();
  for (int i = 0; i < j.n; i++) {
    const char *in = j.inputs[i];
    result_path(out_path, sizeof out_path, single, output, in);
    if (tty)
      fprintf(stderr, "\r[%d/%d] %s -> %s  (%.1f s)   ", i + 1, j.n, in, out_path, now() - t0);
    failures += translate_one(ctx, tr, model, in, out_path);
  }
  if (tty) fprintf(stderr, "\n");
  fprintf(stderr, "negcut-translate: %d of %d images translated in %.1f s%s%s\n", j.n - failures,
          j.n, now() - t0, single ? " to " : " into ", single ? out_path : output);
  negcut_translator_free(tr);
  negcut_model_free(model);
  negcut_ctx_free(ctx);
  for (int i = 0; i < j.n; i++) free(j.inputs[i]);
  free(j.inputs);
  return failures ? 1 : 0;
}
