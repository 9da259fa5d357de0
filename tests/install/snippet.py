#!/usr/bin/env python3
"""Prints a named code block of a Markdown file, so CI runs what a README shows.

    python3 tests/install/snippet.py README.md NAME [-o FILE]

A block is named by an HTML comment on the line just before its opening
fence, which renders as nothing:

    <!-- snippet: go-quickstart -->
    ```go
    ...
    ```

Exits 2, naming the file and the snippet, when the marker is missing, not
followed by a fence, or the fence never closes: a README edit that drops a
tested snippet fails CI instead of silently testing nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

MARKER = re.compile(r"^\s*<!--\s*snippet:\s*([\w.-]+)\s*-->\s*$")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def extract(text: str, name: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        found = MARKER.match(line)
        if not found or found.group(1) != name:
            continue
        opening = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if opening is None:
            raise LookupError(f"snippet '{name}' is not followed by a code fence")
        fence = opening.group(1)
        body = []
        for inner in lines[i + 2 :]:
            if inner.strip().startswith(fence):
                return "\n".join(body) + "\n"
            body.append(inner)
        raise LookupError(f"the code block of snippet '{name}' never closes")
    raise LookupError(f"no '<!-- snippet: {name} -->' marker")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("markdown", type=Path)
    parser.add_argument("name")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    try:
        body = extract(args.markdown.read_text(encoding="utf-8"), args.name)
    except (LookupError, OSError) as error:
        print(f"snippet.py: {args.markdown}: {error}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(body)
    else:
        args.output.write_text(body, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
