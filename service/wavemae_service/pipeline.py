"""What the routes call: preprocessing -> micro-batched inference -> library.

:class:`SpectraPipeline` owns the loaded artifact, the ONNX model, one :class:`MicroBatcher` per
graph chain (embed; masked-encode + decode) and the library store. It speaks numpy and raises
:mod:`.errors` types; it does not import FastAPI.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from wavemae.artifact import Artifact

from .batching import BatchObserver, MicroBatcher
from .errors import Conflict, InvalidInput, ServiceError, from_library_error
from .library.base import LibraryEntry, LibraryError, LibraryStore, SearchHit
from .runtime import OnnxModel
from .settings import Settings
from .validation import public_message, rename_rows

__all__ = ["ReembedStopped", "SpectraPipeline"]

log = logging.getLogger("wavemae_service.pipeline")

# Requests with more spectra than this are preprocessed in a worker thread, not on the loop.
_INLINE_PREPROCESS_MAX = 32


class ReembedStopped(ServiceError):
    """Re-embedding was interrupted by shutdown; finished batches are kept."""

    type = "not_ready"


class SpectraPipeline:
    """Preprocess, embed, reconstruct and search for one served model.

    Args:
        artifact: the loaded artifact (its preprocessor and grid are used).
        model: ONNX sessions of that artifact.
        settings: batching and limit settings.
        store: the library, or None when the service runs without one.
        observer: metrics hooks for the batchers.
    """

    def __init__(
        self,
        artifact: Artifact,
        model: OnnxModel,
        settings: Settings,
        store: LibraryStore | None,
        observer: BatchObserver | None = None,
    ) -> None:
        self.artifact = artifact
        self.model = model
        self.store = store
        self.model_id = artifact.model_id
        self.seq_len = artifact.seq_len
        self.latent_dim = artifact.latent_dim
        self.grid = artifact.wavelengths  # (L,) model grid
        common = {
            "max_batch_size": settings.max_batch_size,
            "max_wait_ms": settings.max_wait_ms,
            "max_queue_spectra": settings.max_queue_spectra,
            "retry_after_s": settings.retry_after_s,
            "timeout_s": settings.inference_timeout_s,
            "stall_s": settings.batch_stall_s,
            "workers": settings.inference_workers,
            "observer": observer,
        }
        self._stopping = threading.Event()
        self._reembed_lock = threading.Lock()
        self.embedder = MicroBatcher(model.embed, name="embed", **common)
        self.reconstructor = MicroBatcher(model.reconstruct, name="reconstruct", **common)

    async def start(self) -> None:
        await self.embedder.start()
        await self.reconstructor.start()

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        self._stopping.set()  # a background re-embedding stops after its current batch
        await self.embedder.stop(drain_timeout_s)
        await self.reconstructor.stop(drain_timeout_s)

    @property
    def healthy(self) -> bool:
        return self.embedder.healthy and self.reconstructor.healthy

    # -- preprocessing -----------------------------------------------------------------------

    def _check_shapes(self, values: np.ndarray, wavelengths: np.ndarray | None, field: str) -> None:
        if wavelengths is None:
            if values.shape[1] != self.seq_len:
                raise InvalidInput(
                    f"{field} have {values.shape[1]} values per spectrum but the model expects "
                    f"seq_len={self.seq_len} (or send 'wavelengths' to resample onto its grid)",
                    field=field,
                )
        elif wavelengths.shape[0] != values.shape[1]:
            raise InvalidInput(
                f"wavelengths has {wavelengths.shape[0]} values but each spectrum has "
                f"{values.shape[1]}",
                field="wavelengths",
            )

    def preprocess_sync(
        self, values: np.ndarray, wavelengths: np.ndarray | None, *, field: str = "spectra"
    ) -> tuple[np.ndarray, Any]:
        """``(N, L_in)`` raw -> ``((N, seq_len) float32 model input, normalisation state)``.

        Raises:
            InvalidInput: wrong length, or a grid that does not cover the model's range
                (the message names both ranges).
        """
        self._check_shapes(values, wavelengths, field)
        pre = self.artifact.preprocessor
        try:
            with np.errstate(all="ignore"):
                if pre is not None:
                    processed, state = pre.transform_with_state(values, wavelengths)
                else:
                    processed, state = self.artifact.preprocess(values, wavelengths), None
        except ValueError as exc:  # GridRangeError included: its message names the ranges
            where = "wavelengths" if wavelengths is not None else field
            raise InvalidInput(public_message(str(exc)), field=where) from None
        finite = np.isfinite(processed).all(axis=1)
        if not finite.all():
            i = int(np.argmin(finite))
            raise InvalidInput(
                f"{field}[{i}] does not give finite values after the model's preprocessing "
                "(values too large?)",
                field=f"{field}[{i}]",
            )
        return processed, state

    async def preprocess(
        self, values: np.ndarray, wavelengths: np.ndarray | None, *, field: str = "spectra"
    ) -> tuple[np.ndarray, Any]:
        if values.shape[0] <= _INLINE_PREPROCESS_MAX:
            return self.preprocess_sync(values, wavelengths, field=field)
        return await asyncio.to_thread(self.preprocess_sync, values, wavelengths, field=field)

    # -- inference ---------------------------------------------------------------------------

    async def embed(
        self, values: np.ndarray, wavelengths: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw spectra -> ``(embeddings (N, latent_dim) f32, model input (N, seq_len) f32)``."""
        processed, _ = await self.preprocess(values, wavelengths)
        embeddings = await self.embedder.submit(processed)
        return embeddings, processed

    def visible_mask(
        self,
        missing: Sequence[Sequence[Any]] | None,
        n: int,
        wavelengths: np.ndarray | None,
        n_values: int,
    ) -> np.ndarray:
        """``(n, seq_len)`` bool, True = visible, from per-spectrum ``missing`` items.

        An int ``p`` hides position ``p`` of the caller's spectrum: on the model's grid that is
        every grid point whose interpolated value depends on it (strictly between its
        neighbours). A ``[lo, hi]`` pair hides grid points with ``lo <= wavelength <= hi``.
        """
        visible = np.ones((n, self.seq_len), dtype=bool)
        if missing is None:
            return visible
        if len(missing) != n:
            raise InvalidInput(
                f"missing has {len(missing)} lists but there are {n} spectra; send one list "
                "per spectrum",
                field="missing",
            )
        grid = self.grid
        for i, items in enumerate(missing):
            for j, item in enumerate(items):
                where = f"missing[{i}][{j}]"
                if isinstance(item, int):
                    if not 0 <= item < n_values:
                        raise InvalidInput(
                            f"{where}={item} is not a position in a spectrum of {n_values} values",
                            field=where,
                        )
                    if wavelengths is None:
                        visible[i, item] = False
                        continue
                    w = wavelengths
                    left = w[item - 1] if item > 0 else w[item]
                    right = w[item + 1] if item < n_values - 1 else w[item]
                    lo, hi = min(left, right), max(left, right)
                    hide = ((grid > lo) & (grid < hi)) | (grid == w[item])
                else:
                    lo, hi = sorted(item)
                    hide = (grid >= lo) & (grid <= hi)
                visible[i, hide] = False
            if not visible[i].any():
                raise InvalidInput(
                    f"missing[{i}] hides every position of the model's grid; at least one "
                    "must stay visible",
                    field=f"missing[{i}]",
                )
        return visible

    async def reconstruct(
        self,
        values: np.ndarray,
        wavelengths: np.ndarray | None,
        missing: Sequence[Sequence[Any]] | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reconstructions on the caller's grid and scale, and per-spectrum RMSE.

        Returns:
            ``(reconstructions (N, L_in) float32 (NaN outside the model's range), rmse (N,))``.
            When the preprocessing cannot be inverted (a Savitzky-Golay derivative), both are in
            model space on the model grid.
        """
        processed, state = await self.preprocess(values, wavelengths)
        visible = self.visible_mask(missing, values.shape[0], wavelengths, values.shape[1])
        recon_model = await self.reconstructor.submit(processed, visible)
        pre = self.artifact.preprocessor
        if pre is not None and not pre.invertible:
            diff = recon_model.astype(np.float64) - processed
            return recon_model, np.sqrt(np.mean(diff**2, axis=1))
        on_grid = recon_model if pre is None else pre.inverse_transform(recon_model, state)
        if wavelengths is None:
            recon = np.asarray(on_grid, dtype=np.float32)
        else:
            recon = _to_caller_grid(np.asarray(on_grid, np.float64), self.grid, wavelengths)
        diff = recon.astype(np.float64) - values
        inside = np.isfinite(diff)
        counts = np.maximum(inside.sum(axis=1), 1)
        rmse = np.sqrt((np.where(inside, diff, 0.0) ** 2).sum(axis=1) / counts)
        return recon, rmse

    # -- library -----------------------------------------------------------------------------

    def _require_store(self) -> LibraryStore:
        if self.store is None:
            raise InvalidInput("this server runs without a reference library")
        return self.store

    async def call_store(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run a store method in a worker thread, translating its errors."""
        store = self._require_store()
        try:
            return await asyncio.to_thread(getattr(store, method), *args, **kwargs)
        except LibraryError as exc:
            raise from_library_error(exc) from None

    async def similar(
        self,
        queries: np.ndarray,
        k: int,
        *,
        space: str,
        metadata_filter: dict[str, Any] | None,
    ) -> list[list[SearchHit]]:
        """k nearest library entries for ``queries`` (embeddings or model-input spectra)."""
        return await self.call_store(
            "search",
            queries,
            k,
            model_version=self.model_id,
            space=space,
            metadata_filter=metadata_filter,
        )

    async def make_entries(
        self, items: Sequence[tuple[str, np.ndarray, np.ndarray | None, dict[str, Any]]]
    ) -> list[LibraryEntry]:
        """Embed ``(id, spectrum, wavelengths, metadata)`` items into library entries.

        Spectra are grouped by grid so each group is one batched request.
        """
        groups: dict[tuple[int, bytes | None], list[int]] = {}
        for i, (_, spectrum, wl, _) in enumerate(items):
            groups.setdefault((spectrum.size, None if wl is None else wl.tobytes()), []).append(i)
        embeddings: list[np.ndarray | None] = [None] * len(items)
        processed: list[np.ndarray | None] = [None] * len(items)
        for indices in groups.values():
            values = np.stack([items[i][1] for i in indices])
            wl = items[indices[0]][2]
            field = f"entries[{indices[0]}].spectrum" if len(items) > 1 else "spectrum"
            self._check_shapes(values, wl, field)
            try:
                emb, proc = await self.embed(values, wl)
            except InvalidInput as exc:  # it names spectra[row of this group]: name the entry
                names = [f"entries[{i}].spectrum" for i in indices] if len(items) > 1 else [field]
                raise rename_rows(exc, "spectra", names) from None
            for row, i in enumerate(indices):
                embeddings[i] = emb[row]
                processed[i] = proc[row]
        return [
            LibraryEntry(
                id=entry_id,
                spectrum=spectrum,
                wavelengths=wl,
                metadata=metadata,
                embedding=embeddings[i],
                processed=processed[i],
                model_version=self.model_id,
            )
            for i, (entry_id, spectrum, wl, metadata) in enumerate(items)
        ]

    def embed_entries_sync(self, entries: Sequence[LibraryEntry]) -> tuple[np.ndarray, np.ndarray]:
        """Re-embedding: stored original spectra -> (embeddings, processed), in this thread.

        Raises:
            InvalidInput: naming the entry whose stored spectrum this model cannot take (e.g. its
                grid does not cover the new model's range).
            ReembedStopped: the service is shutting down (between batches).
        """
        if self._stopping.is_set():
            raise ReembedStopped("the service is shutting down")
        rows = []
        for entry in entries:
            try:
                rows.append(self.preprocess_sync(entry.spectrum[None], entry.wavelengths)[0][0])
            except InvalidInput as exc:
                raise InvalidInput(
                    f"library entry {entry.id!r} cannot be re-embedded with {self.model_id}: "
                    f"{exc.message}",
                    field="id",
                ) from None
        processed = np.stack(rows)
        return self.model.embed(processed), processed

    @property
    def reembedding(self) -> bool:
        return self._reembed_lock.locked()

    def reembed_sync(self, batch_size: int) -> int:
        """Re-embed every entry not embedded by the served model (blocking, one at a time).

        Raises:
            Conflict: a re-embedding is already running.
            InvalidInput: an entry cannot be re-embedded (the library stays on its old version).
        """
        store = self._require_store()
        if not self._reembed_lock.acquire(blocking=False):
            raise Conflict("the library is being re-embedded already; retry when it is done")
        try:
            count = store.reembed(
                self.embed_entries_sync, model_version=self.model_id, batch_size=batch_size
            )
        except LibraryError as exc:
            raise from_library_error(exc) from None
        finally:
            self._reembed_lock.release()
        if count:
            log.info("re-embedded %d library entries with %s", count, self.model_id)
        return count


def _to_caller_grid(on_grid: np.ndarray, grid: np.ndarray, wavelengths: np.ndarray) -> np.ndarray:
    """Linear interpolation from the model grid onto the caller's; NaN outside the model range."""
    order = np.argsort(grid)
    xp = grid[order]
    out = np.empty((on_grid.shape[0], wavelengths.size), dtype=np.float32)
    for i, row in enumerate(on_grid[:, order]):
        out[i] = np.interp(wavelengths, xp, row, left=np.nan, right=np.nan)
    return out
