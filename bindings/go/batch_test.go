package hms_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
)

// frameOf builds a batch frame by hand: the words (count, methods, ends)
// then the payload bytes.
func frameOf(words []uint64, payload []byte) []byte {
	out := make([]byte, 8*len(words), 8*len(words)+len(payload))
	for i, w := range words {
		binary.LittleEndian.PutUint64(out[8*i:], w)
	}
	return append(out, payload...)
}

// resultWords splits a result frame of n calls into codes and answers.
func resultWords(t testing.TB, res []byte, n int) (codes []uint64, answers [][]byte) {
	t.Helper()
	if len(res) < 8*(1+2*n) || binary.LittleEndian.Uint64(res) != uint64(n) {
		t.Fatalf("result frame of %d bytes for %d calls", len(res), n)
	}
	area := res[8*(1+2*n):]
	start := uint64(0)
	for i := 0; i < n; i++ {
		codes = append(codes, binary.LittleEndian.Uint64(res[8*(1+i):]))
		end := binary.LittleEndian.Uint64(res[8*(1+n+i):])
		answers = append(answers, area[start:end])
		start = end
	}
	return codes, answers
}

func echoText(t testing.TB, raw []byte) string {
	t.Helper()
	var resp sysv1.EchoResponse
	if err := proto.Unmarshal(raw, &resp); err != nil {
		t.Fatalf("answer %x: %v", raw, err)
	}
	return resp.Text
}

func TestBatchOf1000(t *testing.T) {
	rt := open(t)
	m := method(t, rt, echo, hms.FormatProtobuf)
	reqs := make([][]byte, 1000)
	for i := range reqs {
		reqs[i] = echoBytes(t, fmt.Sprint("call ", i), bytes.Repeat([]byte{byte(i)}, i%70))
	}
	reqs[500] = nil // the empty message
	out, err := m.CallBatch(ctxT(t), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(reqs) {
		t.Fatalf("%d answers", len(out))
	}
	for i, raw := range out {
		if i == 500 {
			if raw == nil || len(raw) != 0 {
				t.Fatalf("answer 500: %#v", raw)
			}
			continue
		}
		if !bytes.Equal(raw, reqs[i]) { // Echo answers its request's bytes
			t.Fatalf("answer %d: %x for %x", i, raw, reqs[i])
		}
	}
	// Answers do not share capacity: appending to one leaves the next alone.
	next := append([]byte(nil), out[2]...)
	_ = append(out[1], 0xee, 0xee)
	if !bytes.Equal(out[2], next) {
		t.Fatal("appending to one answer changed the next")
	}
}

// A failing call does not stop the calls after it; its error is decoded
// from its hms.v1.Status, in the handle's format.
func TestBatchWithFailingCalls(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	m := method(t, rt, echo, hms.FormatProtobuf)
	reqs := make([][]byte, 10)
	for i := range reqs {
		reqs[i] = echoBytes(t, fmt.Sprint(i), nil)
	}
	garbage := []byte{0xff, 0xff, 0xff}
	reqs[3], reqs[7] = garbage, garbage
	out, err := m.CallBatch(ctx, reqs)
	var be *hms.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("want *BatchError, got %T: %v", err, err)
	}
	if be.First != 3 || be.Failed != 2 || be.Code != hms.CodeDecodeError || len(be.Errors) != 10 {
		t.Fatalf("BatchError %+v", be)
	}
	if !errors.Is(err, hms.ErrDecodeError) || errors.Is(err, hms.ErrNotFound) || hms.CodeOf(err) != hms.CodeDecodeError {
		t.Fatalf("errors.Is / CodeOf of %v", err)
	}
	first := wantCode(t, err, hms.CodeDecodeError) // errors.As gives the first failure
	if first != be.Errors[3] {
		t.Fatal("errors.As did not give the first failure")
	}
	want := errOf(hms.RawCall(rt.RawHandle(), echo, hms.FormatProtobuf, garbage)).(*hms.Error)
	for _, i := range []int{3, 7} {
		e := be.Errors[i]
		if e.Message != want.Message || e.Origin != want.Origin {
			t.Fatalf("call %d: %+v, by name %+v", i, e, want)
		}
		if out[i] != nil {
			t.Fatalf("call %d failed but has an answer", i)
		}
	}
	for i, raw := range out {
		if i == 3 || i == 7 {
			continue
		}
		if be.Errors[i] != nil || echoText(t, raw) != fmt.Sprint(i) {
			t.Fatalf("call %d: %v, %x", i, be.Errors[i], raw)
		}
	}
	if !strings.Contains(err.Error(), "2 of 10") || !strings.Contains(err.Error(), "call 3") ||
		!strings.Contains(err.Error(), "DECODE_ERROR") {
		t.Fatalf("message %q", err.Error())
	}
	if u := be.Unwrap(); len(u) != 2 {
		t.Fatalf("Unwrap gave %d errors", len(u))
	}
}

