// Command hmsbench measures the Go binding as benchmarks/CASES.md says
// and writes benchmarks/out/go.json:
//
//	bash benchmarks/go/run.sh                 # builds and runs this, from anywhere
//
// It lives inside the binding's module so that it shares internal/cbench
// (the C loops of the core) with the binding's own go test benchmarks.
//
//	hmsbench -out benchmarks/out/go.json      # HMS_BENCH_QUICK=1: 3 short rounds
//
// Every case gets one warm-up round, then its timed rounds; the rounds of
// all cases are interleaved (round 1 of every case, then round 2, ...), so
// a case and its baseline see the same machine load.
package main

/*
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include "hms_ffi.h"

*/
import "C"

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"

	hms "github.com/hms-ffi/hms/bindings/go"
	lifecyclev1 "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/lifecycle/v1"
	agentv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/v1"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
	"github.com/hms-ffi/hms/bindings/go/internal/benchrun"
	"github.com/hms-ffi/hms/bindings/go/internal/cbench"
)

const echo = "hms.sys.v1.System/Echo"

func main() {
	out := flag.String("out", defaultOut(), "where to write the result file ($HMS_BENCH_OUT/go.json)")
	quick := flag.Bool("quick", os.Getenv("HMS_BENCH_QUICK") == "1", "3 short rounds (HMS_BENCH_QUICK=1)")
	rounds := flag.Int("rounds", 0, "timed rounds per case (default 15, 3 when quick)")
	skipMemory := flag.Bool("skip-memory", false, "leave out rss_1m_echo")
	flag.Parse()
	if *rounds <= 0 {
		*rounds = 15
		if *quick {
			*rounds = 3
		}
	}
	roundTime := 100 * time.Millisecond
	if *quick {
		roundTime = 5 * time.Millisecond
	}
	if err := run(*out, *rounds, roundTime, !*skipMemory); err != nil {
		fmt.Fprintln(os.Stderr, "hmsbench:", err)
		os.Exit(1)
	}
}

func run(out string, rounds int, roundTime time.Duration, memory bool) error {
	rt, err := hms.Open()
	if err != nil {
		return err
	}
	defer rt.Close()
	ctx := context.Background()

	// Memory first, while the process holds nothing but the runtime: the
	// other cases fill stores (create_agent_typed) and buffers (64 KiB).
	var mem []benchrun.Memory
	var memNote string
	if memory {
		m, later, err := rss1mEcho(ctx, rt)
		if err != nil {
			return err
		}
		mem = append(mem, m)
		memNote = fmt.Sprintf("rss_1m_echo: VmRSS %d KiB after a warm-up of 200,000 calls, %d KiB after "+
			"1,000,000 more, then %d and %d KiB after a second and a third million (a leak would grow with "+
			"every million; after a warm-up of only 10,000 calls, before the first garbage collection, the "+
			"Go runtime itself grew 3-8%% over the first million and then stayed flat).",
			m.RSSBeforeKiB, m.RSSAfterKiB, later[0], later[1])
	}

	benches, cleanup, err := cases(ctx, rt)
	defer cleanup()
	if err != nil {
		return err
	}
	if err := benchrun.Measure(benches, rounds, roundTime); err != nil {
		return err
	}

	res := benchrun.Result{
		Language: "Go",
		Version:  runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		Notes:    notes(rounds, roundTime),
		Memory:   mem,
	}
	if memNote != "" {
		res.Notes = append(res.Notes, memNote)
	}
	res.Cases = benchrun.Cases(benches)
	byID := map[string]*benchrun.Case{}
	for i := range res.Cases {
		byID[res.Cases[i].ID] = &res.Cases[i]
	}
	// What limits the figures: the core's own cost, from a C loop.
	if ns, err := coreLoop(rt, 64, 200000); err == nil {
		res.Notes = append(res.Notes, fmt.Sprintf(
			"The core alone, a C loop of hms_method_call Echo 64 B (no Go, no cgo): %.1f ns per call.", ns))
	}
	for _, n := range ratioNotes(byID) {
		res.Notes = append(res.Notes, n)
	}
	for _, c := range res.Cases {
		ratio := ""
		if c.Baseline != nil {
			ratio = fmt.Sprintf("  %.2fx %s", c.MedianNs/byID[*c.Baseline].MedianNs, *c.Baseline)
		}
		fmt.Printf("%-20s %10.1f ns  [%.1f, %.1f]%s\n", c.ID, c.MedianNs, c.Q1Ns, c.Q3Ns, ratio)
	}
	for _, m := range res.Memory {
		fmt.Printf("%-20s %d KiB -> %d KiB (%+.2f%%)\n", m.ID, m.RSSBeforeKiB, m.RSSAfterKiB,
			100*float64(m.RSSAfterKiB-m.RSSBeforeKiB)/float64(m.RSSBeforeKiB))
	}
	return benchrun.Write(out, res)
}

