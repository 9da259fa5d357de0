#!/usr/bin/env python3
"""Writes hms_ffi.pc, the pkg-config file of an installed libhms_ffi.

    python3 tools/gen_pkgconfig.py --prefix /usr/local [-o FILE]

C hosts then build with ``pkg-config --cflags --libs hms_ffi`` (shared) or
``pkg-config --cflags hms_ffi`` plus ``pkg-config --variable=static_libs
hms_ffi`` (static: the archive's path, then Libs.private). ``pkg-config
--static --libs`` alone is not enough for the static case: it says
``-lhms_ffi``, and the linker takes the shared library whenever both are
installed side by side.

Variables beyond the usual ones: ``cdef`` (hms_ffi_cdef.h, the declarations
FFI loaders such as PHP's FFI::cdef read), ``protodir`` (the .proto
schemas) and ``static_libs``.

Libs.private lists the system libraries a Rust staticlib needs, as rustc
reports them (``--print native-static-libs``, asked of the installed rustc
with an empty crate: the core's own dependencies need nothing beyond std's);
--native-static-libs overrides it, and without rustc a Linux default is used.
The version comes from rust_core/Cargo.toml.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINUX_DEFAULT = "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"


def native_static_libs() -> str:
    rustc = shutil.which("rustc")
    if rustc is None:
        return LINUX_DEFAULT
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "empty.rs"
        src.write_text("")
        proc = subprocess.run(
            [
                rustc,
                "--crate-type",
                "staticlib",
                "--print",
                "native-static-libs",
                "-o",
                str(Path(tmp) / "libempty.a"),
                str(src),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    match = re.search(r"native-static-libs: (.*)", proc.stderr + proc.stdout)
    return match.group(1).strip() if match else LINUX_DEFAULT


def render(prefix: str, libs_private: str) -> str:
    cargo = tomllib.loads((ROOT / "rust_core" / "Cargo.toml").read_text())
    version = cargo["package"]["version"]
    return f"""prefix={prefix}
exec_prefix=${{prefix}}
libdir=${{exec_prefix}}/lib
includedir=${{prefix}}/include
cdef=${{includedir}}/hms_ffi_cdef.h
protodir=${{prefix}}/share/hms_ffi/proto
# A static link names the archive itself: -lhms_ffi would pick the .so.
static_libs=${{libdir}}/libhms_ffi.a {libs_private}

Name: hms_ffi
Description: HMS FFI core: the HMS agent platform behind one stable C ABI
URL: https://github.com/hms-ffi/hms
Version: {version}
Cflags: -I${{includedir}}
Libs: -L${{libdir}} -lhms_ffi
Libs.private: {libs_private}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", required=True, help="installation prefix (absolute)")
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    parser.add_argument("--native-static-libs", help="Libs.private (default: asked of rustc)")
    args = parser.parse_args()
    if not args.prefix.startswith("/"):
        parser.error("--prefix must be an absolute path")
    text = render(args.prefix.rstrip("/") or "/", args.native_static_libs or native_static_libs())
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
