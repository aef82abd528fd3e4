/* translate_minimal: the page-long embedding example. Translates one image
 * with a generator checkpoint:
 *
 *   translate_minimal latest_net_G.safetensors horse.jpg zebra.png
 */
#include <stdio.h>

#include <negcut.h>

int main(int argc, char **argv) {
  negcut_ctx *ctx = NULL;
  negcut_model *model = NULL;
  negcut_translator *tr = NULL;
  negcut_image *in = NULL, *out = NULL;
  negcut_status st;

  if (argc != 4) {
    fprintf(stderr, "usage: %s MODEL INPUT OUTPUT\n", argv[0]);
    return 2;
  }
  /* A context picks the backend (CUDA if usable, else CPU) and the threads. */
  st = negcut_ctx_create(&ctx, NULL);
  if (st != NEGCUT_OK) {
    fprintf(stderr, "%s\n", negcut_ctx_last_error(NULL));
    return 1;
  }
  /* Every call returns a status; on failure the context holds the reason. */
  st = negcut_model_load(&model, ctx, argv[1]);
  if (st == NEGCUT_OK) st = negcut_translator_create(&tr, ctx, model, NULL);
  if (st == NEGCUT_OK) st = negcut_image_load(&in, ctx, argv[2], NULL);
  if (st == NEGCUT_OK) st = negcut_image_create(&out, ctx, in->width, in->height);
  if (st == NEGCUT_OK)
    st = negcut_translate_rgb8(tr, in->pixels, in->width, in->height, in->stride_bytes,
                               out->pixels, out->stride_bytes);
  if (st == NEGCUT_OK) st = negcut_image_save(ctx, out, argv[3], NULL);
  if (st != NEGCUT_OK)
    fprintf(stderr, "%s: %s\n", negcut_status_str(st), negcut_ctx_last_error(ctx));

  /* Every _free accepts NULL, so one exit path serves success and failure. */
  negcut_image_free(out);
  negcut_image_free(in);
  negcut_translator_free(tr);
  negcut_model_free(model);
  negcut_ctx_free(ctx);
  return st == NEGCUT_OK ? 0 : 1;
}
