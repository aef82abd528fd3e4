/* negcut-bench internals: the mode table's entry type, the options every
 * mode shares, and timing helpers. A mode is one function in its own file
 * (bench_<mode>.c) plus one row in negcut_bench.c's table. */
#ifndef NGC_BENCH_H
#define NGC_BENCH_H

#include <stdint.h>

typedef struct bench_opts {
  int32_t threads; /* 0: all cores */
  int32_t reps;    /* timed repetitions (a warm-up run comes first) */
  int32_t backend; /* NEGCUT_BACKEND_CPU (default) or _CUDA: --backend cpu|cuda */
} bench_opts;

/* Runs the mode; argc/argv hold what the common options left over.
 * Returns the process exit status. */
typedef int (*bench_mode_fn)(const bench_opts *o, int argc, char **argv);

typedef struct bench_mode {
  const char *name;
  bench_mode_fn run;
  const char *help;
} bench_mode;

/* Monotonic seconds. */
double bench_now(void);

/* Median, min and max of n samples (the array is sorted in place). */
typedef struct bench_stat {
  double med, min, max;
} bench_stat;
bench_stat bench_stats(double *v, int n);

/* Modes. */
int bench_conv(const bench_opts *o, int argc, char **argv);
int bench_infer(const bench_opts *o, int argc, char **argv);
int bench_train(const bench_opts *o, int argc, char **argv);
/* A child process running one side of infer/train (used by those modes). */
int bench_worker(const bench_opts *o, int argc, char **argv);

#endif
