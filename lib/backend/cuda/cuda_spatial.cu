/* Padding and the two fixed blurs of REFERENCE.md 1 on (N, C, H, W).
 *
 * Every kernel is a gather: one thread per output element adds what lands
 * on it, so no two threads write one element and nothing needs atomics.
 * The backward passes are the exact adjoints of the forwards (as the
 * reference's), found per element by asking which padded positions copy
 * an input position and which filter taps reach an output position.
 * pad_bwd adds in the reference's order (raster order over the padded
 * grid, in float), so it gives the reference's bits. */
#include "cuda_kernels.cuh"

/* Source index in [0, n) of padded position i (0 <= i < n + 2p), or -1 for a
 * zero; as the reference's pad_src (reflect needs p < n). */
__device__ __forceinline__ int64_t pad_src(int64_t i, int64_t n, int64_t p, int mode) {
  const int64_t j = i - p;
  if (j >= 0 && j < n) return j;
  if (mode == NGC_PAD_REFLECT) return j < 0 ? -j : 2 * (n - 1) - j;
  if (mode == NGC_PAD_REPLICATE) return j < 0 ? 0 : n - 1;
  return -1;
}

/* The padded positions whose source is j, as at most three ascending,
 * disjoint ranges [lo[k], hi[k]]. */
struct pad_ranges {
  int n;
  int64_t lo[3], hi[3];
};

__device__ __forceinline__ void add_range(pad_ranges *r, int64_t lo, int64_t hi) {
  r->lo[r->n] = lo;
  r->hi[r->n] = hi;
  r->n++;
}

__device__ __forceinline__ pad_ranges pad_sources(int64_t j, int64_t n, int64_t p, int mode) {
  pad_ranges r;
  r.n = 0;
  if (mode == NGC_PAD_REPLICATE) {
    /* the edges own the whole border: [0, p] and [n - 1 + p, n - 1 + 2p] */
    add_range(&r, j == 0 ? 0 : j + p, j == n - 1 ? n - 1 + 2 * p : j + p);
  } else if (mode == NGC_PAD_REFLECT) {
    if (j >= 1 && j <= p) add_range(&r, p - j, p - j);                 /* left mirror */
    add_range(&r, j + p, j + p);                                        /* itself */
    if (j <= n - 2 && j >= n - 1 - p) add_range(&r, p + 2 * (n - 1) - j, p + 2 * (n - 1) - j);
  } else {
    add_range(&r, j + p, j + p);
  }
  return r;
}

/* y (planes, H + 2p, W + 2p) from x (planes, H, W). */
static __global__ void pad_fwd_kernel(const float *x, float *y, int64_t planes, int64_t H,
                                      int64_t W, int64_t p, int mode) {
  const int64_t Hp = H + 2 * p, Wp = W + 2 * p;
  NGC_FOR(i, planes * Hp * Wp) {
    const int64_t pl = i / (Hp * Wp), oy = (i / Wp) % Hp, ox = i % Wp;
    const int64_t sy = pad_src(oy, H, p, mode), sx = pad_src(ox, W, p, mode);
    y[i] = sy < 0 || sx < 0 ? 0.0f : x[(pl * H + sy) * W + sx];
  }
}

static __global__ void pad_bwd_kernel(const float *dy, float *dx, int64_t planes, int64_t H,
                                      int64_t W, int64_t p, int mode) {
  const int64_t Hp = H + 2 * p, Wp = W + 2 * p;
  NGC_FOR(i, planes * H * W) {
    const int64_t pl = i / (H * W), sy = (i / W) % H, sx = i % W;
    const pad_ranges ry = pad_sources(sy, H, p, mode), rx = pad_sources(sx, W, p, mode);
    const float *g = dy + pl * Hp * Wp; // (Hp, Wp)
    float acc = 0.0f;
    for (int a = 0; a < ry.n; a++)
      for (int64_t py = ry.lo[a]; py <= ry.hi[a]; py++)
        for (int b = 0; b < rx.n; b++)
          for (int64_t px = rx.lo[b]; px <= rx.hi[b]; px++) acc += g[py * Wp + px];
    dx[i] = acc;
  }
}

static negcut_status cuda_pad_fwd(ngc_backend *be, ngc_pad_mode mode, int32_t pad,
                                  const ngc_tensor *x, ngc_tensor *y) {
  const int64_t planes = x->dim[0] * x->dim[1], n = ngc_numel(y);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "pad_fwd", pad_fwd_kernel, ngc_grid(n), NGC_BLOCK, x->data, y->data,
                    planes, x->dim[2], x->dim[3], (int64_t)pad, (int)mode);
}

