/* Recordings under way in this process, and the calls that must not run
 * beside them. cudaFree, cudaFreeHost and cudaDeviceSynchronize
 * synchronise the whole device, and a device-wide synchronisation
 * invalidates every capture under way on it, whichever thread captures and
 * in whichever mode (the CUDA programming guide: synchronising "a broader
 * handle which encompasses an active stream capture, such as a device" is
 * invalid). With several contexts in several threads (a translator per
 * thread, say), one context's free would turn another's recording into a
 * failure, and its graphs off for good. So captures hold a process-wide
 * lock shared, side by side, and those calls hold it exclusively: they wait
 * for the captures under way to end. A thread that is itself capturing
 * takes it for neither (its own call would fail its own capture, as before;
 * the allocator avoids them while recording). */
#include <pthread.h>

#include "cuda.h"

static pthread_rwlock_t g_captures = PTHREAD_RWLOCK_INITIALIZER;
static _Thread_local int t_capturing; /* this thread holds g_captures shared */
static _Thread_local int t_wide;      /* nesting of device-wide sections */
static _Thread_local int t_wide_held; /* the outermost one holds it exclusively */

void ngc_cuda_capture_enter(void) {
  pthread_rwlock_rdlock(&g_captures);
  t_capturing = 1;
}

void ngc_cuda_capture_leave(void) {
  t_capturing = 0;
  pthread_rwlock_unlock(&g_captures);
}

void ngc_cuda_wide_enter(void) {
  if (t_wide++ == 0 && !t_capturing) {
    pthread_rwlock_wrlock(&g_captures);
    t_wide_held = 1;
  }
}

void ngc_cuda_wide_leave(void) {
  if (--t_wide == 0 && t_wide_held) {
    t_wide_held = 0;
    pthread_rwlock_unlock(&g_captures);
  }
}

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