// A host service that refuses some inputs, in a batch mixed with Echo in
// two formats: every call runs, in order, and each error is decoded in its
// own handle's format.
func TestBatchMixingMethods(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	var seen []string
	var mu sync.Mutex
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Check", Methods: []hms.Method{
		hms.ValueMethod("Check", func(_ context.Context, in map[string]any) (any, error) {
			name, _ := in["name"].(string)
			mu.Lock()
			seen = append(seen, name)
			mu.Unlock()
			if strings.HasPrefix(name, "bad") {
				return nil, hms.NewError(hms.CodeFailedPrecondition, "refused "+name)
			}
			return map[string]any{"ok": name}, nil
		}),
	}}))(t)
	defer svc.Close()
	check := method(t, rt, "gotest.Check/Check", hms.FormatCBOR)
	pb := method(t, rt, echo, hms.FormatProtobuf)
	js := method(t, rt, echo, hms.FormatJSON)
	cb := func(name string) []byte { return must(hms.MarshalCBOR(map[string]any{"name": name}))(t) }
	calls := []hms.BatchCall{
		{Method: check, Request: cb("a")},
		{Method: pb, Request: echoBytes(t, "pb", nil)},
		{Method: check, Request: cb("bad1")},
		{Method: js, Request: []byte(`{"text":"js"}`)},
		{Method: js, Request: []byte(`{"text":`)},
		{Method: check, Request: cb("b")},
		{Method: check, Request: cb("bad2")},
		{Method: pb, Request: nil},
	}
	out, err := rt.CallBatch(ctx, calls)
	var be *hms.BatchError
	if !errors.As(err, &be) || be.First != 2 || be.Failed != 3 || be.Code != hms.CodeFailedPrecondition {
		t.Fatalf("%T %+v: %v", err, be, err)
	}
	if e := be.Errors[2]; e.Code != hms.CodeFailedPrecondition || e.Message != "refused bad1" || e.Origin != "gotest.Check/Check" {
		t.Fatalf("CBOR status: %+v", e)
	}
	if e := be.Errors[6]; e.Message != "refused bad2" {
		t.Fatalf("CBOR status: %+v", e)
	}
	want := errOf(hms.RawCall(rt.RawHandle(), echo, hms.FormatJSON, []byte(`{"text":`))).(*hms.Error)
	if e := be.Errors[4]; e.Code != hms.CodeDecodeError || e.Message != want.Message || e.Origin != want.Origin {
		t.Fatalf("JSON status: %+v, by name %+v", e, want)
	}
	if fmt.Sprint(seen) != "[a bad1 b bad2]" {
		t.Fatalf("the service saw %v", seen)
	}
	var ok map[string]any
	if err := hms.UnmarshalCBOR(out[5], &ok); err != nil || ok["ok"] != "b" {
		t.Fatalf("answer 5: %v (%v)", ok, err)
	}
	if echoText(t, out[1]) != "pb" || !strings.Contains(string(out[3]), `"js"`) || out[7] == nil {
		t.Fatalf("answers %q", out)
	}
	// A call without a handle, or with one of another runtime, is refused
	// before anything runs.
	other := method(t, open(t), echo, hms.FormatProtobuf)
	for _, bad := range [][]hms.BatchCall{
		{{Method: check, Request: cb("x")}, {Request: nil}},
		{{Method: check, Request: cb("y")}, {Method: other}},
	} {
		wantCode(t, errOf(rt.CallBatch(ctx, bad)), hms.CodeInvalidArgument)
	}
	if len(seen) != 4 {
		t.Fatalf("a refused batch ran: %v", seen)
	}
}

