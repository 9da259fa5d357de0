"""API token hashes for ``RuntimeConfig.security.api_tokens_file``.

A line of that file is ``<principal> <roles> sha256:<salt hex>:<digest hex>``
where the digest is SHA-256 over the salt bytes then the token's UTF-8 bytes
(docs/security.md). Only the line is stored; the token goes to its caller.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_NAME = re.compile(r"^\S+$")
SALT_BYTES = 16


def new_token() -> str:
    """A fresh random API token (32 random bytes, URL-safe base64)."""
    return "hms_" + secrets.token_urlsafe(32)


def token_line(principal: str, roles: list[str], token: str, salt: bytes | None = None) -> str:
    """The token-file line that verifies ``token`` as ``principal``."""
    if not _NAME.match(principal):
        raise ValueError(f"principal {principal!r} must be one word without spaces")
    for role in roles:
        if not role or "," in role or not _NAME.match(role):
            raise ValueError(f"role {role!r} must be one word without spaces or commas")
    if not token:
        raise ValueError("the token is empty")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    if len(salt) < 8:
        raise ValueError("the salt must have at least 8 bytes")
    digest = hashlib.sha256(salt + token.encode()).hexdigest()
    return f"{principal} {','.join(roles) or '-'} sha256:{salt.hex()}:{digest}"
