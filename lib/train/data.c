/* The data pipeline: epochs, pairing, random draws and the prefetching
 * worker thread (data.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "negcut/image.h"
#include "train/data.h"

#define DATA_EPOCH_SHIFT 40
#define DATA_ITEM_BIT ((uint64_t)1 << 39)
#define DATA_ITEM_SHIFT 5
#define DATA_MAX_EPOCH ((int64_t)1 << 24)

enum { DRAW_B = 0, DRAW_AX = 1, DRAW_AY = 2, DRAW_AFLIP = 3, DRAW_BX = 4, DRAW_BY = 5, DRAW_BFLIP = 6 };

/* One decoded batch, or the error met making it. */
typedef struct data_slot {
  negcut_status st;
  char msg[NGC_ERR_MAX];
  float *a, *b;           /* (batch, C, h, w) each */
  size_t cap_a, cap_b;    /* floats allocated */
  int64_t ha, wa, hb, wb; /* sizes */
  int64_t epoch, index;
} data_slot;

struct ngc_data {
  negcut_ctx *ctx;
  ngc_data_cfg cfg; /* dir_a, dir_b point at our copies */
  char **pa, **pb;
  int64_t na, nb, size, batches;
  int64_t fixed; /* output side in the fixed-size modes, else 0 */
  int64_t last_hb, last_wb;

  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_ready;
  int mu_ok, cv_work_ok, cv_ready_ok, thread_ok;
  pthread_t thread;
  /* Under mu: */
  int stop;
  uint64_t gen;          /* bumped when the position is set: older work is void */
  int worker_failed;     /* the queue ends with an error of this gen */
  int64_t epoch, index;  /* the next batch ngc_data_next returns */
  int32_t finetune;
  int64_t w_epoch, w_index; /* the next batch the worker makes */
  data_slot *slots;
  int nslots, head, count;

  /* The worker's own: */
  int64_t *perm; /* (size) permutation of perm_epoch */
  int64_t perm_epoch;
};

static uint64_t item_block(int64_t epoch, int64_t p) {
  return ((uint64_t)epoch << DATA_EPOCH_SHIFT) | DATA_ITEM_BIT |
         ((uint64_t)p << DATA_ITEM_SHIFT);
}

static int64_t draw_below(const ngc_data *d, uint64_t base, int k, int64_t bound) {
  ngc_philox g = {d->cfg.seed, NGC_STREAM_DATA, base + 4u * (uint64_t)k};
  return (int64_t)ngc_philox_below(&g, (uint32_t)bound);
}

static int draw_flip(const ngc_data *d, uint64_t base, int k) {
  if (d->cfg.no_flip) return 0;
  return ngc_philox_uniform_one(d->cfg.seed, NGC_STREAM_DATA, (base + 4u * (uint64_t)k) * 4u) <
         0.5f;
}

/* ------------------------------------------------------------- worker */

/* Loads and preprocesses one image of item `base` into out (capacity *cap,
 * grown as needed). Errors go to the thread's slot (ctx NULL). */
static negcut_status make_image(ngc_data *d, const char *path, uint64_t base, int first_draw,
                                int32_t finetune, float **out, size_t *cap, int64_t off,
                                int64_t *oh, int64_t *ow) {
  negcut_image *img = NULL;
  negcut_status st = negcut_image_load(&img, NULL, path, NULL);
  if (st != NEGCUT_OK) {
    /* The loader's message names the file in most cases; make sure. */
    char why[NGC_ERR_MAX];
    snprintf(why, sizeof why, "%s", negcut_ctx_last_error(NULL));
    if (strstr(why, path))
      ngc_error(NULL, st, "%s", why);
    else
      ngc_error(NULL, st, "'%s': %s", path, why);
    return st;
  }
  int64_t load = finetune ? d->cfg.crop_size : d->cfg.load_size;
  ngc_data_geom g;
  int64_t w = img->width, h = img->height;
  if ((st = ngc_data_geometry(NULL, d->cfg.preprocess, load, d->cfg.crop_size, w, h, path, &g)) !=
      NEGCUT_OK)
    goto fail;
  ngc_data_draw dr;
  dr.crop_x = draw_below(d, base, first_draw, g.rw - g.cw + 1);
  dr.crop_y = draw_below(d, base, first_draw + 1, g.rh - g.ch + 1);
  dr.flip = draw_flip(d, base, first_draw + 2);
  size_t n = (size_t)(d->cfg.channels * g.oh * g.ow);
  if (off + n > *cap) { /* only the variable-size modes, where batch is 1 */
    float *p = realloc(*out, (off + n) * sizeof *p);
    if (!p) {
      st = ngc_error(NULL, NEGCUT_ERR_OUT_OF_MEMORY, "'%s': out of memory", path);
      goto fail;
    }
    *out = p;
    *cap = off + n;
  }
  /* The image buffer from the loader is packed RGB8 (stride = 3 w). */
  if (img->stride_bytes != (size_t)(3 * w)) {
    st = ngc_error(NULL, NEGCUT_ERR_INTERNAL, "'%s': unexpected row stride", path);
    goto fail;
  }
  if ((st = ngc_data_transform(NULL, img->pixels, w, h, d->cfg.channels, &g, &dr, *out + off)) !=
      NEGCUT_OK) {
    char why[NGC_ERR_MAX];
    snprintf(why, sizeof why, "%s", negcut_ctx_last_error(NULL));
    ngc_error(NULL, st, "'%s': %s", path, why);
    goto fail;
  }
  *oh = g.oh;
  *ow = g.ow;
fail:
  negcut_image_free(img);
  return st;
}

