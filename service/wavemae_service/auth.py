"""Optional API keys with two scopes: read (embed, reconstruct, similar, library reads) and admin
(also library writes and re-embedding). Off when no key is configured. Keys are compared in
constant time against every configured key. ``/healthz``, ``/readyz`` and ``/metrics`` stay open.

The key comes as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (surrounding whitespace
ignored in both). Both are declared as OpenAPI security schemes through FastAPI's security
classes, so the schema says which operations need a key.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from .errors import Forbidden, Unauthorized

__all__ = ["require_admin", "require_read"]

# Documentation and parsing only (auto_error=False): the checks below decide, so that a missing
# key answers this service's 401 error shape and auth can be off.
_BEARER = HTTPBearer(
    auto_error=False, description="'Authorization: Bearer KEY' (read or admin key)."
)
_API_KEY = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="'X-API-Key: KEY' (read or admin key)."
)


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key is not None else None


def _matches(key: str, keys: tuple[str, ...]) -> bool:
    found = False
    encoded = key.encode()
    for candidate in keys:  # no early exit: timing does not reveal which key matched
        found |= hmac.compare_digest(encoded, candidate.encode())
    return found


def _scope_of(request: Request) -> str | None:
    """'admin', 'read', or None (no valid key). Raises Unauthorized when auth is on and no key."""
    settings = request.app.state.settings
    if not settings.auth_enabled:
        return "admin"
    key = _presented_key(request)
    if not key:
        raise Unauthorized(
            "this server requires an API key: send 'Authorization: Bearer KEY' or 'X-API-Key'"
        )
    if _matches(key, settings.admin_key_list):
        return "admin"
    if _matches(key, settings.read_keys):
        return "read"
    raise Unauthorized("the API key is not valid")


async def require_read(
    request: Request, _bearer: Any = Security(_BEARER), _key: Any = Security(_API_KEY)
) -> None:
    """Dependency: any valid key (read or admin)."""
    _scope_of(request)


async def require_admin(
    request: Request, _bearer: Any = Security(_BEARER), _key: Any = Security(_API_KEY)
) -> None:
    """Dependency: an admin key."""
    if _scope_of(request) != "admin":
        raise Forbidden("this operation needs an admin API key")
