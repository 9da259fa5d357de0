package hms_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
	"github.com/hms-ffi/hms/bindings/go/internal/testpb"
)

func greeter(t testing.TB, rt *hms.Runtime) *hms.Service {
	t.Helper()
	svc := must(rt.Register(hms.ServiceDef{
		Name:    "hms.gotest.v1.Greeter",
		Version: "1.2.3",
		Methods: []hms.Method{
			hms.ProtoMethod("Greet", func(_ context.Context, in *testpb.GreetRequest) (*testpb.GreetResponse, error) {
				if in.Name == "" {
					return nil, hms.NewError(hms.CodeInvalidArgument, "name is required")
				}
				return &testpb.GreetResponse{Greeting: "hello " + in.Name, Count: in.Count + 1, Mood: in.Mood}, nil
			}),
			hms.ProtoMethod("Nothing", func(context.Context, *testpb.GreetRequest) (*testpb.GreetResponse, error) {
				return nil, nil
			}),
		},
	}))(t)
	t.Cleanup(func() { _ = svc.Close() })
	return svc
}

func TestProtoServiceWithItsOwnSchema(t *testing.T) {
	rt := open(t)
	svc := greeter(t, rt)
	if svc.Format() != hms.FormatProtobuf {
		t.Fatalf("format %v", svc.Format())
	}
	ctx := ctxT(t)
	var out testpb.GreetResponse
	req := &testpb.GreetRequest{Name: "go", Count: 1 << 40, At: timestamppb.Now(), Mood: testpb.Mood_MOOD_HAPPY}
	if err := rt.Call(ctx, "hms.gotest.v1.Greeter/Greet", req, &out); err != nil {
		t.Fatal(err)
	}
	if out.Greeting != "hello go" || out.Count != 1<<40+1 || out.Mood != testpb.Mood_MOOD_HAPPY {
		t.Fatalf("got %v", &out)
	}
	// The core knows the registered types: CBOR and JSON callers work too.
	var m map[string]any
	if err := rt.CallValue(ctx, "hms.gotest.v1.Greeter/Greet", map[string]any{"name": "cbor", "count": uint64(41), "mood": "MOOD_GRUMPY"}, &m); err != nil {
		t.Fatal(err)
	}
	if m["greeting"] != "hello cbor" || m["count"] != uint64(42) || m["mood"] != "MOOD_GRUMPY" {
		t.Fatalf("CBOR caller got %#v", m)
	}
	var j map[string]any
	if err := rt.CallValue(ctx, "hms.gotest.v1.Greeter/Greet", map[string]any{"name": "json", "count": "7"}, &j, hms.WithFormat(hms.FormatJSON)); err != nil {
		t.Fatal(err)
	}
	if j["greeting"] != "hello json" || j["count"] != "8" {
		t.Fatalf("JSON caller got %#v", j)
	}
	// A nil answer is the default message.
	if err := rt.Call(ctx, "hms.gotest.v1.Greeter/Nothing", req, &out); err != nil || proto.Size(&out) != 0 {
		t.Fatalf("Nothing: %v, %v", err, &out)
	}
	// The handler's own code reaches the caller.
	e := wantCode(t, rt.Call(ctx, "hms.gotest.v1.Greeter/Greet", &testpb.GreetRequest{}, &out), hms.CodeInvalidArgument)
	if e.Message != "name is required" {
		t.Fatalf("message %q", e.Message)
	}
	// Convert knows the types now.
	js := must(hms.Convert("hms.gotest.v1.GreetRequest", hms.FormatProtobuf, must(proto.Marshal(req))(t), hms.FormatJSON))(t)
	if !strings.Contains(string(js), `"MOOD_HAPPY"`) {
		t.Fatalf("Convert gave %s", js)
	}
	// The registry lists it as a host service.
	d := must(rt.Registry().DescribeService(ctx, "hms.gotest.v1.Greeter"))(t)
	if d.Origin != "host" || d.Version != "1.2.3" || len(d.Methods) != 2 || d.Methods[0].InputType != "hms.gotest.v1.GreetRequest" {
		t.Fatalf("descriptor %v", d)
	}
}

type point struct {
	X int64  `cbor:"x"`
	Y int64  `cbor:"y"`
	N string `cbor:"name,omitempty"`
}

