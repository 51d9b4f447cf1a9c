"""``/similar`` with ``space="spectrum"`` on an axis-relative model, through real uvicorn, on
SQLite and PostgreSQL: each library entry keeps its own axis and unit, and a query on another
range or in another unit is compared with it on their common range.

The artifact is a tiny random-weight export whose manifest says ``axis: relative``; the
spectrum search does not use the embeddings, so what is asserted is what a user reads off the
hit list (the right entry first, exclude in the caller's unit, no hit without a common range).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from wavemae.bench.servers import service_process

NIR = np.linspace(1100.0, 2500.0, 700)  # the library's nm axis
FAMILIES = {"a": (1300.0, 1900.0), "b": (1450.0, 2100.0), "c": (1600.0, 2300.0)}
BUMP_NM = 1650.0  # where "b-bump" differs from "b"
# Answers per backend, compared by the last test.
ANSWERS: dict[str, dict[str, object]] = {}


def _spectrum(nm: np.ndarray, centres: tuple[float, ...], bump: bool = False) -> np.ndarray:
    """A spectrum defined on the physical axis (nm): broad bands on a sloping baseline."""
    y = 0.2 + 1e-4 * nm + sum(np.exp(-(((nm - c) / 60.0) ** 2)) for c in centres)
    if bump:
        y = y + 0.8 * np.exp(-(((nm - BUMP_NM) / 15.0) ** 2))
    return y


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def http(request, tiny_relative_artifact, tmp_path_factory) -> Iterator[httpx.Client]:
    """A server of the relative model with the library below, on a fresh SQLite file or a
    fresh PostgreSQL schema."""
    folder = tmp_path_factory.mktemp(f"relative-{request.param}")
    library = str(folder / "library.sqlite3")
    if request.param == "postgres":
        import psycopg

        library = request.getfixturevalue("postgres_url")
        with psycopg.connect(library, autocommit=True) as conn:
            for (table,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchall():
                conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    env = {
        "WAVEMAE_MODEL_DIR": str(tiny_relative_artifact),
        "WAVEMAE_LIBRARY_URL": library,
        "WAVEMAE_LOG_LEVEL": "warning",
    }
    with (
        service_process(env, log_path=folder / "server.log") as server,
        httpx.Client(base_url=server.url, timeout=60.0) as client,
    ):
        entries = [
            {
                "id": name,
                "spectrum": _spectrum(NIR, c).tolist(),
                "wavelengths": NIR.tolist(),
                "unit": "nm",
            }
            for name, c in FAMILIES.items()
        ]
        entries.append(
            {
                "id": "b-bump",
                "spectrum": _spectrum(NIR, FAMILIES["b"], bump=True).tolist(),
                "wavelengths": NIR.tolist(),
                "unit": "nm",
            }
        )
        mid_ir = np.linspace(4000.0, 400.0, 900)  # cm-1: 2500-25000 nm, no NIR overlap
        entries.append(
            {
                "id": "mid-ir",
                "spectrum": (1.0 + np.sin(mid_ir / 300.0)).tolist(),
                "wavelengths": mid_ir.tolist(),
                "unit": "cm-1",
            }
        )
        response = client.post("/library", json={"entries": entries})
        assert response.status_code == 200, response.text
        client.backend = request.param  # type: ignore[attr-defined]
        yield client


def _similar(http: httpx.Client, body: dict, name: str | None = None) -> dict:
    response = http.post("/similar", json={"space": "spectrum", "k": 5, **body})
    assert response.status_code == 200, response.text
    answer = response.json()
    for hits in answer["results"]:
        assert all(np.isfinite(h["score"]) for h in hits)
    if name:
        ANSWERS.setdefault(http.backend, {})[name] = answer["results"]  # type: ignore[attr-defined]
    return answer


def _scores(answer: dict) -> dict[str, float]:
    return {hit["id"]: hit["score"] for hit in answer["results"][0]}


def test_a_query_on_a_sub_range_finds_its_entry_and_says_what_was_not_compared(http):
    nm = np.linspace(1350.0, 2050.0, 333)  # inside the library's 1100-2500 nm
    answer = _similar(
        http,
        {
            "spectra": [_spectrum(nm, FAMILIES["c"]).tolist()],
            "wavelengths": nm.tolist(),
            "unit": "nm",
        },
        "sub-range",
    )
    hits = answer["results"][0]
    assert hits[0]["id"] == "c" and hits[0]["score"] > 99.0
    assert "mid-ir" not in {h["id"] for h in hits}  # shares no range with the query
    assert any("1 of 5 library entries were not compared" in w for w in answer["warnings"][0])
    # without a unit the query's numbers are read as they are: the same answer here
    plain = _similar(
        http, {"spectra": [_spectrum(nm, FAMILIES["c"]).tolist()], "wavelengths": nm.tolist()}
    )
    assert plain["results"][0][0]["id"] == "c"


def test_a_query_in_wavenumbers_finds_the_entry_stored_in_nm(http):
    wavenumbers = np.linspace(8000.0, 4200.0, 400)  # cm-1, decreasing: 1250-2381 nm
    y = _spectrum(1e7 / wavenumbers, FAMILIES["b"])
    answer = _similar(
        http,
        {"spectra": [y.tolist()], "wavelengths": wavenumbers.tolist(), "unit": "cm-1"},
        "cm-1",
    )
    hits = answer["results"][0]
    assert hits[0]["id"] == "b" and hits[0]["score"] > 99.0
    assert hits[1]["id"] == "b-bump"  # the same sample but for one band: next, clearly below
    assert hits[0]["gap"] > 0.5


def test_exclude_in_the_callers_unit_leaves_the_differing_band_out(http):
    wavenumbers = np.linspace(8000.0, 4200.0, 400)
    body = {
        "spectra": [_spectrum(1e7 / wavenumbers, FAMILIES["b"]).tolist()],
        "wavelengths": wavenumbers.tolist(),
        "unit": "cm-1",
        "preprocessing": "none",
    }
    plain = _scores(_similar(http, body))
    # 1550-1750 nm, where b-bump differs from b, as the caller's cm-1
    band = [1e7 / 1750.0, 1e7 / 1550.0]
    excluded = _scores(_similar(http, body | {"exclude": [band]}, "exclude"))
    assert plain["b-bump"] < 99.0
    assert excluded["b-bump"] > 99.99 and excluded["b"] > 99.99
    assert excluded["b-bump"] > plain["b-bump"] + 1.0
    # the same numbers read as nm exclude nothing of a cm-1 query: scores unchanged
    as_nm = _scores(_similar(http, body | {"exclude": [[1550.0, 1750.0]]}))
    assert as_nm["b-bump"] == pytest.approx(plain["b-bump"], abs=1e-6)
    # an exclude that leaves fewer than 3 points of the query's own axis: the request's error
    response = http.post("/similar", json=body | {"space": "spectrum", "exclude": [[4000, 9000]]})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "exclude"


def test_a_query_sharing_no_range_gets_no_hits_and_a_warning(http):
    nm = np.linspace(600.0, 1000.0, 200)  # below every entry's range
    answer = _similar(
        http,
        {
            "spectra": [_spectrum(nm, (800.0,)).tolist()] * 2,
            "wavelengths": nm.tolist(),
            "unit": "nm",
        },
    )
    assert answer["results"] == [[], []]
    assert all(
        any("5 of 5 library entries were not compared" in w for w in row)
        for row in answer["warnings"]
    )
    # a mid-IR query finds the mid-IR entry only
    wavenumbers = np.linspace(3000.0, 1000.0, 500)
    answer = _similar(
        http,
        {
            "spectra": [(1.0 + np.sin(wavenumbers / 300.0)).tolist()],
            "wavelengths": wavenumbers.tolist(),
            "unit": "cm-1",
        },
        "mid-ir",
    )
    assert [h["id"] for h in answer["results"][0]] == ["mid-ir"]
    assert answer["results"][0][0]["score"] > 99.0
    assert any("4 of 5 library entries were not compared" in w for w in answer["warnings"][0])


def test_the_entry_keeps_its_unit(http):
    entry = http.get("/library/mid-ir").json()
    assert entry["unit"] == "cm-1" and entry["wavelengths"][0] == 4000.0


def test_both_backends_give_the_same_answers(http):
    other = next((b for b in ANSWERS if b != http.backend), None)  # type: ignore[attr-defined]
    if other is None:
        pytest.skip("the other backend has not run in this session")
    mine, theirs = ANSWERS[http.backend], ANSWERS[other]  # type: ignore[attr-defined]
    assert mine.keys() == theirs.keys()
    for name in mine:
        for a, b in zip(mine[name], theirs[name], strict=True):  # type: ignore[call-overload]
            assert [h["id"] for h in a] == [h["id"] for h in b], name
            np.testing.assert_allclose(
                [h["score"] for h in a], [h["score"] for h in b], rtol=0, atol=1e-9
            )
