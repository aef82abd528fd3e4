/* Run-time twins of the version macros, and the build description. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

const char *negcut_version_string(void) { return NEGCUT_VERSION_STRING; }

uint32_t negcut_version_number(void) { return NEGCUT_VERSION_NUMBER; }

static char build_info[512];
static pthread_once_t build_info_once = PTHREAD_ONCE_INIT;

static void build_info_fill(void) {
  int n = snprintf(build_info, sizeof build_info, "libnegcut %s; backends:",
                   NEGCUT_VERSION_STRING);
  if (n > 0 && (size_t)n < sizeof build_info)
    ngc_backend_describe(build_info + n, sizeof build_info - (size_t)n);
}

const char *negcut_build_info(void) {
  pthread_once(&build_info_once, build_info_fill);
  return build_info;
}
