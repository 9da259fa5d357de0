#!/usr/bin/env bash
# Prepares a machine to build and test HMS FFI. Idempotent and
# non-interactive; runs as root on a fresh Debian 12 machine that has Go,
# Python 3.11, Rust and gcc (CI runs it through scripts/test.sh).
#   1. Debian packages in APT_PACKAGES (apt-get update only when one is missing);
#   2. the Rust core, release profile, built once: rust_core/target/release/
#      libhms_ffi.{so,a}, shared by the C host test, the gates and pip;
#   3. the Python package in development mode with its dev extra (pip
#      install -e), whose setuptools-rust build reuses that same target dir.
# Set HMS_SKIP_PIP=1 to skip step 3 (C/Rust-only work).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf '== setup: %s\n' "$*"; }

# Debian packages the build and the tests need; bindings/*/DEBIAN_PACKAGES
# add those of each language binding below.
APT_PACKAGES=(
    valgrind  # C host test under memcheck
    make      # tests/c/Makefile
    gcc g++   # C host test; header compiled as C and C++
    binutils  # nm/readelf for the exported-symbol gate
)

# Each language binding lists the Debian packages it needs.
for list in bindings/*/DEBIAN_PACKAGES; do
    [[ -f "$list" ]] || continue
    while read -r pkg _; do
        [[ -n "$pkg" && "$pkg" != \#* ]] && APT_PACKAGES+=("$pkg")
    done <"$list"
done

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "setup: missing Debian packages (${missing[*]}) and not root: install them first" >&2
        exit 1
    fi
    say "installing ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    say "Debian packages present (${APT_PACKAGES[*]})"
fi

for tool in cargo python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "setup: '$tool' is not on PATH; this machine should come with it" >&2
        exit 1
    fi
done

say "cargo build --release (rust_core)"
cargo build --release --locked --manifest-path rust_core/Cargo.toml

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
say "pip install -e .${extra}"
python3 -m pip install -q -e ".${extra}"
say "done"
