/* safetensors files: a validating reader and an atomic writer.
 *
 * Format: an 8-byte little-endian header length N, N bytes of JSON header
 * (tensor name -> {"dtype", "shape", "data_offsets": [begin, end]}, offsets
 * relative to the data buffer after the header, plus an optional
 * "__metadata__" object of strings), then the data buffer.
 *
 * Reader: the whole file is read into memory and every field is checked
 * before ngc_st_open returns: the header length lies within the file, the
 * JSON parses, dtypes are known, shapes are non-negative integers whose byte
 * count (overflow-checked) equals end - begin, names are unique, metadata
 * values are strings, and the offsets tile the data buffer exactly (no gap,
 * no overlap, nothing after the last tensor). A failure returns
 * NEGCUT_ERR_BAD_FORMAT (or IO, OUT_OF_MEMORY, LIMIT) with a message naming
 * the file and the tensor. Entry data pointers point into the file's buffer
 * and are NOT aligned in general (the header length need not be a multiple
 * of 8): copy with memcpy before reading floats.
 *
 * Ownership: an ngc_st_file owns its buffer (or borrows the caller's buffer
 * for ngc_st_open_memory, which must outlive it); entries and metadata
 * strings live until ngc_st_close. A writer keeps copies of names, shapes
 * and metadata but only the caller's data pointers, which must stay valid
 * until ngc_st_write returns. Neither object is thread-safe; a file may be
 * read by several threads once opened.
 */
#ifndef NGC_IO_SAFETENSORS_H
#define NGC_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define NGC_ST_MAX_DIMS 8
/* The largest header accepted, in bytes. */
#define NGC_ST_MAX_HEADER_BYTES ((uint64_t)100 * 1000 * 1000)

typedef enum ngc_st_dtype {
  NGC_ST_BOOL = 0,
  NGC_ST_U8,
  NGC_ST_I8,
  NGC_ST_F8_E5M2,
  NGC_ST_F8_E4M3,
  NGC_ST_I16,
  NGC_ST_U16,
  NGC_ST_F16,
  NGC_ST_BF16,
  NGC_ST_I32,
  NGC_ST_U32,
  NGC_ST_F32,
  NGC_ST_I64,
  NGC_ST_U64,
  NGC_ST_F64,
  NGC_ST_DTYPE_COUNT
} ngc_st_dtype;

/* "F32" for NGC_ST_F32 ...; NULL for an unknown value. */
const char *ngc_st_dtype_name(ngc_st_dtype dtype);
/* Bytes per element; 0 for an unknown value. */
size_t ngc_st_dtype_size(ngc_st_dtype dtype);
/* The dtype named `name`; -1 when unknown. */
int ngc_st_dtype_from_name(const char *name);

typedef struct ngc_st_entry {
  const char *name;
  ngc_st_dtype dtype;
  int32_t ndim;
  int64_t shape[NGC_ST_MAX_DIMS];
  const void *data; /* nbytes bytes, not necessarily aligned */
  size_t nbytes;
} ngc_st_entry;

typedef struct ngc_st_file ngc_st_file;

/* The index of the first value of an F32 entry that is not finite (or,
 * with nonneg, below 0), its value in *bad; -1 when there is none. */
int64_t ngc_st_f32_first_bad(const ngc_st_entry *e, int nonneg, float *bad);

/* Reads and validates the file at path. On failure *out is NULL. */
negcut_status ngc_st_open(negcut_ctx *ctx, const char *path, ngc_st_file **out);
/* Validates len bytes at buf, which are borrowed, not copied. */
negcut_status ngc_st_open_memory(negcut_ctx *ctx, const void *buf, size_t len,
                                 ngc_st_file **out);
void ngc_st_close(ngc_st_file *f); /* accepts NULL */

/* Entries in file order (sorted by data offset). */
int64_t ngc_st_count(const ngc_st_file *f);
const ngc_st_entry *ngc_st_entry_at(const ngc_st_file *f, int64_t i); /* NULL if out of range */
const ngc_st_entry *ngc_st_find(const ngc_st_file *f, const char *name); /* NULL if absent */
/* The metadata value for key, or NULL. */
const char *ngc_st_metadata(const ngc_st_file *f, const char *key);
int64_t ngc_st_metadata_count(const ngc_st_file *f);
/* Key and value of metadata item i; NEGCUT_ERR_INVALID_ARGUMENT if out of range. */
negcut_status ngc_st_metadata_at(const ngc_st_file *f, int64_t i, const char **key,
                                 const char **value);

typedef struct ngc_st_writer ngc_st_writer;

negcut_status ngc_st_writer_create(negcut_ctx *ctx, ngc_st_writer **out);
void ngc_st_writer_free(ngc_st_writer *w); /* accepts NULL */
/* Adds a tensor; name and shape are copied, data is borrowed until
 * ngc_st_write returns. Names must be unique and not "__metadata__". */
negcut_status ngc_st_writer_add(ngc_st_writer *w, const char *name, ngc_st_dtype dtype,
                                int32_t ndim, const int64_t *shape, const void *data);
/* Sets (or replaces) a metadata string; both are copied. */
negcut_status ngc_st_writer_set_metadata(ngc_st_writer *w, const char *key,
                                         const char *value);
/* Writes the file atomically: a temporary file in the same directory,
 * written, flushed, fsynced and renamed over path. On failure the temporary
 * file is removed and an existing file at path is left as it was. Tensors
 * are stored in the order they were added; the header is padded with spaces
 * to a multiple of 8 bytes. */
negcut_status ngc_st_write(negcut_ctx *ctx, const ngc_st_writer *w, const char *path);
/* The same bytes into a new malloc'ed buffer (*out, *len; free() it). */
negcut_status ngc_st_write_memory(negcut_ctx *ctx, const ngc_st_writer *w, void **out,
                                  size_t *len);

#endif