func TestEmptyBatch(t *testing.T) {
	rt := open(t)
	m := method(t, rt, echo, hms.FormatProtobuf)
	for _, out := range [][][]byte{
		must(m.CallBatch(ctxT(t), nil))(t),
		must(m.CallBatch(ctxT(t), [][]byte{}))(t),
		must(rt.CallBatch(ctxT(t), nil))(t),
	} {
		if out == nil || len(out) != 0 {
			t.Fatalf("empty batch gave %#v", out)
		}
	}
	// Through the library: a frame of count 0 answers count 0.
	res := must(hms.RawCallBatch(frameOf([]uint64{0}, nil)))(t)
	if !bytes.Equal(res, make([]byte, 8)) {
		t.Fatalf("empty result frame %x", res)
	}
}

// Handles that are closed, freed or made up fail their own calls only.
func TestBatchWithBadHandles(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	m := method(t, rt, echo, hms.FormatProtobuf)
	closed := must(rt.Method(echo, hms.FormatProtobuf))(t)
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := rt.CallBatch(ctx, []hms.BatchCall{
		{Method: m, Request: echoBytes(t, "0", nil)},
		{Method: closed, Request: echoBytes(t, "1", nil)},
		{Method: m, Request: echoBytes(t, "2", nil)},
	})
	var be *hms.BatchError
	if !errors.As(err, &be) || be.First != 1 || be.Failed != 1 {
		t.Fatalf("%v", err)
	}
	wantCode(t, be.Errors[1], hms.CodeInvalidHandle)
	if !errors.Is(err, hms.ErrClosed) || !errors.Is(err, hms.ErrInvalidHandle) {
		t.Fatalf("%v does not wrap ErrClosed", err)
	}
	if echoText(t, out[0]) != "0" || out[1] != nil || echoText(t, out[2]) != "2" {
		t.Fatalf("answers %x", out)
	}
	// Raw frames: zero, made-up, freed and wrong-kind handles beside a good one.
	freed := must(hms.RawMethodResolve(rt.RawHandle(), echo, hms.FormatProtobuf))(t)
	hms.RawMethodFree(freed)
	req := echoBytes(t, "ok", nil)
	n := uint64(len(req))
	handles := []uint64{0, 42, freed, rt.RawHandle(), m.RawHandle()}
	words := append([]uint64{uint64(len(handles))}, handles...)
	for range handles[:len(handles)-1] {
		words = append(words, 0)
	}
	words = append(words, n)
	res := must(hms.RawCallBatch(frameOf(words, req)))(t)
	codes, answers := resultWords(t, res, len(handles))
	for i, c := range codes[:len(codes)-1] {
		if hms.Code(c) != hms.CodeInvalidHandle || !strings.Contains(string(answers[i]), "handle") {
			t.Fatalf("call %d: code %v, %s", i, hms.Code(c), answers[i])
		}
	}
	if codes[len(codes)-1] != 0 || echoText(t, answers[len(answers)-1]) != "ok" {
		t.Fatalf("the good call: %v %x", codes, answers[len(answers)-1])
	}
}

