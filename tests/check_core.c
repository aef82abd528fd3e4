/* The core API contract: status names, versions, build info, contexts; the
 * pixel conventions of core/pixel.h. */
#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <negcut.h>

#include "core/pixel.h"

START_TEST(test_status_str) {
  ck_assert_str_eq(negcut_status_str(NEGCUT_OK), "NEGCUT_OK");
  ck_assert_str_eq(negcut_status_str(NEGCUT_ERR_IO), "NEGCUT_ERR_IO");
  ck_assert_str_eq(negcut_status_str(NEGCUT_ERR_INTERNAL), "NEGCUT_ERR_INTERNAL");
  ck_assert_str_eq(negcut_status_str(12345), "NEGCUT_ERR_UNKNOWN");
  for (negcut_status s = NEGCUT_ERR_INTERNAL; s <= NEGCUT_OK; s++)
    ck_assert_ptr_nonnull(strstr(negcut_status_str(s), "NEGCUT_"));
}
END_TEST

START_TEST(test_version) {
  ck_assert_uint_eq(negcut_version_number(), NEGCUT_VERSION_NUMBER);
  ck_assert_str_eq(negcut_version_string(), NEGCUT_VERSION_STRING);
  ck_assert_uint_eq(negcut_version_number(), NEGCUT_VERSION_MAJOR * 10000u +
                                                 NEGCUT_VERSION_MINOR * 100u +
                                                 NEGCUT_VERSION_PATCH);
  const char *info = negcut_build_info();
  ck_assert_ptr_nonnull(strstr(info, NEGCUT_VERSION_STRING));
  ck_assert_ptr_nonnull(strstr(info, "oneDNN 2."));
  ck_assert_ptr_nonnull(strstr(info, "ref"));
  ck_assert_ptr_eq(info, negcut_build_info()); /* built once */
}
END_TEST

START_TEST(test_ctx_defaults) {
  negcut_ctx *ctx = NULL;
  ck_assert_int_eq(negcut_ctx_create(&ctx, NULL), NEGCUT_OK);
  ck_assert_ptr_nonnull(ctx);
  ck_assert_int_ne(negcut_ctx_backend(ctx), NEGCUT_BACKEND_AUTO);
  ck_assert_int_ge(negcut_ctx_threads(ctx), 1);
  ck_assert_str_eq(negcut_ctx_last_error(ctx), "");
  negcut_ctx_free(ctx);
  negcut_ctx_free(NULL);
}
END_TEST

START_TEST(test_ctx_backends) {
  negcut_ctx_options o;
  negcut_ctx *ctx = NULL;
  ck_assert_int_eq(negcut_ctx_options_init(&o), NEGCUT_OK);
  ck_assert_uint_eq(o.version, NEGCUT_CTX_OPTIONS_VERSION);
  o.backend = NEGCUT_BACKEND_REF;
  o.threads = 1;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_ctx_backend(ctx), NEGCUT_BACKEND_REF);
  ck_assert_int_eq(negcut_ctx_threads(ctx), 1);
  negcut_ctx_free(ctx);
  o.backend = NEGCUT_BACKEND_CPU;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_OK);
  ck_assert_int_eq(negcut_ctx_backend(ctx), NEGCUT_BACKEND_CPU);
  negcut_ctx_free(ctx);
  /* Without a GPU the CUDA backend is refused with a reason, not a crash. */
  o.backend = NEGCUT_BACKEND_CUDA;
  negcut_status st = negcut_ctx_create(&ctx, &o);
  if (st != NEGCUT_OK) {
    ck_assert_int_eq(st, NEGCUT_ERR_UNSUPPORTED);
    ck_assert_ptr_null(ctx);
    ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "cuda"));
  } else {
    negcut_ctx_free(ctx);
  }
}
END_TEST

START_TEST(test_ctx_bad_arguments) {
  negcut_ctx_options o;
  negcut_ctx *ctx = (negcut_ctx *)&o; /* must be reset to NULL on failure */
  ck_assert_int_eq(negcut_ctx_create(NULL, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(negcut_ctx_options_init(NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  negcut_ctx_options_init(&o);
  o.version = 99;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(ctx);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "version"));
  negcut_ctx_options_init(&o);
  o.backend = 42;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "backend"));
  negcut_ctx_options_init(&o);
  o.threads = -3;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), "threads"));
  ck_assert_ptr_null(negcut_backend_name(17));
  ck_assert_str_eq(negcut_backend_name(NEGCUT_BACKEND_CPU), "cpu");
}
END_TEST