/* rank: d->cfg.rank, read under the lock (ngc_data_set_ranks may change it
 * while the worker runs). */
static negcut_status make_batch(ngc_data *d, int64_t epoch, int64_t index, int32_t rank,
                                int32_t finetune, data_slot *s) {
  negcut_status st;
  if (d->perm_epoch != epoch) {
    ngc_philox g = {d->cfg.seed, NGC_STREAM_DATA, (uint64_t)epoch << DATA_EPOCH_SHIFT};
    if ((st = ngc_philox_randperm(&g, d->perm, d->size)) != NEGCUT_OK)
      return ngc_error(NULL, st, "data: cannot shuffle %lld items", (long long)d->size);
    d->perm_epoch = epoch;
  }
  s->epoch = epoch;
  s->index = index;
  for (int64_t i = 0; i < d->cfg.batch; i++) {
    int64_t p = index + (int64_t)rank * d->cfg.batch + i;
    uint64_t base = item_block(epoch, p);
    const char *pa = d->pa[d->perm[p] % d->na];
    const char *pb = d->pb[draw_below(d, base, DRAW_B, d->nb)];
    int64_t ha, wa, hb, wb;
    int64_t per = d->fixed ? d->cfg.channels * d->fixed * d->fixed : 0;
    if ((st = make_image(d, pa, base, DRAW_AX, finetune, &s->a, &s->cap_a, i * per, &ha, &wa)) !=
        NEGCUT_OK)
      return st;
    if ((st = make_image(d, pb, base, DRAW_BX, finetune, &s->b, &s->cap_b, i * per, &hb, &wb)) !=
        NEGCUT_OK)
      return st;
    if (d->fixed && (ha != d->fixed || wa != d->fixed || hb != d->fixed || wb != d->fixed))
      return ngc_error(NULL, NEGCUT_ERR_INTERNAL, "data: '%s' gave an unexpected size", pa);
    s->ha = ha, s->wa = wa, s->hb = hb, s->wb = wb;
  }
  return NEGCUT_OK;
}

/* Items of a global batch (every rank's share). */
static int64_t global_batch(const ngc_data *d) {
  return (int64_t)d->cfg.batch * d->cfg.world;
}

static void advance(const ngc_data *d, int64_t *epoch, int64_t *index) {
  *index += global_batch(d);
  if (*index >= d->batches * global_batch(d)) {
    *index = 0;
    ++*epoch;
  }
}

