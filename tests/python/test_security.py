"""Authentication seen from Python: a bad token raises UnauthenticatedError
and never shows in it; the token-file line ``hms token hash`` prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ECHO

from hms_cffi import Runtime, UnauthenticatedError
from hms_cffi.tokens import new_token, token_line

TOKEN = new_token()


@pytest.fixture
def secured(tmp_path: Path) -> Runtime:
    tokens = tmp_path / "tokens"
    tokens.write_text(token_line("alice", ["admin"], TOKEN) + "\n")
    config = {"security": {"require_authentication": True, "api_tokens_file": str(tokens)}}
    return Runtime(config)


def test_a_good_token_is_accepted(secured: Runtime) -> None:
    with secured:
        options = {"credentials": {"scheme": "api-key", "token": TOKEN}}
        assert secured.call(ECHO, {"text": "hi"}, options=options)["text"] == "hi"


@pytest.mark.parametrize("token", ["", "wrong-token", TOKEN[:-3]])
def test_a_bad_or_missing_token_raises_unauthenticated(secured: Runtime, token: str) -> None:
    options = {"credentials": {"token": token, "principal": "alice"}}
    with secured, pytest.raises(UnauthenticatedError) as caught:
        secured.call(ECHO, {"text": "hi"}, options=options)
    assert caught.value.details["reason"] == ("missing" if not token else "unknown_token")
    if token:
        assert token not in str(caught.value)
        assert token not in repr(caught.value)


def test_token_lines_refuse_bad_fields() -> None:
    with pytest.raises(ValueError, match="principal"):
        token_line("two words", [], TOKEN)
    with pytest.raises(ValueError, match="role"):
        token_line("alice", ["a,b"], TOKEN)
    with pytest.raises(ValueError, match="empty"):
        token_line("alice", [], "")
    with pytest.raises(ValueError, match="salt"):
        token_line("alice", [], TOKEN, salt=b"short")


def test_hms_token_hash_prints_a_line_the_core_accepts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hms_cffi.cli", "token", "hash", "bob", "--roles", "ops,read"],
        input=TOKEN + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    line = done.stdout.strip()
    assert line.startswith("bob ops,read sha256:")
    assert TOKEN not in done.stdout + done.stderr
    tokens = tmp_path / "tokens"
    tokens.write_text(line + "\n")
    config = {"security": {"require_authentication": True, "api_tokens_file": str(tokens)}}
    with Runtime(config) as rt:
        options = {"credentials": {"token": TOKEN}}
        assert rt.call(ECHO, {"text": "ok"}, options=options)["text"] == "ok"
    generated = subprocess.run(
        [sys.executable, "-m", "hms_cffi.cli", "token", "hash", "carol", "--new"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert generated.stdout.startswith("carol - sha256:")
    assert "hms_" in generated.stderr
