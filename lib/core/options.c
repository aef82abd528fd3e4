/* Versioned options structs (docs/ABI.md): a caller's struct of version v
 * is the first ends[v - 1] bytes of the library's, so filling or reading
 * one never touches a byte the caller's header does not define. */
#include <string.h>

#include "core.h"

static size_t options_bytes(const ngc_options_layout *L, uint32_t version) {
  return version >= 1 && version <= L->n ? L->ends[version - 1] : 0;
}

negcut_status ngc_options_fill(const ngc_options_layout *L, void *o, uint32_t version,
                               const void *defaults) {
  const size_t bytes = options_bytes(L, version);
  if (!o) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "%s_init: NULL", L->name);
  if (!bytes)
    return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                     "%s_init: version %u, this library knows 1 to %u", L->name,
                     (unsigned)version, (unsigned)L->n);
  memcpy(o, defaults, bytes);
  memcpy(o, &version, sizeof version); /* every options struct starts with it */
  return NEGCUT_OK;
}

negcut_status ngc_options_read(negcut_ctx *ctx, const ngc_options_layout *L, void *dst,
                               const void *src, const void *defaults) {
  uint32_t version;
  memcpy(&version, src, sizeof version);
  const size_t bytes = options_bytes(L, version);
  if (!bytes)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "%s: version %u, expected 1 to %u (set it with %s_init or the INIT macro)",
                     L->name, (unsigned)version, (unsigned)L->n, L->name);
  memcpy(dst, defaults, L->ends[L->n - 1]);
  memcpy(dst, src, bytes);
  memcpy(dst, &L->n, sizeof L->n);
  return NEGCUT_OK;
}
