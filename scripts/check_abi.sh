#!/usr/bin/env bash
# ABI quality gates of include/hms_ffi.h and the built library:
#   1. the header compiles alone as C99 and as C++11, -pedantic -Werror;
#   2. the hms_* symbols libhms_ffi.so exports (nm -D) equal the functions
#      declared in include/hms_ffi_cdef.h (and libhms_ffi.a defines them all);
#   3. include/hms_ffi_cdef.h is up to date (tools/gen_cdef.py --check);
#   4. the ABI version agrees: header macros, rust_core/Cargo.toml
#      [package.metadata.hms], and hms_abi_version() of the built library;
#      hms_version() equals the crate version.
# Needs the release build: cargo build --release --manifest-path rust_core/Cargo.toml
# Runs every gate, then fails if any failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
libdir="${LIBDIR:-$root/rust_core/target/release}"
so="$libdir/libhms_ffi.so"
ar="$libdir/libhms_ffi.a"
header="$root/include/hms_ffi.h"
cdef="$root/include/hms_ffi_cdef.h"
cc="${CC:-cc}"
cxx="${CXX:-c++}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=()

pass() { echo "  ok    $1"; }
fail() {
    echo "  FAIL  $1" >&2
    failed+=("$1")
}

echo "== ABI gates"

# 1. The header alone, C and C++.
printf '#include "hms_ffi.h"\n' >"$tmp/alone.c"
if "$cc" -std=c99 -Wall -Wextra -pedantic -Werror -fsyntax-only -I"$root/include" "$tmp/alone.c"; then
    pass "header compiles alone as C99 (-Wall -Wextra -pedantic -Werror)"
else
    fail "header compiles alone as C99"
fi
cp "$tmp/alone.c" "$tmp/alone.cpp"
if "$cxx" -x c++ -std=c++11 -Wall -Wextra -pedantic -Werror -fsyntax-only -I"$root/include" "$tmp/alone.cpp"; then
    pass "header compiles alone as C++11 (-Wall -Wextra -pedantic -Werror)"
else
    fail "header compiles alone as C++11"
fi

# 2. Exported symbols == declared functions.
if [[ ! -f "$so" || ! -f "$ar" ]]; then
    fail "library built ($so, $ar missing: cargo build --release --manifest-path rust_core/Cargo.toml)"
else
    # Function declarations of the cdef file: the identifier before the first
    # '(' on lines that are not typedefs (function-pointer typedefs have one too).
    grep -v '^typedef' "$cdef" | sed -nE 's/^[^(]*[^A-Za-z0-9_](hms_[A-Za-z0-9_]+)\(.*/\1/p' \
        | sort -u >"$tmp/declared"
    nm -D --defined-only "$so" | awk '{print $NF}' | sed 's/@.*//' | sort -u >"$tmp/exported_all"
    grep '^hms_' "$tmp/exported_all" >"$tmp/exported" || true
    if [[ ! -s "$tmp/declared" ]]; then
        fail "no function declarations parsed from $cdef"
    elif diff -u --label declared-in-hms_ffi_cdef.h --label exported-by-libhms_ffi.so \
        "$tmp/declared" "$tmp/exported" >"$tmp/sym.diff"; then
        pass "libhms_ffi.so exports exactly the $(wc -l <"$tmp/declared") declared functions"
    else
        cat "$tmp/sym.diff" >&2
        fail "exported hms_* symbols differ from the declared functions (- declared only, + exported only)"
    fi
    # Anything else the .so exports is a leak of Rust internals into the ABI.
    grep -v '^hms_' "$tmp/exported_all" | grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' \
        >"$tmp/other" || true
    if [[ -s "$tmp/other" ]]; then
        echo "  exported non-hms symbols:" >&2
        sed 's/^/    /' "$tmp/other" >&2
        fail "libhms_ffi.so exports only hms_* symbols"
    else
        pass "libhms_ffi.so exports no other symbol"
    fi
    # readelf, not nm: nm hands the objects' embedded LLVM bitcode to the
    # system's LLVM gold plugin, which may be too old to read it, and then
    # reports "no symbols".
    readelf -sW "$ar" 2>/dev/null \
        | awk '$4 == "FUNC" && $5 == "GLOBAL" && $7 != "UND" && $8 ~ /^hms_/ {print $8}' \
        | sort -u >"$tmp/static" || true
    missing_static="$(comm -23 "$tmp/declared" "$tmp/static")"
    if [[ -z "$missing_static" ]]; then
        pass "libhms_ffi.a defines every declared function"
    else
        echo "$missing_static" | sed 's/^/    /' >&2
        fail "libhms_ffi.a lacks declared functions"
    fi
fi

# 3. Generated declarations are fresh.
if python3 tools/gen_cdef.py --check; then
    pass "include/hms_ffi_cdef.h is up to date"
else
    fail "include/hms_ffi_cdef.h is stale (run python3 tools/gen_cdef.py)"
fi

# 4. ABI version: header, Cargo.toml, library.
h_major="$(sed -nE 's/^#define HMS_ABI_VERSION_MAJOR ([0-9]+).*/\1/p' "$header")"
h_minor="$(sed -nE 's/^#define HMS_ABI_VERSION_MINOR ([0-9]+).*/\1/p' "$header")"
read -r c_major c_minor c_version < <(python3 - "$root/rust_core/Cargo.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    cargo = tomllib.load(f)
hms = cargo.get("package", {}).get("metadata", {}).get("hms", {})
print(hms.get("abi-major", "?"), hms.get("abi-minor", "?"), cargo["package"]["version"])
PY
)
echo "  header ${h_major:-?}.${h_minor:-?}, Cargo.toml ${c_major}.${c_minor} (crate ${c_version})"
if [[ -n "$h_major" && -n "$h_minor" && "$h_major.$h_minor" == "$c_major.$c_minor" ]]; then
    pass "header ABI version equals rust_core/Cargo.toml [package.metadata.hms]"
else
    fail "header ABI version ${h_major:-?}.${h_minor:-?} != Cargo.toml ${c_major}.${c_minor}"
fi
if [[ -f "$so" ]]; then
    cat >"$tmp/abi.c" <<'C'
#include <stdio.h>
#include "hms_ffi.h"
int main(void)
{
    unsigned v = hms_abi_version();
    printf("%u %u %s\n", v >> 16, v & 0xffffu, hms_version());
    return 0;
}
C
    if "$cc" -std=c99 -Wall -Werror -I"$root/include" "$tmp/abi.c" -o "$tmp/abi" \
        -L"$libdir" -lhms_ffi -Wl,-rpath,"$libdir" \
        && read -r l_major l_minor l_version < <("$tmp/abi"); then
        echo "  library ${l_major}.${l_minor} (hms_version ${l_version})"
        if [[ "$l_major.$l_minor" == "$h_major.$h_minor" ]]; then
            pass "hms_abi_version() of the built library equals the header"
        else
            fail "hms_abi_version() ${l_major}.${l_minor} != header ${h_major}.${h_minor}"
        fi
        if [[ "$l_version" == "$c_version" ]]; then
            pass "hms_version() equals the crate version"
        else
            fail "hms_version() '${l_version}' != Cargo.toml version '${c_version}'"
        fi
    else
        fail "build and run the hms_abi_version() probe"
    fi
fi

if ((${#failed[@]})); then
    echo "ABI gates: ${#failed[@]} failed" >&2
    exit 1
fi
echo "ABI gates: all passed"
