/* Shared pieces of the libFuzzer harnesses (tests/fuzz/fuzz_*.c): a context
 * made once, a scratch folder for the loaders that only read files, the tiny
 * network shapes that the seed maker (fuzz_seeds.c) also uses, and FUZZ_CHECK,
 * which aborts (a crash that libFuzzer reports and saves) when the library
 * breaks a promise without crashing by itself. */
#ifndef NGC_FUZZ_COMMON_H
#define NGC_FUZZ_COMMON_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <negcut.h>

#define FUZZ_CHECK(cond, ...)                                                                  \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);          \
      fprintf(stderr, __VA_ARGS__);                                                            \
      fputc('\n', stderr);                                                                     \
      abort();                                                                                 \
    }                                                                                          \
  } while (0)

/* A failing status must come with a message in the context. */
#define FUZZ_CHECK_FAILED(ctx, st)                                                             \
  FUZZ_CHECK((st) >= NEGCUT_ERR_INTERNAL && (st) < 0 && negcut_ctx_last_error(ctx)[0],      \
             "status %d (%s), message '%s'", (int)(st), negcut_status_str(st),                 \
             negcut_ctx_last_error(ctx))

/* A CPU context with one thread, made once per process; aborts when it
 * cannot be made (there is nothing to fuzz then). */
static inline negcut_ctx *fuzz_ctx(void) {
  static negcut_ctx *ctx;
  if (!ctx) {
    negcut_ctx_options o;
    negcut_ctx_options_init(&o);
    o.backend = NEGCUT_BACKEND_CPU;
    o.threads = 1;
    o.seed = 1;
    if (negcut_ctx_create(&ctx, &o) != NEGCUT_OK) {
      fprintf(stderr, "fuzz: no CPU context: %s\n", negcut_ctx_last_error(NULL));
      abort();
    }
  }
  return ctx;
}

/* A folder under /dev/shm (or $TMPDIR, or /tmp) made once per process and
 * removed at a normal exit (a crash leaves it: negcut-fuzz-XXXXXX). */
static char fuzz_scratch_dir[512];

static inline int fuzz_rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

static inline void fuzz_scratch_cleanup(void) {
  if (fuzz_scratch_dir[0]) nftw(fuzz_scratch_dir, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline const char *fuzz_scratch(void) {
  if (!fuzz_scratch_dir[0]) {
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(fuzz_scratch_dir, sizeof fuzz_scratch_dir, "%s/negcut-fuzz-XXXXXX", base);
    if (!mkdtemp(fuzz_scratch_dir)) {
      perror("fuzz: mkdtemp");
      abort();
    }
    atexit(fuzz_scratch_cleanup);
  }
  return fuzz_scratch_dir;
}

/* Writes size bytes to path, replacing it; aborts on failure. */
static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
    perror(path);
    abort();
  }
}

/* The tiny networks the net and trainer-state targets load into, and whose
 * saved files seed them (fuzz_seeds.c). */
static inline void fuzz_generator_options(negcut_generator_options *g) {
  negcut_generator_options_init(g);
  g->ngf = 1;
  g->n_blocks = 1;
}

static inline void fuzz_discriminator_options(negcut_discriminator_options *d) {
  negcut_discriminator_options_init(d);
  d->ndf = 1;
  d->n_layers = 1;
}

static inline void fuzz_head_options(negcut_head_options *h) {
  static const int32_t channels[2] = {3, 4};
  negcut_head_options_init(h);
  h->n_layers = 2;
  memset(h->channels, 0, sizeof h->channels);
  memcpy(h->channels, channels, sizeof channels);
  h->nc = 4;
  h->z_dim = 2;
}

/* NEGCUT (every network and optimiser a state holds), 16 px images from
 * <root>/trainA and trainB. */
static inline void fuzz_trainer_options(negcut_trainer_options *o, const char *root) {
  static const int32_t layers[3] = {0, 4, 8};
  negcut_trainer_options_init(o, NEGCUT_MODE_NEGCUT);
  o->dataroot = root;
  o->ngf = 1;
  o->ndf = 1;
  o->n_blocks = 1;
  o->n_layers_d = 1;
  o->n_nce_layers = 3;
  memset(o->nce_layers, 0, sizeof o->nce_layers);
  memcpy(o->nce_layers, layers, sizeof layers);
  o->num_patches = 4;
  o->netf_nc = 4;
  o->z_dim = 2;
  o->load_size = 16;
  o->crop_size = 16;
  o->n_epochs = 1;
  o->n_epochs_decay = 1;
}

/* trainA/ and trainB/ under root, two 16x16 PNG images each. */
static inline void fuzz_make_train_data(const char *root) {
  char path[700];
  negcut_image *img = NULL;
  if (negcut_image_create(&img, NULL, 16, 16) != NEGCUT_OK) abort();
  for (int d = 0; d < 2; d++) {
    snprintf(path, sizeof path, "%s/train%c", root, d ? 'B' : 'A');
    if (mkdir(path, 0700) != 0 && access(path, W_OK) != 0) abort();
    for (int i = 0; i < 2; i++) {
      for (uint32_t p = 0; p < 16 * 16 * 3; p++) img->pixels[p] = (uint8_t)(p * (7 + d) + 50 * i);
      snprintf(path, sizeof path, "%s/train%c/%d.png", root, d ? 'B' : 'A', i);
      if (negcut_image_save(NULL, img, path, NULL) != NEGCUT_OK) {
        fprintf(stderr, "fuzz: %s\n", negcut_ctx_last_error(NULL));
        abort();
      }
    }
  }
  negcut_image_free(img);
}

#endif
