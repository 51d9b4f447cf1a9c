"""The quick load test behind the README numbers keeps working (tiny model, a second of load)."""

from __future__ import annotations

import asyncio

from service_helpers import spectra_like

from wavemae_service.loadtest import _bodies, engine_throughput, run_clients


def test_engine_and_served_throughput_are_measured(server, tiny_artifact):
    engine = engine_throughput(tiny_artifact, spectra_like(16), threads=1, batch_sizes=(1, 4))
    assert set(engine["spectra_per_s"]) == {"1", "4"} and engine["best_spectra_per_s"] > 0
    for body in ("json", "npy"):
        bodies, headers = _bodies(spectra_like(8), body)
        result = asyncio.run(run_clients(server.url, bodies, headers, concurrency=4, seconds=0.5))
        assert result["ok"] > 0 and set(result["statuses"]) == {"200"}
        assert result["p99_ms"] >= result["p50_ms"] > 0
