//go:build !hms_checkout

package main

// Linked like package hms (see ../../../link_pkgconfig.go).

/*
#cgo pkg-config: hms_ffi
*/
import "C"
