#!/usr/bin/env bash
# Every benchmark, then benchmarks/RESULTS.md: the one command of issue 8.
#   1. scripts/setup.sh (Debian packages, release build of the core, pip -e)
#   2. benchmarks/rust/run.sh build (PyO3 comparator, criterion benches)
#   3. Python: benchmarks/python/run.py          -> benchmarks/out/python.json
#      remote:  benchmarks/python/remote.py      -> benchmarks/out/python-remote.json
#               benchmarks/go/run.sh --remote -> benchmarks/out/go-remote.json
#      (remote calls over NATS, each with a nats-server of its own)
#      store:   benchmarks/python/store.py       -> benchmarks/out/python-store.json
#      (SQLite against 1, 2, 4 runtimes on a PostgreSQL server of its own)
#   4. Rust:   benchmarks/rust/run.sh codecs     -> benchmarks/out/rust-codecs.json
#   5. Go, PHP, Ruby: benchmarks/<lang>/run.sh   -> benchmarks/out/<lang>*.json
#   6. benchmarks/render.py                      -> benchmarks/RESULTS.md
# benchmarks/out/*.json of an earlier run are deleted first, so RESULTS.md
# only holds figures of this run. A step that fails (or a run.sh that is
# missing) does not stop the others: RESULTS.md says "not run" for its
# language, and the script exits non-zero naming the failed steps.
#
#   bash scripts/bench.sh                 # everything (~5 min on 2 cores once built)
#   bash scripts/bench.sh python rust     # only these steps (and setup, render)
#   HMS_BENCH_QUICK=1 bash scripts/bench.sh   # smoke test: few, short rounds
# Steps: python remote store rust go php ruby. HMS_BENCH_SKIP_SETUP=1 skips step 1;
# HMS_BENCH_OUT=DIR puts the result files in DIR instead of benchmarks/out;
# HMS_BENCH_RESULTS=FILE writes the report there instead of
# benchmarks/RESULTS.md (CI's smoke run keeps the committed report intact).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export HMS_BENCH_QUICK="${HMS_BENCH_QUICK:-0}"
# Where the result files go (benchmarks/out unless set; every language's
# runner honours it).
export HMS_BENCH_OUT="${HMS_BENCH_OUT:-$root/benchmarks/out}"

all_steps=(python remote store rust go php ruby)
if (($#)); then
    wanted=("$@")
    for step in "${wanted[@]}"; do
        if [[ " ${all_steps[*]} " != *" $step "* ]]; then
            echo "bench.sh: unknown step '$step' (steps: ${all_steps[*]})" >&2
            exit 2
        fi
    done
else
    wanted=("${all_steps[@]}")
fi

done_steps=()
failed_steps=()
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
        echo "bench.sh: step '$name' FAILED (exit $rc)" >&2
        failed_steps+=("$name")
    else
        done_steps+=("$name")
    fi
    times+=("$name:$((SECONDS - t0))")
    return 0
}

# A language's own runner, written beside its benchmarks.
lang_step() {
    local script="benchmarks/$1/run.sh"
    if [[ ! -f "$script" ]]; then
        echo "bench.sh: $script is missing: the $1 benchmarks cannot run" >&2
        return 1
    fi
    bash "$script"
}

summary() {
    local entry
    echo
    echo "================ summary"
    for entry in "${times[@]}"; do
        printf '  %-40s %5ss\n' "${entry%:*}" "${entry##*:}"
    done
    printf '  total %ss\n' "$((SECONDS - start_all))"
}

if [[ "${HMS_BENCH_SKIP_SETUP:-0}" != 1 ]]; then
    # Setup and the Rust build are what every later step needs: stop here.
    bash scripts/setup.sh
fi
echo
echo "================ build benchmarks/rust"
bash benchmarks/rust/run.sh build

mkdir -p "$HMS_BENCH_OUT"
rm -f "$HMS_BENCH_OUT"/*.json
[[ "$HMS_BENCH_QUICK" == 1 ]] && echo "bench.sh: HMS_BENCH_QUICK=1: quick mode, figures are a smoke test"

for step in "${wanted[@]}"; do
    case "$step" in
        python) run_step "python (benchmarks/python/run.py)" python3 benchmarks/python/run.py --strict ;;
        remote)
            run_step "remote, Python (benchmarks/python/remote.py)" python3 benchmarks/python/remote.py
            run_step "remote, Go (benchmarks/go/run.sh --remote)" bash benchmarks/go/run.sh --remote
            ;;
        store) run_step "store (benchmarks/python/store.py)" python3 benchmarks/python/store.py ;;
        rust) run_step "rust (benchmarks/rust/run.sh codecs)" bash benchmarks/rust/run.sh codecs ;;
        *) run_step "$step (benchmarks/$step/run.sh)" lang_step "$step" ;;
    esac
done

results="${HMS_BENCH_RESULTS:-$root/benchmarks/RESULTS.md}"
run_step "render ($results)" python3 benchmarks/render.py --out-dir "$HMS_BENCH_OUT" --results "$results"
summary
echo "bench.sh: RESULTS.md from ${#done_steps[@]} steps; failed: ${#failed_steps[@]}"
if ((${#failed_steps[@]})); then
    printf 'bench.sh: failed step: %s\n' "${failed_steps[@]}" >&2
    exit 1
fi
