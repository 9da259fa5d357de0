package hms

/*
#include "hms_go.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

// Request is one call of a host service method, as its handler sees it.
type Request struct {
	// Method is the short method name, e.g. "Greet".
	Method string
	// Format is the service's format: the format of Data and of the answer.
	Format Format
	// Data is the request (a copy: the handler may keep it).
	Data []byte
}

// HandlerFunc answers one call: bytes in the request's format, or an error.
// Returning an *Error answers with its code, and its Details and Origin,
// which reach the caller's *Error (an empty Origin becomes the method's
// full name); context errors answer CANCELLED / DEADLINE_EXCEEDED; any other
// error, or a panic, answers HMS_HANDLER_ERROR with its text. ctx carries
// the call's deadline, if any, and its CallInfo (CallFrom): method,
// metadata and trace id of the caller.
//
// Handlers run on library threads and may call the runtime again. They must
// not call runtime.Goexit (t.FailNow in tests): use t.Error and return.
type HandlerFunc func(ctx context.Context, req *Request) ([]byte, error)

type methodKind int

const (
	kindRaw methodKind = iota
	kindValue
	kindProto
)

// Method is one method of a host service: build it with ProtoMethod,
// ValueMethod or RawMethod.
type Method struct {
	// Name is the short method name, e.g. "Greet".
	Name string
	// InputType and OutputType are full protobuf message names known to the
	// core, or both empty: the method then takes and returns any CBOR/JSON
	// value.
	InputType, OutputType string
	// Handler answers the calls.
	Handler HandlerFunc

	kind  methodKind
	files []protoreflect.FileDescriptor
}

// Typed returns m declaring input and output message types known to the
// core (built in, or registered with RegisterSchema): callers may then use
// any format and the core converts. A ValueMethod then receives the
// message as a CBOR map with proto field names.
func (m Method) Typed(inputType, outputType string) Method {
	m.InputType, m.OutputType = inputType, outputType
	return m
}

// RawMethod is a method whose handler works on bytes in the service's format.
func RawMethod(name string, fn HandlerFunc) Method {
	return Method{Name: name, Handler: fn, kind: kindRaw}
}

// ValueMethod is a method taking and returning Go values through CBOR: In
// is decoded from the request (its zero value for an empty request), Out is
// encoded as the answer. Maps, structs with `cbor` or `json` tags named
// after proto fields, slices and scalars all work.
func ValueMethod[In, Out any](name string, fn func(ctx context.Context, in In) (Out, error)) Method {
	h := func(ctx context.Context, req *Request) ([]byte, error) {
		var in In
		if len(req.Data) > 0 {
			if err := decodeValue(req.Data, &in, req.Format); err != nil {
				return nil, &Error{Code: CodeInvalidArgument, Message: err.(*Error).Message}
			}
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		raw, err := encodeValue(out, req.Format)
		if err != nil {
			return nil, &Error{Code: CodeHandlerError, Message: err.(*Error).Message}
		}
		return raw, nil
	}
	return Method{Name: name, Handler: h, kind: kindValue}
}

// ProtoMethod is a method taking and returning generated protobuf messages
// (In and Out are pointer types such as *sysv1.EchoRequest). Their .proto
// files are registered with the core when the service is. A nil Out
// answers the default message.
func ProtoMethod[In, Out proto.Message](name string, fn func(ctx context.Context, in In) (Out, error)) Method {
	var zeroIn In
	var zeroOut Out
	inType := zeroIn.ProtoReflect().Type()
	outDesc := zeroOut.ProtoReflect().Descriptor()
	h := func(ctx context.Context, req *Request) ([]byte, error) {
		in := inType.New().Interface().(In)
		if err := proto.Unmarshal(req.Data, in); err != nil {
			return nil, &Error{Code: CodeDecodeError, Message: fmt.Sprintf("request is not a %s: %v", inType.Descriptor().FullName(), err)}
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		if isNilMessage(out) {
			return nil, nil
		}
		raw, err := proto.Marshal(out)
		if err != nil {
			return nil, &Error{Code: CodeHandlerError, Message: fmt.Sprintf("cannot encode the answer: %v", err)}
		}
		return raw, nil
	}
	return Method{
		Name:       name,
		InputType:  string(inType.Descriptor().FullName()),
		OutputType: string(outDesc.FullName()),
		Handler:    h,
		kind:       kindProto,
		files:      []protoreflect.FileDescriptor{inType.Descriptor().ParentFile(), outDesc.ParentFile()},
	}
}

func isNilMessage(m proto.Message) bool {
	if m == nil {
		return true
	}
	return !m.ProtoReflect().IsValid()
}

// ServiceDef describes a service implemented in Go.
type ServiceDef struct {
	// Name is the full service name, "package.Service", e.g. "demo.v1.Greeter".
	Name        string
	Version     string
	Description string
	Methods     []Method
	// CallerThread registers the service HMS_SERVICE_CALLER_THREAD (only
	// for parity with hosts that need it; Go accepts calls on any thread).
	CallerThread bool
	// Export also serves the service to other processes over the runtime's
	// NATS transport until it is closed (HMS_SERVICE_EXPORT, ABI 1.3), as
	// if RuntimeConfig.nats.export_services named it. A runtime without a
	// transport refuses it with CodeFailedPrecondition. With CallerThread
	// too (ABI 1.4), exported calls wait until Runtime.Serve runs them.
	Export bool
}

// serviceState is what the C handler's user_data (a cgo.Handle) points at.
type serviceState struct {
	name    string
	format  Format
	methods map[string]HandlerFunc
	calls   atomic.Int64
}

// Service is a service implemented in Go, registered with Runtime.Register.
// Close unregisters it (waiting for calls in flight); it is idempotent.
// The runtime closes its services when it closes.
type Service struct {
	// Name is the full service name.
	Name   string
	format Format
	handle atomic.Uint64
	ud     cgo.Handle
	rt     *runtimeState
	once   sync.Once
	err    error
}

// Format is the format the service's handlers receive and answer in:
// FormatProtobuf when every method is a ProtoMethod, else FormatCBOR.
func (s *Service) Format() Format { return s.format }

// Close unregisters the service. New calls get NOT_FOUND at once; Close
// waits until the calls in flight have returned (except one running on this
// goroutine's thread: a handler may close its own service).
func (s *Service) Close() error {
	s.once.Do(func() {
		h := s.handle.Swap(0)
		rc := C.hms_service_unregister(C.hms_service(h))
		s.ud.Delete()
		if s.rt != nil {
			// The runtime's cached method handles: none of a service gone.
			s.rt.methods.flush(false)
			s.rt.remove(s)
		}
		if rc != C.HMS_OK && rc != C.HMS_INVALID_HANDLE {
			s.err = errorFrom(rc, nil, FormatJSON)
		}
	})
	return s.err
}

func (s *Service) closeChild() { _ = s.Close() }

// Register registers a service implemented in Go. Every method of a
// FormatProtobuf service must be a ProtoMethod; ValueMethod and RawMethod
// services use CBOR (callers may still use any format: the core converts
// typed methods, and converts untyped values between CBOR and JSON).
func (r *Runtime) Register(def ServiceDef) (*Service, error) {
	if len(def.Methods) == 0 {
		return nil, bindingError(CodeInvalidArgument, nil, "service %q has no methods", def.Name)
	}
	st := &serviceState{name: def.Name, methods: map[string]HandlerFunc{}}
	protoCount := 0
	var files []protoreflect.FileDescriptor
	desc := &hmsv1.ServiceDescriptor{Name: def.Name, Version: def.Version, Description: def.Description}
	methods := append([]Method(nil), def.Methods...)
	sort.Slice(methods, func(i, j int) bool { return methods[i].Name < methods[j].Name })
	for _, m := range methods {
		if m.Handler == nil {
			return nil, bindingError(CodeInvalidArgument, nil, "method %s/%s has no handler", def.Name, m.Name)
		}
		if _, dup := st.methods[m.Name]; dup {
			return nil, bindingError(CodeInvalidArgument, nil, "method %s/%s is given twice", def.Name, m.Name)
		}
		st.methods[m.Name] = m.Handler
		if m.kind == kindProto {
			protoCount++
			files = append(files, m.files...)
		}
		desc.Methods = append(desc.Methods, &hmsv1.MethodDescriptor{
			Name: m.Name, InputType: m.InputType, OutputType: m.OutputType,
		})
	}
	switch protoCount {
	case len(methods):
		st.format = FormatProtobuf
	case 0:
		st.format = FormatCBOR
	default:
		return nil, bindingError(CodeInvalidArgument, nil,
			"service %q mixes ProtoMethod with value or raw methods: a service has one format; register two services", def.Name)
	}
	if len(files) > 0 {
		if err := RegisterSchema(files...); err != nil {
			return nil, err
		}
	}
	raw, err := proto.Marshal(desc)
	if err != nil {
		return nil, bindingError(CodeInvalidArgument, err, "cannot encode the descriptor of %q: %v", def.Name, err)
	}
	h := r.handle.Load()
	if h == 0 {
		return nil, closedError("runtime")
	}
	var flags C.uint32_t = C.HMS_SERVICE_DEFAULT
	if def.CallerThread {
		flags |= C.HMS_SERVICE_CALLER_THREAD
	}
	if def.Export {
		flags |= C.HMS_SERVICE_EXPORT
	}
	// The descriptor travels as protobuf, so the registration format is
	// given by the descriptor's encoding: re-encode for CBOR services.
	format := st.format
	if format == FormatCBOR {
		raw, err = descriptorCBOR(desc)
		if err != nil {
			return nil, err
		}
	}
	ud := cgo.NewHandle(st)
	var out C.hms_service
	b := getBufs()
	defer putBufs(b)
	p, n := cBytes(raw)
	rc := C.hms_go_service_register(C.hms_runtime(h), C.int32_t(format), p, n, flags, C.uintptr_t(ud), &out, b.err())
	runtime.KeepAlive(r)
	if rc != C.HMS_OK {
		ud.Delete()
		if rc == C.HMS_INVALID_HANDLE && r.handle.Load() == 0 {
			return nil, closedError("runtime")
		}
		return nil, errorFrom(rc, b.err(), format)
	}
	s := &Service{Name: def.Name, format: format, ud: ud, rt: r.state}
	s.handle.Store(uint64(out))
	if !r.state.add(s) {
		// The runtime closed meanwhile; the core dropped the service with it.
		s.rt = nil
		_ = s.Close()
		return nil, closedError("runtime")
	}
	return s, nil
}

func descriptorCBOR(d *hmsv1.ServiceDescriptor) ([]byte, error) {
	methods := make([]map[string]string, 0, len(d.Methods))
	for _, m := range d.Methods {
		mm := map[string]string{"name": m.Name}
		if m.InputType != "" {
			mm["input_type"] = m.InputType
		}
		if m.OutputType != "" {
			mm["output_type"] = m.OutputType
		}
		methods = append(methods, mm)
	}
	v := map[string]any{"name": d.Name, "methods": methods}
	if d.Version != "" {
		v["version"] = d.Version
	}
	if d.Description != "" {
		v["description"] = d.Description
	}
	return encodeValue(v, FormatCBOR)
}

// CallInfo is what a handler knows of the call it serves (hms.v1.CallContext,
// ABI 1.2), from the caller's CallOptions. Read it with CallFrom.
type CallInfo struct {
	// Method is the full method name, "package.Service/Method".
	Method string
	// Metadata is the caller's CallOptions.metadata (never nil).
	Metadata map[string]string
	// TraceID is the caller's CallOptions.trace_id, empty without one.
	TraceID string
	// Principal is the verified caller when the runtime authenticates
	// calls (RuntimeConfig.security, docs/security.md), else empty.
	Principal string
	// Roles are the roles of the verified credential (the token file's,
	// a JWT's "roles" claim); empty without a principal.
	Roles []string
	// PrincipalAttributes are the other string claims of a verified JWT
	// (never nil).
	PrincipalAttributes map[string]string
}

type callInfoKey struct{}

// CallFrom returns the CallInfo of the handler call ctx belongs to, and
// false for any other context. The call's deadline, when it has one, is
// ctx.Deadline(). The CallInfo is read from the library on first use, which
// must come while the handler runs: a context kept past its handler gives
// false unless it was read before.
func CallFrom(ctx context.Context) (*CallInfo, bool) {
	call, ok := ctx.Value(callInfoKey{}).(*handlerCall)
	if !ok {
		return nil, false
	}
	return call.info()
}

// handlerCall reads a handler's CallInfo lazily, so a handler that never
// asks does not pay for it, and never after the handler returned, when
// its reply is gone.
type handlerCall struct {
	mu    sync.Mutex
	reply *C.hms_reply // nil once the handler returned
	read  *CallInfo
}

func (h *handlerCall) info() (*CallInfo, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.read == nil {
		if h.reply == nil {
			return nil, false
		}
		h.read = readCallInfo(h.reply)
	}
	return h.read, true
}

func (h *handlerCall) finish() {
	h.mu.Lock()
	h.reply = nil
	h.mu.Unlock()
}

// readCallInfo is the hms.v1.CallContext of a running handler's reply.
func readCallInfo(reply *C.hms_reply) *CallInfo {
	var msg hmsv1.CallContext
	b := getBufs()
	if C.hms_reply_context(reply, C.int32_t(FormatProtobuf), b.out(), nil) == C.HMS_OK {
		// Unreadable bytes leave the fields empty: the call still runs.
		_ = proto.Unmarshal(unsafe.Slice((*byte)(unsafe.Pointer(b.out().data)), int(b.out().len)), &msg)
	}
	putBufs(b)
	info := &CallInfo{Method: msg.Method, Metadata: msg.Metadata, TraceID: msg.TraceId,
		Principal: msg.Principal, Roles: msg.Roles, PrincipalAttributes: msg.PrincipalAttributes}
	if info.Metadata == nil {
		info.Metadata = map[string]string{}
	}
	if info.PrincipalAttributes == nil {
		info.PrincipalAttributes = map[string]string{}
	}
	return info
}

// handlerContext is the context of one handler call: Background carrying
// its call (CallFrom), with the call's deadline (hms_reply_remaining_ms)
// when it has one. finish must run when the handler returns.
func handlerContext(reply *C.hms_reply) (ctx context.Context, cancel context.CancelFunc, finish func()) {
	call := &handlerCall{reply: reply}
	ctx = context.WithValue(context.Background(), callInfoKey{}, call)
	ms := int64(C.hms_reply_remaining_ms(reply))
	if ms < 0 {
		return ctx, func() {}, call.finish
	}
	ctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Duration(ms)*time.Millisecond))
	return ctx, cancel, call.finish
}

func replyError(reply *C.hms_reply, code Code, message string) {
	p, n := cString(message)
	C.hms_reply_error(reply, C.int32_t(code), p, n)
}

func replySet(reply *C.hms_reply, data []byte) {
	p, n := cBytes(data)
	C.hms_reply_set(reply, p, n)
}

// replyStatus answers with the whole hms.v1.Status of e, so the caller's
// *Error gets its Details and Origin (an empty Origin becomes the method's
// full name). It falls back to code and text if the Status is refused.
func replyStatus(reply *C.hms_reply, code Code, message string, e *Error) {
	raw, err := proto.Marshal(&hmsv1.Status{Code: int32(code), Message: message, Details: e.Details, Origin: e.Origin})
	if err == nil {
		p, n := cBytes(raw)
		if C.hms_reply_status(reply, C.int32_t(FormatProtobuf), p, n) == C.HMS_OK {
			return
		}
	}
	replyError(reply, code, message)
}

// errorAnswer maps a handler's error to a status code and text.
func errorAnswer(err error) (Code, string) {
	var e *Error
	if errors.As(err, &e) {
		code := e.Code
		if code == CodeOK {
			code = CodeUnknown
		}
		msg := e.Message
		if msg == "" {
			msg = err.Error()
		}
		return code, msg
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded, err.Error()
	case errors.Is(err, context.Canceled):
		return CodeCancelled, err.Error()
	}
	return CodeHandlerError, err.Error()
}

// dispatch runs one handler call; it never lets a panic escape.
func dispatch(reply *C.hms_reply, st *serviceState, method string, format Format, data []byte) {
	defer func() {
		if p := recover(); p != nil {
			replyError(reply, CodeHandlerError, fmt.Sprintf("panic in %s/%s: %v", st.name, method, p))
		}
	}()
	st.calls.Add(1)
	fn := st.methods[method]
	if fn == nil {
		replyError(reply, CodeUnimplemented, fmt.Sprintf("%s has no handler for %q", st.name, method))
		return
	}
	ctx, cancel, finish := handlerContext(reply)
	defer cancel()
	defer finish()
	out, err := fn(ctx, &Request{Method: method, Format: format, Data: data})
	if err != nil {
		code, msg := errorAnswer(err)
		var e *Error
		if errors.As(err, &e) && (len(e.Details) > 0 || e.Origin != "") {
			replyStatus(reply, code, msg, e)
			return
		}
		replyError(reply, code, msg)
		return
	}
	replySet(reply, out)
}

// handlerTrampoline is the body of the exported C handler (trampoline.go).
func handlerTrampoline(reply *C.hms_reply, method *C.char, methodLen C.size_t, format C.int32_t,
	request *C.uint8_t, requestLen C.size_t, userData unsafe.Pointer) {
	defer func() {
		// Last line of defence: nothing unwinds into the library.
		if p := recover(); p != nil {
			replyError(reply, CodeHandlerError, fmt.Sprintf("panic in the Go trampoline: %v", p))
		}
	}()
	v := cgo.Handle(uintptr(userData)).Value()
	st := v.(*serviceState)
	name := C.GoStringN(method, C.int(methodLen))
	var data []byte
	if requestLen > 0 && request != nil {
		data = C.GoBytes(unsafe.Pointer(request), C.int(requestLen))
	}
	dispatch(reply, st, name, Format(format), data)
}
