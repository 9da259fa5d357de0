/*
 * host_test.c: a plain C host of libhms_ffi, using nothing but hms_ffi.h.
 *
 * It checks the ABI contract as the header documents it: versions, buffer
 * ownership and reuse, structured errors in every format, hostile input,
 * handle validation, host services, events, conversion and threads. Every
 * expected status code below is the one the header documents for that case.
 *
 * Build and run: tests/c/run.sh (shared and static builds, under valgrind).
 * Usage: host_test [NAME_SUBSTRING...]   runs only the tests whose name
 * contains one of the arguments. The closing line is "N passed, M failed";
 * the exit status is non-zero when anything failed.
 */
#include "hms_ffi.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* A tiny assertion framework                                               */
/* ------------------------------------------------------------------------ */

static int g_passed;
static int g_failed;
static const char *g_test = "";

static void check_(int ok, int line, const char *fmt, ...)
{
    va_list ap;
    if (ok) {
        g_passed++;
        return;
    }
    g_failed++;
    fprintf(stderr, "FAIL %s (host_test.c:%d): ", g_test, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond) check_((cond) ? 1 : 0, __LINE__, "%s", #cond)
#define CHECKF(cond, ...) check_((cond) ? 1 : 0, __LINE__, __VA_ARGS__)

static const char *code_name(int32_t code)
{
    switch (code) {
    case HMS_OK: return "HMS_OK";
    case HMS_CANCELLED: return "HMS_CANCELLED";
    case HMS_UNKNOWN: return "HMS_UNKNOWN";
    case HMS_INVALID_ARGUMENT: return "HMS_INVALID_ARGUMENT";
    case HMS_DEADLINE_EXCEEDED: return "HMS_DEADLINE_EXCEEDED";
    case HMS_NOT_FOUND: return "HMS_NOT_FOUND";
    case HMS_ALREADY_EXISTS: return "HMS_ALREADY_EXISTS";
    case HMS_PERMISSION_DENIED: return "HMS_PERMISSION_DENIED";
    case HMS_RESOURCE_EXHAUSTED: return "HMS_RESOURCE_EXHAUSTED";
    case HMS_FAILED_PRECONDITION: return "HMS_FAILED_PRECONDITION";
    case HMS_ABORTED: return "HMS_ABORTED";
    case HMS_OUT_OF_RANGE: return "HMS_OUT_OF_RANGE";
    case HMS_UNIMPLEMENTED: return "HMS_UNIMPLEMENTED";
    case HMS_INTERNAL: return "HMS_INTERNAL";
    case HMS_UNAVAILABLE: return "HMS_UNAVAILABLE";
    case HMS_DATA_LOSS: return "HMS_DATA_LOSS";
    case HMS_UNAUTHENTICATED: return "HMS_UNAUTHENTICATED";
    case HMS_INVALID_HANDLE: return "HMS_INVALID_HANDLE";
    case HMS_DECODE_ERROR: return "HMS_DECODE_ERROR";
    case HMS_HANDLER_ERROR: return "HMS_HANDLER_ERROR";
    case HMS_INCOMPATIBLE: return "HMS_INCOMPATIBLE";
    case HMS_PANIC: return "HMS_PANIC";
    default: return "?";
    }
}

/* Prints a buffer as text when it is printable, else as hex (shortened). */
static void dump(FILE *f, const uint8_t *p, size_t n)
{
    size_t i, shown = n > 240 ? 240 : n;
    int text = 1;
    for (i = 0; i < shown; i++) {
        if (p[i] < 0x20 || p[i] > 0x7e) {
            text = 0;
            break;
        }
    }
    if (text) {
        fprintf(f, "'%.*s'", (int)shown, (const char *)p);
    } else {
        for (i = 0; i < shown; i++) {
            fprintf(f, "%02x", p[i]);
        }
    }
    if (shown < n) {
        fprintf(f, "... (%zu bytes)", n);
    }
}

static void dump_buf_line(const char *label, const hms_buf *b)
{
    fprintf(stderr, "    %s: ", label);
    if (b == NULL || b->data == NULL) {
        fprintf(stderr, "(empty)\n");
        return;
    }
    dump(stderr, b->data, b->len);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------------ */
/* Byte helpers                                                             */
/* ------------------------------------------------------------------------ */

typedef struct bytes {
    uint8_t *p;
    size_t n;
    size_t cap;
} bytes;

static void die(const char *what)
{
    fprintf(stderr, "fatal: %s\n", what);
    exit(2);
}

static void b_reserve(bytes *b, size_t extra)
{
    if (b->n + extra > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        uint8_t *p;
        while (cap < b->n + extra) {
            cap *= 2;
        }
        p = (uint8_t *)realloc(b->p, cap);
        if (p == NULL) {
            die("out of memory");
        }
        b->p = p;
        b->cap = cap;
    }
}

static void b_put(bytes *b, const void *d, size_t n)
{
    b_reserve(b, n);
    if (n) {
        memcpy(b->p + b->n, d, n);
    }
    b->n += n;
}

static void b_byte(bytes *b, uint8_t c) { b_put(b, &c, 1); }
static void b_str(bytes *b, const char *s) { b_put(b, s, strlen(s)); }
static void b_fill(bytes *b, uint8_t c, size_t n)
{
    b_reserve(b, n);
    memset(b->p + b->n, c, n);
    b->n += n;
}
static void b_free(bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* CBOR head: major type and argument, shortest form. */
static void cbor_head(bytes *b, unsigned major, uint64_t v)
{
    uint8_t m = (uint8_t)(major << 5);
    int i;
    if (v < 24) {
        b_byte(b, (uint8_t)(m | v));
    } else if (v <= 0xff) {
        b_byte(b, (uint8_t)(m | 24));
        b_byte(b, (uint8_t)v);
    } else if (v <= 0xffff) {
        b_byte(b, (uint8_t)(m | 25));
        for (i = 1; i >= 0; i--) b_byte(b, (uint8_t)(v >> (8 * i)));
    } else if (v <= 0xffffffffu) {
        b_byte(b, (uint8_t)(m | 26));
        for (i = 3; i >= 0; i--) b_byte(b, (uint8_t)(v >> (8 * i)));
    } else {
        b_byte(b, (uint8_t)(m | 27));
        for (i = 7; i >= 0; i--) b_byte(b, (uint8_t)(v >> (8 * i)));
    }
}

static void cbor_text(bytes *b, const char *s)
{
    cbor_head(b, 3, strlen(s));
    b_str(b, s);
}

static void pb_varint(bytes *b, uint64_t v)
{
    while (v >= 0x80) {
        b_byte(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    b_byte(b, (uint8_t)v);
}

static const uint8_t *find_bytes(const uint8_t *hay, size_t hn, const void *needle, size_t nn)
{
    size_t i;
    if (hay == NULL || nn > hn) {
        return NULL;
    }
    for (i = 0; i + nn <= hn; i++) {
        if (memcmp(hay + i, needle, nn) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

static int buf_has(const hms_buf *b, const char *needle)
{
    return find_bytes(b->data, b->len, needle, strlen(needle)) != NULL;
}

static int buf_eq(const hms_buf *b, const void *p, size_t n)
{
    return b->len == n && (n == 0 || (b->data != NULL && memcmp(b->data, p, n) == 0));
}

/* JSON text without whitespace outside strings, for comparisons that must not
 * depend on the encoder's spacing. Caller frees. */
static char *json_squash(const uint8_t *p, size_t n)
{
    char *out = (char *)malloc(n + 1);
    size_t i, o = 0;
    int in_str = 0, esc = 0;
    if (out == NULL) die("out of memory");
    for (i = 0; i < n; i++) {
        char c = (char)p[i];
        if (in_str) {
            out[o++] = c;
            if (esc) esc = 0;
            else if (c == '\\') esc = 1;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
            out[o++] = c;
        } else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return out;
}

static int json_eq(const hms_buf *b, const char *expected)
{
    char *got = json_squash(b->data, b->len);
    char *want = json_squash((const uint8_t *)expected, strlen(expected));
    int eq = strcmp(got, want) == 0;
    free(got);
    free(want);
    return eq;
}

/* Reads hms.v1.Status.code out of an err buffer in the given format.
 * Returns 1 and sets *code when found. */
static int status_code(int32_t format, const hms_buf *err, int64_t *code)
{
    const uint8_t *p = err->data, *end;
    if (p == NULL || err->len == 0) {
        return 0;
    }
    end = p + err->len;
    if (format == HMS_FORMAT_JSON) {
        const uint8_t *k = find_bytes(p, err->len, "\"code\"", 6);
        char tmp[32];
        size_t i = 0;
        if (k == NULL) return 0;
        k += 6;
        while (k < end && (*k == ' ' || *k == ':' || *k == '\n' || *k == '\t')) k++;
        while (k < end && i + 1 < sizeof tmp && ((*k >= '0' && *k <= '9') || *k == '-')) {
            tmp[i++] = (char)*k++;
        }
        tmp[i] = '\0';
        if (i == 0) return 0;
        *code = strtoll(tmp, NULL, 10);
        return 1;
    }
    if (format == HMS_FORMAT_CBOR) {
        static const uint8_t key[] = {0x64, 'c', 'o', 'd', 'e'};
        const uint8_t *k = find_bytes(p, err->len, key, sizeof key);
        unsigned major, ai;
        uint64_t v = 0;
        int i, extra;
        if (k == NULL || k + sizeof key >= end) return 0;
        k += sizeof key;
        major = *k >> 5;
        ai = *k & 0x1f;
        k++;
        if (major > 1) return 0;
        if (ai < 24) {
            v = ai;
        } else {
            extra = ai == 24 ? 1 : ai == 25 ? 2 : ai == 26 ? 4 : ai == 27 ? 8 : -1;
            if (extra < 0 || k + extra > end) return 0;
            for (i = 0; i < extra; i++) v = (v << 8) | *k++;
        }
        *code = major == 0 ? (int64_t)v : -1 - (int64_t)v;
        return 1;
    }
    if (format == HMS_FORMAT_PROTOBUF) {
        int64_t found = 0;
        int have = 0;
        while (p < end) {
            uint64_t tag = 0, v = 0;
            int shift = 0;
            while (p < end) {
                tag |= (uint64_t)(*p & 0x7f) << shift;
                shift += 7;
                if (!(*p++ & 0x80)) break;
            }
            shift = 0;
            if ((tag & 7) == 0 || (tag & 7) == 2) {
                while (p < end) {
                    v |= (uint64_t)(*p & 0x7f) << shift;
                    shift += 7;
                    if (!(*p++ & 0x80)) break;
                }
                if ((tag & 7) == 2) {
                    if (v > (uint64_t)(end - p)) return 0;
                    p += v;
                } else if ((tag >> 3) == 1) {
                    found = (int32_t)(uint32_t)v;
                    have = 1;
                }
            } else {
                return 0;
            }
        }
        /* proto3 leaves code 0 out, so a missing field means 0 */
        *code = have ? found : 0;
        return 1;
    }
    return 0;
}

/* Checks a status code, and when the call failed and err is given, that err
 * holds an hms.v1.Status with the same code. */
static void expect_rc_(int line, const char *what, int32_t got, int32_t want, int32_t format,
                       const hms_buf *err)
{
    int64_t code = -999;
    if (got != want) {
        check_(0, line, "%s: got %d (%s), want %d (%s)", what, got, code_name(got), want,
               code_name(want));
        if (err != NULL && got != HMS_OK) dump_buf_line("err", err);
        return;
    }
    g_passed++;
    if (got != HMS_OK && err != NULL && format >= 1 && format <= 3) {
        int ok = status_code(format, err, &code) && code == want;
        check_(ok, line, "%s: err buffer should hold Status code %d, parsed %lld", what, want,
               (long long)code);
        if (!ok) dump_buf_line("err", err);
    }
}

/* Like expect_rc_ but accepts either of two codes (both documented). */
static void expect_rc2_(int line, const char *what, int32_t got, int32_t want1, int32_t want2,
                        int32_t format, const hms_buf *err)
{
    expect_rc_(line, what, got, got == want2 ? want2 : want1, format, err);
}

#define EXPECT_RC(what, got, want, format, err) \
    expect_rc_(__LINE__, (what), (got), (want), (format), (err))
#define EXPECT_RC2(what, got, w1, w2, format, err) \
    expect_rc2_(__LINE__, (what), (got), (w1), (w2), (format), (err))
#define EXPECT_OK(what, got, err) expect_rc_(__LINE__, (what), (got), HMS_OK, 0, (err))

/* ------------------------------------------------------------------------ */
/* Call helpers                                                             */
/* ------------------------------------------------------------------------ */

static const char ECHO[] = "hms.sys.v1.System/Echo";
static const int FORMATS[3] = {HMS_FORMAT_PROTOBUF, HMS_FORMAT_CBOR, HMS_FORMAT_JSON};
static const char *const FORMAT_NAMES[4] = {"?", "protobuf", "cbor", "json"};

static int32_t call(hms_runtime rt, const char *method, int32_t format, const void *req,
                    size_t len, hms_buf *resp, hms_buf *err)
{
    return hms_call(rt, method, method ? strlen(method) : 0, format, (const uint8_t *)req, len,
                    NULL, 0, resp, err);
}

static int32_t call_opts(hms_runtime rt, const char *method, int32_t format, const void *req,
                         size_t len, const char *opts, hms_buf *resp, hms_buf *err)
{
    return hms_call(rt, method, strlen(method), format, (const uint8_t *)req, len,
                    (const uint8_t *)opts, strlen(opts), resp, err);
}

static hms_runtime new_runtime(int32_t format, const char *config)
{
    hms_runtime rt = 0;
    hms_buf err = {0};
    int32_t rc = hms_runtime_new(format, (const uint8_t *)config, config ? strlen(config) : 0,
                                 &rt, &err);
    CHECKF(rc == HMS_OK && rt != 0, "hms_runtime_new(%s, %s) = %d (%s)", FORMAT_NAMES[format],
           config ? config : "NULL", rc, code_name(rc));
    if (rc != HMS_OK) {
        dump_buf_line("err", &err);
        hms_buf_free(&err);
        die("cannot create a runtime");
    }
    hms_buf_free(&err);
    return rt;
}

/* The EchoRequest {payload: 00 01 02, text: "hi"} in each format. */
static const char ECHO_JSON[] = "{\"payload\":\"AAEC\",\"text\":\"hi\"}";
static const uint8_t ECHO_CBOR[] = {0xa2, 0x64, 't', 'e',  'x',  't', 0x62, 'h', 'i', 0x67,
                                    'p',  'a',  'y', 'l',  'o',  'a', 'd',  0x43, 0x00, 0x01,
                                    0x02};
static const uint8_t ECHO_PB[] = {0x0a, 0x03, 0x00, 0x01, 0x02, 0x12, 0x02, 'h', 'i'};

static void echo_request(int32_t format, const uint8_t **p, size_t *n)
{
    if (format == HMS_FORMAT_JSON) {
        *p = (const uint8_t *)ECHO_JSON;
        *n = strlen(ECHO_JSON);
    } else if (format == HMS_FORMAT_CBOR) {
        *p = ECHO_CBOR;
        *n = sizeof ECHO_CBOR;
    } else {
        *p = ECHO_PB;
        *n = sizeof ECHO_PB;
    }
}

/* An EchoRequest carrying only `text`, in the core's own canonical encoding,
 * so the echo must return exactly these bytes. */
static void echo_text_request(bytes *b, int32_t format, const char *text)
{
    b->n = 0;
    if (format == HMS_FORMAT_JSON) {
        b_str(b, "{\"text\":\"");
        b_str(b, text);
        b_str(b, "\"}");
    } else if (format == HMS_FORMAT_CBOR) {
        cbor_head(b, 5, 1);
        cbor_text(b, "text");
        cbor_text(b, text);
    } else {
        b_byte(b, 0x12);
        pb_varint(b, strlen(text));
        b_str(b, text);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------------ */
/* Tests: versions and runtimes                                             */
/* ------------------------------------------------------------------------ */

static void test_versions(void)
{
    uint32_t v = hms_abi_version();
    const char *s = hms_version();
    CHECKF(v >> 16 == HMS_ABI_VERSION_MAJOR, "abi major %u, header %d", v >> 16,
           HMS_ABI_VERSION_MAJOR);
    CHECKF((v & 0xffffu) == HMS_ABI_VERSION_MINOR, "abi minor %u, header %d", v & 0xffffu,
           HMS_ABI_VERSION_MINOR);
    CHECK(s != NULL);
    CHECK(s != NULL && s[0] != '\0');
    CHECKF(s != NULL && strchr(s, '.') != NULL, "hms_version() = '%s' is not a semver",
           s ? s : "(null)");
    CHECK(hms_version() == s); /* static */
}

static void test_runtime_lifecycle(void)
{
    int i;
    hms_buf err = {0};
    for (i = 0; i < 3; i++) {
        int32_t f = FORMATS[i];
        hms_runtime rt = 0;
        static const uint8_t nothing[1] = {0};
        EXPECT_RC("runtime_new empty config (NULL)", hms_runtime_new(f, NULL, 0, &rt, &err),
                  HMS_OK, f, &err);
        CHECK(rt != 0);
        EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
        EXPECT_RC("runtime_free twice", hms_runtime_free(rt), HMS_INVALID_HANDLE, 0, NULL);
        rt = 0;
        EXPECT_RC("runtime_new empty config (non-NULL, len 0)",
                  hms_runtime_new(f, nothing, 0, &rt, &err), HMS_OK, f, &err);
        CHECK(rt != 0);
        EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
    }
    {
        /* a real config, in each format */
        hms_runtime rt = 0;
        static const char cfg_json[] = "{\"name\":\"c-host\",\"maxDepth\":32}";
        static const uint8_t cfg_pb[] = {0x10, 0x20, 0x2a, 0x01, 'c'};
        bytes cbor = {0};
        cbor_head(&cbor, 5, 2);
        cbor_text(&cbor, "name");
        cbor_text(&cbor, "c");
        cbor_text(&cbor, "max_depth");
        cbor_head(&cbor, 0, 32);
        EXPECT_RC("runtime_new json config",
                  hms_runtime_new(HMS_FORMAT_JSON, (const uint8_t *)cfg_json, strlen(cfg_json),
                                  &rt, &err),
                  HMS_OK, HMS_FORMAT_JSON, &err);
        EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
        EXPECT_RC("runtime_new protobuf config",
                  hms_runtime_new(HMS_FORMAT_PROTOBUF, cfg_pb, sizeof cfg_pb, &rt, &err), HMS_OK,
                  HMS_FORMAT_PROTOBUF, &err);
        EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
        EXPECT_RC("runtime_new cbor config",
                  hms_runtime_new(HMS_FORMAT_CBOR, cbor.p, cbor.n, &rt, &err), HMS_OK,
                  HMS_FORMAT_CBOR, &err);
        EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
        b_free(&cbor);
    }
    {
        /* failures leave *out untouched */
        static const int32_t bad_formats[3] = {0, 4, -1};
        hms_runtime rt = 12345;
        for (i = 0; i < 3; i++) {
            EXPECT_RC("runtime_new unknown format",
                      hms_runtime_new(bad_formats[i], NULL, 0, &rt, &err), HMS_INVALID_ARGUMENT,
                      HMS_FORMAT_JSON, NULL);
            CHECK(rt == 12345);
        }
        EXPECT_RC("runtime_new NULL out", hms_runtime_new(HMS_FORMAT_JSON, NULL, 0, NULL, &err),
                  HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
        EXPECT_RC("runtime_new NULL config with a length",
                  hms_runtime_new(HMS_FORMAT_JSON, NULL, 10, &rt, &err), HMS_INVALID_ARGUMENT,
                  HMS_FORMAT_JSON, &err);
        CHECK(rt == 12345);
        EXPECT_RC("runtime_new garbage json config",
                  hms_runtime_new(HMS_FORMAT_JSON, (const uint8_t *)"{\"name\":", 8, &rt, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_JSON, &err);
        EXPECT_RC("runtime_new garbage cbor config",
                  hms_runtime_new(HMS_FORMAT_CBOR, (const uint8_t *)"\xff", 1, &rt, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_CBOR, &err);
        EXPECT_RC("runtime_new garbage protobuf config",
                  hms_runtime_new(HMS_FORMAT_PROTOBUF, (const uint8_t *)"\x0f\x01", 2, &rt, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_PROTOBUF, &err);
        CHECK(rt == 12345);
        EXPECT_RC("runtime_new with err NULL",
                  hms_runtime_new(HMS_FORMAT_JSON, (const uint8_t *)"[", 1, &rt, NULL),
                  HMS_DECODE_ERROR, 0, NULL);
    }
    hms_buf_free(&err);
}

/* ------------------------------------------------------------------------ */
/* Tests: Echo and buffers                                                  */
/* ------------------------------------------------------------------------ */

static void test_echo(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    int i;
    for (i = 0; i < 3; i++) {
        int32_t f = FORMATS[i];
        const uint8_t *req;
        size_t n;
        echo_request(f, &req, &n);
        EXPECT_RC("echo", call(rt, ECHO, f, req, n, &resp, &err), HMS_OK, f, &err);
        if (f == HMS_FORMAT_JSON) {
            CHECKF(json_eq(&resp, ECHO_JSON), "json echo differs");
            CHECKF(buf_eq(&resp, req, n), "json echo not byte-identical to the canonical form");
        } else {
            CHECKF(buf_eq(&resp, req, n), "%s echo differs", FORMAT_NAMES[f]);
        }
        if (!buf_eq(&resp, req, n)) dump_buf_line("got", &resp);

        /* the empty request is the default message */
        EXPECT_RC("echo empty request", call(rt, ECHO, f, NULL, 0, &resp, &err), HMS_OK, f,
                  &err);
        if (f == HMS_FORMAT_JSON) CHECKF(json_eq(&resp, "{}"), "empty json echo");
        if (f == HMS_FORMAT_CBOR) CHECKF(buf_eq(&resp, "\xa0", 1), "empty cbor echo");
        if (f == HMS_FORMAT_PROTOBUF) CHECKF(resp.len == 0, "empty protobuf echo");
    }
    /* method_len bounds the name: no NUL terminator needed */
    {
        static const char longer[] = "hms.sys.v1.System/EchoXYZ";
        EXPECT_RC("echo with method_len shorter than the string",
                  hms_call(rt, longer, strlen(ECHO), HMS_FORMAT_PROTOBUF, ECHO_PB, sizeof ECHO_PB,
                           NULL, 0, &resp, &err),
                  HMS_OK, HMS_FORMAT_PROTOBUF, &err);
        CHECK(buf_eq(&resp, ECHO_PB, sizeof ECHO_PB));
    }
    /* options: empty, valid, garbage */
    {
        static const char opts[] = "{\"metadata\":{\"k\":\"v\"},\"traceId\":\"t-1\"}";
        EXPECT_RC("echo with options", call_opts(rt, ECHO, HMS_FORMAT_JSON, ECHO_JSON,
                                                  strlen(ECHO_JSON), opts, &resp, &err),
                  HMS_OK, HMS_FORMAT_JSON, &err);
        CHECK(json_eq(&resp, ECHO_JSON));
        EXPECT_RC("echo with garbage options",
                  call_opts(rt, ECHO, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON), "{\"dead",
                            &resp, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_JSON, &err);
        EXPECT_RC("echo with NULL options and a length",
                  hms_call(rt, ECHO, strlen(ECHO), HMS_FORMAT_JSON, (const uint8_t *)ECHO_JSON,
                           strlen(ECHO_JSON), NULL, 4, &resp, &err),
                  HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    }
    /* a 1 MiB payload goes through */
    {
        bytes big = {0};
        size_t len = (size_t)1 << 20;
        b_byte(&big, 0x0a);
        pb_varint(&big, len);
        b_fill(&big, 0x5a, len);
        EXPECT_RC("echo 1 MiB", call(rt, ECHO, HMS_FORMAT_PROTOBUF, big.p, big.n, &resp, &err),
                  HMS_OK, HMS_FORMAT_PROTOBUF, &err);
        CHECK(buf_eq(&resp, big.p, big.n));
        b_free(&big);
    }
    /* hms.sys.v1.System/Version agrees with hms_version() */
    {
        char want[128];
        EXPECT_RC("version", call(rt, "hms.sys.v1.System/Version", HMS_FORMAT_JSON, "{}", 2,
                                  &resp, &err),
                  HMS_OK, HMS_FORMAT_JSON, &err);
        snprintf(want, sizeof want, "\"%s\"", hms_version());
        CHECKF(buf_has(&resp, want), "System/Version does not mention %s", want);
        EXPECT_RC("health", call(rt, "hms.sys.v1.System/Health", HMS_FORMAT_JSON, NULL, 0, &resp,
                                 &err),
                  HMS_OK, HMS_FORMAT_JSON, &err);
    }
    hms_buf_free(&resp);
    hms_buf_free(&err);
    EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
}

static void test_buffers(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    bytes req = {0}, text = {0};
    int i, bad = 0;
    /* one hms_buf for many answers of growing and shrinking size */
    for (i = 0; i < 400; i++) {
        size_t tl = (size_t)(i < 200 ? i * 97 : (400 - i) * 31);
        int32_t f = FORMATS[i % 3];
        text.n = 0;
        b_fill(&text, (uint8_t)('a' + i % 26), tl);
        b_byte(&text, 0);
        echo_text_request(&req, f, (const char *)text.p);
        if (call(rt, ECHO, f, req.p, req.n, &resp, &err) != HMS_OK) {
            bad++;
            continue;
        }
        if (tl == 0) {
            /* empty text is the default: "{}", a0 or nothing */
            continue;
        }
        if (!buf_eq(&resp, req.p, req.n) || resp.cap < resp.len) bad++;
        if (i % 7 == 0) {
            /* a failure on the same buffers leaves the response untouched */
            uint8_t *data = resp.data;
            size_t len = resp.len, cap = resp.cap;
            if (call(rt, "hms.sys.v1.System/Nope", f, req.p, req.n, &resp, &err) !=
                HMS_NOT_FOUND)
                bad++;
            if (resp.data != data || resp.len != len || resp.cap != cap ||
                !buf_eq(&resp, req.p, req.n))
                bad++;
        }
    }
    CHECKF(bad == 0, "%d of 400 calls reusing one hms_buf went wrong", bad);
    hms_buf_free(&resp);
    CHECK(resp.data == NULL && resp.len == 0 && resp.cap == 0);
    hms_buf_free(&resp); /* second free: no-op */
    CHECK(resp.data == NULL && resp.len == 0 && resp.cap == 0);
    hms_buf_free(NULL); /* NULL: no-op */
    hms_buf_free(&err);
    hms_buf_free(&err);

    /* an answer into a zeroed buffer after free works again */
    EXPECT_RC("echo after free", call(rt, ECHO, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON),
                                      &resp, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECK(json_eq(&resp, ECHO_JSON));
    hms_buf_free(&resp);

    /* NULL response pointer: a bad pointer */
    EXPECT_RC("echo with NULL response", call(rt, ECHO, HMS_FORMAT_JSON, ECHO_JSON,
                                              strlen(ECHO_JSON), NULL, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    /* err may be NULL, on success and on failure */
    EXPECT_RC("echo, err NULL", call(rt, ECHO, HMS_FORMAT_CBOR, ECHO_CBOR, sizeof ECHO_CBOR,
                                     &resp, NULL),
              HMS_OK, 0, NULL);
    EXPECT_RC("failure, err NULL", call(rt, "x.y.Z/W", HMS_FORMAT_CBOR, NULL, 0, &resp, NULL),
              HMS_NOT_FOUND, 0, NULL);
    hms_buf_free(&resp);
    hms_buf_free(&err);
    b_free(&req);
    b_free(&text);
    EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
}

static void test_error_status(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    int i;
    for (i = 0; i < 3; i++) {
        int32_t f = FORMATS[i];
        int64_t code = -1;
        EXPECT_RC("unknown method", call(rt, "hms.sys.v1.System/Nope", f, NULL, 0, &resp, &err),
                  HMS_NOT_FOUND, f, &err);
        CHECKF(err.len > 0, "%s: err is empty", FORMAT_NAMES[f]);
        CHECK(status_code(f, &err, &code) && code == HMS_NOT_FOUND);
        CHECKF(buf_has(&err, "Nope"), "%s: the Status should name the missing method",
               FORMAT_NAMES[f]);
    }
    /* JSON Status: the documented field names are there */
    call(rt, "hms.sys.v1.System/Nope", HMS_FORMAT_JSON, NULL, 0, &resp, &err);
    CHECKF(buf_has(&err, "\"code\""), "json Status without \"code\"");
    CHECKF(buf_has(&err, "\"message\""), "json Status without \"message\"");
    /* the same err buffer, reused across many failures, then freed once */
    for (i = 0; i < 200; i++) {
        call(rt, i % 2 ? "a.b.C/D" : "hms.sys.v1.System/Echo", HMS_FORMAT_JSON,
             i % 2 ? NULL : "{", i % 2 ? 0 : 1, &resp, &err);
    }
    CHECK(status_code(HMS_FORMAT_JSON, &err, &(int64_t){0}));
    hms_buf_free(&resp);
    hms_buf_free(&err);
    EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
}

/* ------------------------------------------------------------------------ */
/* Tests: hostile input                                                     */
/* ------------------------------------------------------------------------ */

#define NEST 100000

static void test_bad_payloads(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    bytes b = {0};
    int i;

    /* garbage and truncated payloads, each format */
    {
        static const char *const json_bad[] = {
            "this is not json", "{\"payload\":\"AAEC\",\"te", "{\"text\":5}",
            "{\"payload\":\"!!not base64!!\"}", "{\"text\":\"\\ud800\"}", "[1,2]", "\"x\"",
            "{\"text\":\"a\"}}", "{,}",
        };
        static const uint8_t cbor_bad1[] = {0xff};             /* lone break */
        static const uint8_t cbor_bad2[] = {0xfc};             /* reserved simple */
        static const uint8_t cbor_bad3[] = {0xa2, 0x64, 't', 'e'}; /* truncated */
        static const uint8_t cbor_bad4[] = {0xa1, 0x64, 't', 'e', 'x', 't', 0x62, 'h'};
        static const uint8_t cbor_bad5[] = {0xa1, 0x64, 't', 'e', 'x', 't', 0x62, 0xff, 0xfe};
        static const uint8_t cbor_bad6[] = {0xa1, 0x64, 't', 'e', 'x', 't', 0x05}; /* int */
        static const uint8_t cbor_bad7[] = {0x01};             /* not a map */
        static const uint8_t cbor_bad8[] = {0x1c};             /* reserved additional info */
        static const uint8_t pb_bad1[] = {0x0f, 0x00};         /* wire type 7 */
        static const uint8_t pb_bad2[] = {0x0a, 0x03, 0x00};   /* truncated bytes */
        static const uint8_t pb_bad3[] = {0x12, 0x02, 0xff, 0xfe}; /* string not UTF-8 */
        static const uint8_t pb_bad4[] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff}; /* bad varint */
        static const uint8_t pb_bad5[] = {0x12};               /* tag without value */
        static const uint8_t pb_bad6[] = {0x00, 0x00};         /* field number 0 */
        struct {
            int32_t f;
            const void *p;
            size_t n;
            const char *what;
        } cases[] = {
            {HMS_FORMAT_CBOR, cbor_bad1, sizeof cbor_bad1, "cbor lone break"},
            {HMS_FORMAT_CBOR, cbor_bad2, sizeof cbor_bad2, "cbor reserved simple value"},
            {HMS_FORMAT_CBOR, cbor_bad3, sizeof cbor_bad3, "cbor truncated map"},
            {HMS_FORMAT_CBOR, cbor_bad4, sizeof cbor_bad4, "cbor truncated text"},
            {HMS_FORMAT_CBOR, cbor_bad5, sizeof cbor_bad5, "cbor text not UTF-8"},
            {HMS_FORMAT_CBOR, cbor_bad6, sizeof cbor_bad6, "cbor wrong type for text"},
            {HMS_FORMAT_CBOR, cbor_bad7, sizeof cbor_bad7, "cbor not a map"},
            {HMS_FORMAT_CBOR, cbor_bad8, sizeof cbor_bad8, "cbor reserved additional info"},
            {HMS_FORMAT_PROTOBUF, pb_bad1, sizeof pb_bad1, "protobuf wire type 7"},
            {HMS_FORMAT_PROTOBUF, pb_bad2, sizeof pb_bad2, "protobuf truncated bytes"},
            {HMS_FORMAT_PROTOBUF, pb_bad3, sizeof pb_bad3, "protobuf string not UTF-8"},
            {HMS_FORMAT_PROTOBUF, pb_bad4, sizeof pb_bad4, "protobuf overlong varint"},
            {HMS_FORMAT_PROTOBUF, pb_bad5, sizeof pb_bad5, "protobuf tag without value"},
            {HMS_FORMAT_PROTOBUF, pb_bad6, sizeof pb_bad6, "protobuf field number 0"},
        };
        for (i = 0; i < (int)(sizeof json_bad / sizeof json_bad[0]); i++) {
            int32_t rc = call(rt, ECHO, HMS_FORMAT_JSON, json_bad[i], strlen(json_bad[i]), &resp,
                              &err);
            char what[160];
            snprintf(what, sizeof what, "json bad payload %s", json_bad[i]);
            EXPECT_RC(what, rc, HMS_DECODE_ERROR, HMS_FORMAT_JSON, &err);
        }
        for (i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
            EXPECT_RC(cases[i].what,
                      call(rt, ECHO, cases[i].f, cases[i].p, cases[i].n, &resp, &err),
                      HMS_DECODE_ERROR, cases[i].f, &err);
        }
    }

    /* declared lengths far beyond the actual bytes: no allocation of them */
    {
        static const uint8_t cbor_huge_top[] = {0x5b, 0xff, 0xff, 0xff, 0xff,
                                                0xff, 0xff, 0xff, 0xff};
        static const uint8_t cbor_huge_field[] = {0xa1, 0x67, 'p',  'a',  'y',  'l',  'o',
                                                  'a',  'd',  0x5b, 0xff, 0xff, 0xff, 0xff,
                                                  0xff, 0xff, 0xff, 0xff};
        static const uint8_t cbor_huge_text[] = {0xa1, 0x64, 't',  'e',  'x',  't',  0x7b,
                                                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        static const uint8_t cbor_huge_map[] = {0xbb, 0xff, 0xff, 0xff, 0xff,
                                                0xff, 0xff, 0xff, 0xff};
        static const uint8_t cbor_huge_array[] = {0xa1, 0x64, 't',  'e',  'x',  't',  0x9b,
                                                  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        static const uint8_t cbor_4g[] = {0xa1, 0x67, 'p', 'a', 'y', 'l', 'o', 'a', 'd',
                                          0x5a, 0xff, 0xff, 0xff, 0xff, 0x00};
        static const uint8_t pb_huge[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0x01, 0x00};
        static const uint8_t pb_4g[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
        static const uint8_t pb_huge_unknown[] = {0x2a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                  0xff, 0xff, 0xff, 0x01}; /* field 5 */
        EXPECT_RC("cbor bstr length 2^64-1", call(rt, ECHO, HMS_FORMAT_CBOR, cbor_huge_top,
                                                   sizeof cbor_huge_top, &resp, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_CBOR, &err);
        EXPECT_RC("cbor payload field length 2^64-1",
                  call(rt, ECHO, HMS_FORMAT_CBOR, cbor_huge_field, sizeof cbor_huge_field, &resp,
                       &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_CBOR, &err);
        EXPECT_RC("cbor text length 2^64-1", call(rt, ECHO, HMS_FORMAT_CBOR, cbor_huge_text,
                                                   sizeof cbor_huge_text, &resp, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_CBOR, &err);
        EXPECT_RC("cbor map of 2^64-1 pairs", call(rt, ECHO, HMS_FORMAT_CBOR, cbor_huge_map,
                                                    sizeof cbor_huge_map, &resp, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_CBOR, &err);
        EXPECT_RC("cbor array of 2^64-1 items", call(rt, ECHO, HMS_FORMAT_CBOR, cbor_huge_array,
                                                      sizeof cbor_huge_array, &resp, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_CBOR, &err);
        EXPECT_RC("cbor bstr length 4 GiB", call(rt, ECHO, HMS_FORMAT_CBOR, cbor_4g,
                                                  sizeof cbor_4g, &resp, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_CBOR, &err);
        EXPECT_RC("protobuf length 2^64-1", call(rt, ECHO, HMS_FORMAT_PROTOBUF, pb_huge,
                                                  sizeof pb_huge, &resp, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_PROTOBUF, &err);
        EXPECT_RC("protobuf length 4 GiB", call(rt, ECHO, HMS_FORMAT_PROTOBUF, pb_4g,
                                                 sizeof pb_4g, &resp, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_PROTOBUF, &err);
        EXPECT_RC("protobuf unknown field length 2^64-1",
                  call(rt, ECHO, HMS_FORMAT_PROTOBUF, pb_huge_unknown, sizeof pb_huge_unknown,
                       &resp, &err),
                  HMS_DECODE_ERROR, HMS_FORMAT_PROTOBUF, &err);
    }

    /* 100000 levels of nesting: refused, no stack overflow */
    {
        /* CBOR: [[[...0...]]] alone, and as the value of "text" */
        b.n = 0;
        b_fill(&b, 0x81, NEST);
        b_byte(&b, 0x00);
        EXPECT_RC2("cbor nested arrays", call(rt, ECHO, HMS_FORMAT_CBOR, b.p, b.n, &resp, &err),
                   HMS_DECODE_ERROR, HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_CBOR, &err);
        b.n = 0;
        cbor_head(&b, 5, 1);
        cbor_text(&b, "text");
        b_fill(&b, 0x81, NEST);
        b_byte(&b, 0x00);
        EXPECT_RC2("cbor nested arrays in a field",
                   call(rt, ECHO, HMS_FORMAT_CBOR, b.p, b.n, &resp, &err), HMS_DECODE_ERROR,
                   HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_CBOR, &err);
        /* CBOR: nested maps {"a":{"a":...}} */
        b.n = 0;
        for (i = 0; i < NEST; i++) {
            b_byte(&b, 0xa1);
            b_byte(&b, 0x61);
            b_byte(&b, 'a');
        }
        b_byte(&b, 0x00);
        EXPECT_RC2("cbor nested maps", call(rt, ECHO, HMS_FORMAT_CBOR, b.p, b.n, &resp, &err),
                   HMS_DECODE_ERROR, HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_CBOR, &err);
        /* CBOR: nested tags */
        b.n = 0;
        b_fill(&b, 0xc6, NEST);
        b_byte(&b, 0x00);
        EXPECT_RC2("cbor nested tags", call(rt, ECHO, HMS_FORMAT_CBOR, b.p, b.n, &resp, &err),
                   HMS_DECODE_ERROR, HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_CBOR, &err);
        /* CBOR: unclosed indefinite arrays */
        b.n = 0;
        b_fill(&b, 0x9f, NEST);
        EXPECT_RC2("cbor nested indefinite arrays",
                   call(rt, ECHO, HMS_FORMAT_CBOR, b.p, b.n, &resp, &err), HMS_DECODE_ERROR,
                   HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_CBOR, &err);

        /* JSON: [[[...]]] complete, alone and inside "text" */
        b.n = 0;
        b_fill(&b, '[', NEST);
        b_fill(&b, ']', NEST);
        EXPECT_RC2("json nested arrays", call(rt, ECHO, HMS_FORMAT_JSON, b.p, b.n, &resp, &err),
                   HMS_DECODE_ERROR, HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_JSON, &err);
        b.n = 0;
        b_str(&b, "{\"text\":");
        b_fill(&b, '[', NEST);
        b_fill(&b, ']', NEST);
        b_str(&b, "}");
        EXPECT_RC2("json nested arrays in a field",
                   call(rt, ECHO, HMS_FORMAT_JSON, b.p, b.n, &resp, &err), HMS_DECODE_ERROR,
                   HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_JSON, &err);
        b.n = 0;
        for (i = 0; i < NEST; i++) b_str(&b, "{\"text\":");
        b_str(&b, "1");
        b_fill(&b, '}', NEST);
        EXPECT_RC2("json nested objects", call(rt, ECHO, HMS_FORMAT_JSON, b.p, b.n, &resp, &err),
                   HMS_DECODE_ERROR, HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_JSON, &err);
        b.n = 0;
        b_fill(&b, '[', NEST);
        EXPECT_RC2("json unclosed arrays", call(rt, ECHO, HMS_FORMAT_JSON, b.p, b.n, &resp, &err),
                   HMS_DECODE_ERROR, HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_JSON, &err);

        /* protobuf: an unknown field 3 made of nested groups (start 0x1b, end 0x1c) */
        b.n = 0;
        b_fill(&b, 0x1b, NEST);
        b_fill(&b, 0x1c, NEST);
        EXPECT_RC2("protobuf nested groups",
                   call(rt, ECHO, HMS_FORMAT_PROTOBUF, b.p, b.n, &resp, &err), HMS_DECODE_ERROR,
                   HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_PROTOBUF, &err);
        b.n = 0;
        b_fill(&b, 0x1b, NEST);
        EXPECT_RC2("protobuf unclosed groups",
                   call(rt, ECHO, HMS_FORMAT_PROTOBUF, b.p, b.n, &resp, &err), HMS_DECODE_ERROR,
                   HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_PROTOBUF, &err);
    }

    /* payloads over the 4 MiB default: 64 MiB and 4 MiB + 1 KiB */
    {
        static const size_t sizes[2] = {(size_t)64 << 20, ((size_t)4 << 20) + 1024};
        size_t s;
        for (s = 0; s < 2; s++) {
            size_t len = sizes[s];
            size_t start = 16;
            uint8_t *big = (uint8_t *)malloc(start + len + 16);
            bytes pre = {0};
            char what[96];
            int k;
            if (big == NULL) die("out of memory");
            memset(big + start, 'a', len);
            for (k = 0; k < 3; k++) {
                int32_t f = FORMATS[k];
                size_t total;
                pre.n = 0;
                if (f == HMS_FORMAT_JSON) {
                    b_str(&pre, "{\"text\":\"");
                    memcpy(big + start + len, "\"}", 2);
                    total = pre.n + len + 2;
                } else if (f == HMS_FORMAT_CBOR) {
                    cbor_head(&pre, 5, 1);
                    cbor_text(&pre, "text");
                    cbor_head(&pre, 3, len);
                    total = pre.n + len;
                } else {
                    b_byte(&pre, 0x12);
                    pb_varint(&pre, len);
                    total = pre.n + len;
                }
                memcpy(big + start - pre.n, pre.p, pre.n);
                snprintf(what, sizeof what, "%s payload of %zu bytes", FORMAT_NAMES[f], total);
                EXPECT_RC(what, call(rt, ECHO, f, big + start - pre.n, total, &resp, &err),
                          HMS_RESOURCE_EXHAUSTED, f, &err);
            }
            b_free(&pre);
            free(big);
        }
    }

    /* a runtime with small limits */
    {
        hms_runtime small = new_runtime(HMS_FORMAT_JSON, "{\"maxMessageBytes\":\"1024\"}");
        bytes text = {0};
        b_fill(&text, 'x', 2000);
        b_byte(&text, 0);
        echo_text_request(&b, HMS_FORMAT_PROTOBUF, (const char *)text.p);
        EXPECT_RC("2000 bytes over a 1024-byte limit",
                  call(small, ECHO, HMS_FORMAT_PROTOBUF, b.p, b.n, &resp, &err),
                  HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_PROTOBUF, &err);
        text.n = 500;
        text.p[500] = 0;
        echo_text_request(&b, HMS_FORMAT_PROTOBUF, (const char *)text.p);
        EXPECT_RC("500 bytes under a 1024-byte limit",
                  call(small, ECHO, HMS_FORMAT_PROTOBUF, b.p, b.n, &resp, &err), HMS_OK,
                  HMS_FORMAT_PROTOBUF, &err);
        b_free(&text);
        EXPECT_RC("runtime_free", hms_runtime_free(small), HMS_OK, 0, NULL);
    }
    b_free(&b);
    hms_buf_free(&resp);
    hms_buf_free(&err);
    EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
}

static void test_bad_arguments(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    int i;
    for (i = 0; i < 3; i++) {
        int32_t f = FORMATS[i];
        EXPECT_RC("NULL request with a length",
                  hms_call(rt, ECHO, strlen(ECHO), f, NULL, 5, NULL, 0, &resp, &err),
                  HMS_INVALID_ARGUMENT, f, &err);
        EXPECT_RC("NULL method with a length",
                  hms_call(rt, NULL, 22, f, NULL, 0, NULL, 0, &resp, &err), HMS_INVALID_ARGUMENT,
                  f, &err);
        EXPECT_RC("NULL method, length 0",
                  hms_call(rt, NULL, 0, f, NULL, 0, NULL, 0, &resp, &err), HMS_INVALID_ARGUMENT,
                  f, &err);
        EXPECT_RC("empty method", hms_call(rt, "", 0, f, NULL, 0, NULL, 0, &resp, &err),
                  HMS_INVALID_ARGUMENT, f, &err);
        EXPECT_RC("method name not UTF-8 (truncated sequence)",
                  call(rt, "hms.sys.v1.System/Ech\xc3", f, NULL, 0, &resp, &err),
                  HMS_INVALID_ARGUMENT, f, &err);
        EXPECT_RC("method name not UTF-8 (0xff)",
                  call(rt, "\xff\xfe.v1.S/Echo", f, NULL, 0, &resp, &err), HMS_INVALID_ARGUMENT,
                  f, &err);
        EXPECT_RC("method name with an overlong encoding",
                  call(rt, "hms.sys.v1.System/\xc0\xaf" "Echo", f, NULL, 0, &resp, &err),
                  HMS_INVALID_ARGUMENT, f, &err);
        EXPECT_RC("unknown method", call(rt, "hms.sys.v1.System/Nope", f, NULL, 0, &resp, &err),
                  HMS_NOT_FOUND, f, &err);
        EXPECT_RC("unknown service", call(rt, "nope.v1.Nothing/Echo", f, NULL, 0, &resp, &err),
                  HMS_NOT_FOUND, f, &err);
        EXPECT_RC2("method name without a slash",
                   call(rt, "hms.sys.v1.System.Echo", f, NULL, 0, &resp, &err),
                   HMS_INVALID_ARGUMENT, HMS_NOT_FOUND, f, &err);
    }
    {
        static const int32_t bad_formats[3] = {0, 4, -1};
        for (i = 0; i < 3; i++) {
            char what[64];
            snprintf(what, sizeof what, "unknown format %d", bad_formats[i]);
            EXPECT_RC(what, call(rt, ECHO, bad_formats[i], ECHO_JSON, strlen(ECHO_JSON), &resp,
                                 &err),
                      HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, NULL);
            EXPECT_RC(what, call(rt, ECHO, bad_formats[i], NULL, 0, &resp, NULL),
                      HMS_INVALID_ARGUMENT, 0, NULL);
        }
    }
    hms_buf_free(&resp);
    hms_buf_free(&err);
    EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
}

/* ------------------------------------------------------------------------ */
/* Tests: handles                                                           */
/* ------------------------------------------------------------------------ */

static void noop_handler(hms_reply *reply, const char *method, size_t method_len, int32_t format,
                         const uint8_t *request, size_t request_len, void *user_data)
{
    (void)method;
    (void)method_len;
    (void)format;
    (void)request;
    (void)request_len;
    (void)user_data;
    hms_reply_set(reply, (const uint8_t *)"{}", 2);
}

static void noop_event(const uint8_t *event, size_t event_len, void *user_data)
{
    (void)event;
    (void)event_len;
    (void)user_data;
}

static const char NOOP_DESC[] = "{\"name\":\"test.v1.Noop\",\"methods\":[{\"name\":\"Do\"}]}";

static void test_handles(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_runtime stale = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    hms_service svc = 0;
    hms_subscription sub = 0;
    const hms_runtime bogus[4] = {0, 0xdeadbeefu, UINT64_MAX, 1};
    int i;

    EXPECT_RC("runtime_free", hms_runtime_free(stale), HMS_OK, 0, NULL);
    EXPECT_RC("register", hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)NOOP_DESC,
                                               strlen(NOOP_DESC), HMS_SERVICE_DEFAULT,
                                               noop_handler, NULL, &svc, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    EXPECT_RC("subscribe", hms_subscribe(rt, HMS_FORMAT_JSON, NULL, 0, &sub, &err), HMS_OK,
              HMS_FORMAT_JSON, &err);
    CHECK(svc != 0 && sub != 0);
    CHECK(svc != rt && sub != rt && svc != sub);

    for (i = 0; i < 4; i++) {
        hms_runtime h = bogus[i];
        hms_runtime out = 777;
        hms_subscription sout = 777;
        if (h == rt || h == svc || h == sub) continue;
        EXPECT_RC("call on a bogus runtime",
                  call(h, ECHO, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON), &resp, &err),
                  HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
        EXPECT_RC("runtime_free of a bogus handle", hms_runtime_free(h), HMS_INVALID_HANDLE, 0,
                  NULL);
        EXPECT_RC("register on a bogus runtime",
                  hms_service_register(h, HMS_FORMAT_JSON, (const uint8_t *)NOOP_DESC,
                                       strlen(NOOP_DESC), 0, noop_handler, NULL, &out, &err),
                  HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
        CHECK(out == 777);
        EXPECT_RC("subscribe on a bogus runtime",
                  hms_subscribe(h, HMS_FORMAT_JSON, NULL, 0, &sout, &err), HMS_INVALID_HANDLE,
                  HMS_FORMAT_JSON, &err);
        CHECK(sout == 777);
        EXPECT_RC("subscribe_push on a bogus runtime",
                  hms_subscribe_push(h, HMS_FORMAT_JSON, NULL, 0, noop_event, NULL, &sout, &err),
                  HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
        EXPECT_RC("unregister a bogus service", hms_service_unregister(h), HMS_INVALID_HANDLE, 0,
                  NULL);
        EXPECT_RC("poll a bogus subscription", hms_poll(h, 0, &resp, &err), HMS_INVALID_HANDLE,
                  HMS_FORMAT_JSON, &err);
        EXPECT_RC("unsubscribe a bogus subscription", hms_unsubscribe(h), HMS_INVALID_HANDLE, 0,
                  NULL);
    }
    /* stale: a freed runtime, every time */
    for (i = 0; i < 3; i++) {
        EXPECT_RC("call on a freed runtime",
                  call(stale, ECHO, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON), &resp, &err),
                  HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
        EXPECT_RC("free a freed runtime", hms_runtime_free(stale), HMS_INVALID_HANDLE, 0, NULL);
    }
    /* a handle of the wrong kind */
    EXPECT_RC("service handle as runtime",
              call(svc, ECHO, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON), &resp, &err),
              HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
    EXPECT_RC("subscription handle as runtime",
              call(sub, ECHO, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON), &resp, &err),
              HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
    EXPECT_RC("runtime_free of a service", hms_runtime_free(svc), HMS_INVALID_HANDLE, 0, NULL);
    EXPECT_RC("runtime_free of a subscription", hms_runtime_free(sub), HMS_INVALID_HANDLE, 0,
              NULL);
    EXPECT_RC("unregister a runtime", hms_service_unregister(rt), HMS_INVALID_HANDLE, 0, NULL);
    EXPECT_RC("unregister a subscription", hms_service_unregister(sub), HMS_INVALID_HANDLE, 0,
              NULL);
    EXPECT_RC("poll a runtime", hms_poll(rt, 0, &resp, &err), HMS_INVALID_HANDLE,
              HMS_FORMAT_JSON, &err);
    EXPECT_RC("poll a service", hms_poll(svc, 0, &resp, &err), HMS_INVALID_HANDLE,
              HMS_FORMAT_JSON, &err);
    EXPECT_RC("unsubscribe a runtime", hms_unsubscribe(rt), HMS_INVALID_HANDLE, 0, NULL);
    EXPECT_RC("unsubscribe a service", hms_unsubscribe(svc), HMS_INVALID_HANDLE, 0, NULL);
    /* all of them still work after the abuse */
    EXPECT_RC("call still works", call(rt, "test.v1.Noop/Do", HMS_FORMAT_JSON, "{}", 2, &resp,
                                       &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    EXPECT_RC("poll still works", hms_poll(sub, 0, &resp, &err), HMS_DEADLINE_EXCEEDED,
              HMS_FORMAT_JSON, &err);

    /* double frees */
    EXPECT_RC("unregister", hms_service_unregister(svc), HMS_OK, 0, NULL);
    EXPECT_RC("unregister twice", hms_service_unregister(svc), HMS_INVALID_HANDLE, 0, NULL);
    EXPECT_RC("unsubscribe", hms_unsubscribe(sub), HMS_OK, 0, NULL);
    EXPECT_RC("unsubscribe twice", hms_unsubscribe(sub), HMS_INVALID_HANDLE, 0, NULL);
    EXPECT_RC2("poll after unsubscribe", hms_poll(sub, 0, &resp, &err), HMS_INVALID_HANDLE,
               HMS_CANCELLED, HMS_FORMAT_JSON, &err);

    /* freeing a runtime frees what hangs on it */
    EXPECT_RC("register", hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)NOOP_DESC,
                                               strlen(NOOP_DESC), HMS_SERVICE_DEFAULT,
                                               noop_handler, NULL, &svc, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    EXPECT_RC("subscribe", hms_subscribe(rt, HMS_FORMAT_JSON, NULL, 0, &sub, &err), HMS_OK,
              HMS_FORMAT_JSON, &err);
    EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
    EXPECT_RC("unregister a service of a freed runtime", hms_service_unregister(svc),
              HMS_INVALID_HANDLE, 0, NULL);
    /* the header: their handles become invalid */
    EXPECT_RC("poll a subscription of a freed runtime", hms_poll(sub, 0, &resp, &err),
              HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
    EXPECT_RC("unsubscribe a subscription of a freed runtime", hms_unsubscribe(sub),
              HMS_INVALID_HANDLE, 0, NULL);
    hms_buf_free(&resp);
    hms_buf_free(&err);
}

/* ------------------------------------------------------------------------ */
/* Tests: host services                                                     */
/* ------------------------------------------------------------------------ */

typedef struct calc_state {
    hms_runtime rt;
    pthread_t caller;
    int check_thread;
    pthread_mutex_t mu;
    long calls;
    int problems; /* checks that failed inside the handler */
    char problem[256];
} calc_state;

static void calc_problem(calc_state *st, const char *what)
{
    pthread_mutex_lock(&st->mu);
    st->problems++;
    if (st->problem[0] == '\0') snprintf(st->problem, sizeof st->problem, "%s", what);
    pthread_mutex_unlock(&st->mu);
}

static int method_is(const char *m, size_t n, const char *name)
{
    return n == strlen(name) && memcmp(m, name, n) == 0;
}

/* Finds "key": <integer> in a JSON object. */
static long json_int(const uint8_t *p, size_t n, const char *key)
{
    char pat[64];
    const uint8_t *k;
    char tmp[32];
    size_t i = 0;
    snprintf(pat, sizeof pat, "\"%s\"", key);
    k = find_bytes(p, n, pat, strlen(pat));
    if (k == NULL) return -999999;
    k += strlen(pat);
    while (k < p + n && (*k == ' ' || *k == ':')) k++;
    while (k < p + n && i + 1 < sizeof tmp && ((*k >= '0' && *k <= '9') || *k == '-'))
        tmp[i++] = (char)*k++;
    tmp[i] = '\0';
    return i ? strtol(tmp, NULL, 10) : -999999;
}

static void calc_handler(hms_reply *reply, const char *method, size_t method_len, int32_t format,
                         const uint8_t *request, size_t request_len, void *user_data)
{
    calc_state *st = (calc_state *)user_data;
    pthread_mutex_lock(&st->mu);
    st->calls++;
    pthread_mutex_unlock(&st->mu);
    if (format != HMS_FORMAT_JSON) calc_problem(st, "handler format is not the registered JSON");
    if (request == NULL && request_len != 0) calc_problem(st, "NULL request with a length");
    if (st->check_thread && !pthread_equal(pthread_self(), st->caller))
        calc_problem(st, "handler without deadline did not run on the calling thread");

    if (method_is(method, method_len, "Add")) {
        char out[64];
        long a = json_int(request, request_len, "a"), b = json_int(request, request_len, "b");
        int n = snprintf(out, sizeof out, "{\"sum\":%ld}", a + b);
        if (hms_reply_remaining_ms(reply) != -1) calc_problem(st, "remaining_ms without deadline");
        if (hms_reply_set(reply, NULL, 3) != HMS_INVALID_ARGUMENT)
            calc_problem(st, "hms_reply_set(NULL data, 3) is not HMS_INVALID_ARGUMENT");
        if (hms_reply_set(reply, (const uint8_t *)out, (size_t)n) != HMS_OK)
            calc_problem(st, "hms_reply_set failed");
        if (hms_reply_set(reply, (const uint8_t *)out, (size_t)n) != HMS_FAILED_PRECONDITION)
            calc_problem(st, "second hms_reply_set is not HMS_FAILED_PRECONDITION");
    } else if (method_is(method, method_len, "Fail")) {
        static const char msg[] = "calc failed on purpose";
        if (hms_reply_error(reply, HMS_HANDLER_ERROR, msg, strlen(msg)) != HMS_OK)
            calc_problem(st, "hms_reply_error failed");
        if (hms_reply_error(reply, HMS_HANDLER_ERROR, msg, strlen(msg)) != HMS_FAILED_PRECONDITION)
            calc_problem(st, "second hms_reply_error is not HMS_FAILED_PRECONDITION");
        if (hms_reply_set(reply, (const uint8_t *)"{}", 2) != HMS_FAILED_PRECONDITION)
            calc_problem(st, "hms_reply_set after hms_reply_error is not HMS_FAILED_PRECONDITION");
    } else if (method_is(method, method_len, "Silent")) {
        /* answers nothing */
    } else if (method_is(method, method_len, "Reenter")) {
        hms_buf r = {0}, e = {0};
        int32_t rc = hms_call(st->rt, ECHO, strlen(ECHO), HMS_FORMAT_JSON, request, request_len,
                              NULL, 0, &r, &e);
        if (rc == HMS_OK) {
            hms_reply_set(reply, r.data, r.len);
        } else {
            hms_reply_error(reply, rc, (const char *)e.data, e.len);
        }
        hms_buf_free(&r);
        hms_buf_free(&e);
    } else {
        calc_problem(st, "unexpected method name");
        hms_reply_error(reply, HMS_NOT_FOUND, method, method_len);
    }
}

static const char CALC_DESC[] =
    "{\"name\":\"test.v1.Calc\",\"methods\":[{\"name\":\"Add\"},{\"name\":\"Fail\"},"
    "{\"name\":\"Silent\"},{\"name\":\"Reenter\"}]}";

static void calc_init(calc_state *st, hms_runtime rt)
{
    memset(st, 0, sizeof *st);
    st->rt = rt;
    st->caller = pthread_self();
    pthread_mutex_init(&st->mu, NULL);
}

static void test_host_service(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_runtime other = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    hms_service svc = 0, out = 4242;
    calc_state st;
    calc_init(&st, rt);
    st.check_thread = 1;

    EXPECT_RC("register Calc",
              hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)CALC_DESC,
                                   strlen(CALC_DESC), HMS_SERVICE_DEFAULT, calc_handler, &st, &svc,
                                   &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECK(svc != 0);
    /* registration errors */
    EXPECT_RC("register the same name again",
              hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)CALC_DESC,
                                   strlen(CALC_DESC), 0, calc_handler, &st, &out, &err),
              HMS_ALREADY_EXISTS, HMS_FORMAT_JSON, &err);
    EXPECT_RC("register with a NULL handler",
              hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)NOOP_DESC,
                                   strlen(NOOP_DESC), 0, NULL, NULL, &out, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("register with unknown flags",
              hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)NOOP_DESC,
                                   strlen(NOOP_DESC), 0x80u, noop_handler, NULL, &out, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("export without a transport",
              hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)NOOP_DESC,
                                   strlen(NOOP_DESC), HMS_SERVICE_EXPORT, noop_handler, NULL,
                                   &out, &err),
              HMS_FAILED_PRECONDITION, HMS_FORMAT_JSON, &err);
    CHECK(buf_has(&err, "no transport"));
    {
        /* hms_serve (ABI 1.4) runs exported calls: nothing to serve without
         * a transport; its output is checked first. */
        uint32_t served = 7;
        EXPECT_RC("serve without a transport", hms_serve(rt, 0, &served, &err),
                  HMS_FAILED_PRECONDITION, HMS_FORMAT_JSON, &err);
        CHECK(buf_has(&err, "no transport"));
        CHECK(served == 7);
        EXPECT_RC("serve with a NULL count", hms_serve(rt, 0, NULL, &err),
                  HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
        EXPECT_RC("serve a stale runtime", hms_serve(0, 0, &served, &err), HMS_INVALID_HANDLE,
                  HMS_FORMAT_JSON, &err);
    }
    EXPECT_RC("register with an unknown format",
              hms_service_register(rt, 9, (const uint8_t *)NOOP_DESC, strlen(NOOP_DESC), 0,
                                   noop_handler, NULL, &out, NULL),
              HMS_INVALID_ARGUMENT, 0, NULL);
    EXPECT_RC("register with an empty name",
              hms_service_register(rt, HMS_FORMAT_JSON,
                                   (const uint8_t *)"{\"methods\":[{\"name\":\"X\"}]}", 26, 0,
                                   noop_handler, NULL, &out, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("register with a garbage descriptor",
              hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)"{\"name\":", 8, 0,
                                   noop_handler, NULL, &out, &err),
              HMS_DECODE_ERROR, HMS_FORMAT_JSON, &err);
    {
        static const char unknown_type[] =
            "{\"name\":\"test.v1.Typed\",\"methods\":[{\"name\":\"X\","
            "\"inputType\":\"no.such.Type\",\"outputType\":\"no.such.Type\"}]}";
        EXPECT_RC("register with an unknown input type",
                  hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)unknown_type,
                                       strlen(unknown_type), 0, noop_handler, NULL, &out, &err),
                  HMS_NOT_FOUND, HMS_FORMAT_JSON, &err);
    }
    CHECK(out == 4242);

    /* Add in JSON and CBOR */
    EXPECT_RC("Add json", call(rt, "test.v1.Calc/Add", HMS_FORMAT_JSON, "{\"a\":2,\"b\":40}", 14,
                               &resp, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECKF(json_eq(&resp, "{\"sum\":42}"), "Add json answer");
    {
        static const uint8_t add_cbor[] = {0xa2, 0x61, 'a', 0x02, 0x61, 'b', 0x18, 0x28};
        static const uint8_t sum_cbor[] = {0xa1, 0x63, 's', 'u', 'm', 0x18, 0x2a};
        EXPECT_RC("Add cbor", call(rt, "test.v1.Calc/Add", HMS_FORMAT_CBOR, add_cbor,
                                   sizeof add_cbor, &resp, &err),
                  HMS_OK, HMS_FORMAT_CBOR, &err);
        CHECKF(buf_eq(&resp, sum_cbor, sizeof sum_cbor), "Add cbor answer");
        if (!buf_eq(&resp, sum_cbor, sizeof sum_cbor)) dump_buf_line("got", &resp);
    }
    /* options without a deadline: still on the calling thread, remaining_ms -1 */
    EXPECT_RC("Add json with options", call_opts(rt, "test.v1.Calc/Add", HMS_FORMAT_JSON,
                                                 "{\"a\":1,\"b\":1}", 13, "{\"traceId\":\"x\"}",
                                                 &resp, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECK(json_eq(&resp, "{\"sum\":2}"));

    /* Fail and Silent: HMS_HANDLER_ERROR, with the handler's text */
    EXPECT_RC("Fail json", call(rt, "test.v1.Calc/Fail", HMS_FORMAT_JSON, "{}", 2, &resp, &err),
              HMS_HANDLER_ERROR, HMS_FORMAT_JSON, &err);
    CHECKF(buf_has(&err, "calc failed on purpose"), "Fail: the Status lacks the handler's text");
    EXPECT_RC("Fail cbor", call(rt, "test.v1.Calc/Fail", HMS_FORMAT_CBOR, "\xa0", 1, &resp, &err),
              HMS_HANDLER_ERROR, HMS_FORMAT_CBOR, &err);
    CHECK(buf_has(&err, "calc failed on purpose"));
    EXPECT_RC("Silent json", call(rt, "test.v1.Calc/Silent", HMS_FORMAT_JSON, "{}", 2, &resp,
                                  &err),
              HMS_HANDLER_ERROR, HMS_FORMAT_JSON, &err);
    EXPECT_RC("Silent cbor", call(rt, "test.v1.Calc/Silent", HMS_FORMAT_CBOR, "\xa0", 1, &resp,
                                  &err),
              HMS_HANDLER_ERROR, HMS_FORMAT_CBOR, &err);

    /* Reenter: the handler calls Echo on the same runtime */
    EXPECT_RC("Reenter json", call(rt, "test.v1.Calc/Reenter", HMS_FORMAT_JSON, ECHO_JSON,
                                   strlen(ECHO_JSON), &resp, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECKF(json_eq(&resp, ECHO_JSON), "Reenter json answer");
    {
        /* an untyped method converts structurally: payload stays a base64 string */
        static const uint8_t want[] = {0xa2, 0x64, 't', 'e', 'x', 't', 0x62, 'h', 'i', 0x67, 'p',
                                       'a',  'y',  'l', 'o', 'a', 'd', 0x64, 'A', 'A', 'E', 'C'};
        bytes req = {0};
        cbor_head(&req, 5, 2);
        cbor_text(&req, "text");
        cbor_text(&req, "hi");
        cbor_text(&req, "payload");
        cbor_text(&req, "AAEC");
        EXPECT_RC("Reenter cbor", call(rt, "test.v1.Calc/Reenter", HMS_FORMAT_CBOR, req.p, req.n,
                                       &resp, &err),
                  HMS_OK, HMS_FORMAT_CBOR, &err);
        CHECKF(buf_eq(&resp, want, sizeof want), "Reenter cbor answer");
        if (!buf_eq(&resp, want, sizeof want)) dump_buf_line("got", &resp);
        b_free(&req);
    }
    /* listed by the registry, on this runtime only */
    EXPECT_RC("ListServices", call(rt, "hms.registry.v1.Registry/ListServices", HMS_FORMAT_JSON,
                                   "{}", 2, &resp, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECKF(buf_has(&resp, "test.v1.Calc"), "ListServices does not list test.v1.Calc");
    CHECKF(buf_has(&resp, "hms.sys.v1.System"), "ListServices does not list hms.sys.v1.System");
    EXPECT_RC("Calc on another runtime", call(other, "test.v1.Calc/Add", HMS_FORMAT_JSON, "{}", 2,
                                              &resp, &err),
              HMS_NOT_FOUND, HMS_FORMAT_JSON, &err);
    EXPECT_RC("unknown method of Calc", call(rt, "test.v1.Calc/Mul", HMS_FORMAT_JSON, "{}", 2,
                                             &resp, &err),
              HMS_NOT_FOUND, HMS_FORMAT_JSON, &err);
    /* bad JSON to an untyped method is still a decode error */
    EXPECT_RC("Add with garbage", call(rt, "test.v1.Calc/Add", HMS_FORMAT_CBOR, "\xff", 1, &resp,
                                       &err),
              HMS_DECODE_ERROR, HMS_FORMAT_CBOR, &err);
    {
        bytes deep = {0};
        cbor_head(&deep, 5, 1);
        cbor_text(&deep, "a");
        b_fill(&deep, 0x81, NEST);
        b_byte(&deep, 0x00);
        EXPECT_RC2("Add with 100000 levels of cbor",
                   call(rt, "test.v1.Calc/Add", HMS_FORMAT_CBOR, deep.p, deep.n, &resp, &err),
                   HMS_DECODE_ERROR, HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_CBOR, &err);
        b_free(&deep);
    }
    /* the reply functions refuse a NULL reply */
    EXPECT_RC("hms_reply_set(NULL)", hms_reply_set(NULL, (const uint8_t *)"{}", 2),
              HMS_INVALID_ARGUMENT, 0, NULL);
    EXPECT_RC("hms_reply_error(NULL)", hms_reply_error(NULL, HMS_UNKNOWN, "x", 1),
              HMS_INVALID_ARGUMENT, 0, NULL);

    /* unregister: then NOT_FOUND; a second unregister: INVALID_HANDLE */
    EXPECT_RC("unregister", hms_service_unregister(svc), HMS_OK, 0, NULL);
    EXPECT_RC("Add after unregister", call(rt, "test.v1.Calc/Add", HMS_FORMAT_JSON, "{}", 2,
                                           &resp, &err),
              HMS_NOT_FOUND, HMS_FORMAT_JSON, &err);
    EXPECT_RC("Add cbor after unregister", call(rt, "test.v1.Calc/Add", HMS_FORMAT_CBOR, "\xa0",
                                                1, &resp, &err),
              HMS_NOT_FOUND, HMS_FORMAT_CBOR, &err);
    EXPECT_RC("unregister twice", hms_service_unregister(svc), HMS_INVALID_HANDLE, 0, NULL);
    {
        long calls;
        pthread_mutex_lock(&st.mu);
        calls = st.calls;
        pthread_mutex_unlock(&st.mu);
        CHECKF(st.problems == 0, "%d problems inside the handler, first: %s", st.problems,
               st.problem);
        CHECKF(calls == 9, "handler ran %ld times, want 9", calls);
    }
    /* the name is free again */
    EXPECT_RC("register an empty descriptor (no name)",
              hms_service_register(rt, HMS_FORMAT_CBOR, (const uint8_t *)"\xa0", 1, 0,
                                   calc_handler, &st, &svc, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_CBOR, &err);
    EXPECT_RC("register Calc again",
              hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)CALC_DESC,
                                   strlen(CALC_DESC), 0, calc_handler, &st, &svc, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    EXPECT_RC("Add json", call(rt, "test.v1.Calc/Add", HMS_FORMAT_JSON, "{\"a\":3,\"b\":4}", 13,
                               &resp, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECK(json_eq(&resp, "{\"sum\":7}"));
    EXPECT_RC("unregister", hms_service_unregister(svc), HMS_OK, 0, NULL);

    hms_buf_free(&resp);
    hms_buf_free(&err);
    pthread_mutex_destroy(&st.mu);
    EXPECT_RC("runtime_free", hms_runtime_free(other), HMS_OK, 0, NULL);
    EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
}

/* A service that unregisters itself from inside its handler. */
typedef struct self_state {
    hms_service svc;
    int32_t rc;
} self_state;

static void self_handler(hms_reply *reply, const char *method, size_t method_len, int32_t format,
                         const uint8_t *request, size_t request_len, void *user_data)
{
    self_state *st = (self_state *)user_data;
    (void)method;
    (void)method_len;
    (void)format;
    (void)request;
    (void)request_len;
    st->rc = hms_service_unregister(st->svc);
    hms_reply_set(reply, (const uint8_t *)"{\"bye\":true}", 12);
}

/* Slow handler for deadlines; and a caller-thread-only service. */
typedef struct slow_state {
    pthread_mutex_t mu;
    int started, finished;
    int64_t remaining;
    int on_caller_thread;
    pthread_t caller;
} slow_state;

static void slow_handler(hms_reply *reply, const char *method, size_t method_len, int32_t format,
                         const uint8_t *request, size_t request_len, void *user_data)
{
    slow_state *st = (slow_state *)user_data;
    int64_t rem = hms_reply_remaining_ms(reply);
    (void)format;
    (void)request;
    (void)request_len;
    pthread_mutex_lock(&st->mu);
    st->started++;
    /* only Quick reports: an abandoned Sleep may start late on a busy machine
     * (its thread scheduled after the Quick call) and must not overwrite it */
    if (method_is(method, method_len, "Quick")) {
        st->remaining = rem;
        st->on_caller_thread = pthread_equal(pthread_self(), st->caller) ? 1 : 0;
    }
    pthread_mutex_unlock(&st->mu);
    if (method_is(method, method_len, "Sleep")) sleep_ms(400);
    hms_reply_set(reply, (const uint8_t *)"{}", 2);
    pthread_mutex_lock(&st->mu);
    st->finished++;
    pthread_mutex_unlock(&st->mu);
}

static void test_service_threads_and_deadlines(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    hms_service svc = 0;
    static const char slow_desc[] =
        "{\"name\":\"test.v1.Slow\",\"methods\":[{\"name\":\"Sleep\"},{\"name\":\"Quick\"}]}";
    static const char affine_desc[] =
        "{\"name\":\"test.v1.Affine\",\"methods\":[{\"name\":\"Quick\"}]}";
    static const char self_desc[] =
        "{\"name\":\"test.v1.Once\",\"methods\":[{\"name\":\"Bye\"}]}";
    slow_state st;
    self_state ss;
    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.mu, NULL);
    st.caller = pthread_self();

    /* a deadline preempts a slow handler: HMS_DEADLINE_EXCEEDED */
    EXPECT_RC("register Slow", hms_service_register(rt, HMS_FORMAT_JSON,
                                                    (const uint8_t *)slow_desc, strlen(slow_desc),
                                                    0, slow_handler, &st, &svc, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    {
        double t0 = now_ms(), took;
        EXPECT_RC("Sleep with a 50 ms deadline",
                  call_opts(rt, "test.v1.Slow/Sleep", HMS_FORMAT_JSON, "{}", 2,
                            "{\"deadlineMs\":50}", &resp, &err),
                  HMS_DEADLINE_EXCEEDED, HMS_FORMAT_JSON, &err);
        took = now_ms() - t0;
        if (took >= 400) {
            fprintf(stderr, "note: the 50 ms deadline call returned after %.0f ms\n", took);
        }
    }
    EXPECT_RC("Quick with a long deadline",
              call_opts(rt, "test.v1.Slow/Quick", HMS_FORMAT_JSON, "{}", 2,
                        "{\"deadlineMs\":60000}", &resp, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    pthread_mutex_lock(&st.mu);
    CHECKF(st.remaining > 0 && st.remaining <= 60000, "remaining_ms with a 60 s deadline: %lld",
           (long long)st.remaining);
    pthread_mutex_unlock(&st.mu);
    /* unregister waits for the abandoned Sleep to finish */
    EXPECT_RC("unregister Slow", hms_service_unregister(svc), HMS_OK, 0, NULL);
    pthread_mutex_lock(&st.mu);
    CHECKF(st.started == 2 && st.finished == 2,
           "unregister returned while a handler still runs (its deadline passed): started %d "
           "finished %d",
           st.started, st.finished);
    pthread_mutex_unlock(&st.mu);
    {
        /* st lives on this stack: never return while a handler may still use it */
        int waited = 0, busy = 1;
        while (busy && waited < 10000) {
            pthread_mutex_lock(&st.mu);
            busy = st.finished < st.started;
            pthread_mutex_unlock(&st.mu);
            if (busy) {
                sleep_ms(10);
                waited += 10;
            }
        }
        if (busy) die("a handler still runs 10 s after hms_service_unregister returned");
    }

    /* the same through hms_runtime_free */
    {
        hms_runtime rt2 = new_runtime(HMS_FORMAT_JSON, NULL);
        int waited = 0, busy = 1;
        st.started = st.finished = 0;
        EXPECT_RC("register Slow", hms_service_register(rt2, HMS_FORMAT_JSON,
                                                        (const uint8_t *)slow_desc,
                                                        strlen(slow_desc), 0, slow_handler, &st,
                                                        &svc, &err),
                  HMS_OK, HMS_FORMAT_JSON, &err);
        EXPECT_RC("Sleep with a 50 ms deadline",
                  call_opts(rt2, "test.v1.Slow/Sleep", HMS_FORMAT_JSON, "{}", 2,
                            "{\"deadlineMs\":50}", &resp, &err),
                  HMS_DEADLINE_EXCEEDED, HMS_FORMAT_JSON, &err);
        EXPECT_RC("runtime_free", hms_runtime_free(rt2), HMS_OK, 0, NULL);
        /* The header promises only that running calls "finish on the threads that made
         * them", not that hms_runtime_free waits for an abandoned handler: say so, and
         * wait here, since user_data lives on this stack. */
        pthread_mutex_lock(&st.mu);
        if (st.finished < st.started)
            fprintf(stderr, "note: hms_runtime_free returned while a handler whose deadline "
                            "passed still runs (user_data still in use)\n");
        pthread_mutex_unlock(&st.mu);
        while (busy && waited < 10000) {
            pthread_mutex_lock(&st.mu);
            busy = st.finished < st.started;
            pthread_mutex_unlock(&st.mu);
            if (busy) {
                sleep_ms(10);
                waited += 10;
            }
        }
        if (busy) die("a handler still runs 10 s after hms_runtime_free returned");
    }

    /* a caller-thread-only service runs on the calling thread, deadline or not */
    st.started = st.finished = 0;
    st.remaining = 0;
    st.on_caller_thread = 0;
    EXPECT_RC("register Affine", hms_service_register(rt, HMS_FORMAT_JSON,
                                                      (const uint8_t *)affine_desc,
                                                      strlen(affine_desc),
                                                      HMS_SERVICE_CALLER_THREAD, slow_handler,
                                                      &st, &svc, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    EXPECT_RC("Affine Quick", call(rt, "test.v1.Affine/Quick", HMS_FORMAT_JSON, "{}", 2, &resp,
                                   &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECK(st.on_caller_thread == 1);
    st.on_caller_thread = 0;
    EXPECT_RC("Affine Quick with a deadline",
              call_opts(rt, "test.v1.Affine/Quick", HMS_FORMAT_JSON, "{}", 2,
                        "{\"deadlineMs\":60000}", &resp, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECK(st.on_caller_thread == 1);
    EXPECT_RC("unregister Affine", hms_service_unregister(svc), HMS_OK, 0, NULL);

    /* a handler may unregister its own service */
    memset(&ss, 0, sizeof ss);
    ss.rc = -1;
    EXPECT_RC("register Once", hms_service_register(rt, HMS_FORMAT_JSON,
                                                    (const uint8_t *)self_desc, strlen(self_desc),
                                                    0, self_handler, &ss, &ss.svc, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    EXPECT_RC("Bye", call(rt, "test.v1.Once/Bye", HMS_FORMAT_JSON, "{}", 2, &resp, &err), HMS_OK,
              HMS_FORMAT_JSON, &err);
    CHECKF(ss.rc == HMS_OK, "unregister from inside the handler returned %d", ss.rc);
    EXPECT_RC("Bye again", call(rt, "test.v1.Once/Bye", HMS_FORMAT_JSON, "{}", 2, &resp, &err),
              HMS_NOT_FOUND, HMS_FORMAT_JSON, &err);
    EXPECT_RC("unregister Once again", hms_service_unregister(ss.svc), HMS_INVALID_HANDLE, 0,
              NULL);

    pthread_mutex_destroy(&st.mu);
    hms_buf_free(&resp);
    hms_buf_free(&err);
    EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
}

/* ------------------------------------------------------------------------ */
/* Tests: events                                                            */
/* ------------------------------------------------------------------------ */

static int poll_kind(hms_subscription sub, int32_t timeout, const char *kind, hms_buf *ev,
                     hms_buf *err)
{
    char quoted[96];
    int32_t rc = hms_poll(sub, timeout, ev, err);
    if (rc != HMS_OK) {
        fprintf(stderr, "    poll for %s: %d (%s)\n", kind, rc, code_name(rc));
        return 0;
    }
    snprintf(quoted, sizeof quoted, "\"%s\"", kind);
    if (!buf_has(ev, quoted)) {
        dump_buf_line("event", ev);
        return 0;
    }
    return 1;
}

typedef struct poll_thread_arg {
    hms_subscription sub;
    int32_t rc;
} poll_thread_arg;

static void *blocking_poll(void *p)
{
    poll_thread_arg *a = (poll_thread_arg *)p;
    hms_buf ev = {0};
    a->rc = hms_poll(a->sub, -1, &ev, NULL);
    hms_buf_free(&ev);
    return NULL;
}

typedef struct push_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hms_runtime rt;
    int registered, unregistered, total, echo_ok, echo_bad;
} push_state;

static void push_cb(const uint8_t *event, size_t event_len, void *user_data)
{
    push_state *st = (push_state *)user_data;
    hms_buf r = {0};
    int ok;
    const char *reg = "\"registry.service_registered\"";
    const char *unreg = "\"registry.service_unregistered\"";
    /* callbacks may call back into the library */
    ok = hms_call(st->rt, ECHO, strlen(ECHO), HMS_FORMAT_PROTOBUF, ECHO_PB, sizeof ECHO_PB, NULL,
                  0, &r, NULL) == HMS_OK &&
         buf_eq(&r, ECHO_PB, sizeof ECHO_PB);
    hms_buf_free(&r);
    pthread_mutex_lock(&st->mu);
    st->total++;
    if (find_bytes(event, event_len, reg, strlen(reg))) st->registered++;
    if (find_bytes(event, event_len, unreg, strlen(unreg))) st->unregistered++;
    if (ok) st->echo_ok++;
    else st->echo_bad++;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

/* Waits until *field >= want, up to 30 s (valgrind is slow). */
static int push_wait(push_state *st, const int *field, int want)
{
    struct timespec deadline;
    int ok;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&st->mu);
    while (*field < want) {
        if (pthread_cond_timedwait(&st->cv, &st->mu, &deadline) == ETIMEDOUT) break;
    }
    ok = *field >= want;
    pthread_mutex_unlock(&st->mu);
    return ok;
}

static void test_events(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf ev = {0}, err = {0};
    hms_subscription sub = 0, only_unreg = 0, csub = 0;
    hms_service svc = 0;
    static const char filter[] = "{\"kinds\":[\"registry.service_unregistered\"]}";
    static const uint8_t cbor_kind[] = {0x78, 0x1b}; /* text(27) */
    int i;

    EXPECT_RC("subscribe", hms_subscribe(rt, HMS_FORMAT_JSON, NULL, 0, &sub, &err), HMS_OK,
              HMS_FORMAT_JSON, &err);
    EXPECT_RC("subscribe with a filter",
              hms_subscribe(rt, HMS_FORMAT_JSON, (const uint8_t *)filter, strlen(filter),
                            &only_unreg, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    {
        /* an empty filter matches all, in every format */
        hms_subscription s2 = 0;
        EXPECT_RC("subscribe in cbor, empty filter",
                  hms_subscribe(rt, HMS_FORMAT_CBOR, NULL, 0, &s2, &err), HMS_OK,
                  HMS_FORMAT_CBOR, &err);
        if (s2 != 0) hms_unsubscribe(s2);
    }
    EXPECT_RC("subscribe in cbor", hms_subscribe(rt, HMS_FORMAT_CBOR,
                                                 (const uint8_t *)"\xa0", 1, &csub, &err),
              HMS_OK, HMS_FORMAT_CBOR, &err);
    EXPECT_RC("subscribe with a garbage filter",
              hms_subscribe(rt, HMS_FORMAT_JSON, (const uint8_t *)"{\"kinds\":", 9, &svc, &err),
              HMS_DECODE_ERROR, HMS_FORMAT_JSON, &err);
    EXPECT_RC("subscribe with an unknown format",
              hms_subscribe(rt, 0, NULL, 0, &svc, &err), HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON,
              NULL);
    EXPECT_RC("subscribe with NULL filter and a length",
              hms_subscribe(rt, HMS_FORMAT_JSON, NULL, 3, &svc, &err), HMS_INVALID_ARGUMENT,
              HMS_FORMAT_JSON, &err);
    CHECK(svc == 0);
    EXPECT_RC("poll an empty queue", hms_poll(sub, 0, &ev, &err), HMS_DEADLINE_EXCEEDED,
              HMS_FORMAT_JSON, &err);
    EXPECT_RC("poll an empty queue, 20 ms", hms_poll(sub, 20, &ev, &err), HMS_DEADLINE_EXCEEDED,
              HMS_FORMAT_JSON, &err);

    EXPECT_RC("register", hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)NOOP_DESC,
                                               strlen(NOOP_DESC), 0, noop_handler, NULL, &svc,
                                               &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    EXPECT_RC("unregister", hms_service_unregister(svc), HMS_OK, 0, NULL);

    CHECKF(poll_kind(sub, 5000, "registry.service_registered", &ev, &err),
           "first event is not registry.service_registered");
    CHECKF(buf_has(&ev, "test.v1.Noop"), "the event does not name the service");
    CHECKF(poll_kind(sub, 5000, "registry.service_unregistered", &ev, &err),
           "second event is not registry.service_unregistered");
    CHECKF(buf_has(&ev, "test.v1.Noop"), "the event does not name the service");
    EXPECT_RC("poll the drained queue", hms_poll(sub, 0, &ev, &err), HMS_DEADLINE_EXCEEDED,
              HMS_FORMAT_JSON, &err);
    CHECKF(poll_kind(only_unreg, 5000, "registry.service_unregistered", &ev, &err),
           "filtered subscription: first event is not registry.service_unregistered");
    EXPECT_RC("filtered subscription has nothing else", hms_poll(only_unreg, 0, &ev, &err),
              HMS_DEADLINE_EXCEEDED, HMS_FORMAT_JSON, &err);
    EXPECT_RC("poll cbor", hms_poll(csub, 5000, &ev, &err), HMS_OK, HMS_FORMAT_CBOR, &err);
    CHECKF(find_bytes(ev.data, ev.len, cbor_kind, 2) && buf_has(&ev, "registry.service_registered"),
           "cbor event lacks the kind as a CBOR text string");
    EXPECT_RC("poll cbor", hms_poll(csub, 5000, &ev, &err), HMS_OK, HMS_FORMAT_CBOR, &err);
    /* hms_poll has no format argument: its Status encoding is not checked here */
    EXPECT_RC("poll cbor drained", hms_poll(csub, 0, &ev, &err), HMS_DEADLINE_EXCEEDED, 0, NULL);

    /* a blocked poller is woken by unsubscribe with HMS_CANCELLED */
    {
        poll_thread_arg a;
        pthread_t th;
        a.sub = only_unreg;
        a.rc = -1;
        pthread_create(&th, NULL, blocking_poll, &a);
        sleep_ms(300);
        EXPECT_RC("unsubscribe while polled", hms_unsubscribe(only_unreg), HMS_OK, 0, NULL);
        pthread_join(th, NULL);
        EXPECT_RC2("blocked poll after unsubscribe", a.rc, HMS_CANCELLED, HMS_INVALID_HANDLE, 0,
                   NULL);
        if (a.rc == HMS_INVALID_HANDLE)
            fprintf(stderr, "note: the poller had not started before unsubscribe\n");
    }
    EXPECT_RC("unsubscribe", hms_unsubscribe(csub), HMS_OK, 0, NULL);

    /* push: a callback on a library thread, which may call back in */
    {
        push_state ps;
        hms_subscription psub = 0;
        int total;
        memset(&ps, 0, sizeof ps);
        pthread_mutex_init(&ps.mu, NULL);
        pthread_cond_init(&ps.cv, NULL);
        ps.rt = rt;
        EXPECT_RC("subscribe_push NULL callback",
                  hms_subscribe_push(rt, HMS_FORMAT_JSON, NULL, 0, NULL, &ps, &psub, &err),
                  HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
        CHECK(psub == 0);
        EXPECT_RC("subscribe_push",
                  hms_subscribe_push(rt, HMS_FORMAT_JSON, NULL, 0, push_cb, &ps, &psub, &err),
                  HMS_OK, HMS_FORMAT_JSON, &err);
        EXPECT_RC("poll a push subscription", hms_poll(psub, 0, &ev, &err),
                  HMS_FAILED_PRECONDITION, HMS_FORMAT_JSON, &err);
        for (i = 0; i < 3; i++) {
            EXPECT_RC("register", hms_service_register(rt, HMS_FORMAT_JSON,
                                                       (const uint8_t *)NOOP_DESC,
                                                       strlen(NOOP_DESC), 0, noop_handler, NULL,
                                                       &svc, &err),
                      HMS_OK, HMS_FORMAT_JSON, &err);
            EXPECT_RC("unregister", hms_service_unregister(svc), HMS_OK, 0, NULL);
        }
        CHECKF(push_wait(&ps, &ps.registered, 3), "push: %d registered events", ps.registered);
        CHECKF(push_wait(&ps, &ps.unregistered, 3), "push: %d unregistered events",
               ps.unregistered);
        EXPECT_RC("unsubscribe push", hms_unsubscribe(psub), HMS_OK, 0, NULL);
        pthread_mutex_lock(&ps.mu);
        total = ps.total;
        CHECKF(ps.echo_bad == 0 && ps.echo_ok == ps.total,
               "push: Echo from inside the callback: %d ok, %d bad", ps.echo_ok, ps.echo_bad);
        pthread_mutex_unlock(&ps.mu);
        /* after unsubscribe returns, the callback never runs again */
        EXPECT_RC("register", hms_service_register(rt, HMS_FORMAT_JSON,
                                                   (const uint8_t *)NOOP_DESC, strlen(NOOP_DESC),
                                                   0, noop_handler, NULL, &svc, &err),
                  HMS_OK, HMS_FORMAT_JSON, &err);
        EXPECT_RC("unregister", hms_service_unregister(svc), HMS_OK, 0, NULL);
        sleep_ms(100);
        pthread_mutex_lock(&ps.mu);
        CHECKF(ps.total == total, "push callback ran after unsubscribe (%d > %d)", ps.total,
               total);
        pthread_mutex_unlock(&ps.mu);
        EXPECT_RC("unsubscribe push twice", hms_unsubscribe(psub), HMS_INVALID_HANDLE, 0, NULL);
        pthread_cond_destroy(&ps.cv);
        pthread_mutex_destroy(&ps.mu);
    }
    /* drain what `sub` collected meanwhile, then close */
    while (hms_poll(sub, 0, &ev, NULL) == HMS_OK) {
    }
    EXPECT_RC("unsubscribe", hms_unsubscribe(sub), HMS_OK, 0, NULL);

    /* bounded queues: a slow subscriber gets one "lagged" event */
    {
        hms_runtime small = new_runtime(HMS_FORMAT_JSON, "{\"eventQueueCapacity\":2}");
        int lagged = 0, polled = 0;
        int32_t rc;
        EXPECT_RC("subscribe", hms_subscribe(small, HMS_FORMAT_JSON, NULL, 0, &sub, &err),
                  HMS_OK, HMS_FORMAT_JSON, &err);
        for (i = 0; i < 5; i++) {
            hms_service_register(small, HMS_FORMAT_JSON, (const uint8_t *)NOOP_DESC,
                                 strlen(NOOP_DESC), 0, noop_handler, NULL, &svc, NULL);
            hms_service_unregister(svc);
        }
        while ((rc = hms_poll(sub, 0, &ev, &err)) == HMS_OK && polled < 20) {
            polled++;
            if (buf_has(&ev, "\"lagged\"")) lagged++;
        }
        EXPECT_RC("lagged queue drained", rc, HMS_DEADLINE_EXCEEDED, HMS_FORMAT_JSON, &err);
        CHECKF(lagged == 1, "%d lagged events among %d polled (want 1)", lagged, polled);
        CHECKF(polled <= 4, "%d events polled from a queue of capacity 2", polled);
        /* freeing the runtime wakes a blocked poller with HMS_CANCELLED */
        {
            poll_thread_arg a;
            pthread_t th;
            a.sub = sub;
            a.rc = -1;
            pthread_create(&th, NULL, blocking_poll, &a);
            sleep_ms(300);
            EXPECT_RC("runtime_free while polled", hms_runtime_free(small), HMS_OK, 0, NULL);
            pthread_join(th, NULL);
            EXPECT_RC2("blocked poll after runtime_free", a.rc, HMS_CANCELLED,
                       HMS_INVALID_HANDLE, 0, NULL);
            if (a.rc == HMS_INVALID_HANDLE)
                fprintf(stderr, "note: the poller had not started before runtime_free\n");
        }
        EXPECT_RC("unsubscribe after runtime_free", hms_unsubscribe(sub), HMS_INVALID_HANDLE, 0,
                  NULL);
    }
    hms_buf_free(&ev);
    hms_buf_free(&err);
    EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
}

/* ------------------------------------------------------------------------ */
/* Tests: conversion                                                        */
/* ------------------------------------------------------------------------ */

static int32_t convert(const char *type, int32_t from, const void *p, size_t n, int32_t to,
                       hms_buf *out, hms_buf *err)
{
    return hms_convert(type, type ? strlen(type) : 0, from, (const uint8_t *)p, n, to, out, err);
}

static void test_convert(void)
{
    static const char T[] = "hms.sys.v1.EchoRequest";
    hms_buf a = {0}, b = {0}, c = {0}, err = {0};
    EXPECT_RC("json -> cbor", convert(T, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON),
                                      HMS_FORMAT_CBOR, &a, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECKF(buf_eq(&a, ECHO_CBOR, sizeof ECHO_CBOR), "json -> cbor bytes");
    EXPECT_RC("cbor -> protobuf",
              convert(T, HMS_FORMAT_CBOR, a.data, a.len, HMS_FORMAT_PROTOBUF, &b, &err), HMS_OK,
              HMS_FORMAT_JSON, &err);
    CHECKF(buf_eq(&b, ECHO_PB, sizeof ECHO_PB), "cbor -> protobuf bytes");
    EXPECT_RC("protobuf -> json",
              convert(T, HMS_FORMAT_PROTOBUF, b.data, b.len, HMS_FORMAT_JSON, &c, &err), HMS_OK,
              HMS_FORMAT_JSON, &err);
    CHECKF(json_eq(&c, ECHO_JSON), "protobuf -> json text");
    /* same format in and out, and output buffer reuse */
    EXPECT_RC("json -> json", convert(T, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON),
                                      HMS_FORMAT_JSON, &c, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECK(json_eq(&c, ECHO_JSON));
    /* enum names and numbers both decode */
    EXPECT_RC("enum by name", convert("hms.sys.v1.HealthResponse", HMS_FORMAT_JSON,
                                      "{\"status\":\"SERVING\"}", 20, HMS_FORMAT_PROTOBUF, &a,
                                      &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECK(buf_eq(&a, "\x08\x01", 2));
    EXPECT_RC("enum by number", convert("hms.sys.v1.HealthResponse", HMS_FORMAT_JSON,
                                        "{\"status\":1}", 12, HMS_FORMAT_PROTOBUF, &a, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECK(buf_eq(&a, "\x08\x01", 2));
    /* structural conversion without a type */
    {
        static const uint8_t want[] = {0xa1, 0x61, 'x', 0x82, 0x01, 0x02};
        EXPECT_RC("untyped json -> cbor", convert("", HMS_FORMAT_JSON, "{\"x\":[1,2]}", 11,
                                                  HMS_FORMAT_CBOR, &a, &err),
                  HMS_OK, HMS_FORMAT_JSON, &err);
        CHECK(buf_eq(&a, want, sizeof want));
    }
    /* errors, Status in JSON */
    EXPECT_RC("unknown type", convert("no.such.Type", HMS_FORMAT_JSON, "{}", 2, HMS_FORMAT_CBOR,
                                      &a, &err),
              HMS_NOT_FOUND, HMS_FORMAT_JSON, &err);
    EXPECT_RC("protobuf without a type",
              convert("", HMS_FORMAT_PROTOBUF, ECHO_PB, sizeof ECHO_PB, HMS_FORMAT_JSON, &a,
                      &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("unknown from format", convert(T, 0, "{}", 2, HMS_FORMAT_JSON, &a, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("unknown to format", convert(T, HMS_FORMAT_JSON, "{}", 2, 4, &a, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("garbage", convert(T, HMS_FORMAT_CBOR, "\xff", 1, HMS_FORMAT_JSON, &a, &err),
              HMS_DECODE_ERROR, HMS_FORMAT_JSON, &err);
    EXPECT_RC("NULL data with a length", convert(T, HMS_FORMAT_JSON, NULL, 4, HMS_FORMAT_CBOR,
                                                 &a, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("NULL type with a length",
              hms_convert(NULL, 5, HMS_FORMAT_JSON, (const uint8_t *)"{}", 2, HMS_FORMAT_CBOR, &a,
                          &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("type name not UTF-8",
              convert("hms.sys.v1.\xff", HMS_FORMAT_JSON, "{}", 2, HMS_FORMAT_CBOR, &a, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("NULL out", convert(T, HMS_FORMAT_JSON, "{}", 2, HMS_FORMAT_CBOR, NULL, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    {
        bytes deep = {0};
        b_fill(&deep, 0x81, NEST);
        b_byte(&deep, 0);
        EXPECT_RC2("untyped 100000 levels",
                   convert("", HMS_FORMAT_CBOR, deep.p, deep.n, HMS_FORMAT_JSON, &a, &err),
                   HMS_DECODE_ERROR, HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_JSON, &err);
        b_free(&deep);
    }
    /* schemas: garbage is not a FileDescriptorSet */
    EXPECT_RC("schema_register garbage",
              hms_schema_register((const uint8_t *)"\xff\xff\xff", 3, &err), HMS_DECODE_ERROR,
              HMS_FORMAT_JSON, &err);
    hms_buf_free(&a);
    hms_buf_free(&b);
    hms_buf_free(&c);
    hms_buf_free(&err);
}

/* ------------------------------------------------------------------------ */
/* Tests: threads                                                           */
/* ------------------------------------------------------------------------ */

#define THREADS 8
#define CALLS_PER_THREAD 2000

typedef struct worker_arg {
    hms_runtime rt;
    int index;
    int bad;
    int32_t first_rc;
} worker_arg;

static void *echo_worker(void *p)
{
    worker_arg *a = (worker_arg *)p;
    hms_buf resp = {0}, err = {0};
    bytes req = {0};
    char text[64];
    int i;
    for (i = 0; i < CALLS_PER_THREAD; i++) {
        int32_t f = FORMATS[(a->index + i) % 3], rc;
        snprintf(text, sizeof text, "thread %d call %d", a->index, i);
        if (i % 50 == 49) {
            /* a host service now and then, concurrently */
            char add[64], want[32];
            int n = snprintf(add, sizeof add, "{\"a\":%d,\"b\":%d}", i, a->index);
            rc = call(a->rt, "test.v1.Calc/Add", HMS_FORMAT_JSON, add, (size_t)n, &resp, &err);
            snprintf(want, sizeof want, "{\"sum\":%d}", i + a->index);
            if (rc != HMS_OK || !json_eq(&resp, want)) {
                if (!a->bad) a->first_rc = rc;
                a->bad++;
            }
            continue;
        }
        echo_text_request(&req, f, text);
        rc = call(a->rt, ECHO, f, req.p, req.n, &resp, &err);
        if (rc != HMS_OK || !buf_eq(&resp, req.p, req.n)) {
            if (!a->bad) a->first_rc = rc;
            a->bad++;
        }
    }
    b_free(&req);
    hms_buf_free(&resp);
    hms_buf_free(&err);
    return NULL;
}

static void test_threads(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    pthread_t th[THREADS];
    worker_arg args[THREADS];
    hms_service svc = 0;
    calc_state st;
    int i;
    calc_init(&st, rt);
    EXPECT_RC("register Calc", hms_service_register(rt, HMS_FORMAT_JSON,
                                                    (const uint8_t *)CALC_DESC, strlen(CALC_DESC),
                                                    0, calc_handler, &st, &svc, NULL),
              HMS_OK, 0, NULL);
    for (i = 0; i < THREADS; i++) {
        args[i].rt = rt;
        args[i].index = i;
        args[i].bad = 0;
        args[i].first_rc = 0;
        CHECK(pthread_create(&th[i], NULL, echo_worker, &args[i]) == 0);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECKF(args[i].bad == 0, "thread %d: %d of %d calls wrong (first rc %d)", i, args[i].bad,
               CALLS_PER_THREAD, args[i].first_rc);
    }
    CHECKF(st.problems == 0, "handler problems: %s", st.problem);
    EXPECT_RC("unregister", hms_service_unregister(svc), HMS_OK, 0, NULL);
    pthread_mutex_destroy(&st.mu);
    EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
}

/* ------------------------------------------------------------------------ */
/* ABI 1.1: method handles and batches                                      */
/* ------------------------------------------------------------------------ */

static void put_word(bytes *b, uint64_t v)
{
    uint8_t le[8];
    int i;
    for (i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
    b_put(b, le, 8);
}

static uint64_t word_at(const hms_buf *b, size_t index)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = (v << 8) | b->data[index * 8 + (size_t)i];
    return v;
}

/* A batch frame of n calls: count, method[n], end[n], payloads. */
static void batch_frame(bytes *frame, size_t n, const hms_method *methods,
                        const uint8_t *const *reqs, const size_t *lens)
{
    size_t i;
    uint64_t end = 0;
    put_word(frame, n);
    for (i = 0; i < n; i++) put_word(frame, methods[i]);
    for (i = 0; i < n; i++) {
        end += lens[i];
        put_word(frame, end);
    }
    for (i = 0; i < n; i++) b_put(frame, reqs[i], lens[i]);
}

static void test_fast_paths(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf by_name = {0}, by_handle = {0}, err = {0}, results = {0};
    hms_method methods[3] = {0, 0, 0};
    hms_method m = 0, stale = 0;
    int f;

    for (f = 0; f < 3; f++) {
        const uint8_t *req;
        size_t n;
        int32_t fmt = FORMATS[f];
        echo_request(fmt, &req, &n);
        EXPECT_RC("resolve", hms_method_resolve(rt, ECHO, strlen(ECHO), fmt, &methods[f], &err),
                  HMS_OK, fmt, &err);
        CHECK(methods[f] != 0);
        EXPECT_RC("call by name", call(rt, ECHO, fmt, req, n, &by_name, &err), HMS_OK, fmt, &err);
        EXPECT_RC("call by handle", hms_method_call(methods[f], req, n, &by_handle, &err), HMS_OK,
                  fmt, &err);
        CHECKF(buf_eq(&by_handle, by_name.data, by_name.len), "%s: same answer both ways",
               FORMAT_NAMES[fmt]);
        /* A bad payload: its status comes in the handle's format. */
        EXPECT_RC("garbage", hms_method_call(methods[f], (const uint8_t *)"\xff", 1, &by_handle, &err),
                  HMS_DECODE_ERROR, fmt, &err);
    }

    /* Resolution errors. */
    EXPECT_RC("unknown method", hms_method_resolve(rt, "x.y/Z", 5, HMS_FORMAT_JSON, &m, &err),
              HMS_NOT_FOUND, HMS_FORMAT_JSON, &err);
    EXPECT_RC("empty name", hms_method_resolve(rt, "", 0, HMS_FORMAT_JSON, &m, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("NULL name with a length", hms_method_resolve(rt, NULL, 3, HMS_FORMAT_JSON, &m, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("bad format", hms_method_resolve(rt, ECHO, strlen(ECHO), 7, &m, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("NULL out", hms_method_resolve(rt, ECHO, strlen(ECHO), HMS_FORMAT_JSON, NULL, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("bad runtime", hms_method_resolve(0, ECHO, strlen(ECHO), HMS_FORMAT_JSON, &m, &err),
              HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
    CHECK(m == 0);

    /* Handles: NULL response, wrong kind, made up, freed twice. */
    EXPECT_RC("NULL response", hms_method_call(methods[0], NULL, 0, NULL, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_PROTOBUF, &err);
    EXPECT_RC("runtime as method", hms_method_call(rt, NULL, 0, &by_handle, &err),
              HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
    EXPECT_RC("made-up method", hms_method_call(0x0400000100001234ull, NULL, 0, &by_handle, &err),
              HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
    EXPECT_RC("resolve stale", hms_method_resolve(rt, ECHO, strlen(ECHO), HMS_FORMAT_JSON, &stale,
                                                  &err),
              HMS_OK, 0, &err);
    EXPECT_RC("free", hms_method_free(stale), HMS_OK, 0, NULL);
    EXPECT_RC("second free", hms_method_free(stale), HMS_INVALID_HANDLE, 0, NULL);
    EXPECT_RC("freed method", hms_method_call(stale, NULL, 0, &by_handle, &err),
              HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);

    /* A batch: two good calls around a dead handle and a garbage request. */
    {
        bytes frame = {0};
        const uint8_t *reqs[4];
        size_t lens[4];
        hms_method batch_methods[4];
        size_t header = 8 * (1 + 2 * 4), start;
        echo_request(HMS_FORMAT_PROTOBUF, &reqs[0], &lens[0]);
        reqs[1] = (const uint8_t *)"";
        lens[1] = 0;
        reqs[2] = (const uint8_t *)"\xff";
        lens[2] = 1;
        echo_request(HMS_FORMAT_JSON, &reqs[3], &lens[3]);
        batch_methods[0] = methods[0];
        batch_methods[1] = stale;
        batch_methods[2] = methods[1];
        batch_methods[3] = methods[2];
        batch_frame(&frame, 4, batch_methods, reqs, lens);
        EXPECT_RC("batch", hms_call_batch(frame.p, frame.n, &results, &err), HMS_OK, 0, &err);
        CHECK(results.len > header && word_at(&results, 0) == 4);
        CHECK(word_at(&results, 1) == HMS_OK);
        CHECK(word_at(&results, 2) == HMS_INVALID_HANDLE);
        CHECK(word_at(&results, 3) == HMS_DECODE_ERROR);
        CHECK(word_at(&results, 4) == HMS_OK);
        CHECK(word_at(&results, 8) == results.len - header);
        start = header + word_at(&results, 7);
        CHECKF(find_bytes(results.data + start, results.len - start, "\"hi\"", 4) != NULL,
               "the last call answered after the failures");
        /* The status of call 2 (CBOR) names the method. */
        CHECK(find_bytes(results.data + header + word_at(&results, 6),
                         word_at(&results, 7) - word_at(&results, 6), "hms.sys.v1", 10) != NULL);

        /* Malformed frames: refused, nothing written. */
        {
            size_t before = results.len;
            EXPECT_RC("cut frame", hms_call_batch(frame.p, frame.n - 1, &results, &err),
                      HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
            EXPECT_RC("NULL frame", hms_call_batch(NULL, 8, &results, &err),
                      HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
            EXPECT_RC("empty frame", hms_call_batch(NULL, 0, &results, &err),
                      HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
            EXPECT_RC("NULL results", hms_call_batch(frame.p, frame.n, NULL, &err),
                      HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
            frame.p[0] = 0xff;
            frame.p[7] = 0xff;
            EXPECT_RC("hostile count", hms_call_batch(frame.p, frame.n, &results, &err),
                      HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_JSON, &err);
            CHECK(results.len == before);
        }
        b_free(&frame);
    }
    {
        bytes empty = {0};
        put_word(&empty, 0);
        EXPECT_RC("empty batch", hms_call_batch(empty.p, empty.n, &results, &err), HMS_OK, 0,
                  &err);
        CHECK(results.len == 8 && word_at(&results, 0) == 0);
        b_free(&empty);
    }

    /* Freeing the runtime invalidates its method handles. */
    EXPECT_RC("runtime_free", hms_runtime_free(rt), HMS_OK, 0, NULL);
    EXPECT_RC("method after runtime_free", hms_method_call(methods[0], NULL, 0, &by_handle, &err),
              HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
    EXPECT_RC("free after runtime_free", hms_method_free(methods[1]), HMS_INVALID_HANDLE, 0, NULL);
    hms_buf_free(&by_name);
    hms_buf_free(&by_handle);
    hms_buf_free(&results);
    hms_buf_free(&err);
}

/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Tests: hardening (no input crashes, hangs or half-applies a call)        */
/* ------------------------------------------------------------------------ */

/* A door that handlers and callbacks wait at until the test opens it, so a
 * test can hold them "hung" for as long as it needs. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    int waiting;
    int passed;
} gate;

static void gate_init(gate *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

static void gate_pass(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->waiting++;
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    g->waiting--;
    g->passed++;
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static int gate_count(gate *g, int passed)
{
    int n;
    pthread_mutex_lock(&g->mu);
    n = passed ? g->passed : g->waiting;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* Waits (at most 30 s, polling) until `n` are waiting or have passed. */
static int gate_await(gate *g, int passed, int n)
{
    int waited;
    for (waited = 0; waited < 30000; waited += 5) {
        if (gate_count(g, passed) >= n) return 1;
        sleep_ms(5);
    }
    return 0;
}

static void gate_destroy(gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

static void gated_handler(hms_reply *reply, const char *method, size_t method_len, int32_t format,
                          const uint8_t *request, size_t request_len, void *user_data)
{
    (void)method;
    (void)method_len;
    (void)format;
    (void)request;
    (void)request_len;
    gate_pass((gate *)user_data);
    hms_reply_set(reply, (const uint8_t *)"{}", 2);
}

static void gated_event(const uint8_t *event, size_t event_len, void *user_data)
{
    (void)event;
    (void)event_len;
    gate_pass((gate *)user_data);
}

static const char GATED_DESC[] =
    "{\"name\":\"test.v1.Gated\",\"methods\":[{\"name\":\"Wait\"}]}";

/* The unsigned JSON field `name` of a buffer; proto3 JSON omits zeros. */
static long json_uint(const hms_buf *b, const char *name)
{
    char key[96];
    const uint8_t *at;
    snprintf(key, sizeof key, "\"%s\":", name);
    at = find_bytes(b->data, b->len, key, strlen(key));
    if (at == NULL) return 0;
    at += strlen(key);
    while (at < b->data + b->len && (*at == ' ' || *at == '"')) at++;
    {
        /* the buffer has no NUL terminator: copy the digits out first */
        char digits[24];
        size_t n = 0;
        while (at + n < b->data + b->len && n + 1 < sizeof digits && at[n] >= '0' &&
               at[n] <= '9') {
            digits[n] = (char)at[n];
            n++;
        }
        digits[n] = '\0';
        return strtol(digits, NULL, 10);
    }
}

/* hms.sys.v1.System/Health's count of library threads left in host code. */
static long abandoned_threads(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    long n = -1;
    if (call(rt, "hms.sys.v1.System/Health", HMS_FORMAT_JSON, "{}", 2, &resp, &err) == HMS_OK) {
        n = json_uint(&resp, "abandoned_handler_threads");
    }
    hms_buf_free(&resp);
    hms_buf_free(&err);
    hms_runtime_free(rt);
    return n;
}

static int await_no_abandoned_threads(void)
{
    int waited;
    for (waited = 0; waited < 30000; waited += 10) {
        if (abandoned_threads() == 0) return 1;
        sleep_ms(10);
    }
    return 0;
}

typedef struct recurse_state {
    hms_runtime rt;
    const char *options;
    pthread_mutex_t mu;
    int calls;
} recurse_state;

/* Calls its own method again, forever: the core must end the chain. */
static void recurse_handler(hms_reply *reply, const char *method, size_t method_len,
                            int32_t format, const uint8_t *request, size_t request_len,
                            void *user_data)
{
    recurse_state *st = (recurse_state *)user_data;
    hms_buf resp = {0}, err = {0};
    static const char again[] = "test.v1.Recurse/Again";
    int32_t rc;
    (void)method;
    (void)method_len;
    (void)request;
    (void)request_len;
    pthread_mutex_lock(&st->mu);
    st->calls++;
    pthread_mutex_unlock(&st->mu);
    rc = hms_call(st->rt, again, strlen(again), format, (const uint8_t *)"{}", 2,
                  (const uint8_t *)st->options, strlen(st->options), &resp, &err);
    if (rc == HMS_OK) {
        hms_reply_set(reply, resp.data, resp.len);
    } else {
        hms_reply_error(reply, rc, (const char *)err.data, err.len);
    }
    hms_buf_free(&resp);
    hms_buf_free(&err);
}

static void test_nested_calls_are_bounded(void)
{
    static const char desc[] = "{\"name\":\"test.v1.Recurse\",\"methods\":[{\"name\":\"Again\"}]}";
    static const char *const options[2] = {"{}", "{\"deadlineMs\":600000}"};
    int i;
    for (i = 0; i < 2; i++) {
        hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
        hms_buf resp = {0}, err = {0};
        hms_service svc = 0;
        recurse_state st;
        memset(&st, 0, sizeof st);
        st.rt = rt;
        st.options = options[i];
        pthread_mutex_init(&st.mu, NULL);
        EXPECT_OK("register Recurse",
                  hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)desc, strlen(desc),
                                       HMS_SERVICE_DEFAULT, recurse_handler, &st, &svc, &err),
                  &err);
        /* on the caller's stack (no deadline) and on library threads (deadline) alike */
        EXPECT_RC(i == 0 ? "endless recursion on one stack" : "endless recursion across threads",
                  call_opts(rt, "test.v1.Recurse/Again", HMS_FORMAT_JSON, "{}", 2, options[i],
                            &resp, &err),
                  HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_JSON, &err);
        /* each handler passed on the whole error of its nested call inside its own text:
         * the core keeps a handler's text bounded, so it cannot double per level */
        CHECKF(err.len < 64 * 1024, "the error of 32 nested levels is %zu bytes", err.len);
        CHECKF(st.calls == 32, "handlers ran %d times, expected 32 (the nesting bound)",
               st.calls);
        /* the runtime goes on */
        EXPECT_OK("Echo after the chain was cut",
                  call(rt, ECHO, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON), &resp, &err),
                  &err);
        EXPECT_OK("unregister Recurse", hms_service_unregister(svc), NULL);
        hms_buf_free(&resp);
        hms_buf_free(&err);
        hms_runtime_free(rt);
        pthread_mutex_destroy(&st.mu);
    }
}

typedef struct caller_arg {
    hms_runtime rt;
    const char *method;
    const char *options;
    int32_t rc;
} caller_arg;

static void *caller_thread(void *p)
{
    caller_arg *a = (caller_arg *)p;
    hms_buf resp = {0}, err = {0};
    a->rc = call_opts(a->rt, a->method, HMS_FORMAT_JSON, "{}", 2, a->options, &resp, &err);
    hms_buf_free(&resp);
    hms_buf_free(&err);
    return NULL;
}

static void test_runtime_free_is_bounded(void)
{
    /* a handler hung on a host thread, one hung on a library thread (its
     * deadline passed) and a hung push callback: runtime_free returns anyway */
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, "{\"shutdownTimeoutMs\":200}");
    hms_buf resp = {0}, err = {0};
    hms_service svc = 0;
    hms_subscription sub = 0;
    gate handlers, callbacks;
    caller_arg on_host = {0, "test.v1.Gated/Wait", "{}", -1};
    pthread_t host_thread;
    long abandoned;
    gate_init(&handlers);
    gate_init(&callbacks);
    on_host.rt = rt;
    EXPECT_OK("register Gated",
              hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)GATED_DESC,
                                   strlen(GATED_DESC), HMS_SERVICE_DEFAULT, gated_handler,
                                   &handlers, &svc, &err),
              &err);
    EXPECT_OK("subscribe_push with a callback that hangs",
              hms_subscribe_push(rt, HMS_FORMAT_JSON, NULL, 0, gated_event, &callbacks, &sub,
                                 &err),
              &err);
    if (pthread_create(&host_thread, NULL, caller_thread, &on_host) != 0) die("pthread_create");
    CHECK(gate_await(&handlers, 0, 1));
    EXPECT_RC("a deadline call into the hung handler",
              call_opts(rt, "test.v1.Gated/Wait", HMS_FORMAT_JSON, "{}", 2,
                        "{\"deadlineMs\":20}", &resp, &err),
              HMS_DEADLINE_EXCEEDED, HMS_FORMAT_JSON, &err);
    CHECK(gate_await(&handlers, 0, 2));
    EXPECT_OK("an event for the hung callback",
              call(rt, "hms.agent.v1.AgentService/CreateAgent", HMS_FORMAT_JSON,
                   "{\"agent\":{\"name\":\"a\"}}", 22, &resp, &err),
              &err);
    CHECK(gate_await(&callbacks, 0, 1));

    EXPECT_OK("runtime_free while handlers and a callback hang", hms_runtime_free(rt), NULL);
    CHECKF(gate_count(&handlers, 0) == 2 && gate_count(&callbacks, 0) == 1,
           "runtime_free returned only once the hung handlers did");
    abandoned = abandoned_threads();
    CHECKF(abandoned >= 2, "Health reports %ld abandoned library threads, expected >= 2",
           abandoned);
    EXPECT_RC("the service handle died with the runtime", hms_service_unregister(svc),
              HMS_INVALID_HANDLE, 0, NULL);
    EXPECT_RC("the subscription died with the runtime", hms_unsubscribe(sub), HMS_INVALID_HANDLE,
              0, NULL);

    /* the abandoned ones come back later: nothing is written into freed memory */
    gate_open(&handlers);
    gate_open(&callbacks);
    pthread_join(host_thread, NULL);
    CHECKF(on_host.rc == HMS_OK, "the call on the host thread ended with %d (%s)", on_host.rc,
           code_name(on_host.rc));
    CHECK(gate_await(&handlers, 1, 2));
    CHECK(gate_await(&callbacks, 1, 1));
    CHECKF(await_no_abandoned_threads(), "abandoned threads still counted after they returned");
    hms_buf_free(&resp);
    hms_buf_free(&err);
    gate_destroy(&handlers);
    gate_destroy(&callbacks);
}

static void test_hung_handlers_leave_bounded_threads(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    hms_service svc = 0;
    gate g;
    int i;
    gate_init(&g);
    EXPECT_OK("register Gated",
              hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)GATED_DESC,
                                   strlen(GATED_DESC), HMS_SERVICE_DEFAULT, gated_handler, &g,
                                   &svc, &err),
              &err);
    for (i = 0; i < 8; i++) {
        EXPECT_RC("a deadline call into a hung handler",
                  call_opts(rt, "test.v1.Gated/Wait", HMS_FORMAT_JSON, "{}", 2,
                            "{\"deadlineMs\":10}", &resp, &err),
                  HMS_DEADLINE_EXCEEDED, HMS_FORMAT_JSON, &err);
    }
    EXPECT_RC("the ninth is refused: 8 threads of this service are stuck already",
              call_opts(rt, "test.v1.Gated/Wait", HMS_FORMAT_JSON, "{}", 2,
                        "{\"deadlineMs\":10}", &resp, &err),
              HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_JSON, &err);
    CHECKF(buf_has(&err, "must return first"), "the refusal says why");
    CHECK(abandoned_threads() >= 8);
    gate_open(&g);
    CHECK(gate_await(&g, 1, 8));
    CHECKF(await_no_abandoned_threads(), "abandoned threads still counted after they returned");
    EXPECT_OK("deadline calls work again once the handlers returned",
              call_opts(rt, "test.v1.Gated/Wait", HMS_FORMAT_JSON, "{}", 2,
                        "{\"deadlineMs\":60000}", &resp, &err),
              &err);
    EXPECT_OK("unregister Gated", hms_service_unregister(svc), NULL);
    hms_buf_free(&resp);
    hms_buf_free(&err);
    hms_runtime_free(rt);
    gate_destroy(&g);
}

#define RACE_THREADS 3
#define RACE_HANDLES 400

typedef struct race_arg {
    hms_runtime rt;
    int index;
    uint64_t subs[RACE_HANDLES];
    uint64_t svcs[RACE_HANDLES];
    int nsubs;
    int nsvcs;
} race_arg;

static void *race_thread(void *p)
{
    race_arg *a = (race_arg *)p;
    int i;
    for (i = 0; i < RACE_HANDLES; i++) {
        char desc[128];
        hms_subscription sub = 0;
        hms_service svc = 0;
        int32_t rc1 = hms_subscribe(a->rt, HMS_FORMAT_JSON, NULL, 0, &sub, NULL);
        int32_t rc2;
        snprintf(desc, sizeof desc,
                 "{\"name\":\"race.v1.S%dx%d\",\"methods\":[{\"name\":\"Wait\"}]}", a->index, i);
        rc2 = hms_service_register(a->rt, HMS_FORMAT_JSON, (const uint8_t *)desc, strlen(desc),
                                   HMS_SERVICE_DEFAULT, noop_handler, NULL, &svc, NULL);
        if (rc1 == HMS_OK) a->subs[a->nsubs++] = sub;
        if (rc2 == HMS_OK) a->svcs[a->nsvcs++] = svc;
        if (rc1 != HMS_OK && rc2 != HMS_OK) break;
    }
    return NULL;
}

static void test_handles_never_outlive_their_runtime(void)
{
    int round, t, i;
    for (round = 0; round < 5; round++) {
        hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
        race_arg args[RACE_THREADS];
        pthread_t threads[RACE_THREADS];
        hms_buf ev = {0};
        for (t = 0; t < RACE_THREADS; t++) {
            memset(&args[t], 0, sizeof args[t]);
            args[t].rt = rt;
            args[t].index = t;
            if (pthread_create(&threads[t], NULL, race_thread, &args[t]) != 0) {
                die("pthread_create");
            }
        }
        sleep_ms(2 + round * 3);
        EXPECT_OK("runtime_free while handles are being made", hms_runtime_free(rt), NULL);
        for (t = 0; t < RACE_THREADS; t++) pthread_join(threads[t], NULL);
        for (t = 0; t < RACE_THREADS; t++) {
            for (i = 0; i < args[t].nsubs; i++) {
                int32_t rc = hms_poll(args[t].subs[i], 0, &ev, NULL);
                CHECKF(rc == HMS_INVALID_HANDLE,
                       "a subscription made as its runtime was freed polls %d (%s)", rc,
                       code_name(rc));
                if (rc != HMS_INVALID_HANDLE) break;
            }
            for (i = 0; i < args[t].nsvcs; i++) {
                int32_t rc = hms_service_unregister(args[t].svcs[i]);
                CHECKF(rc == HMS_INVALID_HANDLE,
                       "a service registered as its runtime was freed unregisters %d (%s)", rc,
                       code_name(rc));
                if (rc != HMS_INVALID_HANDLE) break;
            }
        }
        hms_buf_free(&ev);
    }
}

static void test_failed_calls_change_nothing(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, "{\"maxMessageBytes\":1024}");
    hms_buf resp = {0}, err = {0}, ev = {0};
    hms_subscription sub = 0;
    bytes req = {0};
    char name[901];
    int i, seen = 0, pages = 0;
    char token[512] = "";
    EXPECT_OK("subscribe", hms_subscribe(rt, HMS_FORMAT_JSON, NULL, 0, &sub, &err), &err);

    /* a request under the limit whose answer is over it: nothing is stored */
    memset(name, 'n', 900);
    name[900] = '\0';
    b_str(&req, "{\"agent\":{\"name\":\"");
    b_str(&req, name);
    b_str(&req, "\"}}");
    CHECK(req.n < 1024);
    EXPECT_OK("Echo fills the response buffer",
              call(rt, ECHO, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON), &resp, &err), &err);
    {
        /* the answer was written, then refused: the buffer must not show it */
        const uint8_t *data = resp.data;
        size_t len = resp.len, cap = resp.cap;
        EXPECT_RC("CreateAgent whose answer is over the limit",
                  call(rt, "hms.agent.v1.AgentService/CreateAgent", HMS_FORMAT_JSON, req.p,
                       req.n, &resp, &err),
                  HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_JSON, &err);
        CHECKF(resp.data == data && resp.len == len && resp.cap == cap &&
                   json_eq(&resp, ECHO_JSON),
               "a failed call changed the response buffer");
    }
    EXPECT_OK("ListAgents", call(rt, "hms.agent.v1.AgentService/ListAgents", HMS_FORMAT_JSON,
                                 "{}", 2, &resp, &err),
              &err);
    CHECKF(json_eq(&resp, "{}"), "the refused agent was stored anyway");
    EXPECT_RC("no event for the refused agent", hms_poll(sub, 0, &ev, &err),
              HMS_DEADLINE_EXCEEDED, HMS_FORMAT_JSON, &err);

    /* records that fit one by one but not all in one page: pages split */
    memset(name, 'm', 250);
    name[250] = '\0';
    for (i = 0; i < 5; i++) {
        req.n = 0;
        b_str(&req, "{\"agent\":{\"name\":\"");
        b_str(&req, name);
        b_str(&req, "\"}}");
        EXPECT_OK("CreateAgent of 250 bytes",
                  call(rt, "hms.agent.v1.AgentService/CreateAgent", HMS_FORMAT_JSON, req.p,
                       req.n, &resp, &err),
                  &err);
    }
    do {
        const uint8_t *at, *end;
        req.n = 0;
        b_str(&req, "{\"pageToken\":\"");
        b_str(&req, token);
        b_str(&req, "\"}");
        EXPECT_OK("ListAgents page", call(rt, "hms.agent.v1.AgentService/ListAgents",
                                          HMS_FORMAT_JSON, req.p, req.n, &resp, &err),
                  &err);
        if (resp.data == NULL) break;
        for (at = resp.data; (at = find_bytes(at, resp.len - (size_t)(at - resp.data), name,
                                              250)) != NULL;
             at += 250) {
            seen++;
        }
        token[0] = '\0';
        at = find_bytes(resp.data, resp.len, "\"next_page_token\":\"", 19);
        if (at != NULL) {
            at += 19;
            end = at;
            while (end < resp.data + resp.len && *end != '"') end++;
            if ((size_t)(end - at) < sizeof token) {
                memcpy(token, at, (size_t)(end - at));
                token[end - at] = '\0';
            }
        }
        pages++;
    } while (token[0] != '\0' && pages < 20);
    CHECKF(seen == 5, "listed %d of 5 agents", seen);
    CHECKF(pages > 1, "5 agents of 250 bytes fit one page of 1024 bytes?");
    hms_unsubscribe(sub);
    free(req.p);
    hms_buf_free(&resp);
    hms_buf_free(&err);
    hms_buf_free(&ev);
    hms_runtime_free(rt);
}

typedef struct sleep_hook_state {
    int calls;
} sleep_hook_state;

static void sleepy_hook(hms_reply *reply, const char *method, size_t method_len, int32_t format,
                        const uint8_t *request, size_t request_len, void *user_data)
{
    (void)method;
    (void)method_len;
    (void)request;
    (void)request_len;
    ((sleep_hook_state *)user_data)->calls++;
    sleep_ms(300);
    hms_reply_set(reply, (const uint8_t *)(format == HMS_FORMAT_CBOR ? "\xa0" : "{}"),
                  format == HMS_FORMAT_CBOR ? 1 : 2);
}

static void test_builtin_deadlines(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    hms_service svc = 0;
    sleep_hook_state hook = {0};
    static const char desc[] = "{\"name\":\"test.v1.Sleepy\",\"methods\":[{\"name\":\"Check\"}]}";
    static const char register_hook[] =
        "{\"method\":\"test.v1.Sleepy/Check\",\"blocking\":true,\"timeoutMs\":30000}";
    char id[64] = "", req[256];
    const uint8_t *at;
    EXPECT_OK("register Sleepy",
              hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)desc, strlen(desc),
                                   HMS_SERVICE_DEFAULT, sleepy_hook, &hook, &svc, &err),
              &err);
    EXPECT_OK("RegisterHook", call(rt, "hms.agent.lifecycle.v1.LifecycleService/RegisterHook",
                                   HMS_FORMAT_JSON, register_hook, strlen(register_hook), &resp,
                                   &err),
              &err);
    EXPECT_OK("CreateAgent", call(rt, "hms.agent.v1.AgentService/CreateAgent", HMS_FORMAT_JSON,
                                  "{\"agent\":{\"name\":\"a\"}}", 22, &resp, &err),
              &err);
    at = find_bytes(resp.data, resp.len, "\"id\":\"", 6);
    CHECK(at != NULL);
    if (at != NULL) {
        memcpy(id, at + 6, 36);
        id[36] = '\0';
    }
    snprintf(req, sizeof req, "{\"agentId\":\"%s\",\"targetState\":\"ACTIVE\"}", id);
    /* the hook takes 300 ms; the call's deadline is 50 ms: nothing changes */
    EXPECT_RC("Transition past its deadline",
              call_opts(rt, "hms.agent.lifecycle.v1.LifecycleService/Transition",
                        HMS_FORMAT_JSON, req, strlen(req), "{\"deadlineMs\":50}", &resp, &err),
              HMS_DEADLINE_EXCEEDED, HMS_FORMAT_JSON, &err);
    CHECK(hook.calls == 1);
    snprintf(req, sizeof req, "{\"agentId\":\"%s\"}", id);
    EXPECT_OK("GetState", call(rt, "hms.agent.lifecycle.v1.LifecycleService/GetState",
                               HMS_FORMAT_JSON, req, strlen(req), &resp, &err),
              &err);
    CHECKF(buf_has(&resp, "INITIALIZED") && !buf_has(&resp, "\"ACTIVE\""),
           "a transition that missed its deadline changed the state");
    /* without a deadline it goes through */
    snprintf(req, sizeof req, "{\"agentId\":\"%s\",\"targetState\":\"ACTIVE\"}", id);
    EXPECT_OK("Transition without a deadline",
              call(rt, "hms.agent.lifecycle.v1.LifecycleService/Transition", HMS_FORMAT_JSON, req,
                   strlen(req), &resp, &err),
              &err);
    /* a control character in a method name is a bad argument, not an unknown method */
    {
        static const char nul_name[] = "hms.sys.v1.System/Echo\0x";
        EXPECT_RC("a NUL inside the method name",
                  hms_call(rt, nul_name, sizeof nul_name - 1, HMS_FORMAT_JSON,
                           (const uint8_t *)"{}", 2, NULL, 0, &resp, &err),
                  HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    }
    EXPECT_OK("unregister Sleepy", hms_service_unregister(svc), NULL);
    hms_buf_free(&resp);
    hms_buf_free(&err);
    hms_runtime_free(rt);
}

/* Only the fault-injection build (tests/faults/build_fault_library.sh) has
 * hms.test.v1.Faults; tests/c/run.sh runs this test against it with
 * HMS_EXPECT_FAULTS=1. A release build must not have it. */
static void test_panics_leave_buffers_usable(void)
{
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0};
    hms_method m = 0;
    static const char panic_late[] = "hms.test.v1.Faults/PanicWhileAnswering";
    int expect = getenv("HMS_EXPECT_FAULTS") != NULL && strcmp(getenv("HMS_EXPECT_FAULTS"), "1") == 0;
    int round;
    if (!expect) {
        EXPECT_RC("a release build has no fault injection",
                  call(rt, "hms.test.v1.Faults/Panic", HMS_FORMAT_JSON, "{}", 2, &resp, &err),
                  HMS_NOT_FOUND, HMS_FORMAT_JSON, &err);
        hms_buf_free(&resp);
        hms_buf_free(&err);
        hms_runtime_free(rt);
        return;
    }
    for (round = 0; round < 3; round++) {
        /* both buffers hold library memory from an earlier answer */
        EXPECT_OK("Echo fills the buffers",
                  call(rt, ECHO, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON), &resp, &err),
                  &err);
        EXPECT_RC("Panic", call(rt, "hms.test.v1.Faults/Panic", HMS_FORMAT_JSON, "{}", 2,
                                &resp, &err),
                  HMS_PANIC, HMS_FORMAT_JSON, &err);
        CHECKF(buf_has(&err, "fault injected"), "the Status carries the panic's message");
        {
            const uint8_t *data = resp.data;
            size_t len = resp.len;
            EXPECT_RC("a panic after the response buffer grew",
                      call(rt, panic_late, HMS_FORMAT_JSON, "{}", 2, &resp, &err), HMS_PANIC,
                      HMS_FORMAT_JSON, &err);
            CHECKF(resp.data == data && resp.len == len && json_eq(&resp, ECHO_JSON),
                   "the panic changed the response buffer");
        }
        /* the same buffers again: valgrind and ASan see any use after free */
        EXPECT_OK("Echo through the same buffers after the panic",
                  call(rt, ECHO, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON), &resp, &err),
                  &err);
        CHECK(json_eq(&resp, ECHO_JSON));
    }
    EXPECT_OK("resolve PanicWhileAnswering",
              hms_method_resolve(rt, panic_late, strlen(panic_late), HMS_FORMAT_JSON, &m, &err),
              &err);
    EXPECT_RC("a panic through a method handle",
              hms_method_call(m, (const uint8_t *)"{}", 2, &resp, &err), HMS_PANIC,
              HMS_FORMAT_JSON, &err);
    EXPECT_OK("Echo after it", call(rt, ECHO, HMS_FORMAT_JSON, ECHO_JSON, strlen(ECHO_JSON),
                                    &resp, &err),
              &err);
    CHECK(json_eq(&resp, ECHO_JSON));
    EXPECT_OK("method_free", hms_method_free(m), NULL);
    hms_buf_free(&resp);
    hms_buf_free(&err);
    hms_runtime_free(rt);
}

/* Call context and structured errors (ABI 1.2): a handler reads its
 * hms.v1.CallContext and answers with an hms.v1.Status. */
typedef struct context_state {
    pthread_t caller;
    int on_caller_thread;
    hms_buf context;          /* the JSON context the handler read */
    uint64_t remaining[2];    /* remaining_ms read twice, 30 ms apart */
    int has_remaining;
    int32_t malformed_rc;     /* hms_reply_status with a broken Status */
    int32_t bad_format_rc;    /* hms_reply_context with format 0 */
    int32_t null_out_rc;      /* hms_reply_context with out NULL */
    int32_t status_format;    /* of `status` below */
    const uint8_t *status;
    size_t status_len;
} context_state;

/* The unsigned integer after a text key in a CBOR map; -1 when absent. */
static int64_t cbor_uint_after(const hms_buf *b, const char *key)
{
    bytes k = {0};
    const uint8_t *at, *end = b->data + b->len;
    uint64_t v = 0;
    int extra, i;
    cbor_text(&k, key);
    at = find_bytes(b->data, b->len, k.p, k.n);
    if (at == NULL || at + k.n >= end) {
        b_free(&k);
        return -1;
    }
    at += k.n;
    b_free(&k);
    if ((*at >> 5) != 0) return -1;
    if ((*at & 0x1f) < 24) return *at & 0x1f;
    extra = (*at & 0x1f) == 24 ? 1 : (*at & 0x1f) == 25 ? 2 : (*at & 0x1f) == 26 ? 4 : 8;
    if (at + 1 + extra > end) return -1;
    for (i = 1; i <= extra; i++) v = (v << 8) | at[i];
    return (int64_t)v;
}

static void context_handler(hms_reply *reply, const char *method, size_t method_len,
                            int32_t format, const uint8_t *request, size_t request_len,
                            void *user_data)
{
    context_state *st = (context_state *)user_data;
    hms_buf cbor = {0};
    int i;
    (void)format;
    (void)request;
    (void)request_len;
    st->on_caller_thread = pthread_equal(pthread_self(), st->caller) ? 1 : 0;
    hms_reply_context(reply, HMS_FORMAT_JSON, &st->context, NULL);
    st->bad_format_rc = hms_reply_context(reply, 0, &cbor, NULL);
    st->null_out_rc = hms_reply_context(reply, HMS_FORMAT_JSON, NULL, NULL);
    st->has_remaining = 1;
    for (i = 0; i < 2; i++) {
        int64_t left;
        if (i == 1) sleep_ms(30);
        hms_reply_context(reply, HMS_FORMAT_CBOR, &cbor, NULL);
        left = cbor_uint_after(&cbor, "remaining_ms");
        if (left < 0) st->has_remaining = 0;
        st->remaining[i] = (uint64_t)left;
    }
    hms_buf_free(&cbor);
    if (method_is(method, method_len, "Fail")) {
        /* a truncated Status first: refused, and the reply stays open */
        st->malformed_rc = hms_reply_status(reply, HMS_FORMAT_JSON,
                                            (const uint8_t *)"{\"code\":", 8);
        hms_reply_status(reply, st->status_format, st->status, st->status_len);
    } else {
        hms_reply_set(reply, (const uint8_t *)"{}", 2);
    }
}

static void test_call_context_and_status(void)
{
    static const char desc[] =
        "{\"name\":\"test.v1.Ctx\",\"methods\":["
        "{\"name\":\"Look\",\"input_type\":\"hms.sys.v1.EchoRequest\","
        "\"output_type\":\"hms.sys.v1.EchoResponse\"},"
        "{\"name\":\"Fail\",\"input_type\":\"hms.sys.v1.EchoRequest\","
        "\"output_type\":\"hms.sys.v1.EchoResponse\"}]}";
    static const char traced[] =
        "{\"metadata\":{\"tenant\":\"acme\"},\"trace_id\":\"trace-42\"}";
    static const char traced_deadline[] =
        "{\"deadline_ms\":30000,\"metadata\":{\"tenant\":\"acme\"},\"trace_id\":\"trace-42\"}";
    static const char status_json[] =
        "{\"code\":7,\"message\":\"denied\",\"details\":{\"rule\":\"tenant-isolation\"},"
        "\"origin\":\"policy.v1.Engine\"}";
    hms_runtime rt = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf resp = {0}, err = {0}, out = {0};
    hms_service svc = 0;
    context_state st;
    bytes status_cbor = {0}, status_pb = {0}, entry = {0};
    int f, sf;

    memset(&st, 0, sizeof st);
    st.caller = pthread_self();
    EXPECT_OK("register",
              hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)desc, strlen(desc),
                                   HMS_SERVICE_DEFAULT, context_handler, &st, &svc, &err),
              &err);

    /* the calling thread, without a deadline */
    EXPECT_OK("Look with metadata and trace id",
              call_opts(rt, "test.v1.Ctx/Look", HMS_FORMAT_JSON, "{}", 2, traced, &resp, &err),
              &err);
    CHECK(st.on_caller_thread);
    CHECKF(buf_has(&st.context, "\"method\":\"test.v1.Ctx/Look\""), "full method name");
    CHECK(buf_has(&st.context, "\"tenant\":\"acme\""));
    CHECK(buf_has(&st.context, "\"trace_id\":\"trace-42\""));
    CHECKF(!buf_has(&st.context, "remaining_ms") && !st.has_remaining,
           "no deadline: remaining_ms absent");
    CHECK(st.bad_format_rc == HMS_INVALID_ARGUMENT);
    CHECK(st.null_out_rc == HMS_INVALID_ARGUMENT);
    if (!buf_has(&st.context, "trace-42")) dump_buf_line("context", &st.context);

    /* a library thread, with a deadline: the context is there too */
    EXPECT_OK("Look with a deadline",
              call_opts(rt, "test.v1.Ctx/Look", HMS_FORMAT_JSON, "{}", 2, traced_deadline, &resp,
                        &err),
              &err);
    CHECKF(!st.on_caller_thread, "a deadline call runs on a library thread");
    CHECK(buf_has(&st.context, "\"tenant\":\"acme\""));
    CHECK(buf_has(&st.context, "\"trace_id\":\"trace-42\""));
    CHECK(st.has_remaining);
    CHECKF(st.remaining[0] <= 30000 && st.remaining[0] >= st.remaining[1] + 25,
           "remaining_ms decreases: %llu then %llu", (unsigned long long)st.remaining[0],
           (unsigned long long)st.remaining[1]);

    /* the same Status in every format */
    cbor_head(&status_cbor, 5, 4);
    cbor_text(&status_cbor, "code");
    cbor_head(&status_cbor, 0, 7);
    cbor_text(&status_cbor, "message");
    cbor_text(&status_cbor, "denied");
    cbor_text(&status_cbor, "details");
    cbor_head(&status_cbor, 5, 1);
    cbor_text(&status_cbor, "rule");
    cbor_text(&status_cbor, "tenant-isolation");
    cbor_text(&status_cbor, "origin");
    cbor_text(&status_cbor, "policy.v1.Engine");
    pb_varint(&status_pb, 1 << 3);
    pb_varint(&status_pb, 7);
    pb_varint(&status_pb, (2 << 3) | 2);
    pb_varint(&status_pb, 6);
    b_str(&status_pb, "denied");
    pb_varint(&entry, (1 << 3) | 2);
    pb_varint(&entry, 4);
    b_str(&entry, "rule");
    pb_varint(&entry, (2 << 3) | 2);
    pb_varint(&entry, 16);
    b_str(&entry, "tenant-isolation");
    pb_varint(&status_pb, (3 << 3) | 2);
    pb_varint(&status_pb, entry.n);
    b_put(&status_pb, entry.p, entry.n);
    pb_varint(&status_pb, (4 << 3) | 2);
    pb_varint(&status_pb, 16);
    b_str(&status_pb, "policy.v1.Engine");

    for (sf = 0; sf < 3; sf++) {
        st.status_format = FORMATS[sf];
        st.status = FORMATS[sf] == HMS_FORMAT_JSON   ? (const uint8_t *)status_json
                    : FORMATS[sf] == HMS_FORMAT_CBOR ? status_cbor.p
                                                     : status_pb.p;
        st.status_len = FORMATS[sf] == HMS_FORMAT_JSON   ? strlen(status_json)
                        : FORMATS[sf] == HMS_FORMAT_CBOR ? status_cbor.n
                                                         : status_pb.n;
        for (f = 0; f < 3; f++) {
            const uint8_t *req;
            size_t req_len;
            echo_request(FORMATS[f], &req, &req_len);
            st.malformed_rc = -1;
            EXPECT_RC("Fail answers the handler's Status",
                      hms_call(rt, "test.v1.Ctx/Fail", 16, FORMATS[f], req, req_len, NULL, 0,
                               &resp, &err),
                      HMS_PERMISSION_DENIED, FORMATS[f], &err);
            CHECKF(buf_has(&err, "tenant-isolation") && buf_has(&err, "policy.v1.Engine") &&
                       buf_has(&err, "denied"),
                   "details and origin reach the caller (status %s, caller %s)",
                   FORMAT_NAMES[FORMATS[sf]], FORMAT_NAMES[FORMATS[f]]);
            CHECKF(st.malformed_rc == HMS_DECODE_ERROR, "malformed Status: %d", st.malformed_rc);
        }
    }

    /* outside a handler there is no reply */
    EXPECT_RC("context of a NULL reply", hms_reply_context(NULL, HMS_FORMAT_JSON, &out, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    CHECK(out.data == NULL);
    CHECK(hms_reply_status(NULL, HMS_FORMAT_JSON, (const uint8_t *)status_json,
                           strlen(status_json)) == HMS_INVALID_ARGUMENT);

    EXPECT_OK("unregister", hms_service_unregister(svc), NULL);
    b_free(&status_cbor);
    b_free(&status_pb);
    b_free(&entry);
    hms_buf_free(&st.context);
    hms_buf_free(&resp);
    hms_buf_free(&err);
    hms_buf_free(&out);
    hms_runtime_free(rt);
}

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

/* ------------------------------------------------------------------------ */
/* Tests: hms_runtime_convert (ABI 1.2)                                     */
/* ------------------------------------------------------------------------ */

static int32_t runtime_convert(hms_runtime rt, const char *type, int32_t from, const void *p,
                               size_t n, int32_t to, hms_buf *out, hms_buf *err)
{
    return hms_runtime_convert(rt, type, type ? strlen(type) : 0, from, (const uint8_t *)p, n,
                               to, out, err);
}

static void test_runtime_convert(void)
{
    static const char V[] = "hms.sys.v1.VersionResponse";
    static const char VERSION_IN[] = "{\"library_version\":\"9.9.9\",\"abiMajor\":1}";
    hms_runtime proto = new_runtime(HMS_FORMAT_JSON, "{\"jsonNames\":\"JSON_NAMES_PROTO\"}");
    hms_runtime camel =
        new_runtime(HMS_FORMAT_JSON, "{\"jsonNames\":\"JSON_NAMES_LOWER_CAMEL_CASE\"}");
    hms_runtime small = new_runtime(HMS_FORMAT_JSON, "{\"maxMessageBytes\":64}");
    hms_runtime gone = new_runtime(HMS_FORMAT_JSON, NULL);
    hms_buf out = {0}, pb = {0}, fresh = {0}, err = {0};
    bytes big = {0};

    /* one message in both naming modes; input takes either name */
    EXPECT_RC("proto names", runtime_convert(proto, V, HMS_FORMAT_JSON, VERSION_IN,
                                             strlen(VERSION_IN), HMS_FORMAT_JSON, &out, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECKF(json_eq(&out, "{\"abi_major\":1,\"library_version\":\"9.9.9\"}"),
           "proto names: %.*s", (int)out.len, (const char *)out.data);
    EXPECT_RC("json -> protobuf", runtime_convert(camel, V, HMS_FORMAT_JSON, VERSION_IN,
                                                  strlen(VERSION_IN), HMS_FORMAT_PROTOBUF, &pb,
                                                  &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    EXPECT_RC("lowerCamelCase names", runtime_convert(camel, V, HMS_FORMAT_PROTOBUF, pb.data,
                                                      pb.len, HMS_FORMAT_JSON, &out, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECKF(json_eq(&out, "{\"abiMajor\":1,\"libraryVersion\":\"9.9.9\"}"),
           "lowerCamelCase names: %.*s", (int)out.len, (const char *)out.data);
    /* hms_convert keeps the default: proto names */
    EXPECT_RC("hms_convert default", convert(V, HMS_FORMAT_PROTOBUF, pb.data, pb.len,
                                             HMS_FORMAT_JSON, &out, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECK(json_eq(&out, "{\"abi_major\":1,\"library_version\":\"9.9.9\"}"));

    /* the runtime's limits: 47 bytes of protobuf in, 74 bytes of JSON out */
    b_byte(&big, 0x0a);
    b_byte(&big, 45);
    b_fill(&big, 0xab, 45);
    EXPECT_RC("output within default limits",
              runtime_convert(proto, "hms.sys.v1.EchoRequest", HMS_FORMAT_PROTOBUF, big.p, big.n,
                              HMS_FORMAT_JSON, &out, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECKF(out.len > 64, "JSON of 45 bytes is %zu bytes", out.len);
    EXPECT_RC("protobuf within max_message_bytes",
              runtime_convert(small, "hms.sys.v1.EchoRequest", HMS_FORMAT_PROTOBUF, big.p, big.n,
                              HMS_FORMAT_PROTOBUF, &pb, &err),
              HMS_OK, HMS_FORMAT_JSON, &err);
    CHECK(buf_eq(&pb, big.p, big.n));
    EXPECT_RC("output over max_message_bytes",
              runtime_convert(small, "hms.sys.v1.EchoRequest", HMS_FORMAT_PROTOBUF, big.p, big.n,
                              HMS_FORMAT_JSON, &fresh, &err),
              HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_JSON, &err);
    CHECKF(fresh.len == 0, "no output on failure (%zu bytes)", fresh.len);
    b_fill(&big, 0xab, 64);
    EXPECT_RC("input over max_message_bytes",
              runtime_convert(small, "hms.sys.v1.EchoRequest", HMS_FORMAT_PROTOBUF, big.p, big.n,
                              HMS_FORMAT_PROTOBUF, &out, &err),
              HMS_RESOURCE_EXHAUSTED, HMS_FORMAT_JSON, &err);

    /* handles, formats, types, pointers */
    CHECK(hms_runtime_free(gone) == HMS_OK);
    EXPECT_RC("freed runtime", runtime_convert(gone, V, HMS_FORMAT_JSON, "{}", 2, HMS_FORMAT_JSON,
                                               &out, &err),
              HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
    EXPECT_RC("runtime 0", runtime_convert(0, V, HMS_FORMAT_JSON, "{}", 2, HMS_FORMAT_JSON, &out,
                                           &err),
              HMS_INVALID_HANDLE, HMS_FORMAT_JSON, &err);
    EXPECT_RC("unknown from format", runtime_convert(proto, V, 0, "{}", 2, HMS_FORMAT_JSON, &out,
                                                     &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("unknown to format", runtime_convert(proto, V, HMS_FORMAT_JSON, "{}", 2, 4, &out,
                                                   &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    EXPECT_RC("unknown type", runtime_convert(camel, "no.such.Type", HMS_FORMAT_JSON, "{}", 2,
                                              HMS_FORMAT_CBOR, &out, &err),
              HMS_NOT_FOUND, HMS_FORMAT_JSON, &err);
    EXPECT_RC("garbage", runtime_convert(proto, V, HMS_FORMAT_CBOR, "\xff", 1, HMS_FORMAT_JSON,
                                         &out, &err),
              HMS_DECODE_ERROR, HMS_FORMAT_JSON, &err);
    EXPECT_RC("NULL out", runtime_convert(proto, V, HMS_FORMAT_JSON, "{}", 2, HMS_FORMAT_CBOR,
                                          NULL, &err),
              HMS_INVALID_ARGUMENT, HMS_FORMAT_JSON, &err);
    CHECK(runtime_convert(0, V, HMS_FORMAT_JSON, "{}", 2, HMS_FORMAT_JSON, &out, NULL) ==
          HMS_INVALID_HANDLE);

    b_free(&big);
    CHECK(hms_runtime_free(proto) == HMS_OK);
    CHECK(hms_runtime_free(camel) == HMS_OK);
    CHECK(hms_runtime_free(small) == HMS_OK);
    hms_buf_free(&out);
    hms_buf_free(&pb);
    hms_buf_free(&fresh);
    hms_buf_free(&err);
}

static const test_case TESTS[] = {
    {"versions", test_versions},
    {"runtime_lifecycle", test_runtime_lifecycle},
    {"echo", test_echo},
    {"buffers", test_buffers},
    {"error_status", test_error_status},
    {"bad_payloads", test_bad_payloads},
    {"bad_arguments", test_bad_arguments},
    {"handles", test_handles},
    {"host_service", test_host_service},
    {"service_threads_and_deadlines", test_service_threads_and_deadlines},
    {"events", test_events},
    {"convert", test_convert},
    {"threads", test_threads},
    {"fast_paths", test_fast_paths},
    {"nested_calls_are_bounded", test_nested_calls_are_bounded},
    {"runtime_free_is_bounded", test_runtime_free_is_bounded},
    {"hung_handlers_leave_bounded_threads", test_hung_handlers_leave_bounded_threads},
    {"handles_never_outlive_their_runtime", test_handles_never_outlive_their_runtime},
    {"failed_calls_change_nothing", test_failed_calls_change_nothing},
    {"builtin_deadlines", test_builtin_deadlines},
    {"panics_leave_buffers_usable", test_panics_leave_buffers_usable},
    {"runtime_convert", test_runtime_convert},
    {"call_context_and_status", test_call_context_and_status},
};

int main(int argc, char **argv)
{
    size_t t;
    int j;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("hms_ffi C host test: library %s, ABI %u.%u, header %d.%d\n", hms_version(),
           hms_abi_version() >> 16, hms_abi_version() & 0xffffu, HMS_ABI_VERSION_MAJOR,
           HMS_ABI_VERSION_MINOR);
    for (t = 0; t < sizeof TESTS / sizeof TESTS[0]; t++) {
        int selected = argc < 2;
        int before_failed = g_failed, before_passed = g_passed;
        double t0;
        for (j = 1; j < argc; j++) {
            if (strstr(TESTS[t].name, argv[j]) != NULL) selected = 1;
        }
        if (!selected) continue;
        g_test = TESTS[t].name;
        t0 = now_ms();
        TESTS[t].fn();
        printf("%-4s %-32s %4d checks, %.0f ms\n", g_failed == before_failed ? "ok" : "FAIL",
               TESTS[t].name, g_passed + g_failed - before_passed - before_failed, now_ms() - t0);
    }
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
