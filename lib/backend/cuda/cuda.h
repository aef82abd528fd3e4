/* CUDA backend internals: the device, its stream and library handles, the
 * caching allocator, the pinned staging ring, and the slot groups of each
 * file. Included by the .c files (C11) and the .cu files (CUDA C++), so
 * everything here has C linkage.
 *
 * Ordering model: every op slot enqueues work on the backend's one stream
 * and returns without waiting. Uploads go through a pinned staging ring on
 * the legacy default stream, which the backend's (blocking) stream is
 * ordered against in both directions; only download and sync wait on the
 * host. Memory freed back to the cache may be handed out again at once:
 * all later use of it is enqueued on the same stream (or the legacy one),
 * behind the work that still reads it, as in PyTorch's caching allocator. */
#ifndef NGC_CUDA_H
#define NGC_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "backend/backend.h"

typedef struct ngc_cuda_cache ngc_cuda_cache; /* cuda_alloc.c */
typedef struct ngc_cuda_stage ngc_cuda_stage; /* cuda_transfer.c */
typedef struct ngc_cuda_convs ngc_cuda_convs; /* cuda_conv.c */
typedef struct ngc_cuda_hold ngc_cuda_hold;   /* cuda_alloc.c */
typedef struct ngc_cuda_graph ngc_cuda_graph; /* cuda_graph.c */

typedef struct ngc_cuda {
  int32_t device;
  cudaStream_t stream;   /* every op slot runs here (the recording stream while recording) */
  cudaStream_t run_stream;    /* the backend's own stream: graphs launch here */
  cudaStream_t record_stream; /* non-blocking, made on the first recording */
  ngc_cuda_graph *recording;  /* the graph being recorded, or NULL */
  ngc_cuda_graph *replaying;  /* the graph whose calls are being replayed, or NULL */
  /* While recording or replaying (cuda_optim.cu): Adam's scalars on the
   * device (recording only) and the parameters they were made from. */
  void *adam_fed;
  ngc_adam_params adam_last;
  int32_t adam_have;
  cudnnHandle_t dnn;     /* bound to stream */
  cublasHandle_t blas;   /* bound to stream, fp32 without TF32 */
  ngc_cuda_cache *cache; /* device memory: size-class free lists */
  ngc_cuda_stage *stage; /* the pinned ring uploads go through */
  ngc_cuda_convs *convs; /* cuDNN plans keyed by shape */
  void *work;            /* the shared cuDNN workspace (from the cache) */
  size_t work_bytes;
  size_t work_peak;      /* the largest workspace a plan ran with since the last
                            recording or replay began or ended (cuda_graph.c) */
  void *blas_work;       /* cuBLAS's workspace, ours: it never allocates, not even
                            on a stream it first sees while a graph is recorded */
  size_t blas_work_bytes;
  /* How often the host has seen all the work enqueued so far finish (a
   * download or a sync): an event recorded before the latest of them has
   * fired, and waiting for it is no wait (cuda_transfer.c, cuda_graph.c). */
  uint64_t drains;
} ngc_cuda;

static inline ngc_cuda *ngc_cuda_of(ngc_backend *be) { return (ngc_cuda *)be->impl; }
static inline cudaStream_t ngc_cuda_stream(ngc_backend *be) { return ngc_cuda_of(be)->stream; }

/* ----------------------------------------------------- statuses (cuda_backend.c)
 * Each returns NEGCUT_OK, or records "cuda <what>: <library message>" on
 * be->ctx and returns NEGCUT_ERR_OUT_OF_MEMORY, _UNSUPPORTED or _BACKEND. */
negcut_status ngc_cuda_check(ngc_backend *be, cudaError_t e, const char *what);
negcut_status ngc_cuda_check_dnn(ngc_backend *be, cudnnStatus_t s, const char *what);
negcut_status ngc_cuda_check_blas(ngc_backend *be, cublasStatus_t s, const char *what);
/* After a kernel launch: launch-configuration errors, and errors of earlier
 * asynchronous work that the runtime has already seen. */
negcut_status ngc_cuda_launched(ngc_backend *be, const char *what);
/* Makes the backend's device current for the calling thread; every slot
 * starts with it (a context may move between threads). */
negcut_status ngc_cuda_enter(ngc_backend *be);

