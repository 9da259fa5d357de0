#!/usr/bin/env bash
# Runs the PHP benchmarks (benchmarks/php/bench.php) the way PHP runs in
# production, and writes benchmarks/out/php.json (CASES.md):
#
#   benchmarks/php/run.sh [OUT.json] [--only ID,ID | --loop ID --seconds N]
#
# Settings (php -d ...):
#   opcache.enable_cli=1, opcache.jit=tracing, opcache.jit_buffer_size=64M
#       opcache's tracing JIT, as a production php.ini would enable it for
#       FPM (HMS_PHP_JIT=off measures the interpreter alone; any other
#       opcache.jit value is passed through, e.g. HMS_PHP_JIT=function);
#   zend.assertions=-1   assert() compiled out (production);
#   memory_limit=1G      room for the 64 KiB cases and 1,000-call batches.
# The FFI extension is used as the CLI allows it (ffi.enable=preload lets
# CLI scripts call FFI::cdef); no preloading is needed to benchmark.
#
# Assumes the core is built (rust_core/target/release/libhms_ffi.so, or
# HMS_FFI_LIBRARY=/abs/path); HMS_BENCH_QUICK=1 gives 3 short rounds;
# HMS_BENCH_OUT=DIR writes DIR/php.json.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

lib="${HMS_FFI_LIBRARY:-$root/rust_core/target/release/libhms_ffi.so}"
if [ ! -f "$lib" ]; then
  echo "run.sh: $lib not found; build the core first:" >&2
  echo "  cargo build --release --manifest-path rust_core/Cargo.toml" >&2
  exit 2
fi
export HMS_FFI_LIBRARY="$lib"

out="${HMS_BENCH_OUT:-$root/benchmarks/out}/php.json"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
  out="$1"
  shift
fi

jit="${HMS_PHP_JIT:-tracing}"
flags=(-d memory_limit=1G -d zend.assertions=-1)
if [ "$jit" = off ]; then
  flags+=(-d opcache.enable_cli=0)
else
  flags+=(-d opcache.enable_cli=1 -d opcache.jit_buffer_size=64M -d "opcache.jit=$jit")
fi
php -r 'exit(extension_loaded("ffi") ? 0 : 1);' || { echo "run.sh: PHP's FFI extension is not loaded" >&2; exit 2; }
exec php "${flags[@]}" "$here/bench.php" "$out" "$@"
