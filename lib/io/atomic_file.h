/* Atomic file replacement: a writer never leaves a partial file at its path.
 *
 * The bytes go to a temporary file in the same directory as path (same file
 * system, so rename(2) is atomic), named "<path>.tmp.<pid>.<n>" and created
 * with O_EXCL and mode 0666 (less the umask). Commit flushes, fsyncs, closes
 * and renames it over path, then fsyncs the directory so that the rename
 * itself survives a crash. Any failure removes the temporary file and leaves
 * an existing file at path as it was. If path is a symbolic link, the link
 * is replaced, not its target.
 *
 * Two ways to use it: ngc_write_file_atomic for bytes already in memory, or
 * open / stream / commit (or abort) for writers that produce the file piece
 * by piece (libpng's stdio writer, a checkpoint written tensor by tensor).
 *
 * Ownership: an ngc_atomic_file is freed by ngc_atomic_file_commit (success
 * or not) or by ngc_atomic_file_abort, exactly once. Not thread-safe; any
 * number of threads may each use their own.
 */
#ifndef NGC_IO_ATOMIC_FILE_H
#define NGC_IO_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "core/core.h"

typedef struct ngc_atomic_file ngc_atomic_file;

/* Creates the temporary file for path. On failure (NEGCUT_ERR_IO with the
 * system's reason, NEGCUT_ERR_OUT_OF_MEMORY, NEGCUT_ERR_INVALID_ARGUMENT for
 * a NULL or empty path) *out is NULL and nothing was created. */
negcut_status ngc_atomic_file_open(negcut_ctx *ctx, const char *path, ngc_atomic_file **out);

/* The stream to write to. A write error may be left to commit, which checks
 * the stream's error flag. Never fclose it. */
FILE *ngc_atomic_file_stream(ngc_atomic_file *f);
/* fwrite to the stream, keeping the errno of the first failure for commit's
 * message (a full disk: ENOSPC, where the stream's error flag alone only
 * says EIO); nothing more is written after one. 0, or -1 on failure. */
int ngc_atomic_file_write(ngc_atomic_file *f, const void *data, size_t size);

/* Makes the written bytes the file at path, then frees f. On failure the
 * temporary file is removed, path is untouched and f is freed all the same. */
negcut_status ngc_atomic_file_commit(ngc_atomic_file *f);

/* Removes the temporary file and frees f; accepts NULL. */
void ngc_atomic_file_abort(ngc_atomic_file *f);

/* Writes size bytes at data as the file at path, atomically. */
negcut_status ngc_write_file_atomic(negcut_ctx *ctx, const char *path, const void *data,
                                    size_t size);

#endif
