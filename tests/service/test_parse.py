"""POST /parse through real uvicorn: a spectra file in any accepted format comes back as JSON
(ids, values, wavelengths in the model's unit, metadata, the detected format); a broken file is a
4xx naming the field."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from service_helpers import SEQ_LEN, spectra_like

from wavemae.data import Spectra, write_jcamp, write_npz

MODEL_GRID = np.linspace(1100.0, 1700.0, SEQ_LEN)  # the tiny artifact's grid
GRID = np.linspace(1090.0, 1710.0, 90)


def _spectra(unit: str = "nm", grid: np.ndarray = GRID) -> Spectra:
    return Spectra(
        spectra_like(3, seed=4, length=grid.size),
        grid,
        unit,
        ids=["s0", "s1", "s2"],
        metadata=[{"kind": k} for k in ("powder", "tablet", "powder")],
    )


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_jcamp_comes_back_as_measured(http, tmp_path):
    spectra = _spectra()
    write_jcamp(spectra, tmp_path / "one.jdx", index=1)
    raw = http.post(
        "/parse",
        content=(tmp_path / "one.jdx").read_bytes(),
        headers={"Content-Type": "chemical/x-jcamp-dx"},
    )
    assert raw.status_code == 200, raw.text
    answer = raw.json()
    assert answer["format"] == "jcamp"
    assert (answer["unit"], answer["file_unit"]) == ("nm", "nm")
    assert answer["model"].startswith("wavemae-tiny")
    np.testing.assert_allclose(answer["wavelengths"], GRID)
    [parsed] = answer["spectra"]
    assert parsed["id"] == "s1"
    np.testing.assert_allclose(parsed["values"], spectra.values[1], rtol=1e-6)
    assert parsed["metadata"] and parsed["missing"] == []

    with open(tmp_path / "one.jdx", "rb") as handle:  # the same file as a multipart upload
        form = http.post("/parse", files={"file": ("one.jdx", handle, "application/octet-stream")})
    assert form.status_code == 200, form.text
    assert form.json()["filename"] == "one.jdx"
    assert form.json()["spectra"] == answer["spectra"]


def test_a_wavenumber_file_is_answered_in_the_model_unit(http, tmp_path):
    wavenumbers = np.linspace(5800.0, 9200.0, 80)  # 1087-1724 nm, descending in nm
    spectra = _spectra("cm-1", wavenumbers)
    write_jcamp(spectra, tmp_path / "ir.jdx")
    response = http.post(
        "/parse",
        params={"filename": "ir.jdx"},
        content=(tmp_path / "ir.jdx").read_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["unit"], answer["file_unit"]) == ("nm", "cm-1")
    np.testing.assert_allclose(answer["wavelengths"], np.sort(1e7 / wavenumbers), rtol=1e-9)
    # values follow their wavelengths: the reversed axis reverses them
    order = np.argsort(1e7 / wavenumbers)
    np.testing.assert_allclose(answer["spectra"][0]["values"], spectra.values[0][order], rtol=1e-6)


def test_npy_and_npz(http, tmp_path):
    values = spectra_like(2, seed=9).astype(np.float32)
    npy = http.post("/parse", content=_npy(values), headers={"Content-Type": "application/x-npy"})
    assert npy.status_code == 200, npy.text
    answer = npy.json()
    assert answer["format"] == "npy" and answer["file_unit"] is None
    np.testing.assert_allclose(answer["wavelengths"], MODEL_GRID)  # a bare .npy: the model grid
    assert [s["id"] for s in answer["spectra"]] == [None, None]
    np.testing.assert_allclose([s["values"] for s in answer["spectra"]], values, rtol=1e-6)

    write_npz(_spectra(), tmp_path / "set.npz")
    with open(tmp_path / "set.npz", "rb") as handle:
        npz = http.post("/parse", files={"file": ("set.npz", handle)})
    assert npz.status_code == 200, npz.text
    assert npz.json()["format"] == "npz"
    assert [(s["id"], s["metadata"]) for s in npz.json()["spectra"]] == [
        ("s0", {"kind": "powder"}),
        ("s1", {"kind": "tablet"}),
        ("s2", {"kind": "powder"}),
    ]


def test_the_answer_embeds_like_the_file(http, tmp_path):
    spectra = _spectra()
    write_npz(spectra, tmp_path / "set.npz")
    body = (tmp_path / "set.npz").read_bytes()
    headers = {"Content-Type": "application/x-npz"}
    parsed = http.post("/parse", content=body, headers=headers).json()
    from_file = http.post("/embed", content=body, headers=headers).json()["embeddings"]
    from_json = http.post(
        "/embed",
        json={
            "spectra": [s["values"] for s in parsed["spectra"]],
            "wavelengths": parsed["wavelengths"],
        },
    ).json()["embeddings"]
    np.testing.assert_allclose(from_json, from_file, atol=1e-6)


@pytest.mark.parametrize(
    ("params", "content_type", "body", "status", "field", "words"),
    [
        ({"filename": "bad.jdx"}, "chemical/x-jcamp-dx", b"##TITLE=x\n##XYDATA=(X++(Y..Y))\nabc\n",
         422, "body", ["bad.jdx"]),
        ({"filename": "blob.spc"}, "application/octet-stream", b"\x00\x01\x02garbage",
         422, "body", ["blob.spc"]),
        ({}, "application/x-npy", _npy(np.ones((1, 10))), 422, "body", ["10 values", "64"]),
        ({}, "application/x-npy", b"not an npy file", 422, "body", []),
        ({"format": "pdf"}, "application/octet-stream", b"%PDF", 422, "format", ["pdf"]),
        ({"unit": "furlong"}, "text/csv", b"id,1100,1200\na,1,2\n", 422, "unit", ["furlong"]),
        ({}, "application/json", b'{"spectra": [[1, 2]]}', 415, None, ["spectra files"]),
        ({}, "image/png", b"\x89PNG", 415, None, ["spectra files"]),
    ],
)  # fmt: skip
def test_a_bad_file_is_a_4xx_naming_the_field(
    http, params, content_type, body, status, field, words
):
    response = http.post(
        "/parse", params=params, content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field
    for word in words:
        assert word in error["message"]


def test_size_limits_hold(start_server):
    server = start_server(max_body_bytes=4096, max_spectra_per_request=2)
    big = httpx.post(
        server.url + "/parse",
        content=_npy(np.ones((20, SEQ_LEN))),
        headers={"Content-Type": "application/x-npy"},
    )
    assert big.status_code == 413 and big.json()["error"]["field"] == "body"
    many = httpx.post(
        server.url + "/parse",
        content=_npy(np.ones((3, SEQ_LEN), np.float32)[:, :10]),
        headers={"Content-Type": "application/x-npy"},
    )
    assert many.status_code == 413, many.text
    assert "at most 2" in many.json()["error"]["message"]
