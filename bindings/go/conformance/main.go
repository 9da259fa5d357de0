// Command conformance is the Go runner of the error-parity suite
// (tests/conformance/README.md): it runs every scenario of scenarios.json
// through the binding's public API and prints one JSON line per scenario.
//
//	cd bindings/go && bash conformance/run.sh /abs/path/tests/conformance/scenarios.json
//
// run.sh links it to HMS_FFI_LIBRARY or the checkout's release build (through
// cgo-env.sh); `go run ./conformance` links the binding's default way, the
// installed library found through pkg-config (README.md, "How the library is
// found"). Exit status 0 when every scenario ran, whatever its code; 2 when
// the runner could not run.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	hms "github.com/hms-ffi/hms/bindings/go"
)

type document struct {
	Services  map[string]serviceSpec `json:"services"`
	Scenarios []scenario             `json:"scenarios"`
}

type serviceSpec struct {
	Methods map[string]behaviour `json:"methods"`
}

type behaviour struct {
	Behaviour string `json:"behaviour"`
	Message   string `json:"message"`
	Code      string `json:"code"`
	Ms        int    `json:"ms"`
}

type scenario struct {
	ID            string  `json:"id"`
	RuntimeConfig *string `json:"runtime_config"`
	Services      []string
	Steps         []step `json:"steps"`
}

type step struct {
	Op      string            `json:"op"`
	Method  string            `json:"method"`
	Format  json.RawMessage   `json:"format"`
	Request json.RawMessage   `json:"request"`
	Options json.RawMessage   `json:"options"`
	Save    map[string]string `json:"save"`
	Type    string            `json:"type"`
	From    json.RawMessage   `json:"from"`
	To      json.RawMessage   `json:"to"`
	Data    json.RawMessage   `json:"data"`
	Config  json.RawMessage   `json:"config"`
	Service string            `json:"service"`
}

type line struct {
	Lang     string `json:"lang"`
	Scenario string `json:"scenario"`
	Step     int    `json:"step"`
	Code     string `json:"code"`
	Error    string `json:"error"`
	Message  string `json:"message"`
	Origin   string `json:"origin"`
}

// Remote mode (tests/conformance/README.md): the scenarios named in
// remoteIDs run in a runtime opened with remoteConfig, their services served
// by another process.
var (
	remoteIDs    = strings.Fields(os.Getenv("HMS_CONFORMANCE_REMOTE"))
	remoteConfig = os.Getenv("HMS_CONFORMANCE_REMOTE_CONFIG")
)

var codesByName = func() map[string]hms.Code {
	m := map[string]hms.Code{}
	for _, c := range hms.Codes() {
		m[c.String()] = c
	}
	return m
}()

// sentinelNames names the sentinel an error matches with errors.Is.
var sentinelNames = map[hms.Code]string{}

func init() {
	for _, c := range hms.Codes() {
		if c == hms.CodeOK {
			continue
		}
		// CODE_NAME -> ErrCodeName, as the sentinels are spelled.
		parts := strings.Split(strings.ToLower(c.String()), "_")
		for i, p := range parts {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
		sentinelNames[c] = "hms.Err" + strings.Join(parts, "")
	}
}

func format(raw json.RawMessage) (hms.Format, error) {
	var name string
	if json.Unmarshal(raw, &name) == nil {
		switch name {
		case "protobuf":
			return hms.FormatProtobuf, nil
		case "cbor":
			return hms.FormatCBOR, nil
		case "json":
			return hms.FormatJSON, nil
		}
		return 0, fmt.Errorf("unknown format %q", name)
	}
	var n int32
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("bad format %s", raw)
	}
	return hms.Format(n), nil
}

var varRef = regexp.MustCompile(`\$\{(\w+)\}`)

