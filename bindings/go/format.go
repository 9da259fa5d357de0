package hms

/*
#include "hms_ffi.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Format is the encoding of a payload crossing the boundary.
type Format int32

// The formats of include/hms_ffi.h.
const (
	// FormatProtobuf is protobuf binary, the schema of truth.
	FormatProtobuf Format = C.HMS_FORMAT_PROTOBUF
	// FormatCBOR is CBOR with the data model of the proto3 JSON mapping:
	// maps keyed by proto field names, native integers and byte strings.
	FormatCBOR Format = C.HMS_FORMAT_CBOR
	// FormatJSON is the proto3 JSON mapping with proto field names.
	FormatJSON Format = C.HMS_FORMAT_JSON
)

func (f Format) String() string {
	switch f {
	case FormatProtobuf:
		return "protobuf"
	case FormatCBOR:
		return "cbor"
	case FormatJSON:
		return "json"
	}
	return fmt.Sprintf("Format(%d)", int32(f))
}

// cborDec decodes the core's CBOR: maps into map[string]any, byte strings
// into []byte, integers into int64/uint64, with no limits below the core's
// own (its payload and depth limits already apply to what it produces).
var cborDec = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
		MaxNestedLevels:  65535,
		MaxArrayElements: 2147483647,
		MaxMapPairs:      2147483647,
		IntDec:           cbor.IntDecConvertNone,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// cborEnc encodes requests deterministically (sorted map keys) with
// time.Time as RFC 3339 strings, as google.protobuf.Timestamp maps.
var cborEnc = func() cbor.EncMode {
	m, err := cbor.EncOptions{
		Sort:          cbor.SortCoreDeterministic,
		Time:          cbor.TimeRFC3339Nano,
		ShortestFloat: cbor.ShortestFloat16,
	}.EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// MarshalCBOR encodes v as the binding sends values (maps, structs with
// `cbor` or `json` tags, slices, []byte as byte strings).
func MarshalCBOR(v any) ([]byte, error) { return cborEnc.Marshal(v) }

// UnmarshalCBOR decodes CBOR as the binding reads answers (maps into
// map[string]any when v is *any).
func UnmarshalCBOR(data []byte, v any) error { return cborDec.Unmarshal(data, v) }

// encodeValue encodes a Go value in f (CBOR or JSON).
func encodeValue(v any, f Format) ([]byte, error) {
	if v == nil {
		v = map[string]any{}
	}
	var (
		out []byte
		err error
	)
	switch f {
	case FormatCBOR:
		out, err = cborEnc.Marshal(v)
	case FormatJSON:
		out, err = json.Marshal(v)
	default:
		return nil, bindingError(CodeInvalidArgument, nil, "values travel as CBOR or JSON, not %v", f)
	}
	if err != nil {
		return nil, bindingError(CodeInvalidArgument, err, "cannot encode %T as %v: %v", v, f, err)
	}
	return out, nil
}

// decodeValue decodes data in f into v (a pointer); empty data leaves v as is.
func decodeValue(data []byte, v any, f Format) error {
	if v == nil || len(data) == 0 {
		return nil
	}
	var err error
	switch f {
	case FormatCBOR:
		err = cborDec.Unmarshal(data, v)
	case FormatJSON:
		err = json.Unmarshal(data, v)
	default:
		return bindingError(CodeInvalidArgument, nil, "values travel as CBOR or JSON, not %v", f)
	}
	if err != nil {
		return bindingError(CodeDecodeError, err, "cannot decode the %v answer into %T: %v", f, v, err)
	}
	return nil
}
