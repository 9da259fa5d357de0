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

// BenchmarkEcho64Raw: protobuf bytes in, bytes out (CallRaw), one crossing.
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

// BenchmarkEchoVsBare interleaves blocks of Echo 64 B (raw and typed) with
// blocks of the bare cgo call, of a C loop of hms_call (the core's own
// cost, no Go in the loop) and of a Go loop of bare cgo calls of hms_call
// (cgo plus the core, no binding), so all see the same machine load, and reports
// each one's ns per call and the ratios (the target: Echo within 8x of bare).
func BenchmarkEchoVsBare(b *testing.B) {
	rt := open(b)
	req := &sysv1.EchoRequest{Payload: payload64}
	raw, _ := proto.Marshal(req)
	var resp sysv1.EchoResponse
	ctx := context.Background()
	const block = 2000
	var bare, echoRaw, echoProto, core, cgoCore time.Duration
	var sink uint32
	blocks := 0
	for b.Loop() {
		t0 := time.Now()
		for i := 0; i < block; i++ {
			major, _ := hms.ABIVersion()
			sink += major
		}
		t1 := time.Now()
		for i := 0; i < block; i++ {
			if _, err := rt.CallRaw(ctx, echo, hms.FormatProtobuf, raw); err != nil {
				b.Fatal(err)
			}
		}
		t2 := time.Now()
		for i := 0; i < block; i++ {
			if err := rt.Call(ctx, echo, req, &resp); err != nil {
				b.Fatal(err)
			}
		}
		t3 := time.Now()
		c, err := cbench.CallLoop(rt.RawHandle(), echo, int32(hms.FormatProtobuf), raw, block)
		if err != nil {
			b.Fatal(err)
		}
		core += c
		c, err = cbench.CallEach(rt.RawHandle(), echo, int32(hms.FormatProtobuf), raw, block)
		if err != nil {
			b.Fatal(err)
		}
		cgoCore += c
		bare += t1.Sub(t0)
		echoRaw += t2.Sub(t1)
		echoProto += t3.Sub(t2)
		blocks++
	}
	_ = sink
	n := float64(blocks * block)
	b.ReportMetric(float64(bare.Nanoseconds())/n, "bare-ns/call")
	b.ReportMetric(float64(echoRaw.Nanoseconds())/n, "raw-ns/call")
	b.ReportMetric(float64(echoProto.Nanoseconds())/n, "proto-ns/call")
	b.ReportMetric(float64(core.Nanoseconds())/n, "core-C-ns/call")
	b.ReportMetric(float64(cgoCore.Nanoseconds())/n, "cgo+core-ns/call")
	b.ReportMetric(float64(echoRaw)/float64(bare), "raw/bare")
	b.ReportMetric(float64(echoProto)/float64(bare), "proto/bare")
}
