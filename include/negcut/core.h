/*
 * libnegcut core: export macro, status codes, version queries, the context.
 *
 * Ownership: what a function hands out through an out-parameter is the
 * caller's and is released with the matching _free function, which accepts
 * NULL. Strings returned as `const char *` belong to the library.
 *
 * Threads: negcut_status_str, the version functions and negcut_build_info are
 * thread-safe. A negcut_ctx is used by one thread at a time.
 */
#ifndef NEGCUT_CORE_H
#define NEGCUT_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "version.h"

#if defined(_WIN32) && defined(NEGCUT_BUILDING_LIBRARY) && defined(NEGCUT_SHARED)
#define NEGCUT_API __declspec(dllexport)
#elif defined(_WIN32) && defined(NEGCUT_SHARED)
#define NEGCUT_API __declspec(dllimport)
#elif defined(__GNUC__) && defined(NEGCUT_BUILDING_LIBRARY)
#define NEGCUT_API __attribute__((visibility("default")))
#else
#define NEGCUT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */

/* Every fallible call returns one of these. Values never change. */
typedef int32_t negcut_status;

#define NEGCUT_OK 0
#define NEGCUT_ERR_INVALID_ARGUMENT (-1) /* NULL, out of range, bad option */
#define NEGCUT_ERR_OUT_OF_MEMORY (-2)
#define NEGCUT_ERR_IO (-3)          /* open, read, write, rename failed */
#define NEGCUT_ERR_BAD_FORMAT (-4)  /* corrupt or unexpected file content */
#define NEGCUT_ERR_SHAPE (-5)       /* tensor shapes do not agree */
#define NEGCUT_ERR_BACKEND (-6)     /* oneDNN, BLAS, CUDA or cuDNN failed */
#define NEGCUT_ERR_UNSUPPORTED (-7) /* not compiled in or not available */
#define NEGCUT_ERR_CANCELLED (-8)   /* a callback asked to stop */
#define NEGCUT_ERR_LIMIT (-9)       /* a size exceeds a limit */
#define NEGCUT_ERR_STATE (-10)      /* call out of order */
#define NEGCUT_ERR_INTERNAL (-11)   /* a bug in libnegcut: please report */

/* A short constant name for a status ("NEGCUT_ERR_IO"); never NULL. */
NEGCUT_API const char *negcut_status_str(negcut_status status);

/* --------------------------------------------------------------- version */

NEGCUT_API const char *negcut_version_string(void); /* "0.1.0" */
NEGCUT_API uint32_t negcut_version_number(void);    /* 100 for 0.1.0 */
/* One line: version, backends compiled in, oneDNN, OpenBLAS, CUDA and cuDNN
 * versions where present. */
NEGCUT_API const char *negcut_build_info(void);

/* ------------------------------------------------------------- context */

/* A context owns the compute backend, the thread budget and the random
 * seed. Everything else is created from one. */
typedef struct negcut_ctx negcut_ctx;

typedef int32_t negcut_backend_kind;
#define NEGCUT_BACKEND_AUTO 0 /* CPU (CUDA only by name until it is validated on a GPU) */
#define NEGCUT_BACKEND_REF 1  /* portable reference code: slow, the oracle */
#define NEGCUT_BACKEND_CPU 2  /* oneDNN and OpenBLAS */
#define NEGCUT_BACKEND_CUDA 3 /* cuDNN and cuBLAS */

/* How fp32 convolutions are computed (translator and trainer options). A
 * Winograd convolution (oneDNN's F(4x4, 3x3) on CPUs with AVX-512; cuDNN's
 * transform algorithms on a GPU) computes the same sums with fewer products
 * and a few times the rounding error of the direct sum; docs/SPEED.md
 * gives the speed and the accuracy measured. */
typedef int32_t negcut_conv_algo;
#define NEGCUT_CONV_AUTO 0     /* Winograd where the backend has it and it gains,
                                  within memory bounds that keep training below half
                                  of PyTorch's peak (docs/SPEED.md) */
