package hms

/*
#include "hms_go.h"
*/
import "C"

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

// Runtime is one runtime of the HMS core: a registry of services, an event
// bus and a store. Every method may be called from any goroutine.
//
// Close frees it (after closing the services and subscriptions made through
// it); it is idempotent. A runtime that becomes unreachable without Close is
// freed by a cleanup as a backstop, but a runtime with registered services
// stays reachable through them: always Close.
type Runtime struct {
	handle  atomic.Uint64
	state   *runtimeState
	cleanup runtime.Cleanup
}

// runtimeState is what the cleanup of a Runtime needs; it never points back
// at the Runtime, so the Runtime can become unreachable.
type runtimeState struct {
	handle   uint64
	mu       sync.Mutex
	children map[child]struct{}
	freed    bool
	methods  methodCache
}

// child is a Service or Subscription, closed with its runtime.
type child interface{ closeChild() }

func (s *runtimeState) add(c child) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freed {
		return false
	}
	s.children[c] = struct{}{}
	return true
}

func (s *runtimeState) remove(c child) {
	s.mu.Lock()
	delete(s.children, c)
	s.mu.Unlock()
}

// free closes the children, then the runtime; safe to call twice.
func (s *runtimeState) free() C.int32_t {
	s.mu.Lock()
	if s.freed {
		s.mu.Unlock()
		return C.HMS_OK
	}
	s.freed = true
	kids := make([]child, 0, len(s.children))
	for c := range s.children {
		kids = append(kids, c)
	}
	s.children = nil
	s.mu.Unlock()
	s.methods.flush(true)
	for _, c := range kids {
		c.closeChild()
	}
	return C.hms_runtime_free(C.hms_runtime(s.handle))
}

// Option configures Open.
type Option func(*openConfig)

type openConfig struct {
	err       error // of an option, returned by Open
	cfg       *hmsv1.RuntimeConfig
	raw       []byte
	rawFormat Format
	hasRaw    bool
	typed     bool
}

func typedOption(f func(*hmsv1.RuntimeConfig)) Option {
	return func(o *openConfig) {
		o.typed = true
		f(o.cfg)
	}
}

// WithConfig starts from a whole hms.v1.RuntimeConfig (later options
// override its fields).
func WithConfig(cfg *hmsv1.RuntimeConfig) Option {
	return typedOption(func(c *hmsv1.RuntimeConfig) { proto.Merge(c, cfg) })
}

// WithRawConfig passes an hms.v1.RuntimeConfig already encoded in format,
// as it is (the core reports a config that does not parse as
// DECODE_ERROR). It excludes the other options.
func WithRawConfig(format Format, config []byte) Option {
	return func(o *openConfig) {
		o.raw, o.rawFormat, o.hasRaw = config, format, true
	}
}

// WithName sets the name System/Health reports.
func WithName(name string) Option {
	return typedOption(func(c *hmsv1.RuntimeConfig) { c.Name = name })
}

// WithMaxMessageBytes sets the largest payload accepted or produced (default 4 MiB).
func WithMaxMessageBytes(n uint64) Option {
	return typedOption(func(c *hmsv1.RuntimeConfig) { c.MaxMessageBytes = n })
}

// WithMaxDepth sets the deepest nesting accepted in a payload (default 64).
func WithMaxDepth(n uint32) Option {
	return typedOption(func(c *hmsv1.RuntimeConfig) { c.MaxDepth = n })
}

// WithDataDir keeps the store in an embedded database in dir (default: memory).
func WithDataDir(dir string) Option {
	return typedOption(func(c *hmsv1.RuntimeConfig) { c.DataDir = dir })
}

// WithEventQueueCapacity sets how many events a subscription keeps before
// dropping the oldest (default 1024).
func WithEventQueueCapacity(n uint32) Option {
	return typedOption(func(c *hmsv1.RuntimeConfig) { c.EventQueueCapacity = n })
}

