#!/usr/bin/env bash
# Every host refuses a library of another ABI major (docs: ABI.md "Versions").
#   1. builds the test copy of the core that reports ABI 2.0
#      (tests/versions/build_other_abi.sh, own target dir; incremental);
#   2. C: tests/versions/abi_check.c, linked against the real library, is run
#      once with it (accepted) and once with the 2.0 build first on
#      LD_LIBRARY_PATH (refused, naming both versions);
#   3. Python: tests/versions/test_python.py (import in a fresh interpreter
#      refuses the 2.0 build with IncompatibleError naming both versions).
# Other bindings run their own refusal test with
#   HMS_FFI_LIBRARY=$(tests/versions/build_other_abi.sh | tail -n1)
# (see tests/versions/README.md).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
libdir="${LIBDIR:-$root/rust_core/target/release}"
other="$(bash tests/versions/build_other_abi.sh 2 | tail -n1)"
echo "== other ABI build: $other"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== C host: abi_check"
cc -std=c99 -Wall -Wextra -pedantic -Werror -I"$root/include" tests/versions/abi_check.c \
    -o "$tmp/abi_check" -L"$libdir" -lhms_ffi -Wl,-rpath,"$libdir"
"$tmp/abi_check"
rc=0
LD_LIBRARY_PATH="$(dirname "$other")" "$tmp/abi_check" 2>"$tmp/refused" || rc=$?
cat "$tmp/refused"
header_abi="$(sed -nE 's/^#define HMS_ABI_VERSION_MAJOR ([0-9]+).*/\1/p' include/hms_ffi.h).$(
    sed -nE 's/^#define HMS_ABI_VERSION_MINOR ([0-9]+).*/\1/p' include/hms_ffi.h)"
if [[ $rc -ne 3 ]] || ! grep -q "ABI 2.0 is incompatible with this program, built for ABI $header_abi" "$tmp/refused"; then
    echo "versions: the C host did not refuse the ABI 2.0 library (exit $rc)" >&2
    exit 1
fi
echo "   ok  C host refuses ABI 2.0 and accepts the real library"

echo "== Python binding"
HMS_FFI_OTHER_ABI_LIBRARY="$other" python3 -m pytest -q -p no:cacheprovider tests/versions/test_python.py
