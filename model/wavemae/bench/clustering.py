"""``wavemae bench cluster``: clustering quality on known labels, and cost at library scale.

Quality (adjusted Rand index against known groups; 1 = perfect, 0 = chance):

- synthetic: 5 directions in 64-D with noise, 2,000 unit rows (the shape of embeddings);
- coffee: 60 ATR-FTIR spectra of three origins, raw and SNV, Euclidean k-means (scikit-learn)
  next to spherical k-means and the vMF mixture, k = 3;
- tablet embeddings of the shipped model, both instruments, k = 2 against the instrument.

Scale: spherical k-means and the vMF mixture on 100,000 synthetic 64-D rows (the whole set);
UMAP and t-SNE on subsamples only (a full 100,000-point map takes far longer than a benchmark
should on a shared CPU), with the per-entry fitting cost extrapolated linearly to 100,000 and
labelled as such. Memory is the tracemalloc peak of numpy allocations during the fit.

Service: /embed latency during a map fit in a thread of the server vs in its fit process
(:mod:`wavemae.bench.map_latency`).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from wavemae.cluster import choose_k, fit_vmf_mixture, spherical_kmeans, unit_rows

__all__ = ["cluster_mode", "format_cluster"]

_LIBRARY = 100_000
_MAP_SAMPLES = (1_000, 3_000)


def _ari(truth: Any, labels: Any) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(truth, labels))


def _synthetic(n: int, k: int = 5, dim: int = 64, spread: float = 0.12, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.normal(size=(k, dim)))
    labels = rng.integers(0, k, n)
    return unit_rows(centres[labels] + spread * rng.normal(size=(n, dim))), labels


def _quality_rows(x: np.ndarray, truth: Any, k: int, data: str) -> list[dict[str, Any]]:
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=k, n_init=10, random_state=0).fit(x)
    return [
        {
            "data": data,
            "method": "k-means (Euclidean, scikit-learn)",
            "ari": _ari(truth, kmeans.labels_),
        },
        {
            "data": data,
            "method": "spherical k-means",
            "ari": _ari(truth, spherical_kmeans(x, k).labels),
        },
        {"data": data, "method": "vMF mixture", "ari": _ari(truth, fit_vmf_mixture(x, k).labels)},
    ]


def _quality() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from wavemae.data import load_corpus
    from wavemae.preprocessing import Preprocessor

    rows: list[dict[str, Any]] = []
    x, truth = _synthetic(2_000)
    rows += _quality_rows(x, truth, 5, "synthetic 2,000 x 64-D, 5 groups")
    chosen = {c: choose_k(x, range(1, 9), criterion=c)[0] for c in ("bic", "icl")}

    coffee = load_corpus("coffee")
    origin = coffee.metadata_column("origin")
    raw = coffee.values.astype(np.float64)
    snv = Preprocessor(normalization="snv").transform(raw).astype(np.float64)
    rows += _quality_rows(raw, origin, 3, "coffee raw (60 x 1841)")
    rows += _quality_rows(snv, origin, 3, "coffee SNV")
    coffee_k = {c: choose_k(snv, range(1, 6), criterion=c)[0] for c in ("bic", "icl")}

    from wavemae.artifact import load_artifact, shipped_model_dir
    from wavemae.bench.search import embed_with_onnx

    artifact = load_artifact(shipped_model_dir("tablet"))
    tablet = load_corpus("tablet")
    z = embed_with_onnx(artifact, artifact.preprocess(tablet.values, tablet.wavelengths))
    rows += _quality_rows(
        z, tablet.metadata_column("instrument"), 2, "tablet embeddings vs instrument"
    )
    return rows, {
        "synthetic (true k = 5)": chosen,
        "coffee SNV (3 origins; D = 1841 > N = 60: the penalty favours few)": coffee_k,
    }


def _measure(fit: Callable[[], Any]) -> tuple[float, float]:
    """(seconds, peak MiB of traced allocations) of one call."""
    tracemalloc.start()
    started = time.perf_counter()
    fit()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def _scale() -> list[dict[str, Any]]:
    from wavemae.maps import fit_map

    x, _ = _synthetic(_LIBRARY, k=10)
    rows = []
    for name, fit in (
        ("spherical k-means, k=10, 3 restarts", lambda: spherical_kmeans(x, 10, n_init=3)),
        ("vMF mixture, k=10 (EM from k-means)", lambda: fit_vmf_mixture(x, 10, n_init=3)),
    ):
        seconds, peak = _measure(fit)
        rows.append(
            {
                "method": name,
                "n": _LIBRARY,
                "seconds": seconds,
                "peak_mib": peak,
                "per_entry_ms": 1e3 * seconds / _LIBRARY,
                "extrapolated": False,
            }
        )
    for method in ("umap", "tsne"):
        fit_map(x[:200], method)  # numba compilation and imports are not part of the fit
        for n in _MAP_SAMPLES:
            sample = x[:n]
            box: dict[str, Any] = {}
            seconds, peak = _measure(lambda s=sample, m=method, b=box: b.update(m=fit_map(s, m)))
            started = time.perf_counter()
            box["m"].transform(x[n : n + 100])
            place_ms = 1e3 * (time.perf_counter() - started) / 100
            rows.append(
                {
                    "method": f"{method} fit (cosine)",
                    "n": n,
                    "seconds": seconds,
                    "peak_mib": peak,
                    "per_entry_ms": 1e3 * seconds / n,
                    "extrapolated": False,
                    "transform_ms_per_entry": place_ms,
                }
            )
        last = rows[-1]
        rows.append(
            {
                "method": f"{method} fit (cosine)",
                "n": _LIBRARY,
                "seconds": last["per_entry_ms"] * _LIBRARY / 1e3,
                "peak_mib": last["peak_mib"] * _LIBRARY / last["n"],
                "per_entry_ms": last["per_entry_ms"],
                "extrapolated": True,
            }
        )
    return rows


def cluster_mode() -> dict[str, Any]:
    """Run the quality, scale and service-latency measurements (about half an hour on 2 shared
    cores)."""
    started = time.perf_counter()
    from wavemae.bench.map_latency import fit_latency

    quality, chosen_k = _quality()
    return {
        "quality": quality,
        "chosen_k": chosen_k,
        "scale": _scale(),
        "fit_latency": fit_latency(),
        "seconds": time.perf_counter() - started,
    }


def format_cluster(result: dict[str, Any]) -> str:
    """Both measurements as Markdown tables."""
    lines = ["| data | method | ARI |", "|---|---|---:|"]
    lines += [f"| {r['data']} | {r['method']} | {r['ari']:.3f} |" for r in result["quality"]]
    lines.append("")
    for data, chosen in result["chosen_k"].items():
        lines.append(f"k chosen by vMF BIC / ICL on {data}: {chosen['bic']} / {chosen['icl']}")
    lines += [
        "",
        "| fit | entries | seconds | peak MiB | ms per entry | place new (ms/entry) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["scale"]:
        n = f"{r['n']:,}" + (" (extrapolated)" if r["extrapolated"] else "")
        place = r.get("transform_ms_per_entry")
        lines.append(
            f"| {r['method']} | {n} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | "
            f"{r['per_entry_ms']:.3f} | {'-' if place is None else f'{place:.1f}'} |"
        )
    if "fit_latency" in result:
        from wavemae.bench.map_latency import format_fit_latency

        lines += ["", format_fit_latency(result["fit_latency"])]
    lines.append(f"\n({result['seconds']:.0f} s)")
    return "\n".join(lines)
