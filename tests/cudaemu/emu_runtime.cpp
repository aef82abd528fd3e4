/* cudaemu: the part of the CUDA runtime the backend uses, on the CPU.
 *
 * Kernels run one block after another; the threads of a block are fibers
 * (own stacks, a small context switch below) so that __syncthreads and
 * warp shuffles can make a thread wait for the others exactly as on a GPU.
 * A barrier some threads never reach, a shuffle with a finished lane or a
 * launch CUDA would refuse is reported, not papered over. Threads run until
 * they wait or finish, in index order (NGC_EMU_REVERSE=1: the reverse).
 *
 * Device memory is mapped only while queued work runs: host code that
 * touches it faults, as it would on a GPU; and each allocation ends against
 * a guard page, so a kernel that runs past its end faults too. */
#include "emu.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#if !defined(__x86_64__)
#error "cudaemu switches fibers with x86-64 code"
#endif

thread_local ngc_emu_thread *ngc_emu_self;

/* --------------------------------------------------------------- state */

namespace {

/* host, host_bytes: the pinned memory a copy reads or writes when it runs */
struct Node {
  const char *what;
  std::function<void()> fn;
  const void *host;
  size_t host_bytes;
};

struct Op {
  CUstream_st *stream;
  const char *what;
  std::function<void()> fn;
  uint64_t seq;
  const void *host;
  size_t host_bytes;
};

} // namespace

struct CUgraph_st {
  std::vector<Node> nodes;
};
struct CUgraphExec_st {
  std::vector<Node> nodes;
};
struct CUstream_st {
  int blocking; /* ordered against the legacy stream */
  int legacy;
  CUgraph_st *capture; /* the graph being captured, or NULL */
  int invalid;         /* the capture was invalidated */
  std::vector<Node> late; /* emu_enqueue_late's, not queued yet */
};
struct CUevent_st {
  uint64_t seq; /* the queue position it marks; 0: never recorded */
};

namespace {

std::recursive_mutex g_mu;
CUstream_st g_legacy = {1, 1, nullptr, 0, {}};
std::vector<CUstream_st *> g_streams; /* created ones */
std::deque<Op> g_queue;
uint64_t g_seq;  /* the last queued */
uint64_t g_done; /* the last run */
std::map<uintptr_t, size_t> g_device, g_pinned; /* start -> bytes */
struct Mapping {
  void *base; /* mmap'd: the allocation's pages, then a guard page */
  size_t bytes;
};
std::map<uintptr_t, Mapping> g_maps; /* device allocation start -> its mapping */
int g_device_open;                   /* device memory is readable (work is running) */
size_t g_page;
size_t g_device_bytes; /* allocated now */

/* NGC_EMU_DEVICE_BYTES: the device's memory (80 GiB, an H100's, by default). */
size_t device_capacity() {
  static const size_t cap = [] {
    const char *e = getenv("NGC_EMU_DEVICE_BYTES");
    return e && strtoull(e, nullptr, 10) ? (size_t)strtoull(e, nullptr, 10) : (size_t)80 << 30;
  }();
  return cap;
}

/* Opens (1) or closes (0) every device allocation to the host. */
void device_access(int open) {
  if (g_device_open == open) return;
  g_device_open = open;
  for (const auto &kv : g_maps)
    if (mprotect(kv.second.base, kv.second.bytes, open ? PROT_READ | PROT_WRITE : PROT_NONE))
      emu_fail("mprotect of device memory failed");
}
thread_local cudaError_t t_last = cudaSuccess;

cudaError_t fail(cudaError_t e) {
  t_last = e;
  return e;
}

CUstream_st *resolve(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &g_legacy;
  return s;
}

int inside(const std::map<uintptr_t, size_t> &m, const void *p, size_t bytes) {
  const uintptr_t a = (uintptr_t)p;
  auto it = m.upper_bound(a);
  if (it == m.begin()) return 0;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second;
}

/* NGC_EMU_STATS=1: at exit, how many operations ran, by name (kernels by
 * their function's name): what a GPU would have launched. */
std::map<std::string, uint64_t> *g_stats;

void print_stats() {
  uint64_t total = 0;
  for (const auto &kv : *g_stats) total += kv.second;
  emu_note("%llu operations ran:", (unsigned long long)total);
  for (const auto &kv : *g_stats)
    fprintf(stderr, "  %10llu  %s\n", (unsigned long long)kv.second, kv.first.c_str());
}

/* Runs the queue up to and including position seq, with device memory open. */
void run_until(uint64_t seq) {
  static const int stats = [] {
    const char *e = getenv("NGC_EMU_STATS");
    return e && atoi(e) != 0;
  }();
  if (stats && !g_stats) {
    g_stats = new std::map<std::string, uint64_t>;
    atexit(print_stats);
  }
  if (g_done < seq && !g_queue.empty()) device_access(1);
  while (g_done < seq && !g_queue.empty()) {
    Op op = std::move(g_queue.front());
    g_queue.pop_front();
    op.fn();
    g_done = op.seq;
    if (g_stats) (*g_stats)[op.what]++;
  }
  if (g_queue.empty()) g_done = g_seq;
  device_access(0);
}

uint64_t last_of(CUstream_st *s) {
  if (s->legacy) return g_seq; /* it waits for every blocking stream too */
  for (auto it = g_queue.rbegin(); it != g_queue.rend(); ++it)
    if (it->stream == s) return it->seq;
  return 0;
}

/* A capture in progress that a synchronising call breaks. */
CUstream_st *any_capture() {
  for (CUstream_st *s : g_streams)
    if (s->capture) return s;
  return nullptr;
}

cudaError_t refuse_in_capture(CUstream_st *s, const char *what) {
  s->invalid = 1;
  emu_note("%s while a stream is being captured: the capture is invalidated", what);
  return fail(cudaErrorStreamCaptureUnsupported);
}

} // namespace

