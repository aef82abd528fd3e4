/* CUDA graphs: a run of op slots recorded once and replayed with one launch
 * (the graph slots of backend.h).
 *
 * Recording happens on a stream of its own: while it records, the backend's
 * current stream (ngc_cuda.stream) and its cuDNN and cuBLAS handles point at
 * that stream, so every slot enqueues into the graph unchanged. The stream
 * is non-blocking because capturing a blocking stream would make any call
 * on the legacy default stream, from any thread (another context's upload),
 * fail for as long as the recording lasts. Downloads and syncs refuse while
 * recording (a graph cannot hand data back to the host in the middle);
 * transfers to the device become feeds (below).
 *
 * Memory. A replay writes to the addresses the recording saw. The tensors
 * the caller passes are the caller's to keep in place; the scratch the
 * slots take and give back while recording must never go to anyone else,
 * so a hold is attached to the caching allocator (cuda_alloc.c) and those
 * blocks stay the graph's until graph_free. The shared cuDNN workspace is
 * swapped for one the graph owns: the shared one may later be replaced by a
 * larger one and its memory handed out. graph_end refuses a recording that
 * left a block allocated during it in use (that block would be written by
 * every replay while someone else owns it). A replay is lent the hold (its
 * slots' scratch is the graph's own, never touched: a replay enqueues
 * nothing); replay_end refuses a replay that kept one of those blocks, and
 * launch refuses a graph whose hold has a block in use.
 *
 * Launch: on the backend's own stream, ordered like any slot, and, that
 * stream being blocking, against uploads on the legacy stream.
 *
 * Host data (graph_replay_begin / _end). A training step hands the device
 * fresh host data every time: images, patch ids, noise, Adam's scalars.
 * While recording, each such transfer becomes a copy from a pinned buffer
 * the graph owns (a feed). To replay, the caller runs the same calls again
 * in replay mode: every enqueue is skipped (ngc_cuda_skip), and each
 * transfer only refills its feed, in order; graph_replay_end then checks
 * that the calls matched the recording (their count, sites and feed sizes)
 * and the caller launches it. Before refilling, a replay waits for the
 * graph's previous launch, which may still be reading the feeds. */
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

typedef struct feed {
  void *host; /* pinned, in one of the graph's slabs */
  size_t bytes;
} feed;

/* Pinned memory for feeds, handed out in order: a step has dozens of small
 * transfers (patch ids per layer and call), one cudaHostAlloc each would
 * pin a page apiece. */
typedef struct slab {
  unsigned char *base;
  size_t cap, used;
} slab;

#define SLAB_BYTES ((size_t)1 << 20)
#define FEED_ALIGN ((size_t)64)

/* The calls of a recording or a replay: their count and a hash of their
 * sites, in order. */
typedef struct call_sig {
  uint64_t n, hash;
} call_sig;

struct ngc_cuda_graph {
  cudaGraphExec_t exec;
  ngc_cuda_hold *hold;         /* scratch the graph touches */
  void *saved_work;            /* the shared workspace, set aside while recording */
  size_t saved_work_bytes;
  feed *feeds;
  int32_t n_feeds, cap_feeds;
  slab *slabs;
  int32_t n_slabs, cap_slabs;
  int32_t next_feed;           /* replay: the feed the next transfer refills */
  int32_t diverged;            /* replay: a transfer did not match its feed */
  call_sig recorded, replayed;
  cudaEvent_t launched;        /* recorded after each launch */
  int32_t ever_launched;
  uint64_t launch_drains;      /* ngc_cuda.drains at the latest launch */
  int32_t feeds_allowed; /* graph_begin's feeds */
};

negcut_status ngc_cuda_outside_graphs(ngc_backend *be, const char *what) {
  const ngc_cuda *c = ngc_cuda_of(be);
  if (!c->recording && !c->replaying) return NEGCUT_OK;
  return ngc_error(be->ctx, NEGCUT_ERR_STATE,
                   "cuda %s: not possible while a graph is recorded or replayed", what);
}

