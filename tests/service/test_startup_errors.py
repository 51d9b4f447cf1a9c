"""Start-up refuses settings that would silently weaken the service, with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys

from wavemae.bench.servers import free_port


def _start(env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    """Run ``python -m wavemae_service``; it must exit by itself (a started server would not)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("WAVEMAE_")}
    base.update({"WAVEMAE_PORT": str(free_port()), "WAVEMAE_LOG_LEVEL": "warning"})
    return subprocess.run(
        [sys.executable, "-m", "wavemae_service"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_api_keys_that_hold_no_key_refuse_to_start(tmp_path):
    result = _start({"WAVEMAE_API_KEYS": " , ", "WAVEMAE_LIBRARY_URL": ":memory:"})
    assert result.returncode != 0
    assert "WAVEMAE_API_KEYS" in result.stderr and "no key" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_library_path_that_is_not_a_database_stops_start_up_with_one_line(
    tiny_artifact, tmp_path
):
    library = tmp_path / "notes.txt"
    library.write_text("this is not a SQLite database\n" * 100)
    result = _start({"WAVEMAE_MODEL_DIR": str(tiny_artifact), "WAVEMAE_LIBRARY_URL": str(library)})
    assert result.returncode != 0
    assert str(library) in result.stderr and "not a SQLite database" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