static negcut_status cuda_pad_bwd(ngc_backend *be, ngc_pad_mode mode, int32_t pad,
                                  const ngc_tensor *dy, ngc_tensor *dx) {
  const int64_t planes = dx->dim[0] * dx->dim[1], n = ngc_numel(dx);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "pad_bwd", pad_bwd_kernel, ngc_grid(n), NGC_BLOCK, dy->data, dx->data,
                    planes, dx->dim[2], dx->dim[3], (int64_t)pad, (int)mode);
}

/* ------------------------------------------------------------------ blurs */

/* [1,2,1] / 4 and [1,3,3,1] / 4 per axis: the reference's 2-D filters
 * (blur3 = [1,2,1]^2/16, blur4 = [1,3,3,1]^2/16) are their outer products,
 * and every product of two of these is exact in float. */
__device__ __forceinline__ float f3(int k) { return k == 1 ? 2.0f / 4.0f : 1.0f / 4.0f; }
__device__ __forceinline__ float f4(int k) { return k == 0 || k == 3 ? 1.0f / 4.0f : 3.0f / 4.0f; }

/* Reflect index for pad 1 (the reference's pad_src with p = 1, j = i - 1). */
__device__ __forceinline__ int64_t reflect1(int64_t j, int64_t n) {
  return j < 0 ? -j : j >= n ? 2 * (n - 1) - j : j;
}

/* Downsample: y[oy, ox] = sum_{ky,kx} xpad[2oy + ky, 2ox + kx] f3[ky] f3[kx],
 * xpad = reflect pad 1 of x. The tap order and double sum are the
 * reference's corr_plane, so the result is its bits. */
static __global__ void blur_down_fwd_kernel(const float *x, float *y, int64_t planes, int64_t H,
                                            int64_t W, int64_t Ho, int64_t Wo) {
  NGC_FOR(i, planes * Ho * Wo) {
    const int64_t pl = i / (Ho * Wo), oy = (i / Wo) % Ho, ox = i % Wo;
    const float *xp = x + pl * H * W; // (H, W)
    double acc = 0.0;
    for (int ky = 0; ky < 3; ky++) {
      const int64_t iy = reflect1(2 * oy - 1 + ky, H);
      for (int kx = 0; kx < 3; kx++) {
        const int64_t ix = reflect1(2 * ox - 1 + kx, W);
        acc += (double)xp[iy * W + ix] * (double)(f3(ky) * f3(kx));
      }
    }
    y[i] = (float)acc;
  }
}

/* Its adjoint: dx[iy, ix] = sum over the padded positions (py, px) that copy
 * (iy, ix) of dpad[py, px] = sum over taps with 2oy + ky = py, 2ox + kx = px
 * of dy[oy, ox] f3[ky] f3[kx]. */
static __global__ void blur_down_bwd_kernel(const float *dy, float *dx, int64_t planes, int64_t H,
                                            int64_t W, int64_t Ho, int64_t Wo) {
  NGC_FOR(i, planes * H * W) {
    const int64_t pl = i / (H * W), iy = (i / W) % H, ix = i % W;
    const float *g = dy + pl * Ho * Wo; // (Ho, Wo)
    const pad_ranges ry = pad_sources(iy, H, 1, NGC_PAD_REFLECT);
    const pad_ranges rx = pad_sources(ix, W, 1, NGC_PAD_REFLECT);
    double acc = 0.0;
    for (int a = 0; a < ry.n; a++) {
      const int64_t py = ry.lo[a]; /* reflect ranges are single positions */
      for (int ky = 0; ky < 3; ky++) {
        const int64_t ty = py - ky;
        if (ty < 0 || ty % 2 || ty / 2 >= Ho) continue;
        for (int b = 0; b < rx.n; b++) {
          const int64_t px = rx.lo[b];
          for (int kx = 0; kx < 3; kx++) {
            const int64_t tx = px - kx;
            if (tx < 0 || tx % 2 || tx / 2 >= Wo) continue;
            acc += (double)g[(ty / 2) * Wo + tx / 2] * (double)(f3(ky) * f3(kx));
          }
        }
      }
    }
    dx[i] = (float)acc;
  }
}

/* Upsample: xpad = replicate pad 1 of x (H + 2, W + 2); full = its transposed
 * convolution with f4 f4^T, stride 2, padding 2: full[2py - 2 + ky] +=
 * xpad[py] f4[ky] (per axis), size 2H + 2; y = full without its first and
 * last row and column, so y[ty] = full[ty + 1]: ky = ty + 3 - 2py. */