func echoRequest(size int) []byte {
	raw, err := proto.Marshal(&sysv1.EchoRequest{Payload: bytes.Repeat([]byte{'x'}, size)})
	if err != nil {
		panic(err)
	}
	return raw
}

// cases builds every case of CASES.md that applies to Go.
func cases(ctx context.Context, rt *hms.Runtime) ([]*benchrun.Bench, func(), error) {
	var closers []func() error
	cleanup := func() {
		for _, c := range closers {
			_ = c()
		}
	}
	m, err := rt.Method(echo, hms.FormatProtobuf)
	if err != nil {
		return nil, cleanup, err
	}
	closers = append(closers, m.Close)

	var sink uint32
	benches := []*benchrun.Bench{{
		ID: "floor", Label: "bare hms_abi_version() through cgo",
		Run: func(n int) error {
			for i := 0; i < n; i++ {
				sink += uint32(C.hms_abi_version())
			}
			return nil
		},
		Check: func() error {
			if v := uint32(C.hms_abi_version()); v>>16 != hms.ABIMajor {
				return fmt.Errorf("hms_abi_version() = %#x", v)
			}
			return nil
		},
	}}

	// bare_call_64: hms_call straight through cgo, ten arguments, no binding code.
	bufs := (*[2]C.hms_buf)(C.calloc(2, C.size_t(unsafe.Sizeof(C.hms_buf{}))))
	closers = append(closers, func() error {
		C.hms_buf_free(&bufs[0])
		C.hms_buf_free(&bufs[1])
		C.free(unsafe.Pointer(bufs))
		return nil
	})
	req64 := echoRequest(64)
	bareMethod := C.CString(echo)
	closers = append(closers, func() error { C.free(unsafe.Pointer(bareMethod)); return nil })
	bareRT := C.hms_runtime(rt.RawHandle())
	bareCall := func() C.int32_t {
		return C.hms_call(bareRT, bareMethod, C.size_t(len(echo)), C.HMS_FORMAT_PROTOBUF,
			(*C.uint8_t)(unsafe.Pointer(&req64[0])), C.size_t(len(req64)), nil, 0, &bufs[0], &bufs[1])
	}
	benches = append(benches, &benchrun.Bench{
		ID: "bare_call_64", Label: "hms_call Echo 64 B straight through cgo, no binding code", Baseline: "floor",
		Run: func(n int) error {
			for i := 0; i < n; i++ {
				if rc := bareCall(); rc != 0 {
					return fmt.Errorf("hms_call: status %d", rc)
				}
			}
			return nil
		},
		Check: func() error {
			if rc := bareCall(); rc != 0 {
				return fmt.Errorf("hms_call: status %d", rc)
			}
			got := C.GoBytes(unsafe.Pointer(bufs[0].data), C.int(bufs[0].len))
			if !bytes.Equal(got, req64) {
				return errors.New("the answer is not the request")
			}
			return nil
		},
	})

	// bare_method_call_64: hms_method_call straight through cgo, five
	// arguments, no binding code (echo_raw_64 minus this is the binding).
	bareHandle := C.hms_method(m.RawHandle())
	bareMethodCall := func() C.int32_t {
		return C.hms_method_call(bareHandle, (*C.uint8_t)(unsafe.Pointer(&req64[0])), C.size_t(len(req64)), &bufs[0], &bufs[1])
	}
	benches = append(benches, &benchrun.Bench{
		ID: "bare_method_call_64", Label: "hms_method_call Echo 64 B straight through cgo, no binding code", Baseline: "floor",
		Run: func(n int) error {
			for i := 0; i < n; i++ {
				if rc := bareMethodCall(); rc != 0 {
					return fmt.Errorf("hms_method_call: status %d", rc)
				}
			}
			return nil
		},
		Check: func() error {
			if rc := bareMethodCall(); rc != 0 {
				return fmt.Errorf("hms_method_call: status %d", rc)
			}
			got := C.GoBytes(unsafe.Pointer(bufs[0].data), C.int(bufs[0].len))
			if !bytes.Equal(got, req64) {
				return errors.New("the answer is not the request")
			}
			return nil
		},
	})

	for _, sz := range []struct {
		name string
		size int
	}{{"64", 64}, {"1k", 1 << 10}, {"64k", 64 << 10}} {
		req := echoRequest(sz.size)
		benches = append(benches, &benchrun.Bench{
			ID:    "echo_raw_" + sz.name,
			Label: fmt.Sprintf("Echo %s B raw: MethodHandle.CallRaw (hms_method_call), answer copied out", sz.name),
			Run: func(n int) error {
				for i := 0; i < n; i++ {
					if _, err := m.CallRaw(ctx, req); err != nil {
						return err
					}
				}
				return nil
			},
			Check: func() error {
				out, err := m.CallRaw(ctx, req)
				if err != nil {
					return err
				}
				if !bytes.Equal(out, req) {
					return errors.New("the answer is not the request")
				}
				return nil
			},
			Baseline: "floor",
		})
	}
	for _, sz := range []struct {
		name string
		size int
	}{{"64", 64}, {"1k", 1 << 10}, {"64k", 64 << 10}} {
		req := &sysv1.EchoRequest{Payload: bytes.Repeat([]byte{'x'}, sz.size)}
		var resp sysv1.EchoResponse
		benches = append(benches, &benchrun.Bench{
			ID:    "echo_typed_" + sz.name,
			Label: fmt.Sprintf("Echo %s B typed: MethodHandle.Call with *sysv1.EchoRequest / *sysv1.EchoResponse", sz.name),
			Run: func(n int) error {
				for i := 0; i < n; i++ {
					if err := m.Call(ctx, req, &resp); err != nil {
						return err
					}
				}
				return nil
			},
			Check: func() error {
				var r sysv1.EchoResponse
				if err := m.Call(ctx, req, &r); err != nil {
					return err
				}
				if !bytes.Equal(r.Payload, req.Payload) {
					return errors.New("the answer is not the request")
				}
				return nil
			},
			Baseline: "floor",
		})
	}

	// create_agent_typed, in a runtime of its own (it fills its store).
	agents, err := hms.Open()
	if err != nil {
		return nil, cleanup, err
	}
	closers = append(closers, agents.Close)
	agentN := 0
	benches = append(benches, &benchrun.Bench{
		ID: "create_agent_typed", Label: "AgentService/CreateAgent typed (rt.Agents().Create), in-memory runtime", Baseline: "floor",
		Run: func(n int) error {
			for i := 0; i < n; i++ {
				agentN++
				if _, err := agents.Agents().Create(ctx, &agentv1.Agent{Name: "bench-" + strconv.Itoa(agentN)}); err != nil {
					return err
				}
			}
			return nil
		},
		Check: func() error {
			a, err := agents.Agents().Create(ctx, &agentv1.Agent{Name: "bench-check"})
			if err != nil {
				return err
			}
			if a.Id == "" || a.Name != "bench-check" {
				return fmt.Errorf("created %v", a)
			}
			return nil
		},
	})

	// transition_typed: one agent, ACTIVE and PAUSED in turn (both legal).
	agent, err := rt.Agents().Create(ctx, &agentv1.Agent{Name: "bench-lifecycle"})
	if err != nil {
		return nil, cleanup, err
	}
	if _, err := rt.Lifecycle().To(ctx, agent.Id, lifecyclev1.LifecycleState_ACTIVE, "bench"); err != nil {
		return nil, cleanup, err
	}
	state := lifecyclev1.LifecycleState_ACTIVE
	transition := func() (*lifecyclev1.TransitionResponse, error) {
		next := lifecyclev1.LifecycleState_PAUSED
		if state == next {
			next = lifecyclev1.LifecycleState_ACTIVE
		}
		resp, err := rt.Lifecycle().Transition(ctx, &lifecyclev1.TransitionRequest{AgentId: agent.Id, TargetState: next})
		if err == nil {
			state = next
		}
		return resp, err
	}
	benches = append(benches, &benchrun.Bench{
		ID: "transition_typed", Label: "LifecycleService/Transition typed, ACTIVE <-> PAUSED in turn", Baseline: "floor",
		Run: func(n int) error {
			for i := 0; i < n; i++ {
				if _, err := transition(); err != nil {
					return err
				}
			}
			return nil
		},
		Check: func() error {
			before := state
			resp, err := transition()
			if err != nil {
				return err
			}
			if resp.PreviousState != before || resp.CurrentState != state {
				return fmt.Errorf("transition gave %v", resp)
			}
			return nil
		},
	})

	// batch_echo_raw_64: 1,000 calls in one hms_call_batch; time per call.
	reqs := make([][]byte, 1000)
	for i := range reqs {
		reqs[i] = req64
	}
	benches = append(benches, &benchrun.Bench{
		ID: "batch_echo_raw_64", Label: "1,000 raw Echo 64 B calls in one MethodHandle.CallBatch (hms_call_batch), per call",
		Baseline: "echo_raw_64", PerOp: len(reqs),
		Run: func(n int) error {
			for i := 0; i < n; i++ {
				if _, err := m.CallBatch(ctx, reqs); err != nil {
					return err
				}
			}
			return nil
		},
		Check: func() error {
			out, err := m.CallBatch(ctx, reqs)
			if err != nil {
				return err
			}
			for i := range out {
				if !bytes.Equal(out[i], req64) {
					return fmt.Errorf("answer %d is not its request", i)
				}
			}
			return nil
		},
	})
	_ = sink
	return benches, cleanup, nil
}

