"""Helpers shared by the hardening tests (imported by name; conftest modules are not)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from wavemae.bench.servers import free_port

SEQ_LEN = 64
LATENT_DIM = 16


def service_env(artifact: Path, folder: Path, **settings: Any) -> dict[str, str]:
    """``WAVEMAE_*`` environment for a service on ``artifact`` with its library in ``folder``."""
    env = {
        "WAVEMAE_MODEL_DIR": str(artifact),
        "WAVEMAE_LIBRARY_URL": str(folder / "library.sqlite3"),
        "WAVEMAE_LOG_LEVEL": "warning",
    }
    env.update({f"WAVEMAE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class InProcessServer:
    """The real app under a real uvicorn server on a free port, in a thread of this process."""

    def __init__(self, artifact: Path, folder: Path, **settings: Any) -> None:
        import uvicorn

        from wavemae_service.app import create_app
        from wavemae_service.settings import Settings

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        library = str(folder / "library.sqlite3")
        self.app = create_app(
            Settings(model_dir=artifact, library_url=library, log_level="warning", **settings)
        )
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout_s: float = 60.0) -> InProcessServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if not self.thread.is_alive():
                break
            time.sleep(0.05)
        raise RuntimeError("in-process server did not become ready")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
