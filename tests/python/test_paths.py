"""``python -m hms_cffi.paths``: where other hosts find this package's copy of
the core, and proof that it is the copy Python itself runs on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import package_with_library

import hms_cffi
from hms_cffi import paths

NAMES = {
    "library": hms_cffi.library_path,
    "include": hms_cffi.include_dir,
    "cdef": hms_cffi.cdef_path,
    "proto": hms_cffi.proto_dir,
}


def paths_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hms_cffi.paths", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.mark.parametrize("name", sorted(NAMES))
def test_prints_one_existing_path(name: str) -> None:
    done = paths_cli(name)
    assert (done.returncode, done.stderr) == (0, "")  # no runpy warning either
    assert done.stdout.endswith("\n")
    assert done.stdout.count("\n") == 1
    printed = Path(done.stdout.strip())
    assert printed.is_absolute()
    assert printed.exists()
    assert printed == NAMES[name]()


def test_the_paths_belong_together() -> None:
    include = hms_cffi.include_dir()
    assert (include / "hms_ffi.h").is_file()
    assert hms_cffi.cdef_path() == include / "hms_ffi_cdef.h"
    assert hms_cffi.proto_dir() == include / "proto"
    assert (hms_cffi.proto_dir() / "hms" / "sys" / "v1" / "system.proto").is_file()
    assert hms_cffi.library_path().name.startswith("libhms_ffi.")


def test_unknown_name_is_a_usage_error() -> None:
    done = paths_cli("headers")
    assert done.returncode == 2
    assert "invalid choice: 'headers'" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("name", sorted(NAMES))
def test_a_missing_file_exits_2_and_says_so(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A package folder with nothing in it (and no include/ beside it): what a
    # damaged install looks like to the lookups.
    package = tmp_path / "site-packages" / "hms_cffi"
    package.mkdir(parents=True)
    monkeypatch.setattr(paths, "_HERE", package)
    assert paths.main([name]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("hms_cffi.paths: ")
    assert "is missing" in err
    assert "reinstall hms_cffi" in err


def test_a_missing_cdef_or_proto_beside_a_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "hms_cffi"
    (package / "include").mkdir(parents=True)
    (package / "include" / "hms_ffi.h").write_text("")
    monkeypatch.setattr(paths, "_HERE", package)
    assert paths.main(["include"]) == 0
    assert capsys.readouterr().out == f"{package / 'include'}\n"
    for name, missing in (("cdef", "hms_ffi_cdef.h"), ("proto", "proto")):
        assert paths.main([name]) == 2
        assert f"{package / 'include' / missing} is missing" in capsys.readouterr().err


def test_library_under_its_soname(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """setup.py places a library built with a soname under that name (and
    leaves no other); the plain name, should both be there, comes first."""
    monkeypatch.setattr(paths, "_HERE", tmp_path)
    (tmp_path / "libhms_ffi.so.1").write_bytes(b"")
    assert paths.library_path() == tmp_path / "libhms_ffi.so.1"
    (tmp_path / "libhms_ffi.so").write_bytes(b"")
    assert paths.library_path() == tmp_path / "libhms_ffi.so"


def loaded_library(env: dict[str, str], cwd: Path | None = None) -> Path:
    """The libhms_ffi file a fresh interpreter maps after ``import hms_cffi``."""
    code = (
        "import hms_cffi\n"
        "print(next(line.split()[-1] for line in open('/proc/self/maps')"
        " if '/libhms_ffi' in line))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
        cwd=cwd,
    )
    return Path(done.stdout.strip())


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_python_runs_its_own_copy_even_under_ld_library_path(tmp_path: Path) -> None:
    """A user who sets LD_LIBRARY_PATH for an installed prefix still gets the
    package's copy in Python: the rpath is a DT_RPATH, searched first."""
    own = hms_cffi.library_path().resolve()
    # Another copy, under every name the loader might look for.
    for name in {own.name, "libhms_ffi.so", "libhms_ffi.so.1"}:
        shutil.copy2(own, tmp_path / name)
    env = {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": str(tmp_path)}
    assert loaded_library(env).resolve() == own
    done = paths_cli("library", env=env)
    assert Path(done.stdout.strip()).resolve() == own


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_a_package_copy_runs_the_library_beside_it(tmp_path: Path) -> None:
    """What the fault-injection and other-ABI tests rely on to swap the
    library (helpers.package_with_library)."""
    other = tmp_path / "other" / "libhms_ffi-copy.so"
    other.parent.mkdir()
    shutil.copy2(hms_cffi.library_path(), other)
    tree = package_with_library(tmp_path / "tree", other)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)}
    assert loaded_library(env, cwd=tmp_path) == other
