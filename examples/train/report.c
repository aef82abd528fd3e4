/* negcut-train's report: web/index.html with the loss curves (web/losses.png,
 * drawn here into an RGB8 buffer with a 5x7 bitmap font) and, for every
 * checkpoint, real_A / fake_B / real_B / idt_B from negcut_trainer_visuals. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "train_cli.h"

/* ------------------------------------------------------------ drawing */

typedef struct canvas {
  uint8_t *px; /* (height, width, 3) */
  int w, h;
} canvas;

static void dot(canvas *c, int x, int y, const uint8_t rgb[3]) {
  if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
  memcpy(&c->px[((size_t)y * c->w + x) * 3], rgb, 3);
}

static void fill(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++) dot(c, x, y, rgb);
}

/* A line of thickness 2 (Bresenham, with the pixel below/right as well). */
static void line(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
  int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (;;) {
    dot(c, x0, y0, rgb);
    dot(c, x0 + (dx < -dy), y0 + (dx >= -dy), rgb);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

/* 5x7 glyphs, one byte a row, bit 4 the leftmost pixel. */
static const char glyph_chars[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_-.+:/() ";
static const uint8_t glyphs[][7] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
    {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}, {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}, {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00},
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}, {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00},
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}, {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00},
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
};

/* Draws text (case-folded to capitals) at scale; returns its width in px. */
static int text(canvas *c, int x, int y, const char *s, int scale, const uint8_t rgb[3]) {
  int x0 = x;
  for (; *s; s++, x += 6 * scale) {
    int ch = *s >= 'a' && *s <= 'z' ? *s - 32 : *s;
    const char *at = strchr(glyph_chars, ch);
    if (!at || !ch) continue;
    const uint8_t *g = glyphs[at - glyph_chars];
    for (int row = 0; row < 7; row++)
      for (int col = 0; col < 5; col++)
        if (g[row] >> (4 - col) & 1) fill(c, x + col * scale, y + row * scale, x + (col + 1) * scale, y + (row + 1) * scale, rgb);
  }
  return x - x0;
}

static int text_width(const char *s, int scale) { return (int)strlen(s) * 6 * scale - scale; }

/* ------------------------------------------------------------ the plot */

