/* negcut-bench infer / train: our generator or training iteration beside
 * PyTorch's on the same machine, threads and shapes. Each side runs in its
 * own process (so that peak RSS is its own), alternating ours, theirs, ours,
 * theirs ... for --rounds rounds; the table gives the medians (min-max) of
 * all timed repetitions and the ratio PyTorch / ours (> 1: we are faster). */
#define NEGCUT_EXPERIMENTAL /* train/trainer.h reads negcut_random_source */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <negcut.h>

#include "backend/backend.h"
#include "bench/bench.h"
#include "core/core.h"
#include "infer/infer.h"   /* whether the translator's CUDA graphs ran */
#include "train/trainer.h" /* and the trainer's */

#define MAX_SAMPLES 256

typedef struct sample_set {
  double t[MAX_SAMPLES];
  int n;
  long rss_kib; /* the largest peak RSS of the runs */
} sample_set;

typedef struct job {
  const char *what; /* "infer" or "train" */
  const char *mode; /* train: cut | negcut */
  int size, ngf, blocks, batch, reps, threads, bf16;
  int tf32;    /* GPU convolutions may use TF32, both sides */
  int eager;   /* ours: no CUDA graphs */
  int compile; /* PyTorch: torch.compile (inference) */
  int ort;     /* infer: against ONNX Runtime (CPU) instead of PyTorch */
  int conv;    /* ours: NEGCUT_CONV_* (--conv auto|direct|winograd) */
  const char *model; /* infer: the generator file (--model); NULL: the worker makes one */
} job;

static const char *const conv_names[] = {"auto", "direct", "winograd"};

/* ----------------------------------------------------------- workers */

static void print_result(const double *t, int n) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("times");
  for (int i = 0; i < n; i++) printf(" %.6f", t[i]);
  printf(" rss_kib %ld\n", ru.ru_maxrss);
}

/* A GPU runs behind the host: wait for it before reading the clock. */
static int device_sync(negcut_ctx *ctx) { return ctx->be->ops.sync(ctx->be) != NEGCUT_OK; }

static int fail(negcut_ctx *ctx, const char *what) {
  fprintf(stderr, "negcut-bench worker: %s: %s\n", what, negcut_ctx_last_error(ctx));
  return 1;
}

static void random_image(float *x, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)(seed >> 8) / 8388608.0f - 1.0f;
  }
}

/* Untimed runs first: one, or on a backend with graphs three (the first
 * sizes everything, a large image's tape may settle only at the second,
 * and the next records the CUDA graph that later runs launch). */
static int warm_runs(const negcut_ctx *ctx) { return ctx->be->ops.graph_begin ? 3 : 1; }

static void graphs_note(const ngc_graph_cache *gc) {
  if (gc->off) fprintf(stderr, "negcut-bench: CUDA graphs off: %s\n", gc->why);
  else if (gc->n_recorded) fprintf(stderr, "negcut-bench: CUDA graphs: %llu recorded, %llu launched\n",
                                   (unsigned long long)gc->n_recorded, (unsigned long long)gc->n_replayed);
}

/* The backend's counts of cudaMalloc calls and host waits (zero on the
 * CPU), so that the timed runs' share of them can be printed. */
typedef struct device_counts {
  uint64_t allocs, waits;
} device_counts;

static device_counts counts_now(const negcut_ctx *ctx) {
  device_counts c = {ctx->be->n_driver_allocs, ctx->be->n_host_waits};
  return c;
}

static void counts_note(const negcut_ctx *ctx, device_counts since, int reps) {
  if (ctx->be->kind != NEGCUT_BACKEND_CUDA || reps <= 0) return;
  const device_counts now = counts_now(ctx);
  fprintf(stderr,
          "negcut-bench: per timed run: %.2f cudaMalloc, %.2f host waits (the timing's sync "
          "included)\n",
          (double)(now.allocs - since.allocs) / reps, (double)(now.waits - since.waits) / reps);
}

