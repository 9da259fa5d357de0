package hms_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
)

// method resolves name in format on rt, closed when the test ends.
func method(t testing.TB, rt *hms.Runtime, name string, f hms.Format) *hms.MethodHandle {
	t.Helper()
	m, err := rt.Method(name, f)
	if err != nil {
		t.Fatalf("Method(%s, %v): %v", name, f, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close of %s: %v", name, err)
		}
	})
	return m
}

func echoBytes(t testing.TB, text string, payload []byte) []byte {
	t.Helper()
	return must(proto.Marshal(&sysv1.EchoRequest{Text: text, Payload: payload}))(t)
}

func TestMethodHandleRawAndTyped(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	m := method(t, rt, echo, hms.FormatProtobuf)
	if m.Name() != echo || m.Format() != hms.FormatProtobuf || m.Runtime() != rt || m.RawHandle() == 0 {
		t.Fatalf("handle of %q in %v, raw %#x", m.Name(), m.Format(), m.RawHandle())
	}
	req := echoBytes(t, "raw", []byte{0, 1, 255})
	out := must(m.CallRaw(ctx, req))(t)
	var resp sysv1.EchoResponse
	if err := proto.Unmarshal(out, &resp); err != nil || resp.Text != "raw" || !bytes.Equal(resp.Payload, []byte{0, 1, 255}) {
		t.Fatalf("raw echo gave %v (%v)", &resp, err)
	}
	// The answer is the caller's: a second call does not overwrite it.
	keep := append([]byte(nil), out...)
	must(m.CallRaw(ctx, echoBytes(t, "other", nil)))(t)
	if !bytes.Equal(out, keep) {
		t.Fatal("an answer changed under its caller")
	}
	// Typed, and nil request / nil response.
	var typed sysv1.EchoResponse
	if err := m.Call(ctx, &sysv1.EchoRequest{Text: "typed"}, &typed); err != nil || typed.Text != "typed" {
		t.Fatalf("typed echo gave %v (%v)", &typed, err)
	}
	if err := m.Call(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	// An empty answer is an empty, non-nil slice.
	if out := must(m.CallRaw(ctx, nil))(t); out == nil || len(out) != 0 {
		t.Fatalf("empty echo gave %#v", out)
	}
	// A JSON handle: raw JSON both ways, and no typed calls.
	j := method(t, rt, echo, hms.FormatJSON)
	if out := must(j.CallRaw(ctx, []byte(`{"text":"json"}`)))(t); !strings.Contains(string(out), `"json"`) {
		t.Fatalf("JSON echo gave %s", out)
	}
	wantCode(t, j.Call(ctx, &sysv1.EchoRequest{}, nil), hms.CodeInvalidArgument)
}

// A handle answers exactly as a call by name: same codes, messages, origins.
func TestMethodHandleErrorsMatchCallsByName(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	for _, tc := range []struct {
		f   hms.Format
		req []byte
	}{
		{hms.FormatProtobuf, []byte{0xff, 0xff, 0xff}},
		{hms.FormatJSON, []byte(`{"text":`)},
		{hms.FormatCBOR, []byte{0xa1}},
		{hms.FormatProtobuf, bytes.Repeat([]byte{'x'}, 5<<20)},
	} {
		m := method(t, rt, echo, tc.f)
		byName := errOf(hms.RawCall(rt.RawHandle(), echo, tc.f, tc.req))
		if byName == nil {
			t.Fatalf("%v %q: no error by name", tc.f, tc.req[:min(len(tc.req), 16)])
		}
		want := byName.(*hms.Error)
		for name, err := range map[string]error{
			"handle":        errOf(m.CallRaw(ctx, tc.req)),
			"raw handle":    errOf(hms.RawMethodCall(m.RawHandle(), tc.f, tc.req)),
			"Runtime.Call":  errOf(rt.CallRaw(ctx, echo, tc.f, tc.req)),
			"Runtime again": errOf(rt.CallRaw(ctx, echo, tc.f, tc.req)),
		} {
			got := wantCode(t, err, want.Code)
			if got.Message != want.Message || got.Origin != want.Origin || fmt.Sprint(got.Details) != fmt.Sprint(want.Details) {
				t.Errorf("%s, %v: %+v, by name %+v", name, tc.f, got, want)
			}
		}
	}
}

func TestMethodResolveErrors(t *testing.T) {
	rt := open(t)
	for _, tc := range []struct {
		name string
		f    hms.Format
		code hms.Code
	}{
		{"hms.sys.v1.System/Nope", hms.FormatProtobuf, hms.CodeNotFound},
		{"no.such.Service/Echo", hms.FormatCBOR, hms.CodeNotFound},
		{"not-a-full-name", hms.FormatJSON, hms.CodeInvalidArgument},
		{"", hms.FormatProtobuf, hms.CodeInvalidArgument},
		{"hms.sys.v1.System/\xff", hms.FormatProtobuf, hms.CodeInvalidArgument},
		{echo, 0, hms.CodeInvalidArgument},
		{echo, 99, hms.CodeInvalidArgument},
	} {
		m, err := rt.Method(tc.name, tc.f)
		if m != nil {
			t.Fatalf("%q: a handle came with the error", tc.name)
		}
		e := wantCode(t, err, tc.code)
		if tc.code == hms.CodeNotFound && !strings.Contains(e.Message, strings.SplitN(tc.name, "/", 2)[0]) && !strings.Contains(e.Message, "Nope") {
			t.Errorf("%q: message %q names nothing", tc.name, e.Message)
		}
	}
}

func TestMethodHandleClose(t *testing.T) {
	rt := open(t)
	m, err := rt.Method(echo, hms.FormatProtobuf)
	if err != nil {
		t.Fatal(err)
	}
	h := m.RawHandle()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if m.RawHandle() != 0 {
		t.Fatal("Close left the handle")
	}
	for name, err := range map[string]error{
		"raw":   errOf(m.CallRaw(ctxT(t), nil)),
		"typed": m.Call(ctxT(t), nil, nil),
		"batch": errOf(m.CallBatch(ctxT(t), [][]byte{nil})),
	} {
		wantCode(t, err, hms.CodeInvalidHandle)
		if !errors.Is(err, hms.ErrClosed) {
			t.Fatalf("%s: %v does not wrap ErrClosed", name, err)
		}
	}
	// The library's handle is gone too, for good.
	wantCode(t, errOf(hms.RawMethodCall(h, hms.FormatProtobuf, nil)), hms.CodeInvalidHandle)
	if c := hms.RawMethodFree(h); c != hms.CodeInvalidHandle {
		t.Fatalf("free after Close: %v", c)
	}
	// The runtime is unharmed.
	must(rt.CallRaw(ctxT(t), echo, hms.FormatProtobuf, nil))(t)
}

func TestMethodHandleAfterRuntimeClose(t *testing.T) {
	rt, err := hms.Open()
	if err != nil {
		t.Fatal(err)
	}
	m := must(rt.Method(echo, hms.FormatProtobuf))(t)
	j := must(rt.Method(echo, hms.FormatJSON))(t)
	h := m.RawHandle()
	must(m.CallRaw(ctxT(t), nil))(t)
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"raw":     errOf(m.CallRaw(ctxT(t), nil)),
		"typed":   m.Call(ctxT(t), nil, nil),
		"batch":   errOf(m.CallBatch(ctxT(t), [][]byte{nil})),
		"rtbatch": errOf(rt.CallBatch(ctxT(t), []hms.BatchCall{{Method: m}, {Method: j}})),
		"resolve": errOf(rt.Method(echo, hms.FormatProtobuf)),
	} {
		wantCode(t, err, hms.CodeInvalidHandle)
		if !errors.Is(err, hms.ErrClosed) {
			t.Fatalf("%s: %v does not wrap ErrClosed", name, err)
		}
	}
	// The runtime freed its handles with itself.
	wantCode(t, errOf(hms.RawMethodCall(h, hms.FormatProtobuf, nil)), hms.CodeInvalidHandle)
	if m.Close() != nil || j.Close() != nil || m.Close() != nil {
		t.Fatal("Close after the runtime's Close failed")
	}
}

