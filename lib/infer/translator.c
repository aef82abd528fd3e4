/* The translator: whole images of any size, tiled under a memory limit. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/pixel.h"
#include "infer.h"

#define NGC_DEFAULT_MEMORY ((uint64_t)2 << 30)
#define NGC_DEFAULT_OVERLAP 32
/* Tiles and overlaps beyond any image the size check lets through. */
#define NGC_MAX_TILE (1 << 20)
#define NGC_MIN_SIDE 8 /* reflect pads need >= 4 px at full and >= 2 at 1/4 size */
/* Models with at most this many bytes of weights keep them in the layouts
 * the backend's convolutions take (ngc_wstore), up to 4 times their size
 * (Winograd's transformed 3x3 weights are 6x6): reordering them took 0.11 of
 * the 1.5 ms a 64x64 image took at ngf 16 (2.8 MB of weights) on the CPU.
 * Larger ones reorder at every call: 2.2 of 120 ms at ngf 64 and 256x256,
 * where a second copy of its 45 MB would have cost a quarter of the peak
 * memory. */
#define NGC_KEEP_WEIGHTS_MAX ((size_t)8 << 20)

static const negcut_translator_options tr_defaults = NEGCUT_TRANSLATOR_OPTIONS_INIT;
/* Version 2 added tf32 and eager, 3 conv_algo, 4 exact_tiles. */
static const size_t tr_ends[] = {NGC_END_OF(negcut_translator_options, bf16),
                                 NGC_END_OF(negcut_translator_options, eager),
                                 NGC_END_OF(negcut_translator_options, conv_algo),
                                 NGC_END_OF(negcut_translator_options, exact_tiles)};
static const ngc_options_layout tr_layout = {"negcut_translator_options", 4, tr_ends};

negcut_status negcut_translator_options_init_v2(negcut_translator_options *opts,
                                                uint32_t version) {
  return ngc_options_fill(&tr_layout, opts, version, &tr_defaults);
}

negcut_status negcut_translator_options_init(negcut_translator_options *opts) {
  return negcut_translator_options_init_v2(opts, 3);
}

negcut_status negcut_translator_create(negcut_translator **out, negcut_ctx *ctx,
                                       const negcut_model *model,
                                       const negcut_translator_options *opts) {
  negcut_translator *tr;
  negcut_translator_options o = tr_defaults;
  if (!out || !ctx || !model)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_translator_create: NULL argument");
  *out = NULL;
  negcut_status st = opts ? ngc_options_read(ctx, &tr_layout, &o, opts, &tr_defaults) : 0;
  if (st) return st;
  if (o.conv_algo < NEGCUT_CONV_AUTO || o.conv_algo > NEGCUT_CONV_WINOGRAD)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_translator_create: conv_algo %d is not a NEGCUT_CONV_* value",
                     (int)o.conv_algo);
  if (o.tile_px < 0 || o.overlap_px < 0 || (o.tile_px && o.tile_px < 16) ||
      o.tile_px > NGC_MAX_TILE || o.overlap_px > NGC_MAX_TILE)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_translator_create: tile_px must be 0 or in [16, %d], overlap_px in "
                     "[0, %d]", NGC_MAX_TILE, NGC_MAX_TILE);
  if (ctx->kind != model->ctx->kind || (!ctx->be->host_memory && ctx->device != model->ctx->device))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_translator_create: the model lives on backend %s, this context uses %s",
                     negcut_backend_name(model->ctx->kind), negcut_backend_name(ctx->kind));
  tr = calloc(1, sizeof *tr);
  if (!tr) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "translator: out of memory");
  tr->ctx = ctx;
  tr->model = model;
  tr->opts = o;
  if (!tr->opts.max_memory_bytes) tr->opts.max_memory_bytes = NGC_DEFAULT_MEMORY;
  /* exact tiles want the context a core's values depend on: the residual
   * blocks' convolutions reach 8 px each at full size, the rest about 30 */
  if (!tr->opts.overlap_px)
    tr->opts.overlap_px = o.exact_tiles ? 32 + 8 * model->cfg.n_blocks : NGC_DEFAULT_OVERLAP;
  tr->opts.overlap_px = (tr->opts.overlap_px + 3) & ~3;
  ngc_tape_init(&tr->tape, ctx);
  tr->tape.bf16 = tr->opts.bf16 != 0;
  tr->tape.tf32 = tr->opts.tf32 != 0;
  tr->tape.winograd =
      tr->opts.conv_algo == NEGCUT_CONV_DIRECT ? 0 : NGC_WINOGRAD_FWD | NGC_WINOGRAD_ROOMY;
  const size_t w_bytes = (size_t)ngc_numel(&model->net.slab) * sizeof(float);
  if (w_bytes <= NGC_KEEP_WEIGHTS_MAX) {
    tr->w_store.cap = 4 * w_bytes;
    tr->tape.w_store = &tr->w_store;
    tr->tape.w_store_net = &model->net;
  }
  if (tr->tape.bf16 && ctx->be->ops.to_bf16) {
    /* The model never changes: its weights are rounded to bf16 once here
     * instead of at every convolution. */
    const ngc_tensor *slab = &model->net.slab;
    tr->w_bf16 = ngc_backend_alloc(ctx->be, (size_t)ngc_numel(slab) * sizeof(uint16_t));
    if (!tr->w_bf16) st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "translator: out of device memory");
    if (!st) st = ngc_to_bf16(ctx, slab, tr->w_bf16);
    if (st) {
      negcut_translator_free(tr);
      return st;
    }
    tr->tape.w_bf16 = tr->w_bf16;
    tr->tape.w_bf16_net = &model->net;
  }
  *out = tr;
  return NEGCUT_OK;
}

