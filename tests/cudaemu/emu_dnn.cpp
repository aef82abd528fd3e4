/* cudaemu: the legacy cuDNN convolution API the backend uses.
 *
 * The arithmetic: im2col and OpenBLAS dgemm, in double, so the emulated
 * convolution is closer to exact than cuDNN's; inputs are first rounded as
 * the descriptor's math type lets cuDNN round them (TF32 for the default
 * and tensor-op math on fp32 data), bf16 tensors are read and written as
 * bf16. alpha and beta as cuDNN: beta 0 never reads the output.
 *
 * The algorithms: each direction lists candidates the way cuDNN's
 * heuristics do: some non-deterministic, some for tensor-op math, one that
 * is not supported, and an algorithm with a workspace first, so that the
 * backend's choice and its workspace handling are exercised. The workspace
 * is scribbled over on every call. NGC_EMU_CUDNN_REFUSE=1 makes each
 * direction's first usable fp32 and TF32 algorithm fail with NOT_SUPPORTED
 * when it runs, which cuDNN may do although its heuristics listed it. */
#include "emu.h"

#include <cblas.h>
#include <stdlib.h>

#include <vector>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

struct cudnnContext {
  cudaStream_t stream;
  int refuse;
};
struct cudnnTensorStruct {
  int set;
  cudnnDataType_t dt;
  int n, c, h, w;
};
struct cudnnFilterStruct {
  int set;
  cudnnDataType_t dt;
  int k, c, h, w;
};
struct cudnnConvolutionStruct {
  int set;
  int ph, pw, u, v, dh, dw;
  cudnnConvolutionMode_t mode;
  cudnnMathType_t math;
};

namespace {

enum Dir { FWD, BWD_DATA, BWD_FILTER };

int g_refused; /* runs refused under NGC_EMU_CUDNN_REFUSE */

struct Geo {
  int n, c, h, w, k, r, s, ho, wo, ph, pw, u, v, dh, dw, flip;
  cudnnDataType_t dt;
  cudnnMathType_t math;
};

size_t dt_bytes(cudnnDataType_t dt) { return dt == CUDNN_DATA_FLOAT ? 4 : 2; }

double load(const void *p, size_t i, const Geo &g) {
  float v;
  if (g.dt == CUDNN_DATA_FLOAT) {
    v = ((const float *)p)[i];
    if (g.math != CUDNN_FMA_MATH) v = emu_tf32(v);
  } else {
    const uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
    memcpy(&v, &u, sizeof v);
  }
  return v;
}

void store(void *p, size_t i, double v, const Geo &g) {
  float f = (float)v;
  if (g.dt == CUDNN_DATA_FLOAT) {
    ((float *)p)[i] = f;
    return;
  }
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7f800000u) != 0x7f800000u) u += 0x7fffu + ((u >> 16) & 1u);
  ((uint16_t *)p)[i] = (uint16_t)(u >> 16);
}

/* cols[(c, r, s), (oh, ow)] for image img of x. */
void im2col(const void *x, int img, const Geo &g, std::vector<double> &cols) {
  const size_t hw = (size_t)g.ho * g.wo;
  cols.assign((size_t)g.c * g.r * g.s * hw, 0.0);
  for (int c = 0; c < g.c; c++)
    for (int r = 0; r < g.r; r++)
      for (int s = 0; s < g.s; s++) {
        double *row = &cols[(((size_t)c * g.r + r) * g.s + s) * hw];
        for (int oh = 0; oh < g.ho; oh++) {
          const int ih = oh * g.u - g.ph + r * g.dh;
          if (ih < 0 || ih >= g.h) continue;
          for (int ow = 0; ow < g.wo; ow++) {
            const int iw = ow * g.v - g.pw + s * g.dw;
            if (iw >= 0 && iw < g.w)
              row[(size_t)oh * g.wo + ow] =
                  load(x, (((size_t)img * g.c + c) * g.h + ih) * g.w + iw, g);
          }
        }
      }
}

