"""Build of the hms_cffi package (metadata lives in pyproject.toml).

Three steps, in this order, all run by ``build_ext``:

1. setuptools-rust (``build_rust``, binding NoBinding) runs
   ``cargo rustc --lib --release --crate-type <the [lib] crate types>`` on
   rust_core/Cargo.toml and copies the cdylib into the package as
   ``hms_cffi/libhms_ffi.so`` (``.dylib`` on macOS). It always builds the
   release profile, in rust_core/target (CARGO_TARGET_DIR is honoured), with
   the crate types of Cargo.toml, so after
   ``cargo build --release --manifest-path rust_core/Cargo.toml`` every unit
   is fresh and the core is built once. BuildExt runs it before any C
   extension.
2. CFFI (``cffi_modules``) generates and compiles ``hms_cffi._native`` from
   include/hms_ffi_cdef.h, linked against that copy with an rpath of $ORIGIN.
3. ``hms_cffi._fast`` (hms_cffi/_fast.c), the compiled fast path of
   ``Method.call_raw`` and of batches, is built the same way: limited API
   (abi3) like ``_native``, linked against the same copy, rpath $ORIGIN.
   It is part of every build; the package falls back to CFFI alone only
   when it cannot be imported.

The header, the cdef file and the .proto schemas are copied into the package
(``hms_cffi/include``) so other hosts (Go, PHP, Ruby, C) can use the same
build; see hms_cffi.include_dir() and hms_cffi.library_path().

Two details keep the package on its own copy of the library:

- A library built with a soname (``libhms_ffi.so.1``) is placed under that
  name, and the C extensions link that exact file: the loader looks a
  dependency up by its soname, so a copy named ``libhms_ffi.so`` alone would
  not be found.
- On Linux the rpath is written as DT_RPATH (``--disable-new-dtags``), which
  the loader searches before LD_LIBRARY_PATH. The default DT_RUNPATH comes
  after it: a user pointing LD_LIBRARY_PATH at an installed prefix (as a
  non-standard prefix requires for the other languages) would silently run
  that copy instead. auditwheel writes DT_RPATH for the same reason.

Cost: ``pip install .`` runs cargo, which finds a fresh
``cargo build --release`` and only checks it (seconds); without one it
builds the core (minutes). The C extensions are compiled on every install.
"""

from __future__ import annotations

import glob
import os
import shutil
import struct
import sys
import tomllib
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools_rust import Binding, RustExtension, build_rust

ROOT = Path(__file__).resolve().parent
LIB_FILE = "libhms_ffi.dylib" if sys.platform == "darwin" else "libhms_ffi.so"
SHIPPED_INCLUDE = ("hms_ffi.h", "hms_ffi_cdef.h", "proto")
#: The C extensions linked against the core's cdylib.
LINKED_EXTENSIONS = ("hms_cffi._native", "hms_cffi._fast")
#: The oldest CPython of the limited API the fast path uses (3.11: Py_buffer).
LIMITED_API = "0x030B0000"


