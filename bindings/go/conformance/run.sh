#!/usr/bin/env bash
# The Go column of the conformance matrix (tests/conformance/runners.json):
# runs this runner against the library under test, HMS_FFI_LIBRARY or the
# checkout's release build, through the fallback of ../cgo-env.sh, so an
# installed hms_ffi.pc can never stand in for it.
#   bash conformance/run.sh /abs/path/tests/conformance/scenarios.json   (in bindings/go)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export TMPDIR="$tmp" # scratch files of go (and of cgo-env.sh, in a read-only checkout)
eval "$("$here/../cgo-env.sh")"
cd "$here/.."
go run ./conformance "$@"
