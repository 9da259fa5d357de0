#!/usr/bin/env python3
"""Runs every conformance runner (tests/conformance/runners.json) over every
scenario (tests/conformance/scenarios.json) and prints the language x
scenario table.

A cell shows the idiomatic error the language raised (its exception class,
sentinel or constant), "ok" for a scenario expected to succeed, "MISSING" for
a runner that does not exist yet, or "FAIL: ..." for a mismatch. Exit status:
0 when every runner that exists passes every scenario; 1 on any mismatch,
runner failure or protocol error, and on a missing runner that is not
optional (all are required with --require-all).

Besides the code, every language must report the same message: the core
writes it once, and a binding passes it on untouched. Ids the core
generates are masked before comparing (each runner creates its own). A
scenario whose message a binding words on purpose (its own check before the
core, an exception class prefixed) says why in "message_varies".

Usage: run_matrix.py [--require-all] [--only LANG ...] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = ROOT / "tests" / "conformance"

# UUIDs (agent, task and entry ids): different in every run.
GENERATED_ID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


@dataclass
class Result:
    lang: str
    state: str = "ran"  # ran | missing | failed
    problems: list[str] = field(default_factory=list)
    cells: dict[str, tuple[bool, str]] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)


def run_runner(
    runner: dict[str, Any], scenarios_path: Path, timeout: float
) -> tuple[int, str, str]:
    cwd = ROOT / runner.get("cwd", ".")
    if "build" in runner:
        build = subprocess.run(
            runner["build"], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        if build.returncode:
            return build.returncode, "", f"build failed:\n{build.stdout}{build.stderr}"
    proc = subprocess.run(
        [*runner["cmd"], str(scenarios_path)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=os.environ | {"HMS_CONFORMANCE_SCENARIOS": str(scenarios_path)},
    )
    return proc.returncode, proc.stdout, proc.stderr


def judge(lang: str, stdout: str, scenarios: list[dict[str, Any]], result: Result) -> None:
    by_id = {s["id"]: s for s in scenarios}
    seen: dict[str, dict[str, Any]] = {}
    for number, text in enumerate(stdout.splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            result.problems.append(f"stdout line {number} is not JSON: {text[:120]!r}")
            continue
        sid = line.get("scenario")
        if line.get("lang") != lang:
            result.problems.append(f"line {number}: lang {line.get('lang')!r}, expected {lang!r}")
        if sid not in by_id:
            result.problems.append(f"line {number}: unknown scenario {sid!r}")
        elif sid in seen:
            result.problems.append(f"scenario {sid} reported twice")
        else:
            seen[sid] = line
    for sid, scenario in by_id.items():
        line = seen.get(sid)
        if line is None:
            result.cells[sid] = (False, "FAIL: not reported")
            continue
        expect = scenario["expect"]
        code, error = str(line.get("code", "")), str(line.get("error") or "")
        message = str(line.get("message") or "")
        result.messages[sid] = GENERATED_ID.sub("<id>", message)
        last = len(scenario["steps"]) - 1
        if code != expect:
            where = "" if line.get("step", last) == last else f" at step {line.get('step')}"
            result.cells[sid] = (False, f"FAIL: {code}{where} ({error or '-'})")
        elif line.get("step", last) != last:
            result.cells[sid] = (False, f"FAIL: {code} at step {line.get('step')}, not {last}")
        elif expect != "OK" and not error:
            result.cells[sid] = (False, "FAIL: no error name")
        elif scenario.get("message_contains", "") not in message:
            result.cells[sid] = (False, f"FAIL: message {message[:40]!r}")
        else:
            result.cells[sid] = (True, error if expect != "OK" else "ok")


def compare_messages(scenarios: list[dict[str, Any]], results: list[Result]) -> None:
    """Fails the cells whose message differs from the first language's."""
    for scenario in scenarios:
        sid = scenario["id"]
        if "message_varies" in scenario:
            continue
        ran = [r for r in results if r.cells.get(sid, (False, ""))[0]]
        if not ran:
            continue
        reference = ran[0]
        expected = reference.messages.get(sid, "")
        for r in ran[1:]:
            if r.messages.get(sid, "") != expected:
                r.cells[sid] = (False, f"FAIL: message differs from {reference.lang}'s")
                r.problems.append(
                    f"{sid}: message {r.messages.get(sid, '')!r}, "
                    f"{reference.lang} says {expected!r}"
                )


def table(scenarios: list[dict[str, Any]], results: list[Result]) -> str:
    header = ["scenario", "expect", *(r.lang for r in results)]
    rows = []
    for s in scenarios:
        row = [s["id"], s["expect"]]
        for r in results:
            if r.state == "missing":
                row.append("MISSING")
            elif s["id"] in r.cells:
                row.append(r.cells[s["id"]][1])
            else:
                row.append("FAIL: runner failed")
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def fmt(row: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--require-all", action="store_true", help="a missing runner fails")
    parser.add_argument("--only", action="append", metavar="LANG", help="run these languages")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per runner")
    parser.add_argument("--scenarios", type=Path, default=HERE / "scenarios.json")
    parser.add_argument("--runners", type=Path, default=HERE / "runners.json")
    args = parser.parse_args()
    scenarios_path = args.scenarios.resolve()
    scenarios = json.loads(scenarios_path.read_text(encoding="utf-8"))["scenarios"]
    runners = json.loads(args.runners.read_text(encoding="utf-8"))["runners"]
    if args.only:
        runners = [r for r in runners if r["lang"] in args.only]
    results: list[Result] = []
    failed = False
    for runner in runners:
        result = Result(runner["lang"])
        results.append(result)
        if not (ROOT / runner["file"]).exists():
            result.state = "missing"
            required = args.require_all or not runner.get("optional", False)
            failed |= required
            print(
                f"== {runner['lang']}: runner {runner['file']} is missing"
                + (" (required)" if required else " (optional)"),
                file=sys.stderr,
            )
            continue
        print(f"== {runner['lang']}: {' '.join(runner['cmd'])}", file=sys.stderr)
        try:
            rc, stdout, stderr = run_runner(runner, scenarios_path, args.timeout)
        except subprocess.TimeoutExpired:
            rc, stdout, stderr = -1, "", f"timed out after {args.timeout:.0f} s"
        judge(runner["lang"], stdout, scenarios, result)
        if rc != 0:
            result.state = "failed"
            result.problems.append(f"exit status {rc}")
        if (rc != 0 or result.problems) and stderr.strip():
            result.problems.append("stderr:\n" + stderr.strip()[-2000:])
    compare_messages(scenarios, results)
    for result in results:
        if result.problems or not all(ok for ok, _ in result.cells.values()):
            failed = True
    print(table(scenarios, results))
    for r in results:
        for problem in r.problems:
            print(f"{r.lang}: {problem}", file=sys.stderr)
    ran = [r for r in results if r.state != "missing"]
    passed = sum(ok for r in ran for ok, _ in r.cells.values())
    total = len(scenarios) * len(ran)
    missing = [r.lang for r in results if r.state == "missing"]
    print(
        f"conformance: {passed}/{total} cells passed over {len(ran)} languages"
        + (f"; missing: {', '.join(missing)}" if missing else "")
        + ("; FAILED" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
