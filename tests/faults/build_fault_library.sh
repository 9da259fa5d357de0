#!/usr/bin/env bash
# Builds the fault-injection copy of the core (Cargo feature
# `fault-injection`: the built-in service hms.test.v1.Faults, whose methods
# panic inside the core on purpose) and prints its path on the last line:
#   rust_core/target/abi-test/fault-injection/libhms_ffi.so
# It shares the target dir of tests/versions/build_other_abi.sh, so the
# dependencies are compiled once for both test copies; the library is copied
# out because the next build of the other copy overwrites the one in
# release/. The release build stays untouched. Neither copy needs the NATS
# transport, so both leave it out (--no-default-features) and CI does not
# compile tokio and async-nats a second time.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${HMS_ABI_TEST_TARGET_DIR:-$root/rust_core/target/abi-test}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
echo "== building the fault-injection copy of the core (feature fault-injection)" >&2
env -u HMS_FFI_TEST_ABI_MAJOR -u HMS_FFI_TEST_ABI_MINOR \
    cargo rustc --release --locked --lib --no-default-features --features fault-injection \
    --manifest-path "$root/rust_core/Cargo.toml" --crate-type cdylib >&2
out="$CARGO_TARGET_DIR/fault-injection"
mkdir -p "$out"
cp "$CARGO_TARGET_DIR/release/libhms_ffi.so" "$out/libhms_ffi.so.tmp"
mv "$out/libhms_ffi.so.tmp" "$out/libhms_ffi.so"
# Programs linked against the library record its soname, libhms_ffi.so.1.
ln -sfn libhms_ffi.so "$out/libhms_ffi.so.1"
echo "$out/libhms_ffi.so"
