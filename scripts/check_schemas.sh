#!/usr/bin/env bash
# Schema evolution gate: a change to include/proto/hms/** that breaks a
# published (1.0) message fails. Runs `buf breaking` (pinned, from the Go
# module proxy through `go install`) of include/proto against the frozen copy
# tests/schema/v1.0 with tests/schema/buf.yaml (FILE rules).
# Rules and how to evolve the schemas: docs/schema-evolution.md.
# The first run downloads and builds buf (several minutes on a cold Go
# cache, ~20 s warm) into ~/.cache/hms-ffi/buf-<version>/; later runs take
# about a second. BUF_VERSION overrides the pinned version.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUF_VERSION="${BUF_VERSION:-v1.75.0}"
config="tests/schema/buf.yaml"
# The schemas to check (another folder only to try the gate itself).
schemas="${HMS_SCHEMAS_DIR:-include/proto}"

if ! command -v go >/dev/null 2>&1; then
    echo "check_schemas: 'go' is not on PATH (buf runs through go run)" >&2
    exit 1
fi
# go install, not go run: go run reports every failure as exit status 1,
# hiding buf's own (100: breaking changes found).
bindir="${HMS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hms-ffi/buf-${BUF_VERSION}}"
if [[ ! -x "$bindir/buf" ]]; then
    echo "== go install github.com/bufbuild/buf/cmd/buf@${BUF_VERSION} (into $bindir)"
    GOBIN="$bindir" go install "github.com/bufbuild/buf/cmd/buf@${BUF_VERSION}"
fi
buf=("$bindir/buf")

echo "== buf ${BUF_VERSION} breaking $schemas --against tests/schema/v1.0"
rc=0
"${buf[@]}" breaking "$schemas" --config "$config" \
    --against tests/schema/v1.0 --against-config "$config" --error-format text || rc=$?
case "$rc" in
0) echo "check_schemas: no breaking change against the frozen 1.0 schemas" ;;
100) # buf's exit status for findings
    echo "check_schemas: FAILED: a published message changed incompatibly" \
        "(docs/schema-evolution.md)" >&2
    exit 1 ;;
*)
    echo "check_schemas: buf failed to run (exit $rc)" >&2
    exit "$rc" ;;
esac
