"""The WaveMAE QC score: how unlike clean, in-distribution spectra a spectrum looks.

numpy only, so the service can compute it from an artifact (ONNX Runtime sessions passed in as
plain callables). Three components, each standardised on clean calibration spectra:

1. ``recon_mean``: log of the mean normalised masked-reconstruction error. The grid is cut into
   ``n_groups`` contiguous groups; each group is hidden in turn and reconstructed from the rest,
   so every position is predicted without seeing itself. Errors are divided per position by
   their mean on the clean reference spectra (bands the model always finds hard do not count
   more than easy ones).
2. ``recon_max``: log of the largest normalised error at one position (spikes, clipped peaks).
3. ``embedding``: Mahalanobis distance of the all-visible embedding from the training
   embeddings (mean and shrunk covariance).

Optionally two classical components of a PCA of the training spectra (model input space, ``k``
components, an ``L x k`` basis in the calibration):

4. ``pca_q``: log of the Q residual (squared distance to the PCA subspace): a band shape
   the training spectra never had.
5. ``pca_t2``: log of Hotelling's T² (scores scaled by their training variances).

``use`` names the components the score combines (``wavemae evaluate`` chooses them and ``k``
on the validation split). The score is the largest of the standardised components in ``use``
(each component's z-score on the clean calibration spectra, i.e. max over components of a
normal-approximation percentile; a rank percentile would tie every spectrum beyond the
calibration's largest). A spectrum with bands it does
not have (outside its measured range, dead bands) is judged on the bands it has: the
reconstruction components over those only, the embedding and PCA components left out (see
:meth:`QCCalibration.score`). It is reported as a
percentile of the same score over held-out clean calibration spectra; the documented default
flag threshold is the 99th percentile (about 1 clean spectrum in 100 is flagged).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_FLAG_PERCENTILE",
    "ArtifactModel",
    "ArtifactQC",
    "QCCalibration",
    "attach_qc",
    "fit_qc",
    "group_masks",
    "qc_components",
]

DEFAULT_FLAG_PERCENTILE = 99.0
_COMPONENTS = ("recon_mean", "recon_max", "embedding")
_PCA_COMPONENTS = ("pca_q", "pca_t2")

_SIG7 = np.vectorize(lambda v: float(f"{v:.7g}"), otypes=[float])

EmbedFn = Callable[[np.ndarray], np.ndarray]
ReconstructFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def group_masks(seq_len: int, n_groups: int) -> np.ndarray:
    """``(n_groups, seq_len)`` bool visible masks, each hiding one contiguous group."""
    if not 2 <= n_groups <= seq_len:
        raise ValueError(f"n_groups={n_groups} must lie in [2, seq_len={seq_len}]")
    edges = np.linspace(0, seq_len, n_groups + 1).round().astype(int)
    visible = np.ones((n_groups, seq_len), dtype=bool)
    for g in range(n_groups):
        visible[g, edges[g] : edges[g + 1]] = False
    return visible


def _masked_errors(
    x: np.ndarray,
    reconstruct: ReconstructFn,
    n_groups: int,
    covered: np.ndarray | None = None,
) -> np.ndarray:
    """Squared error per position, each position predicted with its group hidden ``(N, L)``.

    With ``covered`` ``(N, L)`` bool (True = a band the spectrum really has), the bands it
    lacks stay hidden in every pass and get no error (NaN): only measured bands are predicted,
    only from measured bands. A group that leaves a spectrum nothing visible, or hides none of
    its measured bands, is skipped for that spectrum.
    """
    n, length = x.shape
    err = np.full((n, length), np.nan) if covered is not None else np.zeros((n, length))
    for vis in group_masks(length, n_groups):
        visible = np.broadcast_to(vis, x.shape).copy()
        hidden = np.broadcast_to(~vis, x.shape)
        rows = np.arange(n)
        if covered is not None:
            visible &= covered
            hidden = hidden & covered
            rows = np.flatnonzero(visible.any(axis=1) & hidden.any(axis=1))
            if rows.size == 0:
                continue
        recon = np.asarray(reconstruct(x[rows], visible[rows]), dtype=np.float64)
        sq = (recon - x[rows]) ** 2
        err[rows] = np.where(hidden[rows], sq, err[rows])
    return err


@dataclass
class QCCalibration:
    """Everything the score needs besides the model; JSON-able via :meth:`to_dict`."""

    n_groups: int
    position_scale: np.ndarray  # (L,) mean clean squared error per position
    emb_mean: np.ndarray  # (Z,)
    emb_precision: np.ndarray  # (Z, Z) inverse of the shrunk covariance
    comp_mean: np.ndarray  # (C,) of the raw components on the calibration spectra
    comp_std: np.ndarray  # (C,)
    quantiles: np.ndarray  # (101,) score quantiles 0..100 % on the calibration spectra
    flag_percentile: float = DEFAULT_FLAG_PERCENTILE
    pca_mean: np.ndarray | None = None  # (L,) training mean, model input space
    pca_loadings: np.ndarray | None = None  # (k, L) orthonormal principal directions
    pca_variance: np.ndarray | None = None  # (k,) training variance of each score
    use: tuple[str, ...] = _COMPONENTS  # the components the score combines

    @property
    def components(self) -> tuple[str, ...]:
        """Names of the raw components, in column order (PCA ones only with a basis)."""
        return _COMPONENTS + (_PCA_COMPONENTS if self.pca_loadings is not None else ())

    def with_pca(self, reference: np.ndarray, k: int) -> QCCalibration:
        """A copy with a ``k``-component PCA of ``reference`` (model input space); call
        :meth:`calibrate` on it before scoring."""
        from dataclasses import replace

        ref = np.asarray(reference, dtype=np.float64)
        if not 1 <= k < min(ref.shape):
            raise ValueError(f"PCA components k={k} must lie in [1, {min(ref.shape) - 1}]")
        mean = ref.mean(axis=0)
        _, _, vt = np.linalg.svd(ref - mean, full_matrices=False)
        var = np.var((ref - mean) @ vt[:k].T, axis=0, ddof=1)
        return replace(
            self, pca_mean=mean, pca_loadings=vt[:k], pca_variance=np.maximum(var, 1e-12)
        )

    def pca_components(self, x: np.ndarray) -> np.ndarray:
        """``(N, 2)`` raw ``pca_q`` and ``pca_t2`` of whole preprocessed spectra."""
        centred = np.asarray(x, dtype=np.float64) - self.pca_mean
        scores = centred @ self.pca_loadings.T
        q = np.sum((centred - scores @ self.pca_loadings) ** 2, axis=1)
        t2 = np.sum(scores**2 / self.pca_variance, axis=1)
        return np.log(np.stack([q, t2], axis=1) + 1e-12)

    def calibrate(self, raw: np.ndarray, use: tuple[str, ...] | None = None) -> QCCalibration:
        """Standardise on the raw components ``(N, C)`` of clean calibration spectra, set the
        combined ``use`` and the score's percentiles; returns ``self``."""
        if use is not None:
            unknown = set(use) - set(self.components)
            if unknown or not use:
                raise ValueError(f"use={use} must name some of {self.components}")
            self.use = tuple(use)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column not computed: all NaN
            mean, std = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
        self.comp_mean = np.nan_to_num(mean, nan=0.0)
        self.comp_std = np.maximum(np.nan_to_num(std, nan=1.0), 1e-9)
        self.quantiles = np.percentile(self._combine(raw), np.linspace(0.0, 100.0, 101))
        return self

    def _combine(self, raw: np.ndarray) -> np.ndarray:
        z = (raw - self.comp_mean) / self.comp_std
        cols = [self.components.index(name) for name in self.use]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: cannot be judged
            return np.nanmax(z[:, cols], axis=1)

    def raw_components(
        self,
        x: np.ndarray,
        embed: EmbedFn,
        reconstruct: ReconstructFn,
        covered: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(N, C)`` raw components (NaN where not in ``use``); see :meth:`score`."""
        x = np.asarray(x, dtype=np.float64)
        out = np.full((x.shape[0], len(self.components)), np.nan)
        partial = np.zeros(x.shape[0], dtype=bool)
        if covered is not None:
            covered = np.asarray(covered, dtype=bool)
            partial = ~covered.all(axis=1)
            if not partial.any():
                covered = None
        if {"recon_mean", "recon_max"} & set(self.use):
            ratio = _masked_errors(x, reconstruct, self.n_groups, covered) / self.position_scale
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: not judged
                out[:, 0] = np.log(np.nanmean(ratio, axis=1) + 1e-12)
                out[:, 1] = np.log(np.nanmax(ratio, axis=1) + 1e-12)
        whole = np.flatnonzero(~partial)
        if whole.size and "embedding" in self.use:
            d = np.asarray(embed(x[whole]), dtype=np.float64) - self.emb_mean
            out[whole, 2] = np.sqrt(
                np.maximum(np.einsum("ij,jk,ik->i", d, self.emb_precision, d), 0)
            )
        if whole.size and self.pca_loadings is not None:
            out[whole, 3:5] = self.pca_components(x[whole])
        return out

    def score(
        self,
        x: np.ndarray,
        embed: EmbedFn,
        reconstruct: ReconstructFn,
        covered: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """``{"score", "percentile", "flag", components...}`` for preprocessed spectra ``x``.

        Args:
            x: ``(N, L)`` preprocessed spectra.
            embed, reconstruct: the model (all-visible encoder; masked encoder + decoder).
            covered: ``(N, L)`` bool, True = a band the spectrum really has (the service's
                ``visible``: inside the caller's range and not ``missing``), or None (all).
                A spectrum with bands hidden is judged on its covered bands only: the
                reconstruction components over them, predicted from them alone; the
                ``embedding`` and PCA components are NaN for it (the calibration describes
                whole spectra) and the score is the larger of the reconstruction ones
                (NaN with a PCA-only ``use``: not judged, not flagged).
                A spectrum whose covered bands cannot be judged (all in one QC group) gets
                a NaN score and is not flagged.
        """
        return self.score_raw(self.raw_components(x, embed, reconstruct, covered))

    def score_raw(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`score` from raw components ``(N, C)`` (:meth:`raw_components`)."""
        score = self._combine(raw)
        pct = np.interp(score, self.quantiles, np.linspace(0.0, 100.0, len(self.quantiles)))
        out = {"score": score, "percentile": pct, "flag": pct >= self.flag_percentile}
        z = (raw - self.comp_mean) / self.comp_std
        out.update({name: z[:, i] for i, name in enumerate(self.components)})
        return out

    def to_dict(self) -> dict[str, Any]:
        def r(a: np.ndarray) -> list:  # 7 significant digits: compact, scores agree to ~1e-6
            return _SIG7(np.asarray(a, dtype=np.float64)).tolist()

        pca = {}
        if self.pca_loadings is not None:
            pca = {
                "pca": {
                    "mean": r(self.pca_mean),
                    "loadings": r(self.pca_loadings),
                    "variance": r(self.pca_variance),
                }
            }
        return {
            "version": 1,
            "components": list(self.components),
            "use": list(self.use),
            "n_groups": self.n_groups,
            "position_scale": r(self.position_scale),
            "emb_mean": r(self.emb_mean),
            "emb_precision": r(self.emb_precision),
            "comp_mean": r(self.comp_mean),
            "comp_std": r(self.comp_std),
            "quantiles": r(self.quantiles),
            "flag_percentile": self.flag_percentile,
        } | pca

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QCCalibration:
        arr = {
            k: np.asarray(d[k], dtype=np.float64)
            for k in (
                "position_scale",
                "emb_mean",
                "emb_precision",
                "comp_mean",
                "comp_std",
                "quantiles",
            )
        }
        pca = d.get("pca") or {}
        pca_arr = {
            f"pca_{k}": np.asarray(pca[k], dtype=np.float64) if pca else None
            for k in ("mean", "loadings", "variance")
        }
        return cls(
            n_groups=int(d["n_groups"]),
            flag_percentile=float(d.get("flag_percentile", DEFAULT_FLAG_PERCENTILE)),
            use=tuple(d.get("use", _COMPONENTS)),
            **arr,
            **pca_arr,
        )


def fit_qc(
    reference: np.ndarray,
    calibration: np.ndarray,
    embed: EmbedFn,
    reconstruct: ReconstructFn,
    *,
    n_groups: int = 8,
    shrinkage: float = 0.1,
    pca_components: int = 0,
    use: tuple[str, ...] | None = None,
) -> QCCalibration:
    """Fit the score: position scales, embedding distribution and (``pca_components`` > 0) a
    PCA on ``reference`` (training spectra), standardisation and percentiles on held-out clean
    ``calibration`` spectra. ``use``: the combined components (default: all fitted).
    """
    reference = np.asarray(reference, dtype=np.float64)
    calibration = np.asarray(calibration, dtype=np.float64)
    if len(calibration) < 10:
        raise ValueError(f"QC calibration needs at least 10 clean spectra, got {len(calibration)}")
    scale = np.maximum(_masked_errors(reference, reconstruct, n_groups).mean(axis=0), 1e-12)
    emb = np.asarray(embed(reference), dtype=np.float64)
    mean = emb.mean(axis=0)
    cov = np.cov(emb - mean, rowvar=False)
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    qc = QCCalibration(
        n_groups=n_groups,
        position_scale=scale,
        emb_mean=mean,
        emb_precision=np.linalg.inv(cov),
        comp_mean=np.zeros(3),
        comp_std=np.ones(3),
        quantiles=np.zeros(101),
    )
    if pca_components:
        qc = qc.with_pca(reference, pca_components)
    qc.use = qc.components
    raw = qc.raw_components(calibration, embed, reconstruct)
    return qc.calibrate(raw, use)


def qc_components() -> tuple[str, ...]:
    """Names of the score's model components (the PCA ones: ``pca_q``, ``pca_t2``)."""
    return _COMPONENTS


class ArtifactModel:
    """``embed`` and ``reconstruct`` of an exported artifact through ONNX Runtime (CPU)."""

    def __init__(self, artifact: Any, *, threads: int = 1) -> None:
        import onnxruntime as ort

        self.artifact = artifact
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        self._sessions = {
            role: ort.InferenceSession(str(artifact.file(role)), options, providers=providers)
            for role in ("encoder", "encoder_masked", "decoder")
        }

    def embed(self, x: np.ndarray) -> np.ndarray:
        spectra = np.ascontiguousarray(x, dtype=np.float32)
        return self._sessions["encoder"].run(None, {"spectra": spectra})[0]

    def reconstruct(self, x: np.ndarray, visible: np.ndarray) -> np.ndarray:
        feeds = {
            "spectra": np.ascontiguousarray(x, dtype=np.float32),
            "visible": np.ascontiguousarray(visible, dtype=bool),
        }
        z = self._sessions["encoder_masked"].run(None, feeds)[0]
        return self._sessions["decoder"].run(None, {"embedding": z})[0]


class ArtifactQC(ArtifactModel):
    """The QC score of an exported artifact, with ONNX Runtime and numpy only.

    ``ArtifactQC(artifact)(values, wavelengths)`` returns :meth:`QCCalibration.score`'s dict
    for raw spectra; the calibration is the manifest's optional ``qc`` entry.

    Raises:
        ValueError: if the artifact's manifest carries no QC calibration.
    """

    def __init__(self, artifact: Any, *, threads: int = 1) -> None:
        if artifact.manifest.qc is None:
            raise ValueError(
                f"artifact {artifact.model_id} carries no QC calibration; add one with "
                "`wavemae evaluate CHECKPOINT --report DIR --artifact ARTIFACT`"
            )
        super().__init__(artifact, threads=threads)
        self.calibration = QCCalibration.from_dict(artifact.manifest.qc)

    def __call__(self, values: Any, wavelengths: Any = None) -> dict[str, np.ndarray]:
        x = self.artifact.preprocess(values, wavelengths)
        return self.calibration.score(x, self.embed, self.reconstruct)


def attach_qc(artifact_dir: Any, calibration: QCCalibration) -> None:
    """Write ``calibration`` into the artifact's manifest (the optional ``qc`` entry).

    The model files and their checksums are untouched; the manifest is rewritten atomically
    and must load again.
    """
    import json
    import os
    from pathlib import Path

    from wavemae.artifact import load_artifact

    path = Path(artifact_dir) / "manifest.json"
    data = json.loads(path.read_text())
    data["qc"] = calibration.to_dict()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    load_artifact(artifact_dir)