/* ------------------------------------------------- versioned options */

/* Every options struct through its init functions. The ends of each version
 * come from the version notes in the headers, written here independently
 * of the library's tables: _init_v2(o, v) writes exactly the first ends[v -
 * 1] bytes (the defaults, with version v), refuses 0 and versions above
 * the header's without writing anything, and _init keeps filling the
 * version it had when _v2 came (frozen), whatever the struct grows to. */
#define END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
#define GUARD 64
#define ADAPT(x)                                                                        \
  static negcut_status x##_init(void *o) { return negcut_##x##_options_init(o); }      \
  static negcut_status x##_init_v2(void *o, uint32_t v) {                               \
    return negcut_##x##_options_init_v2(o, v);                                          \
  }
ADAPT(ctx)
ADAPT(image_load)
ADAPT(image_save)
ADAPT(loss)
ADAPT(adam)
ADAPT(generator)
ADAPT(discriminator)
ADAPT(head)
ADAPT(translator)
static negcut_status trainer_init(void *o) {
  return negcut_trainer_options_init(o, NEGCUT_MODE_NEGCUT);
}
static negcut_status trainer_init_v2(void *o, uint32_t v) {
  return negcut_trainer_options_init_v2(o, v, NEGCUT_MODE_NEGCUT);
}

static const negcut_ctx_options k_ctx = NEGCUT_CTX_OPTIONS_INIT;
static const negcut_image_load_options k_load = NEGCUT_IMAGE_LOAD_OPTIONS_INIT;
static const negcut_image_save_options k_save = NEGCUT_IMAGE_SAVE_OPTIONS_INIT;
static const negcut_loss_options k_loss = NEGCUT_LOSS_OPTIONS_INIT;
static const negcut_adam_options k_adam = NEGCUT_ADAM_OPTIONS_INIT;
static const negcut_generator_options k_gen = NEGCUT_GENERATOR_OPTIONS_INIT;
static const negcut_discriminator_options k_disc = NEGCUT_DISCRIMINATOR_OPTIONS_INIT;
static const negcut_head_options k_head = NEGCUT_HEAD_OPTIONS_INIT;
static const negcut_translator_options k_tr = NEGCUT_TRANSLATOR_OPTIONS_INIT;

typedef struct opt_case {
  const char *name;
  size_t size;
  uint32_t current, frozen; /* the header's version; what _init fills */
  size_t ends[4];           /* where versions 1.. end */
  negcut_status (*init)(void *o);
  negcut_status (*init_v2)(void *o, uint32_t version);
  const void *macro; /* the INIT macro's struct, or NULL (the trainer: by mode) */
} opt_case;

