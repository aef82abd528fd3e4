/* The processes of one training run (train_cli.h): MPI's, in
 * negcut-train-mpi (built with NEGCUT_TRAIN_MPI where CMake finds MPI), or
 * this process alone in negcut-train. */
#include <limits.h>

#include "train_cli.h"

#ifdef NEGCUT_TRAIN_MPI
#include <mpi.h>
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h> /* Open MPI's MPIX_Query_cuda_support */
#endif

/* negcut_allreduce_fn: sums in place over the ranks, in pieces of at most
 * INT_MAX floats (MPI's count is an int). */
static int allreduce(float *data, size_t count, void *user) {
  (void)user;
  while (count) {
    const int n = count > INT_MAX ? INT_MAX : (int)count;
    if (MPI_Allreduce(MPI_IN_PLACE, data, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
      return 1;
    data += n;
    count -= (size_t)n;
  }
  return 0;
}

int cli_world_init(cli_world *w, int *argc, char ***argv) {
  MPI_Comm node;
  *w = (cli_world){0, 1, 0, 0};
  if (MPI_Init(argc, argv) != MPI_SUCCESS) return 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w->size);
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
      MPI_SUCCESS) {
    MPI_Comm_rank(node, &w->local_rank);
    MPI_Comm_free(&node);
  }
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  w->cuda_aware = MPIX_Query_cuda_support() == 1;
#endif
  return 0;
}

negcut_status cli_world_attach(const cli_world *w, negcut_trainer *t, int host) {
  const uint32_t flags = w->cuda_aware && !host ? 0u : NEGCUT_ALLREDUCE_HOST;
  return w->size > 1 ? negcut_trainer_set_data_parallel_v2(t, w->rank, w->size, allreduce, NULL,
                                                           flags)
                     : NEGCUT_OK;
}

void cli_world_sum(const cli_world *w, double *v, int n) {
  if (w->size > 1) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int cli_world_max(const cli_world *w, int v) {
  if (w->size > 1) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return v;
}

void cli_world_wait(const cli_world *w) {
  if (w->size > 1) MPI_Barrier(MPI_COMM_WORLD);
}

void cli_world_abort(const cli_world *w, int rc) {
  if (w->size > 1) MPI_Abort(MPI_COMM_WORLD, rc);
}

void cli_world_finish(const cli_world *w) {
  (void)w;
  MPI_Finalize();
}

#else /* one process */

int cli_world_init(cli_world *w, int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  *w = (cli_world){0, 1, 0, 0};
  return 0;
}

negcut_status cli_world_attach(const cli_world *w, negcut_trainer *t, int host) {
  (void)w;
  (void)t;
  (void)host;
  return NEGCUT_OK;
}

void cli_world_sum(const cli_world *w, double *v, int n) {
  (void)w;
  (void)v;
  (void)n;
}

int cli_world_max(const cli_world *w, int v) {
  (void)w;
  return v;
}

void cli_world_wait(const cli_world *w) { (void)w; }

void cli_world_abort(const cli_world *w, int rc) {
  (void)w;
  (void)rc;
}

void cli_world_finish(const cli_world *w) { (void)w; }

#endif

int cli_world_device(const cli_world *w) { return w->local_rank; }