std::unique_lock<std::recursive_mutex> emu_lock() {
  return std::unique_lock<std::recursive_mutex>(g_mu);
}

static void say(const char *fmt, va_list ap) {
  fputs("cudaemu: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

void emu_note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say(fmt, ap);
  va_end(ap);
}

void emu_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say(fmt, ap);
  va_end(ap);
  abort();
}

int emu_is_device(const void *p, size_t bytes) { return inside(g_device, p, bytes); }
int emu_is_pinned(const void *p, size_t bytes) { return inside(g_pinned, p, bytes); }
int emu_capturing(cudaStream_t s) { return resolve(s)->capture != nullptr; }

float emu_tf32(float v) {
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  if ((u & 0x7f800000u) != 0x7f800000u) { /* finite: round 23 bits to 10, ties to even */
    u += 0xfffu + ((u >> 13) & 1u);
    u &= ~0x1fffu;
  }
  memcpy(&v, &u, sizeof v);
  return v;
}

/* Queues s's late work (emu_enqueue_late), after everything queued so far. */
static void flush_late(CUstream_st *s) {
  for (Node &n : s->late)
    g_queue.push_back(Op{s, n.what, std::move(n.fn), ++g_seq, n.host, n.host_bytes});
  s->late.clear();
}

/* emu_enqueue, for a copy that reads or writes the pinned host range. */
static cudaError_t enqueue_host(cudaStream_t stream, const char *what, std::function<void()> fn,
                                const void *host, size_t host_bytes) {
  CUstream_st *s = resolve(stream);
  flush_late(s); /* a stream's work runs in its order */
  if (s->capture) {
    if (s->invalid) return fail(cudaErrorStreamCaptureInvalidated);
    s->capture->nodes.push_back(Node{what, std::move(fn), host, host_bytes});
    return cudaSuccess;
  }
  if (s->legacy)
    for (CUstream_st *c : g_streams)
      if (c->capture && c->blocking) {
        c->invalid = 1;
        emu_note("%s on the legacy stream while a blocking stream is being captured", what);
        return fail(cudaErrorStreamCaptureImplicit);
      }
  g_queue.push_back(Op{s, what, std::move(fn), ++g_seq, host, host_bytes});
  return cudaSuccess;
}

cudaError_t emu_enqueue(cudaStream_t stream, const char *what, std::function<void()> fn) {
  return enqueue_host(stream, what, std::move(fn), nullptr, 0);
}

