"""The Python binding refuses a library of another ABI version.

Run by tests/versions/run.sh, which builds a test copy of the core reporting
ABI 2.0 (tests/versions/build_other_abi.sh) and passes its path in
HMS_FFI_OTHER_ABI_LIBRARY. hms_cffi._native finds its library through a
DT_RPATH of $ORIGIN, which LD_LIBRARY_PATH does not override, so a fresh
interpreter gets the other build from a copy of the package (symlinks to its
files) whose library is that build, first on PYTHONPATH.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hms_cffi import ABI_MAJOR, ABI_MINOR, IncompatibleError, StatusCode, library_path
from hms_cffi._ffi import check_abi_version

OTHER = Path(os.environ["HMS_FFI_OTHER_ABI_LIBRARY"])

PROBE = """
import hms_cffi
print("loaded", hms_cffi.abi_version())
"""


def import_with(library: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    """``import hms_cffi`` in a fresh interpreter whose package copy (under
    ``folder``) has ``library`` as its own."""
    package = library_path().parent
    copy = folder / "hms_cffi"
    copy.mkdir(parents=True)
    own = library_path().name  # the name the compiled modules ask for
    for entry in package.iterdir():
        if entry.name != own:
            (copy / entry.name).symlink_to(entry)
    (copy / own).symlink_to(library)
    env = os.environ | {"PYTHONPATH": str(folder)}
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=folder,  # not a folder holding the real hms_cffi, which -c would import
        capture_output=True,
        text=True,
        check=False,
    )


def loaded_abi(path: Path) -> int:
    lib = ctypes.CDLL(str(path))
    lib.hms_abi_version.restype = ctypes.c_uint32
    return int(lib.hms_abi_version())


def test_the_other_build_reports_another_major() -> None:
    assert loaded_abi(OTHER) >> 16 != ABI_MAJOR


def test_import_refuses_the_other_library(tmp_path: Path) -> None:
    proc = import_with(OTHER, tmp_path)
    assert proc.returncode != 0
    other = loaded_abi(OTHER)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("hms_cffi.errors.IncompatibleError: [INCOMPATIBLE]"), proc.stderr
    assert f"ABI {other >> 16}.{other & 0xFFFF}" in last
    assert f"ABI {ABI_MAJOR}.{ABI_MINOR}" in last


def test_import_accepts_the_real_library(tmp_path: Path) -> None:
    proc = import_with(library_path(), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"loaded ({ABI_MAJOR}, {ABI_MINOR})"


def test_check_function_on_the_other_librarys_version() -> None:
    other = loaded_abi(OTHER)
    with pytest.raises(IncompatibleError) as info:
        check_abi_version(other)
    assert info.value.code == StatusCode.INCOMPATIBLE
    assert info.value.details == {
        "library_abi": f"{other >> 16}.{other & 0xFFFF}",
        "binding_abi": f"{ABI_MAJOR}.{ABI_MINOR}",
    }


@pytest.mark.parametrize(
    ("major", "minor", "accepted"),
    [
        (ABI_MAJOR, ABI_MINOR, True),
        (ABI_MAJOR, ABI_MINOR + 7, True),  # a newer minor is a superset
        (ABI_MAJOR + 1, 0, False),
        (ABI_MAJOR - 1, 0xFFFF, False),
    ],
)
def test_check_rules(major: int, minor: int, accepted: bool) -> None:
    if accepted:
        check_abi_version(major << 16 | minor)
    else:
        with pytest.raises(IncompatibleError, match=f"ABI {major}.{minor} is incompatible"):
            check_abi_version(major << 16 | minor)
