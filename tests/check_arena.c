/* The per-step activation arena: alignment, disjoint allocations, no backend
 * allocation on repeated steps, growth, reset and free. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <negcut.h>

#include "backend/backend.h"
#include "core/arena.h"
#include "core/core.h"
#include "ngc_test.h"

static negcut_ctx *ref_ctx(void) {
  negcut_ctx_options o;
  negcut_ctx *ctx = NULL;
  negcut_ctx_options_init(&o);
  o.backend = NEGCUT_BACKEND_REF;
  o.threads = 1;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_OK);
  return ctx;
}

/* A host backend that counts its allocations and can be told to refuse
 * them, so that the arena's own counter and its failure paths are checked
 * against what the backend really saw. */
typedef struct counting {
  ngc_backend be;
  int64_t calls, live;
  int fail;
} counting;

static void *counting_alloc(ngc_backend *be, size_t bytes) {
  counting *c = be->impl;
  c->calls++;
  if (c->fail) return NULL;
  void *p = ngc_host_alloc(be, bytes);
  if (p) c->live++;
  return p;
}

static void counting_free(ngc_backend *be, void *p) {
  counting *c = be->impl;
  c->live--;
  ngc_host_free(be, p);
}

static void counting_init(counting *c, negcut_ctx *ctx) {
  memset(c, 0, sizeof *c);
  c->be.name = "counting";
  c->be.kind = NEGCUT_BACKEND_REF;
  c->be.host_memory = 1;
  c->be.ctx = ctx;
  c->be.impl = c;
  c->be.ops.alloc = counting_alloc;
  c->be.ops.free = counting_free;
}

/* One "step": a fixed pattern of odd sizes, some larger than a minimum
 * block, so that a first step needs several blocks. Records the pointers and
 * checks that they are aligned, writable and do not overlap. */
#define N_STEP 12
static const size_t step_sizes[N_STEP] = {
    1, 3000, 0, 64, 65, (size_t)3 << 19, 17, 4096, (size_t)5 << 20, 100, 7, 1 << 16};

static void run_step(ngc_arena *a, unsigned char *ptr[N_STEP]) {
  for (int i = 0; i < N_STEP; i++) {
    ptr[i] = ngc_arena_alloc(a, step_sizes[i]);
    ck_assert_ptr_nonnull(ptr[i]);
    ck_assert_msg((uintptr_t)ptr[i] % NGC_ARENA_ALIGN == 0, "alloc %d misaligned", i);
    if (step_sizes[i]) memset(ptr[i], i + 1, step_sizes[i]);
  }
  for (int i = 0; i < N_STEP; i++) {
    size_t n = step_sizes[i] ? step_sizes[i] : 1;
    for (int j = 0; j < N_STEP; j++) {
      size_t m = step_sizes[j] ? step_sizes[j] : 1;
      if (i != j)
        ck_assert_msg(ptr[i] + n <= ptr[j] || ptr[j] + m <= ptr[i],
                      "allocs %d and %d overlap", i, j);
    }
    /* nothing later wrote over it */
    if (step_sizes[i])
      ck_assert_int_eq(ptr[i][step_sizes[i] - 1], i + 1);
  }
}

static size_t step_total(void) {
  size_t t = 0;
  for (int i = 0; i < N_STEP; i++)
    t += ((step_sizes[i] ? step_sizes[i] : 1) + 63) / 64 * 64;
  return t;
}

START_TEST(test_repeated_steps_do_not_allocate) {
  negcut_ctx *ctx = ref_ctx();
  counting c;
  ngc_arena a;
  unsigned char *first[N_STEP], *second[N_STEP], *third[N_STEP];
  counting_init(&c, ctx);
  ngc_arena_init(&a, &c.be);
  ck_assert_uint_eq(a.n_backend_allocs, 0);
  ck_assert_uint_eq(a.reserved_bytes, 0);

  run_step(&a, first);
  ck_assert_uint_gt(a.n_backend_allocs, 1); /* the first step grows */
  ck_assert_uint_eq(a.high_water_bytes, step_total());

  ck_assert_int_eq(ngc_arena_reset(&a), NEGCUT_OK);
  uint64_t after_reset = a.n_backend_allocs;
  ck_assert_int_eq(a.n_blocks, 1);
  ck_assert_uint_eq(a.reserved_bytes, step_total()); /* exactly one step */

  run_step(&a, second);
  ck_assert_uint_eq(a.n_backend_allocs, after_reset);
  for (int s = 0; s < 5; s++) {
    ck_assert_int_eq(ngc_arena_reset(&a), NEGCUT_OK);
    run_step(&a, third);
    ck_assert_uint_eq(a.n_backend_allocs, after_reset);
    ck_assert_int_eq(a.n_blocks, 1);
    /* the same addresses every step */
    ck_assert_mem_eq(second, third, sizeof second);
  }
  ck_assert_int_eq(c.calls, (int64_t)a.n_backend_allocs);
  ngc_arena_free(&a);
  ck_assert_int_eq(c.live, 0);
  ck_assert_ptr_null(a.blocks);
  ck_assert_uint_eq(a.reserved_bytes, 0);
  negcut_ctx_free(ctx);
}
END_TEST