void negcut_translator_free(negcut_translator *tr) {
  if (!tr) return;
  ngc_graph_cache_free(&tr->graphs, tr->ctx->be);
  ngc_tape_free(&tr->tape);
  if (tr->w_bf16) ngc_backend_free(tr->ctx->be, tr->w_bf16);
  ngc_wstore_clear(&tr->w_store);
  ngc_xfer_buf_release(tr->ctx->be, &tr->in_host);
  ngc_xfer_buf_release(tr->ctx->be, &tr->out_host);
  free(tr);
}

static int64_t round4(int64_t v) {
  v = (v + 3) & ~(int64_t)3;
  return v < NGC_MIN_SIDE ? NGC_MIN_SIDE : v;
}

/* Working bytes of one generator run on (n, c, h, w): three rotating
 * activation buffers, input, output, as much again for the backend's own
 * scratch (oneDNN's blocked copies), where Winograd convolutions may run
 * their scratchpad: up to about four times the largest activation (67 MB
 * for the 128 -> 256 convolution at 128x128 of a 256x256 image, whose
 * output is 16.8 MB), at most the backend's bound; the kept weights'
 * bound (w_store); for a tile (tile 1) with exact tiles, a host copy of an
 * activation. */
uint64_t ngc_run_bytes(const negcut_translator *tr, int64_t n, int64_t h, int64_t w, int tile) {
  const negcut_model *m = tr->model;
  int64_t in[4] = {n, m->cfg.input_nc, h, w};
  uint64_t peak = (uint64_t)ngc_seq_peak_numel(&m->net, in) * sizeof(float);
  uint64_t io = (uint64_t)(n * (m->cfg.input_nc + m->cfg.output_nc) * h * w) * sizeof(float);
  uint64_t wino = tr->tape.winograd ? 4 * peak : 0; /* bf16 too (cpu_conv_cache.c) */
  uint64_t wino_max = tr->ctx->be->winograd_scratch_max;
  /* a tile with exact tiles: a norm's input copied to the host to be measured */
  const uint64_t measured = tile && tr->opts.exact_tiles ? peak : 0;
  return 5 * peak + io + (wino < wino_max ? wino : wino_max) + tr->w_store.cap + measured;
}

/* The unrecorded forward, as ngc_graph_record's callback. */
typedef struct forward_args {
  negcut_translator *tr;
  const ngc_tensor *x;
  ngc_tensor *y;
} forward_args;

static negcut_status forward(const void *arg) {
  const forward_args *a = arg;
  return ngc_seq_forward((ngc_net *)&a->tr->model->net, &a->tr->tape, a->x, -1, NULL, a->y);
}

/* The generator x -> y. Where the backend records graphs (CUDA), the first
 * run of an input shape is unrecorded (it sizes the tape and makes the
 * convolution plans), the next one that finds the tape unchanged is
 * recorded and launched (the second, unless the tape arena merged its
 * blocks in between), and later ones launch the recording: one launch
 * instead of a few hundred. A recording that fails, or that would not
 * replay on the same memory, turns graphs off for this translator (the
 * reason in graphs.why) and the run is unrecorded. */
