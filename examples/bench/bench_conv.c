/* negcut-bench conv: every convolution shape of the ResNet generator at
 * 256x256 (REFERENCE.md section 1), batch 1. For forward, backward-data and
 * backward-weights it times our CPU slot on activations in the layouts the
 * network executor keeps them in (the backend's blocked layout where the
 * channels fill whole blocks, plain NCHW for the 3-channel images, so only
 * the first and last convolutions pay reorders of activations) against a bare
 * oneDNN primitive made here with format_tag any for every argument and
 * memory already in the layouts it wants: the best case without reorders.
 * The two alternate rep by rep, so drifts on a shared machine hit both.
 * Then the reorders on their own, and the blurs against oneDNN depthwise
 * (de)convolutions over an already padded input. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "backend/backend.h"
#include "bench/bench.h"
#include "core/core.h"
#include "core/tensor.h"

#define CHECK_DNNL(call)                                                         \
  do {                                                                           \
    dnnl_status_t s_ = (call);                                                   \
    if (s_ != dnnl_success) {                                                    \
      fprintf(stderr, "negcut-bench: %s failed: %d (line %d)\n", #call, (int)s_, \
              __LINE__);                                                         \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

typedef struct conv_shape {
  const char *name;
  int64_t ci, co, h, k, pad; /* input h = w (already reflect-padded where the net does) */
} conv_shape;

static const conv_shape shapes[] = {
    {"7x7 3->64 @262 p0", 3, 64, 262, 7, 0},
    {"3x3 64->128 @256 p1", 64, 128, 256, 3, 1},
    {"3x3 128->256 @128 p1", 128, 256, 128, 3, 1},
    {"3x3 256->256 @66 p0", 256, 256, 66, 3, 0},
    {"3x3 256->128 @128 p1", 256, 128, 128, 3, 1},
    {"3x3 128->64 @256 p1", 128, 64, 256, 3, 1},
    {"7x7 64->3 @262 p0", 64, 3, 262, 7, 0},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static uint64_t rng = 88172645463325252ull;
static float urand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)((double)(rng >> 11) / 9007199254740992.0 - 0.5);
}

static void fill(float *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = urand();
}

/* ------------------------------------------------------------ jobs */

/* What one timed call does: our slot, or a list of oneDNN executions. */
typedef struct dnnl_call {
  dnnl_primitive_t prim;
  int nargs;
  dnnl_exec_arg_t args[6];
} dnnl_call;

typedef struct job {
  enum { JOB_FWD, JOB_BWD_DATA, JOB_BWD_WEIGHTS, JOB_BLUR_DOWN, JOB_BLUR_UP, JOB_DNNL } kind;
  /* ours */
  ngc_backend *be;
  ngc_conv_params p;
  ngc_tensor *x, *w, *b, *y, *dy, *dx, *dw, *db;
  /* bare */
  dnnl_stream_t stream;
  int ncalls;
  dnnl_call calls[3];
} job;

static void run_job(const job *j) {
  negcut_status st = NEGCUT_OK;
  switch (j->kind) {
  case JOB_FWD: st = j->be->ops.conv2d_fwd(j->be, &j->p, j->x, j->w, j->b, j->y); break;
  case JOB_BWD_DATA:
    st = j->be->ops.conv2d_bwd(j->be, &j->p, j->x, j->w, j->dy, j->dx, NULL, NULL);
    break;
  case JOB_BWD_WEIGHTS:
    st = j->be->ops.conv2d_bwd(j->be, &j->p, j->x, j->w, j->dy, NULL, j->dw, j->db);
    break;
  case JOB_BLUR_DOWN: st = j->be->ops.blur_down_fwd(j->be, j->x, j->y); break;
  case JOB_BLUR_UP: st = j->be->ops.blur_up_fwd(j->be, j->x, j->y); break;
  case JOB_DNNL:
    for (int i = 0; i < j->ncalls; i++)
      CHECK_DNNL(dnnl_primitive_execute(j->calls[i].prim, j->stream, j->calls[i].nargs,
                                        j->calls[i].args));
    CHECK_DNNL(dnnl_stream_wait(j->stream));
    break;
  }
  /* a GPU slot only enqueues: wait for it before the clock is read */
  if (st == NEGCUT_OK && j->kind != JOB_DNNL && !j->be->host_memory) st = j->be->ops.sync(j->be);
  if (st != NEGCUT_OK) {
    fprintf(stderr, "negcut-bench: slot failed: %s\n", negcut_status_str(st));
    exit(1);
  }
}