START_TEST(test_growth) {
  negcut_ctx *ctx = ref_ctx();
  counting c;
  ngc_arena a;
  unsigned char *p[N_STEP];
  counting_init(&c, ctx);
  ngc_arena_init(&a, &c.be);
  run_step(&a, p);
  ck_assert_int_eq(ngc_arena_reset(&a), NEGCUT_OK);
  run_step(&a, p);
  uint64_t steady = a.n_backend_allocs;

  /* A bigger step allocates again, then folds into one bigger block. */
  ck_assert_int_eq(ngc_arena_reset(&a), NEGCUT_OK);
  run_step(&a, p);
  void *extra = ngc_arena_alloc(&a, (size_t)3 << 20);
  ck_assert_ptr_nonnull(extra);
  ck_assert_uint_eq(a.n_backend_allocs, steady + 1);
  ck_assert_uint_eq(a.high_water_bytes, step_total() + ((size_t)3 << 20));
  ck_assert_int_eq(ngc_arena_reset(&a), NEGCUT_OK);
  ck_assert_int_eq(a.n_blocks, 1);
  ck_assert_uint_eq(a.reserved_bytes, a.high_water_bytes);
  uint64_t grown = a.n_backend_allocs;
  run_step(&a, p);
  ck_assert_ptr_nonnull(ngc_arena_alloc(&a, (size_t)3 << 20));
  ck_assert_uint_eq(a.n_backend_allocs, grown);

  /* A smaller step reuses the block. */
  ck_assert_int_eq(ngc_arena_reset(&a), NEGCUT_OK);
  ck_assert_ptr_nonnull(ngc_arena_alloc(&a, 10));
  ck_assert_int_eq(ngc_arena_reset(&a), NEGCUT_OK);
  ck_assert_uint_eq(a.n_backend_allocs, grown);
  ck_assert_int_eq(c.calls, (int64_t)a.n_backend_allocs);
  ngc_arena_free(&a);
  ck_assert_int_eq(c.live, 0);
  negcut_ctx_free(ctx);
}
END_TEST

