#!/usr/bin/env python3
"""Cross-language remote calls, one OS process per language, over a real
nats-server started here on a free loopback port (tests/remote/README.md).

    python3 tests/remote/run.py

1. builds the C and Go programs against rust_core/target/release;
2. a Python process exports remote.v1.Greeter (HMS_SERVICE_EXPORT), and
   callers in Go, PHP, Ruby and C, each its own process and runtime, call it;
3. a Go process exports the same service, and a Python process calls it;
4. a PHP and a Ruby process export it in turn (caller-thread services served
   by their own thread, hms_serve), and callers in Python, C, Go and the
   other of the two call them.

The shared conformance scenarios run with their services in another process
in every language too: scripts/conformance.sh --remote.

Every process and the server are stopped on the way out, failure or not.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from nats_server import started  # noqa: E402
from programs import LIBRARY, build_go, environment  # noqa: E402

#: Longest a server may take to say "ready", and a caller to finish.
READY_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 120.0


def say(text: str) -> None:
    print(f"remote: {text}", flush=True)


def build(scratch: Path, env: dict[str, str]) -> dict[str, list[str]]:
    """The command line of each program, built into ``scratch``."""
    if not LIBRARY.is_file():
        raise SystemExit(f"remote: {LIBRARY} is missing: cargo build --release in rust_core")
    c_caller = scratch / "c-call"
    # The program asks for the library's soname, which the cargo build does
    # not lay out: a folder with both names stands in for an installed one.
    libdir = scratch / "lib"
    libdir.mkdir()
    for name in ("libhms_ffi.so", "libhms_ffi.so.1"):
        (libdir / name).symlink_to(LIBRARY.resolve())
    say("building the C caller (gcc)")
    subprocess.run(
        [
            "gcc",
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-I{ROOT / 'include'}",
            str(HERE / "c" / "call.c"),
            "-o",
            str(c_caller),
            f"-L{libdir}",
            f"-Wl,-rpath,{libdir}",
            "-lhms_ffi",
        ],
        check=True,
    )
    go_program = scratch / "go-greeter"
    say("building the Go greeter (go build, the binding linked by cgo-env.sh)")
    build_go(HERE / "go", go_program, env)
    python = [sys.executable, str(HERE / "python" / "greeter.py")]
    return {
        "python serve": [*python, "serve"],
        "python call": [*python, "call"],
        "go serve": [str(go_program), "serve"],
        "go call": [str(go_program), "call"],
        "php serve": ["php", str(HERE / "php" / "serve.php")],
        "php call": ["php", str(HERE / "php" / "call.php")],
        "ruby serve": ["ruby", "-w", str(HERE / "ruby" / "serve.rb")],
        "ruby call": ["ruby", str(HERE / "ruby" / "call.rb")],
        "c call": [str(c_caller)],
    }


class Server:
    """A greeter process serving until its stdin closes (or it is killed)."""

    def __init__(self, command: list[str], url: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [*command, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        line = ""
        while time.monotonic() < deadline and self.process.poll() is None:
            line = self.process.stdout.readline().strip()
            if line == "ready":
                return
        self.stop()
        raise SystemExit(f"remote: {command[0]} did not get ready (last output: {line!r})")

    def stop(self) -> bool:
        """Closes stdin; whether the server then ended by itself (else it is
        killed)."""
        stopped = True
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                stopped = False
        self.process.wait()
        return stopped


def run_callers(
    programs: dict[str, list[str]],
    callers: list[str],
    url: str,
    server: str,
    env: dict[str, str],
) -> list[str]:
    failed = []
    for name in callers:
        started = time.monotonic()
        try:
            result = subprocess.run(
                [*programs[name], url, server],
                env=env,
                text=True,
                capture_output=True,
                check=False,
                timeout=CALL_TIMEOUT_S,
            )
            ok = result.returncode == 0
            output = (result.stdout + result.stderr).strip()
        except subprocess.TimeoutExpired:
            ok, output = False, f"no answer within {CALL_TIMEOUT_S} s"
        took = time.monotonic() - started
        say(f"  {'ok  ' if ok else 'FAIL'} {name} -> {server} ({took:.1f} s): {output}")
        if not ok:
            failed.append(f"{name} -> {server}")
    return failed


def main() -> int:
    # A SIGTERM (a CI timeout, say) unwinds like an error, so the servers
    # and nats-server are still stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = environment()
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        programs = build(Path(scratch), env)
        with started() as nats:
            say(f"nats-server on {nats.url}")
            for exporter, callers in [
                ("python", ["go call", "php call", "ruby call", "c call"]),
                ("go", ["python call"]),
                ("php", ["python call", "c call", "go call", "ruby call"]),
                ("ruby", ["python call", "c call", "go call", "php call"]),
            ]:
                say(f"{exporter} server; callers: {', '.join(callers)}")
                server = Server(programs[f"{exporter} serve"], nats.url, env)
                try:
                    failed += run_callers(programs, callers, nats.url, f"{exporter}-server", env)
                finally:
                    if not server.stop():
                        say(f"  FAIL {exporter} server did not stop when its stdin closed")
                        failed.append(f"{exporter} server stopping")
    if failed:
        say(f"FAILED: {', '.join(failed)}")
        return 1
    say("every caller got the same answers and errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