/* One warm-up each, then reps rounds of a then b; seconds into sa, sb. */
static void time_pair(const job *a, const job *b, int reps, bench_stat *sa, bench_stat *sb) {
  double *ta = calloc((size_t)reps, sizeof *ta), *tb = calloc((size_t)reps, sizeof *tb);
  if (!ta || !tb) exit(1);
  run_job(a);
  if (b) run_job(b);
  for (int r = 0; r < reps; r++) {
    double t0 = bench_now();
    run_job(a);
    double t1 = bench_now();
    if (b) run_job(b);
    double t2 = bench_now();
    ta[r] = t1 - t0;
    tb[r] = t2 - t1;
  }
  *sa = bench_stats(ta, reps);
  if (sb) *sb = bench_stats(tb, reps);
  free(ta);
  free(tb);
}

/* ------------------------------------------------------------ oneDNN */

static dnnl_memory_desc_t md4(int64_t a, int64_t b, int64_t c, int64_t d, dnnl_format_tag_t tag) {
  dnnl_memory_desc_t md;
  const dnnl_dims_t dims = {a, b, c, d};
  CHECK_DNNL(dnnl_memory_desc_init_by_tag(&md, 4, dims, dnnl_f32, tag));
  return md;
}

static dnnl_memory_desc_t md1(int64_t a, dnnl_format_tag_t tag) {
  dnnl_memory_desc_t md;
  const dnnl_dims_t dims = {a};
  CHECK_DNNL(dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, tag));
  return md;
}

/* Memory in the layout the primitive wants for `arg`, filled with noise
 * (zero where oneDNN pads channels to a block). */
