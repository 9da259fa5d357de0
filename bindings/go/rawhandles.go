package hms

/*
#include "hms_go.h"
*/
import "C"

// Raw handle operations, for tools and tests that need to hand the library
// a handle the wrappers would never produce (zero, made up, stale, freed
// twice). Each returns the library's status code unchanged; the library
// answers such handles with HMS_INVALID_HANDLE, never undefined behaviour.

// RawHandle is the library's handle of r (0 once closed).
func (r *Runtime) RawHandle() uint64 { return r.handle.Load() }

// RawHandle is the library's handle of s (0 once closed).
func (s *Service) RawHandle() uint64 { return s.handle.Load() }

// RawHandle is the library's handle of s (0 once closed).
func (s *Subscription) RawHandle() uint64 { return s.handle.Load() }

// RawRuntimeFree calls hms_runtime_free(h).
func RawRuntimeFree(h uint64) Code { return Code(C.hms_runtime_free(C.hms_runtime(h))) }

// RawServiceUnregister calls hms_service_unregister(h).
func RawServiceUnregister(h uint64) Code {
	return Code(C.hms_service_unregister(C.hms_service(h)))
}

// RawUnsubscribe calls hms_unsubscribe(h).
func RawUnsubscribe(h uint64) Code { return Code(C.hms_unsubscribe(C.hms_subscription(h))) }

// RawCall calls hms_call on runtime handle h with raw bytes; the error is
// an *Error built from the library's hms.v1.Status.
func RawCall(h uint64, method string, format Format, req []byte) ([]byte, error) {
	b := getBufs()
	defer putBufs(b)
	mp, ml := cString(method)
	rp, rl := cBytes(req)
	rc := C.hms_call(C.hms_runtime(h), mp, ml, C.int32_t(format), rp, rl, nil, 0, b.out(), b.err())
	if rc != C.HMS_OK {
		return nil, errorFrom(rc, b.err(), format)
	}
	return bytesOf(b.out()), nil
}

// RawPoll calls hms_poll(h, timeoutMs) and returns the event's protobuf
// bytes (subscriptions of this binding are protobuf).
func RawPoll(h uint64, timeoutMs int32) ([]byte, error) {
	b := getBufs()
	defer putBufs(b)
	rc := C.hms_poll(C.hms_subscription(h), C.int32_t(timeoutMs), b.out(), b.err())
	if rc != C.HMS_OK {
		return nil, errorFrom(rc, b.err(), FormatProtobuf)
	}
	return bytesOf(b.out()), nil
}

// RawMethodResolve calls hms_method_resolve on runtime handle h and returns
// the method handle; the handle is the caller's to free (RawMethodFree).
func RawMethodResolve(h uint64, method string, format Format) (uint64, error) {
	b := getBufs()
	defer putBufs(b)
	var out C.hms_method
	mp, ml := cString(method)
	rc := C.hms_method_resolve(C.hms_runtime(h), mp, ml, C.int32_t(format), &out, b.err())
	if rc != C.HMS_OK {
		return 0, errorFrom(rc, b.err(), format)
	}
	return uint64(out), nil
}

// RawMethodCall calls hms_method_call on method handle h; format is the
// format of the error's hms.v1.Status (the handle's).
func RawMethodCall(h uint64, format Format, req []byte) ([]byte, error) {
	b := getBufs()
	defer putBufs(b)
	rp, rl := cBytes(req)
	rc := C.hms_method_call(C.hms_method(h), rp, rl, b.out(), b.err())
	if rc != C.HMS_OK {
		return nil, errorFrom(rc, b.err(), format)
	}
	return bytesOf(b.out()), nil
}

// RawMethodFree calls hms_method_free(h).
func RawMethodFree(h uint64) Code { return Code(C.hms_method_free(C.hms_method(h))) }

// RawCallBatch calls hms_call_batch with a batch frame as it is (however
// malformed) and returns the result frame; the error is an *Error built
// from the library's hms.v1.Status (JSON).
func RawCallBatch(frame []byte) ([]byte, error) {
	b := getBufs()
	defer putBufs(b)
	fp, fl := cBytes(frame)
	rc := C.hms_call_batch(fp, fl, b.out(), b.err())
	if rc != C.HMS_OK {
		return nil, errorFrom(rc, b.err(), FormatJSON)
	}
	return bytesOf(b.out()), nil
}
