#!/usr/bin/env bash
# Sets the machine up (scripts/setup.sh) and runs the demos:
#   python3 -m hms_cffi.demo [ARGS...]   the domain tour, in one process
#   python3 examples/remote/demo.py      a second process joins over NATS:
#                                        remote agents and their events, a
#                                        Python service called from Go, PHP,
#                                        Ruby and C
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh
if ! python3 -c 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("hms_cffi.demo") else 1)' 2>/dev/null; then
    echo "demo: the module hms_cffi.demo does not exist (yet): nothing to run" >&2
    exit 1
fi
echo "== python3 -m hms_cffi.demo $*"
python3 -m hms_cffi.demo "$@"
echo
echo "== python3 examples/remote/demo.py"
exec python3 examples/remote/demo.py
