package hms

/*
#include "hms_go.h"
*/
import "C"

import (
	"context"
	"errors"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/events/v1"
)

// pollSlice is the longest single wait inside hms_poll, so a context
// cancelled while Next waits is seen within this time.
const pollSlice = 50 * time.Millisecond

// Subscription is a subscription to a runtime's events
// (hms.events.v1.Event): polled with Next or Events, or pushed to a
// function (SubscribeFunc). Close is idempotent; the runtime closes its
// subscriptions when it closes.
type Subscription struct {
	handle atomic.Uint64
	rt     *runtimeState
	push   *pushState
	ud     cgo.Handle
	once   sync.Once
	err    error

	mu      sync.Mutex
	lastErr error
}

type pushState struct {
	fn     func(*eventsv1.Event)
	panics atomic.Int64
}

// Subscribe subscribes to the events matching filter (nil or empty matches
// all) for polling with Next or Events.
func (r *Runtime) Subscribe(filter *eventsv1.EventFilter) (*Subscription, error) {
	return r.subscribe(filter, nil)
}

// SubscribeFunc subscribes with a function the library calls on one of its
// threads for every matching event, in order. A panic in fn is recovered
// and counted (CallbackPanics), never propagated. Close waits until fn has
// returned for the last time (unless called from inside fn).
func (r *Runtime) SubscribeFunc(filter *eventsv1.EventFilter, fn func(*eventsv1.Event)) (*Subscription, error) {
	if fn == nil {
		return nil, bindingError(CodeInvalidArgument, nil, "SubscribeFunc needs a function")
	}
	return r.subscribe(filter, &pushState{fn: fn})
}

func (r *Runtime) subscribe(filter *eventsv1.EventFilter, push *pushState) (*Subscription, error) {
	var raw []byte
	if filter != nil {
		var err error
		if raw, err = proto.Marshal(filter); err != nil {
			return nil, bindingError(CodeInvalidArgument, err, "cannot encode the event filter: %v", err)
		}
	}
	h := r.handle.Load()
	if h == 0 {
		return nil, closedError("runtime")
	}
	s := &Subscription{rt: r.state, push: push}
	var out C.hms_subscription
	b := getBufs()
	defer putBufs(b)
	p, n := cBytes(raw)
	var rc C.int32_t
	if push == nil {
		rc = C.hms_subscribe(C.hms_runtime(h), C.HMS_FORMAT_PROTOBUF, p, n, &out, b.err())
	} else {
		s.ud = cgo.NewHandle(push)
		rc = C.hms_go_subscribe_push(C.hms_runtime(h), C.HMS_FORMAT_PROTOBUF, p, n, C.uintptr_t(s.ud), &out, b.err())
	}
	runtime.KeepAlive(r)
	if rc != C.HMS_OK {
		if push != nil {
			s.ud.Delete()
		}
		if rc == C.HMS_INVALID_HANDLE && r.handle.Load() == 0 {
			return nil, closedError("runtime")
		}
		return nil, errorFrom(rc, b.err(), FormatProtobuf)
	}
	s.handle.Store(uint64(out))
	if !r.state.add(s) {
		s.rt = nil
		_ = s.Close()
		return nil, closedError("runtime")
	}
	return s, nil
}

// CallbackPanics is how many times the push function panicked.
func (s *Subscription) CallbackPanics() int64 {
	if s.push == nil {
		return 0
	}
	return s.push.panics.Load()
}

// Close closes the subscription: pollers wake with an error wrapping
// ErrClosed; a push function is not called again once Close returns.
func (s *Subscription) Close() error {
	s.once.Do(func() {
		h := s.handle.Swap(0)
		rc := C.hms_unsubscribe(C.hms_subscription(h))
		if s.push != nil {
			s.ud.Delete()
		}
		if s.rt != nil {
			s.rt.remove(s)
		}
		if rc != C.HMS_OK && rc != C.HMS_INVALID_HANDLE {
			s.err = errorFrom(rc, nil, FormatJSON)
		}
	})
	return s.err
}

