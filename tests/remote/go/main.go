// The Greeter of the cross-process tests, in Go (tests/remote/README.md).
//
//	go run . serve NATS_URL   exports it, prints "ready", serves until stdin closes
//	go run . call NATS_URL SERVER   calls it (served by the runtime named SERVER,
//	                                another process), checks every answer
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"time"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

const service = "remote.v1.Greeter"

func open(url, name string) *hms.Runtime {
	rt, err := hms.Open(hms.WithConfig(&hmsv1.RuntimeConfig{
		Name: name,
		Nats: &hmsv1.NatsTransport{Servers: []string{url}, RequestTimeoutMs: 10000},
	}))
	if err != nil {
		fail("open: %v", err)
	}
	return rt
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go: "+format+"\n", args...)
	os.Exit(1)
}

func serve(url string) {
	rt := open(url, "go-server")
	defer rt.Close()
	_, err := rt.Register(hms.ServiceDef{
		Name:   service,
		Export: true,
		Methods: []hms.Method{
			hms.ProtoMethod("Greet", func(_ context.Context, in *sysv1.EchoRequest) (*sysv1.EchoResponse, error) {
				return &sysv1.EchoResponse{Text: "hello " + in.Text}, nil
			}),
			hms.ProtoMethod("Refuse", func(_ context.Context, in *sysv1.EchoRequest) (*sysv1.EchoResponse, error) {
				return nil, &hms.Error{
					Code:    hms.CodePermissionDenied,
					Message: in.Text + " may not",
					Details: map[string]string{"rule": "no-guests"},
				}
			}),
		},
	})
	if err != nil {
		fail("register: %v", err)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func call(url, server string) {
	rt := open(url, "remote-go-caller")
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var answer sysv1.EchoResponse
	if err := rt.Call(ctx, service+"/Greet", &sysv1.EchoRequest{Text: "go"}, &answer); err != nil {
		fail("Greet: %v", err)
	}
	if answer.Text != "hello go" {
		fail("Greet answered %q", answer.Text)
	}
	var value map[string]any
	if err := rt.CallValue(ctx, service+"/Greet", map[string]any{"text": "go"}, &value); err != nil || value["text"] != "hello go" {
		fail("Greet (CBOR): %v, %v", value, err)
	}
	err := rt.Call(ctx, service+"/Refuse", &sysv1.EchoRequest{Text: "go"}, &answer)
	var e *hms.Error
	if !errors.As(err, &e) || e.Code != hms.CodePermissionDenied {
		fail("Refuse: want PERMISSION_DENIED, got %v", err)
	}
	if e.Message != "go may not" || !maps.Equal(e.Details, map[string]string{"rule": "no-guests"}) || e.Origin != server {
		fail("Refuse: %+v", e)
	}
	err = rt.Call(ctx, service+"/Missing", &sysv1.EchoRequest{}, &answer)
	if !errors.Is(err, hms.Sentinel(hms.CodeNotFound)) {
		fail("Missing: want NOT_FOUND, got %v", err)
	}
	fmt.Println("go caller: ok")
}

func main() {
	switch {
	case len(os.Args) == 3 && os.Args[1] == "serve":
		serve(os.Args[2])
	case len(os.Args) == 4 && os.Args[1] == "call":
		call(os.Args[2], os.Args[3])
	default:
		fail("usage: go run . serve NATS_URL | go run . call NATS_URL SERVER")
	}
}
