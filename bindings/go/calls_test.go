package hms_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

func TestEchoProtobuf(t *testing.T) {
	rt := open(t)
	req := &sysv1.EchoRequest{Text: "héllo", Payload: []byte{0, 1, 2, 255}}
	var resp sysv1.EchoResponse
	if err := rt.Call(ctxT(t), echo, req, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Text != req.Text || !bytes.Equal(resp.Payload, req.Payload) {
		t.Fatalf("echo gave %v", &resp)
	}
	typed := must(rt.System().Echo(ctxT(t), req))(t)
	if typed.Text != req.Text {
		t.Fatalf("System().Echo gave %v", typed)
	}
	// nil request is the default message; nil response discards the answer.
	if err := rt.Call(ctxT(t), echo, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestEchoCBORMapsAndStructs(t *testing.T) {
	rt := open(t)
	var m map[string]any
	if err := rt.CallValue(ctxT(t), echo, map[string]any{"text": "hi", "payload": []byte{9, 8}}, &m); err != nil {
		t.Fatal(err)
	}
	if m["text"] != "hi" || !bytes.Equal(m["payload"].([]byte), []byte{9, 8}) {
		t.Fatalf("map echo gave %#v", m)
	}
	type echoMsg struct {
		Payload []byte `cbor:"payload,omitempty" json:"payload,omitempty"`
		Text    string `cbor:"text,omitempty" json:"text,omitempty"`
	}
	var out echoMsg
	if err := rt.CallValue(ctxT(t), echo, echoMsg{Text: "struct", Payload: []byte("x")}, &out); err != nil {
		t.Fatal(err)
	}
	if out.Text != "struct" || string(out.Payload) != "x" {
		t.Fatalf("struct echo gave %#v", out)
	}
	// nil is the empty message; the answer of an empty message is empty.
	var empty any
	if err := rt.CallValue(ctxT(t), echo, nil, &empty); err != nil {
		t.Fatal(err)
	}
	if mm, ok := empty.(map[string]any); !ok || len(mm) != 0 {
		t.Fatalf("empty echo gave %#v", empty)
	}
}

func TestEchoJSON(t *testing.T) {
	rt := open(t)
	var m map[string]any
	err := rt.CallValue(ctxT(t), echo, map[string]any{"text": "json", "payload": "AAE="}, &m, hms.WithFormat(hms.FormatJSON))
	if err != nil {
		t.Fatal(err)
	}
	if m["text"] != "json" || m["payload"] != "AAE=" {
		t.Fatalf("JSON echo gave %#v", m)
	}
}

func TestEchoRawBytesInEveryFormat(t *testing.T) {
	rt := open(t)
	pb := must(proto.Marshal(&sysv1.EchoRequest{Text: "raw"}))(t)
	cb := must(hms.MarshalCBOR(map[string]any{"text": "raw"}))(t)
	js := []byte(`{"text":"raw"}`)
	for _, tc := range []struct {
		f   hms.Format
		req []byte
	}{{hms.FormatProtobuf, pb}, {hms.FormatCBOR, cb}, {hms.FormatJSON, js}} {
		t.Run(tc.f.String(), func(t *testing.T) {
			out := must(rt.CallRaw(ctxT(t), echo, tc.f, tc.req))(t)
			var text string
			switch tc.f {
			case hms.FormatProtobuf:
				var r sysv1.EchoResponse
				if err := proto.Unmarshal(out, &r); err != nil {
					t.Fatal(err)
				}
				text = r.Text
			case hms.FormatCBOR:
				var r map[string]any
				if err := hms.UnmarshalCBOR(out, &r); err != nil {
					t.Fatal(err)
				}
				text, _ = r["text"].(string)
			default:
				var r map[string]string
				if err := json.Unmarshal(out, &r); err != nil {
					t.Fatal(err)
				}
				text = r["text"]
			}
			if text != "raw" {
				t.Fatalf("%v echo gave %q", tc.f, out)
			}
			// And the conversion between formats agrees.
			conv := must(hms.Convert("hms.sys.v1.EchoResponse", tc.f, out, hms.FormatJSON))(t)
			if !strings.Contains(string(conv), `"raw"`) {
				t.Fatalf("Convert gave %s", conv)
			}
		})
	}
}

func TestSystemHealthAndVersion(t *testing.T) {
	rt := open(t, hms.WithName("go-tests"))
	h := must(rt.System().Health(ctxT(t)))(t)
	if h.RuntimeName != "go-tests" || h.Status != sysv1.HealthResponse_SERVING {
		t.Fatalf("health %v", h)
	}
	v := must(rt.System().Version(ctxT(t)))(t)
	major, minor := hms.ABIVersion()
	if v.AbiMajor != major || v.AbiMinor != minor || v.LibraryVersion != hms.LibraryVersion() {
		t.Fatalf("version %v", v)
	}
}

func TestUnknownMethodAndService(t *testing.T) {
	rt := open(t)
	wantCode(t, rt.CallValue(ctxT(t), "hms.sys.v1.System/Nope", nil, nil), hms.CodeNotFound)
	wantCode(t, rt.CallValue(ctxT(t), "no.such.Service/Echo", nil, nil), hms.CodeNotFound)
	e := wantCode(t, rt.CallValue(ctxT(t), "not-a-full-name", nil, nil), hms.CodeInvalidArgument)
	if !strings.Contains(e.Message, "not-a-full-name") {
		t.Fatalf("message %q", e.Message)
	}
	wantCode(t, rt.CallValue(ctxT(t), "", nil, nil), hms.CodeInvalidArgument)
}

func TestBadUTF8Method(t *testing.T) {
	rt := open(t)
	e := wantCode(t, rt.CallValue(ctxT(t), "hms.sys.v1.System/\xff\xfe", nil, nil), hms.CodeInvalidArgument)
	if !strings.Contains(e.Message, "UTF-8") {
		t.Fatalf("message %q", e.Message)
	}
}

func TestUnknownFormat(t *testing.T) {
	rt := open(t)
	for _, f := range []hms.Format{0, 4, -1, 1000} {
		e := wantCode(t, errOf(rt.CallRaw(ctxT(t), echo, f, []byte("{}"))), hms.CodeInvalidArgument)
		if !strings.Contains(e.Message, "format") {
			t.Fatalf("message %q", e.Message)
		}
	}
	// CallValue refuses protobuf before any call.
	wantCode(t, rt.CallValue(ctxT(t), echo, nil, nil, hms.WithFormat(hms.FormatProtobuf)), hms.CodeInvalidArgument)
}

func TestGarbageAndTruncatedPayloads(t *testing.T) {
	rt := open(t)
	cases := map[hms.Format][][]byte{
		hms.FormatProtobuf: {
			{0xff, 0xff, 0xff},             // invalid varint
			{0x12, 0x05, 'a'},              // text declares 5 bytes, has 1
			{0x0a},                         // a tag with no length
			{0x0b, 0x01},                   // wire type 3 (start group) never ended
			bytes.Repeat([]byte{0x80}, 11), // varint of 11 bytes
		},
		hms.FormatCBOR: {
			{0xff, 0x00, 0x13},                     // a break out of nowhere
			{0xa1, 0x64, 't', 'e'},                 // text declares 4 bytes, has 2
			{0xa1},                                 // map of one pair, no pair
			{0x01},                                 // not a map
			{0xa1, 0x64, 't', 'e', 'x', 't', 0x01}, // text field holding an integer
			{0xa1, 0x64, 't', 'e', 'x', 't', 0x62, 0xff, 0xfe}, // text that is not UTF-8
		},
		hms.FormatJSON: {
			[]byte("{nope"),
			[]byte(`{"text": "ab`),
			[]byte(`[1,2`),
			[]byte(`{"text": 5}`),
			[]byte("\xff\xfe"),
		},
	}
	for f, payloads := range cases {
		for _, p := range payloads {
			_, err := rt.CallRaw(ctxT(t), echo, f, p)
			wantCode(t, err, hms.CodeDecodeError)
		}
	}
	// The runtime is fine afterwards.
	must(rt.System().Echo(ctxT(t), &sysv1.EchoRequest{Text: "still here"}))(t)
}

func TestCBORLengthPrefixOf2To64(t *testing.T) {
	rt := open(t)
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, p := range [][]byte{
		append([]byte{0x5b}, huge...),                                 // byte string of 2^64-1 bytes
		append([]byte{0xa1, 0x64, 't', 'e', 'x', 't', 0x7b}, huge...), // text string
		append([]byte{0x9b}, huge...),                                 // array of 2^64-1 items
		append([]byte{0xbb}, huge...),                                 // map of 2^64-1 pairs
	} {
		start := time.Now()
		_, err := rt.CallRaw(ctxT(t), echo, hms.FormatCBOR, p)
		if hms.CodeOf(err) != hms.CodeDecodeError && hms.CodeOf(err) != hms.CodeResourceExhausted {
			t.Fatalf("% x: want DECODE_ERROR or RESOURCE_EXHAUSTED, got %v", p, err)
		}
		wantCode(t, err, hms.CodeOf(err))
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("% x took %v", p, d)
		}
	}
}

func TestDeepNestingInEveryFormat(t *testing.T) {
	rt := open(t)
	const depth = 100_000
	cases := []struct {
		f    hms.Format
		data []byte
	}{
		{hms.FormatCBOR, append(bytes.Repeat([]byte{0x81}, depth), 0x00)},
		{hms.FormatCBOR, append(bytes.Repeat([]byte{0xa1, 0x61, 'a'}, depth), 0x00)},
		{hms.FormatJSON, []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))},
		{hms.FormatJSON, []byte(strings.Repeat(`{"text":`, depth) + `"x"` + strings.Repeat("}", depth))},
		// protobuf: groups (field 99, wire types 3/4) nested 100,000 deep.
		{hms.FormatProtobuf, append(bytes.Repeat([]byte{0x9b, 0x06}, depth), bytes.Repeat([]byte{0x9c, 0x06}, depth)...)},
	}
	for _, tc := range cases {
		start := time.Now()
		_, err := rt.CallRaw(ctxT(t), echo, tc.f, tc.data)
		code := hms.CodeOf(err)
		if code != hms.CodeResourceExhausted && code != hms.CodeDecodeError {
			t.Fatalf("%v nesting: want RESOURCE_EXHAUSTED or DECODE_ERROR, got %v", tc.f, err)
		}
		wantCode(t, err, code)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%v nesting took %v", tc.f, d)
		}
	}
	// Host services are guarded the same way: an untyped method never sees it.
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Deep", Methods: []hms.Method{
		hms.RawMethod("Any", func(context.Context, *hms.Request) ([]byte, error) {
			t.Error("the handler ran on a hostile payload")
			return nil, nil
		}),
	}}))(t)
	defer svc.Close()
	_, err := rt.CallRaw(ctxT(t), "gotest.Deep/Any", hms.FormatCBOR, append(bytes.Repeat([]byte{0x81}, depth), 0x00))
	wantCode(t, err, hms.CodeResourceExhausted)
}

