/* The caching allocator: device memory in size classes (eight per power of
 * two, so at most 12.5% is wasted), a free list per class, and a table of
 * the blocks in use (pointer -> class size). A training step that repeats
 * asks for the same sizes, so after the first step every alloc is a pop
 * from a free list and no cudaMalloc (which may synchronise) runs. free
 * returns the block to its list at once: whatever touches it next is
 * enqueued behind the work that still reads it (cuda.h, ordering model).
 * cudaFree runs only when cudaMalloc fails (then every cached block is
 * released and the allocation retried) and at close.
 *
 * While a CUDA graph is recorded (cuda_graph.c), a hold is attached: a
 * block freed then goes to the hold, not to the cache, because the graph
 * will touch it again at every replay; alloc serves the recording from the
 * hold's free blocks first (the recording is one stream, so reuse inside it
 * is as safe as outside). The hold's blocks return to the cache when the
 * graph is freed. A replay is lent the hold: its scratch comes from the
 * hold's blocks, as the recording's did, and goes back to them. */
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

#define MIN_BLOCK ((size_t)512)
#define CLASSES_PER_OCTAVE 8

typedef struct bucket {
  size_t bytes;
  void **free; /* cached blocks of exactly `bytes` */
  int32_t n, cap;
} bucket;

typedef struct held {
  void *p;
  size_t cls;
  int32_t in_use; /* allocated during the hold and not freed yet */
} held;

struct ngc_cuda_hold {
  held *b;
  int32_t n, cap;
  int32_t failed; /* host out of memory: a block was not tracked */
};

struct ngc_cuda_cache {
  ngc_cuda_hold *hold; /* attached while a graph is recorded */
  ngc_cuda_hold *lent; /* a graph's, while it is replayed */
  bucket *buckets; /* sorted by bytes */
  int32_t n_buckets, cap_buckets;
  /* blocks in use: open addressing with linear probing, key 0 = empty */
  uintptr_t *keys;
  size_t *sizes;
  size_t cap_live, n_live; /* cap_live is a power of two */
};

/* cudaMalloc and cudaDeviceSynchronize, counted (ngc_backend). */
static cudaError_t driver_alloc(ngc_backend *be, void **p, size_t bytes) {
  be->n_driver_allocs++;
  return cudaMalloc(p, bytes);
}

static cudaError_t device_wait(ngc_backend *be) {
  be->n_host_waits++;
  return ngc_cuda_device_sync();
}

/* The class size for a request, or 0 when it is absurdly large. */
static size_t class_bytes(size_t bytes) {
  if (bytes <= MIN_BLOCK) return MIN_BLOCK;
  if (bytes > SIZE_MAX / 4) return 0;
  size_t p = MIN_BLOCK;
  while (p <= bytes / 2) p *= 2; /* largest power of two <= bytes */
  size_t step = p / CLASSES_PER_OCTAVE;
  return (bytes + step - 1) / step * step;
}

/* The bucket of exactly `bytes`, made when `create`; NULL if absent (or on
 * host out-of-memory). */
static bucket *find_bucket(ngc_cuda_cache *c, size_t bytes, int create) {
  int32_t lo = 0, hi = c->n_buckets;
  while (lo < hi) {
    int32_t mid = lo + (hi - lo) / 2;
    if (c->buckets[mid].bytes < bytes) lo = mid + 1;
    else hi = mid;
  }
  if (lo < c->n_buckets && c->buckets[lo].bytes == bytes) return &c->buckets[lo];
  if (!create) return NULL;
  if (c->n_buckets == c->cap_buckets) {
    int32_t cap = c->cap_buckets ? 2 * c->cap_buckets : 32;
    bucket *nb = realloc(c->buckets, (size_t)cap * sizeof *nb);
    if (!nb) return NULL;
    c->buckets = nb;
    c->cap_buckets = cap;
  }
  memmove(&c->buckets[lo + 1], &c->buckets[lo], (size_t)(c->n_buckets - lo) * sizeof *c->buckets);
  memset(&c->buckets[lo], 0, sizeof *c->buckets);
  c->buckets[lo].bytes = bytes;
  c->n_buckets++;
  return &c->buckets[lo];
}

static size_t slot_of(const ngc_cuda_cache *c, uintptr_t key) {
  uint64_t h = (uint64_t)(key >> 8) * 0x9E3779B97F4A7C15ull;
  return (size_t)(h ^ (h >> 29)) & (c->cap_live - 1);
}