/* w as a (k, c * r * s) matrix, the taps flipped for CUDNN_CONVOLUTION. */
std::vector<double> filter(const void *w, const Geo &g) {
  std::vector<double> m((size_t)g.k * g.c * g.r * g.s);
  for (int k = 0; k < g.k; k++)
    for (int c = 0; c < g.c; c++)
      for (int r = 0; r < g.r; r++)
        for (int s = 0; s < g.s; s++) {
          const int rr = g.flip ? g.r - 1 - r : r, ss = g.flip ? g.s - 1 - s : s;
          m[(((size_t)k * g.c + c) * g.r + r) * g.s + s] =
              load(w, (((size_t)k * g.c + c) * g.r + rr) * g.s + ss, g);
        }
  return m;
}

/* out = alpha * v + beta * out (out not read when beta is 0). */
void blend(void *out, const std::vector<double> &v, double alpha, double beta, const Geo &g,
           int flip_filter) {
  for (size_t i = 0; i < v.size(); i++) {
    size_t o = i;
    if (flip_filter) { /* v is in the flipped tap order */
      const size_t s = i % g.s, r = i / g.s % g.r, rest = i / ((size_t)g.r * g.s);
      o = (rest * g.r + (g.r - 1 - r)) * g.s + (g.s - 1 - s);
    }
    double old = 0.0;
    if (beta != 0.0) old = g.dt == CUDNN_DATA_FLOAT ? (double)((float *)out)[o] : load(out, o, g);
    store(out, o, alpha * v[i] + beta * old, g);
  }
}

void conv_fwd(const Geo &g, const void *x, const void *w, void *y, double alpha, double beta) {
  const int crs = g.c * g.r * g.s, hw = g.ho * g.wo;
  const std::vector<double> wm = filter(w, g);
  std::vector<double> cols, out((size_t)g.n * g.k * hw);
  for (int i = 0; i < g.n; i++) {
    im2col(x, i, g, cols);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.k, hw, crs, 1.0, wm.data(), crs,
                cols.data(), hw, 0.0, &out[(size_t)i * g.k * hw], hw);
  }
  blend(y, out, alpha, beta, g, 0);
}

void conv_bwd_data(const Geo &g, const void *w, const void *dy, void *dx, double alpha,
                   double beta) {
  const int crs = g.c * g.r * g.s, hw = g.ho * g.wo;
  const std::vector<double> wm = filter(w, g);
  std::vector<double> dyd((size_t)g.k * hw), dcols((size_t)crs * hw);
  std::vector<double> acc((size_t)g.n * g.c * g.h * g.w, 0.0);
  for (int i = 0; i < g.n; i++) {
    for (size_t j = 0; j < dyd.size(); j++) dyd[j] = load(dy, (size_t)i * g.k * hw + j, g);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, crs, hw, g.k, 1.0, wm.data(), crs,
                dyd.data(), hw, 0.0, dcols.data(), hw);
    for (int c = 0; c < g.c; c++)
      for (int r = 0; r < g.r; r++)
        for (int s = 0; s < g.s; s++) {
          const double *row = &dcols[(((size_t)c * g.r + r) * g.s + s) * hw];
          for (int oh = 0; oh < g.ho; oh++) {
            const int ih = oh * g.u - g.ph + r * g.dh;
            if (ih < 0 || ih >= g.h) continue;
            for (int ow = 0; ow < g.wo; ow++) {
              const int iw = ow * g.v - g.pw + s * g.dw;
              if (iw >= 0 && iw < g.w)
                acc[(((size_t)i * g.c + c) * g.h + ih) * g.w + iw] += row[(size_t)oh * g.wo + ow];
            }
          }
        }
  }
  blend(dx, acc, alpha, beta, g, 0);
}

void conv_bwd_filter(const Geo &g, const void *x, const void *dy, void *dw, double alpha,
                     double beta) {
  const int crs = g.c * g.r * g.s, hw = g.ho * g.wo;
  std::vector<double> cols, dyd((size_t)g.k * hw), acc((size_t)g.k * crs, 0.0);
  for (int i = 0; i < g.n; i++) {
    im2col(x, i, g, cols);
    for (size_t j = 0; j < dyd.size(); j++) dyd[j] = load(dy, (size_t)i * g.k * hw + j, g);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.k, crs, hw, 1.0, dyd.data(), hw,
                cols.data(), hw, 1.0, acc.data(), crs);
  }
  blend(dw, acc, alpha, beta, g, g.flip);
}

/* The algorithms the emulation runs in each direction, and their workspace
 * (0 when it has none): a GEMM-like one needs an im2col buffer. */