// WithDefaultCredentials makes cred the runtime's own identity
// (RuntimeConfig.security.default_credentials): the calls it makes without
// WithCredentials present them. The rest of the security section, from
// WithConfig, is kept.
func WithDefaultCredentials(cred Credentials) Option {
	set := typedOption(func(c *hmsv1.RuntimeConfig) {
		if c.Security == nil {
			c.Security = &hmsv1.SecurityConfig{}
		}
		c.Security.DefaultCredentials = cred.message()
	})
	return func(o *openConfig) {
		if err := cred.check("WithDefaultCredentials"); err != nil {
			o.err = err
			return
		}
		set(o)
	}
}

// Open checks the loaded library's ABI (CheckABI), then creates a runtime.
func Open(opts ...Option) (*Runtime, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	oc := &openConfig{cfg: &hmsv1.RuntimeConfig{}}
	for _, o := range opts {
		o(oc)
	}
	if oc.err != nil {
		return nil, oc.err
	}
	format, raw := FormatProtobuf, oc.raw
	if oc.hasRaw {
		if oc.typed {
			return nil, bindingError(CodeInvalidArgument, nil, "WithRawConfig excludes the other options of Open")
		}
		format = oc.rawFormat
	} else {
		var err error
		raw, err = proto.Marshal(oc.cfg)
		if err != nil {
			return nil, bindingError(CodeInvalidArgument, err, "cannot encode the runtime config: %v", err)
		}
	}
	var h C.hms_runtime
	b := getBufs()
	defer putBufs(b)
	p, n := cBytes(raw)
	rc := C.hms_runtime_new(C.int32_t(format), p, n, &h, b.err())
	if rc != C.HMS_OK {
		return nil, errorFrom(rc, b.err(), format)
	}
	st := &runtimeState{handle: uint64(h), children: map[child]struct{}{}}
	r := &Runtime{state: st}
	r.handle.Store(uint64(h))
	r.cleanup = runtime.AddCleanup(r, func(s *runtimeState) { s.free() }, st)
	return r, nil
}

// Close frees the runtime after closing its services (waiting for their
// calls in flight) and subscriptions. Idempotent: later calls return nil.
// Must not be called from inside one of this runtime's handlers.
func (r *Runtime) Close() error {
	if r.handle.Swap(0) == 0 {
		return nil
	}
	r.cleanup.Stop()
	if rc := r.state.free(); rc != C.HMS_OK {
		return errorFrom(rc, nil, FormatJSON)
	}
	return nil
}

// Closed reports whether Close was called.
func (r *Runtime) Closed() bool { return r.handle.Load() == 0 }

// CallOption adds to the hms.v1.CallOptions of one call, or picks the
// format of CallValue.
type CallOption func(*callConfig)

type callConfig struct {
	err    error // of an option, returned by the call
	opts   *hmsv1.CallOptions
	format Format
	raw    []byte
	hasRaw bool
}

func (c *callConfig) options() *hmsv1.CallOptions {
	if c.opts == nil {
		c.opts = &hmsv1.CallOptions{}
	}
	return c.opts
}

// WithMetadata adds key/value pairs carried to handlers (like gRPC metadata).
func WithMetadata(kv map[string]string) CallOption {
	return func(c *callConfig) {
		o := c.options()
		if o.Metadata == nil {
			o.Metadata = map[string]string{}
		}
		for k, v := range kv {
			o.Metadata[k] = v
		}
	}
}

// WithTraceID correlates the call with a distributed trace.
func WithTraceID(id string) CallOption {
	return func(c *callConfig) { c.options().TraceId = id }
}

// WithCredentials authenticates the call with cred in place of the
// runtime's default credentials (WithDefaultCredentials).
func WithCredentials(cred Credentials) CallOption {
	return func(c *callConfig) {
		if err := cred.check("WithCredentials"); err != nil {
			c.err = err
			return
		}
		c.options().Credentials = cred.message()
	}
}

// WithCallOptions merges a whole hms.v1.CallOptions. Its deadline_ms is
// replaced by the context's deadline when the context has one.
func WithCallOptions(o *hmsv1.CallOptions) CallOption {
	return func(c *callConfig) { proto.Merge(c.options(), o) }
}

