package hms_test

import (
	"context"
	"errors"
	"testing"

	hms "github.com/hms-ffi/hms/bindings/go"
)

func TestZeroAndMadeUpHandles(t *testing.T) {
	for _, h := range []uint64{0, 1, 42, 0xdeadbeef, 1<<63 | 7, ^uint64(0)} {
		_, err := hms.RawCall(h, echo, hms.FormatCBOR, nil)
		wantCode(t, err, hms.CodeInvalidHandle)
		if c := hms.RawRuntimeFree(h); c != hms.CodeInvalidHandle {
			t.Fatalf("hms_runtime_free(%#x) = %v", h, c)
		}
		if c := hms.RawServiceUnregister(h); c != hms.CodeInvalidHandle {
			t.Fatalf("hms_service_unregister(%#x) = %v", h, c)
		}
		if c := hms.RawUnsubscribe(h); c != hms.CodeInvalidHandle {
			t.Fatalf("hms_unsubscribe(%#x) = %v", h, c)
		}
		_, err = hms.RawPoll(h, 0)
		wantCode(t, err, hms.CodeInvalidHandle)
	}
}

func TestStaleAndDoubleFreedHandles(t *testing.T) {
	rt, err := hms.Open()
	if err != nil {
		t.Fatal(err)
	}
	h := rt.RawHandle()
	if _, err := hms.RawCall(h, echo, hms.FormatCBOR, nil); err != nil {
		t.Fatalf("live handle: %v", err)
	}
	if c := hms.RawRuntimeFree(h); c != hms.CodeOK {
		t.Fatalf("first free: %v", c)
	}
	if c := hms.RawRuntimeFree(h); c != hms.CodeInvalidHandle {
		t.Fatalf("second free: %v", c)
	}
	_, err = hms.RawCall(h, echo, hms.FormatCBOR, nil)
	wantCode(t, err, hms.CodeInvalidHandle)
	// A new runtime never gets the stale handle back.
	rt2 := open(t)
	if rt2.RawHandle() == h {
		t.Fatal("a freed handle was reused")
	}
	_, err = hms.RawCall(h, echo, hms.FormatCBOR, nil)
	wantCode(t, err, hms.CodeInvalidHandle)
	// Close of the wrapper whose handle was freed behind its back reports it.
	wantCode(t, rt.Close(), hms.CodeInvalidHandle)
	if err := rt.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestWrongKindHandles(t *testing.T) {
	rt := open(t)
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Kind", Methods: []hms.Method{
		hms.ValueMethod("M", func(context.Context, any) (any, error) { return nil, nil }),
	}}))(t)
	sub := must(rt.Subscribe(nil))(t)
	// A service handle is not a runtime, a runtime is not a subscription, ...
	_, err := hms.RawCall(svc.RawHandle(), echo, hms.FormatCBOR, nil)
	wantCode(t, err, hms.CodeInvalidHandle)
	if c := hms.RawRuntimeFree(sub.RawHandle()); c != hms.CodeInvalidHandle {
		t.Fatalf("freeing a subscription as a runtime: %v", c)
	}
	if c := hms.RawUnsubscribe(rt.RawHandle()); c != hms.CodeInvalidHandle {
		t.Fatalf("unsubscribing a runtime: %v", c)
	}
	if c := hms.RawServiceUnregister(sub.RawHandle()); c != hms.CodeInvalidHandle {
		t.Fatalf("unregistering a subscription: %v", c)
	}
	// Service and subscription handles: stale after their own free.
	sh, uh := svc.RawHandle(), sub.RawHandle()
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if c := hms.RawServiceUnregister(sh); c != hms.CodeInvalidHandle {
		t.Fatalf("second unregister: %v", c)
	}
	if c := hms.RawUnsubscribe(uh); c != hms.CodeInvalidHandle {
		t.Fatalf("second unsubscribe: %v", c)
	}
	if svc.Close() != nil || sub.Close() != nil {
		t.Fatal("Close is not idempotent")
	}
}

func TestClosedWrappers(t *testing.T) {
	rt, err := hms.Open()
	if err != nil {
		t.Fatal(err)
	}
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Closed", Methods: []hms.Method{
		hms.ValueMethod("M", func(context.Context, any) (any, error) { return nil, nil }),
	}}))(t)
	sub := must(rt.Subscribe(nil))(t)
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if !rt.Closed() || rt.RawHandle() != 0 || svc.RawHandle() != 0 || sub.RawHandle() != 0 {
		t.Fatal("Close left handles behind")
	}
	for name, err := range map[string]error{
		"call":      rt.CallValue(context.Background(), echo, nil, nil),
		"raw":       errOf(rt.CallRaw(context.Background(), echo, hms.FormatCBOR, nil)),
		"register":  errOf(rt.Register(hms.ServiceDef{Name: "gotest.After", Methods: []hms.Method{hms.RawMethod("M", nil)}})),
		"subscribe": errOf(rt.Subscribe(nil)),
		"next":      errOf(sub.Next(context.Background())),
	} {
		if name == "register" {
			// A method without a handler is refused before the handle is looked at.
			wantCode(t, err, hms.CodeInvalidArgument)
			continue
		}
		wantCode(t, err, hms.CodeInvalidHandle)
		if !errors.Is(err, hms.ErrClosed) {
			t.Fatalf("%s: %v does not wrap ErrClosed", name, err)
		}
	}
	if rt.Close() != nil || svc.Close() != nil || sub.Close() != nil {
		t.Fatal("Close after Close failed")
	}
}