cudaError_t emu_enqueue_late(cudaStream_t stream, const char *what, std::function<void()> fn) {
  CUstream_st *s = resolve(stream);
  if (s->blocking || s->capture) return emu_enqueue(stream, what, std::move(fn));
  s->late.push_back(Node{what, std::move(fn), nullptr, 0});
  return cudaSuccess;
}

/* ------------------------------------------------------------- fibers */

extern "C" void ngc_emu_swap(void **save_sp, void *load_sp);
/* Saves the callee-saved registers and the stack pointer in *save_sp,
 * continues on load_sp (made by ngc_emu_swap or by start_fiber). */
asm(".text\n"
    ".globl ngc_emu_swap\n"
    ".hidden ngc_emu_swap\n"
    ".type ngc_emu_swap, @function\n"
    "ngc_emu_swap:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size ngc_emu_swap, .-ngc_emu_swap\n");

namespace {

constexpr size_t STACK_BYTES = (size_t)128 << 10;
constexpr size_t GUARD_BYTES = 4096;

enum { RUNNING, AT_SYNC, AT_SHUFFLE, FINISHED };

struct Fiber {
  void *sp;
  void *stack;
  ngc_emu_thread t;
  int state, warp, lane, parity;
};

struct Block {
  const char *kernel;
  const std::function<void()> *body;
  std::vector<Fiber> f;
  int n, live, at_sync, finished, next_start;
  std::vector<int> warp_live, warp_wait;
  /* where the threads waiting at the barrier, and each warp's lanes waiting
   * in a shuffle, called it from (and the shuffle's xor): all must agree */
  const void *sync_site;
  std::vector<const void *> warp_site;
  std::vector<int> warp_xor;
  std::vector<uint64_t> slot; /* [warp][parity][lane] */
  std::deque<int> ready;
};

Block *g_block;
Fiber *g_fiber;
void *g_sched_sp;
std::vector<void *> g_stacks; /* free ones */
/* NGC_EMU_REVERSE=1: blocks, and threads within a block, start last first.
 * A kernel whose result depends on which thread runs first (a race) then
 * gives another answer. */
const int g_reverse = [] {
  const char *e = getenv("NGC_EMU_REVERSE");
  return e && atoi(e) != 0;
}();

void *get_stack() {
  if (!g_stacks.empty()) {
    void *s = g_stacks.back();
    g_stacks.pop_back();
    return s;
  }
  char *m = (char *)mmap(nullptr, STACK_BYTES + GUARD_BYTES, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) emu_fail("no memory for a fiber stack");
  mprotect(m, GUARD_BYTES, PROT_NONE); /* stacks grow down onto this */
  return m + GUARD_BYTES;
}

void to_scheduler(Fiber *f) { ngc_emu_swap(&f->sp, g_sched_sp); }

/* Makes the threads first..last-1 waiting in state ready to run. */
void release(Block *b, int state, int first, int last) {
  for (int i = first; i < last; i++)
    if (b->f[i].state == state) {
      b->f[i].state = RUNNING;
      b->ready.push_back(i);
    }
}

void release_sync(Block *b) {
  b->at_sync = 0;
  release(b, AT_SYNC, 0, b->n);
}

[[noreturn]] void fiber_main() {
  Fiber *f = g_fiber;
  Block *b = g_block;
  (*b->body)();
  f->state = FINISHED;
  b->live--;
  b->warp_live[f->warp]--;
  if (b->at_sync && b->at_sync == b->live) release_sync(b);
  if (b->warp_wait[f->warp])
    emu_fail("kernel %s: thread %d finished while lanes of its warp wait in a shuffle",
             b->kernel, (int)(f - b->f.data()));
  to_scheduler(f);
  emu_fail("a finished fiber was resumed");
}

void start_fiber(Fiber *f) {
  f->stack = get_stack();
  uintptr_t *sp = (uintptr_t *)((char *)f->stack + STACK_BYTES);
  *--sp = 0;                     /* fiber_main's return address: it never returns */
  *--sp = (uintptr_t)fiber_main; /* where ngc_emu_swap's ret goes */
  for (int i = 0; i < 6; i++) *--sp = 0; /* rbp rbx r12-r15 */
  f->sp = sp;
}

void run_block(Block *b) {
  b->live = b->n;
  b->at_sync = b->finished = b->next_start = 0;
  std::fill(b->warp_wait.begin(), b->warp_wait.end(), 0);
  for (size_t w = 0; w < b->warp_live.size(); w++)
    b->warp_live[w] = (int)(b->n - 32 * (int)w < 32 ? b->n - 32 * (int)w : 32);
  while (b->finished < b->n) {
    int i;
    if (!b->ready.empty()) {
      i = b->ready.front();
      b->ready.pop_front();
    } else if (b->next_start < b->n) {
      i = g_reverse ? b->n - 1 - b->next_start++ : b->next_start++;
      start_fiber(&b->f[i]);
    } else {
      int sync = 0, shfl = 0;
      for (const Fiber &f : b->f) sync += f.state == AT_SYNC, shfl += f.state == AT_SHUFFLE;
      emu_fail("kernel %s, block (%u, %u, %u): deadlock: %d threads at __syncthreads, %d in a "
               "warp shuffle, %d finished, of %d",
               b->kernel, b->f[0].t.bid.x, b->f[0].t.bid.y, b->f[0].t.bid.z, sync, shfl,
               b->finished, b->n);
    }
    Fiber *f = &b->f[i];
    g_fiber = f;
    ngc_emu_self = &f->t;
    ngc_emu_swap(&g_sched_sp, f->sp);
    if (f->state == FINISHED) {
      g_stacks.push_back(f->stack);
      f->stack = nullptr;
      b->finished++;
    }
  }
  ngc_emu_self = nullptr;
}

void run_kernel(const char *kernel, dim3 grid, dim3 block, const std::function<void()> &body) {
  Block b;
  b.kernel = kernel;
  b.body = &body;
  b.n = (int)(block.x * block.y * block.z);
  b.f.resize((size_t)b.n);
  const size_t warps = ((size_t)b.n + 31) / 32;
  b.warp_live.resize(warps);
  b.warp_wait.resize(warps);
  b.warp_site.resize(warps);
  b.warp_xor.resize(warps);
  b.slot.resize(warps * 2 * 32);
  g_block = &b;
  for (unsigned zi = 0; zi < grid.z; zi++)
    for (unsigned yi = 0; yi < grid.y; yi++)
      for (unsigned xi = 0; xi < grid.x; xi++) {
        const unsigned z = g_reverse ? grid.z - 1 - zi : zi, y = g_reverse ? grid.y - 1 - yi : yi;
        const unsigned x = g_reverse ? grid.x - 1 - xi : xi;
        for (int i = 0; i < b.n; i++) {
          Fiber &f = b.f[(size_t)i];
          f.t.tid = make_uint3(i % block.x, i / block.x % block.y, i / (block.x * block.y));
          f.t.bid = make_uint3(x, y, z);
          f.t.bdim = block;
          f.t.gdim = grid;
          f.state = RUNNING;
          f.warp = i / 32;
          f.lane = i % 32;
          f.parity = 0;
          f.stack = nullptr;
        }
        run_block(&b);
      }
  g_block = nullptr;
}

} // namespace

