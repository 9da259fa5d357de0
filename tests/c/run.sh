#!/usr/bin/env bash
# Builds the C host test (shared and static) and runs both builds under
# valgrind: any memory error or definitely-lost byte fails the run.
#   tests/c/run.sh [--no-valgrind] [TEST_NAME_SUBSTRING...]
# HMS_VALGRIND=0 also runs without valgrind (for quick local loops).
# With HMS_FFI_FAULT_LIBRARY (tests/faults/build_fault_library.sh prints
# it), a third build links that copy of the core and runs the panic test
# (panics_leave_buffers_usable) with HMS_EXPECT_FAULTS=1 under valgrind.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
libdir="${LIBDIR:-$root/rust_core/target/release}"
use_valgrind="${HMS_VALGRIND:-1}"
if [[ "${1:-}" == "--no-valgrind" ]]; then
    use_valgrind=0
    shift
fi

for lib in libhms_ffi.so libhms_ffi.a; do
    if [[ ! -f "$libdir/$lib" ]]; then
        echo "tests/c: $libdir/$lib is missing; build the core first:" >&2
        echo "  cargo build --release --manifest-path rust_core/Cargo.toml" >&2
        exit 1
    fi
done

make -s -C "$here" LIBDIR="$libdir" all

if [[ "$use_valgrind" == 1 ]]; then
    if ! command -v valgrind >/dev/null 2>&1; then
        echo "tests/c: valgrind is not installed (scripts/setup.sh installs it)" >&2
        exit 1
    fi
    # Definite leaks and every memory error fail; "possibly lost" and "still
    # reachable" blocks (process-wide tables, thread-locals of exited threads)
    # are reported but do not. valgrind.supp documents each suppression.
    runner=(valgrind --quiet --error-exitcode=1 --leak-check=full
        --errors-for-leak-kinds=definite --show-leak-kinds=definite
        --suppressions="$here/valgrind.supp" --fair-sched=yes)
else
    runner=()
fi

status=0
for kind in shared static; do
    echo "== C host test ($kind${runner:+, under valgrind})"
    if ! "${runner[@]}" "$here/build/host_test_$kind" "$@"; then
        echo "tests/c: the $kind build FAILED" >&2
        status=1
    fi
done
if [[ -n "${HMS_FFI_FAULT_LIBRARY:-}" ]]; then
    fault_dir="$(dirname "$HMS_FFI_FAULT_LIBRARY")"
    make -s -C "$here" FAULT_LIBDIR="$fault_dir" faults
    echo "== C host test (fault injection: a panic inside the core${runner:+, under valgrind})"
    if ! HMS_EXPECT_FAULTS=1 "${runner[@]}" "$here/build/host_test_faults" panics_leave_buffers_usable; then
        echo "tests/c: the fault-injection run FAILED" >&2
        status=1
    fi
fi
exit "$status"
