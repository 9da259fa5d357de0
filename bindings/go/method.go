package hms

/*
#include "hms_go.h"
*/
import "C"

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"google.golang.org/protobuf/proto"
)

// MethodHandle is one method of one runtime, looked up once
// (hms_method_resolve, ABI 1.1) and bound to the format its requests and
// answers travel in: a call through it skips the method's name and takes
// half the arguments of a call by name. Get one with Runtime.Method.
//
// Every method may be called from any goroutine at once. Close frees it and
// is idempotent; an unreachable handle is freed by a cleanup as a backstop.
// After Close, or after its runtime's Close, every call returns an *Error
// with CodeInvalidHandle that wraps ErrClosed. A handle names the method,
// not one registration of its service: while a host service is
// unregistered its calls answer CodeNotFound, as calls by name do, and they
// reach the service again once one of that name is registered anew.
type MethodHandle struct {
	name    string
	format  Format
	rt      *Runtime // keeps the runtime alive as long as the handle
	handle  atomic.Uint64
	cleanup runtime.Cleanup
}

// Method resolves method ("package.Service/Method") once, for calls whose
// requests and answers travel in format. Unknown names fail with
// CodeNotFound, malformed names and formats with CodeInvalidArgument.
func (r *Runtime) Method(method string, format Format) (*MethodHandle, error) {
	h := r.handle.Load()
	if h == 0 {
		return nil, closedError("runtime")
	}
	b := getBufs()
	defer putBufs(b)
	var out C.hms_method
	mp, ml := cString(method)
	rc := C.hms_method_resolve(C.hms_runtime(h), mp, ml, C.int32_t(format), &out, b.err())
	runtime.KeepAlive(r)
	if rc != C.HMS_OK {
		if rc == C.HMS_INVALID_HANDLE && r.Closed() {
			return nil, closedError("runtime")
		}
		return nil, errorFrom(rc, b.err(), format)
	}
	m := &MethodHandle{name: method, format: format, rt: r}
	m.handle.Store(uint64(out))
	m.cleanup = runtime.AddCleanup(m, func(h uint64) { C.hms_method_free(C.hms_method(h)) }, uint64(out))
	return m, nil
}

// Name is the full method name the handle was resolved from.
func (m *MethodHandle) Name() string { return m.name }

// Format is the format of the handle's requests and answers.
func (m *MethodHandle) Format() Format { return m.format }

// Runtime is the runtime the handle belongs to.
func (m *MethodHandle) Runtime() *Runtime { return m.rt }

// RawHandle is the library's handle of m (0 once closed).
func (m *MethodHandle) RawHandle() uint64 { return m.handle.Load() }

// Close frees the handle. Idempotent: later calls return nil, as does a
// Close after the runtime's (the runtime freed the handle with itself).
func (m *MethodHandle) Close() error {
	h := m.handle.Swap(0)
	if h == 0 {
		return nil
	}
	m.cleanup.Stop()
	if rc := C.hms_method_free(C.hms_method(h)); rc != C.HMS_OK && rc != C.HMS_INVALID_HANDLE {
		return errorFrom(rc, nil, FormatJSON)
	}
	return nil
}

// CallRaw calls the method with req encoded in the handle's format and
// returns the answer in that format: the fastest path of the binding, one
// crossing of hms_method_call and one copy.
//
// ctx is checked before the call. hms_method_call carries no CallOptions,
// so a call whose ctx has a deadline goes by name through hms_call with
// deadline_ms, exactly as Runtime.CallRaw: the deadline holds, and the fast
// path is for contexts without one.
func (m *MethodHandle) CallRaw(ctx context.Context, req []byte) ([]byte, error) {
	b := getBufs()
	defer putBufs(b)
	if err := m.cross(ctx, req, b); err != nil {
		return nil, err
	}
	return bytesOf(b.out()), nil
}

// Call calls the method with a protobuf request and decodes the answer into
// resp (the method's output type; nil discards it). The handle must have
// been resolved for FormatProtobuf.
func (m *MethodHandle) Call(ctx context.Context, req, resp proto.Message) error {
	if m.format != FormatProtobuf {
		return bindingError(CodeInvalidArgument, nil,
			"%s was resolved for %v: typed calls need a handle of FormatProtobuf", m.name, m.format)
	}
	b := getBufs()
	defer putBufs(b)
	raw, err := b.marshal(req)
	if err != nil {
		return err
	}
	if err := m.cross(ctx, raw, b); err != nil {
		return err
	}
	return b.unmarshalAnswer(m.name, resp)
}

// cross makes one call with the buffers b; the answer is left in b.out().
func (m *MethodHandle) cross(ctx context.Context, req []byte, b *bufPair) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Err() != nil {
		return contextError(ctx, m.name)
	}
	h := m.handle.Load()
	if h == 0 {
		return closedError("method handle")
	}
	if _, ok := ctx.Deadline(); ok {
		return m.rt.cross(ctx, m.name, m.format, req, nil, b)
	}
	rp, rl := cBytes(req)
	rc := C.hms_method_call(C.hms_method(h), rp, rl, b.out(), b.err())
	runtime.KeepAlive(m)
	if rc != C.HMS_OK {
		if rc == C.HMS_INVALID_HANDLE {
			if err := m.closedErr(); err != nil {
				return err
			}
		}
		return errorFrom(rc, b.err(), m.format)
	}
	return nil
}

