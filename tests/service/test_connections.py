"""Idle and slow connections are closed, and open connections are capped (issue 11, section 2).

Real sockets against a real uvicorn: a probe held 300 idle sockets open and, with ``ulimit -n
256``, every other request failed. Each test here would hang (and fail on its deadline) against
a server that never closes anything.
"""

from __future__ import annotations

import socket
import time

import httpx
import orjson
import pytest

HEADER_TIMEOUT_S = 1.0
KEEP_ALIVE_S = 1.0
MAX_CONNECTIONS = 6


@pytest.fixture(scope="module")
def guarded_server(start_server):
    return start_server(
        header_timeout_s=HEADER_TIMEOUT_S,
        keep_alive_timeout_s=KEEP_ALIVE_S,
        max_connections=MAX_CONNECTIONS,
        max_header_bytes=4096,
    )


def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.settimeout(10)
    return sock


def _closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock``, and what it sent before closing."""
    started = time.monotonic()
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return time.monotonic() - started, received


def _request_ok(server) -> bool:
    try:
        return httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_a_silent_connection_is_closed(guarded_server):
    with _connect(guarded_server) as sock:
        waited, received = _closed_after(sock)
    assert waited < HEADER_TIMEOUT_S + 3, waited
    assert received == b""


def test_a_half_sent_header_is_closed_even_when_it_trickles(guarded_server):
    with _connect(guarded_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        sock.settimeout(0.2)
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT_S + 3:
            try:
                sock.sendall(b"X-Slow: 1\r\n")  # a byte now and then must not keep it open
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
    assert closed, "a connection trickling its header was kept open"


def test_an_idle_keep_alive_connection_is_closed(guarded_server):
    with _connect(guarded_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        waited, received = _closed_after(sock)
    assert received.startswith(b"HTTP/1.1 200")
    assert waited < KEEP_ALIVE_S + 3, waited


def test_an_oversized_header_is_refused(guarded_server):
    with _connect(guarded_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
        _, received = _closed_after(sock)
    assert received.startswith(b"HTTP/1.1 431"), received[:100]
    assert b'"type":"headers_too_large"' in received


def test_a_malformed_request_gets_a_json_400_that_the_schema_documents(guarded_server):
    # Found by schemathesis: httptools refused a non-numeric Content-Length with a plain-text
    # 400 that no operation documented.
    with _connect(guarded_server) as sock:
        sock.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: U<g\r\n\r\n")
        _, received = _closed_after(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), received[:100]
    assert b"content-type: application/json" in head.lower()
    assert orjson.loads(body)["error"]["type"] == "bad_request"
    schema = httpx.get(guarded_server.url + "/openapi.json", timeout=10).json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert {"400", "408", "431"} <= set(operation["responses"]), (method, path)


def test_connections_beyond_the_cap_are_closed_and_idle_ones_do_not_lock_out(guarded_server):
    idle = [_connect(guarded_server) for _ in range(3 * MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)
        closed_at_once = 0
        for sock in idle:
            sock.settimeout(0.05)
            try:
                closed_at_once += sock.recv(1) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed_at_once += 1
        assert closed_at_once >= 2 * MAX_CONNECTIONS, closed_at_once
        deadline = time.monotonic() + HEADER_TIMEOUT_S + 5
        while not _request_ok(guarded_server):  # the idle ones time out, then requests pass
            assert time.monotonic() < deadline, "requests still fail after the idle timeout"
            time.sleep(0.2)
    finally:
        for sock in idle:
            sock.close()
