# WaveMAE service image: FastAPI + uvicorn + ONNX Runtime, both shipped models inside (the
# general default and tablet), no torch.
#
#   docker build -t wavemae .
#   docker run -p 8000:8000 -v wavemae-data:/data wavemae
#
# CUDA variant (onnxruntime-gpu on an NVIDIA CUDA runtime base with cuDNN; run with --gpus all):
#
#   docker build -t wavemae:cuda \
#     --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#     --build-arg ONNXRUNTIME_PACKAGE=onnxruntime-gpu .
#
# Build arguments:
#   BASE_IMAGE           base of both stages (default python:3.11-slim-bookworm). A base without
#                        python3 + venv (the CUDA images) gets the distribution's python3 by apt.
#   ONNXRUNTIME_PACKAGE  onnxruntime (CPU, default) or onnxruntime-gpu (CUDA 12 + cuDNN 9).
#   PIP_EXTRA_ARGS       extra pip options, e.g. "--no-index" to install only from
#                        deploy/wheelhouse/ (see its README; deploy/docker-smoke.sh --offline).
#
# Runtime: the service listens on WAVEMAE_PORT (8000); the embedded library lives in /data (a
# volume); WAVEMAE_MODEL_DIR=tablet serves the shipped tablet model, or mount another model
# folder and set WAVEMAE_MODEL_DIR to it; set WAVEMAE_LIBRARY_URL=postgresql://... for a
# library shared by many replicas.
# Runs as uid 10001 and works with a read-only root filesystem (writes only /data and /tmp).

ARG BASE_IMAGE=python:3.11-slim-bookworm

# --------------------------------------------------------------------------------- base
FROM ${BASE_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DEBIAN_FRONTEND=noninteractive
# Python images already have python3 with venv: nothing is installed there. The CUDA images have
# no Python: take the distribution's (unpinned on purpose: it tracks the base image's release).
# hadolint ignore=DL3008
RUN if ! python3 -c "import ensurepip, venv" 2>/dev/null; then \
      apt-get update \
      && apt-get install --yes --no-install-recommends python3 python3-venv ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi

# ------------------------------------------------------------------------------ builder
# The virtual environment is built here and copied alone into the runtime stage: no pip, no
# build backend, no source tree and no caches in the final image.
FROM base AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python3 -m venv /opt/wavemae
COPY deploy/wheelhouse/ /wheelhouse/
COPY pyproject.toml README.md ./
COPY model/ model/
COPY service/ service/
ARG PIP_EXTRA_ARGS=""
ARG ONNXRUNTIME_PACKAGE=onnxruntime
# PIP_EXTRA_ARGS is split into options on purpose. onnxruntime and onnxruntime-gpu install the
# same module, so the GPU build replaces the CPU one rather than sitting beside it. The bundled
# test suites of numpy, scipy & co. (~50 MB) are never imported by the service: dropped.
# hadolint ignore=SC2086
RUN /opt/wavemae/bin/pip install --find-links /wheelhouse ${PIP_EXTRA_ARGS} ".[serve,postgres]" \
 && if [ "${ONNXRUNTIME_PACKAGE}" != "onnxruntime" ]; then \
      /opt/wavemae/bin/pip uninstall --yes onnxruntime \
      && /opt/wavemae/bin/pip install --find-links /wheelhouse ${PIP_EXTRA_ARGS} \
         "${ONNXRUNTIME_PACKAGE}"; \
    fi \
 && /opt/wavemae/bin/pip uninstall --yes pip setuptools wheel \
 && find /opt/wavemae/lib -depth -type d -path "*/site-packages/*" -name tests \
      -exec rm -rf {} + \
 && /opt/wavemae/bin/python -c "import sys, onnxruntime, wavemae, wavemae_service; \
import wavemae_service.library.postgres; \
import jcamp, spc_io, brukeropus, spectral, wavemae.data; \
assert 'torch' not in sys.modules, 'the service image must not import torch'; \
print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"

# ------------------------------------------------------------------------------ runtime
FROM base AS runtime
LABEL org.opencontainers.image.title="wavemae" \
      org.opencontainers.image.description="WaveMAE spectra embedding service (ONNX Runtime, no torch)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/wavemae/bin:$PATH \
    WAVEMAE_HOST=0.0.0.0 \
    WAVEMAE_PORT=8000 \
    WAVEMAE_LIBRARY_URL=/data/library.sqlite3
RUN groupadd --system --gid 10001 wavemae \
 && useradd --system --uid 10001 --gid wavemae --home-dir /data --no-create-home \
    --shell /usr/sbin/nologin wavemae \
 && mkdir /data && chown wavemae:wavemae /data
COPY --from=builder /opt/wavemae /opt/wavemae
COPY deploy/docker/healthcheck.py /opt/wavemae/healthcheck.py
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "/opt/wavemae/healthcheck.py"]
STOPSIGNAL SIGTERM
CMD ["wavemae", "serve"]
