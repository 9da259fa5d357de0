"""Payload formats and the small codecs the binding needs around them."""

from __future__ import annotations

import enum
import json
from typing import Any

import cbor2

from hms_cffi._native import lib

__all__ = ["Format"]


class Format(enum.IntEnum):
    """Format of a payload crossing the boundary (HMS_FORMAT_*)."""

    PROTOBUF = lib.HMS_FORMAT_PROTOBUF
    CBOR = lib.HMS_FORMAT_CBOR
    JSON = lib.HMS_FORMAT_JSON


def encode_value(value: Any, fmt: int) -> bytes:
    """A dict (or any CBOR/JSON value) as bytes in ``fmt`` (CBOR or JSON)."""
    if fmt == Format.CBOR:
        return cbor2.dumps(value)
    if fmt == Format.JSON:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    raise ValueError(f"a dict travels as CBOR or JSON, not as {_name(fmt)}")


def decode_value(data: bytes, fmt: int) -> Any:
    """Bytes in ``fmt`` (CBOR or JSON) as Python values."""
    if fmt == Format.CBOR:
        return cbor2.loads(data) if data else {}
    if fmt == Format.JSON:
        return json.loads(data) if data else {}
    raise ValueError(f"cannot decode {_name(fmt)} without a message type")


def _name(fmt: int) -> str:
    try:
        return Format(fmt).name
    except ValueError:
        return f"format {fmt}"