int supported(Dir d, int algo, const Geo &g, size_t *bytes) {
  const size_t cols = (size_t)g.c * g.r * g.s * g.ho * g.wo * 4;
  *bytes = 0;
  switch (d) {
  case FWD:
    if (algo == 0) return 1;
    if (algo == 1) return *bytes = 4096, 1;
    if (algo == 2) return *bytes = cols, 1;
    if (algo == 6) return g.r == 3 && g.s == 3 && g.u == 1 && g.v == 1 && (*bytes = 0, 1);
    return 0;
  case BWD_DATA:
    if (algo == 0) return 1;
    if (algo == 1) return *bytes = cols, 1;
    if (algo == 5) return *bytes = (size_t)g.n * g.k * g.ho * g.wo * 8, 1;
    return 0;
  case BWD_FILTER:
    if (algo == 0 || algo == 3) return 1;
    if (algo == 1) return *bytes = cols, 1;
    if (algo == 5) return *bytes = (size_t)g.k * g.c * 64, 1;
    return 0;
  }
  return 0;
}

/* The first algorithm heuristics offer for FMA math (fp32) and for tensor-op
 * math (TF32), refused when it runs under NGC_EMU_CUDNN_REFUSE. */
int first_choice(Dir d, cudnnMathType_t math) {
  return math != CUDNN_FMA_MATH ? 1 : d == FWD ? 2 : 1;
}

struct Cand {
  int algo;
  cudnnStatus_t status;
  cudnnDeterminism_t det;
  cudnnMathType_t math;
};

std::vector<Cand> heuristics(Dir d, const Geo &g) {
  const cudnnDeterminism_t D = CUDNN_DETERMINISTIC, ND = CUDNN_NON_DETERMINISTIC;
  const cudnnStatus_t OK = CUDNN_STATUS_SUCCESS, NS = CUDNN_STATUS_NOT_SUPPORTED;
  if (g.dt == CUDNN_DATA_BFLOAT16) {
    if (d == FWD) return {{1, OK, D, CUDNN_TENSOR_OP_MATH}, {0, OK, D, CUDNN_DEFAULT_MATH}};
    if (d == BWD_DATA) return {{0, OK, ND, CUDNN_TENSOR_OP_MATH}, {1, OK, D, CUDNN_TENSOR_OP_MATH}};
    return {{1, OK, D, CUDNN_TENSOR_OP_MATH}};
  }
  /* a descriptor whose math allows tensor cores gets TF32 (and fp16-converting)
   * candidates first, in every direction, as on an Ampere or later GPU */
  if (g.math != CUDNN_FMA_MATH) {
    std::vector<Cand> c = {{1, OK, D, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION},
                           {1, OK, D, CUDNN_TENSOR_OP_MATH},
                           {d == FWD ? 0 : 5, OK, D, CUDNN_TENSOR_OP_MATH}};
    Geo fma = g;
    fma.math = CUDNN_FMA_MATH;
    const std::vector<Cand> rest = heuristics(d, fma);
    c.insert(c.end(), rest.begin(), rest.end());
    return c;
  }
  switch (d) {
  case FWD:
    return {{1, OK, D, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION},
            {1, OK, D, CUDNN_TENSOR_OP_MATH},
            {4, NS, D, CUDNN_DEFAULT_MATH},
            {2, OK, D, CUDNN_FMA_MATH},
            {0, OK, D, CUDNN_FMA_MATH}};
  case BWD_DATA:
    return {{0, OK, ND, CUDNN_FMA_MATH},
            {1, OK, D, CUDNN_FMA_MATH},
            {5, OK, D, CUDNN_DEFAULT_MATH},
            {2, NS, D, CUDNN_FMA_MATH}};
  case BWD_FILTER:
    return {{3, OK, ND, CUDNN_FMA_MATH},
            {1, OK, D, CUDNN_FMA_MATH},
            {0, OK, ND, CUDNN_FMA_MATH},
            {2, NS, D, CUDNN_DEFAULT_MATH}};
  }
  return {};
}

