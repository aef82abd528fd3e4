/* Convolution slots of the CUDA backend on cuDNN's convolution API (the
 * cudnnConvolution* calls, still in cuDNN 9), with plans cached by shape.
 *
 * A plan is the descriptors of one convolution src (N, C, H, W) -> dst
 * (N, K, Ho, Wo) with an r x r filter, stride, zero padding and data type,
 * for one direction (forward, backward-data, backward-filter), plus the
 * algorithm and its workspace size, chosen once. Algorithms come from
 * cuDNN's heuristics (cudnnGet*_v7), not from timing them (cudnnFind*): a
 * timed choice can differ from run to run and with it the result bits,
 * and DESIGN.md promises the same bits for the same seed. Only algorithms
 * cuDNN reports as deterministic are taken, and fp32 plans use FMA math
 * only: no TF32 tensor cores, so fp32 is fp32, unless the caller allows
 * TF32 (ngc_conv_params.tf32, opt-in for inference and for training, in
 * every direction: PyTorch's default for cuDNN convolutions since Ampere).
 * An algorithm cuDNN listed but then refuses when it runs is struck from
 * the plan and the next one is taken. Winograd and FFT algorithms come
 * last where ngc_conv_params.winograd does not allow them (transform_algo).
 *
 * ConvTranspose2d with weight (Ci, Co, k, k) is the adjoint of the
 * convolution from its output (N, Co, Ho, Wo) to its input (N, Ci, H, W)
 * with that array read as a (K = Ci, C = Co) filter: its forward is that
 * convolution's backward-data, its dx that convolution's forward, its dw
 * that convolution's backward-filter with the two activations swapped.
 * output_padding needs nothing: with out_pad < stride the convolution of
 * the larger output still lands on H x W.
 *
 * bfloat16 (ngc_conv_params.bf16, inference): x is converted to bf16, and
 * w too unless the caller passes it already converted (w_bf16, which the
 * translator makes once); the convolution runs with bf16 tensors and fp32
 * accumulation (cuDNN's BFLOAT16 configuration: x, w and y all bf16), and y
 * comes back to fp32 with the fp32 bias added in the same pass. Where cuDNN
 * has no bf16 algorithm for a shape (GPUs before sm_80), or refuses every
 * one when it runs, that shape runs in fp32, which the slot allows ("may
 * compute in bfloat16"). Transposed convolutions always run in fp32. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

/* The largest workspace an algorithm may ask for. */
#define MAX_WORK_BYTES ((size_t)512 << 20)

typedef enum conv_op { CONV_FWD = 0, CONV_BWD_DATA = 1, CONV_BWD_FILTER = 2 } conv_op;

/* Compared with memcmp: built on a zeroed struct. */
typedef struct conv_key {
  int32_t op, bf16, tf32;
  int32_t winograd;       /* transform algorithms (Winograd, FFT) allowed */
  int32_t n, c, h, w;     /* the convolution's input */
  int32_t k, ho, wo;      /* its output channels and size */
  int32_t r, stride, pad; /* r x r filter (K, C, r, r) */
} conv_key;

typedef struct conv_plan {
  conv_key key;
  int32_t usable; /* 0: cuDNN has no algorithm (bf16 plans only are kept so) */
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  int32_t algo; /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t by op */
  uint32_t refused; /* bit a: algorithm a failed with NOT_SUPPORTED when run */
  size_t work_bytes;
  struct conv_plan *next;
} conv_plan;

struct ngc_cuda_convs {
  conv_plan *head;
};

static const char *op_name(int32_t op) {
  return op == CONV_FWD ? "convolution forward"
         : op == CONV_BWD_DATA ? "convolution backward-data"
                               : "convolution backward-filter";
}

static void plan_free(conv_plan *p) {
  if (p->x) cudnnDestroyTensorDescriptor(p->x);
  if (p->y) cudnnDestroyTensorDescriptor(p->y);
  if (p->w) cudnnDestroyFilterDescriptor(p->w);
  if (p->conv) cudnnDestroyConvolutionDescriptor(p->conv);
  free(p);
}

