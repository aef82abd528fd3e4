/* negcut/train.h: the public trainer over ngc_trainer and the data pipeline. */
#define NEGCUT_EXPERIMENTAL /* trainer.h */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pixel.h"
#include "io/safetensors.h"
#include "models/checkpoint.h"
#include "trainer.h"

/* Version 2 added eager, 3 tf32, 4 conv_algo. */
static const size_t trainer_ends[] = {NGC_END_OF(negcut_trainer_options, diversity_all_calls),
                                      NGC_END_OF(negcut_trainer_options, eager),
                                      NGC_END_OF(negcut_trainer_options, tf32),
                                      NGC_END_OF(negcut_trainer_options, conv_algo)};
static const ngc_options_layout trainer_layout = {"negcut_trainer_options", 4, trainer_ends};

negcut_status negcut_trainer_options_init_v2(negcut_trainer_options *o, uint32_t version,
                                             negcut_train_mode mode) {
  negcut_trainer_options d;
  ngc_train_cfg c;
  if (mode < NEGCUT_MODE_CUT || mode > NEGCUT_MODE_FASTNEGCUT)
    return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_options_init: mode %d", (int)mode);
  ngc_train_cfg_defaults(&c, (ngc_mode)mode);
  int fast = mode == NEGCUT_MODE_FASTCUT || mode == NEGCUT_MODE_FASTNEGCUT;
  memset(&d, 0, sizeof d);
  d.mode = mode;
  d.input_nc = c.g.input_nc;
  d.output_nc = c.g.output_nc;
  d.ngf = c.g.ngf;
  d.ndf = c.d.ndf;
  d.n_blocks = c.g.n_blocks;
  d.n_layers_d = c.d.n_layers;
  d.n_nce_layers = c.n_nce;
  memcpy(d.nce_layers, c.nce_layers, sizeof d.nce_layers);
  d.num_patches = c.num_patches;
  d.netf_nc = c.netf_nc;
  d.z_dim = c.z_dim;
  d.nce_t = c.nce_t;
  d.lambda_gan = c.lambda_gan;
  d.lambda_nce = c.lambda_nce;
  d.lambda_ms_neg = c.lambda_ms;
  d.nce_idt = c.nce_idt;
  d.flip_equivariance = c.flip_equivariance;
  d.lr = c.lr;
  d.beta1 = c.beta1;
  d.beta2 = c.beta2;
  d.n_epochs = fast ? 150 : 200;
  d.n_epochs_decay = fast ? 50 : 200;
  d.batch_size = 1;
  d.load_size = 286;
  d.crop_size = 256;
  d.preprocess = NEGCUT_PREPROCESS_RESIZE_AND_CROP;
  return ngc_options_fill(&trainer_layout, o, version, &d);
}

negcut_status negcut_trainer_options_init(negcut_trainer_options *o, negcut_train_mode mode) {
  return negcut_trainer_options_init_v2(o, 4, mode);
}

/* The integer options' ranges, each named when a value is outside (the
 * array's size fails to compile for a field that is not 4 bytes). */
#define NGC_RANGE(field, lo, hi)                                                         \
  {#field,                                                                               \
   offsetof(negcut_trainer_options, field) +                                             \
       0 * sizeof(char[sizeof(((negcut_trainer_options *)0)->field) == 4 ? 1 : -1]),     \
   lo, hi}
static const struct {
  const char *name;
  size_t offset;
  int32_t lo, hi;
} int_ranges[] = {
    NGC_RANGE(mode, NEGCUT_MODE_CUT, NEGCUT_MODE_FASTNEGCUT),
    NGC_RANGE(input_nc, 1, NGC_GEN_MAX_NC),
    NGC_RANGE(output_nc, 1, NGC_GEN_MAX_NC),
    NGC_RANGE(ngf, 1, NGC_GEN_MAX_NGF),
    NGC_RANGE(ndf, 1, NGC_DISC_MAX_NDF),
    NGC_RANGE(n_blocks, 0, NGC_GEN_MAX_BLOCKS),
    NGC_RANGE(n_layers_d, 1, NGC_DISC_MAX_LAYERS),
    NGC_RANGE(n_nce_layers, 1, 8),
    NGC_RANGE(num_patches, 1, INT32_MAX),
    NGC_RANGE(netf_nc, 1, NGC_HEAD_MAX_NC),
    NGC_RANGE(z_dim, 0, NGC_HEAD_MAX_NC),
    NGC_RANGE(batch_size, 1, 65536),
    /* a million epochs each: their sum and the iterations stay far from overflow */
    NGC_RANGE(n_epochs, 0, 1000000),
    NGC_RANGE(n_epochs_decay, 0, 1000000),
};
#undef NGC_RANGE