void __syncthreads(void) {
  Block *b = g_block;
  Fiber *f = g_fiber;
  const void *site = __builtin_return_address(0);
  if (b->live != b->n)
    emu_fail("kernel %s: __syncthreads after %d threads of the block finished", b->kernel,
             b->n - b->live);
  if (!b->at_sync) b->sync_site = site;
  else if (site != b->sync_site)
    emu_fail("kernel %s: threads wait at two different __syncthreads (%p, %p)", b->kernel,
             b->sync_site, site);
  if (++b->at_sync == b->live) { /* the last to arrive goes on at once */
    release_sync(b);
    return;
  }
  f->state = AT_SYNC;
  to_scheduler(f);
}

uint64_t ngc_emu_shfl_xor(unsigned mask, uint64_t bits, int xor_mask, int width) {
  Block *b = g_block;
  Fiber *f = g_fiber;
  const int w = f->warp;
  if (mask != 0xffffffffu || width != 32)
    emu_fail("kernel %s: a shuffle with mask %#x, width %d (only whole warps are emulated)",
             b->kernel, mask, width);
  if (b->warp_live[w] != 32 || (xor_mask & ~31))
    emu_fail("kernel %s: shuffle xor %d in warp %d, which has %d running lanes", b->kernel,
             xor_mask, w, b->warp_live[w]);
  const void *site = __builtin_return_address(0);
  if (!b->warp_wait[w]) b->warp_site[w] = site, b->warp_xor[w] = xor_mask;
  else if (site != b->warp_site[w] || xor_mask != b->warp_xor[w])
    emu_fail("kernel %s: lanes of warp %d are in different shuffles (%p xor %d, %p xor %d)",
             b->kernel, w, b->warp_site[w], b->warp_xor[w], site, xor_mask);
  uint64_t *slots = &b->slot[((size_t)w * 2 + (size_t)f->parity) * 32];
  slots[f->lane] = bits;
  if (++b->warp_wait[w] == 32) { /* the last lane to arrive goes on at once */
    b->warp_wait[w] = 0;
    release(b, AT_SHUFFLE, w * 32, w * 32 + 32);
  } else {
    f->state = AT_SHUFFLE;
    to_scheduler(f);
  }
  f->parity ^= 1;
  return slots[f->lane ^ xor_mask];
}

