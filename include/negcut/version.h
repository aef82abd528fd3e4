/* libnegcut version. CMake reads the three numbers below; keep their form. */
#ifndef NEGCUT_VERSION_H
#define NEGCUT_VERSION_H

#define NEGCUT_VERSION_MAJOR 0
#define NEGCUT_VERSION_MINOR 1
#define NEGCUT_VERSION_PATCH 0

/* MAJOR*10000 + MINOR*100 + PATCH, as negcut_version_number() returns it. */
#define NEGCUT_VERSION_NUMBER \
  (NEGCUT_VERSION_MAJOR * 10000 + NEGCUT_VERSION_MINOR * 100 + NEGCUT_VERSION_PATCH)

#define NEGCUT_STRINGIFY_(x) #x
#define NEGCUT_STRINGIFY(x) NEGCUT_STRINGIFY_(x)
#define NEGCUT_VERSION_STRING                                                  \
  NEGCUT_STRINGIFY(NEGCUT_VERSION_MAJOR) "." NEGCUT_STRINGIFY(                 \
      NEGCUT_VERSION_MINOR) "." NEGCUT_STRINGIFY(NEGCUT_VERSION_PATCH)

#endif