static __global__ void blur_up_fwd_kernel(const float *x, float *y, int64_t planes, int64_t H,
                                          int64_t W) {
  const int64_t Ho = 2 * H, Wo = 2 * W;
  NGC_FOR(i, planes * Ho * Wo) {
    const int64_t pl = i / (Ho * Wo), ty = (i / Wo) % Ho, tx = i % Wo;
    const float *xp = x + pl * H * W; // (H, W)
    double acc = 0.0;
    for (int ky = 0; ky < 4; ky++) {
      const int64_t t = ty + 3 - ky;
      if (t % 2 || t / 2 > H + 1) continue; /* t >= 0 always */
      const int64_t sy = pad_src(t / 2, H, 1, NGC_PAD_REPLICATE);
      for (int kx = 0; kx < 4; kx++) {
        const int64_t u = tx + 3 - kx;
        if (u % 2 || u / 2 > W + 1) continue;
        const int64_t sx = pad_src(u / 2, W, 1, NGC_PAD_REPLICATE);
        acc += (double)xp[sy * W + sx] * (double)(f4(ky) * f4(kx));
      }
    }
    y[i] = (float)acc;
  }
}

/* Its adjoint: dx[iy, ix] = sum over the padded positions (py, px) that
 * replicate (iy, ix) of sum over taps with ty = 2py - 3 + ky in [0, 2H) of
 * dy[ty, tx] f4[ky] f4[kx]. */
static __global__ void blur_up_bwd_kernel(const float *dy, float *dx, int64_t planes, int64_t H,
                                          int64_t W) {
  const int64_t Ho = 2 * H, Wo = 2 * W;
  NGC_FOR(i, planes * H * W) {
    const int64_t pl = i / (H * W), iy = (i / W) % H, ix = i % W;
    const float *g = dy + pl * Ho * Wo; // (2H, 2W)
    const pad_ranges ry = pad_sources(iy, H, 1, NGC_PAD_REPLICATE);
    const pad_ranges rx = pad_sources(ix, W, 1, NGC_PAD_REPLICATE);
    double acc = 0.0;
    for (int64_t py = ry.lo[0]; py <= ry.hi[0]; py++)
      for (int ky = 0; ky < 4; ky++) {
        const int64_t ty = 2 * py - 3 + ky;
        if (ty < 0 || ty >= Ho) continue;
        for (int64_t px = rx.lo[0]; px <= rx.hi[0]; px++)
          for (int kx = 0; kx < 4; kx++) {
            const int64_t tx = 2 * px - 3 + kx;
            if (tx < 0 || tx >= Wo) continue;
            acc += (double)g[ty * Wo + tx] * (double)(f4(ky) * f4(kx));
          }
      }
    dx[i] = (float)acc;
  }
}

static negcut_status cuda_blur_down_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  const int64_t n = ngc_numel(y);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "blur_down_fwd", blur_down_fwd_kernel, ngc_grid(n), NGC_BLOCK, x->data,
                    y->data, x->dim[0] * x->dim[1], x->dim[2], x->dim[3], y->dim[2], y->dim[3]);
}

static negcut_status cuda_blur_down_bwd(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx) {
  const int64_t n = ngc_numel(dx);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "blur_down_bwd", blur_down_bwd_kernel, ngc_grid(n), NGC_BLOCK, dy->data,
                    dx->data, dx->dim[0] * dx->dim[1], dx->dim[2], dx->dim[3], dy->dim[2],
                    dy->dim[3]);
}

static negcut_status cuda_blur_up_fwd(ngc_backend *be, const ngc_tensor *x, ngc_tensor *y) {
  const int64_t n = ngc_numel(y);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "blur_up_fwd", blur_up_fwd_kernel, ngc_grid(n), NGC_BLOCK, x->data,
                    y->data, x->dim[0] * x->dim[1], x->dim[2], x->dim[3]);
}

static negcut_status cuda_blur_up_bwd(ngc_backend *be, const ngc_tensor *dy, ngc_tensor *dx) {
  const int64_t n = ngc_numel(dx);
  negcut_status st = ngc_cuda_enter(be);
  if (st || n == 0) return st;
  return NGC_LAUNCH(be, "blur_up_bwd", blur_up_bwd_kernel, ngc_grid(n), NGC_BLOCK, dy->data,
                    dx->data, dx->dim[0] * dx->dim[1], dx->dim[2], dx->dim[3]);
}

extern "C" void ngc_cuda_fill_spatial_ops(ngc_backend_ops *ops) {
  ops->pad_fwd = cuda_pad_fwd;
  ops->pad_bwd = cuda_pad_bwd;
  ops->blur_down_fwd = cuda_blur_down_fwd;
  ops->blur_down_bwd = cuda_blur_down_bwd;
  ops->blur_up_fwd = cuda_blur_up_fwd;
  ops->blur_up_bwd = cuda_blur_up_bwd;
}
