/* negcut-train's loss history and its JSON-lines log, one object a line:
 *   {"iter":500,"epoch":3,"lr":0.0002,"D_real":0.25,...,"img_per_s":4.1,"time_s":121.5}
 * Each line holds the mean losses over the iterations since the previous
 * line. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "train_cli.h"

const char *const cli_loss_names[CLI_NLOSS] = {"D_real", "D_fake", "G_GAN", "NCE",
                                               "NCE_Y",  "G",      "N",     "div"};

uint32_t cli_active_losses(const negcut_trainer_options *o) {
  uint32_t m = (1u << CLI_D_REAL) | (1u << CLI_D_FAKE) | (1u << CLI_G_GAN) | (1u << CLI_NCE) | (1u << CLI_G);
  if (o->nce_idt) m |= 1u << CLI_NCE_Y;
  if (o->mode == NEGCUT_MODE_NEGCUT || o->mode == NEGCUT_MODE_FASTNEGCUT)
    m |= (1u << CLI_N) | (1u << CLI_DIV);
  return m;
}

int cli_history_push(cli_history *h, const cli_point *pt) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? 2 * h->cap : 256;
    cli_point *np = realloc(h->p, cap * sizeof *np);
    if (!np) return -1;
    h->p = np;
    h->cap = cap;
  }
  h->p[h->n++] = *pt;
  return 0;
}

void cli_history_free(cli_history *h) {
  free(h->p);
  h->p = NULL;
  h->n = h->cap = 0;
}

/* A JSON number, or null for NaN and infinities (which JSON lacks). */
static int num(char *buf, size_t cap, const char *key, double v, const char *fmt) {
  char val[64];
  if (isfinite(v)) snprintf(val, sizeof val, fmt, v);
  else snprintf(val, sizeof val, "null");
  return snprintf(buf, cap, ",\"%s\":%s", key, val);
}

void cli_point_json(const cli_point *pt, uint32_t active, char *buf, size_t cap) {
  size_t len = (size_t)snprintf(buf, cap, "{\"iter\":%lld,\"epoch\":%lld", (long long)pt->iter,
                                (long long)pt->epoch);
  if (len < cap) len += (size_t)num(buf + len, cap - len, "lr", pt->lr, "%.6g");
  for (int i = 0; i < CLI_NLOSS; i++)
    if (active >> i & 1 && len < cap) len += (size_t)num(buf + len, cap - len, cli_loss_names[i], pt->loss[i], "%.6g");
  if (len < cap) len += (size_t)num(buf + len, cap - len, "img_per_s", pt->images_per_second, "%.3g");
  if (len < cap) len += (size_t)num(buf + len, cap - len, "time_s", pt->elapsed_s, "%.1f");
  if (len < cap) snprintf(buf + len, cap - len, "}");
}

static double field(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int cli_log_reload(cli_history *h, const char *path, int64_t upto) {
  FILE *f = fopen(path, "r");
  char line[4096], *kept = NULL;
  size_t kept_len = 0, kept_cap = 0;
  int rc = 0;
  if (!f) return errno == ENOENT ? 0 : -1;
  while (fgets(line, sizeof line, f)) {
    cJSON *o = cJSON_Parse(line);
    cli_point pt;
    memset(&pt, 0, sizeof pt);
    /* Only whole, in-range counters convert to integers (a NaN or -1e300
     * would be undefined behaviour): a line without them is not ours. */
    const double it = field(o, "iter"), ep = field(o, "epoch");
    if (cJSON_IsObject(o) && it >= 0.0 && it <= (double)upto && it == floor(it) &&
        ep >= 0.0 && ep <= 9.0e15) {
      pt.iter = (int64_t)it;
      pt.epoch = (int64_t)ep;
      pt.lr = field(o, "lr");
      pt.images_per_second = field(o, "img_per_s");
      pt.elapsed_s = field(o, "time_s");
      for (int i = 0; i < CLI_NLOSS; i++) pt.loss[i] = field(o, cli_loss_names[i]);
      size_t len = strlen(line);
      if (kept_len + len + 1 > kept_cap) {
        size_t cap = 2 * (kept_len + len + 1) + 4096;
        char *nk = realloc(kept, cap);
        if (!nk) rc = -1;
        else kept = nk, kept_cap = cap;
      }
      if (!rc) {
        memcpy(kept + kept_len, line, len);
        kept_len += len;
        if (line[len - 1] != '\n') kept[kept_len++] = '\n';
        rc = cli_history_push(h, &pt);
      }
    }
    cJSON_Delete(o);
    if (rc) break;
  }
  fclose(f);
  if (!rc) rc = cli_write_atomic(path, kept ? kept : "", kept_len);
  free(kept);
  return rc;
}

int cli_mkdirs(const char *path) {
  char buf[4096];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

int cli_write_atomic(const char *path, const char *data, size_t len) {
  char tmp[4200];
  FILE *f;
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
  f = fopen(tmp, "wb");
  if (!f) return -1;
  int ok = fwrite(data, 1, len, f) == len;
  ok &= fflush(f) == 0;
  ok &= fsync(fileno(f)) == 0;
  ok &= fclose(f) == 0;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return -1;
  }
  return 0;
}