cudnnStatus_t geometry(cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
                       cudnnConvolutionDescriptor_t cv, cudnnTensorDescriptor_t y, Geo *g) {
  if (!x || !w || !cv || !y || !x->set || !w->set || !cv->set || !y->set)
    return CUDNN_STATUS_BAD_PARAM;
  if (x->dt != w->dt || x->dt != y->dt || x->c != w->c || x->n != y->n || y->c != w->k)
    return CUDNN_STATUS_BAD_PARAM;
  *g = Geo{x->n, x->c, x->h, x->w, w->k, w->h, w->w, 0, 0, cv->ph, cv->pw, cv->u, cv->v,
           cv->dh, cv->dw, cv->mode == CUDNN_CONVOLUTION, x->dt, cv->math};
  g->ho = (x->h + 2 * cv->ph - (cv->dh * (w->h - 1) + 1)) / cv->u + 1;
  g->wo = (x->w + 2 * cv->pw - (cv->dw * (w->w - 1) + 1)) / cv->v + 1;
  if (g->ho != y->h || g->wo != y->w) return CUDNN_STATUS_BAD_PARAM;
  return CUDNN_STATUS_SUCCESS;
}

/* What the emulation takes in a tensor or filter descriptor. */
int nchw_ok(cudnnTensorFormat_t format, cudnnDataType_t dt, int n, int c, int h, int w) {
  return format == CUDNN_TENSOR_NCHW && n > 0 && c > 0 && h > 0 && w > 0 &&
         (dt == CUDNN_DATA_FLOAT || dt == CUDNN_DATA_BFLOAT16);
}

int overlap(const void *a, size_t na, const void *b, size_t nb) {
  return na && nb && (const char *)a < (const char *)b + nb && (const char *)b < (const char *)a + na;
}

