"""Compares conformance_test_runner logs with KNOWN_FAILURES.txt.

    failures.py check  KNOWN MODE=LOG...   exit 1 on a new failure or a fix
    failures.py update KNOWN MODE=LOG...   rewrite KNOWN from the logs

A failure is an "ERROR, test=NAME: ..." line of the runner's log (with
--enforce_recommended, recommended tests count too). KNOWN_FAILURES.txt has
one section per JSON naming mode, "[mode NAME]", then test names one a line,
grouped under "# == category (count)" comments; other "#" lines are comments.
Only the modes that ran are compared (the script runs both, proto and
json); an update keeps the sections of modes that did not run.

Standard library only: CI runs it with the system python3.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

ERROR_LINE = re.compile(r"^ERROR, test=([^:\s]+): (.*)$")

HEADER = """\
# Known failures of the official protobuf conformance suite (3.21, binary and
# JSON, proto2 and proto3, --enforce_recommended) over the core's codec, as
# scripts/protobuf_conformance.sh runs it through hms_runtime_convert.
#
# A test that fails and is not listed fails CI; a listed test that passes
# fails CI too, until its line is removed, so the list only shrinks. After a
# fix, run
#   bash scripts/protobuf_conformance.sh --update-known-failures
# and commit the shorter list.
#
# One section per JSON naming mode: "json" (lowerCamelCase json_name, the
# suite's own expectation) has no failure. "proto" (proto field names) keeps
# only the .Validator tests that look their field up by its lowerCamelCase
# name, which output in that mode cannot have by definition. Categories are
# assigned by test name (failures.py, CATEGORIES).
"""

# (category, why, regex on the test name, modes it applies to or None for
# all), first match wins. A failure that matches none lands in
# "Uncategorized" until someone diagnoses it: fix the codec, or, for a
# failure that follows from a mode by definition, add a line here.
CATEGORIES: list[tuple[str, str, str, set[str] | None]] = [
    (
        "JSON keys are proto field names, by definition of the mode",
        "these .Validator tests look their field up by the lowerCamelCase "
        'json_name (e.g. value["optionalInt64"]), which the proto names mode '
        "does not write; all of them pass in the json names mode",
        r"\.Validator$",
        {"proto"},
    ),
]

UNCATEGORIZED = ("Uncategorized", "diagnose these and add a category in failures.py")


def parse_log(path: Path) -> OrderedDict[str, str]:
    failures: OrderedDict[str, str] = OrderedDict()
    for line in path.read_text(errors="replace").splitlines():
        m = ERROR_LINE.match(line)
        if m:
            # The reason, and the start of the testee's response (the
            # request dump in between is long and the same for every mode).
            reason, _, rest = m.group(2).partition(" request=")
            response = rest.rpartition(", response=")[2]
            failures[m.group(1)] = f"{reason} {response[:300]}".strip()
    return failures


def parse_known(path: Path) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    mode = None
    if not path.exists():
        return sections
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[mode (\w+)\]", line)
        if m:
            mode = m.group(1)
            sections.setdefault(mode, [])
        elif mode is None:
            sys.exit(f"{path}: test name before any [mode NAME] line: {line}")
        else:
            sections[mode].append(line)
    return sections


def category(test: str, mode: str) -> tuple[str, str]:
    """(title, explanation) of the first category that takes ``test``."""
    for title, why, pattern, modes in CATEGORIES:
        if (modes is None or mode in modes) and re.search(pattern, test):
            return title, why
    return UNCATEGORIZED


def parse_args(argv: list[str]) -> tuple[Path, OrderedDict[str, Path]]:
    known = Path(argv[0])
    runs: OrderedDict[str, Path] = OrderedDict()
    for spec in argv[1:]:
        mode, _, log = spec.partition("=")
        runs[mode] = Path(log)
    return known, runs


def check(known_path: Path, runs: OrderedDict[str, Path]) -> int:
    known = parse_known(known_path)
    ok = True
    total_left = 0
    for mode, log in runs.items():
        failing = parse_log(log)
        listed = set(known.get(mode, []))
        new = [t for t in failing if t not in listed]
        fixed = sorted(listed - set(failing))
        left = len(failing) - len(new)
        total_left += left
        print(
            f"   mode {mode}: {len(failing)} failing, {left} of them known, "
            f"{len(new)} new, {len(fixed)} known failures now pass"
        )
        if new:
            ok = False
            print(f"\nNEW FAILURES in mode {mode} (not in {known_path.name}):")
            for t in new:
                print(f"  {t}: {failing[t]}")
        if fixed:
            ok = False
            print(
                f"\nFIXED in mode {mode}: these listed tests now pass; remove them "
                f"from {known_path.name} (or run with --update-known-failures):"
            )
            for t in fixed:
                print(f"  {t}")
        by_cat: OrderedDict[str, int] = OrderedDict()
        for t in failing:
            if t in listed:
                title = category(t, mode)[0]
                by_cat[title] = by_cat.get(title, 0) + 1
        for name, n in sorted(by_cat.items(), key=lambda kv: -kv[1]):
            print(f"     {n:4d}  {name}")
    print(f"   known failures: {total_left} (each one explained in {known_path.name})")
    print("   result: " + ("OK" if ok else "FAILED (see above)"))
    return 0 if ok else 1


def update(known_path: Path, runs: OrderedDict[str, Path]) -> int:
    known = parse_known(known_path)
    sections: OrderedDict[str, list[str]] = OrderedDict()
    for mode in ["proto", "json", *known, *runs]:
        if mode in runs:
            sections[mode] = list(parse_log(runs[mode]))
        elif mode in known:
            sections[mode] = known[mode]
    out = [HEADER]
    for mode, tests in sections.items():
        out.append(f"\n[mode {mode}]\n")
        out.append(f"# {len(tests)} known failures in mode {mode}\n")
        groups: dict[tuple[str, str], list[str]] = {}
        for t in tests:
            groups.setdefault(category(t, mode), []).append(t)
        for (title, why), members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            lines = textwrap.wrap(f"{title} ({len(members)}): {why}", 74)
            out.append("\n# == " + "\n#    ".join(lines) + "\n")
            out.extend(f"{t}\n" for t in sorted(members))
    known_path.write_text("".join(out))
    for mode, tests in sections.items():
        print(f"   mode {mode}: {len(tests)} known failures")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("check", "update"):
        print(__doc__, file=sys.stderr)
        return 2
    known, runs = parse_args(argv[1:])
    return (check if argv[0] == "check" else update)(known, runs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
