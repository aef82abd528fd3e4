/* The context: resolves the backend and the thread budget. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

static const negcut_ctx_options ctx_defaults = NEGCUT_CTX_OPTIONS_INIT;
static const size_t ctx_ends[] = {NGC_END_OF(negcut_ctx_options, seed)};
static const ngc_options_layout ctx_layout = {"negcut_ctx_options", 1, ctx_ends};

negcut_status negcut_ctx_options_init_v2(negcut_ctx_options *opts, uint32_t version) {
  return ngc_options_fill(&ctx_layout, opts, version, &ctx_defaults);
}

negcut_status negcut_ctx_options_init(negcut_ctx_options *opts) {
  return negcut_ctx_options_init_v2(opts, 1);
}

int32_t ngc_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int32_t)n : 1;
}

const char *negcut_backend_name(negcut_backend_kind kind) {
  switch (kind) {
  case NEGCUT_BACKEND_AUTO: return "auto";
  case NEGCUT_BACKEND_REF: return "ref";
  case NEGCUT_BACKEND_CPU: return "cpu";
  case NEGCUT_BACKEND_CUDA: return "cuda";
  default: return NULL;
  }
}

/* AUTO tries the CUDA backend first only once that backend has passed its
 * tests on a GPU (tests/check_cuda_*, label cuda). Until then it is there
 * for callers who ask for it by name, and AUTO means the CPU. */
#define NGC_AUTO_TRIES_CUDA 0

negcut_status negcut_ctx_create(negcut_ctx **out, const negcut_ctx_options *opts) {
  negcut_ctx_options o = NEGCUT_CTX_OPTIONS_INIT;
  negcut_ctx *ctx = NULL;
  negcut_status st;

  if (!out)
    return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_ctx_create: out is NULL");
  *out = NULL;
  if (opts && (st = ngc_options_read(NULL, &ctx_layout, &o, opts, &ctx_defaults)))
    return st;
  if (!negcut_backend_name(o.backend))
    return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_ctx_create: unknown backend %d", (int)o.backend);
  if (o.threads < 0 || o.threads > 4096)
    return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_ctx_create: threads %d out of range 0..4096",
                     (int)o.threads);
  if (o.device < 0)
    return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_ctx_create: device %d is negative", (int)o.device);

  ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return ngc_error(NULL, NEGCUT_ERR_OUT_OF_MEMORY,
                     "negcut_ctx_create: out of memory");
  ctx->threads = o.threads ? o.threads : ngc_cpu_count();
  ctx->device = o.device;
  ctx->seed = o.seed;

  st = ngc_backend_open(ctx, NEGCUT_BACKEND_REF, &ctx->ref);
  if (st != NEGCUT_OK) goto fail;
  if (o.backend == NEGCUT_BACKEND_AUTO) {
    st = NGC_AUTO_TRIES_CUDA ? ngc_backend_open(ctx, NEGCUT_BACKEND_CUDA, &ctx->be)
                             : NEGCUT_ERR_UNSUPPORTED;
    if (st != NEGCUT_OK) st = ngc_backend_open(ctx, NEGCUT_BACKEND_CPU, &ctx->be);
  } else if (o.backend == NEGCUT_BACKEND_REF) {
    ctx->be = ctx->ref;
  } else {
    st = ngc_backend_open(ctx, o.backend, &ctx->be);
  }
  if (st != NEGCUT_OK) goto fail;
  ctx->kind = ngc_backend_kind(ctx->be);
  ngc_error_clear(ctx);
  *out = ctx;
  return NEGCUT_OK;

fail:
  /* Copy the message to the thread slot: the context is about to go. */
  ngc_error(NULL, st, "%s", ctx->err);
  negcut_ctx_free(ctx);
  return st;
}

void negcut_ctx_free(negcut_ctx *ctx) {
  if (!ctx) return;
  if (ctx->be && ctx->be != ctx->ref) ngc_backend_close(ctx->be);
  ngc_backend_close(ctx->ref);
  free(ctx);
}

negcut_backend_kind negcut_ctx_backend(const negcut_ctx *ctx) {
  return ctx ? ctx->kind : NEGCUT_BACKEND_AUTO;
}

int32_t negcut_ctx_threads(const negcut_ctx *ctx) { return ctx ? ctx->threads : 0; }
