#!/usr/bin/env bash
# Prints the shell exports that point a Go build of this binding at one
# particular copy of the core's library and header: the fallback to an
# installed library (README.md, "How the library is found"), and how the
# in-repo tests link the copy under test.
#   eval "$(bindings/go/cgo-env.sh)"            # HMS_FFI_LIBRARY, else the checkout's build
#   eval "$(bindings/go/cgo-env.sh --python)"   # the library hms_cffi was built with
#   eval "$(bindings/go/cgo-env.sh --pc DIR)"   # writes DIR/hms_ffi.pc instead
# The first two set CGO_CFLAGS, CGO_LDFLAGS (with an rpath), LD_LIBRARY_PATH
# and add -tags=hms_checkout to GOFLAGS, so the build skips pkg-config.
# --pc keeps the default pkg-config linking: it writes a hms_ffi.pc for that
# copy, puts DIR first on PKG_CONFIG_PATH and sets CGO_LDFLAGS to an rpath.
# Variables read: HMS_FFI_LIBRARY (/abs/path/libhms_ffi.so, any file name)
# and HMS_FFI_INCLUDE (the folder holding hms_ffi.h; default: the checkout's
# include/).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mode="env"
pcdir=""
case "${1:-}" in
    --python) mode="python" ;;
    --pc)
        mode="pc"
        pcdir="${2:?--pc needs a folder}"
        ;;
    "") ;;
    *)
        echo "usage: cgo-env.sh [--python | --pc DIR]" >&2
        exit 2
        ;;
esac

if [[ "$mode" == python ]]; then
    lib="$(python3 -c 'import hms_cffi; print(hms_cffi.library_path())')"
    inc="$(python3 -c 'import hms_cffi; print(hms_cffi.include_dir())')"
else
    lib="${HMS_FFI_LIBRARY:-$root/rust_core/target/release/libhms_ffi.so}"
    inc="${HMS_FFI_INCLUDE:-$root/include}"
fi
if [[ ! -f "$lib" ]]; then
    echo "cgo-env.sh: $lib does not exist; build the core first:" >&2
    echo "  cargo build --release --manifest-path rust_core/Cargo.toml" >&2
    exit 1
fi
if [[ ! -f "$inc/hms_ffi.h" ]]; then
    echo "cgo-env.sh: $inc/hms_ffi.h does not exist (set HMS_FFI_INCLUDE)" >&2
    exit 1
fi
lib="$(readlink -f "$lib")"
libdir="$(dirname "$lib")"

# The linker finds -lhms_ffi by the name libhms_ffi.so, and the program then
# loads the library by its soname (libhms_ffi.so.1), which cargo's build
# folder lacks. Unless the library's folder has both names for this very
# file, a folder of links gets them: the same folder for the same library
# every time (under the checkout's rust_core/target, else TMPDIR), so that
# the flags below stay the same and Go's build cache stays warm.
version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$root/rust_core/Cargo.toml" | head -n1)"
soname=""
if command -v readelf >/dev/null 2>&1; then
    soname="$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')"
else
    soname="libhms_ffi.so.${version%%.*}"
fi
names=(libhms_ffi.so ${soname:+"$soname"})
for name in "${names[@]}"; do
    if [[ "$(readlink -f "$libdir/$name" 2>/dev/null)" != "$lib" ]]; then
        key="$(printf '%s' "$lib" | sha256sum | cut -c1-16)"
        if mkdir -p "$root/rust_core/target/go-lib" 2>/dev/null && [[ -w "$root/rust_core/target/go-lib" ]]; then
            libdir="$root/rust_core/target/go-lib/$key"
        else
            libdir="${TMPDIR:-/tmp}/hms-go-lib-$(id -u)-$key"
        fi
        mkdir -p "$libdir"
        for link in "${names[@]}"; do
            ln -sfn "$lib" "$libdir/$link"
        done
        break
    fi
done

if [[ "$mode" == pc ]]; then
    mkdir -p "$pcdir"
    cat >"$pcdir/hms_ffi.pc" <<PC
libdir=$libdir
includedir=$inc
cdef=\${includedir}/hms_ffi_cdef.h

Name: hms_ffi
Description: HMS FFI: the C ABI of the HMS agent platform core
Version: ${version:-1.0.0}
Cflags: -I\${includedir}
Libs: -L\${libdir} -lhms_ffi
PC
    printf 'export PKG_CONFIG_PATH=%q\n' "$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    # The rpath lets the programs find this copy at run time. It goes in
    # CGO_LDFLAGS, not the .pc, because Go's build cache ignores what
    # pkg-config answers (golang/go#24544) but not CGO_LDFLAGS: a package
    # compiled against another copy is then compiled again, not reused.
    printf 'export CGO_LDFLAGS=%q\n' "-Wl,-rpath,$libdir${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
    exit 0
fi

printf 'export CGO_ENABLED=1\n'
printf 'export CGO_CFLAGS=%q\n' "-I$inc${CGO_CFLAGS:+ $CGO_CFLAGS}"
printf 'export CGO_LDFLAGS=%q\n' "-L$libdir -Wl,-rpath,$libdir${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
printf 'export LD_LIBRARY_PATH=%q\n' "$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
printf 'export GOFLAGS=%q\n' "${GOFLAGS:+$GOFLAGS }-tags=hms_checkout"
