"""Request and response models: the OpenAPI contract of the service.

Numbers are strict: ``true`` or ``"1.5"`` is not a number, and NaN/Infinity are refused (422).
Lengths and counts are checked after parsing so that the messages can name the expected size
(:mod:`wavemae_service.inputs`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, JsonValue, Strict

from wavemae.similarity import DEFAULT_PREPROCESSING, DEFAULT_WINDOW

__all__ = [
    "ClusterAssignment",
    "ClustersRequest",
    "EmbedRequest",
    "EmbedResponse",
    "ErrorBody",
    "ErrorResponse",
    "LibraryBatchRequest",
    "LibraryEntryOut",
    "LibraryItem",
    "LibraryListResponse",
    "LibraryPutRequest",
    "LibraryWriteResponse",
    "MapPlaceRequest",
    "MapRequest",
    "ModelInfo",
    "Neighbour",
    "ParseResponse",
    "ParsedSpectrum",
    "QCInfo",
    "ReconstructRequest",
    "ReconstructResponse",
    "ReembedResponse",
    "SimilarRequest",
    "SimilarResponse",
    "SpectraRequest",
]

Number = Annotated[float, Strict(), AllowInfNan(False)]
Spectrum = list[Number]
#: A spectrum value that may be missing: NaN or null (refused unless ``nan_as_missing``).
MaybeNumber = Annotated[float, Strict(), AllowInfNan(True)] | None
#: Ids are checked by :func:`wavemae_service.validation.check_entry_id` (one rule for paths and
#: bodies, with messages that name the broken rule), so the schema only states it.
ID_DOC = (
    "Entry id: 1 to 256 characters of valid Unicode; no '/', control characters or U+FFFD, no "
    "leading or trailing whitespace, not '.' or '..'. Percent-encode it in URLs."
)
EntryId = Annotated[str, Field(min_length=1, max_length=256, description=ID_DOC)]

_SPECTRA_DOC = (
    "Spectra, one list of numbers per spectrum, all of one length. Without `wavelengths` each "
    "must have exactly the model's seq_len values (on the model's grid); with them, any length "
    "matching `wavelengths`, resampled onto the model's grid by the model's preprocessing."
)
_WAVELENGTHS_DOC = (
    "The spectra's shared grid (strictly monotonic), in `unit` (default the model's, see GET "
    "/model); may cover part of the model's range (see `coverage` in the answer)."
)


_UNIT_DOC = (
    "Unit of `wavelengths`: 'nm', 'um' or 'cm-1' (converted to the model's unit). Default: the "
    "model's unit."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


MissingItem = Annotated[int, Strict()] | Annotated[list[Number], Field(min_length=2, max_length=2)]


class SpectraRequest(_Strict):
    """The spectra fields of /embed and /reconstruct."""

    spectra: list[list[MaybeNumber]] = Field(..., description=_SPECTRA_DOC)
    wavelengths: Spectrum | None = Field(None, description=_WAVELENGTHS_DOC)
    unit: str | None = Field(None, description=_UNIT_DOC)
    missing: list[list[MissingItem]] | None = Field(
        None,
        description="Per spectrum, what to treat as missing (hidden from the masked encoder): "
        "integer positions into that spectrum, and/or [low, high] wavelength ranges (inclusive, "
        "in `unit`, default the model's). One list per spectrum; an empty list hides nothing.",
    )
    nan_as_missing: Annotated[bool, Strict()] = Field(
        False,
        description="Treat NaN (or null) values as missing bands, hidden like `missing`; "
        "otherwise they are refused (422). Query parameter `nan_as_missing` for file bodies.",
    )


_INCLUDE_CLUSTER_DOC = (
    "Also answer `clusters`: per query spectrum, the cluster it falls into in the library's "
    "stored clustering (POST /library/clusters) and how strongly it belongs. 409 "
    "clusters_not_computed when none is stored for the served model version. Query parameter "
    "`include_cluster=true` for file and .npy bodies."
)


class EmbedRequest(SpectraRequest):
    include_cluster: Annotated[bool, Strict()] = Field(False, description=_INCLUDE_CLUSTER_DOC)


class ClusterAssignment(BaseModel):
    method: str = Field(..., description="'kmeans' or 'vmf': how the stored clustering was fitted.")
    k: int = Field(..., description="Number of clusters of the stored clustering.")
    score: Literal["cosine", "posterior"] = Field(
        ...,
        description="What `scores` are: the cosine of the query's embedding to its cluster's "
        "centroid (kmeans, in [-1, 1]) or the posterior probability of its component (vmf).",
    )
    model_version: str = Field(..., description="The model the clustering was computed with.")
    computed_at: float = Field(..., description="When it was computed (Unix seconds).")
    labels: list[int] = Field(..., description="Per query spectrum, its cluster (0..k-1).")
    scores: list[float] = Field(..., description="Per query spectrum, how strongly it belongs.")


class EmbedResponse(BaseModel):
    embeddings: list[list[float]] = Field(
        ..., description="(N, latent_dim) L2-normalised embeddings, in request order."
    )
    model: str = Field(..., description="'name:version' of the model that produced them.")
    ids: list[str] | None = Field(None, description="Row ids (file uploads that name spectra).")
    coverage: list[float] = Field(
        ..., description="Per spectrum, the fraction of the model's grid its wavelengths cover."
    )
    warnings: list[list[str]] = Field(
        ...,
        description="Per spectrum, why the answer may be doubtful (low coverage, resampled from "
        "a much coarser grid, out of distribution for the model); empty when none.",
    )
    clusters: ClusterAssignment | None = Field(
        None, description="With include_cluster: where each spectrum falls in the clustering."
    )


class ReconstructRequest(SpectraRequest):
    """The same fields as /embed: spectra, wavelengths, unit, missing."""


class ReconstructResponse(BaseModel):
    reconstructions: list[list[float | None]] = Field(
        ...,
        description="(N, L) reconstructions on the caller's grid and in the caller's scale "
        "(null where the caller's grid lies outside the model's range).",
    )
    rmse: list[float] = Field(
        ...,
        description="Per spectrum, root-mean-square difference between the input and its "
        "reconstruction over the caller's grid points inside the model's range: a quality "
        "score (large = unusual or suspicious measurement).",
    )
    model: str
    coverage: list[float] = Field(
        ..., description="Per spectrum, the fraction of the model's grid its wavelengths cover."
    )
    warnings: list[list[str]] = Field(
        ..., description="Per spectrum, why the answer may be doubtful; empty when none."
    )


class ParsedSpectrum(BaseModel):
    id: str | None = Field(..., description="The spectrum's id in the file; null when it has none.")
    values: list[float] = Field(..., description="The values, in the order of `wavelengths`.")
    metadata: dict[str, JsonValue] = Field(
        ..., description="What the file says about this spectrum (header fields, columns)."
    )
    missing: list[int] = Field(
        ...,
        description="Positions that were NaN in the file (with nan_as_missing=true; their "
        "values are interpolated); empty when none.",
    )


class ParseResponse(BaseModel):
    format: str = Field(..., description="How the body was read: csv, jcamp, spc, opus, npy, ...")
    filename: str | None = Field(None, description="The upload's file name, when it had one.")
    unit: str = Field(..., description="The unit of `wavelengths`: always the model's unit.")
    file_unit: str | None = Field(
        ...,
        description="The unit of the file's own axis (from the file or ?unit=); null when it "
        "named none and the model's unit was assumed.",
    )
    wavelengths: list[float] = Field(
        ...,
        description="The spectra's shared grid in the model's unit (converted from `file_unit`; "
        "a wavenumber axis is reversed with its values); the model's grid for a bare .npy.",
    )
    spectra: list[ParsedSpectrum]
    model: str


class SimilarRequest(_Strict):
    spectra: list[list[MaybeNumber]] | None = Field(None, description=_SPECTRA_DOC)
    wavelengths: Spectrum | None = Field(None, description=_WAVELENGTHS_DOC)
    unit: str | None = Field(None, description=_UNIT_DOC)
    missing: list[list[MissingItem]] | None = Field(
        None, description="As for /embed: per spectrum, parts hidden from the masked encoder."
    )
    nan_as_missing: Annotated[bool, Strict()] = Field(
        False, description="As for /embed: NaN (or null) values are missing bands."
    )
    embeddings: list[Spectrum] | None = Field(
        None,
        description="Query embeddings (latent_dim each) from this model version, instead of "
        "spectra (space='embedding' only).",
    )
    k: Annotated[int, Strict(), Field(ge=1, le=100)] = Field(
        10, description="Neighbours per query."
    )
    space: Literal["embedding", "spectrum"] = Field(
        "embedding",
        description="'embedding': cosine between model embeddings. 'spectrum': the Hit Quality "
        "Index of instrument software, Pearson correlation of the mean-centred spectra on the "
        "model grid after `preprocessing` (exact over every candidate).",
    )
    filter: dict[str, JsonValue] | None = Field(
        None,
        description="Metadata filter: every key must match. A value is a string, finite "
        "number, boolean or null (equality), or a list of them (any of).",
    )
    include_metadata: Annotated[bool, Strict()] = Field(
        True, description="Return each hit's metadata (false: ids and scores only)."
    )
    fields: list[str] | None = Field(
        None,
        description="Return only these metadata keys of each hit (absent keys are left out).",
        max_length=256,
    )
    preprocessing: Literal["none", "snv", "deriv1", "deriv2"] = Field(
        DEFAULT_PREPROCESSING,
        description="space='spectrum': spectral preprocessing before the correlation: none, "
        "SNV (ranks as none: Pearson ignores offset and scale), first or second "
        "Savitzky-Golay derivative. Default chosen on held-out tablet spectra.",
    )
    window: Annotated[int, Strict(), Field(ge=3, le=101)] = Field(
        DEFAULT_WINDOW,
        description="space='spectrum': Savitzky-Golay window in bands of the model grid (odd); "
        "for an axis-relative model, in points of the common grid of the query and each entry "
        "(as many points over their common range as the sparser of the two has there).",
    )
    exclude: list[Annotated[list[Number], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list,
        max_length=32,
        description="space='spectrum': wavelength ranges [low, high] (in `unit`, default the "
        "model's; for an axis-relative model, on the query's own axis) left out of the "
        "comparison, e.g. water or CO2 bands.",
    )
    scale: Literal["hqi", "r", "r2"] = Field(
        "hqi",
        description="space='spectrum': how scores read: 'hqi' = 100 r, 'r' = r, "
        "'r2' = 100 max(r, 0)^2 (hits are ranked by r in every scale).",
    )
    include_cluster: Annotated[bool, Strict()] = Field(
        False,
        description=_INCLUDE_CLUSTER_DOC + " Assigned by the query's embedding in either space "
        "(space='spectrum' embeds the spectra for it).",
    )


class Neighbour(BaseModel):
    id: str
    score: float = Field(
        ..., description="Cosine similarity in [-1, 1], or for space='spectrum' the HQI."
    )
    gap: float | None = Field(
        None,
        description="This hit's score minus the next hit's (how clearly it wins); null for the "
        "last hit of an embedding search and for the library's last entry.",
    )
    metadata: dict[str, Any] | None = Field(
        None,
        description="The entry's metadata (or the requested fields); absent when "
        "include_metadata is false.",
    )


class SimilarResponse(BaseModel):
    results: list[list[Neighbour]] = Field(..., description="Per query, best first.")
    model: str
    space: str
    clusters: ClusterAssignment | None = Field(
        None, description="With include_cluster: where each query falls in the clustering."
    )
    coverage: list[float] | None = Field(
        None,
        description="Per query spectrum, the fraction of the model's grid its wavelengths "
        "cover (absent for queries sent as embeddings). The bands it does not cover are left "
        "out: hidden from the masked encoder, or excluded from the spectrum comparison.",
    )
    warnings: list[list[str]] | None = Field(
        None,
        description="Per query spectrum, as for /embed (absent for embeddings); with "
        "space='spectrum' on an axis-relative model, also how many library entries were not "
        "compared because they share too little range with the query.",
    )


class LibraryPutRequest(_Strict):
    spectrum: Spectrum = Field(..., description="The reference spectrum, stored unchanged.")
    wavelengths: Spectrum | None = Field(None, description=_WAVELENGTHS_DOC)
    unit: str | None = Field(
        None,
        description=_UNIT_DOC + " Stored in the model's unit (an axis-relative model keeps the "
        "axis and its unit as sent).",
    )
    metadata: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="JSON object stored with the entry (finite numbers, at most "
        "max_metadata_bytes as compact JSON; see GET /model limits).",
    )


class LibraryItem(LibraryPutRequest):
    id: EntryId


class LibraryBatchRequest(_Strict):
    entries: list[LibraryItem] = Field(..., description="Written in one transaction.")


class LibraryWriteResponse(BaseModel):
    ids: list[str]
    model: str
    coverage: list[float] = Field(
        ..., description="Per entry, the fraction of the model's grid its wavelengths cover."
    )
    warnings: list[list[str]] = Field(
        ..., description="Per entry, why its embedding may be doubtful, as for /embed."
    )


class LibraryEntryOut(BaseModel):
    id: str
    spectrum: list[float]
    wavelengths: list[float] | None
    unit: str | None = Field(
        None,
        description="Unit of the stored wavelengths (nm, um, cm-1); null when not known (an "
        "axis-relative model's entry sent without a unit).",
    )
    metadata: dict[str, Any]
    model_version: str
    created_at: float
    updated_at: float
    embedding: list[float] | None = None


class LibraryListResponse(BaseModel):
    count: int = Field(..., description="Entries matching (the whole library without filter).")
    model_version: str | None = Field(..., description="Model the library is embedded with.")
    offset: int
    limit: int
    entries: list[LibraryEntryOut]


class ReembedResponse(BaseModel):
    reembedded: int
    model_version: str | None


class QCInfo(BaseModel):
    calibrated: bool = Field(
        ...,
        description="Whether the model carries a QC calibration; without one no spectrum gets "
        "an 'out of distribution' warning (the general default model has none: a QC threshold "
        "depends on the domain).",
    )
    components: list[str] = Field(
        ..., description="What the QC score combines (e.g. pca_q, pca_t2, recon_mean)."
    )
    flag_percentile: float | None = Field(
        ..., description="Percentile of clean held-out spectra from which a spectrum is flagged."
    )
    pca_components: int | None = Field(..., description="Size of the PCA part, if any.")
    note: str


class ModelInfo(BaseModel):
    model: str
    name: str
    version: str
    seq_len: int
    latent_dim: int
    wavelength_unit: str
    axis: Literal["fixed", "relative"] = Field(
        "fixed",
        description="fixed: spectra are resampled onto the model's grid and must cover it; "
        "relative (a general model): any strictly monotonic contiguous axis, any unit, is "
        "resampled onto seq_len points over its own range (wavelength_range is then nominal).",
    )
    wavelength_range: list[float]
    engine: dict[str, Any]
    batching: dict[str, Any]
    limits: dict[str, Any]
    library: dict[str, Any]
    qc: QCInfo
    manifest: dict[str, Any] = Field(
        ..., description="The artifact's manifest.json, without the QC calibration's arrays."
    )


class ErrorBody(BaseModel):
    type: str = Field(..., description="Stable code, e.g. invalid_input, overloaded, not_found.")
    message: str = Field(..., description="What went wrong, for people.")
    field: str | None = Field(None, description="The request field concerned, if any.")


class ErrorResponse(BaseModel):
    error: ErrorBody


class ClustersRequest(_Strict):
    method: Literal["kmeans", "vmf"] = Field(
        "vmf",
        description="'kmeans': spherical k-means (cosine); 'vmf': von Mises-Fisher mixture "
        "fitted by EM (per-cluster concentration).",
    )
    k: Annotated[int, Strict(), Field(ge=1, le=100)] | Literal["auto"] = Field(
        "auto", description="Number of clusters, or 'auto': the lowest vMF BIC over k = 1..10."
    )
    filter: dict[str, JsonValue] | None = Field(
        None, description="Cluster only the entries whose metadata match (as in /similar)."
    )


class MapPlaceRequest(_Strict):
    method: Literal["umap", "tsne"] = Field("umap", description="The stored map to place into.")
    embeddings: list[Spectrum] = Field(
        ...,
        min_length=1,
        max_length=1000,
        description="Embeddings (latent_dim each, from POST /embed with this model version).",
    )


class MapRequest(_Strict):
    method: Literal["umap", "tsne"] = Field(
        "umap", description="UMAP or t-SNE of the embeddings, metric cosine, fixed seed."
    )
