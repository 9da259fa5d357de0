"""Authorization seen from Python: the shared decision table
(tests/security/decisions.json) against the starter policies, and a denial
raised as PermissionDeniedError naming the principal, the method and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import ECHO

from hms_cffi import HmsError, PermissionDeniedError, Runtime
from hms_cffi.tokens import token_line

ROOT = Path(__file__).resolve().parents[2]
TABLE: dict[str, Any] = json.loads((ROOT / "tests/security/decisions.json").read_text())


def options_of(principal: str) -> dict[str, Any] | None:
    token = TABLE["principals"][principal]["token"]
    return {"credentials": {"scheme": "api-key", "token": token}} if token else None


@pytest.fixture
def guarded(tmp_path: Path) -> Runtime:
    lines = [
        token_line(name, p["roles"], p["token"])
        for name, p in TABLE["principals"].items()
        if p["in_token_file"]
    ]
    tokens = tmp_path / "tokens"
    tokens.write_text("\n".join(lines) + "\n")
    policies = str(ROOT / TABLE["policies"])
    config = {
        "security": {
            "api_tokens_file": str(tokens),
            "authorization": {"policy_files": [policies]},
        }
    }
    return Runtime(config)


def substitute(text: str, saved: dict[str, str]) -> str:
    for name, value in saved.items():
        text = text.replace("${" + name + "}", value)
    return text


def test_the_decision_table_holds(guarded: Runtime) -> None:
    saved: dict[str, str] = {}
    wrong = []
    with guarded:
        for step in TABLE["setup"]:
            request = json.loads(substitute(step["request"], saved))
            answer = guarded.call(step["method"], request, options=options_of(step["principal"]))
            for name, field in step["save"].items():
                saved[name] = answer[field]
        for case in TABLE["cases"]:
            request = json.loads(substitute(case["request"], saved))
            try:
                guarded.call(case["method"], request, options=options_of(case["principal"]))
                got = "OK"
            except HmsError as error:
                got = getattr(error.code, "name", str(error.code))
            if got != case["expect"]:
                wrong.append((case["id"], case["expect"], got))
    assert wrong == []


def test_a_denial_is_a_permission_denied_error(guarded: Runtime) -> None:
    with guarded, pytest.raises(PermissionDeniedError) as caught:
        guarded.call(ECHO, {"text": "a request body"}, options=options_of("nobody"))
    error = caught.value
    assert 'Hms::User::"nobody"' in error.message
    assert ECHO in error.message
    assert error.details["reason"] == "no_permit"
    assert "a request body" not in str(error)
    assert TABLE["principals"]["nobody"]["token"] not in repr(error)