func TestRawMethodHandles(t *testing.T) {
	rt := open(t)
	for _, h := range []uint64{0, 1, 42, 0xdeadbeef, 1<<63 | 7, ^uint64(0)} {
		wantCode(t, errOf(hms.RawMethodCall(h, hms.FormatProtobuf, nil)), hms.CodeInvalidHandle)
		if c := hms.RawMethodFree(h); c != hms.CodeInvalidHandle {
			t.Fatalf("hms_method_free(%#x) = %v", h, c)
		}
	}
	wantCode(t, errOf(hms.RawMethodResolve(0, echo, hms.FormatProtobuf)), hms.CodeInvalidHandle)
	mh := must(hms.RawMethodResolve(rt.RawHandle(), echo, hms.FormatProtobuf))(t)
	must(hms.RawMethodCall(mh, hms.FormatProtobuf, nil))(t)
	// Wrong kinds: a runtime is no method, a method no runtime.
	wantCode(t, errOf(hms.RawMethodCall(rt.RawHandle(), hms.FormatProtobuf, nil)), hms.CodeInvalidHandle)
	if c := hms.RawMethodFree(rt.RawHandle()); c != hms.CodeInvalidHandle {
		t.Fatalf("freeing a runtime as a method: %v", c)
	}
	wantCode(t, errOf(hms.RawCall(mh, echo, hms.FormatProtobuf, nil)), hms.CodeInvalidHandle)
	if c := hms.RawRuntimeFree(mh); c != hms.CodeInvalidHandle {
		t.Fatalf("freeing a method as a runtime: %v", c)
	}
	// Freed: stale for good, a second free included.
	if c := hms.RawMethodFree(mh); c != hms.CodeOK {
		t.Fatalf("free: %v", c)
	}
	if c := hms.RawMethodFree(mh); c != hms.CodeInvalidHandle {
		t.Fatalf("second free: %v", c)
	}
	wantCode(t, errOf(hms.RawMethodCall(mh, hms.FormatProtobuf, nil)), hms.CodeInvalidHandle)
	// A new handle never gets the freed one back.
	if again := method(t, rt, echo, hms.FormatProtobuf); again.RawHandle() == mh {
		t.Fatal("a freed method handle was reused")
	}
}

