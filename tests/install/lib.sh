# Sourced by tests/install/<lang>.sh: what every install check starts with.
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   install_check_begin LANG "$@" -- TOOL...
# Then: say/fail print as "install-check LANG: ..."; $prefix is the installed
# layout (absolute), $root the checkout, $work a fresh folder outside it
# (removed on exit); PKG_CONFIG_PATH and LD_LIBRARY_PATH name the prefix, as
# a user of a prefix outside the system's paths sets them.

install_check_lang=""

say() { printf 'install-check %s: %s\n' "$install_check_lang" "$*"; }
fail() {
    printf 'install-check %s: FAILED: %s\n' "$install_check_lang" "$*" >&2
    exit 1
}

install_check_begin() {
    install_check_lang="$1"
    shift
    if [[ $# -lt 1 || "$1" == -- ]]; then
        echo "usage: bash tests/install/$install_check_lang.sh PREFIX (after \`make install PREFIX=...\`)" >&2
        exit 2
    fi
    prefix="$(cd "$1" 2>/dev/null && pwd)" ||
        fail "PREFIX $1 is not a folder: run \`make install PREFIX=$1\` first"
    shift
    [[ "${1:-}" == -- ]] && shift
    [[ -f "$prefix/lib/pkgconfig/hms_ffi.pc" ]] ||
        fail "$prefix/lib/pkgconfig/hms_ffi.pc is missing: run \`make install PREFIX=$prefix\` first"
    local tool
    for tool in python3 "$@"; do
        command -v "$tool" >/dev/null 2>&1 ||
            fail "'$tool' is not on PATH (scripts/setup.sh installs what the tests need)"
    done
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
    export LD_LIBRARY_PATH="$prefix/lib"
    work="$(mktemp -d "${TMPDIR:-/tmp}/hms-install-$install_check_lang.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
}
