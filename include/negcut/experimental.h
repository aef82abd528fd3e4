/*
 * Experimental API: no ABI promise, may change in any release. Declared
 * only when NEGCUT_EXPERIMENTAL is defined before including this header
 * (like zstd's ZSTD_STATIC_LINKING_ONLY):
 *
 *   #define NEGCUT_EXPERIMENTAL
 *   #include <negcut/experimental.h>
 */
#ifndef NEGCUT_EXPERIMENTAL_H
#define NEGCUT_EXPERIMENTAL_H

#include "core.h"
#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef NEGCUT_EXPERIMENTAL

/* Where a trainer's random draws come from, so that a test can give it the
 * draws another implementation made (the PyTorch parity tests do). In one
 * iteration the trainer asks, in this order:
 *   flip                 once, only with flip equivariance (FastCUT modes);
 *   per loss evaluation  NEGCUT: N step NCE_X, N step NCE_Y, G step NCE_X,
 *                        G step NCE_Y; CUT: NCE_X, NCE_Y (the _Y ones only
 *                        with the identity loss), and per NCE layer l in
 *                        order: patch_ids, then (NEGCUT) noise.
 * patch_ids fills out[0..n) with distinct positions in [0, hw); noise fills
 * n standard normals (B * S * z_dim for NEGCUT); flip returns non-zero to
 * flip this iteration's input. A callback returning a status other than
 * NEGCUT_OK fails the step with it. */
#define NEGCUT_RANDOM_SOURCE_VERSION 1
typedef struct negcut_random_source {
  uint32_t version;
  negcut_status (*patch_ids)(int32_t layer, int64_t hw, int64_t n, int64_t *out, void *user);
  negcut_status (*noise)(int32_t layer, int64_t n, float *out, void *user);
  int32_t (*flip)(void *user);
  void *user;
} negcut_random_source;

/* Replaces the trainer's Philox draws by src (copied); NULL goes back to
 * them. */
NEGCUT_API negcut_status negcut_trainer_set_random_source(negcut_trainer *t,
                                                          const negcut_random_source *src);

#endif /* NEGCUT_EXPERIMENTAL */

#ifdef __cplusplus
}
#endif
#endif
