/*
 * A C host of HMS FFI, in five steps: check the version, call a built-in
 * method, serve a method written in C, receive an event, and call with
 * credentials a runtime that authenticates its calls.
 *
 * Build (after `make install PREFIX=...` and with PKG_CONFIG_PATH set):
 *   make -C examples/c            # shared and static, through pkg-config
 * Every payload here is JSON (HMS_FORMAT_JSON) to keep it readable.
 */
#define _POSIX_C_SOURCE 200112L /* setenv */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hms_ffi.h"

/* Prints the error of a failed call and leaves. */
static int fail(const char *what, int32_t rc, const hms_buf *err)
{
    fprintf(stderr, "%s failed with status %d: %.*s\n", what, (int)rc,
            err->data ? (int)err->len : 0, err->data ? (const char *)err->data : "");
    return 1;
}

/* The handler of "example.v1.Greeter/Greet": answers {"greeting": ...}.
 * It runs while the call that reached it is in progress and answers through
 * the library-owned reply; request is JSON, as the service was registered. */
static void greet(hms_reply *reply, const char *method, size_t method_len, int32_t format,
                  const uint8_t *request, size_t request_len, void *user_data)
{
    const char *greeting = user_data;
    char answer[256];
    (void)method, (void)method_len, (void)format;
    int n = snprintf(answer, sizeof answer, "{\"greeting\":\"%s\",\"request_bytes\":%zu}", greeting,
                     request_len);
    (void)request;
    hms_reply_set(reply, (const uint8_t *)answer, (size_t)n);
}

/* The handler of "example.v1.Whoami/Who": answers the CallContext of its
 * call, in which the runtime put the verified principal and its roles. */
static void whoami(hms_reply *reply, const char *method, size_t method_len, int32_t format,
                   const uint8_t *request, size_t request_len, void *user_data)
{
    hms_buf context = {0};
    (void)method, (void)method_len, (void)format, (void)request, (void)request_len, (void)user_data;
    if (hms_reply_context(reply, HMS_FORMAT_JSON, &context, NULL) == HMS_OK)
        hms_reply_set(reply, context.data, context.len);
    hms_buf_free(&context);
}

/* Calls method with JSON request and options (NULL: none). */
static int call_with(hms_runtime rt, const char *method, const char *request, const char *options,
                     hms_buf *out, hms_buf *err)
{
    int32_t rc = hms_call(rt, method, strlen(method), HMS_FORMAT_JSON, (const uint8_t *)request,
                          strlen(request), (const uint8_t *)options, options ? strlen(options) : 0,
                          out, err);
    if (rc != HMS_OK)
        return fail(method, rc, err);
    printf("%s -> %.*s\n", method, (int)out->len, (const char *)out->data);
    return 0;
}

static int call(hms_runtime rt, const char *method, const char *request, hms_buf *out, hms_buf *err)
{
    return call_with(rt, method, request, NULL, out, err);
}

/* 5. A runtime that authenticates every call against API tokens. Its token
 *    lines (principal, roles, salted SHA-256 of the token) were made with
 *    `hms token hash alice --roles admin`; real ones live in a file named by
 *    security.api_tokens_file, and real tokens never in source code. The
 *    runtime calls as alice (default_credentials); one call overrides that
 *    with ops-bot's token in its CallOptions; a wrong token is refused with
 *    HMS_UNAUTHENTICATED, and the error does not repeat it. */