void ngc_emu_check_arg(const char *kernel, int index, const void *p) {
  auto lock = emu_lock();
  if (p && !emu_is_device(p, 1))
    emu_fail("kernel %s: argument %d (%p) is a pointer outside device memory", kernel, index, p);
}

void ngc_emu_launch_body(const char *name, dim3 grid, dim3 block, cudaStream_t s,
                         std::function<void()> body) {
  auto lock = emu_lock();
  const uint64_t threads = (uint64_t)block.x * block.y * block.z;
  if (!grid.x || !grid.y || !grid.z || !threads || block.x > 1024 || block.y > 1024 ||
      block.z > 64 || threads > 1024 || grid.x > 0x7fffffffu || grid.y > 65535 ||
      grid.z > 65535) {
    emu_note("kernel %s: grid (%u, %u, %u), block (%u, %u, %u): CUDA refuses it", name, grid.x,
             grid.y, grid.z, block.x, block.y, block.z);
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  const cudaError_t e = emu_enqueue(
      s, name, [name, grid, block, body] { run_kernel(name, grid, block, body); });
  if (e) fail(e);
}

/* ------------------------------------------------------- runtime API */

extern "C" {

cudaError_t cudaGetLastError(void) {
  const cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) { return t_last; }

const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
  case cudaSuccess: return "cudaSuccess";
  case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
  case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
  case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
  case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
  case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
  case cudaErrorIllegalState: return "cudaErrorIllegalState";
  case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
  case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
  case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
  case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
  default: return "cudaErrorUnknown";
  }
}

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
  case cudaSuccess: return "no error";
  case cudaErrorInvalidValue: return "invalid argument";
  case cudaErrorMemoryAllocation: return "out of memory";
  case cudaErrorInvalidConfiguration: return "invalid configuration argument";
  case cudaErrorInvalidDevice: return "invalid device ordinal";
  case cudaErrorInvalidDevicePointer: return "invalid device pointer";
  case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
  case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
  case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
  case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
  default: return "unknown error (cudaemu)";
  }
}

/* NGC_EMU_DEVICES: how many devices there are (1 by default), for the
 * programs that choose one; they share this process's device memory. */
static int device_count() {
  static const int n = [] {
    const char *e = getenv("NGC_EMU_DEVICES");
    return e && atoi(e) > 0 ? atoi(e) : 1;
  }();
  return n;
}

