#!/usr/bin/env bash
# Prints the shell exports that point a Go build of this binding at a
# particular copy of the core's library and header:
#   eval "$(bindings/go/cgo-env.sh)"                  # HMS_FFI_LIBRARY, else the repo's build
#   eval "$(bindings/go/cgo-env.sh --python)"         # the library hms_cffi was built with
#   eval "$(bindings/go/cgo-env.sh --pc DIR)"         # writes DIR/hms_ffi.pc, for -tags hms_pkgconfig
# Variables read: HMS_FFI_LIBRARY (/abs/path/libhms_ffi.so) and
# HMS_FFI_INCLUDE (the folder holding hms_ffi.h; default: the repo's include/).
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
# The linker finds -lhms_ffi by its file name: give any other name a
# libhms_ffi.so beside it in a folder of its own.
if [[ "$(basename "$lib")" != libhms_ffi.so ]]; then
    libdir="$(mktemp -d "${TMPDIR:-/tmp}/hms-go-lib.XXXXXX")"
    ln -s "$lib" "$libdir/libhms_ffi.so"
fi

if [[ "$mode" == pc ]]; then
    mkdir -p "$pcdir"
    version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$root/rust_core/Cargo.toml" | head -n1)"
    cat >"$pcdir/hms_ffi.pc" <<PC
libdir=$libdir
includedir=$inc

Name: hms_ffi
Description: HMS FFI: the C ABI of the HMS agent platform core
Version: ${version:-1.0.0}
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lhms_ffi
PC
    printf 'export PKG_CONFIG_PATH=%q\n' "$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    exit 0
fi

printf 'export CGO_ENABLED=1\n'
printf 'export CGO_CFLAGS=%q\n' "-I$inc${CGO_CFLAGS:+ $CGO_CFLAGS}"
printf 'export CGO_LDFLAGS=%q\n' "-L$libdir -Wl,-rpath,$libdir${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
printf 'export LD_LIBRARY_PATH=%q\n' "$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
