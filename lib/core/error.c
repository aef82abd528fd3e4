/* Status names and the per-context / per-thread last error; checked sizes
 * and growing host buffers, which report through it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static _Thread_local char tls_err[NGC_ERR_MAX];

const char *negcut_status_str(negcut_status status) {
  switch (status) {
  case NEGCUT_OK: return "NEGCUT_OK";
  case NEGCUT_ERR_INVALID_ARGUMENT: return "NEGCUT_ERR_INVALID_ARGUMENT";
  case NEGCUT_ERR_OUT_OF_MEMORY: return "NEGCUT_ERR_OUT_OF_MEMORY";
  case NEGCUT_ERR_IO: return "NEGCUT_ERR_IO";
  case NEGCUT_ERR_BAD_FORMAT: return "NEGCUT_ERR_BAD_FORMAT";
  case NEGCUT_ERR_SHAPE: return "NEGCUT_ERR_SHAPE";
  case NEGCUT_ERR_BACKEND: return "NEGCUT_ERR_BACKEND";
  case NEGCUT_ERR_UNSUPPORTED: return "NEGCUT_ERR_UNSUPPORTED";
  case NEGCUT_ERR_CANCELLED: return "NEGCUT_ERR_CANCELLED";
  case NEGCUT_ERR_LIMIT: return "NEGCUT_ERR_LIMIT";
  case NEGCUT_ERR_STATE: return "NEGCUT_ERR_STATE";
  case NEGCUT_ERR_INTERNAL: return "NEGCUT_ERR_INTERNAL";
  default: return "NEGCUT_ERR_UNKNOWN";
  }
}

negcut_status ngc_error(negcut_ctx *ctx, negcut_status st, const char *fmt, ...) {
  char *dst = ctx ? ctx->err : tls_err;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, NGC_ERR_MAX, fmt, ap);
  va_end(ap);
  return st;
}

void ngc_error_clear(negcut_ctx *ctx) {
  if (ctx)
    ctx->err[0] = '\0';
  else
    tls_err[0] = '\0';
}

const char *negcut_ctx_last_error(const negcut_ctx *ctx) {
  return ctx ? ctx->err : tls_err;
}

int ngc_mul_size(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

int ngc_add_size(size_t a, size_t b, size_t *out) {
  if (b > SIZE_MAX - a) return 0;
  *out = a + b;
  return 1;
}
