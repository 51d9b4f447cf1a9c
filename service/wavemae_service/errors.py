"""One error hierarchy; the status table and the OpenAPI error responses are generated from it.

Every error answer has the body::

    {"error": {"type": "invalid_input", "message": "spectra[2] has 10 values, ...",
               "field": "spectra[2]"}}

``type`` is a stable machine-readable code, ``message`` is meant for people and never holds
internal text (paths, tracebacks), ``field`` names the offending input or is null.

Each class carries its ``type``, its HTTP ``status`` and a ``description`` for the API
document; :data:`STATUS_BY_TYPE`, :func:`type_for_status` and :func:`openapi_responses` are all
computed from :data:`ERRORS`, so adding an error is adding a class here and nothing else.
This module does not import FastAPI: :mod:`wavemae_service.app` installs the handlers.
"""

from __future__ import annotations

from typing import Any

from .schemas import ErrorResponse

__all__ = [
    "CONNECTION_ERRORS",
    "ERRORS",
    "STATUS_BY_TYPE",
    "AnalysisInProgress",
    "BadRequest",
    "ClustersNotComputed",
    "Forbidden",
    "HeadersTooLarge",
    "InferenceFailed",
    "InternalError",
    "InvalidInput",
    "LibraryVersionMismatch",
    "MapNotLoaded",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "NotReady",
    "Overloaded",
    "PayloadTooLarge",
    "ReembedInProgress",
    "RequestTimeout",
    "ServiceError",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_body",
    "openapi_responses",
    "type_for_status",
]


class ServiceError(Exception):
    """Base of every error the service answers on purpose.

    Args:
        message: what went wrong, for the caller (no internal details).
        field: the request field it concerns (``"spectra[3]"``, ``"k"``) or None.
    """

    type: str = "error"
    status: int = 500
    description: str = "The server failed"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(ServiceError):
    type = "bad_request"
    status = 400
    description = "The request is not well-formed HTTP"


class RequestTimeout(ServiceError):
    """The request headers did not arrive in time (answered by the connection layer)."""

    type = "request_timeout"
    status = 408
    description = "The request headers did not arrive within the header deadline"


class HeadersTooLarge(ServiceError):
    """The request headers exceed the limit (answered by the connection layer)."""

    type = "headers_too_large"
    status = 431
    description = "The request headers are too large"


class Unauthorized(ServiceError):
    type = "unauthorized"
    status = 401
    description = "Missing or invalid API key"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(ServiceError):
    type = "forbidden"
    status = 403
    description = "The key lacks the admin scope"


class NotFound(ServiceError):
    type = "not_found"
    status = 404
    description = "No such entry"


class MethodNotAllowed(ServiceError):
    type = "method_not_allowed"
    status = 405
    description = "The path does not take this method"


class NotAcceptable(ServiceError):
    type = "not_acceptable"
    status = 406
    description = "The Accept header asks for a media type this endpoint cannot send"


class LibraryVersionMismatch(ServiceError):
    """The library is embedded with another model version (re-embed first)."""

    type = "library_version_mismatch"
    status = 409
    description = "The library is embedded by another model version (re-embed first)"


class ReembedInProgress(ServiceError):
    """A re-embedding of the library is already running."""

    type = "reembed_in_progress"
    status = 409
    description = "A re-embedding is already running"


class AnalysisInProgress(ServiceError):
    """A clustering or map fit of the library is already running."""

    type = "analysis_in_progress"
    status = 409
    description = "A clustering or map job is already running"


class MapNotLoaded(ServiceError):
    """A map is stored, but its fitted transform is not in this process (refit to place points)."""

    type = "map_not_loaded"
    status = 409
    description = "The stored map's fitted transform is not loaded here (refit the map)"


class ClustersNotComputed(ServiceError):
    """``include_cluster`` was asked, but no clustering of the library is stored for the served
    model version (none computed, or computed with embeddings of another model)."""

    type = "clusters_not_computed"
    status = 409
    description = (
        "No clustering is stored for the served model version (POST /library/clusters first)"
    )


class PayloadTooLarge(ServiceError):
    type = "payload_too_large"
    status = 413
    description = "Too many spectra or too large a body"


class UnsupportedMediaType(ServiceError):
    type = "unsupported_media_type"
    status = 415
    description = "Unsupported Content-Type"


class InvalidInput(ServiceError):
    """The request is well-formed HTTP but its content is not acceptable."""

    type = "invalid_input"
    status = 422
    description = "Invalid input: the error names the field and the reason"


class Overloaded(ServiceError):
    """The inference queue is full; retry after ``retry_after_s`` seconds."""

    type = "overloaded"
    status = 429
    description = "Overloaded: retry after the Retry-After header's seconds"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class InternalError(ServiceError):
    type = "internal_error"
    status = 500
    description = "The server failed (never for anything the client sent)"


class InferenceFailed(ServiceError):
    """The engine raised while running a batch (a server fault, never the caller's)."""

    type = "inference_failed"
    status = 500
    description = "The inference engine failed on this batch"


class NotReady(ServiceError):
    """The model is not loaded yet, the batch loop is unhealthy, the library's database is
    unreachable, or the server is draining."""

    type = "not_ready"
    status = 503
    description = "Not ready (loading, draining or unhealthy)"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


#: Every error the service answers, the first of each status being that status's generic one.
ERRORS: tuple[type[ServiceError], ...] = (
    ServiceError,
    BadRequest,
    Unauthorized,
    RequestTimeout,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    LibraryVersionMismatch,
    ReembedInProgress,
    AnalysisInProgress,
    MapNotLoaded,
    ClustersNotComputed,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidInput,
    HeadersTooLarge,
    Overloaded,
    InternalError,
    InferenceFailed,
    NotReady,
)

#: What the connection layer answers before a request reaches a route: any operation can.
CONNECTION_ERRORS: tuple[type[ServiceError], ...] = (BadRequest, RequestTimeout, HeadersTooLarge)

#: The one table from error type to HTTP status.
STATUS_BY_TYPE: dict[str, int] = {cls.type: cls.status for cls in ERRORS}


def type_for_status(status: int) -> str:
    """The error type of an HTTP error raised outside the service's own code (routing: 404,
    405; the server: 400, 413), or ``"error"`` for a status no class answers."""
    return next((cls.type for cls in ERRORS[1:] if cls.status == status), ServiceError.type)


def openapi_responses(*errors: type[ServiceError]) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for the errors a route can answer: one entry per status, with the
    shared error body model and the classes' descriptions joined."""
    descriptions: dict[int, list[str]] = {}
    for cls in errors:
        descriptions.setdefault(cls.status, []).append(cls.description)
    return {
        status: {"model": ErrorResponse, "description": "; ".join(texts)}
        for status, texts in sorted(descriptions.items())
    }


def error_body(error_type: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"error": {"type": error_type, "message": message, "field": field}}
