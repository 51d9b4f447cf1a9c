"""``wavemae serve``: the HTTP service; imports the service only, never torch."""

from __future__ import annotations

import typer


def serve_cmd(
    model_dir: str = typer.Option(
        None,
        "--model",
        "--model-dir",
        help="A shipped model's name (default: the general model; tablet: the tablet NIR "
        "model) or an artifact folder. Default: WAVEMAE_MODEL_DIR, else 'default'.",
    ),
    host: str = typer.Option(None, "--host", help="Bind address (default: WAVEMAE_HOST)."),
    port: int = typer.Option(None, "--port", help="Port (default: WAVEMAE_PORT, 8000)."),
    library: str = typer.Option(
        None,
        "--library",
        help="SQLite path or postgresql:// URL (default: WAVEMAE_LIBRARY_URL, "
        "./wavemae-library.sqlite3).",
    ),
) -> None:
    """Serve the model over HTTP (settings: WAVEMAE_* environment variables; see README)."""
    from wavemae_service.serve import serve
    from wavemae_service.settings import Settings

    overrides = {"model_dir": model_dir, "host": host, "port": port, "library_url": library}
    serve(Settings(**{k: v for k, v in overrides.items() if v is not None}))
