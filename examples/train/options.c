/* negcut-train's options: one table drives parsing, validation, --help and
 * opt.json, so the file a run saves can be read back on --resume through the
 * very code that reads the command line. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "train_cli.h"

/* The largest integer up to which every integer is a double (2^53). */
#define EXACT_INT 9007199254740992.0

typedef enum kind {
  K_I32,    /* int32_t in [lo, hi] */
  K_I64,    /* int64_t in [lo, hi] */
  K_U64,    /* uint64_t */
  K_F32,    /* float in [lo, hi] */
  K_F64,    /* double in [lo, hi] */
  K_FLAG,   /* int32_t set to 1; opt.json keeps 0 or 1 */
  K_CHOICE, /* int32_t: index into choices ("a|b|c") */
  K_LAYERS, /* the NCE layer list */
  K_NETG,   /* resnet_9blocks | resnet_6blocks: sets n_blocks */
  K_STR     /* char[] of size hi */
} kind;

typedef struct opt_def {
  const char *name; /* without the leading dashes; also the opt.json key */
  kind k;
  size_t off;       /* into cli_settings */
  double lo, hi;
  const char *choices;
  int saved;        /* written to opt.json */
  const char *help;
} opt_def;

#define S(field) offsetof(cli_settings, field)
#define O(field) offsetof(cli_settings, o.field)
#define BIG 2147483647.0

static const char *const mode_choices = "cut|fastcut|negcut|fastnegcut";

