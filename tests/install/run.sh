#!/usr/bin/env bash
# Every binding installed and used from outside the checkout, as its README
# says (docs/install.md):
#   tests/install/run.sh [LANG ...]        (default: c go python php ruby)
#
# 1. `make install` into a temporary prefix (and once more with DESTDIR, as
#    a packager would, checking where the files land);
# 2. per language, tests/install/<lang>.sh PREFIX in a scrubbed environment
#    (`env -i`: PATH, HOME and CI only, so nothing from this repository's
#    setup leaks in): a fresh folder outside the checkout, the binding
#    installed by its documented route, its README quickstart run;
# 3. `make uninstall` leaves the prefix without a file of ours.
# Needs the release build of the core (scripts/setup.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
langs=("$@")
((${#langs[@]})) || langs=(c go python php ruby)

say() { printf '== install-check: %s\n' "$*"; }
die() {
    printf 'install-check: %s\n' "$*" >&2
    exit 1
}

work="$(mktemp -d "${TMPDIR:-/tmp}/hms-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"

say "make install PREFIX=$prefix"
make --no-print-directory -s install PREFIX="$prefix" >/dev/null
for file in include/hms_ffi.h include/hms_ffi_cdef.h lib/libhms_ffi.so lib/libhms_ffi.a \
    lib/pkgconfig/hms_ffi.pc share/hms_ffi/proto/hms/v1/status.proto; do
    [[ -e "$prefix/$file" ]] || die "make install did not install $file"
done

# A packager's staged install: files under DESTDIR, paths inside for PREFIX.
say "make install PREFIX=/usr/local DESTDIR=$work/stage"
make --no-print-directory -s install PREFIX=/usr/local DESTDIR="$work/stage" >/dev/null
grep -qx 'prefix=/usr/local' "$work/stage/usr/local/lib/pkgconfig/hms_ffi.pc" ||
    die "the staged hms_ffi.pc does not name the final prefix /usr/local"
[[ -e "$work/stage/usr/local/lib/libhms_ffi.so" ]] ||
    die "a DESTDIR install did not stage the library under DESTDIR"

times=()
for lang in "${langs[@]}"; do
    script="$root/tests/install/$lang.sh"
    [[ -f "$script" ]] || die "no install check for '$lang' ($script)"
    say "$lang (tests/install/$lang.sh)"
    t0=$SECONDS
    env -i PATH="$PATH" HOME="$HOME" CI="${CI:-}" TMPDIR="${TMPDIR:-/tmp}" \
        bash "$script" "$prefix" || die "$lang: the install check failed (see above)"
    times+=("$lang $((SECONDS - t0))s")
done

say "make uninstall PREFIX=$prefix"
make --no-print-directory -s uninstall PREFIX="$prefix" >/dev/null
left="$(find "$prefix" -type f -o -type l)"
[[ -z "$left" ]] || die "make uninstall left files behind:
$left"

say "passed: ${times[*]}"
