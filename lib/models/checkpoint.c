/* Saving and loading networks as safetensors with the reference's names. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

negcut_status ngc_net_save(negcut_ctx *ctx, const ngc_net *net, const char *path, int32_t n_meta,
                           const char *const *keys, const char *const *values) {
  ngc_st_writer *w = NULL;
  float **host = calloc((size_t)(net->n_params ? net->n_params : 1), sizeof *host);
  negcut_status st = host ? ngc_st_writer_create(ctx, &w)
                          : ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "save: out of memory");
  for (int32_t i = 0; i < net->n_params && st == NEGCUT_OK; i++) {
    const ngc_param *p = &net->params[i];
    size_t n = (size_t)ngc_numel(&p->value);
    host[i] = malloc((n ? n : 1) * sizeof(float));
    if (!host[i]) {
      st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "save: out of memory");
      break;
    }
    st = ngc_param_download(net, i, host[i], 0);
    if (st == NEGCUT_OK)
      st = ngc_st_writer_add(w, p->name, NGC_ST_F32, p->value.ndim, p->value.dim, host[i]);
  }
  for (int32_t i = 0; i < n_meta && st == NEGCUT_OK; i++)
    st = ngc_st_writer_set_metadata(w, keys[i], values[i]);
  if (st == NEGCUT_OK) st = ngc_st_write(ctx, w, path);
  ngc_st_writer_free(w);
  if (host)
    for (int32_t i = 0; i < net->n_params; i++) free(host[i]);
  free(host);
  return st;
}

static const ngc_st_entry *find_entry(const ngc_st_file *f, const char *name) {
  char prefixed[NGC_NAME_MAX + 8];
  const ngc_st_entry *e = ngc_st_find(f, name);
  if (e) return e;
  snprintf(prefixed, sizeof prefixed, "module.%s", name);
  return ngc_st_find(f, prefixed);
}

static const char *strip_module(const char *name) {
  return strncmp(name, "module.", 7) == 0 ? name + 7 : name;
}

negcut_status ngc_net_check_file(negcut_ctx *ctx, const ngc_net *net, const ngc_st_file *f,
                                 const char *label) {
  /* Every tensor in the file must belong to the net. */
  for (int64_t i = 0; i < ngc_st_count(f); i++) {
    const ngc_st_entry *e = ngc_st_entry_at(f, i);
    const char *bare = strip_module(e->name);
    if (ngc_net_find_param(net, bare) < 0)
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                       "%s: tensor '%s' is not part of this network (another architecture?)",
                       label, e->name);
    /* DataParallel's prefix on one copy and not on the other: which one is
     * meant cannot be told */
    if (bare != e->name && ngc_st_find(f, bare))
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: tensor '%s' is there twice, also as '%s'",
                       label, bare, e->name);
  }
  for (int32_t i = 0; i < net->n_params; i++) {
    const ngc_param *p = &net->params[i];
    const ngc_st_entry *e = find_entry(f, p->name);
    int same = e && e->ndim == p->value.ndim;
    for (int32_t d = 0; same && d < e->ndim; d++) same = e->shape[d] == p->value.dim[d];
    if (!e)
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: tensor '%s' is missing", label, p->name);
    if (e->dtype != NGC_ST_F32)
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: tensor '%s' is %s, expected F32", label,
                       e->name, ngc_st_dtype_name(e->dtype));
    if (!same) {
      char want[96];
      return ngc_error(ctx, NEGCUT_ERR_SHAPE, "%s: tensor '%s' has the wrong shape, expected %s",
                       label, e->name, ngc_shape_str(&p->value, want, sizeof want));
    }
    /* A NaN or infinite value (a diverged run's checkpoint) would make every
     * output NaN, which the image converters turn black: refused by name. */
    float v;
    const int64_t j = ngc_st_f32_first_bad(e, 0, &v);
    if (j >= 0)
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                       "%s: tensor '%s' holds %s at element %lld (a diverged training run?)",
                       label, e->name, isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf", (long long)j);
  }
  return NEGCUT_OK;
}

negcut_status ngc_net_load(negcut_ctx *ctx, ngc_net *net, const ngc_st_file *f, const char *label) {
  negcut_status st = ngc_net_check_file(ctx, net, f, label);
  return st ? st : ngc_net_read(ctx, net, f, label);
}

negcut_status ngc_net_read(negcut_ctx *ctx, ngc_net *net, const ngc_st_file *f, const char *label) {
  negcut_status st = NEGCUT_OK;
  float *buf = NULL;
  for (int32_t i = 0; i < net->n_params && st == NEGCUT_OK; i++) {
    const ngc_param *p = &net->params[i];
    const ngc_st_entry *e = find_entry(f, p->name);
    int64_t n = ngc_numel(&p->value);
    free(buf);
    buf = malloc((size_t)(n ? n : 1) * sizeof *buf);
    if (!buf) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "load: out of memory");
    memcpy(buf, e->data, e->nbytes); /* entries are not aligned */
    if (p->buffer) {
      /* The blur filters are fixed: compare with ours instead of loading. */
      float *mine = malloc((size_t)n * sizeof *mine);
      if (!mine) st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "load: out of memory");
      if (st == NEGCUT_OK) st = ngc_param_download(net, i, mine, 0);
      for (int64_t j = 0; st == NEGCUT_OK && j < n; j++)
        if (!(fabsf(mine[j] - buf[j]) <= 1e-6f))
          st = ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                         "%s: buffer '%s' does not hold the fixed blur filter "
                         "(element %lld is %g, expected %g)",
                         label, e->name, (long long)j, buf[j], mine[j]);
      free(mine);
    } else {
      st = ngc_param_upload(net, i, buf);
    }
  }
  free(buf);
  return st;
}

