/* Recordings under way in this process, and the calls that must not run
 * beside them. cudaFree, cudaFreeHost, cudaDeviceSynchronize and the
 * destruction of cuBLAS and cuDNN handles (cublasDestroy synchronises the
 * device, by its documentation) synchronise the whole device, and a
 * device-wide synchronisation invalidates every capture under way on it,
 * whichever thread captures and in whichever mode (the CUDA programming
 * guide: synchronising "a broader handle which encompasses an active stream
 * capture, such as a device" is invalid). With several contexts in several
 * threads (a translator per thread, say), one context's free would turn
 * another's recording into a failure, and its graphs off for good. So
 * captures hold a process-wide lock shared, side by side, and those calls
 * hold it exclusively: they wait for the captures under way to end. A
 * thread that is itself capturing takes it for neither (its own call would
 * fail its own capture, as before; the allocator avoids them while
 * recording). The lock is the process's, not a device's: CUDA's device
 * state is the process's too (STYLE.md's "no global mutable state" gives
 * way to that); a free on one GPU may wait for a recording on another. */
#include <pthread.h>
#include <stdatomic.h>

#include "cuda.h"

static pthread_rwlock_t g_captures = PTHREAD_RWLOCK_INITIALIZER;
static atomic_int g_waiting;          /* threads waiting to hold it exclusively */
static _Thread_local int t_capturing;    /* captures of this thread under way */
static _Thread_local int t_capture_held; /* the outermost one holds it shared */
static _Thread_local int t_wide;         /* nesting of device-wide sections */
static _Thread_local int t_wide_held;    /* the outermost one holds it exclusively */

int ngc_cuda_capture_enter(void) {
  if (t_capturing++ == 0 && !t_wide_held) {
    if (pthread_rwlock_rdlock(&g_captures) != 0) {
      t_capturing--;
      return 1;
    }
    t_capture_held = 1;
  }
  return 0;
}

void ngc_cuda_capture_leave(void) {
  if (--t_capturing == 0 && t_capture_held) {
    t_capture_held = 0;
    pthread_rwlock_unlock(&g_captures);
  }
}

void ngc_cuda_wide_enter(void) {
  if (t_wide++ == 0 && t_capturing == 0) {
    atomic_fetch_add(&g_waiting, 1);
    t_wide_held = pthread_rwlock_wrlock(&g_captures) == 0; /* else unguarded, as before */
    atomic_fetch_sub(&g_waiting, 1);
  }
}

void ngc_cuda_wide_leave(void) {
  if (--t_wide == 0 && t_wide_held) {
    t_wide_held = 0;
    pthread_rwlock_unlock(&g_captures);
  }
}

int ngc_cuda_wide_waiting(void) { return atomic_load(&g_waiting); }

cudaError_t ngc_cuda_device_free(void *p) {
  ngc_cuda_wide_enter();
  const cudaError_t e = cudaFree(p);
  ngc_cuda_wide_leave();
  return e;
}

cudaError_t ngc_cuda_host_free(void *p) {
  ngc_cuda_wide_enter();
  const cudaError_t e = cudaFreeHost(p);
  ngc_cuda_wide_leave();
  return e;
}

cudaError_t ngc_cuda_device_sync(void) {
  ngc_cuda_wide_enter();
  const cudaError_t e = cudaDeviceSynchronize();
  ngc_cuda_wide_leave();
  return e;
}
