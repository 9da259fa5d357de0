#!/usr/bin/env bash
# Fuzzes the core's decoders and C entry points (rust_core/fuzz, cargo-fuzz).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Default: every target for 300 s. Installs cargo-fuzz when it is missing,
# builds the targets with nightly (libFuzzer + AddressSanitizer), seeds each
# corpus from tests/vectors, runs the targets one after the other and
# prints a summary. A crash, hang, out-of-memory or failed assertion leaves
# its input under rust_core/fuzz/artifacts/<target>/ and makes the exit
# status non-zero. Reproduce one with:
#   cd rust_core && cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
#
# The build of all dependencies (bundled SQLite included) is the slow part,
# so the target dir lives outside the clone and survives fresh CI clones:
# HMS_FUZZ_TARGET_DIR, default ${XDG_CACHE_HOME:-~/.cache}/hms_ffi/fuzz-target.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$root/rust_core/fuzz"
target_dir="${HMS_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hms_ffi/fuzz-target}"

seconds="${1:-300}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz.sh: SECONDS_PER_TARGET must be a positive integer, got '$seconds'" >&2
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
shift || true

# Largest input per target: above the 4 KiB limit the targets configure
# (so oversized inputs are tried), small enough to keep runs fast.
declare -A max_len=(
    [cbor_value]=8192 [json_value]=8192 [typed_decode]=8192
    [convert]=16384 [runtime_config]=1024 [call]=16384 [batch]=16384
)
all_targets=(cbor_value json_value typed_decode convert runtime_config call batch)
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=("${all_targets[@]}")
fi
for target in "${targets[@]}"; do
    if [[ -z "${max_len[$target]:-}" ]]; then
        echo "fuzz.sh: unknown target '$target'; targets: ${all_targets[*]}" >&2
        exit 2
    fi
done

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi

cd "$root/rust_core"
echo "fuzz.sh: building ${#targets[@]} target(s) with nightly into $target_dir"
t0=$SECONDS
mkdir -p "$target_dir"
# Every target in one cargo run: they share one dependency build. Without
# -O, cargo-fuzz keeps debug assertions and overflow checks on, which are
# part of what the targets look for.
cargo +nightly fuzz build --target-dir "$target_dir"
echo "fuzz.sh: build took $((SECONDS - t0)) s"

python3 "$fuzz_dir/seed_corpus.py" "$fuzz_dir/corpus"

failed=()
summary=()
for target in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$target"
    artifacts="$fuzz_dir/artifacts/$target"
    log="$fuzz_dir/artifacts/$target.log"
    mkdir -p "$corpus" "$artifacts"
    echo "fuzz.sh: $target for ${seconds} s (max_len ${max_len[$target]})"
    rc=0
    # -timeout: one input running 10 s is a hang. -rss_limit_mb: 2 GiB is
    # far above what any input within -max_len should need. -max_len also
    # stops inputs from growing past what a target is meant to test.
    # The reproducers of bugs fixed since (regressions/<target>/) run first,
    # every time; libFuzzer adds new inputs to the first folder only.
    regressions=()
    [[ -d "$fuzz_dir/regressions/$target" ]] && regressions=("$fuzz_dir/regressions/$target")
    cargo +nightly fuzz run --target-dir "$target_dir" "$target" "$corpus" "${regressions[@]}" -- \
        -max_total_time="$seconds" -max_len="${max_len[$target]}" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    size="$(find "$corpus" -type f | wc -l)"
    if ((rc != 0)); then
        failed+=("$target")
        summary+=("$(printf '  FAIL %-16s %10s runs  corpus %5s  (exit %s, log %s)' \
            "$target" "${runs:-?}" "$size" "$rc" "$log")")
        echo "fuzz.sh: $target FAILED (exit $rc); from its log:" >&2
        grep -E -A4 'panicked at|==ERROR|^SUMMARY:|Test unit written|^(Base64|MS):' "$log" |
            head -n 60 >&2 || true
    else
        summary+=("$(printf '  ok   %-16s %10s runs  corpus %5s' "$target" "${runs:-?}" "$size")")
    fi
done

echo
echo "fuzz.sh: summary (${seconds} s per target)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
    echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    echo "fuzz.sh: inputs are in rust_core/fuzz/artifacts/<target>/ (crash-*, timeout-*, oom-*)" >&2
    exit 1
fi
echo "fuzz.sh: no crash"
