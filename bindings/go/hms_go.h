/*
 * Small C helpers of the Go binding, included by the cgo preambles of the
 * files that do not //export anything. They only adapt types cgo cannot
 * express (function pointers to Go callbacks, integers carried as void *);
 * every prototype of the ABI comes from include/hms_ffi.h itself.
 */
#ifndef HMS_GO_H
#define HMS_GO_H

#include <stdint.h>
#include <stdlib.h>
#include "hms_ffi.h"

/* Defined in Go (trampoline.go, //export); prototypes as cgo writes them. */
extern void hmsGoHandler(hms_reply *reply, char *method, size_t method_len, int32_t format,
                         uint8_t *request, size_t request_len, void *user_data);
extern void hmsGoEvent(uint8_t *event, size_t event_len, void *user_data);

/* hms_handler_fn with the header's exact parameter types. */
static inline void hms_go_handler(hms_reply *reply, const char *method, size_t method_len,
                                  int32_t format, const uint8_t *request, size_t request_len,
                                  void *user_data) {
    hmsGoHandler(reply, (char *)method, method_len, format, (uint8_t *)request, request_len,
                 user_data);
}

/* hms_event_fn with the header's exact parameter types. */
static inline void hms_go_event(const uint8_t *event, size_t event_len, void *user_data) {
    hmsGoEvent((uint8_t *)event, event_len, user_data);
}

/* user_data travels as an integer (a cgo.Handle), never as a Go pointer. */
static inline int32_t hms_go_service_register(hms_runtime rt, int32_t format,
                                              const uint8_t *descriptor, size_t descriptor_len,
                                              uint32_t flags, uintptr_t user_data,
                                              hms_service *out, hms_buf *err) {
    return hms_service_register(rt, format, descriptor, descriptor_len, flags, hms_go_handler,
                                (void *)user_data, out, err);
}

static inline int32_t hms_go_subscribe_push(hms_runtime rt, int32_t format,
                                            const uint8_t *filter, size_t filter_len,
                                            uintptr_t user_data, hms_subscription *out,
                                            hms_buf *err) {
    return hms_subscribe_push(rt, format, filter, filter_len, hms_go_event, (void *)user_data,
                              out, err);
}

/* One zeroed hms_buf pair (output, error) in C memory. */
static inline hms_buf *hms_go_buf_pair_new(void) { return (hms_buf *)calloc(2, sizeof(hms_buf)); }

static inline void hms_go_buf_pair_free(hms_buf *pair) {
    if (pair != NULL) {
        hms_buf_free(&pair[0]);
        hms_buf_free(&pair[1]);
        free(pair);
    }
}

#endif /* HMS_GO_H */