// coreLoop times n calls of hms_method_call Echo of size bytes from C.
func coreLoop(rt *hms.Runtime, size, n int) (float64, error) {
	m, err := rt.Method(echo, hms.FormatProtobuf)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	req := echoRequest(size)
	var best float64
	for r := 0; r < 5; r++ {
		elapsed, err := cbench.MethodLoop(m.RawHandle(), req, n)
		if err != nil {
			return 0, err
		}
		per := float64(elapsed.Nanoseconds()) / float64(n)
		if r == 0 || per < best {
			best = per
		}
	}
	runtime.KeepAlive(m)
	return benchrun.Round2(best), nil
}

// rss1mEcho reads VmRSS before and after 1,000,000 raw Echo 64 B calls
// (after 200,000 to warm up), collecting garbage before each reading; later
// holds the readings after a second and a third million.
func rss1mEcho(ctx context.Context, rt *hms.Runtime) (mem benchrun.Memory, later [2]int64, err error) {
	m, err := rt.Method(echo, hms.FormatProtobuf)
	if err != nil {
		return benchrun.Memory{}, later, err
	}
	defer m.Close()
	req := echoRequest(64)
	calls := func(n int) error {
		for i := 0; i < n; i++ {
			if _, err := m.CallRaw(ctx, req); err != nil {
				return err
			}
		}
		return nil
	}
	if err := calls(200000); err != nil {
		return benchrun.Memory{}, later, err
	}
	before, err := rssKiB()
	if err != nil {
		return benchrun.Memory{}, later, err
	}
	const n = 1000000
	if err := calls(n); err != nil {
		return benchrun.Memory{}, later, err
	}
	after, err := rssKiB()
	if err != nil {
		return benchrun.Memory{}, later, err
	}
	for i := range later {
		if err := calls(n); err != nil {
			return benchrun.Memory{}, later, err
		}
		if later[i], err = rssKiB(); err != nil {
			return benchrun.Memory{}, later, err
		}
	}
	return benchrun.Memory{ID: "rss_1m_echo", Label: "1,000,000 raw Echo 64 B calls (MethodHandle.CallRaw)",
		Calls: n, RSSBeforeKiB: before, RSSAfterKiB: after}, later, nil
}

