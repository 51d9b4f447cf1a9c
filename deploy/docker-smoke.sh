#!/usr/bin/env bash
# Build the WaveMAE image, run it with host networking, and check that it really serves:
# /readyz turns 200, /embed answers with one finite embedding per spectrum, a library entry
# written with PUT is read back and found by /similar, the image has no
# torch and runs as a non-root user with a read-only root filesystem, the HEALTHCHECK reports
# healthy, and SIGTERM stops it cleanly (exit code 0).
#
#   deploy/docker-smoke.sh [options]
#
# Options:
#   --image TAG          image tag to build and run (default wavemae:smoke)
#   --base-image IMAGE   BASE_IMAGE build argument (default python:3.11-slim-bookworm); any
#                        Debian-like image with python3 + venv, e.g. a local stand-in
#   --offline            build without network access inside the build: fill deploy/wheelhouse
#                        with wheels on the host (pip wheel) and build with --no-index
#   --model-dir DIR      serve this artifact folder (mounted read-only at /model, as
#                        WAVEMAE_MODEL_DIR) instead of the model shipped in the image
#   --tiny-model         export a tiny random-weight model on the host (needs the train extra)
#                        and serve it as with --model-dir
#   --library-url URL    WAVEMAE_LIBRARY_URL for the container, e.g. a PostgreSQL + pgvector
#                        reachable from the host network (default: the image's SQLite in /data)
#   --port PORT          port the service listens on, on the host network (default 18080)
#   --no-build           skip the build; run an existing image
#   --keep               leave the container running at the end
#
# Needs: a running docker engine, python3 on the host. Prints the image size at the end.
set -euo pipefail

# The comment block above, without the leading '# ', is the usage text.
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

IMAGE=wavemae:smoke
BASE_IMAGE=python:3.11-slim-bookworm
OFFLINE=0
MODEL_DIR=""
LIBRARY_URL=""
TINY_MODEL=0
PORT=18080
BUILD=1
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --image) IMAGE="$2"; shift 2 ;;
    --base-image) BASE_IMAGE="$2"; shift 2 ;;
    --offline) OFFLINE=1; shift ;;
    --model-dir) MODEL_DIR="$2"; shift 2 ;;
    --tiny-model) TINY_MODEL=1; shift ;;
    --library-url) LIBRARY_URL="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }
fail() { echo "SMOKE FAILED: $*" >&2; exit 1; }

