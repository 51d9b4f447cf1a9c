"""Clusters and 2-D maps of the library's embeddings, fitted as background jobs (no FastAPI).

The fitting itself is :mod:`wavemae.cluster` (spherical k-means, vMF mixture) and
:mod:`wavemae.maps` (UMAP, t-SNE), numpy/scipy/numba, never torch. A fit can take minutes on a
large library, so :class:`AnalysisJobs` runs one at a time in its own thread and reports its
state and progress; the event loop and the inference batchers never wait for it. A map fit
holds the GIL for long stretches, so that thread hands it to a child process
(:mod:`.fit_process`) and only waits; :meth:`AnalysisJobs.stop` cancels it.

Results are plain JSON (:func:`cluster_result`, :func:`map_result`) that the store keeps with
the model version whose embeddings they describe, so a map is the same between calls and after
a restart. A map's fitted transform is stored with it (:mod:`.map_transform`), so any process
places entries added after the fit without moving the others.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wavemae.cluster import (
    choose_k,
    fit_vmf_mixture,
    nearest_centroid,
    spherical_kmeans,
    vmf_posterior,
)

from .fit_process import FitCancelled

__all__ = [
    "AUTO_K_RANGE",
    "CLUSTER_METHODS",
    "AnalysisJobs",
    "ClusterAssignment",
    "Job",
    "JobBusy",
    "assign_clusters",
    "assignment",
    "cluster_result",
    "map_page",
    "map_result",
]

#: Clustering methods: ``kmeans`` = spherical k-means, ``vmf`` = von Mises-Fisher mixture.
CLUSTER_METHODS = ("kmeans", "vmf")
#: ``k="auto"`` tries these k (up to the number of entries) and keeps the lowest BIC.
AUTO_K_RANGE = range(1, 11)
_KEEP_JOBS = 32

Progress = Callable[[float, str], None]


class JobBusy(RuntimeError):
    """Another analysis job is still running."""


@dataclass
class Job:
    """One background fit as the status endpoint reports it."""

    id: str
    kind: str
    params: dict[str, Any]
    state: str = "queued"  # queued | running | done | failed | cancelled
    progress: float = 0.0
    stage: str = "queued"
    error: str | None = None
    result: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def public(self) -> dict[str, Any]:
        """The JSON the status endpoint answers (the result without per-entry arrays)."""
        summary = None
        if self.result is not None:
            summary = {k: v for k, v in self.result.items() if k not in ("labels", "coordinates")}
        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "state": self.state,
            "progress": round(self.progress, 3),
            "stage": self.stage,
            "error": self.error,
            "result": summary,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


class AnalysisJobs:
    """Runs fits one at a time in a daemon thread; keeps the last 32 jobs for status reads.

    ``cancelled`` is set by :meth:`stop`; work that runs in a child process passes it on
    (:meth:`.fit_process.FitWorker.run`), and a job ended by it reports ``cancelled``.
    """

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._running: Job | None = None
        self.cancelled = threading.Event()

    def submit(self, kind: str, params: dict[str, Any], work: Callable[[Progress], Any]) -> Job:
        """Start ``work(progress)`` in a thread; its return value becomes ``job.result``.

        Raises:
            JobBusy: a job is running (fits are serialised: they share the CPU with inference).
        """
        with self._lock:
            if self.cancelled.is_set():
                raise JobBusy("the server is stopping; no new analysis jobs")
            if self._running is not None:
                raise JobBusy(
                    f"the {self._running.kind} job {self._running.id} is still running; "
                    "retry when it is done"
                )
            job = Job(id=uuid.uuid4().hex[:12], kind=kind, params=params)
            self._running = job
            self._jobs[job.id] = job
            while len(self._jobs) > _KEEP_JOBS:
                self._jobs.popitem(last=False)

        def progress(fraction: float, stage: str) -> None:
            job.progress, job.stage = min(max(fraction, 0.0), 1.0), stage

        def run() -> None:
            job.state = "running"
            try:
                job.result = work(progress)
                job.state, job.progress, job.stage = "done", 1.0, "done"
            except FitCancelled as exc:
                job.state, job.stage, job.error = "cancelled", "cancelled", str(exc)
            except Exception as exc:  # reported on the status endpoint, never raised
                job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            finally:
                job.finished_at = time.time()
                with self._lock:
                    self._running = None

        threading.Thread(target=run, name=f"analysis-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        """The job, or None when unknown (or forgotten: only the last 32 are kept)."""
        return self._jobs.get(job_id)

    def wait(self, timeout_s: float = 30.0) -> None:
        """Block until no job runs (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._running is not None and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Refuse new jobs, cancel the running one (its fit process is killed) and wait for it.

        Work that does not watch :attr:`cancelled` (an in-thread clustering) is waited for up
        to ``timeout_s``; its daemon thread ends with the process.
        """
        self.cancelled.set()
        self.wait(timeout_s)


def cluster_result(
    ids: list[str],
    embeddings: np.ndarray,
    *,
    method: str,
    k: int | str,
    model_version: str,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Cluster ``embeddings`` ``(N, D)``; the JSON the store keeps and the endpoint answers.

    ``k="auto"`` fits vMF mixtures for each k of :data:`AUTO_K_RANGE` (at most N) and keeps the
    lowest BIC; with ``method="kmeans"`` the chosen k is then fitted by spherical k-means.

    Raises:
        ValueError: unknown method, bad k, or fewer entries than k.
    """
    report = progress or (lambda fraction, stage: None)
    if method not in CLUSTER_METHODS:
        raise ValueError(f"method={method!r} is not one of {CLUSTER_METHODS}")
    criterion = None
    if k == "auto":
        report(0.1, f"choosing k by BIC over {AUTO_K_RANGE.start}..{AUTO_K_RANGE.stop - 1}")
        chosen, fits = choose_k(embeddings, AUTO_K_RANGE, criterion="bic", seed=seed, n_init=3)
        tiny = [j for j in sorted(fits) if j > 1 and fits[j].smallest_component < 3]
        criterion = {
            "name": "bic",
            "values": {str(j): fits[j].bic for j in sorted(fits) if j not in tiny},
            # a component of one or two entries has an unbounded likelihood: not a candidate
            "excluded_k": tiny,
        }
        k = chosen
    report(0.7, f"fitting {method} with k={k}")
    extra: dict[str, Any] = {}
    if method == "kmeans":
        fit = spherical_kmeans(embeddings, int(k), seed=seed)
        labels, centroids = fit.labels, fit.centroids
        extra["inertia"] = fit.inertia
    else:
        mixture = fit_vmf_mixture(embeddings, int(k), seed=seed)
        labels, centroids = mixture.labels, mixture.means
        extra.update(
            kappas=mixture.kappas.tolist(),
            weights=mixture.weights.tolist(),
            bic=mixture.bic,
            icl=mixture.icl,
        )
    sizes = np.bincount(labels, minlength=int(k))
    return {
        "method": method,
        "k": int(k),
        "criterion": criterion,
        "sizes": sizes.tolist(),
        "centroids": centroids.tolist(),
        "model_version": model_version,
        "n": len(ids),
        "seed": seed,
        "computed_at": time.time(),
        **extra,
        "labels": dict(zip(ids, labels.tolist(), strict=True)),
    }


@dataclass(frozen=True)
class ClusterAssignment:
    """Where new embeddings fall in a stored clustering.

    Attributes:
        labels: ``(M,)`` int64 cluster of each embedding.
        scores: ``(M,)`` how strongly it belongs: the cosine to its centroid (``kmeans``, in
            [-1, 1]) or the posterior probability of its component (``vmf``, in (0, 1]).
        clustering: the stored clustering's summary (method, k, score kind, model version,
            computed_at): what the answer says it was assigned with.
    """

    labels: np.ndarray
    scores: np.ndarray
    clustering: dict[str, Any]

    def public(self) -> dict[str, Any]:
        """The JSON of an answer's ``clusters`` field (labels and scores in request order)."""
        return {
            **self.clustering,
            "labels": self.labels.tolist(),
            "scores": [round(float(v), 6) for v in self.scores],
        }


def assignment(embeddings: np.ndarray, clusters: dict[str, Any]) -> ClusterAssignment:
    """Assign ``embeddings`` ``(M, D)`` to a stored :func:`cluster_result`: the nearest
    centroid by cosine for ``kmeans``, the most responsible component for ``vmf``.

    Raises:
        ValueError: embeddings that are not ``(M, D)`` rows with a direction, or of another
            width than the centroids.
    """
    if clusters["method"] == "vmf":
        labels, scores = vmf_posterior(
            embeddings, clusters["weights"], clusters["centroids"], clusters["kappas"]
        )
        kind = "posterior"
    else:
        labels, scores = nearest_centroid(embeddings, clusters["centroids"])
        kind = "cosine"
    summary = {
        "method": clusters["method"],
        "k": clusters["k"],
        "score": kind,
        "model_version": clusters["model_version"],
        "computed_at": clusters["computed_at"],
    }
    return ClusterAssignment(labels, scores, summary)


def assign_clusters(embeddings: np.ndarray, clusters: dict[str, Any]) -> np.ndarray:
    """``(M,)`` cluster of each embedding ``(M, D)`` under a stored :func:`cluster_result`
    (the labels of :func:`assignment`)."""
    return assignment(embeddings, clusters).labels


def map_result(
    ids: list[str],
    coordinates: np.ndarray,
    *,
    method: str,
    model_version: str,
    seed: int,
    transform: dict[str, Any],
) -> dict[str, Any]:
    """The JSON to store for a fitted map: ``coordinates`` ``(N, 2)`` of the rows ``ids``, and
    ``transform``, the description of its stored fitted transform (:mod:`.map_transform`)."""
    return {
        "method": method,
        "model_version": model_version,
        "n": len(ids),
        "seed": seed,
        "computed_at": time.time(),
        "transform": transform,
        "coordinates": {
            i: [float(a), float(b)] for i, (a, b) in zip(ids, coordinates, strict=True)
        },
    }


def map_page(
    payload: dict[str, Any],
    vectors: Any,
    clusters: dict[str, Any] | None,
    offset: int,
    limit: int,
    fields: list[str] | None,
) -> dict[str, Any]:
    """One page (by id) of a stored map ``payload`` over the library's ``vectors``
    (:class:`.entries.StoredVectors`): each entry's coordinates (null when unplaced), its label in
    the stored ``clusters`` (entries added after that clustering are assigned to it) and its
    metadata (all, or only ``fields``)."""
    coordinates = payload["coordinates"]
    labels: dict[str, int] = {}
    if clusters is not None:
        labels = clusters["labels"]
        unlabelled = [i for i, e in enumerate(vectors.ids) if e not in labels]
        if unlabelled:
            assigned = assign_clusters(vectors.matrix[unlabelled], clusters)
            labels = {
                **labels,
                **{vectors.ids[i]: int(c) for i, c in zip(unlabelled, assigned, strict=True)},
            }
    entries = []
    for i in range(offset, min(offset + limit, len(vectors.ids))):
        entry_id = vectors.ids[i]
        xy = coordinates.get(entry_id)
        meta = vectors.metadata[i]
        entries.append(
            {
                "id": entry_id,
                "x": None if xy is None else xy[0],
                "y": None if xy is None else xy[1],
                "cluster": labels.get(entry_id),
                "metadata": meta if fields is None else {f: meta[f] for f in fields if f in meta},
            }
        )
    return {
        "count": len(vectors.ids),
        "offset": offset,
        "computed_at": payload["computed_at"],
        "unplaced": sum(1 for e in vectors.ids if e not in coordinates),
        "items": entries,
    }
