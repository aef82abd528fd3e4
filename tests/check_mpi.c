/* Data-parallel training over real MPI processes (docs/PARALLEL.md's
 * allreduce function, as a user writes it): run under mpiexec with 2
 * processes. Each rank trains a tiny trainer of batch 1 on its own image
 * with MPI_Allreduce as the allreduce function; rank 0 also runs one trainer
 * of batch 2 on both images, the oracle. Asserted:
 *  - after the first iteration, rank 0's gradients (the mean over the ranks)
 *    within 1e-4 in relative L2 of the batch-2 trainer's, every network;
 *  - after every iteration, every rank's parameters bit-identical to rank
 *    0's (broadcast and compared);
 * for CUT and NEGCUT. Exit 0 on success, 1 with a message otherwise (the
 * tests in check_parallel.c cover the same with threads, teacher-forced,
 * in more modes). */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEGCUT_EXPERIMENTAL
#include "negcut/experimental.h"
#include "negcut/train.h"
#include "train/trainer.h" /* the networks' gradient and parameter slabs */

#define PX 32
#define STEPS 2

static int g_rank;

#define FAIL(...)                                              \
  do {                                                         \
    fprintf(stderr, "check_mpi rank %d: ", g_rank);            \
    fprintf(stderr, __VA_ARGS__);                              \
    fprintf(stderr, "\n");                                     \
    MPI_Abort(MPI_COMM_WORLD, 1);                              \
  } while (0)

/* The function of docs/PARALLEL.md. */
static int sum_over_ranks(float *data, size_t count, void *user) {
  MPI_Comm comm = *(MPI_Comm *)user;
  return MPI_Allreduce(MPI_IN_PLACE, data, (int)count, MPI_FLOAT, MPI_SUM, comm) != MPI_SUCCESS;
}

static void smooth_images(float *x, int n, unsigned seed) {
  for (int i = 0; i < n; i++)
    for (int c = 0; c < 3; c++) {
      const float fx = 0.1f + 0.05f * (float)((seed + 3u * (unsigned)i + (unsigned)c) % 7u);
      const float fy = 0.07f + 0.04f * (float)((seed + 5u * (unsigned)i + 2u * (unsigned)c) % 5u);
      for (int y = 0; y < PX; y++)
        for (int xx = 0; xx < PX; xx++)
          x[((i * 3 + c) * PX + y) * PX + xx] =
              0.9f * sinf(fx * (float)xx + fy * (float)y + (float)c);
    }
}

static negcut_trainer *make(negcut_train_mode mode, int batch, int rank, int world,
                            MPI_Comm *comm) {
  static const int32_t layers[5] = {0, 4, 8, 12, 13};
  negcut_ctx_options co = NEGCUT_CTX_OPTIONS_INIT;
  negcut_ctx *ctx = NULL;
  co.backend = NEGCUT_BACKEND_CPU;
  co.threads = 1;
  co.seed = 7;
  if (negcut_ctx_create(&ctx, &co)) FAIL("context: %s", negcut_ctx_last_error(NULL));
  negcut_trainer_options o;
  negcut_trainer_options_init(&o, mode);
  o.ngf = o.ndf = 8;
  o.n_blocks = 2;
  memcpy(o.nce_layers, layers, sizeof layers);
  o.num_patches = 16;
  o.netf_nc = 32;
  o.load_size = o.crop_size = PX;
  o.batch_size = batch;
  negcut_trainer *t = NULL;
  if (negcut_trainer_create(&t, ctx, &o)) FAIL("trainer: %s", negcut_ctx_last_error(ctx));
  if (world > 1 && negcut_trainer_set_data_parallel(t, rank, world, sum_over_ranks, comm))
    FAIL("data parallel: %s", negcut_ctx_last_error(ctx));
  return t;
}

static const ngc_net *net_of(const negcut_trainer *t, int i) {
  return i == 0 ? &t->t.G : i == 1 ? &t->t.D : i == 2 ? &t->t.F : &t->t.N;
}

static void drop(negcut_trainer *t) {
  negcut_ctx *ctx = t->ctx;
  negcut_trainer_free(t);
  negcut_ctx_free(ctx);
}

static void run(negcut_train_mode mode, int rank, int world, MPI_Comm comm) {
  const int nets = mode == NEGCUT_MODE_NEGCUT ? 4 : 3;
  const size_t img = 3 * PX * PX;
  float *a = malloc(2 * img * sizeof *a), *b = malloc(2 * img * sizeof *b);
  if (!a || !b) FAIL("out of memory");
  smooth_images(a, 2, 1);
  smooth_images(b, 2, 2);
  negcut_trainer *t = make(mode, 1, rank, world, &comm), *one = NULL;
  if (rank == 0) {
    one = make(mode, 2, 0, 1, NULL);
    if (negcut_trainer_step_batch(one, a, b, PX, PX)) FAIL("batch 2: %s", negcut_ctx_last_error(one->ctx));
  }
  for (int s = 0; s < STEPS; s++) {
    if (negcut_trainer_step_batch(t, a + (size_t)rank * img, b + (size_t)rank * img, PX, PX))
      FAIL("step %d: %s", s + 1, negcut_ctx_last_error(t->ctx));
    for (int i = 0; i < nets; i++) {
      const ngc_tensor *p = &net_of(t, i)->trained;
      const int64_t n = ngc_numel(p);
      float *p0 = malloc((size_t)n * sizeof *p0);
      if (!p0) FAIL("out of memory");
      if (rank == 0) memcpy(p0, p->data, (size_t)n * sizeof *p0);
      MPI_Bcast(p0, (int)n, MPI_FLOAT, 0, comm);
      if (memcmp(p0, p->data, (size_t)n * sizeof *p0))
        FAIL("mode %d step %d net %d: parameters differ from rank 0's", (int)mode, s + 1, i);
      free(p0);
      if (s == 0 && rank == 0) {
        const float *g = net_of(t, i)->grads.data, *w = net_of(one, i)->grads.data;
        double d = 0.0, r = 0.0;
        for (int64_t e = 0; e < n; e++) {
          d += ((double)g[e] - w[e]) * ((double)g[e] - w[e]);
          r += (double)w[e] * w[e];
        }
        const double rel = sqrt(d / (r > 0.0 ? r : 1.0));
        printf("mode %d net %d: gradient rel L2 %.2e against batch 2 (%d ranks)\n", (int)mode, i,
               rel, world);
        if (!(rel <= 1e-4)) FAIL("mode %d net %d: gradients rel L2 %g", (int)mode, i, rel);
      }
    }
  }
  drop(t);
  if (one) drop(one);
  free(a);
  free(b);
}

int main(int argc, char **argv) {
  int world;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world != 2) FAIL("run with 2 processes, not %d", world);
  run(NEGCUT_MODE_CUT, g_rank, world, MPI_COMM_WORLD);
  run(NEGCUT_MODE_NEGCUT, g_rank, world, MPI_COMM_WORLD);
  if (g_rank == 0) printf("check_mpi: 2 ranks match one trainer of batch 2 (CUT, NEGCUT)\n");
  MPI_Finalize();
  return 0;
}