// WithRawCallOptions sends an hms.v1.CallOptions already encoded in the
// call's format, as it is (the core reports options that do not parse as
// DECODE_ERROR). The context's deadline is then not added: put deadline_ms
// in the bytes. It excludes the other call options.
func WithRawCallOptions(options []byte) CallOption {
	return func(c *callConfig) { c.raw, c.hasRaw = options, true }
}

// WithFormat picks the format of CallValue (FormatCBOR, the default, or
// FormatJSON); other calls ignore it.
func WithFormat(f Format) CallOption { return func(c *callConfig) { c.format = f } }

// deadlineMs is ctx's deadline as CallOptions.deadline_ms: rounded up, at
// least 1, at most 2^32-1; 0 without a deadline. expired is true when it
// has passed already.
func deadlineMs(ctx context.Context) (ms uint32, expired bool) {
	d, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	left := time.Until(d)
	if left <= 0 {
		return 0, true
	}
	n := (left + time.Millisecond - 1) / time.Millisecond
	if n > math.MaxUint32 {
		n = math.MaxUint32
	}
	return uint32(n), false
}

// encodeOptions gives the CallOptions bytes of a call in f (nil when empty).
func encodeOptions(o *hmsv1.CallOptions, deadline uint32, f Format) ([]byte, error) {
	if o == nil && deadline == 0 {
		return nil, nil
	}
	if o == nil {
		o = &hmsv1.CallOptions{}
	} else {
		o = proto.CloneOf(o)
	}
	if deadline != 0 {
		o.DeadlineMs = deadline
	}
	var (
		raw []byte
		err error
	)
	switch f {
	case FormatProtobuf:
		raw, err = proto.Marshal(o)
	case FormatJSON:
		raw, err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(o)
	default: // CBOR, and unknown formats (which the core refuses first)
		m := map[string]any{}
		if o.DeadlineMs != 0 {
			m["deadline_ms"] = o.DeadlineMs
		}
		if len(o.Metadata) > 0 {
			m["metadata"] = o.Metadata
		}
		if c := o.Credentials; c != nil {
			cm := map[string]string{}
			for k, v := range map[string]string{"scheme": c.Scheme, "token": c.Token, "principal": c.Principal} {
				if v != "" {
					cm[k] = v
				}
			}
			m["credentials"] = cm
		}
		if o.TraceId != "" {
			m["trace_id"] = o.TraceId
		}
		raw, err = cborEnc.Marshal(m)
	}
	if err != nil {
		return nil, bindingError(CodeInvalidArgument, err, "cannot encode the call options: %v", err)
	}
	return raw, nil
}

// contextError is the error of a call its context stopped before it began.
func contextError(ctx context.Context, method string) *Error {
	err := ctx.Err()
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		return bindingError(CodeDeadlineExceeded, context.DeadlineExceeded,
			"the context's deadline passed before %s was called", method)
	}
	return bindingError(CodeCancelled, err, "the context was cancelled before %s was called", method)
}

// invoke is the one crossing of every call: bytes in f, a copy of the
// answer out.
func (r *Runtime) invoke(ctx context.Context, method string, f Format, req []byte, cfg *callConfig) ([]byte, error) {
	b := getBufs()
	defer putBufs(b)
	if err := r.cross(ctx, method, f, req, cfg, b); err != nil {
		return nil, err
	}
	return bytesOf(b.out()), nil
}