/* ------------------------------------------------------ memory (cuda_alloc.c) */
negcut_status ngc_cuda_cache_create(ngc_backend *be);
/* Device memory of at least bytes (0 is fine), 256-byte aligned; NULL when
 * the device is out of memory even after the cache was emptied. */
void *ngc_cuda_alloc(ngc_backend *be, size_t bytes);
/* Back to the cache (not to the driver); NULL is ignored. */
void ngc_cuda_free(ngc_backend *be, void *p);
/* Frees every block, in use or cached, and the cache itself. */
void ngc_cuda_cache_destroy(ngc_backend *be);
/* Scratch for one slot: like ngc_cuda_alloc, but records an out-of-memory
 * message naming `what`. Give it back with ngc_cuda_free once the work that
 * uses it is enqueued (stream order keeps it alive long enough). */
negcut_status ngc_cuda_scratch(ngc_backend *be, size_t bytes, void **out, const char *what);

/* A hold (recording a graph): while attached, freed blocks go to the hold
 * instead of the cache and alloc takes from the hold's free blocks first.
 * usable: nothing was lost tracking it, and every block allocated while it
 * was attached has been freed again (a block that outlives the recording
 * would be written by every replay while someone else owns it). release
 * returns the free blocks to the cache and frees the hold. */
ngc_cuda_hold *ngc_cuda_hold_create(void);
void ngc_cuda_cache_hold(ngc_backend *be, ngc_cuda_hold *h); /* NULL detaches */
int ngc_cuda_hold_usable(const ngc_cuda_hold *h);
void ngc_cuda_hold_release(ngc_backend *be, ngc_cuda_hold *h);
/* A replay (which enqueues nothing: its slots only work out their
 * arguments) is lent its graph's hold: alloc takes from the hold's free
 * blocks first and free gives those back to it; every other block comes
 * from and goes to the cache as usual. So a replay's scratch is the
 * graph's own, untouched, and never a cudaMalloc. NULL ends the loan. */
void ngc_cuda_cache_lend(ngc_backend *be, ngc_cuda_hold *h);

/* --------------------------------------------------- transfers (cuda_transfer.c) */
negcut_status ngc_cuda_stage_create(ngc_backend *be);
void ngc_cuda_stage_destroy(ngc_backend *be);
/* Copies bytes of host memory at src to device memory at dst on stream s
 * through the pinned staging ring: src may be reused as soon as this
 * returns. The host waits for the device only while the ring grows, when it
 * has gone round onto a copy still running at its largest, with 256 copies
 * in flight, or for an upload over 8 MiB or without pinned memory. While a
 * graph is recorded or replayed, the copy is a feed instead (cuda_graph.c). */
negcut_status ngc_cuda_stage_copy(ngc_backend *be, void *dst, const void *src, size_t bytes,
                                  cudaStream_t s);
/* The host waits for stream s, or for event ev (counted in
 * be->n_host_waits); what names the call in an error message. */
negcut_status ngc_cuda_wait_stream(ngc_backend *be, cudaStream_t s, const char *what);
negcut_status ngc_cuda_wait_event(ngc_backend *be, cudaEvent_t ev, const char *what);
/* alloc, free, upload, download, sync. */
void ngc_cuda_fill_memory_ops(ngc_backend_ops *ops);

/* ------------------------------------- captures and device-wide calls (cuda_capture.c) */
/* Around a capture (cudaStreamBeginCapture .. cudaStreamEndCapture): held
 * shared with the process's other captures. enter: 0, or 1 when the lock
 * could not be taken (the capture must not start). */
int ngc_cuda_capture_enter(void);
void ngc_cuda_capture_leave(void);
/* Around calls that synchronise the whole device: they wait until no other
 * thread is capturing (nested sections are one). */
void ngc_cuda_wide_enter(void);
void ngc_cuda_wide_leave(void);
/* Threads waiting in ngc_cuda_wide_enter now (for tests). */
int ngc_cuda_wide_waiting(void);
/* cudaFree, cudaFreeHost and cudaDeviceSynchronize, each in such a section. */
cudaError_t ngc_cuda_device_free(void *p);
cudaError_t ngc_cuda_host_free(void *p);
cudaError_t ngc_cuda_device_sync(void);

