/* The convolution primitive cache (cpu_conv.h): one entry per key holding the
 * oneDNN primitive, the reorders between plain user memory and the layouts
 * the primitive prefers, and memory objects whose handles are set per call.
 * A linear list: a network has a few dozen distinct convolutions, and a
 * lookup is nothing next to the convolution it precedes.
 *
 * Memory: every staged (reordered) argument and the scratchpads live in the
 * backend's one growing work buffer; an entry only records offsets. Weights
 * are reordered on every call (they change every training step) but by a
 * cached reorder primitive, unless the caller keeps them (ngc_wstore). Accumulated outputs (dw, db) go through a
 * reorder with a sum post-op, so "+=" costs no extra pass. */
#include <stdlib.h>
#include <string.h>

#include "cpu_conv.h"

#define NGC_WORK_ALIGN 64

typedef struct conv_arg {
  int32_t arg;        /* DNNL_ARG_* of the main primitive; 0: slot unused */
  int32_t output;     /* written by the primitive */
  int32_t accumulate; /* output is added into user memory */
  int32_t staged;     /* goes through a copy in the work buffer */
  size_t off;         /* of the staged copy in the work buffer */
  dnnl_memory_t user; /* plain row-major user memory */
  dnnl_memory_t prim; /* what the primitive sees (staged copy), or NULL */
  dnnl_primitive_t reorder;       /* user -> prim, or prim -> user */
  dnnl_memory_t reorder_scratch;  /* NULL when the reorder needs none */
} conv_arg;

typedef struct conv_entry {
  ngc_conv_key key;
  dnnl_primitive_t prim;
  dnnl_memory_t scratch; /* NULL when the primitive needs none */
  conv_arg a[NGC_CONV_MAX_ARGS];
  size_t scratch_off, work_bytes;
  int32_t winograd; /* the primitive is oneDNN's Winograd */
  int32_t bf16;     /* the primitive reads bf16 source and weights */
  struct conv_entry *next;
} conv_entry;

typedef struct conv_cache {
  conv_entry *head;
  const conv_entry *last; /* of the last ngc_cpu_conv_run */
  int64_t winograd_runs[3]; /* Winograd primitives run, by ngc_conv_op */
  int64_t bf16_runs;        /* bf16 primitives run */
  void *work; /* 64-byte aligned, work_cap bytes */
  size_t work_cap;
  void *side; /* ngc_cpu_side, side_cap bytes */
  size_t side_cap;
} conv_cache;

static conv_cache *cache_of(ngc_backend *be) {
  ngc_cpu *c = ngc_cpu_of(be);
  if (!c->conv_cache) c->conv_cache = calloc(1, sizeof(conv_cache));
  return c->conv_cache;
}

/* The work buffer (side 0) or the side buffer (1), 64-byte aligned, grown
 * to at least bytes; NULL (with a message on be->ctx) when out of memory. */
static void *grown(ngc_backend *be, int side, size_t bytes) {
  conv_cache *cc = cache_of(be);
  if (!cc) {
    ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    return NULL;
  }
  void **buf = side ? &cc->side : &cc->work;
  size_t *cap = side ? &cc->side_cap : &cc->work_cap;
  if (bytes <= *cap && *buf) return *buf;
  ngc_host_free(be, *buf);
  *buf = ngc_host_alloc(be, bytes ? bytes : NGC_WORK_ALIGN);
  *cap = *buf ? bytes : 0;
  if (!*buf)
    ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY,
              "cpu backend: cannot allocate %zu bytes of work memory", bytes);
  return *buf;
}

void *ngc_cpu_work(ngc_backend *be, size_t bytes) { return grown(be, 0, bytes); }

void *ngc_cpu_side(ngc_backend *be, size_t bytes) { return grown(be, 1, bytes); }

static void entry_free(conv_entry *e) {
  if (!e) return;
  for (int i = 0; i < NGC_CONV_MAX_ARGS; i++) {
    conv_arg *a = &e->a[i];
    if (a->reorder) dnnl_primitive_destroy(a->reorder);
    if (a->reorder_scratch) dnnl_memory_destroy(a->reorder_scratch);
    if (a->prim) dnnl_memory_destroy(a->prim);
    if (a->user) dnnl_memory_destroy(a->user);
  }
  if (e->scratch) dnnl_memory_destroy(e->scratch);
  if (e->prim) dnnl_primitive_destroy(e->prim);
  free(e);
}

