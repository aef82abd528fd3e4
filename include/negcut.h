/*
 * libnegcut: contrastive unpaired image-to-image translation (CUT, FastCUT,
 * NEGCUT) for C and C++ programs.
 *
 *   #include <negcut.h>
 *
 * Each part of the API lives in its own header under negcut/; this one
 * includes them all. Link with `pkg-config --libs negcut` or CMake's
 * find_package(negcut) and target negcut::negcut.
 */
#ifndef NEGCUT_H
#define NEGCUT_H

#include "negcut/version.h"
#include "negcut/core.h"
#include "negcut/image.h"
#include "negcut/translate.h"
#include "negcut/nets.h"
#include "negcut/losses.h"
#include "negcut/train.h"
#include "negcut/experimental.h" /* empty unless NEGCUT_EXPERIMENTAL is defined */

#endif
