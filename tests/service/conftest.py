"""Service fixtures: a tiny exported artifact, real uvicorn servers on free ports, references.

The tiny artifact comes from the root conftest (``tiny_artifact``, session scope).
Servers run as subprocesses (``python -m wavemae_service``) configured through WAVEMAE_*
environment variables, exactly as an operator would run them, so a test can also ``kill -9`` one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from wavemae.bench.servers import ServerProcess, service_process


@pytest.fixture(scope="session")
def start_server(tiny_artifact, tmp_path_factory):
    """Factory: ``start_server(**WAVEMAE_settings)`` -> ready ServerProcess (stopped at the end)."""
    servers: list[ServerProcess] = []

    def start(wait: bool = True, **settings: object) -> ServerProcess:
        folder = tmp_path_factory.mktemp("server")
        env = {
            "WAVEMAE_MODEL_DIR": str(tiny_artifact),
            "WAVEMAE_LIBRARY_URL": str(folder / "library.sqlite3"),
            "WAVEMAE_LOG_LEVEL": "warning",
        }
        env.update({f"WAVEMAE_{k.upper()}": str(v) for k, v in settings.items()})
        server = service_process(env, log_path=folder / "server.log")
        servers.append(server)
        return server.start(wait=wait)

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def server(start_server) -> ServerProcess:
    """The shared server: a 20 ms window and batches up to 64 so concurrent requests batch."""
    return start_server(max_wait_ms=20, max_batch_size=64)


@pytest.fixture
def http(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client


class Reference:
    """In-process ONNX Runtime on the same artifact: what every answer must equal."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime as ort

        from wavemae.artifact import load_artifact

        self.artifact = load_artifact(folder)
        self.pre = self.artifact.preprocessor
        self.sessions = {
            role: ort.InferenceSession(
                str(self.artifact.file(role)), providers=["CPUExecutionProvider"]
            )
            for role in ("encoder", "encoder_masked", "decoder")
        }

    def preprocess(self, values, wavelengths=None):
        return self.pre.transform_with_state(np.asarray(values, np.float64), wavelengths)

    def embed_processed(self, x: np.ndarray) -> np.ndarray:
        return self.sessions["encoder"].run(None, {"spectra": x.astype(np.float32)})[0]

    def embed(self, values, wavelengths=None) -> np.ndarray:
        return self.embed_processed(self.preprocess(values, wavelengths)[0])

    def reconstruct(self, values, visible=None):
        """Spectra on the model grid -> reconstructions in the caller's scale on that grid."""
        x, state = self.preprocess(values)
        if visible is None:
            z = self.embed_processed(x)
        else:
            z = self.sessions["encoder_masked"].run(None, {"spectra": x, "visible": visible})[0]
        recon = self.sessions["decoder"].run(None, {"embedding": z})[0]
        return self.pre.inverse_transform(recon, state)


@pytest.fixture(scope="session")
def reference(tiny_artifact) -> Reference:
    return Reference(tiny_artifact)