func TestValueAndRawServices(t *testing.T) {
	rt := open(t)
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Geo", Methods: []hms.Method{
		hms.ValueMethod("Mirror", func(_ context.Context, p point) (point, error) {
			return point{X: -p.X, Y: -p.Y, N: p.N}, nil
		}),
		hms.ValueMethod("Sum", func(_ context.Context, xs []int64) (int64, error) {
			var s int64
			for _, x := range xs {
				s += x
			}
			return s, nil
		}),
		hms.RawMethod("Bytes", func(_ context.Context, req *hms.Request) ([]byte, error) {
			if req.Method != "Bytes" || req.Format != hms.FormatCBOR {
				return nil, fmt.Errorf("unexpected %s in %v", req.Method, req.Format)
			}
			return req.Data, nil
		}),
	}}))(t)
	defer svc.Close()
	ctx := ctxT(t)
	var p point
	if err := rt.CallValue(ctx, "gotest.Geo/Mirror", point{X: 3, Y: -4, N: "p"}, &p); err != nil {
		t.Fatal(err)
	}
	if p != (point{X: -3, Y: 4, N: "p"}) {
		t.Fatalf("Mirror gave %+v", p)
	}
	// Untyped methods convert structurally between CBOR and JSON.
	var pj map[string]any
	if err := rt.CallValue(ctx, "gotest.Geo/Mirror", map[string]any{"x": 1, "y": 2}, &pj, hms.WithFormat(hms.FormatJSON)); err != nil {
		t.Fatal(err)
	}
	if pj["x"] != float64(-1) || pj["y"] != float64(-2) {
		t.Fatalf("JSON Mirror gave %#v", pj)
	}
	var sum int64
	if err := rt.CallValue(ctx, "gotest.Geo/Sum", []int64{1, 2, 3, 1 << 40}, &sum); err != nil || sum != 6+1<<40 {
		t.Fatalf("Sum: %d, %v", sum, err)
	}
	var echoed any
	if err := rt.CallValue(ctx, "gotest.Geo/Bytes", []any{"a", uint64(1), []byte{7}}, &echoed); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(echoed) != "[a 1 [7]]" {
		t.Fatalf("Bytes gave %#v", echoed)
	}
	// A request that does not decode into the handler's type is refused.
	wantCode(t, rt.CallValue(ctx, "gotest.Geo/Sum", "not a list", nil), hms.CodeInvalidArgument)
}

func TestRegistrationErrors(t *testing.T) {
	rt := open(t)
	greeter(t, rt)
	_, err := rt.Register(hms.ServiceDef{Name: "hms.gotest.v1.Greeter", Methods: []hms.Method{
		hms.RawMethod("X", func(context.Context, *hms.Request) ([]byte, error) { return nil, nil }),
	}})
	wantCode(t, err, hms.CodeAlreadyExists)
	raw := hms.RawMethod("X", func(context.Context, *hms.Request) ([]byte, error) { return nil, nil })
	for name, def := range map[string]hms.ServiceDef{
		"no methods": {Name: "gotest.Empty"},
		"mixed": {Name: "gotest.Mixed", Methods: []hms.Method{raw, hms.ProtoMethod("P",
			func(context.Context, *sysv1.EchoRequest) (*sysv1.EchoResponse, error) { return nil, nil })}},
		"duplicate":  {Name: "gotest.Dup", Methods: []hms.Method{raw, raw}},
		"no handler": {Name: "gotest.Nil", Methods: []hms.Method{{Name: "M"}}},
		"bad name":   {Name: "", Methods: []hms.Method{raw}},
		"half typed": {Name: "gotest.Half", Methods: []hms.Method{raw.Typed("hms.sys.v1.EchoRequest", "")}},
	} {
		_, err := rt.Register(def)
		e := wantCode(t, err, hms.CodeInvalidArgument)
		t.Logf("%s: %v", name, e)
	}
	_, err = rt.Register(hms.ServiceDef{Name: "gotest.Unknown", Methods: []hms.Method{raw.Typed("no.Such", "no.Such")}})
	wantCode(t, err, hms.CodeNotFound)
}

