"""Spectra in: the :class:`Spectra` container, file readers and named public corpora.

Nothing here imports torch. Readers that need optional packages (``jcamp``) import them
inside the function that uses them.
"""

from wavemae.data.corpora import CORPORA, CorpusInfo, load_corpus
from wavemae.data.spectra import UNITS, Spectra, SpectraFormatError, normalize_unit

__all__ = [
    "CORPORA",
    "UNITS",
    "CorpusInfo",
    "Spectra",
    "SpectraFormatError",
    "load_corpus",
    "normalize_unit",
]