static negcut_status run_generator(negcut_translator *tr, const ngc_tensor *x, ngc_tensor *y) {
  ngc_backend *be = tr->ctx->be;
  const int64_t shape[4] = {x->dim[0], x->dim[2], x->dim[3], 0};
  forward_args args = {tr, x, y};
  ngc_graph_key key, after;
  void *g = NULL;
  negcut_status st;
  ngc_graph_key_of(&tr->tape, shape, &key);
  ngc_graph_plan plan = tr->opts.eager ? NGC_GRAPH_RUN : ngc_graph_lookup(&tr->graphs, be, &key, &g);
  if (plan == NGC_GRAPH_RUN) {
    st = forward(&args);
    ngc_graph_key_of(&tr->tape, shape, &after);
    if (!st && !tr->opts.eager) ngc_graph_ran(&tr->graphs, be, &after);
    return st;
  }
  if (plan == NGC_GRAPH_RECORD) {
    /* no feeds: a launch here has no replay pass to refresh host data */
    st = ngc_graph_record(&tr->graphs, be, &tr->tape, &key, 0, forward, &args, &g);
    if (st) { /* unrecorded from now on */
      ngc_graph_off(&tr->graphs, tr->ctx);
      return forward(&args);
    }
  }
  tr->graphs.n_replayed++;
  return be->ops.graph_launch(be, g);
}

/* Runs the generator on the region [y0, y0 + rh) x [x0, x0 + rw) of each of
 * the n images in src (n, ci, H, W), reflect-padded to a valid size, and
 * leaves (n, co, rh, rw) in tr->out_host (cropped back). With ctl (exact
 * tiles, n 1) its norms run as ctl says; a measuring pass leaves nothing. */
static negcut_status run_region(negcut_translator *tr, const float *src, int64_t n, int64_t H,
                                int64_t W, int64_t y0, int64_t x0, int64_t rh, int64_t rw,
                                ngc_norm_ctl *ctl) {
  const negcut_model *m = tr->model;
  negcut_ctx *ctx = tr->ctx;
  int64_t ci = m->cfg.input_nc, co = m->cfg.output_nc, ph = round4(rh), pw = round4(rw);
  ngc_tensor x, y;
  /* a pass that resumes where an earlier one stopped does not read its input */
  const int resumed = ctl && ctl->state && ctl->state->layer >= 0;
  if (!ctl) tr->exact_region[0] = tr->exact_region[1] = 0; /* not a run of exact tiles */
  negcut_status st =
      ngc_xfer_buf_grow(ctx->be, &tr->in_host, (size_t)(n * ci * ph * pw), "translate");
  if (!st) st = ngc_xfer_buf_grow(ctx->be, &tr->out_host, (size_t)(n * co * ph * pw), "translate");
  if (st) return st;
  /* Reflect-pad inside the region: the padding sits at the bottom/right. */
  for (int64_t p = 0; p < n * ci && !resumed; p++)
    for (int64_t i = 0; i < ph; i++) {
      const float *row = src + (p * H + y0 + ngc_reflect_index(i, rh)) * W + x0;
      float *dst = tr->in_host.data + (p * ph + i) * pw;
      memcpy(dst, row, (size_t)rw * sizeof *dst);
      for (int64_t j = rw; j < pw; j++) dst[j] = row[ngc_reflect_index(j, rw)];
    }
  st = ngc_tape_reset(&tr->tape);
  if (!st) st = ngc_tape_tensor(&tr->tape, &x, 4, (int64_t[4]){n, ci, ph, pw});
  if (!st) st = ngc_tape_tensor(&tr->tape, &y, 4, (int64_t[4]){n, co, ph, pw});
  if (!st && !resumed)
    st = ctx->be->ops.upload(ctx->be, x.data, tr->in_host.data, (size_t)ngc_numel(&x) * sizeof(float));
  if (!st)
    st = ctl ? ngc_seq_forward_ctl((ngc_net *)&m->net, &tr->tape, &x, &y, ctl)
             : run_generator(tr, &x, &y);
  if (!st && ctl && ctl->measure) return NEGCUT_OK;
  if (!st)
    st = ctx->be->ops.download(ctx->be, tr->out_host.data, y.data, (size_t)ngc_numel(&y) * sizeof(float));
  if (st) return st;
  /* Crop (n, co, ph, pw) to (n, co, rh, rw) in place: rows only move down. */
  for (int64_t p = 0; p < n * co; p++)
    for (int64_t i = 0; i < rh; i++)
      memmove(tr->out_host.data + (p * rh + i) * rw, tr->out_host.data + (p * ph + i) * pw,
              (size_t)rw * sizeof(float));
  return NEGCUT_OK;
}

/* Feathering weight of position i in a tile [0, len) whose low/high edges
 * are interior (blended) or on the image border (weight 1). */
static float ramp(int64_t i, int64_t len, int64_t overlap, int lo_inner, int hi_inner) {
  float w = 1.0f;
  if (lo_inner && i < overlap) w = fminf(w, (float)(i + 0.5) / (float)overlap);
  if (hi_inner && len - 1 - i < overlap) w = fminf(w, (float)(len - i - 0.5) / (float)overlap);
  return w;
}

