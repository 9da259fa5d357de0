package hms_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
	"github.com/hms-ffi/hms/bindings/go/internal/cbench"
)

// BenchmarkBareCgoABIVersion is the floor: one cgo call of
// hms_abi_version(), nothing else.
func BenchmarkBareCgoABIVersion(b *testing.B) {
	var sink uint32
	for b.Loop() {
		major, _ := hms.ABIVersion()
		sink += major
	}
	_ = sink
}

// payload64 is a 64-byte echo payload.
var payload64 = bytes.Repeat([]byte{'x'}, 64)

// BenchmarkEcho64Method: protobuf bytes in, bytes out through a method
// handle (MethodHandle.CallRaw, hms_method_call): the fastest single call.
func BenchmarkEcho64Method(b *testing.B) {
	rt := open(b)
	m := method(b, rt, echo, hms.FormatProtobuf)
	req, _ := proto.Marshal(&sysv1.EchoRequest{Payload: payload64})
	ctx := context.Background()
	for b.Loop() {
		if _, err := m.CallRaw(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEcho64MethodTyped: generated types through a method handle.
func BenchmarkEcho64MethodTyped(b *testing.B) {
	rt := open(b)
	m := method(b, rt, echo, hms.FormatProtobuf)
	req := &sysv1.EchoRequest{Payload: payload64}
	var resp sysv1.EchoResponse
	ctx := context.Background()
	for b.Loop() {
		if err := m.Call(ctx, req, &resp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchEcho64: 1,000 raw Echo 64 B calls in one CallBatch; one op
// is one batch, "ns/call" the time per call inside it.
func BenchmarkBatchEcho64(b *testing.B) {
	rt := open(b)
	m := method(b, rt, echo, hms.FormatProtobuf)
	req, _ := proto.Marshal(&sysv1.EchoRequest{Payload: payload64})
	reqs := make([][]byte, 1000)
	for i := range reqs {
		reqs[i] = req
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := m.CallBatch(ctx, reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(reqs)), "ns/call")
}

// BenchmarkEcho64Raw: protobuf bytes in, bytes out (Runtime.CallRaw by
// name), one crossing through the runtime's cached method handle.
func BenchmarkEcho64Raw(b *testing.B) {
	rt := open(b)
	req, _ := proto.Marshal(&sysv1.EchoRequest{Payload: payload64})
	ctx := context.Background()
	for b.Loop() {
		if _, err := rt.CallRaw(ctx, echo, hms.FormatProtobuf, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEcho64RawUncached: Runtime.CallRaw by name with the runtime's
// cache of method handles off: hms_call with the name every time.
func BenchmarkEcho64RawUncached(b *testing.B) {
	rt := open(b)
	hms.DisableMethodCache(rt)
	req, _ := proto.Marshal(&sysv1.EchoRequest{Payload: payload64})
	ctx := context.Background()
	for b.Loop() {
		if _, err := rt.CallRaw(ctx, echo, hms.FormatProtobuf, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEcho64Proto: generated types in and out (Call), marshalling included.
func BenchmarkEcho64Proto(b *testing.B) {
	rt := open(b)
	req := &sysv1.EchoRequest{Payload: payload64}
	var resp sysv1.EchoResponse
	ctx := context.Background()
	for b.Loop() {
		if err := rt.Call(ctx, echo, req, &resp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEcho64CBOR: a Go map through CBOR (CallValue).
func BenchmarkEcho64CBOR(b *testing.B) {
	rt := open(b)
	req := map[string]any{"payload": payload64}
	ctx := context.Background()
	for b.Loop() {
		var resp map[string]any
		if err := rt.CallValue(ctx, echo, req, &resp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEcho64Parallel: the raw path from every P at once.
func BenchmarkEcho64Parallel(b *testing.B) {
	rt := open(b)
	req, _ := proto.Marshal(&sysv1.EchoRequest{Payload: payload64})
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := rt.CallRaw(ctx, echo, hms.FormatProtobuf, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGoServiceRoundTrip: a call into a Go handler and back (the
// library calls the //export trampoline on the calling thread).
func BenchmarkGoServiceRoundTrip(b *testing.B) {
	rt := open(b)
	svc, err := rt.Register(hms.ServiceDef{Name: "gobench.Echo", Methods: []hms.Method{
		hms.RawMethod("Echo", func(_ context.Context, r *hms.Request) ([]byte, error) { return r.Data, nil }),
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	req, _ := hms.MarshalCBOR(map[string]any{"payload": payload64})
	ctx := context.Background()
	for b.Loop() {
		if _, err := rt.CallRaw(ctx, "gobench.Echo/Echo", hms.FormatCBOR, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEchoVsBare interleaves blocks of the bare cgo call, of Echo
// 64 B through every Go path (method handle raw and typed, Runtime.CallRaw
// with and without its cache of handles, Runtime.Call), of C loops of
// hms_method_call and hms_call (the core's own cost, no Go in the loop) and
// of a Go loop of bare cgo calls of hms_call (cgo plus the core, no
// binding), so all see the same machine load, and reports each one's ns
// per call and the ratios to the bare call.
func BenchmarkEchoVsBare(b *testing.B) {
	rt := open(b)
	uncached := open(b)
	hms.DisableMethodCache(uncached)
	m := method(b, rt, echo, hms.FormatProtobuf)
	req := &sysv1.EchoRequest{Payload: payload64}
	raw, _ := proto.Marshal(req)
	var resp sysv1.EchoResponse
	ctx := context.Background()
	const block = 2000
	var sink uint32
	type path struct {
		name string
		run  func() (time.Duration, error)
		sum  time.Duration
	}
	timed := func(f func() error) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			t0 := time.Now()
			for i := 0; i < block; i++ {
				if err := f(); err != nil {
					return 0, err
				}
			}
			return time.Since(t0), nil
		}
	}
	paths := []*path{
		{name: "bare", run: timed(func() error { major, _ := hms.ABIVersion(); sink += major; return nil })},
		{name: "method", run: timed(func() error { _, err := m.CallRaw(ctx, raw); return err })},
		{name: "method-typed", run: timed(func() error { return m.Call(ctx, req, &resp) })},
		{name: "raw", run: timed(func() error { _, err := rt.CallRaw(ctx, echo, hms.FormatProtobuf, raw); return err })},
		{name: "raw-uncached", run: timed(func() error {
			_, err := uncached.CallRaw(ctx, echo, hms.FormatProtobuf, raw)
			return err
		})},
		{name: "proto", run: timed(func() error { return rt.Call(ctx, echo, req, &resp) })},
		{name: "core-C-method", run: func() (time.Duration, error) { return cbench.MethodLoop(m.RawHandle(), raw, block) }},
		{name: "core-C-call", run: func() (time.Duration, error) {
			return cbench.CallLoop(rt.RawHandle(), echo, int32(hms.FormatProtobuf), raw, block)
		}},
		{name: "cgo+core-call", run: func() (time.Duration, error) {
			return cbench.CallEach(rt.RawHandle(), echo, int32(hms.FormatProtobuf), raw, block)
		}},
	}
	blocks := 0
	for b.Loop() {
		for _, p := range paths {
			d, err := p.run()
			if err != nil {
				b.Fatalf("%s: %v", p.name, err)
			}
			p.sum += d
		}
		blocks++
	}
	_ = sink
	n := float64(blocks * block)
	for _, p := range paths {
		b.ReportMetric(float64(p.sum.Nanoseconds())/n, p.name+"-ns/call")
		if p.name != "bare" {
			b.ReportMetric(float64(p.sum)/float64(paths[0].sum), p.name+"/bare")
		}
	}
}
