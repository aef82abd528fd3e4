/* The reference's pixel conventions, shared by the data pipeline, the
 * translator and the trainer's visuals: ToTensor then Normalize(0.5, 0.5)
 * on the way in, tensor2im (clamp, (v + 1) / 2 * 255, truncate) on the way
 * out, in float as PyTorch and numpy compute them. */
#ifndef NGC_PIXEL_H
#define NGC_PIXEL_H

#include <stdint.h>

static inline float ngc_pixel_to_unit(uint8_t v) { return ((float)v / 255.0f - 0.5f) / 0.5f; }

/* NaN (a generator with NaN or huge weights, a diverged training run) reads
 * as -1, pixel 0: it would pass a clamp written with < and >, and converting
 * NaN to an integer is undefined behaviour in C. */
static inline uint8_t ngc_unit_to_pixel(float v) {
  v = v > -1.0f ? v : -1.0f;
  v = v < 1.0f ? v : 1.0f;
  return (uint8_t)((v + 1.0f) / 2.0f * 255.0f);
}

#endif
