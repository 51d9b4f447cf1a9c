"""The request log: one info line per request, read from a real server's output."""

from __future__ import annotations

import re
import time

import httpx
from service_helpers import spectra_like


def _lines(server, pattern: str, want: int) -> list[str]:
    """The log lines matching ``pattern``, waiting briefly for the child's output to land."""
    deadline = time.monotonic() + 5.0
    while True:
        found = [line for line in server.log_tail(200_000).splitlines() if re.search(pattern, line)]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_each_request_logs_one_info_line_with_method_path_status_and_time(start_server):
    server = start_server(log_level="info")
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        assert http.post("/embed", json={"spectra": spectra_like(1).tolist()}).is_success
        assert http.post("/embed", json={"spectra": [[1.0, 2.0]]}).status_code == 422
        assert http.get("/library/no-such-entry").status_code == 404

    line = r"INFO wavemae_service\.requests: {} {} {} \d+\.\d ms$"
    assert len(_lines(server, line.format("POST", "/embed", 200), 1)) == 1
    assert len(_lines(server, line.format("POST", "/embed", 422), 1)) == 1
    assert len(_lines(server, line.format("GET", "/library/no-such-entry", 404), 1)) == 1


def test_the_request_log_is_quiet_at_warning(server):
    httpx.get(server.url + "/healthz", timeout=10).raise_for_status()
    time.sleep(0.2)
    assert "wavemae_service.requests" not in server.log_tail(200_000)
