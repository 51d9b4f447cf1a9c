"""Deploy fixtures: real service processes (``python -m
wavemae_service``, configured only through WAVEMAE_* variables, as the image and the Kubernetes
manifests run it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wavemae.bench.servers import ServerProcess, service_process


@pytest.fixture
def start_replica(tiny_artifact, tmp_path) -> Iterator:
    """Factory: ``start_replica(library_url)`` -> a ready replica (stopped after the test)."""
    replicas: list[ServerProcess] = []

    def start(library_url: str, **settings: object) -> ServerProcess:
        env = {
            "WAVEMAE_MODEL_DIR": str(tiny_artifact),
            "WAVEMAE_LIBRARY_URL": library_url,
            "WAVEMAE_LOG_LEVEL": "warning",
            **{f"WAVEMAE_{k.upper()}": str(v) for k, v in settings.items()},
        }
        replica = service_process(env, log_path=tmp_path / f"replica{len(replicas)}.log")
        replicas.append(replica)
        return replica.start()

    yield start
    for replica in replicas:
        replica.close()
