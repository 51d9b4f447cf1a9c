"""The model artifact: one folder per model version, described by ``manifest.json``.

This module is the single definition of the contract between the exporter
(:mod:`wavemae.export`, torch) and the service (:mod:`wavemae_service`, no torch). It imports
only numpy and the standard library (plus :mod:`wavemae.preprocessing`, itself numpy-only).

An artifact folder holds::

    encoder.onnx          spectra (batch, seq_len) float32 -> embedding (batch, latent_dim) float32
    encoder_masked.onnx   spectra (batch, seq_len) float32, visible (batch, seq_len) bool
                          -> embedding (batch, latent_dim); hidden positions have no effect
    decoder.onnx          embedding (batch, latent_dim) -> reconstruction (batch, seq_len)
    encoder.pt            TorchScript of the encoder (same tensors)
    decoder.pt            TorchScript of the decoder (same tensors)
    encoder.int8.onnx     optional dynamically quantised encoder (same tensors)
    manifest.json         everything below, including the sha256 of each file above

Embeddings are L2-normalised. :func:`load_artifact` validates the manifest, checks that every
listed file is present with the recorded sha256, and builds the preprocessing pipeline the
model was trained with, so ``artifact.preprocess(raw)`` gives exactly the model's input.
The manifest schema itself lives in :mod:`wavemae.manifest`; every name is re-exported here.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from wavemae.manifest import (
    DECODER_ONNX,
    DECODER_TORCHSCRIPT,
    EMBEDDING,
    ENCODER_INT8_ONNX,
    ENCODER_MASKED_ONNX,
    ENCODER_ONNX,
    ENCODER_TORCHSCRIPT,
    FILE_NAMES,
    MANIFEST,
    RECONSTRUCTION,
    ROLES,
    SCHEMA_VERSION,
    SPECTRA,
    VISIBLE,
    WAVELENGTH_UNITS,
    ArtifactError,
    ChecksumError,
    FileEntry,
    Manifest,
    ManifestError,
    MissingFileError,
    TensorSpec,
    canonical_unit,
    tensor_specs_for,
)

__all__ = [
    "DECODER_ONNX",
    "DECODER_TORCHSCRIPT",
    "EMBEDDING",
    "ENCODER_INT8_ONNX",
    "ENCODER_MASKED_ONNX",
    "ENCODER_ONNX",
    "ENCODER_TORCHSCRIPT",
    "FILE_NAMES",
    "MANIFEST",
    "RECONSTRUCTION",
    "ROLES",
    "SCHEMA_VERSION",
    "SHIPPED_MODELS",
    "SPECTRA",
    "VISIBLE",
    "WAVELENGTH_UNITS",
    "Artifact",
    "ArtifactError",
    "ChecksumError",
    "FileEntry",
    "Manifest",
    "ManifestError",
    "MissingFileError",
    "TensorSpec",
    "canonical_unit",
    "default_model_dir",
    "load_artifact",
    "resolve_model_dir",
    "sha256_file",
    "shipped_model_dir",
    "tensor_specs_for",
]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Artifact:
    """A loaded, verified artifact folder.

    Attributes:
        path: the folder.
        manifest: its parsed :class:`Manifest`.
        preprocessor: the :class:`wavemae.preprocessing.Preprocessor` rebuilt from the
            manifest's JSON, on the manifest's grid (resampling only, if the JSON is null).
    """

    path: Path
    manifest: Manifest
    preprocessor: Any = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def model_id(self) -> str:
        """``"name:version"``: what every response and stored library names."""
        return f"{self.manifest.name}:{self.manifest.version}"

    @property
    def seq_len(self) -> int:
        return self.manifest.seq_len

    @property
    def latent_dim(self) -> int:
        return self.manifest.latent_dim

    @property
    def wavelengths(self) -> np.ndarray:
        """The model's grid, ``(seq_len,)`` float64 in :attr:`wavelength_unit`."""
        return np.asarray(self.manifest.wavelengths, dtype=np.float64)

    @property
    def wavelength_unit(self) -> str:
        return self.manifest.wavelength_unit

    def has(self, role: str) -> bool:
        """Whether the artifact holds the file of ``role`` (see :data:`ROLES`)."""
        _check_role(role)
        return role in self.manifest.files

    def file(self, role: str) -> Path:
        """Path of the file of ``role``.

        Raises:
            KeyError: naming the role if it is unknown or this artifact has no such file.
        """
        _check_role(role)
        entry = self.manifest.files.get(role)
        if entry is None:
            raise KeyError(f"artifact {self.model_id} at {self.path} has no {role!r} file")
        return self.path / entry.path

    def inputs(self, role: str) -> list[TensorSpec]:
        """Input tensor specs of the graph of ``role``."""
        _check_role(role)
        return list(tensor_specs_for(self.seq_len, self.latent_dim)[role]["inputs"])

    def outputs(self, role: str) -> list[TensorSpec]:
        """Output tensor specs of the graph of ``role``."""
        _check_role(role)
        return list(tensor_specs_for(self.seq_len, self.latent_dim)[role]["outputs"])

    def preprocess(self, values: Any, wavelengths: Any = None) -> np.ndarray:
        """Turn raw spectra into the encoder's input with the model's own pipeline.

        Args:
            values: ``(N, L_in)`` or ``(L_in,)`` raw intensities (absorbance, counts ...).
            wavelengths: ``(L_in,)`` grid of ``values`` in :attr:`wavelength_unit` (either
                direction); None means the values already lie on the model's grid
                (``L_in`` must equal ``seq_len``).

        Returns:
            ``(N, seq_len)`` float32, C-contiguous.

        Raises:
            ValueError: naming the problem, for no spectra, a wrong length or non-finite values.
            wavemae.preprocessing.GridRangeError: (a ValueError) for a grid that does not cover
                the model's range, naming both ranges.
        """
        return self.preprocess_with_state(values, wavelengths)[0]

    def preprocess_with_state(self, values: Any, wavelengths: Any = None) -> tuple[np.ndarray, Any]:
        """As :meth:`preprocess`, also returning the per-spectrum normalisation state that
        ``self.preprocessor.inverse_transform(x, state)`` needs to map reconstructions back."""
        if np.asarray(values).size == 0:
            raise ValueError("no spectra: values is empty")
        x, state = self.preprocessor.transform_with_state(values, wavelengths)
        return np.ascontiguousarray(x, dtype=np.float32), state