int ngc_cuda_skip(ngc_backend *be, const char *what) {
  ngc_cuda *c = ngc_cuda_of(be);
  ngc_cuda_graph *g = c->recording ? c->recording : c->replaying;
  if (!g) return 0;
  call_sig *s = c->recording ? &g->recorded : &g->replayed;
  s->n++;
  s->hash = (s->hash ^ (uint64_t)(uintptr_t)what) * 0x100000001B3ull; /* FNV-1a step */
  return c->replaying != NULL;
}

negcut_status ngc_cuda_zero(ngc_backend *be, void *p, size_t bytes, const char *what) {
  if (ngc_cuda_skip(be, what)) return NEGCUT_OK;
  return ngc_cuda_check(be, cudaMemsetAsync(p, 0, bytes, ngc_cuda_stream(be)), what);
}

negcut_status ngc_cuda_copy(ngc_backend *be, void *dst, const void *src, size_t bytes,
                            const char *what) {
  if (ngc_cuda_skip(be, what)) return NEGCUT_OK;
  return ngc_cuda_check(
      be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ngc_cuda_stream(be)), what);
}

/* bytes of pinned memory for a feed of g, 64-byte aligned. */
static negcut_status feed_space(ngc_backend *be, ngc_cuda_graph *g, size_t bytes, void **out) {
  const size_t need = (bytes + FEED_ALIGN - 1) & ~(FEED_ALIGN - 1);
  slab *last = g->n_slabs ? &g->slabs[g->n_slabs - 1] : NULL;
  if (!last || last->cap - last->used < need) {
    if (g->n_slabs == g->cap_slabs) {
      int32_t cap = g->cap_slabs ? 2 * g->cap_slabs : 4;
      slab *ns = realloc(g->slabs, (size_t)cap * sizeof *ns);
      if (!ns) return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cuda graph: out of host memory");
      g->slabs = ns;
      g->cap_slabs = cap;
    }
    slab s = {NULL, need > SLAB_BYTES ? need : SLAB_BYTES, 0};
    negcut_status st = ngc_cuda_check(be, cudaHostAlloc((void **)&s.base, s.cap, cudaHostAllocDefault),
                                      "graph input buffer");
    if (st) return st;
    g->slabs[g->n_slabs++] = s;
    last = &g->slabs[g->n_slabs - 1];
  }
  *out = last->base + last->used;
  last->used += need;
  return NEGCUT_OK;
}

negcut_status ngc_cuda_graph_feed(ngc_backend *be, void *dst, const void *src, size_t bytes) {
  static const char site[] = "graph feed";
  ngc_cuda *c = ngc_cuda_of(be);
  ngc_cuda_graph *g = c->recording ? c->recording : c->replaying;
  if (c->replaying) {
    ngc_cuda_skip(be, site);
    if (g->next_feed >= g->n_feeds || g->feeds[g->next_feed].bytes != bytes) {
      g->diverged = 1;
      return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL,
                       "cuda graph replay: transfer %d of %zu bytes, the recording's differs",
                       (int)g->next_feed, bytes);
    }
    memcpy(g->feeds[g->next_feed++].host, src, bytes);
    return NEGCUT_OK;
  }
  if (!g->feeds_allowed)
    return ngc_error(be->ctx, NEGCUT_ERR_UNSUPPORTED,
                     "cuda graph: host data handed over while recording a run without replays");
  if (g->n_feeds == g->cap_feeds) {
    int32_t cap = g->cap_feeds ? 2 * g->cap_feeds : 32;
    feed *nf = realloc(g->feeds, (size_t)cap * sizeof *nf);
    if (!nf) return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cuda graph: out of host memory");
    g->feeds = nf;
    g->cap_feeds = cap;
  }
  void *host = NULL;
  negcut_status st = feed_space(be, g, bytes, &host);
  if (st) return st;
  memcpy(host, src, bytes);
  g->feeds[g->n_feeds++] = (feed){host, bytes};
  ngc_cuda_skip(be, site);
  return ngc_cuda_check(
      be, cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, ngc_cuda_stream(be)),
      "upload (recorded)");
}

