#!/usr/bin/env bash
# Runs the PHP binding's whole test suite (PHPUnit 9.6) against the library
# the core built: HMS_FFI_LIBRARY=/abs/path/libhms_ffi.so when set, else
# rust_core/target/release/libhms_ffi.so. Does not build the core.
# Exits non-zero on any failure, warning, deprecation or risky test.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

lib="${HMS_FFI_LIBRARY:-$root/rust_core/target/release/libhms_ffi.so}"
case "$lib" in
  /*) ;;
  *) echo "run_tests.sh: HMS_FFI_LIBRARY must be an absolute path, got '$lib'" >&2; exit 2 ;;
esac
if [ ! -f "$lib" ]; then
  echo "run_tests.sh: $lib not found; build the core first:" >&2
  echo "  cargo build --release --manifest-path rust_core/Cargo.toml" >&2
  exit 2
fi
export HMS_FFI_LIBRARY="$lib"

phpunit="${PHPUNIT:-phpunit}"
command -v "$phpunit" >/dev/null || { echo "run_tests.sh: phpunit not found (Debian: phpunit)" >&2; exit 2; }
php -r 'exit(extension_loaded("ffi") ? 0 : 1);' || { echo "run_tests.sh: PHP's FFI extension is not loaded" >&2; exit 2; }

# Syntax of every PHP file of the package (generated classes included).
find src gen tests examples bin autoload.php preload.php ../../benchmarks/php -name '*.php' -print0 \
  | xargs -0 -n1 php -l >/dev/null

# memory_limit: one test sends and receives a 64 MiB payload.
exec php -d memory_limit=1G -d zend.assertions=1 -d error_reporting=-1 -d display_errors=1 \
  "$(command -v "$phpunit")" --configuration "$here/phpunit.xml" "$@"