static dnnl_memory_t arg_mem(dnnl_engine_t eng, const_dnnl_primitive_desc_t pd, int arg) {
  const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
  dnnl_memory_t m;
  void *h;
  CHECK_DNNL(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
  CHECK_DNNL(dnnl_memory_get_data_handle(m, &h));
  memset(h, 0, dnnl_memory_desc_get_size(md));
  fill(h, dnnl_memory_desc_get_size(md) / sizeof(float) / 2); /* finite, partly zero */
  return m;
}

static dnnl_primitive_t make_prim(dnnl_primitive_desc_t pd) {
  dnnl_primitive_t p;
  CHECK_DNNL(dnnl_primitive_create(&p, pd));
  return p;
}

static const char *impl_name(const_dnnl_primitive_desc_t pd) {
  const char *s = NULL;
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
  return s ? s : "?";
}

/* The bare primitives of one shape and their memory. */
typedef struct bare {
  dnnl_primitive_desc_t fpd, dpd, wpd;
  dnnl_memory_t mem[12];
  int nmem;
  job fwd, bwd_data, bwd_weights;
} bare;

static dnnl_memory_t keep(bare *b, dnnl_memory_t m) {
  b->mem[b->nmem++] = m;
  return m;
}

static void bare_make(bare *b, dnnl_engine_t eng, dnnl_stream_t stream, const conv_shape *s,
                      int64_t ho) {
  const dnnl_dims_t strides = {1, 1}, pad = {s->pad, s->pad};
  dnnl_memory_desc_t src = md4(1, s->ci, s->h, s->h, dnnl_format_tag_any);
  dnnl_memory_desc_t wei = md4(s->co, s->ci, s->k, s->k, dnnl_format_tag_any);
  dnnl_memory_desc_t bias = md1(s->co, dnnl_format_tag_any);
  dnnl_memory_desc_t dst = md4(1, s->co, ho, ho, dnnl_format_tag_any);
  dnnl_convolution_desc_t fd, dd, wd;
  memset(b, 0, sizeof *b);
  CHECK_DNNL(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training,
                                                dnnl_convolution_direct, &src, &wei, &bias, &dst,
                                                strides, pad, pad));
  CHECK_DNNL(dnnl_primitive_desc_create(&b->fpd, &fd, NULL, eng, NULL));
  CHECK_DNNL(dnnl_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct, &src, &wei,
                                                      &dst, strides, pad, pad));
  CHECK_DNNL(dnnl_primitive_desc_create(&b->dpd, &dd, NULL, eng, b->fpd));
  CHECK_DNNL(dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &src,
                                                         &wei, &bias, &dst, strides, pad, pad));
  CHECK_DNNL(dnnl_primitive_desc_create(&b->wpd, &wd, NULL, eng, b->fpd));

  b->fwd = (job){.kind = JOB_DNNL, .stream = stream, .ncalls = 1};
  b->fwd.calls[0] = (dnnl_call){make_prim(b->fpd), 4,
                                {{DNNL_ARG_SRC, keep(b, arg_mem(eng, b->fpd, DNNL_ARG_SRC))},
                                 {DNNL_ARG_WEIGHTS,
                                  keep(b, arg_mem(eng, b->fpd, DNNL_ARG_WEIGHTS))},
                                 {DNNL_ARG_BIAS, keep(b, arg_mem(eng, b->fpd, DNNL_ARG_BIAS))},
                                 {DNNL_ARG_DST, keep(b, arg_mem(eng, b->fpd, DNNL_ARG_DST))}}};
  b->bwd_data = (job){.kind = JOB_DNNL, .stream = stream, .ncalls = 1};
  b->bwd_data.calls[0] =
      (dnnl_call){make_prim(b->dpd), 3,
                  {{DNNL_ARG_DIFF_DST, keep(b, arg_mem(eng, b->dpd, DNNL_ARG_DIFF_DST))},
                   {DNNL_ARG_WEIGHTS, b->fwd.calls[0].args[1].memory},
                   {DNNL_ARG_DIFF_SRC, keep(b, arg_mem(eng, b->dpd, DNNL_ARG_DIFF_SRC))}}};
  b->bwd_weights = (job){.kind = JOB_DNNL, .stream = stream, .ncalls = 1};
  b->bwd_weights.calls[0] =
      (dnnl_call){make_prim(b->wpd), 4,
                  {{DNNL_ARG_SRC, keep(b, arg_mem(eng, b->wpd, DNNL_ARG_SRC))},
                   {DNNL_ARG_DIFF_DST, keep(b, arg_mem(eng, b->wpd, DNNL_ARG_DIFF_DST))},
                   {DNNL_ARG_DIFF_WEIGHTS, keep(b, arg_mem(eng, b->wpd, DNNL_ARG_DIFF_WEIGHTS))},
                   {DNNL_ARG_DIFF_BIAS, keep(b, arg_mem(eng, b->wpd, DNNL_ARG_DIFF_BIAS))}}};
}

static void bare_free(bare *b) {
  dnnl_primitive_destroy(b->fwd.calls[0].prim);
  dnnl_primitive_destroy(b->bwd_data.calls[0].prim);
  dnnl_primitive_destroy(b->bwd_weights.calls[0].prim);
  for (int i = 0; i < b->nmem; i++) dnnl_memory_destroy(b->mem[i]);
  dnnl_primitive_desc_destroy(b->fpd);
  dnnl_primitive_desc_destroy(b->dpd);
  dnnl_primitive_desc_destroy(b->wpd);
}

/* A job that reorders `plain` <-> what pd wants for arg (to_plain picks the
 * direction; sum adds into the destination as our dw does). Returns 0 and
 * leaves *j alone when the two layouts are the same. */
static int reorder_job(job *j, dnnl_engine_t eng, dnnl_stream_t stream,
                       const_dnnl_primitive_desc_t pd, int arg, const dnnl_memory_desc_t *plain,
                       int to_plain, int sum) {
  const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  dnnl_primitive_desc_t rpd;
  if (!sum && dnnl_memory_desc_equal(want, plain)) return 0;
  if (sum) {
    CHECK_DNNL(dnnl_primitive_attr_create(&attr));
    CHECK_DNNL(dnnl_post_ops_create(&po));
    CHECK_DNNL(dnnl_post_ops_append_sum(po, 1.0f));
    CHECK_DNNL(dnnl_primitive_attr_set_post_ops(attr, po));
  }
  const dnnl_memory_desc_t *from = to_plain ? want : plain, *to = to_plain ? plain : want;
  CHECK_DNNL(dnnl_reorder_primitive_desc_create(&rpd, from, eng, to, eng, attr));
  dnnl_memory_t a, b;
  CHECK_DNNL(dnnl_memory_create(&a, from, eng, DNNL_MEMORY_ALLOCATE));
  CHECK_DNNL(dnnl_memory_create(&b, to, eng, DNNL_MEMORY_ALLOCATE));
  void *h;
  CHECK_DNNL(dnnl_memory_get_data_handle(a, &h));
  memset(h, 0, dnnl_memory_desc_get_size(from));
  CHECK_DNNL(dnnl_memory_get_data_handle(b, &h));
  memset(h, 0, dnnl_memory_desc_get_size(to));
  *j = (job){.kind = JOB_DNNL, .stream = stream, .ncalls = 1};
  j->calls[0] = (dnnl_call){make_prim(rpd), 2, {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}}};
  dnnl_primitive_desc_destroy(rpd);
  if (po) dnnl_post_ops_destroy(po);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return 1;
}