void cli_loss_colour(int i, uint8_t rgb[3]) {
  static const uint8_t pal[CLI_NLOSS][3] = {
      {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
      {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {23, 190, 207}};
  memcpy(rgb, pal[i % CLI_NLOSS], 3);
}

/* A round step for about n ticks over span: 1, 2 or 5 times a power of 10. */
static double nice_step(double span, int n) {
  double raw = span / n, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

static void tick_label(char *buf, size_t cap, double v, double step) {
  if (fabs(v) < step * 1e-6) v = 0;
  int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  if (fabs(v) >= 1e5 || (v != 0 && fabs(v) < 1e-4)) snprintf(buf, cap, "%.1e", v);
  else snprintf(buf, cap, "%.*f", decimals, v);
}

void cli_plot_losses(const cli_history *h, uint8_t *rgb, int width, int height) {
  static const uint8_t white[3] = {255, 255, 255}, black[3] = {0, 0, 0}, grid[3] = {225, 225, 225},
                       grey[3] = {90, 90, 90};
  canvas c = {rgb, width, height};
  const int left = 64, right = width - 120, top = 16, bottom = height - 40;
  double ymin = INFINITY, ymax = -INFINITY, xmin, xmax;
  char buf[64];
  fill(&c, 0, 0, width, height, white);
  for (size_t k = 0; k < h->n; k++)
    for (int i = 0; i < CLI_NLOSS; i++)
      if (h->active >> i & 1 && isfinite(h->p[k].loss[i])) {
        ymin = fmin(ymin, h->p[k].loss[i]);
        ymax = fmax(ymax, h->p[k].loss[i]);
      }
  if (!(ymin <= ymax)) {
    text(&c, left + 10, (top + bottom) / 2, "no losses logged yet", 2, grey);
    return;
  }
  if (ymax - ymin < 1e-6) ymin -= 0.5, ymax += 0.5;
  double ystep = nice_step(ymax - ymin, 6);
  ymin = floor(ymin / ystep) * ystep;
  ymax = ceil(ymax / ystep) * ystep;
  xmin = (double)h->p[0].iter;
  xmax = (double)h->p[h->n - 1].iter;
  if (xmax <= xmin) xmin -= 1, xmax += 1;
  double xstep = nice_step(xmax - xmin, 6);
#define PX(v) (left + (int)lround(((v) - xmin) / (xmax - xmin) * (right - left)))
#define PY(v) (bottom - (int)lround(((v) - ymin) / (ymax - ymin) * (bottom - top)))
  for (double v = ymin; v <= ymax + ystep * 0.5; v += ystep) {
    int y = PY(v);
    line(&c, left, y, right, y, grid);
    tick_label(buf, sizeof buf, v, ystep);
    text(&c, left - 6 - text_width(buf, 1), y - 3, buf, 1, black);
  }
  for (double v = ceil(xmin / xstep) * xstep; v <= xmax + xstep * 1e-6; v += xstep) {
    int x = PX(v);
    line(&c, x, top, x, bottom, grid);
    tick_label(buf, sizeof buf, v, xstep < 1 ? 1 : xstep);
    text(&c, x - text_width(buf, 1) / 2, bottom + 6, buf, 1, black);
  }
  line(&c, left, top, left, bottom, black);
  line(&c, left, bottom, right, bottom, black);
  text(&c, (left + right - text_width("iteration", 2)) / 2, height - 18, "iteration", 2, black);
  int row = 0;
  for (int i = 0; i < CLI_NLOSS; i++) {
    uint8_t col[3];
    if (!(h->active >> i & 1)) continue;
    cli_loss_colour(i, col);
    int px = -1, py = -1;
    for (size_t k = 0; k < h->n; k++) {
      double v = h->p[k].loss[i];
      if (!isfinite(v)) {
        px = -1;
        continue;
      }
      int x = PX((double)h->p[k].iter), y = PY(v);
      if (px >= 0) line(&c, px, py, x, y, col);
      else fill(&c, x - 1, y - 1, x + 2, y + 2, col);
      px = x, py = y;
    }
    int ly = top + 4 + row++ * 20;
    fill(&c, right + 12, ly, right + 26, ly + 14, col);
    text(&c, right + 32, ly, cli_loss_names[i], 2, black);
  }
#undef PX
#undef PY
}

/* ------------------------------------------------------------ the page */

static void html_escape(FILE *f, const char *s) {
  for (; *s; s++) switch (*s) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    default: fputc(*s, f);
    }
}

static int cmp_desc(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* The iterations that have images in dir, newest first, up to upto. */
static int64_t *checkpoints(const char *dir, int64_t upto, size_t *n) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int64_t *list = NULL;
  size_t cap = 0;
  *n = 0;
  while (d && (e = readdir(d))) {
    long long it;
    char tail[32];
    if (sscanf(e->d_name, "iter_%lld_%31s", &it, tail) != 2 || strcmp(tail, "real_A.png") || it > upto)
      continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 64;
      int64_t *nl = realloc(list, cap * sizeof *nl);
      if (!nl) break;
      list = nl;
    }
    list[(*n)++] = it;
  }
  if (d) closedir(d);
  if (list) qsort(list, *n, sizeof *list, cmp_desc);
  return list;
}

static int write_page(const cli_report *r, const cli_history *h, const char *path, int plot_w,
                      int plot_h, int sample_px) {
  const cli_settings *s = r->s;
  char tmp[4500], dir[4500];
  size_t n = 0;
  int idt = s->o.nce_idt != 0;
  static const char *cols[4] = {"real_A", "fake_B", "real_B", "idt_B"};
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  snprintf(dir, sizeof dir, "%s/web/images", r->run_dir);
  FILE *f = fopen(tmp, "w");
  if (!f) return -1;
  int64_t *its = checkpoints(dir, r->iteration, &n);
  int64_t epochs = (int64_t)s->o.n_epochs + s->o.n_epochs_decay;
  time_t now = time(NULL);
  char when[64];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&now));
  fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
  if (!r->finished) fprintf(f, "<meta http-equiv=\"refresh\" content=\"60\">\n");
  fprintf(f, "<title>negcut-train: ");
  html_escape(f, r->name);
  fprintf(f, "</title>\n<style>\n"
             "body { font-family: sans-serif; margin: 1.5em; color: #222; }\n"
             "table { border-collapse: collapse; }\n"
             "th, td { padding: 4px 8px; text-align: center; }\n"
             "tr:nth-child(even) { background: #f3f3f3; }\n"
             "td img { image-rendering: pixelated; display: block; }\n"
             ".sw { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: middle; "
             "margin: 0 0.3em 0 1em; }\n"
             "</style>\n</head>\n<body>\n<h1>");
  html_escape(f, r->name);
  fprintf(f, "</h1>\n<p>%s from <code>", cli_mode_name(s->o.mode));
  html_escape(f, s->dataroot);
  fprintf(f, "</code>: iteration %lld of %lld", (long long)r->iteration, (long long)r->total);
  if (r->per_epoch > 0)
    fprintf(f, " (epoch %lld of %lld, %lld iterations each)",
            (long long)(r->iteration > 0 ? (r->iteration - 1) / r->per_epoch + 1 : 1), (long long)epochs,
            (long long)r->per_epoch);
  fprintf(f, "; this run stops at %lld. %s %s.</p>\n", (long long)r->end,
          r->finished ? "Stopped" : "Updated", when);
  fprintf(f, "<h2>Losses</h2>\n<p><img src=\"losses.png\" width=\"%d\" height=\"%d\" "
             "alt=\"loss curves\"></p>\n<p>Mean over each logged interval, last values:",
          plot_w, plot_h);
  for (int i = 0; i < CLI_NLOSS; i++) {
    uint8_t c[3];
    if (!(h->active >> i & 1)) continue;
    cli_loss_colour(i, c);
    fprintf(f, "\n<span class=\"sw\" style=\"background: #%02x%02x%02x\"></span>%s", c[0], c[1], c[2],
            cli_loss_names[i]);
    if (h->n && isfinite(h->p[h->n - 1].loss[i])) fprintf(f, " %.4g", h->p[h->n - 1].loss[i]);
  }
  fprintf(f, "\n</p>\n<p>Log: <a href=\"../loss_log.jsonl\">loss_log.jsonl</a>, options: "
             "<a href=\"../opt.json\">opt.json</a>.</p>\n<h2>Samples at each checkpoint</h2>\n");
  fprintf(f, "<table>\n<tr><th>iteration</th>");
  for (int k = 0; k < 3 + idt; k++) fprintf(f, "<th>%s</th>", cols[k]);
  fprintf(f, "</tr>\n");
  for (size_t i = 0; i < n; i++) {
    fprintf(f, "<tr><td>%lld</td>", (long long)its[i]);
    for (int k = 0; k < 3 + idt; k++)
      fprintf(f, "<td><img src=\"images/iter_%08lld_%s.png\" width=\"%d\" alt=\"%s\"></td>",
              (long long)its[i], cols[k], sample_px, cols[k]);
    fprintf(f, "</tr>\n");
  }
  fprintf(f, "</table>\n</body>\n</html>\n");
  free(its);
  int ok = !ferror(f);
  ok &= fclose(f) == 0;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return -1;
  }
  return 0;
}