static const opt_def defs[] = {
    /* run */
    {"dataroot", K_STR, S(dataroot), 0, 4096, NULL, 1, "folder with trainA/ and trainB/ (required)"},
    {"name", K_STR, S(name), 0, 256, NULL, 0, "name of the run (required): its folder under --checkpoints-dir"},
    {"checkpoints-dir", K_STR, S(checkpoints_dir), 0, 4096, NULL, 0, "where run folders go (./checkpoints)"},
    {"mode", K_CHOICE, O(mode), 0, 0, "cut|fastcut|negcut|fastnegcut", 1, "model; sets the defaults of the others (cut)"},
    {"iters", K_I64, S(iters), 1, 9e18, NULL, 1, "stop after iteration N of the run"},
    {"epochs", K_I64, S(epochs), 1, BIG, NULL, 1, "stop at the end of epoch N of the schedule"},
    {"resume", K_FLAG, S(resume), 0, 1, NULL, 0, "continue the run from its train_state.safetensors"},
    {"seed", K_U64, S(seed), 0, 0, NULL, 1, "seed of every random draw (0)"},
    {"threads", K_I32, S(threads), 0, 4096, NULL, 1, "CPU threads; 0: all cores (0)"},
    {"backend", K_CHOICE, S(backend), 0, 0, "auto|ref|cpu|cuda", 1, "compute backend (auto)"},
    {"device", K_I32, S(device), 0, 4096, NULL, 0,
     "GPU ordinal (0; negcut-train-mpi: each rank's rank on its machine)"},
    {"allreduce-host", K_FLAG, S(allreduce_host), 0, 1, NULL, 0,
     "negcut-train-mpi: give MPI host copies of the gradients even if it says it is CUDA-aware"},
    {"no-nccl", K_FLAG, S(no_nccl), 0, 1, NULL, 0,
     "negcut-train-mpi on GPUs: sum the gradients through MPI, not NCCL"},
    {"eager", K_FLAG, O(eager), 0, 1, NULL, 0, "GPU: run every step unrecorded (no CUDA graphs)"},
    {"tf32", K_FLAG, O(tf32), 0, 1, NULL, 1, "GPU: convolutions may round to TF32 (PyTorch's default)"},
    {"conv", K_CHOICE, O(conv_algo), 0, 0, "auto|direct|winograd", 1,
     "fp32 convolutions: auto or winograd (Winograd where it gains), direct (none)"},
    {"save-every", K_I64, S(save_every), 1, 9e18, NULL, 1, "checkpoint and report every N iterations (500)"},
    {"display-every", K_I64, S(display_every), 1, 9e18, NULL, 1, "log the mean losses every N iterations (100)"},
    /* architecture */
    {"input-nc", K_I32, O(input_nc), 1, 3, NULL, 1, "channels of A: 1 or 3 (3)"},
    {"output-nc", K_I32, O(output_nc), 1, 3, NULL, 1, "channels of B: 1 or 3 (3)"},
    {"ngf", K_I32, O(ngf), 1, 4096, NULL, 1, "generator width (64)"},
    {"ndf", K_I32, O(ndf), 1, 4096, NULL, 1, "discriminator width (64)"},
    {"n-blocks", K_I32, O(n_blocks), 0, 64, NULL, 1, "generator residual blocks (9)"},
    {"netG", K_NETG, O(n_blocks), 0, 0, "resnet_9blocks|resnet_6blocks", 0, "the same by the reference's name"},
    {"n-layers-d", K_I32, O(n_layers_d), 1, 8, NULL, 1, "discriminator layers (3)"},
    {"no-antialias", K_FLAG, O(no_antialias), 0, 1, NULL, 1, "plain strided convolutions for downsampling"},
    {"no-antialias-up", K_FLAG, O(no_antialias_up), 0, 1, NULL, 1, "transposed convolutions for upsampling"},
    {"nce-layers", K_LAYERS, 0, 0, 1024, NULL, 1, "generator layers of the NCE loss (0,4,8,12,16)"},
    {"num-patches", K_I32, O(num_patches), 1, 1 << 20, NULL, 1, "patches per layer (256)"},
    {"netf-nc", K_I32, O(netf_nc), 1, 65536, NULL, 1, "projector width (256)"},
    {"z-dim", K_I32, O(z_dim), 1, 65536, NULL, 1, "NEGCUT noise dimension (64)"},
    /* losses */
    {"nce-t", K_F32, O(nce_t), 1e-6, 1e6, NULL, 1, "NCE temperature (0.07)"},
    {"lambda-gan", K_F32, O(lambda_gan), 0, 1e6, NULL, 1, "weight of the GAN loss (1)"},
    {"lambda-nce", K_F32, O(lambda_nce), 0, 1e6, NULL, 1, "weight of the NCE loss (1; 10 fast modes)"},
    {"lambda-ms-neg", K_F32, O(lambda_ms_neg), 0, 1e6, NULL, 1, "NEGCUT diversity weight (1)"},
    {"nce-idt", K_I32, O(nce_idt), 0, 1, NULL, 1, "identity NCE loss on B: 0 or 1 (1; 0 fast modes)"},
    {"flip-equivariance", K_I32, O(flip_equivariance), 0, 1, NULL, 1, "0 or 1 (0; 1 fast modes)"},
    {"gan-mode", K_CHOICE, O(gan_vanilla), 0, 0, "lsgan|vanilla", 1, "GAN loss (lsgan)"},
    /* optimisation */
    {"lr", K_F64, O(lr), 1e-12, 10, NULL, 1, "Adam learning rate (0.0002)"},
    {"beta1", K_F64, O(beta1), 0, 0.999999, NULL, 1, "Adam beta1 (0.5)"},
    {"beta2", K_F64, O(beta2), 0, 0.999999, NULL, 1, "Adam beta2 (0.999)"},
    {"n-epochs", K_I32, O(n_epochs), 0, 1000000, NULL, 1, "epochs at the full rate (200; 150 fast modes)"},
    {"n-epochs-decay", K_I32, O(n_epochs_decay), 0, 1000000, NULL, 1, "epochs of linear decay (200; 50 fast modes)"},
    {"batch-size", K_I32, O(batch_size), 1, 4096, NULL, 1, "images per iteration (1)"},
    /* data */
    {"load-size", K_I32, O(load_size), 4, 16384, NULL, 1, "resize to this first (286)"},
    {"crop-size", K_I32, O(crop_size), 4, 16384, NULL, 1, "then crop this (256)"},
    {"preprocess", K_CHOICE, O(preprocess), 0, 0,
     "resize_and_crop|crop|scale_width|scale_width_and_crop|none", 1, "(resize_and_crop)"},
    {"no-flip", K_FLAG, O(no_flip), 0, 1, NULL, 1, "no random horizontal flips"},
    /* the reference's NEGCUT quirks, each turned off by its flag */
    {"detach-negatives", K_FLAG, O(detach_negatives), 0, 1, NULL, 1, "NEGCUT: detach the negatives in G's loss"},
    {"ema-from-f", K_FLAG, O(ema_from_f), 0, 1, NULL, 1, "NEGCUT: start F_ as a copy of F"},
    {"diversity-all-calls", K_FLAG, O(diversity_all_calls), 0, 1, NULL, 1,
     "NEGCUT: diversity over every NCE call, not the last"},
};
#define NDEFS (sizeof defs / sizeof defs[0])