static void reorder_job_free(job *j) {
  dnnl_primitive_destroy(j->calls[0].prim);
  dnnl_memory_destroy(j->calls[0].args[0].memory);
  dnnl_memory_destroy(j->calls[0].args[1].memory);
}

/* ------------------------------------------------------------ tensors */

/* A tensor on ctx's backend filled with noise (through an upload, so that
 * device backends work too). */
static ngc_tensor tensor(negcut_ctx *ctx, int32_t ndim, int64_t a, int64_t b, int64_t c,
                         int64_t d) {
  const int64_t dim[4] = {a, b, c, d};
  ngc_tensor t;
  if (ngc_tensor_alloc(ctx, ctx->be, &t, ndim, dim) != NEGCUT_OK) {
    fprintf(stderr, "negcut-bench: %s\n", negcut_ctx_last_error(ctx));
    exit(1);
  }
  const size_t n = (size_t)ngc_numel(&t);
  float *h = malloc(n * sizeof *h);
  if (!h) exit(1);
  fill(h, n);
  if (ctx->be->ops.upload(ctx->be, t.data, h, n * sizeof *h) != NEGCUT_OK) {
    fprintf(stderr, "negcut-bench: %s\n", negcut_ctx_last_error(ctx));
    exit(1);
  }
  free(h);
  return t;
}

static dnnl_format_tag_t act_tag(const ngc_backend *be, ngc_layout lay) {
  if (lay == NGC_LAYOUT_PLAIN) return dnnl_nchw;
  return be->act_block == 16 ? dnnl_nChw16c : dnnl_nChw8c;
}

/* ------------------------------------------------------------ blurs */

/* oneDNN's depthwise blur on an input padded in advance (the padding is not
 * timed): down = grouped conv 3x3 stride 2 on (H+2); up = grouped deconv
 * 4x4 stride 2 padding 2 on (H+2) giving 2H+2, the crop not timed either. */
static void blur_bare(job *j, dnnl_engine_t eng, dnnl_stream_t stream, int up, int64_t c,
                      int64_t h, dnnl_primitive_desc_t *pd_out) {
  const int64_t k = up ? 4 : 3, hp = h + 2, ho = up ? 2 * h + 2 : (h + 1) / 2;
  const dnnl_dims_t strides = {2, 2}, pad = {up ? 2 : 0, up ? 2 : 0};
  const dnnl_dims_t wdims = {c, 1, 1, k, k};
  dnnl_memory_desc_t src = md4(1, c, hp, hp, dnnl_format_tag_any);
  dnnl_memory_desc_t dst = md4(1, c, ho, ho, dnnl_format_tag_any);
  dnnl_memory_desc_t wei;
  CHECK_DNNL(dnnl_memory_desc_init_by_tag(&wei, 5, wdims, dnnl_f32, dnnl_format_tag_any));
  if (up) {
    dnnl_deconvolution_desc_t d;
    CHECK_DNNL(dnnl_deconvolution_forward_desc_init(&d, dnnl_forward_inference,
                                                    dnnl_deconvolution_direct, &src, &wei, NULL,
                                                    &dst, strides, pad, pad));
    CHECK_DNNL(dnnl_primitive_desc_create(pd_out, &d, NULL, eng, NULL));
  } else {
    dnnl_convolution_desc_t d;
    CHECK_DNNL(dnnl_convolution_forward_desc_init(&d, dnnl_forward_inference,
                                                  dnnl_convolution_direct, &src, &wei, NULL,
                                                  &dst, strides, pad, pad));
    CHECK_DNNL(dnnl_primitive_desc_create(pd_out, &d, NULL, eng, NULL));
  }
  *j = (job){.kind = JOB_DNNL, .stream = stream, .ncalls = 1};
  j->calls[0] = (dnnl_call){make_prim(*pd_out), 3,
                            {{DNNL_ARG_SRC, arg_mem(eng, *pd_out, DNNL_ARG_SRC)},
                             {DNNL_ARG_WEIGHTS, arg_mem(eng, *pd_out, DNNL_ARG_WEIGHTS)},
                             {DNNL_ARG_DST, arg_mem(eng, *pd_out, DNNL_ARG_DST)}}};
}

