/* The public image API: options, argument checks, reading files, choosing
 * the codec by magic bytes (load) or by extension (save). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_codec.h"

static const negcut_image_load_options load_defaults = NEGCUT_IMAGE_LOAD_OPTIONS_INIT;
static const size_t load_ends[] = {NGC_END_OF(negcut_image_load_options, max_file_bytes)};
static const ngc_options_layout load_layout = {"negcut_image_load_options", 1, load_ends};
static const negcut_image_save_options save_defaults = NEGCUT_IMAGE_SAVE_OPTIONS_INIT;
static const size_t save_ends[] = {NGC_END_OF(negcut_image_save_options, jpeg_quality)};
static const ngc_options_layout save_layout = {"negcut_image_save_options", 1, save_ends};

negcut_status negcut_image_load_options_init_v2(negcut_image_load_options *opts,
                                                uint32_t version) {
  return ngc_options_fill(&load_layout, opts, version, &load_defaults);
}

negcut_status negcut_image_load_options_init(negcut_image_load_options *opts) {
  return negcut_image_load_options_init_v2(opts, 1);
}

negcut_status negcut_image_save_options_init_v2(negcut_image_save_options *opts,
                                                uint32_t version) {
  return ngc_options_fill(&save_layout, opts, version, &save_defaults);
}

negcut_status negcut_image_save_options_init(negcut_image_save_options *opts) {
  return negcut_image_save_options_init_v2(opts, 1);
}

void negcut_image_free(negcut_image *img) {
  if (!img) return;
  free(img->pixels);
  free(img);
}

negcut_status ngc_image_alloc(negcut_ctx *ctx, const char *what, uint32_t width,
                              uint32_t height, uint64_t max_pixels, negcut_image **out) {
  *out = NULL;
  if (width == 0 || height == 0)
    return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: image size %ux%u is empty", what,
                     (unsigned)width, (unsigned)height);
  /* Two uint32 factors cannot overflow a uint64. */
  uint64_t px = (uint64_t)width * height;
  if (px > max_pixels)
    return ngc_error(ctx, NEGCUT_ERR_LIMIT,
                     "%s: image of %ux%u = %llu pixels is above the limit of %llu "
                     "(negcut_image_load_options.max_pixels)",
                     what, (unsigned)width, (unsigned)height, (unsigned long long)px,
                     (unsigned long long)max_pixels);
  size_t stride, bytes;
  if (!ngc_mul_size(width, 3, &stride) || !ngc_mul_size(stride, height, &bytes))
    return ngc_error(ctx, NEGCUT_ERR_LIMIT, "%s: image of %ux%u does not fit in memory",
                     what, (unsigned)width, (unsigned)height);
  negcut_image *img = calloc(1, sizeof *img);
  if (!img) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
  /* calloc: negcut_image_create promises black, and PNG alpha is
   * composited onto whatever the buffer holds. */
  img->pixels = calloc(bytes, 1);
  if (!img->pixels) {
    free(img);
    return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes of pixels",
                     what, bytes);
  }
  img->width = width;
  img->height = height;
  img->channels = 3;
  img->stride_bytes = stride;
  *out = img;
  return NEGCUT_OK;
}

negcut_status negcut_image_create(negcut_image **out, negcut_ctx *ctx, uint32_t width,
                                  uint32_t height) {
  if (!out)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "negcut_image_create: out is NULL");
  *out = NULL;
  if (width == 0 || height == 0)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "negcut_image_create: size %ux%u is empty", (unsigned)width,
                     (unsigned)height);
  return ngc_image_alloc(ctx, "negcut_image_create", width, height, UINT64_MAX, out);
}

int ngc_image_is_png(const uint8_t *data, size_t size) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return size >= 8 && memcmp(data, sig, 8) == 0;
}

int ngc_image_is_jpeg(const uint8_t *data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

/* Names formats people commonly feed by mistake, for a clearer refusal. */
static const char *other_format_name(const uint8_t *d, size_t n) {
  if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) return "GIF";
  if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) return "WebP";
  if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0)) return "TIFF";
  if (n >= 2 && d[0] == 'B' && d[1] == 'M') return "BMP";
  if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0) return "HEIF/AVIF";
  return NULL;
}

