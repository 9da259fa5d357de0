#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): setup, then every test and
# gate in order, stopping at the first failure with a clear message.
#   1. scripts/setup.sh (Debian packages, release build of the core, pip -e)
#   2. cargo test --release (rust_core; shares the release build's deps),
#      then the integration suite again on PostgreSQL (HMS_TEST_STORE=
#      postgres: each runtime without a data_dir of its own in a fresh
#      database of a real server the tests start)
#   3. the fault-injection copy of the core (HMS_FFI_FAULT_LIBRARY, for the
#      panic tests), then pytest tests/python (no test collected fails)
#      but the remote ones, which follow as a step of their own: `hms serve`
#      and `hms call --nats`, faults (kill -9, server restart, deadlines,
#      oversize, a rogue client) and 30 s of load, each with a real
#      nats-server (marker `remote`, ~60 s)
#   4. C host test, shared and static builds and the fault-injection copy,
#      under valgrind (tests/c/run.sh), then the shared build against a core
#      built with AddressSanitizer (tests/c/asan.sh), then a brief fuzzing
#      run of every cargo-fuzz target (scripts/fuzz.sh 15: 15 s each); both
#      use nightly and cache their dependency builds outside the clone
#      (~/.cache/hms_ffi)
#   5. the C example, the ABI refusal tests, each binding's suite, the
#      conformance matrix, remote calls between processes of every language
#      over a real nats-server (tests/remote/run.py), the conformance matrix
#      again with the services in another process over NATS
#      (scripts/conformance.sh --remote), 8 workers in Python, Go and Ruby
#      sharing a 10,000-task queue on a real PostgreSQL, two of them killed
#      (tests/fleet/run.py), the README's demo
#      command (scripts/demo.sh, its setup warm by then), every binding
#      installed from outside the checkout (tests/install/run.sh: make
#      install, then each README's route), the
#      official protobuf conformance suite (its runner built once and cached
#      under rust_core/target/) and buf breaking
#   6. the benchmarks, once, in quick mode (scripts/bench.sh works; the
#      figures of a smoke run mean nothing and are thrown away)
#   7. scripts/lint.sh (fmt, clippy, ruff, mypy, generated files, ABI gates)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

steps=()
times=()
start_all=$SECONDS

run_step() {
    local name="$1"
    shift
    local t0=$SECONDS rc=0
    echo
    echo "================ $name"
    "$@" || rc=$?
    if ((rc != 0)); then
        echo
        echo "test.sh: FAILED at step '$name' (exit $rc)" >&2
        summary
        echo "steps: ${#steps[@]} passed, 1 failed"
        exit "$rc"
    fi
    steps+=("$name")
    times+=($((SECONDS - t0)))
}

summary() {
    local i
    echo
    echo "================ summary"
    for i in "${!steps[@]}"; do
        printf '  ok  %-45s %4ss\n' "${steps[$i]}" "${times[$i]}"
    done
    printf '  total %ss\n' "$((SECONDS - start_all))"
}

pytest_step() {
    if [[ ! -d tests/python ]]; then
        echo "tests/python is missing" >&2
        return 1
    fi
    local rc=0
    python3 -m pytest -q -m "not remote" tests/python || rc=$?
    if ((rc == 5)); then
        echo "pytest collected no tests (exit 5): counted as a failure" >&2
    fi
    return "$rc"
}

run_step "setup" bash scripts/setup.sh
run_step "cargo test --release" cargo test --release --locked --manifest-path rust_core/Cargo.toml
run_step "integration suite on PostgreSQL (HMS_TEST_STORE=postgres)" \
    env HMS_TEST_STORE=postgres cargo test --release --locked --manifest-path rust_core/Cargo.toml \
    --test integration
# pytest, the C host test and every binding run their panic test against this copy.
fault_library() {
    HMS_FFI_FAULT_LIBRARY="$(bash tests/faults/build_fault_library.sh | tail -n1)"
    export HMS_FFI_FAULT_LIBRARY
    [[ -f "$HMS_FFI_FAULT_LIBRARY" ]]
}
run_step "fault-injection copy of the core (tests/faults/build_fault_library.sh)" fault_library
run_step "pytest tests/python" pytest_step
run_step "remote calls over NATS: CLI, faults, load (pytest -m remote)" \
    python3 -m pytest -v -m remote tests/python
run_step "C host test (shared + static, valgrind)" bash tests/c/run.sh
run_step "C host test under AddressSanitizer" bash tests/c/asan.sh
run_step "fuzzing, brief (scripts/fuzz.sh 15)" bash scripts/fuzz.sh 15
run_step "C example through pkg-config (installed prefix)" bash tests/c/example_test.sh
run_step "ABI versions: hosts refuse another major" bash tests/versions/run.sh
# Every binding's own refusal test loads the ABI 2.0 build the step above made.
export HMS_FFI_OTHER_ABI_LIBRARY="$root/rust_core/target/abi-test/release/libhms_ffi.so"
for binding in bindings/*/run_tests.sh; do
    [[ -f "$binding" ]] || continue
    lang="$(basename "$(dirname "$binding")")"
    run_step "$lang binding tests" bash "$binding"
done
run_step "conformance matrix (language x scenario)" bash scripts/conformance.sh
run_step "remote calls across processes and languages (tests/remote/run.py)" python3 tests/remote/run.py
run_step "conformance matrix over NATS (scripts/conformance.sh --remote)" bash scripts/conformance.sh --remote
run_step "task queue fleet: 8 workers in 3 languages on PostgreSQL (tests/fleet/run.py)" python3 tests/fleet/run.py
run_step "the README's demo command (scripts/demo.sh: the tour, then over NATS)" bash scripts/demo.sh
run_step "installed and used from outside the checkout (tests/install/run.sh)" bash tests/install/run.sh
run_step "protobuf conformance suite (official runner)" bash scripts/protobuf_conformance.sh
run_step "schema evolution (buf breaking vs 1.0)" bash scripts/check_schemas.sh
# run_step runs its command where errexit does not apply, so every command
# that must pass is chained.
bench_smoke() {
    local out rc=0
    out="$(mktemp -d)"
    HMS_BENCH_QUICK=1 HMS_BENCH_SKIP_SETUP=1 HMS_BENCH_OUT="$out" \
        HMS_BENCH_RESULTS="$out/RESULTS.md" bash scripts/bench.sh &&
        python3 benchmarks/render.py --check --out-dir "$out" &&
        python3 benchmarks/render.py --self-test || rc=$?
    rm -rf "$out"
    return "$rc"
}
run_step "benchmarks, smoke run (HMS_BENCH_QUICK=1 scripts/bench.sh)" bench_smoke
run_step "lint and ABI gates" bash scripts/lint.sh
summary
echo "steps: ${#steps[@]} passed, 0 failed"