static void bench_blurs(negcut_ctx *ctx, dnnl_engine_t eng, dnnl_stream_t stream, int reps) {
  static const struct {
    const char *name;
    int up;
    int64_t c, h;
  } blurs[] = {
      {"blur_down 128 @256", 0, 128, 256},
      {"blur_down 256 @128", 0, 256, 128},
      {"blur_up 256 @64", 1, 256, 64},
      {"blur_up 128 @128", 1, 128, 128},
  };
  printf("\nBlurs, forward, ms (median, min-max). oneDNN: depthwise (de)conv on an input\n"
         "padded beforehand, padding and crop not timed; ours: padding included, on NCHW\n"
         "and on the blocked layout the network runs them in. ratio = time of ours\n"
         "blocked / oneDNN, from the medians.\n");
  printf("%-22s %-22s %-22s %-22s %-6s  %s\n", "op", "ours NCHW", "ours blocked",
         "oneDNN depthwise", "ratio", "oneDNN impl");
  for (size_t i = 0; i < sizeof blurs / sizeof blurs[0]; i++) {
    const int64_t c = blurs[i].c, h = blurs[i].h, ho = blurs[i].up ? 2 * h : (h + 1) / 2;
    ngc_tensor x = tensor(ctx, 4, 1, c, h, h), y = tensor(ctx, 4, 1, c, ho, ho);
    job ours = {.kind = blurs[i].up ? JOB_BLUR_UP : JOB_BLUR_DOWN, .be = ctx->be, .x = &x,
                .y = &y};
    job dn;
    dnnl_primitive_desc_t pd;
    bench_stat so, sb, sd;
    blur_bare(&dn, eng, stream, blurs[i].up, c, h, &pd);
    time_pair(&ours, NULL, reps, &so, NULL);
    x.layout = y.layout = ngc_act_layout(ctx->be, c);
    time_pair(&ours, &dn, reps, &sb, &sd);
    printf("%-22s %6.2f (%5.2f-%5.2f)  %6.2f (%5.2f-%5.2f)  %6.2f (%5.2f-%5.2f)  %5.2f  %s\n",
           blurs[i].name, so.med * 1e3, so.min * 1e3, so.max * 1e3, sb.med * 1e3, sb.min * 1e3,
           sb.max * 1e3, sd.med * 1e3, sd.min * 1e3, sd.max * 1e3, sb.med / sd.med,
           impl_name(pd));
    dnnl_primitive_destroy(dn.calls[0].prim);
    for (int a = 0; a < 3; a++) dnnl_memory_destroy(dn.calls[0].args[a].memory);
    dnnl_primitive_desc_destroy(pd);
    ngc_tensor_release(&x);
    ngc_tensor_release(&y);
  }
}

/* ------------------------------------------------------------ the mode */

static void print_cell(double flop, bench_stat s) {
  /* GFLOP/s at the median time, and the range from the slowest/fastest */
  printf(" %5.0f (%3.0f-%3.0f)", flop / s.med * 1e-9, flop / s.max * 1e-9, flop / s.min * 1e-9);
}

/* ours/bare speed from the medians, and from the best times: on a shared
 * machine the second is the steadier estimate of what our reorders cost. */
static void print_ratio(bench_stat ours, bench_stat best) {
  printf(" %4.2f/%4.2f", best.med / ours.med, best.min / ours.min);
}

/* ---------------------------------------------------- --backend cuda */

/* Our slots alone on a GPU backend (there is no bare oneDNN primitive to
 * set beside them), each call waited for. */