// closedErr is the error of a call that found m or its runtime closed, nil
// when both are open.
func (m *MethodHandle) closedErr() *Error {
	if m.handle.Load() == 0 {
		return closedError("method handle")
	}
	if m.rt.Closed() {
		return closedError("runtime")
	}
	return nil
}

// marshal encodes req (nil is the empty message) into b's scratch memory.
func (b *bufPair) marshal(req proto.Message) ([]byte, error) {
	raw := b.scratch[:0]
	if req == nil {
		return raw, nil
	}
	raw, err := proto.MarshalOptions{}.MarshalAppend(raw, req)
	if err != nil {
		return nil, bindingError(CodeInvalidArgument, err, "cannot encode %T: %v", req, err)
	}
	if cap(raw) <= keepCapacity {
		b.scratch = raw
	}
	return raw, nil
}

// unmarshalAnswer decodes the protobuf answer in b.out() into resp (nil
// discards it).
func (b *bufPair) unmarshalAnswer(method string, resp proto.Message) error {
	if resp == nil {
		return nil
	}
	// proto.Unmarshal copies bytes and strings: no need to copy first.
	out := b.out()
	var answer []byte
	if out.len > 0 && out.data != nil {
		answer = unsafe.Slice((*byte)(unsafe.Pointer(out.data)), int(out.len))
	}
	if err := proto.Unmarshal(answer, resp); err != nil {
		return bindingError(CodeDecodeError, err, "cannot decode the answer of %s as %T: %v", method, resp, err)
	}
	return nil
}

// methodCache holds the method handles a runtime resolves for its own calls
// by name without options (CallRaw, Call, CallValue and the typed clients),
// so that every user gets the fast path. A name is resolved after its first
// successful call, so names that never work cost nothing extra. Reads are
// one atomic load and one map lookup; the maps are copied on write, which
// happens once per method and format.
//
// A handle answers exactly as a call by name (hms_method_resolve: it names
// the method, not one registration of its service), so the cache needs no
// invalidation for correctness. It is emptied when a service of the runtime
// is unregistered only so that it never holds names of services long gone.
// A handle dropped while a call uses it answers INVALID_HANDLE, and that
// call goes by name instead.
type methodCache struct {
	byFormat [FormatJSON + 1]atomic.Pointer[map[string]uint64]
	mu       sync.Mutex
	closed   bool // guarded by mu
}

// lookup returns the cached handle of (name, f), 0 when there is none.
func (c *methodCache) lookup(name string, f Format) uint64 {
	if f < FormatProtobuf || f > FormatJSON {
		return 0
	}
	if m := c.byFormat[f].Load(); m != nil {
		return (*m)[name]
	}
	return 0
}

// store caches h for (name, f) unless the cache is closed or has the name
// already; it reports whether h was kept (else the caller frees it).
func (c *methodCache) store(name string, f Format, h uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	old := c.byFormat[f].Load()
	n := map[string]uint64{name: h}
	if old != nil {
		if _, ok := (*old)[name]; ok {
			return false
		}
		n = make(map[string]uint64, len(*old)+1)
		for k, v := range *old {
			n[k] = v
		}
		n[name] = h
	}
	c.byFormat[f].Store(&n)
	return true
}

// isClosed reports whether the cache refuses new handles.
func (c *methodCache) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// evict drops (name, f) when it still maps to h, and frees h.
func (c *methodCache) evict(name string, f Format, h uint64) {
	c.mu.Lock()
	old := c.byFormat[f].Load()
	if old == nil || (*old)[name] != h {
		c.mu.Unlock()
		return
	}
	n := make(map[string]uint64, len(*old))
	for k, v := range *old {
		if k != name {
			n[k] = v
		}
	}
	c.byFormat[f].Store(&n)
	c.mu.Unlock()
	C.hms_method_free(C.hms_method(h))
}

// flush drops every entry and frees their handles; with close, it also
// refuses later stores and leaves the handles to the runtime, which is
// going away and frees them with itself.
func (c *methodCache) flush(close bool) {
	c.mu.Lock()
	var old []*map[string]uint64
	for f := range c.byFormat {
		if m := c.byFormat[f].Swap(nil); m != nil {
			old = append(old, m)
		}
	}
	if close {
		c.closed = true
		old = nil
	}
	c.mu.Unlock()
	for _, m := range old {
		for _, h := range *m {
			C.hms_method_free(C.hms_method(h))
		}
	}
}

// learn resolves (name, f) after a successful call by name and caches the
// handle; any failure just leaves the name uncached.
func (r *Runtime) learn(rt uint64, name string, f Format) {
	// A name with a leading '/' (gRPC style) stays uncached: errors of a
	// call by name carry the name as given, those of a handle without it.
	if f < FormatProtobuf || f > FormatJSON || strings.HasPrefix(name, "/") {
		return
	}
	c := &r.state.methods
	if c.isClosed() {
		return
	}
	var out C.hms_method
	mp, ml := cString(name)
	if C.hms_method_resolve(C.hms_runtime(rt), mp, ml, C.int32_t(f), &out, nil) != C.HMS_OK {
		return
	}
	if !c.store(name, f, uint64(out)) {
		C.hms_method_free(out)
	}
}
