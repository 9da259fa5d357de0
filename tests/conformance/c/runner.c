/*
 * Conformance runner of the C ABI itself (include/hms_ffi.h, no binding).
 *
 * Runs every scenario of tests/conformance/scenarios.json and prints one JSON
 * line per scenario (protocol: tests/conformance/README.md):
 *   {"lang":"c","scenario":"unknown_method","code":"NOT_FOUND",
 *    "error":"HMS_NOT_FOUND","message":"...","origin":"...","step":0}
 * The idiomatic error of C is the status constant.
 *
 * Usage: runner SCENARIOS_JSON        Build: make -C tests/conformance/c
 * Exit status 0 when every scenario ran, 2 on a runner problem.
 *
 * It carries its own small JSON reader so that it depends on nothing but the
 * library under test and libc.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hms_ffi.h"

/* ------------------------------------------------------------------------ */
/* Growable bytes and failure                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    char *data;
    size_t len, cap;
} bytes;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("conformance runner (c): ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void put(bytes *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->data = realloc(b->data, cap);
        if (!b->data)
            die("out of memory");
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void puts_(bytes *b, const char *s) { put(b, s, strlen(s)); }

/* ------------------------------------------------------------------------ */
/* A small JSON reader: enough for scenarios.json and the core's answers    */
/* ------------------------------------------------------------------------ */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct json {
    int type;
    double num;          /* J_NUM, J_BOOL (0/1) */
    char *str;           /* J_STR: UTF-8, may hold NULs; also J_NUM's text */
    size_t len;          /* J_STR length; J_ARR/J_OBJ item count */
    struct json **items; /* J_ARR, J_OBJ values */
    char **keys;         /* J_OBJ keys */
} json;

typedef struct {
    const char *p, *end;
} reader;

static void ws(reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static void utf8(bytes *b, unsigned long c)
{
    char out[4];
    size_t n;
    if (c < 0x80) {
        out[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        n = 2;
    } else if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        out[0] = (char)(0xF0 | (c >> 18));
        out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[3] = (char)(0x80 | (c & 0x3F));
        n = 4;
    }
    put(b, out, n);
}

static unsigned long hex4(reader *r)
{
    unsigned long v = 0;
    for (int i = 0; i < 4; i++, r->p++) {
        char c = r->p < r->end ? *r->p : 0;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned long)(c - 'A' + 10);
        else
            die("bad \\u escape in JSON");
    }
    return v;
}

static char *string_(reader *r, size_t *len)
{
    bytes b = {0};
    r->p++; /* opening quote */
    while (r->p < r->end && *r->p != '"') {
        if (*r->p != '\\') {
            put(&b, r->p++, 1);
            continue;
        }
        r->p++;
        char c = r->p < r->end ? *r->p++ : 0;
        switch (c) {
        case 'n': put(&b, "\n", 1); break;
        case 't': put(&b, "\t", 1); break;
        case 'r': put(&b, "\r", 1); break;
        case 'b': put(&b, "\b", 1); break;
        case 'f': put(&b, "\f", 1); break;
        case 'u': {
            unsigned long cp = hex4(r);
            if (cp >= 0xD800 && cp < 0xDC00 && r->p + 1 < r->end && r->p[0] == '\\' && r->p[1] == 'u') {
                r->p += 2;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(r) - 0xDC00);
            }
            utf8(&b, cp);
            break;
        }
        default: put(&b, &c, 1); break; /* \" \\ \/ */
        }
    }
    if (r->p >= r->end)
        die("unterminated JSON string");
    r->p++;
    put(&b, "", 0);
    *len = b.len;
    return b.data;
}