/* A random default-architecture generator of the job's size, saved to path. */
static int save_model(const job *j, negcut_ctx *ctx, const char *path) {
  negcut_generator_options go;
  negcut_net *g = NULL;
  negcut_generator_options_init_v2(&go, NEGCUT_GENERATOR_OPTIONS_VERSION);
  go.ngf = j->ngf;
  go.n_blocks = j->blocks;
  go.init_gain = 1.0f; /* as the PyTorch side: no denormals in either */
  int bad = negcut_net_create_generator(&g, ctx, &go) || negcut_net_save(g, path);
  negcut_net_free(g);
  return bad ? fail(ctx, "making the model") : 0;
}

/* The generator through the translator (what users run), on j->model or
 * else a model made here (whose making, a trainable network and the
 * file's bytes, then counts in the peak RSS: the parent passes one). */
static int worker_infer(const job *j, negcut_ctx *ctx) {
  negcut_translator_options to;
  negcut_model *m = NULL;
  negcut_translator *tr = NULL;
  double t[MAX_SAMPLES];
  char path[] = "/tmp/negcut_bench_XXXXXX";
  size_t n = (size_t)j->batch * 3 * (size_t)j->size * (size_t)j->size;
  if (!j->model) {
    int fd = mkstemp(path);
    if (fd < 0) return fail(ctx, "temporary file");
    close(fd);
    if (save_model(j, ctx, path)) {
      unlink(path);
      return 1;
    }
  }
  negcut_translator_options_init_v2(&to, NEGCUT_TRANSLATOR_OPTIONS_VERSION);
  to.bf16 = j->bf16;
  to.tf32 = j->tf32;
  to.eager = j->eager;
  to.conv_algo = j->conv;
  int bad = negcut_model_load(&m, ctx, j->model ? j->model : path) ||
            negcut_translator_create(&tr, ctx, m, &to);
  if (!j->model) unlink(path);
  if (bad) return fail(ctx, "setup");
  float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
  random_image(x, n, 1);
  device_counts since = counts_now(ctx);
  for (int i = 1 - warm_runs(ctx); i <= j->reps; i++) {
    if (i == 1) since = counts_now(ctx);
    double t0 = bench_now();
    if (negcut_translate_f32(tr, x, (uint32_t)j->batch, (uint32_t)j->size, (uint32_t)j->size, y) ||
        device_sync(ctx))
      return fail(ctx, "translate");
    if (i > 0) t[i - 1] = bench_now() - t0;
  }
  graphs_note(&tr->graphs);
  counts_note(ctx, since, j->reps);
  print_result(t, j->reps);
  free(x);
  free(y);
  negcut_translator_free(tr);
  negcut_model_free(m);
  return 0;
}

static int worker_train(const job *j, negcut_ctx *ctx) {
  negcut_trainer_options o;
  negcut_trainer *tr = NULL;
  double t[MAX_SAMPLES];
  size_t n = (size_t)j->batch * 3 * (size_t)j->size * (size_t)j->size;
  negcut_trainer_options_init_v2(&o, NEGCUT_TRAINER_OPTIONS_VERSION, strcmp(j->mode, "negcut") ? NEGCUT_MODE_CUT : NEGCUT_MODE_NEGCUT);
  o.ngf = o.ndf = j->ngf;
  o.n_blocks = j->blocks;
  o.batch_size = j->batch;
  o.nce_layers[4] = 12 + (j->blocks - 1 < 4 ? j->blocks - 1 : 4);
  o.eager = j->eager;
  o.tf32 = j->tf32;
  o.conv_algo = j->conv;
  if (negcut_trainer_create(&tr, ctx, &o)) return fail(ctx, "trainer");
  float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  random_image(a, n, 1);
  random_image(b, n, 2);
  device_counts since = counts_now(ctx);
  for (int i = 1 - warm_runs(ctx); i <= j->reps; i++) {
    if (i == 1) since = counts_now(ctx);
    double t0 = bench_now();
    if (negcut_trainer_step_batch(tr, a, b, (uint32_t)j->size, (uint32_t)j->size) || device_sync(ctx))
      return fail(ctx, "step");
    if (i > 0) t[i - 1] = bench_now() - t0;
  }
  graphs_note(&tr->t.graphs);
  counts_note(ctx, since, j->reps);
  print_result(t, j->reps);
  free(a);
  free(b);
  negcut_trainer_free(tr);
  return 0;
}