void ngc_cpu_conv_cache_free(ngc_backend *be) {
  ngc_cpu *c = ngc_cpu_of(be);
  conv_cache *cc = c ? c->conv_cache : NULL;
  if (!cc) return;
  for (conv_entry *e = cc->head, *next; e; e = next) {
    next = e->next;
    entry_free(e);
  }
  ngc_host_free(be, cc->work);
  ngc_host_free(be, cc->side);
  free(cc);
  c->conv_cache = NULL;
}

static size_t align_up(size_t n) {
  return (n + NGC_WORK_ALIGN - 1) / NGC_WORK_ALIGN * NGC_WORK_ALIGN;
}

static size_t scratch_size(const_dnnl_primitive_desc_t pd) {
  const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  return md ? dnnl_memory_desc_get_size(md) : 0;
}

/* Attributes of every primitive here: user scratchpad, and for the
 * accumulating reorders a sum post-op (dst = reorder(src) + dst). */
static negcut_status make_attr(ngc_backend *be, int sum, dnnl_primitive_attr_t *out) {
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  negcut_status st = ngc_cpu_check(be, dnnl_primitive_attr_create(&attr), "attr");
  if (st) goto fail;
  st = ngc_cpu_check(be, dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user),
                     "scratchpad mode");
  if (st) goto fail;
  if (sum) {
    st = ngc_cpu_check(be, dnnl_post_ops_create(&po), "post-ops");
    if (st) goto fail;
    st = ngc_cpu_check(be, dnnl_post_ops_append_sum(po, 1.0f), "sum post-op");
    if (st) goto fail;
    st = ngc_cpu_check(be, dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
    if (st) goto fail;
    dnnl_post_ops_destroy(po);
  }
  *out = attr;
  return NEGCUT_OK;
fail:
  if (po) dnnl_post_ops_destroy(po);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return st;
}

/* Fills a->user, and when the primitive wants another layout (or the output
 * accumulates) a->prim and its reorder. *work grows by the staged copy,
 * *scratch to the largest scratchpad. */
static negcut_status arg_setup(ngc_backend *be, const_dnnl_primitive_desc_t pd, conv_arg *a,
                               const dnnl_memory_desc_t *plain, size_t *work, size_t *scratch) {
  ngc_cpu *c = ngc_cpu_of(be);
  const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, a->arg);
  dnnl_primitive_attr_t attr = NULL;
  dnnl_primitive_desc_t rpd = NULL;
  negcut_status st;

  if (!want) return ngc_error(be->ctx, NEGCUT_ERR_BACKEND, "oneDNN: no memory desc for arg %d",
                              (int)a->arg);
  st = ngc_cpu_check(be, dnnl_memory_create(&a->user, plain, c->engine, DNNL_MEMORY_NONE),
                     "memory");
  if (st) goto fail;
  a->staged = a->accumulate || !dnnl_memory_desc_equal(want, plain);
  if (!a->staged) return NEGCUT_OK;

  a->off = *work;
  *work += align_up(dnnl_memory_desc_get_size(want));
  st = ngc_cpu_check(be, dnnl_memory_create(&a->prim, want, c->engine, DNNL_MEMORY_NONE),
                     "memory");
  if (st) goto fail;
  st = make_attr(be, a->accumulate, &attr);
  if (st) goto fail;
  if (a->output)
    st = ngc_cpu_check(be, dnnl_reorder_primitive_desc_create(&rpd, want, c->engine, plain,
                                                              c->engine, attr),
                       "reorder desc");
  else
    st = ngc_cpu_check(be, dnnl_reorder_primitive_desc_create(&rpd, plain, c->engine, want,
                                                              c->engine, attr),
                       "reorder desc");
  if (st) goto fail;
  st = ngc_cpu_check(be, dnnl_primitive_create(&a->reorder, rpd), "reorder");
  if (st) goto fail;
  size_t s = scratch_size(rpd);
  if (s) {
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(rpd, dnnl_query_scratchpad_md, 0);
    st = ngc_cpu_check(be, dnnl_memory_create(&a->reorder_scratch, smd, c->engine,
                                              DNNL_MEMORY_NONE),
                       "memory");
    if (st) goto fail;
    if (s > *scratch) *scratch = s;
  }
  /* fall through: free the descs, keep what a holds (entry_free owns it) */