func TestTypedValueMethod(t *testing.T) {
	rt := open(t)
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.TypedValue", Methods: []hms.Method{
		hms.ValueMethod("Echo", func(_ context.Context, in map[string]any) (map[string]any, error) {
			in["text"] = fmt.Sprint(in["text"], "!")
			return in, nil
		}).Typed("hms.sys.v1.EchoRequest", "hms.sys.v1.EchoResponse"),
	}}))(t)
	defer svc.Close()
	// A protobuf caller of a CBOR service: the core converts both ways.
	var out sysv1.EchoResponse
	if err := rt.Call(ctxT(t), "gotest.TypedValue/Echo", &sysv1.EchoRequest{Text: "typed"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.Text != "typed!" {
		t.Fatalf("got %v", &out)
	}
}

func TestHandlerErrorsAndPanics(t *testing.T) {
	rt := open(t)
	var nilMap map[string]int
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Bad", Methods: []hms.Method{
		hms.ValueMethod("Plain", func(context.Context, any) (any, error) { return nil, errors.New("plain failure") }),
		hms.ValueMethod("Coded", func(context.Context, any) (any, error) {
			return nil, fmt.Errorf("wrapped: %w", hms.NewError(hms.CodePermissionDenied, "not you"))
		}),
		hms.ValueMethod("OK", func(context.Context, any) (any, error) { return nil, hms.NewError(hms.CodeOK, "ok is no error") }),
		hms.ValueMethod("Ctx", func(context.Context, any) (any, error) { return nil, context.Canceled }),
		hms.ValueMethod("PanicString", func(context.Context, any) (any, error) { panic("kaboom") }),
		hms.ValueMethod("PanicError", func(context.Context, any) (any, error) { panic(errors.New("err kaboom")) }),
		hms.ValueMethod("PanicNil", func(context.Context, any) (any, error) { nilMap["x"] = 1; return nil, nil }),
		hms.ValueMethod("Unencodable", func(context.Context, any) (any, error) { return make(chan int), nil }),
		hms.RawMethod("Garbage", func(context.Context, *hms.Request) ([]byte, error) { return []byte{0xff, 0xff}, nil }),
	}}))(t)
	defer svc.Close()
	ctx := ctxT(t)
	call := func(m string) error { return rt.CallValue(ctx, "gotest.Bad/"+m, nil, nil) }
	for _, tc := range []struct {
		method string
		code   hms.Code
		text   string
	}{
		{"Plain", hms.CodeHandlerError, "plain failure"},
		{"Coded", hms.CodePermissionDenied, "not you"},
		{"OK", hms.CodeUnknown, "ok is no error"},
		{"Ctx", hms.CodeCancelled, "context canceled"},
		{"PanicString", hms.CodeHandlerError, "kaboom"},
		{"PanicError", hms.CodeHandlerError, "err kaboom"},
		{"PanicNil", hms.CodeHandlerError, "nil map"},
		{"Unencodable", hms.CodeHandlerError, "chan"},
	} {
		e := wantCode(t, call(tc.method), tc.code)
		if !strings.Contains(e.Message, tc.text) {
			t.Fatalf("%s: message %q lacks %q", tc.method, e.Message, tc.text)
		}
	}
	// Garbage from a handler is caught when the core converts it (JSON caller).
	wantCode(t, rt.CallValue(ctx, "gotest.Bad/Garbage", nil, nil, hms.WithFormat(hms.FormatJSON)), hms.CodeHandlerError)
	// The runtime and the goroutine go on after all of that.
	must(rt.System().Echo(ctx, &sysv1.EchoRequest{Text: "alive"}))(t)
	wantCode(t, call("PanicString"), hms.CodeHandlerError)
}

func TestPanicOnLibraryThread(t *testing.T) {
	// With a deadline the handler runs on a library thread: a panic there
	// is recovered the same way.
	rt := open(t)
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Thread", Methods: []hms.Method{
		hms.ValueMethod("Panic", func(context.Context, any) (any, error) { panic("on a library thread") }),
	}}))(t)
	defer svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		e := wantCode(t, rt.CallValue(ctx, "gotest.Thread/Panic", nil, nil), hms.CodeHandlerError)
		if !strings.Contains(e.Message, "on a library thread") {
			t.Fatalf("message %q", e.Message)
		}
	}
}