static int bench_conv_device(const bench_opts *o, int do_conv, int do_blur) {
  negcut_ctx_options co;
  negcut_ctx *ctx = NULL;
  negcut_ctx_options_init_v2(&co, NEGCUT_CTX_OPTIONS_VERSION);
  co.backend = o->backend;
  co.threads = o->threads;
  if (negcut_ctx_create(&ctx, &co) != NEGCUT_OK) {
    fprintf(stderr, "negcut-bench: %s\n", negcut_ctx_last_error(NULL));
    return 1;
  }
  printf("negcut-bench conv --backend %s: %s\n", ctx->be->name, negcut_build_info());
  printf("batch 1, %d reps after a warm-up, each call synchronised; GFLOP/s = 2*MAC/time,\n"
         "median (slowest-fastest).\n\n", o->reps);
  printf("%-22s | %-18s | %-18s | %-18s\n", "shape", "fwd", "bwd-data", "bwd-w (+bias)");
  for (int si = 0; si < N_SHAPES && do_conv; si++) {
    const conv_shape *s = &shapes[si];
    const int64_t ho = s->h + 2 * s->pad - s->k + 1;
    const double flop = 2.0 * (double)(s->co * ho * ho) * (double)(s->ci * s->k * s->k);
    ngc_tensor x = tensor(ctx, 4, 1, s->ci, s->h, s->h),
               w = tensor(ctx, 4, s->co, s->ci, s->k, s->k),
               b = tensor(ctx, 1, s->co, 1, 1, 1), y = tensor(ctx, 4, 1, s->co, ho, ho),
               dy = tensor(ctx, 4, 1, s->co, ho, ho),
               dx = tensor(ctx, 4, 1, s->ci, s->h, s->h),
               dw = tensor(ctx, 4, s->co, s->ci, s->k, s->k),
               db = tensor(ctx, 1, s->co, 1, 1, 1);
    const ngc_conv_params p = {.stride = 1, .pad = (int32_t)s->pad};
    job of = {.be = ctx->be, .p = p, .x = &x, .w = &w, .b = &b, .y = &y, .dy = &dy,
              .dx = &dx, .dw = &dw, .db = &db};
    job od = of, ow = of;
    bench_stat sf, sd, sw;
    of.kind = JOB_FWD, od.kind = JOB_BWD_DATA, ow.kind = JOB_BWD_WEIGHTS;
    time_pair(&of, NULL, o->reps, &sf, NULL);
    time_pair(&od, NULL, o->reps, &sd, NULL);
    time_pair(&ow, NULL, o->reps, &sw, NULL);
    printf("%-22s |", s->name);
    print_cell(flop, sf), printf(" |"), print_cell(flop, sd), printf(" |"), print_cell(flop, sw);
    printf("\n");
    fflush(stdout);
    ngc_tensor *ts[] = {&x, &w, &b, &y, &dy, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) ngc_tensor_release(ts[i]);
  }
  static const struct {
    const char *name;
    int up;
    int64_t c, h;
  } blurs[] = {{"blur_down 128 @256", 0, 128, 256},
               {"blur_down 256 @128", 0, 256, 128},
               {"blur_up 256 @64", 1, 256, 64},
               {"blur_up 128 @128", 1, 128, 128}};
  if (do_blur) printf("\nBlurs, forward, ms (median, min-max), padding included.\n");
  for (size_t i = 0; i < sizeof blurs / sizeof blurs[0] && do_blur; i++) {
    const int64_t c = blurs[i].c, h = blurs[i].h, ho = blurs[i].up ? 2 * h : (h + 1) / 2;
    ngc_tensor x = tensor(ctx, 4, 1, c, h, h), y = tensor(ctx, 4, 1, c, ho, ho);
    job j = {.kind = blurs[i].up ? JOB_BLUR_UP : JOB_BLUR_DOWN, .be = ctx->be, .x = &x, .y = &y};
    bench_stat sb;
    time_pair(&j, NULL, o->reps, &sb, NULL);
    printf("%-22s %6.3f (%5.3f-%5.3f)\n", blurs[i].name, sb.med * 1e3, sb.min * 1e3,
           sb.max * 1e3);
    ngc_tensor_release(&x);
    ngc_tensor_release(&y);
  }
  negcut_ctx_free(ctx);
  return 0;
}

