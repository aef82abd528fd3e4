/* negcut-train's parts: the options (options.c), the loss history and its
 * JSON-lines log (log.c), the HTML report with its loss-curve PNG
 * (report.c), and the processes of a run (world.c). The program itself is
 * negcut_train.c. */
#ifndef NEGCUT_TRAIN_CLI_H
#define NEGCUT_TRAIN_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <negcut.h>

/* ------------------------------------------------------------ options */

typedef struct cli_settings {
  negcut_trainer_options o; /* o.dataroot points at dataroot below */
  char dataroot[4096];
  char name[256];
  char checkpoints_dir[4096];
  int64_t iters, epochs;    /* where to stop; 0: not set */
  uint64_t seed;
  int32_t threads;
  negcut_backend_kind backend;
  int32_t device; /* GPU ordinal; -1: the world's (cli_world_device) */
  int32_t allreduce_host; /* host copies for MPI even where it is CUDA-aware */
  int32_t no_nccl;        /* GPU ranks sum through MPI even where NCCL is built in */
  int64_t save_every, display_every; /* iterations */
  int32_t resume;
} cli_settings;

/* Parses argv into *s. With --resume, the run's saved opt.json is applied
 * first and the command line over it. Prints a message and returns 2 on bad
 * input, 1 on a failure that is not the user's (opt.json unreadable), -1
 * when --help was printed, 0 on success. */
int cli_parse(cli_settings *s, int argc, char **argv);
void cli_usage(FILE *f);
/* Writes the settings as <run>/opt.json (atomically); 0 on success. */
int cli_write_options(const cli_settings *s, const char *path);
const char *cli_mode_name(negcut_train_mode mode);

/* --------------------------------------------------------- losses, log */

enum {
  CLI_D_REAL, CLI_D_FAKE, CLI_G_GAN, CLI_NCE, CLI_NCE_Y, CLI_G, CLI_N, CLI_DIV, CLI_NLOSS
};
extern const char *const cli_loss_names[CLI_NLOSS]; /* "D_real", ... as in the reference */

/* One logged interval: the mean losses over the iterations since the last. */
typedef struct cli_point {
  int64_t iter;
  int64_t epoch;
  double lr, images_per_second, elapsed_s;
  double loss[CLI_NLOSS];
} cli_point;

typedef struct cli_history {
  cli_point *p;
  size_t n, cap;
  uint32_t active; /* bit i: loss i exists in this mode */
} cli_history;

/* The losses a mode logs: no NCE_Y without the identity loss, N and div
 * only for NEGCUT. */
uint32_t cli_active_losses(const negcut_trainer_options *o);
int cli_history_push(cli_history *h, const cli_point *pt);
void cli_history_free(cli_history *h);
/* One JSON object, no newline, into buf. */
void cli_point_json(const cli_point *pt, uint32_t active, char *buf, size_t cap);
/* Reads the log at path into h, keeping the points up to iteration upto,
 * and rewrites the file with only those (the later ones belonged to
 * iterations that the resumed run does again). A missing file is empty.
 * 0 on success. */
int cli_log_reload(cli_history *h, const char *path, int64_t upto);

/* ------------------------------------------------------------ report */

typedef struct cli_report {
  const char *run_dir;     /* <checkpoints>/<name> */
  const char *name;
  const cli_settings *s;
  int64_t iteration, total, end, per_epoch;
  int finished;            /* no auto-refresh once training stopped */
} cli_report;

/* Draws the loss curves of h into an RGB8 buffer of width x height. */
void cli_plot_losses(const cli_history *h, uint8_t *rgb, int width, int height);
/* The loss-curve colour of loss i, RGB. */
void cli_loss_colour(int i, uint8_t rgb[3]);
/* Writes web/images/<iteration>_*.png from the trainer's visuals, then
 * web/losses.png and web/index.html. 0 on success; a message on stderr
 * otherwise. */
int cli_report_update(negcut_ctx *ctx, negcut_trainer *t, const cli_report *r,
                      const cli_history *h);

/* ------------------------------------------------------------- world */

/* The processes of one run (world.c): with MPI (negcut-train-mpi) every
 * rank runs the same command on its share of each global batch, and only
 * rank 0 writes files and prints progress; without it, one process. */
typedef struct cli_world {
  int rank, size;
  int local_rank; /* among the ranks on this machine */
  int cuda_aware; /* the MPI reads and writes device memory */
} cli_world;

/* MPI_Init (where built with MPI); 0 on success. */
int cli_world_init(cli_world *w, int *argc, char ***argv);
/* Makes t one rank of w (negcut_trainer_set_data_parallel_v2), where w has
 * more than one. gpu: the GPU t's context runs on, or -1 for another
 * backend. On GPUs NCCL sums the gradients where they are, where it is
 * built in (NEGCUT_TRAIN_NCCL) and neither s->no_nccl nor
 * s->allreduce_host is set; else MPI does, where they are if it is
 * CUDA-aware and s->allreduce_host is 0, on the trainer's host copies of
 * them otherwise. */
negcut_status cli_world_attach(const cli_world *w, negcut_trainer *t, const cli_settings *s,
                               int gpu);
/* The GPU a rank uses unless --device says: its rank on this machine (one
 * GPU per rank); 0 alone. */
int cli_world_device(const cli_world *w);
/* v[0..n) = its sum over the ranks; the maximum of v over the ranks. Every
 * rank must call them at the same point. */
void cli_world_sum(const cli_world *w, double *v, int n);
int cli_world_max(const cli_world *w, int v);
/* Returns when every rank has called it (MPI_Barrier). */
void cli_world_wait(const cli_world *w);
/* Ends every rank with status rc (MPI_Abort), where there are others. */
void cli_world_abort(const cli_world *w, int rc);
/* Ends NCCL's communicator if one was set up, then MPI_Finalize, where
 * built with MPI. */
void cli_world_finish(const cli_world *w);

/* Shared helpers. */
int cli_mkdirs(const char *path); /* mkdir -p; 0 on success */
/* Writes len bytes to path through a temporary file and rename. */
int cli_write_atomic(const char *path, const char *data, size_t len);

#endif