// rssKiB is VmRSS of /proc/self/status after a garbage collection that
// returns freed memory to the system.
func rssKiB() (int64, error) {
	runtime.GC()
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				break
			}
			return strconv.ParseInt(fields[0], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}

func notes(rounds int, roundTime time.Duration) []string {
	n := []string{
		fmt.Sprintf("libhms_ffi %s (ABI %d.%d); %d rounds of about %v per case, interleaved across cases, after one warm-up round each; medians and quartiles of the per-call time per round.",
			hms.LibraryVersion(), hms.ABIMajor, hms.ABIMinor, rounds, roundTime),
		"Raw and typed Echo go through one MethodHandle (resolved once); the typed cases marshal the request and unmarshal the answer with protobuf-go, reusing one response message.",
		"create_agent_typed and transition_typed use the typed clients (rt.Agents(), rt.Lifecycle()), whose calls by name go through the runtime's cache of method handles.",
	}
	if cpu := cpuModel(); cpu != "" {
		n = append(n, fmt.Sprintf("Machine: %s, %d CPUs (GOMAXPROCS %d).", cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0)))
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		n = append(n, "Load average at the end of the run: "+strings.Join(strings.Fields(string(load))[:3], " ")+".")
	}
	return n
}

func ratioNotes(byID map[string]*benchrun.Case) []string {
	var out []string
	ratio := func(a, b string) (float64, bool) {
		ca, cb := byID[a], byID[b]
		if ca == nil || cb == nil || cb.MedianNs == 0 {
			return 0, false
		}
		return ca.MedianNs / cb.MedianNs, true
	}
	if r, ok := ratio("echo_raw_64", "floor"); ok {
		out = append(out, fmt.Sprintf("Target echo_raw_64 within 5x of floor: %.2fx, %s.", r, metOrNot(r <= 5)))
	}
	if r, ok := ratio("batch_echo_raw_64", "echo_raw_64"); ok {
		out = append(out, fmt.Sprintf("Target batch_echo_raw_64 at most 0.25x of echo_raw_64: %.2fx, %s.", r, metOrNot(r <= 0.25)))
	}
	return out
}

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
		}
	}
	return ""
}

// defaultOut is go.json in $HMS_BENCH_OUT, the folder scripts/bench.sh gives
// every language, or in benchmarks/out.
func defaultOut() string {
	if dir := os.Getenv("HMS_BENCH_OUT"); dir != "" {
		return filepath.Join(dir, "go.json")
	}
	return filepath.Join("benchmarks", "out", "go.json")
}
