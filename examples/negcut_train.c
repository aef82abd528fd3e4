/* negcut-train: train a CUT, FastCUT or NEGCUT translator from two folders.
 *
 *   negcut-train --dataroot DIR --name NAME [--mode cut|fastcut|negcut|fastnegcut]
 *                [--iters N | --epochs N] [--resume] [--help for the rest]
 *
 * Everything goes to CHECKPOINTS/NAME/ (CHECKPOINTS: --checkpoints-dir,
 * default ./checkpoints):
 *   latest_net_G.safetensors   the generator, for negcut-translate; also
 *                              latest_net_D, _F and, for NEGCUT, _N and _F_
 *   train_state.safetensors    everything --resume needs
 *   opt.json                   the options of the run (--resume reads them)
 *   loss_log.jsonl             one JSON object per --display-every iterations
 *   web/index.html             loss curves and samples at every checkpoint
 * Checkpoints are written every --save-every iterations, at the end, and on
 * Ctrl-C (SIGINT) or SIGTERM, after which the program exits 130 (143).
 *
 * Progress: on a terminal, one line redrawn in place on stderr; otherwise
 * the JSON lines of loss_log.jsonl also go to stdout. Exit status: 0 done,
 * 1 failure, 2 bad command line, 130/143 interrupted.
 *
 * Built with NEGCUT_TRAIN_MPI this is negcut-train-mpi, each process one
 * rank of a data-parallel run (docs/PARALLEL.md): rank 0 writes and prints,
 * the logged losses are every rank's mean, a signal to any rank stops all
 * after the same iteration. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <negcut.h>

#include "train/train_cli.h"

/* Atomic: the handler may run on any thread (the data thread, OpenMP's);
 * lock-free, as a handler needs. */
static atomic_int stop_signal;
static atomic_llong first_signal_s;
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "the signal handler's atomics must be lock-free");

/* The first SIGINT or SIGTERM asks for a stop after the current iteration.
 * One that comes 2 s or more later kills at once; an earlier one is taken as
 * the same request (`timeout -s INT` and a terminal's process group can
 * deliver one interrupt twice). */
static void on_signal(int sig) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
  if (!stop_signal) {
    first_signal_s = ts.tv_sec;
    stop_signal = sig;
  } else if (ts.tv_sec - first_signal_s >= 2) {
    signal(sig, SIG_DFL);
    raise(sig);
  }
}

typedef struct run {
  const cli_settings *s;
  const cli_world *w;
  int root;               /* rank 0: writes the files and prints the progress */
  int stop;               /* the signal that stops every rank after this iteration, or 0 */
  double ips;             /* images per second of the last iteration, every rank's */
  negcut_ctx *ctx;
  negcut_trainer *t;
  char dir[4400];         /* CHECKPOINTS/NAME */
  FILE *log;              /* loss_log.jsonl, appended */
  cli_history hist;
  int tty;
  int stdout_gone;        /* a closed pipe: the points go on to the log alone */
  int write_options;      /* --resume: opt.json is rewritten with the first checkpoint */
  int64_t end, total, per_epoch;
  double t0, elapsed_before, last_draw;
  double sum[CLI_NLOSS];  /* losses since the last logged point */
  int64_t count;
  negcut_train_progress last;
  int lock_fd;            /* holds CHECKPOINTS/NAME/.lock while the run lives, or -1 */
} run;

/* Locks dir/.lock for this process (released when it exits), so that two
 * runs never write one folder; the descriptor, or -1 with a message. */
