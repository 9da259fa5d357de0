// Package cbench measures the core without Go in the loop: C loops of
// hms_call and hms_method_call, so benchmarks can tell the binding's overhead from the core's
// own cost. Used by the benchmarks of package hms only.
package cbench

/*
#include <stdint.h>
#include <time.h>
#include "hms_ffi.h"

static int64_t hms_go_bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

// Calls method n times from C with one reused buffer pair; returns the
// elapsed nanoseconds, or -status on the first failure.
static int64_t hms_go_bench_call_loop(hms_runtime rt, const char *method, size_t method_len,
                                      int32_t format, const uint8_t *req, size_t req_len,
                                      int n) {
    hms_buf out = {0}, err = {0};
    int64_t t0 = hms_go_bench_now();
    for (int i = 0; i < n; i++) {
        int32_t rc = hms_call(rt, method, method_len, format, req, req_len, NULL, 0, &out, &err);
        if (rc != HMS_OK) {
            hms_buf_free(&out);
            hms_buf_free(&err);
            return -(int64_t)rc;
        }
    }
    int64_t t1 = hms_go_bench_now();
    hms_buf_free(&out);
    hms_buf_free(&err);
    return t1 - t0;
}

// Calls method handle m n times from C; elapsed ns, or -status.
static int64_t hms_go_bench_method_loop(hms_method m, const uint8_t *req, size_t req_len, int n) {
    hms_buf out = {0}, err = {0};
    int64_t t0 = hms_go_bench_now();
    for (int i = 0; i < n; i++) {
        int32_t rc = hms_method_call(m, req, req_len, &out, &err);
        if (rc != HMS_OK) {
            hms_buf_free(&out);
            hms_buf_free(&err);
            return -(int64_t)rc;
        }
    }
    int64_t t1 = hms_go_bench_now();
    hms_buf_free(&out);
    hms_buf_free(&err);
    return t1 - t0;
}

static hms_buf hms_go_bench_bufs[2];

// One hms_call with a static buffer pair: what a Go loop of bare cgo calls
// of hms_call costs, without the binding around it.
static int32_t hms_go_bench_call_once(hms_runtime rt, const char *method, size_t method_len,
                                      int32_t format, const uint8_t *req, size_t req_len) {
    return hms_call(rt, method, method_len, format, req, req_len, NULL, 0,
                    &hms_go_bench_bufs[0], &hms_go_bench_bufs[1]);
}
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// CallEach calls method n times from a Go loop, one bare cgo call of
// hms_call each (not safe for concurrent use: one static buffer pair), and
// returns the time the loop took.
func CallEach(rt uint64, method string, format int32, req []byte, n int) (time.Duration, error) {
	var rp *C.uint8_t
	if len(req) > 0 {
		rp = (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(req)))
	}
	mp := (*C.char)(unsafe.Pointer(unsafe.StringData(method)))
	start := time.Now()
	for i := 0; i < n; i++ {
		if rc := C.hms_go_bench_call_once(C.hms_runtime(rt), mp, C.size_t(len(method)), C.int32_t(format), rp, C.size_t(len(req))); rc != 0 {
			return 0, fmt.Errorf("hms_call failed with status %d", rc)
		}
	}
	return time.Since(start), nil
}

// CallLoop calls method n times from a C loop on runtime handle rt with the
// same request in format, and returns the time the loop took.
func CallLoop(rt uint64, method string, format int32, req []byte, n int) (time.Duration, error) {
	var rp *C.uint8_t
	if len(req) > 0 {
		rp = (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(req)))
	}
	mp := (*C.char)(unsafe.Pointer(unsafe.StringData(method)))
	ns := C.hms_go_bench_call_loop(C.hms_runtime(rt), mp, C.size_t(len(method)), C.int32_t(format),
		rp, C.size_t(len(req)), C.int(n))
	if ns < 0 {
		return 0, fmt.Errorf("hms_call failed with status %d", -ns)
	}
	return time.Duration(ns), nil
}

// MethodLoop calls method handle m n times from a C loop with the same
// request, and returns the time the loop took.
func MethodLoop(m uint64, req []byte, n int) (time.Duration, error) {
	var rp *C.uint8_t
	if len(req) > 0 {
		rp = (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(req)))
	}
	ns := C.hms_go_bench_method_loop(C.hms_method(m), rp, C.size_t(len(req)), C.int(n))
	if ns < 0 {
		return 0, fmt.Errorf("hms_method_call failed with status %d", -ns)
	}
	return time.Duration(ns), nil
}