static negcut_status resolve_load_options(negcut_ctx *ctx, const char *fn,
                                          const negcut_image_load_options *opts,
                                          ngc_image_limits *lim, uint64_t *max_file_bytes) {
  negcut_image_load_options o = NEGCUT_IMAGE_LOAD_OPTIONS_INIT;
  negcut_status st = opts ? ngc_options_read(ctx, &load_layout, &o, opts, &load_defaults) : 0;
  if (st) return st;
  const uint32_t known = NEGCUT_IMAGE_LOAD_KEEP_ORIENTATION | NEGCUT_IMAGE_LOAD_ACCEPT_DAMAGED;
  if (o.flags & ~known)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn,
                     (unsigned)(o.flags & ~known));
  lim->flags = o.flags;
  lim->max_pixels = o.max_pixels ? o.max_pixels : NEGCUT_IMAGE_DEFAULT_MAX_PIXELS;
  *max_file_bytes = o.max_file_bytes ? o.max_file_bytes : NEGCUT_IMAGE_DEFAULT_MAX_FILE_BYTES;
  return NEGCUT_OK;
}

static negcut_status decode(negcut_ctx *ctx, const char *what, const uint8_t *data,
                            size_t size, uint64_t max_file_bytes, const ngc_image_limits *lim,
                            negcut_image **out) {
  if (size == 0) return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: empty, not an image", what);
  if ((uint64_t)size > max_file_bytes)
    return ngc_error(ctx, NEGCUT_ERR_LIMIT,
                     "%s: %zu bytes is above the limit of %llu "
                     "(negcut_image_load_options.max_file_bytes)",
                     what, size, (unsigned long long)max_file_bytes);
  if (ngc_image_is_png(data, size)) return ngc_image_png_decode(ctx, what, data, size, lim, out);
  if (ngc_image_is_jpeg(data, size))
    return ngc_image_jpeg_decode(ctx, what, data, size, lim, out);
  const char *other = other_format_name(data, size);
  if (other)
    return ngc_error(ctx, NEGCUT_ERR_UNSUPPORTED,
                     "%s: a %s image; only PNG and JPEG can be loaded", what, other);
  return ngc_error(ctx, NEGCUT_ERR_BAD_FORMAT, "%s: not a PNG or JPEG image", what);
}

/* Reads the whole file, refusing more than max_bytes without reading them:
 * the size from fstat is only a hint (the file may change, or be a pipe), so
 * the loop grows the buffer and stops one byte past the limit. */
