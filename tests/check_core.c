/* The core API contract: status names, versions, build info, contexts; the
 * pixel conventions of core/pixel.h. */
#include <check.h>
#include <math.h>
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
  tcase_add_test(tc, test_unit_to_pixel);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