void ngc_cuda_convs_destroy(ngc_backend *be) {
  ngc_cuda *c = ngc_cuda_of(be);
  if (!c->convs) return;
  for (conv_plan *p = c->convs->head, *next; p; p = next) {
    next = p->next;
    plan_free(p);
  }
  free(c->convs);
  c->convs = NULL;
}

/* The shared workspace, grown to at least bytes. The old block goes back to
 * the cache: work already enqueued on the stream finishes before anything
 * enqueued later can reuse it. */
static negcut_status workspace(ngc_backend *be, size_t bytes, void **out) {
  ngc_cuda *c = ngc_cuda_of(be);
  if (bytes > c->work_bytes || (bytes && !c->work)) {
    if (c->work) ngc_cuda_free(be, c->work);
    c->work = NULL;
    c->work_bytes = 0;
    negcut_status st = ngc_cuda_scratch(be, bytes, &c->work, "convolution workspace");
    if (st) return st;
    c->work_bytes = bytes;
  }
  *out = c->work;
  return NEGCUT_OK;
}

/* One candidate of cuDNN's heuristics, whichever direction. */
typedef struct candidate {
  int32_t algo;
  cudnnStatus_t status;
  cudnnDeterminism_t det;
  cudnnMathType_t math;
} candidate;

/* The math type the heuristics are asked under: cuDNN's default (which may
 * take tensor cores) for bf16 and TF32 plans, FMA for exact fp32. */
static cudnnMathType_t listing_math(const conv_key *k) {
  return k->bf16 || k->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

/* cuDNN may list an algorithm once per math type it can take: room for
 * every algorithm of a direction in several math types */
#define MAX_CANDIDATES 64

static negcut_status heuristics(ngc_backend *be, conv_plan *p, candidate *cand, int *n) {
  cudnnHandle_t h = ngc_cuda_of(be)->dnn;
  negcut_status st = NEGCUT_OK;
  *n = 0;
  if (p->key.op == CONV_FWD) {
    cudnnConvolutionFwdAlgoPerf_t perf[MAX_CANDIDATES];
    st = ngc_cuda_check_dnn(be, cudnnGetConvolutionForwardAlgorithm_v7(
                                    h, p->x, p->w, p->conv, p->y, MAX_CANDIDATES, n, perf),
                            "forward heuristics");
    for (int i = 0; !st && i < *n && i < MAX_CANDIDATES; i++)
      cand[i] = (candidate){(int32_t)perf[i].algo, perf[i].status, perf[i].determinism,
                            perf[i].mathType};
  } else if (p->key.op == CONV_BWD_DATA) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_CANDIDATES];
    st = ngc_cuda_check_dnn(be, cudnnGetConvolutionBackwardDataAlgorithm_v7(
                                    h, p->w, p->y, p->conv, p->x, MAX_CANDIDATES, n, perf),
                            "backward-data heuristics");
    for (int i = 0; !st && i < *n && i < MAX_CANDIDATES; i++)
      cand[i] = (candidate){(int32_t)perf[i].algo, perf[i].status, perf[i].determinism,
                            perf[i].mathType};
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_CANDIDATES];
    st = ngc_cuda_check_dnn(be, cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                                    h, p->x, p->y, p->conv, p->w, MAX_CANDIDATES, n, perf),
                            "backward-filter heuristics");
    for (int i = 0; !st && i < *n && i < MAX_CANDIDATES; i++)
      cand[i] = (candidate){(int32_t)perf[i].algo, perf[i].status, perf[i].determinism,
                            perf[i].mathType};
  }
  if (*n > MAX_CANDIDATES) *n = MAX_CANDIDATES;
  return st;
}

/* cuDNN's workspace size for algo, or a failure status if it cannot run it. */
static cudnnStatus_t work_size(ngc_backend *be, const conv_plan *p, int32_t algo, size_t *bytes) {
  cudnnHandle_t h = ngc_cuda_of(be)->dnn;
  *bytes = 0;
  if (p->key.op == CONV_FWD)
    return cudnnGetConvolutionForwardWorkspaceSize(h, p->x, p->w, p->conv, p->y,
                                                   (cudnnConvolutionFwdAlgo_t)algo, bytes);
  if (p->key.op == CONV_BWD_DATA)
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->w, p->y, p->conv, p->x,
                                                        (cudnnConvolutionBwdDataAlgo_t)algo,
                                                        bytes);
  return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p->x, p->y, p->conv, p->w,
                                                        (cudnnConvolutionBwdFilterAlgo_t)algo,
                                                        bytes);
}

