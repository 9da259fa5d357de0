#!/usr/bin/env python3
"""Turns the result files benchmarks/out/*.json into benchmarks/RESULTS.md.

The files and their cases are described in benchmarks/CASES.md; this script
adds the machine and the versions, one table per language (every figure
beside its baseline of the same run, and the ratio), the memory table, a
cross-language summary of Echo 64 B and the targets of CASES.md, each met or
not with its figures. A language whose file is missing is "not run".

    python benchmarks/render.py                  # out/*.json -> RESULTS.md
    python benchmarks/render.py --check          # validate the files only
    python benchmarks/render.py --self-test      # render made-up files, check the output

Standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (file name, heading) in the order of RESULTS.md; other files follow.
LANGUAGES = [
    ("python", "Python (CFFI)"),
    ("go", "Go (cgo)"),
    ("php", "PHP (FFI)"),
    ("ruby-fiddle", "Ruby (Fiddle)"),
    ("ruby-ffi", "Ruby (ffi gem)"),
    ("rust-codecs", "Rust (the core alone: codecs and dispatch)"),
    ("python-remote", "Python: remote calls over NATS"),
    ("go-remote", "Go: remote calls over NATS"),
    ("python-store", "Python: store throughput (SQLite, PostgreSQL)"),
]
#: Files whose cases are FFI bindings (the summary table and batch targets).
BINDINGS = ["python", "go", "php", "ruby-fiddle", "ruby-ffi"]

#: The store benchmark's operations and stores, in the order of its table.
STORE_OPS = [
    ("create_agent", "CreateAgent"),
    ("transition", "Transition"),
    ("claim_complete", "ClaimTask + CompleteTask"),
]
STORE_RUNTIMES = (1, 2, 4)

#: Largest RSS growth over the memory cases (CASES.md: under 5%).
RSS_GROWTH_MAX = 0.05


@dataclass(frozen=True)
class Target:
    """``file``'s case ``case`` against ``other`` (a case of the same file):
    ratio case/other ``op`` ``limit`` ("<=" or ">="; None: reported only),
    or with ``op`` "+<=" the time case adds to other, at most ``limit`` ns."""

    file: str
    case: str
    other: str
    op: str | None
    limit: float
    text: str
    #: What bounds the figure, from the profiles (printed when not met).
    why: str = ""


_WHY_BATCH = (
    "a batch removes the crossings, not the core's own work: an Echo 64 B costs the core "
    "about 110-120 ns per call (decode, dispatch, encode; core_echo_raw_64), which is more "
    "than a quarter of a single call wherever the binding's crossing is cheap; the binding "
    "adds the frame and one answer object per call. Only a cheaper core call would meet it."
)

#: The targets of benchmarks/CASES.md.
TARGETS = [
    Target(
        "python",
        "echo_raw_64",
        "floor",
        "<=",
        5,
        "Python raw Echo 64 B, x floor",
        "the core's own Echo work (about 110 ns) is already 1.7x the CFFI floor.",
    ),
    Target(
        "python",
        "echo_raw_64",
        "pyo3_echo_64",
        "<=",
        2,
        "Python raw Echo 64 B, x PyO3",
        "releasing and retaking the GIL around the core, which the PyO3 comparator skips.",
    ),
    *(
        Target(
            f,
            "batch_echo_raw_64",
            "echo_raw_64",
            "<=",
            0.25,
            f"{f}: batched Echo per call",
            _WHY_BATCH,
        )
        for f in BINDINGS
    ),
    Target(
        "go",
        "echo_raw_64",
        "floor",
        "<=",
        5,
        "Go raw Echo 64 B, x floor",
        "a cgo crossing is so cheap (about 27 ns) that the core's own Echo work alone is "
        "4.5x it, and a bare hms_method_call through cgo with no binding code about 6x.",
    ),
    Target(
        "php",
        "echo_raw_64",
        "floor",
        "<=",
        5,
        "PHP raw Echo 64 B, x floor",
        "PHP's FFI converts the five arguments of hms_method_call through libffi (about "
        "2,400 instructions against 400 for the floor's call, by callgrind): the bare call "
        "with no binding code is already 6.5x the floor.",
    ),
    Target(
        "ruby-fiddle",
        "echo_raw_64",
        "floor",
        "<=",
        2,
        "Ruby (Fiddle) raw Echo 64 B, x floor",
        "a bare hms_method_call through Fiddle is already 1.7-1.8x its floor; making the "
        "answer String and finding the thread's buffers add about 300 ns.",
    ),
    Target("ruby-ffi", "echo_raw_64", "floor", None, 0, "Ruby (ffi gem) raw Echo 64 B, x floor"),
    Target("python", "grpc_echo_64", "echo_raw_64", ">=", 100, "gRPC Echo 64 B, x raw Echo"),
    Target(
        "python",
        "echo_raw_64_api_token",
        "echo_raw_64",
        None,
        0,
        "Python raw Echo 64 B authenticated by an API token, x without security",
    ),
    Target(
        "python",
        "echo_raw_64_jwt",
        "echo_raw_64",
        None,
        0,
        "Python raw Echo 64 B authenticated by a JWT, x without security",
    ),
    Target(
        "python",
        "echo_raw_64_authz_cached",
        "echo_raw_64",
        "+<=",
        2000,
        "Python raw Echo 64 B with a cached authorization decision (20 policies), time added",
    ),
    Target(
        "python",
        "echo_raw_64_authz_uncached",
        "echo_raw_64",
        None,
        0,
        "Python raw Echo 64 B with an uncached authorization decision (20 policies), x without",
    ),
    Target(
        "python",
        "echo_raw_64_authz_audited",
        "echo_raw_64",
        None,
        0,
        "Python raw Echo 64 B with a cached decision and its audit record on disk, x without",
    ),
    *(
        Target(
            "rust-codecs",
            f"core_echo_raw_64_authz_{count}_{kind}",
            "core_echo_raw_64_api_token",
            None,
            0,
            f"Rust core Echo 64 B authorized by {count} policies ({kind}), x authenticated only",
        )
        for count in (20, 200)
        for kind in ("cached", "uncached")
    ),
    Target(
        "python-remote",
        "remote_echo_raw_64",
        "nats_py_echo_64",
        "<=",
        1.3,
        "Python remote Echo 64 B over NATS, x nats-py request/reply",
    ),
    Target(
        "go-remote",
        "remote_echo_raw_64",
        "nats_go_echo_64",
        "<=",
        1.3,
        "Go remote Echo 64 B over NATS, x nats.go request/reply",
        "the caller's side is one thread hop each way (the caller hands the request to the "
        "client's connection task on a thread of the core's async runtime, which hands it "
        "the reply); waking a parked thread costs tens of µs on an idle virtual machine, "
        "where nats.go's goroutines hand off inside Go's scheduler. The caller polls for "
        "its reply for 150 µs before parking (1.42x before, about 0.8x after); a round "
        "trip longer than that pays the wake-up again.",
    ),
    Target(
        "python-remote",
        "grpc_echo_64",
        "remote_echo_raw_64",
        ">=",
        1,
        "gRPC loopback Echo 64 B, x remote Echo over NATS (>= 1: NATS faster)",
    ),
    Target(
        "python-remote",
        "remote_batch_echo_raw_64",
        "remote_echo_raw_64",
        "<=",
        0.1,
        "Python remote batch of 1,000 per call, x serial remote calls",
        "the batch has its remote calls in flight together, so its floor is the one "
        "worker answering them one after the other, on cores it shares with the caller "
        "and the server; more workers in the queue group, on other machines, lower it.",
    ),
    Target(
        "python-remote",
        "echo_raw_64_transport",
        "echo_raw_64",
        "<=",
        1.15,
        "Python local raw Echo 64 B with a transport configured, x without",
    ),
    Target(
        "go-remote",
        "echo_raw_64_transport",
        "echo_raw_64",
        "<=",
        1.15,
        "Go local raw Echo 64 B with a transport configured, x without",
    ),
]


# ---------------------------------------------------------------- loading


def load(out_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(name -> parsed file, name -> error) for every out_dir/*.json."""
    files: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for path in sorted(out_dir.glob("*.json")):
        try:
            files[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            errors[path.stem] = f"unreadable: {e}"
    return files, errors


def validate(data: Any) -> list[str]:
    """Problems of one result file against the CASES.md format."""
    if not isinstance(data, dict):
        return ["not a JSON object"]
    problems = []
    for key, kind in (("language", str), ("version", str), ("cases", list)):
        if not isinstance(data.get(key), kind):
            problems.append(f"'{key}' missing or not a {kind.__name__}")
    if "notes" in data and not isinstance(data["notes"], list):
        problems.append("'notes' is not a list")
    if "memory" in data and not isinstance(data["memory"], list):
        problems.append("'memory' is not a list")
    stops = data.get("where_it_stops", {})
    if not isinstance(stops, dict) or not all(
        isinstance(s, dict) and isinstance(s.get("wait_events"), list) for s in stops.values()
    ):
        problems.append("'where_it_stops' is not an object of {wait_events: [...]} per operation")
    if problems:
        return problems
    ids: set[str] = set()
    for i, case in enumerate(data["cases"]):
        where = f"cases[{i}]"
        if not isinstance(case, dict) or not isinstance(case.get("id"), str):
            problems.append(f"{where}: no id")
            continue
        where = f"case {case['id']}"
        if case["id"] in ids:
            problems.append(f"{where}: duplicate id")
        ids.add(case["id"])
        nums = [case.get(k) for k in ("q1_ns", "median_ns", "q3_ns")]
        if not all(isinstance(n, int | float) and n > 0 for n in nums):
            problems.append(f"{where}: median_ns, q1_ns, q3_ns must be positive numbers")
        elif not nums[0] <= nums[1] <= nums[2]:
            problems.append(f"{where}: not q1_ns <= median_ns <= q3_ns")
        for key in ("rounds", "iterations"):
            if not isinstance(case.get(key), int) or case[key] < 1:
                problems.append(f"{where}: '{key}' must be a positive integer")
    for case in data["cases"]:
        if isinstance(case, dict):
            base = case.get("baseline")
            if base is not None and base not in ids:
                problems.append(
                    f"case {case.get('id')}: baseline {base!r} is not a case of this file"
                )
    for i, mem in enumerate(data.get("memory", [])):
        keys = ("calls", "rss_before_kib", "rss_after_kib")
        if not isinstance(mem, dict) or not isinstance(mem.get("id"), str):
            problems.append(f"memory[{i}]: no id")
        elif not all(isinstance(mem.get(k), int) and mem[k] > 0 for k in keys):
            problems.append(f"memory {mem['id']}: {', '.join(keys)} must be positive integers")
    return problems


# ---------------------------------------------------------------- formatting


def ns(value: float) -> str:
    if value < 10:
        return f"{value:.2f} ns"
    if value < 1_000:
        return f"{value:.1f} ns" if value < 100 else f"{value:.0f} ns"
    if value < 1_000_000:
        return f"{value / 1e3:.2f} µs" if value < 1e4 else f"{value / 1e3:.1f} µs"
    return f"{value / 1e6:.2f} ms"


def spread(case: dict[str, Any]) -> str:
    return f"{ns(case['q1_ns'])} - {ns(case['q3_ns'])}"


def ratio(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}x"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: Iterable[list[str]], align: str) -> list[str]:
    """A markdown table; ``align`` has one of "l"/"r" per column."""
    seps = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(seps) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def cases_by_id(data: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not data:
        return {}
    return {c["id"]: c for c in data.get("cases", []) if isinstance(c, dict) and "id" in c}


# ---------------------------------------------------------------- the machine


def _run(*cmd: str) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> list[tuple[str, str]]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    os_name = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    commit = _run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD") or "?"
    if _run("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    return [
        ("CPU", cpu),
        ("cores", f"{os.cpu_count()} ({usable} usable by this process)"),
        ("memory", mem),
        ("kernel", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("OS", os_name),
        ("load average (1, 5, 15 min) when rendered", load),
        ("date", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", commit),
        ("rustc", _run("rustc", "--version") or "not found"),
    ]


# ---------------------------------------------------------------- sections


_WHY_RSS = (
    "growth after the first million that levels off in the next millions (the result "
    "file's notes give them) is the language runtime warming up, not a leak, which would "
    "grow with every million."
)


def section_targets(files: dict[str, Any]) -> list[str]:
    rows = []
    limits: list[tuple[str, str]] = []
    for t in TARGETS:
        cases = cases_by_id(files.get(t.file))
        if t.file not in files:
            rows.append([t.text, "—", "—", f"not run (no {t.file}.json)"])
            continue
        a, b = cases.get(t.case), cases.get(t.other)
        if a is None or b is None:
            missing = " and ".join(x for x, c in ((t.case, a), (t.other, b)) if c is None)
            rows.append([t.text, "—", "—", f"not measured ({missing} missing)"])
            continue
        r = a["median_ns"] / b["median_ns"]
        added = a["median_ns"] - b["median_ns"]
        figures = f"{t.case} {ns(a['median_ns'])} / {t.other} {ns(b['median_ns'])}"
        shown = f"+{ns(added)}" if t.op == "+<=" else ratio(r)
        if t.op is None:
            goal, verdict = "reported", "reported"
        else:
            goal = f"<= +{ns(t.limit)}" if t.op == "+<=" else f"{t.op} {t.limit:g}x"
            ok = {"<=": r <= t.limit, ">=": r >= t.limit, "+<=": added <= t.limit}[t.op]
            verdict = "**met**" if ok else "**not met**"
            if not ok and t.why:
                limits.append((t.text, t.why))
        rows.append([t.text, figures, f"{shown} (target {goal})", verdict])
    for name, data in files.items():
        for mem in data.get("memory", []):
            growth = (mem["rss_after_kib"] - mem["rss_before_kib"]) / mem["rss_before_kib"]
            ok = growth < RSS_GROWTH_MAX
            if not ok:
                limits.append((f"{name}: RSS growth", _WHY_RSS))
            rows.append(
                [
                    f"{name}: RSS growth over {mem['calls']:,} calls under {RSS_GROWTH_MAX:.0%}",
                    f"{mem['rss_before_kib']:,} → {mem['rss_after_kib']:,} KiB",
                    f"{growth:+.2%}",
                    "**met**" if ok else "**not met**",
                ]
            )
    out = [
        "## Targets",
        "",
        "From benchmarks/CASES.md; every ratio is of two figures of the same run.",
        "",
    ]
    out += table(["target", "figures (medians)", "ratio", "verdict"], rows, "llrl")
    if limits:
        grouped: dict[str, list[str]] = {}
        for text, why in limits:
            grouped.setdefault(why, []).append(text)
        out += ["", "What limits the targets not met (from the profiles in each README):", ""]
        out += [f"- {'; '.join(texts)}: {why}" for why, texts in grouped.items()]
    return out


def section_summary(files: dict[str, Any], titles: dict[str, str]) -> list[str]:
    cols = [
        ("floor", None),
        ("bare_call_64", "floor"),
        ("echo_raw_64", "floor"),
        ("echo_typed_64", "floor"),
        ("batch_echo_raw_64", "echo_raw_64"),
    ]
    rows = []
    for name in BINDINGS:
        data = files.get(name)
        if data is None:
            rows.append([titles[name]] + ["not run"] + [""] * (len(cols) - 1))
            continue
        cases = cases_by_id(data)
        row = [titles[name]]
        for case_id, base in cols:
            c = cases.get(case_id)
            if c is None:
                row.append("—")
            elif base and base in cases:
                row.append(
                    f"{ns(c['median_ns'])} ({ratio(c['median_ns'] / cases[base]['median_ns'])})"
                )
            else:
                row.append(ns(c["median_ns"]))
        rows.append(row)
    core = cases_by_id(files.get("rust-codecs")).get("core_echo_raw_64")
    out = [
        "## Echo 64 B across languages",
        "",
        "Medians; in brackets the ratio to the floor of the same language and run "
        "(the batch: to one raw call).",
    ]
    if core:
        out.append(
            f"The core's own share, Echo through `runtime::call_method` from Rust with no FFI: "
            f"{ns(core['median_ns'])} (`rust-codecs.json`, `core_echo_raw_64`)."
        )
    header = ["language", "floor", "bare `hms_call`", "raw Echo", "typed Echo", "batched, per call"]
    return out + [""] + table(header, rows, "lrrrrr")


def section_language(
    name: str, title: str, data: dict[str, Any] | None, error: str | None
) -> list[str]:
    out = [f"### {title}", ""]
    if error:
        return out + [f"`{name}.json` could not be used: {error}", ""]
    if data is None:
        return out + [f"Not run (no `benchmarks/out/{name}.json`).", ""]
    out.append(f"`{name}.json` — {data.get('language', '?')}: {data.get('version', '?')}")
    out.append("")
    out += [f"- {cell(n)}" for n in data.get("notes", [])]
    if data.get("notes"):
        out.append("")
    if name == "python-store":
        out += section_store(data)
    cases = cases_by_id(data)
    rows = []
    for c in data["cases"]:
        base = cases.get(c.get("baseline") or "")
        rows.append(
            [
                f"`{c['id']}`",
                c.get("label", ""),
                ns(c["median_ns"]),
                spread(c),
                f"`{base['id']}` {ns(base['median_ns'])}" if base else "—",
                ratio(c["median_ns"] / base["median_ns"]) if base else "",
                f"{c['rounds']} x {c['iterations']:,}",
            ]
        )
    header = [
        "id",
        "what",
        "median",
        "spread (q1 - q3)",
        "baseline",
        "ratio",
        "rounds x iterations",
    ]
    return out + table(header, rows, "llrrlrr") + [""]


def section_store(data: dict[str, Any]) -> list[str]:
    """python-store.json as throughput: every store's operations/s beside
    SQLite and one PostgreSQL runtime, and where the scaling stops."""
    cases = cases_by_id(data)

    def rate(case: dict[str, Any]) -> float:
        return 1e9 / float(case["median_ns"])

    rows = []
    for op, text in STORE_OPS:
        sqlite, one = cases.get(f"{op}_sqlite"), cases.get(f"{op}_pg_1rt")
        if sqlite:
            rows.append([text, "SQLite, 1 runtime", f"{rate(sqlite):,.0f}", "1.00x", "", ""])
        for n in STORE_RUNTIMES:
            c = cases.get(f"{op}_pg_{n}rt")
            if c is None:
                continue
            rows.append(
                [
                    text,
                    f"PostgreSQL, {n} runtime{'s' if n > 1 else ''}",
                    f"{rate(c):,.0f}",
                    ratio(rate(c) / rate(sqlite)) if sqlite else "—",
                    ratio(rate(c) / rate(one)) if one else "—",
                    f"{ns(c['q1_ns'])} - {ns(c['q3_ns'])}",
                ]
            )
    header = ["operation", "store", "operations/s", "x SQLite", "x 1 runtime", "spread per op"]
    out = table(header, rows, "llrrrr") + [""]
    stops = data.get("where_it_stops") or {}
    for op, text in STORE_OPS:
        stop = stops.get(op)
        if not isinstance(stop, dict):
            continue
        events = ", ".join(
            f"{e['event']} {e['share']:.0%}" for e in stop.get("wait_events", [])[:3]
        )
        one, most = cases.get(f"{op}_pg_1rt"), cases.get(f"{op}_pg_{stop.get('runtimes')}rt")
        scaling = f"{ratio(rate(most) / rate(one))} of 1 runtime; " if one and most else ""
        out.append(
            f"- Where it stops, {text} with {stop.get('runtimes')} runtimes: {scaling}"
            f"machine busy {stop.get('machine_busy', 0):.0%} of its cores (workers "
            f"{stop.get('worker_cpu_cores', 0):.2f} cores); connections in use wait on "
            f"{events or 'nothing sampled'}."
        )
    return out + [""]


def section_memory(files: dict[str, Any]) -> list[str]:
    rows = []
    for name, data in files.items():
        for mem in data.get("memory", []):
            before, after = mem["rss_before_kib"], mem["rss_after_kib"]
            rows.append(
                [
                    name,
                    f"`{mem['id']}`",
                    mem.get("label", ""),
                    f"{before:,} KiB",
                    f"{after:,} KiB",
                    f"{after - before:+,} KiB ({(after - before) / before:+.2%})",
                ]
            )
    out = [
        "## Memory",
        "",
        "Resident set size (VmRSS) before and after the calls, after a warm-up.",
        "",
    ]
    if not rows:
        return out + ["No memory case in this run.", ""]
    return out + table(["file", "id", "what", "before", "after", "growth"], rows, "llllrr") + [""]


def render(files: dict[str, Any], errors: dict[str, str], quick: bool) -> str:
    titles = dict(LANGUAGES)
    for name, data in files.items():
        titles.setdefault(name, data.get("language", name) if isinstance(data, dict) else name)
    usable = {n: d for n, d in files.items() if n not in errors}
    out = [
        "# Benchmark results",
        "",
        "Generated by `benchmarks/render.py` from `benchmarks/out/*.json`; run everything "
        "with `bash scripts/bench.sh`. How each figure is measured, and the case ids: "
        "`benchmarks/CASES.md`. Do not edit by hand.",
        "",
    ]
    if quick:
        out += [
            "> **Quick mode** (`HMS_BENCH_QUICK=1`): a smoke test with few, short rounds. "
            "These figures are not results.",
            "",
        ]
    out += ["## Machine", ""] + table(["machine", ""], [list(kv) for kv in machine()], "ll") + [""]
    version_rows = []
    for name, title in titles.items():
        data = usable.get(name)
        version_rows.append(
            [title, f"`{name}.json`", data.get("version", "?") if data else "not run"]
        )
    out += ["## Versions", ""] + table(["language", "file", "version"], version_rows, "lll") + [""]
    out += section_targets(usable) + [""]
    out += section_summary(usable, titles) + [""]
    out += ["## Per language", ""]
    for name, title in titles.items():
        out += section_language(name, title, usable.get(name), errors.get(name))
    out += section_memory(usable)
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------- commands


def check(out_dir: Path) -> int:
    files, errors = load(out_dir)
    for name, data in files.items():
        problems = validate(data)
        if problems:
            errors[name] = "; ".join(problems)
    for name, error in sorted(errors.items()):
        print(f"render.py: {name}.json: {error}", file=sys.stderr)
    known = {n for n, _ in LANGUAGES}
    for name in sorted(known - set(files) - set(errors)):
        print(f"render.py: {name}.json: not run")
    ok = sorted(set(files) - set(errors))
    names = ", ".join(ok) or "none"
    print(f"render.py: {len(ok)} valid result files ({names}), {len(errors)} invalid")
    return 1 if errors or not files else 0


def write(out_dir: Path, dest: Path, quick: bool) -> int:
    files, errors = load(out_dir)
    for name, data in files.items():
        problems = validate(data)
        if problems:
            errors[name] = "; ".join(problems)
    dest.write_text(render(files, errors, quick))
    for name, error in sorted(errors.items()):
        print(f"render.py: {name}.json left out: {error}", file=sys.stderr)
    used = sorted(set(files) - set(errors))
    print(f"render.py: wrote {dest} from {len(used)} result files ({', '.join(used) or 'none'})")
    return 1 if errors else 0


def self_test() -> int:
    """Renders made-up files (one language missing, one invalid) and checks
    what RESULTS.md says about them."""

    def case(id_: str, median: float, baseline: str | None = None) -> dict[str, Any]:
        return {
            "id": id_,
            "label": id_,
            "median_ns": median,
            "q1_ns": median * 0.95,
            "q3_ns": median * 1.1,
            "rounds": 15,
            "iterations": 1000,
            "baseline": baseline,
        }

    python = {
        "language": "Python",
        "version": "CPython 3.11.7",
        "notes": ["a note"],
        "cases": [
            case("floor", 80),
            case("echo_raw_64", 320, "floor"),
            case("pyo3_echo_64", 200),
            case("batch_echo_raw_64", 100, "echo_raw_64"),
            case("grpc_echo_64", 90_000, "echo_raw_64"),
        ],
        "memory": [
            {
                "id": "rss_1m_echo",
                "label": "x",
                "calls": 1_000_000,
                "rss_before_kib": 20_000,
                "rss_after_kib": 20_100,
            }
        ],
    }
    go = {"language": "Go", "version": "go1", "cases": [case("floor", 30, "nope")]}
    store = {
        "language": "Python: store throughput",
        "version": "CPython 3.11.7",
        "cases": [
            case("create_agent_sqlite", 1e6),
            case("create_agent_pg_1rt", 2e6, "create_agent_sqlite"),
            case("create_agent_pg_2rt", 1e6, "create_agent_pg_1rt"),
            case("create_agent_pg_4rt", 8e5, "create_agent_pg_1rt"),
        ],
        "where_it_stops": {
            "create_agent": {
                "runtimes": 4,
                "machine_busy": 0.97,
                "worker_cpu_cores": 1.2,
                "wait_events": [{"event": "LWLock:WALWrite (active)", "samples": 9, "share": 0.6}],
            }
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        (out_dir / "python.json").write_text(json.dumps(python))
        (out_dir / "go.json").write_text(json.dumps(go))
        (out_dir / "python-store.json").write_text(json.dumps(store))
        (out_dir / "php.json").write_text("{not json")
        dest = out_dir / "RESULTS.md"
        rc = write(out_dir, dest, quick=True)
        text = dest.read_text()
    expect = [
        (rc == 1, "invalid files make the exit status 1"),
        (
            "| Python raw Echo 64 B, x floor | echo_raw_64 320 ns / floor 80.0 ns "
            "| 4.00x (target <= 5x) | **met** |" in text,
            "5x target met",
        ),
        (
            "| Python raw Echo 64 B, x PyO3 | echo_raw_64 320 ns / pyo3_echo_64 200 ns "
            "| 1.60x (target <= 2x) | **met** |" in text,
            "PyO3 target",
        ),
        (
            "| python: batched Echo per call | batch_echo_raw_64 100 ns / echo_raw_64 320 ns "
            "| 0.31x (target <= 0.25x) | **not met** |" in text,
            "batch target not met",
        ),
        (
            "| gRPC Echo 64 B, x raw Echo | grpc_echo_64 90.0 µs / echo_raw_64 320 ns "
            "| 281x (target >= 100x) | **met** |" in text,
            "gRPC target",
        ),
        ("not run (no ruby-fiddle.json)" in text, "missing language in targets"),
        ("Not run (no `benchmarks/out/ruby-ffi.json`)." in text, "missing language section"),
        ("baseline 'nope' is not a case of this file" in text, "invalid go.json reported"),
        ("`php.json` could not be used: unreadable" in text, "unreadable php.json reported"),
        (
            "| `echo_raw_64` | echo_raw_64 | 320 ns | 304 ns - 352 ns | `floor` 80.0 ns "
            "| 4.00x | 15 x 1,000 |" in text,
            "language row",
        ),
        ("| +0.50% | **met** |" in text, "RSS target"),
        ("+100 KiB (+0.50%)" in text, "memory growth"),
        ("**Quick mode**" in text, "quick banner"),
        (
            "| CreateAgent | PostgreSQL, 4 runtimes | 1,250 | 1.25x | 2.50x |" in text,
            "store throughput row",
        ),
        (
            "- Where it stops, CreateAgent with 4 runtimes: 2.50x of 1 runtime; machine busy "
            "97% of its cores (workers 1.20 cores); connections in use wait on "
            "LWLock:WALWrite (active) 60%." in text,
            "store: where it stops",
        ),
    ]
    failed = [what for ok, what in expect if not ok]
    for what in failed:
        print(f"render.py self-test: FAILED: {what}", file=sys.stderr)
    print(f"self-test: {len(expect) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=HERE / "out")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="validate the result files only")
    group.add_argument("--self-test", action="store_true", help="render made-up files and check")
    args = parser.parse_args(argv)
    if args.self_test:
        return self_test()
    if args.check:
        return check(args.out_dir)
    return write(args.out_dir, args.results, os.environ.get("HMS_BENCH_QUICK") == "1")


if __name__ == "__main__":
    sys.exit(main())