#define NEGCUT_CONV_DIRECT 1   /* direct sums only: PyTorch's arithmetic on a CPU (on
                                  a GPU, a transform algorithm only for a shape no
                                  other cuDNN algorithm runs) */
#define NEGCUT_CONV_WINOGRAD 2 /* what AUTO does now, asked for by name */

#define NEGCUT_CTX_OPTIONS_VERSION 1
typedef struct negcut_ctx_options {
  uint32_t version;            /* NEGCUT_CTX_OPTIONS_VERSION */
  negcut_backend_kind backend; /* NEGCUT_BACKEND_* */
  int32_t threads;             /* CPU threads for all work; 0: all cores */
  int32_t device;              /* GPU ordinal for the CUDA backend */
  uint64_t seed;               /* keys every random draw */
} negcut_ctx_options;

#define NEGCUT_CTX_OPTIONS_INIT                                                \
  { NEGCUT_CTX_OPTIONS_VERSION, NEGCUT_BACKEND_AUTO, 0, 0, 0 }

/* Options structs (this one and every negcut_X_options) start with a
 * version and only grow at the end; a library accepts every version up to
 * its own, and the fields a caller's version lacks take their defaults.
 * Three ways to get the defaults:
 *  - the NEGCUT_X_OPTIONS_INIT macro (C and C++, the header's version);
 *  - negcut_X_options_init_v2(opts, NEGCUT_X_OPTIONS_VERSION): fills the
 *    struct of that version and writes no byte beyond it, so a program
 *    (or an FFI binding that mirrors one version of the struct) keeps
 *    working with later libraries whose struct is larger;
 *  - negcut_X_options_init(opts): the same with the version the struct had
 *    when _v2 came (NEGCUT_CTX_OPTIONS_VERSION 1 here; the trainer's 4, the
 *    translator's 3, every other 1), for programs built before; it keeps
 *    filling that version when the struct grows, so a field added later is
 *    set through _v2. (A program built against an older header still, the
 *    trainer's versions 1-3 or the translator's 1-2, must not call it: it
 *    writes today's struct. Use _v2 or the INIT macro there.)
 * _v2 fails with NEGCUT_ERR_INVALID_ARGUMENT for a version this library
 * does not know (0, or newer than its own). */
NEGCUT_API negcut_status negcut_ctx_options_init(negcut_ctx_options *opts);
NEGCUT_API negcut_status negcut_ctx_options_init_v2(negcut_ctx_options *opts, uint32_t version);

/* Creates a context; opts may be NULL for the defaults. On failure *out is
 * NULL and negcut_ctx_last_error(NULL) says why. */
NEGCUT_API negcut_status negcut_ctx_create(negcut_ctx **out,
                                           const negcut_ctx_options *opts);
/* Frees a context; accepts NULL. Everything made with it (models, their
 * translators, trainers, nets, tensors, losses, optimizers) keeps using it
 * and must be freed first: a model loaded with one context and shared with
 * translators of other contexts keeps the loading context alive until the
 * model is freed. */
NEGCUT_API void negcut_ctx_free(negcut_ctx *ctx);

/* The message of the last failure on ctx, or, with ctx NULL, of the last
 * failure in this thread that had no context. "" when there was none. Valid
 * until the next call on the same context or thread. */
NEGCUT_API const char *negcut_ctx_last_error(const negcut_ctx *ctx);

/* What the context resolved to: the backend actually used (never AUTO) and
 * the thread count. */
NEGCUT_API negcut_backend_kind negcut_ctx_backend(const negcut_ctx *ctx);
NEGCUT_API int32_t negcut_ctx_threads(const negcut_ctx *ctx);

/* "ref", "cpu", "cuda", "auto"; NULL for an unknown kind. */
NEGCUT_API const char *negcut_backend_name(negcut_backend_kind kind);

#ifdef __cplusplus
}
#endif
#endif