// More than HMS_BATCH_MAX_CALLS calls: refused whole, nothing runs.
func TestBatchTooLarge(t *testing.T) {
	rt := open(t)
	var hits atomic.Int64
	defer hitService(t, rt, &hits).Close()
	m := method(t, rt, "gotest.Hit/Hit", hms.FormatCBOR)
	reqs := make([][]byte, hms.BatchMaxCalls+1)
	out, err := m.CallBatch(ctxT(t), reqs)
	e := wantCode(t, err, hms.CodeResourceExhausted)
	if out != nil || hits.Load() != 0 {
		t.Fatalf("a refused batch ran %d calls", hits.Load())
	}
	if !strings.Contains(e.Message, fmt.Sprint(hms.BatchMaxCalls)) {
		t.Fatalf("message %q does not name the limit", e.Message)
	}
	// A frame that merely declares too many calls is refused the same way,
	// without reading (or allocating) what it declares.
	for _, count := range []uint64{hms.BatchMaxCalls + 1, 1 << 62, ^uint64(0)} {
		wantCode(t, errOf(hms.RawCallBatch(frameOf([]uint64{count}, nil))), hms.CodeResourceExhausted)
	}
}

// Malformed frames are refused with INVALID_ARGUMENT before anything runs.
func TestMalformedBatchFrames(t *testing.T) {
	rt := open(t)
	var hits atomic.Int64
	defer hitService(t, rt, &hits).Close()
	h := method(t, rt, "gotest.Hit/Hit", hms.FormatCBOR).RawHandle()
	for name, frame := range map[string][]byte{
		"empty":               nil,
		"short count":         {1, 0, 0},
		"header cut short":    frameOf([]uint64{2, h, h, 0}, nil),
		"ends decrease":       frameOf([]uint64{2, h, h, 2, 1}, []byte{0xa0, 0xa0}),
		"end past the area":   frameOf([]uint64{1, h, 5}, []byte{0xa0}),
		"area longer":         frameOf([]uint64{1, h, 1}, []byte{0xa0, 0xa0}),
		"trailing bytes":      frameOf([]uint64{0}, []byte{1}),
		"odd length":          append(frameOf([]uint64{1, h, 0}, nil), 0),
		"count of 2^40 calls": frameOf([]uint64{1 << 40}, nil),
	} {
		_, err := hms.RawCallBatch(frame)
		code := hms.CodeInvalidArgument
		if name == "count of 2^40 calls" {
			code = hms.CodeResourceExhausted
		}
		e := wantCode(t, err, code)
		if e.Origin == "hms-go" {
			t.Fatalf("%s: refused by the binding, not the library", name)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("%d calls of malformed frames ran", hits.Load())
	}
	// The library is fine afterwards.
	must(hms.RawCallBatch(frameOf([]uint64{1, h, 0}, nil)))(t)
	if hits.Load() != 1 {
		t.Fatal("a good frame did not run")
	}
}

func TestBatchesFromManyGoroutines(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	pb := method(t, rt, echo, hms.FormatProtobuf)
	js := method(t, rt, echo, hms.FormatJSON)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for round := 0; round < 20; round++ {
				calls := make([]hms.BatchCall, 50)
				for i := range calls {
					text := fmt.Sprintf("%d/%d/%d", g, round, i)
					if i%2 == 0 {
						req, _ := proto.Marshal(&sysv1.EchoRequest{Text: text})
						calls[i] = hms.BatchCall{Method: pb, Request: req}
					} else {
						calls[i] = hms.BatchCall{Method: js, Request: []byte(`{"text":"` + text + `"}`)}
					}
				}
				out, err := rt.CallBatch(ctx, calls)
				if err != nil {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
				for i, raw := range out {
					text := fmt.Sprintf("%d/%d/%d", g, round, i)
					if i%2 == 0 {
						var resp sysv1.EchoResponse
						if proto.Unmarshal(raw, &resp) != nil || resp.Text != text {
							t.Errorf("answer %d: %x", i, raw)
							return
						}
					} else if !strings.Contains(string(raw), `"`+text+`"`) {
						t.Errorf("answer %d: %s", i, raw)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
}