// hitService registers gotest.Hit with a method Hit counting its calls and
// answering {"n": count}.
func hitService(t testing.TB, rt *hms.Runtime, hits *atomic.Int64) *hms.Service {
	t.Helper()
	return must(rt.Register(hms.ServiceDef{Name: "gotest.Hit", Methods: []hms.Method{
		hms.ValueMethod("Hit", func(context.Context, any) (any, error) {
			return map[string]any{"n": hits.Add(1)}, nil
		}),
	}}))(t)
}

// A handle names the method: while its service is unregistered it answers
// NOT_FOUND, as a call by name does, and it reaches the service registered
// anew under that name.
func TestMethodHandleOfUnregisteredService(t *testing.T) {
	rt := open(t)
	ctx := context.Background() // no deadline: the handle's own path
	var hits atomic.Int64
	svc := hitService(t, rt, &hits)
	m := method(t, rt, "gotest.Hit/Hit", hms.FormatCBOR)
	must(m.CallRaw(ctx, nil))(t)
	// The runtime's own calls by name learn a handle too.
	must(rt.CallRaw(ctx, "gotest.Hit/Hit", hms.FormatCBOR, nil))(t)
	must(rt.CallRaw(ctx, "gotest.Hit/Hit", hms.FormatCBOR, nil))(t)
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	want := errOf(hms.RawCall(rt.RawHandle(), "gotest.Hit/Hit", hms.FormatCBOR, nil)).(*hms.Error)
	if want.Code != hms.CodeNotFound {
		t.Fatalf("by name: %v", want)
	}
	for name, err := range map[string]error{
		"handle":       errOf(m.CallRaw(ctx, nil)),
		"handle+ctx":   errOf(m.CallRaw(ctxT(t), nil)),
		"batch":        errOf(m.CallBatch(ctx, [][]byte{nil})),
		"Runtime.Call": errOf(rt.CallRaw(ctx, "gotest.Hit/Hit", hms.FormatCBOR, nil)),
		"CallValue":    rt.CallValue(ctx, "gotest.Hit/Hit", nil, nil),
	} {
		e := wantCode(t, err, hms.CodeNotFound)
		if e.Message != want.Message {
			t.Errorf("%s: %q, by name %q", name, e.Message, want.Message)
		}
	}
	wantCode(t, errOf(rt.Method("gotest.Hit/Hit", hms.FormatCBOR)), hms.CodeNotFound)
	// Back again: the old handle, a new one and calls by name reach the new
	// service.
	var hits2 atomic.Int64
	svc2 := hitService(t, rt, &hits2)
	defer svc2.Close()
	must(m.CallRaw(ctx, nil))(t)
	must(method(t, rt, "gotest.Hit/Hit", hms.FormatCBOR).CallRaw(ctx, nil))(t)
	must(rt.CallRaw(ctx, "gotest.Hit/Hit", hms.FormatCBOR, nil))(t)
	if hits.Load() != 3 || hits2.Load() != 3 {
		t.Fatalf("hits %d and %d", hits.Load(), hits2.Load())
	}
}

