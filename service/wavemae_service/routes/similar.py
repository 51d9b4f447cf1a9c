"""POST /similar: nearest reference-library entries for spectra or embeddings."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from wavemae.similarity import HQIOptions

from ..auth import require_read
from ..errors import ClustersNotComputed, InvalidInput, LibraryVersionMismatch, openapi_responses
from ..inputs import (
    SpectraBody,
    nan_as_missing,
    parse_json,
    spectra_array,
    to_model_unit,
    vector_array,
)
from ..library.records import SimilarQuery
from ..schemas import SimilarRequest, SimilarResponse
from ..uploads import check_unit, convert_range
from ..validation import parse_filter
from .cluster_option import cluster_answer, requested_clustering
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

router = APIRouter(tags=["library"], dependencies=[Depends(require_read)])


@router.post(
    "/similar",
    response_model=SimilarResponse,
    responses=openapi_responses(*REQUEST_ERRORS, LibraryVersionMismatch, ClustersNotComputed),
    openapi_extra=body_doc(SimilarRequest, csv=FILE_DOC, form=FILE_DOC),
    summary="Search the reference library",
)
async def similar(request: Request) -> Response:
    """Per query, the `k` most similar library entries, each with its gap to the next hit.

    `space="embedding"`: cosine of the served model's embeddings of `spectra` (or of the given
    `embeddings`). `space="spectrum"`: the Hit Quality Index of `spectra` against every
    candidate on the model grid, after `preprocessing` (default: 2nd Savitzky-Golay derivative,
    11 bands), with `exclude`d ranges left out; on an axis-relative model, on the common range
    of the query and each entry (entries sharing too little range are not hits; `warnings`
    says how many). `filter` restricts candidates by metadata.
    `include_cluster` (JSON field, or query parameter) also answers where each query's
    embedding falls in the library's stored clustering (409 when there is none).
    """
    library = get_library(request)
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    kind = media_type(request)
    inference = get_inference(request)
    model_unit = inference.unit
    if kind not in ("", "application/json"):  # a spectra file; the options in the query
        spectra, _ = await read_request_spectra(request, model_unit=model_unit, body=body)
        req = _query_request(request)
        values, wavelengths, missing = spectra.values, spectra.wavelengths, spectra.missing
        unit = spectra.unit
    else:
        req = await decode(body, lambda b: parse_json(SimilarRequest, b))
        values = wavelengths = missing = unit = None
        if req.spectra is not None:
            limit = settings.max_spectra_per_request
            values, missing = nan_as_missing(
                spectra_array(req.spectra, field="spectra", max_spectra=limit),
                req.missing,
                req.nan_as_missing,
                "spectra",
            )
            parsed, _ = to_model_unit(
                SpectraBody(
                    values,
                    vector_array(req.wavelengths, field="wavelengths"),
                    missing=missing,
                    unit=check_unit(req.unit),
                ),
                model_unit,
                inference.grid,
                relative=inference.relative,
                ranges_in_unit=bool(req.exclude),
            )
            values, wavelengths, missing = parsed.values, parsed.wavelengths, parsed.missing
            unit = parsed.unit
    query = SimilarQuery(
        k=req.k,
        space=req.space,
        metadata_filter=parse_filter(req.filter),
        spectra=values,
        wavelengths=wavelengths,
        embeddings=None
        if req.embeddings is None
        else spectra_array(
            req.embeddings, field="embeddings", max_spectra=settings.max_spectra_per_request
        ),
        include_metadata=req.include_metadata,
        fields=req.fields,
        # an axis-relative model compares on the caller's axis: exclude stays in its unit
        hqi=_hqi_options(req, None if inference.relative else model_unit),
        missing=missing,
        unit=unit,
    )
    clustering = await requested_clustering(request, req.include_cluster)  # before inference
    found = await library.similar(query)
    answer: dict[str, Any] = {"results": found.results, "model": library.model_id}
    answer["space"] = req.space
    if found.report is not None:
        answer.update(coverage=found.report.coverage, warnings=found.report.warnings)
    if clustering is not None:
        vectors = found.vectors
        if vectors is None:  # space="spectrum" compared spectra; the cluster needs embeddings
            vectors, _ = await inference.embed(values, wavelengths, missing=missing, unit=unit)
        answer["clusters"] = await cluster_answer(request, vectors, clustering)
    return json_response(answer)


def _hqi_options(req: SimilarRequest, model_unit: str | None) -> HQIOptions:
    """The request's HQI options, ``exclude`` read in the request's ``unit`` and converted to
    ``model_unit`` (None: kept in the request's unit); a wrong combination answers 422 naming
    the field."""
    unit = check_unit(req.unit) or model_unit
    exclude = list(req.exclude)
    if model_unit is not None and unit != model_unit:
        for i, (low, high) in enumerate(req.exclude):
            if not low < high:  # checked before conversion, so that it names their numbers
                raise InvalidInput(
                    f"exclude[{i}]=[{low:g}, {high:g}] needs low < high", field="exclude"
                )
            exclude[i] = convert_range([low, high], unit, model_unit, f"exclude[{i}]")
    try:
        return HQIOptions(
            preprocessing=req.preprocessing,
            window=req.window,
            exclude=tuple((low, high) for low, high in exclude),
            scale=req.scale,
        )
    except ValueError as exc:
        message = str(exc)
        field = next((f for f in ("window", "polyorder", "exclude") if f in message), "exclude")
        raise InvalidInput(message, field="window" if field == "polyorder" else field) from None


def _query_request(request: Request) -> SimilarRequest:
    """The search options of a file upload, from the query string: ``k``, ``space``,
    ``filter`` (JSON), ``include_metadata``, ``fields`` (comma-separated)."""
    params = request.query_params
    data: dict[str, Any] = {}
    for key in ("k", "include_metadata", "filter", "window"):  # JSON values in text
        if key in params:
            try:
                data[key] = orjson.loads(params[key])
            except orjson.JSONDecodeError:
                raise InvalidInput(f"{key}={params[key]!r} is not valid", field=key) from None
    for key in ("space", "preprocessing", "scale"):
        if key in params:
            data[key] = params[key]
    if "fields" in params:
        data["fields"] = [f for f in params["fields"].split(",") if f]
    return parse_json(SimilarRequest, orjson.dumps(data))
