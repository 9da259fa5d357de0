#!/usr/bin/env bash
# Installs the Python binding the way its README says, from outside the
# checkout, and runs the README's quickstart:
#
#   bash tests/install/python.sh PREFIX
#
# A fresh venv in a temporary folder, `pip install <checkout>` (build
# dependencies and cffi, cbor2, protobuf come from PyPI; the build reuses a
# fresh `cargo build --release` of the checkout, or builds the core), then the
# block marked `<!-- snippet: python-quickstart -->` in README.md, run from the
# temporary folder with the venv's python, its output checked line by line.
#
# PREFIX (where `make install` put the library) is not used to install or
# load anything: the package ships and links its own copy of the library.
# The script only proves that PREFIX cannot take that copy's place: it sets
# PKG_CONFIG_PATH and LD_LIBRARY_PATH to PREFIX, as a user of a non-standard
# prefix does for the other languages, and checks that Python still runs the
# copy inside the venv (`python -m hms_cffi.paths library`, and the file the
# process actually mapped).
#
# Works with nothing but PATH and HOME:
#   env -i PATH="$PATH" HOME="$HOME" bash tests/install/python.sh PREFIX
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_check_begin python "$@" -- cargo
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1


cd "$work"

say "fresh venv in $work/venv"
python3 -m venv "$work/venv"
python="$work/venv/bin/python"

say "pip install $root (PyPI for dependencies; the core's build is reused when fresh)"
started=$SECONDS
"$python" -m pip install -q "$root" || fail "pip install $root"
say "installed in $((SECONDS - started)) s"

say "python -m hms_cffi.paths library points inside the venv"
library="$("$python" -m hms_cffi.paths library)" || fail "python -m hms_cffi.paths library"
case "$library" in
    "$work/venv/"*) ;;
    *) fail "the package's library is $library, not a file inside $work/venv" ;;
esac
[[ -f "$library" ]] || fail "$library does not exist"
include="$("$python" -m hms_cffi.paths include)" || fail "python -m hms_cffi.paths include"
[[ -f "$include/hms_ffi.h" && -f "$include/hms_ffi_cdef.h" ]] ||
    fail "$include lacks hms_ffi.h or hms_ffi_cdef.h"

say "the process maps that copy, with LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
mapped="$("$python" -c '
import hms_cffi
print(next(line.split()[-1] for line in open("/proc/self/maps") if "/libhms_ffi" in line))
')" || fail "import hms_cffi"
[[ "$(realpath "$mapped")" == "$(realpath "$library")" ]] ||
    fail "Python loaded $mapped instead of its own copy $library"

say "the hms command runs from the venv"
"$work/venv/bin/hms" --compact version | grep -qF "\"library_path\":\"$library\"" ||
    fail "'hms version' does not name $library"

say "README quickstart (snippet python-quickstart)"
"$python" "$root/tests/install/snippet.py" "$root/README.md" python-quickstart \
    -o "$work/quickstart.py"
output="$("$python" "$work/quickstart.py")" || fail "the quickstart failed: $output"
expected=(
    "{'text': 'hello', 'payload': b'\\x00\\x01'}"
    "{'text': 'hi Ada'}"
    '5 service `demo.v1.Greeter` has no method `Nope`'
)
for line in "${expected[@]}"; do
    grep -qxF -- "$line" <<<"$output" || fail "the quickstart did not print: $line
it printed:
$output"
done
say "ok"
