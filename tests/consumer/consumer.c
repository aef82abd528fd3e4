/* A program that uses an installed libnegcut as any user would. */
#include <negcut.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  negcut_ctx *ctx = NULL;
  negcut_ctx_options o = NEGCUT_CTX_OPTIONS_INIT;
  o.backend = NEGCUT_BACKEND_CPU;
  o.threads = 1;
  if (negcut_version_number() != NEGCUT_VERSION_NUMBER) {
    fprintf(stderr, "header %s, library %s\n", NEGCUT_VERSION_STRING, negcut_version_string());
    return 1;
  }
  if (negcut_ctx_create(&ctx, &o) != NEGCUT_OK) {
    fprintf(stderr, "consumer: %s\n", negcut_ctx_last_error(NULL));
    return 1;
  }
  printf("consumer ok: %s on %s\n", negcut_version_string(),
         negcut_backend_name(negcut_ctx_backend(ctx)));
  negcut_ctx_free(ctx);
  return 0;
}