START_TEST(test_tensor) {
  negcut_ctx *ctx = ref_ctx();
  ngc_arena a;
  ngc_tensor t, u;
  ngc_arena_init(&a, ctx->be);
  const int64_t dim[4] = {2, 3, 5, 7};
  ck_assert_int_eq(ngc_arena_tensor(ctx, &a, &t, 4, dim), NEGCUT_OK);
  ck_assert_int_eq(t.ndim, 4);
  ck_assert_int_eq(ngc_numel(&t), 210);
  ck_assert_int_eq(t.owns, 0);
  ck_assert_ptr_eq(t.be, ctx->be);
  ck_assert((uintptr_t)t.data % NGC_ARENA_ALIGN == 0);
  for (int64_t i = 0; i < 210; i++) t.data[i] = (float)i;
  ck_assert_int_eq(ngc_arena_tensor(ctx, &a, &u, 2, dim), NEGCUT_OK);
  ck_assert(u.data >= t.data + 210); /* after t, not over it */
  ngc_tensor_release(&t);             /* not owned: a no-op for the arena */
  ck_assert_uint_eq(a.step_bytes, 896 + 64);

  const int64_t bad[2] = {-1, 3};
  const int64_t huge[4] = {INT64_MAX, INT64_MAX, 2, 2};
  ck_assert_int_eq(ngc_arena_tensor(ctx, &a, &u, 2, bad), NEGCUT_ERR_LIMIT);
  ck_assert_int_eq(ngc_arena_tensor(ctx, &a, &u, 4, huge), NEGCUT_ERR_LIMIT);
  ck_assert_int_eq(ngc_arena_tensor(ctx, &a, &u, 0, dim), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_arena_tensor(ctx, &a, &u, 5, dim), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_arena_tensor(ctx, NULL, &u, 2, dim), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_str_ne(negcut_ctx_last_error(ctx), "");
  ngc_arena_free(&a);
  negcut_ctx_free(ctx);
}
END_TEST

START_TEST(test_overflow_and_oom) {
  negcut_ctx *ctx = ref_ctx();
  counting c;
  ngc_arena a;
  counting_init(&c, ctx);
  ngc_arena_init(&a, &c.be);
  /* rounding up to 64 would wrap: refused before asking the backend */
  ck_assert_ptr_null(ngc_arena_alloc(&a, SIZE_MAX));
  ck_assert_ptr_null(ngc_arena_alloc(&a, SIZE_MAX - 62));
  ck_assert_int_eq(c.calls, 0);
  ck_assert_ptr_nonnull(ngc_arena_alloc(&a, 100));
  ck_assert_int_eq(c.calls, 1);
  /* the running step total would wrap */
  ck_assert_ptr_null(ngc_arena_alloc(&a, SIZE_MAX - 127));
  ck_assert_int_eq(c.calls, 1);
  ck_assert_uint_eq(a.step_bytes, 128);

  /* the backend refuses: a message, NULL, and the arena still works */
  c.fail = 1;
  ck_assert_ptr_null(ngc_arena_alloc(&a, (size_t)4 << 20));
  ngc_tensor t;
  const int64_t big[1] = {1 << 20};
  ngc_error_clear(ctx);
  ck_assert_int_eq(ngc_arena_tensor(ctx, &a, &t, 1, big), NEGCUT_ERR_OUT_OF_MEMORY);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "counting"));
  ck_assert_ptr_nonnull(ngc_arena_alloc(&a, 100)); /* fits the first block */
  ck_assert_uint_eq(a.step_bytes, 256);
  ck_assert_int_eq(ngc_arena_alloc(&a, (size_t)4 << 20) == NULL, 1);
  c.fail = 0;
  ck_assert_ptr_nonnull(ngc_arena_alloc(&a, (size_t)4 << 20));
  ck_assert_int_eq(a.n_blocks, 2);

  /* reset cannot make its merged block: an error, then an empty arena that
   * allocates on demand */
  c.fail = 1;
  ck_assert_int_eq(ngc_arena_reset(&a), NEGCUT_ERR_OUT_OF_MEMORY);
  ck_assert_int_eq(a.n_blocks, 0);
  ck_assert_int_eq(c.live, 0);
  c.fail = 0;
  ck_assert_ptr_nonnull(ngc_arena_alloc(&a, 100));
  ck_assert_int_eq(c.live, 1);
  ngc_arena_free(&a);
  ck_assert_int_eq(c.live, 0);
  negcut_ctx_free(ctx);
}
END_TEST

START_TEST(test_free_and_empty) {
  ngc_arena z;
  memset(&z, 0, sizeof z);
  ngc_arena_free(&z); /* zeroed: fine */
  ngc_arena_free(&z); /* twice: fine */
  ngc_arena_free(NULL);
  ck_assert_ptr_null(ngc_arena_alloc(&z, 16)); /* no backend */
  ck_assert_ptr_null(ngc_arena_alloc(NULL, 16));
  ck_assert_int_eq(ngc_arena_reset(&z), NEGCUT_OK);
  ck_assert_int_eq(ngc_arena_reset(NULL), NEGCUT_ERR_INVALID_ARGUMENT);

  negcut_ctx *ctx = ref_ctx();
  ngc_arena a;
  ngc_arena_init(&a, ctx->be);
  ngc_arena_free(&a); /* initialised, never used */
  ngc_arena_init(&a, ctx->be);
  ck_assert_int_eq(ngc_arena_reset(&a), NEGCUT_OK); /* reset of an empty arena */
  ck_assert_uint_eq(a.n_backend_allocs, 0);
  ck_assert_ptr_nonnull(ngc_arena_alloc(&a, 0));
  ck_assert_uint_eq(a.n_backend_allocs, 1);
  ngc_arena_free(&a);
  ngc_arena_free(&a); /* zeroed by the first free */
  negcut_ctx_free(ctx);
}
END_TEST

int main(void) {
  Suite *s = suite_create("arena");
  TCase *tc = tcase_create("arena");
  tcase_add_test(tc, test_repeated_steps_do_not_allocate);
  tcase_add_test(tc, test_growth);
  tcase_add_test(tc, test_tensor);
  tcase_add_test(tc, test_overflow_and_oom);
  tcase_add_test(tc, test_free_and_empty);
  suite_add_tcase(s, tc);
  return ngc_test_run(s);
}
