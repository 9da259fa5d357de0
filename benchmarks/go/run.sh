#!/usr/bin/env bash
# Builds and runs the Go benchmark (cmd/hmsbench), which measures the cases
# of benchmarks/CASES.md and writes go.json into $HMS_BENCH_OUT (default
# benchmarks/out).
#   bash benchmarks/go/run.sh                      # 15 rounds of ~0.1 s per case
#   HMS_BENCH_QUICK=1 bash benchmarks/go/run.sh    # 3 short rounds
#   bash benchmarks/go/run.sh -out /tmp/go.json    # flags go to hmsbench
# It never builds the core: it uses rust_core/target/release/libhms_ffi.so,
# or HMS_FFI_LIBRARY=/abs/path/libhms_ffi.so (through bindings/go/cgo-env.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CGO_ENABLED=1
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export TMPDIR="$tmp" # scratch files of go and of cgo-env.sh

eval "$("$root/bindings/go/cgo-env.sh")"
(cd "$root/bindings/go" && go build -o "$tmp/hmsbench" ./internal/cmd/hmsbench)
cd "$root"
"$tmp/hmsbench" "$@"