static int parse_job(job *j, const bench_opts *o, int argc, char **argv, const char *what) {
  memset(j, 0, sizeof *j);
  j->what = what;
  j->mode = "cut";
  j->size = 256;
  j->ngf = 64;
  j->blocks = 9;
  j->batch = 1;
  j->reps = o->reps;
  j->threads = o->threads;
  for (int i = 0; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--size") && v) j->size = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--ngf") && v) j->ngf = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--blocks") && v) j->blocks = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--batch") && v) j->batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--mode") && v) j->mode = argv[++i];
    else if (!strcmp(argv[i], "--bf16")) j->bf16 = 1;
    else if (!strcmp(argv[i], "--tf32")) j->tf32 = 1;
    else if (!strcmp(argv[i], "--eager")) j->eager = 1;
    else if (!strcmp(argv[i], "--compile")) j->compile = 1;
    else if (!strcmp(argv[i], "--ort")) j->ort = 1;
    else if (!strcmp(argv[i], "--model") && v) j->model = argv[++i];
    else if (!strcmp(argv[i], "--conv") && v) {
      for (j->conv = 2; j->conv >= 0 && strcmp(v, conv_names[j->conv]); j->conv--) {}
      i++;
      if (j->conv < 0) {
        fprintf(stderr, "negcut-bench: --conv takes auto, direct or winograd\n");
        return -1;
      }
    }
    else if (!strcmp(argv[i], "--rounds") || !strcmp(argv[i], "--cases")) i++; /* the parent's */
    else if (!strcmp(argv[i], "--no-torch")) continue;
    else {
      fprintf(stderr, "negcut-bench: unknown option %s\n", argv[i]);
      return -1;
    }
  }
  if (j->ort && (strcmp(what, "infer") || o->backend != NEGCUT_BACKEND_CPU || j->compile || j->batch > 1)) {
    fprintf(stderr, "negcut-bench: --ort is for infer on the CPU backend, batch 1\n");
    return -1;
  }
  if (j->size < 16 || j->ngf < 1 || j->blocks < 1 || j->batch < 1 || j->batch > 64 ||
      j->reps > MAX_SAMPLES) {
    fprintf(stderr, "negcut-bench: --size >= 16, --ngf >= 1, --blocks >= 1, --batch 1..64, --reps <= %d\n",
            MAX_SAMPLES);
    return -1;
  }
  return 0;
}

int bench_worker(const bench_opts *o, int argc, char **argv) {
  job j;
  negcut_ctx_options co;
  negcut_ctx *ctx = NULL;
  if (argc < 1 || parse_job(&j, o, argc - 1, argv + 1, argv[0])) return 2;
  negcut_ctx_options_init_v2(&co, NEGCUT_CTX_OPTIONS_VERSION);
  co.backend = o->backend;
  co.threads = o->threads;
  co.seed = 1;
  if (negcut_ctx_create(&ctx, &co)) return fail(NULL, "context");
  int rc = strcmp(j.what, "infer") ? worker_train(&j, ctx) : worker_infer(&j, ctx);
  negcut_ctx_free(ctx);
  return rc;
}

/* ----------------------------------------------------------- parent */

