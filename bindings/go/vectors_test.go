package hms_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	hms "github.com/hms-ffi/hms/bindings/go"
	// The generated packages register every hms type with protoregistry.
	_ "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/lifecycle/v1"
	_ "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/v1"
	_ "github.com/hms-ffi/hms/bindings/go/gen/hms/events/v1"
	_ "github.com/hms-ffi/hms/bindings/go/gen/hms/registry/v1"
	_ "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
	_ "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

// The shared golden vectors of tests/vectors (protocol: its README.md).

type vectorCase struct {
	Type  string            `json:"type"`
	Case  string            `json:"case"`
	Tags  []string          `json:"tags"`
	Files map[string]string `json:"files"`
}

type vectorManifest struct {
	Version int          `json:"version"`
	Cases   []vectorCase `json:"cases"`
}

var vectorFormats = map[string]hms.Format{"json": hms.FormatJSON, "cbor": hms.FormatCBOR, "pb": hms.FormatProtobuf}

func loadVectors(t *testing.T) (string, vectorManifest) {
	t.Helper()
	dir := filepath.Join("..", "..", "tests", "vectors")
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatalf("the shared vectors are part of the repository: %v", err)
	}
	var m vectorManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Cases) == 0 {
		t.Fatal("no vector cases")
	}
	return dir, m
}

func TestSharedVectors(t *testing.T) {
	dir, m := loadVectors(t)
	for _, c := range m.Cases {
		t.Run(c.Type+"/"+c.Case, func(t *testing.T) {
			files := map[string][]byte{}
			for ext, rel := range c.Files {
				b, err := os.ReadFile(filepath.Join(dir, rel))
				if err != nil {
					t.Fatal(err)
				}
				files[ext] = b
			}
			check := func(what, ext string, got []byte) {
				t.Helper()
				// The core's output is deterministic in every format.
				if !bytes.Equal(got, files[ext]) {
					t.Errorf("%s -> %s:\n got %q\nwant %q", what, ext, got, files[ext])
				}
			}
			// 1. Six directions (and three identities) through the core.
			for from, ff := range vectorFormats {
				for to, tf := range vectorFormats {
					got, err := hms.Convert(c.Type, ff, files[from], tf)
					if err != nil {
						t.Errorf("convert %s -> %s: %v", from, to, err)
						continue
					}
					check("core "+from, to, got)
				}
			}
			// 2a. Go's generated types: parse the .pb and the .json with
			// google.golang.org/protobuf, serialize, convert through the core.
			mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(c.Type))
			if err != nil {
				t.Fatalf("no generated Go type: %v", err)
			}
			fromPB := mt.New().Interface()
			if err := proto.Unmarshal(files["pb"], fromPB); err != nil {
				t.Fatalf("protobuf-go cannot parse the .pb: %v", err)
			}
			fromJSON := mt.New().Interface()
			if err := protojson.Unmarshal(files["json"], fromJSON); err != nil {
				t.Fatalf("protojson cannot parse the .json: %v", err)
			}
			if !proto.Equal(fromPB, fromJSON) {
				t.Errorf("the .pb and the .json differ as Go messages:\n%v\n%v", fromPB, fromJSON)
			}
			native, err := proto.MarshalOptions{Deterministic: true}.Marshal(fromPB)
			if err != nil {
				t.Fatal(err)
			}
			for to, tf := range vectorFormats {
				got, err := hms.Convert(c.Type, hms.FormatProtobuf, native, tf)
				if err != nil {
					t.Errorf("Go protobuf -> %s: %v", to, err)
					continue
				}
				check("Go protobuf", to, got)
			}
			// 2b. Native values: the CBOR decoded into Go values
			// (map[string]any, []byte, int64/uint64, strings), encoded again
			// by the binding's CBOR library, converted through the core.
			var v any
			if err := hms.UnmarshalCBOR(files["cbor"], &v); err != nil {
				t.Fatalf("cannot decode the .cbor: %v", err)
			}
			again, err := hms.MarshalCBOR(v)
			if err != nil {
				t.Fatal(err)
			}
			for to, tf := range vectorFormats {
				got, err := hms.Convert(c.Type, hms.FormatCBOR, again, tf)
				if err != nil {
					t.Errorf("Go values -> %s: %v", to, err)
					continue
				}
				check("Go values", to, got)
			}
		})
	}
}