func TestPayloadOf64MiB(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB
	rt := open(t, hms.WithMaxMessageBytes(80<<20))
	resp := must(rt.System().Echo(ctxT(t), &sysv1.EchoRequest{Payload: big}))(t)
	if !bytes.Equal(resp.Payload, big) {
		t.Fatal("64 MiB echo differs")
	}
	var m map[string]any
	if err := rt.CallValue(ctxT(t), echo, map[string]any{"payload": big}, &m); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m["payload"].([]byte), big) {
		t.Fatal("64 MiB CBOR echo differs")
	}
	// Over the default limit (4 MiB): refused with the limit in the details.
	small := open(t)
	_, err := small.System().Echo(ctxT(t), &sysv1.EchoRequest{Payload: big})
	wantCode(t, err, hms.CodeResourceExhausted)
	// And a follow-up call on the same goroutine's buffers still works.
	must(small.System().Echo(ctxT(t), &sysv1.EchoRequest{Text: "after"}))(t)
}

func TestContextAlreadyCancelledNeverCalls(t *testing.T) {
	rt := open(t)
	calls := 0
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Count", Methods: []hms.Method{
		hms.ValueMethod("Hit", func(context.Context, any) (any, error) { calls++; return nil, nil }),
	}}))(t)
	defer svc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := rt.CallValue(ctx, "gotest.Count/Hit", nil, nil)
	wantCode(t, err, hms.CodeCancelled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v does not wrap context.Canceled", err)
	}
	past, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	err = rt.CallValue(past, "gotest.Count/Hit", nil, nil)
	wantCode(t, err, hms.CodeDeadlineExceeded)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v does not wrap context.DeadlineExceeded", err)
	}
	if calls != 0 {
		t.Fatalf("the handler ran %d times", calls)
	}
	if err := rt.CallValue(ctxT(t), "gotest.Count/Hit", nil, nil); err != nil || calls != 1 {
		t.Fatalf("live call: %v, %d calls", err, calls)
	}
}