/* Points the stream and the library handles at s. Every handle is tried
 * even after one fails, so that a failed switch back to the backend's
 * stream leaves as little as it can on the recording stream. */
static negcut_status bind_stream(ngc_backend *be, cudaStream_t s) {
  ngc_cuda *c = ngc_cuda_of(be);
  c->stream = s;
  negcut_status st = ngc_cuda_check_dnn(be, cudnnSetStream(c->dnn, s), "set stream");
  negcut_status st2 = ngc_cuda_check_blas(be, cublasSetStream(c->blas, s), "set stream");
  /* cublasSetStream puts the handle back on cuBLAS's own workspace pool */
  if (!st2)
    st2 = ngc_cuda_check_blas(be, cublasSetWorkspace(c->blas, c->blas_work, c->blas_work_bytes),
                              "set workspace");
  return st ? st : st2;
}

static void graph_destroy(ngc_backend *be, ngc_cuda_graph *g) {
  if (g->exec) cudaGraphExecDestroy(g->exec);
  /* A launch may still read the feeds; cudaFreeHost is not documented to
   * wait for it (it does in practice), so wait here. */
  if (g->ever_launched) cudaEventSynchronize(g->launched);
  for (int32_t i = 0; i < g->n_slabs; i++) ngc_cuda_host_free(g->slabs[i].base);
  free(g->slabs);
  free(g->feeds);
  if (g->launched) cudaEventDestroy(g->launched);
  ngc_cuda_hold_release(be, g->hold);
  free(g);
}

static negcut_status cuda_graph_end(ngc_backend *be, int keep, void **out);

static negcut_status cuda_graph_begin(ngc_backend *be, int feeds) {
  ngc_cuda *c = ngc_cuda_of(be);
  negcut_status st = ngc_cuda_enter(be);
  if (st) return st;
  if (c->recording) return ngc_error(be->ctx, NEGCUT_ERR_STATE, "cuda graph: already recording");
  if (!c->record_stream) {
    st = ngc_cuda_check(be, cudaStreamCreateWithFlags(&c->record_stream, cudaStreamNonBlocking),
                        "create recording stream");
    if (st) return st;
  }
  if (c->replaying) return ngc_error(be->ctx, NEGCUT_ERR_STATE, "cuda graph: replaying");
  ngc_cuda_graph *g = calloc(1, sizeof *g);
  if (g) g->hold = ngc_cuda_hold_create();
  if (!g || !g->hold) {
    free(g);
    return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cuda graph: out of host memory");
  }
  st = ngc_cuda_check(be, cudaEventCreateWithFlags(&g->launched, cudaEventDisableTiming),
                      "graph event");
  if (st) {
    graph_destroy(be, g);
    return st;
  }
  g->feeds_allowed = feeds != 0;
  /* The graph's own workspace, taken before the capture starts so that no
   * cudaMalloc runs inside it: as large as the largest any plan ran with
   * since the last recording or replay, which covers the unrecorded run
   * of the same work that comes before a recording. (If nothing ran since,
   * the workspace grows inside the capture, as large as the plans need.) */
  g->saved_work = c->work;
  g->saved_work_bytes = c->work_bytes;
  c->work = NULL;
  c->work_bytes = 0;
  ngc_cuda_cache_hold(be, g->hold);
  if (c->work_peak) {
    c->work = ngc_cuda_alloc(be, c->work_peak);
    c->work_bytes = c->work ? c->work_peak : 0;
  }
  c->work_peak = 0;
  /* until graph_end: other threads' device-wide calls wait */
  st = ngc_cuda_capture_enter() ? ngc_error(be->ctx, NEGCUT_ERR_BACKEND,
                                            "cuda graph: the process's capture lock failed")
                                : NEGCUT_OK;
  if (!st) {
    st = ngc_cuda_check(be, cudaStreamBeginCapture(c->record_stream, cudaStreamCaptureModeRelaxed),
                        "begin recording");
    if (st) ngc_cuda_capture_leave();
  }
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
  ngc_cuda_capture_leave();
  c->recording = NULL;
  c->work_peak = 0;
  /* the graph's own workspace and Adam's scalars join its hold (the hold
   * is still attached) */
  if (c->work) ngc_cuda_free(be, c->work);
  ngc_cuda_adam_graph_end(be);
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
  ngc_cuda_graph *g = graph;
  negcut_status st = ngc_cuda_enter(be);
  if (!st) st = ngc_cuda_outside_graphs(be, "graph launch");
  if (!st && !ngc_cuda_hold_usable(g->hold)) /* a replay kept one of its blocks */
    st = ngc_error(be->ctx, NEGCUT_ERR_STATE, "cuda graph: its memory is in use elsewhere");
  if (!st) st = ngc_cuda_check(be, cudaGraphLaunch(g->exec, c->run_stream), "launch graph");
  if (!st) st = ngc_cuda_check(be, cudaEventRecord(g->launched, c->run_stream), "graph event");
  if (!st) {
    g->ever_launched = 1;
    g->launch_drains = c->drains;
  }
  return st;
}

