//go:build !hms_checkout

package cbench

// Linked like package hms (see ../../link_pkgconfig.go).

/*
#cgo pkg-config: hms_ffi
*/
import "C"
