/* negcut_net_load, which reads files only: the input is written to a file in
 * a scratch folder under /dev/shm and loaded into each of four tiny networks
 * made once (fuzz_common.h): a generator, a discriminator, a projector and a
 * negative generator. A file that loads into a network must hold exactly its
 * parameters, so after a successful load the network's parameters are read
 * back and compared with the file's bytes. The input is the file. */
#include "fuzz_common.h"
#include "io/safetensors.h"

static negcut_net *nets[4];
static char path[600];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  negcut_ctx *ctx = fuzz_ctx();
  negcut_generator_options g;
  negcut_discriminator_options d;
  negcut_head_options h;
  fuzz_generator_options(&g);
  fuzz_discriminator_options(&d);
  fuzz_head_options(&h);
  if (negcut_net_create_generator(&nets[0], ctx, &g) || negcut_net_create_discriminator(&nets[1], ctx, &d) ||
      negcut_net_create_projector(&nets[2], ctx, &h) || negcut_net_create_neggen(&nets[3], ctx, &h)) {
    fprintf(stderr, "fuzz_net: %s\n", negcut_ctx_last_error(ctx));
    abort();
  }
  snprintf(path, sizeof path, "%s/net.safetensors", fuzz_scratch());
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  negcut_ctx *ctx = fuzz_ctx();
  fuzz_write_file(path, data, size);
  for (int k = 0; k < 4; k++) {
    negcut_status st = negcut_net_load(nets[k], path);
    if (st != NEGCUT_OK) {
      FUZZ_CHECK_FAILED(ctx, st);
      continue;
    }
    /* Loaded: the parameters hold the file's floats (the fixed blur
     * buffers are compared, not loaded). */
    ngc_st_file *f = NULL;
    FUZZ_CHECK(ngc_st_open_memory(ctx, data, size, &f) == NEGCUT_OK, "loaded, but does not open: %s",
               negcut_ctx_last_error(ctx));
    for (int32_t i = 0; i < negcut_net_param_count(nets[k]); i++) {
      const char *name = negcut_net_param_name(nets[k], i);
      char prefixed[200];
      snprintf(prefixed, sizeof prefixed, "module.%s", name);
      const ngc_st_entry *e = ngc_st_find(f, name);
      if (!e) e = ngc_st_find(f, prefixed);
      FUZZ_CHECK(e, "loaded without '%s'", name);
      int64_t shape[4] = {0, 0, 0, 0};
      int32_t nd = negcut_net_param_shape(nets[k], i, shape);
      size_t n = 1;
      for (int32_t d = 0; d < nd; d++) n *= (size_t)shape[d];
      float *v = malloc(n * sizeof *v);
      FUZZ_CHECK(v, "malloc");
      FUZZ_CHECK(negcut_net_param_read(nets[k], i, v, n) == NEGCUT_OK, "param_read: %s",
                 negcut_ctx_last_error(ctx));
      FUZZ_CHECK(e->dtype == NGC_ST_F32 && e->nbytes == n * sizeof *v, "'%s': loaded from %zu bytes",
                 name, e->nbytes);
      FUZZ_CHECK(negcut_net_param_is_buffer(nets[k], i) || memcmp(v, e->data, e->nbytes) == 0,
                 "'%s' does not hold the file's values", name);
      free(v);
    }
    ngc_st_close(f);
  }
  unlink(path);
  return 0;
}