int bench_conv(const bench_opts *o, int argc, char **argv) {
  negcut_ctx_options co;
  negcut_ctx *ctx = NULL;
  dnnl_engine_t eng;
  dnnl_stream_t stream;
  int do_conv = 1, do_blur = 1; /* --only conv|blur */
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--only") && i + 1 < argc) {
      do_conv = !strcmp(argv[i + 1], "conv");
      do_blur = !strcmp(argv[++i], "blur");
    } else {
      fprintf(stderr, "negcut-bench conv: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  if (o->backend != NEGCUT_BACKEND_CPU) return bench_conv_device(o, do_conv, do_blur);
  negcut_ctx_options_init_v2(&co, NEGCUT_CTX_OPTIONS_VERSION);
  co.backend = NEGCUT_BACKEND_CPU;
  co.threads = o->threads;
  if (negcut_ctx_create(&ctx, &co) != NEGCUT_OK) {
    fprintf(stderr, "negcut-bench: %s\n", negcut_ctx_last_error(NULL));
    return 1;
  }
  const int threads = negcut_ctx_threads(ctx);
  omp_set_num_threads(threads); /* the bare primitives get the same budget */
  CHECK_DNNL(dnnl_engine_create(&eng, dnnl_cpu, 0));
  CHECK_DNNL(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));

  printf("negcut-bench conv: %s\n", negcut_build_info());
  printf("%d threads, batch 1, %d reps (median, min-max); GFLOP/s = 2*MAC/time.\n"
         "ours: our cpu slot on activations in the executor's layouts (blocked by %d\n"
         "channels where they fill blocks, else NCHW; weights OIHW; reorders included);\n"
         "bare: oneDNN primitive, format_tag any, memory already in its layouts.\n"
         "ratio = ours/bare speed, from the medians / from the best times.\n\n",
         threads, o->reps, (int)ctx->be->act_block);
  printf("%-22s | %-16s %-16s %-9s | %-16s %-16s %-9s | %-16s %-16s %-9s\n", "shape",
         "fwd ours", "fwd bare", "ratio", "bwd-data ours", "bwd-data bare", "ratio",
         "bwd-w ours", "bwd-w bare", "ratio");

  double reorder_ms[N_SHAPES][5];
  double fwd_ms[N_SHAPES];
  const char *impls[N_SHAPES][3];
  for (int si = 0; si < N_SHAPES && do_conv; si++) {
    const conv_shape *s = &shapes[si];
    const int64_t ho = s->h + 2 * s->pad - s->k + 1;
    const double flop = 2.0 * (double)(s->co * ho * ho) * (double)(s->ci * s->k * s->k);
    ngc_tensor x = tensor(ctx, 4, 1, s->ci, s->h, s->h),
               w = tensor(ctx, 4, s->co, s->ci, s->k, s->k), b = tensor(ctx, 1, s->co, 1, 1, 1), y = tensor(ctx, 4, 1, s->co, ho, ho),
               dy = tensor(ctx, 4, 1, s->co, ho, ho), dx = tensor(ctx, 4, 1, s->ci, s->h, s->h),
               dw = tensor(ctx, 4, s->co, s->ci, s->k, s->k), db = tensor(ctx, 1, s->co, 1, 1, 1);
    const ngc_conv_params p = {.stride = 1, .pad = (int32_t)s->pad};
    const ngc_layout in_lay = ngc_act_layout(ctx->be, s->ci), out_lay = ngc_act_layout(ctx->be, s->co);
    x.layout = dx.layout = in_lay;
    y.layout = dy.layout = out_lay;
    job ours = {.be = ctx->be, .p = p, .x = &x, .w = &w, .b = &b, .y = &y, .dy = &dy,
                .dx = &dx, .dw = &dw, .db = &db};
    job of = ours, od = ours, ow = ours;
    bare bb;
    bench_stat s_of, s_bf, s_od, s_bd, s_ow, s_bw;
    of.kind = JOB_FWD, od.kind = JOB_BWD_DATA, ow.kind = JOB_BWD_WEIGHTS;
    bare_make(&bb, eng, stream, s, ho);
    impls[si][0] = impl_name(bb.fpd);
    impls[si][1] = impl_name(bb.dpd);
    impls[si][2] = impl_name(bb.wpd);

    time_pair(&of, &bb.fwd, o->reps, &s_of, &s_bf);
    time_pair(&od, &bb.bwd_data, o->reps, &s_od, &s_bd);
    time_pair(&ow, &bb.bwd_weights, o->reps, &s_ow, &s_bw);
    printf("%-22s |", s->name);
    print_cell(flop, s_of), print_cell(flop, s_bf), print_ratio(s_of, s_bf), printf(" |");
    print_cell(flop, s_od), print_cell(flop, s_bd), print_ratio(s_od, s_bd), printf(" |");
    print_cell(flop, s_ow), print_cell(flop, s_bw), print_ratio(s_ow, s_bw), printf("\n");
    fflush(stdout);
    fwd_ms[si] = s_of.min * 1e3;

    /* The reorders our slots add around the primitive, timed alone. */
    dnnl_memory_desc_t src_p = md4(1, s->ci, s->h, s->h, act_tag(ctx->be, in_lay));
    dnnl_memory_desc_t dst_p = md4(1, s->co, ho, ho, act_tag(ctx->be, out_lay));
    dnnl_memory_desc_t wei_p = md4(s->co, s->ci, s->k, s->k, dnnl_oihw);
    struct {
      const_dnnl_primitive_desc_t pd;
      int arg;
      const dnnl_memory_desc_t *plain;
      int to_plain, sum;
    } rs[5] = {
        {bb.fpd, DNNL_ARG_SRC, &src_p, 0, 0},        /* x in */
        {bb.fpd, DNNL_ARG_WEIGHTS, &wei_p, 0, 0},    /* w in */
        {bb.fpd, DNNL_ARG_DST, &dst_p, 1, 0},        /* y out */
        {bb.dpd, DNNL_ARG_DIFF_SRC, &src_p, 1, 0},   /* dx out */
        {bb.wpd, DNNL_ARG_DIFF_WEIGHTS, &wei_p, 1, 1} /* dw out, += */
    };
    for (int r = 0; r < 5; r++) {
      job rj;
      bench_stat st;
      reorder_ms[si][r] = 0.0;
      if (!reorder_job(&rj, eng, stream, rs[r].pd, rs[r].arg, rs[r].plain, rs[r].to_plain,
                       rs[r].sum))
        continue;
      time_pair(&rj, NULL, o->reps, &st, NULL);
      reorder_ms[si][r] = st.min * 1e3;
      reorder_job_free(&rj);
    }
    bare_free(&bb);
    ngc_tensor *ts[] = {&x, &w, &b, &y, &dy, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) ngc_tensor_release(ts[i]);
  }

  printf("\nReorders between our layouts (as above) and oneDNN's preferred ones, alone, ms\n"
         "(best of reps: they are short and a shared machine's scheduler adds whole 4 ms\n"
         "slices to a median); 0 = already in the primitive's layout, no reorder.\n"
         "'x+y in fwd' = share of our best forward time.\n");
  printf("%-22s %8s %8s %8s %8s %8s %12s  %s\n", "shape", "x in", "w in", "y out", "dx out",
         "dw +=out", "x+y in fwd", "oneDNN impl fwd / bwd-d / bwd-w");
  for (int si = 0; si < N_SHAPES && do_conv; si++) {
    const double *r = reorder_ms[si];
    printf("%-22s %8.2f %8.2f %8.2f %8.2f %8.2f %11.0f%%  %s / %s / %s\n", shapes[si].name, r[0],
           r[1], r[2], r[3], r[4], 100.0 * (r[0] + r[2]) / fwd_ms[si], impls[si][0],
           impls[si][1], impls[si][2]);
  }

  if (do_blur) bench_blurs(ctx, eng, stream, o->reps);

  printf("\nANCHORS.md, anchor machine (2 cores Zen 4, AVX-512, 3.6 GHz, 2 threads):\n"
         "  arithmetic peak about 230 GFLOP/s fp32 (2 cores x 32 FLOP/cycle x 3.6 GHz)\n"
         "  oneDNN 2.6 conv 3x3 256->256 @64: 205-229 GFLOP/s forward, 214-224 backward-data\n"
         "  OpenBLAS sgemm 2048^3: 182-199 GFLOP/s\n");
  dnnl_stream_destroy(stream);
  dnnl_engine_destroy(eng);
  negcut_ctx_free(ctx);
  return 0;
}