def elf_soname(path: str) -> str | None:
    """The DT_SONAME of an ELF shared library; None when it has none (or is
    not ELF). Read here rather than with readelf, which a machine that builds
    C extensions need not have."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF":
        return None
    order = "<" if data[5] == 1 else ">"
    if data[4] == 2:  # ELFCLASS64
        (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
        section, entry = order + "IIQQQQIIQQ", order + "qQ"
    else:
        (shoff,) = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
        section, entry = order + "IIIIIIIIII", order + "iI"
    # Fields used: [1] sh_type, [4] sh_offset, [5] sh_size, [6] sh_link.
    sections = [struct.unpack_from(section, data, shoff + i * shentsize) for i in range(shnum)]
    sht_dynamic, dt_null, dt_soname = 6, 0, 14
    for header in sections:
        if header[1] != sht_dynamic:
            continue
        strings = sections[header[6]][4]
        for offset in range(header[4], header[4] + header[5], struct.calcsize(entry)):
            tag, value = struct.unpack_from(entry, data, offset)
            if tag == dt_null:
                break
            if tag == dt_soname:
                start = strings + value
                return data[start : data.index(b"\0", start)].decode()
    return None


def crate_types() -> str:
    """The crate types of rust_core's [lib], passed to `cargo rustc` as they
    are: with the same list as `cargo build`, cargo finds every unit fresh
    (setuptools-rust's default, cdylib alone, changes the LTO flags of all
    dependencies and rebuilds them)."""
    manifest = tomllib.loads((ROOT / "rust_core" / "Cargo.toml").read_text())
    types: list[str] = manifest.get("lib", {}).get("crate-type", ["cdylib"])
    if "cdylib" not in types:
        raise RuntimeError("rust_core/Cargo.toml: [lib] crate-type must include cdylib")
    return ",".join(types)


class BuildRust(build_rust):  # type: ignore[misc]
    """Places the cdylib as hms_cffi/libhms_ffi.so rather than under a Python
    extension-module name (NoBinding would name it like a CPython module),
    and runs once per build (BuildExt runs it first; setuptools-rust's own
    build_ext would run it again after the C extensions)."""

    _done = False
    #: Where the cdylib was placed (the build folder, or the source tree for
    #: in-place and editable builds); BuildExt links against it.
    placed: str | None = None

    def run(self) -> None:
        if self._done:
            return
        super().run()
        self._done = True
        if not self.placed:
            return
        folder = os.path.dirname(self.placed)
        if sys.platform != "darwin":
            soname = elf_soname(self.placed)
            if soname and soname != LIB_FILE:
                renamed = os.path.join(folder, soname)
                os.replace(self.placed, renamed)
                self.placed = renamed
        # Exactly one library in the package: a build folder or source tree
        # that held an earlier build under the other name would otherwise
        # ship both, and hms_cffi.library_path() could name the stale one.
        for other in glob.glob(os.path.join(glob.escape(folder), f"{LIB_FILE}*")):
            if os.path.abspath(other) != os.path.abspath(self.placed):
                os.remove(other)

    def get_dylib_ext_path(self, ext: RustExtension, target_fname: str) -> str:
        path: str = super().get_dylib_ext_path(ext, target_fname)
        self.placed = os.path.join(os.path.dirname(path), LIB_FILE)
        return self.placed


class BuildExt(build_ext):
    """Runs build_rust before the C extensions (setuptools-rust >= 1.12 runs
    it after them), then links the C extensions (CFFI's _native and _fast)
    against the cdylib it placed in the same package folder (the build
    folder, or the source tree for in-place and editable builds)."""

    def run(self) -> None:
        if getattr(self.distribution, "rust_extensions", None):
            rust = self.get_finalized_command("build_rust")
            rust.inplace = self.inplace
            rust.verbose = self.verbose
            if getattr(self, "target", None) is not None:
                rust.target = self.target  # type: ignore[attr-defined]
            wheel_plat = getattr(self, "_get_wheel_plat_name", lambda: None)()
            rust.plat_name = wheel_plat or self.plat_name
            rust.run()
        super().run()

    def build_extension(self, ext: Any) -> None:
        if ext.name in LINKED_EXTENSIONS:
            placed = self.get_finalized_command("build_rust").placed
            if not placed or not os.path.exists(placed):
                raise RuntimeError(f"{LIB_FILE} was not built: build_rust did not run first")
            ext.library_dirs = [os.path.dirname(os.path.abspath(placed)), *ext.library_dirs]
            # Relinked when the library is newer: build_ext otherwise keeps
            # an extension whose sources did not change, still asking the
            # loader for the previous build's library (by its old soname).
            ext.depends = [*ext.depends, placed]
            if os.path.basename(placed) != LIB_FILE:
                # -l:NAME (GNU ld) links the soname-named file itself.
                name = f":{os.path.basename(placed)}"
                ext.libraries = [name if lib == "hms_ffi" else lib for lib in ext.libraries]
            if sys.platform != "darwin":
                ext.extra_link_args = [*ext.extra_link_args, "-Wl,--disable-new-dtags"]
        super().build_extension(ext)


class BuildPy(build_py):
    """Ships the C header, the cdef file and the .proto tree in the package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # editable installs read include/ from the source tree
        dest = Path(self.build_lib) / "hms_cffi" / "include"
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for name in SHIPPED_INCLUDE:
            src = ROOT / "include" / name
            if src.is_dir():
                shutil.copytree(src, dest / name)
            else:
                shutil.copy2(src, dest / name)


def fast_extension() -> Extension:
    """hms_cffi._fast: one C file, the limited API (abi3, as CFFI builds
    _native), the core linked with an rpath of $ORIGIN (as _build.py does)."""
    rpath = "@loader_path" if sys.platform == "darwin" else "$ORIGIN"
    return Extension(
        "hms_cffi._fast",
        sources=["hms_cffi/_fast.c"],
        depends=["include/hms_ffi.h"],
        include_dirs=[str(ROOT / "include")],
        libraries=["hms_ffi"],
        define_macros=[("Py_LIMITED_API", LIMITED_API)],
        extra_compile_args=["-Wall", "-Wextra"],
        extra_link_args=[f"-Wl,-rpath,{rpath}"],
        py_limited_api=True,
    )


setup(
    ext_modules=[fast_extension()],
    rust_extensions=[
        RustExtension(
            "hms_cffi.libhms_ffi",
            path="rust_core/Cargo.toml",
            binding=Binding.NoBinding,
            args=["--crate-type", crate_types()],
            # Always the release profile, editable installs included, so the
            # artifacts of `cargo build --release` are reused.
            debug=False,
        )
    ],
    cffi_modules=["hms_cffi/_build.py:ffibuilder"],
    cmdclass={"build_rust": BuildRust, "build_ext": BuildExt, "build_py": BuildPy},
    zip_safe=False,
)
