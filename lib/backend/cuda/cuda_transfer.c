/* Host <-> device transfers: the memory slots, and a ring of pinned host
 * memory that lets uploads (and the patch ids of gather, Adam's scalars)
 * go out without the host waiting for the device.
 *
 * A copy from pageable host memory may make the host wait until the stream
 * has drained; a copy from pinned memory does not, but the pinned bytes
 * must then stay untouched until the copy ran. So each upload is copied
 * into the next free bytes of one pinned ring, sent with cudaMemcpyAsync
 * and followed by an event; the copies in flight are kept oldest first
 * with the bytes they read. Bytes are written again only after the newest
 * copy that read them has finished. A download or a sync sees everything
 * enqueued finish and empties the list; where a copy's bytes or its place
 * in the list are wanted, the copies whose events have fired are dropped
 * first (a query, no wait). The ring grows (one wait, up to
 * STAGE_RING_MAX_BYTES) to hold twice the largest upload, and whenever it
 * went round onto a copy still running: then all uploads between two
 * downloads or syncs fit, and a training step (which ends with one) stops
 * waiting for its own uploads after its first steps, however many it
 * sends. At the largest ring an upload waits for the copy that read its
 * bytes, and with STAGE_COPIES in flight for the oldest. Uploads larger
 * than STAGE_MAX_BYTES are rare (never inside a training step) and go
 * synchronously.
 *
 * Uploads run on the legacy default stream. The backend's stream is a
 * blocking stream, so an upload waits for the work enqueued before it and
 * the work enqueued after it waits for the upload: in one backend the order
 * is the host's order, and the staged copies finish in the order they were
 * made (an event that fired says every earlier copy finished). It also
 * orders uploads against other contexts' streams on the device, which is
 * what makes a model uploaded through one context safe to read from a
 * translator on another (the price: an upload also waits for other
 * contexts' work in flight). */
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

#define STAGE_COPIES 256
#define STAGE_ALIGN ((size_t)256)
#define STAGE_MAX_BYTES ((size_t)8 << 20)
#define STAGE_RING_MIN_BYTES ((size_t)1 << 20)
#define STAGE_RING_MAX_BYTES ((size_t)64 << 20)

typedef struct stage_copy {
  cudaEvent_t done;   /* recorded after the copy */
  size_t begin, end; /* the ring's bytes it reads */
} stage_copy;

struct ngc_cuda_stage {
  unsigned char *ring; /* pinned, cap bytes; NULL before the first upload */
  size_t cap;
  size_t head; /* where the next copy's bytes start, unless they must wrap */
  stage_copy copy[STAGE_COPIES]; /* in flight: n of them from first, circularly */
  int32_t first, n;
  size_t refused; /* the smallest ring cudaHostAlloc refused; 0: none */
};

negcut_status ngc_cuda_stage_create(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  c->stage = calloc(1, sizeof *c->stage);
  if (!c->stage)
    return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cuda staging: out of host memory");
  for (int32_t i = 0; i < STAGE_COPIES; i++) {
    negcut_status st = ngc_cuda_check(
        be, cudaEventCreateWithFlags(&c->stage->copy[i].done, cudaEventDisableTiming),
        "create staging event");
    if (st) return st;
  }
  return NEGCUT_OK;
}

/* The i-th copy in flight, oldest first (i == n: the next copy's place). */
static stage_copy *at(ngc_cuda_stage *g, int32_t i) {
  return &g->copy[(g->first + i) % STAGE_COPIES];
}

static stage_copy *newest(ngc_cuda_stage *g) { return g->n ? at(g, g->n - 1) : NULL; }

/* Forgets the k oldest copies in flight (they have finished). */
static void forget(ngc_cuda_stage *g, int32_t k) {
  g->first = (g->first + k) % STAGE_COPIES;
  g->n -= k;
}

void ngc_cuda_stage_destroy(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  ngc_cuda_stage *g = c->stage;
  if (!g) return;
  if (newest(g)) cudaEventSynchronize(newest(g)->done);
  for (int32_t i = 0; i < STAGE_COPIES; i++)
    if (g->copy[i].done) cudaEventDestroy(g->copy[i].done);
  if (g->ring) ngc_cuda_host_free(g->ring);
  free(g);
  c->stage = NULL;
}

