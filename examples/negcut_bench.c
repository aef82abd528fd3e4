/* negcut-bench: the speed figures of ANCHORS.md on this machine.
 *   negcut-bench <mode> [--threads N] [--reps N] [mode options]
 * Modes are rows of the table below; each lives in examples/bench/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <negcut.h>

#include "bench/bench.h"

static const bench_mode modes[] = {
    {"conv", bench_conv,
     "every convolution of the ResNet generator at 256x256: our slots vs a bare oneDNN primitive"},
    {"infer", bench_infer,
     "the generator beside PyTorch [--size 256] [--ngf 64] [--blocks 9] [--batch 1] [--rounds 3] [--no-torch]\n"
     "              [--bf16] [--tf32 (GPU, both sides)] [--eager (no CUDA graphs)] [--compile (torch.compile)]\n"
     "              [--conv auto|direct|winograd (ours; auto: Winograd)]\n"
     "              [--ort (against ONNX Runtime on the CPU: node, and npm install --ignore-scripts in tools/ort)]"},
    {"train", bench_train,
     "a training iteration beside PyTorch [--mode cut|negcut] [--size 256] [--ngf 64] [--batch 1] [--rounds 3]\n"
     "              [--tf32 (GPU, both sides)] [--eager (no CUDA graphs)]\n"
     "              [--conv auto|direct|winograd (ours; auto: Winograd)]"},
    {"worker", bench_worker, "(internal) one side of infer/train in its own process"},
};
#define N_MODES ((int)(sizeof modes / sizeof modes[0]))

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

bench_stat bench_stats(double *v, int n) {
  bench_stat s = {0, 0, 0};
  if (n <= 0) return s;
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  s.min = v[0];
  s.max = v[n - 1];
  s.med = n & 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return s;
}

static void usage(FILE *f) {
  fprintf(f, "usage: negcut-bench <mode> [--threads N] [--reps N] [--backend cpu|cuda]\nmodes:\n");
  for (int i = 0; i < N_MODES; i++) fprintf(f, "  %-8s %s\n", modes[i].name, modes[i].help);
}

int main(int argc, char **argv) {
  bench_opts o = {0, 5, NEGCUT_BACKEND_CPU};
  const bench_mode *m = NULL;
  char **rest;
  int nrest = 0;

  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (int i = 0; i < N_MODES; i++)
    if (!strcmp(argv[1], modes[i].name)) m = &modes[i];
  if (!m) {
    fprintf(stderr, "negcut-bench: unknown mode '%s'\n", argv[1]);
    usage(stderr);
    return 2;
  }
  /* Common options; whatever is left goes to the mode. */
  rest = calloc((size_t)argc, sizeof *rest);
  if (!rest) return 1;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      o.threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      o.reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
      const char *b = argv[++i];
      o.backend = !strcmp(b, "cuda") ? NEGCUT_BACKEND_CUDA : !strcmp(b, "cpu") ? NEGCUT_BACKEND_CPU : -1;
    }
    else
      rest[nrest++] = argv[i];
  }
  if (o.threads < 0 || o.reps < 1 || o.backend < 0) {
    fprintf(stderr, "negcut-bench: --threads must be >= 0, --reps >= 1, --backend cpu or cuda\n");
    free(rest);
    return 2;
  }
  int rc = m->run(&o, nrest, rest);
  free(rest);
  return rc;
}
