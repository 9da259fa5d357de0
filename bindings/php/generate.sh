#!/usr/bin/env bash
# Regenerates what the PHP package carries from the repository's sources:
#   gen/                      PHP classes of the HMS protobuf schemas (include/proto/hms/**)
#   include/hms_ffi_cdef.h    a copy of the FFI declarations, so a Composer install
#                             (which gets only bindings/php) can load the library
# Deterministic: same protoc, same input, same bytes. The output is committed;
# CI reruns this and checks `git diff --exit-code`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
protoc="${PROTOC:-protoc}"
command -v "$protoc" >/dev/null || { echo "generate.sh: protoc not found (Debian: protobuf-compiler)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root/include/proto" && find hms -name '*.proto' | LC_ALL=C sort) > "$tmp/files"
mapfile -t files < "$tmp/files"
(cd "$root/include/proto" && "$protoc" -I . --php_out="$tmp" "${files[@]}")
rm -rf "$here/gen"
mkdir -p "$here/gen"
cp -R "$tmp/Hms" "$tmp/GPBMetadata" "$here/gen/"
mkdir -p "$here/include"
cp "$root/include/hms_ffi_cdef.h" "$here/include/hms_ffi_cdef.h"
echo "generate.sh: $(find "$here/gen" -name '*.php' | wc -l) files in bindings/php/gen ($("$protoc" --version)), include/hms_ffi_cdef.h"