static const opt_def *find(const char *name) {
  for (size_t i = 0; i < NDEFS; i++)
    if (!strcmp(defs[i].name, name)) return &defs[i];
  return NULL;
}

/* The index of word in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *word) {
  size_t len = strlen(word);
  int i = 0;
  for (const char *p = choices; *p; i++) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n == len && !strncmp(p, word, n)) return i;
    p += n + (bar ? 1 : 0);
  }
  return -1;
}

/* Copies word number i of "a|b|c" into out. */
static void choice_word(const char *choices, int i, char *out, size_t cap) {
  const char *p = choices;
  for (; i > 0 && p; i--) {
    p = strchr(p, '|');
    if (p) p++;
  }
  size_t n = p ? strcspn(p, "|") : 0;
  if (n >= cap) n = cap - 1;
  memcpy(out, p ? p : "", n);
  out[n] = '\0';
}

const char *cli_mode_name(negcut_train_mode mode) {
  static const char *names[] = {"cut", "fastcut", "negcut", "fastnegcut"};
  return mode >= 0 && mode < 4 ? names[mode] : "?";
}

static int bad(const opt_def *d, const char *v, const char *why) {
  fprintf(stderr, "negcut-train: --%s %s: %s\n", d->name, v, why);
  return 2;
}

/* Sets option d of s from text v; 0, or 2 with a message. */
static int set(cli_settings *s, const opt_def *d, const char *v) {
  char *base = (char *)s, *end = NULL, why[160];
  errno = 0;
  switch (d->k) {
  case K_I32:
  case K_I64: {
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < d->lo || (double)x > d->hi) {
      snprintf(why, sizeof why, "needs an integer from %.0f to %.0f", d->lo, d->hi);
      return bad(d, v, why);
    }
    if (d->k == K_I32) *(int32_t *)(base + d->off) = (int32_t)x;
    else *(int64_t *)(base + d->off) = (int64_t)x;
    return 0;
  }
  case K_U64: {
    unsigned long long x = strtoull(v, &end, 10);
    /* strtoull skips spaces and takes " -1" as 2^64 - 1: digits only */
    if (errno || end == v || *end || v[0] < '0' || v[0] > '9')
      return bad(d, v, "needs a non-negative integer");
    *(uint64_t *)(base + d->off) = (uint64_t)x;
    return 0;
  }
  case K_F32:
  case K_F64: {
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < d->lo || x > d->hi) {
      snprintf(why, sizeof why, "needs a number from %g to %g", d->lo, d->hi);
      return bad(d, v, why);
    }
    if (d->k == K_F32) *(float *)(base + d->off) = (float)x;
    else *(double *)(base + d->off) = x;
    return 0;
  }
  case K_FLAG:
    if (strcmp(v, "0") && strcmp(v, "1")) return bad(d, v, "is 0 or 1");
    *(int32_t *)(base + d->off) = v[0] == '1';
    return 0;
  case K_CHOICE:
  case K_NETG: {
    int i = choice_index(d->choices, v);
    if (i < 0) {
      snprintf(why, sizeof why, "is one of %s", d->choices);
      return bad(d, v, why);
    }
    *(int32_t *)(base + d->off) = d->k == K_NETG ? (i == 0 ? 9 : 6) : i;
    return 0;
  }
  case K_LAYERS: {
    int32_t layers[8], n = 0;
    const char *p = v;
    while (*p) {
      long x = strtol(p, &end, 10);
      if (end == p || x < 0 || x > d->hi || n == 8 || (*end && *end != ',') ||
          (n > 0 && x <= layers[n - 1]))
        return bad(d, v, "needs 1 to 8 increasing layer numbers separated by commas");
      layers[n++] = (int32_t)x;
      p = *end ? end + 1 : end;
      if (*end && !*p) return bad(d, v, "ends with a comma");
    }
    if (!n) return bad(d, v, "needs at least one layer");
    memset(s->o.nce_layers, 0, sizeof s->o.nce_layers);
    memcpy(s->o.nce_layers, layers, (size_t)n * sizeof layers[0]);
    s->o.n_nce_layers = n;
    return 0;
  }
  case K_STR: {
    size_t cap = (size_t)d->hi;
    if (!*v || strlen(v) >= cap) return bad(d, v, *v ? "is too long" : "is empty");
    memcpy(base + d->off, v, strlen(v) + 1);
    return 0;
  }
  }
  return 2;
}

