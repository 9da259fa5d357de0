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

The authorization decision table (tests/security/decisions.json: principals
x methods x records x expected code, for examples/security/starter.cedar)
runs as scenarios too, one per case (ids "authz_<case>"): the matrix writes
the token file of its principals and hands every runner a scenarios file
with those scenarios appended.

With --remote, the scenarios that only call services (the host services of
scenarios.json and the domain ones) run with those services in another
process: a real nats-server is started on a free loopback port, and for each
language a fresh serve_python.py exports them while the runner calls them
from a runtime that has none of them. Those cells must also name the serving
runtime as the origin of their error, and say what the same scenario says run
locally (the Python runner's local run); but for a deadline, which either
side may word (tests/conformance/README.md, "Remote mode").

Usage: run_matrix.py [--remote] [--require-all] [--only LANG ...] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = ROOT / "tests" / "conformance"

#: The domain services the server of --remote exports (nats.export_services)
#: and its callers reach remotely (nats.remote_services).
DOMAIN_SERVICES = [
    "hms.agent.v1.AgentService",
    "hms.agent.v1.TaskService",
    "hms.agent.v1.KnowledgeService",
    "hms.agent.lifecycle.v1.LifecycleService",
]
#: The authorization decision table, run as scenarios "authz_<case>".
DECISIONS = ROOT / "tests" / "security" / "decisions.json"
SERVER_NAME = "conformance-server"
#: Longest the server of --remote may take to say "ready".
SERVER_READY_S = 60.0

# UUIDs (agent, task and entry ids): different in every run.
GENERATED_ID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


@dataclass
class Result:
    lang: str
    state: str = "ran"  # ran | missing | failed
    problems: list[str] = field(default_factory=list)
    cells: dict[str, tuple[bool, str]] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)


def only_calls(scenario: dict[str, Any], exported: set[str]) -> bool:
    """Whether every step of ``scenario`` calls a service of ``exported``."""
    return all(
        step["op"] == "call" and step["method"].split("/")[0] in exported
        for step in scenario["steps"]
    )


def remote_scenarios(doc: dict[str, Any]) -> list[str]:
    """Ids of the scenarios --remote runs against the server: those that
    need no runtime of their own (no runtime_config) and whose every step
    calls a service the server exports."""
    exported = {*doc["services"], *DOMAIN_SERVICES}
    return [
        s["id"] for s in doc["scenarios"] if "runtime_config" not in s and only_calls(s, exported)
    ]


@dataclass
class DecisionTable:
    """The decision table as scenarios, and the security section they run
    under (its token file written in a folder of the matrix)."""

    security: dict[str, Any]
    scenarios: list[dict[str, Any]]

    @classmethod
    def load(cls, folder: Path) -> DecisionTable:
        from hms_cffi.tokens import token_line

        table = json.loads(DECISIONS.read_text(encoding="utf-8"))
        principals = table["principals"]
        tokens = folder / "tokens"
        tokens.write_text(
            "".join(
                token_line(name, p["roles"], p["token"]) + "\n"
                for name, p in principals.items()
                if p["in_token_file"]
            ),
            encoding="utf-8",
        )
        security = {
            "api_tokens_file": str(tokens),
            "authorization": {"policy_files": [str(ROOT / table["policies"])]},
        }

        def call(step: dict[str, Any]) -> dict[str, Any]:
            token = principals[step["principal"]]["token"]
            credentials = {"options": json.dumps({"credentials": {"token": token}})}
            return {
                "op": "call",
                "method": step["method"],
                "format": "json",
                "request": step["request"],
                **(credentials if token else {}),
                **({"save": step["save"]} if "save" in step else {}),
            }

        setup = [call(step) for step in table["setup"]]
        config = json.dumps({"security": security})
        scenarios = [
            {
                "id": f"authz_{case['id']}",
                "description": f"{case['principal']} calls {case['method']}. {case.get('why', '')}",
                "runtime_config": config,
                "steps": [*setup, call(case)],
                "expect": case["expect"],
                **({"expect_remote": case["expect_remote"]} if "expect_remote" in case else {}),
            }
            for case in table["cases"]
        ]
        return cls(security, scenarios)

    def remote(self) -> list[str]:
        """Ids of the cases that --remote runs against a server with this
        security section: those that only call the services it exports."""
        return [s["id"] for s in self.scenarios if only_calls(s, set(DOMAIN_SERVICES))]

    def as_remote(self) -> list[dict[str, Any]]:
        """The scenarios with what they expect over NATS."""
        remote = set(self.remote())
        return [
            {**s, "expect": s.get("expect_remote", s["expect"])} if s["id"] in remote else s
            for s in self.scenarios
        ]


