#!/usr/bin/env bash
# The Rust side of the benchmarks (scripts/bench.sh calls both steps):
#   run.sh build    builds the workspace in release, and the PyO3 module
#                   hms_pyo3_bench into target/pylib/ (benchmarks/python/run.py
#                   imports it from there);
#   run.sh codecs   runs the criterion benchmarks of benches/codecs.rs and
#                   writes benchmarks/out/rust-codecs.json.
# HMS_BENCH_QUICK=1: short criterion samples. Own Cargo.lock, own target dir.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# This workspace's target dir, whatever the caller's environment says.
unset CARGO_TARGET_DIR
export CRITERION_HOME="$here/target/criterion"
export HMS_BENCH_OUT="${HMS_BENCH_OUT:-$(cd "$here/.." && pwd)/out}"

build() {
    # The interpreter the Python benchmarks run with; an extension module
    # must not link libpython (PyO3's PYO3_BUILD_EXTENSION_MODULE).
    export PYO3_PYTHON="${PYO3_PYTHON:-$(command -v python3)}"
    PYO3_BUILD_EXTENSION_MODULE=1 cargo build --release --locked -p pyo3_bridge
    cargo bench --locked -p codecs --no-run
    mkdir -p target/pylib
    suffix="$("$PYO3_PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
    rm -f target/pylib/hms_pyo3_bench*.so
    cp target/release/libhms_pyo3_bench.so "target/pylib/hms_pyo3_bench$suffix"
    echo "run.sh: target/pylib/hms_pyo3_bench$suffix"
}

codecs() {
    mkdir -p "$HMS_BENCH_OUT"
    cargo bench --locked -p codecs --bench codecs
}

case "${1:-}" in
    build) build ;;
    codecs) codecs ;;
    *)
        echo "usage: benchmarks/rust/run.sh build|codecs" >&2
        exit 2
        ;;
esac
