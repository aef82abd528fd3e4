/* ngc_st_open_memory (lib/io/safetensors.c, its cJSON header included): open,
 * check every promise of safetensors.h on every entry and metadata item,
 * write what opened back with the writer and open that again (the same
 * entries, data and metadata), close. The input is the file. */
#include "fuzz_common.h"
#include "io/safetensors.h"

/* Checks f against the promises of safetensors.h; buf/len: its bytes. */
static void walk(const ngc_st_file *f, const uint8_t *buf, size_t len) {
  const int64_t n = ngc_st_count(f);
  uint64_t pos = 0;
  FUZZ_CHECK(n >= 0, "count %lld", (long long)n);
  for (int64_t i = 0; i < n; i++) {
    const ngc_st_entry *e = ngc_st_entry_at(f, i);
    FUZZ_CHECK(e && e->name, "entry %lld", (long long)i);
    FUZZ_CHECK(ngc_st_dtype_name(e->dtype) && e->ndim >= 0 && e->ndim <= NGC_ST_MAX_DIMS,
               "'%s': dtype %d, %d dims", e->name, (int)e->dtype, (int)e->ndim);
    uint64_t bytes = ngc_st_dtype_size(e->dtype);
    for (int32_t d = 0; d < e->ndim; d++) {
      FUZZ_CHECK(e->shape[d] >= 0, "'%s': dim %d is %lld", e->name, (int)d,
                 (long long)e->shape[d]);
      bytes *= (uint64_t)e->shape[d]; /* cannot wrap: checked by the reader */
    }
    FUZZ_CHECK(bytes == e->nbytes, "'%s': %zu bytes for a shape of %llu", e->name, e->nbytes,
               (unsigned long long)bytes);
    if (e->nbytes) {
      const uint8_t *p = e->data;
      FUZZ_CHECK(p >= buf && p + e->nbytes <= buf + len, "'%s': data outside the buffer",
                 e->name);
      /* Entries come in offset order and tile the data buffer. */
      FUZZ_CHECK(pos == 0 || (uint64_t)(p - buf) == pos, "'%s': not after the previous entry",
                 e->name);
      pos = (uint64_t)(p - buf) + e->nbytes;
      unsigned sum = 0;
      for (size_t k = 0; k < e->nbytes; k++) sum += p[k];
      if (sum == 0xFFFFFFFFu) fputc(0, stderr);
    }
    const ngc_st_entry *byname = ngc_st_find(f, e->name);
    FUZZ_CHECK(byname && strcmp(byname->name, e->name) == 0, "find('%s')", e->name);
    FUZZ_CHECK(strcmp(e->name, "__metadata__") != 0, "a tensor named __metadata__");
  }
  FUZZ_CHECK(pos == 0 || pos == len, "the last entry ends at %llu of %zu",
             (unsigned long long)pos, len);
  FUZZ_CHECK(ngc_st_entry_at(f, n) == NULL && ngc_st_entry_at(f, -1) == NULL, "out of range");
  const int64_t m = ngc_st_metadata_count(f);
  FUZZ_CHECK(m >= 0, "metadata count %lld", (long long)m);
  for (int64_t i = 0; i < m; i++) {
    const char *k = NULL, *v = NULL;
    FUZZ_CHECK(ngc_st_metadata_at(f, i, &k, &v) == NEGCUT_OK && k && v, "metadata %lld",
               (long long)i);
    const char *again = ngc_st_metadata(f, k);
    FUZZ_CHECK(again && strcmp(again, v) == 0, "metadata('%s')", k);
  }
  FUZZ_CHECK(ngc_st_metadata_at(f, m, NULL, NULL) != NEGCUT_OK, "metadata out of range");
}

/* Writes f with the writer into memory and opens the result again. */
static void round_trip(negcut_ctx *ctx, const ngc_st_file *f) {
  ngc_st_writer *w = NULL;
  void *out = NULL;
  size_t out_len = 0;
  ngc_st_file *g = NULL;
  negcut_status st = ngc_st_writer_create(ctx, &w);
  FUZZ_CHECK(st == NEGCUT_OK, "writer: %s", negcut_ctx_last_error(ctx));
  for (int64_t i = 0; i < ngc_st_count(f); i++) {
    const ngc_st_entry *e = ngc_st_entry_at(f, i);
    st = ngc_st_writer_add(w, e->name, e->dtype, e->ndim, e->shape, e->data);
    FUZZ_CHECK(st == NEGCUT_OK, "writer_add('%s'): %s", e->name, negcut_ctx_last_error(ctx));
  }
  for (int64_t i = 0; i < ngc_st_metadata_count(f); i++) {
    const char *k, *v;
    ngc_st_metadata_at(f, i, &k, &v);
    st = ngc_st_writer_set_metadata(w, k, v);
    FUZZ_CHECK(st == NEGCUT_OK, "set_metadata('%s'): %s", k, negcut_ctx_last_error(ctx));
  }
  st = ngc_st_write_memory(ctx, w, &out, &out_len);
  FUZZ_CHECK(st == NEGCUT_OK, "write_memory: %s", negcut_ctx_last_error(ctx));
  st = ngc_st_open_memory(ctx, out, out_len, &g);
  FUZZ_CHECK(st == NEGCUT_OK, "reopening what the writer wrote: %s", negcut_ctx_last_error(ctx));
  walk(g, out, out_len);
  FUZZ_CHECK(ngc_st_count(g) == ngc_st_count(f) &&
                 ngc_st_metadata_count(g) == ngc_st_metadata_count(f),
             "round trip changed the counts");
  for (int64_t i = 0; i < ngc_st_count(f); i++) {
    const ngc_st_entry *a = ngc_st_entry_at(f, i), *b = ngc_st_find(g, a->name);
    FUZZ_CHECK(b && b->dtype == a->dtype && b->ndim == a->ndim && b->nbytes == a->nbytes &&
                   memcmp(b->shape, a->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0 &&
                   (!a->nbytes || memcmp(a->data, b->data, a->nbytes) == 0),
               "round trip changed '%s'", a->name);
  }
  for (int64_t i = 0; i < ngc_st_metadata_count(f); i++) {
    const char *k, *v;
    ngc_st_metadata_at(f, i, &k, &v);
    const char *v2 = ngc_st_metadata(g, k);
    FUZZ_CHECK(v2 && strcmp(v, v2) == 0, "round trip changed metadata '%s'", k);
  }
  ngc_st_close(g);
  free(out);
  ngc_st_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  negcut_ctx *ctx = fuzz_ctx();
  ngc_st_file *f = NULL;
  negcut_status st = ngc_st_open_memory(ctx, size ? data : NULL, size, &f);
  if (st != NEGCUT_OK) {
    FUZZ_CHECK_FAILED(ctx, st);
    FUZZ_CHECK(f == NULL, "a failed open left a file");
    return 0;
  }
  walk(f, data, size);
  round_trip(ctx, f);
  ngc_st_close(f);
  return 0;
}