WORK=$(mktemp -d)
CONTAINER="wavemae-smoke-$$"
cleanup() {
  # -v: the image declares /data a volume; without it every run leaves an anonymous one behind.
  if [[ $KEEP -eq 0 ]]; then docker rm -f -v "$CONTAINER" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

docker info >/dev/null 2>&1 || fail "no docker engine answers (docker info failed)"

if [[ $BUILD -eq 1 ]]; then
  PIP_EXTRA_ARGS=""
  if [[ $OFFLINE -eq 1 ]]; then
    step "filling deploy/wheelhouse on the host (offline build)"
    python3 -m pip wheel --quiet --wheel-dir deploy/wheelhouse ".[serve,postgres]" \
      "setuptools>=69" wheel
    rm -f deploy/wheelhouse/wavemae-*.whl  # the image builds the project from source
    PIP_EXTRA_ARGS="--no-index"
  fi
  step "docker build -t $IMAGE (BASE_IMAGE=$BASE_IMAGE)"
  start=$(date +%s)
  docker build --network host \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "PIP_EXTRA_ARGS=$PIP_EXTRA_ARGS" \
    -t "$IMAGE" .
  echo "build took $(( $(date +%s) - start )) s"
fi

step "the shipped models in the image load and verify"
docker run --rm --entrypoint python3 "$IMAGE" -c "from wavemae.artifact import \
SHIPPED_MODELS, load_artifact, shipped_model_dir; print(', '.join(f'{n}: ' + \
load_artifact(shipped_model_dir(n)).model_id for n in SHIPPED_MODELS))" \
  || fail "a shipped model is missing from the image or fails its checksums"

RUN_ARGS=()
if [[ $TINY_MODEL -eq 1 ]]; then
  step "exporting a tiny model on the host"
  MODEL_DIR="$WORK/model"
  PYTHONPATH="tests${PYTHONPATH:+:$PYTHONPATH}" python3 -c "import sys; \
from tiny_artifact import export_tiny_model; \
export_tiny_model(sys.argv[1], seq_len=64, latent_dim=16)" "$MODEL_DIR"
fi
if [[ -n "$MODEL_DIR" ]]; then
  # The container runs as uid 10001: give it a world-readable copy.
  cp -r "$MODEL_DIR" "$WORK/model-mount"
  chmod -R a+rX "$WORK/model-mount"
  chmod a+rx "$WORK"
  RUN_ARGS+=(-v "$WORK/model-mount:/model:ro" -e WAVEMAE_MODEL_DIR=/model)
fi
if [[ -n "$LIBRARY_URL" ]]; then
  RUN_ARGS+=(-e "WAVEMAE_LIBRARY_URL=$LIBRARY_URL")
fi

if curl -s -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null; then
  fail "port $PORT already answers on this host: pick another with --port"
fi

step "docker run --network host (read-only root, no capabilities), port $PORT"
docker rm -f -v "$CONTAINER" >/dev/null 2>&1 || true
docker run -d --name "$CONTAINER" --network host \
  --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
  -e "WAVEMAE_PORT=$PORT" -e WAVEMAE_HOST=127.0.0.1 "${RUN_ARGS[@]}" "$IMAGE" >/dev/null

BASE="http://127.0.0.1:$PORT"
step "waiting for $BASE/readyz"
ready=0
for _ in $(seq 1 180); do
  if [[ "$(docker inspect -f '{{.State.Running}}' "$CONTAINER")" != "true" ]]; then
    docker logs "$CONTAINER" 2>&1 | tail -40
    fail "the container exited before it was ready"
  fi
  if curl -fsS "$BASE/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 1
done
if [[ $ready -ne 1 ]]; then
  docker logs "$CONTAINER" 2>&1 | tail -40
  fail "/readyz did not answer 200 within 180 s"
fi
echo "/readyz: 200"
curl -fsS "$BASE/healthz" >/dev/null || fail "/healthz did not answer 200"

step "GET /model, POST /embed"
curl -fsS "$BASE/model" > "$WORK/model.json"
python3 - "$WORK/model.json" "$BASE" <<'PY'
import json
import math
import sys
import urllib.request

info = json.load(open(sys.argv[1]))
base = sys.argv[2]


def find(obj, key):
    """First value of `key` anywhere in the /model answer."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for value in obj.values():
            found = find(value, key)
            if found is not None:
                return found
    return None


seq_len, latent_dim = int(find(info, "seq_len")), int(find(info, "latent_dim"))
spectra = [[math.sin(0.05 * i + s) + 1.5 for i in range(seq_len)] for s in range(3)]
request = urllib.request.Request(
    base + "/embed",
    data=json.dumps({"spectra": spectra}).encode(),
    headers={"Content-Type": "application/json"},
)
with urllib.request.urlopen(request, timeout=30) as response:
    assert response.status == 200, response.status
    answer = json.load(response)
embeddings = answer["embeddings"]
assert len(embeddings) == 3, f"expected 3 embeddings, got {len(embeddings)}"
assert all(len(e) == latent_dim for e in embeddings), "wrong embedding width"
assert all(math.isfinite(v) for e in embeddings for v in e), "non-finite embedding values"
norms = [math.sqrt(sum(v * v for v in e)) for e in embeddings]
print(f"/embed: 3 x {latent_dim} embeddings from model {answer.get('model')!r}, "
      f"norms {', '.join(f'{n:.4f}' for n in norms)} (seq_len {seq_len})")


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"null")


entry_id = "docker-smoke-entry"
status, _ = call("PUT", f"/library/{entry_id}", {"spectrum": spectra[1], "metadata": {"smoke": 1}})
assert status == 200, status
status, stored = call("GET", f"/library/{entry_id}")
assert stored["spectrum"] == spectra[1], "the stored spectrum differs from the one sent"
status, found = call("POST", "/similar", {"spectra": [spectra[1]], "k": 1})
best = found["results"][0][0]
assert best["id"] == entry_id and abs(best["score"] - 1.0) < 1e-4, best
call("DELETE", f"/library/{entry_id}")
status, listing = call("GET", "/library")
print(f"library: PUT, GET, /similar (score {best['score']:.6f}), DELETE ok; "
      f"{listing['count']} entries left, model version {listing['model_version']!r}")
PY

step "image checks: no torch, non-root user"
docker run --rm --network none --entrypoint python3 "$IMAGE" -c \
  "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
  || fail "torch is installed in the image"
echo "torch: not installed"
uid=$(docker run --rm --network none --entrypoint id "$IMAGE" -u)
[[ "$uid" != "0" ]] || fail "the image runs as root"
echo "runs as uid $uid"

step "HEALTHCHECK (first probe runs 30 s after start)"
health=""
for _ in $(seq 1 60); do
  health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$CONTAINER")
  [[ "$health" == "healthy" || "$health" == "unhealthy" ]] && break
  sleep 1
done
if [[ "$health" != "healthy" ]]; then
  docker inspect -f '{{json .State}}' "$CONTAINER"
  docker logs "$CONTAINER" 2>&1 | tail -20
  fail "HEALTHCHECK status is '$health', not healthy"
fi
echo "HEALTHCHECK: $health"

if [[ $KEEP -eq 0 ]]; then
  step "SIGTERM: graceful stop"
  docker stop -t 40 "$CONTAINER" >/dev/null
  code=$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")
  [[ "$code" == "0" ]] || { docker logs "$CONTAINER" 2>&1 | tail -20; fail "exit code $code after SIGTERM"; }
  echo "stopped with exit code 0"
fi

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo
echo "SMOKE OK: image $IMAGE, $(( size / 1000000 )) MB"
