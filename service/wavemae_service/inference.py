"""The served model: raw spectra in; embeddings, reconstructions and model input out.

Preprocessing goes through the artifact, that is through :mod:`wavemae.preprocessing`, the code
the model was trained with; so does the way back from the model's grid to the caller's.
Inference goes through one bounded :class:`~.batching.MicroBatcher` per graph chain (embed;
masked encode + decode), which :class:`Inference` starts and stops. Speaks numpy, raises
:mod:`.errors` types, does not import FastAPI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wavemae.artifact import Artifact
from wavemae.preprocessing import NormalizationState
from wavemae.qc import QCCalibration

from .batching import BatchObserver, MicroBatcher
from .errors import InvalidInput, Overloaded
from .grids import (
    MissingItem,
    check_lengths,
    extend_to_grid,
    grid_warnings,
    relative_grid,
    to_caller_grid,
    visible_mask,
)
from .runtime import OnnxModel
from .settings import Settings
from .uploads import convert_unit, range_text
from .validation import public_message

__all__ = ["Inference", "ModelInput", "Reconstruction", "to_caller_grid", "visible_mask"]

# Requests with more spectra than this are preprocessed in a worker thread, not on the loop.
_INLINE_PREPROCESS_MAX = 32
# How long a background submit (re-embedding) waits before retrying when the queue is full.
_BACKGROUND_RETRY_S = 0.05


@dataclass(frozen=True)
class ModelInput:
    """Spectra after the model's preprocessing.

    Attributes:
        x: ``(N, seq_len)`` float32, C-contiguous: what the encoder takes.
        state: per-spectrum normalisation, to map model-space spectra back to the caller's scale.
    """

    x: np.ndarray
    state: NormalizationState
    visible: np.ndarray | None = None
    coverage: np.ndarray | None = None
    warnings: list[list[str]] | None = None
    #: the grid ``x`` lies on, when not the model's: an axis-relative model's ``seq_len``
    #: evenly spaced points over the caller's own range, in the caller's unit
    grid: np.ndarray | None = None


@dataclass(frozen=True)
class Reconstruction:
    """``values``: ``(N, L_in)`` float32 on the caller's grid and scale (NaN outside the model's
    range), or ``(N, seq_len)`` in model space when the preprocessing cannot be inverted (a
    Savitzky-Golay derivative); ``rmse``: ``(N,)`` float64 against the input, same space."""

    values: np.ndarray
    rmse: np.ndarray
    coverage: np.ndarray | None = None
    warnings: list[list[str]] | None = None


class Inference:
    """Preprocess, embed and reconstruct with one served model.

    Args:
        artifact: the loaded artifact (its preprocessor and grid are used).
        model: ONNX Runtime sessions of that artifact.
        settings: batching settings.
        observer: metrics hooks for the batchers.
    """

    def __init__(
        self,
        artifact: Artifact,
        model: OnnxModel,
        settings: Settings,
        observer: BatchObserver | None = None,
    ) -> None:
        self.artifact = artifact
        self.model = model
        self.model_id = artifact.model_id
        self.seq_len = artifact.seq_len
        self.latent_dim = artifact.latent_dim
        self.grid = artifact.wavelengths  # (seq_len,) the model's grid
        self.unit = artifact.wavelength_unit
        # axis-relative (a general model): any contiguous range, resampled over itself
        self.relative = artifact.preprocessor.axis == "relative"
        self.min_coverage = settings.min_coverage
        common: dict[str, Any] = {
            "max_batch_size": settings.max_batch_size,
            "max_wait_ms": settings.max_wait_ms,
            "max_queue_spectra": settings.max_queue_spectra,
            "retry_after_s": settings.retry_after_s,
            "timeout_s": settings.inference_timeout_s,
            "stall_s": settings.batch_stall_s,
            "workers": settings.inference_workers,
            "observer": observer,
        }
        self.embedder = MicroBatcher(model.embed, name="embed", **common)
        self.reconstructor = MicroBatcher(model.reconstruct, name="reconstruct", **common)
        self.masked_embedder = MicroBatcher(model.embed_masked, name="embed_masked", **common)
        qc = artifact.manifest.qc
        self.qc = None if qc is None else QCCalibration.from_dict(qc)

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the batch loops (on the running event loop)."""
        await self.embedder.start()
        await self.reconstructor.start()
        await self.masked_embedder.start()

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Let queued spectra finish (up to ``drain_timeout_s`` each), then stop the loops."""
        await self.embedder.stop(drain_timeout_s)
        await self.reconstructor.stop(drain_timeout_s)
        await self.masked_embedder.stop(drain_timeout_s)

    @property
    def healthy(self) -> bool:
        return self.embedder.healthy and self.reconstructor.healthy and self.masked_embedder.healthy

    def health(self) -> dict[str, Any]:
        """Each batcher's queue, running batches and last error (for /readyz)."""
        return {"embed": self.embedder.health(), "reconstruct": self.reconstructor.health()}

    # -- preprocessing -------------------------------------------------------------------------

    def preprocess_sync(
        self,
        values: np.ndarray,
        wavelengths: np.ndarray | None,
        *,
        field: str = "spectra",
        missing: Sequence[Sequence[MissingItem]] | None = None,
        unit: str | None = None,
    ) -> ModelInput:
        """``(N, L_in)`` raw spectra -> the model's input, in this thread.

        Bands of the model's grid outside the caller's range, and the ``missing`` ones, are
        hidden from the masked encoder (``visible``); the caller's spectra are extended to the
        model's range with their edge values only so that the preprocessing can run.

        Args:
            values: ``(N, L_in)`` float64 finite values.
            wavelengths: ``(L_in,)`` their grid in the model's unit, or None when they lie on
                the model's grid (then ``L_in == seq_len``).
            field: the request field ``values`` came from, for error messages.
            missing: per spectrum, the parts to hide (see :func:`visible_mask`).
            unit: the unit the caller sent ``wavelengths`` in (they arrive converted), for
                error messages; None = the model's.

        Raises:
            InvalidInput: wrong length, or a grid that covers less than ``min_coverage`` of the
                model's range (the message names both ranges, in the caller's unit).
        """
        check_lengths(values, wavelengths, self.seq_len, field, relative=self.relative)
        if self.relative and wavelengths is not None:
            return self._preprocess_relative(values, wavelengths, field, missing, unit)
        n = values.shape[0]
        visible = visible_mask(missing, self.grid, n, values.shape[1], wavelengths)
        hidden_any = missing is not None
        warnings: list[list[str]] = [[] for _ in range(n)]
        coverage = np.ones(n)
        if wavelengths is not None:
            covered = self._covered(wavelengths, unit or self.unit)
            coverage[:] = covered.mean()
            if not covered.all():
                values, wavelengths = extend_to_grid(values, wavelengths, self.grid)
                visible &= covered
                hidden_any = True
            warnings = [
                grid_warnings(
                    wavelengths, float(coverage[0]), self.grid, self.unit, unit or self.unit
                )
            ] * n
        x, state = self._run_preprocessor(values, wavelengths, field)
        return ModelInput(
            x, state, visible if hidden_any else None, coverage, [list(w) for w in warnings]
        )

    def _preprocess_relative(
        self,
        values: np.ndarray,
        wavelengths: np.ndarray,
        field: str,
        missing: Sequence[Sequence[MissingItem]] | None,
        unit: str | None,
    ) -> ModelInput:
        """:meth:`preprocess_sync` for an axis-relative model: the caller's whole range is
        resampled onto ``seq_len`` evenly spaced points of itself (by the artifact's
        preprocessor), so coverage is 1; ``missing`` ranges are in the caller's unit."""
        grid = relative_grid(wavelengths, self.seq_len)
        n = values.shape[0]
        visible = visible_mask(missing, grid, n, values.shape[1], wavelengths)
        x, state = self._run_preprocessor(values, wavelengths, field)
        warnings = [
            grid_warnings(wavelengths, 1.0, grid, unit or "axis units", unit or "axis units")
            for _ in range(n)
        ]
        return ModelInput(
            x, state, visible if missing is not None else None, np.ones(n), warnings, grid
        )

    def _run_preprocessor(
        self, values: np.ndarray, wavelengths: np.ndarray | None, field: str
    ) -> tuple[np.ndarray, NormalizationState]:
        """The artifact's preprocessing; its ValueErrors (and non-finite results) as 422."""
        try:
            with np.errstate(all="ignore"):
                x, state = self.artifact.preprocess_with_state(values, wavelengths)
        except ValueError as exc:
            raise InvalidInput(
                public_message(str(exc)), field="wavelengths" if wavelengths is not None else field
            ) from None
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            i = int(np.argmin(finite))
            raise InvalidInput(
                f"{field}[{i}] does not give finite values after the model's preprocessing "
                "(values too large?)",
                field=f"{field}[{i}]",
            )
        return x, state

    def _covered(self, wavelengths: np.ndarray, unit: str) -> np.ndarray:
        """Grid points inside the caller's range; 422 below ``min_coverage``, naming the
        caller's range in the caller's ``unit`` and the model's in both."""
        lo, hi = float(np.min(wavelengths)), float(np.max(wavelengths))
        covered = (self.grid >= lo) & (self.grid <= hi)
        fraction = float(covered.mean())
        if fraction < self.min_coverage or not covered.any():
            glo, ghi = float(self.grid.min()), float(self.grid.max())
            if unit == self.unit:
                theirs = range_text(lo, hi, self.unit)
            else:  # the numbers they sent first, then what the model reads
                _, axis = convert_unit(np.zeros((1, 2)), np.array([lo, hi]), self.unit, unit)
                theirs = range_text(float(axis.min()), float(axis.max()), unit, self.unit)
            raise InvalidInput(
                f"wavelengths span {theirs}, {fraction:.0%} of the model's range "
                f"{range_text(glo, ghi, self.unit, unit)}; at least {self.min_coverage:.0%} "
                "must be covered (min_coverage)",
                field="wavelengths",
            )
        return covered

    async def preprocess(
        self,
        values: np.ndarray,
        wavelengths: np.ndarray | None,
        *,
        field: str = "spectra",
        missing: Sequence[Sequence[MissingItem]] | None = None,
        unit: str | None = None,
    ) -> ModelInput:
        """:meth:`preprocess_sync`, in a worker thread for many spectra."""
        options: dict[str, Any] = {"field": field, "missing": missing, "unit": unit}
        if values.shape[0] <= _INLINE_PREPROCESS_MAX:
            return self.preprocess_sync(values, wavelengths, **options)
        return await asyncio.to_thread(self.preprocess_sync, values, wavelengths, **options)

    # -- inference -----------------------------------------------------------------------------

    async def embed(
        self,
        values: np.ndarray,
        wavelengths: np.ndarray | None = None,
        *,
        field: str = "spectra",
        missing: Sequence[Sequence[MissingItem]] | None = None,
        unit: str | None = None,
    ) -> tuple[np.ndarray, ModelInput]:
        """Raw spectra -> ``(embeddings (N, latent_dim) float32, their model input)``; with
        hidden bands (partial coverage, ``missing``) through the masked encoder.

        Raises:
            InvalidInput: see :meth:`preprocess_sync`.
            Overloaded, NotReady, InferenceFailed: from the batcher.
        """
        model_input = await self.preprocess(
            values, wavelengths, field=field, missing=missing, unit=unit
        )
        embeddings = await self.embed_model_input(model_input.x, visible=model_input.visible)
        return embeddings, model_input

    async def qc_warnings(self, model_input: ModelInput) -> list[list[str]]:
        """The per-spectrum warnings, with "out of distribution" added where the artifact's QC
        score (its manifest's ``qc`` calibration) is at or above its flag percentile.

        A spectrum with hidden bands (outside the caller's range, ``missing``) is scored on the
        bands it has, with the same ``visible`` mask the masked encoder got (see
        :meth:`wavemae.qc.QCCalibration.score`): edge-filled bands would make any partial
        spectrum look odd."""
        warnings = [list(w) for w in (model_input.warnings or [[] for _ in model_input.x])]
        if self.qc is None:
            return warnings
        qc = self.qc
        scores = await asyncio.to_thread(
            qc.score, model_input.x, self.model.embed, self.model.reconstruct, model_input.visible
        )
        for i in np.flatnonzero(scores["flag"]):
            warnings[i].append(
                f"out of distribution for the model: QC score {scores['score'][i]:.2f} at "
                f"percentile {scores['percentile'][i]:.1f} (flagged from "
                f"{qc.flag_percentile:g})"
            )
        if {"recon_mean", "recon_max"} & set(qc.use):
            unjudged = (
                "not checked for being out of distribution: too few bands are visible to "
                "predict some of them from the others"
            )
        else:  # a PCA-only calibration describes whole spectra (wavemae.qc)
            unjudged = (
                "not checked for being out of distribution: the model's QC score is "
                "calibrated on whole spectra and this one has bands hidden (outside its range "
                "or missing)"
            )
        for i in np.flatnonzero(np.isnan(scores["score"])):
            warnings[i].append(unjudged)
        return warnings

    async def report(self, model_input: ModelInput) -> tuple[list[float], list[list[str]]]:
        """Per spectrum, the fraction of the model's grid it covers and its warnings (see
        :meth:`qc_warnings`): what every endpoint that reads spectra answers with."""
        coverage = model_input.coverage
        if coverage is None:
            coverage = np.ones(model_input.x.shape[0])
        return [float(c) for c in coverage], await self.qc_warnings(model_input)

    async def embed_model_input(
        self, x: np.ndarray, *, visible: np.ndarray | None = None, background: bool = False
    ) -> np.ndarray:
        """``(N, seq_len)`` model input -> ``(N, latent_dim)`` float32 embeddings.

        Args:
            x: preprocessed spectra.
            visible: ``(N, seq_len)`` bool, True = seen by the encoder; with it the masked
                encoder runs (see :attr:`ModelInput.visible`).
            background: for work nobody waits on (re-embedding the library, cube chunks): when
                the queue is full, wait for room instead of raising Overloaded, so requests
                keep priority.
        """
        if visible is not None:
            embeddings = await _submit(self.masked_embedder, x, visible, background=background)
            return _unit_norm(embeddings)
        return await _submit(self.embedder, x, background=background)

    async def reconstruct(
        self,
        values: np.ndarray,
        wavelengths: np.ndarray | None,
        missing: Sequence[Sequence[MissingItem]] | None,
        *,
        unit: str | None = None,
    ) -> Reconstruction:
        """Reconstructions of raw spectra on the caller's grid and scale, and their RMSE.

        Args:
            values: ``(N, L_in)`` raw spectra.
            wavelengths: their grid, or None (model grid).
            missing: per spectrum, the parts to hide from the encoder (see :func:`visible_mask`).
            unit: the caller's unit of ``wavelengths``, for messages (see :meth:`preprocess_sync`).

        Raises:
            InvalidInput: see :meth:`preprocess_sync` and :func:`visible_mask`.
            Overloaded, NotReady, InferenceFailed: from the batcher.
        """
        model_input = await self.preprocess(values, wavelengths, missing=missing, unit=unit)
        visible = model_input.visible
        if visible is None:
            visible = np.ones(model_input.x.shape, dtype=bool)
        recon_x = await self.reconstructor.submit(model_input.x, visible)
        pre = self.artifact.preprocessor
        if not pre.invertible:
            diff = recon_x.astype(np.float64) - model_input.x
            rmse = np.sqrt(np.mean(diff**2, axis=1))
            warnings = await self.qc_warnings(model_input)
            return Reconstruction(recon_x, rmse, model_input.coverage, warnings)
        on_grid = pre.inverse_transform(recon_x, model_input.state)
        grid = self.grid if model_input.grid is None else model_input.grid
        recon = on_grid if wavelengths is None else to_caller_grid(on_grid, grid, wavelengths)
        diff = recon.astype(np.float64) - values
        inside = np.isfinite(diff)
        counts = np.maximum(inside.sum(axis=1), 1)
        rmse = np.sqrt((np.where(inside, diff, 0.0) ** 2).sum(axis=1) / counts)
        warnings = await self.qc_warnings(model_input)
        return Reconstruction(recon, rmse, model_input.coverage, warnings)


async def _submit(batcher: MicroBatcher, *inputs: np.ndarray, background: bool) -> Any:
    """``batcher.submit(*inputs)``; with ``background``, a full queue is waited out (retried
    every ``_BACKGROUND_RETRY_S``) instead of raising Overloaded."""
    while True:
        try:
            return await batcher.submit(*inputs)
        except Overloaded:
            if not background:
                raise
        await asyncio.sleep(_BACKGROUND_RETRY_S)


def _unit_norm(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)