/* The value of option d as text (what set() reads back). */
static void get(const cli_settings *s, const opt_def *d, char *out, size_t cap) {
  const char *base = (const char *)s;
  switch (d->k) {
  case K_I32:
  case K_FLAG: snprintf(out, cap, "%d", (int)*(const int32_t *)(base + d->off)); break;
  case K_I64: snprintf(out, cap, "%lld", (long long)*(const int64_t *)(base + d->off)); break;
  case K_U64: snprintf(out, cap, "%llu", (unsigned long long)*(const uint64_t *)(base + d->off)); break;
  case K_F32: snprintf(out, cap, "%.7g", (double)*(const float *)(base + d->off)); break;
  case K_F64: snprintf(out, cap, "%.15g", *(const double *)(base + d->off)); break;
  case K_CHOICE: choice_word(d->choices, *(const int32_t *)(base + d->off), out, cap); break;
  case K_NETG: snprintf(out, cap, "resnet_%dblocks", (int)s->o.n_blocks); break;
  case K_LAYERS: {
    size_t len = 0;
    out[0] = '\0';
    for (int32_t i = 0; i < s->o.n_nce_layers && len < cap; i++)
      len += (size_t)snprintf(out + len, cap - len, "%s%d", i ? "," : "", (int)s->o.nce_layers[i]);
    break;
  }
  case K_STR: snprintf(out, cap, "%s", base + d->off); break;
  }
}

void cli_usage(FILE *f) {
  char def[64];
  fprintf(f, "usage: negcut-train --dataroot DIR --name NAME [options]\n"
             "Trains a CUT, FastCUT or NEGCUT translator from DIR/trainA and DIR/trainB.\n"
             "Writes to CHECKPOINTS/NAME/: latest_net_{G,D,F[,N,F_]}.safetensors,\n"
             "train_state.safetensors, opt.json, loss_log.jsonl and web/index.html.\n"
             "Without --iters or --epochs it runs the whole schedule (n-epochs + n-epochs-decay).\n"
             "Ctrl-C saves a checkpoint and stops; --resume continues from it.\n\nOptions:\n");
  for (size_t i = 0; i < NDEFS; i++) {
    const opt_def *d = &defs[i];
    if (d->k == K_FLAG) snprintf(def, sizeof def, "--%s", d->name);
    else if (d->k == K_CHOICE || d->k == K_NETG) snprintf(def, sizeof def, "--%s %s", d->name, d->choices);
    else snprintf(def, sizeof def, "--%s %s", d->name,
                  d->k == K_STR ? "DIR" : d->k == K_LAYERS ? "L,L,..." : d->k >= K_F32 ? "X" : "N");
    fprintf(f, "  %-34s %s\n", def, d->help);
  }
}

/* Applies the run's opt.json to s: every key but those the command line
 * gave (skip) and those not saved. */