static int meta_int(const ngc_st_file *f, const char *key, int32_t *out) {
  const char *v = ngc_st_metadata(f, key);
  char *end;
  long x;
  if (!v) return 0;
  x = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || x < 0 || x > 1 << 20) return -1;
  *out = (int32_t)x;
  return 1;
}

/* cfg's numbers within what a generator can be (NGC_GEN_MAX_*): a file may
 * say anything, and a generator of 16384 channels or a million blocks would
 * be allocated before its weights were found missing. */
static negcut_status check_cfg(negcut_ctx *ctx, const char *label, const int64_t v[4]) {
  static const char *what[4] = {"input_nc", "output_nc", "ngf", "n_blocks"};
  static const int64_t lo[4] = {1, 1, 1, 0};
  static const int64_t hi[4] = {NGC_GEN_MAX_NC, NGC_GEN_MAX_NC, NGC_GEN_MAX_NGF,
                                NGC_GEN_MAX_BLOCKS};
  for (int i = 0; i < 4; i++) {
    if (v[i] < lo[i])
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: generator %s %lld is below %lld", label,
                       what[i], (long long)v[i], (long long)lo[i]);
    if (v[i] > hi[i])
      return ngc_error(ctx, NEGCUT_ERR_LIMIT, "%s: generator %s %lld is above the limit of %lld",
                       label, what[i], (long long)v[i], (long long)hi[i]);
  }
  return NEGCUT_OK;
}

negcut_status ngc_generator_cfg_of(negcut_ctx *ctx, const ngc_st_file *f, const char *label,
                                   ngc_generator_cfg *cfg) {
  static const char *keys[6] = {"input_nc", "output_nc", "ngf", "n_blocks", "no_antialias",
                                "no_antialias_up"};
  /* input_nc, output_nc, ngf, n_blocks, no_antialias, no_antialias_up */
  int64_t v[6] = {0, 0, 0, 0, 0, 0};
  int32_t x;
  int found = 0;
  negcut_status st;
  const char *net = ngc_st_metadata(f, "net");
  if (net && strcmp(net, "generator") != 0)
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s holds a %s, not a generator", label, net);
  for (int i = 0; i < 6; i++) {
    int r = meta_int(f, keys[i], &x);
    if (r < 0)
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: metadata '%s' is not a small integer",
                       label, keys[i]);
    if (r > 0) v[i] = x;
    found += r;
  }
  if (found != 0 && found != 6)
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: metadata describes only part of the generator",
                     label);
  if (found == 0) {
    /* No metadata: a converted reference checkpoint. Read the architecture
     * off the names and shapes. */
    const ngc_st_entry *first = find_entry(f, "model.1.weight");
    if (!first || first->ndim != 4)
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT,
                       "%s: no 'model.1.weight' (N, C, 7, 7): not a ResNet generator", label);
    v[2] = first->shape[0];
    v[0] = first->shape[1];
    v[4] = find_entry(f, "model.7.filt") == NULL;
    int32_t m = v[4] ? 10 : 12;
    char name[NGC_NAME_MAX];
    /* Past the limit the count stops: check_cfg refuses it. */
    for (v[3] = 0; v[3] <= NGC_GEN_MAX_BLOCKS; v[3]++) {
      snprintf(name, sizeof name, "model.%d.conv_block.1.weight", (int)(m + v[3]));
      if (!find_entry(f, name)) break;
    }
    m += (int32_t)v[3];
    snprintf(name, sizeof name, "model.%d.filt", (int)m);
    v[5] = find_entry(f, name) == NULL;
    m += v[5] ? 6 : 8; /* the two upsampling stages */
    snprintf(name, sizeof name, "model.%d.weight", (int)(m + 1));
    const ngc_st_entry *last = find_entry(f, name);
    if (!last || last->ndim != 4)
      return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: no final convolution '%s'", label, name);
    v[1] = last->shape[0];
  }
  if ((st = check_cfg(ctx, label, v)) != NEGCUT_OK) return st;
  cfg->input_nc = (int32_t)v[0];
  cfg->output_nc = (int32_t)v[1];
  cfg->ngf = (int32_t)v[2];
  cfg->n_blocks = (int32_t)v[3];
  cfg->no_antialias = v[4] != 0;
  cfg->no_antialias_up = v[5] != 0;
  return NEGCUT_OK;
}

void ngc_generator_cfg_meta(const ngc_generator_cfg *cfg, ngc_cfg_meta *meta) {
  static const char *keys[6] = {"input_nc", "output_nc", "ngf", "n_blocks", "no_antialias",
                                "no_antialias_up"};
  const int32_t vals[6] = {cfg->input_nc, cfg->output_nc, cfg->ngf, cfg->n_blocks,
                           cfg->no_antialias, cfg->no_antialias_up};
  meta->n = 0;
  meta->keys[meta->n] = "net";
  meta->values[meta->n++] = "generator";
  for (int i = 0; i < 6; i++) {
    snprintf(meta->text[i], sizeof meta->text[i], "%d", (int)vals[i]);
    meta->keys[meta->n] = keys[i];
    meta->values[meta->n++] = meta->text[i];
  }
  meta->keys[meta->n] = "format";
  meta->values[meta->n++] = "libnegcut";
}
