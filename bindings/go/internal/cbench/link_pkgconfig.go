//go:build hms_pkgconfig

package cbench

/*
#cgo pkg-config: hms_ffi
*/
import "C"
