enum {
    HMS_ABI_VERSION_MAJOR = 1,
    HMS_ABI_VERSION_MINOR = 4,
    HMS_FORMAT_PROTOBUF = 1,
    HMS_FORMAT_CBOR = 2,
    HMS_FORMAT_JSON = 3,
    HMS_OK = 0,
    HMS_CANCELLED = 1,
    HMS_UNKNOWN = 2,
    HMS_INVALID_ARGUMENT = 3,
    HMS_DEADLINE_EXCEEDED = 4,
    HMS_NOT_FOUND = 5,
    HMS_ALREADY_EXISTS = 6,
    HMS_PERMISSION_DENIED = 7,
    HMS_RESOURCE_EXHAUSTED = 8,
    HMS_FAILED_PRECONDITION = 9,
    HMS_ABORTED = 10,
    HMS_OUT_OF_RANGE = 11,
    HMS_UNIMPLEMENTED = 12,
    HMS_INTERNAL = 13,
    HMS_UNAVAILABLE = 14,
    HMS_DATA_LOSS = 15,
    HMS_UNAUTHENTICATED = 16,
    HMS_INVALID_HANDLE = 100,
    HMS_DECODE_ERROR = 101,
    HMS_HANDLER_ERROR = 102,
    HMS_INCOMPATIBLE = 103,
    HMS_PANIC = 104,
    HMS_SERVICE_DEFAULT = 0,
    HMS_SERVICE_CALLER_THREAD = 1,
    HMS_SERVICE_EXPORT = 2,
    HMS_BATCH_MAX_CALLS = 1048576,
    HMS_BATCH_MAX_RESULT_BYTES = 268435456
};
uint32_t hms_abi_version(void);
const char *hms_version(void);
typedef struct hms_buf { uint8_t *data; size_t len; size_t cap; } hms_buf;
void hms_buf_free(hms_buf *buf);
typedef uint64_t hms_runtime;
int32_t hms_runtime_new(int32_t format, const uint8_t *config, size_t config_len, hms_runtime *out, hms_buf *err);
int32_t hms_runtime_free(hms_runtime rt);
int32_t hms_call(hms_runtime rt, const char *method, size_t method_len, int32_t format, const uint8_t *request, size_t request_len, const uint8_t *options, size_t options_len, hms_buf *response, hms_buf *err);
typedef uint64_t hms_service;
typedef struct hms_reply hms_reply;
typedef void (*hms_handler_fn)(hms_reply *reply, const char *method, size_t method_len, int32_t format, const uint8_t *request, size_t request_len, void *user_data);
int32_t hms_service_register(hms_runtime rt, int32_t format, const uint8_t *descriptor, size_t descriptor_len, uint32_t flags, hms_handler_fn handler, void *user_data, hms_service *out, hms_buf *err);
int32_t hms_service_unregister(hms_service svc);
int32_t hms_serve(hms_runtime rt, int32_t timeout_ms, uint32_t *served, hms_buf *err);
int32_t hms_reply_set(hms_reply *reply, const uint8_t *data, size_t len);
int32_t hms_reply_error(hms_reply *reply, int32_t code, const char *message, size_t message_len);
int64_t hms_reply_remaining_ms(const hms_reply *reply);
typedef uint64_t hms_subscription;
int32_t hms_subscribe(hms_runtime rt, int32_t format, const uint8_t *filter, size_t filter_len, hms_subscription *out, hms_buf *err);
int32_t hms_poll(hms_subscription sub, int32_t timeout_ms, hms_buf *event, hms_buf *err);
typedef void (*hms_event_fn)(const uint8_t *event, size_t event_len, void *user_data);
int32_t hms_subscribe_push(hms_runtime rt, int32_t format, const uint8_t *filter, size_t filter_len, hms_event_fn callback, void *user_data, hms_subscription *out, hms_buf *err);
int32_t hms_unsubscribe(hms_subscription sub);
int32_t hms_schema_register(const uint8_t *fds, size_t fds_len, hms_buf *err);
int32_t hms_convert(const char *type_name, size_t type_name_len, int32_t from_format, const uint8_t *data, size_t data_len, int32_t to_format, hms_buf *out, hms_buf *err);
int32_t hms_runtime_convert(hms_runtime rt, const char *type_name, size_t type_name_len, int32_t from_format, const uint8_t *data, size_t data_len, int32_t to_format, hms_buf *out, hms_buf *err);
typedef uint64_t hms_method;
int32_t hms_method_resolve(hms_runtime rt, const char *method, size_t method_len, int32_t format, hms_method *out, hms_buf *err);
int32_t hms_method_call(hms_method method, const uint8_t *request, size_t request_len, hms_buf *response, hms_buf *err);
int32_t hms_method_free(hms_method method);
int32_t hms_call_batch(const uint8_t *batch, size_t batch_len, hms_buf *results, hms_buf *err);
int32_t hms_reply_context(const hms_reply *reply, int32_t format, hms_buf *out, hms_buf *err);
int32_t hms_reply_status(hms_reply *reply, int32_t format, const uint8_t *status, size_t status_len);
