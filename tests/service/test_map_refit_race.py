"""A map refitted while a replica reads it: stores on one real library (a SQLite file, or
PostgreSQL), each behind its own :class:`AnalysisService` (replicas sharing a library).

The refit is made to land exactly between two reads of the reading replica (its store runs the
refit right after its next read of the stored map), so each interleaving the race allows is
tested every run rather than by chance. (Entries are written by one replica: a SQLite library's
entries are read through each process's in-memory index.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from wavemae.cluster import unit_rows
from wavemae_service.library import LibraryEntry
from wavemae_service.library.analysis_service import AnalysisService, MapFitOptions
from wavemae_service.library.postgres import PostgresLibraryStore
from wavemae_service.library.sqlite import SQLiteLibraryStore

MODEL = "tiny:1"
DIM = 16
SEQ_LEN = 8


class _Then:
    """One replica's connection to the shared library. ``then``, when set, runs once right
    after its next read of the stored t-SNE map: another replica acting between two of its
    reads."""

    then: Callable[[], None] | None = None

    def load_analysis(self, name: str):
        row = super().load_analysis(name)  # type: ignore[misc]
        if name == "map:tsne" and self.then is not None:
            action, self.then = self.then, None
            action()
        return row


class SQLiteReplica(_Then, SQLiteLibraryStore):
    pass


class PostgresReplica(_Then, PostgresLibraryStore):
    pass


def _entries(n: int, seed: int, prefix: str) -> list[LibraryEntry]:
    rng = np.random.default_rng(seed)
    centres = unit_rows(np.random.default_rng(0).normal(size=(3, DIM)))
    z = unit_rows(centres[np.arange(n) % 3] + 0.15 * rng.normal(size=(n, DIM)))
    return [
        LibraryEntry(
            id=f"{prefix}{i:02d}",
            spectrum=rng.normal(size=SEQ_LEN),
            wavelengths=None,
            metadata={},
            embedding=z[i].astype(np.float32),
            processed=rng.normal(size=SEQ_LEN).astype(np.float32),
            model_version=MODEL,
        )
        for i in range(n)
    ]


def _replica(url: str) -> tuple[_Then, AnalysisService]:
    kind = PostgresReplica if url.startswith("postgresql") else SQLiteReplica
    store = kind(url, latent_dim=DIM, seq_len=SEQ_LEN)
    return store, AnalysisService(store, MODEL, MapFitOptions(isolation="thread"))


def _fit(service: AnalysisService) -> dict:
    """A t-SNE fit on ``service`` (a job in its thread), waited for; it stores the new map."""
    job = asyncio.run(service.start_map(method="tsne"))
    service.jobs.wait(120)
    assert job.state == "done", job.error
    return job.result


def _place(service: AnalysisService, query: np.ndarray) -> list[dict[str, float]]:
    return asyncio.run(service.place(method="tsne", embeddings=query.tolist()))["points"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def replicas(request, tmp_path):
    """Replicas "a" and "b" (and "c", which has not loaded any map yet) on one library, with a
    t-SNE map fitted by "a"."""
    if request.param == "postgres":
        path = request.getfixturevalue("fresh_postgres_url")
    else:
        path = str(tmp_path / "library.sqlite3")
    made = {"a": _replica(path)}
    made["a"][0].put(_entries(24, seed=1, prefix="e"), model_version=MODEL)
    made.update(b=_replica(path), c=_replica(path))
    _fit(made["a"][1])
    yield made
    for store, service in made.values():
        service.stop()
        store.close()


def test_a_page_placing_new_entries_while_a_refit_finishes_keeps_the_refit(replicas):
    (store_a, a), _, (_, c) = replicas.values()
    query = unit_rows(np.random.default_rng(9).normal(size=(1, DIM)))
    _place(a, query)  # "a" has the first fit's transform in memory
    store_a.put(_entries(1, seed=2, prefix="late"), model_version=MODEL)  # added after the fit

    # a map page reads the map (and places "late" with the first fit); a refit ends meanwhile
    refits: list[dict] = []
    store_a.then = lambda: refits.append(_fit(a))
    page = asyncio.run(a.map_page(method="tsne", offset=0, limit=100, fields=None))

    assert page["computed_at"] == refits[0]["computed_at"]  # the refit's map, not the old one
    assert page["unplaced"] == 0 and len(page["items"]) == 25
    again = asyncio.run(a.map_page(method="tsne", offset=0, limit=100, fields=None))
    assert again == page
    # the refit's transform still loads from the library: a replica that had none loaded
    # places the query where "a" does (before the fix: 409 map_not_loaded until a refit)
    assert _place(c, query) == _place(a, query)


def test_a_placement_while_another_replica_refits_uses_one_fit_whole(replicas):
    _, (store_b, b), (store_c, c) = replicas.values()
    query = unit_rows(np.random.default_rng(9).normal(size=(1, DIM)))

    def grow_and_refit() -> None:  # on the same entries, a refit would be the same fit
        store_b.put(_entries(1, seed=2, prefix="late"), model_version=MODEL)
        _fit(b)

    # "c" reads the stored map (the first fit) and then loads its transform; "b" refits between
    store_c.then = grow_and_refit
    placed = _place(c, query)  # not a 409: the transform and its map are read together
    assert placed == _place(b, query)  # the refit's, as every replica now places