/* The tile side (a multiple of 4): tile_px, or the largest whose run fits
 * the memory budget; 0 with an error when none does. */
static int64_t tile_side(negcut_translator *tr) {
  int64_t ov = tr->opts.overlap_px, t = tr->opts.tile_px;
  if (!t) { /* the largest tile whose run fits the budget */
    t = 16;
    while (ngc_run_bytes(tr, 1, round4(t + 16 + 2 * ov), round4(t + 16 + 2 * ov), 1) <= tr->opts.max_memory_bytes)
      t += 16;
  }
  t &= ~(int64_t)3;
  if (ngc_run_bytes(tr, 1, round4(t + 2 * ov), round4(t + 2 * ov), 1) > tr->opts.max_memory_bytes && !tr->opts.tile_px) {
    ngc_error(tr->ctx, NEGCUT_ERR_LIMIT, "translate: even a 16 px tile needs more than max_memory_bytes %llu",
              (unsigned long long)tr->opts.max_memory_bytes);
    return 0;
  }
  return t;
}

/* Tile i (row-major) of side t and overlap ov of an H x W image: its core
 * [ty, min(ty + t, H)) x [tx, ...), the cores partitioning the image, and
 * its region, the core widened by ov within the image. 0 past the last. */
typedef struct tile {
  int64_t ty, tx, y0, y1, x0, x1;
} tile;

static int tile_at(int64_t i, int64_t t, int64_t ov, int64_t H, int64_t W, tile *g) {
  const int64_t across = (W + t - 1) / t;
  if (i >= across * ((H + t - 1) / t)) return 0;
  g->ty = i / across * t;
  g->tx = i % across * t;
  g->y0 = g->ty - ov > 0 ? g->ty - ov : 0;
  g->x0 = g->tx - ov > 0 ? g->tx - ov : 0;
  g->y1 = g->ty + t + ov < H ? g->ty + t + ov : H;
  g->x1 = g->tx + t + ov < W ? g->tx + t + ov : W;
  return 1;
}

/* The floats of the norms' affine maps that exact tiles upload: C^2 + C
 * per norm. */
static int64_t maps_floats(const ngc_net *net) {
  const int32_t K = ngc_seq_norm_channels(net, NULL, 0);
  int64_t *chan = malloc(((size_t)K + 1) * sizeof *chan), floats = 0;
  if (!chan) return INT64_MAX / 8;
  ngc_seq_norm_channels(net, chan, K);
  for (int32_t k = 0; k < K; k++) floats += chan[k] * chan[k] + chan[k];
  free(chan);
  return floats;
}

/* The largest region (padded) of exact tiles of side t on an H x W image,
 * into rh, rw. */
static void exact_region(const negcut_translator *tr, int64_t H, int64_t W, int64_t t, int64_t *rh,
                         int64_t *rw) {
  const int64_t ov = tr->opts.overlap_px;
  *rh = round4(t + 2 * ov < H ? t + 2 * ov : H);
  *rw = round4(t + 2 * ov < W ? t + 2 * ov : W);
}

size_t ngc_translator_held_bytes(const negcut_translator *tr) {
  return ngc_tape_held_bytes(&tr->tape) + (tr->in_host.cap + tr->out_host.cap) * sizeof(float);
}

/* Exact tiles of side t on an H x W image: the floats each tile may keep of
 * where its last pass stopped (an ngc_norm_state: what the budget leaves
 * after a tile's run, the norms' maps and the states themselves, split
 * evenly) into *cap, and the estimated multiply-adds of all passes over all
 * tiles, each pass from the last stopping point kept; 0 when a tile's run
 * does not fit the budget, -1 when out of memory. */
