/* negcut_model_load_memory (safetensors, then the generator's configuration
 * from the metadata or from the tensor names and shapes, then the weights).
 * A model that loads must also translate: an 8x8 image goes through a
 * translator, whose status must be NEGCUT_OK, on the CPU backend with one
 * thread. The input is the file. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  negcut_ctx *ctx = fuzz_ctx();
  negcut_model *model = NULL;
  negcut_translator *tr = NULL;
  static const uint8_t empty[1];
  negcut_status st = negcut_model_load_memory(&model, ctx, size ? (const void *)data : empty, size);
  if (st != NEGCUT_OK) {
    FUZZ_CHECK_FAILED(ctx, st);
    FUZZ_CHECK(model == NULL, "a failed load left a model");
    return 0;
  }
  const int32_t ci = negcut_model_input_channels(model), co = negcut_model_output_channels(model);
  FUZZ_CHECK(ci >= 1 && ci <= 64 && co >= 1 && co <= 64, "channels %d -> %d", (int)ci, (int)co);
  st = negcut_translator_create(&tr, ctx, model, NULL);
  FUZZ_CHECK(st == NEGCUT_OK, "translator_create: %s", negcut_ctx_last_error(ctx));
  enum { W = 8, H = 8 };
  uint8_t *src = malloc((size_t)(W * H * ci)), *dst = malloc((size_t)(W * H * co));
  FUZZ_CHECK(src && dst, "malloc");
  for (int i = 0; i < W * H * ci; i++) src[i] = (uint8_t)(i * 37);
  st = negcut_translate_rgb8(tr, src, W, H, (size_t)(W * ci), dst, (size_t)(W * co));
  FUZZ_CHECK(st == NEGCUT_OK, "a loaded model does not translate: %s (%s)", negcut_status_str(st),
             negcut_ctx_last_error(ctx));
  unsigned sum = 0;
  for (int i = 0; i < W * H * co; i++) sum += dst[i];
  if (sum == 0xFFFFFFFFu) fputc(0, stderr);
  free(src);
  free(dst);
  negcut_translator_free(tr);
  negcut_model_free(model);
  return 0;
}