static int apply_saved(cli_settings *s, const char *path, const unsigned char *skip, int quiet) {
  FILE *f = fopen(path, "rb");
  char *text = NULL, val[4096];
  long size;
  int rc = 0;
  cJSON *root = NULL, *item;
  if (!f && errno == ENOENT) {
    fprintf(stderr, "negcut-train: --resume: there is no run to continue (no %s)\n", path);
    return 2;
  }
  if (!f) {
    fprintf(stderr, "negcut-train: --resume: cannot open %s: %s\n", path, strerror(errno));
    return 1;
  }
  if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && size < (1 << 20) &&
      fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)size + 1)) &&
      fread(text, 1, (size_t)size, f) == (size_t)size) {
    text[size] = '\0';
    root = cJSON_Parse(text);
  }
  fclose(f);
  free(text);
  if (!cJSON_IsObject(root)) {
    fprintf(stderr, "negcut-train: --resume: %s is not a JSON object of options\n", path);
    cJSON_Delete(root);
    return 1;
  }
  cJSON_ArrayForEach(item, root) {
    const opt_def *d = item->string ? find(item->string) : NULL;
    if (!d || !d->saved) {
      if (!quiet)
        fprintf(stderr, "negcut-train: %s: ignoring unknown key '%s'\n", path,
              item->string ? item->string : "?");
      continue;
    }
    if (skip[d - defs]) continue;
    if (cJSON_IsString(item)) snprintf(val, sizeof val, "%s", item->valuestring);
    else if (cJSON_IsBool(item)) snprintf(val, sizeof val, "%d", cJSON_IsTrue(item) ? 1 : 0);
    else if (cJSON_IsNumber(item) && (d->k == K_I64 || d->k == K_I32 || d->k == K_U64) &&
             fabs(item->valuedouble) <= EXACT_INT && item->valuedouble == floor(item->valuedouble))
      snprintf(val, sizeof val, "%.0f", item->valuedouble); /* integers exactly */
    else if (cJSON_IsNumber(item)) snprintf(val, sizeof val, "%.17g", item->valuedouble);
    else {
      fprintf(stderr, "negcut-train: %s: '%s' has no usable value\n", path, item->string);
      rc = 1;
      break;
    }
    if (set(s, d, val)) {
      fprintf(stderr, "negcut-train: (in %s)\n", path);
      rc = 1;
      break;
    }
  }
  cJSON_Delete(root);
  return rc;
}

int cli_write_options(const cli_settings *s, const char *path) {
  cJSON *root = cJSON_CreateObject();
  char val[4096], *text = NULL;
  int rc = 1;
  for (size_t i = 0; i < NDEFS && root; i++) {
    const opt_def *d = &defs[i];
    cJSON *item;
    if (!d->saved) continue;
    if ((d->k == K_I64 && !*(const int64_t *)((const char *)s + d->off)) ||
        (d->k == K_STR && !((const char *)s + d->off)[0]))
      continue; /* not set: --iters, --epochs */
    get(s, d, val, sizeof val);
    /* a JSON number is a double: integers beyond 2^53 go as strings */
    if (d->k == K_CHOICE || d->k == K_LAYERS || d->k == K_STR || d->k == K_U64 ||
        (d->k == K_I64 && fabs(strtod(val, NULL)) > EXACT_INT))
      item = cJSON_CreateString(val);
    else if (d->k == K_FLAG) item = cJSON_CreateBool(val[0] == '1');
    else item = cJSON_CreateNumber(strtod(val, NULL)); /* %.7g keeps 0.07f as 0.07 */
    if (!item || !cJSON_AddItemToObject(root, d->name, item)) {
      cJSON_Delete(item);
      break;
    }
  }
  if (root) text = cJSON_Print(root);
  if (text) {
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON's buffer ends in the terminator we overwrite */
    rc = cli_write_atomic(path, text, len + 1);
    text[len] = '\0';
  }
  if (rc) fprintf(stderr, "negcut-train: cannot write %s\n", path);
  cJSON_free(text);
  cJSON_Delete(root);
  return rc;
}

/* Cross-option checks once every value is in. */
static int validate(cli_settings *s) {
  negcut_trainer_options *o = &s->o;
  int neg = o->mode == NEGCUT_MODE_NEGCUT || o->mode == NEGCUT_MODE_FASTNEGCUT;
  if (!s->dataroot[0] || !s->name[0]) {
    fprintf(stderr, "negcut-train: --dataroot and --name are required\n");
    cli_usage(stderr);
    return 2;
  }
  if (strchr(s->name, '/') || !strcmp(s->name, ".") || !strcmp(s->name, "..")) {
    fprintf(stderr, "negcut-train: --name %s: a plain name, not a path\n", s->name);
    return 2;
  }
  if (o->input_nc == 2 || o->output_nc == 2) {
    fprintf(stderr, "negcut-train: --input-nc and --output-nc are 1 (gray) or 3 (RGB)\n");
    return 2;
  }
  if (o->input_nc != o->output_nc) {
    fprintf(stderr, "negcut-train: --input-nc and --output-nc must be equal (the NCE loss encodes "
                    "translations with the generator's encoder)\n");
    return 2;
  }
  if (o->n_epochs + o->n_epochs_decay < 1) {
    fprintf(stderr, "negcut-train: --n-epochs plus --n-epochs-decay must be at least 1\n");
    return 2;
  }
  if ((o->preprocess == NEGCUT_PREPROCESS_RESIZE_AND_CROP ||
       o->preprocess == NEGCUT_PREPROCESS_SCALE_WIDTH_AND_CROP) && o->crop_size > o->load_size) {
    fprintf(stderr, "negcut-train: --crop-size %d is larger than --load-size %d\n", (int)o->crop_size,
            (int)o->load_size);
    return 2;
  }
  if (!neg && (o->detach_negatives || o->ema_from_f || o->diversity_all_calls))
    fprintf(stderr, "negcut-train: note: --detach-negatives, --ema-from-f and --diversity-all-calls "
                    "only matter in the NEGCUT modes\n");
  return 0;
}