int cli_report_update(negcut_ctx *ctx, negcut_trainer *t, const cli_report *r, const cli_history *h) {
  enum { PLOT_W = 880, PLOT_H = 400 };
  static const char *cols[4] = {"real_A", "fake_B", "real_B", "idt_B"};
  char path[4400];
  uint32_t w = 0, hgt = 0;
  uint8_t *buf[4] = {NULL, NULL, NULL, NULL}, *plot = NULL;
  int rc = -1, sample_px = 256;
  negcut_status st;
  snprintf(path, sizeof path, "%s/web/images", r->run_dir);
  if (cli_mkdirs(path)) {
    fprintf(stderr, "negcut-train: cannot create %s\n", path);
    return -1;
  }
  /* samples of the last iteration */
  st = negcut_trainer_visuals(t, &w, &hgt, NULL, NULL, NULL, NULL);
  if (st == NEGCUT_OK) {
    int32_t ch[4] = {r->s->o.input_nc, r->s->o.output_nc, r->s->o.input_nc, r->s->o.output_nc};
    for (int k = 0; k < 4; k++)
      if (!(buf[k] = malloc((size_t)w * hgt * (size_t)ch[k]))) st = NEGCUT_ERR_OUT_OF_MEMORY;
    if (st == NEGCUT_OK) st = negcut_trainer_visuals(t, &w, &hgt, buf[0], buf[1], buf[2], buf[3]);
    for (int k = 0; k < 4 && st == NEGCUT_OK; k++) {
      negcut_image img = {w, hgt, (uint32_t)ch[k], (size_t)w * (size_t)ch[k], buf[k]};
      if (k == 3 && !r->s->o.nce_idt) continue;
      snprintf(path, sizeof path, "%s/web/images/iter_%08lld_%s.png", r->run_dir, (long long)r->iteration, cols[k]);
      st = negcut_image_save(ctx, &img, path, NULL);
    }
    if (st != NEGCUT_OK)
      fprintf(stderr, "negcut-train: samples: %s\n", negcut_ctx_last_error(ctx));
  }
  /* show small crops at least 128 px wide, large ones at most 256 */
  sample_px = w < 128 ? 128 : w > 256 ? 256 : (int)w;
  plot = malloc((size_t)PLOT_W * PLOT_H * 3);
  if (plot) {
    cli_plot_losses(h, plot, PLOT_W, PLOT_H);
    negcut_image img = {PLOT_W, PLOT_H, 3, (size_t)PLOT_W * 3, plot};
    snprintf(path, sizeof path, "%s/web/losses.png", r->run_dir);
    if (negcut_image_save(ctx, &img, path, NULL) != NEGCUT_OK)
      fprintf(stderr, "negcut-train: %s\n", negcut_ctx_last_error(ctx));
    snprintf(path, sizeof path, "%s/web/index.html", r->run_dir);
    rc = write_page(r, h, path, PLOT_W, PLOT_H, sample_px);
    if (rc) fprintf(stderr, "negcut-train: cannot write %s\n", path);
  }
  free(plot);
  for (int k = 0; k < 4; k++) free(buf[k]);
  return rc;
}
