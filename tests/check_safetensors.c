/* lib/io/safetensors: roundtrip, metadata, hostile files, atomic writes, and
 * a file written by Python (tools/op_parity.py --sample). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "ngc_test.h"

#ifndef NGC_PYTHON3
#define NGC_PYTHON3 "python3"
#endif

static negcut_ctx *ctx;
static char tmpdir[256];

static void setup(void) {
  negcut_ctx_options o;
  negcut_ctx_options_init(&o);
  o.backend = NEGCUT_BACKEND_REF;
  o.threads = 1;
  ck_assert_int_eq(negcut_ctx_create(&ctx, &o), NEGCUT_OK);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ngc_st_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
  char cmd[300];
  negcut_ctx_free(ctx);
  ctx = NULL;
  chmod(tmpdir, 0700);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

static void path_in(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static const float w_data[6] = {0.5f, -1.0f, 2.25f, 3.0f, -4.5f, 1e-3f};
static const int64_t ids_data[3] = {7, -2, (int64_t)1 << 40};
static const uint8_t u8_data[5] = {0, 1, 2, 254, 255};
static const float scalar_data[1] = {42.0f};

/* A writer with four tensors (one empty, one 0-dim) and two metadata items. */
static ngc_st_writer *sample_writer(void) {
  ngc_st_writer *w = NULL;
  const int64_t ws[2] = {2, 3}, is[1] = {3}, us[3] = {1, 5, 1}, es[2] = {0, 4};
  ck_assert_int_eq(ngc_st_writer_create(ctx, &w), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_add(w, "model.1.weight", NGC_ST_F32, 2, ws, w_data), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_add(w, "ids", NGC_ST_I64, 1, is, ids_data), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_add(w, "bytes", NGC_ST_U8, 3, us, u8_data), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_add(w, "empty", NGC_ST_F32, 2, es, NULL), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_add(w, "scalar \"quoted\"", NGC_ST_F32, 0, NULL, scalar_data),
                   NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_set_metadata(w, "arch", "resnet_9blocks"), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_set_metadata(w, "step", "0"), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_set_metadata(w, "step", "1200"), NEGCUT_OK); /* replaces */
  return w;
}

static void check_sample(const ngc_st_file *f) {
  const ngc_st_entry *e;
  ck_assert_int_eq(ngc_st_count(f), 5);
  e = ngc_st_find(f, "model.1.weight");
  ck_assert_ptr_nonnull(e);
  ck_assert_int_eq(e->dtype, NGC_ST_F32);
  ck_assert_int_eq(e->ndim, 2);
  ck_assert_int_eq(e->shape[0], 2);
  ck_assert_int_eq(e->shape[1], 3);
  ck_assert_uint_eq(e->nbytes, sizeof w_data);
  ck_assert_int_eq(memcmp(e->data, w_data, sizeof w_data), 0);
  e = ngc_st_find(f, "ids");
  ck_assert_ptr_nonnull(e);
  ck_assert_int_eq(e->dtype, NGC_ST_I64);
  ck_assert_int_eq(memcmp(e->data, ids_data, sizeof ids_data), 0);
  e = ngc_st_find(f, "bytes");
  ck_assert_ptr_nonnull(e);
  ck_assert_int_eq(e->ndim, 3);
  ck_assert_int_eq(e->shape[1], 5);
  ck_assert_int_eq(memcmp(e->data, u8_data, sizeof u8_data), 0);
  e = ngc_st_find(f, "empty");
  ck_assert_ptr_nonnull(e);
  ck_assert_uint_eq(e->nbytes, 0);
  ck_assert_int_eq(e->shape[0], 0);
  e = ngc_st_find(f, "scalar \"quoted\"");
  ck_assert_ptr_nonnull(e);
  ck_assert_int_eq(e->ndim, 0);
  ck_assert_uint_eq(e->nbytes, 4);
  ck_assert_int_eq(memcmp(e->data, scalar_data, 4), 0);
  ck_assert_ptr_null(ngc_st_find(f, "missing"));
  ck_assert_ptr_null(ngc_st_find(f, "__metadata__"));
  /* Entries in data order, which is the order they were added. */
  ck_assert_str_eq(ngc_st_entry_at(f, 0)->name, "model.1.weight");
  ck_assert_str_eq(ngc_st_entry_at(f, 4)->name, "scalar \"quoted\"");
  ck_assert_ptr_null(ngc_st_entry_at(f, 5));
  ck_assert_ptr_null(ngc_st_entry_at(f, -1));
  ck_assert_str_eq(ngc_st_metadata(f, "arch"), "resnet_9blocks");
  ck_assert_str_eq(ngc_st_metadata(f, "step"), "1200");
  ck_assert_ptr_null(ngc_st_metadata(f, "nope"));
  ck_assert_int_eq(ngc_st_metadata_count(f), 2);
}

