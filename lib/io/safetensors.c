/* safetensors reader (validating) and writer (atomic). See safetensors.h. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "atomic_file.h"
#include "safetensors.h"

/* JSON numbers are doubles: integers above 2^53 cannot be told apart. */
#define ST_MAX_JSON_INT 9007199254740992.0

static const struct {
  const char *name;
  size_t size;
} st_dtypes[NGC_ST_DTYPE_COUNT] = {
    [NGC_ST_BOOL] = {"BOOL", 1},       [NGC_ST_U8] = {"U8", 1},
    [NGC_ST_I8] = {"I8", 1},           [NGC_ST_F8_E5M2] = {"F8_E5M2", 1},
    [NGC_ST_F8_E4M3] = {"F8_E4M3", 1}, [NGC_ST_I16] = {"I16", 2},
    [NGC_ST_U16] = {"U16", 2},         [NGC_ST_F16] = {"F16", 2},
    [NGC_ST_BF16] = {"BF16", 2},       [NGC_ST_I32] = {"I32", 4},
    [NGC_ST_U32] = {"U32", 4},         [NGC_ST_F32] = {"F32", 4},
    [NGC_ST_I64] = {"I64", 8},         [NGC_ST_U64] = {"U64", 8},
    [NGC_ST_F64] = {"F64", 8},
};

const char *ngc_st_dtype_name(ngc_st_dtype dtype) {
  return (unsigned)dtype < NGC_ST_DTYPE_COUNT ? st_dtypes[dtype].name : NULL;
}

size_t ngc_st_dtype_size(ngc_st_dtype dtype) {
  return (unsigned)dtype < NGC_ST_DTYPE_COUNT ? st_dtypes[dtype].size : 0;
}

int ngc_st_dtype_from_name(const char *name) {
  for (int i = 0; name && i < NGC_ST_DTYPE_COUNT; i++)
    if (strcmp(name, st_dtypes[i].name) == 0) return i;
  return -1;
}

/* ================================================================ reader */

struct ngc_st_file {
  unsigned char *owned; /* the file's bytes when read from a path */
  ngc_st_entry *entries; /* (n) sorted by data offset */
  const ngc_st_entry **by_name; /* (n) sorted by name, for ngc_st_find */
  int64_t n;
  char **meta; /* (2 * n_meta) key, value, key, value ... */
  int64_t n_meta;
};

typedef struct st_span {
  uint64_t begin, end;
  int64_t index;
} st_span;

static int st_span_cmp(const void *a, const void *b) {
  const st_span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

static int st_name_cmp(const void *a, const void *b) {
  const ngc_st_entry *x = *(const ngc_st_entry *const *)a;
  const ngc_st_entry *y = *(const ngc_st_entry *const *)b;
  return strcmp(x->name, y->name);
}

static int st_meta_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A JSON number that is an integer in [0, 2^53]. */
static int st_json_uint(const cJSON *item, uint64_t *out) {
  double d;
  if (!cJSON_IsNumber(item)) return 0;
  d = item->valuedouble;
  if (!(d >= 0.0 && d <= ST_MAX_JSON_INT)) return 0;
  if ((double)(uint64_t)d != d) return 0;
  *out = (uint64_t)d;
  return 1;
}

static char *st_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

void ngc_st_close(ngc_st_file *f) {
  if (!f) return;
  for (int64_t i = 0; f->entries && i < f->n; i++) free((char *)f->entries[i].name);
  for (int64_t i = 0; f->meta && i < 2 * f->n_meta; i++) free(f->meta[i]);
  free(f->entries);
  free(f->by_name);
  free(f->meta);
  free(f->owned);
  free(f);
}

/* Reads the metadata object into f->meta. */
static negcut_status st_parse_metadata(negcut_ctx *ctx, ngc_st_file *f,
                                       const cJSON *obj, const char *label) {
  int64_t n = 0;
  const cJSON *it;
  if (!cJSON_IsObject(obj))
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: \"__metadata__\" is not a JSON object", label);
  cJSON_ArrayForEach(it, obj) n++;
  f->meta = calloc((size_t)(2 * n + 1), sizeof *f->meta);
  if (!f->meta) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
  cJSON_ArrayForEach(it, obj) {
    if (!cJSON_IsString(it) || !it->valuestring)
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                       "%s: metadata value of \"%.120s\" is not a string", label,
                       it->string ? it->string : "");
    f->meta[2 * f->n_meta] = st_strdup(it->string ? it->string : "");
    f->meta[2 * f->n_meta + 1] = st_strdup(it->valuestring);
    f->n_meta++;
    if (!f->meta[2 * f->n_meta - 2] || !f->meta[2 * f->n_meta - 1])
      return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
  }
  /* Sorted (key, value) pairs: ngc_st_metadata bsearches them. */
  qsort(f->meta, (size_t)f->n_meta, 2 * sizeof *f->meta, st_meta_cmp);
  for (int64_t i = 1; i < f->n_meta; i++)
    if (strcmp(f->meta[2 * i], f->meta[2 * i - 2]) == 0)
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                       "%s: metadata key \"%.120s\" appears twice", label,
                       f->meta[2 * i]);
  return NEGCUT_OK;
}

