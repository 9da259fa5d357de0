"""scripts/postgres.sh and the ``postgres_server`` fixture: databases of
their own, data kept across a restart, passwords enforced, an unprivileged
server on loopback only, stopped (and deleted) when its watched process
exits, and errors that say what to do."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import EXIT_NOT_INSTALLED, SCRIPT, PostgresServer, psql, started

#: Longest wait for the watchdog to notice its process is gone.
WATCHDOG_WAIT = 30.0


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@pytest.fixture
def folder() -> Iterator[Path]:
    """An empty folder under the system's temporary folder, which the server
    user can reach (pytest's tmp_path, under a 0700 folder, it cannot)."""
    path = Path(tempfile.mkdtemp(prefix="hms-postgres-test-"))
    yield path
    script("stop", str(path))
    shutil.rmtree(path, ignore_errors=True)


def refused(url: str) -> str:
    """psql's error for ``url``, failing the test if it connects."""
    with pytest.raises(subprocess.CalledProcessError) as failure:
        psql(url, "SELECT 1")
    return str(failure.value.stderr)


def server_uid(data: Path) -> int:
    """The user id of the server running the cluster in ``data``."""
    pid = (data / "postmaster.pid").read_text().split()[0]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for process {pid}")


def test_fresh_databases_are_distinct_and_usable(postgres_server: PostgresServer) -> None:
    first = postgres_server.fresh_database()
    second = postgres_server.fresh_database()
    assert first.name != second.name

    psql(
        first.url,
        "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'first')",
    )
    assert psql(first.url, "SELECT body, current_database() FROM notes") == f"first|{first.name}"
    assert psql(second.url, "SELECT current_database()") == second.name
    with pytest.raises(subprocess.CalledProcessError) as missing:
        psql(second.url, "SELECT * FROM notes")
    assert 'relation "notes" does not exist' in missing.value.stderr


def test_a_wrong_password_is_refused(postgres_server: PostgresServer) -> None:
    error = refused(postgres_server.url("postgres", password="wrong"))
    assert "password authentication failed" in error
    assert psql(postgres_server.admin_url, "SELECT current_user") == "hms"


def test_the_server_is_loopback_only_durable_and_unprivileged(
    postgres_server: PostgresServer,
) -> None:
    settings = psql(
        postgres_server.admin_url,
        "SELECT current_setting('listen_addresses'), current_setting('unix_socket_directories'),"
        " current_setting('fsync')",
    )
    assert settings == "127.0.0.1||on"
    assert server_uid(postgres_server.folder / "data") != 0


def test_stop_and_start_keep_the_data_and_the_port() -> None:
    with started() as server:
        database = server.fresh_database()
        psql(
            database.url,
            "CREATE TABLE kept (n int); INSERT INTO kept SELECT generate_series(1, 50)",
        )
        url = server.admin_url

        server.stop()
        assert "refused" in refused(database.url)
        server.stop()  # stopping a stopped server is fine

        server.start()
        assert server.admin_url == url
        assert psql(database.url, "SELECT count(*) FROM kept") == "50"


def test_the_server_stops_and_is_deleted_when_its_watched_process_exits(folder: Path) -> None:
    watched = subprocess.Popen(["sleep", "600"])
    try:
        started_ = script("start", "--watch", str(watched.pid), "--discard", str(folder))
        assert started_.returncode == 0, started_.stderr
        url = started_.stdout.strip()
        assert psql(url, "SELECT 1") == "1"
    finally:
        watched.kill()
        watched.wait()
    until = time.monotonic() + WATCHDOG_WAIT
    while folder.exists() and time.monotonic() < until:
        time.sleep(0.1)
    assert not folder.exists(), "the watchdog deleted the folder"
    refused(url)


def test_a_second_start_of_a_running_server_is_refused(postgres_server: PostgresServer) -> None:
    again = script("start", str(postgres_server.folder))
    assert again.returncode == 1
    assert "already runs" in again.stderr
    assert "postgres.sh url" in again.stderr
    assert script("url", str(postgres_server.folder)).stdout.strip() == postgres_server.admin_url


def test_missing_postgresql_names_the_setup_script(folder: Path, tmp_path: Path) -> None:
    done = script("start", str(folder), env={**os.environ, "HMS_POSTGRES_BINDIR": str(tmp_path)})
    assert done.returncode == EXIT_NOT_INSTALLED
    assert "PostgreSQL is not installed" in done.stderr
    assert "bash scripts/setup.sh" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no command given"),
        (("frobnicate",), "unknown command 'frobnicate'"),
        (("start",), "start needs a folder"),
        (("start", "--verbose", "x"), "unknown option '--verbose'"),
        (("start", "--discard", "x"), "--discard needs --watch PID"),
        (("start", "--watch", "me", "x"), "--watch takes a process id"),
        (("start", "a", "b"), "start takes one folder"),
        (("stop",), "stop takes one folder"),
    ],
)
def test_bad_usage_says_what_to_do(args: tuple[str, ...], message: str) -> None:
    done = script(*args)
    assert done.returncode == 1
    assert message in done.stderr


def test_watching_a_process_that_is_gone_starts_nothing(folder: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    done = script("start", "--watch", str(gone.pid), str(folder / "server"))
    assert done.returncode == 1
    assert f"--watch {gone.pid}: no such process" in done.stderr
    assert not (folder / "server").exists()


def test_a_folder_without_a_server_is_named(folder: Path) -> None:
    for command in ("stop", "url"):
        done = script(command, str(folder))
        assert done.returncode == 1
        assert f"{folder} holds no server of this script" in done.stderr


def test_help_describes_the_commands() -> None:
    done = script("--help")
    assert done.returncode == 0
    for command in ("start", "stop", "url", "--watch PID", "--discard"):
        assert command in done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the folder to another user")
def test_as_root_a_folder_the_server_user_cannot_reach_is_refused(folder: Path) -> None:
    folder.chmod(0o700)  # root's, and closed to others
    done = script("start", str(folder / "inside"))
    assert done.returncode == 1
    assert "hms-postgres cannot reach" in done.stderr
    assert "chmod o+x" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user, the whole suite is this case")
def test_an_ordinary_user_runs_the_script_too(folder: Path) -> None:
    # CI runs as root: run the script as `nobody` as well, from a copy it can
    # read wherever the checkout is.
    nobody = pwd.getpwnam("nobody")
    shutil.copy2(SCRIPT, folder / "postgres.sh")
    data = folder / "server"
    data.mkdir()
    os.chown(data, nobody.pw_uid, nobody.pw_gid)
    folder.chmod(0o755)

    def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "nobody", "--", "bash", str(folder / "postgres.sh"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd="/",
        )

    started_ = as_nobody("start", "--watch", str(os.getpid()), str(data))
    assert started_.returncode == 0, started_.stderr
    try:
        url = started_.stdout.strip()
        assert psql(url, "SELECT current_user") == "hms"
        assert server_uid(data / "data") == nobody.pw_uid
    finally:
        stopped = as_nobody("stop", str(data))
    assert stopped.returncode == 0, stopped.stderr
    refused(url)
