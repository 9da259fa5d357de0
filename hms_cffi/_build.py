"""CFFI build script: the out-of-line, API-mode extension ``hms_cffi._native``.

The declarations come from ``include/hms_ffi_cdef.h`` (generated from the
header by tools/gen_cdef.py); nothing here copies a prototype. The two
``extern "Python"`` trampolines (the handler of host services and the
push-event callback) are derived from the ``hms_handler_fn`` and
``hms_event_fn`` typedefs of that same file, so they follow the header.

The extension links against the Rust cdylib ``libhms_ffi.so`` that
setup.py's build_rust step places next to it in the package, with an rpath of
``$ORIGIN``, so the installed package finds its own copy of the library.
setup.py adds the library folder when it builds the extension, the file's
exact name when the library has a soname, and makes the rpath one that
LD_LIBRARY_PATH cannot override (see BuildExt there).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "include"
CDEF_FILE = INCLUDE / "hms_ffi_cdef.h"

#: Name of the core's shared library inside the package.
LIBRARY_NAME = "hms_ffi"

#: The Python trampolines and the typedef each one implements.
TRAMPOLINES = {
    "_hms_py_handler": "hms_handler_fn",
    "_hms_py_event": "hms_event_fn",
}


def trampolines(cdef: str) -> str:
    """``extern "Python"`` declarations with the signatures of the typedefs."""
    out = []
    for name, typedef in TRAMPOLINES.items():
        match = re.search(
            r"typedef\s+(?P<ret>[\w\s\*]+?)\s*\(\s*\*\s*"
            + typedef
            + r"\s*\)\s*\((?P<args>[^)]*)\)\s*;",
            cdef,
        )
        if match is None:
            raise RuntimeError(f"{CDEF_FILE}: no typedef {typedef}")
        out.append(f'extern "Python" {match["ret"]} {name}({match["args"]});')
    return "\n".join(out) + "\n"


def make_ffi() -> FFI:
    cdef = CDEF_FILE.read_text()
    builder = FFI()
    builder.cdef(cdef + trampolines(cdef))
    link_args = ["-Wl,-rpath,$ORIGIN"] if sys.platform != "darwin" else ["-Wl,-rpath,@loader_path"]
    builder.set_source(
        "hms_cffi._native",
        '#include "hms_ffi.h"\n',
        include_dirs=[str(INCLUDE)],
        libraries=[LIBRARY_NAME],
        extra_link_args=link_args,
    )
    return builder


ffibuilder = make_ffi()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
