/* The same C probe inside the node process (an N-API addon): the kernel's
 * cost of a uprobe grows with the size of the address space it searches, so
 * this is the baseline with dynprobe's conditions. `fire(n)` fires n times
 * while the semaphore is set and returns the ns per fire; `fireOne(i, s)`
 * fires once with the values it is given, as a plain N-API addon would (what
 * any addon pays per traced fire); `enabled()` tells whether a tracer has set
 * the semaphore. */
#include <node_api.h>
#include <time.h>

#include "c-probe.h"

static napi_value fire(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], result;
    int64_t n = 0;
    char text[] = "hello";
    struct timespec t0, t1;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    napi_get_value_int64(env, argv[0], &n);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        if (cprobe_fire_semaphore) CPROBE_FIRE(i, text);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    napi_create_double(env, n > 0 ? ns / n : 0, &result);
    return result;
}

static napi_value fire_one(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    int64_t i = 0;
    char text[256];
    size_t len = 0;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (cprobe_fire_semaphore) {
        napi_get_value_int64(env, argv[0], &i);
        napi_get_value_string_utf8(env, argv[1], text, sizeof text, &len);
        CPROBE_FIRE(i, text);
    }
    return NULL;
}

static napi_value enabled(napi_env env, napi_callback_info info) {
    napi_value result;
    napi_get_boolean(env, cprobe_fire_semaphore != 0, &result);
    return result;
}

NAPI_MODULE_INIT() {
    napi_value fn;
    napi_create_function(env, "fire", NAPI_AUTO_LENGTH, fire, NULL, &fn);
    napi_set_named_property(env, exports, "fire", fn);
    napi_create_function(env, "fireOne", NAPI_AUTO_LENGTH, fire_one, NULL, &fn);
    napi_set_named_property(env, exports, "fireOne", fn);
    napi_create_function(env, "enabled", NAPI_AUTO_LENGTH, enabled, NULL, &fn);
    napi_set_named_property(env, exports, "enabled", fn);
    return exports;
}
