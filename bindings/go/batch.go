package hms

/*
#include "hms_go.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"unsafe"
)

// The limits of one batch (include/hms_ffi.h).
const (
	// BatchMaxCalls is the most calls one batch may hold
	// (HMS_BATCH_MAX_CALLS); a larger batch fails with CodeResourceExhausted
	// and nothing runs.
	BatchMaxCalls = C.HMS_BATCH_MAX_CALLS
	// BatchMaxResultBytes is the size of the answers after which the
	// remaining calls of a batch are not run and each fails with
	// CodeResourceExhausted (HMS_BATCH_MAX_RESULT_BYTES).
	BatchMaxResultBytes = C.HMS_BATCH_MAX_RESULT_BYTES
)

// BatchCall is one call of Runtime.CallBatch: a method handle and its
// request, encoded in the handle's format.
type BatchCall struct {
	Method  *MethodHandle
	Request []byte
}

// BatchError reports the calls of a batch that failed. The batch itself
// ran: every call was made, in order, and a failing call did not stop the
// ones after it; the results slice returned with it holds the answers of
// the calls that succeeded (nil at the failed indexes).
//
// errors.Is(err, hms.ErrNotFound) holds when any call failed with that
// code; errors.As(err, &e) with e an *Error gives the first failure, and
// CodeOf(err) its code.
type BatchError struct {
	// Code is the code of the first failed call.
	Code Code
	// First is the index of the first failed call.
	First int
	// Failed is how many calls failed.
	Failed int
	// Errors holds one entry per call of the batch: the call's error, nil
	// when it succeeded.
	Errors []*Error
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hms: %d of %d calls of the batch failed; call %d: ", e.Failed, len(e.Errors), e.First)
	if e.First >= 0 && e.First < len(e.Errors) && e.Errors[e.First] != nil {
		b.WriteString(strings.TrimPrefix(e.Errors[e.First].Error(), "hms: "))
	} else {
		b.WriteString(e.Code.String())
	}
	return b.String()
}

// Unwrap gives the errors of the failed calls, in call order, for
// errors.Is and errors.As.
func (e *BatchError) Unwrap() []error {
	out := make([]error, 0, e.Failed)
	for _, err := range e.Errors {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// CallBatch calls the method once per request, all in one crossing
// (hms_call_batch), and returns the answers in order. Requests are encoded
// in the handle's format.
//
// When some calls fail, the error is a *BatchError and the results still
// hold the answers of the others (nil where a call failed). When the batch
// itself is refused (more than BatchMaxCalls calls) nothing ran and the
// error is an *Error. ctx is checked once before the batch crosses; the
// calls of a batch carry no CallOptions, so a deadline of ctx does not
// apply inside it. An empty batch returns an empty slice without crossing.
func (m *MethodHandle) CallBatch(ctx context.Context, reqs [][]byte) ([][]byte, error) {
	if err := checkContext(ctx, m.name); err != nil {
		return nil, err
	}
	h := m.handle.Load()
	if h == 0 {
		return nil, closedError("method handle")
	}
	if len(reqs) == 0 {
		return [][]byte{}, nil
	}
	b := getBufs()
	defer putBufs(b)
	fr := newFrame(b.scratch, len(reqs), totalLen(len(reqs), func(i int) int { return len(reqs[i]) }))
	for i, req := range reqs {
		fr.put(i, h, req)
	}
	b.keepScratch(fr.buf)
	results, err := runBatch(fr.buf, len(reqs), b,
		func(int) Format { return m.format },
		func(int) *Error { return m.closedErr() })
	runtime.KeepAlive(m)
	return results, err
}

// CallBatch runs calls of any methods of r, all in one crossing
// (hms_call_batch), in order, and returns their answers in order; each
// request is encoded in its handle's format. Errors as for
// MethodHandle.CallBatch: a *BatchError when some calls failed (their
// results are nil), an *Error when the batch was refused or a call names no
// method handle, or one of another runtime.
func (r *Runtime) CallBatch(ctx context.Context, calls []BatchCall) ([][]byte, error) {
	if err := checkContext(ctx, "the batch"); err != nil {
		return nil, err
	}
	if r.handle.Load() == 0 {
		return nil, closedError("runtime")
	}
	for i, c := range calls {
		if c.Method == nil {
			return nil, bindingError(CodeInvalidArgument, nil, "call %d of the batch has no method handle", i)
		}
		if c.Method.rt != r {
			return nil, bindingError(CodeInvalidArgument, nil,
				"call %d of the batch (%s) uses a method handle of another runtime", i, c.Method.name)
		}
	}
	if len(calls) == 0 {
		return [][]byte{}, nil
	}
	b := getBufs()
	defer putBufs(b)
	fr := newFrame(b.scratch, len(calls), totalLen(len(calls), func(i int) int { return len(calls[i].Request) }))
	for i, c := range calls {
		// A closed handle travels as 0: the library answers that call
		// INVALID_HANDLE and the others still run.
		fr.put(i, c.Method.handle.Load(), c.Request)
	}
	b.keepScratch(fr.buf)
	results, err := runBatch(fr.buf, len(calls), b,
		func(i int) Format { return calls[i].Method.format },
		func(i int) *Error { return calls[i].Method.closedErr() })
	runtime.KeepAlive(calls)
	runtime.KeepAlive(r)
	return results, err
}

func checkContext(ctx context.Context, what string) error {
	if ctx != nil && ctx.Err() != nil {
		return contextError(ctx, what)
	}
	return nil
}

func totalLen(n int, size func(int) int) int {
	total := 0
	for i := 0; i < n; i++ {
		total += size(i)
	}
	return total
}

// frame is a batch frame being built: count, method[count], end[count],
// then the payloads, little-endian uint64 words (include/hms_ffi.h).
type frame struct {
	buf  []byte
	n    int
	off  int // where the next payload goes
	area int // where the payload area starts
}

// newFrame sizes a frame for n calls with payloads of total bytes, reusing
// dst's memory when it is large enough.
func newFrame(dst []byte, n, total int) frame {
	area := 8 * (1 + 2*n)
	size := area + total
	if cap(dst) < size {
		dst = make([]byte, size)
	} else {
		dst = dst[:size]
	}
	binary.LittleEndian.PutUint64(dst, uint64(n))
	return frame{buf: dst, n: n, off: area, area: area}
}

// put writes call i; calls are put in order.
func (f *frame) put(i int, method uint64, req []byte) {
	binary.LittleEndian.PutUint64(f.buf[8+8*i:], method)
	f.off += copy(f.buf[f.off:], req)
	binary.LittleEndian.PutUint64(f.buf[8+8*(f.n+i):], uint64(f.off-f.area))
}

// keepScratch keeps the memory of a frame for the next one, unless large.
func (b *bufPair) keepScratch(buf []byte) {
	if cap(buf) <= keepCapacity {
		b.scratch = buf[:0]
	}
}

// runBatch crosses once with the frame and splits the result frame into
// the answers (copied into Go memory, one allocation for all of them) and,
// when some calls failed, a *BatchError. format gives each call's format,
// closed the error of a call whose handle or runtime was closed (nil when
// open).
func runBatch(fr []byte, n int, b *bufPair, format func(int) Format, closed func(int) *Error) ([][]byte, error) {
	fp, fl := cBytes(fr)
	rc := C.hms_call_batch(fp, fl, b.out(), b.err())
	if rc != C.HMS_OK {
		return nil, errorFrom(rc, b.err(), FormatJSON)
	}
	out := b.out()
	var res []byte
	if out.len > 0 && out.data != nil {
		res = unsafe.Slice((*byte)(unsafe.Pointer(out.data)), int(out.len))
	}
	codes, ends, payload, err := splitResults(res, n)
	if err != nil {
		return nil, err
	}
	area := make([]byte, len(payload))
	copy(area, payload)
	results := make([][]byte, n)
	var be *BatchError
	start := uint64(0)
	for i := 0; i < n; i++ {
		code := binary.LittleEndian.Uint64(codes[8*i:])
		end := binary.LittleEndian.Uint64(ends[8*i:])
		if code == C.HMS_OK {
			results[i] = area[start:end:end]
		} else {
			if be == nil {
				be = &BatchError{First: i, Errors: make([]*Error, n)}
			}
			var e *Error
			if Code(code) == CodeInvalidHandle {
				e = closed(i)
			}
			if e == nil {
				e = statusError(Code(code), area[start:end], format(i))
			}
			if be.Failed == 0 {
				be.Code = e.Code
			}
			be.Errors[i] = e
			be.Failed++
		}
		start = end
	}
	if be != nil {
		return results, be
	}
	return results, nil
}

// splitResults checks a result frame of n calls and returns its code and
// end words and its payload area.
func splitResults(res []byte, n int) (codes, ends, payload []byte, err error) {
	bad := func(why string) error {
		return bindingError(CodeInternal, nil, "the library answered a batch of %d calls with a malformed result frame: %s", n, why)
	}
	if len(res) < 8 {
		return nil, nil, nil, bad("shorter than its count")
	}
	if got := binary.LittleEndian.Uint64(res); got != uint64(n) {
		return nil, nil, nil, bad(fmt.Sprintf("count %d", got))
	}
	head := 8 * (1 + 2*n)
	if len(res) < head {
		return nil, nil, nil, bad("shorter than its header")
	}
	codes, ends, payload = res[8:8+8*n], res[8+8*n:head], res[head:]
	prev := uint64(0)
	for i := 0; i < n; i++ {
		end := binary.LittleEndian.Uint64(ends[8*i:])
		if end < prev || end > uint64(len(payload)) {
			return nil, nil, nil, bad(fmt.Sprintf("end %d of call %d", end, i))
		}
		if code := binary.LittleEndian.Uint64(codes[8*i:]); code > 0x7fffffff {
			return nil, nil, nil, bad(fmt.Sprintf("code %d of call %d", code, i))
		}
		prev = end
	}
	if prev != uint64(len(payload)) {
		return nil, nil, nil, bad("the last end is not the payload's length")
	}
	return codes, ends, payload, nil
}
