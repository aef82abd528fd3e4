/* The reference backend's op slots, gathered from one file per theme.
 * Every slot is plain C over row-major NCHW float on the host; sums that
 * matter accumulate in double. */
#include "ref.h"

/* Each theme file fills its own slots. (These belong in ref.h; they are here
 * because ref.h is shared with the CPU backend, which only needs the one
 * entry point below.) */
void ngc_ref_fill_elementwise_ops(ngc_backend_ops *ops); /* ref_elementwise.c */
void ngc_ref_fill_conv_ops(ngc_backend_ops *ops);        /* ref_conv.c */
void ngc_ref_fill_resample_ops(ngc_backend_ops *ops);    /* ref_resample.c */
void ngc_ref_fill_norm_ops(ngc_backend_ops *ops);        /* ref_norm.c */
void ngc_ref_fill_rows_ops(ngc_backend_ops *ops);        /* ref_rows.c */
void ngc_ref_fill_loss_ops(ngc_backend_ops *ops);        /* ref_losses.c */
void ngc_ref_fill_optim_ops(ngc_backend_ops *ops);       /* ref_optim.c */

void ngc_ref_fill_compute_ops(ngc_backend_ops *ops) {
  ngc_ref_fill_elementwise_ops(ops);
  ngc_ref_fill_conv_ops(ops);
  ngc_ref_fill_resample_ops(ops);
  ngc_ref_fill_norm_ops(ops);
  ngc_ref_fill_rows_ops(ops);
  ngc_ref_fill_loss_ops(ops);
  ngc_ref_fill_optim_ops(ops);
}