negcut_status ngc_cuda_wait_stream(ngc_backend *be, cudaStream_t s, const char *what) {
  be->n_host_waits++;
  return ngc_cuda_check(be, cudaStreamSynchronize(s), what);
}

negcut_status ngc_cuda_wait_event(ngc_backend *be, cudaEvent_t ev, const char *what) {
  be->n_host_waits++;
  return ngc_cuda_check(be, cudaEventSynchronize(ev), what);
}

/* Pageable copy that returns only when the device has the bytes. */
static negcut_status copy_sync(ngc_backend *be, void *dst, const void *src, size_t bytes,
                               cudaStream_t s) {
  negcut_status st =
      ngc_cuda_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "upload");
  if (!st) st = ngc_cuda_wait_stream(be, s, "upload (synchronise)");
  return st;
}

/* Waits for the first k copies in flight (the newest of them: the copies
 * finish in order) and forgets them. */
static negcut_status retire(ngc_backend *be, ngc_cuda_stage *g, int32_t k) {
  if (k <= 0) return NEGCUT_OK;
  negcut_status st = ngc_cuda_wait_event(be, at(g, k - 1)->done, "upload (staging buffer)");
  if (!st) forget(g, k);
  return st;
}

/* Replaces the ring by one of cap bytes, once no copy in flight reads the
 * old one. *no_memory: no pinned memory could be had (the old ring stays). */
static negcut_status grow(ngc_backend *be, ngc_cuda_stage *g, size_t cap, int *no_memory) {
  void *ring = NULL;
  *no_memory = g->refused && cap >= g->refused; /* not asked again */
  if (*no_memory) return NEGCUT_OK;
  if (cudaHostAlloc(&ring, cap, cudaHostAllocDefault) != cudaSuccess) {
    (void)cudaGetLastError();
    g->refused = cap;
    *no_memory = 1;
    return NEGCUT_OK;
  }
  negcut_status st = retire(be, g, g->n);
  if (st) {
    ngc_cuda_host_free(ring);
    return st;
  }
  if (g->ring) ngc_cuda_host_free(g->ring);
  g->ring = ring;
  g->cap = cap;
  g->head = 0;
  return NEGCUT_OK;
}

/* Drops the oldest copies whose events have fired (no wait). */
static void forget_finished(ngc_cuda_stage *g) {
  while (g->n) {
    if (cudaEventQuery(at(g, 0)->done) != cudaSuccess) {
      /* "not ready" is no error: not left for the next launch's check (a
       * failed device answers the next call that waits, too) */
      (void)cudaGetLastError();
      return;
    }
    forget(g, 1);
  }
}

/* How many of the oldest copies in flight must finish before the bytes
 * [begin, begin + need) are free: up to the newest that reads any. */
static int32_t readers(ngc_cuda_stage *g, size_t begin, size_t need) {
  int32_t k = 0;
  for (int32_t i = 0; i < g->n; i++) {
    const stage_copy *c = at(g, i);
    if (c->begin < begin + need && begin < c->end) k = i + 1;
  }
  return k;
}