double ngc_exact_plan(const negcut_translator *tr, int64_t H, int64_t W, int64_t t, size_t *cap) {
  const ngc_net *net = &tr->model->net;
  const int64_t ov = tr->opts.overlap_px, n_tiles = ((H + t - 1) / t) * ((W + t - 1) / t);
  int64_t rh, rw;
  exact_region(tr, H, W, t, &rh, &rw);
  const uint64_t budget = tr->opts.max_memory_bytes;
  const uint64_t used = ngc_run_bytes(tr, 1, rh, rw, 1) + (uint64_t)maps_floats(net) * sizeof(float) +
                        (uint64_t)n_tiles * sizeof(ngc_norm_state);
  const int32_t K = ngc_seq_norm_channels(net, NULL, 0);
  *cap = used < budget ? (size_t)((budget - used) / (uint64_t)n_tiles / sizeof(float)) : 0;
  ngc_norm_plan *plan = malloc(((size_t)K + 1) * sizeof *plan);
  if (!plan) return -1.0;
  const double total = ngc_seq_norm_plan(net, (int64_t[4]){1, tr->model->cfg.input_nc, rh, rw}, plan, K);
  double work = 0.0, from = 0.0, area = 0.0;
  for (int32_t k = 0; k < K; k++) { /* pass k runs from the last kept stopping point to norm k */
    work += plan[k].work_before - from;
    if ((size_t)plan[k].state_numel <= *cap)
      from = plan[k].work_before;
    else if (plan[k].block_numel && (size_t)plan[k].block_numel <= *cap && plan[k].block_work > from)
      from = plan[k].block_work; /* the block's input alone */
  }
  work += total - from; /* and the last pass to the end */
  free(plan);
  tile g;
  for (int64_t i = 0; tile_at(i, t, ov, H, W, &g); i++)
    area += (double)(round4(g.y1 - g.y0) * round4(g.x1 - g.x0));
  return used <= budget && total > 0.0 ? work * area / (double)(rh * rw) : 0.0;
}

/* Exact tiles' side when tile_px is 0 into *t: the multiple of 16 whose
 * passes are estimated (ngc_exact_plan) to take the least work of those
 * whose run fits. Smaller tiles repeat more overlap but may leave room to
 * keep where each pass stopped, so that a pass runs the layers between two
 * norms rather than all before its norm. */
static negcut_status exact_tile_side(negcut_translator *tr, int64_t H, int64_t W, int64_t *t) {
  const int64_t side = H > W ? H : W;
  double least = 0.0;
  size_t cap;
  *t = 0;
  for (int64_t s = 16; s < side + 16; s += 16) {
    const double work = ngc_exact_plan(tr, H, W, s, &cap);
    if (work < 0.0) return ngc_error(tr->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "translate: out of memory");
    if (work > 0.0 && (!*t || work <= least)) *t = s, least = work;
  }
  if (!*t)
    return ngc_error(tr->ctx, NEGCUT_ERR_LIMIT,
                     "translate: even a 16 px tile needs more than max_memory_bytes %llu",
                     (unsigned long long)tr->opts.max_memory_bytes);
  return NEGCUT_OK;
}

/* Gives back the translator's working memory (its tape's, its staging
 * buffers) unless its last run was a tile of exact tiles on regions of
 * reg_h x reg_w: what an earlier run of another shape left would sit
 * beside exact tiles' states, which the budget sizes from what is left
 * after one tile's run. */
static void release_for_exact(negcut_translator *tr, int64_t reg_h, int64_t reg_w) {
  const int same = tr->exact_region[0] == reg_h && tr->exact_region[1] == reg_w;
  tr->exact_region[0] = reg_h; /* run_region clears it when a run is not */
  tr->exact_region[1] = reg_w;
  if (same || !ngc_translator_held_bytes(tr)) return;
  ngc_graph_forget(&tr->graphs, tr->ctx->be); /* their memory goes */
  ngc_tape_release(&tr->tape);
  ngc_xfer_buf_release(tr->ctx->be, &tr->in_host);
  ngc_xfer_buf_release(tr->ctx->be, &tr->out_host);
}

/* The tiles' results blended (plain tiles) or their cores pasted (ctl:
 * exact tiles' last pass, tile k resuming from states[k] where not NULL). */
static negcut_status translate_tiled(negcut_translator *tr, const float *src, int64_t H, int64_t W,
                                     int64_t t, ngc_norm_ctl *ctl, ngc_norm_state *states,
                                     float *dst) {
  const negcut_model *m = tr->model;
  int64_t co = m->cfg.output_nc, ov = tr->opts.overlap_px;
  float *wsum = calloc((size_t)(H * W), sizeof *wsum);
  negcut_status st = NEGCUT_OK;
  if (!wsum) return ngc_error(tr->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "translate: out of memory");
  memset(dst, 0, (size_t)(co * H * W) * sizeof *dst);
  tile g;
  for (int64_t k = 0; !st && tile_at(k, t, ov, H, W, &g); k++) {
    const int64_t y0 = g.y0, x0 = g.x0, rh = g.y1 - g.y0, rw = g.x1 - g.x0;
    if (ctl) ctl->state = states ? &states[k] : NULL;
    st = run_region(tr, src, 1, H, W, y0, x0, rh, rw, ctl);
    for (int64_t i = 0; i < rh && !st; i++) {
      /* exact tiles (ctl): each pixel from the tile whose core holds it,
       * farthest from the region's edges, where the context is cut */
      const int64_t y = y0 + i;
      float wy = ctl ? (float)(y >= g.ty && y < g.ty + t) : ramp(i, rh, ov, y0 > 0, g.y1 < H);
      for (int64_t j = 0; j < rw; j++) {
        const int64_t xx = x0 + j;
        float wgt = wy * (ctl ? (float)(xx >= g.tx && xx < g.tx + t) : ramp(j, rw, ov, x0 > 0, g.x1 < W));
        wsum[(y0 + i) * W + x0 + j] += wgt;
        for (int64_t c = 0; c < co; c++)
          dst[(c * H + y0 + i) * W + x0 + j] += wgt * tr->out_host.data[(c * rh + i) * rw + j];
      }
    }
  }
  for (int64_t c = 0; c < co && !st; c++)
    for (int64_t p = 0; p < H * W; p++) dst[c * H * W + p] /= wsum[p];
  free(wsum);
  return st;
}