def nats_config(name: str, url: str, services: str, security: dict[str, Any] | None = None) -> str:
    config: dict[str, Any] = {"name": name, "nats": {"servers": [url], services: DOMAIN_SERVICES}}
    if security is not None:
        config["security"] = security
    return json.dumps(config)


@contextlib.contextmanager
def serving(
    url: str, scenarios_path: Path, security: dict[str, Any] | None = None
) -> Iterator[None]:
    """A serve_python.py process exporting the scenarios' services (under
    ``security`` when given), ready; stopped (its stdin closed, killed if it
    lingers) when the block ends."""
    config = nats_config(SERVER_NAME, url, "export_services", security)
    server = subprocess.Popen(
        [sys.executable, str(HERE / "serve_python.py"), config, str(scenarios_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        until = time.monotonic() + SERVER_READY_S
        line = ""
        while line != "ready":
            left = until - time.monotonic()
            if left <= 0 or not select.select([server.stdout], [], [], left)[0]:
                raise RuntimeError(f"serve_python.py not ready within {SERVER_READY_S:.0f} s")
            line = server.stdout.readline()
            if not line:
                raise RuntimeError(f"serve_python.py exited with status {server.wait()}")
            line = line.strip()
        yield
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()


def run_runner(
    runner: dict[str, Any], scenarios_path: Path, timeout: float, env: dict[str, str]
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
        env=os.environ | {"HMS_CONFORMANCE_SCENARIOS": str(scenarios_path)} | env,
    )
    return proc.returncode, proc.stdout, proc.stderr


def judge(
    lang: str,
    stdout: str,
    scenarios: list[dict[str, Any]],
    result: Result,
    remote: frozenset[str] = frozenset(),
) -> None:
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
        elif (
            sid in remote
            and expect not in ("OK", "DEADLINE_EXCEEDED")
            and line.get("origin") != SERVER_NAME
        ):
            result.cells[sid] = (False, f"FAIL: origin {line.get('origin')!r}, not {SERVER_NAME}")
        else:
            result.cells[sid] = (True, error if expect != "OK" else "ok")


def compare_messages(
    scenarios: list[dict[str, Any]],
    results: list[Result],
    local: Result | None = None,
    remote: frozenset[str] = frozenset(),
) -> None:
    """Fails the cells whose message differs from the first language's, or
    from the ``local`` run's when there is one. A deadline passed over NATS
    is not compared: the exporter runs the handler under the same deadline,
    so whichever core gives up first, the caller's or the exporter's, words
    it."""
    for scenario in scenarios:
        sid = scenario["id"]
        if "message_varies" in scenario or (
            sid in remote and scenario["expect"] == "DEADLINE_EXCEEDED"
        ):
            continue
        ran = [r for r in results if r.cells.get(sid, (False, ""))[0]]
        if local is not None:
            ran.insert(0, local)
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


def table(
    scenarios: list[dict[str, Any]], results: list[Result], remote: frozenset[str] | None
) -> str:
    """The language x scenario table; with a ``via`` column (nats or local)
    when the matrix runs ``remote`` scenarios over NATS."""
    via = [] if remote is None else ["via"]
    header = ["scenario", *via, "expect", *(r.lang for r in results)]
    rows = []
    for s in scenarios:
        row = [s["id"], *(["nats" if s["id"] in remote else "local"] if via else []), s["expect"]]
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


def run_column(
    runner: dict[str, Any],
    scenarios_path: Path,
    scenarios: list[dict[str, Any]],
    timeout: float,
    env: dict[str, str],
    remote: frozenset[str],
) -> Result:
    """One runner over every scenario, judged."""
    result = Result(runner["lang"])
    print(f"== {runner['lang']}: {' '.join(runner['cmd'])}", file=sys.stderr)
    try:
        rc, stdout, stderr = run_runner(runner, scenarios_path, timeout, env)
    except subprocess.TimeoutExpired:
        rc, stdout, stderr = -1, "", f"timed out after {timeout:.0f} s"
    judge(runner["lang"], stdout, scenarios, result, remote)
    if rc != 0:
        result.state = "failed"
        result.problems.append(f"exit status {rc}")
    if (rc != 0 or result.problems) and stderr.strip():
        result.problems.append("stderr:\n" + stderr.strip()[-2000:])
    return result


def report(
    scenarios: list[dict[str, Any]],
    results: list[Result],
    local: Result | None,
    remote: frozenset[str] | None,
) -> bool:
    """Prints the table and every problem; whether any cell or run failed."""
    compare_messages(scenarios, results, local, remote or frozenset())
    judged = [*([local] if local else []), *results]
    failed = any(r.problems or not all(ok for ok, _ in r.cells.values()) for r in judged)
    print(table(scenarios, results, remote))
    for r in judged:
        for problem in r.problems:
            print(f"{r.lang}: {problem}", file=sys.stderr)
    ran = [r for r in results if r.state != "missing"]
    passed = sum(ok for r in ran for ok, _ in r.cells.values())
    total = len(scenarios) * len(ran)
    missing = [r.lang for r in results if r.state == "missing"]
    over_nats = f" ({len(remote)} scenarios over NATS)" if remote else ""
    print(
        f"conformance{over_nats}: {passed}/{total} cells passed over {len(ran)} languages"
        + (f"; missing: {', '.join(missing)}" if missing else "")
        + ("; FAILED" if failed else "")
    )
    return failed


def merge(into: Result, other: Result) -> Result:
    """``other`` (a second run of the same runner) folded into ``into``."""
    into.cells |= other.cells
    into.messages |= other.messages
    into.problems += other.problems
    if other.state == "failed":
        into.state = "failed"
    return into


def write_scenarios(doc: dict[str, Any], scenarios: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(json.dumps({**doc, "scenarios": scenarios}, indent=1), encoding="utf-8")
    return path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--remote", action="store_true", help="services in another process")
    parser.add_argument("--require-all", action="store_true", help="a missing runner fails")
    parser.add_argument("--only", action="append", metavar="LANG", help="run these languages")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per runner")
    parser.add_argument("--scenarios", type=Path, default=HERE / "scenarios.json")
    parser.add_argument("--runners", type=Path, default=HERE / "runners.json")
    return parser.parse_args()


def report_missing(runner: dict[str, Any], require_all: bool) -> bool:
    """Says on stderr that the runner's file is missing; whether that fails
    the matrix."""
    required = require_all or not runner.get("optional", False)
    print(
        f"== {runner['lang']}: runner {runner['file']} is missing"
        + (" (required)" if required else " (optional)"),
        file=sys.stderr,
    )
    return required


def main() -> int:
    args = parse_args()
    base_path = args.scenarios.resolve()
    doc = json.loads(base_path.read_text(encoding="utf-8"))
    all_runners = json.loads(args.runners.read_text(encoding="utf-8"))["runners"]
    runners = [r for r in all_runners if not args.only or r["lang"] in args.only]
    results: list[Result] = []
    local: Result | None = None
    failed = False
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hms-conformance-")))
        decisions = DecisionTable.load(folder)
        # Every scenario, the decision table's included: what runs locally.
        full = [*doc["scenarios"], *decisions.scenarios]
        full_path = write_scenarios(doc, full, folder / "scenarios.json")
        if args.remote:
            if not remote_scenarios(doc):
                print("conformance: no scenario can run remotely; FAILED")
                return 1
            # Two runs per language: the plain scenarios against a server
            # without security, the decision table against one with the
            # table's security section (its cases that call other services
            # run locally in that run).
            remote = frozenset(remote_scenarios(doc)) | frozenset(decisions.remote())
            secured = decisions.as_remote()
            secured_path = write_scenarios(doc, secured, folder / "secured.json")
            scenarios = [*doc["scenarios"], *secured]
            # A SIGTERM (a CI timeout, say) unwinds like an error, so the
            # servers and nats-server are still stopped on the way out.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
            sys.path.insert(0, str(ROOT / "tests" / "python"))
            from nats_server import started

            nats = stack.enter_context(started())
            print(f"== nats-server on {nats.url}", file=sys.stderr)
            # What the scenarios say run locally, for the remote cells.
            python = next(r for r in all_runners if r["lang"] == "python")
            local = run_column(python, full_path, full, args.timeout, {}, frozenset())
            local.lang = "python (local)"
        else:
            remote, scenarios = None, full
        for runner in runners:
            if not (ROOT / runner["file"]).exists():
                results.append(Result(runner["lang"], state="missing"))
                failed |= report_missing(runner, args.require_all)
                continue
            if remote is None:
                column = run_column(runner, full_path, full, args.timeout, {}, frozenset())
            else:
                caller = nats_config(f"conformance-{runner['lang']}", nats.url, "remote_services")
                # A server of its own: what a scenario leaves in it (agents,
                # a hook) must not meet another language's run.
                with serving(nats.url, base_path):
                    env = {
                        "HMS_CONFORMANCE_REMOTE": " ".join(sorted(remote_scenarios(doc))),
                        "HMS_CONFORMANCE_REMOTE_CONFIG": caller,
                    }
                    column = run_column(
                        runner, base_path, doc["scenarios"], args.timeout, env, remote
                    )
                with serving(nats.url, base_path, decisions.security):
                    env = {
                        "HMS_CONFORMANCE_REMOTE": " ".join(sorted(decisions.remote())),
                        "HMS_CONFORMANCE_REMOTE_CONFIG": caller,
                    }
                    merge(
                        column,
                        run_column(runner, secured_path, secured, args.timeout, env, remote),
                    )
            results.append(column)
    failed |= report(scenarios, results, local, remote)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
