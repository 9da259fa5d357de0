#!/usr/bin/env bash
# Regenerates the committed generated files of the Ruby binding, byte for byte
# the same on every run (CI regenerates and runs `git diff --exit-code`):
#   lib/hms/abi.rb   constants, structs and prototypes of include/hms_ffi_cdef.h
#   lib/hms/gen/**   protoc --ruby_out of include/proto/hms/**, with the
#                    generated `require 'hms/...'` lines turned into
#                    require_relative so the gem never touches $LOAD_PATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export LC_ALL=C

ruby "$here/tools/gen_abi.rb" "$root/include/hms_ffi_cdef.h" "$here/lib/hms/abi.rb"

if ! command -v protoc >/dev/null 2>&1; then
    echo "generate.sh: protoc is missing (Debian: protobuf-compiler)" >&2
    exit 1
fi
gen="$here/lib/hms/gen"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root/include/proto" && find hms -name '*.proto' | sort | xargs protoc --ruby_out="$tmp")
ruby "$here/tools/fix_requires.rb" "$tmp"
rm -rf "$gen"
mkdir -p "$gen"
cp -R "$tmp/hms" "$gen/"
echo "generate.sh: lib/hms/abi.rb and lib/hms/gen/ are up to date"