/* Exact tiles (docs/TRANSLATE.md, "Tiling and memory"): norm k's statistics
 * over the whole (reflect-padded) image, merged from the tiles' cores in a
 * pass that runs each tile up to norm k with norms 0..k-1 already frozen at
 * theirs; then a pass with every norm frozen that keeps each tile's core
 * (translate_tiled with ctl). The cores and the
 * regions start at multiples of 4 (t and ov are), so the downsampled grids
 * and the padding are the whole image's. */
static negcut_status translate_exact(negcut_translator *tr, const float *src, int64_t H, int64_t W,
                                     int64_t t, float *dst) {
  ngc_net *net = (ngc_net *)&tr->model->net;
  ngc_backend *be = tr->ctx->be;
  const int64_t ov = tr->opts.overlap_px, Hp = round4(H), Wp = round4(W);
  const int32_t K = ngc_seq_norm_channels(net, NULL, 0);
  int64_t *chan = calloc((size_t)K + 1, sizeof *chan), max_c = 1, floats = maps_floats(net);
  ngc_tensor *wb = calloc(2 * (size_t)K + 1, sizeof *wb);
  negcut_status st = NEGCUT_OK;
  int64_t reg_h, reg_w;
  memset(tr->exact_kept, 0, sizeof tr->exact_kept);
  tr->exact_resumed = 0;
  exact_region(tr, H, W, t, &reg_h, &reg_w);
  release_for_exact(tr, reg_h, reg_w);
  tr->exact_tile = t;
  if (!chan || !wb) st = ngc_error(tr->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "translate: out of memory");
  if (!st) ngc_seq_norm_channels(net, chan, K);
  if (!st && !K) { /* nothing to freeze: plain tiles are exact */
    free(chan);
    free(wb);
    return translate_tiled(tr, src, H, W, t, NULL, NULL, dst);
  }
  for (int32_t k = 0; k < K && !st; k++)
    if (chan[k] > max_c) max_c = chan[k];
  /* per channel: the cores' merged count, mean and M2; one core's; the
   * diagonal weights of one norm */
  double *mu = malloc((size_t)max_c * 4 * sizeof *mu), *m2 = mu + max_c, *cm = m2 + max_c,
         *cq = cm + max_c;
  /* the maps take C^2 floats per norm: 5 MB for ngf 64, more than any
   * budget for the widest models */
  if (!st && (uint64_t)floats * sizeof(float) > tr->opts.max_memory_bytes / 2)
    st = ngc_error(tr->ctx, NEGCUT_ERR_LIMIT,
                   "translate: exact tiles need %llu MB for this model's norms, over half of "
                   "max_memory_bytes", (unsigned long long)((uint64_t)floats * sizeof(float) >> 20));
  float *host_w = st ? NULL : calloc((size_t)(max_c * max_c + max_c), sizeof *host_w);
  float *dev = st ? NULL : ngc_backend_alloc(be, (size_t)floats * sizeof *dev);
  /* each tile's stopping point, where the budget leaves room for it */
  const int64_t n_tiles = ((H + t - 1) / t) * ((W + t - 1) / t);
  ngc_norm_state *states = st ? NULL : calloc((size_t)n_tiles, sizeof *states);
  if (!st && (!mu || !host_w || !dev || !states))
    st = ngc_error(tr->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "translate: out of memory for exact tiles");
  size_t cap = 0;
  ngc_exact_plan(tr, H, W, t, &cap);
  for (int64_t i = 0; i < n_tiles && states; i++) {
    states[i].layer = -1;
    states[i].cap = cap;
  }
  ngc_norm_ctl ctl = {.w = wb, .b = wb + K, .measure = 1, .mean = cm, .m2 = cq};
  for (int64_t k = 0, off = 0; k < K && !st; off += chan[k] * chan[k] + chan[k], k++) {
    const int64_t C = chan[k];
    double count = 0.0;
    ctl.n_frozen = (int32_t)k;
    tile g;
    for (int64_t i = 0; !st && tile_at(i, t, ov, H, W, &g); i++) {
      const int64_t rh = g.y1 - g.y0, rw = g.x1 - g.x0;
      /* the core, in the padded region; the last ones reach the padded edge */
      ctl.win[0] = g.ty - g.y0;
      ctl.win[1] = (g.ty + t < H ? g.ty + t : Hp) - g.y0;
      ctl.win[2] = g.tx - g.x0;
      ctl.win[3] = (g.tx + t < W ? g.tx + t : Wp) - g.x0;
      ctl.state = &states[i];
      st = run_region(tr, src, 1, H, W, g.y0, g.x0, rh, rw, &ctl);
      for (int64_t c = 0; c < C && !st; c++) { /* Chan et al.'s merge, in order */
        const double n = (double)ctl.count, tot = count + n, d = cm[c] - (count ? mu[c] : 0.0);
        mu[c] = count ? mu[c] + d * n / tot : cm[c];
        m2[c] = count ? m2[c] + cq[c] + d * d * count * n / tot : cq[c];
      }
      count += (double)ctl.count;
    }
    if (st) break;
    /* the norm's affine map, as inorm_fwd computes it: rstd in double, then
     * float. A channel that is one value over the whole image (M2 exactly 0)
     * normalises to exactly 0, as (x - mean) * rstd gives it; x * r - mean * r
     * would leave a rounding of mean * r, which the next norms, at rstd
     * 1/sqrt(eps), blow up into a pattern on a flat image. */
    memset(host_w, 0, (size_t)(C * C + C) * sizeof *host_w);
    for (int64_t c = 0; c < C; c++) {
      if (m2[c] == 0.0) continue; /* its map is y = 0 */
      const float r = (float)(1.0 / sqrt(m2[c] / count + 1e-5)), mean = (float)mu[c];
      host_w[c * C + c] = r;
      host_w[C * C + c] = -mean * r;
    }
    wb[k] = ngc_tensor_view(be, dev + off, 4, (int64_t[4]){C, C, 1, 1});
    wb[K + k] = ngc_tensor_view(be, dev + off + C * C, 1, (int64_t[1]){C});
    st = be->ops.upload(be, dev + off, host_w, (size_t)(C * C + C) * sizeof *host_w);
  }
  if (!st) {
    ctl.n_frozen = K;
    ctl.measure = 0;
    st = translate_tiled(tr, src, H, W, t, &ctl, states, dst);
  }
  memcpy(tr->exact_kept, ctl.kept, sizeof ctl.kept);
  tr->exact_resumed = ctl.resumed;
  for (int64_t i = 0; i < n_tiles && states; i++) ngc_norm_state_clear(&states[i]);
  free(states);
  if (dev) ngc_backend_free(be, dev);
  free(host_w);
  free(mu);
  free(wb);
  free(chan);
  return st;
}

