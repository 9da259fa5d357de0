#!/usr/bin/env bash
# The C SDK as a user gets it: `make install` into a temporary prefix, then
# examples/c built through pkg-config against the shared and the static
# library, both run and their output checked.
#   tests/c/example_test.sh        (needs the release build of the core)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
prefix="$(mktemp -d)"
build="$(mktemp -d)"
trap 'rm -rf "$prefix" "$build"' EXIT

echo "== make install PREFIX=$prefix"
make -s install PREFIX="$prefix" ${LIBDIR:+LIBDIR="$LIBDIR"}
for f in include/hms_ffi.h include/hms_ffi_cdef.h lib/libhms_ffi.so lib/libhms_ffi.a \
    lib/pkgconfig/hms_ffi.pc share/hms_ffi/proto/hms/v1/status.proto; do
    [[ -f "$prefix/$f" ]] || { echo "example_test: $f was not installed" >&2; exit 1; }
done
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
echo "   pkg-config: $(pkg-config --modversion hms_ffi); static libs: $(pkg-config --static --libs hms_ffi)"

echo "== build examples/c (shared and static, through pkg-config)"
make -s -C examples/c BUILD="$build" all

# The static build must not need libhms_ffi.so; the shared one must use the
# installed copy.
if ldd "$build/example_static" | grep -q libhms_ffi; then
    echo "example_test: the static build links libhms_ffi.so" >&2
    exit 1
fi
if ! ldd "$build/example_shared" | grep -q "$prefix/lib/libhms_ffi.so"; then
    echo "example_test: the shared build does not use $prefix/lib/libhms_ffi.so" >&2
    exit 1
fi

status=0
for kind in shared static; do
    out="$("$build/example_$kind")" || { echo "example_test: example_$kind exited $?" >&2; status=1; }
    for want in 'ABI 1\.' 'hms.sys.v1.System/Echo -> {"text":"hello from C"}' \
        'example.v1.Greeter/Greet -> {"greeting":"hello, C host"' \
        'event -> .*"kind":"registry.service_registered".*example.v1.Greeter' \
        'example.v1.Whoami/Who -> .*"principal":"alice","roles":\["admin"\]' \
        'example.v1.Whoami/Who -> .*"principal":"ops-bot","roles":\["ops"\]' \
        'a wrong token -> status 16: .*"reason":"unknown_token"'; do
        if ! grep -q -- "$want" <<<"$out"; then
            echo "example_test: example_$kind output lacks /$want/:" >&2
            echo "$out" >&2
            status=1
        fi
    done
    ((status)) || echo "   ok  example_$kind"
done
exit "$status"