static negcut_status to_cfg(negcut_ctx *ctx, const negcut_trainer_options *o, ngc_train_cfg *c) {
  for (size_t i = 0; i < sizeof int_ranges / sizeof int_ranges[0]; i++) {
    int32_t v;
    memcpy(&v, (const char *)o + int_ranges[i].offset, sizeof v);
    if (v < int_ranges[i].lo || v > int_ranges[i].hi) {
      if (int_ranges[i].hi == INT32_MAX)
        return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "trainer: %s %d (at least %d)",
                         int_ranges[i].name, (int)v, (int)int_ranges[i].lo);
      return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "trainer: %s %d (%d to %d)",
                       int_ranges[i].name, (int)v, (int)int_ranges[i].lo, (int)int_ranges[i].hi);
    }
  }
  if (o->n_epochs + o->n_epochs_decay < 1)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "trainer: n_epochs and n_epochs_decay are both 0 (a schedule of no epochs)");
  const float weights[4] = {o->nce_t, o->lambda_gan, o->lambda_nce, o->lambda_ms_neg};
  static const char *const weight_names[4] = {"nce_t", "lambda_gan", "lambda_nce", "lambda_ms_neg"};
  for (int i = 0; i < 4; i++)
    if (!isfinite(weights[i]))
      return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "trainer: %s %g (a finite number)",
                       weight_names[i], (double)weights[i]);
  if (o->conv_algo < NEGCUT_CONV_AUTO || o->conv_algo > NEGCUT_CONV_WINOGRAD)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "trainer: conv_algo %d is not a NEGCUT_CONV_* value", (int)o->conv_algo);
  ngc_train_cfg_defaults(c, (ngc_mode)o->mode);
  c->g = (ngc_generator_cfg){o->input_nc, o->output_nc, o->ngf, o->n_blocks, o->no_antialias != 0,
                             o->no_antialias_up != 0};
  c->d = (ngc_discriminator_cfg){o->output_nc, o->ndf, o->n_layers_d, o->no_antialias != 0};
  c->n_nce = o->n_nce_layers;
  memcpy(c->nce_layers, o->nce_layers, sizeof c->nce_layers);
  c->num_patches = o->num_patches;
  c->netf_nc = o->netf_nc;
  c->z_dim = o->z_dim;
  c->nce_t = o->nce_t;
  c->lambda_gan = o->lambda_gan;
  c->lambda_nce = o->lambda_nce;
  c->lambda_ms = o->lambda_ms_neg;
  c->nce_idt = o->nce_idt != 0;
  c->flip_equivariance = o->flip_equivariance != 0;
  c->gan_mode = o->gan_vanilla ? NGC_GAN_VANILLA : NGC_GAN_LSGAN;
  c->lr = o->lr;
  c->beta1 = o->beta1;
  c->beta2 = o->beta2;
  c->batch = o->batch_size;
  c->detach_negatives = o->detach_negatives != 0;
  c->ema_from_f = o->ema_from_f != 0;
  c->diversity_all = o->diversity_all_calls != 0;
  /* The NCE losses run the generator's encoder on its translations (and,
   * with the identity loss, the generator on B): both take input_nc. */
  if (o->input_nc != o->output_nc)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "trainer: input_nc %d and output_nc %d differ; the NCE loss encodes the "
                     "generator's translations with its own encoder, which takes input_nc",
                     (int)o->input_nc, (int)o->output_nc);
  return NEGCUT_OK;
}

