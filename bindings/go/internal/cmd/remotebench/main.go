// Command remotebench measures remote calls over NATS from Go, the
// benchmarks/CASES.md way, and writes go-remote.json:
//
//	bash benchmarks/go/run.sh --remote          # HMS_BENCH_QUICK=1: 3 short rounds
//
// It starts a nats-server on a free loopback port and two runtimes in this
// process: one exporting hms.sys.v1.System, one reaching System through
// NATS (remote_services). remote_echo_raw_64 is a raw Echo 64 B through the
// second; nats_go_echo_64 is the same request by nats.go alone to the same
// subject on the same server, answered by the same exporter: the ratio is
// what HMS adds on the caller's side. A module of its own, so that the
// binding's module does not depend on nats.go; it shares internal/benchrun
// with hmsbench.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
	"github.com/hms-ffi/hms/bindings/go/internal/benchrun"
)

const (
	system  = "hms.sys.v1.System"
	echo    = system + "/Echo"
	subject = "hms.svc.hms.sys.v1.System.Echo"
	batch   = 1000
)

func main() {
	out := flag.String("out", filepath.Join(outDir(), "go-remote.json"), "the result file")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "remotebench:", err)
		os.Exit(1)
	}
}

func outDir() string {
	if dir := os.Getenv("HMS_BENCH_OUT"); dir != "" {
		return dir
	}
	return filepath.Join("benchmarks", "out")
}

// natsServer starts nats-server on free loopback ports; stop ends it.
func natsServer() (url string, version string, stop func(), err error) {
	port, err := freePort()
	if err != nil {
		return "", "", nil, err
	}
	monitor, err := freePort()
	if err != nil {
		return "", "", nil, err
	}
	binary, err := exec.LookPath("nats-server")
	if err != nil {
		binary = "/usr/sbin/nats-server"
	}
	cmd := exec.Command(binary, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-m", strconv.Itoa(monitor))
	if err := cmd.Start(); err != nil {
		return "", "", nil, fmt.Errorf("nats-server (apt-get install nats-server): %w", err)
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	varz := fmt.Sprintf("http://127.0.0.1:%d/varz", monitor)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		answer, err := http.Get(varz)
		if err != nil {
			continue
		}
		var info struct {
			Version string `json:"version"`
		}
		err = json.NewDecoder(answer.Body).Decode(&info)
		answer.Body.Close()
		if err == nil {
			return fmt.Sprintf("nats://127.0.0.1:%d", port), info.Version, stop, nil
		}
	}
	stop()
	return "", "", nil, errors.New("nats-server did not start")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func runtimeOn(url, name string, exports, remote []string) (*hms.Runtime, error) {
	return hms.Open(hms.WithConfig(&hmsv1.RuntimeConfig{
		Name: name,
		Nats: &hmsv1.NatsTransport{Servers: []string{url}, ExportServices: exports, RemoteServices: remote},
	}))
}

func run(out string) error {
	quick := os.Getenv("HMS_BENCH_QUICK") == "1"
	rounds, roundTime := 15, 100*time.Millisecond
	if quick {
		rounds, roundTime = 3, 5*time.Millisecond
	}
	url, serverVersion, stop, err := natsServer()
	if err != nil {
		return err
	}
	defer stop()
	exporter, err := runtimeOn(url, "bench-exporter", []string{system}, nil)
	if err != nil {
		return err
	}
	defer exporter.Close()
	caller, err := runtimeOn(url, "bench-caller", nil, []string{system})
	if err != nil {
		return err
	}
	defer caller.Close()
	local, err := hms.Open()
	if err != nil {
		return err
	}
	defer local.Close()
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()

	ctx := context.Background()
	req, err := proto.Marshal(&sysv1.EchoRequest{Payload: make([]byte, 64)})
	if err != nil {
		return err
	}
	remoteEcho, err := caller.Method(echo, hms.FormatProtobuf)
	if err != nil {
		return err
	}
	localEcho, err := local.Method(echo, hms.FormatProtobuf)
	if err != nil {
		return err
	}
	withTransport, err := exporter.Method(echo, hms.FormatProtobuf)
	if err != nil {
		return err
	}
	same := func(got []byte) error {
		if string(got) != string(req) {
			return fmt.Errorf("wrong Echo answer (%d bytes)", len(got))
		}
		return nil
	}
	loop := func(call func() ([]byte, error)) func(int) error {
		return func(n int) error {
			for i := 0; i < n; i++ {
				got, err := call()
				if err != nil {
					return err
				}
				if i == 0 {
					if err := same(got); err != nil {
						return err
					}
				}
			}
			return nil
		}
	}
	batchReqs := make([][]byte, batch)
	for i := range batchReqs {
		batchReqs[i] = req
	}
	benches := []*benchrun.Bench{
		{ID: "remote_echo_raw_64", Label: "MethodHandle.CallRaw: Echo 64 B served by another runtime through NATS",
			Baseline: "nats_go_echo_64", PerOp: 1,
			Run: loop(func() ([]byte, error) { return remoteEcho.CallRaw(ctx, req) })},
		{ID: "nats_go_echo_64", Label: "nats.go Request: the same 64 B request to the same exporter's subject",
			PerOp: 1, Run: loop(func() ([]byte, error) {
				msg, err := nc.Request(subject, req, 10*time.Second)
				if err != nil {
					return nil, err
				}
				return msg.Data, nil
			})},
		{ID: "remote_batch_echo_raw_64", Label: "MethodHandle.CallBatch: 1,000 remote Echo 64 B; per call",
			Baseline: "remote_echo_raw_64", PerOp: batch, Run: func(n int) error {
				for i := 0; i < n; i++ {
					answers, err := remoteEcho.CallBatch(ctx, batchReqs)
					if err != nil {
						return err
					}
					if err := same(answers[len(answers)-1]); err != nil {
						return err
					}
				}
				return nil
			}},
		{ID: "echo_raw_64", Label: "MethodHandle.CallRaw: local Echo 64 B, no transport", PerOp: 1,
			Run: loop(func() ([]byte, error) { return localEcho.CallRaw(ctx, req) })},
		{ID: "echo_raw_64_transport", Label: "MethodHandle.CallRaw: local Echo 64 B in a runtime connected to NATS",
			Baseline: "echo_raw_64", PerOp: 1,
			Run: loop(func() ([]byte, error) { return withTransport.CallRaw(ctx, req) })},
	}
	if err := benchrun.Measure(benches, rounds, roundTime); err != nil {
		return err
	}
	res := benchrun.Result{
		Language: "Go, remote calls over NATS",
		Version: fmt.Sprintf("%s %s/%s, nats.go %s, nats-server %s", runtime.Version(), runtime.GOOS,
			runtime.GOARCH, nats.Version, serverVersion),
		Notes: []string{
			fmt.Sprintf("%d rounds of about %v per case after one warm-up round, interleaved.", rounds, roundTime),
			"One nats-server on 127.0.0.1; exporter and caller are two runtimes of this process, so every " +
				"remote call crosses the server twice, as between processes.",
			"nats_go_echo_64 sends the same bytes to the same exporter as remote_echo_raw_64: the ratio " +
				"is what HMS adds on the caller's side.",
		},
		Memory: []benchrun.Memory{},
	}
	res.Cases = benchrun.Cases(benches)
	for _, c := range res.Cases {
		fmt.Printf("%-26s %12.1f ns  [%.1f, %.1f]\n", c.ID, c.MedianNs, c.Q1Ns, c.Q3Ns)
	}
	return benchrun.Write(out, res)
}