cudaError_t cudaGetDeviceCount(int *count) {
  *count = device_count();
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device >= 0 && device < device_count() ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t cudaRuntimeGetVersion(int *version) {
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
  auto lock = emu_lock();
  *p = nullptr;
  if (!bytes) return cudaSuccess;
  if (!g_page) g_page = (size_t)sysconf(_SC_PAGESIZE);
  if (bytes > device_capacity() - g_device_bytes) return fail(cudaErrorMemoryAllocation);
  /* 256-byte aligned, ending (but for the alignment's slack) at a guard page */
  const size_t rounded = (bytes + 255) / 256 * 256;
  const size_t pages = (rounded + g_page - 1) / g_page * g_page;
  char *base = (char *)mmap(nullptr, pages + g_page, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
  char *m = base + pages - rounded;
  memset(m, 0xff, bytes); /* NaN: a read before the first write shows */
  if (mprotect(base + pages, g_page, PROT_NONE) ||
      (!g_device_open && mprotect(base, pages, PROT_NONE)))
    emu_fail("mprotect of new device memory failed");
  g_device[(uintptr_t)m] = bytes;
  g_maps[(uintptr_t)m] = Mapping{base, pages};
  g_device_bytes += bytes;
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
  auto lock = emu_lock();
  if (!p) return cudaSuccess;
  if (CUstream_st *c = any_capture()) return refuse_in_capture(c, "cudaFree");
  if (!g_device.count((uintptr_t)p)) {
    emu_note("cudaFree(%p): not a device allocation", p);
    return fail(cudaErrorInvalidDevicePointer);
  }
  run_until(g_seq); /* cudaFree waits for the device */
  const Mapping mp = g_maps[(uintptr_t)p];
  g_device_bytes -= g_device[(uintptr_t)p];
  g_device.erase((uintptr_t)p);
  g_maps.erase((uintptr_t)p);
  munmap(mp.base, mp.bytes + g_page);
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int flags) {
  auto lock = emu_lock();
  *p = nullptr;
  void *m = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096 + 4096);
  if (!m) return fail(cudaErrorMemoryAllocation);
  memset(m, 0xff, bytes);
  g_pinned[(uintptr_t)m] = bytes;
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p) {
  auto lock = emu_lock();
  if (!p) return cudaSuccess;
  if (!g_pinned.count((uintptr_t)p)) {
    emu_note("cudaFreeHost(%p): not a pinned allocation", p);
    return fail(cudaErrorInvalidValue);
  }
  /* Not documented to wait for the device: queued copies must be done with it. */
  const size_t bytes = g_pinned[(uintptr_t)p];
  for (const Op &op : g_queue)
    if (op.host_bytes && (const char *)op.host < (const char *)p + bytes &&
        (const char *)p < (const char *)op.host + op.host_bytes)
      emu_fail("cudaFreeHost(%p): a queued %s still uses that pinned memory", p, op.what);
  g_pinned.erase((uintptr_t)p);
  free(p);
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  auto lock = emu_lock();
  if (CUstream_st *c = any_capture()) return refuse_in_capture(c, "cudaDeviceSynchronize");
  for (CUstream_st *c : g_streams) flush_late(c);
  run_until(g_seq);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
  auto lock = emu_lock();
  CUstream_st *n = new CUstream_st{(flags & cudaStreamNonBlocking) ? 0 : 1, 0, nullptr, 0, {}};
  g_streams.push_back(n);
  *s = n;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  auto lock = emu_lock();
  CUstream_st *s = resolve(stream);
  if (s->legacy) return fail(cudaErrorInvalidValue);
  if (s->capture) return refuse_in_capture(s, "cudaStreamDestroy");
  flush_late(s);
  run_until(last_of(s)); /* its work still runs */
  for (size_t i = 0; i < g_streams.size(); i++)
    if (g_streams[i] == s) g_streams.erase(g_streams.begin() + (long)i);
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  auto lock = emu_lock();
  CUstream_st *s = resolve(stream);
  if (s->capture) return refuse_in_capture(s, "cudaStreamSynchronize of the capturing stream");
  if (s->legacy)
    for (CUstream_st *c : g_streams)
      if (c->capture && c->blocking)
        return refuse_in_capture(c, "cudaStreamSynchronize of the legacy stream");
  flush_late(s);
  run_until(last_of(s));
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
  auto lock = emu_lock();
  if (!bytes) return cudaSuccess;
  const int dst_dev = emu_is_device(dst, bytes), src_dev = emu_is_device(src, bytes);
  if (kind == cudaMemcpyDefault)
    kind = dst_dev ? (src_dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                   : (src_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  const int want_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const int want_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dst_dev != want_dst || src_dev != want_src || kind == cudaMemcpyHostToHost) {
    emu_note("cudaMemcpyAsync(%p <- %p, %zu bytes, kind %d): the pointers are not of that kind "
             "(destination %s, source %s)",
             dst, src, bytes, (int)kind, dst_dev ? "device" : "host", src_dev ? "device" : "host");
    return fail(cudaErrorInvalidValue);
  }
  CUstream_st *s = resolve(stream);
  if (kind == cudaMemcpyHostToDevice && !emu_is_pinned(src, bytes)) {
    /* pageable: CUDA copies the source out before it returns */
    if (s->capture) return refuse_in_capture(s, "a copy from pageable memory");
    auto copy = std::make_shared<std::vector<char>>((const char *)src, (const char *)src + bytes);
    return emu_enqueue(s, "upload (pageable)",
                       [dst, copy, bytes] { memcpy(dst, copy->data(), bytes); });
  }
  if (kind == cudaMemcpyDeviceToHost && !emu_is_pinned(dst, bytes)) {
    /* pageable: CUDA returns once the bytes are there */
    if (s->capture) return refuse_in_capture(s, "a copy into pageable memory");
    const cudaError_t e =
        emu_enqueue(s, "download (pageable)", [dst, src, bytes] { memcpy(dst, src, bytes); });
    if (!e) run_until(g_seq);
    return e;
  }
  const void *host = kind == cudaMemcpyHostToDevice ? src
                     : kind == cudaMemcpyDeviceToHost ? (const void *)dst
                                                      : nullptr;
  return enqueue_host(s, "copy", [dst, src, bytes] { memcpy(dst, src, bytes); }, host,
                      host ? bytes : 0);
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream) {
  auto lock = emu_lock();
  if (!bytes) return cudaSuccess;
  if (!emu_is_device(p, bytes)) {
    emu_note("cudaMemsetAsync(%p, %zu bytes): not device memory", p, bytes);
    return fail(cudaErrorInvalidValue);
  }
  return emu_enqueue(stream, "memset", [p, value, bytes] { memset(p, value, bytes); });
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *ev, unsigned int flags) {
  *ev = new CUevent_st{0};
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t ev) {
  delete ev;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t stream) {
  auto lock = emu_lock();
  if (emu_capturing(stream))
    emu_fail("cudaEventRecord on a capturing stream: not emulated (the backend does not do it)");
  const cudaError_t e = emu_enqueue(stream, "event", [] {});
  if (!e) ev->seq = g_seq;
  return e;
}

cudaError_t cudaEventSynchronize(cudaEvent_t ev) {
  auto lock = emu_lock();
  run_until(ev->seq);
  return cudaSuccess;
}

/* Runs nothing (queued work runs only when the host waits), so an event the
 * host has not waited past has not fired; "not ready" is also left as the
 * thread's last error, as the runtime may leave it. */
cudaError_t cudaEventQuery(cudaEvent_t ev) {
  auto lock = emu_lock();
  return ev->seq <= g_done ? cudaSuccess : fail(cudaErrorNotReady);
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
  auto lock = emu_lock();
  CUstream_st *s = resolve(stream);
  if (s->legacy) return fail(cudaErrorStreamCaptureUnsupported);
  if (s->capture) return fail(cudaErrorIllegalState);
  if (mode != cudaStreamCaptureModeRelaxed)
    emu_fail("cudaStreamBeginCapture: only the relaxed mode is emulated");
  s->capture = new CUgraph_st;
  s->invalid = 0;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
  auto lock = emu_lock();
  CUstream_st *s = resolve(stream);
  *graph = nullptr;
  if (!s->capture) return fail(cudaErrorIllegalState);
  CUgraph_st *g = s->capture;
  s->capture = nullptr;
  if (s->invalid) {
    s->invalid = 0;
    delete g;
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = g;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags) {
  auto lock = emu_lock();
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  auto lock = emu_lock();
  if (emu_capturing(stream)) emu_fail("cudaGraphLaunch into a capture: not emulated");
  for (const Node &n : exec->nodes) {
    const cudaError_t e = enqueue_host(stream, n.what, n.fn, n.host, n.host_bytes);
    if (e) return e;
  }
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

} // extern "C"
