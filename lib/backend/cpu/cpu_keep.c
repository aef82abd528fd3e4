/* Weights kept prepared for their owner (ngc_wstore, backend.h): a list of
 * copies, each of one weight array in one form. A lookup compares pointers
 * and layouts; a translator holds a few dozen entries, and a lookup is
 * nothing next to the convolution it precedes. */
#include <stdlib.h>
#include <string.h>

#include "cpu_conv.h"

typedef struct kept {
  ngc_cpu_wkey key;
  void *data; /* 64-byte aligned */
  struct kept *next;
} kept;

static void keep_free(ngc_wstore *s) {
  for (kept *e = s->impl, *next; e; e = next) {
    next = e->next;
    ngc_host_free(NULL, e->data);
    free(e);
  }
}

static int same_key(const ngc_cpu_wkey *a, const ngc_cpu_wkey *b) {
  if (a->w != b->w || a->pack != b->pack) return 0;
  if (a->pack) return !memcmp(a->pack_dims, b->pack_dims, sizeof a->pack_dims);
  return dnnl_memory_desc_equal(&a->md, &b->md);
}

void *ngc_cpu_kept(ngc_wstore *s, const ngc_cpu_wkey *key, size_t bytes, int *fresh) {
  *fresh = 0;
  for (kept *e = s->impl; e; e = e->next)
    if (same_key(&e->key, key)) return e->data;
  const size_t rounded = (bytes + 63) & ~(size_t)63;
  if (!bytes || rounded < bytes || rounded > s->cap - (s->used < s->cap ? s->used : s->cap))
    return NULL;
  kept *e = calloc(1, sizeof *e);
  if (e) e->data = ngc_host_alloc(NULL, bytes); /* 64-byte aligned, rounded as above */
  if (!e || !e->data) { /* not an error: the caller prepares w as without a store */
    free(e);
    return NULL;
  }
  e->key = *key;
  e->next = s->impl;
  s->impl = e;
  s->free_impl = keep_free;
  s->used += rounded;
  *fresh = 1;
  return e->data;
}
