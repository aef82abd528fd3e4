/* negcut-info: what this libnegcut was built with and what it can run on. */
#include <stdio.h>
#include <string.h>

#include <negcut.h>

static void usage(FILE *f) {
  fprintf(f, "usage: negcut-info [--backend auto|ref|cpu|cuda]\n"
             "Prints how this libnegcut was built and the context it makes here.\n");
}

int main(int argc, char **argv) {
  negcut_ctx_options opts;
  negcut_ctx *ctx = NULL;
  negcut_status st;

  negcut_ctx_options_init_v2(&opts, NEGCUT_CTX_OPTIONS_VERSION);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    }
    if (strcmp(argv[i], "--backend") != 0 || i + 1 == argc) {
      usage(stderr);
      return 2;
    }
    const char *name = argv[++i];
    int found = 0;
    for (negcut_backend_kind k = NEGCUT_BACKEND_AUTO; k <= NEGCUT_BACKEND_CUDA && !found; k++)
      if (strcmp(name, negcut_backend_name(k)) == 0) opts.backend = k, found = 1;
    if (!found) {
      fprintf(stderr, "negcut-info: --backend %s: not auto, ref, cpu or cuda\n", name);
      return 2;
    }
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
  if (fflush(stdout) != 0 || ferror(stdout)) {
    perror("negcut-info: standard output");
    return 1;
  }
  return 0;
}
