/* Internal core: the context, errors, the hooks into the backend registry.
 * Everything in lib/ includes this; nothing here includes a layer above. */
#ifndef NGC_CORE_H
#define NGC_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "negcut/core.h"

#if defined(__GNUC__)
#define NGC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define NGC_UNUSED __attribute__((unused))
#else
#define NGC_PRINTF(f, a)
#define NGC_UNUSED
#endif

#define NGC_ERR_MAX 512

typedef struct ngc_backend ngc_backend; /* lib/backend/backend.h */

struct negcut_ctx {
  negcut_backend_kind kind; /* resolved, never AUTO */
  int32_t threads;
  int32_t device;
  uint64_t seed;
  ngc_backend *be;     /* the compute backend */
  ngc_backend *ref;    /* the reference backend, for NULL slots */
  char err[NGC_ERR_MAX];
};

/* Records a failure on ctx (or in the thread-local slot when ctx is NULL)
 * and returns st, so that `return ngc_error(ctx, st, ...)` reads naturally. */
negcut_status ngc_error(negcut_ctx *ctx, negcut_status st, const char *fmt, ...)
    NGC_PRINTF(3, 4);
void ngc_error_clear(negcut_ctx *ctx);

/* Checked size arithmetic: 0 on overflow, else 1 with *out set. */
int ngc_mul_size(size_t a, size_t b, size_t *out);
int ngc_add_size(size_t a, size_t b, size_t *out);

/* An options struct's versions (options.c): version v (1..n) is the first
 * ends[v - 1] bytes of the current struct, where its last field ends
 * (NGC_END_OF; trailing padding is nobody's). Adding a field: append it,
 * bump the header's VERSION, append NGC_END_OF the new field here. */
#define NGC_END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
typedef struct ngc_options_layout {
  const char *name; /* "negcut_trainer_options" */
  uint32_t n;
  const size_t *ends;
} ngc_options_layout;

/* The caller's struct o of `version`: the first bytes of defaults (a current
 * struct), its version field set, nothing written beyond. INVALID_ARGUMENT
 * for a NULL o or a version outside 1..n. */
negcut_status ngc_options_fill(const ngc_options_layout *L, void *o, uint32_t version,
                               const void *defaults);
/* dst (a current struct) = the caller's src of any known version, the
 * fields its version lacks from defaults; dst's version is the current
 * one. INVALID_ARGUMENT (on ctx) for an unknown version. */
negcut_status ngc_options_read(negcut_ctx *ctx, const ngc_options_layout *L, void *dst,
                               const void *src, const void *defaults);

/* Implemented by lib/backend/registry.c. */
negcut_status ngc_backend_open(negcut_ctx *ctx, negcut_backend_kind kind,
                               ngc_backend **out);
void ngc_backend_close(ngc_backend *be);
negcut_backend_kind ngc_backend_kind(const ngc_backend *be);
const char *ngc_backend_name(const ngc_backend *be);
void *ngc_backend_alloc(ngc_backend *be, size_t bytes);
void ngc_backend_free(ngc_backend *be, void *p);
/* Appends " name (details)" of each compiled-in backend to buf. */
void ngc_backend_describe(char *buf, size_t cap);
/* Number of usable CPU cores. */
int32_t ngc_cpu_count(void);

#endif
