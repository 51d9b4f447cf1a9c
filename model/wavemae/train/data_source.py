"""Where a run's spectra come from, how they are split, and which labels judge the embeddings.

A :class:`DataSource` names a corpus (``tablet``, ``fermentation``, ``coffee``) or a file read
with :func:`wavemae.data.read_spectra`. :func:`split_source` returns the training spectra and
the held-out spectra:

- ``tablet``: the corpus's own split — ``calibration`` trains, ``test`` is held out (both
  instruments; ``transfer`` is unused).
- every other source: a seeded 80/20 split of the spectra.

:func:`composition_task` says how embeddings are judged on a source: tablet reference assay
(``api``, k-NN regression from calibration to test), coffee origin (leave-one-out 1-NN),
fermentation HPLC concentrations (leave-one-out k-NN regression on the time-matched spectra).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wavemae.data import Spectra, load_corpus, read_spectra, spectra_from_argument

__all__ = [
    "CompositionTask",
    "DataSource",
    "composition_task",
    "held_out_groups",
    "load_source",
    "recorded_heldout",
    "spectra_from_argument",
    "split_source",
]

_FERMENTATION_TARGETS = ["glucose", "xylose", "acetic_acid", "ethanol", "furfural"]
_HELDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class DataSource:
    """A corpus name or a file path (exactly one), plus the split seed for files.

    ``holdout="validation"`` (tablet only) holds out a seeded 20 % of the calibration tablets
    (both instruments of a tablet on the same side) instead of the test split: for choosing
    settings without looking at the test spectra.
    """

    corpus: str | None = None
    path: str | None = None
    split_seed: int = 0
    holdout: str = "test"

    def __post_init__(self) -> None:
        if (self.corpus is None) == (self.path is None):
            raise ValueError(f"give exactly one of corpus={self.corpus!r} and path={self.path!r}")
        if self.holdout not in ("test", "validation"):
            raise ValueError(f"holdout={self.holdout!r} must be 'test' or 'validation'")
        if self.holdout == "validation" and self.corpus != "tablet":
            raise ValueError("holdout='validation' is defined for the tablet corpus only")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSource:
        return cls(**d)

    def describe(self) -> str:
        return f"corpus {self.corpus}" if self.corpus else f"file {self.path}"


def load_source(source: DataSource) -> Spectra:
    """All spectra of ``source`` (a file's µm axis converted to nm, the unit models use)."""
    if source.corpus is not None:
        return load_corpus(source.corpus)
    return _in_model_units(read_spectra(Path(source.path)))


def _in_model_units(spectra: Spectra) -> Spectra:
    return spectra.to_unit("nm") if spectra.unit == "um" else spectra


def recorded_heldout(provenance: dict[str, Any], checkpoint: object) -> tuple[Spectra, str]:
    """The held-out spectra of the data a checkpoint was trained on, and a label for them.

    Checkpoints that record no data source (written before runs recorded it) get the
    ``tablet`` test split, as before.

    Raises:
        ValueError: the recorded file is gone, or its held-out split no longer has the
            checksum recorded at training time (the message says to pass ``--data``).
    """
    recorded = provenance.get("data")
    if not recorded:
        return load_corpus("tablet", split="test"), "tablet:test"
    source = DataSource.from_dict(recorded)
    if source.path is not None and not Path(source.path).exists():
        raise ValueError(
            f"{checkpoint} was trained on {source.path}, which is not there any more; "
            "pass --data FILE or --data CORPUS[:SPLIT] to verify on other spectra"
        )
    _, held = split_source(source)
    expected = provenance.get("heldout_sha256")
    if expected and held.checksum() != expected:
        raise ValueError(
            f"{source.describe()} changed since {checkpoint} was trained (its held-out split "
            "has another checksum); pass --data to verify on other spectra"
        )
    return held, f"held-out split of {source.describe()}"


def split_source(source: DataSource) -> tuple[Spectra, Spectra]:
    """``(train, heldout)`` spectra of ``source`` (see the module docstring).

    Raises:
        ValueError: if the source has fewer than 5 spectra (nothing sensible to hold out).
    """
    spectra = load_source(source)
    if source.corpus == "tablet":
        calibration = spectra.where("split", "calibration")
        if source.holdout == "validation":
            return _group_split(calibration, "tablet", source.split_seed)
        return calibration, spectra.where("split", "test")
    n = len(spectra)
    if n < 5:
        raise ValueError(f"{source.describe()} has {n} spectra; need at least 5 to hold some out")
    order = np.random.default_rng(source.split_seed).permutation(n)
    n_held = max(1, round(_HELDOUT_FRACTION * n))
    return spectra.subset(np.sort(order[n_held:])), spectra.subset(np.sort(order[:n_held]))


def held_out_groups(groups: Any, seed: int = 0) -> np.ndarray:
    """The group names (for tablet: the ``tablet`` column of the calibration spectra) that
    ``holdout="validation"`` holds out: a seeded 20 % of the distinct names."""
    names = np.unique(np.array([str(g) for g in groups]))
    return np.random.default_rng(seed).permutation(names)[
        : max(1, round(_HELDOUT_FRACTION * len(names)))
    ]


def _group_split(spectra: Spectra, key: str, seed: int) -> tuple[Spectra, Spectra]:
    groups = np.array([str(g) for g in spectra.metadata_column(key)])
    held = np.isin(groups, held_out_groups(groups, seed))
    return spectra.subset(~held), spectra.subset(held)


@dataclass
class CompositionTask:
    """Spectra and labels for judging embeddings.

    ``query`` None means leave-one-out within ``reference``. ``kind`` is ``"regression"``
    (labels ``(N,)`` or ``(N, T)`` floats) or ``"classification"``.
    """

    name: str
    kind: str
    reference: Spectra
    reference_labels: np.ndarray
    query: Spectra | None
    query_labels: np.ndarray | None
    target_names: list[str]


def composition_task(source: DataSource) -> CompositionTask | None:
    """The labelled comparison for ``source``, or None when it has no labels we know."""
    if source.corpus == "tablet":
        train, held = split_source(source)
        return CompositionTask(
            name="tablet api (mg): cosine k-NN from calibration to test spectra",
            kind="regression",
            reference=train,
            reference_labels=np.array(train.metadata_column("api"), dtype=np.float64),
            query=held,
            query_labels=np.array(held.metadata_column("api"), dtype=np.float64),
            target_names=["api"],
        )
    if source.corpus == "coffee":
        spectra = load_source(source)
        return CompositionTask(
            name="coffee origin: leave-one-out cosine 1-NN over all 60 spectra",
            kind="classification",
            reference=spectra,
            reference_labels=np.array(spectra.metadata_column("origin")),
            query=None,
            query_labels=None,
            target_names=["origin"],
        )
    if source.corpus == "fermentation":
        spectra = load_source(source)
        has_hplc = np.array([m.get("ethanol") is not None for m in spectra.metadata])
        labelled = spectra.subset(has_hplc)
        y = np.array(
            [[m[t] for t in _FERMENTATION_TARGETS] for m in labelled.metadata], dtype=np.float64
        )
        return CompositionTask(
            name="fermentation HPLC (g/L): leave-one-out cosine k-NN on time-matched spectra",
            kind="regression",
            reference=labelled,
            reference_labels=y,
            query=None,
            query_labels=None,
            target_names=list(_FERMENTATION_TARGETS),
        )
    return None
