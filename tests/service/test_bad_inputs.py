"""A table of bad requests: each gets its status, the documented error shape, a message naming the
field and the reason, and never a 500."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pytest
from service_helpers import SEQ_LEN

OK = [0.5] * SEQ_LEN


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


JSON = {"Content-Type": "application/json"}
NPY = {"Content-Type": "application/x-npy"}

# (id, method, path, body bytes, headers, status, error type, field, words in the message)
CASES = [
    ("wrong length", "POST", "/embed", {"spectra": [[1.0, 2.0]]}, JSON, 422,
     "invalid_input", "spectra", ["2 values", f"seq_len={SEQ_LEN}"]),
    ("NaN literal", "POST", "/embed", b'{"spectra": [[1.0, NaN]]}', JSON, 422,
     "invalid_input", "spectra[0][1]", ["finite"]),
    ("infinity", "POST", "/embed", b'{"spectra": [[Infinity]]}', JSON, 422,
     "invalid_input", "spectra[0][0]", ["finite"]),
    ("overflowing number", "POST", "/embed", b'{"spectra": [[1e999]]}', JSON, 422,
     "invalid_input", "spectra[0][0]", ["finite"]),
    ("empty spectra", "POST", "/embed", {"spectra": []}, JSON, 422,
     "invalid_input", "spectra", ["empty"]),
    ("empty spectrum", "POST", "/embed", {"spectra": [[]]}, JSON, 422,
     "invalid_input", "spectra[0]", ["empty"]),
    ("ragged", "POST", "/embed", {"spectra": [OK, OK[:10]]}, JSON, 422,
     "invalid_input", "spectra[1]", ["10 values", "same length"]),
    ("string value", "POST", "/embed", {"spectra": [["0.5", *OK[1:]]]}, JSON, 422,
     "invalid_input", "spectra[0][0]", ["number"]),
    ("bool value", "POST", "/embed", {"spectra": [[True, *OK[1:]]]}, JSON, 422,
     "invalid_input", "spectra[0][0]", ["number"]),
    ("flat list", "POST", "/embed", {"spectra": OK}, JSON, 422,
     "invalid_input", "spectra[0]", ["array"]),
    ("missing field", "POST", "/embed", {"spectrum": [OK]}, JSON, 422,
     "invalid_input", "spectra", ["required"]),
    ("not JSON", "POST", "/embed", b"{spectra:", JSON, 422,
     "invalid_input", "body", ["JSON"]),
    ("empty body", "POST", "/embed", b"", JSON, 422, "invalid_input", "body", ["empty"]),
    ("JSON array body", "POST", "/embed", b"[1, 2]", JSON, 422,
     "invalid_input", "body", ["object"]),
    ("grid outside model range", "POST", "/embed",
     {"spectra": [[1.0] * 10], "wavelengths": np.linspace(1200, 1300, 10).tolist()}, JSON, 422,
     "invalid_input", "wavelengths", ["1200-1300", "1100-1700", "min_coverage"]),
    ("wavelengths length", "POST", "/embed",
     {"spectra": [[1.0] * 10], "wavelengths": [1100.0, 1700.0]}, JSON, 422,
     "invalid_input", "wavelengths", ["2 values", "10"]),
    ("too many spectra", "POST", "/embed", {"spectra": [OK] * 9}, JSON, 413,
     "payload_too_large", "spectra", ["9 spectra", "at most 8"]),
    ("body too large", "POST", "/embed", {"spectra": [OK * 40]}, JSON, 413,
     "payload_too_large", "body", ["bytes"]),
    ("unsupported content type", "POST", "/embed", b"spectra", {"Content-Type": "image/png"},
     415, "unsupported_media_type", None, ["image/png"]),
    ("npy garbage", "POST", "/embed", b"\x93NUMPY garbage", NPY, 422,
     "invalid_input", "body", [".npy"]),
    ("npy pickled objects", "POST", "/embed", npy(np.array([{"a": 1}], dtype=object)), NPY,
     422, "invalid_input", "body", [".npy"]),
    ("npy 3-D", "POST", "/embed", npy(np.zeros((1, 2, SEQ_LEN), np.float32)), NPY, 422,
     "invalid_input", "body", ["shape"]),
    ("npy NaN", "POST", "/embed", npy(np.full((1, SEQ_LEN), np.nan, np.float32)), NPY, 422,
     "invalid_input", "body[0][0]", ["finite"]),
    ("csv ragged", "POST", "/embed", b"1100,1700\n1.0\n", {"Content-Type": "text/csv"}, 422,
     "invalid_input", "body", ["line 2"]),
    ("form without file", "POST", "/embed", b"--b\r\nContent-Disposition: form-data; "
     b'name="x"\r\n\r\n1\r\n--b--\r\n', {"Content-Type": "multipart/form-data; boundary=b"},
     422, "invalid_input", "file", ["file part"]),
    ("broken multipart", "POST", "/embed", b"garbage", {"Content-Type": "multipart/form-data"},
     422, "invalid_input", "body", ["multipart"]),
    ("empty multipart", "POST", "/embed", b"--b\r\n--b--\r\n",
     {"Content-Type": "multipart/form-data; boundary=b"}, 422, "invalid_input", "body",
     ["multipart"]),
    ("missing out of range", "POST", "/reconstruct", {"spectra": [OK], "missing": [[SEQ_LEN]]},
     JSON, 422, "invalid_input", "missing[0][0]", [f"{SEQ_LEN}"]),
    ("missing per spectrum", "POST", "/reconstruct", {"spectra": [OK], "missing": [[], []]},
     JSON, 422, "invalid_input", "missing", ["2 lists", "1 spectra"]),
    ("missing hides all", "POST", "/reconstruct",
     {"spectra": [OK], "missing": [[[1000.0, 2000.0]]]}, JSON, 422,
     "invalid_input", "missing[0]", ["every position"]),
    ("k zero", "POST", "/similar", {"spectra": [OK], "k": 0}, JSON, 422,
     "invalid_input", "k", ["greater than or equal to 1"]),
    ("k too big", "POST", "/similar", {"spectra": [OK], "k": 101}, JSON, 422,
     "invalid_input", "k", ["less than or equal to 100"]),
    ("unknown space", "POST", "/similar", {"spectra": [OK], "space": "pixels"}, JSON, 422,
     "invalid_input", "space", ["embedding", "spectrum"]),
    ("no query", "POST", "/similar", {"k": 3}, JSON, 422, "invalid_input", "spectra",
     ["exactly one"]),
    ("embedding width", "POST", "/similar", {"embeddings": [[1.0, 0.0]]}, JSON, 422,
     "invalid_input", "embeddings", ["latent_dim=16"]),
    ("unknown field", "POST", "/similar", {"spectra": [OK], "kk": 3}, JSON, 422,
     "invalid_input", "kk", ["not a known field"]),
    ("unknown id", "GET", "/library/no-such-id", None, {}, 404, "not_found", "id",
     ["no-such-id"]),
    ("delete unknown id", "DELETE", "/library/no-such-id", None, {}, 404, "not_found", "id",
     ["no-such-id"]),
    ("library NaN", "PUT", "/library/x1", b'{"spectrum": [NaN]}', JSON, 422,
     "invalid_input", "spectrum[0]", ["finite"]),
    ("library wrong length", "PUT", "/library/x1", {"spectrum": [1.0, 2.0]}, JSON, 422,
     "invalid_input", "spectrum", ["2 values"]),
    ("overflowing values", "POST", "/embed", {"spectra": [[1e308] * SEQ_LEN]}, JSON, 422,
     "invalid_input", "spectra[0]", ["finite"]),
    ("library NUL in metadata", "PUT", "/library/x2",
     {"spectrum": OK, "metadata": {"a": "x\u0000"}}, JSON, 422,
     "invalid_input", "metadata.a", ["NUL"]),
    ("library NUL in id", "PUT", "/library/x%00y", {"spectrum": OK}, JSON, 422,
     "invalid_input", "id", ["NUL"]),
    ("filter with NUL", "POST", "/similar", {"spectra": [OK], "filter": {"a": "\u0000"}}, JSON,
     422, "invalid_input", "filter.a", ["NUL"]),
    ("library huge integer", "PUT", "/library/x3",
     b'{"spectrum": [0.5], "metadata": {"n": -874899103092782923776}}', JSON, 422,
     "invalid_input", "metadata.n", ["64 bits"]),
    ("library duplicate ids", "POST", "/library",
     {"entries": [{"id": "d", "spectrum": OK}, {"id": "d", "spectrum": OK}]}, JSON, 422,
     "invalid_input", "entries[1].id", ["repeats"]),
    ("library empty batch", "POST", "/library", {"entries": []}, JSON, 422,
     "invalid_input", "entries", ["empty"]),
    ("paging limit", "GET", "/library?limit=5000", None, {}, 422, "invalid_input", "limit",
     ["1000"]),
    ("paging filter", "GET", "/library?filter=%7Bnope", None, {}, 422, "invalid_input",
     "filter", ["JSON"]),
    ("unknown route", "GET", "/nope", None, {}, 404, "not_found", None, []),
    ("wrong method", "GET", "/embed", None, {}, 405, "method_not_allowed", None, []),
]  # fmt: skip


@pytest.fixture(scope="module")
def strict_server(start_server):
    """Small limits so the 413 cases are cheap."""
    return start_server(max_spectra_per_request=8, max_body_bytes=4096)


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "error_type", "field", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_input_gets_a_clear_4xx(
    strict_server, method, path, body, headers, status, error_type, field, words
):
    import httpx

    content = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    response = httpx.request(
        method, strict_server.url + path, content=content, headers=headers, timeout=30
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "message", "field"}
    assert error["type"] == error_type
    assert error["field"] == field
    for word in words:
        assert word in error["message"], (word, error["message"])
    assert "Traceback" not in response.text and "/tmp" not in response.text