/* Fills e from one tensor's JSON object; data_len bounds the offsets. */
static negcut_status st_parse_entry(negcut_ctx *ctx, const cJSON *obj,
                                    const char *label, uint64_t data_len,
                                    ngc_st_entry *e, st_span *span) {
  const char *name = e->name;
  const cJSON *dt, *shape, *offs, *it;
  uint64_t begin, end, dim;
  size_t nbytes;
  int dtype;
  int32_t ndim = 0;

  if (!cJSON_IsObject(obj))
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: tensor '%.120s': entry is not a JSON object", label, name);
  dt = cJSON_GetObjectItemCaseSensitive(obj, "dtype");
  shape = cJSON_GetObjectItemCaseSensitive(obj, "shape");
  offs = cJSON_GetObjectItemCaseSensitive(obj, "data_offsets");
  if (!cJSON_IsString(dt) || !shape || !offs)
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: tensor '%.120s': needs \"dtype\" (string), \"shape\" and "
                     "\"data_offsets\"",
                     label, name);
  dtype = ngc_st_dtype_from_name(dt->valuestring);
  if (dtype < 0)
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: tensor '%.120s': unknown dtype \"%.32s\"", label, name,
                     dt->valuestring);
  e->dtype = (ngc_st_dtype)dtype;

  if (!cJSON_IsArray(shape))
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: tensor '%.120s': \"shape\" is not an array", label, name);
  nbytes = ngc_st_dtype_size(e->dtype);
  cJSON_ArrayForEach(it, shape) {
    if (ndim == NGC_ST_MAX_DIMS)
      return ngc_error(ctx, NEGCUT_ERR_LIMIT,
                       "%s: tensor '%.120s': more than %d dims", label, name,
                       NGC_ST_MAX_DIMS);
    if (!st_json_uint(it, &dim))
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                       "%s: tensor '%.120s': shape[%d] is not a non-negative integer",
                       label, name, (int)ndim);
    if (!ngc_mul_size(nbytes, (size_t)dim, &nbytes))
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                       "%s: tensor '%.120s': shape product overflows", label, name);
    e->shape[ndim++] = (int64_t)dim;
  }
  e->ndim = ndim;

  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
      !st_json_uint(cJSON_GetArrayItem(offs, 0), &begin) ||
      !st_json_uint(cJSON_GetArrayItem(offs, 1), &end))
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: tensor '%.120s': \"data_offsets\" is not [begin, end] of "
                     "non-negative integers",
                     label, name);
  if (begin > end)
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: tensor '%.120s': data_offsets [%llu, %llu] end before they begin",
                     label, name, (unsigned long long)begin, (unsigned long long)end);
  if (end > data_len)
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: tensor '%.120s': data_offsets [%llu, %llu] run past the %llu "
                     "bytes of data",
                     label, name, (unsigned long long)begin, (unsigned long long)end,
                     (unsigned long long)data_len);
  if ((uint64_t)nbytes != end - begin)
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: tensor '%.120s': %s with %d dims needs %zu bytes, "
                     "data_offsets give %llu",
                     label, name, ngc_st_dtype_name(e->dtype), (int)ndim, nbytes,
                     (unsigned long long)(end - begin));
  e->nbytes = nbytes;
  span->begin = begin;
  span->end = end;
  return NEGCUT_OK;
}

