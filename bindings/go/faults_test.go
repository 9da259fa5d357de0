package hms_test

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
)

// The fault-injection copy of the core (tests/faults/build_fault_library.sh,
// Cargo feature fault-injection) has the built-in untyped service
// hms.test.v1.Faults: Panic panics before answering, PanicWhileAnswering
// grows the caller's response buffer by 1 MiB and then panics. CI passes
// its path in HMS_FFI_FAULT_LIBRARY.
const (
	faultPanic               = "hms.test.v1.Faults/Panic"
	faultPanicWhileAnswering = "hms.test.v1.Faults/PanicWhileAnswering"
	faultRounds              = 3
	// Set in the environment of the test binary re-run against the fault
	// library: that process runs the panics instead of starting another.
	faultChildEnv = "HMS_GO_FAULT_CHILD"
	// Big enough that the echo answer needs more than a fresh buffer.
	faultEchoPayloadBytes = 96 << 10
)

// emptyCBORMap is {} in CBOR: the Faults methods take any value.
var emptyCBORMap = []byte{0xa0}

// faultLibrary is HMS_FFI_FAULT_LIBRARY as an absolute path. Without it the
// test skips, except in CI, where a missing library must never let the
// test pass unnoticed.
func faultLibrary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("HMS_FFI_FAULT_LIBRARY")
	if path == "" {
		reason := "HMS_FFI_FAULT_LIBRARY is not set: build the fault-injection core with " +
			`HMS_FFI_FAULT_LIBRARY="$(bash tests/faults/build_fault_library.sh | tail -n1)"`
		if ci := strings.ToLower(os.Getenv("CI")); ci == "true" || ci == "1" {
			t.Fatal(reason + " (CI=true: this test must run)")
		}
		t.Skip(reason)
	}
	abs, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatalf("HMS_FFI_FAULT_LIBRARY=%s: %v", path, err)
	}
	abs, err = filepath.Abs(abs)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// The test binary is linked to libhms_ffi with a RUNPATH (the hms_ffi.pc
// of cgo-env.sh --pc), so it loads the release library; the same binary run
// again with LD_LIBRARY_PATH (searched before RUNPATH) naming a folder that
// holds the fault copy loads that one instead, as run_tests.sh does for the
// library of another ABI.
func TestPanicInsideTheCoreThenCallAgainWithTheSameBuffers(t *testing.T) {
	if os.Getenv(faultChildEnv) == "1" {
		survivePanics(t)
		return
	}
	library := faultLibrary(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The loader looks for the name the binary recorded (the library's
	// soname, libhms_ffi.so.1), whatever the variable calls the file.
	if err := os.Symlink(library, filepath.Join(dir, neededLibhmsFFI(t, exe))); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=300s")
	// exec.Cmd keeps the last of duplicate variables: these win.
	cmd.Env = append(os.Environ(),
		"LD_LIBRARY_PATH="+dir,
		"HMS_FFI_FAULT_LIBRARY="+library,
		faultChildEnv+"=1",
		// The core's panic message on stderr is expected; keep it short.
		"RUST_BACKTRACE=0",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the test run against %s failed (%v):\n%s", library, err, out)
	}
	want := fmt.Sprintf("survived %d panics", faultRounds*4)
	if !bytes.Contains(out, []byte(want)) {
		t.Fatalf("the run against %s did not report %q:\n%s", library, want, out)
	}
	t.Logf("against %s: %s", library, want)
}

// neededLibhmsFFI is the name under which the executable asks the loader
// for libhms_ffi (its DT_NEEDED entry).
func neededLibhmsFFI(t *testing.T, exe string) string {
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range libs {
		if strings.HasPrefix(lib, "libhms_ffi.") {
			return lib
		}
	}
	t.Fatalf("%s does not link libhms_ffi (it needs %v)", exe, libs)
	return ""
}

// survivePanics runs in the process that loaded the fault library.
func survivePanics(t *testing.T) {
	library := os.Getenv("HMS_FFI_FAULT_LIBRARY")
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	loaded := false
	for _, line := range strings.Split(string(maps), "\n") {
		if !strings.Contains(line, "libhms_ffi") {
			continue
		}
		if !strings.HasSuffix(line, " "+library) {
			t.Fatalf("another libhms_ffi is loaded (LD_LIBRARY_PATH did not take effect): %s", line)
		}
		loaded = true
	}
	if !loaded {
		t.Fatalf("%s is not mapped into the process", library)
	}
	ctx := ctxT(t)
	rt := open(t)
	// Calls by name (CallRaw without options: never cached, as no Faults
	// call ever answers) and through method handles; each panic is followed
	// by an echo the same way, through the binding's reused buffers.
	byHandle := map[string]*hms.MethodHandle{
		faultPanic:               method(t, rt, faultPanic, hms.FormatCBOR),
		faultPanicWhileAnswering: method(t, rt, faultPanicWhileAnswering, hms.FormatCBOR),
	}
	echoHandle := method(t, rt, echo, hms.FormatProtobuf)
	type path struct {
		label string
		panic func(name string) error
		echo  func(req, resp proto.Message) error
	}
	paths := []path{
		{
			"by name",
			func(name string) error { return errOf(rt.CallRaw(ctx, name, hms.FormatCBOR, emptyCBORMap)) },
			// With options a call always goes by name (hms_call), never
			// through the handle the runtime caches after an answer.
			func(req, resp proto.Message) error { return rt.Call(ctx, echo, req, resp, hms.WithTraceID("faults")) },
		},
		{
			"by handle",
			func(name string) error { return errOf(byHandle[name].CallRaw(ctx, emptyCBORMap)) },
			func(req, resp proto.Message) error { return echoHandle.Call(ctx, req, resp) },
		},
	}
	panics := 0
	for round := range faultRounds {
		for _, name := range []string{faultPanic, faultPanicWhileAnswering} {
			for _, p := range paths {
				label := fmt.Sprintf("%s %s, round %d", name, p.label, round)
				err := p.panic(name)
				e := wantCode(t, err, hms.CodePanic)
				if !errors.Is(err, hms.ErrPanic) || int32(e.Code) != 104 {
					t.Fatalf("%s: %v is not ErrPanic (104)", label, err)
				}
				if !strings.Contains(e.Message, "fault injected") {
					t.Fatalf("%s: message %q", label, e.Message)
				}
				panics++
				text := "after " + label
				payload := bytes.Repeat([]byte{byte(panics)}, faultEchoPayloadBytes)
				var reply sysv1.EchoResponse
				if err := p.echo(&sysv1.EchoRequest{Text: text, Payload: payload}, &reply); err != nil {
					t.Fatalf("echo %s: %v", text, err)
				}
				if reply.Text != text || !bytes.Equal(reply.Payload, payload) {
					t.Fatalf("echo %s answered text %q and %d payload bytes", text, reply.Text, len(reply.Payload))
				}
			}
		}
	}
	fmt.Printf("survived %d panics\n", panics)
}

// The release library (that of the normal suite) never has the service
// that panics on purpose.
func TestTheReleaseLibraryHasNoFaultsService(t *testing.T) {
	rt := open(t)
	wantCode(t, errOf(rt.CallRaw(ctxT(t), faultPanic, hms.FormatCBOR, emptyCBORMap)), hms.CodeNotFound)
	wantCode(t, errOf(rt.Method(faultPanicWhileAnswering, hms.FormatCBOR)), hms.CodeNotFound)
}
