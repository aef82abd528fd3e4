/* Listing a data folder: recursive, PNG and JPEG by extension, sorted as
 * the reference's sorted(make_dataset(dir)) (data.h). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "train/data.h"

typedef struct path_list {
  char **v;
  int64_t n, cap;
} path_list;

/* The folders being walked, to skip a symbolic link back to one of them. */
typedef struct dir_stack {
  dev_t dev[64];
  ino_t ino[64];
  int n;
} dir_stack;

static int is_image_name(const char *name) {
  const char *dot = strrchr(name, '.');
  if (!dot) return 0;
  return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg");
}

static int push_path(path_list *l, char *p) {
  if (l->n == l->cap) {
    int64_t cap = l->cap ? 2 * l->cap : 64;
    char **v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) return 0;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = p;
  return 1;
}

static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  p[a] = '/';
  memcpy(p + a + 1, name, b + 1);
  return p;
}

static negcut_status walk(negcut_ctx *ctx, const char *dir, dir_stack *stack, path_list *l) {
  struct stat st;
  if (stat(dir, &st) != 0)
    return ngc_error(ctx, NEGCUT_ERR_IO, "data folder '%s' cannot be opened: %s", dir,
                     strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return ngc_error(ctx, NEGCUT_ERR_IO, "data folder '%s' is not a folder", dir);
  for (int i = 0; i < stack->n; i++)
    if (stack->dev[i] == st.st_dev && stack->ino[i] == st.st_ino) return NEGCUT_OK; /* a loop */
  if (stack->n == (int)(sizeof stack->dev / sizeof stack->dev[0]))
    return ngc_error(ctx, NEGCUT_ERR_LIMIT, "data folder '%s' is nested too deeply", dir);
  DIR *d = opendir(dir);
  if (!d)
    return ngc_error(ctx, NEGCUT_ERR_IO, "data folder '%s' cannot be opened: %s", dir,
                     strerror(errno));
  stack->dev[stack->n] = st.st_dev;
  stack->ino[stack->n] = st.st_ino;
  stack->n++;
  negcut_status rc = NEGCUT_OK;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char *p = join(dir, e->d_name);
    if (!p) {
      rc = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "listing '%s': out of memory", dir);
      goto fail;
    }
    int is_dir = e->d_type == DT_DIR, is_file = e->d_type == DT_REG;
    if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
      struct stat est;
      const int ok = stat(p, &est) == 0; /* follows links */
      is_dir = ok && S_ISDIR(est.st_mode);
      is_file = ok && S_ISREG(est.st_mode);
    }
    if (is_dir) {
      rc = walk(ctx, p, stack, l);
      free(p);
      if (rc != NEGCUT_OK) goto fail;
    } else if (is_file && is_image_name(e->d_name)) { /* a FIFO would block the loader */
      if (!push_path(l, p)) {
        free(p);
        rc = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "listing '%s': out of memory", dir);
        goto fail;
      }
    } else {
      free(p);
    }
    errno = 0;
  }
  if (errno != 0)
    rc = ngc_error(ctx, NEGCUT_ERR_IO, "data folder '%s' cannot be read: %s", dir,
                   strerror(errno));
fail:
  stack->n--;
  closedir(d);
  return rc;
}

static int cmp_path(const void *a, const void *b) {
  /* strcmp compares as unsigned bytes: UTF-8 byte order is code point
   * order, which is how Python sorts the reference's path strings. */
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void ngc_data_free_list(char **paths, int64_t n) {
  if (!paths) return;
  for (int64_t i = 0; i < n; i++) free(paths[i]);
  free(paths);
}

negcut_status ngc_data_list(negcut_ctx *ctx, const char *dir, char ***paths, int64_t *n) {
  if (!dir || !*dir || !paths || !n)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "data folder: no path given");
  *paths = NULL;
  *n = 0;
  path_list l = {0};
  dir_stack stack = {.n = 0};
  char *root = strdup(dir);
  if (!root) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "listing '%s': out of memory", dir);
  size_t len = strlen(root);
  while (len > 1 && root[len - 1] == '/') root[--len] = '\0';
  negcut_status rc = walk(ctx, root, &stack, &l);
  if (rc != NEGCUT_OK) goto fail;
  if (l.n == 0) {
    rc = ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT,
                   "data folder '%s' holds no PNG or JPEG image (searched recursively)", dir);
    goto fail;
  }
  qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_path);
  *paths = l.v;
  *n = l.n;
  free(root);
  return NEGCUT_OK;
fail:
  ngc_data_free_list(l.v, l.n);
  free(root);
  return rc;
}