/* Validates buf[0..len) and fills f; label names the source in messages. */
static negcut_status st_parse(negcut_ctx *ctx, ngc_st_file *f, const unsigned char *buf,
                              size_t len, const char *label) {
  uint64_t header_len = 0, data_len, pos;
  const char *header, *parse_end = NULL;
  const unsigned char *data;
  cJSON *root = NULL;
  const cJSON *it;
  st_span *spans = NULL;
  int64_t n = 0, k = 0;
  negcut_status st = NEGCUT_OK;

  if (len < 8)
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: %zu bytes, too short for the 8-byte header length", label, len);
  for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | buf[i];
  if (header_len > NGC_ST_MAX_HEADER_BYTES)
    return ngc_error(ctx, NEGCUT_ERR_LIMIT,
                     "%s: header length %llu exceeds the limit of %llu bytes", label,
                     (unsigned long long)header_len,
                     (unsigned long long)NGC_ST_MAX_HEADER_BYTES);
  if (header_len > len - 8)
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: header length %llu runs past the end of the file (%zu bytes; "
                     "truncated?)",
                     label, (unsigned long long)header_len, len);
  header = (const char *)buf + 8;
  data = buf + 8 + header_len;
  data_len = len - 8 - header_len;

  root = cJSON_ParseWithLengthOpts(header, (size_t)header_len, &parse_end, 0);
  if (!root) {
    size_t at = parse_end && parse_end >= header ? (size_t)(parse_end - header) : 0;
    st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                   "%s: header is not valid JSON (near byte %zu of %llu)", label, at,
                   (unsigned long long)header_len);
    goto fail;
  }
  for (const char *p = parse_end; p < header + header_len; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: header has bytes after its JSON object (at byte %zu)", label,
                     (size_t)(p - header));
      goto fail;
    }
  }
  if (!cJSON_IsObject(root)) {
    st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: header is not a JSON object", label);
    goto fail;
  }

  cJSON_ArrayForEach(it, root) n++;
  f->entries = calloc((size_t)n + 1, sizeof *f->entries);
  f->by_name = calloc((size_t)n + 1, sizeof *f->by_name);
  spans = calloc((size_t)n + 1, sizeof *spans);
  if (!f->entries || !f->by_name || !spans) {
    st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    goto fail;
  }

  cJSON_ArrayForEach(it, root) {
    const char *key = it->string ? it->string : "";
    if (strcmp(key, "__metadata__") == 0) {
      if (f->meta) {
        st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: \"__metadata__\" appears twice",
                       label);
        goto fail;
      }
      st = st_parse_metadata(ctx, f, it, label);
      if (st != NEGCUT_OK) goto fail;
      continue;
    }
    ngc_st_entry *e = &f->entries[k];
    e->name = st_strdup(key);
    if (!e->name) {
      st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
      goto fail;
    }
    f->n = ++k; /* owns the name from here on */
    spans[k - 1].index = k - 1;
    st = st_parse_entry(ctx, it, label, data_len, e, &spans[k - 1]);
    if (st != NEGCUT_OK) goto fail;
  }

  /* Names unique. */
  for (int64_t i = 0; i < k; i++) f->by_name[i] = &f->entries[i];
  qsort(f->by_name, (size_t)k, sizeof *f->by_name, st_name_cmp);
  for (int64_t i = 1; i < k; i++) {
    if (strcmp(f->by_name[i]->name, f->by_name[i - 1]->name) == 0) {
      st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: tensor '%.120s' appears twice",
                     label, f->by_name[i]->name);
      goto fail;
    }
  }

  /* Offsets tile [0, data_len): sorted, no gap, no overlap, no tail. */
  qsort(spans, (size_t)k, sizeof *spans, st_span_cmp);
  pos = 0;
  for (int64_t i = 0; i < k; i++) {
    const char *name = f->entries[spans[i].index].name;
    if (spans[i].begin < pos) {
      st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: tensor '%.120s': data_offsets [%llu, %llu] overlap tensor "
                     "'%.120s'",
                     label, name, (unsigned long long)spans[i].begin,
                     (unsigned long long)spans[i].end,
                     f->entries[spans[i - 1].index].name);
      goto fail;
    }
    if (spans[i].begin > pos) {
      st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: tensor '%.120s': %llu bytes of data before it belong to no "
                     "tensor",
                     label, name, (unsigned long long)(spans[i].begin - pos));
      goto fail;
    }
    pos = spans[i].end;
  }
  if (pos != data_len) {
    st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                   "%s: the last %llu bytes of data belong to no tensor", label,
                   (unsigned long long)(data_len - pos));
    goto fail;
  }

  /* Store entries in offset order; by_name is rebuilt to match. */
  {
    ngc_st_entry *sorted = calloc((size_t)k + 1, sizeof *sorted);
    if (!sorted) {
      st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
      goto fail;
    }
    for (int64_t i = 0; i < k; i++) {
      sorted[i] = f->entries[spans[i].index];
      sorted[i].data = data + spans[i].begin;
    }
    free(f->entries);
    f->entries = sorted;
    for (int64_t i = 0; i < k; i++) f->by_name[i] = &f->entries[i];
    qsort(f->by_name, (size_t)k, sizeof *f->by_name, st_name_cmp);
  }

