package hms_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

// natsServer starts a real nats-server on a free loopback port, killed and
// reaped when the test ends, and returns its URL. Without the binary the
// test fails with the command that installs it.
func natsServer(t *testing.T) string {
	t.Helper()
	binary, err := exec.LookPath("nats-server")
	if err != nil {
		binary = "/usr/sbin/nats-server" // Debian's place, outside a user's PATH
	}
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("no free port: %v", err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	server := exec.Command(binary, "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	if err := server.Start(); err != nil {
		t.Fatalf("cannot start %s (apt-get install nats-server): %v", binary, err)
	}
	t.Cleanup(func() {
		_ = server.Process.Kill()
		_ = server.Wait()
	})
	address := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if conn, err := net.Dial("tcp", address); err == nil {
			conn.Close()
			return "nats://" + address
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not listen on %s", address)
		}
	}
}

func openOnNats(t *testing.T, url, name string) *hms.Runtime {
	t.Helper()
	return open(t, hms.WithConfig(&hmsv1.RuntimeConfig{
		Name: name,
		Nats: &hmsv1.NatsTransport{Servers: []string{url}, RequestTimeoutMs: 5000},
	}))
}

// remoteGreeter is a typed service whose Refuse method fails with details.
func remoteGreeter(export, callerThread bool) hms.ServiceDef {
	return hms.ServiceDef{
		Name: "hms.gotest.v1.RemoteGreeter",
		Methods: []hms.Method{
			hms.ProtoMethod("Greet", func(_ context.Context, in *sysv1.EchoRequest) (*sysv1.EchoResponse, error) {
				return &sysv1.EchoResponse{Text: "hello " + in.Text, Payload: in.Payload}, nil
			}),
			hms.ProtoMethod("Refuse", func(_ context.Context, in *sysv1.EchoRequest) (*sysv1.EchoResponse, error) {
				return nil, &hms.Error{
					Code:    hms.CodePermissionDenied,
					Message: in.Text + " may not",
					Details: map[string]string{"rule": "no-guests"},
				}
			}),
		},
		Export:       export,
		CallerThread: callerThread,
	}
}

func TestAnExportedServiceAnswersRemoteCallersAsLocalOnes(t *testing.T) {
	url := natsServer(t)
	exporter := openOnNats(t, url, "go-exporter")
	caller := openOnNats(t, url, "go-caller")
	svc := must(exporter.Register(remoteGreeter(true, false)))(t)
	ctx := ctxT(t)
	const greet = "hms.gotest.v1.RemoteGreeter/Greet"
	for _, f := range []hms.Format{hms.FormatProtobuf, hms.FormatCBOR, hms.FormatJSON} {
		request := must(hms.Convert("hms.sys.v1.EchoRequest", hms.FormatJSON, []byte(`{"text":"ann","payload":"AP8="}`), f))(t)
		local := must(exporter.CallRaw(ctx, greet, f, request))(t)
		remote := must(caller.CallRaw(ctx, greet, f, request))(t)
		if string(remote) != string(local) {
			t.Fatalf("%v: remote %q, local %q", f, remote, local)
		}
	}
	var answer sysv1.EchoResponse
	if err := caller.Call(ctx, greet, &sysv1.EchoRequest{Text: "ann"}, &answer); err != nil || answer.Text != "hello ann" {
		t.Fatalf("remote Greet: %q, %v", answer.Text, err)
	}

	var errs []*hms.Error
	for _, rt := range []*hms.Runtime{exporter, caller} {
		err := rt.Call(ctx, "hms.gotest.v1.RemoteGreeter/Refuse", &sysv1.EchoRequest{Text: "bob"}, &answer)
		errs = append(errs, wantCode(t, err, hms.CodePermissionDenied))
	}
	local, remote := errs[0], errs[1]
	if remote.Message != local.Message || !reflect.DeepEqual(remote.Details, local.Details) {
		t.Fatalf("remote error %+v, local %+v", remote, local)
	}
	// The handler named no origin: a local call names the method, a remote
	// one the runtime that answered (docs/transport.md).
	if remote.Details["rule"] != "no-guests" || remote.Origin != "go-exporter" || local.Origin != "hms.gotest.v1.RemoteGreeter/Refuse" {
		t.Fatalf("remote error %+v, local %+v", remote, local)
	}

	// Closing the service withdraws it from NATS.
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, caller.Call(ctx, greet, &sysv1.EchoRequest{Text: "x"}, &answer), hms.CodeUnavailable)
}

func TestExportWithoutATransportSaysHowToConfigureOne(t *testing.T) {
	rt := open(t)
	e := wantCode(t, errOf(rt.Register(remoteGreeter(true, false))), hms.CodeFailedPrecondition)
	if !strings.Contains(e.Message, "no transport") || !strings.Contains(e.Message, "nats.servers") {
		t.Fatalf("message: %q", e.Message)
	}
	// Nothing stays registered: the name is free.
	svc := must(rt.Register(remoteGreeter(false, false)))(t)
	svc.Close()
}

func TestAnExportedCallerThreadServiceIsServedByServe(t *testing.T) {
	url := natsServer(t)
	exporter := openOnNats(t, url, "go-pump")
	caller := openOnNats(t, url, "go-caller")
	must(exporter.Register(remoteGreeter(true, true)))(t)
	ctx := ctxT(t)
	done := make(chan error, 1)
	go func() {
		var answer sysv1.EchoResponse
		err := caller.Call(ctx, "hms.gotest.v1.RemoteGreeter/Greet", &sysv1.EchoRequest{Text: "ann"}, &answer)
		if err == nil && answer.Text != "hello ann" {
			err = fmt.Errorf("answer %q", answer.Text)
		}
		done <- err
	}()
	served := 0
	giveUp := time.Now().Add(20 * time.Second)
	for served == 0 {
		if time.Now().After(giveUp) {
			t.Fatal("the remote call never came")
		}
		tick, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		n, err := exporter.Serve(tick)
		cancel()
		if err != nil {
			wantCode(t, err, hms.CodeDeadlineExceeded)
		}
		served += n
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if served != 1 {
		t.Fatalf("served %d", served)
	}
	alone := open(t)
	e := wantCode(t, errOf(alone.Serve(ctx)), hms.CodeFailedPrecondition)
	if !strings.Contains(e.Message, "no transport") {
		t.Fatalf("message: %q", e.Message)
	}
}
