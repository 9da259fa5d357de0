"""What the cross-process drivers (tests/remote/run.py, tests/fleet/run.py)
share: the core library under test, the environment of the processes they
start, and building a Go program of theirs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["LIBRARY", "ROOT", "build_go", "environment"]

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = Path(os.environ.get("HMS_FFI_LIBRARY", ROOT / "rust_core/target/release/libhms_ffi.so"))


def environment() -> dict[str, str]:
    """This process's environment, with HMS_FFI_LIBRARY naming the library
    under test and this checkout's hms_cffi first on PYTHONPATH."""
    env = dict(os.environ)
    env["HMS_FFI_LIBRARY"] = str(LIBRARY)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def build_go(folder: Path, program: Path, env: dict[str, str]) -> None:
    """``go build`` of the module in ``folder`` into ``program``, the Go
    binding linked as bindings/go/cgo-env.sh says."""
    subprocess.run(
        [
            "bash",
            "-c",
            f'eval "$({ROOT}/bindings/go/cgo-env.sh)" && exec go build -o "$0" .',
            str(program),
        ],
        cwd=folder,
        env=env,
        check=True,
    )
