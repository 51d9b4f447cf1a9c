"""POST /reconstruct: spectra (+ optional missing parts) -> reconstructions and RMSE."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Depends, Request, Response

from ..auth import require_read
from ..errors import openapi_responses
from ..schemas import ReconstructRequest, ReconstructResponse
from .common import (
    FILE_DOC,
    NPY_RESPONSE,
    REQUEST_ERRORS,
    body_doc,
    get_inference,
    json_response,
    npy_response,
    read_request_spectra,
    wants_npy,
)

router = APIRouter(tags=["inference"], dependencies=[Depends(require_read)])


@router.post(
    "/reconstruct",
    response_model=ReconstructResponse,
    responses={**openapi_responses(*REQUEST_ERRORS), 200: NPY_RESPONSE},
    openapi_extra=body_doc(
        ReconstructRequest,
        npy="numpy.save of float32 (N, seq_len) spectra, nothing missing",
        csv=FILE_DOC,
        form=FILE_DOC,
    ),
    summary="Reconstruct spectra and score them",
)
async def reconstruct(request: Request) -> Response:
    """The model's reconstruction of each spectrum on the caller's grid, and its RMSE.

    Positions listed in `missing`, and bands of the model's grid outside the caller's range,
    are hidden from the (masked) encoder, so their values are predicted from the rest of the
    spectrum. Bodies as for /embed. With `Accept: application/x-npy` the answer is the float32
    `(N, L)` reconstructions (RMSE in the `X-WaveMAE-RMSE` header, comma-separated).
    """
    inference = get_inference(request)
    spectra, flipped = await read_request_spectra(
        request, model=ReconstructRequest, model_unit=inference.unit
    )
    result = await inference.reconstruct(
        spectra.values, spectra.wavelengths, spectra.missing, unit=spectra.unit
    )
    values = result.values
    if flipped:  # back to the caller's order (contiguous: the JSON encoder needs it)
        values = np.ascontiguousarray(values[:, ::-1])
    if wants_npy(request):
        response = npy_response(values, inference.model_id)
        response.headers["X-WaveMAE-RMSE"] = ",".join(f"{v:.9g}" for v in result.rmse)
        return response
    return json_response(
        {
            "reconstructions": values,
            "rmse": result.rmse.tolist(),
            "model": inference.model_id,
            "coverage": result.coverage,
            "warnings": result.warnings,
        }
    )
