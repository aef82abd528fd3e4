/* negcut_trainer_load_state, which reads files only: the input is written to
 * a file in a scratch folder under /dev/shm and loaded into one tiny NEGCUT
 * trainer made once (fuzz_common.h), with data folders of four 16x16 images
 * so that the data position is restored too. A state that loads must be one
 * the trainer can go on from: one iteration is run after it, and must
 * succeed (a file that does not fit is refused before anything is
 * written, so a failed load leaves the trainer as it was; a state that
 * loads overwrites everything an earlier step changed). The input is the file. */
#include "fuzz_common.h"

static negcut_trainer *trainer;
static char path[600];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  negcut_ctx *ctx = fuzz_ctx();
  negcut_trainer_options o;
  char root[600];
  snprintf(root, sizeof root, "%s/data", fuzz_scratch());
  if (mkdir(root, 0700) != 0) abort();
  fuzz_make_train_data(root);
  fuzz_trainer_options(&o, root);
  if (negcut_trainer_create(&trainer, ctx, &o) != NEGCUT_OK) {
    fprintf(stderr, "fuzz_trainer_state: %s\n", negcut_ctx_last_error(ctx));
    abort();
  }
  snprintf(path, sizeof path, "%s/state.safetensors", fuzz_scratch());
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  negcut_ctx *ctx = fuzz_ctx();
  fuzz_write_file(path, data, size);
  negcut_status st = negcut_trainer_load_state(trainer, path);
  unlink(path); /* nothing left behind if a check below aborts */
  if (st != NEGCUT_OK) {
    FUZZ_CHECK_FAILED(ctx, st);
    return 0;
  }
  negcut_train_progress p;
  FUZZ_CHECK(negcut_trainer_progress(trainer, &p) == NEGCUT_OK, "progress: %s",
             negcut_ctx_last_error(ctx));
  st = negcut_trainer_step(trainer);
  FUZZ_CHECK(st == NEGCUT_OK, "a loaded state does not step: %s (%s)", negcut_status_str(st),
             negcut_ctx_last_error(ctx));
  return 0;
}
