"""POST /reconstruct: spectra (+ optional missing parts) -> reconstructions and RMSE."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ..auth import require_read
from ..errors import openapi_responses
from ..inputs import read_spectra
from ..schemas import ReconstructRequest, ReconstructResponse
from .common import (
    NPY_RESPONSE,
    REQUEST_ERRORS,
    body_doc,
    decode,
    get_inference,
    json_response,
    media_type,
    npy_response,
    read_body,
    wants_npy,
)

router = APIRouter(tags=["inference"], dependencies=[Depends(require_read)])


@router.post(
    "/reconstruct",
    response_model=ReconstructResponse,
    responses={**openapi_responses(*REQUEST_ERRORS), 200: NPY_RESPONSE},
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
    inference = get_inference(request)
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    kind = media_type(request)
    spectra = await decode(
        body,
        lambda b: read_spectra(
            b, kind, max_spectra=settings.max_spectra_per_request, model=ReconstructRequest
        ),
    )
    result = await inference.reconstruct(spectra.values, spectra.wavelengths, spectra.missing)
    if wants_npy(request):
        response = npy_response(result.values, inference.model_id)
        response.headers["X-WaveMAE-RMSE"] = ",".join(f"{v:.9g}" for v in result.rmse)
        return response
    return json_response(
        {
            "reconstructions": result.values,
            "rmse": result.rmse.tolist(),
            "model": inference.model_id,
        }
    )