negcut_status negcut_trainer_create(negcut_trainer **out, negcut_ctx *ctx,
                                    const negcut_trainer_options *opts) {
  negcut_trainer *tr;
  ngc_train_cfg cfg;
  negcut_status st;
  char dir_a[4096], dir_b[4096];
  if (!out || !ctx || !opts)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_create: NULL argument");
  *out = NULL;
  /* the fields an older version lacks are 0, their defaults in every mode */
  negcut_trainer_options all, zeros;
  memset(&zeros, 0, sizeof zeros);
  st = ngc_options_read(ctx, &trainer_layout, &all, opts, &zeros);
  if (st) return st;
  opts = &all;
  st = to_cfg(ctx, opts, &cfg);
  if (st) return st;
  tr = calloc(1, sizeof *tr);
  if (!tr) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "trainer: out of memory");
  tr->ctx = ctx;
  tr->o = *opts;
  tr->o.dataroot = tr->o.dir_a = tr->o.dir_b = NULL; /* not kept: the caller's strings */
  tr->epoch = 1;
  st = ngc_trainer_init(&tr->t, ctx, &cfg);
  tr->philox = tr->t.rand;
  tr->t.eager = opts->eager != 0;
  tr->t.tape.tf32 = opts->tf32 != 0;
  /* AUTO: every pass. On CUDA, whose transform algorithms (cuDNN's Winograd
   * and FFT) have not been measured on a GPU yet, AUTO keeps them last in
   * the forward passes, as before; WINOGRAD asks for them there too. */
  const int gpu_auto = opts->conv_algo == NEGCUT_CONV_AUTO && ctx->be->kind == NEGCUT_BACKEND_CUDA;
  tr->t.tape.winograd = opts->conv_algo == NEGCUT_CONV_DIRECT ? 0
                        : gpu_auto                            ? NGC_WINOGRAD_BWD
                                                              : NGC_WINOGRAD_FWD | NGC_WINOGRAD_BWD;
  if (!st && (opts->dataroot || opts->dir_a || opts->dir_b)) {
    ngc_data_cfg dc = NGC_DATA_CFG_INIT;
    if (opts->dataroot) {
      /* "" would be the root folder's /trainA; a path too long would be cut */
      if (!*opts->dataroot ||
          snprintf(dir_a, sizeof dir_a, "%s/trainA", opts->dataroot) >= (int)sizeof dir_a)
        st = ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                       "trainer: dataroot is empty or longer than %zu bytes", sizeof dir_a - 8);
      snprintf(dir_b, sizeof dir_b, "%s/trainB", opts->dataroot);
      dc.dir_a = dir_a;
      dc.dir_b = dir_b;
    } else {
      dc.dir_a = opts->dir_a;
      dc.dir_b = opts->dir_b;
    }
    dc.batch = opts->batch_size;
    dc.load_size = opts->load_size;
    dc.crop_size = opts->crop_size;
    dc.preprocess = (ngc_preprocess)opts->preprocess;
    dc.no_flip = opts->no_flip;
    dc.channels = opts->input_nc == 1 ? 1 : 3;
    dc.seed = ctx->seed;
    dc.prefetch = opts->prefetch;
    if (st)
      ; /* the dataroot refused above */
    else if (!dc.dir_a || !dc.dir_b)
      st = ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "trainer: give dataroot, or both dir_a and dir_b");
    else if (opts->input_nc != 1 && opts->input_nc != 3)
      st = ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "trainer: image folders give 1 or 3 channels");
    else
      st = ngc_data_open(ctx, &dc, &tr->data);
    /* a fixed crop the networks cannot take fails now, not at the first step */
    const int64_t side = st ? 0 : ngc_data_fixed_size(tr->data);
    int64_t in[4] = {1, opts->input_nc, side, side}, y[4];
    if (side &&
        (ngc_seq_shape(ctx, &tr->t.G, in, -1, y) || ngc_seq_shape(ctx, &tr->t.D, y, -1, y))) {
      char why[256];
      snprintf(why, sizeof why, "%s", negcut_ctx_last_error(ctx));
      st = ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "trainer: crop_size %d (%lldx%lld after rounding to a multiple of 4) is too "
                     "small for these networks (%s)",
                     (int)opts->crop_size, (long long)side, (long long)side, why);
    }
  }
  if (st) {
    negcut_trainer_free(tr);
    return st;
  }
  *out = tr;
  return NEGCUT_OK;
}

/* negcut_trainer_set_data_parallel and _v2; fn names the one called. */
static negcut_status set_data_parallel(const char *fn, negcut_trainer *t, int32_t rank,
                                       int32_t world, negcut_allreduce_fn allreduce, void *user,
                                       uint32_t flags) {
  if (!t) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "%s: NULL", fn);
  if (flags & ~NEGCUT_ALLREDUCE_HOST)
    return ngc_error(t->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn,
                     (unsigned)flags);
  if (world < 1 || world > 65536 || rank < 0 || rank >= world || (world > 1 && !allreduce))
    return ngc_error(t->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: rank %d of world %d%s", fn,
                     (int)rank, (int)world,
                     world > 1 && !allreduce ? " without an allreduce function" : "");
  if (t->t.iteration > 0)
    return ngc_error(t->ctx, NEGCUT_ERR_STATE,
                     "%s: after %lld iterations; call it before the first step and before "
                     "loading a state",
                     fn, (long long)t->t.iteration);
  if (t->data) {
    negcut_status st = ngc_data_set_ranks(t->data, rank, world);
    if (st) return st;
  }
  t->t.cfg.rank = rank;
  t->t.cfg.world = world;
  t->t.cfg.allreduce = world > 1 ? allreduce : NULL;
  t->t.cfg.allreduce_user = user;
  t->t.cfg.allreduce_host = (flags & NEGCUT_ALLREDUCE_HOST) && !t->ctx->be->host_memory;
  t->t.eager = t->o.eager != 0 || world > 1;
  return NEGCUT_OK;
}

negcut_status negcut_trainer_set_data_parallel(negcut_trainer *t, int32_t rank, int32_t world,
                                               negcut_allreduce_fn allreduce, void *user) {
  return set_data_parallel("negcut_trainer_set_data_parallel", t, rank, world, allreduce, user, 0);
}

negcut_status negcut_trainer_set_data_parallel_v2(negcut_trainer *t, int32_t rank, int32_t world,
                                                  negcut_allreduce_fn allreduce, void *user,
                                                  uint32_t flags) {
  return set_data_parallel("negcut_trainer_set_data_parallel_v2", t, rank, world, allreduce, user,
                           flags);
}

void negcut_trainer_free(negcut_trainer *t) {
  if (!t) return;
  ngc_data_close(t->data);
  ngc_trainer_release(&t->t);
  free(t->a);
  free(t->b);
  free(t);
}

