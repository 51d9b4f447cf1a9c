"""The artifact manifest schema (``manifest.json``, schema version 1): file names, tensor specs,
validation. numpy and the standard library only.

:mod:`wavemae.artifact` re-exports every name here; import from there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    "SPECTRA",
    "VISIBLE",
    "WAVELENGTH_UNITS",
    "ArtifactError",
    "ChecksumError",
    "FileEntry",
    "Manifest",
    "ManifestError",
    "MissingFileError",
    "TensorSpec",
    "canonical_unit",
    "tensor_specs_for",
]

SCHEMA_VERSION = 1

# File names inside an artifact folder.
MANIFEST = "manifest.json"
ENCODER_ONNX = "encoder.onnx"
DECODER_ONNX = "decoder.onnx"
ENCODER_MASKED_ONNX = "encoder_masked.onnx"
ENCODER_INT8_ONNX = "encoder.int8.onnx"
ENCODER_TORCHSCRIPT = "encoder.pt"
DECODER_TORCHSCRIPT = "decoder.pt"

# Role -> file name. Roles are the keys of the manifest's "files" and "tensors".
FILE_NAMES: dict[str, str] = {
    "encoder": ENCODER_ONNX,
    "decoder": DECODER_ONNX,
    "encoder_masked": ENCODER_MASKED_ONNX,
    "encoder_int8": ENCODER_INT8_ONNX,
    "encoder_torchscript": ENCODER_TORCHSCRIPT,
    "decoder_torchscript": DECODER_TORCHSCRIPT,
}
ROLES = tuple(FILE_NAMES)
REQUIRED_ROLES = ("encoder", "decoder", "encoder_masked")

# Tensor names.
SPECTRA = "spectra"
VISIBLE = "visible"
EMBEDDING = "embedding"
RECONSTRUCTION = "reconstruction"
BATCH = "batch"  # name of the dynamic batch axis in manifest shapes

# Units as wavemae.data spells them; "cm^-1" (older checkpoints) is read as "cm-1".
WAVELENGTH_UNITS = ("nm", "cm-1")
_UNIT_ALIASES = {"nm": "nm", "cm-1": "cm-1", "cm^-1": "cm-1", "1/cm": "cm-1"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ArtifactError(Exception):
    """Any problem with an artifact folder: unreadable, inconsistent or tampered with."""


class ManifestError(ArtifactError):
    """``manifest.json`` is missing, not JSON, of another schema version, or malformed."""


class MissingFileError(ArtifactError):
    """A file the manifest lists is not in the artifact folder."""


class ChecksumError(ArtifactError):
    """A file's sha256 differs from the one recorded in the manifest."""


# --------------------------------------------------------------------------- small records


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: ``shape`` holds ints and the axis name ``"batch"``."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Any, *, where: str) -> TensorSpec:
        if not isinstance(d, dict):
            raise ManifestError(f"{where} must be an object, got {type(d).__name__}")
        name = _get(d, "name", str, where)
        shape = _get(d, "shape", list, where)
        dtype = _get(d, "dtype", str, where)
        for i, axis in enumerate(shape):
            if isinstance(axis, bool) or not isinstance(axis, (int, str)):
                raise ManifestError(f"{where}.shape[{i}]={axis!r} must be an int or axis name")
        return cls(name=name, shape=tuple(shape), dtype=dtype)


@dataclass(frozen=True)
class FileEntry:
    """One file of the artifact: its name in the folder, sha256 (hex) and size in bytes."""

    path: str
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}

    @classmethod
    def from_dict(cls, d: Any, *, where: str) -> FileEntry:
        if not isinstance(d, dict):
            raise ManifestError(f"{where} must be an object, got {type(d).__name__}")
        path = _get(d, "path", str, where)
        # A bare file name only: a manifest must never point outside its own folder.
        if path in ("", ".", "..") or "/" in path or "\\" in path:
            raise ManifestError(f"{where}.path={path!r} must be a plain file name")
        sha = _get(d, "sha256", str, where)
        if not _SHA256.match(sha):
            raise ManifestError(f"{where}.sha256={sha!r} is not 64 lowercase hex digits")
        size = _get(d, "bytes", int, where)
        return cls(path=path, sha256=sha, bytes=size)