func TestHandlersReEnter(t *testing.T) {
	rt := open(t)
	var depthSeen atomic.Int64
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Nest", Methods: []hms.Method{
		hms.ValueMethod("Down", func(ctx context.Context, n int64) (int64, error) {
			depthSeen.Add(1)
			if n == 0 {
				// The bottom calls a built-in service.
				r, err := rt.System().Echo(ctx, &sysv1.EchoRequest{Text: "bottom"})
				if err != nil {
					return 0, err
				}
				return int64(len(r.Text)), nil
			}
			var below int64
			if err := rt.CallValue(ctx, "gotest.Nest/Down", n-1, &below); err != nil {
				return 0, err
			}
			return below + 1, nil
		}),
		hms.ValueMethod("Fail", func(ctx context.Context, _ any) (any, error) {
			// A nested failure travels back up with its code.
			return nil, rt.CallValue(ctx, "gotest.Nest/Nope", nil, nil)
		}),
	}}))(t)
	defer svc.Close()
	for _, ctx := range []context.Context{context.Background(), ctxT(t)} {
		depthSeen.Store(0)
		var got int64
		if err := rt.CallValue(ctx, "gotest.Nest/Down", int64(20), &got); err != nil {
			t.Fatal(err)
		}
		if got != 20+int64(len("bottom")) || depthSeen.Load() != 21 {
			t.Fatalf("got %d after %d levels", got, depthSeen.Load())
		}
	}
	wantCode(t, rt.CallValue(ctxT(t), "gotest.Nest/Fail", nil, nil), hms.CodeNotFound)
}

func TestHandlerClosesItsOwnService(t *testing.T) {
	rt := open(t)
	var svc *hms.Service
	svc = must(rt.Register(hms.ServiceDef{Name: "gotest.Once", Methods: []hms.Method{
		hms.ValueMethod("Last", func(context.Context, any) (string, error) {
			return "bye", svc.Close()
		}),
	}}))(t)
	var s string
	if err := rt.CallValue(ctxT(t), "gotest.Once/Last", nil, &s); err != nil || s != "bye" {
		t.Fatalf("%q, %v", s, err)
	}
	wantCode(t, rt.CallValue(ctxT(t), "gotest.Once/Last", nil, nil), hms.CodeNotFound)
}

func TestDeadlineExceededFromSlowHandler(t *testing.T) {
	rt := open(t)
	release := make(chan struct{})
	handlerDeadline := make(chan time.Duration, 1)
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Slow", Methods: []hms.Method{
		hms.ValueMethod("Sleep", func(ctx context.Context, _ any) (any, error) {
			d, ok := ctx.Deadline()
			if !ok {
				handlerDeadline <- -1
			} else {
				handlerDeadline <- time.Until(d)
			}
			<-release // ignores its deadline: the core stops waiting anyway
			return "late", nil
		}),
	}}))(t)
	defer svc.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := rt.CallValue(ctx, "gotest.Slow/Sleep", nil, nil)
	elapsed := time.Since(start)
	wantCode(t, err, hms.CodeDeadlineExceeded)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, hms.ErrDeadlineExceeded) {
		t.Fatalf("%v: not both DeadlineExceeded", err)
	}
	if elapsed < 100*time.Millisecond || elapsed > 3*time.Second {
		t.Fatalf("the call returned after %v", elapsed)
	}
	// The handler's context carried the call's deadline.
	if d := <-handlerDeadline; d <= 0 || d > 150*time.Millisecond {
		t.Fatalf("the handler's deadline was %v away", d)
	}
	// Other calls go on while the late handler still runs.
	must(rt.System().Echo(ctxT(t), &sysv1.EchoRequest{Text: "meanwhile"}))(t)
}

func TestUnregisterWaitsForCallsInFlight(t *testing.T) {
	rt := open(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Wait", Methods: []hms.Method{
		hms.ValueMethod("Hold", func(context.Context, any) (any, error) {
			close(entered)
			<-release
			finished.Store(true)
			return nil, nil
		}),
	}}))(t)
	done := make(chan error, 1)
	go func() { done <- rt.CallValue(context.Background(), "gotest.Wait/Hold", nil, nil) }()
	<-entered
	closed := make(chan struct{})
	go func() { _ = svc.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a call was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-closed
	if !finished.Load() {
		t.Fatal("Close returned before the handler finished")
	}
	if err := <-done; err != nil {
		t.Fatalf("the call in flight failed: %v", err)
	}
}

