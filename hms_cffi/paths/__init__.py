"""Where the installed package keeps the core's library, header and schemas.

Go (cgo), PHP (FFI), Ruby (Fiddle) and C hosts can use the library this
package built. From Python::

    hms_cffi.library_path()   # the shared library hms_cffi itself runs on
    hms_cffi.include_dir()    # hms_ffi.h, hms_ffi_cdef.h and proto/
    hms_cffi.cdef_path()      # hms_ffi_cdef.h, the declarations FFI loaders read
    hms_cffi.proto_dir()      # the .proto schemas

From any other program, through the interpreter the package is installed in
(this is what ``HMS_FFI_PYTHON=<python>`` asks the other bindings to do)::

    python -m hms_cffi.paths library    # prints one path and exits 0
    python -m hms_cffi.paths include
    python -m hms_cffi.paths cdef
    python -m hms_cffi.paths proto

Each prints one absolute path on one line. When the file or folder is
missing (a damaged install) it prints why on stderr and exits with 2, so a
caller never receives a path that points at nothing. A C program, for
example::

    cc app.c -I"$(python -m hms_cffi.paths include)" "$(python -m hms_cffi.paths library)"

Python itself always runs on this package's own copy: its compiled modules
are linked to it (rpath ``$ORIGIN``), so ``HMS_FFI_LIBRARY`` and pkg-config
do not apply to it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["cdef_path", "include_dir", "library_path", "main", "proto_dir"]

#: The hms_cffi package folder, where setup.py places the library.
_HERE = Path(__file__).resolve().parent.parent
_LIB_FILE = "libhms_ffi.dylib" if sys.platform == "darwin" else "libhms_ffi.so"


def library_path() -> Path:
    """The core's shared library that hms_cffi's compiled modules are linked
    to: the same file, never another copy. Its name is ``libhms_ffi.so``, or
    the library's soname (``libhms_ffi.so.1``) when it was built with one,
    since that is the name the compiled modules ask the loader for."""
    # setup.py leaves exactly one of these in the package folder.
    candidates = [_HERE / _LIB_FILE, *sorted(_HERE.glob(f"{_LIB_FILE}.*"))]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{_HERE / _LIB_FILE} is missing: reinstall hms_cffi (pip install --force-reinstall)"
    )


def include_dir() -> Path:
    """The folder holding ``hms_ffi.h``, ``hms_ffi_cdef.h`` (the declarations
    for FFI loaders) and ``proto/`` (the .proto schemas).

    An installed package carries its own copy (``hms_cffi/include``); an
    editable install uses the repository's ``include/``.
    """
    for candidate in (_HERE / "include", _HERE.parent / "include"):
        if (candidate / "hms_ffi.h").is_file():
            return candidate
    raise FileNotFoundError(
        f"hms_ffi.h is missing from {_HERE / 'include'}: "
        "reinstall hms_cffi (pip install --force-reinstall)"
    )


def cdef_path() -> Path:
    """``hms_ffi_cdef.h``: the header's declarations without preprocessor
    lines, what PHP's ``FFI::cdef`` and other FFI loaders read."""
    path = include_dir() / "hms_ffi_cdef.h"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: reinstall hms_cffi (pip install --force-reinstall)"
        )
    return path


def proto_dir() -> Path:
    """The root of the .proto schemas (``include_dir() / "proto"``)."""
    path = include_dir() / "proto"
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} is missing: reinstall hms_cffi (pip install --force-reinstall)"
        )
    return path


_LOOKUPS: dict[str, Callable[[], Path]] = {
    "library": library_path,
    "include": include_dir,
    "cdef": cdef_path,
    "proto": proto_dir,
}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hms_cffi.paths NAME``: prints one path; 2 when it is missing."""
    parser = argparse.ArgumentParser(
        prog="python -m hms_cffi.paths",
        description="Print where this hms_cffi package keeps the core's files.",
    )
    parser.add_argument(
        "name",
        choices=list(_LOOKUPS),
        help="library: the shared library; include: the folder of hms_ffi.h and "
        "hms_ffi_cdef.h; cdef: hms_ffi_cdef.h; proto: the .proto schemas",
    )
    args = parser.parse_args(argv)
    try:
        path = _LOOKUPS[args.name]()
    except FileNotFoundError as missing:
        print(f"hms_cffi.paths: {missing}", file=sys.stderr)
        return 2
    print(path)
    return 0
