/* cudaemu: the NCCL calls negcut-train-mpi makes, over the ranks of its MPI
 * job (each rank one process with its own emulated device). A communicator
 * spans MPI_COMM_WORLD; an all-reduce sums with MPI_Allreduce when its
 * stream runs it, as late as CUDA allows (emu_enqueue_late), so a caller
 * that reads the result before it synchronises the stream sees the bytes
 * from before the sum, as on a GPU.
 *
 * Checked as NCCL would fail them: every rank's unique id the same bytes
 * (one rank's own id, not broadcast, would hang NCCL's bootstrap), ranks and
 * sizes MPI's, buffers inside device memory; float sums only.
 * NGC_EMU_NCCL_FAIL_RANK=r makes rank r's ncclCommInitRank fail alone. */
#include "emu.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <nccl.h>
#include <string.h>

#include <random>
#include <vector>

struct ncclComm {
  int rank, nranks;
};

extern "C" {

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
  if (!id) return ncclInvalidArgument;
  std::random_device rd;
  for (size_t i = 0; i < sizeof id->internal; i++) id->internal[i] = (char)rd();
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
  int inited = 0, size = 0, me = 0;
  if (!comm) return ncclInvalidArgument;
  *comm = nullptr;
  MPI_Initialized(&inited);
  if (!inited) {
    emu_note("ncclCommInitRank: the emulation needs MPI initialised (it runs over MPI_COMM_WORLD)");
    return ncclInvalidUsage;
  }
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  if (nranks != size || rank != me) {
    emu_note("ncclCommInitRank: rank %d of %d, but the MPI job's rank %d of %d", rank, nranks, me,
             size);
    return ncclInvalidArgument;
  }
  std::vector<char> all((size_t)size * NCCL_UNIQUE_ID_BYTES);
  MPI_Allgather(id.internal, NCCL_UNIQUE_ID_BYTES, MPI_CHAR, all.data(), NCCL_UNIQUE_ID_BYTES,
                MPI_CHAR, MPI_COMM_WORLD);
  for (int r = 0; r < size; r++)
    if (memcmp(all.data() + (size_t)r * NCCL_UNIQUE_ID_BYTES, id.internal, NCCL_UNIQUE_ID_BYTES)) {
      emu_note("ncclCommInitRank: rank %d's unique id differs from rank %d's (a real NCCL hangs)",
               r, rank);
      return ncclInvalidUsage;
    }
  /* NGC_EMU_NCCL_FAIL_RANK=r: rank r's setup fails, the others' succeeds */
  const char *f = getenv("NGC_EMU_NCCL_FAIL_RANK");
  if (f && atoi(f) == rank) return ncclSystemError;
  *comm = new ncclComm{rank, nranks};
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
  auto lock = emu_lock();
  if (!comm) return ncclInvalidArgument;
  if (datatype != ncclFloat32 || op != ncclSum) {
    emu_note("ncclAllReduce: the emulation sums floats only");
    return ncclInvalidArgument;
  }
  const size_t bytes = count * sizeof(float);
  if (count && (!emu_is_device(sendbuff, bytes) || !emu_is_device(recvbuff, bytes))) {
    emu_note("ncclAllReduce: a buffer outside device memory");
    return ncclInvalidArgument;
  }
  const float *src = static_cast<const float *>(sendbuff);
  float *dst = static_cast<float *>(recvbuff);
  cudaError_t e = emu_enqueue_late(stream, "ncclAllReduce", [src, dst, count] {
    for (size_t done = 0; done < count;) {
      const int n = count - done > INT_MAX ? INT_MAX : (int)(count - done);
      if (MPI_Allreduce(src == dst ? MPI_IN_PLACE : src + done, dst + done, n, MPI_FLOAT, MPI_SUM,
                        MPI_COMM_WORLD) != MPI_SUCCESS)
        emu_fail("ncclAllReduce: MPI_Allreduce failed");
      done += (size_t)n;
    }
  });
  return e == cudaSuccess ? ncclSuccess : ncclUnhandledCudaError;
}

const char *ncclGetErrorString(ncclResult_t result) {
  switch (result) {
  case ncclSuccess: return "no error";
  case ncclUnhandledCudaError: return "unhandled cuda error (cudaemu)";
  case ncclInvalidArgument: return "invalid argument (cudaemu)";
  case ncclInvalidUsage: return "invalid usage (cudaemu)";
  case ncclSystemError: return "unhandled system error (cudaemu)";
  default: return "unknown result (cudaemu)";
  }
}

ncclResult_t ncclGetVersion(int *version) {
  if (!version) return ncclInvalidArgument;
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

} /* extern "C" */
