#!/usr/bin/env bash
# The C SDK as a user gets it, outside the checkout: the README's C
# quickstart (snippet c-quickstart) built with the README's own commands
# (snippet c-build), against the shared and the static library of an
# installed prefix, with nothing but pkg-config; both programs are run and
# their output checked, and readelf shows the soname at work.
#   bash tests/install/c.sh PREFIX     (after `make install PREFIX=PREFIX`)
# Runs as `env -i PATH="$PATH" HOME="$HOME" bash tests/install/c.sh PREFIX`.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_check_begin c "$@" -- cc pkg-config readelf

say "installed layout in $prefix"
pkg-config --exists hms_ffi || fail "pkg-config finds no hms_ffi.pc in $PKG_CONFIG_PATH"
libdir="$(pkg-config --variable=libdir hms_ffi)"
version="$(pkg-config --modversion hms_ffi)"
soname="libhms_ffi.so.${version%%.*}"
[[ -f "$libdir/libhms_ffi.so.$version" && ! -L "$libdir/libhms_ffi.so.$version" ]] ||
    fail "$libdir/libhms_ffi.so.$version is not a file"
for link in "$soname" libhms_ffi.so; do
    [[ "$(readlink -f "$libdir/$link")" == "$libdir/libhms_ffi.so.$version" ]] ||
        fail "$libdir/$link does not lead to libhms_ffi.so.$version"
done
readelf -d "$libdir/libhms_ffi.so.$version" | grep -q "Library soname: \[$soname\]" ||
    fail "the library's SONAME is not $soname"
for variable in includedir cdef protodir; do
    path="$(pkg-config --variable="$variable" hms_ffi)"
    [[ -e "$path" ]] || fail "pkg-config --variable=$variable names $path, which does not exist"
done

say "README snippets c-quickstart and c-build"
python3 "$root/tests/install/snippet.py" "$root/README.md" c-quickstart -o "$work/app.c"
python3 "$root/tests/install/snippet.py" "$root/README.md" c-build -o "$work/build.sh"

say "build, shared and static: $(tr '\n' ';' <"$work/build.sh")"
(cd "$work" && bash -euo pipefail build.sh) || fail "the README's build commands failed"

say "ELF: app needs $soname, app-static no libhms_ffi"
readelf -d "$work/app" | grep -q "Shared library: \[$soname\]" ||
    fail "app does not record NEEDED $soname: $(readelf -d "$work/app" | grep NEEDED)"
if readelf -d "$work/app-static" | grep -q "Shared library: \[libhms_ffi"; then
    fail "app-static needs the shared libhms_ffi"
fi

for program in app app-static; do
    say "run $program"
    if [[ "$program" == app-static ]]; then
        out="$(cd "$work" && env -u LD_LIBRARY_PATH "./$program")" || fail "$program exited $?"
    else
        out="$(cd "$work" && "./$program")" || fail "$program exited $?"
    fi
    [[ "$out" == '{"text":"hello"}' ]] || fail "$program printed '$out', not {\"text\":\"hello\"}"
done
say "ok"