START_TEST(test_roundtrip) {
  char path[320];
  ngc_st_writer *w = sample_writer();
  ngc_st_file *f = NULL;
  void *mem = NULL;
  size_t len = 0;
  uint64_t hlen = 0;
  FILE *fp;
  unsigned char *disk;

  path_in(path, sizeof path, "a.safetensors");
  ck_assert_int_eq(ngc_st_write(ctx, w, path), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_open(ctx, path, &f), NEGCUT_OK);
  check_sample(f);
  ngc_st_close(f);

  /* The memory form holds the same bytes; the header is padded to 8. */
  ck_assert_int_eq(ngc_st_write_memory(ctx, w, &mem, &len), NEGCUT_OK);
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | ((unsigned char *)mem)[i];
  ck_assert_uint_eq(hlen % 8, 0);
  ck_assert_uint_eq(len, 8 + hlen + sizeof w_data + sizeof ids_data + sizeof u8_data + 4);
  disk = malloc(len + 1);
  fp = fopen(path, "rb");
  ck_assert_ptr_nonnull(fp);
  ck_assert_uint_eq(fread(disk, 1, len + 1, fp), len);
  fclose(fp);
  ck_assert_int_eq(memcmp(disk, mem, len), 0);
  free(disk);
  ck_assert_int_eq(ngc_st_open_memory(ctx, mem, len, &f), NEGCUT_OK);
  check_sample(f);
  ngc_st_close(f);

  /* Overwriting an existing file replaces it. */
  ck_assert_int_eq(ngc_st_writer_set_metadata(w, "step", "1300"), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_write(ctx, w, path), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_open(ctx, path, &f), NEGCUT_OK);
  ck_assert_str_eq(ngc_st_metadata(f, "step"), "1300");
  ngc_st_close(f);
  free(mem);
  ngc_st_writer_free(w);
}
END_TEST

START_TEST(test_empty_and_metadata) {
  ngc_st_writer *w = NULL;
  ngc_st_file *f = NULL;
  const char *k = NULL, *v = NULL;
  void *mem = NULL;
  size_t len = 0;
  ck_assert_int_eq(ngc_st_writer_create(ctx, &w), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_write_memory(ctx, w, &mem, &len), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_open_memory(ctx, mem, len, &f), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_count(f), 0);
  ck_assert_int_eq(ngc_st_metadata_count(f), 0);
  ck_assert_ptr_null(ngc_st_find(f, "x"));
  ck_assert_ptr_null(ngc_st_metadata(f, "x"));
  ngc_st_close(f);
  free(mem);

  ck_assert_int_eq(ngc_st_writer_set_metadata(w, "z", "last"), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_set_metadata(w, "a", "{\"json\": [1, 2]}\n\t\xc3\xa9"),
                   NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_set_metadata(w, "", ""), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_write_memory(ctx, w, &mem, &len), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_open_memory(ctx, mem, len, &f), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_metadata_count(f), 3);
  ck_assert_str_eq(ngc_st_metadata(f, "a"), "{\"json\": [1, 2]}\n\t\xc3\xa9");
  ck_assert_str_eq(ngc_st_metadata(f, "z"), "last");
  ck_assert_str_eq(ngc_st_metadata(f, ""), "");
  ck_assert_int_eq(ngc_st_metadata_at(f, 0, &k, &v), NEGCUT_OK); /* sorted by key */
  ck_assert_str_eq(k, "");
  ck_assert_int_eq(ngc_st_metadata_at(f, 2, &k, &v), NEGCUT_OK);
  ck_assert_str_eq(k, "z");
  ck_assert_str_eq(v, "last");
  ck_assert_int_eq(ngc_st_metadata_at(f, 3, &k, &v), NEGCUT_ERR_INVALID_ARGUMENT);
  ngc_st_close(f);
  free(mem);
  ngc_st_writer_free(w);
}
END_TEST

