/* Network checkpoints: safetensors files whose tensor names are the
 * reference's state_dict names (REFERENCE.md 6, 7), architecture in
 * __metadata__. */
#ifndef NGC_CHECKPOINT_H
#define NGC_CHECKPOINT_H

#include "io/safetensors.h"
#include "net.h"

/* Writes every parameter and buffer of net to path atomically, with the
 * metadata pairs keys[i] = values[i]. */
negcut_status ngc_net_save(negcut_ctx *ctx, const ngc_net *net, const char *path,
                           int32_t n_meta, const char *const *keys,
                           const char *const *values);
/* Loads net's parameters from an open file: every parameter must be there
 * (a "module." prefix is tolerated), as F32 with its exact shape; the blur
 * buffers must hold the fixed filters; a tensor the net does not have is an
 * error. Messages name the tensor and the file (label). */
negcut_status ngc_net_load(negcut_ctx *ctx, ngc_net *net, const ngc_st_file *f,
                           const char *label);
/* The checks of ngc_net_load, which read the file's values only to refuse
 * NaN and infinities: they need only the net's layout (ngc_generator_layout),
 * so a loader can refuse a file that does not hold the network it describes
 * before allocating that network. */
negcut_status ngc_net_check_file(negcut_ctx *ctx, const ngc_net *net, const ngc_st_file *f,
                                 const char *label);
/* The reading half of ngc_net_load, for a file ngc_net_check_file has passed
 * for this net (it does not check again). */
negcut_status ngc_net_read(negcut_ctx *ctx, ngc_net *net, const ngc_st_file *f,
                           const char *label);
/* The generator configuration of a checkpoint: from its metadata when it has
 * it, else inferred from the tensor names and shapes (a converted reference
 * .pth). */
negcut_status ngc_generator_cfg_of(negcut_ctx *ctx, const ngc_st_file *f, const char *label,
                                   ngc_generator_cfg *cfg);
/* The metadata pairs describing cfg, for ngc_net_save (static storage in
 * *buf, valid until the next call with the same buf). */
typedef struct ngc_cfg_meta {
  const char *keys[8];
  const char *values[8];
  char text[8][24];
  int32_t n;
} ngc_cfg_meta;
void ngc_generator_cfg_meta(const ngc_generator_cfg *cfg, ngc_cfg_meta *meta);

#endif