static double lr_now(const negcut_trainer *t) {
  return t->o.lr * ngc_lr_linear(t->epoch, 1, t->o.n_epochs, t->o.n_epochs_decay);
}

static negcut_status grow(negcut_trainer *t, int64_t floats) {
  if (floats <= t->cap) return NEGCUT_OK;
  float *na = realloc(t->a, (size_t)floats * sizeof *na);
  if (na) t->a = na;
  float *nb = na ? realloc(t->b, (size_t)floats * sizeof *nb) : NULL;
  if (nb) t->b = nb;
  if (!na || !nb) return ngc_error(t->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "trainer: out of memory");
  t->cap = floats;
  return NEGCUT_OK;
}

negcut_status negcut_trainer_step(negcut_trainer *t) {
  ngc_data_state ds;
  int64_t h, w, hb, wb, epoch, side;
  negcut_status st;
  if (!t) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_step: NULL");
  if (!t->data)
    return ngc_error(t->ctx, NEGCUT_ERR_STATE, "negcut_trainer_step: no data folders; use negcut_trainer_step_batch");
  /* Fine-tune phase (REFERENCE.md 6): no resize jitter after n_epochs. */
  ngc_data_get_state(t->data, &ds);
  if (ds.epoch > t->o.n_epochs && !ds.finetune) ngc_data_set_finetune(t->data, 1);
  side = ngc_data_fixed_size(t->data);
  if (!side) side = 4096; /* variable sizes: batch 1 up to 4096 x 4096 */
  st = grow(t, (int64_t)t->o.batch_size * t->o.input_nc * side * side);
  if (!st) st = ngc_data_next(t->data, t->a, t->b, t->cap, &h, &w, &epoch);
  if (st) return st;
  ngc_data_b_size(t->data, &hb, &wb);
  if (hb != h || wb != w)
    return ngc_error(t->ctx, NEGCUT_ERR_UNSUPPORTED,
                     "trainer: A is %lldx%lld but B %lldx%lld; preprocess 'none'/'scale_width' need "
                     "images of one size per pair",
                     (long long)w, (long long)h, (long long)wb, (long long)hb);
  t->epoch = epoch;
  return ngc_train_step(&t->t, t->a, t->b, h, w, lr_now(t));
}