static void *worker(void *arg) {
  ngc_data *d = arg;
  pthread_mutex_lock(&d->mu);
  while (!d->stop) {
    if (d->count == d->nslots || d->worker_failed || d->w_epoch >= DATA_MAX_EPOCH) {
      pthread_cond_wait(&d->cv_work, &d->mu);
      continue;
    }
    uint64_t gen = d->gen;
    int64_t epoch = d->w_epoch, index = d->w_index;
    int32_t finetune = d->finetune, rank = d->cfg.rank;
    /* The slot after the queue's end: the consumer never touches it, and
     * popping from the head does not move the end. */
    data_slot *s = &d->slots[(d->head + d->count) % d->nslots];
    pthread_mutex_unlock(&d->mu);

    negcut_status st = make_batch(d, epoch, index, rank, finetune, s);
    s->st = st;
    if (st != NEGCUT_OK) snprintf(s->msg, sizeof s->msg, "%s", negcut_ctx_last_error(NULL));

    pthread_mutex_lock(&d->mu);
    if (gen != d->gen) continue; /* repositioned meanwhile: drop it */
    d->count++;
    if (st != NEGCUT_OK)
      d->worker_failed = 1;
    else
      advance(d, &d->w_epoch, &d->w_index);
    pthread_cond_signal(&d->cv_ready);
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

/* Under mu: forget the queue and restart the worker at the consumer's
 * position. */
static void reposition(ngc_data *d) {
  d->gen++;
  d->head = d->count = 0;
  d->worker_failed = 0;
  d->w_epoch = d->epoch;
  d->w_index = d->index;
  pthread_cond_signal(&d->cv_work);
}

/* --------------------------------------------------------------- API */

void ngc_data_close(ngc_data *d) {
  if (!d) return;
  if (d->thread_ok) {
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_broadcast(&d->cv_work);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
  }
  if (d->cv_ready_ok) pthread_cond_destroy(&d->cv_ready);
  if (d->cv_work_ok) pthread_cond_destroy(&d->cv_work);
  if (d->mu_ok) pthread_mutex_destroy(&d->mu);
  if (d->slots)
    for (int i = 0; i < d->nslots; i++) {
      free(d->slots[i].a);
      free(d->slots[i].b);
    }
  free(d->slots);
  free(d->perm);
  ngc_data_free_list(d->pa, d->na);
  ngc_data_free_list(d->pb, d->nb);
  free((char *)d->cfg.dir_a);
  free((char *)d->cfg.dir_b);
  free(d);
}

static negcut_status check_cfg(negcut_ctx *ctx, const ngc_data_cfg *c) {
  const int32_t max_side = 1 << 16;
  if (!c->dir_a || !c->dir_b)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "data: dir_a and dir_b are required");
  if ((int)c->preprocess < NGC_PRE_RESIZE_AND_CROP || (int)c->preprocess > NGC_PRE_NONE)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "data: unknown preprocess mode %d",
                     (int)c->preprocess);
  if (c->batch < 1)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "data: batch %d < 1", (int)c->batch);
  if (c->channels != 1 && c->channels != 3)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "data: channels %d (1 or 3)",
                     (int)c->channels);
  if (c->world < 1 || c->world > 65536 || c->rank < 0 || c->rank >= c->world)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "data: rank %d of world %d",
                     (int)c->rank, (int)c->world);
  if (c->prefetch < 0 || c->prefetch > 64)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "data: prefetch %d (0..64)",
                     (int)c->prefetch);
  if (c->crop_size < 1 || c->crop_size > max_side || c->load_size < 1 || c->load_size > max_side)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "data: load_size %d and crop_size %d must be in 1..%d", (int)c->load_size,
                     (int)c->crop_size, (int)max_side);
  if ((c->preprocess == NGC_PRE_RESIZE_AND_CROP ||
       c->preprocess == NGC_PRE_SCALE_WIDTH_AND_CROP) && c->load_size < c->crop_size)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "data: load_size %d is smaller than crop_size %d", (int)c->load_size,
                     (int)c->crop_size);
  if ((c->preprocess == NGC_PRE_NONE || c->preprocess == NGC_PRE_SCALE_WIDTH) &&
      (int64_t)c->batch * c->world > 1)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "data: batch %d (x %d ranks) with preprocess %s: image sizes vary, so the "
                     "batch must be 1",
                     (int)c->batch, (int)c->world, c->preprocess == NGC_PRE_NONE ? "none" : "scale_width");
  return NEGCUT_OK;
}

