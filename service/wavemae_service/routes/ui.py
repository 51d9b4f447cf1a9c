"""The dashboard at ``/`` and self-hosted API docs at ``/docs`` and ``/redoc``.

Every file comes from the package's ``ui/`` folder (the dashboard's HTML, JavaScript and CSS,
and the vendored uPlot, Swagger UI and ReDoc builds), so the pages work in an air-gapped lab:
nothing is fetched from a CDN. The files are public (they hold no data); every API call the
page makes carries the user's key and is checked as usual.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

__all__ = ["UI_DIR", "router"]

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".md": ""}


def _static_files(root: Path) -> dict[str, Path]:
    """Relative path -> file, for every file under ``root``: the only paths ``/ui/`` serves, so
    no request path is ever joined onto the file system."""
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


_FILES = _static_files(UI_DIR)
# Vendored builds change only with the package; the dashboard's own files may change on upgrade.
_CACHE = {"vendor": "public, max-age=86400", "own": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def dashboard() -> Response:
    """The dashboard's page."""
    return FileResponse(_FILES["index.html"], media_type="text/html", headers=_cache("index.html"))


@router.get("/ui/{path:path}")
async def ui_file(path: str) -> Response:
    """One file of the dashboard (404 for anything not shipped in the package's ``ui/``)."""
    file = _FILES.get(path)
    if file is None:
        raise HTTPException(404, f"no dashboard file {path!r}")
    media_type = _MEDIA_TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0]
    return FileResponse(file, media_type=media_type or "text/plain", headers=_cache(path))


def _cache(path: str) -> dict[str, str]:
    return {"Cache-Control": _CACHE["vendor" if path.startswith("vendor/") else "own"]}


@router.get("/docs")
async def swagger_ui(request: Request) -> Response:
    """Swagger UI from the vendored swagger-ui-dist build."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API docs",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_js_url="/ui/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/ui/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/ui/vendor/swagger-ui/favicon-32x32.png",
        # No spec validator badge: it would send the schema to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> Response:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> Response:
    """ReDoc from the vendored standalone build, without Google Fonts."""
    return get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API reference",
        redoc_js_url="/ui/vendor/redoc/redoc.standalone.js",
        redoc_favicon_url="/ui/vendor/swagger-ui/favicon-32x32.png",
        with_google_fonts=False,
    )
