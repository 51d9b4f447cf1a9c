"""Deploy fixtures: real service processes (``python -m
wavemae_service``, configured only through WAVEMAE_* variables, as the image and the Kubernetes
manifests run it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


class ServiceProcess:
    """One service replica on a free loopback port; ``url`` once :meth:`wait_ready` returns."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("WAVEMAE_")}
        full_env.update({"WAVEMAE_HOST": "127.0.0.1", "WAVEMAE_PORT": str(self.port), **env})
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wavemae_service"],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> ServiceProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"replica not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


@pytest.fixture
def start_replica(tiny_artifact, tmp_path) -> Iterator:
    """Factory: ``start_replica(library_url)`` -> a ready replica (stopped after the test)."""
    replicas: list[ServiceProcess] = []

    def start(library_url: str, **settings: object) -> ServiceProcess:
        env = {
            "WAVEMAE_MODEL_DIR": str(tiny_artifact),
            "WAVEMAE_LIBRARY_URL": library_url,
            "WAVEMAE_LOG_LEVEL": "warning",
            **{f"WAVEMAE_{k.upper()}": str(v) for k, v in settings.items()},
        }
        replica = ServiceProcess(env, tmp_path / f"replica{len(replicas)}.log")
        replicas.append(replica)
        return replica.wait_ready()

    yield start
    for replica in replicas:
        replica.stop()