static int credentials(hms_buf *out, hms_buf *err)
{
    const char *tokens =
        "alice admin sha256:a11ce5a17a11ce5a17a11ce5a17a11ce:"
        "3e15ab36122ed13c7bb352b526999ab76e8c047bbc459759acbb07a26a40e325\n"
        "ops-bot ops sha256:0b5b070b5b070b5b070b5b070b5b070b:"
        "64e25f41587173c6e89828825fd6c9abd4744f4c338228592e936b7fdd5415a0\n";
    const char *config =
        "{\"security\":{\"require_authentication\":true,"
        "\"api_tokens_env\":\"HMS_EXAMPLE_API_TOKENS\","
        "\"default_credentials\":{\"scheme\":\"api-key\",\"token\":\"example-token-of-alice\"}}}";
    const char *as_ops =
        "{\"credentials\":{\"scheme\":\"api-key\",\"token\":\"example-token-of-ops-bot\"}}";
    const char *wrong = "{\"credentials\":{\"scheme\":\"api-key\",\"token\":\"not-a-token\"}}";
    const char *who = "example.v1.Whoami/Who";
    const char *descriptor = "{\"name\":\"example.v1.Whoami\",\"methods\":[{\"name\":\"Who\"}]}";
    hms_runtime rt;
    hms_service svc = 0;
    int32_t rc;
    int failed;

    if (setenv("HMS_EXAMPLE_API_TOKENS", tokens, 1) != 0) {
        perror("setenv");
        return 1;
    }
    if ((rc = hms_runtime_new(HMS_FORMAT_JSON, (const uint8_t *)config, strlen(config), &rt, err)) != HMS_OK)
        return fail("hms_runtime_new (secured)", rc, err);
    rc = hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)descriptor, strlen(descriptor),
                              HMS_SERVICE_DEFAULT, whoami, NULL, &svc, err);
    failed = rc != HMS_OK ? fail("hms_service_register", rc, err) : 0;
    if (!failed)
        failed = call(rt, who, "{}", out, err);
    if (!failed)
        failed = call_with(rt, who, "{}", as_ops, out, err);
    if (!failed) {
        rc = hms_call(rt, who, strlen(who), HMS_FORMAT_JSON, (const uint8_t *)"{}", 2,
                      (const uint8_t *)wrong, strlen(wrong), out, err);
        if (rc == HMS_UNAUTHENTICATED)
            printf("a wrong token -> status %d: %.*s\n", (int)rc, (int)err->len, (const char *)err->data);
        else
            failed = fail("a call with a wrong token (expected HMS_UNAUTHENTICATED)", rc, err);
    }
    if (svc)
        hms_service_unregister(svc);
    hms_runtime_free(rt);
    return failed;
}

int main(void)
{
    /* 1. The library must speak our ABI: same major, at least our minor. */
    uint32_t abi = hms_abi_version();
    long major = (long)(abi >> 16), minor = (long)(abi & 0xffffu);
    if (major != HMS_ABI_VERSION_MAJOR || minor < HMS_ABI_VERSION_MINOR) {
        fprintf(stderr, "libhms_ffi ABI %ld.%ld is incompatible: this program needs %d.x, x >= %d\n",
                major, minor, HMS_ABI_VERSION_MAJOR, HMS_ABI_VERSION_MINOR);
        return 1;
    }
    printf("libhms_ffi %s, ABI %ld.%ld\n", hms_version(), major, minor);

    /* One pair of buffers for every call: the library reuses them. */
    hms_buf out = {0}, err = {0};
    hms_runtime rt;
    int32_t rc = hms_runtime_new(HMS_FORMAT_JSON, NULL, 0, &rt, &err);
    if (rc != HMS_OK)
        return fail("hms_runtime_new", rc, &err);

    /* 2. A built-in method. */
    int failed = call(rt, "hms.sys.v1.System/Echo", "{\"text\":\"hello from C\"}", &out, &err);

    /* 3. Subscribe first, then register a service written in C: registering
     *    publishes a "registry.service_registered" event. */
    hms_subscription sub = 0;
    const char *filter = "{\"kinds\":[\"registry.service_registered\"]}";
    if (!failed && (rc = hms_subscribe(rt, HMS_FORMAT_JSON, (const uint8_t *)filter, strlen(filter),
                                       &sub, &err)) != HMS_OK)
        failed = fail("hms_subscribe", rc, &err);

    hms_service svc = 0;
    const char *descriptor = "{\"name\":\"example.v1.Greeter\",\"methods\":[{\"name\":\"Greet\"}]}";
    if (!failed && (rc = hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)descriptor,
                                              strlen(descriptor), HMS_SERVICE_DEFAULT, greet,
                                              "hello, C host", &svc, &err)) != HMS_OK)
        failed = fail("hms_service_register", rc, &err);
    if (!failed)
        failed = call(rt, "example.v1.Greeter/Greet", "{\"name\":\"world\"}", &out, &err);

    /* 4. The event, waiting at most one second. */
    if (!failed) {
        rc = hms_poll(sub, 1000, &out, &err);
        if (rc == HMS_OK)
            printf("event -> %.*s\n", (int)out.len, (const char *)out.data);
        else
            failed = fail("hms_poll", rc, &err);
    }

    if (sub)
        hms_unsubscribe(sub);
    if (svc)
        hms_service_unregister(svc);
    hms_runtime_free(rt);

    if (!failed)
        failed = credentials(&out, &err);

    hms_buf_free(&out);
    hms_buf_free(&err);
    return failed;
}
