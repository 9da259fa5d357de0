/* Calls the Greeter another process exports (tests/remote/README.md), in
 * JSON, through the C ABI alone:
 *   call NATS_URL SERVER */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hms_ffi.h"

static int failures = 0;

static void expect(const char *what, int32_t rc, int32_t want, const hms_buf *text,
                   const char *const *needles)
{
    int ok = rc == want;
    for (; ok && *needles; needles++) {
        size_t n = strlen(*needles);
        ok = 0;
        for (size_t i = 0; text->data && i + n <= text->len; i++) {
            if (memcmp(text->data + i, *needles, n) == 0) {
                ok = 1;
                break;
            }
        }
    }
    if (!ok) {
        fprintf(stderr, "c caller: %s: rc %d (want %d), got %.*s\n", what, rc, want,
                (int)text->len, text->data ? (const char *)text->data : "");
        failures++;
    }
}

static int32_t call(hms_runtime rt, const char *method, const char *request, hms_buf *out,
                    hms_buf *err)
{
    out->len = 0;
    err->len = 0;
    return hms_call(rt, method, strlen(method), HMS_FORMAT_JSON, (const uint8_t *)request,
                    strlen(request), NULL, 0, out, err);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: call NATS_URL SERVER\n");
        return 2;
    }
    char config[1024];
    snprintf(config, sizeof config,
             "{\"name\":\"c-caller\",\"nats\":{\"servers\":[\"%s\"],\"requestTimeoutMs\":10000}}",
             argv[1]);
    hms_buf out = {0}, err = {0};
    hms_runtime rt = 0;
    if (hms_runtime_new(HMS_FORMAT_JSON, (const uint8_t *)config, strlen(config), &rt, &err) !=
        HMS_OK) {
        fprintf(stderr, "c caller: runtime: %.*s\n", (int)err.len, (const char *)err.data);
        return 1;
    }
    const char *greeting[] = {"\"text\":\"hello c\"", NULL};
    expect("Greet", call(rt, "remote.v1.Greeter/Greet", "{\"text\":\"c\"}", &out, &err), HMS_OK,
           &out, greeting);
    char origin[512];
    snprintf(origin, sizeof origin, "\"origin\":\"%s\"", argv[2]);
    const char *refusal[] = {"\"code\":7", "\"message\":\"c may not\"",
                             "\"details\":{\"rule\":\"no-guests\"}", origin, NULL};
    expect("Refuse", call(rt, "remote.v1.Greeter/Refuse", "{\"text\":\"c\"}", &out, &err),
           HMS_PERMISSION_DENIED, &err, refusal);
    const char *missing[] = {"Missing", NULL};
    expect("Missing", call(rt, "remote.v1.Greeter/Missing", "{}", &out, &err), HMS_NOT_FOUND,
           &err, missing);
    hms_runtime_free(rt);
    hms_buf_free(&out);
    hms_buf_free(&err);
    if (failures == 0) printf("c caller: ok\n");
    return failures == 0 ? 0 : 1;
}