def tensor_specs_for(seq_len: int, latent_dim: int) -> dict[str, dict[str, list[TensorSpec]]]:
    """The tensors each role's graph must have for a model of ``seq_len`` and ``latent_dim``."""
    spectra = TensorSpec(SPECTRA, (BATCH, seq_len), "float32")
    visible = TensorSpec(VISIBLE, (BATCH, seq_len), "bool")
    embedding = TensorSpec(EMBEDDING, (BATCH, latent_dim), "float32")
    reconstruction = TensorSpec(RECONSTRUCTION, (BATCH, seq_len), "float32")
    encoder = {"inputs": [spectra], "outputs": [embedding]}
    decoder = {"inputs": [embedding], "outputs": [reconstruction]}
    return {
        "encoder": encoder,
        "decoder": decoder,
        "encoder_masked": {"inputs": [spectra, visible], "outputs": [embedding]},
        "encoder_int8": encoder,
        "encoder_torchscript": encoder,
        "decoder_torchscript": decoder,
    }


# --------------------------------------------------------------------------- manifest


def _get(d: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``d[key]`` checked against ``kind``; a ManifestError names the key otherwise."""
    if key not in d:
        raise ManifestError(f"{where}: required key {key!r} is missing")
    value = d[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int subclass: never accept it where a number is meant.
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ManifestError(
            f"{where}: key {key!r} must be {names}, got {type(value).__name__} {value!r:.60}"
        )
    return value


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` (see the module docstring and :meth:`to_dict`)."""

    name: str
    version: str
    created_at: str
    seq_len: int
    latent_dim: int
    wavelengths: tuple[float, ...]
    wavelength_unit: str
    preprocessing: dict[str, Any] | None
    files: dict[str, FileEntry]
    tensors: dict[str, dict[str, list[TensorSpec]]]
    opset: int
    schema_version: int = SCHEMA_VERSION
    model_config: dict[str, Any] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None
    # Optional (absent in older manifests): the QC score's calibration, see wavemae.qc.
    qc: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, keys in a readable order (``qc`` only when present)."""
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "seq_len": self.seq_len,
            "latent_dim": self.latent_dim,
            "wavelength_unit": self.wavelength_unit,
            "wavelengths": list(self.wavelengths),
            "preprocessing": self.preprocessing,
            "model_config": self.model_config,
            "opset": self.opset,
            "files": {role: e.to_dict() for role, e in self.files.items()},
            "tensors": {
                role: {io: [s.to_dict() for s in specs] for io, specs in t.items()}
                for role, t in self.tensors.items()
            },
            "libraries": self.libraries,
            "provenance": self.provenance,
            "verification": self.verification,
            "quantization": self.quantization,
        } | ({"qc": self.qc} if self.qc is not None else {})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        """Parse and validate a manifest dict.

        Raises:
            ManifestError: naming the key, for another schema version, a missing or mistyped
                key, a grid that is not ``seq_len`` finite increasing values, an unknown role,
                or tensor specs that disagree with ``seq_len``/``latent_dim``.
        """
        w = "manifest"
        if not isinstance(d, dict):
            raise ManifestError(f"{w} must be a JSON object, got {type(d).__name__}")
        schema = _get(d, "schema_version", int, w)
        if schema != SCHEMA_VERSION:
            raise ManifestError(
                f"{w}: schema_version={schema} is not supported (this wavemae reads "
                f"{SCHEMA_VERSION}); export the model again with this version"
            )
        seq_len = _get(d, "seq_len", int, w)
        latent_dim = _get(d, "latent_dim", int, w)
        for key, value in (("seq_len", seq_len), ("latent_dim", latent_dim)):
            if value <= 0:
                raise ManifestError(f"{w}: {key}={value} must be positive")
        unit = _UNIT_ALIASES.get(_get(d, "wavelength_unit", str, w))
        if unit is None:
            raise ManifestError(
                f"{w}: wavelength_unit={d['wavelength_unit']!r} must be one of {WAVELENGTH_UNITS}"
            )
        grid = _get(d, "wavelengths", list, w)
        if len(grid) != seq_len:
            raise ManifestError(f"{w}: wavelengths has {len(grid)} values but seq_len={seq_len}")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in grid):
            raise ManifestError(f"{w}: wavelengths must be numbers")
        grid_arr = np.asarray(grid, dtype=np.float64)
        if not np.all(np.isfinite(grid_arr)) or np.any(np.diff(grid_arr) <= 0):
            raise ManifestError(f"{w}: wavelengths must be finite and strictly increasing")
        preprocessing = d.get("preprocessing")
        if preprocessing is not None and not isinstance(preprocessing, dict):
            raise ManifestError(
                f"{w}: key 'preprocessing' must be an object or null, "
                f"got {type(preprocessing).__name__}"
            )

        files_raw = _get(d, "files", dict, w)
        files: dict[str, FileEntry] = {}
        for role, entry in files_raw.items():
            if role not in FILE_NAMES:
                raise ManifestError(f"{w}.files: unknown role {role!r} (known: {ROLES})")
            files[role] = FileEntry.from_dict(entry, where=f"{w}.files.{role}")
        for role in REQUIRED_ROLES:
            if role not in files:
                raise ManifestError(f"{w}.files: required role {role!r} is missing")

        expected = tensor_specs_for(seq_len, latent_dim)
        tensors_raw = _get(d, "tensors", dict, w)
        tensors: dict[str, dict[str, list[TensorSpec]]] = {}
        for role in files:
            where = f"{w}.tensors.{role}"
            t = tensors_raw.get(role)
            if not isinstance(t, dict):
                raise ManifestError(f"{where}: required object is missing")
            parsed = {
                io: [
                    TensorSpec.from_dict(s, where=f"{where}.{io}[{i}]")
                    for i, s in enumerate(_get(t, io, list, where))
                ]
                for io in ("inputs", "outputs")
            }
            if parsed != expected[role]:
                raise ManifestError(
                    f"{where} = {_describe(parsed)} disagrees with seq_len={seq_len}, "
                    f"latent_dim={latent_dim}: expected {_describe(expected[role])}"
                )
            tensors[role] = parsed

        return cls(
            schema_version=schema,
            name=_get(d, "name", str, w),
            version=_get(d, "version", str, w),
            created_at=_get(d, "created_at", str, w),
            seq_len=seq_len,
            latent_dim=latent_dim,
            wavelengths=tuple(float(x) for x in grid),
            wavelength_unit=unit,
            preprocessing=preprocessing,
            files=files,
            tensors=tensors,
            opset=_get(d, "opset", int, w),
            model_config=_optional_dict(d, "model_config", w),
            libraries=_optional_dict(d, "libraries", w),
            provenance=_optional_dict(d, "provenance", w),
            verification=_optional_dict(d, "verification", w),
            quantization=_optional_dict(d, "quantization", w) or None,
            qc=_optional_dict(d, "qc", w) or None,
        )


def _optional_dict(d: dict, key: str, where: str) -> dict[str, Any]:
    value = d.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: key {key!r} must be an object, got {type(value).__name__}")
    return value


def _describe(t: dict[str, list[TensorSpec]]) -> str:
    return "; ".join(
        f"{io}: " + ", ".join(f"{s.name}{list(s.shape)} {s.dtype}" for s in specs)
        for io, specs in t.items()
    )


def canonical_unit(unit: str) -> str:
    """``"nm"`` or ``"cm-1"`` for any accepted spelling of a spectral unit.

    Raises:
        ValueError: for anything else, naming the value.
    """
    canonical = _UNIT_ALIASES.get(str(unit).strip().lower())
    if canonical is None:
        raise ValueError(f"unit={unit!r} must be one of {WAVELENGTH_UNITS}")
    return canonical
