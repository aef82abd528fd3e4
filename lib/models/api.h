/* The public handles of negcut/nets.h over the internal networks; shared by
 * lib/losses and lib/optim's public wrappers. */
#ifndef NGC_MODELS_API_H
#define NGC_MODELS_API_H

#include "negcut/nets.h"
#include "net.h"

struct negcut_tensor {
  negcut_ctx *ctx;
  ngc_tensor t;
  int32_t dead; /* a tape's handle after negcut_tape_reset */
};

/* Slots of one size that keep their addresses until the pool is freed. The
 * handles a tape gives out (tensors, records) come from such pools rather
 * than from the tape's arena, so that one kept past negcut_tape_reset is
 * still readable memory, marked dead, and refused (NEGCUT_ERR_STATE) instead
 * of read from freed blocks. Each kind has two pools, used in turn from one
 * reset to the next: a step's dead handles are not reused during the next
 * step, the one in which a stale handle is most likely used by mistake
 * (only the step after that may get one of them back, alive). */
typedef struct ngc_handle_pool {
  size_t slot_bytes;
  char **chunks; /* NGC_POOL_CHUNK slots each */
  int64_t n_chunks;
  int64_t used; /* slots handed out since the last reset */
} ngc_handle_pool;

struct negcut_tape {
  negcut_ctx *ctx;
  ngc_tape tape;
  ngc_handle_pool tensors[2], records[2];
  int32_t side; /* the pools handing out handles now */
};

typedef enum ngc_record_kind {
  NGC_REC_DEAD = 0, /* its tape was reset */
  NGC_REC_SEQ = 1,
  NGC_REC_PROJ = 2,
  NGC_REC_NEG = 3,
  NGC_REC_LOSS = 4
} ngc_record_kind;

struct negcut_net {
  negcut_ctx *ctx;
  ngc_net net;
  ngc_generator_cfg gcfg; /* generators: for checkpoint metadata */
};

struct negcut_record {
  ngc_record_kind kind;
  const void *owner; /* the net or loss that made it */
  negcut_tape *tape;
  int32_t n_taps;
  int32_t taps[NGC_MAX_NCE_LAYERS];
  union {
    ngc_seq_rec seq;
    ngc_proj_rec proj;
    ngc_neg_rec neg;
    void *loss; /* lib/losses' record */
  } u;
};

/* A tape-owned tensor handle around t (NULL when out of memory). */
negcut_tensor *ngc_api_tape_tensor(negcut_tape *tape, const ngc_tensor *t);
/* A record on the tape (zeroed), NULL when out of memory. */
negcut_record *ngc_api_record(negcut_tape *tape, ngc_record_kind kind, const void *owner);
/* NEGCUT_ERR_STATE, naming who, when a tensor among the n given (NULL ones
 * pass) or rec (may be NULL) is a tape's handle from before its reset;
 * else NEGCUT_OK. */
negcut_status ngc_api_live(negcut_ctx *ctx, const char *who, const negcut_record *rec, int32_t n,
                           const negcut_tensor *const *t);

#endif
