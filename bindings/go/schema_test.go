package hms_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
	"github.com/hms-ffi/hms/bindings/go/internal/testpb"
)

func TestConvert(t *testing.T) {
	pb := must(proto.Marshal(&sysv1.EchoRequest{Text: "conv", Payload: []byte{1, 2, 3}}))(t)
	js := must(hms.Convert("hms.sys.v1.EchoRequest", hms.FormatProtobuf, pb, hms.FormatJSON))(t)
	if string(js) != `{"payload":"AQID","text":"conv"}` && string(js) != `{"text":"conv","payload":"AQID"}` {
		t.Fatalf("JSON %s", js)
	}
	cb := must(hms.Convert("hms.sys.v1.EchoRequest", hms.FormatJSON, js, hms.FormatCBOR))(t)
	back := must(hms.Convert("hms.sys.v1.EchoRequest", hms.FormatCBOR, cb, hms.FormatProtobuf))(t)
	var m sysv1.EchoRequest
	if err := proto.Unmarshal(back, &m); err != nil || m.Text != "conv" || string(m.Payload) != "\x01\x02\x03" {
		t.Fatalf("round trip %v, %v", &m, err)
	}
	// Untyped: structural CBOR <-> JSON.
	structural := must(hms.Convert("", hms.FormatJSON, []byte(`{"a":[1,"x",true,null]}`), hms.FormatCBOR))(t)
	var v map[string]any
	if err := hms.UnmarshalCBOR(structural, &v); err != nil || len(v["a"].([]any)) != 4 {
		t.Fatalf("structural %v, %v", v, err)
	}
	wantCode(t, errOf(hms.Convert("no.Such", hms.FormatJSON, []byte(`{}`), hms.FormatCBOR)), hms.CodeNotFound)
	wantCode(t, errOf(hms.Convert("", hms.FormatProtobuf, pb, hms.FormatJSON)), hms.CodeInvalidArgument)
	wantCode(t, errOf(hms.Convert("hms.sys.v1.EchoRequest", 7, pb, hms.FormatJSON)), hms.CodeInvalidArgument)
	wantCode(t, errOf(hms.Convert("hms.sys.v1.EchoRequest", hms.FormatJSON, []byte("{"), hms.FormatCBOR)), hms.CodeDecodeError)
}

func TestRegisterSchema(t *testing.T) {
	fd := testpb.File_demo_proto
	if err := hms.RegisterSchema(fd); err != nil {
		t.Fatal(err)
	}
	// Idempotent, and the built-in files are recognised, not re-sent.
	if err := hms.RegisterSchema(fd, sysv1.File_hms_sys_v1_system_proto); err != nil {
		t.Fatal(err)
	}
	js := must(hms.Convert("hms.gotest.v1.GreetResponse", hms.FormatProtobuf,
		must(proto.Marshal(&testpb.GreetResponse{Greeting: "g", Mood: testpb.Mood_MOOD_GRUMPY}))(t), hms.FormatJSON))(t)
	if !strings.Contains(string(js), `"MOOD_GRUMPY"`) {
		t.Fatalf("JSON %s", js)
	}
}

func TestCleanupFreesAnUnreachableRuntime(t *testing.T) {
	h := func() uint64 {
		rt, err := hms.Open()
		if err != nil {
			t.Fatal(err)
		}
		return rt.RawHandle()
	}()
	if _, err := hms.RawCall(h, echo, hms.FormatCBOR, nil); err != nil {
		// Possible only if the cleanup already ran; the check below decides.
		t.Logf("early: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		_, err := hms.RawCall(h, echo, hms.FormatCBOR, nil)
		if hms.CodeOf(err) == hms.CodeInvalidHandle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runtime was never freed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
