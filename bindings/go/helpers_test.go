package hms_test

import (
	"context"
	"errors"
	"testing"
	"time"

	hms "github.com/hms-ffi/hms/bindings/go"
)

const echo = "hms.sys.v1.System/Echo"

// open returns a runtime closed when the test ends.
func open(t testing.TB, opts ...hms.Option) *hms.Runtime {
	t.Helper()
	rt, err := hms.Open(opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return rt
}

// ctxT is a context that ends with the test (or after 60 s).
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantCode fails unless err is an *hms.Error of code, matched both by
// errors.Is against the sentinel and by errors.As.
func wantCode(t testing.TB, err error, code hms.Code) *hms.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want %v, got no error", code)
	}
	var e *hms.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *hms.Error of %v, got %T: %v", code, err, err)
	}
	if e.Code != code {
		t.Fatalf("want %v, got %v: %v", code, e.Code, err)
	}
	if !errors.Is(err, hms.Sentinel(code)) {
		t.Fatalf("errors.Is(err, sentinel of %v) is false for %v", code, err)
	}
	if e.Message == "" {
		t.Fatalf("%v has no message", err)
	}
	return e
}

// must(f())(t) is f's value, failing the test on f's error.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

// errOf is the error of a (value, error) pair.
func errOf[T any](_ T, err error) error { return err }
