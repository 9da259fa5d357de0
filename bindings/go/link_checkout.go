//go:build hms_checkout

package hms

// The fallback for a checkout of the repository, or a module `replace`d by
// one: `-tags hms_checkout` takes the header from the repository's include/
// and links the release build in rust_core/target/release, found again at run
// time through an rpath (that folder then needs the soname link
// libhms_ffi.so.1: `make soname-link`). CGO_CFLAGS and CGO_LDFLAGS come
// before these flags, so they point the build at any other copy; cgo-env.sh
// prints them. These paths exist only in a checkout, never in the module
// cache.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../rust_core/target/release -Wl,-rpath,${SRCDIR}/../../rust_core/target/release -lhms_ffi
*/
import "C"
