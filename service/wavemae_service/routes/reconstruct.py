"""POST /reconstruct: spectra (+ optional missing parts) -> reconstructions and RMSE."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request, Response

from ..auth import require_read
from ..inputs import NPY_MEDIA_TYPE, load_npy, parse_json, spectra_array, vector_array
from ..schemas import ReconstructRequest, ReconstructResponse
from .common import (
    ERROR_RESPONSES,
    NPY_RESPONSE,
    body_doc,
    check_json,
    decode,
    get_pipeline,
    json_response,
    media_type,
    npy_response,
    read_body,
    wants_npy,
)

router = APIRouter(tags=["inference"], dependencies=[Depends(require_read)])


def _decode(
    body: bytes, kind: str, max_spectra: int
) -> tuple[np.ndarray, np.ndarray | None, list[list[Any]] | None]:
    """Body -> (spectra (N, L) f64, wavelengths or None, missing or None)."""
    if kind == NPY_MEDIA_TYPE:
        return load_npy(body, max_spectra=max_spectra), None, None
    check_json(kind)
    req = parse_json(ReconstructRequest, body)
    values = spectra_array(req.spectra, field="spectra", max_spectra=max_spectra)
    return values, vector_array(req.wavelengths, field="wavelengths"), req.missing


@router.post(
    "/reconstruct",
    response_model=ReconstructResponse,
    responses={**ERROR_RESPONSES, 200: NPY_RESPONSE},
    openapi_extra=body_doc(
        ReconstructRequest, npy="numpy.save of float32 (N, seq_len) spectra, nothing missing"
    ),
    summary="Reconstruct spectra and score them",
)
async def reconstruct(request: Request) -> Response:
    """The model's reconstruction of each spectrum on the caller's grid, and its RMSE.

    Positions listed in `missing` are hidden from the (masked) encoder, so their values are
    predicted from the rest of the spectrum. With `Accept: application/x-npy` the answer is the
    float32 `(N, L)` reconstructions (RMSE in the `X-WaveMAE-RMSE` header, comma-separated).
    """
    pipeline = get_pipeline(request)
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    values, wavelengths, missing = await decode(
        body, _decode, media_type(request), settings.max_spectra_per_request
    )
    recon, rmse = await pipeline.reconstruct(values, wavelengths, missing)
    if wants_npy(request):
        response = npy_response(recon, pipeline.model_id)
        response.headers["X-WaveMAE-RMSE"] = ",".join(f"{v:.9g}" for v in rmse)
        return response
    return json_response(
        {"reconstructions": recon, "rmse": rmse.tolist(), "model": pipeline.model_id}
    )