/* The algorithms cuDNN documents as non-deterministic (atomics), skipped
 * when the heuristics gave nothing and every algorithm is tried. */
static int known_nondeterministic(int32_t op, int32_t algo) {
  if (op == CONV_BWD_DATA) return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
  if (op == CONV_BWD_FILTER)
    return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 ||
           algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
  return 0;
}

/* Winograd and FFT algorithms: the same sums through transforms, with more
 * rounding error than the direct (GEMM-like) ones; where the caller does
 * not allow them (ngc_conv_params.winograd) they come after all others. */
static int transform_algo(int32_t op, int32_t algo) {
  if (op == CONV_FWD)
    return algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT || algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
           algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD ||
           algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
  if (op == CONV_BWD_DATA)
    return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT ||
           algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
           algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
           algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
  return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT ||
         algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
         algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

/* Sets p->algo and p->work_bytes from cuDNN's n candidates, or else the
 * first algorithm that accepts the plan, skipping transform algorithms
 * when no_transforms; *found 0 when none fits. */
static void choose_among(ngc_backend *be, conv_plan *p, const candidate *cand, int n,
                         int no_transforms, int *found) {
  const int bf16 = p->key.bf16;
  /* bf16 and TF32 plans take cuDNN's math per candidate, fp32 FMA only */
  const int any_math = bf16 || p->key.tf32;
  const cudnnMathType_t fp32_math = CUDNN_FMA_MATH;
  size_t bytes = 0;
  *found = 0;
  /* fp32: candidates cuDNN lists for FMA math first, then those listed for
   * its default math, run with FMA math; never tensor-op (TF32) ones. */
  for (int pass = 0; pass < (any_math ? 1 : 2); pass++)
    for (int i = 0; i < n; i++) {
      if (cand[i].status != CUDNN_STATUS_SUCCESS || cand[i].det != CUDNN_DETERMINISTIC) continue;
      if (cand[i].algo < 32 && (p->refused >> cand[i].algo & 1u)) continue;
      if (no_transforms && transform_algo(p->key.op, cand[i].algo)) continue;
      /* TF32 may round to 10 mantissa bits, never convert to fp16 */
      if (p->key.tf32 && cand[i].math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
      if (!any_math && cand[i].math != (pass ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH)) continue;
      if (cudnnSetConvolutionMathType(p->conv, any_math ? cand[i].math : fp32_math) !=
          CUDNN_STATUS_SUCCESS)
        continue;
      if (work_size(be, p, cand[i].algo, &bytes) != CUDNN_STATUS_SUCCESS ||
          bytes > MAX_WORK_BYTES)
        continue;
      p->algo = cand[i].algo;
      p->work_bytes = bytes;
      *found = 1;
      return;
    }
  /* Heuristics gave nothing usable: the first algorithm that accepts it. */
  const int count = p->key.op == CONV_FWD        ? CUDNN_CONVOLUTION_FWD_ALGO_COUNT
                    : p->key.op == CONV_BWD_DATA ? CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT
                                                 : CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  if (cudnnSetConvolutionMathType(p->conv, bf16 ? CUDNN_TENSOR_OP_MATH
                                           : p->key.tf32 ? CUDNN_DEFAULT_MATH
                                                         : fp32_math) != CUDNN_STATUS_SUCCESS)
    return;
  for (int32_t a = 0; a < count; a++) {
    if (known_nondeterministic(p->key.op, a) || (p->refused >> a & 1u)) continue;
    if (no_transforms && transform_algo(p->key.op, a)) continue;
    if (work_size(be, p, a, &bytes) != CUDNN_STATUS_SUCCESS || bytes > MAX_WORK_BYTES) continue;
    p->algo = a;
    p->work_bytes = bytes;
    *found = 1;
    return;
  }
}

/* Sets p->algo and p->work_bytes; *found 0 when no algorithm fits. Where
 * the plan does not allow transform algorithms, they are still taken when
 * no other algorithm runs the plan (a preference, not a refusal). */
static negcut_status choose_algo(ngc_backend *be, conv_plan *p, int *found) {
  candidate cand[MAX_CANDIDATES];
  int n = 0;
  *found = 0;
  /* choose_among leaves its last candidate's math type on the descriptor;
   * the heuristics must list what the plan's own math allows */
  negcut_status st = ngc_cuda_check_dnn(
      be, cudnnSetConvolutionMathType(p->conv, listing_math(&p->key)), "math type");
  if (!st) st = heuristics(be, p, cand, &n);
  if (st) return st;
  for (int strict = !p->key.winograd; strict >= 0 && !*found; strict--)
    choose_among(be, p, cand, n, strict, found);
  return NEGCUT_OK;
}

/* Descriptors for the key; checks that cuDNN's output size is the key's. */
static negcut_status plan_describe(ngc_backend *be, conv_plan *p) {
  const conv_key *k = &p->key;
  const cudnnDataType_t dt = k->bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  int on = 0, oc = 0, oh = 0, ow = 0;
  negcut_status st = ngc_cuda_check_dnn(be, cudnnCreateTensorDescriptor(&p->x), "descriptor");
  if (!st) st = ngc_cuda_check_dnn(be, cudnnCreateTensorDescriptor(&p->y), "descriptor");
  if (!st) st = ngc_cuda_check_dnn(be, cudnnCreateFilterDescriptor(&p->w), "descriptor");
  if (!st) st = ngc_cuda_check_dnn(be, cudnnCreateConvolutionDescriptor(&p->conv), "descriptor");
  if (!st)
    st = ngc_cuda_check_dnn(
        be, cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, dt, k->n, k->c, k->h, k->w),
        "input descriptor");
  if (!st)
    st = ngc_cuda_check_dnn(
        be, cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, dt, k->n, k->k, k->ho, k->wo),
        "output descriptor");
  if (!st)
    st = ngc_cuda_check_dnn(
        be, cudnnSetFilter4dDescriptor(p->w, dt, CUDNN_TENSOR_NCHW, k->k, k->c, k->r, k->r),
        "filter descriptor");
  if (!st)
    st = ngc_cuda_check_dnn(be,
                            cudnnSetConvolution2dDescriptor(p->conv, k->pad, k->pad, k->stride,
                                                            k->stride, 1, 1,
                                                            CUDNN_CROSS_CORRELATION,
                                                            CUDNN_DATA_FLOAT),
                            "convolution descriptor");
  if (!st)
    st = ngc_cuda_check_dnn(be,
                            cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &on, &oc,
                                                                  &oh, &ow),
                            "output size");
  if (!st && (on != k->n || oc != k->k || oh != k->ho || ow != k->wo))
    st = ngc_error(be->ctx, NEGCUT_ERR_INTERNAL,
                   "cuDNN %s: output (%d, %d, %d, %d), expected (%d, %d, %d, %d)", op_name(k->op),
                   on, oc, oh, ow, k->n, k->k, k->ho, k->wo);
  return st;
}

