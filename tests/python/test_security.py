"""Authentication seen from Python: a bad token raises UnauthenticatedError
and never shows in it; the runtime's default credentials and a call's own
reach the handler's CallContext; Credentials never show their token; the
token-file line ``hms token hash`` prints."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ECHO
from nats_server import NatsServer

from hms_cffi import (
    CallContext,
    Credentials,
    Format,
    PermissionDeniedError,
    Runtime,
    UnauthenticatedError,
)
from hms_cffi.proto.hms.sys.v1 import system_pb2
from hms_cffi.proto.hms.v1 import options_pb2
from hms_cffi.tokens import new_token, token_line

TOKEN = new_token()
OPS_TOKEN = new_token()
WHOAMI = "creds.v1.Who/Am"


def tokens_file(tmp_path: Path) -> Path:
    tokens = tmp_path / "tokens"
    lines = [
        token_line("alice", ["admin"], TOKEN),
        token_line("ops-bot", ["ops", "read"], OPS_TOKEN),
    ]
    tokens.write_text("\n".join(lines) + "\n")
    return tokens


def whoami(request: object, ctx: CallContext) -> dict[str, object]:
    return {
        "principal": ctx.principal,
        "roles": list(ctx.roles),
        "attributes": dict(ctx.principal_attributes),
    }


@pytest.fixture
def secured(tmp_path: Path) -> Runtime:
    config = {
        "security": {"require_authentication": True, "api_tokens_file": str(tokens_file(tmp_path))}
    }
    return Runtime(config)


@pytest.fixture
def as_alice(tmp_path: Path) -> Runtime:
    config = {
        "security": {"require_authentication": True, "api_tokens_file": str(tokens_file(tmp_path))}
    }
    return Runtime(config, credentials=Credentials.api_key(TOKEN))


def test_credentials_never_show_their_token() -> None:
    for creds in (Credentials.api_key(TOKEN, "alice"), Credentials.bearer(TOKEN)):
        for shown in (repr(creds), str(creds), f"{creds}", repr([creds])):
            assert TOKEN not in shown
            assert "<redacted>" in shown
    assert "'alice'" in repr(Credentials.api_key(TOKEN, "alice"))
    assert Credentials.bearer(TOKEN).as_dict() == {"scheme": "bearer", "token": TOKEN}
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(Credentials.bearer(TOKEN))


def test_credentials_refuse_an_empty_token() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Credentials.api_key("")
    with pytest.raises(ValueError, match="non-empty"):
        Credentials.bearer(None)  # type: ignore[arg-type]


def test_without_credentials_a_call_is_unauthenticated(secured: Runtime) -> None:
    with secured, pytest.raises(UnauthenticatedError) as caught:
        secured.call(ECHO, {"text": "hi"})
    assert caught.value.details["reason"] == "missing"


def test_a_wrong_token_is_unauthenticated_and_not_echoed(secured: Runtime) -> None:
    wrong = new_token()
    with secured, pytest.raises(UnauthenticatedError) as caught:
        secured.call(ECHO, {"text": "hi"}, credentials=Credentials.api_key(wrong))
    assert wrong not in str(caught.value) + repr(caught.value)


def test_the_default_credentials_reach_the_handler(as_alice: Runtime) -> None:
    with as_alice, as_alice.register_service("creds.v1.Who", {"Am": whoami}):
        seen = as_alice.call(WHOAMI, {})
        assert seen == {"principal": "alice", "roles": ["admin"], "attributes": {}}
        echo = as_alice.method(ECHO, expect=system_pb2.EchoResponse)
        assert echo(system_pb2.EchoRequest(text="handle")).text == "handle"


def test_a_calls_credentials_replace_the_default_ones(as_alice: Runtime) -> None:
    ops = Credentials.api_key(OPS_TOKEN)
    expected = {"principal": "ops-bot", "roles": ["ops", "read"], "attributes": {}}
    with as_alice, as_alice.register_service("creds.v1.Who", {"Am": whoami}):
        assert as_alice.call(WHOAMI, {}, credentials=ops) == expected
        assert as_alice.call(WHOAMI, {}, options={"credentials": ops}, timeout=30) == expected
        as_json = as_alice.call(WHOAMI, b"{}", format=Format.JSON, credentials=ops)
        assert json.loads(as_json)["principal"] == "ops-bot"
        with pytest.raises(UnauthenticatedError):
            as_alice.call(
                ECHO,
                system_pb2.EchoRequest(text="typed"),
                options=options_pb2.CallOptions(trace_id="t"),
                credentials=Credentials.api_key(new_token()),
            )


def test_default_credentials_merge_with_a_message_config(tmp_path: Path) -> None:
    config = options_pb2.RuntimeConfig(name="merged")
    config.security.require_authentication = True
    config.security.api_tokens_file = str(tokens_file(tmp_path))
    with Runtime(config, credentials=Credentials.api_key(OPS_TOKEN)) as rt:
        assert not config.security.HasField("default_credentials")
        with rt.register_service("creds.v1.Who", {"Am": whoami}):
            assert rt.call(WHOAMI, {})["principal"] == "ops-bot"


def test_default_credentials_need_a_config_that_is_not_bytes() -> None:
    with pytest.raises(TypeError, match="not bytes"):
        Runtime(b"", credentials=Credentials.api_key(TOKEN))


def test_a_permission_denied_status_raises_permission_denied_error(rt: Runtime) -> None:
    def refuse(request: object) -> None:
        raise PermissionDeniedError("not yours", details={"reason": "policy"})

    with rt.register_service("creds.v1.Guard", {"Open": refuse}):
        with pytest.raises(PermissionDeniedError) as caught:
            rt.call("creds.v1.Guard/Open", {})
    assert caught.value.details["reason"] == "policy"


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


@pytest.mark.remote
def test_default_and_per_call_credentials_travel_to_an_exporter(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The caller verifies nothing itself; the exporter requires tokens."""
    nats = {"servers": [nats_server.url], "request_timeout_ms": 5000}
    exporter_config = {
        "name": "py-secured",
        "nats": nats,
        "security": {"require_authentication": True, "api_tokens_file": str(tokens_file(tmp_path))},
    }
    with (
        Runtime(exporter_config) as exporter,
        Runtime({"nats": nats}, credentials=Credentials.api_key(TOKEN)) as caller,
        Runtime({"nats": nats}) as anonymous,
        exporter.register_service("creds.v1.Who", {"Am": whoami}, export=True),
    ):
        assert caller.call(WHOAMI, {})["principal"] == "alice"
        ops = Credentials.api_key(OPS_TOKEN)
        assert caller.call(WHOAMI, {}, credentials=ops)["roles"] == ["ops", "read"]
        with pytest.raises(UnauthenticatedError):
            anonymous.call(WHOAMI, {})
        wrong = new_token()
        with pytest.raises(UnauthenticatedError) as caught:
            anonymous.call(WHOAMI, {}, credentials=Credentials.api_key(wrong))
        assert wrong not in str(caught.value)
