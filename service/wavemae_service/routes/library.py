"""The reference library: write (admin), read, page, delete, re-embed."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ..auth import require_admin, require_read
from ..errors import InvalidInput, PayloadTooLarge
from ..inputs import parse_json, parse_json_as, vector_array
from ..library.base import LibraryEntry
from ..schemas import (
    ID_DOC,
    LibraryBatchRequest,
    LibraryEntryOut,
    LibraryListResponse,
    LibraryPutRequest,
    LibraryWriteResponse,
    ReembedResponse,
)
from ..validation import check_entry_id, check_metadata, filter_from_text
from .common import (
    ERROR_RESPONSES,
    body_doc,
    check_json,
    decode,
    get_pipeline,
    json_response,
    media_type,
    read_body,
)

router = APIRouter(prefix="/library", tags=["library"])

# Lengths documented, not enforced here: check_entry_id applies the whole rule (field "id").
EntryIdPath = Annotated[
    str, Path(description=ID_DOC, json_schema_extra={"minLength": 1, "maxLength": 256})
]
_RESPONSES = {
    **ERROR_RESPONSES,
    404: {"description": "No such entry"},
    409: {"description": "Library embedded by another model version (re-embed first)"},
}


def _entry_json(entry: LibraryEntry, include_embedding: bool) -> dict[str, Any]:
    out = {
        "id": entry.id,
        "spectrum": entry.spectrum,
        "wavelengths": entry.wavelengths,
        "metadata": entry.metadata,
        "model_version": entry.model_version,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
    }
    if include_embedding:
        out["embedding"] = entry.embedding
    return out


async def _write(request: Request, items: list[tuple[str, Any, Any, dict[str, Any]]]) -> Response:
    pipeline = get_pipeline(request)
    entries = await pipeline.make_entries(items)
    await pipeline.call_store("put", entries, model_version=pipeline.model_id)
    return json_response({"ids": [e.id for e in entries], "model": pipeline.model_id})


def _spectrum(values: list[float], field: str) -> Any:
    return vector_array(values, field=field)


def _check_entry(entry_id: str, metadata: dict[str, Any], where: str, max_bytes: int) -> None:
    check_entry_id(entry_id, f"{where}id")
    check_metadata(metadata, f"{where}metadata", max_bytes=max_bytes)


@router.put(
    "/{entry_id}",
    response_model=LibraryWriteResponse,
    responses=_RESPONSES,
    openapi_extra=body_doc(LibraryPutRequest),
    dependencies=[Depends(require_admin)],
    summary="Store one reference spectrum",
)
async def put_entry(request: Request, entry_id: EntryIdPath) -> Response:
    """Embed and store (or replace) one entry; durable when the answer arrives."""
    settings = request.app.state.settings
    check_entry_id(entry_id)
    body = await read_body(request, settings.max_body_bytes)
    check_json(media_type(request))
    req = parse_json(LibraryPutRequest, body)
    _check_entry(entry_id, req.metadata, "", settings.max_metadata_bytes)
    item = (
        entry_id,
        _spectrum(req.spectrum, "spectrum"),
        vector_array(req.wavelengths, field="wavelengths"),
        req.metadata,
    )
    return await _write(request, [item])


@router.post(
    "",
    response_model=LibraryWriteResponse,
    responses=_RESPONSES,
    openapi_extra=body_doc(LibraryBatchRequest),
    dependencies=[Depends(require_admin)],
    summary="Store many reference spectra in one transaction",
)
async def post_entries(request: Request) -> Response:
    """Embed and store all entries atomically: all are stored or none."""
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    check_json(media_type(request))
    req = await decode(body, parse_json_as, LibraryBatchRequest)
    if not req.entries:
        raise InvalidInput("entries is empty", field="entries")
    if len(req.entries) > settings.max_spectra_per_request:
        raise PayloadTooLarge(
            f"entries holds {len(req.entries)} spectra; at most "
            f"{settings.max_spectra_per_request} per request",
            field="entries",
        )
    seen: dict[str, int] = {}
    items = []
    for i, entry in enumerate(req.entries):
        if entry.id in seen:
            raise InvalidInput(
                f"entries[{i}].id={entry.id!r} repeats entries[{seen[entry.id]}].id",
                field=f"entries[{i}].id",
            )
        seen[entry.id] = i
        _check_entry(entry.id, entry.metadata, f"entries[{i}].", settings.max_metadata_bytes)
        items.append(
            (
                entry.id,
                _spectrum(entry.spectrum, f"entries[{i}].spectrum"),
                vector_array(entry.wavelengths, field=f"entries[{i}].wavelengths"),
                entry.metadata,
            )
        )
    return await _write(request, items)


@router.get(
    "/{entry_id}",
    response_model=LibraryEntryOut,
    responses=_RESPONSES,
    dependencies=[Depends(require_read)],
    summary="Read one entry",
)
async def get_entry(
    request: Request,
    entry_id: EntryIdPath,
    include_embedding: Annotated[bool, Query(description="Also return the embedding.")] = False,
) -> Response:
    """The stored entry: the original spectrum and wavelengths exactly as sent, and metadata."""
    check_entry_id(entry_id)
    pipeline = get_pipeline(request)
    entry = await pipeline.call_store("get", entry_id)
    return json_response(_entry_json(entry, include_embedding))


@router.delete(
    "/{entry_id}",
    responses=_RESPONSES,
    dependencies=[Depends(require_admin)],
    summary="Delete one entry",
)
async def delete_entry(request: Request, entry_id: EntryIdPath) -> Response:
    check_entry_id(entry_id)
    pipeline = get_pipeline(request)
    await pipeline.call_store("delete", entry_id)
    return json_response({"id": entry_id, "deleted": True})


@router.get(
    "",
    response_model=LibraryListResponse,
    responses=_RESPONSES,
    dependencies=[Depends(require_read)],
    summary="Count and page through the library",
)
async def list_entries(
    request: Request,
    offset: Annotated[
        int, Query(ge=0, le=2**53, description="Entries to skip (ordered by id).")
    ] = 0,
    limit: Annotated[int, Query(ge=0, le=1000, description="Entries to return.")] = 100,
    filter: Annotated[
        str | None, Query(description='Metadata filter as JSON, e.g. {"kind": "quartz"}.')
    ] = None,
    include_embedding: Annotated[bool, Query()] = False,
) -> Response:
    pipeline = get_pipeline(request)
    metadata_filter = filter_from_text(filter)
    count = await pipeline.call_store("count", metadata_filter)
    entries = await pipeline.call_store(
        "list_entries", offset=offset, limit=limit, metadata_filter=metadata_filter
    )
    return json_response(
        {
            "count": count,
            "model_version": pipeline.store.model_version if pipeline.store else None,
            "offset": offset,
            "limit": limit,
            "entries": [_entry_json(e, include_embedding) for e in entries],
        }
    )


@router.post(
    "/reembed",
    response_model=ReembedResponse,
    responses=_RESPONSES,
    dependencies=[Depends(require_admin)],
    summary="Re-embed the library with the served model",
)
async def reembed(request: Request) -> Response:
    """Re-embed every entry written by another model version from its stored original spectrum
    (one transaction per batch); afterwards the library serves this model version."""
    pipeline = get_pipeline(request)
    settings = request.app.state.settings
    count = await asyncio.to_thread(pipeline.reembed_sync, settings.reembed_batch_size)
    return json_response(
        {
            "reembedded": count,
            "model_version": pipeline.store.model_version if pipeline.store else None,
        }
    )