/* The cached plan for key, made on first use. An fp32 shape without an
 * algorithm is an error; a bf16 one is cached as unusable. */
static negcut_status get_plan(ngc_backend *be, const conv_key *key, conv_plan **out) {
  ngc_cuda *c = ngc_cuda_of(be);
  *out = NULL;
  if (!c->convs && !(c->convs = calloc(1, sizeof *c->convs)))
    return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cuda convolution: out of host memory");
  for (conv_plan *p = c->convs->head; p; p = p->next)
    if (!memcmp(&p->key, key, sizeof *key)) {
      *out = p;
      return NEGCUT_OK;
    }
  conv_plan *p = calloc(1, sizeof *p);
  if (!p) return ngc_error(be->ctx, NEGCUT_ERR_OUT_OF_MEMORY, "cuda convolution: out of host memory");
  p->key = *key;
  int found = 0;
  negcut_status st = plan_describe(be, p);
  if (!st) st = choose_algo(be, p, &found);
  if (st && key->bf16) { /* cuDNN may refuse bf16 outright (before sm_80): fp32 it is */
    ngc_error_clear(be->ctx);
    st = NEGCUT_OK;
    found = 0;
  }
  if (!st && !found && !key->bf16)
    st = ngc_error(be->ctx, NEGCUT_ERR_UNSUPPORTED,
                   "cuDNN %s: no deterministic algorithm for (%d, %d, %d, %d) -> (%d, %d, %d, %d), "
                   "%dx%d filter, stride %d, pad %d",
                   op_name(key->op), key->n, key->c, key->h, key->w, key->n, key->k, key->ho,
                   key->wo, key->r, key->r, key->stride, key->pad);
  if (st) {
    plan_free(p);
    return st;
  }
  p->usable = found;
  p->next = c->convs->head;
  c->convs->head = p;
  *out = p;
  return NEGCUT_OK;
}

