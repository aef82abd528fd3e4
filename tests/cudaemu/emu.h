/* cudaemu internals shared by the runtime (emu_runtime.cpp), cuDNN
 * (emu_dnn.cpp) and cuBLAS (emu_blas.cpp) emulations.
 *
 * The model: device memory is host memory the emulator tracks; every stream
 * operation is queued in one FIFO and runs when the host waits for it
 * (stream, event or device synchronisation, a copy into pageable memory), so
 * host code that reads a result or reuses a buffer too early sees the
 * stale bytes it would see on a GPU. Operations queued on a stream that is
 * being captured go into its graph instead; a launched graph queues them
 * again. What CUDA forbids while capturing is refused with CUDA's status,
 * and invalidates the capture as CUDA does. */
#ifndef NGC_EMU_H
#define NGC_EMU_H

#include "emu_prelude.h"

#include <cublas_v2.h>
#include <cudnn.h>

#include <mutex>

/* Every entry point holds this (recursive: the emulated libraries call
 * into the runtime). */
std::unique_lock<std::recursive_mutex> emu_lock();

/* Queues fn on stream s, or adds it to the graph s is capturing. */
cudaError_t emu_enqueue(cudaStream_t s, const char *what, std::function<void()> fn);
/* The same for work on a non-blocking stream that runs as late as CUDA
 * lets it: it is queued only when the host synchronises that stream (or the
 * device), or when more work is queued on it, so work on other streams that
 * the host did not order after it runs first (an all-reduce whose result is
 * read without waiting for it reads the bytes from before). */
cudaError_t emu_enqueue_late(cudaStream_t s, const char *what, std::function<void()> fn);

/* Whether [p, p + bytes) lies inside one device (or pinned host) allocation. */
int emu_is_device(const void *p, size_t bytes);
int emu_is_pinned(const void *p, size_t bytes);

/* Whether s is being captured. */
int emu_capturing(cudaStream_t s);

/* Diagnostics on stderr, "cudaemu: " first. emu_fail is for what a GPU
 * would answer with undefined behaviour or a crash; it aborts. */
[[noreturn]] void emu_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void emu_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Rounds v to TF32 (10 mantissa bits, to nearest even), as tensor cores read it. */
float emu_tf32(float v);

#endif
