"""Service settings, read from ``WAVEMAE_*`` environment variables (or a ``.env`` file).

Read them once through :func:`get_settings` (cached); tests build ``Settings(...)`` directly and
pass it to :func:`wavemae_service.app.create_app`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_LIBRARY_PATH", "Settings", "get_settings"]

#: Default embedded library file, relative to the working directory so it is easy to find,
#: back up and mount (containers point WAVEMAE_LIBRARY_URL at a volume instead).
DEFAULT_LIBRARY_PATH = "./wavemae-library.sqlite3"


def _split_keys(value: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in value.split(",") if k.strip())


class Settings(BaseSettings):
    """Every knob of the service. Environment variable = ``WAVEMAE_`` + upper-case field name."""

    model_config = SettingsConfigDict(
        env_prefix="WAVEMAE_", env_file=".env", extra="ignore", protected_namespaces=()
    )

    # -- model and runtime ------------------------------------------------------------------
    model_dir: str | None = Field(
        None,
        description="The model to serve: a shipped model's name ('default': the general model, "
        "any instrument and intensity scale; 'tablet': the tablet NIR model on its fixed "
        "600-1792 nm grid) or an artifact folder (manifest.json + ONNX files). Default: "
        "'default'.",
    )
    verify_checksums: bool = Field(
        True, description="Check every artifact file's sha256 against the manifest at start-up."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="ONNX Runtime execution provider: 'cuda' requires CUDAExecutionProvider, "
        "'auto' uses it when onnxruntime-gpu offers it, else CPU. The choice is logged and "
        "shown at GET /model.",
    )
    encoder_precision: Literal["fp32", "int8"] = Field(
        "fp32",
        description="Encoder graph for /embed, /similar and the library: 'int8' serves the "
        "artifact's dynamically quantised encoder (start-up fails if it has none).",
    )
    intra_op_threads: int = Field(
        1,
        ge=0,
        description="ONNX Runtime threads inside one operator (0 = ONNX Runtime's default, one "
        "per core). Small by default: HTTP parsing needs the other cores.",
    )
    inter_op_threads: int = Field(
        1, ge=0, description="ONNX Runtime threads across operators (0 = default)."
    )
    allow_spinning: bool = Field(
        False,
        description="Let ONNX Runtime worker threads busy-wait between operators (lower latency "
        "per batch, but burns CPU that the HTTP side could use).",
    )
    warmup: bool = Field(True, description="Run each graph once per batch shape before ready.")

    # -- micro-batching -------------------------------------------------------------------
    # Defaults measured with `wavemae bench serve` on 2 CPU cores: batching gains nothing for a
    # model this size on CPU, while two workers with small batches keep both cores busy
    # (served spectra/s at 32 clients 2.0x the single-worker setting; README, Performance).
    max_batch_size: int = Field(
        8, ge=1, description="A batch closes when it holds this many spectra (requests are split)."
    )
    max_wait_ms: float = Field(
        0.0,
        ge=0,
        description="A batch also closes this long after its first spectrum arrived "
        "(0 = run whatever is queued as soon as the engine is free).",
    )
    inference_workers: int = Field(
        2,
        ge=1,
        description="Batches run at once, each in its own thread (ONNX Runtime sessions are "
        "thread-safe). Above 1 helps a heavy model on a machine with cores to spare; keep "
        "intra_op_threads x inference_workers within the cores left after HTTP.",
    )
    max_queue_spectra: int = Field(
        2048,
        ge=1,
        description="Spectra waiting for inference beyond which requests get 429 + Retry-After.",
    )
    retry_after_s: int = Field(1, ge=0, description="Retry-After seconds sent with a 429.")
    inference_timeout_s: float = Field(
        30.0, gt=0, description="A request waiting longer than this for inference gets 503."
    )
    batch_stall_s: float = Field(
        10.0,
        gt=0,
        description="/readyz turns 503 when a batch has been running longer than this.",
    )

    # -- request limits ---------------------------------------------------------------------
    min_coverage: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Smallest fraction of the model's grid a caller's wavelengths must cover; "
        "bands outside the caller's range are hidden from the masked encoder, and requests "
        "covering less answer 422 naming both ranges.",
    )
    max_spectra_per_request: int = Field(
        1024, ge=1, description="More spectra in one request answer 413."
    )
    max_body_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Larger request bodies answer 413."
    )
    max_cube_pixels: int = Field(
        1024 * 1024,
        ge=1,
        description="Largest hyperspectral cube POST /embed/cube takes, in pixels (rows x cols); "
        "larger cubes answer 413. The answer is held as a file of pixels x latent_dim float32 "
        "(256 MiB at the default and latent_dim 64), written as the chunks are embedded.",
    )
    max_cube_bytes: int = Field(
        2 * 1024 * 1024 * 1024,
        ge=1024,
        description="Largest POST /embed/cube upload in bytes; it is streamed to a temporary "
        "file (never held in memory), so this bounds disk, not memory. Larger uploads answer "
        "413.",
    )
    cube_chunk_pixels: int = Field(
        512,
        ge=1,
        description="Pixels of a cube read and preprocessed at once: memory per cube request "
        "beyond its answer is about two chunks (one read ahead). The chunk enters the embed "
        "queue one batch at a time, at most 2 x inference_workers batches at once, waiting "
        "for room rather than answering 429, so interactive requests keep their turn.",
    )
    max_concurrent_cubes: int = Field(
        2,
        ge=1,
        description="POST /embed/cube requests handled at once (each holds a temporary upload "
        "of up to max_cube_bytes and its answer on disk, and queues cube batches); one more "
        "answers 429 with Retry-After before its upload is read.",
    )
    max_metadata_bytes: int = Field(
        16 * 1024,
        ge=2,
        description="Largest metadata object of one library entry, as compact JSON; larger "
        "ones answer 413. Bounds what every search hit can carry.",
    )
    max_search_response_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Largest /similar answer; a search whose hits' metadata would exceed it "
        "answers 422 (ask for fewer queries or a smaller k, select metadata 'fields', or set "
        "include_metadata=false).",
    )

    # -- library ----------------------------------------------------------------------------
    library_url: str = Field(
        DEFAULT_LIBRARY_PATH,
        description="Reference library: a SQLite file path (default ./wavemae-library.sqlite3, "
        "':memory:' for a throw-away one) or postgresql://user:pass@host/db for the shared "
        "PostgreSQL + pgvector store.",
    )
    reembed_on_start: bool = Field(
        True,
        description="At start-up, re-embed a library written by another model version, in the "
        "background (/similar and library writes answer 409 until it is done; without it, "
        "until POST /library/reembed).",
    )
    reembed_batch_size: int = Field(256, ge=1, description="Entries per re-embedding transaction.")

    # -- clusters and maps (README, Clusters and maps) --------------------------------------
    map_fit_isolation: Literal["process", "thread"] = Field(
        "process",
        description="Where a UMAP/t-SNE fit runs: 'process' = a spawned child process (the "
        "serving process keeps its GIL: /embed p99 during a fit measured in `wavemae bench "
        "cluster`), killed when the server stops; 'thread' = a thread of the serving process "
        "(slows every request during a fit; only for platforms that cannot spawn processes).",
    )
    map_fit_memory_mb: int = Field(
        8192,
        ge=0,
        description="Address-space limit (RLIMIT_AS, MiB) of the map fit process: a fit that "
        "needs more fails (the job reports it) instead of pushing the server out of memory. "
        "A 3,000-entry t-SNE peaked at 0.8 GiB of address space (0.3 GiB resident); a "
        "100,000-entry UMAP needs about 2.4 GiB of arrays more. 0 = no limit.",
    )
    map_transform_max_mb: int = Field(
        512,
        ge=1,
        description="Largest fitted map transform kept in the library (compressed: about 0.9 "
        "KiB per entry for UMAP, 3 KiB for t-SNE, so 100,000 entries fit); a larger one is not "
        "stored: the map serves its coordinates, placing new points answers 409 "
        "map_not_loaded.",
    )
    map_transform_key: str = Field(
        "",
        description="Secret for an HMAC-SHA256 over every stored map transform (the same on "
        "every replica; never stored in the library). Transforms are pickles, so with a key "
        "only a holder of it can make one that the server will unpickle; without, the library "
        "database is trusted like the model directory (README, Clusters and maps).",
    )
    map_warmup: bool = Field(
        True,
        description="At start-up (and after a map fit here), load the stored maps' fitted "
        "transforms and place one dummy point in a background thread, so the first placement "
        "does not compile UMAP's numba kernels (10-18 s); requests meanwhile wait for it.",
    )

    # -- auth -------------------------------------------------------------------------------
    api_keys: str = Field(
        "",
        description="Comma-separated read keys (embed, reconstruct, similar, library reads). "
        "Auth is off when this and admin_keys are both empty. Send as 'Authorization: Bearer "
        "KEY' or 'X-API-Key: KEY'.",
    )
    admin_keys: str = Field(
        "",
        description="Comma-separated admin keys: everything a read key may do, plus library "
        "writes and re-embedding.",
    )

    # -- server -----------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `wavemae serve` binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port `wavemae serve` listens on.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Log level of the service and uvicorn."
    )
    shutdown_delay_s: float = Field(
        1.0,
        ge=0,
        description="On SIGTERM, keep serving this long with /readyz answering 503 (load "
        "balancers stop routing here; requests already sent are still read), then shut down.",
    )
    drain_timeout_s: float = Field(
        30.0,
        ge=0,
        description="During shutdown, wait at most this long for in-flight requests to finish.",
    )

    # -- connections (README, Limits) -------------------------------------------------------
    keep_alive_timeout_s: float = Field(
        5.0, gt=0, description="An idle keep-alive connection is closed after this many seconds."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A connection must deliver a request's complete headers within this many "
        "seconds of opening (or of its previous answer), else it is closed (slow-header "
        "clients hold a socket each).",
    )
    max_header_bytes: int = Field(
        16 * 1024,
        ge=1024,
        description="Request line plus headers larger than this answer 431 and are closed.",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="Open connections beyond this are closed as soon as they are accepted (their "
        "file descriptor freed at once). Lowered at start-up to fit the process's open-file "
        "limit (ulimit -n).",
    )

    @field_validator("model_dir", mode="before")
    @classmethod
    def _path_is_a_model(cls, value: object) -> object:
        # A folder may come as a Path (Settings(model_dir=Path(...))): the same as its text.
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @model_validator(mode="after")
    def _keys_are_keys(self) -> Settings:
        # ' , ' must not silently turn auth off: it says the operator meant to set keys.
        for name, value, keys in (
            ("WAVEMAE_API_KEYS", self.api_keys, self.read_keys),
            ("WAVEMAE_ADMIN_KEYS", self.admin_keys, self.admin_key_list),
        ):
            if value.strip() and not keys:
                raise ValueError(
                    f"{name}={value!r} holds no key (only commas and spaces); set keys or "
                    "leave it empty to turn auth off"
                )
        return self

    @property
    def read_keys(self) -> tuple[str, ...]:
        return _split_keys(self.api_keys)

    @property
    def admin_key_list(self) -> tuple[str, ...]:
        return _split_keys(self.admin_keys)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.read_keys or self.admin_key_list)

    def resolved_model_dir(self) -> Path:
        """The artifact folder to load: the shipped model named by ``model_dir``, the folder
        it names, or the shipped default model.

        Raises:
            wavemae.artifact.ArtifactError: for a name that is neither a shipped model nor an
                existing folder, listing the shipped names.
        """
        from wavemae.artifact import resolve_model_dir

        return resolve_model_dir(self.model_dir)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
