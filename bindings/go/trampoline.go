package hms

// The C entry points of Go code: the library calls them on its threads
// (host service handlers and push-subscription callbacks). Their bodies
// live in service.go and events.go; each recovers every panic, so nothing
// ever unwinds into Rust frames. This file's preamble holds declarations
// only, as cgo requires of files with //export.

/*
#include "hms_ffi.h"
*/
import "C"

import "unsafe"

//export hmsGoHandler
func hmsGoHandler(reply *C.hms_reply, method *C.char, methodLen C.size_t, format C.int32_t,
	request *C.uint8_t, requestLen C.size_t, userData unsafe.Pointer) {
	handlerTrampoline(reply, method, methodLen, format, request, requestLen, userData)
}

//export hmsGoEvent
func hmsGoEvent(event *C.uint8_t, eventLen C.size_t, userData unsafe.Pointer) {
	eventTrampoline(event, eventLen, userData)
}
