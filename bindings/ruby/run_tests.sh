#!/usr/bin/env bash
# Runs the Ruby binding's whole minitest suite under `ruby -w`, once per
# backend (HMS_BACKEND=fiddle, then ffi), against the library in
# rust_core/target/release (or $HMS_FFI_LIBRARY, an absolute path). Does not
# build the core. $HMS_FFI_OTHER_ABI_LIBRARY (optional) names a core of
# another ABI for test/versions_test.rb, $HMS_FFI_FAULT_LIBRARY (optional
# outside CI) the fault-injection core for test/faults_test.rb. Fails on
# any test failure and on any warning printed for a file of this gem.
# Extra arguments go to minitest (e.g. -v, -n /pattern/).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

lib="${HMS_FFI_LIBRARY:-$root/rust_core/target/release/libhms_ffi.so}"
if [[ ! -f "$lib" ]]; then
    echo "run_tests.sh: $lib is missing: build the core first" \
         "(cargo build --release --manifest-path rust_core/Cargo.toml)" >&2
    exit 1
fi
export HMS_FFI_LIBRARY="$lib"

# A core of another ABI (tests/versions/build_other_abi.sh) for
# test/versions_test.rb; passed through, as an absolute path, when set.
if [[ -n "${HMS_FFI_OTHER_ABI_LIBRARY:-}" ]]; then
    other="$(cd "$root" && realpath -m -- "$HMS_FFI_OTHER_ABI_LIBRARY")"
    if [[ ! -f "$other" ]]; then
        echo "run_tests.sh: HMS_FFI_OTHER_ABI_LIBRARY=$other is missing:" \
             "build it with tests/versions/build_other_abi.sh" >&2
        exit 1
    fi
    export HMS_FFI_OTHER_ABI_LIBRARY="$other"
fi

# The fault-injection core (tests/faults/build_fault_library.sh) for
# test/faults_test.rb; passed through, as an absolute path, when set.
if [[ -n "${HMS_FFI_FAULT_LIBRARY:-}" ]]; then
    fault="$(cd "$root" && realpath -m -- "$HMS_FFI_FAULT_LIBRARY")"
    if [[ ! -f "$fault" ]]; then
        echo "run_tests.sh: HMS_FFI_FAULT_LIBRARY=$fault is missing:" \
             "build it with tests/faults/build_fault_library.sh" >&2
        exit 1
    fi
    export HMS_FFI_FAULT_LIBRARY="$fault"
fi

backends=(fiddle ffi)
if [[ -n "${HMS_BACKENDS:-}" ]]; then
    read -r -a backends <<<"$HMS_BACKENDS"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
for backend in "${backends[@]}"; do
    echo "== ruby binding tests, HMS_BACKEND=$backend ($(ruby -e 'print RUBY_DESCRIPTION'))"
    rc=0
    HMS_BACKEND="$backend" ruby -w -I lib -I test \
        -e 'Dir.glob(File.join(Dir.pwd, "test", "*_test.rb")).sort.each { |f| require f }' -- "$@" \
        2> >(tee "$log" >&2) || rc=$?
    wait
    if ((rc != 0)); then
        echo "run_tests.sh: tests FAILED with HMS_BACKEND=$backend (exit $rc)" >&2
        status=1
    fi
    if grep -E "^$here/.*warning:|^(lib|test|tools|examples)/.*warning:" "$log" >&2; then
        echo "run_tests.sh: ruby -w printed warnings for this gem's files (HMS_BACKEND=$backend)" >&2
        status=1
    fi
done
exit "$status"