cudnnStatus_t run(cudnnHandle_t h, Dir d, const char *what, const Geo &g, int algo,
                  const void *alpha, const void *in0, const void *in1, const void *beta,
                  void *out, void *work, size_t work_bytes) {
  auto lock = emu_lock();
  size_t need = 0;
  if (!supported(d, algo, g, &need)) return CUDNN_STATUS_NOT_SUPPORTED;
  if (need > work_bytes || (need && !work)) {
    emu_note("cuDNN %s: algorithm %d needs %zu bytes of workspace, given %zu", what, algo, need,
             work_bytes);
    return CUDNN_STATUS_BAD_PARAM;
  }
  /* Refusal mode: each direction's first fp32 (FMA or TF32) algorithm, and
   * every bf16 one, so that the backend's fp32 fallback for bf16 runs. */
  if (h->refuse && ((g.dt == CUDNN_DATA_FLOAT && algo == first_choice(d, g.math)) ||
                    g.dt == CUDNN_DATA_BFLOAT16)) {
    if (!g_refused++) atexit([] { emu_note("cuDNN refused %d runs (NGC_EMU_CUDNN_REFUSE)", g_refused); });
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  if (g.dt == CUDNN_DATA_BFLOAT16 && g.math == CUDNN_FMA_MATH) return CUDNN_STATUS_NOT_SUPPORTED;
  const size_t e = dt_bytes(g.dt);
  const size_t nx = (size_t)g.n * g.c * g.h * g.w * e, nw = (size_t)g.k * g.c * g.r * g.s * e;
  const size_t ny = (size_t)g.n * g.k * g.ho * g.wo * e;
  const size_t n0 = d == BWD_DATA ? nw : nx, n1 = d == FWD ? nw : ny;
  const size_t nout = d == FWD ? ny : d == BWD_DATA ? nx : nw;
  if (!emu_is_device(in0, n0) || !emu_is_device(in1, n1) || !emu_is_device(out, nout) ||
      (work_bytes && !emu_is_device(work, work_bytes))) {
    emu_note("cuDNN %s: an operand is not (wholly) in device memory", what);
    return CUDNN_STATUS_BAD_PARAM;
  }
  if (overlap(out, nout, in0, n0) || overlap(out, nout, in1, n1) ||
      overlap(work, need, in0, n0) || overlap(work, need, in1, n1) ||
      overlap(work, need, out, nout)) {
    emu_note("cuDNN %s: the output or the workspace overlaps another operand", what);
    return CUDNN_STATUS_BAD_PARAM;
  }
  const double al = *(const float *)alpha, be = *(const float *)beta;
  const cudaError_t err = emu_enqueue(h->stream, what, [=] {
    if (need) memset(work, 0xa5, need);
    if (d == FWD) conv_fwd(g, in0, in1, out, al, be);
    else if (d == BWD_DATA) conv_bwd_data(g, in0, in1, out, al, be);
    else conv_bwd_filter(g, in0, in1, out, al, be);
  });
  return err ? CUDNN_STATUS_EXECUTION_FAILED : CUDNN_STATUS_SUCCESS;
}

template <class Perf>
cudnnStatus_t list(Dir d, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
                   cudnnConvolutionDescriptor_t cv, cudnnTensorDescriptor_t y, int requested,
                   int *returned, Perf *perf) {
  Geo g;
  cudnnStatus_t st = geometry(x, w, cv, y, &g);
  if (st) return st;
  const std::vector<Cand> c = heuristics(d, g);
  int n = 0;
  for (const Cand &k : c) {
    if (n == requested) break;
    size_t bytes = 0;
    const int ok = supported(d, k.algo, g, &bytes);
    memset(&perf[n], 0, sizeof perf[n]);
    perf[n].algo = (decltype(perf[n].algo))k.algo;
    perf[n].status = ok ? k.status : CUDNN_STATUS_NOT_SUPPORTED;
    perf[n].time = (float)(n + 1);
    perf[n].memory = bytes;
    perf[n].determinism = k.det;
    perf[n].mathType = k.math;
    n++;
  }
  *returned = n;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t work_size(Dir d, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
                        cudnnConvolutionDescriptor_t cv, cudnnTensorDescriptor_t y, int algo,
                        size_t *bytes) {
  Geo g;
  *bytes = 0;
  cudnnStatus_t st = geometry(x, w, cv, y, &g);
  if (st) return st;
  return supported(d, algo, g, bytes) ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
}

} // namespace

extern "C" {

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char *cudnnGetErrorString(cudnnStatus_t s) {
  if (s == CUDNN_STATUS_SUCCESS) return "CUDNN_STATUS_SUCCESS";
  if (s == CUDNN_STATUS_BAD_PARAM) return "CUDNN_STATUS_BAD_PARAM";
  if (s == CUDNN_STATUS_NOT_SUPPORTED) return "CUDNN_STATUS_NOT_SUPPORTED";
  if (s == CUDNN_STATUS_EXECUTION_FAILED) return "CUDNN_STATUS_EXECUTION_FAILED";
  return "CUDNN_STATUS_UNKNOWN (cudaemu)";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *h) {
  const char *refuse = getenv("NGC_EMU_CUDNN_REFUSE");
  openblas_set_num_threads(1); /* its pool would only spin beside the emulator's one thread */
  *h = new cudnnContext{nullptr, refuse && atoi(refuse) != 0};
  return CUDNN_STATUS_SUCCESS;
}

/* cuDNN documents an implicit cudaDeviceSynchronize: it waits for the
 * device, and invalidates a capture under way (in any thread). */
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) {
  (void)cudaDeviceSynchronize();
  (void)cudaGetLastError();
  delete h;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
  h->stream = s;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d) {
  *d = new cudnnTensorStruct{};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format,
                                         cudnnDataType_t dt, int n, int c, int h, int w) {
  if (!nchw_ok(format, dt, n, c, h, w)) return CUDNN_STATUS_BAD_PARAM;
  *d = cudnnTensorStruct{1, dt, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d) {
  *d = new cudnnFilterStruct{};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t dt,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
  if (!nchw_ok(format, dt, k, c, h, w)) return CUDNN_STATUS_BAD_PARAM;
  *d = cudnnFilterStruct{1, dt, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d) {
  *d = new cudnnConvolutionStruct{};
  (*d)->math = CUDNN_DEFAULT_MATH;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw,
                                              int u, int v, int dh, int dw,
                                              cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute) {
  if (ph < 0 || pw < 0 || u <= 0 || v <= 0 || dh <= 0 || dw <= 0 || compute != CUDNN_DATA_FLOAT)
    return CUDNN_STATUS_BAD_PARAM;
  d->set = 1;
  d->ph = ph, d->pw = pw, d->u = u, d->v = v, d->dh = dh, d->dw = dw;
  d->mode = mode;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
  if (m != CUDNN_DEFAULT_MATH && m != CUDNN_TENSOR_OP_MATH &&
      m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && m != CUDNN_FMA_MATH)
    return CUDNN_STATUS_BAD_PARAM;
  d->math = m;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t cv,
                                                    const cudnnTensorDescriptor_t x,
                                                    const cudnnFilterDescriptor_t w, int *n,
                                                    int *c, int *h, int *wo) {
  if (!cv->set || !x->set || !w->set || x->c != w->c) return CUDNN_STATUS_BAD_PARAM;
  *n = x->n;
  *c = w->k;
  *h = (x->h + 2 * cv->ph - (cv->dh * (w->h - 1) + 1)) / cv->u + 1;
  *wo = (x->w + 2 * cv->pw - (cv->dw * (w->w - 1) + 1)) / cv->v + 1;
  return *h > 0 && *wo > 0 ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t h, const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
    const cudnnConvolutionDescriptor_t cv, const cudnnTensorDescriptor_t y, const int requested,
    int *returned, cudnnConvolutionFwdAlgoPerf_t *perf) {
  return list(FWD, x, w, cv, y, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t h, const cudnnFilterDescriptor_t w, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t cv, const cudnnTensorDescriptor_t dx, const int requested,
    int *returned, cudnnConvolutionBwdDataAlgoPerf_t *perf) {
  return list(BWD_DATA, dx, w, cv, dy, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t h, const cudnnTensorDescriptor_t x, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t cv, const cudnnFilterDescriptor_t dw, const int requested,
    int *returned, cudnnConvolutionBwdFilterAlgoPerf_t *perf) {
  return list(BWD_FILTER, x, dw, cv, dy, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h,
                                                      const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t cv,
                                                      const cudnnTensorDescriptor_t y,
                                                      cudnnConvolutionFwdAlgo_t algo,
                                                      size_t *bytes) {
  return work_size(FWD, x, w, cv, y, (int)algo, bytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t h, const cudnnFilterDescriptor_t w, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t cv, const cudnnTensorDescriptor_t dx,
    cudnnConvolutionBwdDataAlgo_t algo, size_t *bytes) {
  return work_size(BWD_DATA, dx, w, cv, dy, (int)algo, bytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t h, const cudnnTensorDescriptor_t x, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t cv, const cudnnFilterDescriptor_t dw,
    cudnnConvolutionBwdFilterAlgo_t algo, size_t *bytes) {
  return work_size(BWD_FILTER, x, dw, cv, dy, (int)algo, bytes);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha,
                                      const cudnnTensorDescriptor_t xd, const void *x,
                                      const cudnnFilterDescriptor_t wd, const void *w,
                                      const cudnnConvolutionDescriptor_t cv,
                                      cudnnConvolutionFwdAlgo_t algo, void *work,
                                      size_t work_bytes, const void *beta,
                                      const cudnnTensorDescriptor_t yd, void *y) {
  Geo g;
  cudnnStatus_t st = geometry(xd, wd, cv, yd, &g);
  return st ? st : run(h, FWD, "convolution forward", g, (int)algo, alpha, x, w, beta, y, work,
                       work_bytes);
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha,
                                           const cudnnFilterDescriptor_t wd, const void *w,
                                           const cudnnTensorDescriptor_t dyd, const void *dy,
                                           const cudnnConvolutionDescriptor_t cv,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *work,
                                           size_t work_bytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxd, void *dx) {
  Geo g;
  cudnnStatus_t st = geometry(dxd, wd, cv, dyd, &g);
  return st ? st : run(h, BWD_DATA, "convolution backward data", g, (int)algo, alpha, w, dy,
                       beta, dx, work, work_bytes);
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *alpha,
                                             const cudnnTensorDescriptor_t xd, const void *x,
                                             const cudnnTensorDescriptor_t dyd, const void *dy,
                                             const cudnnConvolutionDescriptor_t cv,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *work,
                                             size_t work_bytes, const void *beta,
                                             const cudnnFilterDescriptor_t dwd, void *dw) {
  Geo g;
  cudnnStatus_t st = geometry(xd, dwd, cv, dyd, &g);
  return st ? st : run(h, BWD_FILTER, "convolution backward filter", g, (int)algo, alpha, x, dy,
                       beta, dw, work, work_bytes);
}

} // extern "C"
