"""The hand-written baseline that ``wavemae bench baseline`` compares the service with.

This is how most people would serve the model by hand: a FastAPI endpoint that parses the
request, runs PyTorch eager on it, one request at a time per worker thread, no batching.
It accepts the same bodies as the service's ``/embed`` (JSON, or ``application/x-npy``
float32 ``(N, L)``) and applies the same preprocessing, so the comparison is like for like.

Run it with ``python -m wavemae.bench.baseline_app --model-dir DIR --port PORT``.
"""

# No `from __future__ import annotations`: FastAPI must see the real `Request` class of the
# endpoint below, which is imported inside the factory to keep torch/fastapi imports lazy.
import argparse
import io
import os
from typing import Any

import numpy as np
import orjson

from wavemae.artifact import load_artifact
from wavemae.bench.backends import eager_encoder_from_artifact

__all__ = ["create_baseline_app", "main"]

NPY = "application/x-npy"


def create_baseline_app(model_dir: str | os.PathLike, *, torch_threads: int | None = None) -> Any:
    """A FastAPI app with ``POST /embed`` (PyTorch eager per request) and ``GET /readyz``."""
    import torch
    from fastapi import FastAPI, HTTPException, Request, Response
    from starlette.concurrency import run_in_threadpool

    if torch_threads:
        torch.set_num_threads(torch_threads)
    artifact = load_artifact(model_dir)
    encoder = eager_encoder_from_artifact(artifact)
    app = FastAPI(title="WaveMAE hand-written baseline (PyTorch eager, no batching)")

    def encode(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return encoder.forward_all_visible(torch.from_numpy(x)).numpy()

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/embed")
    async def embed(request: Request) -> Response:
        raw = await request.body()
        try:
            if request.headers.get("content-type", "").startswith(NPY):
                values = np.load(io.BytesIO(raw), allow_pickle=False)
            else:
                values = np.asarray(orjson.loads(raw)["spectra"], dtype=np.float64)
            x = artifact.preprocess(values)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        z = await run_in_threadpool(encode, x)  # what a plain `def` endpoint does
        if NPY in request.headers.get("accept", ""):
            buf = io.BytesIO()
            np.save(buf, z.astype(np.float32), allow_pickle=False)
            return Response(buf.getvalue(), media_type=NPY)
        body = orjson.dumps({"embeddings": z.tolist(), "model": artifact.model_id})
        return Response(body, media_type="application/json")

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the baseline on 127.0.0.1 with uvicorn (one worker)."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--torch-threads", type=int, default=None)
    args = parser.parse_args(argv)
    app = create_baseline_app(args.model_dir, torch_threads=args.torch_threads)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