fail:
  if (rpd) dnnl_primitive_desc_destroy(rpd);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return st;
}

/* oneDNN's tag for a user activation with channel block blk. */
static dnnl_format_tag_t act_tag(int32_t blk) {
  return blk == 16 ? dnnl_nChw16c : blk == 8 ? dnnl_nChw8c : dnnl_nchw;
}

int32_t ngc_cpu_pick_block(ngc_backend *be) {
  ngc_cpu *c = ngc_cpu_of(be);
  const dnnl_dims_t src_dims = {1, 64, 32, 32}, wei_dims = {64, 64, 3, 3};
  const dnnl_dims_t strides = {1, 1}, pad = {1, 1};
  dnnl_memory_desc_t src, wei, dst, want;
  dnnl_convolution_desc_t fd;
  dnnl_primitive_desc_t pd = NULL;
  int32_t blk = 0;
  if (dnnl_memory_desc_init_by_tag(&src, 4, src_dims, dnnl_f32, dnnl_format_tag_any) ||
      dnnl_memory_desc_init_by_tag(&wei, 4, wei_dims, dnnl_f32, dnnl_format_tag_any) ||
      dnnl_memory_desc_init_by_tag(&dst, 4, src_dims, dnnl_f32, dnnl_format_tag_any) ||
      dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct,
                                         &src, &wei, NULL, &dst, strides, pad, pad) ||
      dnnl_primitive_desc_create(&pd, &fd, NULL, c->engine, NULL))
    return 0;
  const dnnl_memory_desc_t *chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
  for (int32_t b = 16; b >= 8 && chosen && !blk; b /= 2)
    if (!dnnl_memory_desc_init_by_tag(&want, 4, src_dims, dnnl_f32, act_tag(b)) &&
        dnnl_memory_desc_equal(chosen, &want))
      blk = b;
  dnnl_primitive_desc_destroy(pd);
  return blk;
}

/* The memory descriptors of a primitive: "any" for what oneDNN picks, and
 * the user's layouts. */
typedef struct conv_mds {
  dnnl_memory_desc_t src, wei, bias, dst;
} conv_mds;

/* oneDNN's primitive desc of key k with algorithm alg, or its refusal
 * (dnnl_unimplemented where alg has no implementation for the shape). */
static dnnl_status_t conv_pd(ngc_backend *be, const ngc_conv_key *k, dnnl_alg_kind_t alg,
                             const conv_mds *any, const_dnnl_primitive_attr_t attr,
                             dnnl_primitive_desc_t *pd) {
  const dnnl_dims_t strides = {k->stride, k->stride};
  const dnnl_dims_t pad = {k->pad, k->pad};
  const dnnl_memory_desc_t *bias = k->bias ? &any->bias : NULL;
  dnnl_engine_t engine = ngc_cpu_of(be)->engine;
  dnnl_convolution_desc_t fd, bd;
  dnnl_primitive_desc_t hint = NULL;
  dnnl_status_t s;
  *pd = NULL;
  /* Every op needs the forward desc: as itself or as the backward's hint. */
  s = dnnl_convolution_forward_desc_init(&fd, any->src.data_type == dnnl_bf16
                                                  ? dnnl_forward_inference
                                                  : dnnl_forward_training,
                                         alg, &any->src, &any->wei, bias, &any->dst, strides,
                                         pad, pad);
  if (s != dnnl_success) return s;
  if (k->op == NGC_CONV_FWD) return dnnl_primitive_desc_create(pd, &fd, attr, engine, NULL);
  s = dnnl_primitive_desc_create(&hint, &fd, NULL, engine, NULL);
  if (s == dnnl_success)
    s = k->op == NGC_CONV_BWD_DATA
            ? dnnl_convolution_backward_data_desc_init(&bd, alg, &any->src, &any->wei,
                                                       &any->dst, strides, pad, pad)
            : dnnl_convolution_backward_weights_desc_init(&bd, alg, &any->src, &any->wei, bias,
                                                          &any->dst, strides, pad, pad);
  if (s == dnnl_success) s = dnnl_primitive_desc_create(pd, &bd, attr, engine, hint);
  if (hint) dnnl_primitive_desc_destroy(hint);
  return s;
}