static int lock_run(const char *dir) {
  char path[4500];
  snprintf(path, sizeof path, "%s/.lock", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    fprintf(stderr, "negcut-train: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    fprintf(stderr, "negcut-train: %s\n", err == EWOULDBLOCK
                                            ? "another negcut-train is running in this folder; wait "
                                              "for it, or choose another --name"
                                            : strerror(err));
    fprintf(stderr, "negcut-train: (%s)\n", dir);
    close(fd);
    return -1;
  }
  return fd;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static int64_t epoch_of(const run *r, int64_t iteration) {
  return r->per_epoch > 0 && iteration > 0 ? (iteration - 1) / r->per_epoch + 1 : 1;
}

/* Clears the progress line so that a message starts on a clean line. */
static void clear_bar(const run *r) {
  if (r->tty) fputs("\r\033[K", stderr);
}

/* Logs the mean losses since the last point. */
static void flush_point(run *r) {
  cli_point pt;
  char line[1024];
  if (r->count == 0) return;
  memset(&pt, 0, sizeof pt);
  pt.iter = r->last.iteration;
  pt.epoch = epoch_of(r, pt.iter);
  pt.lr = r->last.lr;
  pt.images_per_second = r->ips;
  pt.elapsed_s = r->elapsed_before + now() - r->t0;
  for (int i = 0; i < CLI_NLOSS; i++) pt.loss[i] = r->sum[i] / (double)r->count;
  memset(r->sum, 0, sizeof r->sum);
  r->count = 0;
  if (cli_history_push(&r->hist, &pt)) return;
  cli_point_json(&pt, r->hist.active, line, sizeof line);
  if (r->log) {
    fprintf(r->log, "%s\n", line);
    fflush(r->log);
  }
  if (!r->tty && !r->stdout_gone && (printf("%s\n", line) < 0 || fflush(stdout) != 0)) {
    r->stdout_gone = 1; /* `negcut-train ... | head`: not a reason to stop training */
    fprintf(stderr, "negcut-train: standard output is closed (%s); the losses go on to "
                    "loss_log.jsonl\n", strerror(errno));
  }
}

static void format_duration(char *buf, size_t cap, double s) {
  if (!(s >= 0) || s > 1e8) {
    snprintf(buf, cap, "?");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

static void draw_bar(run *r) {
  const negcut_train_progress *p = &r->last;
  char line[512], eta[32];
  struct winsize ws;
  int cols = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col : 100;
  int64_t span = r->end > 0 ? r->end : 1;
  int filled = (int)(20 * p->iteration / span), len;
  double its = r->ips / (r->s->o.batch_size > 0 ? r->s->o.batch_size : 1) / r->w->size;
  format_duration(eta, sizeof eta, its > 0 ? (double)(r->end - p->iteration) / its : -1);
  /* what matters most first: a narrow terminal cuts the losses, not the ETA */
  len = snprintf(line, sizeof line, "%lld/%lld [%.*s%.*s] ep %lld/%lld %.2f img/s ETA %s |",
                 (long long)p->iteration, (long long)r->end, filled, "####################",
                 20 - filled, "....................", (long long)epoch_of(r, p->iteration),
                 (long long)(r->s->o.n_epochs + r->s->o.n_epochs_decay), r->ips, eta);
  for (int i = 0; i < CLI_NLOSS && len < (int)sizeof line; i++) {
    if (!(r->hist.active >> i & 1) || i == CLI_G) continue;
    double v = r->count ? r->sum[i] / (double)r->count
               : r->hist.n ? r->hist.p[r->hist.n - 1].loss[i] : 0;
    len += snprintf(line + len, sizeof line - (size_t)len, " %s %.3f", cli_loss_names[i], v);
  }
  if ((int)strlen(line) > cols - 1) line[cols - 1] = '\0';
  fprintf(stderr, "\r%s\033[K", line);
  fflush(stderr);
}

/* After every iteration, on every rank: with several, the losses become
 * the global batch's (the mean of the ranks'), images per second their
 * sum, and a signal to any rank stops them all after this iteration. */
static int on_progress(const negcut_train_progress *p, void *user) {
  run *r = user;
  double v[CLI_NLOSS + 1] = {p->d_real,  p->d_fake,  p->g_gan,     p->nce_x,
                             p->nce_y,   p->g_total, p->n_total,   p->diversity,
                             p->images_per_second};
  cli_world_sum(r->w, v, CLI_NLOSS + 1);
  r->stop = cli_world_max(r->w, stop_signal);
  r->ips = v[CLI_NLOSS];
  r->last = *p;
  if (!r->root) return r->stop != 0;
  for (int i = 0; i < CLI_NLOSS; i++) r->sum[i] += v[i] / r->w->size;
  r->count++;
  if (p->iteration % r->s->display_every == 0 || p->iteration == r->end) flush_point(r);
  if (r->tty) {
    double t = now();
    if (t - r->last_draw >= 0.2 || p->iteration == r->end) {
      draw_bar(r);
      r->last_draw = t;
    }
  }
  return r->stop != 0;
}

/* Networks, training state and report at the current iteration. */
static int checkpoint(run *r, int finished) {
  static const char *tags[5] = {"G", "D", "F", "N", "F_"};
  int neg = r->s->o.mode == NEGCUT_MODE_NEGCUT || r->s->o.mode == NEGCUT_MODE_FASTNEGCUT;
  char path[4600];
  negcut_status st = NEGCUT_OK;
  negcut_train_progress p;
  negcut_trainer_progress(r->t, &p);
  flush_point(r);
  if (r->write_options) {
    snprintf(path, sizeof path, "%s/opt.json", r->dir);
    if (cli_write_options(r->s, path)) return -1;
    r->write_options = 0;
  }
  for (int id = 0; id < (neg ? 5 : 3) && st == NEGCUT_OK; id++) {
    snprintf(path, sizeof path, "%s/latest_net_%s.safetensors", r->dir, tags[id]);
    st = negcut_trainer_save_network(r->t, (negcut_net_id)id, path);
  }
  snprintf(path, sizeof path, "%s/train_state.safetensors", r->dir);
  if (st == NEGCUT_OK) st = negcut_trainer_save_state(r->t, path);
  if (st != NEGCUT_OK) {
    clear_bar(r);
    fprintf(stderr, "negcut-train: saving the checkpoint failed: %s (%s)\n",
            negcut_ctx_last_error(r->ctx), negcut_status_str(st));
    return -1;
  }
  cli_report rep = {r->dir, r->s->name, r->s, p.iteration, r->total, r->end, r->per_epoch, finished};
  if (p.iteration > 0) cli_report_update(r->ctx, r->t, &rep, &r->hist);
  clear_bar(r);
  fprintf(stderr, "negcut-train: checkpoint at iteration %lld in %s\n", (long long)p.iteration, r->dir);
  return 0;
}

/* Where this run stops, or -1 with a message. */
static int64_t stop_at(const run *r) {
  const cli_settings *s = r->s;
  int64_t end = s->iters ? s->iters : s->epochs ? s->epochs * r->per_epoch : r->total;
  if (end > r->total) {
    fprintf(stderr,
            "negcut-train: %s %lld goes past the end of the schedule (%lld iterations: %d + %d "
            "epochs of %lld); raise --n-epochs or --n-epochs-decay\n",
            s->iters ? "--iters" : "--epochs", (long long)(s->iters ? s->iters : s->epochs),
            (long long)r->total, (int)s->o.n_epochs, (int)s->o.n_epochs_decay, (long long)r->per_epoch);
    return -1;
  }
  return end;
}

/* After setup every rank learns the worst outcome among them before the
 * first step, so none waits in a collective call for one that left. */
enum { SETUP_GO = 0, SETUP_DONE = 1, SETUP_FAILED = 2 /* + rc - 1 */ };

/* The run on this rank; *collective is set once the ranks step together. */
static int train(const cli_world *w, int argc, char **argv, int *collective) {
  cli_settings s;
  run r;
  negcut_ctx_options co;
  negcut_status st;
  char path[4600];
  int done_already = 0;
  memset(&r, 0, sizeof r);
  r.lock_fd = -1;
  int rc = cli_parse(&s, argc, argv);
  if (rc < 0) return 0; /* --help, the same on every rank */
  if (rc) goto agree;
  r.s = &s;
  r.w = w;
  r.root = w->rank == 0;
  r.tty = r.root && isatty(2);
  r.hist.active = cli_active_losses(&s.o);
  snprintf(r.dir, sizeof r.dir, "%s/%s", s.checkpoints_dir, s.name);
  snprintf(path, sizeof path, "%s/train_state.safetensors", r.dir);
  /* the folder is this run's before anything in it is looked at */
  rc = 1;
  if (r.root && cli_mkdirs(r.dir)) {
    fprintf(stderr, "negcut-train: cannot create %s: %s\n", r.dir, strerror(errno));
    goto agree;
  }
  if (r.root && (r.lock_fd = lock_run(r.dir)) < 0) goto agree;
  rc = 2;
  if (!s.resume && file_exists(path)) {
    fprintf(stderr, "negcut-train: %s already holds a run; add --resume to continue it, or remove "
                    "the folder (or choose another --name) to start over\n", r.dir);
    goto agree;
  }
  if (s.resume && !file_exists(path)) {
    fprintf(stderr, "negcut-train: --resume: there is no %s to continue from\n", path);
    goto agree;
  }
  rc = 1;
  negcut_ctx_options_init_v2(&co, NEGCUT_CTX_OPTIONS_VERSION);
  co.backend = s.backend;
  co.threads = s.threads;
  co.device = s.device >= 0 ? s.device : cli_world_device(w);
  co.seed = s.seed;
  if (negcut_ctx_create(&r.ctx, &co) != NEGCUT_OK) {
    fprintf(stderr, "negcut-train: %s\n", negcut_ctx_last_error(NULL));
    goto agree;
  }
  st = negcut_trainer_create(&r.t, r.ctx, &s.o);
  if (st == NEGCUT_OK)
    st = cli_world_attach(w, r.t, &s,
                          negcut_ctx_backend(r.ctx) == NEGCUT_BACKEND_CUDA ? (int)co.device : -1);
  if (st == NEGCUT_OK && s.resume) st = negcut_trainer_load_state(r.t, path);
  if (st != NEGCUT_OK) {
    fprintf(stderr, "negcut-train: %s (%s)\n", negcut_ctx_last_error(r.ctx), negcut_status_str(st));
    if (st == NEGCUT_ERR_INVALID_ARGUMENT) rc = 2; /* options the trainer refused */
    goto agree;
  }
  negcut_trainer_progress(r.t, &r.last);
  r.per_epoch = r.last.iterations_per_epoch;
  r.total = r.last.total_iterations;
  if ((r.end = stop_at(&r)) < 0) {
    rc = 2;
    goto agree;
  }
  if (r.root) {
    /* A resumed run's options (with what the command line overrides) are
     * written with its first checkpoint: a resume that fails before it
     * leaves the run's options as they were. */
    snprintf(path, sizeof path, "%s/opt.json", r.dir);
    if (s.resume)
      r.write_options = 1;
    else if (cli_write_options(&s, path))
      goto agree;
    snprintf(path, sizeof path, "%s/loss_log.jsonl", r.dir);
    if (s.resume ? cli_log_reload(&r.hist, path, r.last.iteration) : cli_write_atomic(path, "", 0)) {
      fprintf(stderr, "negcut-train: cannot rewrite %s\n", path);
      goto agree;
    }
    if (r.hist.n) r.elapsed_before = r.hist.p[r.hist.n - 1].elapsed_s;
    if (!(r.log = fopen(path, "a"))) {
      fprintf(stderr, "negcut-train: cannot open %s: %s\n", path, strerror(errno));
      goto agree;
    }
    char procs[64] = "", device[32] = "";
    if (w->size > 1) snprintf(procs, sizeof procs, " x %d processes", w->size);
    if (negcut_ctx_backend(r.ctx) == NEGCUT_BACKEND_CUDA)
      snprintf(device, sizeof device, "device %d, ", (int)co.device);
    fprintf(stderr, "negcut-train: %s %s on %s (%s%d threads%s): %lld iterations per epoch, %lld in the "
                    "schedule; %s iteration %lld, stopping at %lld\n",
            cli_mode_name(s.o.mode), s.name, negcut_backend_name(negcut_ctx_backend(r.ctx)),
            device, (int)negcut_ctx_threads(r.ctx), procs, (long long)r.per_epoch, (long long)r.total,
            s.resume ? "resuming after" : "starting at", (long long)r.last.iteration, (long long)r.end);
  }
  rc = 0;
  if (r.last.iteration >= r.end) {
    if (r.root)
      fprintf(stderr, "negcut-train: nothing to do: the run is already at iteration %lld\n",
              (long long)r.last.iteration);
    done_already = 1;
  }
agree: {
  /* every process on one backend (--backend auto could part them) */
  const int kind = r.ctx ? (int)negcut_ctx_backend(r.ctx) : -1;
  const int hi = cli_world_max(w, kind), lo = -cli_world_max(w, -kind);
  if (!rc && lo >= 0 && lo != hi) {
    if (r.root)
      fprintf(stderr, "negcut-train: the processes run on different backends (%s and %s): give "
                      "them all one --backend\n",
              negcut_backend_name((negcut_backend_kind)lo), negcut_backend_name((negcut_backend_kind)hi));
    rc = 1;
  }
  const int mine = rc ? SETUP_FAILED + rc - 1 : done_already ? SETUP_DONE : SETUP_GO;
  const int worst = cli_world_max(w, mine);
  if (worst >= SETUP_FAILED) { /* every rank exits with the worst status */
    if (!rc) fprintf(stderr, "negcut-train: stopping: another process of the run failed\n");
    rc = worst - SETUP_FAILED + 1;
  }
  if (worst != SETUP_GO) goto done;
}

  /* Ctrl-C and SIGTERM stop after the current iteration, with a checkpoint. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN); /* a closed stdout is noticed where it is written */

  *collective = 1;
  rc = 1;
  r.t0 = now();
  while (r.last.iteration < r.end) {
    int64_t it = r.last.iteration, next = (it / s.save_every + 1) * s.save_every;
    if (next > r.end) next = r.end;
    st = negcut_trainer_run(r.t, next - it, on_progress, &r);
    negcut_trainer_progress(r.t, &r.last);
    if (st == NEGCUT_ERR_CANCELLED && r.stop) {
      if (r.last.iteration < r.end) break;
      st = NEGCUT_OK; /* the stop came with the last iteration: finish as usual */
    }
    if (st != NEGCUT_OK) {
      clear_bar(&r);
      fprintf(stderr, "negcut-train: iteration %lld failed: %s (%s)\n", (long long)r.last.iteration + 1,
              negcut_ctx_last_error(r.ctx), negcut_status_str(st));
      /* An image that cannot be used (unreadable, damaged, over the size
       * limit, smaller than the crop) fails the step before anything is
       * updated: keep the iterations since the last checkpoint. (Alone only:
       * another rank's data failure leaves this one waiting, not here.) */
      if (w->size == 1 &&
          (st == NEGCUT_ERR_IO || st == NEGCUT_ERR_BAD_FORMAT || st == NEGCUT_ERR_LIMIT ||
           st == NEGCUT_ERR_INVALID_ARGUMENT) &&
          r.last.iteration > 0 && checkpoint(&r, 0) == 0)
        fprintf(stderr, "negcut-train: saved iteration %lld; mend or remove the file, then "
                        "continue with the same command and --resume\n",
                (long long)r.last.iteration);
      goto done;
    }
    if (r.root && checkpoint(&r, r.last.iteration >= r.end)) goto done;
  }
  if (r.stop && r.last.iteration < r.end) {
    int sig = r.stop;
    if (r.root) {
      clear_bar(&r);
      fprintf(stderr, "negcut-train: %s at iteration %lld: saving a checkpoint (interrupt again to quit without it)\n",
              sig == SIGINT ? "interrupted" : "terminated", (long long)r.last.iteration);
      if (checkpoint(&r, 1) == 0)
        fprintf(stderr, "negcut-train: saved; continue with the same command and --resume\n");
    }
    /* mpiexec ends the job when a rank exits non-zero: none leaves before rank 0 saved */
    cli_world_wait(w);
    rc = 128 + sig;
    goto done;
  }
  if (r.root)
    fprintf(stderr, "negcut-train: done: iteration %lld in %.1f s; generator %s/latest_net_G.safetensors, "
                    "report %s/web/index.html\n",
            (long long)r.last.iteration, now() - r.t0, r.dir, r.dir);
  rc = 0;
done:
  if (r.log) fclose(r.log);
  if (r.lock_fd >= 0) close(r.lock_fd);
  cli_history_free(&r.hist);
  negcut_trainer_free(r.t);
  negcut_ctx_free(r.ctx);
  return rc;
}

int main(int argc, char **argv) {
  cli_world w;
  int collective = 0;
  if (cli_world_init(&w, &argc, &argv)) {
    fprintf(stderr, "negcut-train: MPI_Init failed\n");
    return 1;
  }
  const int rc = train(&w, argc, argv, &collective);
  /* A rank that fails while the others step would leave them waiting in
   * their next collective call: end them all. */
  if (collective && rc != 0 && rc != 128 + SIGINT && rc != 128 + SIGTERM) cli_world_abort(&w, rc);
  cli_world_finish(&w);
  return rc;
}