func TestManyGoroutinesAtOnce(t *testing.T) {
	rt := open(t)
	var calls atomic.Int64
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Busy", Methods: []hms.Method{
		hms.ValueMethod("Twice", func(_ context.Context, n int64) (int64, error) {
			calls.Add(1)
			return 2 * n, nil
		}),
	}}))(t)
	defer svc.Close()
	const workers, each = 32, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			ctx := context.Background()
			if w%2 == 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 30*time.Second) // library threads
				defer cancel()
			}
			for i := 0; i < each; i++ {
				n := int64(w*1000 + i)
				var got int64
				if err := rt.CallValue(ctx, "gotest.Busy/Twice", n, &got); err != nil || got != 2*n {
					errs <- fmt.Errorf("worker %d: Twice(%d) = %d, %v", w, n, got, err)
					return
				}
				text := fmt.Sprintf("w%d-%d", w, i)
				r, err := rt.System().Echo(ctx, &sysv1.EchoRequest{Text: text})
				if err != nil || r.Text != text {
					errs <- fmt.Errorf("worker %d: echo %q = %v, %v", w, text, r, err)
					return
				}
				if _, err := rt.CallRaw(ctx, "hms.sys.v1.System/Nope", hms.FormatJSON, nil); hms.CodeOf(err) != hms.CodeNotFound {
					errs <- fmt.Errorf("worker %d: unknown method gave %v", w, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if calls.Load() != workers*each {
		t.Fatalf("%d handler calls", calls.Load())
	}
}

func TestCallerThreadService(t *testing.T) {
	rt := open(t)
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Caller", CallerThread: true, Methods: []hms.Method{
		hms.ValueMethod("Hi", func(context.Context, any) (string, error) { return "hi", nil }),
	}}))(t)
	defer svc.Close()
	for _, ctx := range []context.Context{context.Background(), ctxT(t)} {
		var s string
		if err := rt.CallValue(ctx, "gotest.Caller/Hi", nil, &s); err != nil || s != "hi" {
			t.Fatalf("%q, %v", s, err)
		}
	}
}

func TestConcurrentRegisterUnregisterAndCalls(t *testing.T) {
	rt := open(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served atomic.Int64
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			name := fmt.Sprintf("gotest.Churn%d", w)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				svc, err := rt.Register(hms.ServiceDef{Name: name, Methods: []hms.Method{
					hms.ValueMethod("Hit", func(context.Context, any) (any, error) { served.Add(1); return nil, nil }),
				}})
				if err != nil {
					t.Errorf("register %s #%d: %v", name, i, err)
					return
				}
				time.Sleep(time.Millisecond)
				if err := svc.Close(); err != nil {
					t.Errorf("close %s #%d: %v", name, i, err)
					return
				}
			}
		}(w)
	}
	codes := map[hms.Code]int{}
	var mu sync.Mutex
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				err := rt.CallValue(context.Background(), fmt.Sprintf("gotest.Churn%d/Hit", (c+i)%2), nil, nil)
				code := hms.CodeOf(err)
				switch code {
				case hms.CodeOK, hms.CodeNotFound, hms.CodeUnavailable:
				default:
					t.Errorf("call during churn: %v", err)
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		}(c)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if codes[hms.CodeOK] == 0 || served.Load() != int64(codes[hms.CodeOK]) {
		t.Fatalf("codes %v, %d served", codes, served.Load())
	}
}

func TestCloseWhileCallsRun(t *testing.T) {
	rt, err := hms.Open()
	if err != nil {
		t.Fatal(err)
	}
	// The runtime closes the service with itself, waiting for its calls.
	must(rt.Register(hms.ServiceDef{Name: "gotest.Closing", Methods: []hms.Method{
		hms.ValueMethod("Slow", func(context.Context, any) (any, error) { time.Sleep(2 * time.Millisecond); return nil, nil }),
	}}))(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				err := rt.CallValue(context.Background(), "gotest.Closing/Slow", nil, nil)
				switch hms.CodeOf(err) {
				case hms.CodeOK, hms.CodeNotFound, hms.CodeUnavailable:
				case hms.CodeInvalidHandle:
					if !errors.Is(err, hms.ErrClosed) {
						t.Errorf("after close: %v", err)
					}
					return
				default:
					t.Errorf("call during close: %v", err)
					return
				}
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}
