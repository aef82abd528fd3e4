/* The public trainer (trainer.c) over ngc_trainer and the data pipeline;
 * here so that tests and benchmarks can read its graph statistics. */
#ifndef NGC_TRAINER_H
#define NGC_TRAINER_H

/* negcut_random_source is declared only with NEGCUT_EXPERIMENTAL defined
 * before the first negcut header a file includes. */
#ifndef NEGCUT_EXPERIMENTAL
#error "define NEGCUT_EXPERIMENTAL before including any negcut header, then train/trainer.h"
#endif
#include "data.h"
#include "negcut/experimental.h"
#include "negcut/train.h"
#include "train.h"

struct negcut_trainer {
  negcut_ctx *ctx;
  negcut_random_source random; /* a caller's draws, when set */
  ngc_rand_source philox;      /* the trainer's own */
  negcut_trainer_options o;
  ngc_trainer t;
  ngc_data *data;        /* NULL without data folders */
  float *a, *b;          /* (B, C, H, W) host staging */
  int64_t cap;           /* floats in a and in b */
  int64_t epoch;         /* 1-based epoch of the next iteration */
  double images_per_second;
};

#endif
