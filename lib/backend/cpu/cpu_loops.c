#include "cpu.h"
void ngc_cpu_fill_loop_ops(ngc_backend_ops *ops) { (void)ops; }