static json *value(reader *r)
{
    json *v = calloc(1, sizeof *v);
    if (!v)
        die("out of memory");
    ws(r);
    if (r->p >= r->end)
        die("unexpected end of JSON");
    char c = *r->p;
    if (c == '{' || c == '[') {
        int obj = c == '{';
        v->type = obj ? J_OBJ : J_ARR;
        r->p++;
        ws(r);
        if (*r->p == (obj ? '}' : ']')) {
            r->p++;
            return v;
        }
        for (;;) {
            v->items = realloc(v->items, (v->len + 1) * sizeof *v->items);
            if (obj) {
                size_t klen;
                ws(r);
                v->keys = realloc(v->keys, (v->len + 1) * sizeof *v->keys);
                v->keys[v->len] = string_(r, &klen);
                ws(r);
                if (*r->p++ != ':')
                    die("expected ':' in JSON");
            }
            v->items[v->len++] = value(r);
            ws(r);
            if (*r->p == ',') {
                r->p++;
                continue;
            }
            if (*r->p++ != (obj ? '}' : ']'))
                die("expected ',' or a closing bracket in JSON");
            return v;
        }
    }
    if (c == '"') {
        v->type = J_STR;
        v->str = string_(r, &v->len);
        return v;
    }
    if (!strncmp(r->p, "true", 4) || !strncmp(r->p, "false", 5)) {
        v->type = J_BOOL;
        v->num = *r->p == 't';
        r->p += *r->p == 't' ? 4 : 5;
        return v;
    }
    if (!strncmp(r->p, "null", 4)) {
        r->p += 4;
        return v;
    }
    char *stop;
    v->type = J_NUM;
    v->num = strtod(r->p, &stop);
    if (stop == r->p)
        die("bad JSON value near '%.20s'", r->p);
    r->p = stop;
    return v;
}

static json *parse(const char *text, size_t len)
{
    reader r = {text, text + len};
    json *v = value(&r);
    ws(&r);
    if (r.p != r.end)
        die("trailing data after JSON");
    return v;
}

static json *get(const json *obj, const char *key)
{
    if (!obj || obj->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->len; i++)
        if (!strcmp(obj->keys[i], key))
            return obj->items[i];
    return NULL;
}

static const char *str(const json *obj, const char *key)
{
    json *v = get(obj, key);
    return v && v->type == J_STR ? v->str : NULL;
}

/* ------------------------------------------------------------------------ */
/* Status names, formats, payloads                                          */
/* ------------------------------------------------------------------------ */