/* The key of the convolution src (N, C, H, W) -> dst (N, K, Ho, Wo). */
static negcut_status make_key(ngc_backend *be, conv_op op, int bf16, int tf32,
                              const ngc_conv_params *p,
                              const ngc_tensor *src, const ngc_tensor *dst, int64_t r,
                              conv_key *key) {
  const int64_t v[] = {src->dim[0], src->dim[1], src->dim[2], src->dim[3], dst->dim[1],
                       dst->dim[2], dst->dim[3], r, ngc_numel(src), ngc_numel(dst)};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    if (v[i] > INT_MAX)
      return ngc_error(be->ctx, NEGCUT_ERR_LIMIT, "cuda %s: a tensor has 2^31 or more elements",
                       op_name(op));
  memset(key, 0, sizeof *key);
  key->op = op;
  key->bf16 = bf16;
  key->tf32 = tf32;
  key->winograd = p->winograd != 0;
  key->n = (int32_t)v[0];
  key->c = (int32_t)v[1];
  key->h = (int32_t)v[2];
  key->w = (int32_t)v[3];
  key->k = (int32_t)v[4];
  key->ho = (int32_t)v[5];
  key->wo = (int32_t)v[6];
  key->r = (int32_t)v[7];
  key->stride = p->stride;
  key->pad = p->pad;
  return NEGCUT_OK;
}

/* Runs plan p. FWD: a = input, b = filter, out = output (assigned).
 * BWD_DATA: a = output gradient, b = filter, out = input gradient
 * (assigned). BWD_FILTER: a = input, b = output gradient, out = filter
 * gradient (accumulated: beta 1). */
static negcut_status run_plan(ngc_backend *be, const conv_plan *p, const void *a, const void *b,
                              void *out) {
  cudnnHandle_t h = ngc_cuda_of(be)->dnn;
  const float one = 1.0f, zero = 0.0f;
  const conv_key *k = &p->key;
  void *ws = NULL;
  cudnnStatus_t s;
  ngc_cuda *c = ngc_cuda_of(be);
  if (p->work_bytes > c->work_peak) c->work_peak = p->work_bytes;
  /* (a replay takes no workspace: the shared one must never become a block
   * its graph was lent, cuda_alloc.c) */
  if (ngc_cuda_skip(be, op_name(k->op))) return NEGCUT_OK;
  negcut_status st = workspace(be, p->work_bytes, &ws);
  if (st) return st;
  if (k->op == CONV_FWD)
    s = cudnnConvolutionForward(h, &one, p->x, a, p->w, b, p->conv,
                                (cudnnConvolutionFwdAlgo_t)p->algo, ws, p->work_bytes, &zero,
                                p->y, out);
  else if (k->op == CONV_BWD_DATA)
    s = cudnnConvolutionBackwardData(h, &one, p->w, b, p->y, a, p->conv,
                                     (cudnnConvolutionBwdDataAlgo_t)p->algo, ws, p->work_bytes,
                                     &zero, p->x, out);
  else
    s = cudnnConvolutionBackwardFilter(h, &one, p->x, a, p->y, b, p->conv,
                                       (cudnnConvolutionBwdFilterAlgo_t)p->algo, ws,
                                       p->work_bytes, &one, p->w, out);
  if (s == CUDNN_STATUS_SUCCESS) return NEGCUT_OK;
  char what[256];
  snprintf(what, sizeof what,
           "%s%s (%d, %d, %d, %d) -> (%d, %d, %d, %d), %dx%d filter, stride %d, pad %d, "
           "algorithm %d, workspace %zu bytes",
           k->bf16 ? "bf16 " : "", op_name(k->op), k->n, k->c, k->h, k->w, k->n, k->k, k->ho,
           k->wo, k->r, k->r, k->stride, k->pad, (int)p->algo, p->work_bytes);
  return ngc_cuda_check_dnn(be, s, what);
}

