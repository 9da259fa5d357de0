#!/usr/bin/env bash
# The C SDK as a user gets it, outside the checkout: the README's C
# quickstart (snippet c-quickstart) built with the README's own commands
# (snippet c-build), against the shared and the static library of an
# installed prefix, with nothing but pkg-config; both programs are run and
# their output checked, and readelf shows the soname at work.
#   bash tests/install/c.sh PREFIX     (after `make install PREFIX=PREFIX`)
# Runs as `env -i PATH="$PATH" HOME="$HOME" bash tests/install/c.sh PREFIX`.
set -euo pipefail

say() { echo "install-check c: $*"; }
die() {
    echo "install-check c: FAILED: $*" >&2
    exit 1
}

[[ $# -eq 1 ]] || die "usage: tests/install/c.sh PREFIX"
[[ -d "$1" ]] || die "$1 is not a folder (run make install PREFIX=$1 first)"
prefix="$(cd "$1" && pwd)"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
for tool in cc pkg-config readelf python3; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not on PATH"
done

# What a user of a prefix outside the system's sets: pkg-config's path for
# the build, the loader's for the shared program.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
export LD_LIBRARY_PATH="$prefix/lib"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say "installed layout in $prefix"
pkg-config --exists hms_ffi || die "pkg-config finds no hms_ffi.pc in $PKG_CONFIG_PATH"
libdir="$(pkg-config --variable=libdir hms_ffi)"
version="$(pkg-config --modversion hms_ffi)"
soname="libhms_ffi.so.${version%%.*}"
[[ -f "$libdir/libhms_ffi.so.$version" && ! -L "$libdir/libhms_ffi.so.$version" ]] ||
    die "$libdir/libhms_ffi.so.$version is not a file"
for link in "$soname" libhms_ffi.so; do
    [[ "$(readlink -f "$libdir/$link")" == "$libdir/libhms_ffi.so.$version" ]] ||
        die "$libdir/$link does not lead to libhms_ffi.so.$version"
done
readelf -d "$libdir/libhms_ffi.so.$version" | grep -q "Library soname: \[$soname\]" ||
    die "the library's SONAME is not $soname"
for variable in includedir cdef protodir; do
    path="$(pkg-config --variable="$variable" hms_ffi)"
    [[ -e "$path" ]] || die "pkg-config --variable=$variable names $path, which does not exist"
done

say "README snippets c-quickstart and c-build"
python3 "$root/tests/install/snippet.py" "$root/README.md" c-quickstart -o "$work/app.c"
python3 "$root/tests/install/snippet.py" "$root/README.md" c-build -o "$work/build.sh"

say "build, shared and static: $(tr '\n' ';' <"$work/build.sh")"
(cd "$work" && bash -euo pipefail build.sh) || die "the README's build commands failed"

say "ELF: app needs $soname, app-static no libhms_ffi"
readelf -d "$work/app" | grep -q "Shared library: \[$soname\]" ||
    die "app does not record NEEDED $soname: $(readelf -d "$work/app" | grep NEEDED)"
if readelf -d "$work/app-static" | grep -q "Shared library: \[libhms_ffi"; then
    die "app-static needs the shared libhms_ffi"
fi

for program in app app-static; do
    say "run $program"
    if [[ "$program" == app-static ]]; then
        out="$(cd "$work" && env -u LD_LIBRARY_PATH "./$program")" || die "$program exited $?"
    else
        out="$(cd "$work" && "./$program")" || die "$program exited $?"
    fi
    [[ "$out" == '{"text":"hello"}' ]] || die "$program printed '$out', not {\"text\":\"hello\"}"
done
say "ok"
