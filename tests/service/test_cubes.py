"""Hyperspectral cubes through real uvicorn: POST /embed/cube answers per-pixel embeddings
equal to embedding the same pixels as a plain batch on /embed, in chunks, within its limits."""

from __future__ import annotations

import io
import json
import select
import socket

import httpx
import numpy as np
import pytest
import spectral.io.envi as envi
from service_helpers import LATENT_DIM, SEQ_LEN, spectra_like

NPY = "application/x-npy"
GRID = np.linspace(1090.0, 1710.0, 90)  # covers the tiny model's 1100-1700 nm
MAX_PIXELS = 100


@pytest.fixture(scope="module")
def cube_http(start_server):
    """A server whose cubes go through in chunks of 7 pixels (rows split across chunks, and a
    row of more than 7 pixels split by columns) with a small pixel and byte limit, and a queue
    of one spectrum: every cube batch after the first meets a full queue, which /embed would
    answer with 429 and a cube must wait out."""
    server = start_server(
        cube_chunk_pixels=7,
        max_cube_pixels=MAX_PIXELS,
        max_cube_bytes=200_000,
        max_wait_ms=5,
        max_batch_size=2,
        max_queue_spectra=1,
    )
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


def _cube(rows: int, cols: int, length: int, seed: int = 0) -> np.ndarray:
    return spectra_like(rows * cols, seed=seed, length=length).reshape(rows, cols, length)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _load(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == NPY
    return np.load(io.BytesIO(response.content))


def _embed(http: httpx.Client, pixels: np.ndarray, **fields) -> np.ndarray:
    body = {"spectra": [[None if np.isnan(v) else v for v in row] for row in pixels.tolist()]}
    body.update(fields)
    response = http.post("/embed", json=body)
    assert response.status_code == 200, response.text
    return np.array(response.json()["embeddings"])


def test_a_npy_cube_embeds_each_pixel_as_embed_does(cube_http):
    cube = _cube(5, 9, GRID.size).astype(np.float32)  # 45 pixels: rows of 9 > chunk of 7
    response = cube_http.post(
        "/embed/cube",
        content=_npy(cube),
        headers={"Content-Type": NPY},
        params={"wavelengths": ",".join(f"{w:.6f}" for w in GRID)},
    )
    embeddings = _load(response)
    assert embeddings.shape == (5, 9, LATENT_DIM) and embeddings.dtype == np.float32
    expected = _embed(
        cube_http, cube.reshape(-1, GRID.size).astype(np.float64), wavelengths=GRID.tolist()
    )
    np.testing.assert_allclose(embeddings.reshape(-1, LATENT_DIM), expected, atol=1e-5)
    assert float(response.headers["X-WaveMAE-Coverage"]) == 1.0
    assert json.loads(response.headers["X-WaveMAE-Warnings"]) == []
    assert response.headers["X-WaveMAE-Missing-Pixels"] == "0"


def test_a_cube_on_the_models_grid_needs_no_wavelengths_and_may_come_as_a_form(cube_http):
    cube = _cube(3, 2, SEQ_LEN, seed=1)
    with_form = cube_http.post(
        "/embed/cube", files={"cube": ("scene.npy", _npy(cube), "application/octet-stream")}
    )
    expected = _embed(cube_http, cube.reshape(-1, SEQ_LEN))
    np.testing.assert_allclose(_load(with_form).reshape(-1, LATENT_DIM), expected, atol=1e-5)

    off_grid = _cube(2, 2, GRID.size, seed=6)
    with_axis = cube_http.post(
        "/embed/cube",
        files={"cube": ("scene.npy", _npy(off_grid))},
        data={"wavelengths": json.dumps(GRID.tolist())},  # a JSON list works too
    )
    expected = _embed(cube_http, off_grid.reshape(-1, GRID.size), wavelengths=GRID.tolist())
    np.testing.assert_allclose(_load(with_axis).reshape(-1, LATENT_DIM), expected, atol=1e-5)


def test_an_envi_cube_embeds_with_the_headers_axis_unit_and_bad_bands(cube_http, tmp_path):
    cube = _cube(4, 3, GRID.size, seed=2).astype(np.float32)
    wavenumbers = 1e7 / GRID[::-1]  # ascending cm-1 = descending nm: the axis must be reordered
    in_file = cube[:, :, ::-1].copy()
    bbl = np.ones(GRID.size, dtype=int)
    bbl[[5, 40]] = 0  # flagged bad: hidden from the encoder whatever they hold
    in_file[:, :, [5, 40]] = 1e30
    envi.save_image(
        str(tmp_path / "scene.hdr"),
        in_file,
        interleave="bsq",  # band-sequential: every chunk is a strided read
        metadata={
            "wavelength": [f"{w:.6f}" for w in wavenumbers],
            "wavelength units": "Wavenumber",
            "bbl": bbl.tolist(),
        },
        force=True,
    )
    response = cube_http.post(
        "/embed/cube",
        files={
            "cube": ("scene.img", (tmp_path / "scene.img").read_bytes()),
            "header": ("scene.hdr", (tmp_path / "scene.hdr").read_bytes()),
        },
    )
    embeddings = _load(response)
    assert embeddings.shape == (4, 3, LATENT_DIM)
    # The same pixels on /embed: the file's cm-1 axis, the bad bands sent as NaN = missing.
    pixels = in_file.reshape(-1, GRID.size).astype(np.float64)
    pixels[:, [5, 40]] = np.nan
    expected = _embed(
        cube_http,
        pixels,
        wavelengths=wavenumbers.tolist(),
        unit="cm-1",
        nan_as_missing=True,
    )
    np.testing.assert_allclose(embeddings.reshape(-1, LATENT_DIM), expected, atol=1e-5)
    warnings = json.loads(response.headers["X-WaveMAE-Warnings"])
    assert any("2 bands flagged bad" in w for w in warnings)


def test_a_cube_covering_part_of_the_models_range_goes_through_the_masked_encoder(cube_http):
    partial = np.linspace(1300.0, 1900.0, 80)  # the tiny model's grid is 1100-1700 nm
    cube = _cube(2, 5, partial.size, seed=5)
    response = cube_http.post(
        "/embed/cube",
        content=_npy(cube),
        headers={"Content-Type": NPY},
        params={"wavelengths": " ".join(f"{w:.6f}" for w in partial)},
    )
    expected = cube_http.post(
        "/embed",
        json={"spectra": cube.reshape(-1, partial.size).tolist(), "wavelengths": partial.tolist()},
    ).json()
    np.testing.assert_allclose(
        _load(response).reshape(-1, LATENT_DIM), expected["embeddings"], atol=1e-5
    )
    assert float(response.headers["X-WaveMAE-Coverage"]) == pytest.approx(expected["coverage"][0])
    assert json.loads(response.headers["X-WaveMAE-Warnings"])[0].startswith("low coverage")


def test_nan_pixels_are_refused_by_position_or_hidden_on_request(cube_http):
    cube = _cube(2, 4, SEQ_LEN, seed=3)
    cube[1, 2, 10:13] = np.nan
    refused = cube_http.post("/embed/cube", content=_npy(cube), headers={"Content-Type": NPY})
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "cube[1][2][10]"
    assert "nan_as_missing" in refused.json()["error"]["message"]

    hidden = cube_http.post(
        "/embed/cube",
        content=_npy(cube),
        headers={"Content-Type": NPY},
        params={"nan_as_missing": "true"},
    )
    expected = _embed(cube_http, cube.reshape(-1, SEQ_LEN), nan_as_missing=True)
    np.testing.assert_allclose(_load(hidden).reshape(-1, LATENT_DIM), expected, atol=1e-5)
    assert hidden.headers["X-WaveMAE-Missing-Pixels"] == "1"


def test_a_cube_over_the_limits_is_413_naming_the_limit(cube_http):
    too_many = cube_http.post(
        "/embed/cube", content=_npy(_cube(11, 10, 8)), headers={"Content-Type": NPY}
    )
    assert too_many.status_code == 413
    assert "max_cube_pixels" in too_many.json()["error"]["message"]
    assert "110 pixels" in too_many.json()["error"]["message"]

    # The header is enough: a .npy declaring a million pixels is refused as it arrives.
    declared = _npy(np.zeros((1000, 1000, 8), dtype=np.float32))[:1024]
    early = cube_http.post("/embed/cube", content=declared, headers={"Content-Type": NPY})
    assert early.status_code == 413
    assert "1000000 pixels" in early.json()["error"]["message"]

    too_big = cube_http.post(
        "/embed/cube",
        content=_npy(np.zeros((10, 10, 300))),  # 100 pixels, but 240 kB over 200 kB
        headers={"Content-Type": NPY},
    )
    assert too_big.status_code == 413
    assert "max_cube_bytes" in too_big.json()["error"]["message"]

    def chunked():  # no Content-Length: the limit is counted as the body arrives
        body = _npy(np.zeros((10, 10, 300)))
        for start in range(0, len(body), 16384):
            yield body[start : start + 16384]

    streamed = cube_http.post("/embed/cube", content=chunked(), headers={"Content-Type": NPY})
    assert streamed.status_code == 413
    assert "max_cube_bytes" in streamed.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "params", "field", "says"),
    [
        (_npy(np.ones((4, SEQ_LEN))), {}, "cube", "(rows, cols, bands)"),
        (b"not a numpy file", {}, "cube", "numpy.save"),
        (_npy(np.ones((2, 2, 8), dtype=np.complex64)), {}, "cube", "dtype"),
        (_npy(np.ones((2, 2, 30))), {}, "wavelengths", "30 bands"),
        (_npy(np.ones((2, 2, 3))), {"wavelengths": "1100,1200"}, "wavelengths", "2 values"),
        (_npy(np.ones((2, 2, 3))), {"wavelengths": "1100,x,1300"}, "wavelengths[1]", "'x'"),
        (_npy(np.ones((2, 2, 3))), {"wavelengths": "1100,1300,1200"}, "wavelengths", "increasing"),
        (_npy(np.ones((2, 2, SEQ_LEN))), {"unit": "furlong"}, "unit", "furlong"),
        (_npy(np.ones((2, 2, 3))), {"wavelengths": "2000 2100 2200"}, "wavelengths", "0%"),
    ],
)
def test_a_bad_cube_is_a_422_naming_the_field(cube_http, body, params, field, says):
    response = cube_http.post(
        "/embed/cube", content=body, headers={"Content-Type": NPY}, params=params
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert says in error["message"]


def test_a_cube_in_another_body_or_form_is_refused(cube_http):
    text = cube_http.post("/embed/cube", content=b"1,2,3", headers={"Content-Type": "text/csv"})
    assert text.status_code == 415
    no_file = cube_http.post("/embed/cube", files={"other": ("x.npy", b"...")})
    assert no_file.status_code == 422
    assert no_file.json()["error"]["field"] == "cube"
    broken_header = cube_http.post(
        "/embed/cube",
        files={"cube": ("x.img", b"\0" * 64), "header": ("x.hdr", b"not an ENVI header")},
    )
    assert broken_header.status_code == 422


def _scene(http: httpx.Client, folder, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 3 x 4 cube saved as ``scene.npy`` and as the ENVI pair ``scene.hdr``/``scene.img``
    in ``folder``, and its pixels' embeddings from /embed."""
    cube = _cube(3, 4, GRID.size, seed=seed).astype(np.float32)
    np.save(folder / "scene.npy", cube)
    envi.save_image(
        str(folder / "scene.hdr"),
        cube,
        metadata={"wavelength": [f"{w:.6f}" for w in GRID], "wavelength units": "nm"},
        force=True,
    )
    expected = _embed(
        http, cube.reshape(-1, GRID.size).astype(np.float64), wavelengths=GRID.tolist()
    )
    return cube, expected


def test_the_python_client_sends_arrays_npy_files_and_envi_pairs(cube_http, tmp_path):
    from wavemae_service.client import WaveMAEClient, WaveMAEError

    cube, expected = _scene(cube_http, tmp_path, seed=4)
    with WaveMAEClient(str(cube_http.base_url)) as client:
        from_array = client.embed_cube(cube, GRID)
        from_file = client.embed_cube(tmp_path / "scene.npy", GRID)
        from_envi = client.embed_cube(tmp_path / "scene.img", header=tmp_path / "scene.hdr")
        with pytest.raises(WaveMAEError) as refused:
            client.embed_cube(cube, GRID[:-1])
    for answer in (from_array, from_file, from_envi):
        assert answer.shape == (3, 4, LATENT_DIM)
        np.testing.assert_allclose(answer.reshape(-1, LATENT_DIM), expected, atol=1e-5)
    assert refused.value.status == 422 and refused.value.field == "wavelengths"


def test_the_async_client_sends_cubes_as_the_sync_one_does(cube_http, tmp_path):
    import asyncio

    from wavemae_service.client import AsyncWaveMAEClient, WaveMAEError

    cube, expected = _scene(cube_http, tmp_path, seed=5)

    async def send() -> tuple[list[np.ndarray], WaveMAEError]:
        async with AsyncWaveMAEClient(str(cube_http.base_url)) as client:
            answers = [
                await client.embed_cube(cube, GRID),
                await client.embed_cube(tmp_path / "scene.npy", GRID),
                await client.embed_cube(tmp_path / "scene.img", header=tmp_path / "scene.hdr"),
            ]
            try:
                await client.embed_cube(cube, GRID[:-1])
            except WaveMAEError as exc:
                return answers, exc
        raise AssertionError("a wavelength count that is not the band count was accepted")

    answers, refused = asyncio.run(send())
    for answer in answers:
        assert answer.shape == (3, 4, LATENT_DIM)
        np.testing.assert_allclose(answer.reshape(-1, LATENT_DIM), expected, atol=1e-5)
    assert refused.status == 422 and refused.field == "wavelengths"


def test_a_cube_label_image_assigns_each_pixel_as_include_cluster_does(cube_http):
    from wavemae_service.client import WaveMAEClient

    rng = np.random.default_rng(11)
    bases = spectra_like(3, seed=4)
    pixels = np.array([bases[i % 3] * rng.uniform(0.9, 1.1) for i in range(12)])
    cube = pixels.reshape(3, 4, SEQ_LEN)
    params = {"output": "labels"}
    refused = cube_http.post(
        "/embed/cube", content=_npy(cube), headers={"Content-Type": NPY}, params=params
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == {
        **refused.json()["error"],
        "type": "clusters_not_computed",
        "field": "output",
    }

    with WaveMAEClient(str(cube_http.base_url), timeout=120) as client:
        client.put_many([{"id": f"p{i:02d}", "spectrum": row} for i, row in enumerate(pixels)])
        client.cluster(method="kmeans", k=3)
        _, expected = client.embed(pixels, include_cluster=True)
    response = cube_http.post(
        "/embed/cube", content=_npy(cube), headers={"Content-Type": NPY}, params=params
    )
    labels = _load(response)
    assert labels.shape == (3, 4) and labels.dtype == np.int32
    assert labels.reshape(-1).tolist() == expected["labels"]
    assert len(set(labels.reshape(-1).tolist())) == 3  # three families, three labels
    summary = json.loads(response.headers["X-WaveMAE-Clusters"])
    assert summary["method"] == "kmeans" and summary["k"] == 3


def _start_upload(url: str, body: bytes, sent: int) -> socket.socket:
    """A raw HTTP/1.1 cube upload that has sent its headers and ``sent`` bytes of ``body``:
    the server may answer it before the rest arrives, which an HTTP client would not read."""
    parsed = httpx.URL(url)
    conn = socket.create_connection((parsed.host, parsed.port), timeout=30)
    head = (
        f"POST /embed/cube HTTP/1.1\r\nHost: {parsed.host}\r\nContent-Type: {NPY}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    conn.sendall(head + body[:sent])
    return conn


def _read_answer(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of the answer on ``conn`` (it closes)."""
    raw = b""
    while chunk := conn.recv(65536):
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


def test_cubes_beyond_max_concurrent_cubes_get_429_with_retry_after(start_server):
    server = start_server(max_concurrent_cubes=1)
    cube = _npy(_cube(2, 3, SEQ_LEN))
    # Two uploads that both stall after 64 bytes: whichever reaches the route first holds the
    # one slot, and the other is refused at once, before its upload is read.
    uploads = [_start_upload(server.url, cube, 64) for _ in range(2)]
    try:
        answered, _, _ = select.select(uploads, [], [], 30)
        assert len(answered) == 1, "exactly one of two stalled cubes must be refused at once"
        refused_conn = answered[0]
        holder = uploads[1 - uploads.index(refused_conn)]
        status, headers, body = _read_answer(refused_conn)
        assert status == 429
        assert int(headers["retry-after"]) > 0
        error = json.loads(body)["error"]
        assert error["type"] == "overloaded" and "max_concurrent_cubes=1" in error["message"]
        with httpx.Client(base_url=server.url, timeout=30) as http:  # /embed is not limited
            pixel = _cube(1, 1, SEQ_LEN)[0].tolist()
            assert http.post("/embed", json={"spectra": pixel}).status_code == 200
        holder.sendall(cube[64:])  # the held upload completes and is embedded
        status, _, body = _read_answer(holder)
        assert status == 200, body
        assert np.load(io.BytesIO(body)).shape == (2, 3, LATENT_DIM)
    finally:
        for conn in uploads:
            conn.close()
    with httpx.Client(base_url=server.url, timeout=30) as http:  # the slot is free again
        again = http.post("/embed/cube", content=cube, headers={"Content-Type": NPY})
        assert again.status_code == 200, again.text
