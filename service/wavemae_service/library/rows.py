"""How a backend lays a library entry out in a table row: the columns every backend stores,
the exact bytes of its arrays (little-endian float64 originals, float32 embedding and processed
spectrum), and the way back from a row to a :class:`~.entries.LibraryEntry`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from .entries import LibraryEntry

__all__ = ["COLUMNS", "array_bytes", "axis_range", "entry_from_row", "f32_bytes"]

#: The columns every backend stores per entry, in the order :func:`entry_from_row` reads them.
COLUMNS = (
    "id, spectrum, wavelengths, metadata, embedding, processed, model_version, "
    "created_at, updated_at, unit"
)


def entry_from_row(row: Sequence[Any]) -> LibraryEntry:
    """A :data:`COLUMNS` row -> LibraryEntry. Arrays are little-endian bytes (float64 originals,
    float32 embedding and processed); metadata is JSON text or an already decoded mapping."""
    entry_id, spectrum, wavelengths, metadata, embedding, processed, version, created, updated = (
        row[:9]
    )
    return LibraryEntry(
        id=entry_id,
        spectrum=np.frombuffer(spectrum, dtype="<f8").copy(),
        wavelengths=None if wavelengths is None else np.frombuffer(wavelengths, "<f8").copy(),
        metadata=orjson.loads(metadata) if isinstance(metadata, (str, bytes)) else metadata,
        embedding=np.frombuffer(embedding, dtype="<f4").copy(),
        processed=np.frombuffer(processed, dtype="<f4").copy(),
        model_version=version,
        created_at=created,
        updated_at=updated,
        unit=row[9],
    )


def axis_range(wavelengths: bytes | memoryview | np.ndarray | None) -> tuple[float, float]:
    """``(lowest, highest)`` of stored wavelengths (little-endian float64 bytes or an array);
    ``(nan, nan)`` for an entry stored without them (its grid is unknown)."""
    if wavelengths is None:
        return (float("nan"), float("nan"))
    if isinstance(wavelengths, (bytes, bytearray, memoryview)):
        wavelengths = np.frombuffer(wavelengths, "<f8")
    axis = np.asarray(wavelengths, dtype=np.float64)
    if axis.size == 0:
        return (float("nan"), float("nan"))
    return (float(axis.min()), float(axis.max()))


def array_bytes(entry: LibraryEntry) -> tuple[bytes, bytes | None, bytes, bytes]:
    """The exact bytes a backend stores: ``(spectrum <f8, wavelengths <f8 or None, embedding
    <f4, processed <f4)``."""
    return (
        entry.spectrum.astype("<f8").tobytes(),
        None if entry.wavelengths is None else entry.wavelengths.astype("<f8").tobytes(),
        f32_bytes(entry.embedding),
        f32_bytes(entry.processed),
    )


def f32_bytes(array: np.ndarray) -> bytes:
    """Little-endian float32 bytes of ``array``."""
    return np.asarray(array, dtype="<f4").tobytes()
