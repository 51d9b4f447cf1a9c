"""Connection limits uvicorn does not enforce on its own: a deadline for request headers, a cap
on header size, and a cap on open connections.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but a connection that
never sends a byte, or sends its headers a byte at a time, stays open for ever: a few hundred of
them exhaust the process's file descriptors and every other client fails. :func:`guarded_protocol`
returns uvicorn's HTTP protocol (httptools) with three additions:

- from the moment a connection opens, and again after each answer, the client has
  ``header_timeout_s`` to deliver complete request headers; otherwise the connection is closed
  (with a 408 answer when part of a request had arrived);
- request headers larger than ``max_header_bytes`` get a 431 answer and the connection closes;
- a connection accepted while ``max_connections`` are open is closed at once, so its file
  descriptor is freed instead of held.

The body of a request is not timed here (the routes read it with a size limit): a reverse proxy
that buffers requests covers slow bodies (README, "Limits under abuse").
"""

from __future__ import annotations

import asyncio
import logging
import resource
from http import HTTPStatus
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import BadRequest, HeadersTooLarge, RequestTimeout, ServiceError, error_body

__all__ = ["ConnectionLimits", "fit_to_file_limit", "guarded_protocol"]

log = logging.getLogger("wavemae_service")

# File descriptors kept free for the library, the model files and logs.
_RESERVED_FDS = 64


class ConnectionLimits:
    """The three limits (see the module docstring); seconds and bytes."""

    def __init__(self, header_timeout_s: float, max_header_bytes: int, max_connections: int):
        self.header_timeout_s = header_timeout_s
        self.max_header_bytes = max_header_bytes
        self.max_connections = max_connections


def fit_to_file_limit(max_connections: int) -> int:
    """``max_connections``, lowered (with a warning) to leave file descriptors free under the
    process's soft open-file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    fitting = max(1, soft - _RESERVED_FDS)
    if max_connections > fitting:
        log.warning(
            "max_connections=%d does not fit the open-file limit (ulimit -n %d): using %d",
            max_connections,
            soft,
            fitting,
        )
        return fitting
    return max_connections


def _answer(error: type[ServiceError], message: str) -> bytes:
    body = orjson.dumps(error_body(error.type, message))
    reason = HTTPStatus(error.status).phrase
    head = (
        f"HTTP/1.1 {error.status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol class with ``limits`` enforced; pass it as ``http=``."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _header_bytes = 0
        _tail = b""  # the last bytes seen, to find a CRLF CRLF split across reads

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                transport.close()  # frees the descriptor now; connection_lost cleans up
                return
            self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_arrived()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._header_timer is not None:  # reading headers: count them up to CRLF CRLF
                seen = self._tail + data
                end = seen.find(b"\r\n\r\n")
                self._header_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
                self._tail = seen[-3:]
                if self._header_bytes > limits.max_header_bytes:
                    self._refuse(
                        HeadersTooLarge,
                        f"the request headers exceed {limits.max_header_bytes} bytes",
                    )
                    return
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._headers_arrived()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.timeout_keep_alive_task is not None:  # idle now (no pipelined request)
                self._await_headers()

        def _await_headers(self) -> None:
            self._headers_arrived()
            self._header_bytes = 0
            self._tail = b""
            self._header_timer = self.loop.call_later(limits.header_timeout_s, self._too_slow)

        def _headers_arrived(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if self._header_bytes:
                message = f"the request headers did not arrive within {limits.header_timeout_s} s"
                self._refuse(RequestTimeout, message)
            elif not self.transport.is_closing():
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            """httptools could not parse the request: the same JSON error body as every answer."""
            message = "the request is not well-formed HTTP (request line, header or Content-Length)"
            self._refuse(BadRequest, message)

        def _refuse(self, error: type[ServiceError], message: str) -> None:
            self._headers_arrived()
            if not self.transport.is_closing():
                self.transport.write(_answer(error, message))
                self.transport.close()

    return GuardedHttpToolsProtocol
