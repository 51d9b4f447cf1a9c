"""Spectra in: the :class:`Spectra` container, file readers and writers, named public corpora.

Nothing here imports torch. Readers and writers that need optional packages (``jcamp``,
``brukeropus``, ``spc-io``, ``spectral``) import them inside the function that uses them.
"""

from wavemae.data.corpora import CORPORA, CorpusInfo, load_corpus, spectra_from_argument
from wavemae.data.delimited import parse_csv, read_csv
from wavemae.data.instruments import read_innospectra_csv, read_jcamp
from wavemae.data.readers import (
    FORMATS,
    detect_format,
    parse_csv_wide,
    read_csv_wide,
    read_npy,
    read_spectra,
)
from wavemae.data.spectra import UNITS, Spectra, SpectraFormatError, normalize_unit
from wavemae.data.vendor import read_envi, read_opus, read_spa, read_spc
from wavemae.data.writers import (
    write_csv_long,
    write_csv_wide,
    write_envi,
    write_jcamp,
    write_npz,
    write_spc,
)

__all__ = [
    "CORPORA",
    "FORMATS",
    "UNITS",
    "CorpusInfo",
    "Spectra",
    "SpectraFormatError",
    "detect_format",
    "load_corpus",
    "normalize_unit",
    "parse_csv",
    "parse_csv_wide",
    "read_csv",
    "read_csv_wide",
    "read_envi",
    "read_innospectra_csv",
    "read_jcamp",
    "read_npy",
    "read_opus",
    "read_spa",
    "read_spc",
    "read_spectra",
    "spectra_from_argument",
    "write_csv_long",
    "write_csv_wide",
    "write_envi",
    "write_jcamp",
    "write_npz",
    "write_spc",
]
