"""A worker process for the remote tests: exports the host service
``faults.v1.Work`` over NATS until SIGTERM or SIGINT, then closes its
runtime (in-flight calls finish). It writes the id of each call it
answers to IDS_FILE, one a line, as it goes (its memory stays flat).

    python remote_worker.py NATS_URL NAME IDS_FILE

Prints ``ready`` once the service is exported, ``stopped`` after closing.
Methods (dicts in, dicts out):

- ``Echo {"id"}``: ``{"id", "worker"}``, the id recorded;
- ``Sleep {"id", "ms"}``: the same after ``ms`` milliseconds;
- ``Hang {}``: never answers while the worker runs;
- ``Big {"n"}``: ``{"blob": "x" * n}``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hms_cffi import Runtime

SERVICE = "faults.v1.Work"


def main(url: str, name: str, ids_file: str) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    lock = threading.Lock()
    answered = open(ids_file, "w")  # noqa: SIM115  # closed after the runtime

    def echo(request: dict[str, Any]) -> dict[str, Any]:
        with lock:
            answered.write(request["id"] + "\n")
        return {"id": request["id"], "worker": name}

    def sleep(request: dict[str, Any]) -> dict[str, Any]:
        time.sleep(request["ms"] / 1000)
        return echo(request)

    def hang(request: dict[str, Any]) -> dict[str, Any]:
        stop.wait()
        return {}

    def big(request: dict[str, Any]) -> dict[str, Any]:
        return {"blob": "x" * request["n"]}

    config = {"name": name, "nats": {"servers": [url], "export_services": [SERVICE]}}
    with Runtime(config) as rt:
        rt.register_service(SERVICE, {"Echo": echo, "Sleep": sleep, "Hang": hang, "Big": big})
        print("ready", flush=True)
        while not stop.wait(0.2):
            pass
    answered.close()
    print("stopped", flush=True)
    return 0


class Worker:
    """One worker process, seen from the test that started it."""

    def __init__(self, url: str, name: str, folder: Path) -> None:
        self.name = name
        self.ids_file = folder / f"{name}.ids"
        self.process = subprocess.Popen(
            [sys.executable, __file__, url, name, str(self.ids_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise RuntimeError(f"worker {name} did not start (said {line!r})")

    def rss_kib(self) -> int:
        """The process's resident set size now."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self, timeout: float = 20) -> list[str]:
        """SIGTERM, then the ids it answered; it must exit 0."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, f"worker {self.name} exited {self.process.returncode}"
        assert out.strip() == "stopped"
        return self.ids_file.read_text().splitlines()

    def kill(self) -> None:
        """``kill -9``: no shutdown at all."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        if self.process.stdout:
            self.process.stdout.close()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
