package hms

/*
#include "hms_go.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
	"google.golang.org/protobuf/proto"

	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

// The ABI this binding was compiled against: include/hms_ffi.h's macros.
const (
	ABIMajor = C.HMS_ABI_VERSION_MAJOR
	ABIMinor = C.HMS_ABI_VERSION_MINOR
)

// ABIVersion returns (major, minor) of the loaded library (hms_abi_version):
// one bare cgo call.
func ABIVersion() (major, minor uint32) {
	v := uint32(C.hms_abi_version())
	return v >> 16, v & 0xFFFF
}

// LibraryVersion is the semantic version of the loaded library (hms_version).
func LibraryVersion() string {
	return C.GoString(C.hms_version())
}

var abiOnce = sync.OnceValue(func() error {
	return checkABI(uint32(C.hms_abi_version()))
})

// CheckABI verifies that the loaded library speaks this binding's ABI: the
// same major and a minor at least the header's. Open calls it; the result
// is computed once. The error wraps ErrIncompatible and names both versions.
func CheckABI() error { return abiOnce() }

func checkABI(loaded uint32) error {
	major, minor := loaded>>16, loaded&0xFFFF
	if major != ABIMajor || minor < ABIMinor {
		return &Error{
			Code: CodeIncompatible,
			Message: fmt.Sprintf("libhms_ffi ABI %d.%d is incompatible with the Go binding built for ABI %d.%d "+
				"(needs %d.x with x >= %d): a stale library is being loaded; install the matching core "+
				"(make install) or point LD_LIBRARY_PATH (PKG_CONFIG_PATH, CGO_LDFLAGS when building) at it",
				major, minor, ABIMajor, ABIMinor, ABIMajor, ABIMinor),
			Details: map[string]string{
				"library_abi": fmt.Sprintf("%d.%d", major, minor),
				"binding_abi": fmt.Sprintf("%d.%d", ABIMajor, ABIMinor),
			},
			Origin: "hms-go",
		}
	}
	return nil
}

// keepCapacity: an output buffer that grew past this is released after the
// call, so one large answer does not pin memory in the pool for good.
const keepCapacity = 1 << 20

// bufPair is one (output, error) pair of hms_buf in C memory. The library
// reuses the memory of each buffer for the next answer, so a call crosses
// the boundary exactly once. Goroutines take a pair from bufPool for the
// duration of one call (a handler that calls back in simply takes another).
type bufPair struct {
	p       *C.hms_buf
	scratch []byte // Go-side scratch for encoding requests
}

func (b *bufPair) out() *C.hms_buf { return b.p }
func (b *bufPair) err() *C.hms_buf {
	return (*C.hms_buf)(unsafe.Add(unsafe.Pointer(b.p), unsafe.Sizeof(C.hms_buf{})))
}

var bufPool = sync.Pool{New: func() any {
	p := C.hms_go_buf_pair_new()
	if p == nil {
		panic("hms: out of memory allocating an hms_buf pair")
	}
	b := &bufPair{p: p}
	// Pairs the pool drops are freed with their memory.
	runtime.AddCleanup(b, func(p *C.hms_buf) { C.hms_go_buf_pair_free(p) }, p)
	return b
}}

func getBufs() *bufPair { return bufPool.Get().(*bufPair) }

func putBufs(b *bufPair) {
	if b.out().cap > keepCapacity {
		C.hms_buf_free(b.out())
	}
	if b.err().cap > keepCapacity {
		C.hms_buf_free(b.err())
	}
	bufPool.Put(b)
}

// bytesOf copies the latest output of buf into Go memory.
func bytesOf(buf *C.hms_buf) []byte {
	n := int(buf.len)
	if n == 0 || buf.data == nil {
		return []byte{}
	}
	out := make([]byte, n)
	copy(out, unsafe.Slice((*byte)(unsafe.Pointer(buf.data)), n))
	return out
}

// cBytes is the (pointer, length) pair of b for C; nil for an empty slice.
// The Go memory is pinned by cgo for the duration of the call.
func cBytes(b []byte) (*C.uint8_t, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(b))), C.size_t(len(b))
}

func cString(s string) (*C.char, C.size_t) {
	if len(s) == 0 {
		return nil, 0
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s))
}

// statusFields is hms.v1.Status as CBOR and JSON carry it.
type statusFields struct {
	Code    int32             `cbor:"code" json:"code"`
	Message string            `cbor:"message" json:"message"`
	Details map[string]string `cbor:"details" json:"details"`
	Origin  string            `cbor:"origin" json:"origin"`
}

// errorFrom builds the *Error of status rc from the hms.v1.Status the
// library wrote into err in format f (JSON when the format was unknown).
func errorFrom(rc C.int32_t, err *C.hms_buf, f Format) *Error {
	var raw []byte
	if err != nil && err.len > 0 && err.data != nil {
		raw = unsafe.Slice((*byte)(unsafe.Pointer(err.data)), int(err.len))
	}
	return statusError(Code(rc), raw, f)
}

// statusError builds the *Error of status code from raw, an hms.v1.Status
// in format f (JSON when the format was unknown); raw may be empty. Every
// error the library reports goes through here: the error buffer of a call
// and the answer of a failed call inside a batch alike.
func statusError(code Code, raw []byte, f Format) *Error {
	e := &Error{Code: code}
	if len(raw) > 0 {
		// A status whose code differs from the call's is stale (left by an
		// earlier call).
		if st, ok := decodeStatus(raw, f); ok && Code(st.Code) == code {
			e.Message, e.Details, e.Origin = st.Message, st.Details, st.Origin
		}
	}
	if e.Message == "" {
		e.Message = sentinel(code).Message
	}
	return e
}

func decodeStatus(raw []byte, f Format) (statusFields, bool) {
	var st statusFields
	try := func(f Format) bool {
		st = statusFields{}
		switch f {
		case FormatProtobuf:
			var m hmsv1.Status
			if proto.Unmarshal(raw, &m) != nil {
				return false
			}
			st = statusFields{Code: m.Code, Message: m.Message, Details: m.Details, Origin: m.Origin}
			return true
		case FormatCBOR:
			return cbor.Unmarshal(raw, &st) == nil
		default:
			return json.Unmarshal(raw, &st) == nil
		}
	}
	if try(f) {
		return st, true
	}
	// Unknown formats answer in JSON.
	if f != FormatJSON && try(FormatJSON) {
		return st, true
	}
	return st, false
}
