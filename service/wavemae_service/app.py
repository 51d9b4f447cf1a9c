"""The FastAPI application: factory, lifespan, error handlers and request metrics.

Start-up (lifespan): load and verify the artifact, open the ONNX sessions and check their tensors
against the manifest, warm up, open the library, start the batch loops, then report ready. Any
failure stops start-up with the reason (uvicorn exits non-zero). A library written by another
model version is re-embedded in the background when ``reembed_on_start`` (it answers 409 until
done, while /embed and /reconstruct already serve). On shutdown (SIGTERM) uvicorn stops
accepting connections and waits up to ``drain_timeout_s`` for in-flight requests; then the batch
loops drain and the library closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__
from .errors import (
    CONNECTION_ERRORS,
    InternalError,
    InvalidInput,
    ServiceError,
    error_body,
    openapi_responses,
    type_for_status,
)
from .inference import Inference
from .inputs import field_name
from .library.analysis_service import AnalysisService, MapFitOptions
from .library.service import LibraryService
from .metrics import ServiceMetrics
from .routes import ROUTERS
from .routes.common import json_response, single_valued_query
from .routes.cube import CubeSlots
from .routes.ui import router as ui_router
from .schemas import (
    ClustersRequest,
    EmbedRequest,
    LibraryBatchRequest,
    LibraryPutRequest,
    MapPlaceRequest,
    MapRequest,
    ReconstructRequest,
    SimilarRequest,
)
from .settings import Settings, get_settings

__all__ = ["create_app"]

log = logging.getLogger("wavemae_service")
#: One line per request at info: method, path, status, milliseconds.
access_log = logging.getLogger("wavemae_service.requests")

_REQUEST_MODELS = (
    EmbedRequest,
    ReconstructRequest,
    SimilarRequest,
    LibraryPutRequest,
    LibraryBatchRequest,
    ClustersRequest,
    MapRequest,
    MapPlaceRequest,
)


def _load(
    settings: Settings, metrics: ServiceMetrics
) -> tuple[Inference, LibraryService, AnalysisService]:
    """Blocking start-up work; returns the (not yet started) inference layer, the library and
    its clusters and maps."""
    from wavemae.artifact import load_artifact

    from .library import open_store
    from .runtime import OnnxModel

    model_dir = settings.resolved_model_dir()
    started = time.perf_counter()
    artifact = load_artifact(model_dir, verify=settings.verify_checksums)
    model = OnnxModel(
        artifact,
        device=settings.device,
        encoder_precision=settings.encoder_precision,
        intra_op_threads=settings.intra_op_threads,
        inter_op_threads=settings.inter_op_threads,
        allow_spinning=settings.allow_spinning,
    )
    if settings.warmup:
        model.warm_up(tuple(sorted({1, settings.max_batch_size})))
    store = None
    if settings.library_url:
        store = open_store(
            settings.library_url, latent_dim=artifact.latent_dim, seq_len=artifact.seq_len
        )
    inference = Inference(artifact, model, settings, observer=metrics)
    library = LibraryService(
        store,
        inference,
        reembed_batch_size=settings.reembed_batch_size,
        max_search_response_bytes=settings.max_search_response_bytes,
    )
    metrics.model_info.labels(artifact.name, artifact.version, ",".join(model.providers)).set(1)
    log.info(
        "serving %s from %s on %s (library: %s) — ready after %.2f s",
        artifact.model_id,
        model_dir,
        ",".join(model.providers),
        library.backend or "none",
        time.perf_counter() - started,
    )
    map_options = MapFitOptions(
        isolation=settings.map_fit_isolation,
        memory_mb=settings.map_fit_memory_mb,
        transform_max_bytes=settings.map_transform_max_mb * 2**20,
        transform_key=settings.map_transform_key,
    )
    return inference, library, AnalysisService(store, artifact.model_id, map_options)


async def _reembed(library: LibraryService, old_version: str) -> None:
    """Start-up re-embedding in the background: /embed and /reconstruct serve meanwhile, the
    library answers 409 until it finishes. A failure is logged; the library keeps its version."""
    log.info("re-embedding the library (%s -> %s)", old_version, library.model_id)
    try:
        await library.reembed()
    except ServiceError as exc:
        log.error("re-embedding the library failed: %s", exc.message)
    except Exception:
        log.exception("re-embedding the library failed")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    inference, library, analysis = await asyncio.to_thread(_load, settings, app.state.metrics)
    stale_version = await asyncio.to_thread(library.stale_version)
    await inference.start()
    app.state.inference = inference
    app.state.library = library
    app.state.analysis = analysis
    app.state.ready = True
    if settings.map_warmup:
        analysis.warm_maps_in_background()
    reembedding = None
    if stale_version is not None:
        if settings.reembed_on_start:
            reembedding = asyncio.create_task(_reembed(library, stale_version))
        else:
            log.warning(
                "the library is embedded with %s, not %s: /similar and library writes answer "
                "409 until POST /library/reembed",
                stale_version,
                library.model_id,
            )
    try:
        yield
    finally:
        app.state.ready = False
        library.stop()  # a background re-embedding stops after its current batch
        await asyncio.to_thread(analysis.stop)  # a running map fit's process is killed
        await inference.stop(settings.drain_timeout_s)
        if reembedding is not None:
            await reembedding
        library.close()
        log.info("stopped")


class _RequestMetrics:
    """Pure ASGI middleware: count and time every HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            seconds = time.perf_counter() - started
            self.metrics.observe_request(endpoint, scope["method"], status, seconds)
            access_log.info(
                "%s %s %d %.1f ms", scope["method"], scope["path"], status, seconds * 1000
            )


