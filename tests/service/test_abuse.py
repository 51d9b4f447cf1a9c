"""Bounded under abuse (issue 11, section 2): each case an outside probe found, against a real
server. Metadata and search answers have a size, non-finite numbers never reach the store, ids
follow one rule, scores are always finite numbers, and content errors are 4xx naming the field."""

from __future__ import annotations

import io
import math
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import orjson
import pytest
from service_helpers import LATENT_DIM, SEQ_LEN, spectra_like

ADMIN = {"Authorization": "Bearer admin-key"}
JSON = {**ADMIN, "Content-Type": "application/json"}
OK = spectra_like(1, seed=5)[0].tolist()
METADATA_LIMIT = 1024


@pytest.fixture(scope="module")
def abuse_server(start_server):
    return start_server(
        api_keys="reader-key",
        admin_keys="admin-key",
        max_metadata_bytes=METADATA_LIMIT,
        max_search_response_bytes=20_000,
        max_spectra_per_request=64,
    )


@pytest.fixture
def http(abuse_server):
    with httpx.Client(base_url=abuse_server.url, headers=ADMIN, timeout=30) as client:
        yield client


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert set(error) == {"type", "message", "field"}
    assert "Traceback" not in response.text
    return error


# -- metadata size and the size of /similar answers -------------------------------------------


def test_metadata_over_the_limit_is_refused_on_every_write(http):
    big = {"notes": "x" * METADATA_LIMIT}
    error = _error(http.put("/library/big", json={"spectrum": OK, "metadata": big}), 413)
    assert error["field"] == "metadata" and str(METADATA_LIMIT) in error["message"]
    batch = {"entries": [{"id": "ok1", "spectrum": OK}, {"id": "big", "spectrum": OK,
                                                         "metadata": big}]}  # fmt: skip
    error = _error(http.post("/library", json=batch), 413)
    assert error["field"] == "entries[1].metadata"
    assert http.get("/library/big").status_code == 404
    assert http.get("/library/ok1").status_code == 404  # the batch is all or nothing


def test_similar_answers_are_bounded_and_metadata_can_be_left_out(http):
    x = spectra_like(12, seed=6)
    entries = [
        {"id": f"m{i:02d}", "spectrum": row.tolist(),
         "metadata": {"name": f"m{i:02d}", "notes": "n" * 900}}
        for i, row in enumerate(x)
    ]  # fmt: skip
    assert http.post("/library", json={"entries": entries}).status_code == 200
    query = {"spectra": x.tolist(), "k": 10}  # 120 hits of ~1 KB metadata: over 20 000 bytes
    error = _error(http.post("/similar", json=query), 422)
    assert "20000" in error["message"] and "include_metadata" in error["message"]

    bare = http.post("/similar", json={**query, "include_metadata": False})
    assert bare.status_code == 200, bare.text
    assert all("metadata" not in hit for row in bare.json()["results"] for hit in row)

    named = http.post("/similar", json={**query, "fields": ["name", "absent"]})
    assert named.status_code == 200, named.text
    rows = named.json()["results"]
    assert all(hit["metadata"] == {"name": hit["id"]} for row in rows for hit in row)
    assert rows[3][0]["id"] == "m03"


# -- non-finite numbers: refused in metadata and in both filters, by one parser ----------------


@pytest.mark.parametrize("number", ["NaN", "1e309", "-Infinity"])
def test_non_finite_numbers_are_refused_in_metadata_and_filters(http, number):
    put = http.put(
        "/library/nan", content=f'{{"spectrum": {OK}, "metadata": {{"a": {{"b": {number}}}}}}}',
        headers=JSON,
    )  # fmt: skip
    error = _error(put, 422)
    assert error["field"] == "metadata.a.b" and "finite" in error["message"]
    assert http.get("/library/nan").status_code == 404

    similar = http.post(
        "/similar", content=f'{{"spectra": [{OK}], "filter": {{"a": [1, {number}]}}}}',
        headers=JSON,
    )  # fmt: skip
    listed = http.get("/library", params={"filter": f'{{"a": [1, {number}]}}'})
    for response in (similar, listed):
        error = _error(response, 422)
        assert error["field"] == "filter.a[1]" and "finite" in error["message"]


