"""Where the installed package keeps the core's library, header and schemas.

Go (cgo), PHP (FFI), Ruby (Fiddle) and C hosts can use the library this
package built::

    cc app.c -I"$(python -c 'import hms_cffi; print(hms_cffi.include_dir())')" \
       "$(python -c 'import hms_cffi; print(hms_cffi.library_path())')"
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["include_dir", "library_path", "proto_dir"]

_HERE = Path(__file__).resolve().parent
_LIB_FILE = "libhms_ffi.dylib" if sys.platform == "darwin" else "libhms_ffi.so"


def library_path() -> Path:
    """The core's shared library (``libhms_ffi.so``) that hms_cffi._native
    is linked to: the same file, never another copy."""
    path = _HERE / _LIB_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall hms_cffi")
    return path


def include_dir() -> Path:
    """The folder holding ``hms_ffi.h``, ``hms_ffi_cdef.h`` (the declarations
    for FFI loaders) and ``proto/`` (the .proto schemas).

    An installed package carries its own copy (``hms_cffi/include``); an
    editable install uses the repository's ``include/``.
    """
    for candidate in (_HERE / "include", _HERE.parent / "include"):
        if (candidate / "hms_ffi.h").is_file():
            return candidate
    raise FileNotFoundError(f"hms_ffi.h is missing next to {_HERE}: reinstall hms_cffi")


def proto_dir() -> Path:
    """The root of the .proto schemas (``include_dir() / "proto"``)."""
    return include_dir() / "proto"
