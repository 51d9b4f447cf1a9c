"""Spectra in: the :class:`Spectra` container, file readers and named public corpora.

Nothing here imports torch. Readers that need optional packages (``jcamp``) import them
inside the function that uses them.
"""

from wavemae.data.corpora import CORPORA, CorpusInfo, load_corpus
from wavemae.data.instruments import read_innospectra_csv, read_jcamp
from wavemae.data.readers import (
    FORMATS,
    parse_csv_wide,
    read_csv_wide,
    read_npy,
    read_spectra,
    write_csv_wide,
    write_npz,
)
from wavemae.data.spectra import UNITS, Spectra, SpectraFormatError, normalize_unit

__all__ = [
    "CORPORA",
    "FORMATS",
    "UNITS",
    "CorpusInfo",
    "Spectra",
    "SpectraFormatError",
    "load_corpus",
    "normalize_unit",
    "parse_csv_wide",
    "read_csv_wide",
    "read_innospectra_csv",
    "read_jcamp",
    "read_npy",
    "read_spectra",
    "write_csv_wide",
    "write_npz",
]
