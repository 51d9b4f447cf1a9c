"""Spectra as labs send them, through real uvicorn: instrument files on every endpoint,
partial coverage, missing bands and units (issue 12)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from service_helpers import spectra_like

from wavemae.data import Spectra, write_csv_long, write_csv_wide, write_jcamp, write_spc

GRID = np.linspace(1090.0, 1710.0, 90)  # covers the tiny model's 1100-1700 nm


def _spectra(n: int = 3, grid: np.ndarray = GRID, seed: int = 0) -> Spectra:
    return Spectra(
        spectra_like(n, seed=seed, length=grid.size),
        grid,
        "nm",
        ids=[f"s{i}" for i in range(n)],
        metadata=[{"kind": "tablet" if i % 2 else "powder"} for i in range(n)],
    )


def _json_embed(http, spectra: Spectra) -> np.ndarray:
    body = {"spectra": spectra.values.tolist(), "wavelengths": spectra.wavelengths.tolist()}
    response = http.post("/embed", json=body)
    assert response.status_code == 200, response.text
    return np.array(response.json()["embeddings"])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    spectra = _spectra()
    write_csv_wide(spectra, folder / "wide.csv")
    write_csv_long(spectra, folder / "long.csv")
    write_jcamp(spectra, folder / "one.jdx", index=1)
    write_spc(spectra, folder / "many.spc")
    return spectra, folder


def test_every_format_embeds_as_its_json_does(http, files):
    spectra, folder = files
    expected = _json_embed(http, spectra)
    wide = http.post(
        "/embed", content=(folder / "wide.csv").read_bytes(), headers={"Content-Type": "text/csv"}
    )
    assert wide.status_code == 200, wide.text
    assert wide.json()["ids"] == ["s0", "s1", "s2"]
    np.testing.assert_allclose(wide.json()["embeddings"], expected, atol=1e-5)

    with open(folder / "long.csv", "rb") as handle:
        long = http.post("/embed", files={"file": ("long.csv", handle, "text/csv")})
    assert long.status_code == 200, long.text
    np.testing.assert_allclose(long.json()["embeddings"], expected, atol=1e-5)

    jdx = http.post(
        "/embed",
        content=(folder / "one.jdx").read_bytes(),
        headers={"Content-Type": "chemical/x-jcamp-dx"},
    )
    assert jdx.status_code == 200, jdx.text
    np.testing.assert_allclose(jdx.json()["embeddings"][0], expected[1], atol=1e-3)

    spc = http.post(
        "/embed",
        params={"filename": "many.spc"},
        content=(folder / "many.spc").read_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert spc.status_code == 200, spc.text
    np.testing.assert_allclose(spc.json()["embeddings"], expected, atol=1e-4)
    assert spc.json()["coverage"] == [1.0, 1.0, 1.0]
    assert spc.json()["warnings"] == [[], [], []]


def test_reconstruct_similar_and_library_take_files(http, files):
    _, folder = files
    wide = (folder / "wide.csv").read_bytes()
    recon = http.post("/reconstruct", content=wide, headers={"Content-Type": "text/csv"})
    assert recon.status_code == 200, recon.text
    assert np.array(recon.json()["reconstructions"]).shape == (3, GRID.size)

    stored = http.post("/library", content=wide, headers={"Content-Type": "text/csv"})
    assert stored.status_code == 200, stored.text
    assert stored.json()["ids"] == ["s0", "s1", "s2"]
    entry = http.get("/library/s1").json()
    assert entry["metadata"] == {"kind": "tablet"}
    np.testing.assert_allclose(entry["wavelengths"], GRID)

    with open(folder / "one.jdx", "rb") as handle:
        found = http.post(
            "/similar",
            params={"k": 1, "filter": '{"kind": "tablet"}'},
            files={"file": ("one.jdx", handle, "chemical/x-jcamp-dx")},
        )
    assert found.status_code == 200, found.text
    assert found.json()["results"][0][0]["id"] == "s1"


@pytest.mark.parametrize(
    ("name", "content_type", "body", "words"),
    [
        ("bad.jdx", "chemical/x-jcamp-dx", b"##TITLE=x\n##XYDATA=(X++(Y..Y))\nabc\n", ["bad.jdx"]),
        ("bad.csv", "text/csv", b"id,1100,1200\na,1.0,zz\n", ["bad.csv", "line"]),
        ("blob.bin", "application/octet-stream", b"\x00\x01\x02garbage", ["blob.bin", "format"]),
    ],
)
def test_a_broken_upload_is_a_4xx_naming_it(http, name, content_type, body, words):
    response = http.post(
        "/embed", params={"filename": name}, content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    for word in words:
        assert word in message


def test_library_upload_without_ids_is_refused(http):
    body = b"1100,1400,1700\n1.0,1.1,1.2\n"
    response = http.post("/library", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 422
    assert "ids" in response.json()["error"]["message"]


def test_partial_coverage_is_hidden_and_reported(http):
    grid = np.linspace(1100.0, 1500.0, 60)  # 2/3 of the model's 1100-1700 nm
    values = spectra_like(2, seed=4, length=grid.size)
    body = {"spectra": values.tolist(), "wavelengths": grid.tolist()}
    response = http.post("/embed", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert 0.6 < answer["coverage"][0] < 0.7
    assert any("coverage" in w for w in answer["warnings"][0])
    norms = np.linalg.norm(answer["embeddings"], axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)

    recon = http.post("/reconstruct", json=body).json()
    assert np.isfinite(np.array(recon["reconstructions"], dtype=float)).all()

    narrow = http.post(
        "/embed", json={"spectra": values[:, :10].tolist(), "wavelengths": grid[:10].tolist()}
    )
    assert narrow.status_code == 422
    message = narrow.json()["error"]["message"]
    assert "1100-1700 nm" in message and "min_coverage" in message


def test_units_convert_and_implausible_axes_get_a_hint(http):
    values = spectra_like(1, seed=5, length=GRID.size)
    in_nm = _json_embed(http, Spectra(values, GRID, "nm"))
    wavenumbers = 1e7 / GRID[::-1]
    body = {"spectra": values[:, ::-1].tolist(), "wavelengths": wavenumbers.tolist()}
    as_cm = http.post("/embed", json={**body, "unit": "cm-1"})
    assert as_cm.status_code == 200, as_cm.text
    np.testing.assert_allclose(as_cm.json()["embeddings"], in_nm, atol=1e-5)

    as_um = http.post(
        "/embed",
        json={"spectra": values.tolist(), "wavelengths": (GRID / 1000).tolist(), "unit": "µm"},
    )
    np.testing.assert_allclose(as_um.json()["embeddings"], in_nm, atol=1e-5)

    unsaid = http.post("/embed", json=body)
    assert unsaid.status_code == 422
    assert "unit=cm-1" in unsaid.json()["error"]["message"]
    bad = http.post("/embed", json={**body, "unit": "furlong"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "unit"

    put = http.put(
        "/library/in-um",
        json={"spectrum": values[0].tolist(), "wavelengths": (GRID / 1000).tolist(), "unit": "um"},
    )
    assert put.status_code == 200, put.text
    np.testing.assert_allclose(http.get("/library/in-um").json()["wavelengths"], GRID)


def test_missing_on_embed_hides_bands_from_the_encoder(http, reference):
    values = spectra_like(1, seed=6)
    full = http.post("/embed", json={"spectra": values.tolist()}).json()["embeddings"][0]
    hidden = http.post("/embed", json={"spectra": values.tolist(), "missing": [[[1300, 1400]]]})
    assert hidden.status_code == 200, hidden.text
    got = np.array(hidden.json()["embeddings"][0])
    visible = ~((reference.artifact.wavelengths >= 1300) & (reference.artifact.wavelengths <= 1400))
    x, _ = reference.preprocess(values)
    z = reference.sessions["encoder_masked"].run(
        None, {"spectra": x.astype(np.float32), "visible": visible[None, :]}
    )[0][0]
    np.testing.assert_allclose(got, z / np.linalg.norm(z), atol=1e-5)
    assert not np.allclose(got, full, atol=1e-4)


def test_nan_is_missing_when_asked_and_refused_otherwise(http, reference):
    values = spectra_like(1, seed=7)
    dead = values.copy()
    dead[0, 20:26] = np.nan
    text = '{"spectra": [[' + ", ".join("NaN" if np.isnan(v) else repr(float(v)) for v in dead[0])
    refused = http.post("/embed", content=text + "]]}")
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "spectra[0][20]"
    assert "nan_as_missing" in refused.json()["error"]["message"]

    hidden = http.post("/embed", content=text + ']], "nan_as_missing": true}')
    assert hidden.status_code == 200, hidden.text
    listed = http.post(
        "/embed", json={"spectra": values.tolist(), "missing": [list(range(20, 26))]}
    )
    np.testing.assert_allclose(hidden.json()["embeddings"], listed.json()["embeddings"], atol=1e-3)

    nulls = dead.tolist()
    nulls[0] = [None if np.isnan(v) else v for v in nulls[0]]
    assert http.post("/reconstruct", json={"spectra": nulls, "nan_as_missing": True}).is_success

    buffer = io.BytesIO()
    np.save(buffer, dead.astype(np.float32))
    npy = buffer.getvalue()
    headers = {"Content-Type": "application/x-npy"}
    assert http.post("/embed", content=npy, headers=headers).status_code == 422
    as_missing = http.post(
        "/embed", params={"nan_as_missing": "true"}, content=npy, headers=headers
    )
    assert as_missing.status_code == 200, as_missing.text


def test_uploads_are_read_without_torch(files):
    import subprocess
    import sys

    _, folder = files
    code = (
        "import sys; from pathlib import Path; from wavemae_service.inputs import read_spectra; "
        "from wavemae_service.uploads import UploadOptions; "
        f"body = read_spectra(Path({str(folder / 'many.spc')!r}).read_bytes(), "
        "'application/octet-stream', max_spectra=10, options=UploadOptions(filename='many.spc')); "
        "assert body.values.shape[0] == 3; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_similar_takes_missing_and_nan_as_missing(http):
    values = spectra_like(1, seed=11)
    probe = {"spectrum": values[0].tolist(), "metadata": {"group": "probe"}}
    http.put("/library/probe", json=probe).raise_for_status()
    only = '"filter": {"group": "probe"}, '

    dead = values.copy()
    dead[0, 30:34] = np.nan
    text = ", ".join("NaN" if np.isnan(v) else repr(float(v)) for v in dead[0])
    refused = http.post("/similar", content='{"spectra": [[' + text + "]]}")
    assert refused.status_code == 422 and "nan_as_missing" in refused.json()["error"]["message"]
    found = http.post(
        "/similar", content="{" + only + '"nan_as_missing": true, "spectra": [[' + text + "]]}"
    )
    assert found.status_code == 200, found.text
    listed = http.post(
        "/similar",
        json={
            "filter": {"group": "probe"},
            "spectra": values.tolist(),
            "missing": [[30, 31, 32, 33]],
        },
    )
    assert found.json()["results"][0][0]["id"] == listed.json()["results"][0][0]["id"] == "probe"
    np.testing.assert_allclose(
        found.json()["results"][0][0]["score"], listed.json()["results"][0][0]["score"], atol=1e-3
    )


def test_csv_dead_bands_are_missing_when_asked(http):
    values = spectra_like(1, seed=12, length=GRID.size)
    cells = [repr(float(v)) for v in values[0]]
    cells[40], cells[41] = "NaN", ""  # a saturated band, an empty cell
    text = "id," + ",".join(repr(float(w)) for w in GRID) + "\nq," + ",".join(cells) + "\n"
    headers = {"Content-Type": "text/csv"}
    refused = http.post("/embed", params={"filename": "dead.csv"}, content=text, headers=headers)
    assert refused.status_code == 422
    assert "dead.csv" in refused.json()["error"]["message"]
    hidden = http.post(
        "/embed",
        params={"filename": "dead.csv", "nan_as_missing": "true"},
        content=text,
        headers=headers,
    )
    assert hidden.status_code == 200, hidden.text
    listed = http.post(
        "/embed",
        json={"spectra": values.tolist(), "wavelengths": GRID.tolist(), "missing": [[40, 41]]},
    )
    np.testing.assert_allclose(hidden.json()["embeddings"], listed.json()["embeddings"], atol=1e-3)
