/* Shared test helpers: running a Check suite, comparing float arrays with a
 * stated tolerance and printing the first mismatches and the largest error. */
#ifndef NGC_TEST_H
#define NGC_TEST_H

#include <check.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <negcut.h>

/* Runs the suite and returns the process exit status. */
static inline int ngc_test_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* The same without fork: a CUDA context does not survive fork(). */
static inline int ngc_test_run_nofork(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_NOFORK);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Whether TF32 must change a result: always on the CPU emulator of
 * tests/cudaemu (its cuDNN rounds whenever the math type allows); a GPU may
 * still choose FMA kernels for a small shape, so there it is only printed. */
#ifdef NGC_TEST_CUDA_EMU
#define NGC_TEST_TF32_ALWAYS 1
#else
#define NGC_TEST_TF32_ALWAYS 0
#endif

/* Opens a context on the CUDA backend with the options o (its backend is
 * set here) into *out. Returns 0 when it opened; 77 (skip) on a machine
 * without a GPU; EXIT_FAILURE, with the reason on stderr, for any other
 * failure. A driver too old for the runtime reads like no GPU at all ("CUDA
 * driver version is insufficient"), so where the NVIDIA driver's device
 * node exists that fails too. */
static inline int ngc_test_open_cuda(negcut_ctx **out, negcut_ctx_options *o, const char *name) {
  o->backend = NEGCUT_BACKEND_CUDA;
  negcut_status st = negcut_ctx_create(out, o);
  if (st == NEGCUT_ERR_UNSUPPORTED && strstr(negcut_ctx_last_error(NULL), "no usable GPU") &&
      access("/dev/nvidiactl", F_OK) != 0) {
    fprintf(stderr, "%s: skipped: %s\n", name, negcut_ctx_last_error(NULL));
    return 77;
  }
  if (st != NEGCUT_OK) {
    fprintf(stderr, "%s: the cuda backend did not open: %s\n", name, negcut_ctx_last_error(NULL));
    return EXIT_FAILURE;
  }
  return 0;
}

/* A tiny trainer of mode (reference defaults otherwise): ngf = ndf = 8,
 * two residual blocks, NCE layers 0, 4, 8, 12, 13, 16 patches, projector
 * width 32, batch 1, images of side px. */
static inline void ngc_test_tiny_trainer(negcut_trainer_options *o, negcut_train_mode mode,
                                         int32_t px) {
  static const int32_t layers[5] = {0, 4, 8, 12, 13};
  ck_assert_int_eq(negcut_trainer_options_init(o, mode), NEGCUT_OK);
  o->ngf = 8;
  o->ndf = 8;
  o->n_blocks = 2;
  o->n_nce_layers = 5;
  memcpy(o->nce_layers, layers, sizeof layers);
  o->num_patches = 16;
  o->netf_nc = 32;
  o->batch_size = 1;
  o->load_size = px;
  o->crop_size = px;
}

/* A new empty folder /tmp/<prefix>_XXXXXX, its name in buf. */
static inline void ngc_test_mkdtemp(char *buf, size_t cap, const char *prefix) {
  snprintf(buf, cap, "/tmp/%s_XXXXXX", prefix);
  ck_assert_ptr_nonnull(mkdtemp(buf));
}

static inline int ngc_test_rm_entry(const char *p, const struct stat *sb, int flag,
                                    struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  chmod(p, 0700); /* a test may have made it read-only */
  return remove(p);
}

/* Removes dir and everything below it. */
static inline void ngc_test_rmtree(const char *dir) {
  nftw(dir, ngc_test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* PSNR in dB of a against b, images in [-1, 1] (a range of 2, the same as
 * 255 on the 8-bit scale); INFINITY when they are equal. */
static inline double ngc_test_psnr(const float *a, const float *b, int64_t n) {
  double se = 0.0;
  for (int64_t i = 0; i < n; i++) se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  return se > 0 ? 10.0 * log10(4.0 / (se / (double)n)) : INFINITY;
}

/* Element i matches when |got - want| <= atol + rtol * |want|. Prints up to
 * five mismatches and the largest absolute and relative errors under `what`;
 * returns the number of mismatches (0: all close). */
static inline int64_t ngc_test_compare(const char *what, const float *got,
                                       const float *want, int64_t n, double atol,
                                       double rtol) {
  int64_t bad = 0, worst_i = -1;
  double worst = 0.0, worst_rel = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double g = got[i], w = want[i], err = fabs(g - w);
    if (!(err <= atol + rtol * fabs(w))) { /* NaN counts as a mismatch */
      if (bad < 5)
        fprintf(stderr, "%s: [%lld] got %.8g want %.8g (err %.3g)\n", what,
                (long long)i, g, w, err);
      bad++;
    }
    if (err > worst || isnan(err)) {
      worst = err;
      worst_i = i;
    }
    if (fabs(w) > 1e-6 && err / fabs(w) > worst_rel) worst_rel = err / fabs(w);
  }
  if (bad)
    fprintf(stderr, "%s: %lld of %lld mismatch; largest abs err %.3g at [%lld], "
                    "largest rel err %.3g (atol %.1g, rtol %.1g)\n",
            what, (long long)bad, (long long)n, worst, (long long)worst_i, worst_rel,
            atol, rtol);
  return bad;
}

/* The bytes of the file at path (malloc'ed; *size set). */
static inline uint8_t *ngc_test_read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  ck_assert_int_ge(n, 0);
  rewind(f);
  uint8_t *buf = malloc((size_t)n + 1);
  ck_assert_ptr_nonnull(buf);
  ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *size = (size_t)n;
  return buf;
}

/* The bytes of tests/fuzz/regress/<target>/<name>, an input that a fuzz
 * target of tests/fuzz once failed on (malloc'ed; *size set). */
static inline uint8_t *ngc_test_fuzz_regress(const char *target, const char *name, size_t *size) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/fuzz/regress/%s/%s", NGC_SOURCE_DIR, target, name);
  return ngc_test_read_file(path, size);
}

#endif