START_TEST(test_api_contract) {
  ngc_st_writer *w = NULL;
  ngc_st_file *f = (ngc_st_file *)&w;
  const int64_t s1[1] = {2}, neg[1] = {-1};
  const float d[2] = {1, 2};
  ngc_st_close(NULL);
  ngc_st_writer_free(NULL);
  ck_assert_int_eq(ngc_st_count(NULL), 0);
  ck_assert_ptr_null(ngc_st_find(NULL, "x"));
  ck_assert_ptr_null(ngc_st_metadata(NULL, "x"));
  ck_assert_int_eq(ngc_st_open(ctx, NULL, &f), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(f);
  ck_assert_int_eq(ngc_st_open(ctx, "x", NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_st_open_memory(ctx, NULL, 10, &f), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_st_open(ctx, "/nonexistent/dir/x.safetensors", &f), NEGCUT_ERR_IO);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "/nonexistent/dir/x.safetensors"));
  ck_assert_int_eq(ngc_st_open(ctx, tmpdir, &f), NEGCUT_ERR_IO); /* a directory */
  ck_assert_ptr_null(f);
  ck_assert_int_eq(ngc_st_writer_create(ctx, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_st_writer_create(ctx, &w), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_add(w, "a", NGC_ST_F32, 1, s1, d), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_add(w, "a", NGC_ST_F32, 1, s1, d), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "'a'"));
  ck_assert_int_eq(ngc_st_writer_add(w, "__metadata__", NGC_ST_F32, 1, s1, d),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_st_writer_add(w, "b", NGC_ST_F32, 1, neg, d), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_st_writer_add(w, "b", NGC_ST_F32, 1, s1, NULL),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_st_writer_add(w, "b", (ngc_st_dtype)99, 1, s1, d),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_st_writer_add(w, "b", NGC_ST_F32, 9, s1, d), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_st_writer_add(NULL, "b", NGC_ST_F32, 1, s1, d),
                   NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_st_writer_set_metadata(w, NULL, "v"), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_st_write(ctx, NULL, "x"), NEGCUT_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(ngc_st_write(ctx, w, NULL), NEGCUT_ERR_INVALID_ARGUMENT);
  ngc_st_writer_free(w);
  ck_assert_str_eq(ngc_st_dtype_name(NGC_ST_BF16), "BF16");
  ck_assert_uint_eq(ngc_st_dtype_size(NGC_ST_F16), 2);
  ck_assert_uint_eq(ngc_st_dtype_size(NGC_ST_I64), 8);
  ck_assert_int_eq(ngc_st_dtype_from_name("U8"), NGC_ST_U8);
  ck_assert_int_eq(ngc_st_dtype_from_name("f32"), -1);
  ck_assert_ptr_null(ngc_st_dtype_name(NGC_ST_DTYPE_COUNT));
}
END_TEST

/* Every proper prefix of a valid file is refused with a status and a
 * message; none crashes (run under ASan to see reads past the end: each
 * prefix is copied into its own exact-size buffer). */
START_TEST(test_truncated) {
  ngc_st_writer *w = sample_writer();
  ngc_st_file *f = NULL;
  void *mem = NULL;
  size_t len = 0;
  char path[320];
  ck_assert_int_eq(ngc_st_write_memory(ctx, w, &mem, &len), NEGCUT_OK);
  for (size_t n = 0; n < len; n++) {
    unsigned char *copy = malloc(n ? n : 1);
    memcpy(copy, mem, n);
    negcut_status st = ngc_st_open_memory(ctx, copy, n, &f);
    ck_assert_msg(st == NEGCUT_ERR_BAD_FORMAT, "prefix of %zu bytes: status %s", n,
                  negcut_status_str(st));
    ck_assert_ptr_null(f);
    ck_assert_msg(strlen(negcut_ctx_last_error(ctx)) > 0, "prefix %zu: no message", n);
    free(copy);
  }
  ck_assert_int_eq(ngc_st_open_memory(ctx, mem, len, &f), NEGCUT_OK);
  ngc_st_close(f);

  /* From a file: the message names it. */
  path_in(path, sizeof path, "short.safetensors");
  FILE *fp = fopen(path, "wb");
  ck_assert_ptr_nonnull(fp);
  ck_assert_uint_eq(fwrite(mem, 1, len - 3, fp), len - 3);
  fclose(fp);
  ck_assert_int_eq(ngc_st_open(ctx, path, &f), NEGCUT_ERR_BAD_FORMAT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), path));
  free(mem);
  ngc_st_writer_free(w);
}
END_TEST

/* A file from a header text and data_len zero bytes of data; hlen_override
 * (when non-zero) replaces the true header length. */