negcut_status ngc_data_open(negcut_ctx *ctx, const ngc_data_cfg *cfg, ngc_data **out) {
  if (!cfg || !out) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "data: NULL argument");
  *out = NULL;
  negcut_status st = check_cfg(ctx, cfg);
  if (st != NEGCUT_OK) return st;
  ngc_data *d = calloc(1, sizeof *d);
  if (!d) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "data: out of memory");
  d->ctx = ctx;
  d->cfg = *cfg;
  d->cfg.dir_a = strdup(cfg->dir_a);
  d->cfg.dir_b = strdup(cfg->dir_b);
  if (d->cfg.prefetch == 0) d->cfg.prefetch = 2;
  if (!d->cfg.dir_a || !d->cfg.dir_b) goto oom;
  if ((st = ngc_data_list(ctx, cfg->dir_a, &d->pa, &d->na)) != NEGCUT_OK) goto fail;
  if ((st = ngc_data_list(ctx, cfg->dir_b, &d->pb, &d->nb)) != NEGCUT_OK) goto fail;
  d->size = d->na > d->nb ? d->na : d->nb;
  if (d->size > (int64_t)UINT32_MAX - 1) {
    st = ngc_error(ctx, NEGCUT_ERR_LIMIT, "data: %lld images, at most 2^32 - 2",
                   (long long)d->size);
    goto fail;
  }
  d->batches = d->size / global_batch(d);
  if (d->batches == 0) {
    st = ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                   "data: %lld images per epoch ('%s': %lld, '%s': %lld) make no batch of %d",
                   (long long)d->size, cfg->dir_a, (long long)d->na, cfg->dir_b,
                   (long long)d->nb, (int)global_batch(d));
    goto fail;
  }
  if (cfg->preprocess != NGC_PRE_NONE && cfg->preprocess != NGC_PRE_SCALE_WIDTH)
    d->fixed = ngc_round_to_4(cfg->crop_size);
  if (cfg->preprocess != NGC_PRE_NONE && cfg->preprocess != NGC_PRE_SCALE_WIDTH && d->fixed == 0) {
    st = ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                   "data: crop_size %d rounds to 0 (sides are rounded to multiples of 4)",
                   (int)cfg->crop_size);
    goto fail;
  }
  d->perm = malloc((size_t)d->size * sizeof *d->perm);
  d->slots = calloc((size_t)d->cfg.prefetch, sizeof *d->slots);
  if (!d->perm || !d->slots) goto oom;
  d->nslots = d->cfg.prefetch;
  if (d->fixed) { /* fixed sizes: allocate once */
    size_t n = (size_t)cfg->batch * (size_t)cfg->channels * (size_t)(d->fixed * d->fixed);
    for (int i = 0; i < d->nslots; i++) {
      d->slots[i].a = malloc(n * sizeof(float));
      d->slots[i].b = malloc(n * sizeof(float));
      if (!d->slots[i].a || !d->slots[i].b) goto oom;
      d->slots[i].cap_a = d->slots[i].cap_b = n;
    }
  }
  d->perm_epoch = 0;
  d->epoch = d->w_epoch = 1;
  if (pthread_mutex_init(&d->mu, NULL) != 0) goto thr;
  d->mu_ok = 1;
  if (pthread_cond_init(&d->cv_work, NULL) != 0) goto thr;
  d->cv_work_ok = 1;
  if (pthread_cond_init(&d->cv_ready, NULL) != 0) goto thr;
  d->cv_ready_ok = 1;
  if (pthread_create(&d->thread, NULL, worker, d) != 0) goto thr;
  d->thread_ok = 1;
  *out = d;
  return NEGCUT_OK;
thr:
  st = ngc_error(ctx, NEGCUT_ERR_INTERNAL, "data: cannot start the decoding thread");
  goto fail;
oom:
  st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "data: out of memory");
fail:
  ngc_data_close(d);
  return st;
}

int64_t ngc_data_size(const ngc_data *d) { return d ? d->size : 0; }
int64_t ngc_data_batches_per_epoch(const ngc_data *d) { return d ? d->batches : 0; }
int64_t ngc_data_fixed_size(const ngc_data *d) { return d ? d->fixed : 0; }

int64_t ngc_data_count(const ngc_data *d, int domain_b) {
  return !d ? 0 : domain_b ? d->nb : d->na;
}

const char *ngc_data_path(const ngc_data *d, int domain_b, int64_t i) {
  if (!d || i < 0 || i >= ngc_data_count(d, domain_b)) return NULL;
  return domain_b ? d->pb[i] : d->pa[i];
}