fail:
  free(spans);
  cJSON_Delete(root);
  return st;
}

static negcut_status st_open_buffer(negcut_ctx *ctx, unsigned char *owned,
                                    const void *buf, size_t len, const char *label,
                                    ngc_st_file **out) {
  negcut_status st;
  ngc_st_file *f = calloc(1, sizeof *f);
  if (!f) {
    free(owned);
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
  }
  f->owned = owned;
  st = st_parse(ctx, f, buf, len, label);
  if (st != NEGCUT_OK) {
    ngc_st_close(f);
    return st;
  }
  *out = f;
  return NEGCUT_OK;
}

negcut_status ngc_st_open_memory(negcut_ctx *ctx, const void *buf, size_t len,
                                 ngc_st_file **out) {
  if (!out)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "ngc_st_open_memory: out is NULL");
  *out = NULL;
  if (!buf && len)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "ngc_st_open_memory: buf is NULL");
  return st_open_buffer(ctx, NULL, buf ? buf : "", len, "<memory>", out);
}

negcut_status ngc_st_open(negcut_ctx *ctx, const char *path, ngc_st_file **out) {
  FILE *fp = NULL;
  struct stat sb;
  unsigned char *buf = NULL;
  size_t len;
  negcut_status st;

  if (!out) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "ngc_st_open: out is NULL");
  *out = NULL;
  if (!path) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "ngc_st_open: path is NULL");
  fp = fopen(path, "rb");
  if (!fp)
    return ngc_error(ctx, NEGCUT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  if (fstat(fileno(fp), &sb) != 0) {
    st = ngc_error(ctx, NEGCUT_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    goto fail;
  }
  if (!S_ISREG(sb.st_mode)) {
    st = ngc_error(ctx, NEGCUT_ERR_IO, "%s: not a regular file", path);
    goto fail;
  }
  if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX / 2) {
    st = ngc_error(ctx, NEGCUT_ERR_LIMIT, "%s: %lld bytes is too large", path,
                   (long long)sb.st_size);
    goto fail;
  }
  len = (size_t)sb.st_size;
  buf = malloc(len ? len : 1);
  if (!buf) {
    st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", path,
                   len);
    goto fail;
  }
  if (len && fread(buf, 1, len, fp) != len) {
    st = ngc_error(ctx, NEGCUT_ERR_IO, "%s: short read (%s)", path,
                   ferror(fp) ? strerror(errno) : "file shrank while reading");
    goto fail;
  }
  fclose(fp);
  return st_open_buffer(ctx, buf, buf, len, path, out);