/* Winograd's scratchpad (transformed tiles of the source, destination and
 * weights, per thread) grows with the activations: 35-75 MB for the 256 ->
 * 256 convolutions at 64x64 of a 256x256 CUT step, 124-136 MB for its
 * batch-2 ones at 128x128, about 140 MB for the forward passes at 128x128
 * of a 512x512 generator. Beyond these bounds, by NGC_CONV_TRANSFORM_*
 * class, the direct algorithm runs. Inference (ROOMY): 160 MiB took a
 * 512x512 generator from 1.13 to 0.65 s (peak RSS 408 -> 477 MiB).
 * Training: the batch-2 weight passes of 136 and 238 MB ran slower than
 * direct on this project's 2-core machine (68 -> 86 and 72 -> 145 ms); the
 * backward-data and forward passes of 124 MB gained (56 -> 24 ms), but
 * allowing them took a 256x256 CUT step only from 2.23 to 2.20 s (2.62 to
 * 2.52 s with direct forward passes), and its peak RSS from 1424 to 1467
 * MiB, past half of PyTorch's (2840-2955). */
static const size_t winograd_max_scratch[3] = {0, NGC_WINOGRAD_MAX_SCRATCH_TRAINING,
                                               NGC_WINOGRAD_MAX_SCRATCH};

/* any with bf16 source and weights (f32 accumulation and destination).
 * Where the activations are 16-channel blocked, the source and destination
 * are asked for in that layout: with "any" oneDNN 2.6 picks brgconv on NHWC,
 * and every convolution then transposed its input and its output (about 70
 * reorders a 256x256 generator; 46 now, each only a conversion to bf16):
 * 0.173 -> 0.162 s a 256x256 forward on this machine's 2 cores. */
static dnnl_status_t bf16_mds(const ngc_conv_key *k, conv_mds *any) {
  const dnnl_dims_t src_dims = {k->n, k->ci, k->h, k->w};
  const dnnl_dims_t wei_dims = {k->co, k->ci, k->k, k->k};
  const dnnl_dims_t dst_dims = {k->n, k->co, k->ho, k->wo};
  dnnl_status_t s = dnnl_memory_desc_init_by_tag(
      &any->src, 4, src_dims, dnnl_bf16, k->src_blk == 16 ? dnnl_nChw16c : dnnl_format_tag_any);
  if (s == dnnl_success && k->dst_blk == 16)
    s = dnnl_memory_desc_init_by_tag(&any->dst, 4, dst_dims, dnnl_f32, dnnl_nChw16c);
  if (s == dnnl_success)
    s = dnnl_memory_desc_init_by_tag(&any->wei, 4, wei_dims, dnnl_bf16, dnnl_format_tag_any);
  return s;
}

/* The primitive desc of k, the first of:
 * - Winograd, where k allows it (k->winograd: fp32 3x3 stride 1, conv_key),
 *   the shape is large enough to gain (NGC_WINOGRAD_MIN_*, cpu_conv.h) and
 *   oneDNN has it for the shape within winograd_max_scratch (its
 *   avx512_core F(4x4, 3x3) kernels). It stays float32 under k->bf16: it
 *   ran faster than oneDNN's bf16 direct kernels on every such convolution
 *   of a 256x256 generator (256 -> 256 at 64x64: 3.4 against 4.7 ms);
 * - bf16 direct, where k->bf16 asks for it, which it does only where the CPU
 *   has bf16 dot products (ngc_cpu_bf16; emulated bf16 would be slower than
 *   float32):
 *   the 7x7 convolutions at either end of the generator, 13.5 -> 7.8 and
 *   2.6 -> 1.6 ms;
 * - float32 direct.
 * any holds the float32 descriptors. The choice depends on the shape, the thread count and the machine only,
 * so the same call gives the same bits every time. */