def test_filters_follow_one_rule_without_union_tags_in_field_names(http):
    nested = {"kind": {"deep": 1}}
    similar = http.post("/similar", json={"spectra": [OK], "filter": nested})
    listed = http.get("/library", params={"filter": orjson.dumps(nested).decode()})
    for response in (similar, listed):
        error = _error(response, 422)
        assert error["field"] == "filter.kind", error
    missing = http.post("/reconstruct", json={"spectra": [OK], "missing": [["a"]]})
    assert _error(missing, 422)["field"] == "missing[0][0]"


def test_a_repeated_query_parameter_is_refused_not_silently_last_wins(http):
    # Found by schemathesis: ?filter=X&filter= listed the whole library, the filter ignored.
    listed = http.get("/library", params=[("filter", '{"kind": "a"}'), ("filter", "")])
    error = _error(listed, 422)
    assert error["field"] == "filter" and "2 times" in error["message"]
    assert http.get("/library", params={"filter": '{"kind": "a"}'}).status_code == 200


# -- scores are finite: huge query embeddings normalise, all-zero ones are refused -------------


def test_huge_embeddings_score_like_their_direction_and_zero_is_refused(http):
    x = spectra_like(3, seed=7)
    entries = [{"id": f"z{i}", "spectrum": r.tolist()} for i, r in enumerate(x)]
    assert http.post("/library", json={"entries": entries}).status_code == 200
    unit = np.asarray(http.post("/embed", json={"spectra": x[:1].tolist()}).json()["embeddings"])
    plain = http.post("/similar", json={"embeddings": unit.tolist(), "k": 3}).json()
    huge = http.post("/similar", json={"embeddings": (unit * 1e300).tolist(), "k": 3})
    assert huge.status_code == 200, huge.text
    hits = huge.json()["results"][0]
    assert all(isinstance(h["score"], float) and math.isfinite(h["score"]) for h in hits)
    assert [h["id"] for h in hits] == [h["id"] for h in plain["results"][0]]
    assert hits[0]["score"] == pytest.approx(plain["results"][0][0]["score"], abs=1e-5)

    zero = http.post("/similar", json={"embeddings": [[0.0] * LATENT_DIM], "k": 3})
    error = _error(zero, 422)
    assert error["field"] == "embeddings[0]" and "zero" in error["message"]


# -- one id rule for PUT, POST and reads ------------------------------------------------------

BAD_IDS = [
    ("dot", "%2E", "."),
    ("dot-dot", "%2E%2E", ".."),
    ("control char", "a%01b", "a\u0001b"),
    ("DEL", "a%7Fb", "a\u007fb"),
    ("leading space", "%20a", " a"),
    ("invalid UTF-8", "a%FF", None),
    ("replacement char", "a%EF%BF%BD", "a\ufffd"),
]


@pytest.mark.parametrize(
    ("path_id", "body_id"), [c[1:] for c in BAD_IDS], ids=[c[0] for c in BAD_IDS]
)
def test_one_id_rule_for_every_route(http, path_id, body_id):
    for method in ("PUT", "GET", "DELETE"):
        body = orjson.dumps({"spectrum": OK}) if method == "PUT" else None
        response = http.request(method, f"/library/{path_id}", content=body, headers=JSON)
        error = _error(response, 422)
        assert error["field"] == "id", (method, error)
    if body_id is not None:
        batch = {"entries": [{"id": "fine", "spectrum": OK}, {"id": body_id, "spectrum": OK}]}
        error = _error(http.post("/library", json=batch), 422)
        assert error["field"] == "entries[1].id"


def test_ids_that_need_percent_encoding_are_fine(http):
    for entry_id, path in (("victim?x=1", "victim%3Fx=1"), ("a#b c", "a%23b%20c")):
        assert http.put(f"/library/{path}", json={"spectrum": OK}).status_code == 200
        assert http.get(f"/library/{path}").json()["id"] == entry_id
    batch = {"entries": [{"id": "with space inside", "spectrum": OK}]}
    assert http.post("/library", json=batch).status_code == 200


# -- request content is a 4xx, with the request's field names --------------------------------


def _npy(shape: tuple[int, ...], data: bytes) -> bytes:
    """A .npy file whose header declares ``shape`` (float32) followed by ``data``."""
    buffer = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def test_npy_header_declaring_a_huge_shape_is_a_4xx(http):
    headers = {**ADMIN, "Content-Type": "application/x-npy"}
    rows = np.zeros((2, SEQ_LEN), np.float32).tobytes()
    error = _error(
        http.post("/embed", content=_npy((100_000_000, 256), rows), headers=headers), 413
    )
    assert error["field"] == "body" and "100000000" in error["message"]
    wide = http.post("/embed", content=_npy((2, 10**12), rows), headers=headers)
    error = _error(wide, 422)
    assert "(2, 1000000000000)" in error["message"] and str(len(rows)) in error["message"]
    assert http.post("/embed", content=_npy((2, SEQ_LEN), rows), headers=headers).status_code == 200


