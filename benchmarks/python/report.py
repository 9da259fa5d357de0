#!/usr/bin/env python3
"""Markdown table of a pytest-benchmark JSON file, with ratios to the floor
(test_floor_abi_version) and the targets of benchmarks/README.md.

Usage: python benchmarks/python/report.py bench.json
"""

from __future__ import annotations

import json
import sys

TARGETS = {"test_raw_echo[64B]": 8.0, "test_typed_echo[64B]": 20.0}


def main(path: str) -> int:
    data = json.loads(open(path).read())  # noqa: SIM115
    rows = {b["name"]: b["stats"] for b in data["benchmarks"]}
    floor = rows["test_floor_abi_version"]["median"]
    print("| benchmark | median | mean | ops/s | x floor | target |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, stats in rows.items():
        ratio = stats["median"] / floor
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"<= {target:g}x: {'met' if ratio <= target else 'NOT met'}"
        print(
            f"| {name} | {stats['median'] * 1e9:,.0f} ns | {stats['mean'] * 1e9:,.0f} ns "
            f"| {stats['ops']:,.0f} | {ratio:.1f} | {verdict} |"
        )
    machine = data.get("machine_info", {})
    print()
    print(
        f"Python {machine.get('python_version')}, {machine.get('cpu', {}).get('brand_raw', '?')}, "
        f"pytest-benchmark {data.get('version')}, medians."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
