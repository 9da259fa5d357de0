package hms

/*
#include "hms_go.h"
*/
import "C"

import (
	"context"
	"errors"
	"runtime"
	"time"
)

// Serve runs, on this goroutine's thread, the calls other processes made to
// the runtime's exported CallerThread services (hms_serve, ABI 1.4): it
// waits for the first until ctx is done, then runs every call waiting at
// that moment and returns how many ran. When ctx ends first it returns 0
// and an error with CodeDeadlineExceeded (its deadline passed) or
// CodeCancelled, as Subscription.Next does. Without a transport, or while
// another thread serves the runtime, the error has CodeFailedPrecondition;
// CodeCancelled also when the runtime is being closed.
//
// Go handlers run on any thread, so a Go service needs this only when it
// is registered CallerThread (for parity with PHP and Ruby, which must).
func (r *Runtime) Serve(ctx context.Context) (int, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	b := getBufs()
	defer putBufs(b)
	var served C.uint32_t
	for {
		if ctx.Err() != nil {
			return 0, serveContextError(ctx)
		}
		wait := pollSlice
		if d, ok := ctx.Deadline(); ok {
			left := time.Until(d)
			if left <= 0 {
				return 0, serveContextError(ctx)
			}
			wait = min(wait, left)
		}
		h := r.handle.Load()
		if h == 0 {
			return 0, closedError("runtime")
		}
		ms := C.int32_t((wait + time.Millisecond - 1) / time.Millisecond)
		rc := C.hms_serve(C.hms_runtime(h), ms, &served, b.err())
		runtime.KeepAlive(r)
		if rc != C.HMS_OK {
			if rc == C.HMS_INVALID_HANDLE && r.handle.Load() == 0 {
				return 0, closedError("runtime")
			}
			return 0, errorFrom(rc, b.err(), FormatJSON)
		}
		if served > 0 {
			return int(served), nil
		}
	}
}

func serveContextError(ctx context.Context) *Error {
	err := ctx.Err()
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		return bindingError(CodeDeadlineExceeded, context.DeadlineExceeded, "no exported call came before the context's deadline")
	}
	return bindingError(CodeCancelled, err, "the context was cancelled while waiting for an exported call")
}