static int live_grow(ngc_cuda_cache *c) {
  size_t cap = c->cap_live ? 2 * c->cap_live : 1024;
  uintptr_t *keys = calloc(cap, sizeof *keys), *old_keys = c->keys;
  size_t *sizes = calloc(cap, sizeof *sizes), *old_sizes = c->sizes, old_cap = c->cap_live;
  if (!keys || !sizes) {
    free(keys);
    free(sizes);
    return 0;
  }
  c->keys = keys;
  c->sizes = sizes;
  c->cap_live = cap;
  for (size_t i = 0; i < old_cap; i++) {
    if (!old_keys[i]) continue;
    size_t j = slot_of(c, old_keys[i]);
    while (c->keys[j]) j = (j + 1) & (cap - 1);
    c->keys[j] = old_keys[i];
    c->sizes[j] = old_sizes[i];
  }
  free(old_keys);
  free(old_sizes);
  return 1;
}

static int live_insert(ngc_cuda_cache *c, void *p, size_t bytes) {
  if (2 * (c->n_live + 1) > c->cap_live && !live_grow(c)) return 0;
  size_t j = slot_of(c, (uintptr_t)p);
  while (c->keys[j]) j = (j + 1) & (c->cap_live - 1);
  c->keys[j] = (uintptr_t)p;
  c->sizes[j] = bytes;
  c->n_live++;
  return 1;
}

/* The class size of live block p, removed from the table; 0 if unknown. */
static size_t live_remove(ngc_cuda_cache *c, void *p) {
  if (!c->cap_live) return 0;
  size_t mask = c->cap_live - 1, j = slot_of(c, (uintptr_t)p);
  while (c->keys[j] && c->keys[j] != (uintptr_t)p) j = (j + 1) & mask;
  if (!c->keys[j]) return 0;
  size_t bytes = c->sizes[j];
  c->keys[j] = 0;
  c->n_live--;
  /* Backward-shift deletion keeps every probe chain unbroken. */
  for (size_t k = (j + 1) & mask; c->keys[k]; k = (k + 1) & mask) {
    size_t home = slot_of(c, c->keys[k]);
    /* move k to the hole j unless its home lies cyclically in (j, k] */
    int stays = j <= k ? (home > j && home <= k) : (home > j || home <= k);
    if (stays) continue;
    c->keys[j] = c->keys[k];
    c->sizes[j] = c->sizes[k];
    c->keys[k] = 0;
    j = k;
  }
  return bytes;
}

/* Hands every cached (free) block back to the driver. */
static void release_cached(ngc_cuda_cache *c) {
  ngc_cuda_wide_enter(); /* one section for them all */
  for (int32_t b = 0; b < c->n_buckets; b++) {
    for (int32_t i = 0; i < c->buckets[b].n; i++) ngc_cuda_device_free(c->buckets[b].free[i]);
    c->buckets[b].n = 0;
  }
  ngc_cuda_wide_leave();
}

negcut_status ngc_cuda_cache_create(ngc_backend *be) {
  ngc_cuda *cu = ngc_cuda_of(be);
  cu->cache = calloc(1, sizeof *cu->cache);
  if (!cu->cache || !live_grow(cu->cache))
    return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cuda allocator: out of host memory");
  return NEGCUT_OK;
}

/* Appends a block to the hold; 0 on host out-of-memory (hold->failed). */
static int hold_add(ngc_cuda_hold *h, void *p, size_t cls, int32_t in_use) {
  if (h->n == h->cap) {
    int32_t cap = h->cap ? 2 * h->cap : 64;
    held *nb = realloc(h->b, (size_t)cap * sizeof *nb);
    if (!nb) {
      h->failed = 1;
      return 0;
    }
    h->b = nb;
    h->cap = cap;
  }
  h->b[h->n++] = (held){p, cls, in_use};
  return 1;
}

/* A free block of class cls from the hold, now in use; NULL if none. */
static void *hold_take(ngc_cuda_hold *h, size_t cls) {
  for (int32_t i = 0; i < h->n; i++)
    if (!h->b[i].in_use && h->b[i].cls == cls) {
      h->b[i].in_use = 1;
      return h->b[i].p;
    }
  return NULL;
}

/* Marks the hold's block p free again; 0 if p is not the hold's. */
static int hold_give_back(ngc_cuda_hold *h, void *p) {
  for (int32_t i = 0; i < h->n; i++)
    if (h->b[i].p == p) {
      h->b[i].in_use = 0;
      return 1;
    }
  return 0;
}

