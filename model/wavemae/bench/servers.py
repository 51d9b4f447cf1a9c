"""Start a server as a subprocess on a free loopback port, wait until it is ready, stop it.

The one launcher for ``wavemae bench`` (the service, the peer and the eager baseline) and for
every test suite that runs a real server (``tests/service``, ``tests/deploy``,
``tests/hardening``). stdlib + httpx only, so it runs where torch is not installed. The child's
output goes to a log file whose tail is shown when start-up fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

__all__ = [
    "ServerProcess",
    "baseline_command",
    "free_port",
    "peer_command",
    "service_command",
    "service_process",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_command(*args: str) -> list[str]:
    """The service (what ``wavemae serve`` runs) with this interpreter; settings come from
    ``WAVEMAE_*`` environment variables."""
    return [sys.executable, "-m", "wavemae_service", *args]


def baseline_command(
    port: int, model_dir: str | os.PathLike, torch_threads: int | None = None
) -> list[str]:
    """The hand-written FastAPI + PyTorch eager baseline on 127.0.0.1:``port``."""
    argv = [sys.executable, "-m", "wavemae.bench.baseline_app", "--model-dir", str(model_dir)]
    argv += ["--port", str(port)]
    if torch_threads:
        argv += ["--torch-threads", str(torch_threads)]
    return argv


def peer_command(port: int, model_dir: str | os.PathLike) -> list[str]:
    """The peer: a plain FastAPI ``def`` endpoint over one ONNX Runtime session, on ``port``."""
    module = "wavemae.bench.peer_app"
    return [sys.executable, "-m", module, "--model-dir", str(model_dir), "--port", str(port)]


class ServerProcess:
    """A server child process; use as a context manager or call :meth:`start`/:meth:`stop`.

    Args:
        argv: the command; it must serve HTTP on 127.0.0.1:``port``.
        port: the port the command listens on.
        env: extra environment variables for the child.
        ready_path: polled until it answers 200.
        startup_timeout_s: how long start-up may take.
        cwd: the child's working directory (default: this process's).
        log_path: keep the child's output in this file (appended); default a temporary file
            deleted on :meth:`close`.
        inherit_wavemae_env: pass this process's ``WAVEMAE_*`` variables on to the child (the
            bench does, so an operator's settings reach the server it starts); tests do not,
            so a developer's shell cannot change what they test.
    """

    def __init__(
        self,
        argv: Sequence[str],
        port: int,
        *,
        env: Mapping[str, str] | None = None,
        ready_path: str = "/readyz",
        startup_timeout_s: float = 90.0,
        cwd: str | os.PathLike | None = None,
        log_path: str | os.PathLike | None = None,
        inherit_wavemae_env: bool = True,
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        inherited = {
            k: v
            for k, v in os.environ.items()
            if inherit_wavemae_env or not k.startswith("WAVEMAE_")
        }
        self.env = {**inherited, **(env or {})}
        self.ready_path = ready_path
        self.startup_timeout_s = startup_timeout_s
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        # Closed in close(): the log must outlive start() and stop() for log_tail().
        if log_path is None:
            self._log = tempfile.NamedTemporaryFile(prefix="wavemae-server-", suffix=".log")  # noqa: SIM115
            self.log_path = Path(self._log.name)
        else:
            self.log_path = Path(log_path)
            self._log = open(self.log_path, "ab")  # noqa: SIM115

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server is not started")
        return self.process.pid

    def log_tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters of the child's stdout and stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self, wait: bool = True) -> ServerProcess:
        """Start the child and (unless ``wait`` is False) wait until it is ready.

        Raises:
            RuntimeError: with the log tail, if the child exits or is not ready in time.
        """
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self.wait_ready() if wait else self

    def wait_ready(self) -> ServerProcess:
        """Poll ``ready_path`` until it answers 200.

        Raises:
            RuntimeError: with the log tail, if the child exits or is not ready in time.
        """
        if self.process is None:
            raise RuntimeError("the server is not started")
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"server exited with code {self.process.returncode} during start-up: "
                        f"{' '.join(self.argv)}\n{self.log_tail()}"
                    )
                try:
                    if client.get(self.url + self.ready_path).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"server not ready within {self.startup_timeout_s} s: {' '.join(self.argv)}\n"
            f"{self.log_tail()}"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int | None:
        """Send ``sig`` and wait; kill after ``timeout_s``. Returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def kill9(self) -> None:
        """SIGKILL the child (no shutdown hook runs) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def close(self) -> None:
        """Stop the child if it still runs and close its log."""
        self.stop()
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def service_process(
    env: Mapping[str, str],
    *,
    log_path: str | os.PathLike | None = None,
    cwd: str | os.PathLike | None = None,
    startup_timeout_s: float = 90.0,
) -> ServerProcess:
    """``python -m wavemae_service`` on a free loopback port, configured only by ``env``.

    ``WAVEMAE_HOST``/``WAVEMAE_PORT`` are set here; ``WAVEMAE_*`` variables of this process
    are not passed on. Not started: call :meth:`ServerProcess.start` (or use ``with``).
    """
    port = free_port()
    env = {**env, "WAVEMAE_HOST": "127.0.0.1", "WAVEMAE_PORT": str(port)}
    return ServerProcess(
        service_command(),
        port,
        env=env,
        cwd=cwd,
        log_path=log_path,
        startup_timeout_s=startup_timeout_s,
        inherit_wavemae_env=False,
    )