static negcut_status open_hostile(const char *header, size_t data_len, uint64_t hlen_override) {
  size_t hlen = strlen(header), len = 8 + hlen + data_len;
  uint64_t h = hlen_override ? hlen_override : hlen;
  unsigned char *buf = calloc(1, len);
  ngc_st_file *f = NULL;
  negcut_status st;
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(h >> (8 * i));
  memcpy(buf + 8, header, hlen);
  st = ngc_st_open_memory(ctx, buf, len, &f);
  ck_assert(st == NEGCUT_OK || f == NULL);
  ngc_st_close(f);
  free(buf);
  return st;
}

/* Expects status want, and `needle` in the message when not NULL. */
static void expect(const char *header, size_t data_len, negcut_status want,
                   const char *needle) {
  negcut_status st = open_hostile(header, data_len, 0);
  ck_assert_msg(st == want, "header %s: got %s, want %s (%s)", header, negcut_status_str(st),
                negcut_status_str(want), negcut_ctx_last_error(ctx));
  if (needle)
    ck_assert_msg(strstr(negcut_ctx_last_error(ctx), needle), "header %s: message '%s' lacks '%s'",
                  header, negcut_ctx_last_error(ctx), needle);
}

START_TEST(test_hostile) {
  /* Sanity: the helper makes valid files. */
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NEGCUT_OK, NULL);
  expect("{}", 0, NEGCUT_OK, NULL);
  expect("{\"t\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}  \n", 1, NEGCUT_OK, NULL);

  /* Header length. */
  ck_assert_int_eq(open_hostile("{}", 0, UINT64_MAX), NEGCUT_ERR_LIMIT);
  ck_assert_int_eq(open_hostile("{}", 0, (uint64_t)1 << 40), NEGCUT_ERR_LIMIT);
  ck_assert_int_eq(open_hostile("{}", 0, NGC_ST_MAX_HEADER_BYTES + 1), NEGCUT_ERR_LIMIT);
  ck_assert_int_eq(open_hostile("{}", 10, 1000), NEGCUT_ERR_BAD_FORMAT);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), "<memory>"));

  /* JSON. */
  expect("{\"a\":", 0, NEGCUT_ERR_BAD_FORMAT, "JSON");
  expect("", 0, NEGCUT_ERR_BAD_FORMAT, NULL);
  expect("[1, 2]", 0, NEGCUT_ERR_BAD_FORMAT, "object");
  expect("{} x", 0, NEGCUT_ERR_BAD_FORMAT, NULL);
  expect("{}{}", 0, NEGCUT_ERR_BAD_FORMAT, NULL);
  expect("\"str\"", 0, NEGCUT_ERR_BAD_FORMAT, NULL);
  expect("{\"t\": 3}", 0, NEGCUT_ERR_BAD_FORMAT, "'t'");
  { /* NUL padding after the JSON instead of spaces */
    static const unsigned char nul_pad[12] = {4, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, 0};
    ngc_st_file *f = NULL;
    ck_assert_int_eq(ngc_st_open_memory(ctx, nul_pad, sizeof nul_pad, &f), NEGCUT_ERR_BAD_FORMAT);
    ck_assert_ptr_null(f);
  }

  /* Entries. */
  expect("{\"t\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, NEGCUT_ERR_BAD_FORMAT,
         "'t'");
  expect("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
         NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4,
         NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4,
         NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         NEGCUT_ERR_LIMIT, "'t'");
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
         NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
         NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1e300,1e300]}}", 4,
         NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4,
         NEGCUT_ERR_BAD_FORMAT, "'t'");
  /* Shape product overflow: 2^32 * 2^32 * 4 bytes, and 2^53 * 2^53. */
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}",
         4, NEGCUT_ERR_BAD_FORMAT, "overflow");
  expect("{\"t\":{\"dtype\":\"U8\",\"shape\":[9007199254740992,9007199254740992],"
         "\"data_offsets\":[0,4]}}",
         4, NEGCUT_ERR_BAD_FORMAT, "overflow");
  /* A shape of 0 * huge is 0 bytes and fine. */
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[0,9007199254740992],\"data_offsets\":[0,0]}}", 0,
         NEGCUT_OK, NULL);
  /* Wrong size for the dtype. */
  expect("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
         NEGCUT_ERR_BAD_FORMAT, "'t'");
  expect("{\"t\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         NEGCUT_ERR_BAD_FORMAT, "BF16");

  /* Tiling. */
  expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, NEGCUT_ERR_BAD_FORMAT, "overlap");
  expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         8, NEGCUT_ERR_BAD_FORMAT, "overlap");
  expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, NEGCUT_ERR_BAD_FORMAT, "'b'");
  expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
         NEGCUT_ERR_BAD_FORMAT, "'a'"); /* gap at the start */
  expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
         NEGCUT_ERR_BAD_FORMAT, "no tensor"); /* trailing bytes */
  expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
         NEGCUT_ERR_BAD_FORMAT, "run past"); /* out of range */
  /* Tensors listed out of data order are fine. */
  expect("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
         8, NEGCUT_OK, NULL);

  /* Names and metadata. */
  expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, NEGCUT_ERR_BAD_FORMAT, "twice");
  expect("{\"__metadata__\":{\"k\":1}}", 0, NEGCUT_ERR_BAD_FORMAT, "\"k\"");
  expect("{\"__metadata__\":{\"k\":null}}", 0, NEGCUT_ERR_BAD_FORMAT, "not a string");
  expect("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, NEGCUT_ERR_BAD_FORMAT, NULL);
  expect("{\"__metadata__\":[\"k\"]}", 0, NEGCUT_ERR_BAD_FORMAT, "__metadata__");
  expect("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, NEGCUT_ERR_BAD_FORMAT, "twice");
  expect("{\"__metadata__\":{},\"__metadata__\":{}}", 0, NEGCUT_ERR_BAD_FORMAT, "twice");
  expect("{\"__metadata__\":{\"k\":\"v\"}}", 0, NEGCUT_OK, NULL);
}
END_TEST

/* Names in tmpdir other than keep; 0 when there is none. */
static int stray_files(const char *keep) {
  DIR *d = opendir(tmpdir);
  struct dirent *de;
  int n = 0;
  ck_assert_ptr_nonnull(d);
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (keep && strcmp(de->d_name, keep) == 0) continue;
    fprintf(stderr, "stray file %s\n", de->d_name);
    n++;
  }
  closedir(d);
  return n;
}

