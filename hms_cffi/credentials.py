"""What a caller presents to a runtime that authenticates calls: :class:`Credentials`.

A runtime holds default credentials for its own calls
(``Runtime(config, credentials=...)``, stored as
``RuntimeConfig.security.default_credentials``) and a call may override them
(``rt.call(..., credentials=...)``). docs/security.md tells how the core
verifies them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from hms_cffi.proto.hms.v1 import options_pb2

__all__ = ["Credentials"]

BEARER = "bearer"
API_KEY = "api-key"


@dataclasses.dataclass(frozen=True, repr=False)
class Credentials:
    """An ``hms.v1.Credentials``: a scheme, a token and an optional principal.

    Make one with :meth:`bearer` (a JWT) or :meth:`api_key` (a token whose
    salted hash is in the runtime's API tokens file). Its ``repr`` and
    ``str`` never show the token, so logging one leaks nothing, and pickling
    one is refused. ``principal``, when given, must equal the token's
    principal or the call fails UNAUTHENTICATED.
    """

    scheme: str
    token: str
    principal: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token:
            raise ValueError("the credentials' token must be a non-empty string")

    @classmethod
    def bearer(cls, jwt: str, principal: str = "") -> Credentials:
        """Credentials carrying a JWT (scheme ``bearer``)."""
        return cls(BEARER, jwt, principal)

    @classmethod
    def api_key(cls, token: str, principal: str = "") -> Credentials:
        """Credentials carrying an API token (scheme ``api-key``)."""
        return cls(API_KEY, token, principal)

    def __repr__(self) -> str:
        return (
            f"Credentials(scheme={self.scheme!r}, token=<redacted>, principal={self.principal!r})"
        )

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("Credentials are not pickled: their token would be")

    def as_dict(self) -> dict[str, str]:
        """The ``hms.v1.Credentials`` fields, empty ones left out."""
        fields = {"scheme": self.scheme, "token": self.token, "principal": self.principal}
        return {name: value for name, value in fields.items() if value}

    def as_proto(self) -> options_pb2.Credentials:
        """The ``hms.v1.Credentials`` message."""
        return options_pb2.Credentials(**self.as_dict())


def with_default_credentials(
    config: options_pb2.RuntimeConfig | Mapping[str, Any] | None, credentials: Credentials
) -> options_pb2.RuntimeConfig | dict[str, Any]:
    """``config`` with ``security.default_credentials`` set, the rest of its
    security section kept; ``config`` itself is left as it was."""
    if isinstance(config, options_pb2.RuntimeConfig):
        merged = options_pb2.RuntimeConfig()
        merged.CopyFrom(config)
        merged.security.default_credentials.CopyFrom(credentials.as_proto())
        return merged
    values = dict(config or {})
    values["security"] = {
        **(values.get("security") or {}),
        "default_credentials": credentials.as_dict(),
    }
    return values