static dnnl_status_t conv_pd_pick(ngc_backend *be, const ngc_conv_key *k, const conv_mds *any,
                                  const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t *pd,
                                  conv_entry *e) {
  const ngc_cpu *c = ngc_cpu_of(be);
  e->winograd = e->bf16 = 0;
  if (k->winograd > 0 && k->winograd < 3 && k->ci >= c->wino_min_channels &&
      k->co >= c->wino_min_channels && (int64_t)k->ho * k->wo >= c->wino_min_pixels &&
      conv_pd(be, k, dnnl_convolution_winograd, any, attr, pd) == dnnl_success) {
    if (scratch_size(*pd) <= winograd_max_scratch[k->winograd]) {
      e->winograd = 1;
      return dnnl_success;
    }
    dnnl_primitive_desc_destroy(*pd);
  }
  if (k->bf16) { /* conv_key: only where ngc_cpu_bf16 */
    conv_mds b = *any;
    if (bf16_mds(k, &b) == dnnl_success &&
        conv_pd(be, k, dnnl_convolution_direct, &b, attr, pd) == dnnl_success) {
      e->bf16 = 1;
      return dnnl_success;
    }
  }
  return conv_pd(be, k, dnnl_convolution_direct, any, attr, pd);
}

static negcut_status entry_build(ngc_backend *be, const ngc_conv_key *k, conv_entry **out) {
  const dnnl_dims_t src_dims = {k->n, k->ci, k->h, k->w};  // (N, Ci, H, W)
  const dnnl_dims_t wei_dims = {k->co, k->ci, k->k, k->k}; // (Co, Ci, k, k)
  const dnnl_dims_t bias_dims = {k->co};                   // (Co)
  const dnnl_dims_t dst_dims = {k->n, k->co, k->ho, k->wo}; // (N, Co, Ho, Wo)
  conv_mds any;
  dnnl_memory_desc_t src_plain, wei_plain, bias_plain, dst_plain;
  const dnnl_memory_desc_t *plain[NGC_CONV_MAX_ARGS] = {NULL}; /* the user's layouts */
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_attr_t attr = NULL;
  size_t work = 0, scratch = 0;
  negcut_status st;
  conv_entry *e = calloc(1, sizeof *e);

  if (!e) return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cpu conv: out of memory");
  e->key = *k;
  const struct {
    dnnl_memory_desc_t *md;
    int nd;
    const int64_t *dims;
    dnnl_format_tag_t tag;
  } mds[] = {
      {&any.src, 4, src_dims, dnnl_format_tag_any}, {&src_plain, 4, src_dims, act_tag(k->src_blk)},
      {&any.wei, 4, wei_dims, dnnl_format_tag_any}, {&wei_plain, 4, wei_dims, dnnl_oihw},
      {&any.bias, 1, bias_dims, dnnl_format_tag_any}, {&bias_plain, 1, bias_dims, dnnl_a},
      {&any.dst, 4, dst_dims, dnnl_format_tag_any}, {&dst_plain, 4, dst_dims, act_tag(k->dst_blk)},
  };
  st = NEGCUT_OK;
  for (size_t i = 0; i < sizeof mds / sizeof mds[0] && !st; i++)
    st = ngc_cpu_check(be, dnnl_memory_desc_init_by_tag(mds[i].md, mds[i].nd, mds[i].dims,
                                                        dnnl_f32, mds[i].tag),
                       "memory desc");
  if (st) goto fail;
  st = make_attr(be, 0, &attr);
  if (st) goto fail;
  switch ((ngc_conv_op)k->op) {
  case NGC_CONV_FWD:
    e->a[0] = (conv_arg){.arg = DNNL_ARG_SRC};
    e->a[1] = (conv_arg){.arg = DNNL_ARG_WEIGHTS};
    e->a[2] = (conv_arg){.arg = k->bias ? DNNL_ARG_BIAS : 0};
    e->a[3] = (conv_arg){.arg = DNNL_ARG_DST, .output = 1};
    plain[0] = &src_plain, plain[1] = &wei_plain, plain[2] = &bias_plain, plain[3] = &dst_plain;
    break;
  case NGC_CONV_BWD_DATA:
    e->a[0] = (conv_arg){.arg = DNNL_ARG_DIFF_DST};
    e->a[1] = (conv_arg){.arg = DNNL_ARG_WEIGHTS};
    e->a[2] = (conv_arg){.arg = DNNL_ARG_DIFF_SRC, .output = 1};
    plain[0] = &dst_plain, plain[1] = &wei_plain, plain[2] = &src_plain;
    break;
  case NGC_CONV_BWD_WEIGHTS:
    e->a[0] = (conv_arg){.arg = DNNL_ARG_SRC};
    e->a[1] = (conv_arg){.arg = DNNL_ARG_DIFF_DST};
    e->a[2] = (conv_arg){.arg = DNNL_ARG_DIFF_WEIGHTS, .output = 1, .accumulate = 1};
    e->a[3] = (conv_arg){.arg = k->bias ? DNNL_ARG_DIFF_BIAS : 0, .output = 1, .accumulate = 1};
    plain[0] = &src_plain, plain[1] = &dst_plain, plain[2] = &wei_plain, plain[3] = &bias_plain;
    break;
  default:
    st = ngc_error(be->ctx, NEGCUT_ERR_INTERNAL, "cpu conv: unknown op %d", (int)k->op);
    goto fail;
  }
  static const char *const what[] = {"conv forward", "conv backward-data",
                                     "conv backward-weights"};
  st = ngc_cpu_check(be, conv_pd_pick(be, k, &any, attr, &pd, e), what[k->op]);
  if (st) goto fail;

  st = ngc_cpu_check(be, dnnl_primitive_create(&e->prim, pd), "conv primitive");
  if (st) goto fail;
  scratch = scratch_size(pd);
  if (scratch) {
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    st = ngc_cpu_check(be, dnnl_memory_create(&e->scratch, smd, ngc_cpu_of(be)->engine,
                                              DNNL_MEMORY_NONE),
                       "memory");
    if (st) goto fail;
  }
  for (int i = 0; i < NGC_CONV_MAX_ARGS; i++) {
    if (!e->a[i].arg) continue;
    st = arg_setup(be, pd, &e->a[i], plain[i], &work, &scratch);
    if (st) goto fail;
  }
  /* The primitive and the reorders run one after another: one scratchpad. */
  e->scratch_off = work;
  e->work_bytes = work + align_up(scratch);
  *out = e;
  e = NULL;
fail:
  entry_free(e);
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return st;
}