func TestCallOptionsReachHandlers(t *testing.T) {
	rt := open(t)
	seen := make(chan time.Duration, 1)
	svc := must(rt.Register(hms.ServiceDef{Name: "gotest.Opts", Methods: []hms.Method{
		hms.ValueMethod("Deadline", func(ctx context.Context, _ any) (any, error) {
			d, ok := ctx.Deadline()
			if !ok {
				seen <- -1
			} else {
				seen <- time.Until(d)
			}
			return map[string]any{}, nil
		}),
	}}))(t)
	defer svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, f := range []hms.Format{hms.FormatCBOR, hms.FormatJSON} {
		err := rt.CallValue(ctx, "gotest.Opts/Deadline", nil, nil, hms.WithFormat(f),
			hms.WithMetadata(map[string]string{"k": "v"}), hms.WithTraceID("trace-1"),
			hms.WithCredentials(hms.BearerToken("t")))
		if err != nil {
			t.Fatal(err)
		}
		if d := <-seen; d <= 25*time.Second || d > 30*time.Second {
			t.Fatalf("%v: handler saw a deadline %v away", f, d)
		}
	}
	// Protobuf options (a typed Call) carry the deadline too.
	if err := rt.Call(ctx, echo, &sysv1.EchoRequest{}, nil, hms.WithCallOptions(&hmsv1.CallOptions{TraceId: "x"})); err != nil {
		t.Fatal(err)
	}
	// Without a deadline, the handler has none.
	if err := rt.CallValue(context.Background(), "gotest.Opts/Deadline", nil, nil); err != nil {
		t.Fatal(err)
	}
	if d := <-seen; d != -1 {
		t.Fatalf("handler saw a deadline %v away", d)
	}
}

