#!/usr/bin/env bash
# Builds a test copy of the core that reports another ABI version, so every
# binding's refusal of a wrong library can be tested:
#   rust_core/target/abi-test/release/libhms_ffi.so   hms_abi_version() = 2.0
# (HMS_FFI_TEST_ABI_MAJOR=2, read at compile time by rust_core/src/lib.rs).
# Only the cdylib is built, in its own CARGO_TARGET_DIR, so the release build
# stays untouched; the first run compiles the dependencies (a few minutes),
# later runs are incremental.
#   tests/versions/build_other_abi.sh [MAJOR]     (default 2)
# Prints the path of the library on its last line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
major="${1:-2}"
export CARGO_TARGET_DIR="${HMS_ABI_TEST_TARGET_DIR:-$root/rust_core/target/abi-test}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
HMS_FFI_TEST_ABI_MAJOR="$major" HMS_FFI_TEST_ABI_MINOR=0 cargo rustc --release --locked --lib --no-default-features \
    --manifest-path "$root/rust_core/Cargo.toml" --crate-type cdylib >&2
# Hosts linked against the real library look for its soname; without this
# name they would load the real library and the refusal would go untested.
ln -sfn libhms_ffi.so "$CARGO_TARGET_DIR/release/libhms_ffi.so.1"
echo "$CARGO_TARGET_DIR/release/libhms_ffi.so"
