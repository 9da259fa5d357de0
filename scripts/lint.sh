#!/usr/bin/env bash
# Every static quality gate, one command each; runs them all, then fails if
# any failed:
#   cargo fmt --check, cargo clippy --all-targets -D warnings (rust_core);
#   ruff check, ruff format --check, mypy hms_cffi (when hms_cffi/ exists);
#   generated Python protos fresh (when tools/gen_python_protos.py exists);
#   scripts/check_abi.sh (header alone, exported symbols, cdef, versions).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
manifest=rust_core/Cargo.toml
failed=()
passed=0

gate() {
    local name="$1"
    shift
    echo "== lint: $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "lint: FAILED: $name" >&2
        failed+=("$name")
    fi
}

# Runs a Python dev tool, with a clear message when setup.sh has not run.
tool() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "lint: '$1' is not installed (scripts/setup.sh installs the dev extra)" >&2
        return 1
    fi
    "$@"
}

protos_fresh() {
    python3 tools/gen_python_protos.py && git diff --exit-code -- hms_cffi/proto
}

gate "cargo fmt --check" cargo fmt --manifest-path "$manifest" --all -- --check
gate "cargo fmt --check (benchmarks/rust)" \
    cargo fmt --manifest-path benchmarks/rust/Cargo.toml --all -- --check
# The fuzz crate is its own workspace (nightly only to build, not to format).
gate "cargo fmt --check (rust_core/fuzz)" \
    cargo fmt --manifest-path rust_core/fuzz/Cargo.toml --all -- --check
gate "cargo clippy --all-targets -D warnings" \
    cargo clippy --manifest-path "$manifest" --all-targets --locked -- -D warnings

if [[ -d hms_cffi ]]; then
    gate "ruff check" tool ruff check
    gate "ruff format --check" tool ruff format --check
    gate "mypy hms_cffi" tool mypy hms_cffi
else
    echo "== lint: hms_cffi/ absent: Python gates skipped"
fi

if [[ -f tools/gen_python_protos.py ]]; then
    gate "generated Python protos are fresh" protos_fresh
fi

gate "shared vectors are fresh (tools/gen_vectors.py --check)" python3 tools/gen_vectors.py --check
gate "ABI gates (scripts/check_abi.sh)" bash scripts/check_abi.sh

if ((${#failed[@]})); then
    echo "lint: ${#failed[@]} gate(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "lint: all $passed gates passed"