static negcut_status cuda_graph_replay_begin(ngc_backend *be, void *graph) {
  ngc_cuda *c = ngc_cuda_of(be);
  ngc_cuda_graph *g = graph;
  negcut_status st = ngc_cuda_enter(be);
  if (!st) st = ngc_cuda_outside_graphs(be, "graph replay");
  /* the previous launch may still be reading the feeds this replay refills
   * (not when a download or sync has seen everything finish since) */
  if (!st && g->ever_launched && g->launch_drains == c->drains)
    st = ngc_cuda_wait_event(be, g->launched, "graph replay (wait)");
  if (st) return st;
  g->next_feed = 0;
  g->diverged = 0;
  g->replayed = (call_sig){0, 0};
  c->replaying = g;
  ngc_cuda_cache_lend(be, g->hold);
  return NEGCUT_OK;
}

static negcut_status cuda_graph_replay_end(ngc_backend *be, int ok) {
  ngc_cuda *c = ngc_cuda_of(be);
  ngc_cuda_graph *g = c->replaying;
  if (!g) return ngc_error(be->ctx, NEGCUT_ERR_STATE, "cuda graph: not replaying");
  c->replaying = NULL;
  ngc_cuda_cache_lend(be, NULL);
  c->work_peak = 0;
  ngc_cuda_adam_graph_end(be);
  if (!ngc_cuda_hold_usable(g->hold)) /* a slot kept scratch it was lent */
    return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL,
                     "cuda graph replay: memory of the graph outlives the replay");
  if (!ok) return NEGCUT_OK;
  if (g->diverged || g->next_feed != g->n_feeds || g->replayed.n != g->recorded.n ||
      g->replayed.hash != g->recorded.hash)
    return ngc_error(be->ctx, NEGCUT_ERR_INTERNAL,
                     "cuda graph replay: %llu calls and %d transfers, the recording had %llu and %d",
                     (unsigned long long)g->replayed.n, (int)g->next_feed,
                     (unsigned long long)g->recorded.n, (int)g->n_feeds);
  return NEGCUT_OK;
}

static void cuda_graph_free(ngc_backend *be, void *graph) {
  ngc_cuda *c = ngc_cuda_of(be);
  if (!graph) return;
  if (c->replaying == graph) { /* (no caller does this; the loan must not outlive it) */
    c->replaying = NULL;
    ngc_cuda_cache_lend(be, NULL);
  }
  cudaSetDevice(c->device);
  /* graph_destroy waits for a launch still running (it reads the feeds);
   * the graph's blocks go back to the cache in stream order (cuda_alloc.c). */
  graph_destroy(be, graph);
  (void)cudaGetLastError();
}

void ngc_cuda_graphs_close(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  c->replaying = NULL;
  ngc_cuda_cache_lend(be, NULL);
  ngc_cuda_adam_graph_end(be);
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
  ops->graph_replay_begin = cuda_graph_replay_begin;
  ops->graph_replay_end = cuda_graph_replay_end;
}
