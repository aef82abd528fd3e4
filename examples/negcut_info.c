/* negcut-info: what this libnegcut was built with and what it can run on. */
#include <stdio.h>
#include <string.h>

#include <negcut.h>

int main(int argc, char **argv) {
  negcut_ctx_options opts;
  negcut_ctx *ctx = NULL;
  negcut_status st;

  negcut_ctx_options_init_v2(&opts, NEGCUT_CTX_OPTIONS_VERSION);
  if (argc > 1 && strcmp(argv[1], "--backend") == 0 && argc > 2) {
    for (negcut_backend_kind k = NEGCUT_BACKEND_AUTO; k <= NEGCUT_BACKEND_CUDA; k++)
      if (strcmp(argv[2], negcut_backend_name(k)) == 0) opts.backend = k;
  }
  printf("%s\n", negcut_build_info());
  st = negcut_ctx_create(&ctx, &opts);
  if (st != NEGCUT_OK) {
    fprintf(stderr, "negcut-info: %s: %s\n", negcut_status_str(st), negcut_ctx_last_error(NULL));
    return 1;
  }
  printf("context: backend %s, %d threads\n", negcut_backend_name(negcut_ctx_backend(ctx)),
         (int)negcut_ctx_threads(ctx));
  negcut_ctx_free(ctx);
  return 0;
}
