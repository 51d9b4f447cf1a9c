"""Fixtures for the hardening tests: real servers on the session's tiny model.

``tiny_artifact`` (seq_len 64, latent_dim 16) comes from the root ``tests/conftest.py``.

Servers run the way operators run them: ``python -m wavemae_service`` (what ``wavemae serve``
calls) as a subprocess on a free loopback port, configured by ``WAVEMAE_*`` variables, through
:class:`wavemae.bench.servers.ServerProcess` (the launcher ``wavemae bench`` uses). The one
exception is :class:`hardening_helpers.InProcessServer`: a real uvicorn server in a thread of
the test process, so a test can inject a fault into the running service (a crashing loop).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hardening_helpers import SEQ_LEN, service_env

from wavemae.bench.servers import ServerProcess, free_port, service_command
from wavemae.bench.spectra import synthetic_raw_spectra


@pytest.fixture
def start_service(tiny_artifact: Path, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``start_service(folder=None, **settings)`` -> a ready service subprocess.

    Servers started through it are stopped (SIGTERM, then SIGKILL) when the test ends.
    """
    servers: list[ServerProcess] = []

    def start(folder: Path | None = None, **settings: Any) -> ServerProcess:
        folder = folder or tmp_path
        port = free_port()
        env = service_env(tiny_artifact, folder, host="127.0.0.1", port=port, **settings)
        server = ServerProcess(service_command(), port, env=env, cwd=folder)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def reference(tiny_artifact: Path) -> Callable[[np.ndarray], np.ndarray]:
    """In-process ONNX Runtime embedding of raw spectra on the model grid: the right answer."""
    import onnxruntime as ort

    from wavemae.artifact import load_artifact

    artifact = load_artifact(tiny_artifact)
    session = ort.InferenceSession(
        str(artifact.file("encoder")), providers=["CPUExecutionProvider"]
    )

    def embed(raw: np.ndarray) -> np.ndarray:
        return session.run(None, {"spectra": artifact.preprocess(raw)})[0]

    return embed


@pytest.fixture(scope="session")
def raw_spectra() -> np.ndarray:
    """``(64, SEQ_LEN)`` float32 absorbance-like spectra on the model grid."""
    return synthetic_raw_spectra(64, SEQ_LEN, seed=1).astype(np.float32)