static const struct {
    int32_t code;
    const char *name;
} CODES[] = {
    {HMS_OK, "OK"}, {HMS_CANCELLED, "CANCELLED"}, {HMS_UNKNOWN, "UNKNOWN"},
    {HMS_INVALID_ARGUMENT, "INVALID_ARGUMENT"}, {HMS_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"},
    {HMS_NOT_FOUND, "NOT_FOUND"}, {HMS_ALREADY_EXISTS, "ALREADY_EXISTS"},
    {HMS_PERMISSION_DENIED, "PERMISSION_DENIED"}, {HMS_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"},
    {HMS_FAILED_PRECONDITION, "FAILED_PRECONDITION"}, {HMS_ABORTED, "ABORTED"},
    {HMS_OUT_OF_RANGE, "OUT_OF_RANGE"}, {HMS_UNIMPLEMENTED, "UNIMPLEMENTED"},
    {HMS_INTERNAL, "INTERNAL"}, {HMS_UNAVAILABLE, "UNAVAILABLE"}, {HMS_DATA_LOSS, "DATA_LOSS"},
    {HMS_UNAUTHENTICATED, "UNAUTHENTICATED"}, {HMS_INVALID_HANDLE, "INVALID_HANDLE"},
    {HMS_DECODE_ERROR, "DECODE_ERROR"}, {HMS_HANDLER_ERROR, "HANDLER_ERROR"},
    {HMS_INCOMPATIBLE, "INCOMPATIBLE"}, {HMS_PANIC, "PANIC"},
};

static const char *code_name(int32_t code)
{
    for (size_t i = 0; i < sizeof CODES / sizeof CODES[0]; i++)
        if (CODES[i].code == code)
            return CODES[i].name;
    return "UNKNOWN";
}

static int32_t code_of(const char *name)
{
    for (size_t i = 0; i < sizeof CODES / sizeof CODES[0]; i++)
        if (!strcmp(CODES[i].name, name))
            return CODES[i].code;
    die("unknown status name %s", name);
    return HMS_UNKNOWN;
}

static int32_t format_of(const json *v)
{
    if (v && v->type == J_NUM)
        return (int32_t)v->num;
    if (v && v->type == J_STR) {
        if (!strcmp(v->str, "protobuf"))
            return HMS_FORMAT_PROTOBUF;
        if (!strcmp(v->str, "cbor"))
            return HMS_FORMAT_CBOR;
        if (!strcmp(v->str, "json"))
            return HMS_FORMAT_JSON;
    }
    die("bad format in a scenario");
    return 0;
}

#define MAX_VARS 8
typedef struct {
    char *name[MAX_VARS], *value[MAX_VARS];
    int n;
} vars;

static const char *var(const vars *env, const char *name, size_t len)
{
    for (int i = 0; i < env->n; i++)
        if (strlen(env->name[i]) == len && !strncmp(env->name[i], name, len))
            return env->value[i];
    die("undefined variable ${%.*s}", (int)len, name);
    return "";
}

/* Appends the bytes of a payload spec: text with ${var} substituted,
 * {"hex"}, {"concat": [...]}, {"repeat": spec, "times": n}. */
static void payload(bytes *out, const json *spec, const vars *env)
{
    if (!spec)
        return;
    if (spec->type == J_STR) {
        const char *s = spec->str, *end = spec->str + spec->len;
        while (s < end) {
            const char *close;
            if (s[0] == '$' && s + 1 < end && s[1] == '{' && (close = memchr(s, '}', (size_t)(end - s)))) {
                puts_(out, var(env, s + 2, (size_t)(close - s - 2)));
                s = close + 1;
            } else {
                put(out, s++, 1);
            }
        }
        return;
    }
    const char *hex = str(spec, "hex");
    if (hex) {
        for (; hex[0] && hex[1]; hex += 2) {
            unsigned int byte;
            if (sscanf(hex, "%2x", &byte) != 1)
                die("bad hex payload");
            char c = (char)byte;
            put(out, &c, 1);
        }
        return;
    }
    json *parts = get(spec, "concat");
    if (parts) {
        for (size_t i = 0; i < parts->len; i++)
            payload(out, parts->items[i], env);
        return;
    }
    json *unit = get(spec, "repeat"), *times = get(spec, "times");
    if (unit && times) {
        for (long i = 0; i < (long)times->num; i++)
            payload(out, unit, env);
        return;
    }
    die("unknown payload spec");
}

/* ------------------------------------------------------------------------ */
/* The scenario host service: behaviours by method                          */
/* ------------------------------------------------------------------------ */

typedef struct {
    const json *methods; /* scenarios.json services.<name>.methods */
} service_ctx;

static void handler(hms_reply *reply, const char *method, size_t method_len, int32_t format,
                    const uint8_t *request, size_t request_len, void *user_data)
{
    const service_ctx *ctx = user_data;
    json *behaviour = NULL;
    (void)format;
    for (size_t i = 0; i < ctx->methods->len; i++)
        if (strlen(ctx->methods->keys[i]) == method_len && !memcmp(ctx->methods->keys[i], method, method_len))
            behaviour = ctx->methods->items[i];
    if (!behaviour) {
        hms_reply_error(reply, HMS_UNIMPLEMENTED, "no such method", 14);
        return;
    }
    const char *kind = str(behaviour, "behaviour");
    const char *message = str(behaviour, "message");
    size_t message_len = message ? strlen(message) : 0;
    if (!strcmp(kind, "echo")) {
        hms_reply_set(reply, request, request_len);
    } else if (!strcmp(kind, "raise")) {
        /* C has no exceptions: a handler that fails reports HMS_HANDLER_ERROR. */
        hms_reply_error(reply, HMS_HANDLER_ERROR, message, message_len);
    } else if (!strcmp(kind, "raise_status")) {
        hms_reply_error(reply, code_of(str(behaviour, "code")), message, message_len);
    } else if (!strcmp(kind, "sleep")) {
        long ms = (long)get(behaviour, "ms")->num;
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        hms_reply_set(reply, (const uint8_t *)"{}", 2);
    } else {
        hms_reply_error(reply, HMS_INTERNAL, "unknown behaviour", 17);
    }
}

#define MAX_SERVICES 8
static service_ctx contexts[MAX_SERVICES]; /* user_data outlives every service */
static int n_contexts;

static int32_t register_service(hms_runtime rt, const json *doc, const char *name, hms_buf *err)
{
    const json *methods = get(get(get(doc, "services"), name), "methods");
    if (!methods)
        die("scenarios.json: no service %s", name);
    bytes desc = {0};
    puts_(&desc, "{\"name\":\"");
    puts_(&desc, name);
    puts_(&desc, "\",\"methods\":[");
    for (size_t i = 0; i < methods->len; i++) {
        puts_(&desc, i ? ",{\"name\":\"" : "{\"name\":\"");
        puts_(&desc, methods->keys[i]);
        puts_(&desc, "\"}");
    }
    puts_(&desc, "]}");
    service_ctx *ctx = NULL;
    for (int i = 0; i < n_contexts; i++)
        if (contexts[i].methods == methods)
            ctx = &contexts[i];
    if (!ctx) {
        if (n_contexts == MAX_SERVICES)
            die("too many services");
        ctx = &contexts[n_contexts++];
        ctx->methods = methods;
    }
    hms_service svc;
    int32_t rc = hms_service_register(rt, HMS_FORMAT_JSON, (const uint8_t *)desc.data, desc.len,
                                      HMS_SERVICE_DEFAULT, handler, ctx, &svc, err);
    free(desc.data);
    return rc; /* the service lives until its runtime is freed */
}

/* ------------------------------------------------------------------------ */
/* Scenarios                                                                */
/* ------------------------------------------------------------------------ */

static void json_string(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int32_t run_step(const json *step, const json *doc, hms_runtime *rt, int *freed, vars *env,
                        int32_t *err_format, hms_buf *out, hms_buf *err)
{
    const char *op = str(step, "op");
    bytes a = {0}, b = {0};
    int32_t rc;
    if (!strcmp(op, "call")) {
        const char *method = str(step, "method");
        *err_format = format_of(get(step, "format"));
        payload(&a, get(step, "request"), env);
        payload(&b, get(step, "options"), env);
        rc = hms_call(*rt, method, strlen(method), format_of(get(step, "format")),
                      (const uint8_t *)a.data, a.len, (const uint8_t *)b.data, b.len, out, err);
        json *save = get(step, "save");
        if (rc == HMS_OK && save) {
            json *answer = parse((const char *)out->data, out->len);
            for (size_t i = 0; i < save->len; i++) {
                const char *got = str(answer, save->items[i]->str);
                if (!got || env->n == MAX_VARS)
                    die("cannot save %s", save->keys[i]);
                env->name[env->n] = save->keys[i];
                env->value[env->n++] = strdup(got);
            }
        }
    } else if (!strcmp(op, "convert")) {
        const char *type = str(step, "type");
        payload(&a, get(step, "data"), env);
        rc = hms_convert(type, strlen(type), format_of(get(step, "from")), (const uint8_t *)a.data,
                         a.len, format_of(get(step, "to")), out, err);
    } else if (!strcmp(op, "runtime_new")) {
        hms_runtime other;
        *err_format = format_of(get(step, "format"));
        payload(&a, get(step, "config"), env);
        rc = hms_runtime_new(format_of(get(step, "format")), (const uint8_t *)a.data, a.len, &other, err);
        if (rc == HMS_OK)
            hms_runtime_free(other);
    } else if (!strcmp(op, "register_service")) {
        rc = register_service(*rt, doc, str(step, "service"), err);
    } else if (!strcmp(op, "close_runtime")) {
        rc = hms_runtime_free(*rt); /* *rt is now a stale handle */
        *freed = 1;
    } else {
        die("unknown op %s", op);
        rc = HMS_INTERNAL;
    }
    free(a.data);
    free(b.data);
    return rc;
}

/* The hms.v1.Status in err, as JSON (the core converts CBOR and protobuf);
 * NULL when the call wrote none. */
static json *error_status(int32_t rc, int32_t format, hms_buf *err, hms_buf *scratch)
{
    if (rc == HMS_OK || err->len == 0)
        return NULL;
    if (format != HMS_FORMAT_CBOR && format != HMS_FORMAT_PROTOBUF)
        return parse((const char *)err->data, err->len); /* JSON, also for bad formats */
    hms_buf none = {0};
    int32_t crc = hms_convert("hms.v1.Status", 13, format, err->data, err->len, HMS_FORMAT_JSON, scratch, &none);
    hms_buf_free(&none);
    return crc == HMS_OK ? parse((const char *)scratch->data, scratch->len) : NULL;
}

/* Remote mode (README.md): whether the scenario is one of the ids in
 * HMS_CONFORMANCE_REMOTE, which run in a runtime configured by
 * HMS_CONFORMANCE_REMOTE_CONFIG, their services served by another process. */
static int remote(const char *id)
{
    const char *ids = getenv("HMS_CONFORMANCE_REMOTE");
    size_t len = strlen(id);
    for (const char *p = ids ? ids : ""; *p;) {
        size_t word = strcspn(p, " \t\n");
        if (word == len && !strncmp(p, id, len))
            return 1;
        p += word;
        p += strspn(p, " \t\n");
    }
    return 0;
}

/* The string field key of a JSON object, as a JSON string ("" when absent). */
static void json_field(const json *obj, const char *key)
{
    const json *v = get(obj, key);
    if (v && v->type == J_STR)
        json_string(v->str, v->len);
    else
        printf("\"\"");
}

static void run(const json *scenario, const json *doc, hms_buf *out, hms_buf *err)
{
    const char *id = str(scenario, "id");
    int is_remote = remote(id);
    const char *config = is_remote ? getenv("HMS_CONFORMANCE_REMOTE_CONFIG") : str(scenario, "runtime_config");
    hms_runtime rt;
    int freed = 0;
    vars env = {{0}, {0}, 0};
    int32_t rc = config ? hms_runtime_new(HMS_FORMAT_JSON, (const uint8_t *)config, strlen(config), &rt, err)
                        : hms_runtime_new(HMS_FORMAT_JSON, NULL, 0, &rt, err);
    if (rc != HMS_OK)
        die("%s: hms_runtime_new failed with %s", id, code_name(rc));
    json *services = is_remote ? NULL : get(scenario, "services");
    for (size_t i = 0; services && i < services->len; i++)
        if ((rc = register_service(rt, doc, services->items[i]->str, err)) != HMS_OK)
            die("%s: registering %s failed with %s", id, services->items[i]->str, code_name(rc));
    json *steps = get(scenario, "steps");
    size_t step = 0;
    int32_t err_format = HMS_FORMAT_JSON;
    for (; step < steps->len; step++) {
        err_format = HMS_FORMAT_JSON;
        rc = run_step(steps->items[step], doc, &rt, &freed, &env, &err_format, out, err);
        if (rc != HMS_OK)
            break;
    }
    if (step == steps->len)
        step--;
    printf("{\"lang\":\"c\",\"scenario\":");
    json_string(id, strlen(id));
    printf(",\"step\":%zu,\"code\":\"%s\",\"error\":\"%s%s\",\"message\":", step, code_name(rc),
           rc ? "HMS_" : "", rc ? code_name(rc) : "");
    json *status = error_status(rc, err_format, err, out);
    json_field(status, "message");
    printf(",\"origin\":");
    json_field(status, "origin");
    printf("}\n");
    fflush(stdout);
    for (int i = 0; i < env.n; i++)
        free(env.value[i]);
    if (!freed)
        hms_runtime_free(rt);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        die("usage: runner SCENARIOS_JSON");
    FILE *f = fopen(argv[1], "rb");
    if (!f)
        die("cannot open %s", argv[1]);
    bytes text = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        put(&text, chunk, n);
    fclose(f);
    json *doc = parse(text.data, text.len);
    hms_buf out = {0}, err = {0};
    json *scenarios = get(doc, "scenarios");
    for (size_t i = 0; i < scenarios->len; i++)
        run(scenarios->items[i], doc, &out, &err);
    hms_buf_free(&out);
    hms_buf_free(&err);
    return 0; /* the parsed document lives until exit */
}
