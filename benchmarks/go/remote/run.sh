#!/usr/bin/env bash
# Builds and runs remotebench (main.go): remote Echo over NATS from Go
# against nats.go alone, writing go-remote.json into $HMS_BENCH_OUT
# (default benchmarks/out). Needs nats-server (apt-get install nats-server).
# A module of its own (nats.go pinned in its go.mod), linking the
# checkout's release build of the core like benchmarks/go/run.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export CGO_ENABLED=1
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export TMPDIR="$tmp"

eval "$("$root/bindings/go/cgo-env.sh")"
(cd "$here" && go build -o "$tmp/remotebench" .)
cd "$root"
"$tmp/remotebench" "$@"