const char *ngc_cpu_conv_last_impl(ngc_backend *be) {
  ngc_cpu *c = ngc_cpu_of(be);
  const conv_cache *cc = c ? c->conv_cache : NULL;
  const_dnnl_primitive_desc_t pd = NULL;
  const char *impl = NULL;
  if (!cc || !cc->last || dnnl_primitive_get_primitive_desc(cc->last->prim, &pd) != dnnl_success ||
      dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success)
    return NULL;
  return impl;
}

int64_t ngc_cpu_conv_winograd_runs(ngc_backend *be, int32_t op) {
  ngc_cpu *c = ngc_cpu_of(be);
  const conv_cache *cc = c ? c->conv_cache : NULL;
  return cc && op >= 0 && op < 3 ? cc->winograd_runs[op] : 0;
}

int64_t ngc_cpu_conv_bf16_runs(ngc_backend *be) {
  ngc_cpu *c = ngc_cpu_of(be);
  const conv_cache *cc = c ? c->conv_cache : NULL;
  return cc ? cc->bf16_runs : 0;
}

static negcut_status exec(ngc_backend *be, dnnl_primitive_t p, int nargs, dnnl_exec_arg_t *args,
                          const char *what) {
  return ngc_cpu_check(be, dnnl_primitive_execute(p, ngc_cpu_of(be)->stream, nargs, args), what);
}