negcut_status ngc_cuda_stage_copy(ngc_backend *be, void *dst, const void *src, size_t bytes,
                                  cudaStream_t s) {
  ngc_cuda_stage *g = ngc_cuda_of(be)->stage;
  negcut_status st;
  int no_memory = 0;
  if (!bytes) return NEGCUT_OK;
  if (ngc_cuda_of(be)->recording || ngc_cuda_of(be)->replaying)
    return ngc_cuda_graph_feed(be, dst, src, bytes);
  if (bytes > STAGE_MAX_BYTES) return copy_sync(be, dst, src, bytes, s);
  const size_t need = (bytes + STAGE_ALIGN - 1) / STAGE_ALIGN * STAGE_ALIGN;
  if (g->cap < 2 * need) {
    size_t cap = g->cap ? g->cap : STAGE_RING_MIN_BYTES;
    while (cap < 2 * need) cap *= 2;
    st = grow(be, g, cap, &no_memory);
    if (st) return st;
    if (no_memory) return copy_sync(be, dst, src, bytes, s); /* slow but correct */
  }
  size_t begin = g->head + need <= g->cap ? g->head : 0;
  int32_t k = readers(g, begin, need);
  if (k || g->n == STAGE_COPIES) {
    forget_finished(g);
    k = readers(g, begin, need);
  }
  if (k && g->cap < STAGE_RING_MAX_BYTES) { /* gone round onto a copy still running */
    st = grow(be, g, 2 * g->cap, &no_memory);
    if (st) return st;
    if (!no_memory) begin = 0, k = 0;
  }
  if (k == 0 && g->n == STAGE_COPIES) k = 1;
  st = retire(be, g, k);
  if (st) return st;
  stage_copy *c = at(g, g->n);
  memcpy(g->ring + begin, src, bytes);
  st = ngc_cuda_check(be, cudaMemcpyAsync(dst, g->ring + begin, bytes, cudaMemcpyHostToDevice, s),
                      "upload");
  if (!st) {
    st = ngc_cuda_check(be, cudaEventRecord(c->done, s), "upload (record event)");
    if (st) { /* nothing would say when the bytes are free */
      be->n_host_waits++;
      (void)cudaStreamSynchronize(s);
    }
  }
  if (st) return st;
  c->begin = begin;
  c->end = begin + need;
  g->n++;
  g->head = begin + need;
  return NEGCUT_OK;
}

static negcut_status cuda_upload(ngc_backend *be, void *dst, const void *host, size_t bytes) {
  negcut_status st = ngc_cuda_enter(be);
  return st ? st : ngc_cuda_stage_copy(be, dst, host, bytes, cudaStreamLegacy);
}

/* The host has seen everything enqueued so far finish: no staged copy is
 * still reading the ring. */
static void drained(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  c->drains++;
  forget(c->stage, c->stage->n);
}

static negcut_status cuda_download(ngc_backend *be, void *host, const void *src, size_t bytes) {
  cudaStream_t s = ngc_cuda_stream(be);
  negcut_status st = ngc_cuda_enter(be);
  if (!st) st = ngc_cuda_outside_graphs(be, "download");
  if (st || !bytes) return st;
  st = ngc_cuda_check(be, cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, s),
                      "download");
  if (!st) st = ngc_cuda_wait_stream(be, s, "download (synchronise)");
  if (!st) drained(be); /* the copy ran after every earlier upload too */
  return st;
}

/* Everything enqueued so far has run: the stream, and the newest staged
 * copy in flight (every earlier one finishes before it). */
static negcut_status cuda_sync(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  negcut_status st = ngc_cuda_enter(be);
  if (!st) st = ngc_cuda_outside_graphs(be, "synchronise");
  if (!st) st = ngc_cuda_wait_stream(be, c->stream, "synchronise");
  if (!st && newest(c->stage))
    st = ngc_cuda_wait_event(be, newest(c->stage)->done, "synchronise (uploads)");
  if (!st) drained(be);
  return st;
}

/* Page-locked memory for the callers' transfer buffers (ngc_xfer_buf). A
 * refusal is no error: the caller takes pageable memory instead. */
static void *cuda_pinned_alloc(ngc_backend *be, size_t bytes) {
  void *p = NULL;
  (void)be;
  if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault) != cudaSuccess) {
    (void)cudaGetLastError(); /* not the next launch's error */
    return NULL;
  }
  return p;
}

static void cuda_pinned_free(ngc_backend *be, void *p) {
  (void)be;
  if (p) (void)ngc_cuda_host_free(p);
}

void ngc_cuda_fill_memory_ops(ngc_backend_ops *ops) {
  ops->alloc = ngc_cuda_alloc;
  ops->free = ngc_cuda_free;
  ops->upload = cuda_upload;
  ops->download = cuda_download;
  ops->sync = cuda_sync;
  ops->pinned_alloc = cuda_pinned_alloc;
  ops->pinned_free = cuda_pinned_free;
}