/* Runs cmd and appends its "times ... rss_kib" line to s. */
static int run_side(const char *cmd, sample_set *s) {
  char line[8192];
  FILE *p = popen(cmd, "r");
  int ok = 0;
  if (!p) return -1;
  while (fgets(line, sizeof line, p)) {
    if (strncmp(line, "times", 5)) continue;
    char *tok = strtok(line + 5, " \n");
    while (tok) {
      if (!strcmp(tok, "rss_kib")) {
        tok = strtok(NULL, " \n");
        long r = tok ? atol(tok) : 0;
        if (r > s->rss_kib) s->rss_kib = r;
        break;
      }
      if (s->n < MAX_SAMPLES) s->t[s->n++] = atof(tok);
      tok = strtok(NULL, " \n");
    }
    ok = 1;
  }
  return pclose(p) == 0 && ok ? 0 : -1;
}

/* Seconds with at least four significant digits below 10 s, and never
 * fewer than three decimals: GPU cases take a millisecond or less. buf
 * holds 24 chars. */
static const char *secs(char *buf, double t) {
  int dec = t >= 1.0 ? 3 : t >= 0.1 ? 4 : t >= 0.01 ? 5 : 6;
  snprintf(buf, 24, "%.*f", dec, t);
  return buf;
}

static int compare(const bench_opts *o, int argc, char **argv, const char *what) {
  job j;
  char self[4096], ours[8192], theirs[8192], src[4096];
  int rounds = 3, torch = 1, threads;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--no-torch")) torch = 0;
  }
  if (parse_job(&j, o, argc, argv, what) || rounds < 1) return 2;
  threads = j.threads ? j.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return 1;
  self[len] = '\0';
  snprintf(src, sizeof src, "%s", getenv("NEGCUT_SOURCE_DIR") ? getenv("NEGCUT_SOURCE_DIR") : NGC_SOURCE_DIR);
  const char *backend = negcut_backend_name(o->backend);
  /* the Python that has torch (a GPU machine's may not be /usr/bin/python3) */
  const char *python = getenv("NEGCUT_BENCH_PYTHON") ? getenv("NEGCUT_BENCH_PYTHON") : "/usr/bin/python3";
  snprintf(ours, sizeof ours,
           "%s worker %s --threads %d --reps %d --backend %s --size %d --ngf %d --blocks %d --batch %d --mode %s"
           " --conv %s%s%s%s",
           self, what, threads, j.reps, backend, j.size, j.ngf, j.blocks, j.batch, j.mode, conv_names[j.conv],
           j.bf16 ? " --bf16" : "", j.tf32 ? " --tf32" : "", j.eager ? " --eager" : "");
  /* infer: the model is made here, once, so that a worker's peak RSS is
   * loading and translating, what a user of the translator pays */
  char model[] = "/tmp/negcut_bench_XXXXXX";
  const int own_model = !strcmp(what, "infer");
  if (own_model) {
    negcut_ctx_options mo;
    negcut_ctx *mctx = NULL;
    int fd = mkstemp(model);
    if (fd < 0) return 1;
    close(fd);
    negcut_ctx_options_init_v2(&mo, NEGCUT_CTX_OPTIONS_VERSION);
    mo.backend = NEGCUT_BACKEND_CPU;
    mo.threads = threads;
    int bad = negcut_ctx_create(&mctx, &mo) ? fail(NULL, "context") : save_model(&j, mctx, model);
    negcut_ctx_free(mctx);
    if (bad) {
      unlink(model);
      return 1;
    }
    size_t used = strlen(ours);
    snprintf(ours + used, sizeof ours - used, " --model %s", model);
  }
  char onnx[] = "/tmp/negcut_bench_XXXXXX";
  if (j.ort) { /* ONNX Runtime runs the reference generator, exported once */
    char cmd[8192];
    int fd = mkstemp(onnx);
    if (fd < 0) {
      if (own_model) unlink(model);
      return 1;
    }
    close(fd);
    snprintf(cmd, sizeof cmd, "%s %s/tools/export_onnx.py %s --ngf %d --blocks %d --size %d", python, src,
             onnx, j.ngf, j.blocks, j.size);
    if (system(cmd) != 0) {
      fprintf(stderr, "negcut-bench: exporting the ONNX model failed: %s\n", cmd);
      unlink(onnx);
      if (own_model) unlink(model);
      return 1;
    }
    snprintf(theirs, sizeof theirs, "node %s/tools/bench_ort.js --model %s --size %d --reps %d --threads %d",
             src, onnx, j.size, j.reps, threads);
  } else {
    snprintf(theirs, sizeof theirs,
             "%s %s/tools/bench_torch.py %s --threads %d --reps %d --device %s --size %d --ngf %d --blocks %d --batch %d --mode %s%s%s%s",
             python, src, what, threads, j.reps, o->backend == NEGCUT_BACKEND_CUDA ? "cuda" : "cpu", j.size, j.ngf,
             j.blocks, j.batch, j.mode, j.bf16 ? " --bf16" : "", j.tf32 ? " --tf32" : "", j.compile ? " --compile" : "");
  }
  const char *them = j.ort ? "ONNX Runtime" : "PyTorch";
  int failed = 0;
  sample_set a = {{0}, 0, 0}, b = {{0}, 0, 0};
  for (int r = 0; r < rounds && !failed; r++) {
    if (run_side(ours, &a)) {
      fprintf(stderr, "negcut-bench: our worker failed: %s\n", ours);
      failed = 1;
    } else if (torch && run_side(theirs, &b)) {
      fprintf(stderr, "negcut-bench: the %s side failed (%s): %s\n", them,
              j.ort ? "node and tools/ort: cd tools/ort && npm install --ignore-scripts"
                    : "is python3-torch installed?",
              theirs);
      failed = 1;
    }
  }
  if (j.ort) unlink(onnx);
  if (own_model) unlink(model);
  if (failed) return 1;
  bench_stat sa = bench_stats(a.t, a.n), sb = bench_stats(b.t, b.n);
  char name[128];
  char batch[16] = "";
  if (j.batch > 1) snprintf(batch, sizeof batch, " b%d", j.batch);
  char conv[24] = "";
  if (j.conv) snprintf(conv, sizeof conv, " %s", conv_names[j.conv]);
  snprintf(name, sizeof name, "%s%s%s %dx%d%s ngf %d%s%s%s%s%s", what, strcmp(what, "train") ? "" : " ",
           strcmp(what, "train") ? "" : j.mode, j.size, j.size, batch, j.ngf, j.bf16 ? " bf16" : "",
           j.tf32 ? " tf32" : "", conv, j.eager ? " eager" : "",
           j.compile ? " vs compile" : j.ort ? " vs ORT" : "");
  char t[3][24];
  printf("%-28s | %8s s (%s-%s) %6ld MiB |", name, secs(t[0], sa.med), secs(t[1], sa.min),
         secs(t[2], sa.max), a.rss_kib / 1024);
  if (torch)
    printf(" %8s s (%s-%s) %6ld MiB | %5.2fx | %5.2f\n", secs(t[0], sb.med), secs(t[1], sb.min),
           secs(t[2], sb.max), b.rss_kib / 1024,
           sb.med / sa.med, (double)a.rss_kib / (double)(b.rss_kib ? b.rss_kib : 1));
  else
    printf(" (%s not run)\n", them);
  fflush(stdout);
  return 0;
}

static void header(const bench_opts *o, int argc, char **argv) {
  char ours[64];
  const char *them = "PyTorch";
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "--ort")) them = "ONNX Runtime";
  snprintf(ours, sizeof ours, "libnegcut (%s)", negcut_backend_name(o->backend));
  printf("%d threads, %s; medians (min-max) over all timed repetitions of alternating processes\n",
         o->threads ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN), negcut_build_info());
  printf("%-28s | %-36s | %-36s | speed | RSS\n", "case", ours, them);
  printf("%-28s | %-36s | %-36s | ratio | ratio\n", "", "", "");
}

int bench_infer(const bench_opts *o, int argc, char **argv) {
  header(o, argc, argv);
  return compare(o, argc, argv, "infer");
}

int bench_train(const bench_opts *o, int argc, char **argv) {
  header(o, argc, argv);
  return compare(o, argc, argv, "train");
}
