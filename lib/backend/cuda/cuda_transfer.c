/* Host <-> device transfers: the memory slots, and a ring of pinned staging
 * buffers that lets uploads (and the patch ids of gather) go out without the
 * host waiting for the device.
 *
 * A copy from pageable host memory may make the host wait until the stream
 * has drained; a copy from pinned memory does not, but the pinned buffer
 * must then stay untouched until the copy ran. So each upload is copied
 * into the next of STAGE_SLOTS pinned buffers, sent with cudaMemcpyAsync,
 * and followed by an event; a slot is reused only after its event fired
 * (normally long ago). Uploads larger than STAGE_MAX_BYTES are rare (never
 * inside a training step) and go synchronously.
 *
 * Uploads run on the legacy default stream. The backend's stream is a
 * blocking stream, so an upload waits for the work enqueued before it and
 * the work enqueued after it waits for the upload: in one backend the order
 * is the host's order. It also orders uploads against other contexts'
 * streams on the device, which is what makes a model uploaded through one
 * context safe to read from a translator on another (the price: an upload
 * also waits for other contexts' work in flight). */
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

#define STAGE_SLOTS 32
#define STAGE_MIN_BYTES ((size_t)64 << 10)
#define STAGE_MAX_BYTES ((size_t)8 << 20)

typedef struct stage_slot {
  void *host; /* pinned, cap bytes */
  size_t cap;
  cudaEvent_t done; /* recorded after the copy out of host */
  int32_t pending;  /* done was recorded and not yet waited for */
} stage_slot;

struct ngc_cuda_stage {
  stage_slot slot[STAGE_SLOTS];
  int32_t next; /* the slot the next copy uses */
  int32_t last; /* the slot of the latest copy, -1 before the first */
};

negcut_status ngc_cuda_stage_create(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  c->stage = calloc(1, sizeof *c->stage);
  if (!c->stage)
    return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cuda staging: out of host memory");
  c->stage->last = -1;
  for (int32_t i = 0; i < STAGE_SLOTS; i++) {
    negcut_status st = ngc_cuda_check(
        be, cudaEventCreateWithFlags(&c->stage->slot[i].done, cudaEventDisableTiming),
        "create staging event");
    if (st) return st;
  }
  return NEGCUT_OK;
}

void ngc_cuda_stage_destroy(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  if (!c->stage) return;
  for (int32_t i = 0; i < STAGE_SLOTS; i++) {
    stage_slot *s = &c->stage->slot[i];
    if (s->done) {
      cudaEventSynchronize(s->done);
      cudaEventDestroy(s->done);
    }
    if (s->host) cudaFreeHost(s->host);
  }
  free(c->stage);
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

negcut_status ngc_cuda_stage_copy(ngc_backend *be, void *dst, const void *src, size_t bytes,
                                  cudaStream_t s) {
  ngc_cuda_stage *g = ngc_cuda_of(be)->stage;
  negcut_status st;
  if (!bytes) return NEGCUT_OK;
  if (ngc_cuda_of(be)->recording || ngc_cuda_of(be)->replaying)
    return ngc_cuda_graph_feed(be, dst, src, bytes);
  if (bytes > STAGE_MAX_BYTES) return copy_sync(be, dst, src, bytes, s);
  int32_t idx = g->next;
  stage_slot *slot = &g->slot[idx];
  g->next = (idx + 1) % STAGE_SLOTS;
  if (slot->pending) {
    st = ngc_cuda_wait_event(be, slot->done, "upload (staging buffer)");
    if (st) return st;
    slot->pending = 0;
  }
  if (slot->cap < bytes) {
    size_t cap = STAGE_MIN_BYTES;
    while (cap < bytes) cap *= 2;
    if (slot->host) cudaFreeHost(slot->host);
    slot->host = NULL;
    slot->cap = 0;
    if (cudaHostAlloc(&slot->host, cap, cudaHostAllocDefault) != cudaSuccess) {
      (void)cudaGetLastError();
      slot->host = NULL;
      return copy_sync(be, dst, src, bytes, s); /* no pinned memory: slow but correct */
    }
    slot->cap = cap;
  }
  memcpy(slot->host, src, bytes);
  st = ngc_cuda_check(be, cudaMemcpyAsync(dst, slot->host, bytes, cudaMemcpyHostToDevice, s),
                      "upload");
  if (!st) st = ngc_cuda_check(be, cudaEventRecord(slot->done, s), "upload (record event)");
  if (st) return st;
  slot->pending = 1;
  g->last = idx;
  return NEGCUT_OK;
}

static negcut_status cuda_upload(ngc_backend *be, void *dst, const void *host, size_t bytes) {
  negcut_status st = ngc_cuda_enter(be);
  return st ? st : ngc_cuda_stage_copy(be, dst, host, bytes, cudaStreamLegacy);
}

/* The host has seen everything enqueued so far finish: no staging buffer
 * is still being read. */
static void drained(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  c->drains++;
  for (int32_t i = 0; i < STAGE_SLOTS; i++) c->stage->slot[i].pending = 0;
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

/* Everything enqueued so far has run: the stream, and the latest staged
 * copy (stream order makes every earlier one complete before it). */
static negcut_status cuda_sync(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  negcut_status st = ngc_cuda_enter(be);
  if (!st) st = ngc_cuda_outside_graphs(be, "synchronise");
  if (!st) st = ngc_cuda_wait_stream(be, c->stream, "synchronise");
  if (!st && c->stage->last >= 0)
    st = ngc_cuda_wait_event(be, c->stage->slot[c->stage->last].done, "synchronise (uploads)");
  if (!st) drained(be);
  return st;
}

void ngc_cuda_fill_memory_ops(ngc_backend_ops *ops) {
  ops->alloc = ngc_cuda_alloc;
  ops->free = ngc_cuda_free;
  ops->upload = cuda_upload;
  ops->download = cuda_download;
  ops->sync = cuda_sync;
}