negcut_status negcut_trainer_step_batch(negcut_trainer *t, const float *real_a, const float *real_b,
                                        uint32_t height, uint32_t width) {
  if (!t || !real_a || !real_b || !height || !width)
    return ngc_error(t ? t->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_step_batch: bad argument");
  /* the generator downsamples twice and upsamples twice: other sizes come
   * back changed (the reference's data pipeline makes them multiples of 4) */
  if (height % 4 || width % 4 || height > 65536 || width > 65536)
    return ngc_error(t->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_trainer_step_batch: %ux%u; height and width must be multiples of 4, "
                     "at most 65536", (unsigned)width, (unsigned)height);
  /* A NaN, or pixels of 0..255, would make every parameter NaN or train on
   * nonsense, for good: refused. 1e-3 beyond is left to rounding. */
  const uint64_t n = (uint64_t)t->o.batch_size * (uint64_t)t->o.input_nc * height * width;
  for (int k = 0; k < 2; k++) {
    const float *x = k ? real_b : real_a;
    for (uint64_t i = 0; i < n; i++)
      if (!(fabsf(x[i]) <= 1.001f))
        return ngc_error(t->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                         "negcut_trainer_step_batch: %s[%" PRIu64 "] is %g; images are in [-1, 1]",
                         k ? "real_b" : "real_a", i, (double)x[i]);
  }
  return ngc_train_step(&t->t, real_a, real_b, height, width, lr_now(t));
}

/* Epochs in the schedule: n_epochs at the full rate, then n_epochs_decay. */
static int64_t schedule_epochs(const negcut_trainer *t) {
  return (int64_t)t->o.n_epochs + t->o.n_epochs_decay;
}

negcut_status negcut_trainer_set_epoch(negcut_trainer *t, int64_t epoch) {
  if (!t || epoch < 1)
    return ngc_error(t ? t->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_set_epoch: epoch must be >= 1");
  if (t->data)
    return ngc_error(t->ctx, NEGCUT_ERR_STATE, "negcut_trainer_set_epoch: the data folders decide the epoch");
  if (epoch > schedule_epochs(t))
    return ngc_error(t->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_trainer_set_epoch: epoch %lld is past the schedule's %lld (n_epochs "
                     "+ n_epochs_decay), where the linear policy's learning rate is not positive",
                     (long long)epoch, (long long)schedule_epochs(t));
  t->epoch = epoch;
  return NEGCUT_OK;
}

/* Trampolines from the internal source (user first) to the caller's (user
 * last, STYLE.md). */
static negcut_status user_ids(void *user, int32_t layer, int64_t hw, int64_t n, int64_t *out) {
  const negcut_random_source *r = user;
  return r->patch_ids(layer, hw, n, out, r->user);
}

static negcut_status user_noise(void *user, int32_t layer, int64_t n, float *out) {
  const negcut_random_source *r = user;
  return r->noise(layer, n, out, r->user);
}

static int user_flip(void *user) {
  const negcut_random_source *r = user;
  return r->flip(r->user) != 0;
}

negcut_status negcut_trainer_set_random_source(negcut_trainer *t, const negcut_random_source *src) {
  if (!t) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_set_random_source: NULL");
  if (!src) {
    t->t.rand = t->philox;
    return NEGCUT_OK;
  }
  if (src->version != NEGCUT_RANDOM_SOURCE_VERSION || !src->patch_ids || !src->noise || !src->flip)
    return ngc_error(t->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_trainer_set_random_source: version %u, or a callback is NULL",
                     (unsigned)src->version);
  t->random = *src;
  t->t.rand = (ngc_rand_source){user_ids, user_noise, user_flip, &t->random};
  return NEGCUT_OK;
}

static int64_t per_epoch(const negcut_trainer *t) {
  return t->data ? ngc_data_batches_per_epoch(t->data) : 0;
}

negcut_status negcut_trainer_progress(const negcut_trainer *t, negcut_train_progress *p) {
  if (!t || !p) return ngc_error(t ? t->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_progress: NULL");
  const ngc_train_losses *l = &t->t.losses;
  memset(p, 0, sizeof *p);
  p->iteration = t->t.iteration;
  p->iterations_per_epoch = per_epoch(t);
  p->total_iterations = p->iterations_per_epoch * schedule_epochs(t);
  p->epoch = t->data ? 1 + t->t.iteration / (p->iterations_per_epoch ? p->iterations_per_epoch : 1) : t->epoch;
  p->lr = t->o.lr * ngc_lr_linear(p->epoch, 1, t->o.n_epochs, t->o.n_epochs_decay);
  p->images_per_second = t->images_per_second;
  p->d_real = l->d_real;
  p->d_fake = l->d_fake;
  p->g_gan = l->g_gan;
  p->nce_x = l->nce_x;
  p->nce_y = l->nce_y;
  p->g_total = l->g;
  p->n_total = l->n;
  p->diversity = l->div;
  return NEGCUT_OK;
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

negcut_status negcut_trainer_run(negcut_trainer *t, int64_t iterations, negcut_progress_fn progress,
                                 void *user) {
  negcut_train_progress p;
  double t0 = seconds();
  int64_t done = 0, end;
  if (!t || iterations < 0) return ngc_error(t ? t->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_run: bad argument");
  if (!t->data) return ngc_error(t->ctx, NEGCUT_ERR_STATE, "negcut_trainer_run: no data folders");
  end = iterations ? t->t.iteration + iterations
                   : per_epoch(t) * schedule_epochs(t);
  while (t->t.iteration < end) {
    negcut_status st = negcut_trainer_step(t);
    if (st) return st;
    done++;
    t->images_per_second = (double)(done * t->o.batch_size) / (seconds() - t0);
    negcut_trainer_progress(t, &p);
    if (progress && progress(&p, user))
      return ngc_error(t->ctx, NEGCUT_ERR_CANCELLED, "training cancelled after iteration %lld",
                       (long long)t->t.iteration);
  }
  return NEGCUT_OK;
}

/* ------------------------------------------------------------ files */

static ngc_net *net_of(negcut_trainer *t, negcut_net_id id) {
  int neg = t->t.cfg.mode == NGC_MODE_NEGCUT || t->t.cfg.mode == NGC_MODE_FASTNEGCUT;
  switch (id) {
  case NEGCUT_NET_G: return &t->t.G;
  case NEGCUT_NET_D: return &t->t.D;
  case NEGCUT_NET_F: return &t->t.F;
  case NEGCUT_NET_N: return neg ? &t->t.N : NULL;
  case NEGCUT_NET_F_: return neg ? &t->t.F_ema : NULL;
  default: return NULL;
  }
}

negcut_status negcut_trainer_save_network(const negcut_trainer *t, negcut_net_id id, const char *path) {
  ngc_cfg_meta meta;
  const ngc_net *net;
  if (!t || !path) return ngc_error(t ? t->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_save_network: NULL");
  net = net_of((negcut_trainer *)t, id);
  if (!net) return ngc_error(t->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_save_network: no network %d in this mode", (int)id);
  if (id == NEGCUT_NET_G) {
    ngc_generator_cfg_meta(&t->t.cfg.g, &meta);
  } else {
    static const char *names[] = {"generator", "discriminator", "projector", "negative_generator", "projector"};
    meta.n = 2;
    meta.keys[0] = "net";
    meta.values[0] = names[id];
    meta.keys[1] = "format";
    meta.values[1] = "libnegcut";
  }
  return ngc_net_save(t->ctx, net, path, meta.n, meta.keys, meta.values);
}

/* The state file: every parameter as "<net>.<name>", Adam moments as
 * "adam.<net>.m.<name>" / ".v.", and the counters in the metadata. */
static const char *const net_tag[5] = {"G", "D", "F", "N", "F_"};

static ngc_adam *adam_of(negcut_trainer *t, int id) {
  ngc_adam *a[4] = {&t->t.opt_g, &t->t.opt_d, &t->t.opt_f, &t->t.opt_n};
  return id < 4 && a[id]->m ? a[id] : NULL;
}

/* Tensor k (0: the value, 1: Adam's m, 2: its v) of parameter i of network
 * id in a training state, and its name there (into name, cap bytes); NULL
 * when there is none (a buffer's moments, a network without Adam). Saving
 * and loading both walk the state through it, so the names agree. */
static ngc_tensor *state_tensor(negcut_trainer *t, int id, int32_t i, int k, char *name,
                                size_t cap) {
  ngc_param *p = &net_of(t, (negcut_net_id)id)->params[i];
  ngc_adam *a = adam_of(t, id);
  if (k == 0) {
    snprintf(name, cap, "%s.%s", net_tag[id], p->name);
    return &p->value;
  }
  if (!a || p->buffer) return NULL;
  snprintf(name, cap, "adam.%s.%s.%s", net_tag[id], k == 1 ? "m" : "v", p->name);
  return k == 1 ? &a->m[i] : &a->v[i];
}

/* A state's counters, in the metadata after "format" and "config". */
static const char *const state_keys[13] = {
    "iteration", "epoch",    "adam.G",     "adam.D",     "adam.F",       "adam.N",       "rng.patch",
    "rng.noise", "rng.flip", "data.epoch", "data.index", "data.counter", "data.finetune"};

/* A fingerprint of what must match between a saved state and a trainer. */
static void fingerprint(const negcut_trainer *t, char *buf, size_t cap) {
  const negcut_trainer_options *o = &t->o;
  int n = snprintf(buf, cap, "mode=%d in=%d out=%d ngf=%d ndf=%d blocks=%d nd=%d aa=%d,%d nce=%d patches=%d nc=%d z=%d batch=%d",
           (int)o->mode, (int)o->input_nc, (int)o->output_nc, (int)o->ngf, (int)o->ndf, (int)o->n_blocks,
           (int)o->n_layers_d, (int)o->no_antialias, (int)o->no_antialias_up, (int)o->n_nce_layers,
           (int)o->num_patches, (int)o->netf_nc, (int)o->z_dim, (int)o->batch_size);
  /* data parallelism changes the epochs and the data position's meaning */
  if (t->t.cfg.world > 1 && n > 0 && (size_t)n < cap)
    snprintf(buf + n, cap - (size_t)n, " world=%d", (int)t->t.cfg.world);
}

negcut_status negcut_trainer_save_state(const negcut_trainer *ct, const char *path) {
  negcut_trainer *t = (negcut_trainer *)ct;
  ngc_st_writer *w = NULL;
  float **bufs = NULL;
  int32_t nbuf = 0, cap = 0;
  char name[160], text[13][64], fp[256];
  negcut_status st;
  int nt = 0;
  if (!t || !path) return ngc_error(t ? t->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_save_state: NULL");
  st = ngc_st_writer_create(t->ctx, &w);
  for (int id = 0; id < 5 && !st; id++) {
    ngc_net *net = net_of(t, id);
    if (!net) continue;
    for (int32_t i = 0; i < net->n_params && !st; i++)
      for (int k = 0; k < 3 && !st; k++) {
        const ngc_tensor *src = state_tensor(t, id, i, k, name, sizeof name);
        if (!src) continue;
        if (nbuf == cap) {
          cap = cap ? 2 * cap : 64;
          float **nb = realloc(bufs, (size_t)cap * sizeof *nb);
          if (!nb) { st = ngc_error(t->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "save: out of memory"); break; }
          bufs = nb;
        }
        size_t n = (size_t)ngc_numel(src);
        bufs[nbuf] = malloc((n ? n : 1) * sizeof(float));
        if (!bufs[nbuf]) { st = ngc_error(t->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "save: out of memory"); break; }
        st = t->ctx->be->ops.download(t->ctx->be, bufs[nbuf], src->data, n * sizeof(float));
        if (!st) st = ngc_st_writer_add(w, name, NGC_ST_F32, src->ndim, src->dim, bufs[nbuf]);
        nbuf++;
      }
  }
  ngc_data_state ds = {0, 0, 0, 0};
  if (t->data) ngc_data_get_state(t->data, &ds);
  fingerprint(t, fp, sizeof fp);
  const uint64_t vals[13] = {(uint64_t)t->t.iteration, (uint64_t)t->epoch, (uint64_t)t->t.opt_g.step,
                             (uint64_t)t->t.opt_d.step, (uint64_t)t->t.opt_f.step, (uint64_t)t->t.opt_n.step,
                             t->t.rng_patch.counter, t->t.rng_noise.counter, t->t.rng_flip.counter,
                             (uint64_t)ds.epoch, (uint64_t)ds.index, ds.counter, (uint64_t)ds.finetune};
  if (!st) st = ngc_st_writer_set_metadata(w, "format", "libnegcut-state-1");
  if (!st) st = ngc_st_writer_set_metadata(w, "config", fp);
  for (int i = 0; i < 13 && !st; i++) {
    snprintf(text[nt], sizeof text[nt], "%" PRIu64, vals[i]);
    st = ngc_st_writer_set_metadata(w, state_keys[i], text[nt++]);
  }
  if (!st) st = ngc_st_write(t->ctx, w, path);
  ngc_st_writer_free(w);
  for (int32_t i = 0; i < nbuf; i++) free(bufs[i]);
  free(bufs);
  return st;
}

/* Counters of a state: decimal digits only (strtoull would take "-1" as
 * 2^64 - 1, and " 3" or "+3" too), from lo to hi. The bounds keep every
 * counter that the trainer goes on incrementing far from overflow (a
 * signed overflow is undefined behaviour), and the epoch and the data
 * position within what the trainer and the data pipeline accept. */
static negcut_status meta_u64(negcut_ctx *ctx, const ngc_st_file *f, const char *path, const char *key,
                              uint64_t lo, uint64_t hi, uint64_t *out) {
  const char *v = ngc_st_metadata(f, key);
  uint64_t x = 0;
  if (!v || !*v) return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: metadata '%s' is missing", path, key);
  for (const char *p = v; *p; p++) {
    unsigned digit = (unsigned)(*p - '0');
    if (*p < '0' || *p > '9' || x > (UINT64_MAX - digit) / 10)
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: metadata '%s' is not a number (\"%.40s\")",
                       path, key, v);
    x = x * 10 + digit;
  }
  if (x < lo || x > hi)
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: metadata '%s' %" PRIu64 " is outside %" PRIu64
                     "..%" PRIu64, path, key, x, lo, hi);
  *out = x;
  return NEGCUT_OK;
}

/* Tensor name of f, checked to fit dst (and with load, copied into it):
 * every value finite, and at least 0 where nonneg (Adam's second moments),
 * as a run that has not diverged leaves them. */
static negcut_status load_tensor(negcut_trainer *t, const ngc_st_file *f, const char *path,
                                 const char *name, ngc_tensor *dst, int nonneg, int load) {
  const ngc_st_entry *e = ngc_st_find(f, name);
  size_t n = (size_t)ngc_numel(dst);
  if (!e) return ngc_error(t->ctx, NEGCUT_ERR_BAD_FORMAT, "%s: tensor '%s' is missing", path, name);
  if (e->dtype != NGC_ST_F32 || e->nbytes != n * sizeof(float))
    return ngc_error(t->ctx, NEGCUT_ERR_BAD_FORMAT, "%s: tensor '%s' has the wrong dtype or size", path, name);
  if (!load) {
    float v;
    const int64_t i = ngc_st_f32_first_bad(e, nonneg, &v);
    if (i >= 0)
      return ngc_error(t->ctx, NEGCUT_ERR_BAD_FORMAT, "%s: tensor '%s' holds %g at %lld%s", path,
                       name, (double)v, (long long)i,
                       nonneg ? " (a second moment: finite, at least 0)" : "");
    return NEGCUT_OK;
  }
  float *buf = malloc(n ? n * sizeof *buf : 1);
  if (!buf) return ngc_error(t->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "load: out of memory");
  memcpy(buf, e->data, e->nbytes);
  negcut_status st = t->ctx->be->ops.upload(t->ctx->be, dst->data, buf, n * sizeof(float));
  free(buf);
  return st;
}

negcut_status negcut_trainer_load_state(negcut_trainer *t, const char *path) {
  ngc_st_file *f = NULL;
  char fp[256], name[160];
  uint64_t v[13] = {0};
  /* 2^53: no run gets near it, and a double still counts it exactly. The
   * random counters are unsigned and may wrap; the data position is
   * checked against the data set by ngc_data_set_state. */
  const uint64_t big = (uint64_t)1 << 53;
  static const uint64_t lo[13] = {0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const uint64_t hi[13] = {big, big, big, big, big, big, UINT64_MAX, UINT64_MAX, UINT64_MAX,
                           big, big, UINT64_MAX, 1};
  negcut_status st;
  if (!t || !path) return ngc_error(t ? t->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_load_state: NULL");
  st = ngc_st_open(t->ctx, path, &f);
  if (st) return st;
  fingerprint(t, fp, sizeof fp);
  const char *format = ngc_st_metadata(f, "format"), *config = ngc_st_metadata(f, "config");
  if (!format || strcmp(format, "libnegcut-state-1") != 0)
    st = ngc_error(t->ctx, NEGCUT_ERR_BAD_FORMAT, "%s is not a libnegcut training state", path);
  else if (!config || strcmp(config, fp) != 0)
    st = ngc_error(t->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                   "%s was saved by a trainer with other options (%s), this one has %s", path,
                   config ? config : "?", fp);
  for (int i = 0; i < 13 && !st; i++) st = meta_u64(t->ctx, f, path, state_keys[i], lo[i], hi[i], &v[i]);
  /* the epoch: at most the one after the schedule's last, where a run that
   * finished it stands (the schedule is not in the fingerprint) */
  if (!st && v[1] > (uint64_t)schedule_epochs(t) + 1)
    st = ngc_error(t->ctx, NEGCUT_ERR_BAD_FORMAT,
                   "%s: epoch %" PRIu64 " is past this trainer's schedule of %d + %d epochs (a "
                   "state of a longer schedule?)",
                   path, v[1], (int)t->o.n_epochs, (int)t->o.n_epochs_decay);
  const ngc_data_state ds = {(int64_t)v[9], (int64_t)v[10], v[11], (int32_t)v[12]};
  if (!st && t->data) st = ngc_data_check_state(t->data, &ds);
  /* Every tensor is checked (pass 0) before any is written (pass 1), so a
   * file that does not fit leaves the trainer as it was; only a failure to
   * allocate or upload while writing leaves it partly loaded. A tensor the
   * trainer has no place for is refused too (another program's file). */
  int64_t expected = 0;
  for (int load = 0; load < 2 && !st; load++) {
    for (int id = 0; id < 5 && !st; id++) {
      ngc_net *net = net_of(t, id);
      if (!net) continue;
      for (int32_t i = 0; i < net->n_params && !st; i++)
        for (int k = 0; k < 3 && !st; k++) {
          ngc_tensor *dst = state_tensor(t, id, i, k, name, sizeof name);
          if (dst) st = load_tensor(t, f, path, name, dst, k == 2, load);
          expected += dst && !load;
        }
    }
    if (!st && !load && ngc_st_count(f) != expected)
      st = ngc_error(t->ctx, NEGCUT_ERR_BAD_FORMAT,
                     "%s: %lld tensors, where this trainer's state has %lld", path,
                     (long long)ngc_st_count(f), (long long)expected);
  }
  if (!st) {
    t->t.iteration = (int64_t)v[0];
    t->epoch = (int64_t)v[1];
    t->t.opt_g.step = (int64_t)v[2];
    t->t.opt_d.step = (int64_t)v[3];
    t->t.opt_f.step = (int64_t)v[4];
    t->t.opt_n.step = (int64_t)v[5];
    t->t.rng_patch.counter = v[6];
    t->t.rng_noise.counter = v[7];
    t->t.rng_flip.counter = v[8];
    if (t->data) st = ngc_data_set_state(t->data, &ds);
  }
  ngc_st_close(f);
  return st;
}

/* ------------------------------------------------------------ visuals */

static void to_rgb8(const float *src, int64_t c, int64_t h, int64_t w, uint8_t *dst) {
  for (int64_t y = 0; y < h; y++)
    for (int64_t x = 0; x < w; x++)
      for (int64_t k = 0; k < c; k++) dst[(y * w + x) * c + k] = ngc_unit_to_pixel(src[(k * h + y) * w + x]);
}

negcut_status negcut_trainer_visuals(const negcut_trainer *t, uint32_t *width, uint32_t *height,
                                     uint8_t *real_a, uint8_t *fake_b, uint8_t *real_b, uint8_t *idt_b) {
  const ngc_tensor *r, *f;
  int64_t b, ci, co, h, w;
  negcut_status st = NEGCUT_OK;
  if (!t || !width || !height) return ngc_error(t ? t->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_trainer_visuals: NULL");
  r = &t->t.last_real;
  f = &t->t.last_fake;
  if (!r->data || !f->data) return ngc_error(t->ctx, NEGCUT_ERR_STATE, "negcut_trainer_visuals: no iteration yet");
  b = t->t.cfg.batch;
  ci = r->dim[1];
  co = f->dim[1];
  h = r->dim[2];
  w = r->dim[3];
  *width = (uint32_t)w;
  *height = (uint32_t)h;
  float *buf = malloc((size_t)(h * w * (ci > co ? ci : co)) * sizeof *buf);
  if (!buf) return ngc_error(t->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "visuals: out of memory");
  struct { const ngc_tensor *src; int64_t index, c; uint8_t *dst; } v[4] = {
      {r, 0, ci, real_a}, {f, 0, co, fake_b}, {r, b, ci, real_b}, {f, b, co, idt_b}};
  for (int i = 0; i < 4 && !st; i++) {
    if (!v[i].dst) continue;
    if (v[i].src == f && i == 3 && !t->t.cfg.nce_idt) {
      memset(v[i].dst, 0, (size_t)(h * w * co));
      continue;
    }
    size_t n = (size_t)(v[i].c * h * w);
    st = t->ctx->be->ops.download(t->ctx->be, buf, v[i].src->data + (size_t)v[i].index * n, n * sizeof(float));
    if (!st) to_rgb8(buf, v[i].c, h, w, v[i].dst);
  }
  free(buf);
  return st;
}
