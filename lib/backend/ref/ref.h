/* Reference backend internals. */
#ifndef NGC_REF_H
#define NGC_REF_H

#include "backend/backend.h"

/* Memory and compute slots of the reference backend; the CPU backend starts
 * from these and overrides what it does faster. */
void ngc_ref_fill_ops(ngc_backend_ops *ops);
/* The op slots only (ref_ops*.c). */
void ngc_ref_fill_compute_ops(ngc_backend_ops *ops);

#endif