// payload gives the bytes of a payload spec: text (with ${var}), {"hex"},
// {"concat": [...]}, {"repeat": spec, "times": n}.
func payload(raw json.RawMessage, env map[string]string) ([]byte, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		return []byte(varRef.ReplaceAllStringFunc(text, func(ref string) string {
			return env[varRef.FindStringSubmatch(ref)[1]]
		})), nil
	}
	var spec struct {
		Hex    *string           `json:"hex"`
		Concat []json.RawMessage `json:"concat"`
		Repeat json.RawMessage   `json:"repeat"`
		Times  int               `json:"times"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, err
	}
	switch {
	case spec.Hex != nil:
		return hex.DecodeString(*spec.Hex)
	case spec.Concat != nil:
		var out []byte
		for _, part := range spec.Concat {
			b, err := payload(part, env)
			if err != nil {
				return nil, err
			}
			out = append(out, b...)
		}
		return out, nil
	case spec.Repeat != nil:
		b, err := payload(spec.Repeat, env)
		if err != nil {
			return nil, err
		}
		return []byte(strings.Repeat(string(b), spec.Times)), nil
	}
	return nil, fmt.Errorf("unknown payload spec %s", raw)
}

// method is a Go handler doing what a scenario method says: untyped, CBOR.
func method(name string, b behaviour) (hms.Method, error) {
	switch b.Behaviour {
	case "echo":
		return hms.ValueMethod(name, func(_ context.Context, v any) (any, error) { return v, nil }), nil
	case "raise":
		return hms.ValueMethod(name, func(context.Context, any) (any, error) { return nil, errors.New(b.Message) }), nil
	case "raise_status":
		code, ok := codesByName[b.Code]
		if !ok {
			return hms.Method{}, fmt.Errorf("unknown code %q", b.Code)
		}
		return hms.ValueMethod(name, func(context.Context, any) (any, error) {
			return nil, &hms.Error{Code: code, Message: b.Message}
		}), nil
	case "sleep":
		return hms.ValueMethod(name, func(context.Context, any) (any, error) {
			time.Sleep(time.Duration(b.Ms) * time.Millisecond)
			return map[string]any{}, nil
		}), nil
	}
	return hms.Method{}, fmt.Errorf("unknown behaviour %q", b.Behaviour)
}

func register(rt *hms.Runtime, name string, doc *document) error {
	spec, ok := doc.Services[name]
	if !ok {
		return fmt.Errorf("unknown service %q", name)
	}
	def := hms.ServiceDef{Name: name}
	for m, b := range spec.Methods {
		hm, err := method(m, b)
		if err != nil {
			return err
		}
		def.Methods = append(def.Methods, hm)
	}
	_, err := rt.Register(def)
	return err
}

func dig(answer []byte, path string) (string, error) {
	var v any
	if err := json.Unmarshal(answer, &v); err != nil {
		return "", err
	}
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("no %q in %s", path, answer)
		}
		v = m[part]
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	return fmt.Sprint(v), nil
}

// runnerError is a bug of the runner or of the scenario file, not a status.
type runnerError struct{ error }

func runStep(s step, rt *hms.Runtime, env map[string]string, doc *document) error {
	ctx := context.Background()
	switch s.Op {
	case "call":
		f, err := format(s.Format)
		if err != nil {
			return runnerError{err}
		}
		req, err := payload(s.Request, env)
		if err != nil {
			return runnerError{err}
		}
		var opts []hms.CallOption
		if len(s.Options) > 0 {
			raw, err := payload(s.Options, env)
			if err != nil {
				return runnerError{err}
			}
			opts = append(opts, hms.WithRawCallOptions(raw))
		}
		answer, err := rt.CallRaw(ctx, s.Method, f, req, opts...)
		if err != nil {
			return err
		}
		for name, path := range s.Save {
			v, err := dig(answer, path)
			if err != nil {
				return runnerError{err}
			}
			env[name] = v
		}
		return nil
	case "convert":
		from, err := format(s.From)
		if err != nil {
			return runnerError{err}
		}
		to, err := format(s.To)
		if err != nil {
			return runnerError{err}
		}
		data, err := payload(s.Data, env)
		if err != nil {
			return runnerError{err}
		}
		_, err = hms.Convert(s.Type, from, data, to)
		return err
	case "runtime_new":
		f, err := format(s.Format)
		if err != nil {
			return runnerError{err}
		}
		cfg, err := payload(s.Config, env)
		if err != nil {
			return runnerError{err}
		}
		other, err := hms.Open(hms.WithRawConfig(f, cfg))
		if err != nil {
			return err
		}
		return other.Close()
	case "register_service":
		return register(rt, s.Service, doc)
	case "close_runtime":
		return rt.Close()
	}
	return runnerError{fmt.Errorf("unknown op %q", s.Op)}
}

func run(sc scenario, doc *document) (line, error) {
	out := line{Lang: "go", Scenario: sc.ID}
	var opts []hms.Option
	services := sc.Services
	if slices.Contains(remoteIDs, sc.ID) {
		sc.RuntimeConfig, services = &remoteConfig, nil
	}
	if sc.RuntimeConfig != nil {
		opts = append(opts, hms.WithRawConfig(hms.FormatJSON, []byte(*sc.RuntimeConfig)))
	}
	rt, err := hms.Open(opts...)
	if err != nil {
		return out, fmt.Errorf("scenario %s: cannot open its runtime: %w", sc.ID, err)
	}
	defer rt.Close()
	for _, name := range services {
		if err := register(rt, name, doc); err != nil {
			return out, fmt.Errorf("scenario %s: %w", sc.ID, err)
		}
	}
	env := map[string]string{}
	for i, s := range sc.Steps {
		out.Step = i
		err := runStep(s, rt, env, doc)
		var re runnerError
		if errors.As(err, &re) {
			return out, fmt.Errorf("scenario %s, step %d: %w", sc.ID, i, re.error)
		}
		if err != nil {
			code := hms.CodeOf(err)
			out.Code = code.String()
			out.Error = sentinelNames[code]
			if !errors.Is(err, hms.Sentinel(code)) {
				return out, fmt.Errorf("scenario %s: %v does not match %s", sc.ID, err, out.Error)
			}
			var e *hms.Error
			if errors.As(err, &e) {
				out.Message, out.Origin = e.Message, e.Origin
			}
			return out, nil
		}
	}
	out.Code = "OK"
	return out, nil
}

func main() {
	path := os.Getenv("HMS_CONFORMANCE_SCENARIOS")
	if len(os.Args) > 1 {
		path = os.Args[len(os.Args)-1]
	}
	if path == "" {
		path = filepath.Join("..", "..", "tests", "conformance", "scenarios.json")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
	var doc document
	if err := json.Unmarshal(raw, &doc); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	for _, sc := range doc.Scenarios {
		l, err := run(sc, &doc)
		if err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			os.Exit(2)
		}
		if err := enc.Encode(l); err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			os.Exit(2)
		}
	}
}
