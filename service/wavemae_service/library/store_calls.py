"""Calling a library store from the event loop: blocking store calls run in worker threads, and
the store's errors (:class:`~.base.LibraryError`) become the service's
(:mod:`wavemae_service.errors`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from ..errors import (
    InternalError,
    InvalidInput,
    LibraryVersionMismatch,
    NotFound,
    NotReady,
    ServiceError,
)
from .base import (
    DimensionMismatchError,
    EntryNotFoundError,
    LibraryError,
    LibraryStore,
    LibraryUnavailableError,
    ModelVersionMismatchError,
)

__all__ = ["require_store", "run_on_store", "service_error"]

T = TypeVar("T")


def service_error(exc: LibraryError) -> ServiceError:
    """The service error the caller sees for a store error."""
    if isinstance(exc, EntryNotFoundError):
        return NotFound(str(exc), field="id")
    if isinstance(exc, ModelVersionMismatchError):
        return LibraryVersionMismatch(str(exc))
    if isinstance(exc, DimensionMismatchError):
        return InvalidInput(str(exc))
    if isinstance(exc, LibraryUnavailableError):
        return NotReady("the reference library is unreachable; retry shortly")
    return InternalError("the library could not complete the request")


def require_store(store: LibraryStore | None) -> LibraryStore:
    """The store, or InvalidInput when the server runs without a reference library."""
    if store is None:
        raise InvalidInput("this server runs without a reference library")
    return store


async def run_on_store(store: LibraryStore | None, work: Callable[[LibraryStore], T]) -> T:
    """``work(store)`` in a worker thread (off the event loop), the store's errors translated
    into service errors."""
    checked = require_store(store)
    try:
        return await asyncio.to_thread(work, checked)
    except LibraryError as exc:
        raise service_error(exc) from None