func TestMethodHandleContexts(t *testing.T) {
	rt := open(t)
	var hits atomic.Int64
	defer hitService(t, rt, &hits).Close()
	m := method(t, rt, "gotest.Hit/Hit", hms.FormatCBOR)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, tc := range []struct {
		ctx  context.Context
		code hms.Code
	}{{cancelled, hms.CodeCancelled}, {expired, hms.CodeDeadlineExceeded}} {
		wantCode(t, errOf(m.CallRaw(tc.ctx, nil)), tc.code)
		wantCode(t, errOf(m.CallBatch(tc.ctx, [][]byte{nil})), tc.code)
		wantCode(t, errOf(rt.CallBatch(tc.ctx, []hms.BatchCall{{Method: m}})), tc.code)
	}
	if hits.Load() != 0 {
		t.Fatalf("%d calls were made with a done context", hits.Load())
	}
	// A nil context is Background; a context with a deadline still calls.
	var none context.Context
	must(m.CallRaw(none, nil))(t)
	must(m.CallRaw(ctxT(t), nil))(t)
	if hits.Load() != 2 {
		t.Fatalf("%d calls", hits.Load())
	}
}

// hms_method_call carries no options: with a deadline, the call goes by
// name with deadline_ms, so a slow handler is still cut off.
func TestMethodHandleHonoursDeadlines(t *testing.T) {
	rt := open(t)
	release := make(chan struct{})
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.SlowM", Methods: []hms.Method{
		hms.ValueMethod("Sleep", func(ctx context.Context, _ any) (any, error) {
			if _, ok := ctx.Deadline(); !ok {
				return nil, errors.New("no deadline reached the handler")
			}
			<-release
			return nil, nil
		}),
	}}))(t)
	defer svc.Close()
	defer close(release)
	m := method(t, rt, "gotest.SlowM/Sleep", hms.FormatCBOR)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := errOf(m.CallRaw(ctx, nil))
	wantCode(t, err, hms.CodeDeadlineExceeded)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v does not wrap context.DeadlineExceeded", err)
	}
}

// An unreachable handle is freed by its cleanup.
func TestMethodHandleCleanupBackstop(t *testing.T) {
	rt := open(t)
	h := func() uint64 {
		m := must(rt.Method(echo, hms.FormatProtobuf))(t)
		return m.RawHandle()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
		if errOf(hms.RawMethodCall(h, hms.FormatProtobuf, nil)) != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cleanup never freed an unreachable method handle")
		}
	}
	wantCode(t, errOf(hms.RawMethodCall(h, hms.FormatProtobuf, nil)), hms.CodeInvalidHandle)
}

