//go:build hms_pkgconfig

package hms

// Linking through pkg-config: `go build -tags hms_pkgconfig` with a
// hms_ffi.pc on PKG_CONFIG_PATH (cgo-env.sh --pc writes one).

/*
#cgo pkg-config: hms_ffi
*/
import "C"