#define V1(T, last, x, k)                                                                \
  { #T, sizeof(T), 1, 1, {END_OF(T, last)}, x##_init, x##_init_v2, k }
static const opt_case k_opts[] = {
    V1(negcut_ctx_options, seed, ctx, &k_ctx),
    V1(negcut_image_load_options, max_file_bytes, image_load, &k_load),
    V1(negcut_image_save_options, jpeg_quality, image_save, &k_save),
    V1(negcut_loss_options, target_real, loss, &k_loss),
    V1(negcut_adam_options, weight_decay, adam, &k_adam),
    V1(negcut_generator_options, init_gain, generator, &k_gen),
    V1(negcut_discriminator_options, init_gain, discriminator, &k_disc),
    V1(negcut_head_options, init_gain, head, &k_head),
    /* translate.h: version 2 added tf32 and eager, version 3 conv_algo, version 4
     * exact_tiles; _init stays at 3 */
    {"negcut_translator_options", sizeof(negcut_translator_options), 4, 3,
     {END_OF(negcut_translator_options, bf16), END_OF(negcut_translator_options, eager),
      END_OF(negcut_translator_options, conv_algo), END_OF(negcut_translator_options, exact_tiles)},
     translator_init, translator_init_v2, &k_tr},
    /* train.h: version 2 added eager, version 3 tf32, version 4 conv_algo */
    {"negcut_trainer_options", sizeof(negcut_trainer_options), 4, 4,
     {END_OF(negcut_trainer_options, diversity_all_calls), END_OF(negcut_trainer_options, eager),
      END_OF(negcut_trainer_options, tf32), END_OF(negcut_trainer_options, conv_algo)},
     trainer_init, trainer_init_v2, NULL},
};

static void expect_untouched(const opt_case *c, const unsigned char *b, size_t from,
                             const char *what) {
  for (size_t i = from; i < c->size + GUARD; i++)
    ck_assert_msg(b[i] == 0xa5, "%s %s: byte %zu written (the version ends at %zu)", c->name,
                  what, i, from);
}

START_TEST(test_options_versions) {
  const opt_case *c = &k_opts[_i];
  unsigned char buf[1024], full[1024];
  uint32_t v;
  ck_assert_uint_le(c->size + GUARD, sizeof buf);
  ck_assert_int_eq(c->init(NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(c->init_v2(NULL, c->current), NEGCUT_ERR_INVALID_ARGUMENT);
  /* versions this library does not know: nothing written */
  const uint32_t unknown[2] = {0, c->current + 1};
  for (int k = 0; k < 2; k++) {
    memset(buf, 0xa5, sizeof buf);
    ck_assert_int_eq(c->init_v2(buf, unknown[k]), NEGCUT_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(NULL), c->name));
    expect_untouched(c, buf, 0, "unknown version");
  }
  /* the current version: the INIT macro's bytes (the trainer's defaults by
   * mode: spot checks) up to the end of its last field */
  memset(full, 0xa5, sizeof full);
  ck_assert_int_eq(c->init_v2(full, c->current), NEGCUT_OK);
  if (c->macro)
    ck_assert_mem_eq(full, c->macro, c->ends[c->current - 1]);
  else {
    const negcut_trainer_options *t = (const negcut_trainer_options *)full;
    ck_assert(t->mode == NEGCUT_MODE_NEGCUT && t->ngf == 64 && t->num_patches == 256 &&
              t->lambda_nce == 1.0f && t->lr == 2e-4 && t->conv_algo == NEGCUT_CONV_AUTO);
  }
  /* every version: its own first bytes, its version, nothing beyond */
  for (v = 1; v <= c->current; v++) {
    uint32_t got;
    memset(buf, 0xa5, sizeof buf);
    ck_assert_int_eq(c->init_v2(buf, v), NEGCUT_OK);
    memcpy(&got, buf, sizeof got); /* the version field comes first */
    ck_assert_uint_eq(got, v);
    ck_assert_msg(memcmp(buf + 4, full + 4, c->ends[v - 1] - 4) == 0, "%s v%u: defaults", c->name,
                  (unsigned)v);
    expect_untouched(c, buf, c->ends[v - 1], "_init_v2");
  }
  /* _init: the frozen version */
  memset(buf, 0xa5, sizeof buf);
  ck_assert_int_eq(c->init(buf), NEGCUT_OK);
  memcpy(&v, buf, sizeof v);
  ck_assert_uint_eq(v, c->frozen);
  expect_untouched(c, buf, c->ends[c->frozen - 1], "_init");
}
END_TEST

/* tensor2im's clamp, and NaN (what a generator with a NaN weight gives; a
 * fuzz target found it converted to uint8, undefined behaviour) as -1. */
START_TEST(test_unit_to_pixel) {
  ck_assert_uint_eq(ngc_unit_to_pixel(-1.0f), 0);
  ck_assert_uint_eq(ngc_unit_to_pixel(0.0f), 127);
  ck_assert_uint_eq(ngc_unit_to_pixel(1.0f), 255);
  ck_assert_uint_eq(ngc_unit_to_pixel(-7.5f), 0);
  ck_assert_uint_eq(ngc_unit_to_pixel(3.0f), 255);
  ck_assert_uint_eq(ngc_unit_to_pixel(-INFINITY), 0);
  ck_assert_uint_eq(ngc_unit_to_pixel(INFINITY), 255);
  /* x86 happens to turn NaN into 0 even through the undefined conversion
   * the old clamp let it reach: only the sanitizer build (test-all.sh,
   * float-cast-overflow) tells the two apart, and there it does. */
  ck_assert_uint_eq(ngc_unit_to_pixel(NAN), 0);
  ck_assert_uint_eq(ngc_unit_to_pixel(-NAN), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("core");
  TCase *tc = tcase_create("api");
  tcase_add_test(tc, test_status_str);
  tcase_add_test(tc, test_version);
  tcase_add_test(tc, test_ctx_defaults);
  tcase_add_test(tc, test_ctx_backends);
  tcase_add_test(tc, test_ctx_bad_arguments);
  tcase_add_loop_test(tc, test_options_versions, 0, (int)(sizeof k_opts / sizeof k_opts[0]));
  tcase_add_test(tc, test_unit_to_pixel);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