int cli_parse(cli_settings *s, int argc, char **argv) {
  unsigned char given[NDEFS] = {0};
  const char *mode = NULL;
  char path[8500];
  int rc;
  /* --mode first: it sets the defaults every other option starts from. */
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--mode")) mode = argv[i + 1];
  memset(s, 0, sizeof *s);
  int m = mode ? choice_index(mode_choices, mode) : 0;
  if (m < 0) return bad(find("mode"), mode, "is one of cut|fastcut|negcut|fastnegcut");
  negcut_trainer_options_init_v2(&s->o, NEGCUT_TRAINER_OPTIONS_VERSION, (negcut_train_mode)m);
  snprintf(s->checkpoints_dir, sizeof s->checkpoints_dir, "checkpoints");
  s->backend = NEGCUT_BACKEND_AUTO;
  s->device = -1;
  s->save_every = 500;
  s->display_every = 100;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const opt_def *d;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      cli_usage(stdout);
      return -1;
    }
    d = strncmp(a, "--", 2) == 0 ? find(a + 2) : NULL;
    if (!d) {
      fprintf(stderr, "negcut-train: unknown option '%s' (--help lists them)\n", a);
      return 2;
    }
    if (d->k == K_FLAG) {
      rc = set(s, d, "1");
    } else if (i + 1 >= argc) {
      fprintf(stderr, "negcut-train: %s needs a value\n", a);
      return 2;
    } else {
      rc = set(s, d, argv[++i]);
    }
    if (rc) return rc;
    given[d - defs] = 1;
    if (d->k == K_NETG) given[find("n-blocks") - defs] = 1;
  }
  if (given[find("iters") - defs] && given[find("epochs") - defs]) {
    fprintf(stderr, "negcut-train: give --iters or --epochs, not both\n");
    return 2;
  }
  if (s->resume) {
    cli_settings cmd = *s;
    if (!s->name[0]) {
      fprintf(stderr, "negcut-train: --resume needs --name\n");
      return 2;
    }
    snprintf(path, sizeof path, "%s/%s/opt.json", s->checkpoints_dir, s->name);
    unsigned char skip[NDEFS];
    memcpy(skip, given, sizeof skip);
    skip[find("mode") - defs] = 1; /* settled below: the command line's or the saved one */
    if (!mode) { /* the saved mode sets the defaults the saved values go over */
      cli_settings probe = *s;
      unsigned char only_mode[NDEFS];
      memset(only_mode, 1, sizeof only_mode);
      only_mode[find("mode") - defs] = 0;
      if ((rc = apply_saved(&probe, path, only_mode, 1))) return rc;
      if (probe.o.mode != s->o.mode) negcut_trainer_options_init_v2(&s->o, NEGCUT_TRAINER_OPTIONS_VERSION, probe.o.mode);
    }
    if ((rc = apply_saved(s, path, skip, 0))) return rc;
    /* the command line wins, option by option */
    for (size_t i = 0; i < NDEFS; i++) {
      if (!given[i] || defs[i].k == K_NETG) continue;
      if (defs[i].k == K_LAYERS) {
        memcpy(s->o.nce_layers, cmd.o.nce_layers, sizeof s->o.nce_layers);
        s->o.n_nce_layers = cmd.o.n_nce_layers;
      } else {
        char val[4096];
        get(&cmd, &defs[i], val, sizeof val);
        set(s, &defs[i], val);
      }
    }
    if (given[find("iters") - defs]) s->epochs = 0;
    if (given[find("epochs") - defs]) s->iters = 0;
  }
  s->o.dataroot = s->dataroot;
  return validate(s);
}
