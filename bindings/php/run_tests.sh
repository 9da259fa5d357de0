#!/usr/bin/env bash
# Runs the PHP binding's whole test suite (PHPUnit 9.6) against the library
# the core built: HMS_FFI_LIBRARY=/abs/path/libhms_ffi.so when set, else
# rust_core/target/release/libhms_ffi.so. Does not build the core. First
# checks that gen/ and include/hms_ffi_cdef.h are what generate.sh makes.
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

tmp="$(mktemp -d "${TMPDIR:-/tmp}/hms-php-tests.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# What the package carries from the repository (gen/, include/hms_ffi_cdef.h)
# is what generate.sh makes from it now.
cp -R gen include "$tmp/"
./generate.sh >/dev/null
if ! diff -r "$tmp/gen" gen >/dev/null || ! diff -r "$tmp/include" include >/dev/null; then
  echo "run_tests.sh: generate.sh changed gen/ or include/: commit the regenerated files" >&2
  { diff -r "$tmp/gen" gen; diff -r "$tmp/include" include; } | head -20 >&2 || true
  exit 1
fi

# Syntax of every PHP file of the package (generated classes included).
find src gen tests examples bin conformance autoload.php preload.php ../../benchmarks/php -name '*.php' -print0 \
  | xargs -0 -n1 php -l >/dev/null

# Version refusal against a real other-ABI core (tests/versions/README.md):
#   HMS_FFI_OTHER_ABI_LIBRARY="$(tests/versions/build_other_abi.sh | tail -n1)" bindings/php/run_tests.sh
# A panic inside the core (tests/faults/build_fault_library.sh):
#   HMS_FFI_FAULT_LIBRARY="$(tests/faults/build_fault_library.sh | tail -n1)" bindings/php/run_tests.sh
# Without one of them, its test (VersionsTest::testLoadingTheOtherAbiBuildIsRefused,
# FaultsTest::testAPanicInsideTheCoreThenCallAgainWithTheSameBuffers) is allowed
# to be skipped (checked below; FaultsTest fails instead when CI=true); with
# both, no test may skip.
allowed_skips=()
for var in HMS_FFI_OTHER_ABI_LIBRARY HMS_FFI_FAULT_LIBRARY; do
  path="${!var:-}"
  if [ -z "$path" ]; then
    case "$var" in
      HMS_FFI_OTHER_ABI_LIBRARY) allowed_skips+=('Hms\Tests\VersionsTest::testLoadingTheOtherAbiBuildIsRefused') ;;
      HMS_FFI_FAULT_LIBRARY) allowed_skips+=('Hms\Tests\FaultsTest::testAPanicInsideTheCoreThenCallAgainWithTheSameBuffers') ;;
    esac
    continue
  fi
  case "$path" in
    /*) ;;
    *) echo "run_tests.sh: $var must be an absolute path, got '$path'" >&2; exit 2 ;;
  esac
  if [ ! -f "$path" ]; then
    case "$var" in
      HMS_FFI_OTHER_ABI_LIBRARY) echo "run_tests.sh: $var=$path not found (tests/versions/build_other_abi.sh builds it)" >&2 ;;
      HMS_FFI_FAULT_LIBRARY) echo "run_tests.sh: $var=$path not found (tests/faults/build_fault_library.sh builds it)" >&2 ;;
    esac
    exit 2
  fi
  export "${var?}"
done
skip_flags=()
if [ "${#allowed_skips[@]}" -eq 0 ]; then
  skip_flags=(--fail-on-skipped)
fi
junit="$tmp/junit.xml"

# memory_limit: one test sends and receives a 64 MiB payload.
rc=0
php -d memory_limit=1G -d zend.assertions=1 -d error_reporting=-1 -d display_errors=1 \
  "$(command -v "$phpunit")" --configuration "$here/phpunit.xml" --log-junit "$junit" \
  ${skip_flags[@]+"${skip_flags[@]}"} "$@" || rc=$?
[ "$rc" -eq 0 ] || exit "$rc"

# No skipped test but the allowed ones (phpunit.xml cannot allow just some).
ALLOWED_SKIPS="$(printf '%s\n' ${allowed_skips[@]+"${allowed_skips[@]}"})" php -r '
  $xml = @simplexml_load_file($argv[1]);
  if ($xml === false) { fwrite(STDERR, "run_tests.sh: no JUnit log\n"); exit(2); }
  $bad = [];
  foreach ($xml->xpath("//testcase[skipped]") as $case) {
    $name = str_replace(".", "\\", (string) $case["class"]) . "::" . preg_replace("/ with data set .*/", "", (string) $case["name"]);
    if (!in_array($name, explode("\n", (string) getenv("ALLOWED_SKIPS")), true)) { $bad[] = $name; }
  }
  if ($bad !== []) { fwrite(STDERR, "run_tests.sh: skipped tests: " . implode(", ", $bad) . "\n"); exit(1); }
' "$junit"
