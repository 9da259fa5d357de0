"""A real ``nats-server`` for the tests: started on free loopback ports, with
its monitoring endpoint, stopped (or restarted on the same port) on demand.

Used through the ``nats_server`` fixture of conftest.py; tests that need a
server of their own (one they restart) make one with :func:`started`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

__all__ = ["NatsServer", "free_port", "started"]

#: Where Debian installs it; PATH is looked at first.
_DEBIAN_PATH = "/usr/sbin/nats-server"
_INSTALL_HINT = "apt-get install nats-server (or add it to PATH)"


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _binary() -> str:
    found = shutil.which("nats-server") or (
        _DEBIAN_PATH if os.access(_DEBIAN_PATH, os.X_OK) else None
    )
    if found is None:
        raise RuntimeError(f"nats-server is not installed: {_INSTALL_HINT}")
    return found


class NatsServer:
    """One nats-server process on ``port`` (clients) and ``monitor_port``
    (HTTP monitoring). :meth:`stop` and :meth:`start` keep both ports, so a
    restart is the same server to its clients."""

    def __init__(self) -> None:
        self.binary = _binary()
        self.port = free_port()
        self.monitor_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [
                self.binary,
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-m",
                str(self.monitor_port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                self.process = None
                raise RuntimeError(f"nats-server exited at start: {err.strip()}")
            with contextlib.suppress(OSError):
                self.monitor("healthz")
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nats-server did not become ready on port {self.port}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def monitor(self, endpoint: str) -> Any:
        """The JSON of a monitoring endpoint, e.g. ``subsz`` or ``connz?subs=1``."""
        address = f"http://127.0.0.1:{self.monitor_port}/{endpoint}"
        with urllib.request.urlopen(address, timeout=5) as answer:
            return json.loads(answer.read())

    def subscriptions(self) -> int:
        """Subscriptions the server holds for all its clients now."""
        return int(self.monitor("subsz")["num_subscriptions"])


@contextlib.contextmanager
def started() -> Iterator[NatsServer]:
    """A running server, stopped when the block ends."""
    server = NatsServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