/* ----------------------------------------------------- graphs (cuda_graph.c) */
/* graph_begin, graph_end, graph_launch, graph_free, graph_replay_begin,
 * graph_replay_end. */
void ngc_cuda_fill_graph_ops(ngc_backend_ops *ops);
/* NEGCUT_OK, or (with a message) NEGCUT_ERR_STATE while a graph is being
 * recorded or replayed: for downloads and syncs, which a graph cannot hold. */
negcut_status ngc_cuda_outside_graphs(ngc_backend *be, const char *what);
/* Every place that enqueues device work calls this first. While a graph is
 * recorded or replayed it adds the call to the signature a replay must
 * match; it returns 1 while replaying, and the caller then enqueues
 * nothing (the recording does that work when it is launched). */
int ngc_cuda_skip(ngc_backend *be, const char *what);
/* Host data handed over while recording or replaying (uploads, gather's
 * ids, Adam's scalars): recorded as a copy from a pinned buffer the graph
 * owns, refilled by each replay. */
negcut_status ngc_cuda_graph_feed(ngc_backend *be, void *dst, const void *src, size_t bytes);
/* cudaMemsetAsync / a device-to-device cudaMemcpyAsync on the backend's
 * stream, through ngc_cuda_skip. */
negcut_status ngc_cuda_zero(ngc_backend *be, void *p, size_t bytes, const char *what);
negcut_status ngc_cuda_copy(ngc_backend *be, void *dst, const void *src, size_t bytes,
                            const char *what);
/* Destroys the recording stream (at close). */
void ngc_cuda_graphs_close(ngc_backend *be);
/* Gives back what cuda_optim.cu kept for the recording or replay that ends. */
void ngc_cuda_adam_graph_end(ngc_backend *be);

/* ------------------------------------------------ convolutions (cuda_conv.c) */
void ngc_cuda_fill_conv_ops(ngc_backend_ops *ops);
void ngc_cuda_convs_destroy(ngc_backend *be);

/* ------------------------------------------------------ cuBLAS (cuda_gemm.c) */
void ngc_cuda_fill_gemm_ops(ngc_backend_ops *ops);

/* --------------------------------------------- own kernels (cuda_*.cu) */
void ngc_cuda_fill_eltwise_ops(ngc_backend_ops *ops); /* cuda_eltwise.cu */
void ngc_cuda_fill_spatial_ops(ngc_backend_ops *ops); /* cuda_spatial.cu */
void ngc_cuda_fill_norm_ops(ngc_backend_ops *ops);    /* cuda_norm.cu */
void ngc_cuda_fill_rows_ops(ngc_backend_ops *ops);    /* cuda_rows.cu */
void ngc_cuda_fill_loss_ops(ngc_backend_ops *ops);    /* cuda_losses.cu */
void ngc_cuda_fill_optim_ops(ngc_backend_ops *ops);   /* cuda_optim.cu */

/* Helpers the cuDNN and cuBLAS files need (cuda_helpers.cu). */
/* y (N, C, HW) += b (C) per channel. */
negcut_status ngc_cuda_bias_add(ngc_backend *be, float *y, const float *b, int64_t n,
                                int64_t c, int64_t hw);
/* db (C) += sum of dy (N, C, HW) over N and HW, in double, deterministic. */
negcut_status ngc_cuda_bias_grad(ngc_backend *be, const float *dy, float *db, int64_t n,
                                 int64_t c, int64_t hw);
/* out[b, j] (= or +=) (float)(sum_r x[b, r, j] / div) for x (B, rows, cols)
 * row-major: column sums in double, in a fixed order whatever the device. */
negcut_status ngc_cuda_colsum(ngc_backend *be, const float *x, int64_t batch, int64_t rows,
                              int64_t cols, double div, int accumulate, float *out);
/* bfloat16 (round to nearest even) <-> float; dst and src do not overlap.
 * from_bf16 also adds b (C) per channel of an (n / (c hw), c, hw) tensor
 * when b is not NULL. */
negcut_status ngc_cuda_to_bf16(ngc_backend *be, const float *src, void *dst, int64_t n);
negcut_status ngc_cuda_from_bf16(ngc_backend *be, const void *src, float *dst, const float *b,
                                 int64_t n, int64_t c, int64_t hw);

#ifdef __cplusplus
}
#endif

#endif