def _check_role(role: str) -> None:
    if role not in FILE_NAMES:
        raise KeyError(f"unknown artifact role {role!r}; known roles: {', '.join(ROLES)}")


def _read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{path} does not exist: {folder} is not a WaveMAE artifact folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path} is not valid JSON: {exc}") from exc
    return Manifest.from_dict(data)


def _build_preprocessor(manifest: Manifest) -> Any:
    """The manifest's pipeline, on the manifest's grid (an identity pipeline when absent)."""
    from wavemae.preprocessing import Preprocessor

    grid = np.asarray(manifest.wavelengths, dtype=np.float64)
    unit = manifest.wavelength_unit
    try:
        if manifest.preprocessing is None:
            return Preprocessor(wavelengths=grid, unit=unit)
        pre = Preprocessor.from_dict(manifest.preprocessing)
        if pre.wavelengths is None:
            pre = replace(pre, wavelengths=grid, unit=unit)
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(
            f"manifest: key 'preprocessing' is not a valid pipeline: {exc}"
        ) from exc
    same_grid = pre.wavelengths.shape == grid.shape and np.allclose(
        pre.wavelengths, grid, rtol=1e-9, atol=0.0
    )
    if pre.unit != unit or not same_grid:
        raise ManifestError(
            f"manifest: the preprocessing grid ({pre.wavelengths.size} points in {pre.unit}) is "
            f"not the manifest's wavelengths ({grid.size} points in {unit})"
        )
    if not pre.is_fitted:
        raise ManifestError("manifest: key 'preprocessing' holds an unfitted standardisation")
    return pre


def load_artifact(path: str | os.PathLike, *, verify: bool = True) -> Artifact:
    """Load the artifact folder at ``path`` (or the path of its ``manifest.json``).

    Args:
        path: the artifact folder.
        verify: check every listed file's sha256 (presence is always checked).

    Returns:
        The :class:`Artifact`, with its preprocessor built.

    Raises:
        ManifestError: for a missing, unreadable or invalid manifest.
        MissingFileError: naming the file, if a listed file is absent.
        ChecksumError: naming the file and both digests, if a file was changed.
    """
    folder = Path(path)
    if folder.name == MANIFEST and folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise ArtifactError(f"artifact folder {folder} does not exist")
    manifest = _read_manifest(folder)
    for role, entry in manifest.files.items():
        file = folder / entry.path
        if not file.is_file():
            raise MissingFileError(f"{file} ({role}) is listed in the manifest but missing")
        if verify:
            actual = sha256_file(file)
            if actual != entry.sha256:
                raise ChecksumError(
                    f"{file} ({role}) has sha256 {actual}, but the manifest records "
                    f"{entry.sha256}: the file was changed after export"
                )
    return Artifact(path=folder, manifest=manifest, preprocessor=_build_preprocessor(manifest))


#: The models shipped inside the package: name -> folder next to this module. ``default`` is
#: the general model (any instrument, any intensity scale, axis-relative); ``tablet`` the
#: tablet NIR domain model (fixed grid 600-1792 nm). Replacing one is a folder copy.
SHIPPED_MODELS: dict[str, str] = {"default": "default_model", "tablet": "tablet_model"}


def shipped_model_dir(name: str = "default") -> Path:
    """The artifact folder of the shipped model ``name`` (see :data:`SHIPPED_MODELS`).

    Raises:
        ArtifactError: for an unknown name, listing the shipped ones.
    """
    folder = SHIPPED_MODELS.get(name)
    if folder is None:
        raise ArtifactError(
            f"no shipped model is called {name!r}; shipped models: {', '.join(SHIPPED_MODELS)}"
        )
    return Path(__file__).resolve().parent / folder


def default_model_dir() -> Path:
    """The artifact folder of the shipped default model (``wavemae/default_model``)."""
    return shipped_model_dir("default")


def resolve_model_dir(spec: str | os.PathLike | None) -> Path:
    """The artifact folder meant by ``spec``: a shipped model's name, or a folder path.

    A bare word (no path separator) that names a shipped model selects it, even when a folder
    of that name exists in the working directory (write ``./tablet`` for that folder). None
    means the shipped default.

    Raises:
        ArtifactError: for a bare word that is neither a shipped name nor an existing folder,
            and for a path that does not exist, listing the shipped names.
    """
    if spec is None:
        return default_model_dir()
    text = os.fspath(spec)
    if text in SHIPPED_MODELS:
        return shipped_model_dir(text)
    path = Path(text).expanduser()
    if not path.exists():
        raise ArtifactError(
            f"model {text!r} is neither a shipped model ({', '.join(SHIPPED_MODELS)}) nor an "
            f"existing artifact folder ({path} does not exist)"
        )
    return path
