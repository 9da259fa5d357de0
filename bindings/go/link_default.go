//go:build !hms_pkgconfig

package hms

// Default linking: the header from the repository's include/ and the library
// the core builds in rust_core/target/release, found again at run time
// through an rpath. CGO_CFLAGS / CGO_LDFLAGS come before these flags, so
// `CGO_CFLAGS=-I/opt/hms/include CGO_LDFLAGS="-L/opt/hms/lib -Wl,-rpath,/opt/hms/lib"`
// points the build at another copy; `-tags hms_pkgconfig` uses pkg-config
// (package hms_ffi) instead. See README.md, "How the library is found".

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../rust_core/target/release -Wl,-rpath,${SRCDIR}/../../rust_core/target/release -lhms_ffi
*/
import "C"
