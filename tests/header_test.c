/* Compiled as C99 -pedantic and as C++ by the header tests: every public
 * header must be self-contained and warning-free in both. */
#define NEGCUT_EXPERIMENTAL
#include <negcut.h>
#include <negcut/core.h>
#include <negcut/image.h>
#include <negcut/version.h>
#include <negcut/translate.h>
#include <negcut/nets.h>
#include <negcut/losses.h>
#include <negcut/train.h>

int main(void) {
  negcut_ctx_options o = NEGCUT_CTX_OPTIONS_INIT;
  (void)o;
  return negcut_version_number() == NEGCUT_VERSION_NUMBER ? 0 : 1;
}
