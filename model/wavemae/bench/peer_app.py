"""The peer ``wavemae bench baseline`` holds the service to: the obvious ONNX Runtime server.

What someone serving the exported encoder by hand would write first: a FastAPI app with one
plain ``def`` endpoint (FastAPI runs it in its thread pool), a pydantic body, the artifact's
own preprocessing, and one ``onnxruntime.InferenceSession`` with ONNX Runtime's default options,
called once per request. No batching, no queue, no limits. It speaks the service's JSON
``/embed`` (``{"spectra": [[...]]}`` in, ``{"embeddings": [[...]], "model": ...}`` out), so the
same load measures both. No torch.

Run it with ``python -m wavemae.bench.peer_app --model-dir DIR --port PORT``.
"""

# No `from __future__ import annotations`: FastAPI must see the real pydantic body model below.
import argparse
import os
from typing import Any

import numpy as np

from wavemae.artifact import load_artifact

__all__ = ["create_peer_app", "main"]


def create_peer_app(model_dir: str | os.PathLike) -> Any:
    """A FastAPI app with ``POST /embed`` (one ONNX Runtime run per request) and ``/readyz``."""
    import onnxruntime as ort
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel

    artifact = load_artifact(model_dir)
    session = ort.InferenceSession(
        str(artifact.file("encoder")), providers=["CPUExecutionProvider"]
    )
    app = FastAPI(title="WaveMAE peer: FastAPI def endpoint + one ONNX Runtime session")

    class EmbedBody(BaseModel):
        spectra: list[list[float]]

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/embed")
    def embed(body: EmbedBody) -> dict[str, Any]:
        try:
            x = artifact.preprocess(np.asarray(body.spectra, dtype=np.float64))
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        z = session.run(None, {"spectra": x})[0]
        return {"embeddings": z.tolist(), "model": artifact.model_id}

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the peer on 127.0.0.1 with uvicorn (one worker, no access log)."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = create_peer_app(args.model_dir)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