START_TEST(test_failed_write_keeps_old_file) {
  char path[320], missing[320];
  ngc_st_writer *w = sample_writer(), *big = NULL;
  ngc_st_file *f = NULL;
  static float bulk[4096];
  const int64_t bs[1] = {4096};
  struct rlimit old_lim, lim;
  struct stat sb;

  path_in(path, sizeof path, "ckpt.safetensors");
  ck_assert_int_eq(ngc_st_write(ctx, w, path), NEGCUT_OK);

  /* The directory does not exist. */
  path_in(missing, sizeof missing, "no/such/dir/x.safetensors");
  ck_assert_int_eq(ngc_st_write(ctx, w, missing), NEGCUT_ERR_IO);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), missing));

  /* The path is a directory: the rename fails, the temp file goes. */
  path_in(missing, sizeof missing, "adir");
  ck_assert_int_eq(mkdir(missing, 0700), 0);
  ck_assert_int_eq(ngc_st_write(ctx, w, missing), NEGCUT_ERR_IO);
  ck_assert_int_eq(stat(missing, &sb), 0);
  ck_assert(S_ISDIR(sb.st_mode));
  ck_assert_int_eq(rmdir(missing), 0);
  ck_assert_int_eq(stray_files("ckpt.safetensors"), 0);

  /* The disk "fills up" half way: a file size limit makes write fail with
   * EFBIG (works as root too, unlike a read-only directory). */
  for (int i = 0; i < 4096; i++) bulk[i] = (float)i;
  ck_assert_int_eq(ngc_st_writer_create(ctx, &big), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_writer_add(big, "bulk", NGC_ST_F32, 1, bs, bulk), NEGCUT_OK);
  ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
  signal(SIGXFSZ, SIG_IGN);
  lim = old_lim;
  lim.rlim_cur = 1024;
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
  negcut_status st = ngc_st_write(ctx, big, path);
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old_lim), 0);
  signal(SIGXFSZ, SIG_DFL);
  ck_assert_int_eq(st, NEGCUT_ERR_IO);
  ck_assert_ptr_nonnull(strstr(negcut_ctx_last_error(ctx), path));
  /* the system's reason, not a generic I/O error */
  ck_assert_msg(strstr(negcut_ctx_last_error(ctx), strerror(EFBIG)), "%s",
                negcut_ctx_last_error(ctx));
  ck_assert_int_eq(stray_files("ckpt.safetensors"), 0);
  ck_assert_int_eq(ngc_st_open(ctx, path, &f), NEGCUT_OK);
  check_sample(f);
  ngc_st_close(f);

  /* A read-only directory (meaningless as root, who may write anyway). */
  if (geteuid() != 0) {
    ck_assert_int_eq(chmod(tmpdir, 0500), 0);
    ck_assert_int_eq(ngc_st_write(ctx, big, path), NEGCUT_ERR_IO);
    ck_assert_int_eq(chmod(tmpdir, 0700), 0);
    ck_assert_int_eq(ngc_st_open(ctx, path, &f), NEGCUT_OK);
    check_sample(f);
    ngc_st_close(f);
  }

  /* And the same writer succeeds once the limit is gone. */
  ck_assert_int_eq(ngc_st_write(ctx, big, path), NEGCUT_OK);
  ck_assert_int_eq(ngc_st_open(ctx, path, &f), NEGCUT_OK);
  ck_assert_int_eq(memcmp(ngc_st_find(f, "bulk")->data, bulk, sizeof bulk), 0);
  ngc_st_close(f);
  ck_assert_int_eq(stray_files("ckpt.safetensors"), 0);
  ngc_st_writer_free(big);

  /* A name of 250 bytes (NAME_MAX is 255): its temporary name must fit too. */
  char name[251], longp[600];
  memset(name, 'n', 250);
  name[250] = '\0';
  memcpy(name + 238, ".safetensors", 12);
  path_in(longp, sizeof longp, name);
  ck_assert_msg(ngc_st_write(ctx, w, longp) == NEGCUT_OK, "%s", negcut_ctx_last_error(ctx));
  ck_assert_int_eq(ngc_st_open(ctx, longp, &f), NEGCUT_OK);
  check_sample(f);
  ngc_st_close(f);
  ck_assert_int_eq(unlink(longp), 0);
  ngc_st_writer_free(w);
}
END_TEST