def test_csv_field_over_128_kib_is_a_4xx(http):
    header = ",".join(f"{w:.3f}" for w in np.linspace(1100, 1700, SEQ_LEN))
    body = f'id,{header}\n"{"x" * 200_000}",' + ",".join(["0.5"] * SEQ_LEN) + "\n"
    headers = {**ADMIN, "Content-Type": "text/csv"}
    error = _error(http.post("/embed", content=body, headers=headers), 422)
    assert error["field"] == "body" and "CSV" in error["message"]


def test_library_errors_name_the_request_fields(http):
    error = _error(http.put("/library/huge", json={"spectrum": [1e308] * SEQ_LEN}), 422)
    assert error["field"] == "spectrum", error
    batch = {"entries": [{"id": "h0", "spectrum": OK}, {"id": "h1", "spectrum": [1e308] * SEQ_LEN}]}
    assert _error(http.post("/library", json=batch), 422)["field"] == "entries[1].spectrum"
    wavelengths = [1100.0, 1700.0, 1400.0, 1500.0]
    error = _error(
        http.put("/library/w", json={"spectrum": OK[:4], "wavelengths": wavelengths}), 422
    )
    assert error["field"] == "wavelengths" and "src_" not in error["message"], error


# -- auth: X-API-Key trimmed like Bearer, documented in OpenAPI --------------------------------


def _raw_status(server, header: bytes) -> int:
    """Status of GET /model sent byte for byte (httpx refuses header values with trailing
    whitespace; curl and many HTTP libraries send them)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"GET /model HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n\r\n"
        )
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_x_api_key_is_trimmed_like_bearer(abuse_server):
    for header in (b"X-API-Key: reader-key \t", b"Authorization: Bearer reader-key \t"):
        assert _raw_status(abuse_server, header) == 200, header
    assert _raw_status(abuse_server, b"X-API-Key: reader-keyx") == 401


def test_openapi_declares_the_security_schemes(abuse_server):
    schema = httpx.get(abuse_server.url + "/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    kinds = {(s["type"], s.get("scheme"), s.get("name")) for s in schemes.values()}
    assert ("http", "bearer", None) in kinds and ("apiKey", None, "X-API-Key") in kinds
    assert schema["paths"]["/embed"]["post"]["security"]
    assert "security" not in schema["paths"]["/healthz"]["get"]


# -- the Python client: ids are percent-encoded, odd replies raise WaveMAEError ----------------


def test_client_percent_encodes_ids(abuse_server):
    from wavemae_service.client import WaveMAEClient, WaveMAEError

    x = spectra_like(3, seed=8)
    with WaveMAEClient(abuse_server.url, api_key="admin-key") as client:
        client.put("victim", x[0], metadata={"who": "victim"})
        client.put("victim?x=1", x[1], metadata={"who": "query"})
        assert client.get("victim")["metadata"] == {"who": "victim"}
        assert client.get("victim?x=1")["metadata"] == {"who": "query"}
        with pytest.raises(WaveMAEError) as err:
            client.delete("victim#x")
        assert err.value.status == 404
        assert client.get("victim")["metadata"] == {"who": "victim"}
        assert client.delete("victim?x=1")["deleted"] is True


def test_client_turns_a_redirect_into_a_clear_error(abuse_server):
    from wavemae_service.client import WaveMAEClient, WaveMAEError

    with WaveMAEClient(abuse_server.url, api_key="admin-key") as client:
        with pytest.raises(WaveMAEError) as err:
            client.get("")  # GET /library/: FastAPI redirects to /library
        assert err.value.status == 307 and "redirect" in str(err.value).lower()


class _HtmlPage(BaseHTTPRequestHandler):
    """What a login proxy or a misrouted URL answers: 200 with an HTML page."""

    def do_GET(self) -> None:
        body = b"<html><body>Please log in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_client_turns_a_non_json_reply_into_a_clear_error():
    from wavemae_service.client import WaveMAEClient, WaveMAEError

    page = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlPage)
    thread = threading.Thread(target=page.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{page.server_port}"
        with WaveMAEClient(url) as client, pytest.raises(WaveMAEError) as err:
            client.model()
        assert err.value.status == 200 and "text/html" in str(err.value)
    finally:
        page.shutdown()