/* run_plan; an algorithm cuDNN refuses when it runs (NOT_SUPPORTED, which
 * its heuristics should have ruled out) is struck from the plan and the
 * next usable one is tried. NEGCUT_ERR_UNSUPPORTED when none is left. */
static negcut_status run_plan_or_next(ngc_backend *be, conv_plan *p, const void *a,
                                      const void *b, void *out) {
  for (;;) {
    negcut_status st = run_plan(be, p, a, b, out);
    if (st != NEGCUT_ERR_UNSUPPORTED || p->algo >= 32) return st;
    p->refused |= 1u << p->algo;
    int found = 0;
    negcut_status again = choose_algo(be, p, &found);
    if (again) return again;
    if (!found) return st; /* the refusal's message is still on the context */
    ngc_error_clear(be->ctx);
  }
}

/* Finds (or makes) the plan for op on src -> dst and runs it (in TF32 when
 * prm->tf32). */
static negcut_status conv_run(ngc_backend *be, conv_op op, const ngc_conv_params *prm,
                              const ngc_tensor *src, const ngc_tensor *dst, int64_t r,
                              const void *a, const void *b, void *out) {
  conv_key key;
  conv_plan *p = NULL;
  negcut_status st = make_key(be, op, 0, prm->tf32, prm, src, dst, r, &key);
  if (!st) st = get_plan(be, &key, &p);
  if (!st) st = run_plan_or_next(be, p, a, b, out);
  return st;
}

/* The bf16 forward, adding b (or NULL) as y comes back to fp32; *done 0
 * when cuDNN has no bf16 algorithm for the shape (the caller then runs
 * fp32, and adds the bias). */
static negcut_status conv_fwd_bf16(ngc_backend *be, const ngc_conv_params *prm,
                                   const ngc_tensor *x, const ngc_tensor *w, const ngc_tensor *b,
                                   ngc_tensor *y, int *done) {
  conv_key key;
  conv_plan *p = NULL;
  void *xb = NULL, *wb = NULL, *yb = NULL; // bf16 copies of x, w and y
  *done = 0;
  negcut_status st = make_key(be, CONV_FWD, 1, 0, prm, x, y, w->dim[2], &key);
  if (!st) st = get_plan(be, &key, &p);
  if (st || !p->usable) return st;
  const int64_t nx = ngc_numel(x), nw = ngc_numel(w), ny = ngc_numel(y);
  st = ngc_cuda_scratch(be, (size_t)nx * 2, &xb, "bf16 convolution");
  if (!st && !prm->w_bf16) st = ngc_cuda_scratch(be, (size_t)nw * 2, &wb, "bf16 convolution");
  if (!st) st = ngc_cuda_scratch(be, (size_t)ny * 2, &yb, "bf16 convolution");
  if (!st) st = ngc_cuda_to_bf16(be, x->data, xb, nx);
  if (!st && !prm->w_bf16) st = ngc_cuda_to_bf16(be, w->data, wb, nw);
  if (!st) st = run_plan_or_next(be, p, xb, prm->w_bf16 ? prm->w_bf16 : wb, yb);
  if (st == NEGCUT_ERR_UNSUPPORTED) { /* every algorithm refused at run time: fp32 from now on */
    p->usable = 0;
    ngc_error_clear(be->ctx);
    st = NEGCUT_OK;
  } else if (!st) {
    st = ngc_cuda_from_bf16(be, yb, y->data, b ? b->data : NULL, ny, y->dim[1],
                            y->dim[2] * y->dim[3]);
    *done = st == NEGCUT_OK;
  }
  ngc_cuda_free(be, xb);
  ngc_cuda_free(be, wb);
  ngc_cuda_free(be, yb);
  return st;
}