func TestEncodingErrorsAreTyped(t *testing.T) {
	rt := open(t)
	err := rt.CallValue(ctxT(t), echo, map[string]any{"f": func() {}}, nil)
	e := wantCode(t, err, hms.CodeInvalidArgument)
	if e.Origin != "hms-go" {
		t.Fatalf("origin %q", e.Origin)
	}
	var wrong struct{ Text int }
	err = rt.CallValue(ctxT(t), echo, map[string]any{"text": "x"}, &wrong)
	wantCode(t, err, hms.CodeDecodeError)
	// An answer decoded as the wrong message type: payload (bytes, field 1)
	// read as MethodDescriptor.name (string, field 1) is not UTF-8.
	var wrongMsg hmsv1.MethodDescriptor
	err = rt.Call(ctxT(t), echo, &sysv1.EchoRequest{Payload: []byte{0xff, 0xfe}}, &wrongMsg)
	wantCode(t, err, hms.CodeDecodeError)
}

func TestRuntimeConfigs(t *testing.T) {
	rt := open(t, hms.WithRawConfig(hms.FormatJSON, []byte(`{"name":"from-json","max_message_bytes":"2048"}`)))
	h := must(rt.System().Health(ctxT(t)))(t)
	if h.RuntimeName != "from-json" {
		t.Fatalf("health %v", h)
	}
	_, err := rt.System().Echo(ctxT(t), &sysv1.EchoRequest{Payload: make([]byte, 4096)})
	wantCode(t, err, hms.CodeResourceExhausted)
	cfg := must(hms.MarshalCBOR(map[string]any{"name": "from-cbor"}))(t)
	rt2 := open(t, hms.WithRawConfig(hms.FormatCBOR, cfg))
	if h := must(rt2.System().Health(ctxT(t)))(t); h.RuntimeName != "from-cbor" {
		t.Fatalf("health %v", h)
	}
	rt3 := open(t, hms.WithConfig(&hmsv1.RuntimeConfig{Name: "typed", MaxDepth: 8}), hms.WithName("override"))
	if h := must(rt3.System().Health(ctxT(t)))(t); h.RuntimeName != "override" {
		t.Fatalf("health %v", h)
	}
	wantCode(t, errOf(hms.Open(hms.WithRawConfig(hms.FormatJSON, []byte("{nope")))), hms.CodeDecodeError)
	wantCode(t, errOf(hms.Open(hms.WithRawConfig(9, nil))), hms.CodeInvalidArgument)
	wantCode(t, errOf(hms.Open(hms.WithRawConfig(hms.FormatJSON, nil), hms.WithName("x"))), hms.CodeInvalidArgument)
}
