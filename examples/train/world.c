/* The processes of one training run (train_cli.h): MPI's, in
 * negcut-train-mpi (built with NEGCUT_TRAIN_MPI where CMake finds MPI), or
 * this process alone in negcut-train. GPU ranks sum their gradients with
 * NCCL where it is built in (NEGCUT_TRAIN_NCCL). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

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

#ifdef NEGCUT_TRAIN_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

/* NCCL over the ranks' GPUs, set up at the first sum: every rank is then
 * in its first step, past the checks where a rank may give up alone (one
 * that failed before would leave the others waiting in NCCL's setup, as it
 * would in MPI's sums). One trainer per process, so one communicator. */
typedef struct nccl_world {
  int rank, size; /* the world's */
  int device;     /* this rank's GPU */
  int state;  /* 0 not set up yet, 1 ready, -1 failed */
  ncclComm_t comm;
  cudaStream_t stream;
} nccl_world;

static nccl_world g_nccl;

static int nccl_failed(nccl_world *n, const char *what, const char *why) {
  fprintf(stderr, "negcut-train: rank %d: NCCL %s: %s (--no-nccl sums through MPI instead)\n",
          n->rank, what, why);
  n->state = -1;
  return 1;
}

/* Every rank's ok, or 0 (so that all take the same path). */
static int all_ok(int ok) {
  MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return ok;
}

/* The communicator, on every rank or none; 0 on success. Each rank makes
 * the same collective calls whatever fails locally. */
static int nccl_setup(nccl_world *n) {
  ncclUniqueId id;
  int version = 0;
  const char *why = "another rank failed";
  memset(&id, 0, sizeof id);
  ncclResult_t r = n->rank == 0 ? ncclGetUniqueId(&id) : ncclSuccess;
  if (r != ncclSuccess) why = ncclGetErrorString(r);
  MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  cudaError_t e = cudaSetDevice(n->device);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) why = cudaGetErrorString(e);
  if (!all_ok(r == ncclSuccess && e == cudaSuccess)) {
    if (e == cudaSuccess) cudaStreamDestroy(n->stream);
    return nccl_failed(n, "setup", why);
  }
  r = ncclCommInitRank(&n->comm, n->size, id, n->rank);
  if (!all_ok(r == ncclSuccess)) {
    if (r == ncclSuccess) ncclCommDestroy(n->comm);
    cudaStreamDestroy(n->stream);
    return nccl_failed(n, "setup", r != ncclSuccess ? ncclGetErrorString(r) : why);
  }
  n->state = 1;
  if (n->rank == 0 && ncclGetVersion(&version) == ncclSuccess)
    fprintf(stderr, "negcut-train: NCCL %d.%d.%d sums the gradients over %d GPUs\n",
            version / 10000, version / 100 % 100, version % 100, n->size);
  return 0;
}

/* negcut_allreduce_fn on device memory: sums in place over the ranks. */
static int nccl_allreduce(float *data, size_t count, void *user) {
  nccl_world *n = user;
  if (n->state == 0 && nccl_setup(n)) return 1;
  if (n->state < 0) return 1;
  const ncclResult_t r = ncclAllReduce(data, data, count, ncclFloat32, ncclSum, n->comm, n->stream);
  if (r != ncclSuccess) return nccl_failed(n, "all-reduce", ncclGetErrorString(r));
  const cudaError_t e = cudaStreamSynchronize(n->stream); /* the trainer reads them next */
  if (e != cudaSuccess) return nccl_failed(n, "all-reduce", cudaGetErrorString(e));
  return 0;
}

static void nccl_close(nccl_world *n) {
  if (n->state != 1) return;
  ncclCommDestroy(n->comm);
  cudaStreamDestroy(n->stream);
  n->state = 0;
}
#endif

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

negcut_status cli_world_attach(const cli_world *w, negcut_trainer *t, const cli_settings *s,
                               int gpu) {
  if (w->size == 1) return NEGCUT_OK;
#ifdef NEGCUT_TRAIN_NCCL
  if (gpu >= 0 && !s->no_nccl && !s->allreduce_host) {
    g_nccl = (nccl_world){.rank = w->rank, .size = w->size, .device = gpu};
    return negcut_trainer_set_data_parallel_v2(t, w->rank, w->size, nccl_allreduce, &g_nccl, 0);
  }
#else
  (void)gpu;
#endif
  const uint32_t flags = w->cuda_aware && !s->allreduce_host ? 0u : NEGCUT_ALLREDUCE_HOST;
  return negcut_trainer_set_data_parallel_v2(t, w->rank, w->size, allreduce, NULL, flags);
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
#ifdef NEGCUT_TRAIN_NCCL
  nccl_close(&g_nccl);
#endif
  MPI_Finalize();
}

#else /* one process */

int cli_world_init(cli_world *w, int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  *w = (cli_world){0, 1, 0, 0};
  return 0;
}

negcut_status cli_world_attach(const cli_world *w, negcut_trainer *t, const cli_settings *s,
                               int gpu) {
  (void)w;
  (void)t;
  (void)s;
  (void)gpu;
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