/* src (n, ci, H, W) -> dst (n, co, H, W). */
static negcut_status translate_planar(negcut_translator *tr, const float *src, int64_t n, int64_t H,
                                      int64_t W, float *dst) {
  const negcut_model *m = tr->model;
  int64_t ci = m->cfg.input_nc, co = m->cfg.output_nc;
  negcut_status st = NEGCUT_OK;
  ngc_error_clear(tr->ctx);
  tr->exact_tile = 0;
  if (ngc_run_bytes(tr, n, round4(H), round4(W), 0) <= tr->opts.max_memory_bytes && !tr->opts.tile_px) {
    st = run_region(tr, src, n, H, W, 0, 0, H, W, NULL);
    if (!st) memcpy(dst, tr->out_host.data, (size_t)(n * co * H * W) * sizeof *dst);
    return st;
  }
  if (n > 1 && ngc_run_bytes(tr, 1, round4(H), round4(W), 0) <= tr->opts.max_memory_bytes &&
      !tr->opts.tile_px) {
    for (int64_t i = 0; i < n && !st; i++) {
      st = run_region(tr, src + i * ci * H * W, 1, H, W, 0, 0, H, W, NULL);
      if (!st) memcpy(dst + i * co * H * W, tr->out_host.data, (size_t)(co * H * W) * sizeof *dst);
    }
    return st;
  }
  int64_t t = 0;
  if (tr->opts.exact_tiles && !tr->opts.tile_px)
    st = exact_tile_side(tr, H, W, &t);
  else if (!(t = tile_side(tr)))
    st = NEGCUT_ERR_LIMIT; /* tile_side said why */
  if (st) return st;
  for (int64_t i = 0; i < n && !st; i++)
    st = tr->opts.exact_tiles
             ? translate_exact(tr, src + i * ci * H * W, H, W, t, dst + i * co * H * W)
             : translate_tiled(tr, src + i * ci * H * W, H, W, t, NULL, NULL, dst + i * co * H * W);
  return st;
}