/* A file from tools/op_parity.py's own writer: header sorted by name, data
 * in another order, an empty tensor, metadata. */
START_TEST(test_python_file) {
  char path[320], cmd[1024];
  ngc_st_file *f = NULL;
  const ngc_st_entry *e;
  float wv[6];
  int64_t iv[4];
  path_in(path, sizeof path, "py.safetensors");
  snprintf(cmd, sizeof cmd, "'%s' '%s/tools/op_parity.py' --sample '%s'", NGC_PYTHON3,
           NGC_SOURCE_DIR, path);
  ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
  ck_assert_msg(ngc_st_open(ctx, path, &f) == NEGCUT_OK, "%s", negcut_ctx_last_error(ctx));
  ck_assert_int_eq(ngc_st_count(f), 4);
  ck_assert_str_eq(ngc_st_entry_at(f, 0)->name, "ids"); /* data order */
  ck_assert_str_eq(ngc_st_entry_at(f, 3)->name, "bytes");
  e = ngc_st_find(f, "weight");
  ck_assert_ptr_nonnull(e);
  ck_assert_int_eq(e->dtype, NGC_ST_F32);
  ck_assert_int_eq(e->ndim, 2);
  ck_assert_int_eq(e->shape[0], 2);
  ck_assert_int_eq(e->shape[1], 3);
  memcpy(wv, e->data, sizeof wv);
  for (int i = 0; i < 6; i++) ck_assert_float_eq(wv[i], 0.5f * (float)i - 1.0f);
  e = ngc_st_find(f, "ids");
  ck_assert_int_eq(e->dtype, NGC_ST_I64);
  memcpy(iv, e->data, sizeof iv);
  ck_assert_int_eq(iv[0], 3);
  ck_assert_int_eq(iv[1], -1);
  ck_assert_int_eq(iv[2], (int64_t)1 << 40);
  e = ngc_st_find(f, "empty");
  ck_assert_int_eq(e->nbytes, 0);
  ck_assert_int_eq(e->shape[1], 5);
  e = ngc_st_find(f, "bytes");
  ck_assert_int_eq(((const uint8_t *)e->data)[2], 255);
  ck_assert_str_eq(ngc_st_metadata(f, "format"), "pt");
  ck_assert_str_eq(ngc_st_metadata(f, "writer"), "op_parity.py");
  ngc_st_close(f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("safetensors");
  TCase *tc = tcase_create("io");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_roundtrip);
  tcase_add_test(tc, test_empty_and_metadata);
  tcase_add_test(tc, test_api_contract);
  tcase_add_test(tc, test_truncated);
  tcase_add_test(tc, test_hostile);
  tcase_add_test(tc, test_failed_write_keeps_old_file);
  tcase_add_test(tc, test_python_file);
  suite_add_tcase(s, tc);
  return ngc_test_run(s);
}