func (s *Subscription) closeChild() { _ = s.Close() }

// Next returns the next event, waiting until one comes, ctx is done, or
// the subscription closes. It polls in slices of at most 50 ms, so a
// cancelled ctx is noticed within that time. Errors: ctx's (as *Error with
// CodeCancelled / CodeDeadlineExceeded wrapping ctx.Err()), CodeCancelled
// when the runtime closed the subscription, ErrClosed after Close,
// CodeFailedPrecondition on a push subscription. Several goroutines may
// call Next at once; each event goes to one of them.
func (s *Subscription) Next(ctx context.Context) (*eventsv1.Event, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	b := getBufs()
	defer putBufs(b)
	for {
		if ctx.Err() != nil {
			return nil, nextContextError(ctx)
		}
		wait := pollSlice
		if d, ok := ctx.Deadline(); ok {
			left := time.Until(d)
			if left <= 0 {
				return nil, nextContextError(ctx)
			}
			wait = min(wait, left)
		}
		ms := C.int32_t((wait + time.Millisecond - 1) / time.Millisecond)
		h := s.handle.Load()
		if h == 0 {
			return nil, closedError("subscription")
		}
		rc := C.hms_poll(C.hms_subscription(h), ms, b.out(), b.err())
		runtime.KeepAlive(s)
		switch rc {
		case C.HMS_OK:
			ev := &eventsv1.Event{}
			raw := unsafe.Slice((*byte)(unsafe.Pointer(b.out().data)), int(b.out().len))
			if err := proto.Unmarshal(raw, ev); err != nil {
				return nil, bindingError(CodeDecodeError, err, "cannot decode an event: %v", err)
			}
			return ev, nil
		case C.HMS_DEADLINE_EXCEEDED:
			continue
		case C.HMS_INVALID_HANDLE, C.HMS_CANCELLED:
			if s.handle.Load() == 0 {
				return nil, closedError("subscription")
			}
		}
		return nil, errorFrom(rc, b.err(), FormatProtobuf)
	}
}

func nextContextError(ctx context.Context) *Error {
	err := ctx.Err()
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		return bindingError(CodeDeadlineExceeded, context.DeadlineExceeded, "no event before the context's deadline")
	}
	return bindingError(CodeCancelled, err, "the context was cancelled while waiting for an event")
}

// Events returns a channel of the subscription's events, fed by one
// goroutine calling Next until ctx is done or the subscription closes; the
// channel is then closed and Err tells why.
func (s *Subscription) Events(ctx context.Context) <-chan *eventsv1.Event {
	ch := make(chan *eventsv1.Event)
	s.mu.Lock()
	s.lastErr = nil
	s.mu.Unlock()
	go func() {
		defer close(ch)
		for {
			ev, err := s.Next(ctx)
			if err != nil {
				s.mu.Lock()
				s.lastErr = err
				s.mu.Unlock()
				return
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				s.mu.Lock()
				s.lastErr = nextContextError(ctx)
				s.mu.Unlock()
				return
			}
		}
	}()
	return ch
}

// Err is the error that closed the latest Events channel (nil while it is open).
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// eventTrampoline is the body of the exported push callback (trampoline.go).
func eventTrampoline(event *C.uint8_t, eventLen C.size_t, userData unsafe.Pointer) {
	var st *pushState
	defer func() {
		// Nothing unwinds into the library: a panic is counted and dropped.
		if p := recover(); p != nil && st != nil {
			st.panics.Add(1)
		}
	}()
	st = cgo.Handle(uintptr(userData)).Value().(*pushState)
	ev := &eventsv1.Event{}
	var raw []byte
	if eventLen > 0 && event != nil {
		raw = unsafe.Slice((*byte)(unsafe.Pointer(event)), int(eventLen))
	}
	if err := proto.Unmarshal(raw, ev); err != nil {
		panic(err)
	}
	st.fn(ev)
}
