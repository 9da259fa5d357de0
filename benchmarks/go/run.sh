#!/usr/bin/env bash
# Builds and runs the Go benchmark (cmd/hmsbench), which measures the cases
# of benchmarks/CASES.md and writes go.json into $HMS_BENCH_OUT (default
# benchmarks/out).
#   bash benchmarks/go/run.sh                      # 15 rounds of ~0.1 s per case
#   HMS_BENCH_QUICK=1 bash benchmarks/go/run.sh    # 3 short rounds
#   bash benchmarks/go/run.sh -out /tmp/go.json    # flags go to hmsbench
#   bash benchmarks/go/run.sh --remote             # remotebench instead -> go-remote.json
# remotebench (internal/cmd/remotebench) measures remote calls over NATS
# against nats.go alone; it needs nats-server (apt-get install nats-server)
# and is a module of its own, so that nats.go (pinned in its go.mod) stays
# out of the binding's module.
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
program=hmsbench
if [[ "${1:-}" == --remote ]]; then
    program=remotebench
    shift
fi
(cd "$root/bindings/go/internal/cmd/$program" && go build -o "$tmp/$program" .)
cd "$root"
"$tmp/$program" "$@"
