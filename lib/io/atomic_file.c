/* Atomic file replacement: temporary file, fsync, rename (atomic_file.h). */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Bytes of the target's name kept in the temporary one (NAME_MAX is 255 on
 * Linux; the suffix takes up to 30). */
#define TMP_BASE_MAX 200

struct ngc_atomic_file {
  negcut_ctx *ctx;
  FILE *fp;
  char *path;
  char *tmp_path;
  int err; /* errno of the first failed ngc_atomic_file_write, 0 if none */
};

static void atomic_file_release(ngc_atomic_file *f) {
  free(f->path);
  free(f->tmp_path);
  free(f);
}

negcut_status ngc_atomic_file_open(negcut_ctx *ctx, const char *path, ngc_atomic_file **out) {
  negcut_status st;
  ngc_atomic_file *f = NULL;
  int fd = -1;
  if (!out) return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "atomic write: out is NULL");
  *out = NULL;
  if (!path || !path[0])
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "atomic write: path is NULL or empty");
  size_t len = strlen(path), cap;
  if (!ngc_add_size(len, 64, &cap))
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "atomic write: path too long");
  f = calloc(1, sizeof *f);
  if (!f) return ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "atomic write: out of memory");
  f->ctx = ctx;
  f->path = malloc(len + 1);
  f->tmp_path = malloc(cap);
  if (!f->path || !f->tmp_path) {
    st = ngc_error(ctx, NEGCUT_ERR_OUT_OF_MEMORY, "atomic write: out of memory");
    goto fail;
  }
  memcpy(f->path, path, len + 1);

  /* mkstemp would create the file 0600; open(O_EXCL, 0666) lets the umask
   * decide the mode like any other new file, without touching the
   * process-wide umask. The name only has to be unlikely to collide: O_EXCL
   * makes a collision a retry, never a shared file. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)f;
  int err = 0;
  for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    /* dir/base.tmp.pid.hex, the base cut to TMP_BASE_MAX bytes so that a
     * name near NAME_MAX still leaves room for the suffix */
    const char *slash = strrchr(path, '/');
    const size_t dir_len = slash ? (size_t)(slash + 1 - path) : 0;
    const size_t base_len = len - dir_len < TMP_BASE_MAX ? len - dir_len : TMP_BASE_MAX;
    snprintf(f->tmp_path, cap, "%.*s%.*s.tmp.%ld.%08x", (int)dir_len, path, (int)base_len,
             path + dir_len, (long)getpid(), (unsigned)(seed >> 32));
    fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    err = errno;
    if (fd < 0 && err != EEXIST) break;
  }
  if (fd < 0) {
    st = ngc_error(ctx, NEGCUT_ERR_IO, "cannot create a temporary file next to %s: %s", path,
                   strerror(err));
    goto fail;
  }
  f->fp = fdopen(fd, "wb");
  if (!f->fp) {
    err = errno;
    close(fd);
    unlink(f->tmp_path);
    st = ngc_error(ctx, NEGCUT_ERR_IO, "cannot open a stream on %s: %s", f->tmp_path,
                   strerror(err));
    goto fail;
  }
  *out = f;
  return NEGCUT_OK;

fail:
  atomic_file_release(f);
  return st;
}

FILE *ngc_atomic_file_stream(ngc_atomic_file *f) { return f ? f->fp : NULL; }

int ngc_atomic_file_write(ngc_atomic_file *f, const void *data, size_t size) {
  if (f->err) return -1;
  if (size > 0 && fwrite(data, 1, size, f->fp) != size) {
    f->err = errno ? errno : EIO;
    return -1;
  }
  return 0;
}

void ngc_atomic_file_abort(ngc_atomic_file *f) {
  if (!f) return;
  if (f->fp) fclose(f->fp);
  unlink(f->tmp_path);
  atomic_file_release(f);
}

/* Best effort: a file system that cannot fsync a directory (EINVAL) still
 * has the file in place, so this never fails the write. */
static void fsync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = NULL;
  const char *name = ".";
  if (slash) {
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    dir = malloc(n + 1);
    if (!dir) return;
    memcpy(dir, path, n);
    dir[n] = '\0';
    name = dir;
  }
  int fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(dir);
}

negcut_status ngc_atomic_file_commit(ngc_atomic_file *f) {
  if (!f) return ngc_error(NULL, NEGCUT_ERR_INVALID_ARGUMENT, "atomic write: file is NULL");
  negcut_ctx *ctx = f->ctx;
  negcut_status st;
  int err = 0;
  /* Every step's failure is checked: a full disk often shows only at
   * fflush, fsync or even close. */
  if (f->err) err = f->err;
  else if (ferror(f->fp)) err = EIO; /* a writer's own failed fwrite: errno is gone */
  if (!err && fflush(f->fp) != 0) err = errno;
  if (!err && fsync(fileno(f->fp)) != 0) err = errno;
  int close_rc = fclose(f->fp);
  f->fp = NULL;
  if (!err && close_rc != 0) err = errno;
  if (err) {
    st = ngc_error(ctx, NEGCUT_ERR_IO, "cannot write %s: %s", f->path, strerror(err));
    goto fail;
  }
  if (rename(f->tmp_path, f->path) != 0) {
    err = errno;
    st = ngc_error(ctx, NEGCUT_ERR_IO, "cannot rename a temporary file to %s: %s", f->path,
                   strerror(err));
    goto fail;
  }
  fsync_parent_dir(f->path);
  atomic_file_release(f);
  return NEGCUT_OK;

fail:
  unlink(f->tmp_path);
  atomic_file_release(f);
  return st;
}

negcut_status ngc_write_file_atomic(negcut_ctx *ctx, const char *path, const void *data,
                                    size_t size) {
  if (!data && size > 0)
    return ngc_error(ctx, NEGCUT_ERR_INVALID_ARGUMENT, "atomic write: data is NULL");
  ngc_atomic_file *f = NULL;
  negcut_status st = ngc_atomic_file_open(ctx, path, &f);
  if (st != NEGCUT_OK) return st;
  ngc_atomic_file_write(f, data, size);
  return ngc_atomic_file_commit(f);
}