void *ngc_cuda_alloc(ngc_backend *be, size_t bytes) {
  ngc_cuda_cache *c = ngc_cuda_of(be)->cache;
  size_t cls = class_bytes(bytes);
  void *p = NULL;
  if (!c || !cls || cudaSetDevice(ngc_cuda_of(be)->device) != cudaSuccess) return NULL;
  bucket *b = find_bucket(c, cls, 0);
  ngc_cuda_hold *from = c->hold ? c->hold : c->lent;
  void *held_block = from ? hold_take(from, cls) : NULL;
  if (held_block) {
    p = held_block;
  } else if (b && b->n) {
    p = b->free[--b->n];
  } else if (driver_alloc(be, &p, cls) != cudaSuccess) {
    (void)cudaGetLastError();
    p = NULL;
    /* Cached blocks may still be read by work in flight: let it finish,
     * then give them back and retry. Not while recording (a device-wide
     * synchronisation is illegal during a capture): the recording fails
     * and the caller's unrecorded run gets here again. */
    if (c->hold || device_wait(be) != cudaSuccess) {
      (void)cudaGetLastError();
      return NULL;
    }
    release_cached(c);
    if (driver_alloc(be, &p, cls) != cudaSuccess) {
      (void)cudaGetLastError();
      return NULL;
    }
  }
  if (!live_insert(c, p, cls)) {
    if (held_block && !c->hold) { /* lent: it stays the graph's */
      hold_give_back(c->lent, p);
      return NULL;
    }
    ngc_cuda_device_free(p); /* (a hold's block too: the hold then has failed) */
    if (c->hold) c->hold->failed = 1;
    return NULL;
  }
  if (c->hold && !held_block) hold_add(c->hold, p, cls, 1);
  return p;
}

/* Puts block p of class cls on its free list (or, on host out-of-memory,
 * gives it back to the driver once nothing in flight reads it). */
static void cache_put(ngc_backend *be, ngc_cuda_cache *c, void *p, size_t cls) {
  bucket *b = find_bucket(c, cls, 1);
  if (b && b->n == b->cap) {
    int32_t cap = b->cap ? 2 * b->cap : 8;
    void **nf = realloc(b->free, (size_t)cap * sizeof *nf);
    if (nf) {
      b->free = nf;
      b->cap = cap;
    }
  }
  if (b && b->n < b->cap) {
    b->free[b->n++] = p;
  } else if (!c->hold && device_wait(be) == cudaSuccess) {
    ngc_cuda_device_free(p);
  } /* else: recording (no synchronisation allowed) or a failed device:
     * the block is lost rather than freed under work that may read it */
}

void ngc_cuda_free(ngc_backend *be, void *p) {
  ngc_cuda_cache *c = ngc_cuda_of(be)->cache;
  if (!p || !c) return;
  size_t cls = live_remove(c, p);
  if (!cls) return; /* not ours: never hand it out again */
  if (c->lent && hold_give_back(c->lent, p)) return;
  if (c->hold) {
    if (hold_give_back(c->hold, p)) return;
    /* allocated before the recording: the graph may read it, keep it too */
    if (hold_add(c->hold, p, cls, 0)) return;
    /* host out of memory (hold failed, the recording is discarded): the
     * block goes back to the cache as usual */
  }
  cache_put(be, c, p, cls);
}

ngc_cuda_hold *ngc_cuda_hold_create(void) { return calloc(1, sizeof(ngc_cuda_hold)); }

void ngc_cuda_cache_hold(ngc_backend *be, ngc_cuda_hold *h) { ngc_cuda_of(be)->cache->hold = h; }

void ngc_cuda_cache_lend(ngc_backend *be, ngc_cuda_hold *h) { ngc_cuda_of(be)->cache->lent = h; }

int ngc_cuda_hold_usable(const ngc_cuda_hold *h) {
  if (h->failed) return 0;
  for (int32_t i = 0; i < h->n; i++)
    if (h->b[i].in_use) return 0;
  return 1;
}

void ngc_cuda_hold_release(ngc_backend *be, ngc_cuda_hold *h) {
  ngc_cuda_cache *c = ngc_cuda_of(be)->cache;
  if (!h) return;
  for (int32_t i = 0; i < h->n; i++)
    if (!h->b[i].in_use && c) cache_put(be, c, h->b[i].p, h->b[i].cls);
  free(h->b);
  free(h);
}

void ngc_cuda_cache_destroy(ngc_backend *be) {
  ngc_cuda *cu = ngc_cuda_of(be);
  ngc_cuda_cache *c = cu->cache;
  if (!c) return;
  release_cached(c);
  for (size_t i = 0; i < c->cap_live; i++)
    if (c->keys[i]) ngc_cuda_device_free((void *)c->keys[i]);
  for (int32_t b = 0; b < c->n_buckets; b++) free(c->buckets[b].free);
  free(c->buckets);
  free(c->keys);
  free(c->sizes);
  free(c);
  cu->cache = NULL;
}

negcut_status ngc_cuda_scratch(ngc_backend *be, size_t bytes, void **out, const char *what) {
  *out = ngc_cuda_alloc(be, bytes);
  if (!*out)
    return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cuda %s: cannot allocate %zu bytes of scratch",
                     what, bytes);
  return NEGCUT_OK;
}
