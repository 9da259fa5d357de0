//go:build !hms_checkout

package hms

// Linking, by default: pkg-config's hms_ffi, the installed library (`make
// install` at the repository root), as for any C library a Go package wraps.
// Set PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig for a prefix pkg-config does not
// search, and let the loader find the library at run time (ldconfig, or
// LD_LIBRARY_PATH=$PREFIX/lib). Without hms_ffi.pc the build stops with
// pkg-config's "Package hms_ffi was not found". In a checkout, -tags
// hms_checkout (link_checkout.go) links the repository's own build instead.
// See README.md, "How the library is found".

/*
#cgo pkg-config: hms_ffi
*/
import "C"
