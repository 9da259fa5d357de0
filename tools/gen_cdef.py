#!/usr/bin/env python3
"""Writes include/hms_ffi_cdef.h: the declarations of include/hms_ffi.h with
every comment and preprocessor directive removed, and the integer #defines
turned into one anonymous enum.

CFFI's cdef, PHP's FFI::cdef and Ruby's Fiddle parse plain declarations only,
so every binding consumes this file instead of a hand copy of the header.
Usage: tools/gen_cdef.py [--check]   (--check fails when the file is stale)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "include" / "hms_ffi.h"
CDEF = ROOT / "include" / "hms_ffi_cdef.h"

DEFINE = re.compile(r"^#define\s+(HMS_[A-Z0-9_]+)\s+(\d+)u?\b")


def generate(header: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    constants: list[tuple[str, str]] = []
    declarations: list[str] = []
    in_extern_c = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            match = DEFINE.match(line)
            if match:
                constants.append((match.group(1), match.group(2)))
            continue
        if line.startswith('extern "C"'):
            in_extern_c = True
            continue
        if in_extern_c and line == "}":
            in_extern_c = False
            continue
        declarations.append(line)
    # Join continuation lines so every declaration sits on one line: Fiddle's
    # extern takes one prototype per call and the bindings split on ';'.
    joined = " ".join(declarations)
    joined = re.sub(r"\s+", " ", joined)
    joined = re.sub(r"\(\s+", "(", joined)
    joined = re.sub(r"\s+\)", ")", joined)
    statements = []
    depth = 0
    current = ""
    for char in joined:
        current += char
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == ";" and depth == 0:
            statements.append(current.strip())
            current = ""
    enum_body = ",\n".join(f"    {name} = {value}" for name, value in constants)
    parts = ["enum {\n" + enum_body + "\n};"] + statements
    return "\n".join(parts) + "\n"


def main() -> int:
    expected = generate(HEADER.read_text())
    if "--check" in sys.argv[1:]:
        current = CDEF.read_text() if CDEF.exists() else ""
        if current != expected:
            print(f"{CDEF.relative_to(ROOT)} is stale: run tools/gen_cdef.py", file=sys.stderr)
            return 1
        return 0
    CDEF.write_text(expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
