#!/usr/bin/env bash
# The C host test against a core built with AddressSanitizer.
#   tests/c/asan.sh [TEST_NAME_SUBSTRING...]
# Builds rust_core with `-Zsanitizer=address` (nightly; with -Zbuild-std when
# rust-src is installed, so std is instrumented too) into its own target dir,
# builds host_test.c with `gcc -fsanitize=address` against the shared
# library, and runs it: any memory error, or a leak not in lsan.supp, fails.
# asan_canary.c first proves ASan is live in the library (a double free).
# The static library is left out: valgrind (tests/c/run.sh) covers it, and
# one ASan runtime per process is simpler with a shared library.
# The target dir lives outside the clone (HMS_ASAN_TARGET_DIR, default
# ${XDG_CACHE_HOME:-~/.cache}/hms_ffi/asan-target) so CI clones reuse it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target_dir="${HMS_ASAN_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hms_ffi/asan-target}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "asan.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 1
fi
triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
build_std=()
if [[ -d "$(rustc +nightly --print sysroot)/lib/rustlib/src/rust/library" ]]; then
    build_std=(-Zbuild-std)
else
    echo "asan.sh: rust-src is not installed for nightly: std is not instrumented" \
        "(rustup component add rust-src --toolchain nightly)"
fi

echo "asan.sh: building the core with AddressSanitizer into $target_dir"
t0=$SECONDS
# --target keeps build scripts and proc macros uninstrumented (they run in
# the build, without an ASan runtime). Frame pointers give full stacks. The
# C host test makes no remote call, so the NATS transport is left out.
RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes" \
    cargo +nightly build --release --locked --no-default-features --manifest-path "$root/rust_core/Cargo.toml" \
    --target "$triple" --target-dir "$target_dir" "${build_std[@]}"
echo "asan.sh: core built in $((SECONDS - t0)) s"
libdir="$target_dir/$triple/release"
# The host test records the soname, libhms_ffi.so.1, as what it needs.
ln -sfn libhms_ffi.so "$libdir/libhms_ffi.so.1"

build="$here/build/asan"
make -s -C "$here" LIBDIR="$libdir" BUILD="$build" CC=gcc \
    CFLAGS="-std=c99 -O1 -g -Wall -Wextra -pedantic -Werror -fsanitize=address -fno-omit-frame-pointer" \
    "$build/host_test_shared"

# detect_leaks: LeakSanitizer runs at exit; lsan.supp documents each
# suppression. halt_on_error/exitcode: the first error fails the run.
# use_sigaltstack=0: Rust installs its own stack-overflow handler.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=23:use_sigaltstack=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=1${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# The canary double-frees a library buffer: unless ASan reports it, this
# run would prove nothing (e.g. an uninstrumented library was picked up).
asan_cflags=(-std=c99 -O1 -g -Wall -Wextra -pedantic -Werror -fsanitize=address
    -fno-omit-frame-pointer -I"$root/include" -D_POSIX_C_SOURCE=200809L)
gcc "${asan_cflags[@]}" "$here/asan_canary.c" -o "$build/asan_canary" \
    -L"$libdir" -lhms_ffi -Wl,-rpath,"$libdir" -lpthread
canary_log="$build/asan_canary.log"
if "$build/asan_canary" >"$canary_log" 2>&1 || ! grep -q "double-free" "$canary_log"; then
    cat "$canary_log" >&2
    echo "asan.sh: AddressSanitizer did not catch the canary's double free: not live" >&2
    exit 1
fi
echo "asan.sh: AddressSanitizer is live (the canary's double free was caught)"

echo "== C host test (shared, AddressSanitizer)"
if ! "$build/host_test_shared" "$@"; then
    echo "asan.sh: the C host test FAILED under AddressSanitizer" >&2
    exit 1
fi
echo "asan.sh: no AddressSanitizer report"