// Calls by name through the runtime's cache of handles answer exactly as
// the library's hms_call, however the registry changes.
func TestRuntimeMethodCacheParity(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	req := echoBytes(t, "cached", nil)
	for i := 0; i < 3; i++ {
		out := must(rt.CallRaw(ctx, echo, hms.FormatProtobuf, req))(t)
		if want := must(hms.RawCall(rt.RawHandle(), echo, hms.FormatProtobuf, req))(t); !bytes.Equal(out, want) {
			t.Fatalf("call %d: %x, by name %x", i, out, want)
		}
	}
	// gRPC-style names with a leading '/' keep their name in errors.
	for _, name := range []string{"/" + echo, echo} {
		for i := 0; i < 2; i++ {
			got := wantCode(t, errOf(rt.CallRaw(ctx, name, hms.FormatProtobuf, []byte{0xff})), hms.CodeDecodeError)
			want := errOf(hms.RawCall(rt.RawHandle(), name, hms.FormatProtobuf, []byte{0xff})).(*hms.Error)
			if got.Origin != want.Origin || got.Message != want.Message {
				t.Fatalf("%s: %+v, by name %+v", name, got, want)
			}
		}
	}
	// Without the cache, the same answers.
	plain := open(t)
	hms.DisableMethodCache(plain)
	for _, f := range []hms.Format{hms.FormatProtobuf, hms.FormatCBOR, hms.FormatJSON} {
		var r []byte
		if f == hms.FormatProtobuf {
			r = req
		}
		a := must(rt.CallRaw(ctx, echo, f, r))(t)
		b := must(plain.CallRaw(ctx, echo, f, r))(t)
		if !bytes.Equal(a, b) {
			t.Fatalf("%v: %x without the cache %x", f, a, b)
		}
	}
	// A service registered, called, closed and registered again, many times.
	for round := 0; round < 5; round++ {
		var hits atomic.Int64
		svc := hitService(t, rt, &hits)
		for i := 0; i < 3; i++ {
			var out map[string]any
			if err := rt.CallValue(ctx, "gotest.Hit/Hit", nil, &out); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if fmt.Sprint(out["n"]) != fmt.Sprint(i+1) {
				t.Fatalf("round %d: answer %v from a stale service", round, out)
			}
		}
		if err := svc.Close(); err != nil {
			t.Fatal(err)
		}
		wantCode(t, rt.CallValue(ctx, "gotest.Hit/Hit", nil, nil), hms.CodeNotFound)
	}
}

func TestMethodHandlesFromManyGoroutines(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	shared := method(t, rt, echo, hms.FormatProtobuf)
	var churned atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// A service coming and going while handles and calls by name run.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			svc, err := rt.Register(hms.ServiceDef{Name: "gotest.ChurnM", Methods: []hms.Method{
				hms.ValueMethod("Hit", func(context.Context, any) (any, error) { churned.Add(1); return nil, nil }),
			}})
			if err != nil {
				t.Errorf("register: %v", err)
				return
			}
			time.Sleep(time.Millisecond)
			if err := svc.Close(); err != nil {
				t.Errorf("close: %v", err)
				return
			}
		}
	}()
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			own, err := rt.Method(echo, hms.FormatProtobuf)
			if err != nil {
				t.Error(err)
				return
			}
			defer own.Close()
			for i := 0; i < 200; i++ {
				text := fmt.Sprintf("g%d-%d", g, i)
				req, _ := proto.Marshal(&sysv1.EchoRequest{Text: text})
				var outs [][]byte
				for _, call := range []func() ([]byte, error){
					func() ([]byte, error) { return shared.CallRaw(ctx, req) },
					func() ([]byte, error) { return own.CallRaw(ctx, req) },
					func() ([]byte, error) { return rt.CallRaw(ctx, echo, hms.FormatProtobuf, req) },
					func() ([]byte, error) {
						res, err := shared.CallBatch(ctx, [][]byte{req, req})
						if err != nil {
							return nil, err
						}
						return res[1], nil
					},
				} {
					out, err := call()
					if err != nil {
						t.Errorf("goroutine %d: %v", g, err)
						return
					}
					outs = append(outs, out)
				}
				for _, out := range outs {
					var resp sysv1.EchoResponse
					if err := proto.Unmarshal(out, &resp); err != nil || resp.Text != text {
						t.Errorf("goroutine %d got %v for %s", g, &resp, text)
						return
					}
				}
				err := rt.CallValue(ctx, "gotest.ChurnM/Hit", nil, nil)
				switch hms.CodeOf(err) {
				case hms.CodeOK, hms.CodeNotFound, hms.CodeUnavailable:
				default:
					t.Errorf("call during churn: %v", err)
					return
				}
			}
		}(g)
	}
	// Handles resolved and closed concurrently with all of that.
	for i := 0; i < 100; i++ {
		m := must(rt.Method(echo, hms.FormatCBOR))(t)
		must(m.CallRaw(ctx, nil))(t)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
}
