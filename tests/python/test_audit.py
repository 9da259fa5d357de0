"""``hms audit verify`` and ``hms audit tail`` on logs a runtime wrote, and
failing closed (or open) when a call's record cannot be written."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import ECHO

from hms_cffi import Runtime, UnauthenticatedError
from hms_cffi.tokens import new_token, token_line

HMS = [sys.executable, "-m", "hms_cffi.cli"]
WRONG = {"credentials": {"scheme": "api-key", "token": "hms_not_a_known_token_0000"}}


def hms(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HMS, *args], capture_output=True, text=True, timeout=60, check=False)


def config(tmp_path: Path, **audit: Any) -> dict[str, Any]:
    tokens = tmp_path / "tokens"
    tokens.write_text(token_line("alice", ["ops"], new_token()) + "\n")
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    return {
        "data_dir": str(data_dir),
        "security": {"api_tokens_file": str(tokens), "audit": audit},
    }


def write_log(tmp_path: Path, failures: int, **audit: Any) -> Path:
    """A log of the start record and `failures` authentication failures."""
    with Runtime(config(tmp_path, **audit)) as rt:
        for _ in range(failures):
            with pytest.raises(UnauthenticatedError):
                rt.call(ECHO, {"text": "x"}, options=WRONG)
    return tmp_path / "data" / "audit.log"


def test_verify_names_the_first_broken_record_and_how(tmp_path: Path) -> None:
    log = write_log(tmp_path, 4)
    intact = log.read_text().splitlines()
    done = hms("audit", "verify", str(log))
    assert done.returncode == 0, done.stderr
    assert "intact, 5 records" in done.stdout

    def broken(lines: list[str], end: str = "\n") -> str:
        log.write_text("\n".join(lines) + end)
        done = hms("audit", "verify", str(log))
        assert done.returncode == 3, done
        return done.stderr

    edited = list(intact)
    edited[2] = edited[2].replace('"deny"', '"allow"')
    assert "broken at record 3 (line 3): edited" in broken(edited)
    assert "broken at record 3 (line 3): removed" in broken(intact[:2] + intact[3:])
    swapped = intact[:2] + [intact[3], intact[2]] + intact[4:]
    assert "broken at record 3 (line 3): reordered" in broken(swapped)
    cut = intact[:2] + [intact[2][:40]] + intact[3:]
    assert "broken at record 3 (line 3): truncated" in broken(cut)
    assert "broken at record 5 (line 5): truncated" in broken(intact[:4] + [intact[4][:-2]], end="")


def test_verify_with_the_hmac_key(tmp_path: Path) -> None:
    key = tmp_path / "audit.key"
    key.write_bytes(bytes(range(32)))
    log = write_log(tmp_path, 2, hmac_key_file=str(key))
    done = hms("audit", "verify", str(log), "--hmac-key-file", str(key))
    assert done.returncode == 0, done.stderr
    assert "intact, 3 records" in done.stdout
    done = hms("audit", "verify", str(log))
    assert done.returncode == 3
    assert "broken at record 1 (line 1): edited" in done.stderr


def test_verify_of_a_missing_log_fails_with_a_status(tmp_path: Path) -> None:
    done = hms("audit", "verify", str(tmp_path / "nothing.log"))
    assert done.returncode == 1
    status = json.loads(done.stderr)
    assert status["status"] == "UNAVAILABLE"
    assert "nothing.log" in status["message"]


def test_tail_prints_and_follows_records(tmp_path: Path) -> None:
    log = write_log(tmp_path, 2)
    done = hms("audit", "tail", str(log))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == log.read_text().splitlines()

    with Runtime(config(tmp_path)) as rt:
        follow = subprocess.Popen(
            [*HMS, "audit", "tail", "-f", str(log)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert follow.stdout is not None
            seen = [json.loads(follow.stdout.readline()) for _ in range(4)]
            assert [r["seq"] for r in seen] == [1, 2, 3, 4]
            with pytest.raises(UnauthenticatedError):
                rt.call(ECHO, {"text": "x"}, options={**WRONG, "trace_id": "followed"})
            appended = json.loads(follow.stdout.readline())
            assert appended["seq"] == 5
            assert appended["kind"] == "authentication_failure"
            assert appended["trace_id"] == "followed"
        finally:
            follow.kill()
            follow.wait()


# A child that opens a runtime, then lets no file grow past its present size
# (RLIMIT_FSIZE binds root too): the next audit record fails to be written.
CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from hms_cffi import Runtime, HmsError
    config = json.loads(sys.argv[1])
    with Runtime(config) as rt:
        size = (__import__("pathlib").Path(config["data_dir"]) / "audit.log").stat().st_size
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        try:
            rt.call("hms.sys.v1.System/Echo", {"text": "x"}, options=json.loads(sys.argv[2]))
        except HmsError as exc:
            print(json.dumps({"error": type(exc).__name__, "message": exc.message}))
    """
)


@pytest.mark.parametrize(
    ("fail_open", "expected"), [(False, "UnavailableError"), (True, "UnauthenticatedError")]
)
def test_a_record_that_cannot_be_written_fails_the_call_closed_or_open(
    tmp_path: Path, fail_open: bool, expected: str
) -> None:
    cfg = config(tmp_path, fail_open=fail_open)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg), json.dumps(WRONG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome = json.loads(done.stdout)
    assert outcome["error"] == expected, outcome
    if not fail_open:
        assert "audit.log" in outcome["message"]
        assert "File too large" in outcome["message"]
