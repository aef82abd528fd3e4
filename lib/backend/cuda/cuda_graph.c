/* CUDA graphs: a run of op slots recorded once and replayed with one launch
 * (the graph slots of backend.h).
 *
 * Recording happens on a stream of its own: while it records, the backend's
 * current stream (ngc_cuda.stream) and its cuDNN and cuBLAS handles point at
 * that stream, so every slot enqueues into the graph unchanged. The stream
 * is non-blocking because capturing a blocking stream would make any call
 * on the legacy default stream, from any thread (another context's upload),
 * fail for as long as the recording lasts. Transfers cannot be recorded
 * (their host buffers change from call to call): upload, download and sync
 * refuse while recording, and so does gather's staging of its ids.
 *
 * Memory. A replay writes to the addresses the recording saw. The tensors
 * the caller passes are the caller's to keep in place; the scratch the
 * slots take and give back while recording must never go to anyone else,
 * so a hold is attached to the caching allocator (cuda_alloc.c) and those
 * blocks stay the graph's until graph_free. The shared cuDNN workspace is
 * swapped for one the graph owns: the shared one may later be replaced by a
 * larger one and its memory handed out. graph_end refuses a recording that
 * left a block allocated during it in use (that block would be written by
 * every replay while someone else owns it).
 *
 * Launch: on the backend's own stream, ordered like any slot, and, that
 * stream being blocking, against uploads on the legacy stream. */
#include <stdlib.h>

#include "cuda.h"

struct ngc_cuda_graph {
  cudaGraphExec_t exec;
  ngc_cuda_hold *hold;         /* scratch the graph touches */
  void *saved_work;            /* the shared workspace, set aside while recording */
  size_t saved_work_bytes;
};

negcut_status ngc_cuda_not_recording(ngc_backend *be, const char *what) {
  if (!ngc_cuda_of(be)->recording) return NEGCUT_OK;
  return ngc_error(be->ctx, NEGCUT_ERR_STATE, "cuda %s: not possible while a graph is recorded",
                   what);
}

/* Points the stream and the library handles at s. */
static negcut_status bind_stream(ngc_backend *be, cudaStream_t s) {
  ngc_cuda *c = ngc_cuda_of(be);
  c->stream = s;
  negcut_status st = ngc_cuda_check_dnn(be, cudnnSetStream(c->dnn, s), "set stream");
  if (!st) st = ngc_cuda_check_blas(be, cublasSetStream(c->blas, s), "set stream");
  return st;
}

static void graph_destroy(ngc_backend *be, ngc_cuda_graph *g) {
  if (g->exec) cudaGraphExecDestroy(g->exec);
  ngc_cuda_hold_release(be, g->hold);
  free(g);
}

static negcut_status cuda_graph_end(ngc_backend *be, int keep, void **out);

static negcut_status cuda_graph_begin(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  negcut_status st = ngc_cuda_enter(be);
  if (st) return st;
  if (c->recording) return ngc_error(be->ctx, NEGCUT_ERR_STATE, "cuda graph: already recording");
  if (!c->record_stream) {
    st = ngc_cuda_check(be, cudaStreamCreateWithFlags(&c->record_stream, cudaStreamNonBlocking),
                        "create recording stream");
    if (st) return st;
  }
  ngc_cuda_graph *g = calloc(1, sizeof *g);
  if (g) g->hold = ngc_cuda_hold_create();
  if (!g || !g->hold) {
    free(g);
    return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cuda graph: out of host memory");
  }
  /* The graph's own workspace, as large as the shared one (which the
   * unrecorded run before a recording has grown to what its plans need),
   * taken before the capture starts so that no cudaMalloc runs inside it. */
  g->saved_work = c->work;
  g->saved_work_bytes = c->work_bytes;
  c->work = NULL;
  c->work_bytes = 0;
  ngc_cuda_cache_hold(be, g->hold);
  if (g->saved_work_bytes) {
    c->work = ngc_cuda_alloc(be, g->saved_work_bytes);
    c->work_bytes = c->work ? g->saved_work_bytes : 0;
  }
  st = ngc_cuda_check(be, cudaStreamBeginCapture(c->record_stream, cudaStreamCaptureModeRelaxed),
                      "begin recording");
  if (!st) {
    c->recording = g;
    st = bind_stream(be, c->record_stream);
    if (st) { /* ends the capture, gives the workspace back, rebinds */
      void *none = NULL;
      cuda_graph_end(be, 0, &none);
    }
    return st;
  }
  if (c->work) ngc_cuda_free(be, c->work);
  ngc_cuda_cache_hold(be, NULL);
  c->work = g->saved_work;
  c->work_bytes = g->saved_work_bytes;
  graph_destroy(be, g);
  return st;
}