negcut_status ngc_data_next(ngc_data *d, float *a, float *b, int64_t cap_floats, int64_t *h,
                            int64_t *w, int64_t *epoch) {
  if (!d || !a || !b) return ngc_error(d ? d->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                                       "data: NULL argument");
  pthread_mutex_lock(&d->mu);
  if (d->epoch >= DATA_MAX_EPOCH) {
    pthread_mutex_unlock(&d->mu);
    return ngc_error(d->ctx, NEGCUT_ERR_LIMIT, "data: epoch %lld reached", (long long)d->epoch);
  }
  while (d->count == 0) pthread_cond_wait(&d->cv_ready, &d->mu);
  data_slot *s = &d->slots[d->head];
  negcut_status st = s->st;
  if (st != NEGCUT_OK) {
    st = ngc_error(d->ctx, st, "%s", s->msg);
    goto out;
  }
  int64_t n = d->cfg.batch * d->cfg.channels;
  if (n * s->ha * s->wa > cap_floats || n * s->hb * s->wb > cap_floats) {
    st = ngc_error(d->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                   "data: batch needs %lld floats per buffer, cap_floats is %lld",
                   (long long)(n * (s->ha * s->wa > s->hb * s->wb ? s->ha * s->wa : s->hb * s->wb)),
                   (long long)cap_floats);
    goto out;
  }
  memcpy(a, s->a, (size_t)(n * s->ha * s->wa) * sizeof *a);
  memcpy(b, s->b, (size_t)(n * s->hb * s->wb) * sizeof *b);
  if (h) *h = s->ha;
  if (w) *w = s->wa;
  if (epoch) *epoch = s->epoch;
  d->last_hb = s->hb;
  d->last_wb = s->wb;
  d->head = (d->head + 1) % d->nslots;
  d->count--;
  advance(d, &d->epoch, &d->index);
  pthread_cond_signal(&d->cv_work);
out:
  pthread_mutex_unlock(&d->mu);
  return st;
}

void ngc_data_b_size(const ngc_data *d, int64_t *h, int64_t *w) {
  if (h) *h = d ? d->last_hb : 0;
  if (w) *w = d ? d->last_wb : 0;
}

void ngc_data_set_finetune(ngc_data *d, int on) {
  if (!d) return;
  pthread_mutex_lock(&d->mu);
  if (d->finetune != (on != 0)) {
    d->finetune = on != 0;
    reposition(d);
  }
  pthread_mutex_unlock(&d->mu);
}

void ngc_data_get_state(const ngc_data *d, ngc_data_state *s) {
  if (!d || !s) return;
  ngc_data *m = (ngc_data *)d; /* the lock only */
  pthread_mutex_lock(&m->mu);
  s->epoch = d->epoch;
  s->index = d->index;
  s->counter = item_block(d->epoch, d->index);
  s->finetune = d->finetune;
  pthread_mutex_unlock(&m->mu);
}

negcut_status ngc_data_check_state(const ngc_data *d, const ngc_data_state *s) {
  if (!d || !s) return ngc_error(d ? d->ctx : NULL, NEGCUT_ERR_INVALID_ARGUMENT,
                                 "data: NULL argument");
  if (s->epoch < 1 || s->epoch >= DATA_MAX_EPOCH || s->index < 0 ||
      s->index >= d->batches * global_batch(d) || s->index % global_batch(d) != 0)
    return ngc_error(d->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "data: state epoch %lld index %lld is outside this data set (%lld batches "
                     "of %d per epoch)",
                     (long long)s->epoch, (long long)s->index, (long long)d->batches,
                     (int)global_batch(d));
  if (s->counter != item_block(s->epoch, s->index))
    return ngc_error(d->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "data: state counter %llu does not match epoch %lld index %lld",
                     (unsigned long long)s->counter, (long long)s->epoch, (long long)s->index);
  return NEGCUT_OK;
}

negcut_status ngc_data_set_ranks(ngc_data *d, int32_t rank, int32_t world) {
  if (!d) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "data: NULL argument");
  ngc_data_cfg c = d->cfg;
  c.rank = rank;
  c.world = world;
  negcut_status st = check_cfg(d->ctx, &c);
  if (st) return st;
  const int64_t batches = d->size / ((int64_t)c.batch * world);
  if (batches == 0)
    return ngc_error(d->ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "data: %lld images per epoch make no batch of %lld (%d ranks of %d)",
                     (long long)d->size, (long long)c.batch * world, (int)world, (int)c.batch);
  pthread_mutex_lock(&d->mu);
  if (d->epoch != 1 || d->index != 0) {
    pthread_mutex_unlock(&d->mu);
    return ngc_error(d->ctx, NEGCUT_ERR_STATE, "data: ranks set after the first batch");
  }
  d->cfg.rank = rank;
  d->cfg.world = world;
  d->batches = batches;
  reposition(d);
  pthread_mutex_unlock(&d->mu);
  return NEGCUT_OK;
}

negcut_status ngc_data_set_state(ngc_data *d, const ngc_data_state *s) {
  negcut_status st = ngc_data_check_state(d, s);
  if (st) return st;
  pthread_mutex_lock(&d->mu);
  d->epoch = s->epoch;
  d->index = s->index;
  d->finetune = s->finetune != 0;
  reposition(d);
  pthread_mutex_unlock(&d->mu);
  return NEGCUT_OK;
}
