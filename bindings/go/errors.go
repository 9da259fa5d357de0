package hms

/*
#include "hms_ffi.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Code is a status code of include/hms_ffi.h: 0..16 are gRPC's canonical
// codes, 100 and up are the bridge's own. The values come from the header's
// HMS_* macros through cgo.
type Code int32

// The status codes of include/hms_ffi.h.
const (
	CodeOK                 Code = C.HMS_OK
	CodeCancelled          Code = C.HMS_CANCELLED
	CodeUnknown            Code = C.HMS_UNKNOWN
	CodeInvalidArgument    Code = C.HMS_INVALID_ARGUMENT
	CodeDeadlineExceeded   Code = C.HMS_DEADLINE_EXCEEDED
	CodeNotFound           Code = C.HMS_NOT_FOUND
	CodeAlreadyExists      Code = C.HMS_ALREADY_EXISTS
	CodePermissionDenied   Code = C.HMS_PERMISSION_DENIED
	CodeResourceExhausted  Code = C.HMS_RESOURCE_EXHAUSTED
	CodeFailedPrecondition Code = C.HMS_FAILED_PRECONDITION
	CodeAborted            Code = C.HMS_ABORTED
	CodeOutOfRange         Code = C.HMS_OUT_OF_RANGE
	CodeUnimplemented      Code = C.HMS_UNIMPLEMENTED
	CodeInternal           Code = C.HMS_INTERNAL
	CodeUnavailable        Code = C.HMS_UNAVAILABLE
	CodeDataLoss           Code = C.HMS_DATA_LOSS
	CodeUnauthenticated    Code = C.HMS_UNAUTHENTICATED
	CodeInvalidHandle      Code = C.HMS_INVALID_HANDLE
	CodeDecodeError        Code = C.HMS_DECODE_ERROR
	CodeHandlerError       Code = C.HMS_HANDLER_ERROR
	CodeIncompatible       Code = C.HMS_INCOMPATIBLE
	CodePanic              Code = C.HMS_PANIC
)

var codeNames = map[Code]string{
	CodeOK:                 "OK",
	CodeCancelled:          "CANCELLED",
	CodeUnknown:            "UNKNOWN",
	CodeInvalidArgument:    "INVALID_ARGUMENT",
	CodeDeadlineExceeded:   "DEADLINE_EXCEEDED",
	CodeNotFound:           "NOT_FOUND",
	CodeAlreadyExists:      "ALREADY_EXISTS",
	CodePermissionDenied:   "PERMISSION_DENIED",
	CodeResourceExhausted:  "RESOURCE_EXHAUSTED",
	CodeFailedPrecondition: "FAILED_PRECONDITION",
	CodeAborted:            "ABORTED",
	CodeOutOfRange:         "OUT_OF_RANGE",
	CodeUnimplemented:      "UNIMPLEMENTED",
	CodeInternal:           "INTERNAL",
	CodeUnavailable:        "UNAVAILABLE",
	CodeDataLoss:           "DATA_LOSS",
	CodeUnauthenticated:    "UNAUTHENTICATED",
	CodeInvalidHandle:      "INVALID_HANDLE",
	CodeDecodeError:        "DECODE_ERROR",
	CodeHandlerError:       "HANDLER_ERROR",
	CodeIncompatible:       "INCOMPATIBLE",
	CodePanic:              "PANIC",
}

// String is the code's name as in the header without the HMS_ prefix, e.g.
// "NOT_FOUND"; "CODE(42)" for a number the ABI does not define.
func (c Code) String() string {
	if name, ok := codeNames[c]; ok {
		return name
	}
	return fmt.Sprintf("CODE(%d)", int32(c))
}

// Codes lists every status code the ABI defines, CodeOK first.
func Codes() []Code {
	out := make([]Code, 0, len(codeNames))
	for c := range codeNames {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Error is every failure the binding reports: an hms.v1.Status (code,
// message, details, origin) of the core, of a host handler, or of the
// binding itself (Origin "hms-go").
//
// errors.Is(err, hms.ErrNotFound) and friends compare codes, so they hold
// for any *Error of that code; errors.As(err, &e) gives the fields.
type Error struct {
	Code    Code
	Message string
	// Machine-readable facts, e.g. {"limit": "4194304"}.
	Details map[string]string
	// The component or method that raised it, e.g. "codec".
	Origin string

	cause    error // an underlying error (context, closed handle, ...)
	sentinel bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("hms: ")
	b.WriteString(e.Code.String())
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Origin != "" && !e.sentinel {
		b.WriteString(" (")
		b.WriteString(e.Origin)
		b.WriteString(")")
	}
	return b.String()
}

// Is reports whether target is the sentinel of e's code (ErrNotFound, ...),
// so errors.Is works for every status code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	if t.sentinel {
		return t.Code == e.Code
	}
	return t == e
}

// Unwrap gives the underlying cause, when there is one: context.Canceled or
// context.DeadlineExceeded for calls stopped by their context, ErrClosed for
// a closed handle.
func (e *Error) Unwrap() error { return e.cause }

func sentinel(c Code) *Error {
	return &Error{Code: c, Message: strings.ToLower(strings.ReplaceAll(c.String(), "_", " ")), sentinel: true}
}

// Sentinels, one per status code, for errors.Is.
var (
	ErrCancelled          = sentinel(CodeCancelled)
	ErrUnknown            = sentinel(CodeUnknown)
	ErrInvalidArgument    = sentinel(CodeInvalidArgument)
	ErrDeadlineExceeded   = sentinel(CodeDeadlineExceeded)
	ErrNotFound           = sentinel(CodeNotFound)
	ErrAlreadyExists      = sentinel(CodeAlreadyExists)
	ErrPermissionDenied   = sentinel(CodePermissionDenied)
	ErrResourceExhausted  = sentinel(CodeResourceExhausted)
	ErrFailedPrecondition = sentinel(CodeFailedPrecondition)
	ErrAborted            = sentinel(CodeAborted)
	ErrOutOfRange         = sentinel(CodeOutOfRange)
	ErrUnimplemented      = sentinel(CodeUnimplemented)
	ErrInternal           = sentinel(CodeInternal)
	ErrUnavailable        = sentinel(CodeUnavailable)
	ErrDataLoss           = sentinel(CodeDataLoss)
	ErrUnauthenticated    = sentinel(CodeUnauthenticated)
	ErrInvalidHandle      = sentinel(CodeInvalidHandle)
	ErrDecodeError        = sentinel(CodeDecodeError)
	ErrHandlerError       = sentinel(CodeHandlerError)
	ErrIncompatible       = sentinel(CodeIncompatible)
	ErrPanic              = sentinel(CodePanic)
)

// ErrClosed is the cause of the error of any use of a Runtime, Service or
// Subscription after its Close: such errors are *Error with
// CodeInvalidHandle (errors.Is(err, ErrInvalidHandle) holds too).
var ErrClosed = errors.New("hms: closed")

// Sentinel returns the sentinel error of code c (nil for CodeOK and codes
// the ABI does not define).
func Sentinel(c Code) error {
	for _, s := range sentinels {
		if s.Code == c {
			return s
		}
	}
	return nil
}

var sentinels = []*Error{
	ErrCancelled, ErrUnknown, ErrInvalidArgument, ErrDeadlineExceeded, ErrNotFound,
	ErrAlreadyExists, ErrPermissionDenied, ErrResourceExhausted, ErrFailedPrecondition,
	ErrAborted, ErrOutOfRange, ErrUnimplemented, ErrInternal, ErrUnavailable, ErrDataLoss,
	ErrUnauthenticated, ErrInvalidHandle, ErrDecodeError, ErrHandlerError, ErrIncompatible,
	ErrPanic,
}

// NewError builds an *Error, e.g. for a host handler to answer with a
// specific code: return nil, hms.NewError(hms.CodeNotFound, "no such user").
func NewError(code Code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// bindingError is an error raised by the binding itself.
func bindingError(code Code, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Origin: "hms-go", cause: cause}
}

func closedError(what string) *Error {
	return bindingError(CodeInvalidHandle, ErrClosed, "the %s is closed", what)
}

// CodeOf returns the status code carried by err: its *Error's code, CodeOK
// for nil, CodeCancelled / CodeDeadlineExceeded for context errors and
// CodeUnknown for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	switch {
	case errors.Is(err, context.Canceled):
		return CodeCancelled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded
	}
	return CodeUnknown
}