def _error_response(exc: ServiceError) -> Any:
    response = json_response(error_body(exc.type, exc.message, exc.field), exc.status)
    response.headers.update(exc.headers())
    return response


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> Any:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Any:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = tuple(p for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        where = field_name(loc) if loc else None
        message = f"{where}: {first['msg']}" if where else str(first["msg"])
        return json_response(error_body(InvalidInput.type, message, where), InvalidInput.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Any:
        error_type = type_for_status(exc.status_code)
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        response = json_response(error_body(error_type, message), exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Any:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return json_response(
            error_body(InternalError.type, "the server failed to process the request"),
            InternalError.status,
        )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the hand-parsed request bodies' models in components."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    # Any operation can meet the connection layer's answers (malformed HTTP, slow or huge
    # headers) before its route runs: document them everywhere.
    connection_responses = openapi_responses(*CONNECTION_ERRORS)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, response in connection_responses.items():
                responses.setdefault(
                    str(status),
                    {
                        "description": response["description"],
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                            }
                        },
                    },
                )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in _REQUEST_MODELS:
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(model_schema.pop("$defs", {}))
        components[model.__name__] = model_schema
    app.openapi_schema = schema
    return schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service. Nothing is loaded until the lifespan starts (uvicorn, TestClient).

    Args:
        settings: explicit settings; default :func:`get_settings` (the environment).
    """
    settings = settings or get_settings()
    logging.getLogger("wavemae_service").setLevel(settings.log_level.upper())
    app = FastAPI(
        title="WaveMAE service",
        version=__version__,
        description="Embeddings, reconstructions and library search for 1-D spectra "
        "(NIR, mid-IR, Raman) with a WaveMAE model on ONNX Runtime. Errors have the shape "
        '`{"error": {"type", "message", "field"}}`.',
        lifespan=_lifespan,
        dependencies=[Depends(single_valued_query)],
        docs_url=None,  # /docs and /redoc come from routes/ui.py, with self-hosted assets
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.ready = False
    app.state.draining = False  # set on SIGTERM (serve.py): /readyz 503, requests still served
    app.state.inference = None
    app.state.library = None
    app.state.metrics = ServiceMetrics()
    app.state.cube_slots = CubeSlots(settings.max_concurrent_cubes)
    _install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(ui_router)
    app.add_middleware(_RequestMetrics, metrics=app.state.metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