fail:
  free(buf);
  fclose(fp);
  return st;
}

int64_t ngc_st_count(const ngc_st_file *f) { return f ? f->n : 0; }

const ngc_st_entry *ngc_st_entry_at(const ngc_st_file *f, int64_t i) {
  return f && i >= 0 && i < f->n ? &f->entries[i] : NULL;
}

const ngc_st_entry *ngc_st_find(const ngc_st_file *f, const char *name) {
  ngc_st_entry key;
  const ngc_st_entry *pkey = &key, *const *hit;
  if (!f || !name || f->n == 0) return NULL;
  key.name = name;
  hit = bsearch(&pkey, f->by_name, (size_t)f->n, sizeof *f->by_name, st_name_cmp);
  return hit ? *hit : NULL;
}

const char *ngc_st_metadata(const ngc_st_file *f, const char *key) {
  char *const *hit;
  if (!f || !key || f->n_meta == 0) return NULL;
  hit = bsearch(&key, f->meta, (size_t)f->n_meta, 2 * sizeof *f->meta, st_meta_cmp);
  return hit ? hit[1] : NULL;
}

int64_t ngc_st_metadata_count(const ngc_st_file *f) { return f ? f->n_meta : 0; }

negcut_status ngc_st_metadata_at(const ngc_st_file *f, int64_t i, const char **key,
                                 const char **value) {
  if (!f || i < 0 || i >= f->n_meta) return NEGCUT_ERR_INVALID_ARGUMENT;
  if (key) *key = f->meta[2 * i];
  if (value) *value = f->meta[2 * i + 1];
  return NEGCUT_OK;
}

/* ================================================================ writer */

typedef struct st_wentry {
  char *name;
  ngc_st_dtype dtype;
  int32_t ndim;
  int64_t shape[NGC_ST_MAX_DIMS];
  const void *data;
  size_t nbytes;
} st_wentry;

struct ngc_st_writer {
  negcut_ctx *ctx;
  st_wentry *e;
  int64_t n, cap;
  char **meta; /* key, value pairs */
  int64_t n_meta, cap_meta;
};

negcut_status ngc_st_writer_create(negcut_ctx *ctx, ngc_st_writer **out) {
  if (!out)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "ngc_st_writer_create: out is NULL");
  *out = calloc(1, sizeof **out);
  if (!*out) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
  (*out)->ctx = ctx;
  return NEGCUT_OK;
}

void ngc_st_writer_free(ngc_st_writer *w) {
  if (!w) return;
  for (int64_t i = 0; i < w->n; i++) free(w->e[i].name);
  for (int64_t i = 0; i < 2 * w->n_meta; i++) free(w->meta[i]);
  free(w->e);
  free(w->meta);
  free(w);
}

/* Grows *arr (elements of size elem) so that it holds at least need. */
static int st_grow(void **arr, int64_t *cap, int64_t need, size_t elem) {
  int64_t c = *cap ? *cap : 16;
  void *p;
  if (need <= *cap) return 1;
  while (c < need) c *= 2;
  p = realloc(*arr, (size_t)c * elem);
  if (!p) return 0;
  *arr = p;
  *cap = c;
  return 1;
}

