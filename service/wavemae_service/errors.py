"""One error hierarchy, one table to HTTP status, one JSON shape.

Every error answer has the body::

    {"error": {"type": "invalid_input", "message": "spectra[2] has 10 values, ...",
               "field": "spectra[2]"}}

``type`` is a stable machine-readable code, ``message`` is meant for people and never holds
internal text (paths, tracebacks), ``field`` names the offending input or is null.
This module does not import FastAPI: :mod:`wavemae_service.app` installs the handlers.
"""

from __future__ import annotations

from typing import Any

from .library.base import (
    DimensionMismatchError,
    EntryNotFoundError,
    LibraryError,
    LibraryUnavailableError,
    ModelVersionMismatchError,
)

__all__ = [
    "STATUS_BY_TYPE",
    "Conflict",
    "Forbidden",
    "InferenceFailed",
    "InternalError",
    "InvalidInput",
    "NotAcceptable",
    "NotFound",
    "NotReady",
    "Overloaded",
    "PayloadTooLarge",
    "ServiceError",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_body",
    "from_library_error",
]


class ServiceError(Exception):
    """Base of every error the service answers on purpose.

    Args:
        message: what went wrong, for the caller (no internal details).
        field: the request field it concerns (``"spectra[3]"``, ``"k"``) or None.
    """

    type: str = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def status(self) -> int:
        return STATUS_BY_TYPE[self.type]

    def headers(self) -> dict[str, str]:
        return {}


class InvalidInput(ServiceError):
    """The request is well-formed HTTP but its content is not acceptable."""

    type = "invalid_input"


class PayloadTooLarge(ServiceError):
    type = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    type = "unsupported_media_type"


class NotAcceptable(ServiceError):
    type = "not_acceptable"


class NotFound(ServiceError):
    type = "not_found"


class Conflict(ServiceError):
    """The library is embedded with another model version (re-embed first)."""

    type = "library_version_mismatch"


class Unauthorized(ServiceError):
    type = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(ServiceError):
    type = "forbidden"


class Overloaded(ServiceError):
    """The inference queue is full; retry after ``retry_after_s`` seconds."""

    type = "overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class NotReady(ServiceError):
    """The model is not loaded yet, the batch loop is unhealthy, or the server is draining."""

    type = "not_ready"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class InferenceFailed(ServiceError):
    """The engine raised while running a batch (a server fault, never the caller's)."""

    type = "inference_failed"


class InternalError(ServiceError):
    type = "internal_error"


#: The one table from error type to HTTP status.
STATUS_BY_TYPE: dict[str, int] = {
    "error": 500,
    "bad_request": 400,
    "invalid_input": 422,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "not_acceptable": 406,
    "not_found": 404,
    "method_not_allowed": 405,
    "library_version_mismatch": 409,
    "unauthorized": 401,
    "forbidden": 403,
    "overloaded": 429,
    "not_ready": 503,
    "inference_failed": 500,
    "internal_error": 500,
}


def from_library_error(exc: LibraryError) -> ServiceError:
    """Translate a store error into the service error the caller sees."""
    if isinstance(exc, EntryNotFoundError):
        return NotFound(str(exc), field="id")
    if isinstance(exc, ModelVersionMismatchError):
        return Conflict(str(exc))
    if isinstance(exc, DimensionMismatchError):
        return InvalidInput(str(exc))
    if isinstance(exc, LibraryUnavailableError):
        return NotReady("the reference library is unreachable; retry shortly")
    return InternalError("the library could not complete the request")


def error_body(error_type: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"error": {"type": error_type, "message": message, "field": field}}