static negcut_status check_size(negcut_translator *tr, uint32_t n, uint32_t h, uint32_t w) {
  if (!n || !h || !w)
    return ngc_error(tr->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "translate: empty image (%ux%u, %u)",
                     (unsigned)w, (unsigned)h, (unsigned)n);
  /* each factor < 2^32: the product of two fits, the third is divided out */
  if ((uint64_t)h * w > ((uint64_t)1 << 34) / n)
    return ngc_error(tr->ctx, NEGCUT_ERR_LIMIT, "translate: %u images of %ux%u is too large",
                     (unsigned)n, (unsigned)w, (unsigned)h);
  return NEGCUT_OK;
}

negcut_status negcut_translate_f32(negcut_translator *tr, const float *src, uint32_t n,
                                   uint32_t height, uint32_t width, float *dst) {
  if (!tr || !src || !dst)
    return ngc_error(tr ? tr->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_translate_f32: NULL argument");
  negcut_status st = check_size(tr, n, height, width);
  return st ? st : translate_planar(tr, src, n, height, width, dst);
}

negcut_status negcut_translate_rgb8_batch(negcut_translator *tr, uint32_t count,
                                          const uint8_t *const *src, uint32_t width,
                                          uint32_t height, size_t src_stride, uint8_t *const *dst,
                                          size_t dst_stride) {
  const negcut_model *m;
  int64_t ci, co, H = height, W = width, plane;
  float *in = NULL, *out = NULL;
  negcut_status st;
  if (!tr || !src || !dst)
    return ngc_error(tr ? tr->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_translate_rgb8: NULL argument");
  m = tr->model;
  ci = m->cfg.input_nc;
  co = m->cfg.output_nc;
  st = check_size(tr, count, height, width);
  if (st) return st;
  plane = H * W;
  /* the last row starts (height - 1) strides in: that offset must exist */
  if (src_stride > SIZE_MAX / height || dst_stride > SIZE_MAX / height)
    return ngc_error(tr->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_translate_rgb8: stride %zu/%zu times %u rows overflows", src_stride,
                     dst_stride, (unsigned)height);
  if (src_stride < (size_t)W * (size_t)ci || dst_stride < (size_t)W * (size_t)co)
    return ngc_error(tr->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_translate_rgb8: stride %zu/%zu shorter than a row (%lld px x %lld/%lld ch)",
                     src_stride, dst_stride, (long long)W, (long long)ci, (long long)co);
  for (uint32_t i = 0; i < count; i++)
    if (!src[i] || !dst[i])
      return ngc_error(tr->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_translate_rgb8: image %u is NULL",
                       (unsigned)i);
  in = malloc((size_t)(count * ci * plane) * sizeof *in);
  out = malloc((size_t)(count * co * plane) * sizeof *out);
  if (!in || !out) {
    free(in);
    free(out);
    return ngc_error(tr->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "translate: out of memory");
  }
  /* ToTensor then Normalize(0.5, 0.5), as the reference's data pipeline. */
  for (uint32_t i = 0; i < count; i++)
    for (int64_t y = 0; y < H; y++)
      for (int64_t x = 0; x < W; x++)
        for (int64_t c = 0; c < ci; c++)
          in[((int64_t)i * ci + c) * plane + y * W + x] =
              ngc_pixel_to_unit(src[i][(size_t)y * src_stride + (size_t)(x * ci + c)]);
  st = translate_planar(tr, in, count, H, W, out);
  /* The reference's tensor2im: clamp, (x + 1) / 2 * 255, truncate. */
  for (uint32_t i = 0; i < count && !st; i++)
    for (int64_t y = 0; y < H; y++)
      for (int64_t x = 0; x < W; x++)
        for (int64_t c = 0; c < co; c++)
          dst[i][(size_t)y * dst_stride + (size_t)(x * co + c)] =
              ngc_unit_to_pixel(out[((int64_t)i * co + c) * plane + y * W + x]);
  free(in);
  free(out);
  return st;
}

negcut_status negcut_translate_rgb8(negcut_translator *tr, const uint8_t *src, uint32_t width,
                                    uint32_t height, size_t src_stride, uint8_t *dst,
                                    size_t dst_stride) {
  return negcut_translate_rgb8_batch(tr, 1, &src, width, height, src_stride, &dst, dst_stride);
}
