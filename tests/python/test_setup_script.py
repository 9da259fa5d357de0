"""scripts/setup.sh --check-packages: real package names, virtual names
through what provides them, and never an apt-get call just to check.

The script runs against a fake ``dpkg-query`` (a package database the test
writes) and a fake ``apt-get`` that fails the test if it is ever called, so
the outcome does not depend on what this machine has installed.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup.sh"
INSTALL_LINE = "sudo apt-get install -y --no-install-recommends "


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A folder with ``dpkg-query`` (prints tmp_path/dpkg.db: status TAB
    "name, provides") and an ``apt-get`` that leaves a mark when called."""
    folder = tmp_path / "bin"
    folder.mkdir()
    scripts = {
        "dpkg-query": f'#!/bin/sh\ncat "{tmp_path / "dpkg.db"}"\n',
        "apt-get": f'#!/bin/sh\necho "$*" >> "{tmp_path / "apt-get.called"}"\nexit 99\n',
    }
    for name, body in scripts.items():
        path = folder / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "dpkg.db").write_text("")
    return folder


def check_packages(fake_bin: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """setup.sh --check-packages in a copy of the repository layout whose
    bindings list ``extra`` besides the real lists."""
    tree = fake_bin.parent / "tree"
    if not tree.exists():
        (tree / "scripts").mkdir(parents=True)
        shutil.copy2(SETUP, tree / "scripts" / "setup.sh")
        for listed in ROOT.glob("bindings/*/DEBIAN_PACKAGES"):
            copy = tree / listed.relative_to(ROOT)
            copy.parent.mkdir(parents=True)
            shutil.copy2(listed, copy)
        (tree / "bindings" / "extra").mkdir()
    (tree / "bindings" / "extra" / "DEBIAN_PACKAGES").write_text("".join(f"{p}\n" for p in extra))
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(tree / "scripts" / "setup.sh"), "--check-packages"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def install_line(done: subprocess.CompletedProcess[str]) -> list[str]:
    lines = [line.strip() for line in done.stderr.splitlines() if INSTALL_LINE in line]
    assert len(lines) == 1, done.stderr
    return lines[0].removeprefix(INSTALL_LINE).split()


def write_db(fake_bin: Path, *entries: str) -> None:
    (fake_bin.parent / "dpkg.db").write_text("".join(f"{e}\n" for e in entries))


def test_check_packages(fake_bin: Path) -> None:
    # Nothing installed: one install line naming every package once.
    done = check_packages(fake_bin, "hms-extra-a", "hms-extra-a", "php-opcache")
    assert done.returncode == 1
    required = install_line(done)
    assert len(required) == len(set(required))
    assert {"gcc", "valgrind", "hms-extra-a", "php-opcache"} <= set(required)

    # All installed, php-opcache only as what php8.2-opcache provides, and
    # a removed package's leftovers (config-files) not counted as installed.
    real = [p for p in required if p != "php-opcache"]
    write_db(
        fake_bin,
        *(f"installed\t{p}, " for p in real),
        "installed\tphp8.2-opcache, php-opcache",
        "config-files\thms-gone, ",
    )
    done = check_packages(fake_bin, "hms-extra-a", "php-opcache")
    assert done.returncode == 0, done.stderr
    assert "Debian packages present" in done.stdout

    done = check_packages(fake_bin, "hms-extra-a", "php-opcache", "hms-gone")
    assert (done.returncode, install_line(done)) == (1, ["hms-gone"])
    assert not (fake_bin.parent / "apt-get.called").exists()


def test_unknown_option_is_refused() -> None:
    done = subprocess.run(
        ["bash", str(SETUP), "--frobnicate"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "unknown option '--frobnicate'" in done.stderr
