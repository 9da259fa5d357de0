package hms_test

import (
	"context"
	"maps"
	"testing"
	"time"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
)

var traced = []hms.CallOption{
	hms.WithMetadata(map[string]string{"tenant": "acme", "ünï": "cödé"}),
	hms.WithTraceID("trace-42"),
}

// lookService records the CallInfo and deadline each call's ctx carries.
func lookService(t *testing.T, rt *hms.Runtime, seen chan<- context.Context) {
	t.Helper()
	svc := must(rt.Register(hms.ServiceDef{
		Name: "hms.gotest.v1.Look",
		Methods: []hms.Method{
			hms.ValueMethod("Look", func(ctx context.Context, _ map[string]any) (map[string]any, error) {
				seen <- ctx
				return map[string]any{}, nil
			}),
			hms.ValueMethod("Read", func(ctx context.Context, _ map[string]any) (map[string]any, error) {
				_, _ = hms.CallFrom(ctx) // read while the handler runs
				seen <- ctx
				return map[string]any{}, nil
			}),
		},
	}))(t)
	t.Cleanup(func() { _ = svc.Close() })
}

func TestHandlerContextCarriesTheCall(t *testing.T) {
	rt := open(t)
	seen := make(chan context.Context, 2)
	lookService(t, rt, seen)
	// Without a deadline the handler runs on the calling thread; with one,
	// on a library thread: both see the call.
	var out map[string]any
	if err := rt.CallValue(context.Background(), "hms.gotest.v1.Look/Read", map[string]any{}, &out, traced...); err != nil {
		t.Fatal(err)
	}
	timed, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.CallValue(timed, "hms.gotest.v1.Look/Read", map[string]any{}, &out, traced...); err != nil {
		t.Fatal(err)
	}
	plain, withDeadline := <-seen, <-seen
	for _, ctx := range []context.Context{plain, withDeadline} {
		info, ok := hms.CallFrom(ctx)
		if !ok {
			t.Fatal("no CallInfo in the handler's context")
		}
		want := map[string]string{"tenant": "acme", "ünï": "cödé"}
		if info.Method != "hms.gotest.v1.Look/Read" || info.TraceID != "trace-42" || !maps.Equal(info.Metadata, want) || info.Principal != "" {
			t.Fatalf("CallInfo %+v", info)
		}
	}
	if _, ok := plain.Deadline(); ok {
		t.Fatal("a call without a deadline gave its handler one")
	}
	deadline, ok := withDeadline.Deadline()
	if left := time.Until(deadline); !ok || left <= 0 || left > 30*time.Second {
		t.Fatalf("deadline %v (%v left), ok %v", deadline, left, ok)
	}
	if _, ok := hms.CallFrom(context.Background()); ok {
		t.Fatal("CallFrom found a call outside a handler")
	}
}

func TestHandlerContextMetadataIsNeverNil(t *testing.T) {
	rt := open(t)
	seen := make(chan context.Context, 1)
	lookService(t, rt, seen)
	var out map[string]any
	if err := rt.CallValue(ctxT(t), "hms.gotest.v1.Look/Read", map[string]any{}, &out); err != nil {
		t.Fatal(err)
	}
	info, _ := hms.CallFrom(<-seen)
	if info.Metadata == nil || len(info.Metadata) != 0 || info.TraceID != "" {
		t.Fatalf("CallInfo %+v", info)
	}
}

func TestHandlerErrorDetailsReachTheCallerInEveryFormat(t *testing.T) {
	rt := open(t)
	svc := must(rt.Register(hms.ServiceDef{
		Name: "hms.gotest.v1.Deny",
		Methods: []hms.Method{
			hms.ProtoMethod("Read", func(context.Context, *sysv1.EchoRequest) (*sysv1.EchoResponse, error) {
				return nil, &hms.Error{
					Code:    hms.CodePermissionDenied,
					Message: "tenant acme may not read this",
					Details: map[string]string{"rule": "tenant-isolation", "tenant": "acme"},
					Origin:  "policy.v1.Engine",
				}
			}),
			hms.ProtoMethod("Anonymous", func(context.Context, *sysv1.EchoRequest) (*sysv1.EchoResponse, error) {
				return nil, &hms.Error{Code: hms.CodeOK, Message: "not really ok", Details: map[string]string{"attempt": "3"}}
			}),
		},
	}))(t)
	defer svc.Close()
	ctx := ctxT(t)
	for _, f := range []hms.Format{hms.FormatProtobuf, hms.FormatCBOR, hms.FormatJSON} {
		var err error
		if f == hms.FormatProtobuf {
			err = rt.Call(ctx, "hms.gotest.v1.Deny/Read", &sysv1.EchoRequest{Text: "x"}, &sysv1.EchoResponse{})
		} else {
			var out map[string]any
			err = rt.CallValue(ctx, "hms.gotest.v1.Deny/Read", map[string]any{"text": "x"}, &out, hms.WithFormat(f))
		}
		e := wantCode(t, err, hms.CodePermissionDenied)
		want := map[string]string{"rule": "tenant-isolation", "tenant": "acme"}
		if e.Message != "tenant acme may not read this" || !maps.Equal(e.Details, want) || e.Origin != "policy.v1.Engine" {
			t.Fatalf("%v: %#v", f, e)
		}
	}
	err := rt.Call(ctx, "hms.gotest.v1.Deny/Anonymous", &sysv1.EchoRequest{}, &sysv1.EchoResponse{})
	e := wantCode(t, err, hms.CodeUnknown)
	if e.Origin != "hms.gotest.v1.Deny/Anonymous" || e.Details["attempt"] != "3" {
		t.Fatalf("%#v", e)
	}
}

func TestCallInfoIsReadOnlyWhileTheHandlerRuns(t *testing.T) {
	rt := open(t)
	seen := make(chan context.Context, 2)
	lookService(t, rt, seen)
	var out map[string]any
	if err := rt.CallValue(ctxT(t), "hms.gotest.v1.Look/Look", map[string]any{}, &out, traced...); err != nil {
		t.Fatal(err)
	}
	// Never read while its handler ran: the reply is gone, so no CallInfo.
	if info, ok := hms.CallFrom(<-seen); ok {
		t.Fatalf("CallFrom read a finished call: %+v", info)
	}
}
