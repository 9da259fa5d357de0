#!/usr/bin/env bash
# Prepares a machine to build and test HMS FFI. Idempotent and
# non-interactive; made for a fresh Debian 12 machine that has Go,
# Python 3.11, Rust and gcc (CI runs it as root through scripts/test.sh).
#   1. Debian packages: APT_PACKAGES below plus rust_core/DEBIAN_PACKAGES and
#      bindings/*/DEBIAN_PACKAGES.
#      When all are installed nothing runs (no apt-get at all, root or not).
#      When some are missing: as root, one `apt-get update` and one install;
#      otherwise it prints the one `sudo apt-get install -y ...` line to run
#      and exits with 1;
#   2. the Rust core, release profile, built once: rust_core/target/release/
#      libhms_ffi.{so,a}, shared by the C host test, the gates and pip;
#   3. the Python package in development mode with its dev extra (pip
#      install -e), whose setuptools-rust build reuses that same target dir.
# Set HMS_SKIP_PIP=1 to skip step 3 (C/Rust-only work).
#
#   bash scripts/setup.sh                   all three steps
#   bash scripts/setup.sh --check-packages  step 1's check only: installs
#       nothing, prints the missing packages' install line, exits 1 if any
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

check_only=0
case "${1:-}" in
    "") ;;
    --check-packages) check_only=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "setup: unknown option '$1' (try --help)" >&2
        exit 2
        ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf '== setup: %s\n' "$*"; }

# Debian packages the build and the tests need; rust_core/DEBIAN_PACKAGES
# and bindings/*/DEBIAN_PACKAGES add those of the core and of each binding.
APT_PACKAGES=(
    valgrind  # C host test under memcheck
    make      # tests/c/Makefile
    gcc g++   # C host test; header compiled as C and C++
    binutils  # nm/readelf for the exported-symbol gate
)

# The core and each language binding list the Debian packages they need.
for list in rust_core/DEBIAN_PACKAGES bindings/*/DEBIAN_PACKAGES; do
    [[ -f "$list" ]] || continue
    while read -r pkg _; do
        [[ -n "$pkg" && "$pkg" != \#* ]] && APT_PACKAGES+=("$pkg")
    done <"$list"
done

# Prints the packages of "$@" that are not installed, one per line, each
# once. A name counts as installed when a package of that name is, or when
# an installed package provides it: some names in the lists are virtual
# (php-opcache is provided by php8.2-opcache on Debian 12), and dpkg knows no
# package by such a name. One dpkg-query reads the whole database; apt-get
# is never needed to answer.
missing_packages() {
    local -A present=()
    local name
    # Installed packages' names and the names they provide ("a (= 1.0), b").
    while read -r name; do
        present["$name"]=1
    done < <(dpkg-query -W -f='${db:Status-Status}\t${Package}, ${Provides}\n' |
        awk -F'\t' '$1 == "installed" {
            n = split($2, names, ",")
            for (i = 1; i <= n; i++) { split(names[i], word, " "); if (word[1] != "") print word[1] }
        }')
    local -A seen=()
    local pkg
    for pkg in "$@"; do
        [[ -n "${present[$pkg]:-}" || -n "${seen[$pkg]:-}" ]] && continue
        seen["$pkg"]=1
        printf '%s\n' "$pkg"
    done
}

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "setup: dpkg-query is not on PATH: this script expects Debian (or Ubuntu)" >&2
    exit 1
fi
mapfile -t missing < <(missing_packages "${APT_PACKAGES[@]}")
if ((${#missing[@]} == 0)); then
    say "Debian packages present: $(printf '%s\n' "${APT_PACKAGES[@]}" | sort -u | paste -sd ' ')"
elif ((check_only)) || [[ "$(id -u)" -ne 0 ]]; then
    {
        echo "setup: missing Debian packages: ${missing[*]}"
        echo "setup: install them with this one line, then run setup.sh again:"
        echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}"
        echo "setup: (on a machine whose package lists were never fetched, 'sudo apt-get update' first)"
    } >&2
    exit 1
else
    say "installing missing Debian packages (${missing[*]}): apt-get update, then install"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ((check_only)); then
    exit 0
fi

for tool in cargo python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "setup: '$tool' is not on PATH; this machine should come with it" >&2
        exit 1
    fi
done

# The two long steps say what they build and why, and how long they took:
# cargo's and pip's own output alone does not tell a first run (minutes) from
# a warm one (seconds).
step_started=0
begin() {
    step_started=$SECONDS
    say "$*"
}
finish() { say "$1 done in $((SECONDS - step_started)) s"; }

begin "building the Rust core (cargo build --release, rust_core/target/release):" \
    "the library every test, binding and pip uses; minutes on a first run, seconds when warm"
cargo build --release --locked --manifest-path rust_core/Cargo.toml
# Programs linked against the build look for its soname, libhms_ffi.so.1.
make --no-print-directory -s soname-link
finish "Rust core"

if [[ "${HMS_SKIP_PIP:-0}" == 1 ]]; then
    say "HMS_SKIP_PIP=1: Python package not installed"
    exit 0
fi
if [[ ! -f pyproject.toml && ! -f setup.py ]]; then
    echo "setup: no pyproject.toml/setup.py: the Python package is missing" >&2
    exit 1
fi

# The dev extra, under whichever name pyproject.toml gives it.
extra="$(python3 - <<'PY'
import pathlib, tomllib
path = pathlib.Path("pyproject.toml")
extras = {}
if path.exists():
    extras = tomllib.loads(path.read_text()).get("project", {}).get("optional-dependencies", {})
for name in ("dev", "test", "tests"):
    if name in extras:
        print(f"[{name}]")
        break
PY
)"
begin "installing the Python package (pip install -e .${extra}): hms_cffi in development" \
    "mode and the dev tools (pytest, ruff, mypy); its cargo step reuses the build above," \
    "then CFFI compiles the C extensions (under a minute)"
python3 -m pip install -q -e ".${extra}"
finish "Python package"
say "done"