negcut_status ngc_st_writer_add(ngc_st_writer *w, const char *name, ngc_st_dtype dtype,
                                int32_t ndim, const int64_t *shape, const void *data) {
  negcut_ctx *ctx = w ? w->ctx : NULL;
  st_wentry e;
  if (!w || !name || (ndim > 0 && !shape))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "ngc_st_writer_add: NULL writer, name or shape");
  if (strcmp(name, "__metadata__") == 0)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "safetensors writer: \"__metadata__\" is not a tensor name");
  if (!ngc_st_dtype_name(dtype))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "safetensors writer: tensor '%.120s': unknown dtype %d", name,
                     (int)dtype);
  if (ndim < 0 || ndim > NGC_ST_MAX_DIMS)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "safetensors writer: tensor '%.120s': %d dims", name, (int)ndim);
  memset(&e, 0, sizeof e);
  e.dtype = dtype;
  e.ndim = ndim;
  e.nbytes = ngc_st_dtype_size(dtype);
  for (int32_t i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                       "safetensors writer: tensor '%.120s': negative dim", name);
    if (!ngc_mul_size(e.nbytes, (size_t)shape[i], &e.nbytes))
      return ngc_error(ctx, NEGCUT_ERR_LIMIT,
                       "safetensors writer: tensor '%.120s': size overflows", name);
    e.shape[i] = shape[i];
  }
  if (e.nbytes && !data)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "safetensors writer: tensor '%.120s': data is NULL", name);
  for (int64_t i = 0; i < w->n; i++)
    if (strcmp(w->e[i].name, name) == 0)
      return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                       "safetensors writer: tensor '%.120s' added twice", name);
  e.data = data;
  e.name = st_strdup(name);
  if (!e.name || !st_grow((void **)&w->e, &w->cap, w->n + 1, sizeof *w->e)) {
    free(e.name);
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
  }
  w->e[w->n++] = e;
  return NEGCUT_OK;
}

negcut_status ngc_st_writer_set_metadata(ngc_st_writer *w, const char *key,
                                         const char *value) {
  negcut_ctx *ctx = w ? w->ctx : NULL;
  char *v;
  if (!w || !key || !value)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "ngc_st_writer_set_metadata: NULL writer, key or value");
  v = st_strdup(value);
  if (!v) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
  for (int64_t i = 0; i < w->n_meta; i++) {
    if (strcmp(w->meta[2 * i], key) == 0) {
      free(w->meta[2 * i + 1]);
      w->meta[2 * i + 1] = v;
      return NEGCUT_OK;
    }
  }
  if (!st_grow((void **)&w->meta, &w->cap_meta, 2 * (w->n_meta + 1), sizeof *w->meta) ||
      !(w->meta[2 * w->n_meta] = st_strdup(key))) {
    free(v);
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
  }
  w->meta[2 * w->n_meta + 1] = v;
  w->n_meta++;
  return NEGCUT_OK;
}

/* The 8-byte length and the space-padded JSON header in one malloc'ed
 * buffer (*len bytes); the data follows in entry order. */
