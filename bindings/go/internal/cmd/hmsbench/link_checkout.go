//go:build hms_checkout

package main

// Linked like package hms (see ../../../link_checkout.go).

/*
#cgo CFLAGS: -I${SRCDIR}/../../../../../include
#cgo LDFLAGS: -L${SRCDIR}/../../../../../rust_core/target/release -Wl,-rpath,${SRCDIR}/../../../../../rust_core/target/release -lhms_ffi
*/
import "C"