// cross makes one call with the buffers b; the answer is left in b.out(),
// valid until b goes back to the pool.
func (r *Runtime) cross(ctx context.Context, method string, f Format, req []byte, cfg *callConfig, b *bufPair) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Err() != nil {
		return contextError(ctx, method)
	}
	deadline, expired := deadlineMs(ctx)
	if expired {
		return contextError(ctx, method)
	}
	var (
		opts []byte
		err  error
	)
	switch {
	case cfg != nil && cfg.err != nil:
		return cfg.err
	case cfg != nil && cfg.hasRaw:
		if cfg.opts != nil {
			return bindingError(CodeInvalidArgument, nil, "WithRawCallOptions excludes the other call options")
		}
		opts = cfg.raw
	case cfg != nil:
		opts, err = encodeOptions(cfg.opts, deadline, f)
	default:
		opts, err = encodeOptions(nil, deadline, f)
	}
	if err != nil {
		return err
	}
	h := r.handle.Load()
	if h == 0 {
		return closedError("runtime")
	}
	rp, rl := cBytes(req)
	plain := len(opts) == 0 && (cfg == nil || !cfg.hasRaw)
	if plain {
		// No options: through the method handle the runtime cached for
		// this name, when it has one (see methodCache).
		if mh := r.state.methods.lookup(method, f); mh != 0 {
			rc := C.hms_method_call(C.hms_method(mh), rp, rl, b.out(), b.err())
			runtime.KeepAlive(r)
			if rc == C.HMS_OK {
				return nil
			}
			if rc != C.HMS_INVALID_HANDLE {
				return errorFrom(rc, b.err(), f)
			}
			// Dropped meanwhile (or the runtime was freed): go by name.
			r.state.methods.evict(method, f, mh)
		}
	}
	mp, ml := cString(method)
	op, ol := cBytes(opts)
	rc := C.hms_call(C.hms_runtime(h), mp, ml, C.int32_t(f), rp, rl, op, ol, b.out(), b.err())
	runtime.KeepAlive(r)
	if rc != C.HMS_OK {
		if rc == C.HMS_INVALID_HANDLE && r.handle.Load() == 0 {
			return closedError("runtime")
		}
		e := errorFrom(rc, b.err(), f)
		if e.Code == CodeDeadlineExceeded && deadline != 0 {
			e.cause = context.DeadlineExceeded
		}
		return e
	}
	if plain {
		r.learn(h, method, f)
	}
	return nil
}

func newCallConfig(opts []CallOption) *callConfig {
	if len(opts) == 0 {
		return nil
	}
	c := &callConfig{}
	for _, o := range opts {
		o(c)
	}
	return c
}

// CallRaw calls method ("package.Service/Method") with req already encoded
// in format, and returns the answer in that format: the fast path, one
// crossing and one copy.
func (r *Runtime) CallRaw(ctx context.Context, method string, format Format, req []byte, opts ...CallOption) ([]byte, error) {
	return r.invoke(ctx, method, format, req, newCallConfig(opts))
}

// Call calls method with a protobuf request and decodes the answer into
// resp (which must be the method's output type; nil discards it).
func (r *Runtime) Call(ctx context.Context, method string, req, resp proto.Message, opts ...CallOption) error {
	b := getBufs()
	defer putBufs(b)
	raw, err := b.marshal(req)
	if err != nil {
		return err
	}
	if err := r.cross(ctx, method, FormatProtobuf, raw, newCallConfig(opts), b); err != nil {
		return err
	}
	return b.unmarshalAnswer(method, resp)
}

// CallValue calls method with any Go value (maps, structs with `cbor` or
// `json` tags using proto field names, slices; nil is the empty message),
// encoded as CBOR (or JSON with WithFormat(FormatJSON)), and decodes the
// answer into resp (a pointer; *any gives map[string]any; nil discards it).
func (r *Runtime) CallValue(ctx context.Context, method string, req, resp any, opts ...CallOption) error {
	cfg := newCallConfig(opts)
	f := FormatCBOR
	if cfg != nil && cfg.format != 0 {
		f = cfg.format
	}
	raw, err := encodeValue(req, f)
	if err != nil {
		return err
	}
	out, err := r.invoke(ctx, method, f, raw, cfg)
	if err != nil {
		return err
	}
	return decodeValue(out, resp, f)
}

// callProto is Call returning a new message of the output type.
func callProto[T any, P interface {
	*T
	proto.Message
}](ctx context.Context, r *Runtime, method string, req proto.Message, opts ...CallOption) (P, error) {
	resp := P(new(T))
	if err := r.Call(ctx, method, req, resp, opts...); err != nil {
		return nil, err
	}
	return resp, nil
}