static negcut_status st_build_header(negcut_ctx *ctx, const ngc_st_writer *w,
                                     unsigned char **out, size_t *len,
                                     size_t *data_bytes) {
  cJSON *root = cJSON_CreateObject(), *obj;
  char *json = NULL, raw[NGC_ST_MAX_DIMS * 24 + 8];
  unsigned char *buf = NULL;
  size_t off = 0, jlen, hlen;
  int ok = root != NULL;

  if (ok && w->n_meta > 0) {
    obj = cJSON_AddObjectToObject(root, "__metadata__");
    ok = obj != NULL;
    for (int64_t i = 0; ok && i < w->n_meta; i++)
      ok = cJSON_AddStringToObject(obj, w->meta[2 * i], w->meta[2 * i + 1]) != NULL;
  }
  for (int64_t i = 0; ok && i < w->n; i++) {
    const st_wentry *e = &w->e[i];
    size_t n = 0;
    obj = cJSON_AddObjectToObject(root, e->name);
    ok = obj && cJSON_AddStringToObject(obj, "dtype", ngc_st_dtype_name(e->dtype));
    n += (size_t)snprintf(raw, sizeof raw, "[");
    for (int32_t d = 0; d < e->ndim; d++)
      n += (size_t)snprintf(raw + n, sizeof raw - n, d ? ",%lld" : "%lld",
                            (long long)e->shape[d]);
    snprintf(raw + n, sizeof raw - n, "]");
    ok = ok && cJSON_AddRawToObject(obj, "shape", raw);
    snprintf(raw, sizeof raw, "[%zu,%zu]", off, off + e->nbytes);
    ok = ok && cJSON_AddRawToObject(obj, "data_offsets", raw);
    if (ok && !ngc_add_size(off, e->nbytes, &off)) {
      cJSON_Delete(root);
      return ngc_error(ctx, NEGCUT_ERR_LIMIT, "safetensors writer: data size overflows");
    }
  }
  if (ok) json = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (!json) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
  jlen = strlen(json);
  hlen = (jlen + 7) & ~(size_t)7;
  buf = malloc(8 + hlen);
  if (!buf) {
    free(json);
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
  }
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  memcpy(buf + 8, json, jlen);
  memset(buf + 8 + jlen, ' ', hlen - jlen);
  free(json);
  *out = buf;
  *len = 8 + hlen;
  *data_bytes = off;
  return NEGCUT_OK;
}

negcut_status ngc_st_write_memory(negcut_ctx *ctx, const ngc_st_writer *w, void **out,
                                  size_t *len) {
  unsigned char *head = NULL, *buf;
  size_t head_len, data_len, total, off;
  negcut_status st;
  if (!w || !out || !len)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "ngc_st_write_memory: NULL argument");
  st = st_build_header(ctx, w, &head, &head_len, &data_len);
  if (st != NEGCUT_OK) return st;
  if (!ngc_add_size(head_len, data_len, &total)) {
    free(head);
    return ngc_error(ctx, NEGCUT_ERR_LIMIT, "safetensors writer: size overflows");
  }
  buf = realloc(head, total ? total : 1);
  if (!buf) {
    free(head);
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY,
                     "safetensors writer: cannot allocate %zu bytes", total);
  }
  off = head_len;
  for (int64_t i = 0; i < w->n; i++) {
    if (w->e[i].nbytes) memcpy(buf + off, w->e[i].data, w->e[i].nbytes);
    off += w->e[i].nbytes;
  }
  *out = buf;
  *len = total;
  return NEGCUT_OK;
}

/* Written through lib/io/atomic_file: a temporary file in the same
 * directory, flushed, fsynced and renamed over path. */
negcut_status ngc_st_write(negcut_ctx *ctx, const ngc_st_writer *w, const char *path) {
  unsigned char *head = NULL;
  size_t head_len, data_len;
  ngc_atomic_file *af = NULL;
  negcut_status st;

  if (!w || !path)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "ngc_st_write: NULL writer or path");
  st = st_build_header(ctx, w, &head, &head_len, &data_len);
  if (st == NEGCUT_OK) st = ngc_atomic_file_open(ctx, path, &af);
  if (st != NEGCUT_OK) {
    free(head);
    return st;
  }
  /* a failed write is kept for commit, which reports it */
  if (ngc_atomic_file_write(af, head, head_len) == 0)
    for (int64_t i = 0; i < w->n; i++)
      if (ngc_atomic_file_write(af, w->e[i].data, (size_t)w->e[i].nbytes) < 0) break;
  free(head);
  return ngc_atomic_file_commit(af);
}

int64_t ngc_st_f32_first_bad(const ngc_st_entry *e, int nonneg, float *bad) {
  for (size_t i = 0; i < e->nbytes / sizeof(float); i++) {
    float v;
    memcpy(&v, (const unsigned char *)e->data + i * sizeof v, sizeof v); /* not aligned */
    if (!isfinite(v) || (nonneg && v < 0.0f)) {
      *bad = v;
      return (int64_t)i;
    }
  }
  return -1;
}