static negcut_status cuda_graph_end(ngc_backend *be, int keep, void **out) {
  ngc_cuda *c = ngc_cuda_of(be);
  ngc_cuda_graph *g = c->recording;
  cudaGraph_t graph = NULL;
  *out = NULL;
  if (!g) return ngc_error(be->ctx, NEGCUT_ERR_STATE, "cuda graph: not recording");
  cudaSetDevice(c->device);
  const cudaError_t ended = cudaStreamEndCapture(c->record_stream, &graph);
  c->recording = NULL;
  /* the graph's own workspace joins its hold (the hold is still attached) */
  if (c->work) ngc_cuda_free(be, c->work);
  ngc_cuda_cache_hold(be, NULL);
  c->work = g->saved_work;
  c->work_bytes = g->saved_work_bytes;
  negcut_status st = bind_stream(be, c->run_stream);
  if (!st && keep) {
    if (ended != cudaSuccess)
      st = ngc_cuda_check(be, ended, "end recording");
    else if (!ngc_cuda_hold_usable(g->hold))
      st = ngc_error(be->ctx, NEGCUT_ERR_UNSUPPORTED,
                     "cuda graph: memory allocated while recording outlives it; not replayable");
    else
      st = ngc_cuda_check(be, cudaGraphInstantiate(&g->exec, graph, 0), "instantiate graph");
  }
  if (graph) cudaGraphDestroy(graph);
  if (ended != cudaSuccess) (void)cudaGetLastError();
  if (st || !keep) {
    graph_destroy(be, g);
    return st;
  }
  *out = g;
  return NEGCUT_OK;
}

static negcut_status cuda_graph_launch(ngc_backend *be, void *graph) {
  ngc_cuda *c = ngc_cuda_of(be);
  negcut_status st = ngc_cuda_enter(be);
  if (!st) st = ngc_cuda_not_recording(be, "graph launch");
  if (!st)
    st = ngc_cuda_check(be, cudaGraphLaunch(((ngc_cuda_graph *)graph)->exec, c->run_stream),
                        "launch graph");
  return st;
}

static void cuda_graph_free(ngc_backend *be, void *graph) {
  ngc_cuda *c = ngc_cuda_of(be);
  if (!graph) return;
  cudaSetDevice(c->device);
  /* An exec graph still running is freed by the driver once it completes;
   * its blocks go back to the cache in stream order (cuda_alloc.c). */
  graph_destroy(be, graph);
  (void)cudaGetLastError();
}

void ngc_cuda_graphs_close(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  if (c->recording) {
    void *none = NULL;
    cuda_graph_end(be, 0, &none);
  }
  if (c->record_stream) cudaStreamDestroy(c->record_stream);
  c->record_stream = NULL;
  (void)cudaGetLastError();
}

void ngc_cuda_fill_graph_ops(ngc_backend_ops *ops) {
  ops->graph_begin = cuda_graph_begin;
  ops->graph_end = cuda_graph_end;
  ops->graph_launch = cuda_graph_launch;
  ops->graph_free = cuda_graph_free;
}