static negcut_status run_reorder(ngc_backend *be, conv_arg *a) {
  dnnl_exec_arg_t args[3] = {
      {DNNL_ARG_FROM, a->output ? a->prim : a->user},
      {DNNL_ARG_TO, a->output ? a->user : a->prim},
      {DNNL_ARG_SCRATCHPAD, a->reorder_scratch},
  };
  return exec(be, a->reorder, a->reorder_scratch ? 3 : 2, args, "reorder");
}

/* With keep, the weights (argument 1 of a forward or backward-data pass)
 * in the primitive's layout: kept from an earlier call, or reordered now
 * into a new entry of keep. 0 where keep has none and no room (the caller
 * then reorders them into the work buffer as usual). */
static int weights_kept(ngc_backend *be, ngc_wstore *keep, conv_entry *e, const float *w,
                        negcut_status *st) {
  conv_arg *a = &e->a[1];
  const dnnl_memory_desc_t *md = NULL;
  *st = NEGCUT_OK;
  if (!keep || a->arg != DNNL_ARG_WEIGHTS || !a->staged ||
      dnnl_memory_get_memory_desc(a->prim, &md) != dnnl_success)
    return 0;
  ngc_cpu_wkey key = {.w = w, .md = *md};
  int fresh;
  void *data = ngc_cpu_kept(keep, &key, dnnl_memory_desc_get_size(md), &fresh);
  if (!data) return 0;
  dnnl_memory_set_data_handle(a->prim, data);
  if (fresh && (*st = run_reorder(be, a)) != NEGCUT_OK)
    ngc_wstore_clear(keep); /* no half-made entry stays */
  return 1;
}

negcut_status ngc_cpu_conv_run(ngc_backend *be, const ngc_conv_key *key,
                               float *const args[NGC_CONV_MAX_ARGS], ngc_wstore *keep) {
  ngc_cpu *c = ngc_cpu_of(be);
  conv_cache *cc = cache_of(be);
  conv_entry *e;
  dnnl_exec_arg_t xa[NGC_CONV_MAX_ARGS + 1];
  int nx = 0;
  char *work = NULL;
  negcut_status st;

  if (!cc) return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cpu conv: out of memory");
  for (e = cc->head; e; e = e->next)
    if (!memcmp(&e->key, key, sizeof *key)) break;
  if (!e) {
    st = entry_build(be, key, &e);
    if (st) return st;
    e->next = cc->head;
    cc->head = e;
  }
  cc->last = e;
  cc->winograd_runs[e->key.op] += e->winograd;
  cc->bf16_runs += e->bf16;
  if (e->work_bytes) {
    work = ngc_cpu_work(be, e->work_bytes);
    if (!work) return NEGCUT_ERR_OUT_OF_MEMORY;
  }
  if (e->scratch) dnnl_memory_set_data_handle(e->scratch, work + e->scratch_off);
  for (int i = 0; i < NGC_CONV_MAX_ARGS; i++) {
    conv_arg *a = &e->a[i];
    if (!a->arg) continue;
    dnnl_memory_set_data_handle(a->user, args[i]);
    if (a->staged) {
      dnnl_memory_set_data_handle(a->prim, work + a->off);
      if (a->reorder_scratch)
        dnnl_memory_set_data_handle(a->reorder_scratch, work + e->scratch_off);
    }
    xa[nx++] = (dnnl_exec_arg_t){a->arg, a->staged ? a->prim : a->user};
  }
  if (e->scratch) xa[nx++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratch};

  const int kept = weights_kept(be, keep, e, args[1], &st);
  if (st) return st;
  for (int i = 0; i < NGC_CONV_MAX_ARGS; i++) {
    if (i == 1 && kept) continue;
    if (e->a[i].arg && e->a[i].staged && !e->a[i].output) {
      st = run_reorder(be, &e->a[i]);
      if (st) return st;
    }
  }
  st = exec(be, e->prim, nx, xa, "convolution");
  if (st) return st;
  for (int i = 0; i < NGC_CONV_MAX_ARGS; i++) {
    if (e->a[i].arg && e->a[i].staged && e->a[i].output) {
      st = run_reorder(be, &e->a[i]);
      if (st) return st;
    }
  }
  return ngc_cpu_check(be, dnnl_stream_wait(c->stream), "stream wait");
}
