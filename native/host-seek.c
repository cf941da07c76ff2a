/*
 * livebackup_host_seek: lseek(SEEK_DATA) and lseek(SEEK_HOLE) for Node,
 * which has no binding for them. Both calls are synchronous: lseek on a
 * regular file only consults the file system's extent map.
 *
 *   seekData(fd, offset) -> offset of the first data byte at or after
 *                           offset, or -1 when there is none (ENXIO)
 *   seekHole(fd, offset) -> offset of the first hole byte at or after
 *                           offset (the end of the file counts as a hole),
 *                           or -1 when offset is at or past the end (ENXIO)
 *
 * Other lseek failures throw an Error whose `code` is the errno name
 * ('EINVAL' or 'EOPNOTSUPP' on a file system without support, 'EBADF', ...).
 * Arguments that are not non-negative safe integers throw a TypeError.
 */
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* 2^53 - 1: the largest integer a JS number holds exactly. */
#define MAX_SAFE_INTEGER 9007199254740991.0
#define MAX_FD 2147483647.0

/* The name of an errno value lseek can report; "E<number>" for any other. */
static const char *errno_name(int error, char *buffer, size_t size) {
  switch (error) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EOVERFLOW: return "EOVERFLOW";
    case ESPIPE: return "ESPIPE";
    case EIO: return "EIO";
    case ENOTSUP: return "ENOTSUP";
#if EOPNOTSUPP != ENOTSUP
    case EOPNOTSUPP: return "EOPNOTSUPP";
#endif
    default:
      snprintf(buffer, size, "E%d", error);
      return buffer;
  }
}

/*
 * Read `value` as an integer in [0, max] into *out. Returns 0 (with a
 * TypeError pending) when it is not one.
 */
static int get_whole_number(napi_env env, napi_value value, const char *name, double max, double *out) {
  napi_valuetype type;
  double number;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  /* NaN fails every comparison, so it is rejected by the range check. */
  if (type != napi_number || napi_get_value_double(env, value, &number) != napi_ok ||
      !(number >= 0 && number <= max) || (double)(int64_t)number != number) {
    char message[96];
    snprintf(message, sizeof(message), "%s must be a non-negative safe integer", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return 0;
  }
  *out = number;
  return 1;
}

/* The shared body of seekData and seekHole. */
static napi_value seek(napi_env env, napi_callback_info info, int whence, const char *call) {
  size_t argc = 2;
  napi_value argv[2];
  double fd;
  double offset;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "expected (fd, offset)");
    return NULL;
  }
  if (!get_whole_number(env, argv[0], "fd", MAX_FD, &fd)) return NULL;
  if (!get_whole_number(env, argv[1], "offset", MAX_SAFE_INTEGER, &offset)) return NULL;

  off_t result = lseek((int)fd, (off_t)offset, whence);
  if (result < 0) {
    int error = errno;
    if (error != ENXIO) {
      char code_buffer[24];
      char message[160];
      snprintf(message, sizeof(message), "%s: %s", call, strerror(error));
      napi_throw_error(env, errno_name(error, code_buffer, sizeof(code_buffer)), message);
      return NULL;
    }
    result = -1;
  }
  napi_value js_result;
  if (napi_create_double(env, (double)result, &js_result) != napi_ok) return NULL;
  return js_result;
}

static napi_value seek_data(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_DATA, "lseek(SEEK_DATA)");
}

static napi_value seek_hole(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_HOLE, "lseek(SEEK_HOLE)");
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
    { "seekData", NULL, seek_data, NULL, NULL, NULL, napi_enumerable, NULL },
    { "seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  if (napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
