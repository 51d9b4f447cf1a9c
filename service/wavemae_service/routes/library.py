"""The reference library: write (admin), read, page, delete, re-embed."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ..auth import require_admin, require_read
from ..errors import (
    InvalidInput,
    LibraryVersionMismatch,
    NotFound,
    PayloadTooLarge,
    ReembedInProgress,
    openapi_responses,
)
from ..inputs import SpectraBody, check_json, parse_json, to_model_unit, vector_array
from ..library.base import LibraryEntry
from ..library.records import NewEntry
from ..library.service import LibraryService
from ..schemas import (
    ID_DOC,
    LibraryBatchRequest,
    LibraryEntryOut,
    LibraryListResponse,
    LibraryPutRequest,
    LibraryWriteResponse,
    ReembedResponse,
)
from ..uploads import check_unit
from ..validation import check_entry_id, check_metadata, filter_from_text
from .common import (
    FILE_DOC,
    REQUEST_ERRORS,
    body_doc,
    decode,
    get_inference,
    get_library,
    json_response,
    media_type,
    read_body,
    read_request_spectra,
)

router = APIRouter(prefix="/library", tags=["library"])

# Lengths documented, not enforced here: check_entry_id applies the whole rule (field "id").
EntryIdPath = Annotated[
    str, Path(description=ID_DOC, json_schema_extra={"minLength": 1, "maxLength": 256})
]
# Every library route documents 404 and 409: a path id the router cannot match answers 404.
_RESPONSES = openapi_responses(*REQUEST_ERRORS, NotFound, LibraryVersionMismatch)


def _entry_json(entry: LibraryEntry, include_embedding: bool) -> dict[str, Any]:
    out = {
        "id": entry.id,
        "spectrum": entry.spectrum,
        "wavelengths": entry.wavelengths,
        "unit": entry.unit,
        "metadata": entry.metadata,
        "model_version": entry.model_version,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
    }
    if include_embedding:
        out["embedding"] = entry.embedding
    return out


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
    library = get_library(request)
    settings = request.app.state.settings
    check_entry_id(entry_id)
    body = await read_body(request, settings.max_body_bytes)
    check_json(media_type(request))
    req = parse_json(LibraryPutRequest, body)
    _check_entry(entry_id, req.metadata, "", settings.max_metadata_bytes)
    spectrum, wavelengths, unit = _in_model_unit(request, req, "")
    item = NewEntry(
        id=entry_id, spectrum=spectrum, wavelengths=wavelengths, metadata=req.metadata, unit=unit
    )
    return await _written(library, [item])


@router.post(
    "",
    response_model=LibraryWriteResponse,
    responses=_RESPONSES,
    openapi_extra=body_doc(LibraryBatchRequest, csv=FILE_DOC, form=FILE_DOC),
    dependencies=[Depends(require_admin)],
    summary="Store many reference spectra in one transaction",
)
async def post_entries(request: Request) -> Response:
    """Embed and store all entries atomically: all are stored or none."""
    library = get_library(request)
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    if media_type(request) not in ("", "application/json"):
        return await _written(library, await _file_entries(request, body, settings))
    req = await decode(body, lambda b: parse_json(LibraryBatchRequest, b))
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
        spectrum, wavelengths, unit = _in_model_unit(request, entry, f"entries[{i}].")
        items.append(
            NewEntry(
                id=entry.id,
                spectrum=spectrum,
                wavelengths=wavelengths,
                metadata=entry.metadata,
                field=f"entries[{i}].spectrum",
                unit=unit,
            )
        )
    return await _written(library, items)


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
    """The stored entry: the original spectrum as sent, its wavelengths (the model's grid when
    sent without), and metadata."""
    check_entry_id(entry_id)
    entry = await get_library(request).get(entry_id)
    return json_response(_entry_json(entry, include_embedding))


@router.delete(
    "/{entry_id}",
    responses=_RESPONSES,
    dependencies=[Depends(require_admin)],
    summary="Delete one entry",
)
async def delete_entry(request: Request, entry_id: EntryIdPath) -> Response:
    check_entry_id(entry_id)
    await get_library(request).delete(entry_id)
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
    library = get_library(request)
    metadata_filter = filter_from_text(filter)
    page = await library.list(offset=offset, limit=limit, metadata_filter=metadata_filter)
    return json_response(
        {
            "count": page.count,
            "model_version": page.model_version,
            "offset": offset,
            "limit": limit,
            "entries": [_entry_json(e, include_embedding) for e in page.entries],
        }
    )


@router.post(
    "/reembed",
    response_model=ReembedResponse,
    responses=openapi_responses(
        *REQUEST_ERRORS, NotFound, LibraryVersionMismatch, ReembedInProgress
    ),
    dependencies=[Depends(require_admin)],
    summary="Re-embed the library with the served model",
)
async def reembed(request: Request) -> Response:
    """Re-embed every entry written by another model version from its stored original spectrum
    (one transaction per batch); afterwards the library serves this model version."""
    result = await get_library(request).reembed()
    return json_response({"reembedded": result.reembedded, "model_version": result.model_version})


def _in_model_unit(
    request: Request, req: LibraryPutRequest, where: str
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """An entry's spectrum and wavelengths, the wavelengths converted to the model's unit,
    and the unit the caller sent them in (None: the model's)."""
    spectrum = vector_array(req.spectrum, field=f"{where}spectrum")
    wavelengths = vector_array(req.wavelengths, field=f"{where}wavelengths")
    assert spectrum is not None
    body = SpectraBody(spectrum[None], wavelengths, unit=check_unit(req.unit, f"{where}unit"))
    inference = get_inference(request)
    converted, _ = to_model_unit(body, inference.unit, inference.grid, relative=inference.relative)
    return converted.values[0], converted.wavelengths, converted.unit


async def _file_entries(request: Request, body: bytes, settings: Any) -> list[NewEntry]:
    """The entries of a spectra file upload: ids from the file (its id column, JCAMP titles),
    metadata from its header or metadata columns, wavelengths in the model's unit."""
    unit = get_inference(request).unit
    spectra, _ = await read_request_spectra(request, model_unit=unit, body=body)
    name = spectra.name or "upload"
    if spectra.ids is None:
        raise InvalidInput(
            f"the upload {name!r} does not name its spectra; library entries need ids (an id "
            "column in CSV, a ##TITLE in JCAMP-DX)",
            field="body",
        )
    seen: dict[str, int] = {}
    items = []
    for i, entry_id in enumerate(spectra.ids):
        if entry_id in seen:
            raise InvalidInput(
                f"the upload {name!r}: id {entry_id!r} of spectrum {i} repeats spectrum "
                f"{seen[entry_id]}",
                field="body",
            )
        seen[entry_id] = i
        metadata = dict(spectra.metadata[i]) if spectra.metadata else {}
        _check_entry(entry_id, metadata, f"upload[{i}].", settings.max_metadata_bytes)
        items.append(
            NewEntry(
                id=entry_id,
                spectrum=spectra.values[i],
                wavelengths=spectra.wavelengths,
                metadata=metadata,
                field=f"upload[{i}]",
                unit=spectra.unit,
            )
        )
    return items


async def _written(library: LibraryService, items: list[NewEntry]) -> Response:
    written = await library.put(items)
    return json_response(
        {
            "ids": written.ids,
            "model": library.model_id,
            "coverage": written.report.coverage,
            "warnings": written.report.warnings,
        }
    )