static negcut_status read_file(negcut_ctx *ctx, const char *path, uint64_t max_bytes,
                               uint8_t **out, size_t *out_size) {
  negcut_status st;
  uint8_t *buf = NULL;
  size_t len = 0, cap;
  *out = NULL;
  *out_size = 0;
  if (max_bytes > SIZE_MAX - 1) max_bytes = SIZE_MAX - 1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ngc_error(ctx, NEGCUT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    st = ngc_error(ctx, NEGCUT_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    goto fail;
  }
  if (S_ISDIR(sb.st_mode)) {
    st = ngc_error(ctx, NEGCUT_ERR_IO, "cannot read %s: %s", path, strerror(EISDIR));
    goto fail;
  }
  if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > max_bytes) {
    st = ngc_error(ctx, NEGCUT_ERR_LIMIT,
                   "%s: %llu bytes is above the limit of %llu "
                   "(negcut_image_load_options.max_file_bytes)",
                   path, (unsigned long long)sb.st_size, (unsigned long long)max_bytes);
    goto fail;
  }
  /* +1 so that a regular file is read to EOF without a second allocation. */
  cap = S_ISREG(sb.st_mode) ? (size_t)sb.st_size + 1 : 65536;
  if (cap > max_bytes + 1) cap = (size_t)max_bytes + 1;
  buf = malloc(cap);
  if (!buf) {
    st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes", path, cap);
    goto fail;
  }
  for (;;) {
    if (len == cap) {
      if ((uint64_t)len > max_bytes) {
        st = ngc_error(ctx, NEGCUT_ERR_LIMIT,
                       "%s: more than %llu bytes "
                       "(negcut_image_load_options.max_file_bytes)",
                       path, (unsigned long long)max_bytes);
        goto fail;
      }
      size_t ncap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
      if (ncap > max_bytes + 1) ncap = (size_t)max_bytes + 1;
      uint8_t *nb = realloc(buf, ncap);
      if (!nb) {
        st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes", path,
                       ncap);
        goto fail;
      }
      buf = nb;
      cap = ncap;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = ngc_error(ctx, NEGCUT_ERR_IO, "cannot read %s: %s", path, strerror(errno));
      goto fail;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  if ((uint64_t)len > max_bytes) {
    st = ngc_error(ctx, NEGCUT_ERR_LIMIT,
                   "%s: more than %llu bytes (negcut_image_load_options.max_file_bytes)",
                   path, (unsigned long long)max_bytes);
    goto fail;
  }
  close(fd);
  *out = buf;
  *out_size = len;
  return NEGCUT_OK;

fail:
  free(buf);
  close(fd);
  return st;
}

negcut_status negcut_image_load(negcut_image **out, negcut_ctx *ctx, const char *path,
                                const negcut_image_load_options *opts) {
  static const char fn[] = "negcut_image_load";
  if (!out) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
  *out = NULL;
  if (!path || !path[0])
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: path is NULL or empty", fn);
  ngc_image_limits lim = {0, 0};
  uint64_t max_file_bytes = 0;
  negcut_status st = resolve_load_options(ctx, fn, opts, &lim, &max_file_bytes);
  if (st != NEGCUT_OK) return st;
  uint8_t *data = NULL;
  size_t size = 0;
  st = read_file(ctx, path, max_file_bytes, &data, &size);
  if (st != NEGCUT_OK) return st;
  st = decode(ctx, path, data, size, max_file_bytes, &lim, out);
  free(data);
  return st;
}

negcut_status negcut_image_load_memory(negcut_image **out, negcut_ctx *ctx, const void *data,
                                       size_t size, const negcut_image_load_options *opts) {
  static const char fn[] = "negcut_image_load_memory";
  if (!out) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
  *out = NULL;
  if (!data && size > 0)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: data is NULL", fn);
  ngc_image_limits lim = {0, 0};
  uint64_t max_file_bytes = 0;
  negcut_status st = resolve_load_options(ctx, fn, opts, &lim, &max_file_bytes);
  if (st != NEGCUT_OK) return st;
  return decode(ctx, "image in memory", data, size, max_file_bytes, &lim, out);
}

/* 'p' for .png, 'j' for .jpg / .jpeg, 0 otherwise. Only the last path
 * component counts, so "a.png/b" has no extension. */
static int save_format(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  if (!dot || dot == base) return 0;
  if (strcasecmp(dot, ".png") == 0) return 'p';
  if (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0) return 'j';
  return 0;
}

negcut_status negcut_image_save(negcut_ctx *ctx, const negcut_image *img, const char *path,
                                const negcut_image_save_options *opts) {
  static const char fn[] = "negcut_image_save";
  negcut_image_save_options o = NEGCUT_IMAGE_SAVE_OPTIONS_INIT;
  if (!img) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: img is NULL", fn);
  if (!path || !path[0])
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: path is NULL or empty", fn);
  negcut_status st = opts ? ngc_options_read(ctx, &save_layout, &o, opts, &save_defaults) : 0;
  if (st) return st;
  if (o.jpeg_quality == 0) o.jpeg_quality = 95;
  if (o.jpeg_quality < 1 || o.jpeg_quality > 100)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: jpeg_quality %d is not in 1..100",
                     fn, (int)o.jpeg_quality);
  if (!img->pixels)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: img->pixels is NULL", fn);
  if (img->width == 0 || img->height == 0)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: image size %ux%u is empty", fn,
                     (unsigned)img->width, (unsigned)img->height);
  if (img->channels != 1 && img->channels != 3 && img->channels != 4)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "%s: %u channels; 1, 3 or 4 expected",
                     fn, (unsigned)img->channels);
  size_t row;
  if (!ngc_mul_size(img->width, img->channels, &row) || img->stride_bytes < row)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                     "%s: stride_bytes %zu is less than width %u x %u channels", fn,
                     img->stride_bytes, (unsigned)img->width, (unsigned)img->channels);
  switch (save_format(path)) {
  case 'p': return ngc_image_png_save(ctx, img, path);
  case 'j': return ngc_image_jpeg_save(ctx, img, path, o.jpeg_quality);
  default:
    return ngc_error(ctx, NEGCUT_ERR_UNSUPPORTED,
                     "%s: %s: unknown extension; use .png, .jpg or .jpeg", fn, path);
  }
}