static negcut_status cuda_conv2d_fwd(ngc_backend *be, const ngc_conv_params *p,
                                     const ngc_tensor *x, const ngc_tensor *w,
                                     const ngc_tensor *b, ngc_tensor *y) {
  // x (N, Ci, H, W), w (Co, Ci, k, k), b (Co) or NULL, y (N, Co, Ho, Wo)
  int done = 0;
  negcut_status st = ngc_cuda_enter(be);
  if (!st && p->bf16) st = conv_fwd_bf16(be, p, x, w, b, y, &done);
  if (!st && done) return NEGCUT_OK;
  if (!st) st = conv_run(be, CONV_FWD, p, x, y, w->dim[2], x->data, w->data, y->data);
  if (!st && b)
    st = ngc_cuda_bias_add(be, y->data, b->data, y->dim[0], y->dim[1], y->dim[2] * y->dim[3]);
  return st;
}

static negcut_status cuda_conv2d_bwd(ngc_backend *be, const ngc_conv_params *p,
                                     const ngc_tensor *x, const ngc_tensor *w,
                                     const ngc_tensor *dy, ngc_tensor *dx, ngc_tensor *dw,
                                     ngc_tensor *db) {
  // x (N, Ci, H, W), w (Co, Ci, k, k), dy (N, Co, Ho, Wo); dx like x, dw like w, db (Co)
  negcut_status st = ngc_cuda_enter(be);
  if (!st && dx)
    st = conv_run(be, CONV_BWD_DATA, p, x, dy, w->dim[2], dy->data, w->data, dx->data);
  if (!st && dw)
    st = conv_run(be, CONV_BWD_FILTER, p, x, dy, w->dim[2], x->data, dy->data, dw->data);
  if (!st && db)
    st = ngc_cuda_bias_grad(be, dy->data, db->data, dy->dim[0], dy->dim[1],
                            dy->dim[2] * dy->dim[3]);
  return st;
}

static negcut_status cuda_convt2d_fwd(ngc_backend *be, const ngc_conv_params *p,
                                      const ngc_tensor *x, const ngc_tensor *w,
                                      const ngc_tensor *b, ngc_tensor *y) {
  // x (N, Ci, H, W), w (Ci, Co, k, k), b (Co) or NULL, y (N, Co, Ho, Wo)
  /* The adjoint convolution runs y -> x: its backward-data writes y. */
  negcut_status st = ngc_cuda_enter(be);
  if (!st)
    st = conv_run(be, CONV_BWD_DATA, p, y, x, w->dim[2], x->data, w->data, y->data);
  if (!st && b)
    st = ngc_cuda_bias_add(be, y->data, b->data, y->dim[0], y->dim[1], y->dim[2] * y->dim[3]);
  return st;
}

static negcut_status cuda_convt2d_bwd(ngc_backend *be, const ngc_conv_params *p,
                                      const ngc_tensor *x, const ngc_tensor *w,
                                      const ngc_tensor *dy, ngc_tensor *dx, ngc_tensor *dw,
                                      ngc_tensor *db) {
  // x (N, Ci, H, W), w (Ci, Co, k, k), dy (N, Co, Ho, Wo); dx like x, dw like w, db (Co)
  negcut_status st = ngc_cuda_enter(be);
  if (!st && dx)
    st = conv_run(be, CONV_FWD, p, dy, x, w->dim[2], dy->data, w->data, dx->data);
  if (!st && dw)
    st = conv_run(be, CONV_BWD_FILTER, p, dy, x, w->dim[2], dy->data, x->data, dw->data);
  /* The adjoint convolution's bias would be per Ci: reduce dy ourselves. */
  if (!st && db)
    st = ngc_cuda_bias_grad(be, dy->data, db->data, dy->dim[0], dy->dim[1],
                            dy->dim[2] * dy->dim[3]);
  return st;
}

void ngc_cuda_fill_conv_ops(ngc_backend_ops *ops) {
  ops->conv2d_fwd = cuda_conv2d_fwd;
  ops->conv2d_bwd = cuda_conv2d_bwd;
  ops->convt2d_fwd = cuda_convt2d_fwd;
  ops->convt2d_bwd = cuda_convt2d_bwd;
}
