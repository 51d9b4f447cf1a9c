"""The library service in process, on real parts: ONNX Runtime on the tiny artifact and a SQLite
file. Re-embedding goes through the bounded embed batcher (and waits for room there instead of
failing or bypassing it), gives what /embed gives, and a second one at the same time is refused
with its own error, not the version-mismatch one."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from service_helpers import LATENT_DIM, SEQ_LEN, spectra_like

from wavemae.artifact import load_artifact
from wavemae_service.errors import (
    InvalidInput,
    LibraryVersionMismatch,
    Overloaded,
    ReembedInProgress,
)
from wavemae_service.inference import Inference
from wavemae_service.library import LibraryEntry, open_store
from wavemae_service.library.records import NewEntry, SimilarQuery
from wavemae_service.library.service import LibraryService
from wavemae_service.runtime import OnnxModel
from wavemae_service.settings import Settings

OLD = "wavemae-tiny:older"


def _old_library(path, spectra: np.ndarray) -> None:
    with open_store(path, latent_dim=LATENT_DIM, seq_len=SEQ_LEN) as store:
        store.put(
            [
                LibraryEntry(
                    id=f"old{i:02d}",
                    spectrum=row,
                    wavelengths=np.linspace(1100.0, 1700.0, SEQ_LEN),  # the tiny model's grid
                    metadata={"i": i},
                    embedding=np.eye(LATENT_DIM, dtype=np.float32)[i % LATENT_DIM],
                    processed=np.zeros(SEQ_LEN, np.float32),
                    model_version=OLD,
                )
                for i, row in enumerate(spectra)
            ],
            model_version=OLD,
        )


def _services(artifact_dir, library_path, **settings) -> tuple[Inference, LibraryService]:
    artifact = load_artifact(artifact_dir)
    config = Settings(model_dir=artifact_dir, library_url=str(library_path), **settings)
    inference = Inference(artifact, OnnxModel(artifact, device="cpu"), config)
    store = open_store(library_path, latent_dim=artifact.latent_dim, seq_len=artifact.seq_len)
    return inference, LibraryService(store, inference, reembed_batch_size=config.reembed_batch_size)


def test_reembedding_runs_through_the_batcher_and_matches_embed(tiny_artifact, tmp_path):
    path = tmp_path / "library.sqlite3"
    x = spectra_like(10, seed=41)
    _old_library(path, x)
    inference, library = _services(tiny_artifact, path, max_batch_size=4, reembed_batch_size=6)

    async def scenario():
        await inference.start()
        try:
            assert library.stale_version() == OLD
            with pytest.raises(LibraryVersionMismatch):
                await library.similar(SimilarQuery(k=1, spectra=x[:1]))
            before = inference.embedder.health()["batches"]
            result = await library.reembed()
            assert result.reembedded == 10
            batches = inference.embedder.health()["batches"] - before
            expected, _ = await inference.embed(x)
            hits = (await library.similar(SimilarQuery(k=1, spectra=x))).results
            stored = await library.get("old03")
            return batches, expected, hits, stored, result.model_version
        finally:
            await inference.stop()
            library.close()

    batches, expected, hits, stored, version = asyncio.run(scenario())
    assert batches >= 3  # 10 entries in batches of at most 4 spectra: the batcher ran them
    assert version == inference.model_id and library.stale_version() is None
    np.testing.assert_allclose(stored.embedding, expected[3], atol=1e-6)
    assert np.array_equal(stored.spectrum, x[3])  # the original is untouched
    assert [row[0]["id"] for row in hits] == [f"old{i:02d}" for i in range(10)]


def test_reembedding_waits_for_room_in_a_full_queue_instead_of_failing(tiny_artifact, tmp_path):
    path = tmp_path / "library.sqlite3"
    x = spectra_like(8, seed=42)
    _old_library(path, x)
    # A lone request waits 300 ms for company; at most 4 spectra may queue.
    inference, library = _services(
        tiny_artifact, path, max_batch_size=2, max_wait_ms=300, max_queue_spectra=4
    )

    async def scenario():
        await inference.start()
        try:
            waiting = asyncio.create_task(inference.embed(x[:1]))
            await asyncio.sleep(0.05)  # the request is queued, its batch not yet closed
            with pytest.raises(Overloaded):  # a request of 8 is refused at once...
                await inference.embed(x)
            started = time.perf_counter()
            count = (await library.reembed()).reembedded  # ...re-embedding 8 waits for room
            await waiting
            return count, time.perf_counter() - started
        finally:
            await inference.stop()
            library.close()

    count, seconds = asyncio.run(scenario())
    assert count == 8
    assert seconds >= 0.1  # it did wait for the queued request's batch to leave


def test_a_second_reembedding_at_once_is_refused_as_in_progress(tiny_artifact, tmp_path):
    path = tmp_path / "library.sqlite3"
    x = spectra_like(4, seed=43)
    _old_library(path, x)
    # Every batch waits 400 ms for company, so the first re-embedding is still running.
    inference, library = _services(tiny_artifact, path, max_wait_ms=400, max_batch_size=64)

    async def scenario():
        await inference.start()
        try:
            first = asyncio.create_task(library.reembed())
            deadline = time.monotonic() + 10
            while not library.reembedding:
                assert time.monotonic() < deadline, "the first re-embedding never started"
                await asyncio.sleep(0.01)
            with pytest.raises(ReembedInProgress) as refused:
                await library.reembed()
            return refused.value, (await first).reembedded
        finally:
            await inference.stop()
            library.close()

    error, count = asyncio.run(scenario())
    assert count == 4
    assert error.status == 409 and error.type == "reembed_in_progress"
    assert error.type != LibraryVersionMismatch.type


def test_put_refuses_a_spectrum_the_model_cannot_take_and_stores_nothing(tiny_artifact, tmp_path):
    inference, library = _services(tiny_artifact, tmp_path / "library.sqlite3")
    good = spectra_like(1, seed=44)[0]
    narrow = np.linspace(1200.0, 1300.0, 10)  # the tiny model needs half of 1100-1700 nm

    async def scenario():
        await inference.start()
        try:
            items = [
                NewEntry("a", good, None, {}, field="entries[0].spectrum"),
                NewEntry("b", good[:10], narrow, {}, field="entries[1].spectrum"),
            ]
            with pytest.raises(InvalidInput) as refused:
                await library.put(items)
            return refused.value, await library.count()
        finally:
            await inference.stop()
            library.close()

    error, count = asyncio.run(scenario())
    assert error.status == 422 and "1200-1300" in error.message
    assert count == 0  # all or nothing
