#!/usr/bin/env bash
# Sets the machine up (scripts/setup.sh) and runs the Python demo:
#   python3 -m hms_cffi.demo [ARGS...]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh
if ! python3 -c 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("hms_cffi.demo") else 1)' 2>/dev/null; then
    echo "demo: the module hms_cffi.demo does not exist (yet): nothing to run" >&2
    exit 1
fi
echo "== python3 -m hms_cffi.demo $*"
exec python3 -m hms_cffi.demo "$@"
