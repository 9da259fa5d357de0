"""A real PostgreSQL server for the tests, made by ``scripts/postgres.sh``: a
cluster in a temporary folder, on a free loopback port, password
authentication, run as an unprivileged user when the tests run as root.

Used through the ``postgres_server`` fixture of conftest.py (one server for
the session; each test takes a :meth:`PostgresServer.fresh_database`), or
with :func:`started` by a test that stops and starts a server of its own.
Other languages' test drivers put tests/python on ``sys.path`` and import it
the same way. Queries go through ``psql``: no Python driver is needed.

The server is started with ``--watch <this process> --discard``: if this
Python process dies without stopping it, the server stops and its folder is
deleted all the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["EXIT_NOT_INSTALLED", "SCRIPT", "Database", "PostgresServer", "psql", "started"]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"
#: The script's exit status when PostgreSQL is not installed.
EXIT_NOT_INSTALLED = 3
_INSTALL_HINT = "run `bash scripts/setup.sh` (as root it installs the Debian package postgresql)"

_names = itertools.count()


def _script(*args: str) -> str:
    """Runs scripts/postgres.sh; its output, or an error that says why."""
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode == EXIT_NOT_INSTALLED:
        raise RuntimeError(f"PostgreSQL is not installed: {_INSTALL_HINT}\n{done.stderr}")
    if done.returncode != 0:
        raise RuntimeError(f"scripts/postgres.sh {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip()


def _psql_binary() -> str:
    found = Path(_script("bindir")) / "psql"
    if found.exists():
        return str(found)
    on_path = shutil.which("psql")
    if on_path is None:
        raise RuntimeError(f"psql is not installed: {_INSTALL_HINT}")
    return on_path


def psql(url: str, sql: str) -> str:
    """Runs ``sql`` on the database of ``url``; the rows, one a line, columns
    separated by ``|``. Raises CalledProcessError (with psql's stderr) when
    psql fails."""
    done = subprocess.run(
        [_psql_binary(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@dataclasses.dataclass(frozen=True)
class Database:
    """A database of its own for one test."""

    name: str
    url: str


class PostgresServer:
    """The server in ``folder``; :meth:`stop` and :meth:`start` keep its port,
    its password and its data."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.admin_url = ""

    def start(self) -> None:
        """Starts the server (initializing the folder the first time)."""
        self.admin_url = _script(
            "start", "--watch", str(os.getpid()), "--discard", str(self.folder)
        )

    def stop(self) -> None:
        """Fast shutdown: open connections are closed."""
        _script("stop", str(self.folder))

    def url(self, database: str, password: str | None = None) -> str:
        """The URL of ``database``, with the server's password or ``password``."""
        server, _, _ = self.admin_url.rpartition("/")
        if password is not None:
            credentials, _, host = server.rpartition("@")
            user = credentials.rpartition(":")[0]
            server = f"{user}:{password}@{host}"
        return f"{server}/{database}"

    def store_config(self, database: Database) -> dict[str, dict[str, str]]:
        """``RuntimeConfig.store`` (as a dict) for ``database``: its URL
        without the password, which the core refuses there, and the
        server's password file."""
        credentials, _, host = database.url.rpartition("@")
        user = credentials.removeprefix("postgres://").partition(":")[0]
        return {
            "postgres": {
                "url": f"postgres://{user}@{host}",
                "password_file": str(self.folder / "password"),
            }
        }

    def fresh_database(self) -> Database:
        """A new, empty database, named uniquely in this process."""
        name = f"hms_test_{os.getpid()}_{next(_names)}"
        psql(self.admin_url, f"CREATE DATABASE {name}")
        return Database(name=name, url=self.url(name))


@contextlib.contextmanager
def started() -> Iterator[PostgresServer]:
    """A running server in a new temporary folder, stopped and deleted when
    the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="hms-postgres-"))
    server = PostgresServer(folder)
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
