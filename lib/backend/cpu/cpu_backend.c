/* The CPU backend: oneDNN primitives, OpenBLAS sgemm, own OpenMP loops.
 * Starts from the reference slots and overrides the ones it speeds up. */
#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "backend/ref/ref.h"
#include "cpu_conv.h"

void ngc_cpu_enter(ngc_backend *be) { omp_set_num_threads(ngc_cpu_of(be)->threads); }

negcut_status ngc_cpu_check(ngc_backend *be, dnnl_status_t s, const char *what) {
  if (s == dnnl_success) return NEGCUT_OK;
  if (s == dnnl_out_of_memory)
    return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "oneDNN %s: out of memory", what);
  if (s == dnnl_unimplemented)
    return ngc_error(be->ctx, NEGCUT_ERR_UNSUPPORTED, "oneDNN %s: no implementation", what);
  return ngc_error(be->ctx, NEGCUT_ERR_BACKEND, "oneDNN %s failed (status %d)", what, (int)s);
}

/* OpenBLAS's thread count is the process's (ngc_cpu_open). */
static pthread_once_t g_openblas_once = PTHREAD_ONCE_INIT;
static void openblas_single_thread(void) { openblas_set_num_threads(1); }

static void cpu_close(ngc_backend *be) {
  ngc_cpu *c = ngc_cpu_of(be);
  if (c) {
    ngc_cpu_conv_cache_free(be);
    ngc_cpu_tanh_free(be);
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->engine) dnnl_engine_destroy(c->engine);
    free(c);
  }
  free(be);
}

negcut_status ngc_cpu_open(negcut_ctx *ctx, ngc_backend **out) {
  ngc_backend *be = calloc(1, sizeof *be);
  ngc_cpu *c = calloc(1, sizeof *c);
  negcut_status st;
  if (!be || !c) {
    free(be);
    free(c);
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
  }
  be->name = "cpu";
  be->kind = NEGCUT_BACKEND_CPU;
  be->host_memory = 1;
  be->ctx = ctx;
  be->impl = c;
  c->threads = ctx->threads;
  ngc_ref_fill_ops(&be->ops);
  ngc_cpu_fill_conv_ops(&be->ops);
  ngc_cpu_fill_loop_ops(&be->ops);
  be->ops.close = cpu_close;
  st = ngc_cpu_check(be, dnnl_engine_create(&c->engine, dnnl_cpu, 0), "engine");
  if (st == NEGCUT_OK)
    st = ngc_cpu_check(be, dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags),
                       "stream");
  if (st != NEGCUT_OK) {
    cpu_close(be);
    return st;
  }
  be->act_block = ngc_cpu_pick_block(be);
  c->gemm = ngc_cpu_pick_gemm();
  c->wino_min_channels = NGC_WINOGRAD_MIN_CHANNELS;
  c->wino_min_pixels = NGC_WINOGRAD_MIN_PIXELS;
  if (ngc_cpu_avx512()) be->winograd_scratch_max = NGC_WINOGRAD_MAX_SCRATCH;
  /* One thread budget: OpenBLAS runs single-threaded inside our OpenMP
   * regions instead of starting its own pool that fights OpenMP's. Once
   * per process: it writes OpenBLAS's global, which another context's
   * thread may be reading inside a product. */
  pthread_once(&g_openblas_once, openblas_single_thread);
  *out = be;
  return NEGCUT_OK;
}

int ngc_cpu_avx512(void) {
  return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
}

int ngc_cpu_bf16(void) {
  return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) ==
         dnnl_cpu_isa_avx512_core_bf16;
}

ngc_cpu_gemm ngc_cpu_pick_gemm(void) {
  /* OpenBLAS 0.3.21's names of the cores it runs AVX-512 kernels on. */
  static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  const char *core = openblas_get_corename();
  if (!ngc_cpu_avx512()) return NGC_CPU_GEMM_OPENBLAS;
  for (size_t i = 0; i < sizeof avx512_cores / sizeof *avx512_cores; i++)
    if (core && !strcasecmp(core, avx512_cores[i])) return NGC_CPU_GEMM_OPENBLAS;
  return NGC_CPU_GEMM_ONEDNN;
}

const char *ngc_cpu_gemm_name(ngc_cpu_gemm g) {
  return g == NGC_CPU_GEMM_ONEDNN ? "oneDNN" : "OpenBLAS";
}

void ngc_cpu_describe(char *buf, size_t cap) {
  const dnnl_version_t *v = dnnl_version();
  snprintf(buf, cap,
           "oneDNN %d.%d.%d, %s; sgemm: %s; Winograd convolutions: %s; bf16 convolutions: %s",
           v->major, v->minor, v->patch, openblas_get_config(),
           ngc_cpu_gemm_name(ngc_cpu_pick_gemm()), ngc_cpu_avx512() ? "yes" : "no (no AVX-512)",
           ngc_cpu_bf16() ? "yes" : "no (no AVX512-BF16: float32 instead)");
}
